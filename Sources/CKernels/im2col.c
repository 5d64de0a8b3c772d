/* im2col and its adjoint col2im for Float (Chellapilla et al., 2006), the copies around every
   GEMM convolution. Layouts and semantics are those of Convolution.swift's generic versions
   (kept for Double). Each channel is first copied into a zero-padded plane, so the copy
   loops have no bounds logic; the common strides (1, 2) and row widths (4, 8, 16, 32) get
   loops the compiler unrolls. Pure copies and adds in a fixed order: the same bits on every
   ISA. */
#include "ckernels.h"
#include <stdlib.h>
#include <string.h>

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

static void ek_gather_block(const float *src, float *d, size_t OH, size_t OW, size_t rowStep, size_t s) {
    if (s == 1) { EK_BY_WIDTH(EK_GATHER, 1) }
    else if (s == 2) { EK_BY_WIDTH(EK_GATHER, 2) }
    else { EK_GATHER(s, OW) }
}

static void ek_scatter_block(const float *c, float *dst, size_t OH, size_t OW, size_t rowStep, size_t s) {
    if (s == 1) { EK_BY_WIDTH(EK_SCATTER, 1) }
    else if (s == 2) { EK_BY_WIDTH(EK_SCATTER, 2) }
    else { EK_SCATTER(s, OW) }
}

void ek_im2col_f32(const float *x, size_t C, size_t H, size_t W, size_t KH, size_t KW, size_t stride,
                   size_t pad, float *col, size_t ld) {
    size_t PH = H + 2 * pad, PW = W + 2 * pad;
    size_t OH = (PH - KH) / stride + 1, OW = (PW - KW) / stride + 1;
    float *P = ek_plane_buffer(PH * PW);
    if (!P) abort();
    memset(P, 0, PH * PW * sizeof(float));
    size_t row = 0;
    for (size_t c = 0; c < C; c++) {
        for (size_t h = 0; h < H; h++) memcpy(P + (h + pad) * PW + pad, x + (c * H + h) * W, W * sizeof(float));
        for (size_t kh = 0; kh < KH; kh++)
            for (size_t kw = 0; kw < KW; kw++, row++)
                ek_gather_block(P + kh * PW + kw, col + row * ld, OH, OW, stride * PW, stride);
    }
}

void ek_col2im_f32(const float *col, size_t C, size_t H, size_t W, size_t KH, size_t KW, size_t stride,
                   size_t pad, float *x, size_t ld) {
    size_t PH = H + 2 * pad, PW = W + 2 * pad;
    size_t OH = (PH - KH) / stride + 1, OW = (PW - KW) / stride + 1;
    float *P = ek_plane_buffer(PH * PW);
    if (!P) abort();
    size_t row = 0;
    for (size_t c = 0; c < C; c++) {
        memset(P, 0, PH * PW * sizeof(float));
        for (size_t kh = 0; kh < KH; kh++)
            for (size_t kw = 0; kw < KW; kw++, row++)
                ek_scatter_block(col + row * ld, P + kh * PW + kw, OH, OW, stride * PW, stride);
        for (size_t h = 0; h < H; h++) {
            float *xr = x + (c * H + h) * W;
            const float *pr = P + (h + pad) * PW + pad;
            for (size_t w = 0; w < W; w++) xr[w] += pr[w];
        }
    }
}
