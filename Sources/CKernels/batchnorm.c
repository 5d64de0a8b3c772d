/* BatchNorm in training mode for Float, over channels [ch0, ch1) of x [N, C, L]: batch
   statistics per channel over N and L (Ioffe & Szegedy, 2015), two passes (mean, then
   centred squares) accumulated in Double. Sums run in eight lanes, lane = position mod 8
   within each (image, channel) run, combined in a fixed tree, so the result is the same
   bits whatever the ISA and however channels are split across threads.

   An activation may follow in the same pass (act: 0 none, 1 ReLU, 2 LeakyReLU with `slope`),
   as in DCGAN's BN → ReLU and BN → LeakyReLU: the forward writes act(BN(x)) once, and the
   backward recomputes BN(x) (the same float operations, so the same bits) to pass dy
   through the activation before the BatchNorm gradient. Each value is computed exactly as
   BatchNorm followed by the separate activation op would compute it. */
#include "ckernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) && defined(__clang__)
#define EK_BN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EK_BN_CLONES
#endif

static inline double ek_tree8(const double a[8]) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }

EK_BN_CLONES
void ek_batchnorm_forward_f32(const float *x, size_t n, size_t c, size_t l, size_t ch0, size_t ch1,
                              const float *gamma, const float *beta, double eps, int act, float slope,
                              float *y, float *mean, float *rstd, float *variance) {
    double m = (double)(n * l);
    for (size_t ch = ch0; ch < ch1; ch++) {
        double acc[8] = {0};
        for (size_t i = 0; i < n; i++) {
            const float *r = x + (i * c + ch) * l;
            size_t j = 0;
            for (; j + 8 <= l; j += 8) for (int k = 0; k < 8; k++) acc[k] += (double)r[j + k];
            for (; j < l; j++) acc[j % 8] += (double)r[j];
        }
        double mu = ek_tree8(acc) / m;
        for (int k = 0; k < 8; k++) acc[k] = 0;
        for (size_t i = 0; i < n; i++) {
            const float *r = x + (i * c + ch) * l;
            size_t j = 0;
            for (; j + 8 <= l; j += 8) for (int k = 0; k < 8; k++) { double d = (double)r[j + k] - mu; acc[k] += d * d; }
            for (; j < l; j++) { double d = (double)r[j] - mu; acc[j % 8] += d * d; }
        }
        double v = ek_tree8(acc) / m, rs = 1 / sqrt(v + eps);
        mean[ch] = (float)mu; rstd[ch] = (float)rs; variance[ch] = (float)v;
        float a = (float)rs * (gamma ? gamma[ch] : 1.0f);
        float b = (beta ? beta[ch] : 0.0f) - (float)mu * a;
        for (size_t i = 0; i < n; i++) {
            const float *r = x + (i * c + ch) * l;
            float *o = y + (i * c + ch) * l;
            if (act == 1) { for (size_t j = 0; j < l; j++) { float t = r[j] * a; float v = t + b; o[j] = v > 0 ? v : 0.0f; } }
            else if (act == 2) { for (size_t j = 0; j < l; j++) { float t = r[j] * a; float v = t + b; o[j] = v > 0 ? v : slope * v; } }
            else { for (size_t j = 0; j < l; j++) { float t = r[j] * a; o[j] = t + b; } }
        }
    }
}

/* One channel's backward, with G(xv, gv) the gradient through the activation (a macro, so
   each activation gets its own branch-free, vectorizable loops). */
#define EK_BN_BACKWARD_CHANNEL(G) do { \
    double sg[8] = {0}, sgx[8] = {0}; \
    for (size_t i = 0; i < n; i++) { \
        const float *xr = x + (i * c + ch) * l, *g = gy + (i * c + ch) * l; \
        size_t j = 0; \
        for (; j + 8 <= l; j += 8) for (int k = 0; k < 8; k++) { \
            float gk = G(xr[j + k], g[j + k]); \
            sg[k] += (double)gk; \
            sgx[k] += (double)gk * (double)(xr[j + k] - mu); \
        } \
        for (; j < l; j++) { float gk = G(xr[j], g[j]); sg[j % 8] += (double)gk; sgx[j % 8] += (double)gk * (double)(xr[j] - mu); } \
    } \
    float sumG = (float)ek_tree8(sg), sumGX = (float)(ek_tree8(sgx) * (double)r); \
    if (dgamma) dgamma[ch] = sumGX; \
    if (dbeta) dbeta[ch] = sumG; \
    if (dx) { \
        float a = sumG * ga / m, b = sumGX * ga / m; \
        for (size_t i = 0; i < n; i++) { \
            const float *xr = x + (i * c + ch) * l, *g = gy + (i * c + ch) * l; \
            float *d = dx + (i * c + ch) * l; \
            for (size_t j = 0; j < l; j++) { \
                float xh = (xr[j] - mu) * r; \
                float t = G(xr[j], g[j]) * ga; t = t - a; float u = xh * b; t = t - u; \
                d[j] = r * t; \
            } \
        } \
    } \
} while (0)

#define EK_G_NONE(xv, gv) (gv)
/* pre > 0 ? g : +0, as a bit mask: compilers turn the plain conditional into a branch here,
   which random signs mispredict (13× slower) */
static inline float ek_relu_grad(float pre, float g) {
    uint32_t u; memcpy(&u, &g, sizeof u);
    u &= (uint32_t)0 - (uint32_t)(pre > 0);
    float r; memcpy(&r, &u, sizeof r); return r;
}
#define EK_G_RELU(xv, gv) ek_relu_grad((xv) * fa + fb, (gv))
#define EK_G_LEAKY(xv, gv) ((xv) * fa + fb > 0 ? (gv) : slope * (gv))

EK_BN_CLONES
void ek_batchnorm_backward_f32(const float *x, const float *gy, size_t n, size_t c, size_t l, size_t ch0, size_t ch1,
                               const float *gamma, const float *beta, const float *mean, const float *rstd, int act, float slope,
                               float *dx, float *dgamma, float *dbeta) {
    float m = (float)(n * l);
    for (size_t ch = ch0; ch < ch1; ch++) {
        float mu = mean[ch], r = rstd[ch], ga = gamma ? gamma[ch] : 1.0f;
        /* the forward's affine, recomputed from the same floats: pre = x·fa + fb */
        float fa = r * ga, fb = (beta ? beta[ch] : 0.0f) - mu * fa;
        if (act == 1) EK_BN_BACKWARD_CHANNEL(EK_G_RELU);
        else if (act == 2) EK_BN_BACKWARD_CHANNEL(EK_G_LEAKY);
        else EK_BN_BACKWARD_CHANNEL(EK_G_NONE);
    }
}

