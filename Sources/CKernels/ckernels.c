#include "ckernels.h"
#include <stdint.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void ek_tune_malloc(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 32 << 20); /* glibc's maximum on 64-bit */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

/* target_clones picks by CPU features at load time ("arch=…" would pick by CPU model and
   fall back to the generic clone on AMD). */
#if defined(__x86_64__) && defined(__clang__)
#define EK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EK_CLONES
#endif

/* exp(x) = 2^k * exp(r), k = round(x / ln2), r = x - k ln2 (ln2 split in two for accuracy);
   exp(r) by a degree-6 polynomial on |r| <= ln2/2 (Cephes expf coefficients). Written
   branch-free so the compiler vectorizes the loops that call it. */
static inline float ek_expf1(float x) {
    x = x < -87.33654f ? -87.33654f : x;
    x = x > 88.72283f ? 88.72283f : x;
    /* round to nearest by the 1.5·2^23 trick: vectorises without SSE4.1's roundps */
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t ki = (int32_t)k + 127;
    /* k in [-126, 128]: at the very top scale in two steps to avoid an exponent overflow */
    int32_t k1 = ki > 254 ? 254 : ki;
    int32_t bits = k1 << 23;
    float s; memcpy(&s, &bits, 4);
    float extra = ki > 254 ? 2.0f : 1.0f;
    return p * s * extra;
}

static inline float ek_sigmoidf1(float x) { return 1.0f / (1.0f + ek_expf1(-x)); }

/* Every loop below reads element i and writes element i only, so in-place calls (y == x)
   are safe: the pragma tells clang so, instead of it falling back to scalar code when
   its run-time alias check sees overlapping pointers. */
#if defined(__clang__)
#define EK_VECTOR _Pragma("clang loop vectorize(assume_safety)")
#else
#define EK_VECTOR
#endif

EK_CLONES void ek_exp(const float *x, float *y, size_t n) {
    EK_VECTOR
    for (size_t i = 0; i < n; i++) y[i] = ek_expf1(x[i]);
}
EK_CLONES void ek_sigmoid(const float *x, float *y, size_t n) {
    EK_VECTOR
    for (size_t i = 0; i < n; i++) y[i] = ek_sigmoidf1(x[i]);
}
EK_CLONES void ek_tanh(const float *x, float *y, size_t n) {
    EK_VECTOR
    for (size_t i = 0; i < n; i++) y[i] = 2.0f * ek_sigmoidf1(2.0f * x[i]) - 1.0f;
}
EK_CLONES void ek_silu(const float *x, float *y, size_t n) {
    EK_VECTOR
    for (size_t i = 0; i < n; i++) { float v = x[i]; y[i] = v * ek_sigmoidf1(v); }
}
EK_CLONES void ek_silu_backward(const float *x, const float *g, float *dx, size_t n) {
    EK_VECTOR
    for (size_t i = 0; i < n; i++) {
        float v = x[i], s = ek_sigmoidf1(v);
        dx[i] = g[i] * (s + v * s * (1.0f - s));
    }
}
EK_CLONES void ek_channel_affine(const float *x, const float *scale, const float *shift, float *y,
                                 size_t outer, size_t channels, size_t inner, int fuse_silu) {
    for (size_t o = 0; o < outer; o++) {
        for (size_t c = 0; c < channels; c++) {
            const float a = scale[c], b = shift[c];
            const float *xp = x + (o * channels + c) * inner;
            float *yp = y + (o * channels + c) * inner;
            if (fuse_silu) {
                EK_VECTOR
                for (size_t i = 0; i < inner; i++) { float v = xp[i] * a + b; yp[i] = v * ek_sigmoidf1(v); }
            } else {
                EK_VECTOR
                for (size_t i = 0; i < inner; i++) yp[i] = xp[i] * a + b;
            }
        }
    }
}

/* Σ (a_i − b_i)² over uint8 vectors, exactly (n < 2^47). Blocks of 4096 keep the 32-bit
   lane sums from overflowing (4096 · 255² < 2^31). */
EK_CLONES uint64_t ek_sqdist_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    uint64_t total = 0;
    for (size_t s = 0; s < n; s += 4096) {
        size_t e = n - s < 4096 ? n : s + 4096;
        uint32_t acc = 0;
        for (size_t i = s; i < e; i++) { int32_t d = (int32_t)a[i] - (int32_t)b[i]; acc += (uint32_t)(d * d); }
        total += acc;
    }
    return total;
}

/* Offers row[j] + bias[j] (j < n, reference index first + j) to a max-heap of at most
   `cap` (value, index) pairs holding the smallest values seen; `*count` is its size.
   Most values fail the one comparison with the heap's root, which is what makes the
   selection cheap next to the GEMM that produced the row. */
void ek_heap_offer(const float *row, const float *bias, size_t n, int64_t first,
                   float *hv, int64_t *hi, size_t cap, size_t *count) {
    size_t c = *count;
    for (size_t j = 0; j < n; j++) {
        float v = row[j] + bias[j];
        if (c == cap && !(v < hv[0])) continue;
        size_t pos;
        if (c < cap) {                       /* sift up from the new leaf */
            pos = c++;
            while (pos > 0) {
                size_t parent = (pos - 1) / 2;
                if (!(hv[parent] < v)) break;
                hv[pos] = hv[parent]; hi[pos] = hi[parent]; pos = parent;
            }
        } else {                             /* replace the root and sift down */
            pos = 0;
            for (;;) {
                size_t l = 2 * pos + 1, r = l + 1, m = pos;
                float mv = v;
                if (l < c && hv[l] > mv) { m = l; mv = hv[l]; }
                if (r < c && hv[r] > mv) { m = r; }
                if (m == pos) break;
                hv[pos] = hv[m]; hi[pos] = hi[m]; pos = m;
            }
        }
        hv[pos] = v; hi[pos] = first + (int64_t)j;
    }
    *count = c;
}
