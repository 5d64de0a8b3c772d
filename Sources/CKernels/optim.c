/* Optimizer updates for Float (Optim/Optimizers.swift). */
#include "ckernels.h"
#include <math.h>

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) && defined(__clang__)
#define EK_OPT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EK_OPT_CLONES
#endif

/* One Adam step for Float (Kingma & Ba, 2015; Optim/Optimizers.swift), elementwise:
     gi = g + l2·p;  m = b1·m + (1 − b1)·gi;  v = b2·v + (1 − b2)·gi·gi;
     p = p·shrink − stepSize·m / (√v·rc2 + eps)
   with exactly these operations in this order (no contraction), so every value is what the
   scalar Swift loop gives; here the compiler may use vectors (the arrays do not overlap). */
EK_OPT_CLONES
void ek_adam_f32(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                 float b1, float b2, float stepSize, float rc2, float eps, float l2, float shrink) {
    float ob1 = 1.0f - b1, ob2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + l2 * p[i];
        float mi = b1 * m[i] + ob1 * gi;
        float vi = b2 * v[i] + ob2 * gi * gi;
        m[i] = mi; v[i] = vi;
        p[i] = p[i] * shrink - stepSize * mi / (sqrtf(vi) * rc2 + eps);
    }
}
