/* GroupNorm (Wu & He, 2018) for Float, one image at a time, optionally followed by SiLU in
   the same pass (the U-Net's GN → SiLU). Statistics per group over its (C/G)·L contiguous
   values in Double: eight lanes (lane = position mod 8 within the group), combined in a
   fixed tree, the mean first and then the centred squares. The backward sums each channel's
   dŷ and dŷ·x̂ in sixteen Float lanes (lane = position mod 16) combined pairwise. Every sum
   has one order, fixed by the shape alone, so the bits are the same whatever the ISA clone
   and however images are split across threads; the loops vectorize where the Swift loops
   they replace were single latency-bound chains.

   With SiLU the backward rebuilds the pre-activation v = x·a + b with the forward's own
   float operations and takes dy·SiLU′(v) (ek_silu_backward's formula) one channel at a
   time into a row of scratch, never the whole tensor. */
#include "ckernels.h"
#include <math.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) && defined(__clang__)
#define EK_GN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EK_GN_CLONES
#endif

static inline double ek_gn_tree8(const double a[8]) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }
static inline float ek_gn_tree16(float a[16]) {
    for (int s = 8; s >= 1; s /= 2) for (int i = 0; i < s; i++) a[i] = a[i] + a[i + s];
    return a[0];
}

/* The group's values in order, each x + shift[channel] when shifted (one float addition,
   the value a separately added tensor would hold), into eight Double lanes by position. */
#define EK_GN_FOR_VALUES(BODY)                                                              \
    if (!sh) {                                                                              \
        size_t j = 0;                                                                       \
        for (; j + 8 <= m; j += 8) for (int k = 0; k < 8; k++) { float v = r[j + k]; size_t lane = k; BODY } \
        for (; j < m; j++) { float v = r[j]; size_t lane = j % 8; BODY }                   \
    } else if (L % 8 == 0) {                                                                \
        for (size_t c = 0; c < cg; c++) {                                                   \
            const float *rc = r + c * L, s = sh[c];                                         \
            for (size_t j = 0; j < L; j += 8) for (int k = 0; k < 8; k++) { float v = rc[j + k] + s; size_t lane = k; BODY } \
        }                                                                                   \
    } else {                                                                                \
        for (size_t j = 0; j < m; j++) { float v = r[j] + sh[j / L]; size_t lane = j % 8; BODY } \
    }

EK_GN_CLONES
void ek_groupnorm_forward_f32(const float *x, size_t C, size_t L, size_t G, const float *gamma, const float *beta,
                              const float *shift, double eps, int silu, float *y, float *mean, float *rstd, float *row) {
    size_t cg = C / G, m = cg * L;
    for (size_t g = 0; g < G; g++) {
        const float *r = x + g * m, *sh = shift ? shift + g * cg : NULL;
        double acc[8] = {0};
        EK_GN_FOR_VALUES(acc[lane] += (double)v;)
        double mu = ek_gn_tree8(acc) / (double)m;
        for (int k = 0; k < 8; k++) acc[k] = 0;
        EK_GN_FOR_VALUES({ double d = (double)v - mu; acc[lane] += d * d; })
        double rs = 1 / sqrt(ek_gn_tree8(acc) / (double)m + eps);
        float fm = (float)mu, fr = (float)rs;
        mean[g] = fm; rstd[g] = fr;
        float scale[cg], bshift[cg];
        for (size_t k = 0; k < cg; k++) {
            size_t ch = g * cg + k;
            float a = fr * (gamma ? gamma[ch] : 1.0f);
            scale[k] = a;
            float t = fm * a;
            bshift[k] = (beta ? beta[ch] : 0.0f) - t;
        }
        if (!sh) { ek_channel_affine(r, scale, bshift, y + g * m, 1, cg, L, silu); continue; }
        for (size_t k = 0; k < cg; k++) {   /* one shifted channel at a time through `row` */
            const float *rc = r + k * L, s = sh[k];
            for (size_t j = 0; j < L; j++) row[j] = rc[j] + s;
            ek_channel_affine(row, scale + k, bshift + k, y + g * m + k * L, 1, 1, L, silu);
        }
    }
}
#undef EK_GN_FOR_VALUES

EK_GN_CLONES
void ek_groupnorm_backward_f32(const float *x, const float *gy, size_t C, size_t L, size_t G,
                               const float *gamma, const float *beta, const float *mean, const float *rstd, int silu,
                               float *scratch, float *dx, float *sums) {
    size_t cg = C / G;
    for (size_t g = 0; g < G; g++) {
        float mu = mean[g], r = rstd[g];
        const float *pgroup = gy + g * cg * L;
        if (silu) {
            /* dy·SiLU′(v), v rebuilt by the forward's own affine function (the same bits) */
            for (size_t k = 0; k < cg; k++) {
                size_t ch = g * cg + k;
                float a = r * (gamma ? gamma[ch] : 1.0f), t = mu * a, b = (beta ? beta[ch] : 0.0f) - t;
                ek_channel_affine(x + ch * L, &a, &b, scratch + k * L, 1, 1, L, 0);
                ek_silu_backward(scratch + k * L, gy + ch * L, scratch + k * L, L);
            }
            pgroup = scratch;
        }
        float sumD = 0, sumDX = 0;
        for (size_t k = 0; k < cg; k++) {
            size_t ch = g * cg + k;
            const float *xc = x + ch * L, *pg = pgroup + k * L;
            float ga = gamma ? gamma[ch] : 1.0f;
            float lg[16] = {0}, lx[16] = {0};
            size_t j = 0;
            for (; j + 16 <= L; j += 16)
                for (int q = 0; q < 16; q++) {
                    float d = xc[j + q] - mu, xh = d * r, p = pg[j + q] * xh;
                    lg[q] += pg[j + q]; lx[q] += p;
                }
            for (; j < L; j++) { float d = xc[j] - mu, xh = d * r, p = pg[j] * xh; lg[j % 16] += pg[j]; lx[j % 16] += p; }
            float sg = ek_gn_tree16(lg), sgx = ek_gn_tree16(lx);
            sums[ch * 2] = sgx; sums[ch * 2 + 1] = sg;
            float u = sg * ga, v = sgx * ga;
            sumD += u; sumDX += v;
        }
        if (!dx) continue;
        float mf = (float)(cg * L), a = sumD / mf, b = sumDX / mf;
        for (size_t k = 0; k < cg; k++) {
            size_t ch = g * cg + k;
            const float *xc = x + ch * L, *pg = pgroup + k * L;
            float ga = gamma ? gamma[ch] : 1.0f;
            float *o = dx + ch * L;
            for (size_t j = 0; j < L; j++) {
                float d = xc[j] - mu, xh = d * r;
                float p = pg[j] * ga, q = p - a, s = xh * b, t = q - s;
                o[j] = r * t;
            }
        }
    }
}
