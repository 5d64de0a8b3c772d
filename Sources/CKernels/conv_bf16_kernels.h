/* The bf16 convolution kernels of conv_bf16.c, included once per clone with CB_NAME(x)
   (the clone's function names), CB_TARGET (its target attribute) and CB_DOT(acc, a, b)
   (acc plus the pairwise bf16 dot of a and b: the instruction or its emulation) defined.
   A separate body per clone because the native instruction may not appear, even as dead
   code, in a function compiled without AVX512-BF16. */

static inline __attribute__((always_inline)) CB_TARGET void CB_NAME(tile)(const uint32_t *pad, size_t p0, size_t p1, size_t PW, size_t plane,
        const uint32_t *wp, const float *bias, size_t o0, int rows, int MR, int NV, int half, size_t W, size_t j0,
        float *out, size_t HW, int first, int last) {
    ek_b16f acc[EK_CB_MAXMR][EK_CB_MAXNV];
    size_t poff[EK_CB_MAXNV];
    for (int v = 0; v < NV; v++) { size_t j = j0 + 16 * (size_t)v; poff[v] = (j / W) * PW + j % W; }
    for (int r = 0; r < MR; r++) for (int v = 0; v < NV; v++) acc[r][v] = B_SPLATF(0);
    for (size_t p = p0; p < p1; p++) {
        const uint32_t *base = pad + p * plane;
#pragma clang loop unroll(full)
        for (int k = 0; k < 9; k++) {
            size_t shift = (size_t)(k / 3) * PW + (size_t)(k % 3);
            ek_b16u xv[EK_CB_MAXNV];
            for (int v = 0; v < NV; v++) xv[v] = B_PAIRS(base + poff[v] + shift, half, PW);
            for (int r = 0; r < MR; r++) {
                ek_b16u wv = B_SPLATU(wp[r]);
                for (int v = 0; v < NV; v++) acc[r][v] = CB_DOT(acc[r][v], xv[v], wv);
            }
            wp += MR;
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < NV; v++) {
            float *y = out + (o0 + r) * HW + j0 + 16 * (size_t)v;
            ek_b16f t = acc[r][v];
            if (!first) t = B_LOADF(y) + t;
            if (last && bias) t = t + B_SPLATF(bias[o0 + r]);
            B_STOREF(y, t);
        }
}

static inline __attribute__((always_inline)) CB_TARGET void CB_NAME(image_body)(size_t C, size_t H, size_t W, const uint32_t *packed, size_t O,
        const float *bias, float *out, const uint32_t *pad, int MR, int NV, int half) {
    size_t PW = W + 2, plane = (H + 2) * PW, HW = H * W, P = (C + 1) / 2, K = P * 9;
    size_t blocks = (O + (size_t)MR - 1) / (size_t)MR;
    for (size_t p0 = 0; p0 < P; p0 += EK_CB_PB) {
        size_t p1 = P - p0 < EK_CB_PB ? P : p0 + EK_CB_PB;
        int first = p0 == 0, last = p1 == P;
        size_t j0 = 0;
        for (; j0 + 16 * (size_t)NV <= HW; j0 += 16 * (size_t)NV)
            for (size_t ob = 0; ob < blocks; ob++) {
                size_t o0 = ob * (size_t)MR;
                int rows = (int)(O - o0 < (size_t)MR ? O - o0 : (size_t)MR);
                CB_NAME(tile)(pad, p0, p1, PW, plane, packed + (ob * K + p0 * 9) * (size_t)MR, bias, o0, rows, MR, NV, half, W, j0,
                           out, HW, first, last);
            }
        for (; j0 < HW; j0 += 16)
            for (size_t ob = 0; ob < blocks; ob++) {
                size_t o0 = ob * (size_t)MR;
                int rows = (int)(O - o0 < (size_t)MR ? O - o0 : (size_t)MR);
                CB_NAME(tile)(pad, p0, p1, PW, plane, packed + (ob * K + p0 * 9) * (size_t)MR, bias, o0, rows, MR, 1, half, W, j0,
                           out, HW, first, last);
            }
    }
}

static inline __attribute__((always_inline)) CB_TARGET void CB_NAME(wgrad_body)(const uint16_t *pad, size_t count, size_t C, size_t H, size_t W,
        const uint16_t *gy, size_t O, size_t oBegin, size_t oEnd, float *dw, int MO, int rows) {
    size_t PW = W + 2, plane = (H + 2) * PW, HW = H * W;
    for (size_t o0 = oBegin; o0 < oEnd; o0 += (size_t)MO) {
        int mo = (int)(oEnd - o0 < (size_t)MO ? oEnd - o0 : (size_t)MO);
        for (size_t c = 0; c < C; c++) {
            ek_b16f acc[EK_CB_MAXMO][9];
            for (int m = 0; m < MO; m++) for (int k = 0; k < 9; k++) acc[m][k] = B_SPLATF(0);
            for (size_t i = 0; i < count; i++) {
                const uint16_t *x = pad + (i * C + c) * plane;
                const uint16_t *g = gy + (i * O + o0) * HW;
                for (size_t j = 0; j < HW; j += 32) {
                    const uint16_t *xb = x + (j / W) * PW + j % W;
                    ek_b16u gv[EK_CB_MAXMO];
                    for (int m = 0; m < MO; m++) gv[m] = B_LOADU(g + (size_t)(m < mo ? m : 0) * HW + j);
#pragma clang loop unroll(full)
                    for (int k = 0; k < 9; k++) {
                        ek_b16u xv = B_WIN32(xb + (size_t)(k / 3) * PW + (size_t)(k % 3), rows, PW);
                        for (int m = 0; m < MO; m++) acc[m][k] = CB_DOT(acc[m][k], gv[m], xv);
                    }
                }
            }
            for (int m = 0; m < mo; m++) {
                float *d = dw + ((o0 + (size_t)m) * C + c) * 9;
                for (int k = 0; k < 9; k++) {
                    float l[16];
                    B_STOREF(l, acc[m][k]);
                    for (int s = 8; s >= 1; s /= 2) for (int q = 0; q < s; q++) l[q] = l[q] + l[q + s];
                    d[k] = d[k] + l[0];
                }
            }
        }
    }
}

