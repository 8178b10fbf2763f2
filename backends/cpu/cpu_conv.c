/* cpu_conv.c - 2-d convolution and pooling of the cpu backend.
 *
 * What this is: the f32 kernels of MLTK_OP_CONV2D_FORWARD,
 * _BACKWARD_DATA and _BACKWARD_FILTER and MLTK_OP_POOL2D_FORWARD and
 * _BACKWARD (max and average) over NCHW tensors, with PyTorch's semantics
 * (cross-correlation, groups, dilation, count_include_pad averages, first
 * maximum wins).  Four convolution strategies, chosen from the shape and
 * the machine alone (conv_path_of), so a workspace sized by
 * cpu_conv2d_workspace always fits the ops that use it:
 *
 *   implicit  stride-1 convolutions with 4 or more filters per group,
 *           on AVX-512 machines: implicit GEMM on the register tiles of
 *           cpu_gemm.c, one image at a time, nothing materialised but
 *           zero-padded planes.  Forward: the padded input planes of an
 *           image, a filter tap (r, s) being the offset r*dil_h*Wp +
 *           s*dil_w into them, times weights packed per tile of 8 output
 *           channels; bias and relu / leaky relu are applied in the tile's
 *           registers before the masked stores into y.  Backward data: the
 *           same product on dy planes padded by the filter's reach, with
 *           the taps negated and the weights packed transposed, stored
 *           straight into dx (no col2im, nothing accumulated in memory).
 *           Backward filter: per block of images, dy transposed to
 *           position-major and multiplied by broadcast inputs of each
 *           (channel, tap) column (or, for a few columns, dy read in place
 *           along its rows); one partial per pool chunk of images, summed
 *           in chunk order at the end.
 *   gemm    im2col over a whole chunk of images into the workspace, so that
 *           each group is ONE OpenBLAS sgemm with N = images * P * Q
 *           columns (well shaped: a few hundred rows, tens of thousands of
 *           columns).  The gemm writes (K, images*P*Q); one threaded pass
 *           moves it to NCHW with the bias and activation fused in.  The
 *           backward passes transpose dy the same way, then
 *           dW = dy_t col^T (one gemm, K = images*P*Q) and
 *           dcol = W^T dy_t followed by a col2im that gathers per (n, c)
 *           plane, so no two threads write the same memory.
 *   direct  own loops for convolutions whose filters see few inputs
 *           (C/groups * R * S <= DIRECT_MAX_CRS, e.g. a first layer on
 *           one-channel images, or depthwise ones): a gemm with such a
 *           short inner dimension is memory-bound anyway, and the loops
 *           write NCHW directly.  With stride 1 they run on zero-padded
 *           planes read as one flat row (see flat_geom), so that each
 *           filter tap is one long vectorized loop; the workspace holds
 *           one set of padded planes per pool chunk.  Other strides use
 *           row loops.
 *   1x1     stride-1 unpadded 1x1 convolutions need no im2col: one gemm per
 *           image and group straight on x, dx and y.
 *
 * The workspace is chunked so that it never exceeds WS_BUDGET (8 MB).
 * Threaded loops use the pool with a partition fixed by the shapes and
 * the thread count, every output element is written by one chunk, and
 * reductions run in a fixed order, so results are bit-identical from run
 * to run.  OpenBLAS is only called from the calling thread, with the pool
 * parked.  Nothing here allocates.  2x2 stride-2 max pooling runs on the
 * AVX-512 row kernels of cpu_gemm.c where the machine has them.
 *
 * The core has checked each call (the descriptor against the tensors'
 * shapes, the pooling kind, the activation) before cpu.c's `run` hands it
 * here; what is left to refuse is a shape beyond OpenBLAS's int
 * dimensions, or one whose padded planes or im2col matrix would exceed
 * GEOM_MAX_FLOATS (MLTK_ERR_UNSUPPORTED; the workspace query answers
 * SIZE_MAX for it: no buffer serves it).  Below that bound the geometry
 * and workspace arithmetic cannot overflow (geom_bounded).  The forward
 * fuses relu, leaky relu, sigmoid and tanh into its epilogue; other
 * activations run as a second pass (cpu.c's act kernel) over y.
 *
 * What this is not: a Winograd or FFT convolution, or a general tensor
 * transpose.  Pooling has no ceil_mode and no dilation.
 */
#include "config.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu_gemm.h"
#include "cpu_internal.h"

/* Kernels that copy rows of a few floats: with loop distribution gcc
 * turns each row copy into a memcpy call, which costs more than the copy
 * itself (rows of 7 to 30 floats here). */
#if defined(__GNUC__) && !defined(__clang__)
#define COPY_KERNEL KERNEL __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define COPY_KERNEL KERNEL
#endif

/* ---- strategy and workspace ---- */

/* Largest workspace the gemm strategy asks for: the batch is processed in
 * chunks of images that fit.  Chunks of a few MB keep the im2col matrix
 * and the gemm output in cache between the passes that write and read
 * them; measured on the CNN example's second layer, 4 to 16 MB ran about
 * 20% faster than one chunk of 34 MB for the whole batch, while each
 * sgemm still has thousands of columns. */
#define WS_BUDGET ((size_t)8 << 20)
/* Filters reading at most this many inputs use the direct loops. */
#define DIRECT_MAX_CRS 16
/* The implicit strategy takes stride-1 convolutions whose groups have at
 * least this many output channels (fewer would leave most rows of the
 * 8-row tiles empty: depthwise layers stay direct) and at most this many
 * taps (their offsets live in the job). */
#define IMPLICIT_MIN_KG 4
#define IMPLICIT_MAX_TAPS 64
/* Images per block of the implicit filter gradient: each tile sums a
 * block in registers before its sums go to memory, while the block's
 * padded inputs and transposed dy (650 kB for the CNN example's second
 * layer) stay in L2.  Measured there: 8 images ran 10% faster than 4 or
 * 16. */
#define DW_BLOCK 8
/* The filter gradient reads dy in place when a row of it feeds at most
 * this many tiles of CG_NT columns (a first layer: 9 columns, 2 tiles;
 * 15% faster there than transposing), and transposes it otherwise (48
 * tiles in the second layer). */
#define DW_INPLACE_TILES 4

/* The most floats any one region of a strategy's geometry may span (the
 * padded input planes of an image, those of dy padded by the filter's
 * reach, the im2col matrix of an image, the packed weights): 2^40 (4 TiB),
 * beyond any machine's memory, and small enough that the sums and the
 * products by the pool's chunk count below stay far inside an int64_t. */
#define GEOM_MAX_FLOATS ((int64_t)1 << 40)

typedef enum conv_path { PATH_GEMM, PATH_DIRECT, PATH_1X1, PATH_IMPLICIT } conv_path;

/* Every base quantity the strategies compute for a consistent descriptor
 * (fields within [0, INT_MAX], as the core's contract checks them) is at
 * most GEOM_MAX_FLOATS, computed here in overflow-free arithmetic: the
 * padded input (C, H + 2 pad_h, W + 2 pad_w), dy padded by the filter's
 * reach (K, Hp + dil_h (R - 1), Wp + dil_w (S - 1)), the im2col matrix and
 * gemm output of an image ((C R S + K) P Q), the accumulator rows P Wp
 * and the weights K C R S. */
static int geom_bounded(const mltk_conv2d_desc *d)
{
    int64_t hp, wp, hd, wd, t, u;
    if (mltk_size_add(&hp, d->H, 2 * d->pad_h) || mltk_size_add(&wp, d->W, 2 * d->pad_w)
        || mltk_size_mul(&t, d->dil_h, d->R - 1) || mltk_size_add(&hd, hp, t)
        || mltk_size_mul(&t, d->dil_w, d->S - 1) || mltk_size_add(&wd, wp, t))
        return 0;
    if (mltk_size_mul(&t, hp, wp) || mltk_size_mul(&t, t, d->C) || t > GEOM_MAX_FLOATS
        || mltk_size_mul(&t, hd, wd) || mltk_size_mul(&t, t, d->K) || t > GEOM_MAX_FLOATS
        || mltk_size_mul(&t, d->C, d->R) || mltk_size_mul(&t, t, d->S)
        || mltk_size_mul(&u, t, d->K) || u > GEOM_MAX_FLOATS
        || mltk_size_add(&t, t, d->K) || mltk_size_mul(&u, d->P, d->Q)
        || mltk_size_mul(&t, t, u) || t > GEOM_MAX_FLOATS
        || mltk_size_mul(&t, d->P, wd) || t > GEOM_MAX_FLOATS)
        return 0;
    return 1;
}

static int64_t round16(int64_t n)
{
    return (n + 15) / 16 * 16;
}

/* The implicit strategy's geometry and workspace (in floats), from the
 * shape, the thread count and the machine; only `nb` and `total` depend on
 * N, and both grow with it, so a workspace sized for a batch fits every
 * smaller one.  The workspace holds, 64-byte aligned: packed weights or
 * the filter-gradient partials (never needed at once), then one scratch
 * region per pool chunk. */
typedef struct imp_geom {
    int64_t Hp, Wp, xplane;          /* padded input: rows, pitch, plane */
    int64_t mt, ml, Hd, Wd, dplane;  /* dy padded by the filter's reach */
    int64_t vq, vw;                  /* vectors per row of y, of x */
    int64_t xslack, dslack;          /* readable floats past the last plane */
    int64_t nkt, nct;                /* CG_MR-row tiles of a group's K, C */
    int64_t nkd;                     /* CG_KT-row tiles of a group's K */
    int     inplace;                 /* the filter gradient reads dy in place */
    int64_t kg16;                    /* a group's K rounded up to 16 */
    int64_t dyimg;                   /* floats of an image's transposed dy */
    int64_t pack;                    /* floats of packed weights */
    int64_t parts, part;             /* filter-gradient partials, floats each */
    int64_t nb_max, nb;              /* images per filter-gradient block */
    int64_t scratch;                 /* floats per pool chunk */
    int64_t total;                   /* floats in all, alignment slack included */
} imp_geom;

static void imp_sizes(imp_geom *g, const mltk_conv2d_desc *d, int64_t chunks, int64_t nb)
{
    const int64_t cg = d->C / d->groups, kg = d->K / d->groups;
    int64_t fwd = cg * g->xplane + g->xslack, bwd = kg * g->dplane + g->dslack;
    int64_t dw = round16(nb * d->C * g->xplane + g->xslack) + nb * g->dyimg;
    int64_t scratch = fwd > bwd ? fwd : bwd;
    g->scratch = round16(scratch > dw ? scratch : dw);
    g->total = (g->pack > g->parts * g->part ? g->pack : g->parts * g->part)
        + chunks * g->scratch + 16;
}

static int imp_geom_of(const cpu_ctx *c, const mltk_conv2d_desc *d, imp_geom *g)
{
    const int64_t G = d->groups, cg = d->C / G, kg = d->K / G, RS = d->R * d->S;
    const int64_t max_chunks = cpu_pool_max_chunks(c->pool), threads = c->threads;
    const int64_t budget = (int64_t)(WS_BUDGET / sizeof(float));
    if (d->stride_h != 1 || d->stride_w != 1 || kg < IMPLICIT_MIN_KG
        || RS > IMPLICIT_MAX_TAPS || !CPU_ISA_AVX512_GEMM())
        return 0;
    g->Hp = d->H + 2 * d->pad_h;
    g->Wp = d->W + 2 * d->pad_w;
    g->xplane = g->Hp * g->Wp;
    /* dy (P, Q) sits at row mt, column ml of a (Hd, Wd) plane, zeros
     * around it, so that every tap of every dx position reads a zero
     * where it falls outside dy (see imp_bwd_data_chunk).  Reads run up
     * to column W-1 + pad_w + ml; past Wd they wrap into the next row's
     * first ml columns, zeros as well, so Wd = max(Q + ml, W + pad_w)
     * (16 for the CNN example's second layer: aligned rows) */
    g->mt = d->dil_h * (d->R - 1);
    g->ml = d->dil_w * (d->S - 1);
    g->Hd = d->H + d->pad_h + g->mt > d->P + g->mt ? d->H + d->pad_h + g->mt : d->P + g->mt;
    g->Wd = d->W + d->pad_w > d->Q + g->ml ? d->W + d->pad_w : d->Q + g->ml;
    g->dplane = g->Hd * g->Wd;
    g->vq = (d->Q + CG_LANES - 1) / CG_LANES;
    g->vw = (d->W + CG_LANES - 1) / CG_LANES;
    /* tiles read whole vectors: the last view of a plane reads up to
     * 16*vq + (S-1)*dil_w - Q floats past it (16*vw past a dy plane) */
    g->xslack = round16(g->vq * CG_LANES + (d->S - 1) * d->dil_w + CG_LANES);
    g->dslack = round16(g->vw * CG_LANES + g->ml + CG_LANES);
    g->nkt = (kg + CG_MR - 1) / CG_MR;
    g->nct = (cg + CG_MR - 1) / CG_MR;
    g->nkd = (kg + CG_KT - 1) / CG_KT;
    /* the filter gradient transposes dy when each of its values feeds
     * enough tiles to pay for the copy */
    g->inplace = (cg * RS + CG_NT - 1) / CG_NT <= DW_INPLACE_TILES;
    g->kg16 = (kg + CG_LANES - 1) / CG_LANES * CG_LANES;
    g->dyimg = g->inplace ? 0 : G * d->P * d->Q * g->kg16;
    int64_t pf = G * g->nkt * CG_MR * cg * RS, pb = G * g->nct * CG_MR * kg * RS;
    g->pack = round16(pf > pb ? pf : pb);
    g->part = round16(2 * (d->K * cg * RS + d->K));  /* doubles */
    /* the most images per block, and partials (one per chunk of the
     * filter-gradient job, at least one per thread) that fit the budget */
    g->parts = max_chunks;
    for (g->nb_max = DW_BLOCK;; g->nb_max--) {
        imp_sizes(g, d, max_chunks, g->nb_max);
        if (g->total <= budget || g->nb_max == 1)
            break;
    }
    while (g->total > budget && g->parts > threads) {
        g->parts = g->parts / 2 > threads ? g->parts / 2 : threads;
        imp_sizes(g, d, max_chunks, g->nb_max);
    }
    if (g->total > budget)
        return 0;
    g->nb = g->nb_max < d->N ? g->nb_max : (d->N > 0 ? d->N : 1);
    imp_sizes(g, d, max_chunks, g->nb);
    return 1;
}

static conv_path conv_path_of(const cpu_ctx *c, const mltk_conv2d_desc *d)
{
    int64_t cg = d->C / d->groups;
    imp_geom g;
    if (d->R == 1 && d->S == 1 && d->stride_h == 1 && d->stride_w == 1
        && d->pad_h == 0 && d->pad_w == 0)
        return PATH_1X1;
    if (imp_geom_of(c, d, &g))
        return PATH_IMPLICIT;
    if (cg * d->R * d->S <= DIRECT_MAX_CRS)
        return PATH_DIRECT;
    return PATH_GEMM;
}

/* floats per image in the gemm workspace: col (C*R*S, P*Q) and the
 * (K, P*Q) gemm output or transposed dy */
static int64_t ws_floats_per_image(const mltk_conv2d_desc *d)
{
    return (d->C * d->R * d->S + d->K) * d->P * d->Q;
}

/* images per chunk of the gemm strategy; depends on the shape only */
static int64_t chunk_images(const mltk_conv2d_desc *d)
{
    int64_t per = ws_floats_per_image(d) * (int64_t)sizeof(float);
    int64_t nb = per > 0 ? (int64_t)WS_BUDGET / per : 1;
    if (nb < 1)
        nb = 1;
    return nb < d->N ? nb : d->N;
}

/* Every gemm dimension and leading dimension fits an int (OpenBLAS's). */
static int fits_blas(const mltk_conv2d_desc *d)
{
    int64_t nb = chunk_images(d) > 0 ? chunk_images(d) : 1;
    return d->C * d->R * d->S <= INT_MAX && nb * d->P * d->Q <= INT_MAX
        && d->H * d->W <= INT_MAX && d->K <= INT_MAX;
}

/* The descriptor is consistent: sizes within [1, INT_MAX] (N from 0), P
 * and Q as the formula gives them, groups dividing C and K.  Only the
 * workspace query, which may see a descriptor no op call has been checked
 * against, asks. */
static int desc_consistent(const mltk_conv2d_desc *d)
{
    if (!d || d->N < 0 || d->C < 1 || d->H < 1 || d->W < 1 || d->K < 1
        || d->R < 1 || d->S < 1 || d->stride_h < 1 || d->stride_w < 1
        || d->pad_h < 0 || d->pad_w < 0 || d->dil_h < 1 || d->dil_w < 1
        || d->groups < 1 || d->C % d->groups || d->K % d->groups)
        return 0;
    const int64_t f[] = { d->N, d->C, d->H, d->W, d->K, d->R, d->S, d->P, d->Q, d->stride_h,
                          d->stride_w, d->pad_h, d->pad_w, d->dil_h, d->dil_w };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (f[i] > INT_MAX)
            return 0;
    /* within INT_MAX each, these cannot overflow */
    int64_t eh = d->H + 2 * d->pad_h - d->dil_h * (d->R - 1) - 1;
    int64_t ew = d->W + 2 * d->pad_w - d->dil_w * (d->S - 1) - 1;
    return eh >= 0 && ew >= 0 && d->P == eh / d->stride_h + 1 && d->Q == ew / d->stride_w + 1;
}

/* MLTK_OK, or MLTK_ERR_UNSUPPORTED when the shape is beyond OpenBLAS or
 * beyond GEOM_MAX_FLOATS */
static int check_blas(const mltk_conv2d_desc *d, const char *op, char **err)
{
    if (!geom_bounded(d))
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED,
                         "cpu: %s: x (%lld,%lld,%lld,%lld) w (%lld,%lld,%lld,%lld) with padding "
                         "(%lld,%lld) and dilation (%lld,%lld) needs padded planes or an "
                         "im2col matrix of more than 2^40 floats", op, (long long)d->N,
                         (long long)d->C, (long long)d->H, (long long)d->W, (long long)d->K,
                         (long long)(d->C / d->groups), (long long)d->R, (long long)d->S,
                         (long long)d->pad_h, (long long)d->pad_w, (long long)d->dil_h,
                         (long long)d->dil_w);
    if (fits_blas(d))
        return MLTK_OK;
    return mltk_errf(err, MLTK_ERR_UNSUPPORTED,
                     "cpu: %s: x (%lld,%lld,%lld,%lld) w (%lld,%lld,%lld,%lld) is beyond "
                     "the int dimensions of OpenBLAS", op, (long long)d->N, (long long)d->C,
                     (long long)d->H, (long long)d->W, (long long)d->K,
                     (long long)(d->C / d->groups), (long long)d->R, (long long)d->S);
}

/* The direct strategy with stride 1 works on zero-padded planes of width
 * Wp = W + 2 pad_w read as one flat row: output (p, q) sits at p*Wp + q
 * and tap (r, s) reads the input at that index plus r*dil_h*Wp + s*dil_w,
 * so every tap is one long vectorizable loop (the columns q >= Q are
 * computed and discarded).  Per pool chunk it needs the padded input
 * planes of a group, a (P, Wp) accumulator and a padded gradient plane. */
typedef struct flat_geom {
    int64_t Hp, Wp, plane;   /* padded height, width, floats per padded plane */
    int64_t xs, acc, dxs;    /* floats of the three scratch regions */
} flat_geom;

static flat_geom flat_geom_of(const mltk_conv2d_desc *d)
{
    flat_geom f;
    f.Hp = d->H + 2 * d->pad_h;
    f.Wp = d->W + 2 * d->pad_w;
    /* the last tap reads (S-1)*dil_w floats past the last padded plane */
    f.plane = f.Hp * f.Wp;
    f.xs = round16((d->C / d->groups - 1) * f.plane + f.plane + (d->S - 1) * d->dil_w);
    f.acc = round16(d->P * f.Wp);
    f.dxs = round16(f.plane + (d->S - 1) * d->dil_w);
    return f;
}

static int is_flat(const cpu_ctx *c, const mltk_conv2d_desc *d)
{
    return conv_path_of(c, d) == PATH_DIRECT && d->stride_h == 1 && d->stride_w == 1;
}

/* Bytes of scratch the three conv ops need for `d` (0 if none, or if `d`
 * is not a consistent descriptor or beyond OpenBLAS; SIZE_MAX if its
 * geometry is beyond GEOM_MAX_FLOATS, which no buffer serves: the ops
 * refuse it).  The bound keeps every term below far inside an int64_t;
 * the products are checked all the same. */
size_t cpu_conv2d_workspace(void *ctx, const mltk_conv2d_desc *d)
{
    cpu_ctx *c = ctx;
    imp_geom g;
    int64_t floats;
    size_t bytes;
    if (!c || !desc_consistent(d) || d->N == 0)
        return 0;
    if (!geom_bounded(d))
        return SIZE_MAX;
    if (!fits_blas(d))
        return 0;
    if (is_flat(c, d)) {
        flat_geom f = flat_geom_of(d);
        if (mltk_size_mul(&floats, cpu_pool_max_chunks(c->pool), f.xs + f.acc + f.dxs))
            return SIZE_MAX;
    } else if (conv_path_of(c, d) == PATH_IMPLICIT && imp_geom_of(c, d, &g)) {
        floats = g.total;
    } else if (conv_path_of(c, d) != PATH_GEMM) {
        return 0;
    } else if (mltk_size_mul(&floats, chunk_images(d), ws_floats_per_image(d))) {
        return SIZE_MAX;
    }
    return mltk_size_bytes(&bytes, floats, sizeof(float)) ? SIZE_MAX : bytes;
}

/* ---- small helpers ---- */

/* [*lo, *hi): the output positions o < n whose input o*stride + off lies
 * in [0, size) */
static inline void valid_range(int64_t n, int64_t stride, int64_t off, int64_t size,
                               int64_t *lo, int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int64_t b = size - off <= 0 ? 0 : (size - off + stride - 1) / stride;
    if (b > n)
        b = n;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

static int act_ok(mltk_act act)
{
    return act == MLTK_ACT_NONE || act == MLTK_ACT_RELU || act == MLTK_ACT_LEAKY_RELU
        || act == MLTK_ACT_SIGMOID || act == MLTK_ACT_TANH;
}

/* dst[i] = act(src[i] + bias), i < n; dst == src allowed */
KERNEL static void k_bias_act_row(float *dst, const float *src, float bias, int64_t n,
                                  mltk_act act, float alpha)
{
    switch (act) {
    case MLTK_ACT_RELU:
        for (int64_t i = 0; i < n; i++) {
            float v = src[i] + bias;
            dst[i] = v < 0.0f ? 0.0f : v;
        }
        break;
    case MLTK_ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) {
            float v = src[i] + bias;
            dst[i] = v > 0.0f ? v : v * alpha;
        }
        break;
    case MLTK_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            dst[i] = 1.0f / (1.0f + expf(-(src[i] + bias)));
        break;
    case MLTK_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            dst[i] = tanhf(src[i] + bias);
        break;
    default:
        for (int64_t i = 0; i < n; i++)
            dst[i] = src[i] + bias;
        break;
    }
}

/* sum of a[i], i < n, in 16 float lanes combined in a fixed order */
KERNEL static double sum_lanes(const float *restrict a, int64_t n)
{
    float l[16] = { 0 };
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            l[k] += a[i + k];
    double s = 0.0;
    for (; i < n; i++)
        s += a[i];
    for (int k = 0; k < 16; k++)
        s += l[k];
    return s;
}

static int64_t planes_work(int64_t planes, int64_t per_plane)
{
    return planes * (per_plane > 1 ? per_plane : 1);
}

static void run_job(cpu_ctx *c, cpu_pool_fn fn, void *arg, int64_t items, int64_t work)
{
    int chunks = cpu_pool_chunks(c->pool, items, work, GRAIN);
    cpu_pool_run(c->pool, fn, arg, items, chunks, 1, work);
}

/* row-major C (M,N) = op(A) op(B) + beta C with the pool parked */
static void sgemm(cpu_ctx *c, int ta, int tb, int64_t M, int64_t N, int64_t K,
                  const float *A, int64_t lda, const float *B, int64_t ldb,
                  float beta, float *C, int64_t ldc)
{
    cpu_pool_park(c->pool);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f,
                A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* ---- shared job arguments ---- */

typedef struct conv_job {
    const mltk_conv2d_desc *d;
    const float *x;      /* input images of the chunk (n0 applied) */
    const float *w;
    const float *b;
    const float *dy;     /* output gradient of the chunk */
    float       *y;      /* output of the chunk */
    float       *dx;
    float       *dw;
    float       *db;
    float       *col;    /* (C*R*S, L) */
    float       *mat;    /* (K, L): gemm output or transposed dy */
    int64_t      nb;     /* images in the chunk */
    int64_t      L;      /* nb * P * Q */
    mltk_act     act;
    float        alpha;
    int          accumulate; /* add db to what is there (later chunks) */
} conv_job;

/* ---- im2col and col2im ---- */

/* items (row, image), row = (c, r, s) major: col[row, n*PQ + p*Q + q] =
 * x[n, c, p*sh - ph + r*dh, q*sw - pw + s*dw] (0 outside the image) */
COPY_KERNEL static void im2col_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const int64_t P = d->P, Q = d->Q, PQ = P * Q, H = d->H, W = d->W;
    const int64_t sh = d->stride_h, sw = d->stride_w;
    (void)chunk;
    for (int64_t it = begin; it < end; it++) {
        int64_t row = it / j->nb, n = it % j->nb;
        int64_t s = row % d->S, r = (row / d->S) % d->R, c = row / (d->S * d->R);
        const float *xp = j->x + (n * d->C + c) * H * W;
        float *out = j->col + row * j->L + n * PQ;
        int64_t offh = r * d->dil_h - d->pad_h, offw = s * d->dil_w - d->pad_w;
        int64_t p0, p1, q0, q1;
        valid_range(P, sh, offh, H, &p0, &p1);
        valid_range(Q, sw, offw, W, &q0, &q1);
        for (int64_t i = 0; i < p0 * Q; i++)
            out[i] = 0.0f;
        for (int64_t p = p0; p < p1; p++) {
            float *restrict o = out + p * Q;
            const float *restrict xr = xp + (p * sh + offh) * W + offw;
            for (int64_t q = 0; q < q0; q++)
                o[q] = 0.0f;
            if (sw == 1)
                for (int64_t q = q0; q < q1; q++)
                    o[q] = xr[q];
            else
                for (int64_t q = q0; q < q1; q++)
                    o[q] = xr[q * sw];
            for (int64_t q = q1; q < Q; q++)
                o[q] = 0.0f;
        }
        for (int64_t i = p1 * Q; i < P * Q; i++)
            out[i] = 0.0f;
    }
}

/* items (n, c) planes of dx: dx[n, c] = sum over (r, s) of the columns of
 * col rows (c, r, s) scattered back to their input positions */
KERNEL static void col2im_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const int64_t P = d->P, Q = d->Q, PQ = P * Q, H = d->H, W = d->W;
    const int64_t sh = d->stride_h, sw = d->stride_w;
    (void)chunk;
    for (int64_t it = begin; it < end; it++) {
        int64_t n = it / d->C, c = it % d->C;
        float *dxp = j->dx + it * H * W;
        memset(dxp, 0, (size_t)(H * W) * sizeof(float));
        for (int64_t r = 0; r < d->R; r++) {
            int64_t offh = r * d->dil_h - d->pad_h, p0, p1;
            valid_range(P, sh, offh, H, &p0, &p1);
            for (int64_t s = 0; s < d->S; s++) {
                int64_t offw = s * d->dil_w - d->pad_w, q0, q1;
                valid_range(Q, sw, offw, W, &q0, &q1);
                const float *src = j->col + ((c * d->R + r) * d->S + s) * j->L + n * PQ;
                for (int64_t p = p0; p < p1; p++) {
                    float *o = dxp + (p * sh + offh) * W + offw;
                    const float *g = src + p * Q;
                    if (sw == 1)
                        for (int64_t q = q0; q < q1; q++)
                            o[q] += g[q];
                    else
                        for (int64_t q = q0; q < q1; q++)
                            o[q * sw] += g[q];
                }
            }
        }
    }
}

/* ---- layout passes between (K, L) and NCHW ---- */

/* items (n, k): y[n, k, :] = act(mat[k, n*PQ : (n+1)*PQ] + b[k]) */
static void epilogue_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const int64_t K = j->d->K, PQ = j->d->P * j->d->Q;
    (void)chunk;
    for (int64_t it = begin; it < end; it++) {
        int64_t n = it / K, k = it % K;
        k_bias_act_row(j->y + it * PQ, j->mat + k * j->L + n * PQ,
                       j->b ? j->b[k] : 0.0f, PQ, j->act, j->alpha);
    }
}

/* items k: mat[k, n*PQ + i] = dy[n, k, i] over the chunk's images, and
 * when db is wanted db[k] (+)= the sum of those values, in a fixed order */
static void transpose_dy_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const int64_t K = j->d->K, PQ = j->d->P * j->d->Q;
    (void)chunk;
    for (int64_t k = begin; k < end; k++) {
        double sum = 0.0;
        for (int64_t n = 0; n < j->nb; n++) {
            const float *src = j->dy + (n * K + k) * PQ;
            float *dst = j->mat + k * j->L + n * PQ;
            memcpy(dst, src, (size_t)PQ * sizeof(float));
            if (j->db)
                sum += sum_lanes(src, PQ);
        }
        if (j->db)
            j->db[k] = (float)(j->accumulate ? (double)j->db[k] + sum : sum);
    }
}

/* items k: db[k] = sum over n, p, q of dy[n, k, p, q] */
static void bias_grad_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const int64_t K = j->d->K, PQ = j->d->P * j->d->Q;
    (void)chunk;
    for (int64_t k = begin; k < end; k++) {
        double sum = 0.0;
        for (int64_t n = 0; n < j->d->N; n++) {
            sum += sum_lanes(j->dy + (n * K + k) * PQ, PQ);
        }
        j->db[k] = (float)sum;
    }
}

/* items (n, k): y[n, k] = act(y[n, k] + b[k]) in place */
static void bias_act_inplace_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const int64_t K = j->d->K, PQ = j->d->P * j->d->Q;
    (void)chunk;
    for (int64_t it = begin; it < end; it++) {
        float *p = j->y + it * PQ;
        k_bias_act_row(p, p, j->b ? j->b[it % K] : 0.0f, PQ, j->act, j->alpha);
    }
}

/* ---- direct loops ---- */

/* items (n, k) planes: y[n, k] = act(b[k] + sum over the group's c, r, s) */
KERNEL static void direct_fwd_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const int64_t P = d->P, Q = d->Q, H = d->H, W = d->W, R = d->R, S = d->S;
    const int64_t sh = d->stride_h, sw = d->stride_w;
    const int64_t cg = d->C / d->groups, kg = d->K / d->groups;
    (void)chunk;
    for (int64_t it = begin; it < end; it++) {
        int64_t n = it / d->K, k = it % d->K, g = k / kg;
        float *yp = j->y + it * P * Q;
        float bias = j->b ? j->b[k] : 0.0f;
        for (int64_t i = 0; i < P * Q; i++)
            yp[i] = bias;
        for (int64_t c = 0; c < cg; c++) {
            const float *xp = j->x + (n * d->C + g * cg + c) * H * W;
            const float *wk = j->w + (k * cg + c) * R * S;
            for (int64_t r = 0; r < R; r++) {
                int64_t offh = r * d->dil_h - d->pad_h, p0, p1;
                valid_range(P, sh, offh, H, &p0, &p1);
                for (int64_t p = p0; p < p1; p++) {
                    float *o = yp + p * Q;
                    const float *xr = xp + (p * sh + offh) * W;
                    for (int64_t s = 0; s < S; s++) {
                        int64_t offw = s * d->dil_w - d->pad_w, q0, q1;
                        float wv = wk[r * S + s];
                        valid_range(Q, sw, offw, W, &q0, &q1);
                        const float *xs = xr + offw;
                        if (sw == 1)
                            for (int64_t q = q0; q < q1; q++)
                                o[q] += wv * xs[q];
                        else
                            for (int64_t q = q0; q < q1; q++)
                                o[q] += wv * xs[q * sw];
                    }
                }
            }
        }
        if (j->act != MLTK_ACT_NONE)
            k_bias_act_row(yp, yp, 0.0f, P * Q, j->act, j->alpha);
    }
}

/* items (n, c) planes: dx[n, c] = sum over the group's k, r, s of w times
 * dy scattered back */
KERNEL static void direct_bwd_data_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const int64_t P = d->P, Q = d->Q, H = d->H, W = d->W, R = d->R, S = d->S;
    const int64_t sh = d->stride_h, sw = d->stride_w;
    const int64_t cg = d->C / d->groups, kg = d->K / d->groups;
    (void)chunk;
    for (int64_t it = begin; it < end; it++) {
        int64_t n = it / d->C, c = it % d->C, g = c / cg, cl = c % cg;
        float *dxp = j->dx + it * H * W;
        memset(dxp, 0, (size_t)(H * W) * sizeof(float));
        for (int64_t kk = 0; kk < kg; kk++) {
            int64_t k = g * kg + kk;
            const float *dyp = j->dy + (n * d->K + k) * P * Q;
            const float *wk = j->w + (k * cg + cl) * R * S;
            for (int64_t r = 0; r < R; r++) {
                int64_t offh = r * d->dil_h - d->pad_h, p0, p1;
                valid_range(P, sh, offh, H, &p0, &p1);
                for (int64_t p = p0; p < p1; p++) {
                    float *o = dxp + (p * sh + offh) * W;
                    const float *gr = dyp + p * Q;
                    for (int64_t s = 0; s < S; s++) {
                        int64_t offw = s * d->dil_w - d->pad_w, q0, q1;
                        float wv = wk[r * S + s];
                        valid_range(Q, sw, offw, W, &q0, &q1);
                        float *os = o + offw;
                        if (sw == 1)
                            for (int64_t q = q0; q < q1; q++)
                                os[q] += wv * gr[q];
                        else
                            for (int64_t q = q0; q < q1; q++)
                                os[q * sw] += wv * gr[q];
                    }
                }
            }
        }
    }
}

/* items k: dw[k, c, r, s] = sum over n, p, q of dy[n, k, p, q] times the
 * input it saw; db[k] = sum of dy[n, k] (when wanted).  Row partial sums
 * in float, accumulated in double in a fixed order. */
KERNEL static void direct_bwd_filter_chunk(void *arg, int64_t begin, int64_t end,
                                           int chunk)
{
    const conv_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const int64_t P = d->P, Q = d->Q, H = d->H, W = d->W, R = d->R, S = d->S;
    const int64_t sh = d->stride_h, sw = d->stride_w;
    const int64_t cg = d->C / d->groups, kg = d->K / d->groups;
    double acc[DIRECT_MAX_CRS];
    (void)chunk;
    for (int64_t k = begin; k < end; k++) {
        int64_t g = k / kg, crs = cg * R * S;
        double bsum = 0.0;
        for (int64_t i = 0; i < crs; i++)
            acc[i] = 0.0;
        for (int64_t n = 0; n < d->N; n++) {
            const float *dyp = j->dy + (n * d->K + k) * P * Q;
            if (j->db) {
                float s = 0.0f;
                for (int64_t i = 0; i < P * Q; i++)
                    s += dyp[i];
                bsum += s;
            }
            for (int64_t c = 0; c < cg; c++) {
                const float *xp = j->x + (n * d->C + g * cg + c) * H * W;
                for (int64_t r = 0; r < R; r++) {
                    int64_t offh = r * d->dil_h - d->pad_h, p0, p1;
                    valid_range(P, sh, offh, H, &p0, &p1);
                    for (int64_t s = 0; s < S; s++) {
                        int64_t offw = s * d->dil_w - d->pad_w, q0, q1;
                        valid_range(Q, sw, offw, W, &q0, &q1);
                        float part = 0.0f;
                        for (int64_t p = p0; p < p1; p++) {
                            const float *gr = dyp + p * Q;
                            const float *xs = xp + (p * sh + offh) * W + offw;
                            if (sw == 1)
                                for (int64_t q = q0; q < q1; q++)
                                    part += gr[q] * xs[q];
                            else
                                for (int64_t q = q0; q < q1; q++)
                                    part += gr[q] * xs[q * sw];
                        }
                        acc[(c * R + r) * S + s] += part;
                    }
                }
            }
        }
        for (int64_t i = 0; i < crs; i++)
            j->dw[k * crs + i] = (float)acc[i];
        if (j->db)
            j->db[k] = (float)bsum;
    }
}

/* ---- direct loops on flat padded planes (stride 1) ---- */

/* the chunk's scratch: padded input planes, accumulator, padded dx plane */
static void flat_scratch(const conv_job *j, int chunk, float **xs, float **acc,
                         float **dxs)
{
    flat_geom f = flat_geom_of(j->d);
    float *base = j->col + (int64_t)chunk * (f.xs + f.acc + f.dxs);
    *xs = base;
    *acc = base + f.xs;
    *dxs = base + f.xs + f.acc;
}

/* xs = the cg planes of image n from channel c0 on, zero-padded */
COPY_KERNEL static void pad_planes(float *restrict xs, const float *restrict x,
                                   const mltk_conv2d_desc *d, const flat_geom *f,
                                   int64_t cg)
{
    memset(xs, 0, (size_t)f->xs * sizeof(float));
    for (int64_t c = 0; c < cg; c++)
        for (int64_t h = 0; h < d->H; h++) {
            float *restrict o = xs + c * f->plane + (h + d->pad_h) * f->Wp + d->pad_w;
            const float *restrict src = x + (c * d->H + h) * d->W;
            for (int64_t w = 0; w < d->W; w++)
                o[w] = src[w];
        }
}

/* acc (P, Wp) = dy plane (P, Q) with zeros in the columns q >= Q */
COPY_KERNEL static void spread_dy(float *restrict acc, const float *restrict dy,
                                  const mltk_conv2d_desc *d, const flat_geom *f)
{
    for (int64_t p = 0; p < d->P; p++) {
        float *restrict o = acc + p * f->Wp;
        const float *restrict src = dy + p * d->Q;
        for (int64_t q = 0; q < d->Q; q++)
            o[q] = src[q];
        for (int64_t q = d->Q; q < f->Wp; q++)
            o[q] = 0.0f;
    }
}

/* dx plane (H, W) = the interior of the padded plane dxs */
COPY_KERNEL static void unpad_plane(float *restrict dx, const float *restrict dxs,
                                    const mltk_conv2d_desc *d, const flat_geom *f)
{
    for (int64_t h = 0; h < d->H; h++) {
        float *restrict o = dx + h * d->W;
        const float *restrict src = dxs + (h + d->pad_h) * f->Wp + d->pad_w;
        for (int64_t w = 0; w < d->W; w++)
            o[w] = src[w];
    }
}

/* acc[i] (+)= sum over the S taps of row r: w[s] * src[i + s*dw] */
KERNEL static void taps_row(float *restrict acc, const float *restrict src,
                            const float *restrict w, int64_t S, int64_t dw, int64_t n,
                            int first)
{
    if (S == 3) {
        const float w0 = w[0], w1 = w[1], w2 = w[2];
        const float *s1 = src + dw, *s2 = src + 2 * dw;
        if (first)
            for (int64_t i = 0; i < n; i++)
                acc[i] = w0 * src[i] + w1 * s1[i] + w2 * s2[i];
        else
            for (int64_t i = 0; i < n; i++)
                acc[i] += w0 * src[i] + w1 * s1[i] + w2 * s2[i];
        return;
    }
    for (int64_t s = 0; s < S; s++) {
        const float wv = w[s];
        const float *ss = src + s * dw;
        if (first && s == 0)
            for (int64_t i = 0; i < n; i++)
                acc[i] = wv * ss[i];
        else
            for (int64_t i = 0; i < n; i++)
                acc[i] += wv * ss[i];
    }
}

/* sum of a[i] b[i], i < n, in 16 float lanes combined in a fixed order */
KERNEL static double dot_lanes(const float *restrict a, const float *restrict b, int64_t n)
{
    float l[16] = { 0 };
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            l[k] += a[i + k] * b[i + k];
    double s = 0.0;
    for (; i < n; i++)
        s += (double)a[i] * b[i];
    for (int k = 0; k < 16; k++)
        s += l[k];
    return s;
}

/* out[t] += sum of a[i] b[i + t*dw] for t < 3: three taps of one row in
 * one pass over a, lanes as in dot_lanes */
KERNEL static void dot3_lanes(double *out, const float *restrict a, const float *restrict b,
                              int64_t dw, int64_t n)
{
    float l0[16] = { 0 }, l1[16] = { 0 }, l2[16] = { 0 };
    const float *b1 = b + dw, *b2 = b + 2 * dw;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) {
            float v = a[i + k];
            l0[k] += v * b[i + k];
            l1[k] += v * b1[i + k];
            l2[k] += v * b2[i + k];
        }
    double s0 = 0.0, s1 = 0.0, s2 = 0.0;
    for (; i < n; i++) {
        s0 += (double)a[i] * b[i];
        s1 += (double)a[i] * b1[i];
        s2 += (double)a[i] * b2[i];
    }
    for (int k = 0; k < 16; k++) {
        s0 += l0[k];
        s1 += l1[k];
        s2 += l2[k];
    }
    out[0] += s0;
    out[1] += s1;
    out[2] += s2;
}

/* dst[i] += w * src[i] */
KERNEL static void axpy(float *restrict dst, const float *restrict src, float w, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] += w * src[i];
}

/* items (n, g): every output plane of image n in group g */
static void flat_fwd_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const flat_geom f = flat_geom_of(d);
    const int64_t G = d->groups, cg = d->C / G, kg = d->K / G, R = d->R, S = d->S;
    const int64_t n_acc = d->P * f.Wp;
    float *xs, *acc, *dxs;
    flat_scratch(j, chunk, &xs, &acc, &dxs);
    for (int64_t it = begin; it < end; it++) {
        int64_t n = it / G, g = it % G;
        pad_planes(xs, j->x + (n * d->C + g * cg) * d->H * d->W, d, &f, cg);
        for (int64_t kk = 0; kk < kg; kk++) {
            int64_t k = g * kg + kk;
            const float *wk = j->w + k * cg * R * S;
            for (int64_t c = 0; c < cg; c++)
                for (int64_t r = 0; r < R; r++)
                    taps_row(acc, xs + c * f.plane + r * d->dil_h * f.Wp,
                             wk + (c * R + r) * S, S, d->dil_w, n_acc, c == 0 && r == 0);
            float *yp = j->y + (n * d->K + k) * d->P * d->Q;
            float bias = j->b ? j->b[k] : 0.0f;
            for (int64_t p = 0; p < d->P; p++)
                k_bias_act_row(yp + p * d->Q, acc + p * f.Wp, bias, d->Q, j->act, j->alpha);
        }
    }
}

/* items (n, c): dx plane (n, c) from the dy planes of c's group */
static void flat_bwd_data_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const flat_geom f = flat_geom_of(d);
    const int64_t cg = d->C / d->groups, kg = d->K / d->groups, R = d->R, S = d->S;
    const int64_t n_acc = d->P * f.Wp;
    float *xs, *acc, *dxs;
    flat_scratch(j, chunk, &xs, &acc, &dxs);
    for (int64_t it = begin; it < end; it++) {
        int64_t n = it / d->C, c = it % d->C, g = c / cg, cl = c % cg;
        memset(dxs, 0, (size_t)f.dxs * sizeof(float));
        for (int64_t kk = 0; kk < kg; kk++) {
            int64_t k = g * kg + kk;
            const float *wk = j->w + (k * cg + cl) * R * S;
            spread_dy(acc, j->dy + (n * d->K + k) * d->P * d->Q, d, &f);
            for (int64_t r = 0; r < R; r++)
                for (int64_t s = 0; s < S; s++)
                    axpy(dxs + r * d->dil_h * f.Wp + s * d->dil_w, acc, wk[r * S + s], n_acc);
        }
        unpad_plane(j->dx + it * d->H * d->W, dxs, d, &f);
    }
}

/* items k: dw[k] and db[k], summing over images in order */
static void flat_bwd_filter_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const conv_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const flat_geom f = flat_geom_of(d);
    const int64_t cg = d->C / d->groups, kg = d->K / d->groups, R = d->R, S = d->S;
    const int64_t n_acc = d->P * f.Wp, crs = cg * R * S;
    double sums[DIRECT_MAX_CRS];
    float *xs, *acc, *dxs;
    flat_scratch(j, chunk, &xs, &acc, &dxs);
    for (int64_t k = begin; k < end; k++) {
        int64_t g = k / kg;
        double bsum = 0.0;
        for (int64_t i = 0; i < crs; i++)
            sums[i] = 0.0;
        for (int64_t n = 0; n < d->N; n++) {
            const float *dyp = j->dy + (n * d->K + k) * d->P * d->Q;
            pad_planes(xs, j->x + (n * d->C + g * cg) * d->H * d->W, d, &f, cg);
            spread_dy(acc, dyp, d, &f);
            if (j->db)
                bsum += sum_lanes(dyp, d->P * d->Q);
            for (int64_t c = 0; c < cg; c++)
                for (int64_t r = 0; r < R; r++) {
                    const float *row = xs + c * f.plane + r * d->dil_h * f.Wp;
                    double *out = sums + (c * R + r) * S;
                    if (S == 3) {
                        dot3_lanes(out, acc, row, d->dil_w, n_acc);
                        continue;
                    }
                    for (int64_t s = 0; s < S; s++)
                        out[s] += dot_lanes(acc, row + s * d->dil_w, n_acc);
                }
        }
        for (int64_t i = 0; i < crs; i++)
            j->dw[k * crs + i] = (float)sums[i];
        if (j->db)
            j->db[k] = (float)bsum;
    }
}

/* ---- implicit GEMM (stride 1, AVX-512) ---- */

typedef struct imp_job {
    const mltk_conv2d_desc *d;
    imp_geom     g;
    const float *x;
    const float *w;
    const float *b;
    const float *dy;
    float       *y;
    float       *dx;
    float       *dw;
    float       *db;
    float       *pack;     /* packed weights (forward, backward data) */
    double      *parts;    /* filter-gradient partials, g.part / 2 doubles apart */
    float       *scratch;  /* chunk k's region at scratch + k * g.scratch */
    int64_t      chunks;   /* chunks of the filter-gradient job */
    mltk_act     act;
    float        alpha;
    int64_t      toff[IMPLICIT_MAX_TAPS];  /* tap (r, s) at r*S + s */
} imp_job;

/* the workspace's regions, from its first 64-byte boundary */
static void imp_regions(imp_job *j, void *ws)
{
    float *base = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    int64_t first = j->g.parts * j->g.part;
    if (first < j->g.pack)
        first = j->g.pack;
    j->pack = base;
    j->parts = (double *)(void *)base;
    j->scratch = base + first;
}

static uint16_t lanes_mask(int64_t n)
{
    return (uint16_t)(n >= CG_LANES ? 0xffffu : (1u << n) - 1u);
}

/* pack[((g*nkt + t)*crs + i)*CG_MR + m] = w[g*kg + t*CG_MR + m, i], 0 past
 * the group's kg filters: the forward tiles' weights, a column of CG_MR
 * output channels per (input channel, tap) */
static void pack_fwd(float *restrict pack, const float *restrict w,
                     const mltk_conv2d_desc *d, const imp_geom *g)
{
    const int64_t G = d->groups, kg = d->K / G, crs = d->C / G * d->R * d->S;
    for (int64_t gr = 0; gr < G; gr++)
        for (int64_t t = 0; t < g->nkt; t++)
            for (int64_t i = 0; i < crs; i++)
                for (int64_t m = 0; m < CG_MR; m++) {
                    int64_t k = t * CG_MR + m;
                    *pack++ = k < kg ? w[(gr * kg + k) * crs + i] : 0.0f;
                }
}

/* pack[(((g*nct + t)*kg + k)*RS + rs)*CG_MR + m] = w[g*kg + k, t*CG_MR + m,
 * rs], 0 past the group's cg channels: the backward-data tiles' weights, a
 * column of CG_MR input channels per (output channel, tap) */
static void pack_bwd(float *restrict pack, const float *restrict w,
                     const mltk_conv2d_desc *d, const imp_geom *g)
{
    const int64_t G = d->groups, kg = d->K / G, cg = d->C / G, RS = d->R * d->S;
    for (int64_t gr = 0; gr < G; gr++)
        for (int64_t t = 0; t < g->nct; t++)
            for (int64_t k = 0; k < kg; k++)
                for (int64_t rs = 0; rs < RS; rs++)
                    for (int64_t m = 0; m < CG_MR; m++) {
                        int64_t c = t * CG_MR + m;
                        *pack++ = c < cg ? w[((gr * kg + k) * cg + c) * RS + rs] : 0.0f;
                    }
}

/* items (n, g): y[n, the group's K] from the padded input planes.  Tile
 * views are the output rows cut into vectors of 16: view (p, u) covers
 * q = 16u .. 16u+15 (masked to Q) and reads the padded input from
 * p*Wp + 16u, plus each tap's offset.  The views of a tile stay in L1
 * while the tiles of 8 output channels pass over them. */
static void imp_fwd_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const imp_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const imp_geom *g = &j->g;
    const int64_t G = d->groups, cg = d->C / G, kg = d->K / G, RS = d->R * d->S;
    const int64_t PQ = d->P * d->Q, HW = d->H * d->W, views = d->P * g->vq;
    const uint16_t last = lanes_mask(d->Q - (g->vq - 1) * CG_LANES);
    const int fused = j->act == MLTK_ACT_RELU ? CG_ACT_RELU
        : j->act == MLTK_ACT_LEAKY_RELU ? CG_ACT_LEAKY : CG_ACT_NONE;
    float *xs = j->scratch + chunk * g->scratch;
    cg_tile t = { .b = xs, .bstride = g->xplane, .nch = cg, .taps = RS, .toff = j->toff,
                  .ldd = PQ, .act = fused, .alpha = j->alpha };
    for (int64_t it = begin; it < end; it++) {
        int64_t n = it / G, gr = it % G;
        float *yg = j->y + (n * d->K + gr * kg) * PQ;
        /* the zeros written for the chunk's first item stay */
        cpu_gemm_embed(xs, j->x + (n * d->C + gr * cg) * HW, cg, d->H, d->W, d->pad_h,
                       d->pad_w, g->Hp, g->Wp, g->xslack, it == begin);
        for (int64_t v0 = 0; v0 < views; v0 += CG_NV) {
            t.nv = (int)(views - v0 < CG_NV ? views - v0 : CG_NV);
            for (int v = 0; v < t.nv; v++) {
                int64_t p = (v0 + v) / g->vq, u = (v0 + v) % g->vq;
                t.boff[v] = p * g->Wp + u * CG_LANES;
                t.doff[v] = p * d->Q + u * CG_LANES;
                t.mask[v] = u == g->vq - 1 ? last : 0xffff;
            }
            for (int64_t kt = 0; kt < g->nkt; kt++) {
                t.a = j->pack + (gr * g->nkt + kt) * cg * RS * CG_MR;
                t.mr = (int)(kg - kt * CG_MR < CG_MR ? kg - kt * CG_MR : CG_MR);
                t.dst = yg + kt * CG_MR * PQ;
                t.bias = j->b ? j->b + gr * kg + kt * CG_MR : NULL;
                cpu_gemm_tile(&t);
            }
        }
        if (fused == CG_ACT_NONE && j->act != MLTK_ACT_NONE)
            for (int64_t k = 0; k < kg; k++)
                k_bias_act_row(yg + k * PQ, yg + k * PQ, 0.0f, PQ, j->act, j->alpha);
    }
}

/* items (n, g): dx[n, the group's C] from dy planes padded by the
 * filter's reach, dy[p, q] at (p + mt, q + ml) of a (Hd, Wd) plane.  View
 * (h, u) covers w = 16u .. 16u+15 (masked to W) of dx row h; tap (r, s)
 * reads dy at p = h + pad_h - r*dil_h, q = w + pad_w - s*dil_w, i.e. at
 * (h + pad_h + mt)*Wd + w + pad_w + ml - (r*dil_h*Wd + s*dil_w), which
 * lands on a zero wherever (p, q) is outside dy. */
static void imp_bwd_data_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const imp_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const imp_geom *g = &j->g;
    const int64_t G = d->groups, cg = d->C / G, kg = d->K / G, RS = d->R * d->S;
    const int64_t PQ = d->P * d->Q, HW = d->H * d->W, views = d->H * g->vw;
    const uint16_t last = lanes_mask(d->W - (g->vw - 1) * CG_LANES);
    float *ds = j->scratch + chunk * g->scratch;
    cg_tile t = { .b = ds, .bstride = g->dplane, .nch = kg, .taps = RS, .toff = j->toff,
                  .ldd = HW, .act = CG_ACT_NONE };
    for (int64_t it = begin; it < end; it++) {
        int64_t n = it / G, gr = it % G;
        float *dxg = j->dx + (n * d->C + gr * cg) * HW;
        cpu_gemm_embed(ds, j->dy + (n * d->K + gr * kg) * PQ, kg, d->P, d->Q, g->mt, g->ml,
                       g->Hd, g->Wd, g->dslack, it == begin);
        for (int64_t v0 = 0; v0 < views; v0 += CG_NV) {
            t.nv = (int)(views - v0 < CG_NV ? views - v0 : CG_NV);
            for (int v = 0; v < t.nv; v++) {
                int64_t h = (v0 + v) / g->vw, u = (v0 + v) % g->vw;
                t.boff[v] = (h + d->pad_h + g->mt) * g->Wd + u * CG_LANES + d->pad_w + g->ml;
                t.doff[v] = h * d->W + u * CG_LANES;
                t.mask[v] = u == g->vw - 1 ? last : 0xffff;
            }
            for (int64_t ct = 0; ct < g->nct; ct++) {
                t.a = j->pack + (gr * g->nct + ct) * kg * RS * CG_MR;
                t.mr = (int)(cg - ct * CG_MR < CG_MR ? cg - ct * CG_MR : CG_MR);
                t.dst = dxg + ct * CG_MR * HW;
                cpu_gemm_tile(&t);
            }
        }
    }
}

/* the sums of a filter-gradient tile of filters k0 + i (i < kv) by
 * columns c0 + jj (jj < cv), sums[i*ldi + jj*ldj], added to the chunk's
 * partials; db too when the tile carried it (at dbs[i]) */
static void add_tile(double *part, double *pdb, int64_t crs, int64_t k0, int64_t kv,
                     int64_t c0, int64_t cv, const float *sums, int64_t ldi, int64_t ldj,
                     const float *dbs)
{
    for (int64_t i = 0; i < kv; i++) {
        for (int64_t jj = 0; jj < cv; jj++)
            part[(k0 + i) * crs + c0 + jj] += sums[i * ldi + jj * ldj];
        if (dbs)
            pdb[k0 + i] += dbs[i];
    }
}

/* offsets of the padded input views of columns c0 .. c0+n-1 of a group's
 * (channel, tap) columns; columns past crs repeat c0 (their sums are
 * dropped) */
static void view_offsets(int64_t *xoff, int n, int64_t c0, int64_t crs, int64_t gr,
                         const mltk_conv2d_desc *d, const imp_geom *g)
{
    const int64_t RS = d->R * d->S, cg = d->C / d->groups;
    for (int jj = 0; jj < n; jj++) {
        int64_t col = c0 + jj < crs ? c0 + jj : c0, tap = col % RS;
        xoff[jj] = (gr * cg + col / RS) * g->xplane + tap / d->S * d->dil_h * g->Wp
            + tap % d->S * d->dil_w;
    }
}

/* items n, in blocks of nb images: the chunk's partial dw (K, crs) and db
 * (K), in double.  Two tilings: with dy transposed (position-major, the
 * group's filters contiguous), tiles of 32 filters in the lanes by 12
 * (channel, tap) columns, one broadcast input per column and position
 * (cpu_gemm_dwk_tile); with dy read in place, where a copy would not pay
 * (few columns), tiles of 4 filters by 6 columns with the lanes along the
 * rows (cpu_gemm_dw_tile).  Column (c, r, s) reads the padded input at
 * c*plane + r*dil_h*Wp + s*dil_w. */
static void imp_bwd_filter_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const imp_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const imp_geom *g = &j->g;
    const int64_t G = d->groups, cg = d->C / G, kg = d->K / G, RS = d->R * d->S;
    const int64_t crs = cg * RS, PQ = d->P * d->Q, HW = d->H * d->W;
    const int64_t ximg = d->C * g->xplane;
    double *part = j->parts + chunk * (g->part / 2), *pdb = part + d->K * crs;
    float *xs = j->scratch + chunk * g->scratch;
    float *dyt = xs + round16(g->nb * ximg + g->xslack);
    float sums[CG_DWK_SUMS > CG_DW_SUMS ? CG_DWK_SUMS : CG_DW_SUMS];
    cg_dw t = { .dy_img = d->K * PQ, .dy_row = d->Q, .dy_ln = PQ, .x = xs, .x_img = ximg,
                .x_row = g->Wp, .rows = d->P, .vecs = g->vq,
                .last = lanes_mask(d->Q - (g->vq - 1) * CG_LANES) };
    cg_dwk tk = { .dy_img = g->dyimg, .dy_pos = g->kg16, .x = xs, .x_img = ximg,
                  .x_row = g->Wp, .rows = d->P, .cols = d->Q };

    memset(part, 0, (size_t)(d->K * crs + d->K) * sizeof(double));
    for (int64_t n0 = begin; n0 < end; n0 += g->nb) {
        int64_t nb = end - n0 < g->nb ? end - n0 : g->nb;
        for (int64_t i = 0; i < nb; i++) {
            /* the zeros written for the chunk's first block stay */
            cpu_gemm_embed(xs + i * ximg, j->x + (n0 + i) * d->C * HW, d->C, d->H, d->W,
                           d->pad_h, d->pad_w, g->Hp, g->Wp, i == nb - 1 ? g->xslack : 0,
                           n0 == begin);
            for (int64_t gr = 0; !g->inplace && gr < G; gr++)
                cpu_gemm_transpose(dyt + i * g->dyimg + gr * PQ * g->kg16, g->kg16,
                                   j->dy + ((n0 + i) * d->K + gr * kg) * PQ, PQ, kg, PQ);
        }
        t.images = tk.images = nb;
        for (int64_t gr = 0; gr < G; gr++) {
            if (!g->inplace) {
                for (int64_t k = 0; k < kg; k += 2 * CG_LANES) {
                    int64_t kv = kg - k < 2 * CG_LANES ? kg - k : 2 * CG_LANES;
                    tk.kv = kv > CG_LANES ? 2 : 1;
                    tk.dyt = dyt + gr * PQ * g->kg16 + k;
                    int nt = CG_NK / tk.kv;
                    for (int64_t c0 = 0; c0 < crs; c0 += nt) {
                        view_offsets(tk.xoff, nt, c0, crs, gr, d, g);
                        tk.with_db = j->db && c0 == 0;
                        cpu_gemm_dwk_tile(sums, &tk);
                        add_tile(part, pdb, crs, gr * kg + k, kv, c0,
                                 crs - c0 < nt ? crs - c0 : nt, sums, 1,
                                 tk.kv * CG_LANES, tk.with_db ? sums + CG_NK * CG_LANES : NULL);
                    }
                }
                continue;
            }
            for (int64_t kt = 0; kt < g->nkd; kt++) {
                /* a short last tile reads the group's last CG_KT filters
                 * (kg >= CG_KT) and keeps its last kv sums */
                int64_t kv = kg - kt * CG_KT < CG_KT ? kg - kt * CG_KT : CG_KT;
                int64_t i0 = CG_KT - kv, k0 = gr * kg + kt * CG_KT;
                t.dy = j->dy + n0 * d->K * PQ + (k0 - i0) * PQ;
                for (int64_t c0 = 0; c0 < crs; c0 += CG_NT) {
                    view_offsets(t.xoff, CG_NT, c0, crs, gr, d, g);
                    t.with_db = j->db && c0 == 0;
                    cpu_gemm_dw_tile(sums, &t);
                    add_tile(part, pdb, crs, k0, kv, c0, crs - c0 < CG_NT ? crs - c0 : CG_NT,
                             sums + i0 * CG_NT, CG_NT, 1,
                             t.with_db ? sums + CG_KT * CG_NT + i0 : NULL);
                }
            }
        }
    }
}

/* items k: dw[k] and db[k] = the chunks' partials summed in chunk order */
static void imp_reduce_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const imp_job *j = arg;
    const mltk_conv2d_desc *d = j->d;
    const int64_t crs = d->C / d->groups * d->R * d->S, stride = j->g.part / 2;
    (void)chunk;
    for (int64_t k = begin; k < end; k++) {
        for (int64_t i = 0; i < crs; i++) {
            double s = 0.0;
            for (int64_t ch = 0; ch < j->chunks; ch++)
                s += j->parts[ch * stride + k * crs + i];
            j->dw[k * crs + i] = (float)s;
        }
        if (j->db) {
            double s = 0.0;
            for (int64_t ch = 0; ch < j->chunks; ch++)
                s += j->parts[ch * stride + d->K * crs + k];
            j->db[k] = (float)s;
        }
    }
}

static int imp_forward(cpu_ctx *c, float *y, const float *x, const float *w,
                       const float *b, const mltk_conv2d_desc *d, mltk_act act,
                       float alpha, void *ws)
{
    imp_job j = { .d = d, .x = x, .w = w, .b = b, .y = y, .act = act, .alpha = alpha };
    const int64_t G = d->groups, kg = d->K / G, crs = d->C / G * d->R * d->S;
    int ok = imp_geom_of(c, d, &j.g);
    assert(ok && ws);  /* conv_path_of chose this path, run checked ws */
    (void)ok;
    imp_regions(&j, ws);
    pack_fwd(j.pack, w, d, &j.g);
    for (int64_t r = 0; r < d->R; r++)
        for (int64_t s = 0; s < d->S; s++)
            j.toff[r * d->S + s] = r * d->dil_h * j.g.Wp + s * d->dil_w;
    run_job(c, imp_fwd_chunk, &j, d->N * G, planes_work(d->N * G, kg * d->P * d->Q * crs));
    return MLTK_OK;
}

static int imp_backward_data(cpu_ctx *c, float *dx, const float *dy, const float *w,
                             const mltk_conv2d_desc *d, void *ws)
{
    imp_job j = { .d = d, .dy = dy, .w = w, .dx = dx };
    const int64_t G = d->groups, kg = d->K / G, crs = d->C / G * d->R * d->S;
    int ok = imp_geom_of(c, d, &j.g);
    assert(ok && ws);  /* conv_path_of chose this path, run checked ws */
    (void)ok;
    imp_regions(&j, ws);
    pack_bwd(j.pack, w, d, &j.g);
    for (int64_t r = 0; r < d->R; r++)
        for (int64_t s = 0; s < d->S; s++)
            j.toff[r * d->S + s] = -(r * d->dil_h * j.g.Wd + s * d->dil_w);
    run_job(c, imp_bwd_data_chunk, &j, d->N * G,
            planes_work(d->N * G, kg * d->H * d->W * crs));
    return MLTK_OK;
}

static int imp_backward_filter(cpu_ctx *c, float *dw, float *db, const float *dy,
                               const float *x, const mltk_conv2d_desc *d, void *ws)
{
    imp_job j = { .d = d, .dy = dy, .x = x, .dw = dw, .db = db };
    const int64_t crs = d->C / d->groups * d->R * d->S;
    int ok = imp_geom_of(c, d, &j.g);
    assert(ok && ws);  /* conv_path_of chose this path, run checked ws */
    (void)ok;
    imp_regions(&j, ws);
    int64_t work = planes_work(d->N, d->K * d->P * d->Q * crs);
    int chunks = cpu_pool_chunks(c->pool, d->N, work, GRAIN);
    if (chunks > j.g.parts)
        chunks = (int)j.g.parts;
    j.chunks = chunks;
    cpu_pool_run(c->pool, imp_bwd_filter_chunk, &j, d->N, chunks, 1, work);
    run_job(c, imp_reduce_chunk, &j, d->K, planes_work(d->K, chunks * (crs + 1)));
    return MLTK_OK;
}

/* ---- convolution ops ---- */

/* x (N,C,H,W), w (K,C/groups,R,S), b (K) or NULL -> y (N,K,P,Q) =
 * act(conv(x, w) + b) */
int cpu_conv2d_forward(void *ctx, float *y, const float *x, const float *w,
                       const float *b, const mltk_conv2d_desc *d, mltk_act act,
                       float alpha, void *ws, char **err)
{
    cpu_ctx *c = ctx;
    int rc = check_blas(d, "conv2d_forward", err);
    if (rc || d->N == 0)
        return rc;
    if (!act_ok(act)) {
        /* an activation the epilogues do not fuse: a second pass */
        rc = cpu_conv2d_forward(ctx, y, x, w, b, d, MLTK_ACT_NONE, 0.0f, ws, err);
        if (rc)
            return rc;
        return cpu_act_forward(ctx, act, alpha, y, y, d->N * d->K * d->P * d->Q);
    }
    const int64_t G = d->groups, cg = d->C / G, kg = d->K / G;
    const int64_t PQ = d->P * d->Q, HW = d->H * d->W, crs = cg * d->R * d->S;
    conv_job j = { .d = d, .x = x, .w = w, .b = b, .y = y, .act = act, .alpha = alpha };

    switch (conv_path_of(c, d)) {
    case PATH_IMPLICIT:
        return imp_forward(c, y, x, w, b, d, act, alpha, ws);
    case PATH_DIRECT:
        if (is_flat(c, d)) {
            assert(ws);
            j.col = ws;
            run_job(c, flat_fwd_chunk, &j, d->N * G,
                    planes_work(d->N * G, kg * PQ * crs));
        } else {
            run_job(c, direct_fwd_chunk, &j, d->N * d->K,
                    planes_work(d->N * d->K, PQ * crs));
        }
        return MLTK_OK;
    case PATH_1X1:
        /* y_n,g (kg, PQ) = w_g (kg, cg) x_n,g (cg, PQ) */
        for (int64_t n = 0; n < d->N; n++)
            for (int64_t g = 0; g < G; g++)
                sgemm(c, 0, 0, kg, PQ, cg, w + g * kg * cg, cg,
                      x + (n * d->C + g * cg) * HW, HW, 0.0f,
                      y + (n * d->K + g * kg) * PQ, PQ);
        if (b || act != MLTK_ACT_NONE)
            run_job(c, bias_act_inplace_chunk, &j, d->N * d->K,
                    planes_work(d->N * d->K, 2 * PQ));
        return MLTK_OK;
    case PATH_GEMM:
        break;
    }
    assert(ws);
    const int64_t nb_max = chunk_images(d);
    for (int64_t n0 = 0; n0 < d->N; n0 += nb_max) {
        int64_t nb = d->N - n0 < nb_max ? d->N - n0 : nb_max;
        j.nb = nb;
        j.L = nb * PQ;
        j.x = x + n0 * d->C * HW;
        j.y = y + n0 * d->K * PQ;
        j.col = ws;
        j.mat = j.col + d->C * d->R * d->S * j.L;
        run_job(c, im2col_chunk, &j, d->C * d->R * d->S * nb,
                planes_work(d->C * d->R * d->S * nb, PQ));
        for (int64_t g = 0; g < G; g++)
            sgemm(c, 0, 0, kg, j.L, crs, w + g * kg * crs, crs,
                  j.col + g * crs * j.L, j.L, 0.0f, j.mat + g * kg * j.L, j.L);
        run_job(c, epilogue_chunk, &j, nb * d->K, planes_work(nb * d->K, 2 * PQ));
    }
    return MLTK_OK;
}

/* dy (N,K,P,Q), w (K,C/groups,R,S) -> dx (N,C,H,W) = conv_transpose(dy, w) */
int cpu_conv2d_backward_data(void *ctx, float *dx, const float *dy, const float *w,
                             const mltk_conv2d_desc *d, void *ws, char **err)
{
    cpu_ctx *c = ctx;
    int rc = check_blas(d, "conv2d_backward_data", err);
    if (rc || d->N == 0)
        return rc;
    const int64_t G = d->groups, cg = d->C / G, kg = d->K / G;
    const int64_t PQ = d->P * d->Q, HW = d->H * d->W, crs = cg * d->R * d->S;
    conv_job j = { .d = d, .dy = dy, .w = w, .dx = dx };

    switch (conv_path_of(c, d)) {
    case PATH_IMPLICIT:
        return imp_backward_data(c, dx, dy, w, d, ws);
    case PATH_DIRECT:
        if (is_flat(c, d)) {
            assert(ws);
            j.col = ws;
            run_job(c, flat_bwd_data_chunk, &j, d->N * d->C,
                    planes_work(d->N * d->C, PQ * kg * d->R * d->S));
        } else {
            run_job(c, direct_bwd_data_chunk, &j, d->N * d->C,
                    planes_work(d->N * d->C, PQ * kg * d->R * d->S));
        }
        return MLTK_OK;
    case PATH_1X1:
        /* dx_n,g (cg, HW) = w_g^T (cg, kg) dy_n,g (kg, HW) */
        for (int64_t n = 0; n < d->N; n++)
            for (int64_t g = 0; g < G; g++)
                sgemm(c, 1, 0, cg, HW, kg, w + g * kg * cg, cg,
                      dy + (n * d->K + g * kg) * PQ, PQ, 0.0f,
                      dx + (n * d->C + g * cg) * HW, HW);
        return MLTK_OK;
    case PATH_GEMM:
        break;
    }
    assert(ws);
    const int64_t nb_max = chunk_images(d);
    for (int64_t n0 = 0; n0 < d->N; n0 += nb_max) {
        int64_t nb = d->N - n0 < nb_max ? d->N - n0 : nb_max;
        j.nb = nb;
        j.L = nb * PQ;
        j.dy = dy + n0 * d->K * PQ;
        j.dx = dx + n0 * d->C * HW;
        j.col = ws;
        j.mat = j.col + d->C * d->R * d->S * j.L;
        j.db = NULL;
        run_job(c, transpose_dy_chunk, &j, d->K, planes_work(d->K, 2 * j.L));
        for (int64_t g = 0; g < G; g++)
            sgemm(c, 1, 0, crs, j.L, kg, w + g * kg * crs, crs,
                  j.mat + g * kg * j.L, j.L, 0.0f, j.col + g * crs * j.L, j.L);
        run_job(c, col2im_chunk, &j, nb * d->C,
                planes_work(nb * d->C, d->R * d->S * PQ + HW));
    }
    return MLTK_OK;
}

/* dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C/groups,R,S), db (K) or NULL (the
 * sum of dy over N, P, Q); both overwritten */
int cpu_conv2d_backward_filter(void *ctx, float *dw, float *db, const float *dy,
                               const float *x, const mltk_conv2d_desc *d, void *ws,
                               char **err)
{
    cpu_ctx *c = ctx;
    int rc = check_blas(d, "conv2d_backward_filter", err);
    if (rc)
        return rc;
    const int64_t G = d->groups, cg = d->C / G, kg = d->K / G;
    const int64_t PQ = d->P * d->Q, HW = d->H * d->W, crs = cg * d->R * d->S;
    if (d->N == 0) {
        memset(dw, 0, (size_t)(d->K * crs) * sizeof(float));
        if (db)
            memset(db, 0, (size_t)d->K * sizeof(float));
        return MLTK_OK;
    }
    conv_job j = { .d = d, .dy = dy, .x = x, .dw = dw, .db = db };

    switch (conv_path_of(c, d)) {
    case PATH_IMPLICIT:
        return imp_backward_filter(c, dw, db, dy, x, d, ws);
    case PATH_DIRECT:
        if (is_flat(c, d)) {
            assert(ws);
            j.col = ws;
            run_job(c, flat_bwd_filter_chunk, &j, d->K,
                    planes_work(d->K, d->N * PQ * (crs + 1)));
        } else {
            run_job(c, direct_bwd_filter_chunk, &j, d->K,
                    planes_work(d->K, d->N * PQ * (crs + 1)));
        }
        return MLTK_OK;
    case PATH_1X1:
        /* dw_g (kg, cg) = sum over n of dy_n,g (kg, HW) x_n,g^T (HW, cg) */
        for (int64_t n = 0; n < d->N; n++)
            for (int64_t g = 0; g < G; g++)
                sgemm(c, 0, 1, kg, cg, HW, dy + (n * d->K + g * kg) * PQ, PQ,
                      x + (n * d->C + g * cg) * HW, HW, n ? 1.0f : 0.0f,
                      dw + g * kg * cg, cg);
        if (db)
            run_job(c, bias_grad_chunk, &j, d->K, planes_work(d->K, d->N * PQ));
        return MLTK_OK;
    case PATH_GEMM:
        break;
    }
    assert(ws);
    const int64_t nb_max = chunk_images(d);
    for (int64_t n0 = 0; n0 < d->N; n0 += nb_max) {
        int64_t nb = d->N - n0 < nb_max ? d->N - n0 : nb_max;
        j.nb = nb;
        j.L = nb * PQ;
        j.x = x + n0 * d->C * HW;
        j.dy = dy + n0 * d->K * PQ;
        j.col = ws;
        j.mat = j.col + d->C * d->R * d->S * j.L;
        j.accumulate = n0 > 0;
        run_job(c, im2col_chunk, &j, d->C * d->R * d->S * nb,
                planes_work(d->C * d->R * d->S * nb, PQ));
        run_job(c, transpose_dy_chunk, &j, d->K, planes_work(d->K, 2 * j.L));
        /* dw_g (kg, crs) (+)= dyt_g (kg, L) col_g^T (L, crs) */
        for (int64_t g = 0; g < G; g++)
            sgemm(c, 0, 1, kg, crs, j.L, j.mat + g * kg * j.L, j.L,
                  j.col + g * crs * j.L, j.L, n0 ? 1.0f : 0.0f, dw + g * kg * crs, crs);
    }
    return MLTK_OK;
}

/* ---- pooling ---- */

typedef struct pool_job {
    const mltk_pool2d_desc *d;
    mltk_pool    kind;
    const float *x;
    const float *dy;
    float       *y;
    float       *dx;
    int          avx512;   /* 2x2 max pooling on cpu_gemm.c's row kernels */
} pool_job;

/* PyTorch's count_include_pad divisor: the window clipped to the padded
 * input (never smaller than R*S without ceil_mode, kept for clarity) */
static inline float avg_divisor(const mltk_pool2d_desc *d, int64_t hs, int64_t ws)
{
    int64_t he = hs + d->R, we = ws + d->S;
    if (he > d->H + d->pad_h)
        he = d->H + d->pad_h;
    if (we > d->W + d->pad_w)
        we = d->W + d->pad_w;
    return (float)((he - hs) * (we - ws));
}

/* index in the plane of the maximum of window (hs, ws) as PyTorch picks
 * it: the first maximum, except that a NaN replaces it (the last NaN
 * wins); -1 if the window holds no input element */
static inline int64_t window_argmax(const mltk_pool2d_desc *d, const float *xp,
                                    int64_t hs, int64_t ws)
{
    int64_t r0 = hs < 0 ? 0 : hs, r1 = hs + d->R < d->H ? hs + d->R : d->H;
    int64_t s0 = ws < 0 ? 0 : ws, s1 = ws + d->S < d->W ? ws + d->S : d->W;
    if (r0 >= r1 || s0 >= s1)
        return -1;
    int64_t best = r0 * d->W + s0;
    float m = -INFINITY;
    for (int64_t h = r0; h < r1; h++)
        for (int64_t w = s0; w < s1; w++) {
            float v = xp[h * d->W + w];
            if (v > m || isnan(v)) {
                m = v;
                best = h * d->W + w;
            }
        }
    return best;
}

/* Backward of 2x2 stride-2 max pooling over one pair of input rows a, b
 * (Q windows): each window's gradient g[q] goes to its maximum, picked
 * like window_argmax (order a0, a1, b0, b1), the other three get 0.
 * Branch-free so that it vectorizes. */
KERNEL static void max2x2_bwd_rows(float *restrict oa, float *restrict ob,
                                   const float *restrict a, const float *restrict b,
                                   const float *restrict g, int64_t Q)
{
    for (int64_t q = 0; q < Q; q++) {
        float v0 = a[2 * q], v1 = a[2 * q + 1], v2 = b[2 * q], v3 = b[2 * q + 1];
        float m = v0;
        int at = 0;
        int c1 = (v1 > m) | (v1 != v1);
        m = c1 ? v1 : m;
        at = c1 ? 1 : at;
        int c2 = (v2 > m) | (v2 != v2);
        m = c2 ? v2 : m;
        at = c2 ? 2 : at;
        int c3 = (v3 > m) | (v3 != v3);
        at = c3 ? 3 : at;
        float gv = g[q];
        oa[2 * q] = at == 0 ? gv : 0.0f;
        oa[2 * q + 1] = at == 1 ? gv : 0.0f;
        ob[2 * q] = at == 2 ? gv : 0.0f;
        ob[2 * q + 1] = at == 3 ? gv : 0.0f;
    }
}

static int is_pool_2x2(const mltk_pool2d_desc *d)
{
    return d->R == 2 && d->S == 2 && d->stride_h == 2 && d->stride_w == 2
        && d->pad_h == 0 && d->pad_w == 0;
}

/* items (n, c) planes */
KERNEL static void pool_fwd_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const pool_job *j = arg;
    const mltk_pool2d_desc *d = j->d;
    const int64_t H = d->H, W = d->W, P = d->P, Q = d->Q;
    (void)chunk;
    for (int64_t it = begin; it < end; it++) {
        const float *xp = j->x + it * H * W;
        float *yp = j->y + it * P * Q;
        if (j->kind == MLTK_POOL_MAX && is_pool_2x2(d) && j->avx512) {
            for (int64_t p = 0; p < P; p++)
                cpu_gemm_max2x2_fwd(yp + p * Q, xp + 2 * p * W, xp + (2 * p + 1) * W, Q);
            continue;
        }
        if (j->kind == MLTK_POOL_MAX && is_pool_2x2(d)) {
            for (int64_t p = 0; p < P; p++) {
                const float *a = xp + 2 * p * W;
                float *o = yp + p * Q;
                for (int64_t q = 0; q < Q; q++) {
                    float m0 = a[2 * q], m1 = a[2 * q + 1];
                    float m2 = a[W + 2 * q], m3 = a[W + 2 * q + 1];
                    float m = m0;
                    m = m1 > m || isnan(m1) ? m1 : m;
                    m = m2 > m || isnan(m2) ? m2 : m;
                    m = m3 > m || isnan(m3) ? m3 : m;
                    o[q] = m;
                }
            }
            continue;
        }
        for (int64_t p = 0; p < P; p++) {
            int64_t hs = p * d->stride_h - d->pad_h;
            for (int64_t q = 0; q < Q; q++) {
                int64_t ws = q * d->stride_w - d->pad_w;
                if (j->kind == MLTK_POOL_MAX) {
                    int64_t at = window_argmax(d, xp, hs, ws);
                    yp[p * Q + q] = at >= 0 ? xp[at] : -INFINITY;
                } else {
                    int64_t r0 = hs < 0 ? 0 : hs, r1 = hs + d->R < H ? hs + d->R : H;
                    int64_t s0 = ws < 0 ? 0 : ws, s1 = ws + d->S < W ? ws + d->S : W;
                    float sum = 0.0f;
                    for (int64_t h = r0; h < r1; h++)
                        for (int64_t w = s0; w < s1; w++)
                            sum += xp[h * W + w];
                    yp[p * Q + q] = sum / avg_divisor(d, hs, ws);
                }
            }
        }
    }
}

/* items (n, c) planes: dx zeroed, then each dy routed back */
KERNEL static void pool_bwd_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const pool_job *j = arg;
    const mltk_pool2d_desc *d = j->d;
    const int64_t H = d->H, W = d->W, P = d->P, Q = d->Q;
    (void)chunk;
    for (int64_t it = begin; it < end; it++) {
        const float *xp = j->x ? j->x + it * H * W : NULL;
        const float *gp = j->dy + it * P * Q;
        float *dxp = j->dx + it * H * W;
        if (j->kind == MLTK_POOL_MAX && is_pool_2x2(d)) {
            /* every covered element is written once; the odd last row
             * and column (if any) are not covered */
            for (int64_t p = 0; p < P; p++) {
                if (j->avx512)
                    cpu_gemm_max2x2_bwd(dxp + 2 * p * W, dxp + (2 * p + 1) * W,
                                        xp + 2 * p * W, xp + (2 * p + 1) * W, gp + p * Q, Q);
                else
                    max2x2_bwd_rows(dxp + 2 * p * W, dxp + (2 * p + 1) * W, xp + 2 * p * W,
                                    xp + (2 * p + 1) * W, gp + p * Q, Q);
                for (int64_t w = 2 * Q; w < W; w++)
                    dxp[2 * p * W + w] = dxp[(2 * p + 1) * W + w] = 0.0f;
            }
            memset(dxp + 2 * P * W, 0, (size_t)((H - 2 * P) * W) * sizeof(float));
            continue;
        }
        memset(dxp, 0, (size_t)(H * W) * sizeof(float));
        for (int64_t p = 0; p < P; p++) {
            int64_t hs = p * d->stride_h - d->pad_h;
            for (int64_t q = 0; q < Q; q++) {
                int64_t ws = q * d->stride_w - d->pad_w;
                float g = gp[p * Q + q];
                if (j->kind == MLTK_POOL_MAX) {
                    int64_t at = window_argmax(d, xp, hs, ws);
                    if (at >= 0)
                        dxp[at] += g;
                } else {
                    int64_t r0 = hs < 0 ? 0 : hs, r1 = hs + d->R < H ? hs + d->R : H;
                    int64_t s0 = ws < 0 ? 0 : ws, s1 = ws + d->S < W ? ws + d->S : W;
                    float v = g / avg_divisor(d, hs, ws);
                    for (int64_t h = r0; h < r1; h++)
                        for (int64_t w = s0; w < s1; w++)
                            dxp[h * W + w] += v;
                }
            }
        }
    }
}

/* x (N,C,H,W) -> y (N,C,P,Q) */
int cpu_pool2d_forward(void *ctx, mltk_pool kind, float *y, const float *x,
                       const mltk_pool2d_desc *d)
{
    cpu_ctx *c = ctx;
    if (d->N == 0)
        return MLTK_OK;
    pool_job j = { .d = d, .kind = kind, .x = x, .y = y, .avx512 = CPU_ISA_AVX512_GEMM() };
    int64_t planes = d->N * d->C;
    run_job(c, pool_fwd_chunk, &j, planes,
            planes_work(planes, d->H * d->W + d->P * d->Q * d->R * d->S / 2));
    return MLTK_OK;
}

/* dy (N,C,P,Q), x (N,C,H,W) -> dx (N,C,H,W); max pooling recomputes each
 * window's first maximum from x (y is not needed) */
int cpu_pool2d_backward(void *ctx, mltk_pool kind, float *dx, const float *dy,
                        const float *x, const float *y, const mltk_pool2d_desc *d)
{
    cpu_ctx *c = ctx;
    (void)y;
    if (d->N == 0)
        return MLTK_OK;
    pool_job j = { .d = d, .kind = kind, .x = x, .dy = dy, .dx = dx,
                   .avx512 = CPU_ISA_AVX512_GEMM() };
    int64_t planes = d->N * d->C;
    run_job(c, pool_bwd_chunk, &j, planes,
            planes_work(planes, 2 * d->H * d->W + d->P * d->Q * d->R * d->S));
    return MLTK_OK;
}
