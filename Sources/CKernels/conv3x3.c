/* Direct 3×3, stride-1, padding-1 convolutions of one image, for layers with few channels
   on one side (an RGB input or output: 3 → C, C → 3). There im2col + GEMM is mostly memory
   traffic: the im2col matrix is 9× the image and the product has an inner or outer
   dimension of 3. Here each output row is a sum of shifted input rows held in registers.

   Summation order is written out (explicit 16-lane vectors and fused multiply-adds), so the
   result is the same bits on every ISA the compiler targets and for any batch size. */
#include "ckernels.h"
#include <string.h>

#pragma STDC FP_CONTRACT OFF

typedef float ek_v16 __attribute__((vector_size(64)));

/* macros, not functions: a 64-byte vector may not cross a call in the generic clone's ABI */
#define EK_LOAD16(p) ({ ek_v16 ek_v_; memcpy(&ek_v_, (p), sizeof ek_v_); ek_v_; })
#define EK_STORE16(p, v) do { ek_v16 ek_w_ = (v); memcpy((p), &ek_w_, sizeof ek_w_); } while (0)
#define EK_SPLAT16(x) ((ek_v16){0} + (float)(x))

#if defined(__x86_64__) && defined(__clang__)
#define EK_CONV_CLONES __attribute__((target_clones("avx512f", "fma", "default")))
#else
#define EK_CONV_CLONES
#endif

/* pad[c][1 + h][1 + w] = in[c][h][w], zero border: C × (H+2) × (W+2). */
static void ek_pad_planes(const float *in, size_t C, size_t H, size_t W, float *pad) {
    size_t PW = W + 2;
    memset(pad, 0, C * (H + 2) * PW * sizeof(float));
    for (size_t c = 0; c < C; c++)
        for (size_t h = 0; h < H; h++) memcpy(pad + (c * (H + 2) + h + 1) * PW + 1, in + (c * H + h) * W, W * sizeof(float));
}

size_t ek_conv3x3_scratch(size_t C, size_t H, size_t W) { return C * (H + 2) * (W + 2); }

/* Output channels o0 .. o0+OB−1, row h, columns w0 .. w0+16·NW−1: OB·NW independent chains
   (one accumulator per output vector, which alone would wait on the FMA latency), each in
   the order c ascending, then kh, kw. The input vectors are loaded once for all OB channels. */
static inline __attribute__((always_inline)) void ek_conv3x3_block(const float *pad, size_t C, size_t PW, size_t plane,
        const float *wt, size_t o0, int OB, int NW, const float *bias, float *out, size_t H, size_t W, size_t h, size_t w0) {
    ek_v16 acc[4][2];
    for (int q = 0; q < OB; q++) for (int v = 0; v < NW; v++) acc[q][v] = EK_SPLAT16(bias ? bias[o0 + q] : 0);
    for (size_t c = 0; c < C; c++) {
        const float *base = pad + c * plane + h * PW + w0;
        for (size_t kh = 0; kh < 3; kh++)
            for (size_t kw = 0; kw < 3; kw++) {
                ek_v16 xv[2];
                for (int v = 0; v < NW; v++) xv[v] = EK_LOAD16(base + kh * PW + kw + 16 * v);
                for (int q = 0; q < OB; q++) {
                    ek_v16 wv = EK_SPLAT16(wt[((o0 + q) * C + c) * 9 + kh * 3 + kw]);
                    for (int v = 0; v < NW; v++) acc[q][v] = __builtin_elementwise_fma(wv, xv[v], acc[q][v]);
                }
            }
    }
    for (int q = 0; q < OB; q++) for (int v = 0; v < NW; v++) EK_STORE16(out + ((o0 + q) * H + h) * W + w0 + 16 * v, acc[q][v]);
}

#define EK_CONV3X3_ROWS(OB) do { \
    for (size_t h = 0; h < H; h++) { \
        size_t w0 = 0; \
        for (; w0 + 32 <= W; w0 += 32) ek_conv3x3_block(pad, C, PW, plane, wt, o0, OB, 2, bias, out, H, W, h, w0); \
        if (w0 < W) ek_conv3x3_block(pad, C, PW, plane, wt, o0, OB, 1, bias, out, H, W, h, w0); \
    } \
} while (0)

EK_CONV_CLONES
void ek_conv3x3_image(const float *in, size_t C, size_t H, size_t W, const float *wt, size_t O,
                      const float *bias, float *out, float *pad) {
    ek_pad_planes(in, C, H, W, pad);
    size_t PW = W + 2, plane = (H + 2) * PW;
    size_t o0 = 0;
    for (; o0 + 4 <= O; o0 += 4) EK_CONV3X3_ROWS(4);
    switch (O - o0) {
    case 3: EK_CONV3X3_ROWS(3); break;
    case 2: EK_CONV3X3_ROWS(2); break;
    case 1: EK_CONV3X3_ROWS(1); break;
    default: break;
    }
}

EK_CONV_CLONES
void ek_conv3x3_weight_grad(const float *in, size_t C, size_t H, size_t W, const float *gy, size_t O,
                            float *dw, float *pad) {
    ek_pad_planes(in, C, H, W, pad);
    size_t PW = W + 2, plane = (H + 2) * PW;
    for (size_t o = 0; o < O; o++) {
        for (size_t c = 0; c < C; c++) {
            ek_v16 acc[9];
            for (int k = 0; k < 9; k++) acc[k] = EK_SPLAT16(0);
            for (size_t h = 0; h < H; h++) {
                const float *g = gy + (o * H + h) * W;
                const float *x = pad + c * plane + h * PW;
                for (size_t w0 = 0; w0 < W; w0 += 16) {
                    ek_v16 gv = EK_LOAD16(g + w0);
                    for (size_t kh = 0; kh < 3; kh++)
                        for (size_t kw = 0; kw < 3; kw++)
                            acc[kh * 3 + kw] = __builtin_elementwise_fma(gv, EK_LOAD16(x + kh * PW + w0 + kw), acc[kh * 3 + kw]);
                }
            }
            float *d = dw + (o * C + c) * 9;
            for (int k = 0; k < 9; k++) {
                /* lanes summed pairwise in a fixed tree */
                float l[16];
                EK_STORE16(l, acc[k]);
                for (int s = 8; s >= 1; s /= 2) for (int i = 0; i < s; i++) l[i] = l[i] + l[i + s];
                d[k] = d[k] + l[0];
            }
        }
    }
}
