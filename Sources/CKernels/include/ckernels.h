/* Eidetic's C kernels: Float32 loops that Swift does not vectorize well (exp and the
   activations built on it), and the exact kNN's integer kernels. The elementwise
   functions take n elements and may be called with x == y (in place). Compiled at -O3;
   on x86-64 each elementwise one exists as a generic and an AVX2+FMA clone picked at load
   time, and the kNN dot-product kernel runs only where ek_vnni_available() says so. */
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
/* Exact k-nearest-neighbour search on uint8 images with AVX-512 VNNI (see ckernels.c). */
#define EK_DOT_MR 12  /* query rows per panel */
#define EK_DOT_NR 32  /* reference rows per panel */
#define EK_REF_BLOCK 128  /* references per block of ek_knn_exact_tile: ~400 KB packed at D = 3072 */
/* 1 when this CPU (and OS) runs AVX-512 VNNI, else 0; the functions below need it. */
int ek_vnni_available(void);
/* Bytes of `rows` images of d bytes packed in panels of `panel` rows (rows and d padded). */
size_t ek_panel_bytes(size_t rows, size_t d, size_t panel);
/* Packs rows × d bytes into panels [panel][ceil(d/4)][panel rows][4], zero-padded; with
   to_signed = 1 each byte x is stored as the int8 x − 128 (the query side). */
void ek_pack_panels(const uint8_t *x, size_t rows, size_t d, size_t panel, int to_signed, uint8_t *out);
/* For qk queries (packed with panel EK_DOT_MR, to_signed; qn = Σq²) against nr references
   (packed with panel EK_DOT_NR; rterm = Σr² − 256·Σr): each query's `cap` smallest keys
   (exact squared distance << 32 | reference index) as a max-heap in heap[i·cap …],
   count[i] of them; reference self0 + i is skipped for query i when self0 ≥ 0.
   buf holds ceil(qk/12)·12 × EK_REF_BLOCK int32. Needs d ≤ 65536 and nr < 2^32. */
void ek_knn_exact_tile(const uint8_t *a, size_t qk, const int64_t *qn,
                       const uint8_t *b, size_t nr, const int64_t *rterm, size_t d,
                       int64_t self0, uint64_t *heap, size_t cap, size_t *count, int32_t *buf);
/* All pairs (q0 + i, j) with q0 + i < j < nr and exact squared distance ≤ bound, for qk
   rows q0 … of a set (packed as queries, qn = Σq²) against the whole set (packed as
   references, rterm as above): keys (q0 + i) << 32 | j, up to cap of them in out (in
   no particular order); returns how many there are (over cap: call again with more room). */
size_t ek_pairs_within_tile(const uint8_t *a, size_t qk, const int64_t *qn, size_t q0,
                            const uint8_t *b, size_t nr, const int64_t *rterm, size_t d,
                            int64_t bound, uint64_t *out, size_t cap, int32_t *buf);
/* C = A·B computed row by row with one fixed summation order (see ckernels.c): row i of C
   depends only on row i of A and on B, whatever m is. A [m][k] (lda), B [k][n] (ldb). */
void ek_rows_matmul_f32(const float *a, size_t m, size_t k, size_t lda, const float *b, size_t ldb,
                        size_t n, float *c, size_t ldc);
void ek_rows_matmul_f64(const double *a, size_t m, size_t k, size_t lda, const double *b, size_t ldb,
                        size_t n, double *c, size_t ldc);
/* Eidetic's single-precision GEMM (gemm.c): row-major C = alpha·op(A)·op(B) + beta·C with
   op(X) = Xᵀ when trans is non-zero; one thread per call. One summation order by
   construction: the result is identical bit for bit on every ISA below and for any m and n
   (row i of C depends only on row i of op(A) and on op(B)). Returns 0, or -1 when packing
   memory cannot be had, -2 for an ISA this CPU lacks. */
#define EK_ISA_PORTABLE 0
#define EK_ISA_AVX2 1
#define EK_ISA_AVX512 2
int ek_sgemm(int transA, int transB, size_t m, size_t n, size_t k, float alpha,
             const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc);
/* The same with a chosen micro-kernel (tests and benchmarks). */
int ek_sgemm_isa(int isa, int transA, int transB, size_t m, size_t n, size_t k, float alpha,
                 const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc);
/* 1 when this CPU runs that micro-kernel. */
int ek_sgemm_isa_available(int isa);
/* The fastest micro-kernel this CPU runs (what ek_sgemm uses). */
int ek_sgemm_best_isa(void);
/* Winograd F(2×2, 3×3) 3×3 stride-1 padding-1 convolution of `images` images (winograd.c):
   x [images][C][H][W] → y [images][O][H][W] (+ bias [O] unless NULL), H and W even. u =
   ek_wino2_weights of w [O][C][3][3] (flipped = 1: the input-gradient map of a forward
   weight [C][O][3][3], i.e. w'[c][o][8 − k] with O = the forward's input channels);
   scratch holds ek_wino2_scratch_floats. An image's output does not depend on the other
   images of the call, and is the same on every ISA; returns 0, -3 for odd sizes, or an
   ek_sgemm_isa error. */
int ek_wino2_applies(size_t H, size_t W);
size_t ek_wino2_weight_floats(size_t O, size_t C);
size_t ek_wino2_scratch_floats(size_t images, size_t C, size_t O, size_t H, size_t W);
void ek_wino2_weights(const float *w, size_t O, size_t C, int flipped, float *u);
int ek_wino2_images(int isa, const float *x, size_t images, size_t C, size_t H, size_t W, const float *u, size_t O,
                    const float *bias, float *y, float *scratch);
/* GroupNorm for Float, one image x [C][L] with G groups (groupnorm.c): y = GN(x)·γ + β,
   then SiLU when silu = 1; mean and rstd [G] as Float. Double statistics in fixed lanes.
   With shift [C] (else NULL) it normalizes x + shift[c] (each value one float addition, as
   a separately added tensor would hold it: the U-Net's time-embedding add) without writing
   that tensor; row then holds L floats of scratch. */
void ek_groupnorm_forward_f32(const float *x, size_t C, size_t L, size_t G, const float *gamma, const float *beta,
                              const float *shift, double eps, int silu, float *y, float *mean, float *rstd, float *row);
/* Its backward for one image: gy is the gradient of the output (of SiLU(GN) when silu = 1);
   writes dx (unless NULL) and sums [C][2] = (Σ dŷ·x̂, Σ dŷ) per channel (the affine
   gradients of this image); scratch holds (C/G)·L floats (used when silu = 1). */
void ek_groupnorm_backward_f32(const float *x, const float *gy, size_t C, size_t L, size_t G,
                               const float *gamma, const float *beta, const float *mean, const float *rstd, int silu,
                               float *scratch, float *dx, float *sums);

/* Direct 3×3, stride-1, padding-1 convolutions for any channel counts (conv_direct.c):
   no im2col, weights packed once per call. Applies when W is a multiple of 16, or W = 8
   with H even. One summation order for every ISA (see the file): same bits everywhere.
   isa: EK_ISA_* (ek_sgemm_best_isa() for the fastest); returns 0, -2 for an ISA this CPU
   lacks, -3 for a shape it does not handle. */
int ek_conv3x3d_applies(size_t H, size_t W);
/* Floats of zero-bordered planes for one image of C channels (scratch of the calls below). */
size_t ek_conv3x3d_pad_floats(size_t C, size_t H, size_t W);
/* Floats of the packed weight panel of an O-output, C-input map for that ISA's tile. */
size_t ek_conv3x3d_packed_floats(int isa, size_t O, size_t C);
/* Packs weights for ek_conv3x3d_image: flipped = 0: wt [O][C][3][3] (the forward);
   flipped = 1: wt [C][O][3][3] read transposed and flipped (the input gradient of the conv
   with those weights: O = its input channels, C = its output channels). */
void ek_conv3x3d_pack(int isa, const float *wt, size_t O, size_t C, int flipped, float *packed);
/* out [O][H][W] = bias[o] (or 0) + Σ_c,kh,kw w·in[c][h+kh−1][w+kw−1] for one image in
   [C][H][W]; pad: ek_conv3x3d_pad_floats(C, H, W) floats of scratch. */
int ek_conv3x3d_image(int isa, const float *in, size_t C, size_t H, size_t W, const float *packed, size_t O,
                      const float *bias, float *out, float *pad);
/* Copies one image [C][H][W] into zero-bordered planes (ek_conv3x3d_pad_floats(C, H, W)). */
void ek_conv3x3d_pad(const float *in, size_t C, size_t H, size_t W, float *pad);
/* dw [O][C][3][3] += Σ over `count` images (padded: `count` images' planes from
   ek_conv3x3d_pad, one after another; gy [count][O][H][W]) of gy[o]·shifted in[c], for
   output channels o0 ≤ o < o1 only (rows outside are untouched). */
int ek_conv3x3d_weight_grad(int isa, const float *padded, size_t count, size_t C, size_t H, size_t W,
                            const float *gy, size_t O, size_t o0, size_t o1, float *dw);

/* bf16 direct 3×3, stride-1, padding-1 convolutions (conv_bf16.c; train.precision =
   "bf16"): bf16 products, float sums, VDPBF16PS's arithmetic on every ISA (the native
   instruction with AVX512-BF16, the same FMAs and flushes elsewhere: same bits). */
#define EK_ISA_AVX512BF16 3
/* float → bf16: round to nearest even, subnormals to a signed zero, NaN stays NaN. */
uint16_t ek_bf16_of(float f);
void ek_bf16_convert(const float *in, size_t n, uint16_t *out);
/* 1 when this CPU has AVX512-BF16; the fastest ISA for the calls below. */
int ek_bf16_native(void);
int ek_conv3x3b_best_isa(void);
/* W a multiple of 32, W = 16 with H even, or W = 8 with H a multiple of 4. */
int ek_conv3x3b_applies(size_t H, size_t W);
/* Forward (and input gradient): the image as zero-bordered planes of channel pairs
   (ek_conv3x3b_pair_words uint32 per image), weights packed as pairs like ek_conv3x3d_pack
   (flipped = 1: the input-gradient map). out [O][H][W] = bias (or 0) + the sums. */
size_t ek_conv3x3b_pair_words(size_t C, size_t H, size_t W);
void ek_conv3x3b_pad_pairs(const float *in, size_t C, size_t H, size_t W, uint32_t *pad);
size_t ek_conv3x3b_packed_words(int isa, size_t O, size_t C);
void ek_conv3x3b_pack(int isa, const float *wt, size_t O, size_t C, int flipped, uint32_t *packed);
int ek_conv3x3b_image(int isa, const uint32_t *pad, size_t C, size_t H, size_t W, const uint32_t *packed, size_t O,
                      const float *bias, float *out);
/* Weight gradient: images as plain zero-bordered bf16 planes (ek_conv3x3b_plane_halves
   uint16 per image), gy [count][O][H][W] as bf16; dw rows o0 ≤ o < o1 += the sums. */
size_t ek_conv3x3b_plane_halves(size_t C, size_t H, size_t W);
void ek_conv3x3b_pad_plain(const float *in, size_t C, size_t H, size_t W, uint16_t *pad);
int ek_conv3x3b_weight_grad(int isa, const uint16_t *padded, size_t count, size_t C, size_t H, size_t W,
                            const uint16_t *gy, size_t O, size_t o0, size_t o1, float *dw);

/* Direct 3×3, stride-1, padding-1 convolution of one image (conv3x3.c), for layers with
   few channels on one side; W must be a multiple of 16. in [C][H][W], wt [O][C][3][3],
   out [O][H][W] = bias[o] (or 0 when bias is NULL) + Σ_c,kh,kw wt·in[c][h+kh−1][w+kw−1];
   pad is scratch of ek_conv3x3_scratch(C, H, W) floats. The input gradient is this same
   function applied to dY with the weights transposed and flipped. */
size_t ek_conv3x3_scratch(size_t C, size_t H, size_t W);
void ek_conv3x3_image(const float *in, size_t C, size_t H, size_t W, const float *wt, size_t O,
                      const float *bias, float *out, float *pad);
/* dw[o][c][kh][kw] += Σ_h,w gy[o][h][w] · in[c][h+kh−1][w+kw−1] for one image. */
void ek_conv3x3_weight_grad(const float *in, size_t C, size_t H, size_t W, const float *gy, size_t O,
                            float *dw, float *pad);
/* im2col / col2im for Float (im2col.c), as Convolution.swift's generic ones: col[(c·KH + kh)·KW + kw][oh·OW + ow]
   = x[c][oh·s − pad + kh][ow·s − pad + kw] (0 outside), rows ld apart; col2im adds the
   adjoint into x (which the caller zeroes). */
void ek_im2col_f32(const float *x, size_t C, size_t H, size_t W, size_t KH, size_t KW, size_t stride,
                   size_t pad, float *col, size_t ld);
void ek_col2im_f32(const float *col, size_t C, size_t H, size_t W, size_t KH, size_t KW, size_t stride,
                   size_t pad, float *x, size_t ld);
/* BatchNorm (training) over channels [ch0, ch1) of x [n][c][l] (batchnorm.c): per-channel batch
   mean and biased variance in Double, y = (x − mean)·rstd·gamma + beta (gamma, beta may be
   NULL), then the activation act (0 none, 1 ReLU, 2 LeakyReLU with `slope`); the backward
   pass takes dy of the activation's output and gives dx (may be NULL), dgamma = Σ dy'·x̂ and
   dbeta = Σ dy' (dy' = dy through the activation). */
void ek_batchnorm_forward_f32(const float *x, size_t n, size_t c, size_t l, size_t ch0, size_t ch1,
                              const float *gamma, const float *beta, double eps, int act, float slope,
                              float *y, float *mean, float *rstd, float *variance);
void ek_batchnorm_backward_f32(const float *x, const float *gy, size_t n, size_t c, size_t l, size_t ch0, size_t ch1,
                               const float *gamma, const float *beta, const float *mean, const float *rstd, int act, float slope,
                               float *dx, float *dgamma, float *dbeta);
/* One Adam step over n Float parameters (optim.c): the Swift loop's operations, vectorized. */
void ek_adam_f32(float *p, const float *g, float *m, float *v, size_t n,
                 float b1, float b2, float stepSize, float rc2, float eps, float l2, float shrink);
/* Fork-join pool (pool.c): runs fn(ctx, chunk, worker) for chunk in [0, chunks) on the
   calling thread (worker 0) and up to workers − 1 pool threads (worker 1 …); returns when
   all chunks are done. Chunks may run on any thread in any order. */
typedef void (*ek_pool_fn)(void *ctx, size_t chunk, size_t worker);
void ek_pool_run(size_t workers, size_t chunks, ek_pool_fn fn, void *ctx);

#endif
