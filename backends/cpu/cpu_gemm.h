/* cpu_gemm.h - the AVX-512 kernels under cpu_conv.c's stride-1
 * convolutions and 2x2 max pooling.
 *
 * What this is: register-tiled micro-kernels for "implicit GEMM"
 * convolution, where no column matrix is ever built: the second operand
 * is a set of shifted views into zero-padded planes (a filter tap (r, s)
 * is the offset r*dil_h*pitch + s*dil_w), read with 16-float loads.
 *
 *   cpu_gemm_tile      out (CG_MR rows, up to CG_NV vectors of 16 floats)
 *                      = sum over channels and taps of a packed weight
 *                      column times a view, plus bias, relu / leaky relu,
 *                      stored under masks.  Forward (rows = output
 *                      channels, views into the padded input) and backward
 *                      data (rows = input channels, views into the padded
 *                      output gradient, taps negated).
 *   cpu_gemm_dwk_tile  filter gradient with the filters along the lanes:
 *                      a transposed dy (position-major) times one
 *                      broadcast input per (channel, tap) column and
 *                      position, summed over several images.
 *   cpu_gemm_dw_tile   filter gradient with the lanes along the rows, dy
 *                      read in place: for layers with few (channel, tap)
 *                      columns, where transposing dy would not pay.
 *
 * plus the transposes and zero-padded copies that feed them, and the row
 * kernels of 2x2 stride-2 max pooling (forward, and the gradient routed to
 * the first maximum).
 *
 * Every kernel is deterministic: a fixed order of operations that does
 * not depend on the data, the thread or the alignment.  Callers check
 * cpu_gemm_available() first; where the kernels cannot be built, stubs
 * that do nothing stand in and must not be called.
 *
 * What this is not: a general sgemm (OpenBLAS is), or the loops that tile
 * whole planes and split work across threads (cpu_conv.c).  Nothing here
 * allocates; pointers are borrowed for the call only.
 */
#ifndef MLTK_CPU_GEMM_H
#define MLTK_CPU_GEMM_H

#include <stdint.h>

/* ---- tile shapes ---- */

#define CG_LANES 16  /* floats per vector */
#define CG_MR 8      /* rows of a cpu_gemm_tile */
#define CG_NV 3      /* vectors (of CG_LANES outputs) of a cpu_gemm_tile */
#define CG_NK 24     /* accumulators of a cpu_gemm_dwk_tile: kv * (CG_NK / kv) */
#define CG_KT 4      /* gradient rows of a cpu_gemm_dw_tile */
#define CG_NT 6      /* input views of a cpu_gemm_dw_tile */
/* floats the filter-gradient tiles write */
#define CG_DWK_SUMS ((CG_NK + 2) * CG_LANES)
#define CG_DW_SUMS (CG_KT * CG_NT + CG_KT)

/* Epilogues cpu_gemm_tile fuses; others are applied by the caller. */
enum { CG_ACT_NONE = 0, CG_ACT_RELU, CG_ACT_LEAKY };

/* Nonzero when this machine (and OS) runs the AVX-512 kernels. */
int cpu_gemm_available(void);

/* ---- implicit-GEMM tile ---- */

typedef struct cg_tile {
    const float   *a;        /* packed weights, (nch * taps, CG_MR) row-major */
    const float   *b;        /* channel c of the views' source at b + c * bstride */
    int64_t        bstride;
    int64_t        nch, taps;
    const int64_t *toff;     /* taps offsets, added to every view */
    int64_t        boff[CG_NV];   /* view v starts at b + c*bstride + toff[t] + boff[v] */
    uint16_t       mask[CG_NV];   /* lanes of view v that are stored */
    int            nv;       /* views in this tile, 1..CG_NV */
    float         *dst;      /* row m of the result at dst + m * ldd + doff[v] */
    int64_t        ldd;
    int64_t        doff[CG_NV];
    int            mr;       /* rows stored, 1..CG_MR (the packed rows past
                              * mr are computed and dropped) */
    const float   *bias;     /* mr values added to the rows, or NULL */
    int            act;      /* CG_ACT_* */
    float          alpha;    /* slope of CG_ACT_LEAKY */
} cg_tile;

/* dst[m][v] = act(bias[m] + sum over c < nch, t < taps of
 *             a[(c*taps + t)*CG_MR + m] * view(c, t, v)) for m < mr,
 * where view(c, t, v) is the CG_LANES floats at b + c*bstride + toff[t]
 * + boff[v].  Views are read whole, so all CG_LANES floats of each must
 * be readable; lanes outside mask[v] are computed but never stored
 * (masked loads would cost the FMA ports a micro-op each). */
void cpu_gemm_tile(const cg_tile *t);

/* ---- filter-gradient tiles ---- */

typedef struct cg_dwk {
    const float   *dyt;      /* dy transposed: position s = p*cols + q of image n */
    int64_t        dy_img;   /* holds kv*CG_LANES filters at dyt + n*dy_img + s*dy_pos */
    int64_t        dy_pos;
    int            kv;       /* vectors of filters, 1 or 2; CG_NK / kv views */
    const float   *x;        /* view j of image n at x + n*x_img + xoff[j] */
    int64_t        xoff[CG_NK];
    int64_t        x_img, x_row;
    int64_t        images, rows, cols;
    int            with_db;  /* also sum the gradients */
} cg_dwk;

/* sums[(j*kv + v)*CG_LANES + l] = sum over images n and positions (p, q)
 * of dyt(n, p*cols + q)[v*CG_LANES + l] * x_j[p*x_row + q], for v < kv,
 * j < CG_NK / kv: the gradient of kv*16 filters by CG_NK / kv columns,
 * with no lanes wasted and no reduction across lanes; with with_db also
 * sums[(CG_NK + v)*CG_LANES + l] = the sum of dyt(.)[v*CG_LANES + l].
 * Float accumulation in a fixed order; `sums` holds CG_DWK_SUMS floats. */
void cpu_gemm_dwk_tile(float *sums, const cg_dwk *t);

typedef struct cg_dw {
    const float   *dy;       /* row p of gradient i of image n at dy + n*dy_img */
    int64_t        dy_img;   /* + p*dy_row + i*dy_ln */
    int64_t        dy_row, dy_ln;
    const float   *x;        /* view j of image n at x + n*x_img + xoff[j] */
    int64_t        xoff[CG_NT];
    int64_t        x_img, x_row;
    int64_t        images, rows;
    int64_t        vecs;     /* vectors per row, the last one masked by `last` */
    uint16_t       last;
    int            with_db;  /* also sum the gradient rows themselves */
} cg_dw;

/* sums[i*CG_NT + j] = sum over images n, rows p and the lanes of each
 * row's vectors of dy_i(p)[lane] * x_j[p*x_row + lane], rows holding
 * vecs*CG_LANES floats of which the last vector's `last` lanes count;
 * with with_db, also sums[CG_KT*CG_NT + i] = the sum of those lanes of
 * dy_i.  dy is read in place: never past a row's `last` lanes.  The
 * views are read whole (all vecs*CG_LANES floats must be readable), but
 * lanes outside `last` are masked in the FMAs, so whatever they hold, NaN
 * included, never reaches a sum.  Each lane accumulates in float; lanes
 * are summed at the end, in a fixed order; `sums` holds CG_DW_SUMS
 * floats. */
void cpu_gemm_dw_tile(float *sums, const cg_dw *t);

/* ---- transposes and padded copies ---- */

/* dst[s*ldd + k] = src[k*lds + s] for k < rows, s < cols, in blocks of
 * 16 x 16; the rows of dst run on to a multiple of 16 filters, with zeros
 * (ldd >= rows rounded up to 16) */
void cpu_gemm_transpose(float *dst, int64_t ldd, const float *src, int64_t lds,
                        int64_t rows, int64_t cols);

/* dst = cnt planes (Hp, Wp), each holding a plane (H, W) of src at row
 * top, column left with zeros around it, followed by `slack` zeros
 * (top + H <= Hp, left + W <= Wp).  Without `zeros` only the data is
 * copied: for a buffer filled the same way before, whose zeros are still
 * there. */
void cpu_gemm_embed(float *dst, const float *src, int64_t cnt, int64_t H, int64_t W,
                    int64_t top, int64_t left, int64_t Hp, int64_t Wp, int64_t slack,
                    int zeros);

/* ---- 2x2 stride-2 max pooling rows ---- */

/* y[q] = max of a[2q], a[2q+1], b[2q], b[2q+1] for q < n, taken in that
 * order with the first maximum kept and any NaN winning (PyTorch's rule) */
void cpu_gemm_max2x2_fwd(float *y, const float *a, const float *b, int64_t n);
/* oa, ob (2n floats each) = g[q] at the position the forward picked in
 * window q, 0 at the other three */
void cpu_gemm_max2x2_bwd(float *oa, float *ob, const float *a, const float *b,
                         const float *g, int64_t n);

#endif /* MLTK_CPU_GEMM_H */
