/* Direct 3×3, stride-1, padding-1 convolutions for any channel counts (the U-Net's convs):
   no im2col matrix and no GEMM packing of the image. The image is copied once into
   zero-bordered planes; a register tile of MR output channels × NV vectors of 16 windows
   reads its inputs straight from those planes (the nine taps are nine shifted loads) and
   its weights from a panel packed once per call ([O/MR][C·9][MR], zero rows past O).

   Why: im2col + GEMM writes a 9× copy of the image, then packs it again; with 32–128 output
   channels each packed value feeds only 32–128 multiply-adds, so at these shapes the copies
   cost as much as the arithmetic. Here every input value is loaded from L1 per use.

   One summation order, by construction, for every tile and ISA:
     forward  out[o, j] = s_0 + s_1 + … (then + bias[o]), s_b the fma chain from +0 over
              (c, kh, kw) for the 32 input channels of block b, in order;
     weights  dw[o, c, k] = dw[o, c, k] + tree(lanes), each of the 16 lanes summing its
              windows (j ≡ lane mod 16, images in order, then windows ascending) by fma
              from +0, the lanes added pairwise (8, 4, 2, 1);
   so the AVX-512, AVX2 and portable builds give the same bits (tested), and an image's
   output never depends on its batch. The input gradient is the forward applied to dY with
   the weights transposed and flipped (packed that way by ek_conv3x3d_pack). */
#include "ckernels.h"
#include <string.h>

#pragma STDC FP_CONTRACT OFF

typedef float ek_d16 __attribute__((vector_size(64)));
typedef float ek_d8 __attribute__((vector_size(32)));

#define D_LOAD16(p) ({ ek_d16 d_v_; memcpy(&d_v_, (p), sizeof d_v_); d_v_; })
#define D_LOAD8(p) ({ ek_d8 d_h_; memcpy(&d_h_, (p), sizeof d_h_); d_h_; })
#define D_STORE16(p, v) do { ek_d16 d_w_ = (v); memcpy((p), &d_w_, sizeof d_w_); } while (0)
#define D_SPLAT16(x) ((ek_d16){0} + (float)(x))
/* 16 windows starting at a padded-plane offset: one row (W ≥ 16) or two rows of 8 (W = 8) */
#define D_WINDOWS(p, half, PW) ((half) ? __builtin_shufflevector(D_LOAD8(p), D_LOAD8((p) + (PW)), \
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) : D_LOAD16(p))

#define EK_CD_MAXMR 8
#define EK_CD_MAXNV 2
#define EK_CD_MAXMO 3

static int ek_cd_mr(int isa) { return isa == EK_ISA_AVX512 ? 8 : 4; }

int ek_conv3x3d_applies(size_t H, size_t W) { return (W % 16 == 0 && W > 0) || (W == 8 && H % 2 == 0 && H > 0); }

size_t ek_conv3x3d_pad_floats(size_t C, size_t H, size_t W) { return C * (H + 2) * (W + 2); }

size_t ek_conv3x3d_packed_floats(int isa, size_t O, size_t C) {
    size_t mr = (size_t)ek_cd_mr(isa);
    return (O + mr - 1) / mr * mr * C * 9;
}

void ek_conv3x3d_pack(int isa, const float *wt, size_t O, size_t C, int flipped, float *packed) {
    size_t mr = (size_t)ek_cd_mr(isa), K = C * 9;
    for (size_t ob = 0; ob < (O + mr - 1) / mr; ob++)
        for (size_t p = 0; p < K; p++) {
            size_t c = p / 9, k = p % 9;
            for (size_t r = 0; r < mr; r++) {
                size_t o = ob * mr + r;
                float v = 0;
                if (o < O) v = flipped ? wt[(c * O + o) * 9 + 8 - k] : wt[(o * C + c) * 9 + k];
                packed[(ob * K + p) * mr + r] = v;
            }
        }
}

/* pad[c][1 + h][1 + w] = in[c][h][w], zero border. */
static void ek_cd_pad(const float *in, size_t C, size_t H, size_t W, float *pad) {
    size_t PW = W + 2;
    memset(pad, 0, C * (H + 2) * PW * sizeof(float));
    for (size_t c = 0; c < C; c++)
        for (size_t h = 0; h < H; h++) memcpy(pad + (c * (H + 2) + h + 1) * PW + 1, in + (c * H + h) * W, W * sizeof(float));
}

/* Output channels o0 .. o0+rows−1 (rows ≤ MR) at windows j0 .. j0+16·NV−1, input channels
   c0 .. c1−1 (one channel block): s = fma chain from +0 over (c, kh, kw); first block: y = s,
   later ones: y = y + s; after the last, y = y + bias. wp points at the block's weights. */
static inline __attribute__((always_inline)) void ek_cd_tile(const float *pad, size_t c0, size_t c1, size_t PW, size_t plane,
        const float *wp, const float *bias, size_t o0, int rows, int MR, int NV, int half, size_t W, size_t j0,
        float *out, size_t HW, int first, int last) {
    ek_d16 acc[EK_CD_MAXMR][EK_CD_MAXNV];
    size_t poff[EK_CD_MAXNV];
    for (int v = 0; v < NV; v++) { size_t j = j0 + 16 * (size_t)v; poff[v] = (j / W) * PW + j % W; }
    for (int r = 0; r < MR; r++) for (int v = 0; v < NV; v++) acc[r][v] = D_SPLAT16(0);
    for (size_t c = c0; c < c1; c++) {
        const float *base = pad + c * plane;
#pragma clang loop unroll(full)
        for (int k = 0; k < 9; k++) {
            size_t shift = (size_t)(k / 3) * PW + (size_t)(k % 3);
            ek_d16 xv[EK_CD_MAXNV];
            for (int v = 0; v < NV; v++) xv[v] = D_WINDOWS(base + poff[v] + shift, half, PW);
            for (int r = 0; r < MR; r++) {
                ek_d16 wv = D_SPLAT16(wp[r]);
                for (int v = 0; v < NV; v++) acc[r][v] = __builtin_elementwise_fma(wv, xv[v], acc[r][v]);
            }
            wp += MR;
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < NV; v++) {
            float *y = out + (o0 + r) * HW + j0 + 16 * (size_t)v;
            ek_d16 t = acc[r][v];
            if (!first) t = D_LOAD16(y) + t;
            if (last && bias) t = t + D_SPLAT16(bias[o0 + r]);
            D_STORE16(y, t);
        }
}

/* Input channels per block: the summation order's k-block (288 products of a 3×3 kernel),
   and what keeps a block's input rows in L1 while every output block reads them. */
#define EK_CD_CB 32

/* The image already padded into `pad` (ek_conv3x3d_image does it once). */
static inline __attribute__((always_inline)) void ek_cd_image_body(size_t C, size_t H, size_t W,
        const float *packed, size_t O, const float *bias, float *out, float *pad, int MR, int NV, int half) {
    size_t PW = W + 2, plane = (H + 2) * PW, HW = H * W, K = C * 9;
    size_t blocks = (O + (size_t)MR - 1) / (size_t)MR;
    for (size_t c0 = 0; c0 < C; c0 += EK_CD_CB) {
        size_t c1 = C - c0 < EK_CD_CB ? C : c0 + EK_CD_CB;
        int first = c0 == 0, last = c1 == C;
        size_t j0 = 0;
        for (; j0 + 16 * (size_t)NV <= HW; j0 += 16 * (size_t)NV)
            for (size_t ob = 0; ob < blocks; ob++) {
                size_t o0 = ob * (size_t)MR;
                int rows = (int)(O - o0 < (size_t)MR ? O - o0 : (size_t)MR);
                ek_cd_tile(pad, c0, c1, PW, plane, packed + (ob * K + c0 * 9) * (size_t)MR, bias, o0, rows, MR, NV, half, W, j0,
                           out, HW, first, last);
            }
        for (; j0 < HW; j0 += 16)
            for (size_t ob = 0; ob < blocks; ob++) {
                size_t o0 = ob * (size_t)MR;
                int rows = (int)(O - o0 < (size_t)MR ? O - o0 : (size_t)MR);
                ek_cd_tile(pad, c0, c1, PW, plane, packed + (ob * K + c0 * 9) * (size_t)MR, bias, o0, rows, MR, 1, half, W, j0,
                           out, HW, first, last);
            }
    }
}

/* Σ over the windows of `count` images for output channels o0 .. o0+MO−1 and input channel
   c, all nine taps; added to dw after the lane tree. */
static inline __attribute__((always_inline)) void ek_cd_wgrad_body(const float *pad, size_t count, size_t C, size_t H, size_t W,
        const float *gy, size_t O, size_t oBegin, size_t oEnd, float *dw, int MO, int half) {
    size_t PW = W + 2, plane = (H + 2) * PW, HW = H * W;
    for (size_t o0 = oBegin; o0 < oEnd; o0 += (size_t)MO) {
        int mo = (int)(oEnd - o0 < (size_t)MO ? oEnd - o0 : (size_t)MO);
        for (size_t c = 0; c < C; c++) {
            ek_d16 acc[EK_CD_MAXMO][9];
            for (int m = 0; m < MO; m++) for (int k = 0; k < 9; k++) acc[m][k] = D_SPLAT16(0);
            for (size_t i = 0; i < count; i++) {
                const float *x = pad + (i * C + c) * plane;
                const float *g = gy + (i * O + o0) * HW;
                for (size_t j = 0; j < HW; j += 16) {
                    const float *xb = x + (j / W) * PW + j % W;
                    ek_d16 gv[EK_CD_MAXMO];
                    for (int m = 0; m < MO; m++) gv[m] = D_LOAD16(g + (size_t)(m < mo ? m : 0) * HW + j);
#pragma clang loop unroll(full)
                    for (int k = 0; k < 9; k++) {
                        ek_d16 xv = D_WINDOWS(xb + (size_t)(k / 3) * PW + (size_t)(k % 3), half, PW);
                        for (int m = 0; m < MO; m++) acc[m][k] = __builtin_elementwise_fma(gv[m], xv, acc[m][k]);
                    }
                }
            }
            for (int m = 0; m < mo; m++) {
                float *d = dw + ((o0 + (size_t)m) * C + c) * 9;
                for (int k = 0; k < 9; k++) {
                    float l[16];
                    D_STORE16(l, acc[m][k]);
                    for (int s = 8; s >= 1; s /= 2) for (int q = 0; q < s; q++) l[q] = l[q] + l[q + s];
                    d[k] = d[k] + l[0];
                }
            }
        }
    }
}

/* One image kernel and one weight-gradient kernel per ISA: the tile (MR × NV for the image,
   MO output channels for the gradient) and the target features are all that differ; W = 8
   (two rows per vector) is its own specialisation. */
#define EK_CD_CLONE(SUFFIX, TARGET, MR, NV, MO) \
    TARGET static void ek_cd_image_##SUFFIX(size_t C, size_t H, size_t W, const float *packed, \
                                            size_t O, const float *bias, float *out, float *pad) { \
        if (W == 8) ek_cd_image_body(C, H, W, packed, O, bias, out, pad, MR, NV, 1); \
        else ek_cd_image_body(C, H, W, packed, O, bias, out, pad, MR, NV, 0); \
    } \
    TARGET static void ek_cd_wgrad_##SUFFIX(const float *pad, size_t count, size_t C, size_t H, size_t W, const float *gy, \
                                            size_t O, size_t ob, size_t oe, float *dw) { \
        if (W == 8) ek_cd_wgrad_body(pad, count, C, H, W, gy, O, ob, oe, dw, MO, 1); \
        else ek_cd_wgrad_body(pad, count, C, H, W, gy, O, ob, oe, dw, MO, 0); \
    }

EK_CD_CLONE(portable, , 4, 1, 1)
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
EK_CD_CLONE(avx2, __attribute__((target("avx2,fma"))), 4, 1, 1)
EK_CD_CLONE(avx512, __attribute__((target("avx512f,avx512vl,avx2,fma"))), 8, 2, 3)
#endif

int ek_conv3x3d_image(int isa, const float *in, size_t C, size_t H, size_t W, const float *packed, size_t O,
                      const float *bias, float *out, float *pad) {
    if (!ek_sgemm_isa_available(isa)) return -2;
    if (!ek_conv3x3d_applies(H, W)) return -3;
    ek_cd_pad(in, C, H, W, pad);
    switch (isa) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    case EK_ISA_AVX512: ek_cd_image_avx512(C, H, W, packed, O, bias, out, pad); return 0;
    case EK_ISA_AVX2: ek_cd_image_avx2(C, H, W, packed, O, bias, out, pad); return 0;
#endif
    default: ek_cd_image_portable(C, H, W, packed, O, bias, out, pad); return 0;
    }
}

void ek_conv3x3d_pad(const float *in, size_t C, size_t H, size_t W, float *pad) { ek_cd_pad(in, C, H, W, pad); }

int ek_conv3x3d_weight_grad(int isa, const float *padded, size_t count, size_t C, size_t H, size_t W,
                            const float *gy, size_t O, size_t o0, size_t o1, float *dw) {
    if (!ek_sgemm_isa_available(isa)) return -2;
    if (!ek_conv3x3d_applies(H, W) || o0 > o1 || o1 > O) return -3;
    switch (isa) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    case EK_ISA_AVX512: ek_cd_wgrad_avx512(padded, count, C, H, W, gy, O, o0, o1, dw); return 0;
    case EK_ISA_AVX2: ek_cd_wgrad_avx2(padded, count, C, H, W, gy, O, o0, o1, dw); return 0;
#endif
    default: ek_cd_wgrad_portable(padded, count, C, H, W, gy, O, o0, o1, dw); return 0;
    }
}
