/* cpu_gemm.c - the AVX-512 kernels of cpu_conv.c (see cpu_gemm.h).
 *
 * What this is: register tiles written with intrinsics and compiled for
 * AVX-512 through function target attributes, so that the plugin as a
 * whole still runs on any x86-64 (cpu_gemm_available() says whether these
 * may be called; cpu_conv.c keeps its portable paths for machines without
 * them).  Each tile keeps 24 of the 32 zmm registers as accumulators:
 *
 *   cpu_gemm_tile      8 rows x 3 vectors.  Per (channel, tap) step three
 *                      view loads and eight broadcast weights feed 24
 *                      FMAs.  The views are loaded whole, not masked: a
 *                      masked load costs a micro-op on the FMA ports, and
 *                      lanes past the row only ever reach masked stores.
 *   cpu_gemm_dwk_tile  2 vectors of filters x 12 columns (or 1 x 24).
 *                      Per output position two gradient loads and twelve
 *                      broadcast inputs feed 24 FMAs; positions are
 *                      visited exactly, so no lane is wasted on the
 *                      padding columns, and nothing is reduced across
 *                      lanes.
 *   cpu_gemm_dw_tile   4 gradient rows x 6 views, lanes along the rows:
 *                      four gradient and six view loads per 24 FMAs,
 *                      masked (merging) FMAs on a row's last vector, and
 *                      one reduction across lanes per accumulator and call.
 *   max2x2            16 windows per step: de-interleave even and odd
 *                      columns with two-source permutes, compare with the
 *                      NaN rule, re-interleave the routed gradient.
 *
 * What this is not: portable code (there is none here; stubs stand in on
 * other targets and are never called), or a place that decides shapes,
 * tiling or threads (cpu_conv.c does).
 */
#include "config.h"

#include <stdint.h>

#include "cpu_gemm.h"

#if defined(__x86_64__) && defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 9)
#define CG_BUILT 1
#endif

#ifdef CG_BUILT

#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi,bmi2")))
#define AVX512_INLINE AVX512 __attribute__((always_inline)) static inline
/* Loops over a tile's rows and vectors are unrolled completely, so that
 * each accumulator is a register of its own. */
#if defined(__clang__)
#define UNROLL _Pragma("clang loop unroll(full)")
#else
#define UNROLL _Pragma("GCC unroll 32")
#endif

int cpu_gemm_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
        && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
}

/* ---- implicit-GEMM tile ---- */

/* cpu_gemm_tile with `nv` views, a constant once inlined, so that the
 * accumulators are named registers */
AVX512_INLINE void tile_nv(const cg_tile *t, const int nv)
{
    __m512 acc[CG_MR][CG_NV];
    __mmask16 k[CG_NV];
    int64_t bo[CG_NV];
    UNROLL
    for (int v = 0; v < CG_NV; v++) {
        k[v] = v < nv ? t->mask[v] : 0;
        bo[v] = v < nv ? t->boff[v] : 0;
        UNROLL
        for (int m = 0; m < CG_MR; m++)
            acc[m][v] = _mm512_setzero_ps();
    }
    const float *a = t->a;
    const int64_t *toff = t->toff;
    const int64_t taps = t->taps, nch = t->nch, bstride = t->bstride;
    for (int64_t c = 0; c < nch; c++) {
        const float *bc = t->b + c * bstride;
        for (int64_t tp = 0; tp < taps; tp++, a += CG_MR) {
            const float *bt = bc + toff[tp];
            __m512 x[CG_NV];
            UNROLL
            for (int v = 0; v < nv; v++)
                x[v] = _mm512_loadu_ps(bt + bo[v]);
            UNROLL
            for (int m = 0; m < CG_MR; m++) {
                __m512 w = _mm512_set1_ps(a[m]);
                UNROLL
                for (int v = 0; v < nv; v++)
                    acc[m][v] = _mm512_fmadd_ps(w, x[v], acc[m][v]);
            }
        }
    }

    const __m512 zero = _mm512_setzero_ps(), alpha = _mm512_set1_ps(t->alpha);
    UNROLL
    for (int m = 0; m < CG_MR; m++) {
        if (m >= t->mr)
            break;
        __m512 bias = t->bias ? _mm512_set1_ps(t->bias[m]) : zero;
        float *d = t->dst + m * t->ldd;
        UNROLL
        for (int v = 0; v < nv; v++) {
            __m512 r = _mm512_add_ps(acc[m][v], bias);
            if (t->act == CG_ACT_RELU) {
                r = _mm512_max_ps(zero, r);  /* the second operand on NaN: r */
            } else if (t->act == CG_ACT_LEAKY) {
                __mmask16 pos = _mm512_cmp_ps_mask(r, zero, _CMP_GT_OQ);
                r = _mm512_mask_blend_ps(pos, _mm512_mul_ps(r, alpha), r);
            }
            _mm512_mask_storeu_ps(d + t->doff[v], k[v], r);
        }
    }
}

AVX512 void cpu_gemm_tile(const cg_tile *t)
{
    switch (t->nv) {
    case 1:
        tile_nv(t, 1);
        break;
    case 2:
        tile_nv(t, 2);
        break;
    default:
        tile_nv(t, 3);
        break;
    }
}

/* ---- filter gradient, filters along the lanes ---- */

/* cpu_gemm_dwk_tile with kv (and so the number of views) a constant once
 * inlined; the inner step is two gradient loads, CG_NK / kv broadcasts */
AVX512_INLINE void dwk_tile(float *sums, const cg_dwk *t, const int kv, const int with_db)
{
    const int NT = CG_NK / kv;
    __m512 acc[2][CG_NK], dbacc[2];
    UNROLL
    for (int v = 0; v < kv; v++) {
        dbacc[v] = _mm512_setzero_ps();
        UNROLL
        for (int j = 0; j < NT; j++)
            acc[v][j] = _mm512_setzero_ps();
    }
    const int64_t rows = t->rows, cols = t->cols, x_row = t->x_row, dy_pos = t->dy_pos;
    for (int64_t n = 0; n < t->images; n++) {
        const float *xp[CG_NK];
        UNROLL
        for (int j = 0; j < NT; j++)
            xp[j] = t->x + n * t->x_img + t->xoff[j];
        const float *dy = t->dyt + n * t->dy_img;
        for (int64_t p = 0; p < rows; p++) {
            const int64_t o = p * x_row;
            for (int64_t q = o; q < o + cols; q++, dy += dy_pos) {
                __m512 d[2];
                UNROLL
                for (int v = 0; v < kv; v++) {
                    d[v] = _mm512_loadu_ps(dy + v * CG_LANES);
                    if (with_db)
                        dbacc[v] = _mm512_add_ps(dbacc[v], d[v]);
                }
                UNROLL
                for (int j = 0; j < NT; j++) {
                    __m512 w = _mm512_set1_ps(xp[j][q]);
                    UNROLL
                    for (int v = 0; v < kv; v++)
                        acc[v][j] = _mm512_fmadd_ps(d[v], w, acc[v][j]);
                }
            }
        }
    }
    UNROLL
    for (int j = 0; j < NT; j++) {
        UNROLL
        for (int v = 0; v < kv; v++)
            _mm512_storeu_ps(sums + (j * kv + v) * CG_LANES, acc[v][j]);
    }
    if (with_db) {
        UNROLL
        for (int v = 0; v < kv; v++)
            _mm512_storeu_ps(sums + (CG_NK + v) * CG_LANES, dbacc[v]);
    }
}

AVX512 void cpu_gemm_dwk_tile(float *sums, const cg_dwk *t)
{
    if (t->kv == 2) {
        if (t->with_db)
            dwk_tile(sums, t, 2, 1);
        else
            dwk_tile(sums, t, 2, 0);
    } else {
        if (t->with_db)
            dwk_tile(sums, t, 1, 1);
        else
            dwk_tile(sums, t, 1, 0);
    }
}

/* ---- filter gradient, lanes along the rows (dy in place) ---- */

/* one vector step: the CG_KT gradient vectors at dy + i*ln (under k when
 * `masked`), the views at xp[j] + ox; lanes in k only */
AVX512_INLINE void dw_step(__m512 acc[CG_KT][CG_NT], __m512 dbacc[CG_KT], const float *dy,
                           int64_t ln, const float *const *xp, int64_t ox, __mmask16 k,
                           const int masked, const int with_db)
{
    __m512 d[CG_KT];
    UNROLL
    for (int i = 0; i < CG_KT; i++) {
        d[i] = masked ? _mm512_maskz_loadu_ps(k, dy + i * ln) : _mm512_loadu_ps(dy + i * ln);
        if (with_db)
            dbacc[i] = _mm512_mask_add_ps(dbacc[i], k, dbacc[i], d[i]);
    }
    UNROLL
    for (int j = 0; j < CG_NT; j++) {
        __m512 x = _mm512_loadu_ps(xp[j] + ox);
        UNROLL
        for (int i = 0; i < CG_KT; i++)
            acc[i][j] = _mm512_mask3_fmadd_ps(d[i], x, acc[i][j], k);
    }
}

AVX512_INLINE void dw_tile(float *sums, const cg_dw *t, const int with_db)
{
    __m512 acc[CG_KT][CG_NT], dbacc[CG_KT];
    UNROLL
    for (int i = 0; i < CG_KT; i++) {
        dbacc[i] = _mm512_setzero_ps();
        UNROLL
        for (int j = 0; j < CG_NT; j++)
            acc[i][j] = _mm512_setzero_ps();
    }
    const int64_t vecs = t->vecs, ln = t->dy_ln;
    const int64_t rows = t->rows, x_row = t->x_row, dy_row = t->dy_row;
    const __mmask16 last = t->last;
    for (int64_t n = 0; n < t->images; n++) {
        const float *xp[CG_NT];
        UNROLL
        for (int j = 0; j < CG_NT; j++)
            xp[j] = t->x + n * t->x_img + t->xoff[j];
        const float *dy = t->dy + n * t->dy_img;
        for (int64_t p = 0, ox = 0; p < rows; p++, ox += x_row, dy += dy_row) {
            for (int64_t v = 0; v < vecs - 1; v++)
                dw_step(acc, dbacc, dy + v * CG_LANES, ln, xp, ox + v * CG_LANES,
                        (__mmask16)0xffff, 0, with_db);
            dw_step(acc, dbacc, dy + (vecs - 1) * CG_LANES, ln, xp,
                    ox + (vecs - 1) * CG_LANES, last, 1, with_db);
        }
    }
    UNROLL
    for (int i = 0; i < CG_KT; i++) {
        UNROLL
        for (int j = 0; j < CG_NT; j++)
            sums[i * CG_NT + j] = _mm512_reduce_add_ps(acc[i][j]);
        if (with_db)
            sums[CG_KT * CG_NT + i] = _mm512_reduce_add_ps(dbacc[i]);
    }
}

AVX512 void cpu_gemm_dw_tile(float *sums, const cg_dw *t)
{
    if (t->with_db)
        dw_tile(sums, t, 1);
    else
        dw_tile(sums, t, 0);
}

/* ---- transposes and padded copies ---- */

/* the 16 x 16 block at src (rows k, lds apart; `rows` and `cols` of them
 * valid, the rest read as 0) transposed to dst (ldd apart, all 16 rows of
 * 16 written) */
AVX512_INLINE void transpose16(float *dst, int64_t ldd, const float *src, int64_t lds,
                               int64_t rows, int64_t cols)
{
    __m512 r[16], t[16];
    __mmask16 k = (__mmask16)(cols >= CG_LANES ? 0xffffu : ((1u << cols) - 1u));
    UNROLL
    for (int i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(k, src + i * lds) : _mm512_setzero_ps();
    UNROLL
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    UNROLL
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    /* r[4b + c] now holds, in 128-bit lane L, column 4L + c of rows
     * 4b .. 4b+3 */
    UNROLL
    for (int c = 0; c < 4; c++) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);       /* lanes 0, 2 */
        t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);   /* lanes 1, 3 */
        t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    }
    UNROLL
    for (int c = 0; c < 4; c++) {
        /* t[c] holds, by 128-bit lane: column c of rows 0-3, column 8+c of
         * rows 0-3, column c of rows 4-7, column 8+c of rows 4-7; t[8+c]
         * the same for rows 8-15; t[4+c], t[12+c] columns 4+c, 12+c */
        __m512 c0 = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
        __m512 c2 = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
        __m512 c1 = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
        __m512 c3 = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xdd);
        if (c < cols)
            _mm512_storeu_ps(dst + c * ldd, c0);
        if (4 + c < cols)
            _mm512_storeu_ps(dst + (4 + c) * ldd, c1);
        if (8 + c < cols)
            _mm512_storeu_ps(dst + (8 + c) * ldd, c2);
        if (12 + c < cols)
            _mm512_storeu_ps(dst + (12 + c) * ldd, c3);
    }
}

AVX512 void cpu_gemm_transpose(float *dst, int64_t ldd, const float *src, int64_t lds,
                               int64_t rows, int64_t cols)
{
    for (int64_t k = 0; k < rows; k += CG_LANES)
        for (int64_t s = 0; s < cols; s += CG_LANES)
            transpose16(dst + s * ldd + k, ldd, src + k * lds + s, lds,
                        rows - k < CG_LANES ? rows - k : CG_LANES,
                        cols - s < CG_LANES ? cols - s : CG_LANES);
}

/* lanes [lo, hi) of a vector, clipped to [0, CG_LANES) */
AVX512_INLINE __mmask16 lane_range(int64_t lo, int64_t hi)
{
    lo = lo < 0 ? 0 : lo;
    hi = hi > CG_LANES ? CG_LANES : hi;
    if (hi <= lo)
        return 0;
    return (__mmask16)((((uint32_t)1 << hi) - 1u) & ~(((uint32_t)1 << lo) - 1u));
}

/* row (n floats) = zeros, with src[0 .. w) at column `left`: per vector
 * an expanding load of the columns that hold data (it reads only as many
 * floats as the mask has lanes) and a masked store */
AVX512_INLINE void embed_row(float *row, const float *src, int64_t left, int64_t w, int64_t n)
{
    for (int64_t c = 0; c < n; c += CG_LANES) {
        __mmask16 in = lane_range(left - c, left + w - c);
        int64_t from = c - left < 0 ? 0 : c - left > w ? w : c - left;
        __m512 v = _mm512_maskz_expandloadu_ps(in, src + from);
        _mm512_mask_storeu_ps(row + c, lane_range(0, n - c), v);
    }
}

/* dst[0 .. w) = src[0 .. w) */
AVX512_INLINE void copy_row(float *dst, const float *src, int64_t w)
{
    for (int64_t c = 0; c < w; c += CG_LANES) {
        __mmask16 k = lane_range(0, w - c);
        _mm512_mask_storeu_ps(dst + c, k, _mm512_maskz_loadu_ps(k, src + c));
    }
}

AVX512_INLINE void zero_run(float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i += CG_LANES)
        _mm512_mask_storeu_ps(dst + i, lane_range(0, n - i), _mm512_setzero_ps());
}

AVX512 void cpu_gemm_embed(float *dst, const float *src, int64_t cnt, int64_t H, int64_t W,
                           int64_t top, int64_t left, int64_t Hp, int64_t Wp, int64_t slack,
                           int zeros)
{
    for (int64_t c = 0; c < cnt; c++, dst += Hp * Wp, src += H * W) {
        if (!zeros) {
            for (int64_t h = 0; h < H; h++)
                copy_row(dst + (top + h) * Wp + left, src + h * W, W);
            continue;
        }
        zero_run(dst, top * Wp);
        for (int64_t h = 0; h < H; h++)
            embed_row(dst + (top + h) * Wp, src + h * W, left, W, Wp);
        zero_run(dst + (top + H) * Wp, (Hp - top - H) * Wp);
    }
    if (zeros)
        zero_run(dst, slack);
}

/* ---- 2x2 stride-2 max pooling rows ---- */

/* lanes of a step of 16 windows: `lanes` outputs, 2*lanes inputs split
 * over two vectors */
AVX512_INLINE void pool_masks(int64_t lanes, __mmask16 *out, __mmask16 *lo, __mmask16 *hi)
{
    uint32_t in = 2u * (uint32_t)lanes;  /* 2..32 */
    *out = (__mmask16)((1u << lanes) - 1u);
    *lo = (__mmask16)(in >= 16 ? 0xffffu : (1u << in) - 1u);
    *hi = (__mmask16)(in <= 16 ? 0u : (uint32_t)(((uint64_t)1 << (in - 16)) - 1u));
}

/* the even and odd elements of the 2*16 floats at p (masked) */
AVX512_INLINE void deinterleave(__m512 *even, __m512 *odd, const float *p, __mmask16 lo,
                                __mmask16 hi)
{
    const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6,
                                        4, 2, 0);
    const __m512i io = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7,
                                        5, 3, 1);
    __m512 l = _mm512_maskz_loadu_ps(lo, p), h = _mm512_maskz_loadu_ps(hi, p + CG_LANES);
    *even = _mm512_permutex2var_ps(l, ie, h);
    *odd = _mm512_permutex2var_ps(l, io, h);
}

/* lanes where v replaces the running maximum m: v > m, or v is NaN */
AVX512_INLINE __mmask16 takes(__m512 v, __m512 m)
{
    return _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}

AVX512 void cpu_gemm_max2x2_fwd(float *y, const float *a, const float *b, int64_t n)
{
    for (int64_t q = 0; q < n; q += CG_LANES) {
        __mmask16 ko, lo, hi;
        pool_masks(n - q < CG_LANES ? n - q : CG_LANES, &ko, &lo, &hi);
        __m512 a0, a1, b0, b1;
        deinterleave(&a0, &a1, a + 2 * q, lo, hi);
        deinterleave(&b0, &b1, b + 2 * q, lo, hi);
        __m512 m = a0;
        m = _mm512_mask_mov_ps(m, takes(a1, m), a1);
        m = _mm512_mask_mov_ps(m, takes(b0, m), b0);
        m = _mm512_mask_mov_ps(m, takes(b1, m), b1);
        _mm512_mask_storeu_ps(y + q, ko, m);
    }
}

AVX512 void cpu_gemm_max2x2_bwd(float *oa, float *ob, const float *a, const float *b,
                                const float *g, int64_t n)
{
    const __m512i il = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                        16, 0);
    const __m512i ih = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10,
                                        25, 9, 24, 8);
    for (int64_t q = 0; q < n; q += CG_LANES) {
        __mmask16 ko, lo, hi;
        pool_masks(n - q < CG_LANES ? n - q : CG_LANES, &ko, &lo, &hi);
        __m512 a0, a1, b0, b1;
        deinterleave(&a0, &a1, a + 2 * q, lo, hi);
        deinterleave(&b0, &b1, b + 2 * q, lo, hi);
        __m512 m = a0;
        __mmask16 k1 = takes(a1, m);
        m = _mm512_mask_mov_ps(m, k1, a1);
        __mmask16 k2 = takes(b0, m);
        m = _mm512_mask_mov_ps(m, k2, b0);
        __mmask16 k3 = takes(b1, m);
        /* the last replacement wins */
        __mmask16 w3 = k3, w2 = k2 & ~k3, w1 = k1 & ~k2 & ~k3;
        __mmask16 w0 = (__mmask16)~(k1 | k2 | k3);
        __m512 gv = _mm512_maskz_loadu_ps(ko, g + q);
        __m512 g0 = _mm512_maskz_mov_ps(w0, gv), g1 = _mm512_maskz_mov_ps(w1, gv);
        __m512 g2 = _mm512_maskz_mov_ps(w2, gv), g3 = _mm512_maskz_mov_ps(w3, gv);
        _mm512_mask_storeu_ps(oa + 2 * q, lo, _mm512_permutex2var_ps(g0, il, g1));
        _mm512_mask_storeu_ps(oa + 2 * q + CG_LANES, hi, _mm512_permutex2var_ps(g0, ih, g1));
        _mm512_mask_storeu_ps(ob + 2 * q, lo, _mm512_permutex2var_ps(g2, il, g3));
        _mm512_mask_storeu_ps(ob + 2 * q + CG_LANES, hi, _mm512_permutex2var_ps(g2, ih, g3));
    }
}

#else /* !CG_BUILT */

int cpu_gemm_available(void)
{
    return 0;
}

void cpu_gemm_tile(const cg_tile *t)
{
    (void)t;
}

void cpu_gemm_dwk_tile(float *sums, const cg_dwk *t)
{
    (void)sums, (void)t;
}

void cpu_gemm_dw_tile(float *sums, const cg_dw *t)
{
    (void)sums, (void)t;
}

void cpu_gemm_transpose(float *dst, int64_t ldd, const float *src, int64_t lds,
                        int64_t rows, int64_t cols)
{
    (void)dst, (void)ldd, (void)src, (void)lds, (void)rows, (void)cols;
}

void cpu_gemm_embed(float *dst, const float *src, int64_t cnt, int64_t H, int64_t W,
                    int64_t top, int64_t left, int64_t Hp, int64_t Wp, int64_t slack,
                    int zeros)
{
    (void)dst, (void)src, (void)cnt, (void)H, (void)W, (void)top, (void)left, (void)Hp;
    (void)Wp, (void)slack, (void)zeros;
}

void cpu_gemm_max2x2_fwd(float *y, const float *a, const float *b, int64_t n)
{
    (void)y, (void)a, (void)b, (void)n;
}

void cpu_gemm_max2x2_bwd(float *oa, float *ob, const float *a, const float *b,
                         const float *g, int64_t n)
{
    (void)oa, (void)ob, (void)a, (void)b, (void)g, (void)n;
}

#endif /* CG_BUILT */
