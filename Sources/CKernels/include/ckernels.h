/* Eidetic's C kernels: Float32 loops that Swift does not vectorize well (exp and the
   activations built on it). Every function takes n elements and may be called with
   x == y (in place). Compiled at -O3; on x86-64 each exists as a generic and an
   AVX2+FMA clone picked at load time. */
#ifndef EIDETIC_CKERNELS_H
#define EIDETIC_CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/* y = exp(x); relative error below 2e-7 over the float range, 0 for x < -87.3, inf past 88.7. */
void ek_exp(const float *x, float *y, size_t n);
/* y = 1 / (1 + exp(-x)) */
void ek_sigmoid(const float *x, float *y, size_t n);
/* y = tanh(x) = 2 sigmoid(2x) - 1 */
void ek_tanh(const float *x, float *y, size_t n);
/* y = x * sigmoid(x) (SiLU / swish) */
void ek_silu(const float *x, float *y, size_t n);
/* dx = g * (s + x s (1 - s)), s = sigmoid(x): the SiLU vector-Jacobian product. */
void ek_silu_backward(const float *x, const float *g, float *dx, size_t n);
/* y = x * scale[c] + shift[c] for x laid out [outer, channels, inner]; optionally followed
   by SiLU (fuse = 1). The GroupNorm / BatchNorm affine step. */
void ek_channel_affine(const float *x, const float *scale, const float *shift, float *y,
                       size_t outer, size_t channels, size_t inner, int fuse_silu);
/* Keep freed buffers in the heap (no mmap per large tensor, no trimming), so a training
   step reuses memory instead of page-faulting fresh pages. No-op outside glibc. */
void ek_tune_malloc(void);
/* Exact Σ (a_i − b_i)² of two uint8 vectors. */
uint64_t ek_sqdist_u8(const uint8_t *a, const uint8_t *b, size_t n);
/* Top-k selection step: offers row[j] + bias[j] to a max-heap (hv, hi) of capacity cap
   holding the smallest values seen so far; index recorded is first + j. */
void ek_heap_offer(const float *row, const float *bias, size_t n, int64_t first,
                   float *hv, int64_t *hi, size_t cap, size_t *count);
#endif
