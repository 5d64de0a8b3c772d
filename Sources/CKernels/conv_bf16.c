/* bf16 direct 3×3, stride-1, padding-1 convolutions (train.precision = "bf16"): the same
   register tiles as conv_direct.c, with every product taken between bfloat16 values and
   every sum kept in float (mixed precision, as PyTorch's CPU autocast runs convolutions).

   The arithmetic is defined by AVX512-BF16's VDPBF16PS, lane by lane:
       acc = ftz(acc + x[odd]·w[odd]);  acc = ftz(acc + x[even]·w[even])
   (the odd element of a pair first, each a float FMA rounded to nearest even; a product of
   two bf16 values is exact in float; ftz flushes a subnormal result to a signed zero). The
   native clone issues that instruction; the AVX-512F, AVX2 and portable clones compute
   the same two FMAs and flushes, so every CPU gives the same bits (tested), just slower
   without BF16 hardware. Values become bf16 by ek_bf16_of: round to nearest even,
   subnormals to a signed zero, NaN stays NaN, so inputs are never subnormal.

   Pairs run along the reduction:
     forward (and the input gradient, the forward with flipped weights): pairs of input
       channels (2p, 2p+1); the image is copied once into zero-bordered planes of such
       pairs (one uint32 per position, the even channel in the low half), weights packed
       [O/MR][C/2·9][MR] as pairs; an odd channel count gets a zero channel. Order for one
       output: blocks of 16 pairs, s_b the dot chain from +0 over (p, kh, kw), y = s_0 +
       s_1 + … (float adds), then + bias;
     weight gradient: pairs of adjacent windows (2l, 2l+1); images as plain zero-bordered
       bf16 planes, dY as bf16 rows; each of 16 lanes sums its pairs (32 windows a step,
       images in order), the lanes added pairwise (8, 4, 2, 1), the result added to dw.
   Shapes: W a multiple of 32, or W = 16 with H even, or W = 8 with H a multiple of 4. */
#include "ckernels.h"
#include <string.h>

#pragma STDC FP_CONTRACT OFF

typedef float ek_b16f __attribute__((vector_size(64)));
typedef uint32_t ek_b16u __attribute__((vector_size(64)));
typedef uint32_t ek_b8u __attribute__((vector_size(32)));
typedef uint16_t ek_h16 __attribute__((vector_size(32)));
typedef uint16_t ek_h8 __attribute__((vector_size(16)));

#define B_LOADU(p) ({ ek_b16u b_v_; memcpy(&b_v_, (p), sizeof b_v_); b_v_; })
#define B_LOADU8(p) ({ ek_b8u b_h_; memcpy(&b_h_, (p), sizeof b_h_); b_h_; })
#define B_LOADH16(p) ({ ek_h16 b_q_; memcpy(&b_q_, (p), sizeof b_q_); b_q_; })
#define B_LOADH8(p) ({ ek_h8 b_e_; memcpy(&b_e_, (p), sizeof b_e_); b_e_; })
#define B_STOREF(p, v) do { ek_b16f b_w_ = (v); memcpy((p), &b_w_, sizeof b_w_); } while (0)
#define B_LOADF(p) ({ ek_b16f b_f_; memcpy(&b_f_, (p), sizeof b_f_); b_f_; })
#define B_SPLATF(x) ((ek_b16f){0} + (float)(x))
#define B_SPLATU(x) ((ek_b16u){0} + (uint32_t)(x))

#define EK_CB_MAXMR 8
#define EK_CB_MAXNV 2
#define EK_CB_MAXMO 3
/* pairs of input channels per block of the forward's summation order (32 channels) */
#define EK_CB_PB 16

uint16_t ek_bf16_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

int ek_bf16_native(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

int ek_conv3x3b_best_isa(void) { return ek_bf16_native() ? EK_ISA_AVX512BF16 : ek_sgemm_best_isa(); }

static int ek_cb_available(int isa) { return isa == EK_ISA_AVX512BF16 ? ek_bf16_native() : ek_sgemm_isa_available(isa); }

int ek_conv3x3b_applies(size_t H, size_t W) {
    return (W % 32 == 0 && W > 0 && H > 0) || (W == 16 && H % 2 == 0 && H > 0) || (W == 8 && H % 4 == 0 && H > 0);
}

static int ek_cb_mr(int isa) { return isa >= EK_ISA_AVX512 ? 8 : 4; }

size_t ek_conv3x3b_pair_words(size_t C, size_t H, size_t W) { return (C + 1) / 2 * (H + 2) * (W + 2); }

size_t ek_conv3x3b_packed_words(int isa, size_t O, size_t C) {
    size_t mr = (size_t)ek_cb_mr(isa);
    return (O + mr - 1) / mr * mr * ((C + 1) / 2) * 9;
}

void ek_conv3x3b_pack(int isa, const float *wt, size_t O, size_t C, int flipped, uint32_t *packed) {
    size_t mr = (size_t)ek_cb_mr(isa), P = (C + 1) / 2, K = P * 9;
    for (size_t ob = 0; ob < (O + mr - 1) / mr; ob++)
        for (size_t q = 0; q < K; q++) {
            size_t p = q / 9, k = q % 9;
            for (size_t r = 0; r < mr; r++) {
                size_t o = ob * mr + r;
                uint32_t pair = 0;
                for (size_t e = 0; e < 2; e++) {
                    size_t c = 2 * p + e;
                    if (o >= O || c >= C) continue;
                    float v = flipped ? wt[(c * O + o) * 9 + 8 - k] : wt[(o * C + c) * 9 + k];
                    pair |= (uint32_t)ek_bf16_of(v) << (16 * e);
                }
                packed[(ob * K + q) * mr + r] = pair;
            }
        }
}

size_t ek_conv3x3b_plane_halves(size_t C, size_t H, size_t W) { return C * (H + 2) * (W + 2); }

/* ek_bf16_of on 16 lanes of float bits: the bf16 in each lane's low half. */
#define B_TO_BF16(u) ({ ek_b16u b_u_ = (u); \
        ek_b16u b_r_ = (b_u_ + B_SPLATU(0x7fffu) + ((b_u_ >> 16) & B_SPLATU(1u))) >> 16; \
        ek_b16u b_z_ = (ek_b16u)((b_u_ & B_SPLATU(0x7f800000u)) == B_SPLATU(0u)); \
        ek_b16u b_n_ = (ek_b16u)((b_u_ & B_SPLATU(0x7fffffffu)) > B_SPLATU(0x7f800000u)); \
        b_r_ = (b_r_ & ~b_z_) | ((b_u_ >> 16) & B_SPLATU(0x8000u) & b_z_); \
        (b_r_ & ~b_n_) | (((b_u_ >> 16) | B_SPLATU(0x40u)) & b_n_); })

/* Conversions, one body per ISA (they run over every activation a bf16 conv touches). */
static inline __attribute__((always_inline)) void ek_cb_convert_body(const float *in, size_t n, uint16_t *out) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        ek_h16 h = __builtin_convertvector(B_TO_BF16(B_LOADU(in + i)), ek_h16);
        memcpy(out + i, &h, sizeof h);
    }
    for (; i < n; i++) out[i] = ek_bf16_of(in[i]);
}

/* pad[p][1 + h][1 + w] = (bf16 in[2p][h][w], bf16 in[2p+1][h][w]), zero border. */
static inline __attribute__((always_inline)) void ek_cb_pad_pairs_body(const float *in, size_t C, size_t H, size_t W, uint32_t *pad) {
    size_t PW = W + 2, P = (C + 1) / 2, plane = (H + 2) * PW;
    memset(pad, 0, P * plane * sizeof(uint32_t));
    for (size_t p = 0; p < P; p++)
        for (size_t h = 0; h < H; h++) {
            const float *a = in + (2 * p * H + h) * W, *b = 2 * p + 1 < C ? in + ((2 * p + 1) * H + h) * W : NULL;
            uint32_t *d = pad + p * plane + (h + 1) * PW + 1;
            size_t w = 0;
            for (; w + 16 <= W; w += 16) {
                ek_b16u v = B_TO_BF16(B_LOADU(a + w));
                if (b) v |= B_TO_BF16(B_LOADU(b + w)) << 16;
                memcpy(d + w, &v, sizeof v);
            }
            for (; w < W; w++) d[w] = (uint32_t)ek_bf16_of(a[w]) | (b ? (uint32_t)ek_bf16_of(b[w]) << 16 : 0);
        }
}

/* pad[c][1 + h][1 + w] = bf16 in[c][h][w], zero border. */
static inline __attribute__((always_inline)) void ek_cb_pad_plain_body(const float *in, size_t C, size_t H, size_t W, uint16_t *pad) {
    size_t PW = W + 2, plane = (H + 2) * PW;
    memset(pad, 0, C * plane * sizeof(uint16_t));
    for (size_t c = 0; c < C; c++)
        for (size_t h = 0; h < H; h++) ek_cb_convert_body(in + (c * H + h) * W, W, pad + c * plane + (h + 1) * PW + 1);
}

#define EK_CB_CONVERT_CLONE(SUFFIX, TARGET) \
    TARGET static void ek_cb_convert_##SUFFIX(const float *in, size_t n, uint16_t *out) { ek_cb_convert_body(in, n, out); } \
    TARGET static void ek_cb_pad_pairs_##SUFFIX(const float *in, size_t C, size_t H, size_t W, uint32_t *pad) { \
        ek_cb_pad_pairs_body(in, C, H, W, pad); } \
    TARGET static void ek_cb_pad_plain_##SUFFIX(const float *in, size_t C, size_t H, size_t W, uint16_t *pad) { \
        ek_cb_pad_plain_body(in, C, H, W, pad); }
EK_CB_CONVERT_CLONE(portable, )
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
EK_CB_CONVERT_CLONE(avx2, __attribute__((target("avx2,fma"))))
EK_CB_CONVERT_CLONE(avx512, __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))))
#define EK_CB_CONVERT_DISPATCH(NAME, ...) do { switch (ek_sgemm_best_isa()) { \
        case EK_ISA_AVX512: NAME##_avx512(__VA_ARGS__); return; \
        case EK_ISA_AVX2: NAME##_avx2(__VA_ARGS__); return; \
        default: NAME##_portable(__VA_ARGS__); return; } } while (0)
#else
#define EK_CB_CONVERT_DISPATCH(NAME, ...) do { NAME##_portable(__VA_ARGS__); return; } while (0)
#endif

void ek_bf16_convert(const float *in, size_t n, uint16_t *out) { EK_CB_CONVERT_DISPATCH(ek_cb_convert, in, n, out); }
void ek_conv3x3b_pad_pairs(const float *in, size_t C, size_t H, size_t W, uint32_t *pad) {
    EK_CB_CONVERT_DISPATCH(ek_cb_pad_pairs, in, C, H, W, pad);
}
void ek_conv3x3b_pad_plain(const float *in, size_t C, size_t H, size_t W, uint16_t *pad) {
    EK_CB_CONVERT_DISPATCH(ek_cb_pad_plain, in, C, H, W, pad);
}

/* The two halves of 16 pairs as floats: even elements (low halves) and odd (high). */
#define B_EVEN(u) ((ek_b16f)((u) << 16))
#define B_ODD(u) ((ek_b16f)((u) & B_SPLATU(0xffff0000u)))

/* acc = ftz(acc): |acc| < FLT_MIN becomes a zero of acc's sign; NaN and the rest kept. */
#define B_FTZ(acc) ({ ek_b16f b_a_ = (acc); ek_b16u b_m_ = (ek_b16u)(__builtin_elementwise_abs(b_a_) < B_SPLATF(1.17549435e-38f)); \
        (ek_b16f)((ek_b16u)b_a_ & ~(b_m_ & B_SPLATU(0x7fffffffu))); })

/* acc + Σ of the pairs of a·b, VDPBF16PS's order and flushes (emulated). */
#define B_DOT_EMU(acc, a, b) ({ ek_b16u b_x_ = (a), b_y_ = (b); \
        ek_b16f b_r_ = B_FTZ(__builtin_elementwise_fma(B_ODD(b_x_), B_ODD(b_y_), (acc))); \
        B_FTZ(__builtin_elementwise_fma(B_EVEN(b_x_), B_EVEN(b_y_), b_r_)); })

/* The instruction itself, for the native clone (AT&T operand order: acc += a·b pairs). */
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define B_DOT_NATIVE(acc, a, b) ({ ek_b16f b_s_ = (acc); ek_b16u b_p_ = (a), b_q_ = (b); \
        __asm__("vdpbf16ps %2, %1, %0" : "+v"(b_s_) : "v"(b_p_), "v"(b_q_)); b_s_; })
#endif

/* 16 windows of pairs from a padded pair plane: one row (W ≥ 16) or two rows of 8 (W = 8). */
#define B_PAIRS(p, half, PW) ((half) ? __builtin_shufflevector(B_LOADU8(p), B_LOADU8((p) + (PW)), \
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) : B_LOADU(p))

/* 32 windows (16 pairs) of a plain padded bf16 plane starting at window j of row-major
   windows: one row (W % 32 = 0), two rows of 16 or four rows of 8. */
#define B_WIN32(p, rows, PW) ((rows) == 1 ? B_LOADU(p) \
        : (rows) == 2 ? (ek_b16u)__builtin_shufflevector(B_LOADH16(p), B_LOADH16((p) + (PW)), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, \
              11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31) \
        : (ek_b16u)__builtin_shufflevector(__builtin_shufflevector(B_LOADH8(p), B_LOADH8((p) + (PW)), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \
              10, 11, 12, 13, 14, 15), __builtin_shufflevector(B_LOADH8((p) + 2 * (PW)), B_LOADH8((p) + 3 * (PW)), 0, 1, 2, 3, 4, \
              5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, \
              21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31))

#define CB_DOT(acc, a, b) B_DOT_EMU(acc, a, b)
#define CB_TARGET
#define CB_NAME(x) ek_cb_portable_##x
#include "conv_bf16_kernels.h"
#undef CB_TARGET
#undef CB_NAME
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define CB_TARGET __attribute__((target("avx2,fma")))
#define CB_NAME(x) ek_cb_avx2_##x
#include "conv_bf16_kernels.h"
#undef CB_TARGET
#undef CB_NAME
#define CB_TARGET __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define CB_NAME(x) ek_cb_avx512_##x
#include "conv_bf16_kernels.h"
#undef CB_TARGET
#undef CB_NAME
#undef CB_DOT
#define CB_DOT(acc, a, b) B_DOT_NATIVE(acc, a, b)
#define CB_TARGET __attribute__((target("avx512bf16,avx512bw,avx512f,avx512vl,avx2,fma")))
#define CB_NAME(x) ek_cb_bf16_##x
#include "conv_bf16_kernels.h"
#undef CB_TARGET
#undef CB_NAME
#endif
#undef CB_DOT

#define EK_CB_CLONE(SUFFIX, TARGET, MR, NV, MO) \
    TARGET static void ek_cb_image_##SUFFIX(size_t C, size_t H, size_t W, const uint32_t *packed, \
                                            size_t O, const float *bias, float *out, const uint32_t *pad) { \
        if (W == 8) ek_cb_##SUFFIX##_image_body(C, H, W, packed, O, bias, out, pad, MR, NV, 1); \
        else ek_cb_##SUFFIX##_image_body(C, H, W, packed, O, bias, out, pad, MR, NV, 0); \
    } \
    TARGET static void ek_cb_wgrad_##SUFFIX(const uint16_t *pad, size_t count, size_t C, size_t H, size_t W, const uint16_t *gy, \
                                            size_t O, size_t ob, size_t oe, float *dw) { \
        if (W == 8) ek_cb_##SUFFIX##_wgrad_body(pad, count, C, H, W, gy, O, ob, oe, dw, MO, 4); \
        else if (W == 16) ek_cb_##SUFFIX##_wgrad_body(pad, count, C, H, W, gy, O, ob, oe, dw, MO, 2); \
        else ek_cb_##SUFFIX##_wgrad_body(pad, count, C, H, W, gy, O, ob, oe, dw, MO, 1); \
    }

EK_CB_CLONE(portable, , 4, 1, 1)
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
EK_CB_CLONE(avx2, __attribute__((target("avx2,fma"))), 4, 1, 1)
EK_CB_CLONE(avx512, __attribute__((target("avx512f,avx512vl,avx2,fma"))), 8, 2, 3)
EK_CB_CLONE(bf16, __attribute__((target("avx512bf16,avx512bw,avx512f,avx512vl,avx2,fma"))), 8, 2, 3)
#endif

int ek_conv3x3b_image(int isa, const uint32_t *pad, size_t C, size_t H, size_t W, const uint32_t *packed, size_t O,
                      const float *bias, float *out) {
    if (!ek_cb_available(isa)) return -2;
    if (!ek_conv3x3b_applies(H, W)) return -3;
    switch (isa) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    case EK_ISA_AVX512BF16: ek_cb_image_bf16(C, H, W, packed, O, bias, out, pad); return 0;
    case EK_ISA_AVX512: ek_cb_image_avx512(C, H, W, packed, O, bias, out, pad); return 0;
    case EK_ISA_AVX2: ek_cb_image_avx2(C, H, W, packed, O, bias, out, pad); return 0;
#endif
    default: ek_cb_image_portable(C, H, W, packed, O, bias, out, pad); return 0;
    }
}

int ek_conv3x3b_weight_grad(int isa, const uint16_t *padded, size_t count, size_t C, size_t H, size_t W,
                            const uint16_t *gy, size_t O, size_t o0, size_t o1, float *dw) {
    if (!ek_cb_available(isa)) return -2;
    if (!ek_conv3x3b_applies(H, W) || o0 > o1 || o1 > O) return -3;
    switch (isa) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    case EK_ISA_AVX512BF16: ek_cb_wgrad_bf16(padded, count, C, H, W, gy, O, o0, o1, dw); return 0;
    case EK_ISA_AVX512: ek_cb_wgrad_avx512(padded, count, C, H, W, gy, O, o0, o1, dw); return 0;
    case EK_ISA_AVX2: ek_cb_wgrad_avx2(padded, count, C, H, W, gy, O, o0, o1, dw); return 0;
#endif
    default: ek_cb_wgrad_portable(padded, count, C, H, W, gy, O, o0, o1, dw); return 0;
    }
}
