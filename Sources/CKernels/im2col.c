/* im2col and its adjoint col2im for Float (Chellapilla et al., 2006), the copies around every
   GEMM convolution. Layouts and semantics are those of Convolution.swift's generic versions
   (kept for Double). Each channel is first copied into a zero-padded plane, so the copy
   loops have no bounds logic; the common strides (1, 2) and row widths (4, 8, 16, 32) get
   loops the compiler unrolls. Stride 2 with an even kernel width (the DCGAN's 4×4 stride-2
   layers) takes the window columns kw and kw + 1 together: one contiguous run of the plane
   row holds both, interleaved, so a vector load and an even/odd shuffle replace two strided
   gathers (and an interleave and a vector add replace two strided scatter-adds in col2im).
   Pure copies and adds, each value's adds in the same (kh, kw) order as the plain loops:
   the same bits on every ISA and either path. */
#include "ckernels.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define EK_COPY_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EK_COPY_CLONES
#endif

typedef float ek_f4 __attribute__((vector_size(16)));
typedef float ek_f8 __attribute__((vector_size(32)));
typedef float ek_f16 __attribute__((vector_size(64)));
/* unaligned loads and stores; macros, so no wide vector crosses a call in any clone's ABI */
#define EK_LD(T, p) ({ T ek_v_; memcpy(&ek_v_, (p), sizeof ek_v_); ek_v_; })
#define EK_ST(p, v) do { __typeof__(v) ek_w_ = (v); memcpy((p), &ek_w_, sizeof ek_w_); } while (0)

/* Stride 2, window columns kw and kw + 1: even[ow] = r[2·ow], odd[ow] = r[2·ow + 1] over OW
   values, 8 (then 4) at a time. */
#define EK_PAIR_GATHER(r, even, odd, OW) do { \
    size_t ow_ = 0; \
    for (; ow_ + 8 <= (OW); ow_ += 8) { \
        ek_f16 v_ = EK_LD(ek_f16, (r) + 2 * ow_); \
        EK_ST((even) + ow_, __builtin_shufflevector(v_, v_, 0, 2, 4, 6, 8, 10, 12, 14)); \
        EK_ST((odd) + ow_, __builtin_shufflevector(v_, v_, 1, 3, 5, 7, 9, 11, 13, 15)); \
    } \
    for (; ow_ + 4 <= (OW); ow_ += 4) { \
        ek_f8 v_ = EK_LD(ek_f8, (r) + 2 * ow_); \
        EK_ST((even) + ow_, __builtin_shufflevector(v_, v_, 0, 2, 4, 6)); \
        EK_ST((odd) + ow_, __builtin_shufflevector(v_, v_, 1, 3, 5, 7)); \
    } \
    for (; ow_ < (OW); ow_++) { (even)[ow_] = (r)[2 * ow_]; (odd)[ow_] = (r)[2 * ow_ + 1]; } \
} while (0)

/* The adjoint: r[2·ow] += even[ow], r[2·ow + 1] += odd[ow]. */
#define EK_PAIR_SCATTER(r, even, odd, OW) do { \
    size_t ow_ = 0; \
    for (; ow_ + 8 <= (OW); ow_ += 8) { \
        ek_f8 a_ = EK_LD(ek_f8, (even) + ow_), b_ = EK_LD(ek_f8, (odd) + ow_); \
        ek_f16 v_ = __builtin_shufflevector(a_, b_, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15); \
        EK_ST((r) + 2 * ow_, EK_LD(ek_f16, (r) + 2 * ow_) + v_); \
    } \
    for (; ow_ + 4 <= (OW); ow_ += 4) { \
        ek_f4 a_ = EK_LD(ek_f4, (even) + ow_), b_ = EK_LD(ek_f4, (odd) + ow_); \
        ek_f8 v_ = __builtin_shufflevector(a_, b_, 0, 4, 1, 5, 2, 6, 3, 7); \
        EK_ST((r) + 2 * ow_, EK_LD(ek_f8, (r) + 2 * ow_) + v_); \
    } \
    for (; ow_ < (OW); ow_++) { (r)[2 * ow_] += (even)[ow_]; (r)[2 * ow_ + 1] += (odd)[ow_]; } \
} while (0)

static _Thread_local float *ek_plane;
static _Thread_local size_t ek_plane_cap;

static float *ek_plane_buffer(size_t n) {
    if (ek_plane_cap < n) {
        free(ek_plane);
        ek_plane = malloc(n * sizeof(float));
        ek_plane_cap = ek_plane ? n : 0;
    }
    return ek_plane;
}

/* d[oh·OW + ow] = src[oh·rowStep + ow·S] */
#define EK_GATHER(S, OWC) \
    for (size_t oh = 0; oh < OH; oh++) { \
        const float *r = src + oh * rowStep; float *o = d + oh * (OWC); \
        for (size_t ow = 0; ow < (OWC); ow++) o[ow] = r[ow * (S)]; }
#define EK_SCATTER(S, OWC) \
    for (size_t oh = 0; oh < OH; oh++) { \
        float *r = dst + oh * rowStep; const float *o = c + oh * (OWC); \
        for (size_t ow = 0; ow < (OWC); ow++) r[ow * (S)] += o[ow]; }
#define EK_BY_WIDTH(MACRO, S) \
    switch (OW) { case 4: MACRO(S, 4) break; case 8: MACRO(S, 8) break; case 16: MACRO(S, 16) break; \
                  case 32: MACRO(S, 32) break; default: MACRO(S, OW) }

/* always inlined, so that each clone of the callers compiles them for its own ISA */
static inline __attribute__((always_inline)) void ek_gather_block(const float *src, float *d, size_t OH, size_t OW, size_t rowStep, size_t s) {
    if (s == 1) { EK_BY_WIDTH(EK_GATHER, 1) }
    else if (s == 2) { EK_BY_WIDTH(EK_GATHER, 2) }
    else { EK_GATHER(s, OW) }
}

static inline __attribute__((always_inline)) void ek_scatter_block(const float *c, float *dst, size_t OH, size_t OW, size_t rowStep, size_t s) {
    if (s == 1) { EK_BY_WIDTH(EK_SCATTER, 1) }
    else if (s == 2) { EK_BY_WIDTH(EK_SCATTER, 2) }
    else { EK_SCATTER(s, OW) }
}

EK_COPY_CLONES
void ek_im2col_f32(const float *x, size_t C, size_t H, size_t W, size_t KH, size_t KW, size_t stride,
                   size_t pad, float *col, size_t ld) {
    size_t PH = H + 2 * pad, PW = W + 2 * pad;
    size_t OH = (PH - KH) / stride + 1, OW = (PW - KW) / stride + 1;
    float *P = ek_plane_buffer(PH * PW);
    if (!P) abort();
    memset(P, 0, PH * PW * sizeof(float));
    int pairs = stride == 2 && KW % 2 == 0;
    size_t row = 0;
    for (size_t c = 0; c < C; c++) {
        for (size_t h = 0; h < H; h++) memcpy(P + (h + pad) * PW + pad, x + (c * H + h) * W, W * sizeof(float));
        for (size_t kh = 0; kh < KH; kh++) {
            if (pairs) {
                for (size_t kw = 0; kw < KW; kw += 2, row += 2) {
                    float *even = col + row * ld, *odd = even + ld;
                    for (size_t oh = 0; oh < OH; oh++) {
                        const float *r = P + (2 * oh + kh) * PW + kw;
                        EK_PAIR_GATHER(r, even + oh * OW, odd + oh * OW, OW);
                    }
                }
                continue;
            }
            for (size_t kw = 0; kw < KW; kw++, row++)
                ek_gather_block(P + kh * PW + kw, col + row * ld, OH, OW, stride * PW, stride);
        }
    }
}

/* col2im for 4 × 4 kernels, stride 2, padding 1 (every DCGAN layer) as a gather: each
   pixel of x receives the col values of the four (kh, kw) that reach it, summed in
   ascending (kh, kw) order from +0 (a missing term at the border is simply not there; the
   running sum is never −0, so this is the scatter's arithmetic exactly), and x is read and
   written once instead of once per (kh, kw) pair. Padded row ph = ih + 1 takes kh ≡ ph
   (mod 2) at oh = (ph − kh)/2; even columns iw = 2t take kw = 1 (ow = t) then kw = 3
   (ow = t − 1), odd columns 2t + 1 take kw = 0 (ow = t + 1) then kw = 2 (ow = t). */
#define EK_K4S2_BLOCK(V, VEC, WIDE, SHL, SHR, INTERLEAVE) do { \
    for (size_t t0 = 0; t0 < OW; t0 += (V)) { \
        VEC ev = {0}, od = {0}, z = {0}; \
        for (int q = 0; q < nk; q++) { \
            const float *r0 = rows[q][0] + t0, *r1 = rows[q][1] + t0, *r2 = rows[q][2] + t0, *r3 = rows[q][3] + t0; \
            VEC k1 = EK_LD(VEC, r1); \
            VEC k3 = t0 > 0 ? EK_LD(VEC, r3 - 1) : SHR(EK_LD(VEC, r3), z); \
            VEC k0 = t0 + (V) < OW ? EK_LD(VEC, r0 + 1) : SHL(EK_LD(VEC, r0), z); \
            VEC k2 = EK_LD(VEC, r2); \
            ev = ev + k1; ev = ev + k3; \
            od = od + k0; od = od + k2; \
        } \
        WIDE w_ = INTERLEAVE(ev, od); \
        EK_ST(xr + 2 * t0, EK_LD(WIDE, xr + 2 * t0) + w_); \
    } \
} while (0)
/* lanes shifted by one, a zero entering: right (v[t − 1]) and left (v[t + 1]) */
#define EK_SHR4(v, z) __builtin_shufflevector(v, z, 4, 0, 1, 2)
#define EK_SHL4(v, z) __builtin_shufflevector(v, z, 1, 2, 3, 4)
#define EK_IL4(a, b) __builtin_shufflevector(a, b, 0, 4, 1, 5, 2, 6, 3, 7)
#define EK_SHR8(v, z) __builtin_shufflevector(v, z, 8, 0, 1, 2, 3, 4, 5, 6)
#define EK_SHL8(v, z) __builtin_shufflevector(v, z, 1, 2, 3, 4, 5, 6, 7, 8)
#define EK_IL8(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15)

static inline __attribute__((always_inline)) void ek_col2im_k4s2p1(const float *col, size_t C, size_t H, size_t W,
                                                                 float *x, size_t ld) {
    size_t OH = H / 2, OW = W / 2;
    for (size_t c = 0; c < C; c++) {
        for (size_t ih = 0; ih < H; ih++) {
            size_t ph = ih + 1;
            const float *rows[2][4];
            int nk = 0;
            for (size_t kh = ph % 2; kh < 4; kh += 2) {
                if (ph < kh) continue;
                size_t oh = (ph - kh) / 2;
                if (oh >= OH) continue;
                for (int kw = 0; kw < 4; kw++) rows[nk][kw] = col + ((c * 4 + kh) * 4 + kw) * ld + oh * OW;
                nk++;
            }
            float *xr = x + (c * H + ih) * W;
            if (OW % 8 == 0) EK_K4S2_BLOCK(8, ek_f8, ek_f16, EK_SHL8, EK_SHR8, EK_IL8);
            else EK_K4S2_BLOCK(4, ek_f4, ek_f8, EK_SHL4, EK_SHR4, EK_IL4);
        }
    }
}

EK_COPY_CLONES
void ek_col2im_f32(const float *col, size_t C, size_t H, size_t W, size_t KH, size_t KW, size_t stride,
                   size_t pad, float *x, size_t ld) {
    if (stride == 2 && KH == 4 && KW == 4 && pad == 1 && H % 2 == 0 && W % 8 == 0) {
        ek_col2im_k4s2p1(col, C, H, W, x, ld);
        return;
    }
    size_t PH = H + 2 * pad, PW = W + 2 * pad;
    size_t OH = (PH - KH) / stride + 1, OW = (PW - KW) / stride + 1;
    float *P = ek_plane_buffer(PH * PW);
    if (!P) abort();
    int pairs = stride == 2 && KW % 2 == 0;
    size_t row = 0;
    for (size_t c = 0; c < C; c++) {
        memset(P, 0, PH * PW * sizeof(float));
        for (size_t kh = 0; kh < KH; kh++) {
            if (pairs) {
                /* kw and kw + 1 feed different plane columns, so each value still receives
                   its adds in (kh, kw) order */
                for (size_t kw = 0; kw < KW; kw += 2, row += 2) {
                    const float *even = col + row * ld, *odd = even + ld;
                    for (size_t oh = 0; oh < OH; oh++) {
                        float *r = P + (2 * oh + kh) * PW + kw;
                        EK_PAIR_SCATTER(r, even + oh * OW, odd + oh * OW, OW);
                    }
                }
                continue;
            }
            for (size_t kw = 0; kw < KW; kw++, row++)
                ek_scatter_block(col + row * ld, P + kh * PW + kw, OH, OW, stride * PW, stride);
        }
        for (size_t h = 0; h < H; h++) {
            float *xr = x + (c * H + h) * W;
            const float *pr = P + (h + pad) * PW + pad;
            for (size_t w = 0; w < W; w++) xr[w] += pr[w];
        }
    }
}
