/* Winograd F(2×2, 3×3) for 3×3 stride-1 padding-1 convolutions (Lavin & Gray, "Fast
   Algorithms for Convolutional Neural Networks", 2016): each 2×2 block of outputs comes
   from a 4×4 input patch d and the 3×3 filter g as Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, 16
   multiplications instead of 36. Over channels the products become 16 independent GEMMs,
   M[ξ] (O × T) = U[ξ] (O × C) · V[ξ] (C × T) for the T = (H/2)(W/2) tiles of one image, so
   2.25× fewer multiply-adds than the direct convolution, at the price of the transforms
   (additions only) and a rounding error a few times larger (bounded in the tests).

       Bᵀ = | 1  0 −1  0 |     G = | 1    0    0  |     Aᵀ = | 1  1  1  0 |
            | 0  1  1  0 |         | ½    ½    ½  |          | 0  1 −1 −1 |
            | 0 −1  1  0 |         | ½   −½    ½  |
            | 0  1  0 −1 |         | 0    0    1  |

   One image per call, so an image's output never depends on its batch. The transforms
   are additions in a fixed order (the same bits whatever the vector width), the GEMMs are
   ek_sgemm's (one summation order on every ISA), and U is computed in double and rounded
   once: the result is identical on every ISA. H and W must be even. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "ckernels.h"

#if defined(__x86_64__) && defined(__clang__)
#define EK_W_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EK_W_CLONES
#endif

#pragma STDC FP_CONTRACT OFF

int ek_wino2_applies(size_t H, size_t W) { return H >= 2 && W >= 2 && H % 2 == 0 && W % 2 == 0; }

size_t ek_wino2_weight_floats(size_t O, size_t C) { return 16 * O * C; }

/* V and M for `images` images, plus the padded, de-interleaved rows of one channel (even
   and odd columns of H + 2 padded rows, W/2 + 1 each) and their column transforms. */
size_t ek_wino2_scratch_floats(size_t images, size_t C, size_t O, size_t H, size_t W) {
    const size_t T = images * (H / 2) * (W / 2), h = W / 2 + 1;
    return 16 * C * T + 16 * O * T + 2 * (H + 2) * h + 4 * (H + 2) * (W / 2);
}

void ek_wino2_weights(const float *w, size_t O, size_t C, int flipped, float *u) {
    /* flipped: the input-gradient map, w'[c][o][8 − k] = w[o][c][k], with O and C swapped
       by the caller (O here = the forward's input channels) */
    for (size_t o = 0; o < O; o++)
        for (size_t c = 0; c < C; c++) {
            double g[9];
            for (int k = 0; k < 9; k++) g[k] = flipped ? w[(c * O + o) * 9 + 8 - k] : w[(o * C + c) * 9 + k];
            double t[4][3];   /* G g */
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5 * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5 * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {   /* (G g) Gᵀ */
                const double r[4] = {t[i][0], 0.5 * (t[i][0] + t[i][1] + t[i][2]), 0.5 * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
                for (int j = 0; j < 4; j++) u[((size_t)(i * 4 + j) * O + o) * C + c] = (float)r[j];
            }
        }
}

/* V[ξ][c][t] for every channel of one image (V's rows are T long: the tiles of every image
   of the call; v points at this image's first tile): the padded rows of channel c are split into even and odd
   columns, transformed along the columns (four rows per padded row), then along the rows. */
EK_W_CLONES static void ek_wino2_input(const float *x, size_t C, size_t H, size_t W, float *v, size_t T, float *rows) {
    const size_t hw = W / 2, h = hw + 1, P = H + 2;
    float *ev = rows, *od = ev + P * h, *col = od + P * h;   /* col: [P][4][hw] */
    for (size_t c = 0; c < C; c++) {
        const float *xc = x + c * H * W;
        for (size_t p = 0; p < P; p++) {
            float *e = ev + p * h, *o = od + p * h;
            if (p == 0 || p == P - 1) { memset(e, 0, h * sizeof *e); memset(o, 0, h * sizeof *o); continue; }
            const float *r = xc + (p - 1) * W;
            /* padded column j holds x[j − 1]: even j = 2i → x[2i − 1], odd j = 2i + 1 → x[2i] */
            e[0] = 0;
            for (size_t i = 1; i < h; i++) e[i] = r[2 * i - 1];
            for (size_t i = 0; i < hw; i++) o[i] = r[2 * i];
            o[hw] = 0;
        }
        for (size_t p = 0; p < P; p++) {
            const float *e = ev + p * h, *o = od + p * h;
            float *c0 = col + p * 4 * hw, *c1 = c0 + hw, *c2 = c1 + hw, *c3 = c2 + hw;
            /* a0..a3 = padded columns 2t … 2t + 3 = e[t], o[t], e[t + 1], o[t + 1] */
            for (size_t t = 0; t < hw; t++) {
                c0[t] = e[t] - e[t + 1];
                c1[t] = o[t] + e[t + 1];
                c2[t] = e[t + 1] - o[t];
                c3[t] = o[t] - o[t + 1];
            }
        }
        for (size_t ty = 0; ty < H / 2; ty++) {
            const float *r0 = col + (2 * ty) * 4 * hw, *r1 = r0 + 4 * hw, *r2 = r1 + 4 * hw, *r3 = r2 + 4 * hw;
            for (size_t k = 0; k < 4; k++) {
                const float *a = r0 + k * hw, *b = r1 + k * hw, *d = r2 + k * hw, *f = r3 + k * hw;
                float *v0 = v + ((0 + k) * C + c) * T + ty * hw, *v1 = v + ((4 + k) * C + c) * T + ty * hw;
                float *v2 = v + ((8 + k) * C + c) * T + ty * hw, *v3 = v + ((12 + k) * C + c) * T + ty * hw;
                for (size_t t = 0; t < hw; t++) {
                    v0[t] = a[t] - d[t];
                    v1[t] = b[t] + d[t];
                    v2[t] = d[t] - b[t];
                    v3[t] = b[t] - f[t];
                }
            }
        }
    }
}

/* y[o] = Aᵀ M A (+ bias) for every output channel of one image; M[ξ] is [T][O] (tiles of
   every image of the call as rows), m points at this image's first tile. */
EK_W_CLONES static void ek_wino2_output(const float *m, size_t T, size_t O, size_t H, size_t W, const float *bias, float *y) {
    const size_t hw = W / 2;
    for (size_t ty = 0; ty < H / 2; ty++)
        for (size_t tx = 0; tx < hw; tx++) {
            const float *mm[16];
            for (int xi = 0; xi < 16; xi++) mm[xi] = m + ((size_t)xi * T + ty * hw + tx) * O;
            float *y0 = y + 2 * ty * W + 2 * tx;
            for (size_t o = 0; o < O; o++) {
                /* rows of Aᵀ M: s0 = m0 + m1 + m2, s1 = m1 − m2 − m3 (per column j) */
                float s0[4], s1[4];
                for (int j = 0; j < 4; j++) {
                    s0[j] = (mm[j][o] + mm[4 + j][o]) + mm[8 + j][o];
                    s1[j] = (mm[4 + j][o] - mm[8 + j][o]) - mm[12 + j][o];
                }
                float q00 = (s0[0] + s0[1]) + s0[2], q01 = (s0[1] - s0[2]) - s0[3];
                float q10 = (s1[0] + s1[1]) + s1[2], q11 = (s1[1] - s1[2]) - s1[3];
                if (bias) { q00 += bias[o]; q01 += bias[o]; q10 += bias[o]; q11 += bias[o]; }
                float *yo = y0 + o * H * W;
                yo[0] = q00; yo[1] = q01; yo[W] = q10; yo[W + 1] = q11;
            }
        }
}

int ek_wino2_images(int isa, const float *x, size_t images, size_t C, size_t H, size_t W, const float *u, size_t O,
                    const float *bias, float *y, float *scratch) {
    if (!ek_wino2_applies(H, W)) return -3;
    const size_t T1 = (H / 2) * (W / 2), T = images * T1;
    float *v = scratch, *m = v + 16 * C * T, *rows = m + 16 * O * T;
    for (size_t i = 0; i < images; i++) ek_wino2_input(x + i * C * H * W, C, H, W, v + i * T1, T, rows);
    /* M[ξ] (T × O) = V[ξ]ᵀ (T × C) · U[ξ]ᵀ (C × O): row t depends only on tile t and U, so an
       image's output is the same in any call, whatever else is in it */
    for (size_t xi = 0; xi < 16; xi++) {
        const int rc = ek_sgemm_isa(isa, 1, 1, T, O, C, 1.0f, v + xi * C * T, T, u + xi * O * C, C, 0.0f, m + xi * T * O, O);
        if (rc != 0) return rc;
    }
    for (size_t i = 0; i < images; i++) ek_wino2_output(m + i * T1 * O, T, O, H, W, bias, y + i * O * H * W);
    return 0;
}
