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

EK_CONV_CLONES
void ek_conv3x3_image(const float *in, size_t C, size_t H, size_t W, const float *wt, size_t O,
                      const float *bias, float *out, float *pad) {
    ek_pad_planes(in, C, H, W, pad);
    size_t PW = W + 2, plane = (H + 2) * PW;
    for (size_t o = 0; o < O; o++) {
        const float *wo = wt + o * C * 9;
        float b = bias ? bias[o] : 0;
        for (size_t h = 0; h < H; h++) {
            for (size_t w0 = 0; w0 < W; w0 += 16) {
                ek_v16 acc = EK_SPLAT16(b);
                for (size_t c = 0; c < C; c++) {
                    const float *base = pad + c * plane + h * PW + w0;
                    const float *wc = wo + c * 9;
                    for (size_t kh = 0; kh < 3; kh++)
                        for (size_t kw = 0; kw < 3; kw++)
                            acc = __builtin_elementwise_fma(EK_SPLAT16(wc[kh * 3 + kw]), EK_LOAD16(base + kh * PW + kw), acc);
                }
                EK_STORE16(out + (o * H + h) * W + w0, acc);
            }
        }
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
