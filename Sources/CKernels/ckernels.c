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

/* No contraction of a·b + c into one fused multiply-add: the AVX-512 clone (which has FMA)
   then computes the same bits as the AVX2 and generic clones (which do not). */
#pragma STDC FP_CONTRACT OFF

/* target_clones picks by CPU features at load time ("arch=…" would pick by CPU model and
   fall back to the generic clone on AMD). */
#if defined(__x86_64__) && defined(__clang__)
#define EK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
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

/* ---- Exact nearest neighbours in integers (AVX-512 VNNI) ----------------------------
   uint8 images give exact dot products in int32: VPDPBUSD multiplies unsigned bytes by
   signed bytes and adds groups of four into 32-bit lanes (64 multiply-adds per
   instruction, four times the Float32 FMA rate). References stay unsigned; queries are
   stored as q − 128 (x XOR 0x80 read as int8), so q·r = (q − 128)·r + 128·Σr, which the
   caller folds into a per-reference term. Both sides are packed in panels
   [panel][d/4][rows][4] so the 12 × 32 micro-kernel reads each operand as one stream. */

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
#define EK_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

int ek_vnni_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

/* c[12 × 32] (row stride ldc) = a-panel · b-panel over d4 groups of four bytes. */
EK_VNNI_TARGET static void ek_dot_12x32(const int8_t *a, const uint8_t *b, size_t d4, int32_t *c, size_t ldc) {
    __m512i z = _mm512_setzero_si512();
    __m512i c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z,
            c60 = z, c61 = z, c70 = z, c71 = z, c80 = z, c81 = z, c90 = z, c91 = z, ca0 = z, ca1 = z, cb0 = z, cb1 = z;
    for (size_t k = 0; k < d4; k++) {
        __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
        int32_t w[EK_DOT_MR];
        memcpy(w, a, sizeof w);
#define EK_ROW(r, x0, x1) { __m512i v = _mm512_set1_epi32(w[r]); \
        x0 = _mm512_dpbusd_epi32(x0, b0, v); x1 = _mm512_dpbusd_epi32(x1, b1, v); }
        EK_ROW(0, c00, c01) EK_ROW(1, c10, c11) EK_ROW(2, c20, c21) EK_ROW(3, c30, c31)
        EK_ROW(4, c40, c41) EK_ROW(5, c50, c51) EK_ROW(6, c60, c61) EK_ROW(7, c70, c71)
        EK_ROW(8, c80, c81) EK_ROW(9, c90, c91) EK_ROW(10, ca0, ca1) EK_ROW(11, cb0, cb1)
#undef EK_ROW
        a += EK_DOT_MR * 4; b += EK_DOT_NR * 4;
    }
#define EK_STORE(r, x0, x1) _mm512_storeu_si512(c + (r) * ldc, x0); _mm512_storeu_si512(c + (r) * ldc + 16, x1);
    EK_STORE(0, c00, c01) EK_STORE(1, c10, c11) EK_STORE(2, c20, c21) EK_STORE(3, c30, c31)
    EK_STORE(4, c40, c41) EK_STORE(5, c50, c51) EK_STORE(6, c60, c61) EK_STORE(7, c70, c71)
    EK_STORE(8, c80, c81) EK_STORE(9, c90, c91) EK_STORE(10, ca0, ca1) EK_STORE(11, cb0, cb1)
#undef EK_STORE
}
#else
int ek_vnni_available(void) { return 0; }
static void ek_dot_12x32(const int8_t *a, const uint8_t *b, size_t d4, int32_t *c, size_t ldc) {
    (void)a; (void)b; (void)d4; (void)c; (void)ldc;
}
#endif

size_t ek_panel_bytes(size_t rows, size_t d, size_t panel) {
    return (rows + panel - 1) / panel * panel * ((d + 3) / 4 * 4);
}

void ek_pack_panels(const uint8_t *x, size_t rows, size_t d, size_t panel, int to_signed, uint8_t *out) {
    const size_t d4 = (d + 3) / 4, panels = (rows + panel - 1) / panel;
    memset(out, 0, ek_panel_bytes(rows, d, panel));
    const uint8_t flip = to_signed ? 0x80 : 0;
    for (size_t p = 0; p < panels; p++) {
        uint8_t *o = out + p * panel * d4 * 4;
        for (size_t i = 0; i < panel && p * panel + i < rows; i++) {
            const uint8_t *row = x + (p * panel + i) * d;
            for (size_t t = 0; t < d; t++) o[(t / 4) * panel * 4 + i * 4 + t % 4] = row[t] ^ flip;
        }
    }
}

/* Max-heap of keys (squared distance << 32 | reference index) keeping the `cap` smallest. */
static inline void ek_key_offer(uint64_t key, uint64_t *h, size_t cap, size_t *count) {
    size_t c = *count, pos;
    if (c == cap && key >= h[0]) return;
    if (c < cap) {
        pos = c++;
        while (pos > 0) {
            size_t parent = (pos - 1) / 2;
            if (h[parent] >= key) break;
            h[pos] = h[parent]; pos = parent;
        }
    } else {
        pos = 0;
        for (;;) {
            size_t l = 2 * pos + 1, r = l + 1, m = pos;
            uint64_t mv = key;
            if (l < c && h[l] > mv) { m = l; mv = h[l]; }
            if (r < c && h[r] > mv) { m = r; }
            if (m == pos) break;
            h[pos] = h[m]; pos = m;
        }
    }
    h[pos] = key;
    *count = c;
}

/* buf[i][j] = query i · reference rs + j for every query panel and the rk references of one
   block (the int32 dot products of ek_knn_exact_tile and ek_pairs_within_tile). */
static void ek_dot_block(const uint8_t *a, size_t qpanels, const uint8_t *b, size_t rs, size_t rk, size_t d4, int32_t *buf) {
    const size_t apanel = EK_DOT_MR * d4 * 4, bpanel = EK_DOT_NR * d4 * 4;
    const size_t rpanels = (rk + EK_DOT_NR - 1) / EK_DOT_NR;
    for (size_t p = 0; p < qpanels; p++)
        for (size_t j = 0; j < rpanels; j++)
            ek_dot_12x32((const int8_t *)(a + p * apanel), b + (rs / EK_DOT_NR + j) * bpanel, d4,
                         buf + p * EK_DOT_MR * EK_REF_BLOCK + j * EK_DOT_NR, EK_REF_BLOCK);
}

void ek_knn_exact_tile(const uint8_t *a, size_t qk, const int64_t *qn,
                       const uint8_t *b, size_t nr, const int64_t *rterm, size_t d,
                       int64_t self0, uint64_t *heap, size_t cap, size_t *count, int32_t *buf) {
    const size_t d4 = (d + 3) / 4, qpanels = (qk + EK_DOT_MR - 1) / EK_DOT_MR;
    for (size_t i = 0; i < qk; i++) count[i] = 0;
    for (size_t rs = 0; rs < nr; rs += EK_REF_BLOCK) {
        const size_t rk = nr - rs < EK_REF_BLOCK ? nr - rs : EK_REF_BLOCK;
        ek_dot_block(a, qpanels, b, rs, rk, d4, buf);
        for (size_t i = 0; i < qk; i++) {
            const int32_t *row = buf + i * EK_REF_BLOCK;
            const int64_t skip = self0 >= 0 ? self0 + (int64_t)i : -1;
            uint64_t *h = heap + i * cap;
            for (size_t j = 0; j < rk; j++) {
                if ((int64_t)(rs + j) == skip) continue;
                const int64_t dist = qn[i] + rterm[rs + j] - 2 * (int64_t)row[j];
                ek_key_offer(((uint64_t)dist << 32) | (uint64_t)(rs + j), h, cap, count + i);
            }
        }
    }
}

size_t ek_pairs_within_tile(const uint8_t *a, size_t qk, const int64_t *qn, size_t q0,
                            const uint8_t *b, size_t nr, const int64_t *rterm, size_t d,
                            int64_t bound, uint64_t *out, size_t cap, int32_t *buf) {
    const size_t d4 = (d + 3) / 4, qpanels = (qk + EK_DOT_MR - 1) / EK_DOT_MR;
    size_t found = 0;
    /* only j > q0 + i counts: start at the reference block holding q0 + 1 */
    for (size_t rs = (q0 + 1) / EK_REF_BLOCK * EK_REF_BLOCK; rs < nr; rs += EK_REF_BLOCK) {
        const size_t rk = nr - rs < EK_REF_BLOCK ? nr - rs : EK_REF_BLOCK;
        ek_dot_block(a, qpanels, b, rs, rk, d4, buf);
        for (size_t i = 0; i < qk; i++) {
            const int32_t *row = buf + i * EK_REF_BLOCK;
            const size_t q = q0 + i;
            for (size_t j = q + 1 > rs ? q + 1 - rs : 0; j < rk; j++) {
                const int64_t dist = qn[i] + rterm[rs + j] - 2 * (int64_t)row[j];
                if (dist <= bound) {
                    if (found < cap) out[found] = ((uint64_t)q << 32) | (uint64_t)(rs + j);
                    found++;
                }
            }
        }
    }
    return found;
}

/* Row-invariant matrix product C[i, :] = Σ_k A[i, k] · B[k, :] (B row-major [k][n], ldb).
   Every element is the plain sequential sum over k = 0, 1, …, K−1 of rounded products,
   with floating-point contraction off, so its value depends only on row i of A and on B —
   never on how many rows are computed together, where a row sits in a block, or which
   vector width the compiler picked for a column. BLAS cannot promise that: OpenBLAS's
   kernels handle edge rows, small matrices and single rows (GEMV) with other summation
   orders, so a sample's value would depend on its batch. Blocks of 4 rows × 16 columns
   share each load of B; the leftovers run the same arithmetic one row or column at a time. */
#define EK_ROWS_MATMUL(NAME, T)                                                              \
EK_CLONES void NAME(const T *a, size_t m, size_t k, size_t lda, const T *b, size_t ldb,       \
                    size_t n, T *c, size_t ldc) {                                             \
    _Pragma("clang fp contract(off)")                                                         \
    size_t i = 0;                                                                             \
    for (; i + 4 <= m; i += 4) {                                                              \
        const T *a0 = a + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;            \
        size_t j = 0;                                                                         \
        for (; j + 16 <= n; j += 16) {                                                        \
            T s0[16] = {0}, s1[16] = {0}, s2[16] = {0}, s3[16] = {0};                         \
            for (size_t p = 0; p < k; p++) {                                                  \
                const T *bp = b + p * ldb + j;                                                \
                const T x0 = a0[p], x1 = a1[p], x2 = a2[p], x3 = a3[p];                       \
                for (int q = 0; q < 16; q++) {                                                \
                    const T bq = bp[q];                                                       \
                    s0[q] += x0 * bq; s1[q] += x1 * bq; s2[q] += x2 * bq; s3[q] += x3 * bq;   \
                }                                                                             \
            }                                                                                 \
            for (int q = 0; q < 16; q++) {                                                    \
                c[i * ldc + j + q] = s0[q]; c[(i + 1) * ldc + j + q] = s1[q];                 \
                c[(i + 2) * ldc + j + q] = s2[q]; c[(i + 3) * ldc + j + q] = s3[q];           \
            }                                                                                 \
        }                                                                                     \
        for (; j < n; j++) {                                                                  \
            T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                 \
            for (size_t p = 0; p < k; p++) {                                                  \
                const T bq = b[p * ldb + j];                                                  \
                s0 += a0[p] * bq; s1 += a1[p] * bq; s2 += a2[p] * bq; s3 += a3[p] * bq;       \
            }                                                                                 \
            c[i * ldc + j] = s0; c[(i + 1) * ldc + j] = s1;                                   \
            c[(i + 2) * ldc + j] = s2; c[(i + 3) * ldc + j] = s3;                             \
        }                                                                                     \
    }                                                                                         \
    for (; i < m; i++) {                                                                      \
        const T *a0 = a + i * lda;                                                            \
        size_t j = 0;                                                                         \
        for (; j + 16 <= n; j += 16) {                                                        \
            T s0[16] = {0};                                                                   \
            for (size_t p = 0; p < k; p++) {                                                  \
                const T *bp = b + p * ldb + j;                                                \
                const T x0 = a0[p];                                                           \
                for (int q = 0; q < 16; q++) s0[q] += x0 * bp[q];                             \
            }                                                                                 \
            for (int q = 0; q < 16; q++) c[i * ldc + j + q] = s0[q];                          \
        }                                                                                     \
        for (; j < n; j++) {                                                                  \
            T s0 = 0;                                                                         \
            for (size_t p = 0; p < k; p++) s0 += a0[p] * b[p * ldb + j];                      \
            c[i * ldc + j] = s0;                                                              \
        }                                                                                     \
    }                                                                                         \
}
EK_ROWS_MATMUL(ek_rows_matmul_f32, float)
EK_ROWS_MATMUL(ek_rows_matmul_f64, double)
