/* Eidetic's own single-precision GEMM (BLIS-style: Goto & van de Geijn 2008; Van Zee &
   van de Geijn 2015): C = alpha·op(A)·op(B) + beta·C, row-major, one thread per call.

   Why our own: OpenBLAS picks its kernel from the CPU model or OPENBLAS_CORETYPE. Debian's
   0.3.21 does not know Zen 5, and some of our machines set OPENBLAS_CORETYPE=Haswell, which
   halves sgemm (AVX2 instead of AVX-512). This kernel chooses by the CPU's features only.

   One summation order, by construction. Every element of C is
       acc_b = fma(a[i,p], b[p,j], acc_b) over p in k-block b (in order, from 0),
       c = alpha·acc_0 (+ beta·c)   then   c = c + alpha·acc_b   for b = 1, 2, …
   with k-blocks of EK_KC. Multiplies and adds are separate IEEE operations (no contraction
   in the epilogue), and the register tile only decides which elements are computed
   together, never how. So the result is the same bit for bit
     - for the AVX-512, the AVX2 and the portable kernel (all three are tested against
       each other), hence on every x86-64 machine with FMA, whatever OPENBLAS_CORETYPE says;
     - whatever m, n and the position of the element: row i of C depends only on row i of
       op(A) and on op(B) (batch invariance for Linear layers and grouped convolutions).
   Threads: none inside; callers split work over images. Packing buffers are per thread. */
#include "ckernels.h"
#include <stdlib.h>
#include <string.h>
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma STDC FP_CONTRACT OFF

#define EK_KC 256   /* k-block: fixes the summation order (never depends on the ISA or shape) */
#define EK_MC 192   /* rows of A packed at once (a multiple of every MR) */
#define EK_NC 3072  /* columns of B packed at once (a multiple of every NR) */

/* Register tiles (rows × columns of C) of the AVX2 and AVX-512 micro-kernels. */
#define EK_2_MR 6
#define EK_2_NR 16
#define EK_5_MR 12
#define EK_5_NR 32

/* Epilogue modes of a micro-kernel call. */
enum { EK_STORE = 0, EK_STORE_BETA = 1, EK_ACCUMULATE = 2, EK_RAW = 3 };

typedef void (*ek_ukernel)(size_t kc, const float *ap, const float *bp, float *c, size_t ldc,
                           float alpha, float beta, int mode);

/* ---- the portable micro-kernel (reference order; MR × NR = 4 × 16) ---- */
#define EK_P_MR 4
#define EK_P_NR 16
static void ek_ukernel_portable(size_t kc, const float *ap, const float *bp, float *c, size_t ldc,
                                float alpha, float beta, int mode) {
    float acc[EK_P_MR][EK_P_NR];
    memset(acc, 0, sizeof acc);
    for (size_t p = 0; p < kc; p++) {
        for (int r = 0; r < EK_P_MR; r++) {
            float a = ap[p * EK_P_MR + r];
            for (int j = 0; j < EK_P_NR; j++) acc[r][j] = fmaf(a, bp[p * EK_P_NR + j], acc[r][j]);
        }
    }
    for (int r = 0; r < EK_P_MR; r++) {
        float *cr = c + r * ldc;
        for (int j = 0; j < EK_P_NR; j++) {
            if (mode == EK_RAW) { cr[j] = acc[r][j]; continue; }
            float t = alpha * acc[r][j];
            if (mode == EK_STORE) { cr[j] = t; }
            else if (mode == EK_STORE_BETA) { float u = beta * cr[j]; cr[j] = t + u; }
            else { float v = cr[j]; cr[j] = v + t; }
        }
    }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
/* ---- AVX2 + FMA: 6 × 16 (12 accumulators) ---- */
__attribute__((target("avx2,fma")))
static void ek_ukernel_avx2(size_t kc, const float *ap, const float *bp, float *c, size_t ldc,
                            float alpha, float beta, int mode) {
    __m256 acc0[EK_2_MR], acc1[EK_2_MR];
    for (int r = 0; r < EK_2_MR; r++) { acc0[r] = _mm256_setzero_ps(); acc1[r] = _mm256_setzero_ps(); }
    for (size_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
#pragma clang loop unroll(full)
        for (int r = 0; r < EK_2_MR; r++) {
            __m256 a = _mm256_broadcast_ss(ap + r);
            acc0[r] = _mm256_fmadd_ps(a, b0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(a, b1, acc1[r]);
        }
        ap += EK_2_MR; bp += EK_2_NR;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int r = 0; r < EK_2_MR; r++) {
        float *cr = c + r * ldc;
        if (mode == EK_RAW) { _mm256_storeu_ps(cr, acc0[r]); _mm256_storeu_ps(cr + 8, acc1[r]); continue; }
        __m256 t0 = _mm256_mul_ps(va, acc0[r]), t1 = _mm256_mul_ps(va, acc1[r]);
        if (mode == EK_STORE_BETA) {
            t0 = _mm256_add_ps(t0, _mm256_mul_ps(vb, _mm256_loadu_ps(cr)));
            t1 = _mm256_add_ps(t1, _mm256_mul_ps(vb, _mm256_loadu_ps(cr + 8)));
        } else if (mode == EK_ACCUMULATE) {
            t0 = _mm256_add_ps(_mm256_loadu_ps(cr), t0);
            t1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), t1);
        }
        _mm256_storeu_ps(cr, t0); _mm256_storeu_ps(cr + 8, t1);
    }
}

/* ---- AVX-512: 12 × 32 (24 accumulators) ---- */
__attribute__((target("avx512f")))
static void ek_ukernel_avx512(size_t kc, const float *ap, const float *bp, float *c, size_t ldc,
                              float alpha, float beta, int mode) {
    __m512 acc0[EK_5_MR], acc1[EK_5_MR];
    for (int r = 0; r < EK_5_MR; r++) { acc0[r] = _mm512_setzero_ps(); acc1[r] = _mm512_setzero_ps(); }
    for (size_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#pragma clang loop unroll(full)
        for (int r = 0; r < EK_5_MR; r++) {
            __m512 a = _mm512_set1_ps(ap[r]);
            acc0[r] = _mm512_fmadd_ps(a, b0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(a, b1, acc1[r]);
        }
        ap += EK_5_MR; bp += EK_5_NR;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < EK_5_MR; r++) {
        float *cr = c + r * ldc;
        if (mode == EK_RAW) { _mm512_storeu_ps(cr, acc0[r]); _mm512_storeu_ps(cr + 16, acc1[r]); continue; }
        __m512 t0 = _mm512_mul_ps(va, acc0[r]), t1 = _mm512_mul_ps(va, acc1[r]);
        if (mode == EK_STORE_BETA) {
            t0 = _mm512_add_ps(t0, _mm512_mul_ps(vb, _mm512_loadu_ps(cr)));
            t1 = _mm512_add_ps(t1, _mm512_mul_ps(vb, _mm512_loadu_ps(cr + 16)));
        } else if (mode == EK_ACCUMULATE) {
            t0 = _mm512_add_ps(_mm512_loadu_ps(cr), t0);
            t1 = _mm512_add_ps(_mm512_loadu_ps(cr + 16), t1);
        }
        _mm512_storeu_ps(cr, t0); _mm512_storeu_ps(cr + 16, t1);
    }
}
#endif

/* ---- packing ---- */

/* Panels of mr rows of op(A)[i0 .. i0+mc, p0 .. p0+kc]: panel q holds ap[q·mr·kc + p·mr + r]
   = op(A)[i0 + q·mr + r, p0 + p], zero past row mc. */
static void ek_pack_a(int trans, const float *a, size_t lda, size_t i0, size_t mc, size_t p0, size_t kc,
                      size_t mr, float *out) {
    for (size_t ir = 0; ir < mc; ir += mr) {
        size_t rows = mc - ir < mr ? mc - ir : mr;
        float *dst = out + ir * kc;
        if (!trans) {
            for (size_t r = 0; r < rows; r++) {
                const float *src = a + (i0 + ir + r) * lda + p0;
                for (size_t p = 0; p < kc; p++) dst[p * mr + r] = src[p];
            }
        } else {
            for (size_t p = 0; p < kc; p++) {
                const float *src = a + (p0 + p) * lda + i0 + ir;
                for (size_t r = 0; r < rows; r++) dst[p * mr + r] = src[r];
            }
        }
        for (size_t r = rows; r < mr; r++) for (size_t p = 0; p < kc; p++) dst[p * mr + r] = 0;
    }
}

/* Panels of nr columns of op(B)[p0 .. p0+kc, j0 .. j0+nc]: panel q holds bp[q·nr·kc + p·nr + j]
   = op(B)[p0 + p, j0 + q·nr + j], zero past column nc. */
static void ek_pack_b(int trans, const float *b, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc,
                      size_t nr, float *out) {
    for (size_t jr = 0; jr < nc; jr += nr) {
        size_t cols = nc - jr < nr ? nc - jr : nr;
        float *dst = out + jr * kc;
        if (!trans) {
            for (size_t p = 0; p < kc; p++) {
                const float *src = b + (p0 + p) * ldb + j0 + jr;
                float *d = dst + p * nr;
                size_t j = 0;
                for (; j < cols; j++) d[j] = src[j];
                for (; j < nr; j++) d[j] = 0;
            }
        } else {
            for (size_t j = 0; j < cols; j++) {
                const float *src = b + (j0 + jr + j) * ldb + p0;
                for (size_t p = 0; p < kc; p++) dst[p * nr + j] = src[p];
            }
            for (size_t j = cols; j < nr; j++) for (size_t p = 0; p < kc; p++) dst[p * nr + j] = 0;
        }
    }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
/* Vector packing for the AVX2 and AVX-512 paths. The transposing cases (a row-major A, a
   transposed B) dominate packing: they move 8 × 8 blocks through registers instead of one
   float at a time. Pure copies: the packed panels are the same bits as ek_pack_a/ek_pack_b's. */

/* dst[p·ldd + r] = src[r·lds + p] for r < lanes, p < 8, with rows r ≥ loaded read as zero
   (lanes ≤ 8 values are written for each p; loaded ≤ lanes rows are read). */
__attribute__((target("avx2")))
static inline void ek_transpose8(const float *src, size_t lds, size_t loaded, size_t lanes, float *dst, size_t ldd) {
    __m256 r[8];
    for (size_t i = 0; i < 8; i++) r[i] = i < loaded ? _mm256_loadu_ps(src + i * lds) : _mm256_setzero_ps();
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    __m256 c[8];
    c[0] = _mm256_permute2f128_ps(u0, u4, 0x20); c[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    c[2] = _mm256_permute2f128_ps(u2, u6, 0x20); c[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    c[4] = _mm256_permute2f128_ps(u0, u4, 0x31); c[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    c[6] = _mm256_permute2f128_ps(u2, u6, 0x31); c[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
    if (lanes == 8) {
        for (size_t p = 0; p < 8; p++) _mm256_storeu_ps(dst + p * ldd, c[p]);
    } else {
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (size_t p = 0; p < 8; p++) _mm256_maskstore_ps(dst + p * ldd, mask, c[p]);
    }
}

/* out[p·w + r] = src[r·lds + p] for r < w (rows ≥ rows read as zero), p < kc: one panel of
   width w (mr or nr) from `rows` contiguous source rows. */
__attribute__((target("avx2")))
static void ek_pack_panel_transposed(const float *src, size_t lds, size_t rows, size_t w, size_t kc, float *out) {
    size_t p = 0;
    for (; p + 8 <= kc; p += 8)
        for (size_t r0 = 0; r0 < w; r0 += 8) {
            size_t lanes = w - r0 < 8 ? w - r0 : 8;
            size_t loaded = rows > r0 ? (rows - r0 < lanes ? rows - r0 : lanes) : 0;
            ek_transpose8(src + r0 * lds + p, lds, loaded, lanes, out + p * w + r0, w);
        }
    for (; p < kc; p++)
        for (size_t r = 0; r < w; r++) out[p * w + r] = r < rows ? src[r * lds + p] : 0;
}

__attribute__((target("avx2")))
static void ek_pack_a_avx(int trans, const float *a, size_t lda, size_t i0, size_t mc, size_t p0, size_t kc,
                          size_t mr, float *out) {
    if (trans) { ek_pack_a(trans, a, lda, i0, mc, p0, kc, mr, out); return; }
    for (size_t ir = 0; ir < mc; ir += mr) {
        size_t rows = mc - ir < mr ? mc - ir : mr;
        ek_pack_panel_transposed(a + (i0 + ir) * lda + p0, lda, rows, mr, kc, out + ir * kc);
    }
}

__attribute__((target("avx2")))
static void ek_pack_b_avx(int trans, const float *b, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc,
                          size_t nr, float *out) {
    if (!trans) { ek_pack_b(trans, b, ldb, p0, kc, j0, nc, nr, out); return; }
    for (size_t jr = 0; jr < nc; jr += nr) {
        size_t cols = nc - jr < nr ? nc - jr : nr;
        ek_pack_panel_transposed(b + (j0 + jr) * ldb + p0, ldb, cols, nr, kc, out + jr * kc);
    }
}
#endif

typedef void (*ek_packer)(int trans, const float *src, size_t ld, size_t x0, size_t xc, size_t y0, size_t yc,
                          size_t w, float *out);

/* Per-thread packing buffers, grown on demand and kept for the thread's life. */
static _Thread_local float *ek_buf_a, *ek_buf_b;
static _Thread_local size_t ek_cap_a, ek_cap_b;

static float *ek_buffer(float **buf, size_t *cap, size_t n) {
    if (*cap < n) {
        free(*buf);
        size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
        *buf = aligned_alloc(64, bytes);
        *cap = *buf ? n : 0;
    }
    return *buf;
}

static int ek_sgemm_blocked(ek_ukernel uk, ek_packer packA, ek_packer packB, size_t mr, size_t nr,
                            int transA, int transB, size_t m, size_t n, size_t k, float alpha,
                            const float *a, size_t lda, const float *b, size_t ldb,
                            float beta, float *c, size_t ldc) {
    if (m == 0 || n == 0) return 0;
    if (k == 0) {
        for (size_t i = 0; i < m; i++) for (size_t j = 0; j < n; j++) {
            float *x = c + i * ldc + j;
            *x = beta == 0 ? 0 : beta * *x;
        }
        return 0;
    }
    size_t ncMax = n < EK_NC ? (n + nr - 1) / nr * nr : EK_NC;
    size_t mcMax = m < EK_MC ? (m + mr - 1) / mr * mr : EK_MC;
    size_t kcMax = k < EK_KC ? k : EK_KC;
    float *bp = ek_buffer(&ek_buf_b, &ek_cap_b, kcMax * ncMax);
    float *ap = ek_buffer(&ek_buf_a, &ek_cap_a, kcMax * mcMax);
    if (!bp || !ap) return -1;
    float tile[EK_5_MR * EK_5_NR > EK_2_MR * EK_2_NR ? EK_5_MR * EK_5_NR : EK_2_MR * EK_2_NR];
    for (size_t jc = 0; jc < n; jc += EK_NC) {
        size_t nc = n - jc < EK_NC ? n - jc : EK_NC;
        for (size_t pc = 0; pc < k; pc += EK_KC) {
            size_t kc = k - pc < EK_KC ? k - pc : EK_KC;
            int mode = pc > 0 ? EK_ACCUMULATE : (beta == 0 ? EK_STORE : EK_STORE_BETA);
            packB(transB, b, ldb, pc, kc, jc, nc, nr, bp);
            for (size_t ic = 0; ic < m; ic += EK_MC) {
                size_t mc = m - ic < EK_MC ? m - ic : EK_MC;
                packA(transA, a, lda, ic, mc, pc, kc, mr, ap);
                for (size_t jr = 0; jr < nc; jr += nr) {
                    size_t cols = nc - jr < nr ? nc - jr : nr;
                    for (size_t ir = 0; ir < mc; ir += mr) {
                        size_t rows = mc - ir < mr ? mc - ir : mr;
                        float *ct = c + (ic + ir) * ldc + jc + jr;
                        if (rows == mr && cols == nr) {
                            uk(kc, ap + ir * kc, bp + jr * kc, ct, ldc, alpha, beta, mode);
                            continue;
                        }
                        uk(kc, ap + ir * kc, bp + jr * kc, tile, nr, 1, 0, EK_RAW);
                        for (size_t r = 0; r < rows; r++) for (size_t j = 0; j < cols; j++) {
                            float *x = ct + r * ldc + j;
                            float t = alpha * tile[r * nr + j];
                            if (mode == EK_STORE) { *x = t; }
                            else if (mode == EK_STORE_BETA) { float u = beta * *x; *x = t + u; }
                            else { float v = *x; *x = v + t; }
                        }
                    }
                }
            }
        }
    }
    return 0;
}

/* ---- skinny products: one column (n = 1, a Linear layer with one output) or one row
   (m = 1, its weight gradient). The blocked path would run a 12 × 32 register tile for one
   useful row or column. These loops keep the documented order exactly: for every element,
   acc = fma(a[i,p], b[p,j], acc) over p in each k-block from 0, then the same epilogue, so
   they give the blocked path's bits (tested against wide products' rows and columns). ---- */
static inline __attribute__((always_inline)) void ek_epilogue(float *x, float acc, float alpha, float beta, int mode) {
    float t = alpha * acc;
    if (mode == EK_STORE) { *x = t; }
    else if (mode == EK_STORE_BETA) { float u = beta * *x; *x = t + u; }
    else { float v = *x; *x = v + t; }
}

/* n = 1: eight rows at a time (eight independent chains). */
static inline __attribute__((always_inline)) void ek_column_body(int transA, int transB, size_t m, size_t k, float alpha,
        const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    enum { R = 8 };
    for (size_t i0 = 0; i0 < m; i0 += R) {
        size_t rows = m - i0 < R ? m - i0 : R;
        for (size_t pc = 0; pc < k; pc += EK_KC) {
            size_t kc = k - pc < EK_KC ? k - pc : EK_KC;
            int mode = pc > 0 ? EK_ACCUMULATE : (beta == 0 ? EK_STORE : EK_STORE_BETA);
            float acc[R] = {0};
            if (rows == R && !transA) {
                const float *ar = a + i0 * lda + pc;
                for (size_t p = 0; p < kc; p++) {
                    float bp = transB ? b[pc + p] : b[(pc + p) * ldb];
                    for (int r = 0; r < R; r++) acc[r] = fmaf(ar[r * lda + p], bp, acc[r]);
                }
            } else if (rows == R) {
                for (size_t p = 0; p < kc; p++) {
                    float bp = transB ? b[pc + p] : b[(pc + p) * ldb];
                    const float *ap = a + (pc + p) * lda + i0;
                    for (int r = 0; r < R; r++) acc[r] = fmaf(ap[r], bp, acc[r]);
                }
            } else {
                for (size_t p = 0; p < kc; p++) {
                    float bp = transB ? b[pc + p] : b[(pc + p) * ldb];
                    for (size_t r = 0; r < rows; r++) {
                        float av = transA ? a[(pc + p) * lda + i0 + r] : a[(i0 + r) * lda + pc + p];
                        acc[r] = fmaf(av, bp, acc[r]);
                    }
                }
            }
            for (size_t r = 0; r < rows; r++) ek_epilogue(c + (i0 + r) * ldc, acc[r], alpha, beta, mode);
        }
    }
}

/* m = 1: columns in chunks of 256, one chain per column (vectorized across columns when B
   is not transposed). */
static inline __attribute__((always_inline)) void ek_row_body(int transA, int transB, size_t n, size_t k, float alpha,
        const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c) {
    enum { J = 256 };
    float acc[J];
    for (size_t j0 = 0; j0 < n; j0 += J) {
        size_t cols = n - j0 < J ? n - j0 : J;
        for (size_t pc = 0; pc < k; pc += EK_KC) {
            size_t kc = k - pc < EK_KC ? k - pc : EK_KC;
            int mode = pc > 0 ? EK_ACCUMULATE : (beta == 0 ? EK_STORE : EK_STORE_BETA);
            for (size_t j = 0; j < cols; j++) acc[j] = 0;
            for (size_t p = 0; p < kc; p++) {
                float ap = transA ? a[(pc + p) * lda] : a[pc + p];
                if (transB) { for (size_t j = 0; j < cols; j++) acc[j] = fmaf(ap, b[(j0 + j) * ldb + pc + p], acc[j]); }
                else { const float *bp = b + (pc + p) * ldb + j0; for (size_t j = 0; j < cols; j++) acc[j] = fmaf(ap, bp[j], acc[j]); }
            }
            for (size_t j = 0; j < cols; j++) ek_epilogue(c + j0 + j, acc[j], alpha, beta, mode);
        }
    }
}

static void ek_skinny_portable(int transA, int transB, size_t m, size_t n, size_t k, float alpha,
        const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    if (n == 1) ek_column_body(transA, transB, m, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else ek_row_body(transA, transB, n, k, alpha, a, lda, b, ldb, beta, c);
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
__attribute__((target("avx2,fma")))
static void ek_skinny_avx2(int transA, int transB, size_t m, size_t n, size_t k, float alpha,
        const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    if (n == 1) ek_column_body(transA, transB, m, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else ek_row_body(transA, transB, n, k, alpha, a, lda, b, ldb, beta, c);
}

__attribute__((target("avx512f,avx2,fma")))
static void ek_skinny_avx512(int transA, int transB, size_t m, size_t n, size_t k, float alpha,
        const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    if (n == 1) ek_column_body(transA, transB, m, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else ek_row_body(transA, transB, n, k, alpha, a, lda, b, ldb, beta, c);
}
#endif

int ek_sgemm_isa_available(int isa) {
    switch (isa) {
    case EK_ISA_PORTABLE: return 1;
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    case EK_ISA_AVX2: __builtin_cpu_init(); return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case EK_ISA_AVX512: __builtin_cpu_init(); return __builtin_cpu_supports("avx512f");
#endif
    default: return 0;
    }
}

int ek_sgemm_best_isa(void) {
    static int best = -1;
    if (best < 0) {
        best = ek_sgemm_isa_available(EK_ISA_AVX512) ? EK_ISA_AVX512
             : ek_sgemm_isa_available(EK_ISA_AVX2) ? EK_ISA_AVX2 : EK_ISA_PORTABLE;
    }
    return best;
}

int ek_sgemm_isa(int isa, int transA, int transB, size_t m, size_t n, size_t k, float alpha,
                 const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    if (!ek_sgemm_isa_available(isa)) return -2;
    if ((m == 1 || n == 1) && k > 0) {
        switch (isa) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
        case EK_ISA_AVX512: ek_skinny_avx512(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); return 0;
        case EK_ISA_AVX2: ek_skinny_avx2(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); return 0;
#endif
        default: ek_skinny_portable(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); return 0;
        }
    }
    switch (isa) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    case EK_ISA_AVX512:
        return ek_sgemm_blocked(ek_ukernel_avx512, ek_pack_a_avx, ek_pack_b_avx, EK_5_MR, EK_5_NR, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case EK_ISA_AVX2:
        return ek_sgemm_blocked(ek_ukernel_avx2, ek_pack_a_avx, ek_pack_b_avx, EK_2_MR, EK_2_NR, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
    default:
        return ek_sgemm_blocked(ek_ukernel_portable, ek_pack_a, ek_pack_b, EK_P_MR, EK_P_NR, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}

int ek_sgemm(int transA, int transB, size_t m, size_t n, size_t k, float alpha,
             const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    return ek_sgemm_isa(ek_sgemm_best_isa(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
