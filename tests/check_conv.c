/* check_conv.c - convolution and pooling: the cpu backend's ops and the
 * conv2d, maxpool2d, avgpool2d and global_avgpool layers.
 *
 * What this is: (1) the backend ops conv2d_forward (with each fused
 * activation), conv2d_backward_data, conv2d_backward_filter (with the
 * bias gradient), pool2d_forward and pool2d_backward, run with 1 and 2
 * threads on many shapes (odd sizes, stride 2, padding, dilation 2,
 * groups 2, depthwise, 1x1, non-square kernels, batch 1 and 3, and a
 * batch large enough to be processed in several workspace chunks, and the
 * CNN example's layers), against naive double-precision references
 * computed here; each op is also run twice to check that results are
 * bit-identical.  The shapes cover the backend's convolution strategies
 * (gemm, direct, 1x1, and implicit GEMM where the machine has AVX-512).
 * The ops run through their typed wrappers (mltk_op_conv2d_forward, ...),
 * so each call also passes the core's contract check; the op-level
 * conformance of every backend is tests/check_conformance.c's, and these
 * shapes stay here to reach every kernel path of the cpu's convolution.
 * (2) The layers, loaded through the registry and run standalone
 * (mltk_single_layer): the forward output against the double-precision
 * reference of tests/op_ref.h (ref_conv_forward with the fused
 * activation, ref_pool) for every conv2d variant (padding same, valid and
 * asymmetric, stride 2 and 2,1, dilation 2, groups 2 and depthwise, 1x1,
 * each activation) and pooling layer; every gradient against central
 * finite differences of the float forward pass and, tighter, of that
 * double reference; and their setup errors.
 *
 * Tolerances: an output that sums T products carries a float rounding
 * error of at most about T * 2^-24 times the sum of their magnitudes M;
 * the checks allow 2e-7 * T * M + 1e-6, a margin of 3x on that bound that
 * still catches any missing or misplaced term (whose size is ~M / T).
 * Finite differences (tests/fdcheck.h at an absolute step, testutil.h):
 * as in check_layers.c, L = sum(y * R), eps = 1e-2, relative 1e-2 plus
 * absolute 1e-3; max-pooling inputs are spaced so that
 * no perturbation changes which element of a window is the maximum, and
 * relu and leaky_relu are checked at pre-activations at least 0.05 from
 * the kink.  Layer outputs are held to the ops' bound above (max pooling
 * bit for bit), and against the double reference gradients differ by at
 * most 1e-5 of the gradient's largest element (fd_check_ref at a step of
 * 1e-6; float rounding leaves ~1e-7).
 *
 * What this is not: a benchmark (bench/conv_roof.c) or a test of the
 * model graph.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "op_ref.h"
#include "testutil.h"

/* ---- fixture: registry and backends ---------------------------------------- */

static mltk_registry_t *reg;
static struct mltk_backend be;    /* 1 thread: the layer tests */
static struct mltk_backend be2;   /* 2 threads */

static void open_backend(struct mltk_backend *b, int threads)
{
    char *err = NULL;
    mltk_backend_opts o = { .size = sizeof(o), .threads = threads, .device = 0, .seed = 1 };
    int rc = mltk_backend_open(b, reg, "cpu", &o, &err);

    ck_assert_msg(rc == MLTK_OK, "backend cpu (%d threads): %s", threads,
                  err ? err : "?");
}

static void fixture_open(void)
{
    char *err = NULL;
    int rc = mltk_registry_create(&reg, NULL, 1, &err);

    ck_assert_msg(rc == MLTK_OK, "registry: %s", err ? err : "?");
    open_backend(&be, 1);
    open_backend(&be2, 2);
}

static void fixture_close(void)
{
    mltk_backend_close(&be2);
    mltk_backend_close(&be);
    mltk_registry_destroy(reg);
    reg = NULL;
}

/* ---- small helpers ---------------------------------------------------------- */

/* A contiguous view of `data` with shape `s`. */
static mltk_tensor tview(void *data, mltk_shape s, mltk_dtype dt)
{
    return (mltk_tensor){ .data = data, .shape = s, .dtype = dt };
}

/* f32 views of backend memory: (n) and (a, b, c, d) */
static mltk_tensor t1(const float *p, int64_t n)
{
    return mltk_tensor_1d((void *)p, MLTK_F32, n);
}

static mltk_tensor t4(const float *p, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t dims[4] = { a, b, c, d };
    return mltk_tensor_make((void *)p, MLTK_F32, 4, dims);
}

static void rand_fill(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)tu_urand();
}

static float *dev_alloc(const struct mltk_backend *b, int64_t n)
{
    void *p = NULL;
    int rc = mltk_be_alloc(b, (size_t)(n > 0 ? n : 1) * sizeof(float), &p);

    ck_assert_msg(rc == MLTK_OK, "alloc: %s", mltk_backend_error(b));
    return p;
}

static float *host_alloc(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));

    ck_assert_ptr_nonnull(p);
    return p;
}

static void up(const struct mltk_backend *b, float *dev, const float *host, int64_t n)
{
    ck_assert_int_eq(mltk_be_upload(b, dev, host, (size_t)n * sizeof(float)), MLTK_OK);
}

static void down(const struct mltk_backend *b, float *host, const float *dev, int64_t n)
{
    ck_assert_int_eq(mltk_be_sync(b), MLTK_OK);
    ck_assert_int_eq(mltk_be_download(b, host, dev, (size_t)n * sizeof(float)), MLTK_OK);
}

/* x[i] = v over n floats of backend memory */
static int fill(const struct mltk_backend *b, float *x, float v, int64_t n)
{
    mltk_tensor t = t1(x, n);
    return mltk_op_fill(b, &t, v);
}

/* got against ref, where mag is the sum of magnitudes behind each
 * reference value and terms the number of products in it */
static void expect_sums(const float *got, const double *ref, const double *mag,
                        int64_t n, double terms, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double tol = 2e-7 * (terms > 1 ? terms : 1) * mag[i] + 1e-6;
        EXPECT(fabs((double)got[i] - ref[i]) <= tol, "%s[%lld] = %.8g, want %.8g (tol %.3g)",
               what, (long long)i, (double)got[i], ref[i], tol);
    }
}

static void expect_same_bits(const float *a, const float *b, int64_t n, const char *what)
{
    EXPECT(memcmp(a, b, (size_t)n * sizeof(float)) == 0,
           "%s differs between two identical runs", what);
}

/* ---- naive references ------------------------------------------------------- */

typedef struct cshape {
    int64_t N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, G;
} cshape;

static mltk_conv2d_desc make_desc(const cshape *c)
{
    mltk_conv2d_desc d = {
        .N = c->N, .C = c->C, .H = c->H, .W = c->W, .K = c->K, .R = c->R, .S = c->S,
        .stride_h = c->sh, .stride_w = c->sw, .pad_h = c->ph, .pad_w = c->pw,
        .dil_h = c->dh, .dil_w = c->dw, .groups = c->G };
    d.P = (c->H + 2 * c->ph - c->dh * (c->R - 1) - 1) / c->sh + 1;
    d.Q = (c->W + 2 * c->pw - c->dw * (c->S - 1) - 1) / c->sw + 1;
    return d;
}

/* Visit every (output, input, weight) index triple of the convolution. */
#define CONV_FOR_EACH(d, BODY)                                                  \
    for (int64_t n = 0; n < (d)->N; n++)                                        \
    for (int64_t k = 0; k < (d)->K; k++)                                        \
    for (int64_t p = 0; p < (d)->P; p++)                                        \
    for (int64_t q = 0; q < (d)->Q; q++) {                                      \
        int64_t cg_ = (d)->C / (d)->groups, g_ = k / ((d)->K / (d)->groups);    \
        int64_t yi = ((n * (d)->K + k) * (d)->P + p) * (d)->Q + q;              \
        for (int64_t cl = 0; cl < cg_; cl++)                                    \
        for (int64_t r = 0; r < (d)->R; r++)                                    \
        for (int64_t s = 0; s < (d)->S; s++) {                                  \
            int64_t ih = p * (d)->stride_h - (d)->pad_h + r * (d)->dil_h;       \
            int64_t iw = q * (d)->stride_w - (d)->pad_w + s * (d)->dil_w;       \
            if (ih < 0 || ih >= (d)->H || iw < 0 || iw >= (d)->W)               \
                continue;                                                       \
            int64_t xi = ((n * (d)->C + g_ * cg_ + cl) * (d)->H + ih) * (d)->W + iw; \
            int64_t wi = ((k * cg_ + cl) * (d)->R + r) * (d)->S + s;            \
            BODY                                                                \
        }                                                                       \
    }

static void ref_conv(const mltk_conv2d_desc *d, const float *x, const float *w,
                     const float *b, const float *dy, double *y, double *ym,
                     double *dx, double *dxm, double *dw, double *dwm)
{
    int64_t ny = d->N * d->K * d->P * d->Q, nx = d->N * d->C * d->H * d->W;
    int64_t nw = d->K * (d->C / d->groups) * d->R * d->S;

    for (int64_t i = 0; i < ny; i++) {
        int64_t k = (i / (d->P * d->Q)) % d->K;
        y[i] = b ? b[k] : 0.0;
        ym[i] = b ? fabs(b[k]) : 0.0;
    }
    memset(dx, 0, (size_t)nx * sizeof(double));
    memset(dxm, 0, (size_t)nx * sizeof(double));
    memset(dw, 0, (size_t)nw * sizeof(double));
    memset(dwm, 0, (size_t)nw * sizeof(double));
    CONV_FOR_EACH(d, {
        y[yi] += (double)x[xi] * w[wi];
        ym[yi] += fabs((double)x[xi] * w[wi]);
        dx[xi] += (double)dy[yi] * w[wi];
        dxm[xi] += fabs((double)dy[yi] * w[wi]);
        dw[wi] += (double)dy[yi] * x[xi];
        dwm[wi] += fabs((double)dy[yi] * x[xi]);
    })
}

static double act_ref(mltk_act act, double z, double slope)
{
    switch (act) {
    case MLTK_ACT_RELU: return z > 0 ? z : 0;
    case MLTK_ACT_LEAKY_RELU: return z > 0 ? z : slope * z;
    case MLTK_ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    case MLTK_ACT_TANH: return tanh(z);
    default: return z;
    }
}

/* ---- conv ops --------------------------------------------------------------- */

/* The three conv ops on descriptor d over backend memory: x (N,C,H,W),
 * w (K,C/groups,R,S), b (K) or NULL, y (N,K,P,Q); ws of wsb bytes. */
static mltk_tensor conv_x(const float *p, const mltk_conv2d_desc *d)
{
    return t4(p, d->N, d->C, d->H, d->W);
}

static mltk_tensor conv_w(const float *p, const mltk_conv2d_desc *d)
{
    return t4(p, d->K, d->groups > 0 ? d->C / d->groups : d->C, d->R, d->S);
}

static mltk_tensor conv_y(const float *p, const mltk_conv2d_desc *d)
{
    return t4(p, d->N, d->K, d->P, d->Q);
}

static size_t conv_ws(const struct mltk_backend *b, const mltk_conv2d_desc *d)
{
    mltk_conv2d_params p = { .d = *d, .act = MLTK_ACT_NONE };
    return mltk_op_conv2d_workspace(b, &p, MLTK_F32);
}

static int conv_fwd(const struct mltk_backend *b, float *Y, const float *X, const float *W,
                    const float *B, const mltk_conv2d_desc *d, mltk_act act, float alpha,
                    void *ws, size_t wsb)
{
    mltk_conv2d_params p = { .d = *d, .act = act, .act_alpha = alpha };
    mltk_tensor y = conv_y(Y, d), x = conv_x(X, d), w = conv_w(W, d), bt = t1(B, d->K);
    return mltk_op_conv2d_forward(b, &y, &x, &w, B ? &bt : NULL, &p, ws, wsb);
}

static int conv_bwd_data(const struct mltk_backend *b, float *DX, const float *DY,
                         const float *W, const mltk_conv2d_desc *d, void *ws, size_t wsb)
{
    mltk_conv2d_params p = { .d = *d, .act = MLTK_ACT_NONE };
    mltk_tensor dx = conv_x(DX, d), dy = conv_y(DY, d), w = conv_w(W, d);
    return mltk_op_conv2d_backward_data(b, &dx, &dy, &w, &p, ws, wsb);
}

static int conv_bwd_filter(const struct mltk_backend *b, float *DW, float *DB, const float *DY,
                           const float *X, const mltk_conv2d_desc *d, void *ws, size_t wsb)
{
    mltk_conv2d_params p = { .d = *d, .act = MLTK_ACT_NONE };
    mltk_tensor dw = conv_w(DW, d), db = t1(DB, d->K), dy = conv_y(DY, d), x = conv_x(X, d);
    return mltk_op_conv2d_backward_filter(b, &dw, DB ? &db : NULL, &dy, &x, &p, ws, wsb);
}

/* Forward with `act`, backward data and filter (with db), on backend b,
 * against the reference; every op twice for bit-identical results. */
static void conv_op_case(const struct mltk_backend *b, const cshape *cs, mltk_act act)
{
    mltk_conv2d_desc d = make_desc(cs);
    int64_t nx = d.N * d.C * d.H * d.W, ny = d.N * d.K * d.P * d.Q;
    int64_t nw = d.K * (d.C / d.groups) * d.R * d.S;
    double tf = (double)(d.C / d.groups * d.R * d.S) + 1;  /* terms per output */
    double tx = (double)(d.K / d.groups * d.R * d.S);
    double tw = (double)(d.N * d.P * d.Q);
    float *x = host_alloc(nx), *w = host_alloc(nw), *bias = host_alloc(d.K);
    float *dy = host_alloc(ny), *got = host_alloc(nx > ny ? (nx > nw ? nx : nw)
                                                           : (ny > nw ? ny : nw));
    float *got2 = host_alloc(nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw));
    float *gdb = host_alloc(d.K);
    double *y = malloc((size_t)ny * sizeof(double)), *ym = malloc((size_t)ny * sizeof(double));
    double *dx = malloc((size_t)nx * sizeof(double)), *dxm = malloc((size_t)nx * sizeof(double));
    double *dw = malloc((size_t)nw * sizeof(double)), *dwm = malloc((size_t)nw * sizeof(double));
    double *db = malloc((size_t)d.K * sizeof(double)), *dbm = malloc((size_t)d.K * sizeof(double));
    char what[160], label[192];

    ck_assert(y && ym && dx && dxm && dw && dwm && db && dbm);
    snprintf(what, sizeof(what), "N%lld C%lld %lldx%lld K%lld %lldx%lld s%lld,%lld "
             "p%lld,%lld d%lld,%lld g%lld act %d threads %d", (long long)d.N,
             (long long)d.C, (long long)d.H, (long long)d.W, (long long)d.K,
             (long long)d.R, (long long)d.S, (long long)d.stride_h,
             (long long)d.stride_w, (long long)d.pad_h, (long long)d.pad_w,
             (long long)d.dil_h, (long long)d.dil_w, (long long)d.groups, (int)act,
             b == &be2 ? 2 : 1);
    tu_rng_seed((uint64_t)(nx * 31 + ny * 7 + nw));
    rand_fill(x, nx);
    rand_fill(w, nw);
    rand_fill(bias, d.K);
    rand_fill(dy, ny);
    ref_conv(&d, x, w, bias, dy, y, ym, dx, dxm, dw, dwm);
    for (int64_t k = 0; k < d.K; k++) {
        db[k] = dbm[k] = 0.0;
        for (int64_t n = 0; n < d.N; n++)
            for (int64_t i = 0; i < d.P * d.Q; i++) {
                db[k] += dy[(n * d.K + k) * d.P * d.Q + i];
                dbm[k] += fabs(dy[(n * d.K + k) * d.P * d.Q + i]);
            }
    }

    size_t wsb = conv_ws(b, &d);
    void *ws = NULL;
    if (wsb > 0)
        ck_assert_int_eq(mltk_be_alloc(b, wsb, &ws), MLTK_OK);
    float *X = dev_alloc(b, nx), *Wd = dev_alloc(b, nw), *B = dev_alloc(b, d.K);
    float *Y = dev_alloc(b, ny), *DY = dev_alloc(b, ny), *DX = dev_alloc(b, nx);
    float *DW = dev_alloc(b, nw), *DB = dev_alloc(b, d.K);
    up(b, X, x, nx);
    up(b, Wd, w, nw);
    up(b, B, bias, d.K);
    up(b, DY, dy, ny);

    /* forward: act(conv + b), then without bias */
    float slope = 0.1f;
    for (int with_bias = 1; with_bias >= 0; with_bias--) {
        ck_assert_msg(conv_fwd(b, Y, X, Wd, with_bias ? B : NULL, &d, act, slope, ws,
                               wsb) == MLTK_OK, "%s: %s", what, mltk_backend_error(b));
        down(b, got, Y, ny);
        ck_assert_int_eq(conv_fwd(b, Y, X, Wd, with_bias ? B : NULL, &d, act, slope, ws, wsb),
                         MLTK_OK);
        down(b, got2, Y, ny);
        expect_same_bits(got, got2, ny, "conv2d_forward");
        for (int64_t i = 0; i < ny; i++) {
            int64_t k = (i / (d.P * d.Q)) % d.K;
            double z = y[i] - (with_bias ? 0.0 : bias[k]);
            double tol = 2e-7 * tf * ym[i] + 1e-6;
            double want = act_ref(act, z, slope);
            /* smooth activations: the float kernels' own error (a few ulp) */
            if (act == MLTK_ACT_SIGMOID || act == MLTK_ACT_TANH)
                tol += 4e-6;
            EXPECT(fabs(got[i] - want) <= tol, "%s: y[%lld] = %.8g, want %.8g", what,
                   (long long)i, (double)got[i], want);
        }
    }

    /* backward data */
    ck_assert_msg(conv_bwd_data(b, DX, DY, Wd, &d, ws, wsb) == MLTK_OK, "%s: %s", what,
                  mltk_backend_error(b));
    down(b, got, DX, nx);
    ck_assert_int_eq(fill(b, DX, 7.0f, nx), MLTK_OK);  /* overwritten */
    ck_assert_int_eq(conv_bwd_data(b, DX, DY, Wd, &d, ws, wsb), MLTK_OK);
    down(b, got2, DX, nx);
    expect_same_bits(got, got2, nx, "conv2d_backward_data");
    snprintf(label, sizeof(label), "dx of %s", what);
    expect_sums(got, dx, dxm, nx, tx, label);

    /* backward filter, with and without db */
    ck_assert_int_eq(fill(b, DW, 7.0f, nw), MLTK_OK);
    ck_assert_int_eq(fill(b, DB, 7.0f, d.K), MLTK_OK);
    ck_assert_msg(conv_bwd_filter(b, DW, DB, DY, X, &d, ws, wsb) == MLTK_OK, "%s: %s", what,
                  mltk_backend_error(b));
    down(b, got, DW, nw);
    down(b, gdb, DB, d.K);
    snprintf(label, sizeof(label), "dw of %s", what);
    expect_sums(got, dw, dwm, nw, tw, label);
    snprintf(label, sizeof(label), "db of %s", what);
    expect_sums(gdb, db, dbm, d.K, tw, label);
    ck_assert_int_eq(conv_bwd_filter(b, DW, NULL, DY, X, &d, ws, wsb), MLTK_OK);
    down(b, got2, DW, nw);
    expect_same_bits(got, got2, nw, "conv2d_backward_filter");

    if (ws)
        mltk_be_free(b, ws);
    mltk_be_free(b, X); mltk_be_free(b, Wd); mltk_be_free(b, B);
    mltk_be_free(b, Y); mltk_be_free(b, DY); mltk_be_free(b, DX);
    mltk_be_free(b, DW); mltk_be_free(b, DB);
    free(x); free(w); free(bias); free(dy); free(got); free(got2); free(gdb);
    free(y); free(ym); free(dx); free(dxm); free(dw); free(dwm); free(db); free(dbm);
}

/*  N  C   H   W  K  R  S sh sw ph pw dh dw  G */
static const cshape conv_shapes[] = {
    { 1, 1, 28, 28, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1 },  /* direct: first layer */
    { 3, 3,  7,  9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1 },  /* gemm, odd sizes */
    { 3, 4,  9,  8, 6, 3, 2, 2, 2, 1, 0, 1, 1, 1 },  /* stride 2, 3x2 kernel */
    { 2, 4, 11, 10, 4, 3, 3, 1, 1, 2, 2, 2, 2, 1 },  /* dilation 2 */
    { 3, 4,  7,  7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2 },  /* groups 2 */
    { 2, 6,  8,  7, 6, 3, 3, 2, 1, 1, 1, 1, 1, 6 },  /* depthwise */
    { 3, 6,  5,  7,12, 3, 3, 1, 1, 1, 1, 1, 1, 6 },  /* depthwise, multiplier 2 */
    { 3, 5,  6,  7, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1 },  /* 1x1 */
    { 2, 4,  6,  5, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2 },  /* 1x1, groups 2 */
    { 3, 8,  5,  5, 3, 1, 1, 2, 2, 0, 0, 1, 1, 1 },  /* 1x1, stride 2 */
    { 1, 2,  5,  6, 3, 2, 4, 1, 2, 0, 1, 1, 1, 1 },  /* non-square, direct */
    { 3, 3,  9,  9, 4, 5, 5, 2, 2, 2, 2, 1, 1, 1 },  /* 5x5 stride 2 */
    { 1, 2,  3,  3, 3, 3, 3, 1, 1, 0, 0, 1, 1, 1 },  /* one output pixel */
    { 3, 2,  4,  5, 3, 2, 2, 3, 2, 1, 1, 2, 1, 1 },  /* stride 3, mixed dilation */
    { 2,16, 10,  9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4 },  /* groups 4, gemm */
    /* stride 1 with at least 4 filters per group: the implicit strategy
     * on machines with AVX-512 (the gemm or direct one elsewhere) */
    { 2,32, 14, 14,64, 3, 3, 1, 1, 1, 1, 1, 1, 1 },  /* the CNN example's conv2 */
    { 2, 1, 28, 28,32, 3, 3, 1, 1, 1, 1, 1, 1, 1 },  /* and its conv1 */
    { 3, 8,  9, 10, 8, 3, 3, 1, 1, 1, 1, 1, 1, 2 },  /* groups 2 */
    { 2, 1, 12, 13, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1 },  /* 6 filters: a short tile */
    { 2, 5,  8, 19,12, 3, 3, 1, 1, 0, 0, 1, 1, 1 },  /* unpadded, rows of 17 */
    { 2, 4,  6,  6, 4, 3, 3, 1, 1, 3, 3, 1, 1, 1 },  /* padding past the filter */
    { 2, 3,  7, 20, 5, 2, 3, 1, 1, 1, 0, 2, 1, 1 },  /* 2x3, dilation (2, 1) */
    { 2, 3, 11,  9, 9, 5, 5, 1, 1, 2, 2, 1, 1, 1 },  /* 5x5 */
};

START_TEST(test_conv_ops)
{
    const cshape *cs = &conv_shapes[_i / 2];

    conv_op_case(_i % 2 ? &be2 : &be, cs, MLTK_ACT_NONE);
}
END_TEST

/* every fused activation on each strategy (gemm, direct, 1x1) */
START_TEST(test_conv_acts)
{
    static const int shape_of[3] = { 1, 0, 7 };
    mltk_act act = (mltk_act)(1 + _i % 4);

    conv_op_case(&be2, &conv_shapes[shape_of[_i / 4]], act);
}
END_TEST

/* a batch that needs several workspace chunks (the cpu backend keeps its
 * workspace at most 8 MB; 655 kB per image here), the last one short */
START_TEST(test_conv_chunked)
{
    const cshape cs = { 27, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1 };
    mltk_conv2d_desc d = make_desc(&cs);
    size_t ws = conv_ws(&be2, &d);

    ck_assert_msg(ws > 0 && ws <= ((size_t)8 << 20), "workspace %zu bytes", ws);
    ck_assert_msg(ws * 2 < (size_t)27 * (16 * 9 + 16) * 32 * 32 * 4,
                  "workspace %zu bytes holds half the batch", ws);
    conv_op_case(&be2, &cs, MLTK_ACT_RELU);
}
END_TEST

START_TEST(test_conv_invalid)
{
    const cshape cs = { 2, 4, 7, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2 };
    mltk_conv2d_desc d = make_desc(&cs);
    float *buf = dev_alloc(&be, 4096);

    /* refused by the op's contract check in the core, before the backend */
    d.P = 6;  /* wrong: 7 */
    ck_assert_int_eq(conv_fwd(&be, buf, buf, buf, NULL, &d, MLTK_ACT_NONE, 0.0f, buf,
                              4096 * sizeof(float)), MLTK_ERR_INVALID);
    d = make_desc(&cs);
    d.groups = 4;  /* does not divide K = 6 */
    ck_assert_int_eq(conv_bwd_data(&be, buf, buf, buf, &d, buf, 4096 * sizeof(float)),
                     MLTK_ERR_INVALID);
    ck_assert_uint_eq(conv_ws(&be, &d), 0);
    d = make_desc(&cs);
    d.N = 0;  /* an empty batch: x and y may be NULL, the filter must be there */
    ck_assert_int_eq(conv_fwd(&be, NULL, NULL, buf, NULL, &d, MLTK_ACT_NONE, 0.0f, NULL, 0),
                     MLTK_OK);
    mltk_be_free(&be, buf);
}
END_TEST

/* ---- pool ops --------------------------------------------------------------- */

typedef struct pshape {
    int64_t N, C, H, W, R, S, sh, sw, ph, pw;
} pshape;

static mltk_pool2d_desc make_pdesc(const pshape *p)
{
    mltk_pool2d_desc d = { .N = p->N, .C = p->C, .H = p->H, .W = p->W, .R = p->R,
                           .S = p->S, .stride_h = p->sh, .stride_w = p->sw,
                           .pad_h = p->ph, .pad_w = p->pw };
    d.P = (p->H + 2 * p->ph - p->R) / p->sh + 1;
    d.Q = (p->W + 2 * p->pw - p->S) / p->sw + 1;
    return d;
}

/* y and dx of max (first maximum) or average (padding in the divisor)
 * pooling, in double */
static void pool_ref(const mltk_pool2d_desc *d, mltk_pool kind, const float *x,
                     const float *dy, double *y, double *dx)
{
    memset(dx, 0, (size_t)(d->N * d->C * d->H * d->W) * sizeof(double));
    for (int64_t pl = 0; pl < d->N * d->C; pl++)
        for (int64_t p = 0; p < d->P; p++)
            for (int64_t q = 0; q < d->Q; q++) {
                int64_t hs = p * d->stride_h - d->pad_h, ws = q * d->stride_w - d->pad_w;
                int64_t yi = (pl * d->P + p) * d->Q + q, best = -1;
                double acc = 0.0, m = -INFINITY;
                for (int64_t r = 0; r < d->R; r++)
                    for (int64_t s = 0; s < d->S; s++) {
                        int64_t h = hs + r, w = ws + s;
                        if (h < 0 || h >= d->H || w < 0 || w >= d->W)
                            continue;
                        int64_t xi = (pl * d->H + h) * d->W + w;
                        acc += x[xi];
                        if (best < 0 || x[xi] > m) {
                            m = x[xi];
                            best = xi;
                        }
                    }
                if (kind == MLTK_POOL_MAX) {
                    y[yi] = m;
                    dx[best] += dy[yi];
                } else {
                    double div = (double)(d->R * d->S);
                    y[yi] = acc / div;
                    for (int64_t r = 0; r < d->R; r++)
                        for (int64_t s = 0; s < d->S; s++) {
                            int64_t h = hs + r, w = ws + s;
                            if (h >= 0 && h < d->H && w >= 0 && w < d->W)
                                dx[(pl * d->H + h) * d->W + w] += dy[yi] / div;
                        }
                }
            }
}

static void pool_op_case(const struct mltk_backend *b, const pshape *ps, mltk_pool kind)
{
    mltk_pool2d_desc d = make_pdesc(ps);
    int64_t nx = d.N * d.C * d.H * d.W, ny = d.N * d.C * d.P * d.Q;
    int64_t nmax = nx > ny ? nx : ny;
    float *x = host_alloc(nx), *dy = host_alloc(ny), *got = host_alloc(nmax);
    float *got2 = host_alloc(nmax);
    double *y = malloc((size_t)ny * sizeof(double)), *dx = malloc((size_t)nx * sizeof(double));
    float *X = dev_alloc(b, nx), *Y = dev_alloc(b, ny), *DY = dev_alloc(b, ny);
    float *DX = dev_alloc(b, nx);

    ck_assert(y && dx);
    tu_rng_seed((uint64_t)(nx + 3 * ny));
    rand_fill(x, nx);
    rand_fill(dy, ny);
    /* a tie (which the first maximum decides) in every plane */
    for (int64_t pl = 0; pl < d.N * d.C && d.H * d.W > 1; pl++)
        x[pl * d.H * d.W + 1] = x[pl * d.H * d.W];
    pool_ref(&d, kind, x, dy, y, dx);
    up(b, X, x, nx);
    up(b, DY, dy, ny);
    mltk_pool2d_params pp = { .kind = kind, .d = d };
    mltk_tensor xt = t4(X, d.N, d.C, d.H, d.W), dxt = t4(DX, d.N, d.C, d.H, d.W);
    mltk_tensor yt = t4(Y, d.N, d.C, d.P, d.Q), dyt = t4(DY, d.N, d.C, d.P, d.Q);
    ck_assert_int_eq(mltk_op_pool2d_forward(b, &yt, &xt, &pp), MLTK_OK);
    down(b, got, Y, ny);
    for (int64_t i = 0; i < ny; i++)
        EXPECT(fabs(got[i] - y[i]) <= 1e-6 * (1 + fabs(y[i])) * (kind ? d.R * d.S : 0)
               + (kind ? 1e-7 : 0.0), "pool %d forward y[%lld] = %.8g, want %.8g",
               (int)kind, (long long)i, (double)got[i], y[i]);
    ck_assert_int_eq(fill(b, DX, 5.0f, nx), MLTK_OK);
    ck_assert_int_eq(mltk_op_pool2d_backward(b, &dxt, &dyt, &xt, &yt, &pp), MLTK_OK);
    down(b, got, DX, nx);
    ck_assert_int_eq(mltk_op_pool2d_backward(b, &dxt, &dyt, &xt, &yt, &pp), MLTK_OK);
    down(b, got2, DX, nx);
    expect_same_bits(got, got2, nx, "pool2d_backward");
    for (int64_t i = 0; i < nx; i++)
        EXPECT(fabs(got[i] - dx[i]) <= 1e-6 * (d.R * d.S) + 1e-7,
               "pool %d (%lldx%lld s%lld,%lld p%lld,%lld) backward dx[%lld] = %.8g, "
               "want %.8g", (int)kind, (long long)d.R, (long long)d.S,
               (long long)d.stride_h, (long long)d.stride_w, (long long)d.pad_h,
               (long long)d.pad_w, (long long)i, (double)got[i], dx[i]);
    mltk_be_free(b, X); mltk_be_free(b, Y); mltk_be_free(b, DY);
    mltk_be_free(b, DX);
    free(x); free(dy); free(got); free(got2); free(y); free(dx);
}

/*  N  C  H   W  R  S sh sw ph pw */
static const pshape pool_shapes[] = {
    { 3, 4, 8,  8, 2, 2, 2, 2, 0, 0 },  /* the 2x2/2 fast path */
    { 2, 3, 7,  9, 2, 2, 2, 2, 0, 0 },  /* 2x2/2 with odd sizes */
    { 3, 2, 7,  9, 3, 3, 2, 2, 1, 1 },  /* 3x3/2 padded */
    { 1, 3, 6,  5, 3, 2, 1, 1, 1, 1 },  /* overlapping, non-square */
    { 2, 2, 5,  7, 2, 3, 1, 2, 1, 0 },
    { 3, 5, 4,  6, 4, 6, 4, 6, 0, 0 },  /* a whole plane (global) */
    { 1, 1, 1,  1, 1, 1, 1, 1, 0, 0 },
    { 2, 3, 6, 37, 2, 2, 2, 2, 0, 0 },  /* 2x2/2, rows of 18 windows */
};

START_TEST(test_pool_ops)
{
    int n = (int)(sizeof(pool_shapes) / sizeof(pool_shapes[0]));
    const pshape *ps = &pool_shapes[_i % n];

    pool_op_case((_i / n) % 2 ? &be2 : &be, ps, (_i / (2 * n)) ? MLTK_POOL_AVG
                                                                 : MLTK_POOL_MAX);
}
END_TEST

/* many planes, so that 2 threads split the work */
START_TEST(test_pool_large)
{
    const pshape a = { 16, 32, 28, 28, 2, 2, 2, 2, 0, 0 };
    const pshape c = { 8, 16, 15, 13, 3, 3, 2, 2, 1, 1 };

    pool_op_case(&be2, &a, MLTK_POOL_MAX);
    pool_op_case(&be2, &c, MLTK_POOL_MAX);
    pool_op_case(&be2, &c, MLTK_POOL_AVG);
}
END_TEST

/* ---- layers under test ------------------------------------------------------ */

static mltk_params_t *build_params(const char *name, int n, const char *const *keys,
                                   const char *const *vals)
{
    const mltk_desc *d = NULL;
    mltk_params_t *p = NULL;
    char *err = NULL;
    int rc = mltk_registry_find(reg, name, MLTK_KIND_LAYER, &d, &err);

    ck_assert_msg(rc == MLTK_OK, "find %s: %s", name, err ? err : "?");
    rc = mltk_params_build(&p, &d, 1, n, keys, vals, NULL, NULL, 0, name, &err);
    ck_assert_msg(rc == MLTK_OK, "params %s: %s", name, err ? err : "?");
    return p;
}

typedef struct lt {
    const struct mltk_layer_i *iface;
    void              *self;
    mltk_params_t     *params;
    mltk_single_layer *sl;
    mltk_shape         in;
    int64_t            batch, nx, ny;
    float             *x, *y, *dy, *dx;
} lt;

static mltk_shape batch_shape(int64_t batch, const mltk_shape *s)
{
    mltk_shape b;

    b.ndim = s->ndim + 1;
    b.dim[0] = batch;
    for (int i = 0; i < s->ndim; i++)
        b.dim[i + 1] = s->dim[i];
    return b;
}

/* Create and set up a layer; returns the setup status (err filled) so that
 * the error cases can use it too. */
static int lt_try(lt *t, const char *name, int n, const char *const *keys,
                  const char *const *vals, const mltk_shape *in, int64_t batch,
                  char **err)
{
    int rc;

    memset(t, 0, sizeof(*t));
    t->params = build_params(name, n, keys, vals);
    rc = mltk_registry_load(reg, name, MLTK_KIND_LAYER, (const void **)&t->iface, err);
    ck_assert_msg(rc == MLTK_OK, "load %s: %s", name, *err ? *err : "?");
    rc = t->iface->create(&t->self, t->params, err);
    if (rc)
        return rc;
    rc = mltk_single_layer_create(&t->sl, t->iface, t->self, &be, 1, in, batch, 42, err);
    if (rc)
        return rc;
    t->in = *in;
    t->batch = batch;
    t->nx = batch * mltk_shape_numel(in);
    t->ny = batch * mltk_shape_numel(&t->sl->out);
    t->x = dev_alloc(&be, t->nx);
    t->dx = dev_alloc(&be, t->nx);
    t->y = dev_alloc(&be, t->ny);
    t->dy = dev_alloc(&be, t->ny);
    return MLTK_OK;
}

static void lt_open(lt *t, const char *name, int n, const char *const *keys,
                    const char *const *vals, const mltk_shape *in, int64_t batch)
{
    char *err = NULL;
    int rc = lt_try(t, name, n, keys, vals, in, batch, &err);

    ck_assert_msg(rc == MLTK_OK, "setup %s: %s", name, err ? err : "?");
}

static void lt_close(lt *t)
{
    if (t->x) {
        mltk_be_free(&be, t->x);
        mltk_be_free(&be, t->dx);
        mltk_be_free(&be, t->y);
        mltk_be_free(&be, t->dy);
    }
    if (t->sl)
        mltk_single_layer_destroy(t->sl, &be);
    if (t->self && t->iface->destroy)
        t->iface->destroy(t->self);
    mltk_params_free(t->params);
}

static void lt_run(lt *t, float *dx, int backward)
{
    mltk_tensor xt = tview(t->x, batch_shape(t->batch, &t->in), MLTK_F32);
    mltk_tensor dxt = tview(dx, batch_shape(t->batch, &t->in), MLTK_F32);
    mltk_tensor yt = tview(t->y, batch_shape(t->batch, &t->sl->out), MLTK_F32);
    mltk_tensor dyt = tview(t->dy, batch_shape(t->batch, &t->sl->out), MLTK_F32);
    mltk_layer_run r = {
        .be = &be, .mode = MLTK_TRAIN, .batch = t->batch, .n_in = 1,
        .x = &xt, .dx = &dxt, .y = &yt, .dy = &dyt,
        .params = t->sl->params, .grads = t->sl->grads, .buffers = t->sl->buffers,
        .seed = 7, .step = 0,
    };
    int rc = backward ? t->iface->backward(t->self, &r) : t->iface->forward(t->self, &r);

    ck_assert_msg(rc == MLTK_OK, "%s: %s", backward ? "backward" : "forward",
                  mltk_backend_error(&be));
    ck_assert_int_eq(mltk_be_sync(&be), MLTK_OK);
}

static double lt_objective(lt *t, const float *R)
{
    float *y = host_alloc(t->ny);
    double L = 0.0;

    lt_run(t, t->dx, 0);
    down(&be, y, t->y, t->ny);
    for (int64_t i = 0; i < t->ny; i++)
        L += (double)y[i] * R[i];
    free(y);
    return L;
}

/* L with the n host values (mirrored in backend memory `dev`) uploaded
 * first: the function the harness differentiates */
typedef struct lt_fd {
    lt          *t;
    float       *host, *dev;
    int64_t      n;
    const float *R;
} lt_fd;

static double lt_fd_eval(void *ctx)
{
    lt_fd *c = ctx;

    up(&be, c->dev, c->host, c->n);
    return lt_objective(c->t, c->R);
}

static void check_fd(lt *t, const char *what, float *host, float *dev, int64_t n,
                     const float *ana, const float *R)
{
    lt_fd c = { t, host, dev, n, R };
    fd_opts o = tu_fd_bounds(1e-2, 1e-3);
    fd_report r;

    if (tu_fd_check(what, lt_fd_eval, &c, host, n, ana, &o, &r))
        ck_abort_msg("%s", r.msg);
    up(&be, dev, host, n);
}

/* Backward once (R as dy), then finite differences of x and of every
 * parameter.  x has been uploaded. */
static void lt_grad_check(lt *t, float *x, const float *R, const char *name)
{
    float *dx = host_alloc(t->nx);
    char what[64];

    up(&be, t->dy, R, t->ny);
    lt_run(t, t->dx, 0);
    lt_run(t, t->dx, 1);
    down(&be, dx, t->dx, t->nx);
    snprintf(what, sizeof(what), "%s dx", name);
    check_fd(t, what, x, t->x, t->nx, dx, R);
    for (int p = 0; p < t->sl->n_params; p++) {
        int64_t np = mltk_tensor_numel(&t->sl->params[p]);
        float *pv = host_alloc(np), *g = host_alloc(np);

        lt_run(t, t->dx, 0);
        lt_run(t, t->dx, 1);
        down(&be, pv, t->sl->params[p].data, np);
        down(&be, g, t->sl->grads[p].data, np);
        snprintf(what, sizeof(what), "%s dparam%d", name, p);
        check_fd(t, what, pv, t->sl->params[p].data, np, g, R);
        free(pv);
        free(g);
    }
    free(dx);
}

/* ---- layers against the double references of tests/op_ref.h ------------------ */

/* L = sum R y of the layer's double-precision reference: conv2d (with its
 * fused activation) or pooling over double copies of the layer's input
 * and parameters.  fd_check_ref differentiates it. */
typedef struct ref_obj {
    int                is_pool;
    mltk_conv2d_params cp;
    mltk_pool2d_params pp;
    double            *x, *w, *b;   /* b NULL: no bias; w unused by pooling */
    double            *y;
    const float       *R;
    int64_t            ny;
} ref_obj;

static void ref_obj_forward(const ref_obj *o, double *y, const double *x, const double *w,
                            const double *b, int magnitude)
{
    if (o->is_pool) {
        ref_pool(y, NULL, x, NULL, &o->pp);
    } else {
        mltk_conv2d_params p = o->cp;
        if (magnitude)
            p.act = MLTK_ACT_NONE;
        ref_conv_forward(y, x, w, b, &p);
    }
}

static double ref_obj_eval(void *ctx)
{
    ref_obj *o = ctx;

    ref_obj_forward(o, o->y, o->x, o->w, o->b, 0);
    return fd_dot_d(o->R, o->y, o->ny);
}

static double *dcopy_abs(const double *v, int64_t n)
{
    double *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));

    ck_assert_ptr_nonnull(a);
    for (int64_t i = 0; i < n; i++)
        a[i] = fabs(v[i]);
    return a;
}

/* The layer (x and its parameters as they are) against o's reference:
 * (1) forward: y within 2e-7 T M + 1e-6 of the reference, T the terms
 * behind an output (terms) and M the reference of the magnitudes (|x|,
 * |w|, |b|, no activation; the fused activations here are 1-Lipschitz),
 * or bit for bit (exact: max pooling); (2) backward with dy = R: dx and
 * every parameter gradient against central differences of the double
 * reference (fd_check_ref: within 1e-5 of the gradient's largest
 * element).  x (host, t->nx) is uploaded here. */
static void lt_ref_check(lt *t, ref_obj *o, const float *x, const float *R, double terms,
                         int exact, const char *name)
{
    int64_t np[2] = { 0, 0 };
    float *y = host_alloc(t->ny), *dx = host_alloc(t->nx), *pf[2] = { NULL, NULL };
    float *gf[2] = { NULL, NULL };
    double *pd[2] = { NULL, NULL }, *ref = malloc((size_t)t->ny * sizeof(double));
    double *mag = malloc((size_t)t->ny * sizeof(double));
    double *xd = malloc((size_t)t->nx * sizeof(double));
    fd_ref_opts fo = FD_REF_OPTS_DEFAULT;
    fd_report rep;
    char what[96];

    ck_assert(ref && mag && xd && t->sl->n_params <= 2);
    fd_to_double(xd, x, t->nx);
    for (int p = 0; p < t->sl->n_params; p++) {
        np[p] = mltk_tensor_numel(&t->sl->params[p]);
        pf[p] = host_alloc(np[p]);
        gf[p] = host_alloc(np[p]);
        pd[p] = malloc((size_t)np[p] * sizeof(double));
        ck_assert_ptr_nonnull(pd[p]);
        down(&be, pf[p], t->sl->params[p].data, np[p]);
        fd_to_double(pd[p], pf[p], np[p]);
    }
    o->x = xd;
    o->w = pd[0];
    o->b = o->is_pool ? NULL : pd[1];
    o->y = ref;
    o->R = R;
    o->ny = t->ny;

    up(&be, t->x, x, t->nx);
    up(&be, t->dy, R, t->ny);
    lt_run(t, t->dx, 0);
    down(&be, y, t->y, t->ny);
    ref_obj_forward(o, ref, xd, pd[0], o->b, 0);
    {
        double *ax = dcopy_abs(xd, t->nx), *aw = dcopy_abs(pd[0], np[0]);
        double *ab = o->b ? dcopy_abs(o->b, np[1]) : NULL;
        ref_obj_forward(o, mag, ax, aw, ab, 1);
        free(ax); free(aw); free(ab);
    }
    for (int64_t i = 0; i < t->ny; i++) {
        double tol = exact ? 0.0 : 2e-7 * terms * mag[i] + 1e-6;
        EXPECT(fabs((double)y[i] - ref[i]) <= tol, "%s forward y[%lld] = %.9g, double "
               "reference %.9g (tol %.3g)", name, (long long)i, (double)y[i], ref[i], tol);
    }

    lt_run(t, t->dx, 1);
    down(&be, dx, t->dx, t->nx);
    snprintf(what, sizeof(what), "%s dx", name);
    if (fd_check_ref(what, ref_obj_eval, o, xd, t->nx, dx, &fo, &rep))
        ck_abort_msg("%s", rep.msg);
    for (int p = 0; p < t->sl->n_params; p++) {
        down(&be, gf[p], t->sl->grads[p].data, np[p]);
        snprintf(what, sizeof(what), "%s dparam%d", name, p);
        if (fd_check_ref(what, ref_obj_eval, o, pd[p], np[p], gf[p], &fo, &rep))
            ck_abort_msg("%s", rep.msg);
    }
    for (int p = 0; p < 2; p++) {
        free(pf[p]); free(gf[p]); free(pd[p]);
    }
    free(y); free(dx); free(ref); free(mag); free(xd);
}

/* "a" or "a,b" */
static void parse_pair(const char *s, int64_t *a, int64_t *b)
{
    long long u = 0, v = 0;
    int n = sscanf(s, "%lld,%lld", &u, &v);

    ck_assert_msg(n >= 1, "not an integer pair: %s", s);
    *a = u;
    *b = n == 2 ? v : u;
}

static mltk_act act_of(const char *name)
{
    return strcmp(name, "relu") == 0 ? MLTK_ACT_RELU
        : strcmp(name, "leaky_relu") == 0 ? MLTK_ACT_LEAKY_RELU
        : strcmp(name, "sigmoid") == 0 ? MLTK_ACT_SIGMOID
        : strcmp(name, "tanh") == 0 ? MLTK_ACT_TANH : MLTK_ACT_NONE;
}

/* ---- conv2d layer ----------------------------------------------------------- */

typedef struct conv_layer_case {
    int64_t C, H, W, batch;
    const char *filters, *kernel, *stride, *padding, *dilation, *groups, *bias, *act;
    int64_t K, P, Q;  /* expected output shape */
} conv_layer_case;

static const conv_layer_case conv_layer_cases[] = {
    { 1, 6, 5, 2, "3", "3", "1", "same", "1", "1", "true", "none", 3, 6, 5 },
    { 3, 7, 6, 3, "4", "3,2", "2", "1", "1", "1", "true", "tanh", 4, 4, 4 },
    { 4, 7, 7, 1, "4", "3", "1", "2", "2", "2", "false", "none", 4, 7, 7 },
    { 4, 5, 6, 2, "4", "3", "1", "valid", "1", "4", "true", "sigmoid", 4, 3, 4 },
    { 4, 5, 5, 3, "6", "1", "1", "0", "1", "2", "true", "none", 6, 5, 5 },
    { 2, 6, 7, 2, "3", "3", "2,1", "1,0", "1", "1", "true", "relu", 3, 3, 5 },
    { 6, 4, 4, 2, "2", "2", "1", "0", "1", "1", "true", "leaky_relu", 2, 3, 3 },
};

START_TEST(test_conv2d_layer)
{
    const conv_layer_case *c = &conv_layer_cases[_i];
    const char *keys[] = { "filters", "kernel", "stride", "padding", "dilation", "groups",
                           "bias", "activation", "negative_slope" };
    const char *vals[] = { c->filters, c->kernel, c->stride, c->padding, c->dilation,
                           c->groups, c->bias, c->act, "0.2" };
    int64_t dims[3] = { c->C, c->H, c->W };
    mltk_shape in = mltk_shape_make(3, dims);
    int piecewise = strcmp(c->act, "relu") == 0 || strcmp(c->act, "leaky_relu") == 0;
    lt t;

    lt_open(&t, "conv2d", 9, keys, vals, &in, c->batch);
    ck_assert_int_eq(t.sl->out.ndim, 3);
    ck_assert_int_eq(t.sl->out.dim[0], c->K);
    ck_assert_int_eq(t.sl->out.dim[1], c->P);
    ck_assert_int_eq(t.sl->out.dim[2], c->Q);
    ck_assert_int_eq(t.sl->n_params, strcmp(c->bias, "true") == 0 ? 2 : 1);
    ck_assert_int_eq(t.sl->params[0].shape.ndim, 4);
    ck_assert_int_eq(t.sl->params[0].shape.dim[0], c->K);
    ck_assert_int_eq(t.sl->params[0].shape.dim[1], c->C / atoi(c->groups));

    /* default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), not constant */
    int64_t nw = mltk_tensor_numel(&t.sl->params[0]);
    float *w = host_alloc(nw);
    double bound = 1.0 / sqrt((double)(mltk_tensor_numel(&t.sl->params[0]) / c->K));
    double lo = 1e9, hi = -1e9;
    down(&be, w, t.sl->params[0].data, nw);
    for (int64_t i = 0; i < nw; i++) {
        ck_assert(fabs(w[i]) <= bound * (1 + 1e-6));
        lo = w[i] < lo ? w[i] : lo;
        hi = w[i] > hi ? w[i] : hi;
    }
    ck_assert(hi - lo > 0.2 * bound);
    free(w);

    /* piecewise-linear activations: draw inputs until the pre-activation
     * (from a twin layer with activation none and, by the same seed, the
     * same weights) stays 0.05 from the kink everywhere */
    float *x = host_alloc(t.nx), *R = host_alloc(t.ny), *z = host_alloc(t.ny);
    if (piecewise) {
        const char *tv[9];
        lt u;
        memcpy(tv, vals, sizeof(tv));
        tv[7] = "none";
        lt_open(&u, "conv2d", 9, keys, tv, &in, c->batch);
        float *w2 = host_alloc(nw);
        w = host_alloc(nw);
        down(&be, w, t.sl->params[0].data, nw);
        down(&be, w2, u.sl->params[0].data, nw);
        expect_same_bits(w, w2, nw, "twin layer weights");
        free(w);
        free(w2);
        for (int attempt = 0;; attempt++) {
            ck_assert_msg(attempt < 5000, "no input keeps the pre-activations off the kink");
            tu_rng_seed(77 + (uint64_t)attempt);
            rand_fill(x, t.nx);
            up(&be, u.x, x, u.nx);
            lt_run(&u, u.dx, 0);
            down(&be, z, u.y, u.ny);
            int ok = 1;
            for (int64_t i = 0; i < u.ny && ok; i++)
                ok = fabs(z[i]) >= 0.05;
            if (ok)
                break;
        }
        lt_close(&u);
    } else {
        tu_rng_seed(77);
        rand_fill(x, t.nx);
    }
    up(&be, t.x, x, t.nx);
    rand_fill(R, t.ny);
    lt_grad_check(&t, x, R, "conv2d");

    /* forward and gradients against the double reference, with the
     * descriptor the layer's keys describe */
    {
        ref_obj o = { .is_pool = 0 };
        mltk_conv2d_desc *d = &o.cp.d;
        d->N = c->batch;
        d->C = c->C;
        d->H = c->H;
        d->W = c->W;
        d->K = c->K;
        d->P = c->P;
        d->Q = c->Q;
        d->groups = atoi(c->groups);
        parse_pair(c->kernel, &d->R, &d->S);
        parse_pair(c->stride, &d->stride_h, &d->stride_w);
        parse_pair(c->dilation, &d->dil_h, &d->dil_w);
        if (strcmp(c->padding, "same") == 0) {
            d->pad_h = d->dil_h * (d->R - 1) / 2;
            d->pad_w = d->dil_w * (d->S - 1) / 2;
        } else if (strcmp(c->padding, "valid") == 0) {
            d->pad_h = d->pad_w = 0;
        } else {
            parse_pair(c->padding, &d->pad_h, &d->pad_w);
        }
        o.cp.act = act_of(c->act);
        o.cp.act_alpha = 0.2f;
        lt_ref_check(&t, &o, x, R, (double)(d->C / d->groups * d->R * d->S) + 1, 0,
                     "conv2d");
    }

    /* without an input gradient, weight gradients are the same */
    int64_t ng = mltk_tensor_numel(&t.sl->grads[0]);
    float *g1 = host_alloc(ng), *g2 = host_alloc(ng);
    lt_run(&t, t.dx, 0);
    lt_run(&t, t.dx, 1);
    down(&be, g1, t.sl->grads[0].data, ng);
    ck_assert_int_eq(fill(&be, t.sl->grads[0].data, 123.0f, ng), MLTK_OK);
    lt_run(&t, NULL, 1);
    down(&be, g2, t.sl->grads[0].data, ng);
    expect_same_bits(g1, g2, ng, "dweight without dx");
    free(g1); free(g2); free(x); free(R); free(z);
    lt_close(&t);
}
END_TEST

START_TEST(test_conv2d_init)
{
    const char *keys[] = { "filters", "kernel", "init", "bias_init", "groups" };
    const char *vals[] = { "8", "3", "zeros", "zeros", "2" };
    int64_t dims[3] = { 4, 5, 5 };
    mltk_shape in = mltk_shape_make(3, dims);
    lt t;

    lt_open(&t, "conv2d", 5, keys, vals, &in, 1);
    float v[8 * 2 * 9];
    down(&be, v, t.sl->params[0].data, 8 * 2 * 9);
    for (int i = 0; i < 8 * 2 * 9; i++)
        ck_assert(v[i] == 0.0f);
    down(&be, v, t.sl->params[1].data, 8);
    for (int i = 0; i < 8; i++)
        ck_assert(v[i] == 0.0f);
    lt_close(&t);

    /* he_uniform: bound sqrt(6 / fan_in), fan_in = 2 * 9 */
    vals[2] = "he_uniform";
    vals[3] = "default";
    lt_open(&t, "conv2d", 5, keys, vals, &in, 1);
    down(&be, v, t.sl->params[0].data, 8 * 2 * 9);
    double b = sqrt(6.0 / 18.0), m = 0.0;
    for (int i = 0; i < 8 * 2 * 9; i++) {
        ck_assert(fabs(v[i]) <= b * (1 + 1e-6));
        m = fabs(v[i]) > m ? fabs(v[i]) : m;
    }
    ck_assert(m > 0.5 * b);
    down(&be, v, t.sl->params[1].data, 8);
    for (int i = 0; i < 8; i++)
        ck_assert(fabs(v[i]) <= 1.0 / sqrt(18.0) * (1 + 1e-6));
    lt_close(&t);
}
END_TEST

START_TEST(test_conv2d_errors)
{
    const char *keys[] = { "filters", "kernel", "groups", "stride", "padding" };
    int64_t d3[3] = { 4, 5, 5 }, d2[2] = { 5, 5 }, dsmall[3] = { 1, 2, 6 };
    mltk_shape in = mltk_shape_make(3, d3), in2 = mltk_shape_make(2, d2);
    mltk_shape small = mltk_shape_make(3, dsmall);
    char *err = NULL;
    lt t;

    {   /* groups not dividing the input channels */
        const char *vals[] = { "6", "3", "3", "1", "0" };
        ck_assert_int_eq(lt_try(&t, "conv2d", 5, keys, vals, &in, 1, &err), MLTK_ERR_SHAPE);
        TU_ASSERT_CONTAINS(err, "groups = 3 must divide both the input channels (4)");
        free(err); err = NULL; lt_close(&t);
    }
    {   /* groups not dividing the filters */
        const char *vals[] = { "6", "3", "4", "1", "0" };
        ck_assert_int_eq(lt_try(&t, "conv2d", 5, keys, vals, &in, 1, &err), MLTK_ERR_SHAPE);
        TU_ASSERT_CONTAINS(err, "filters (6)");
        free(err); err = NULL; lt_close(&t);
    }
    {   /* input smaller than the kernel */
        const char *vals[] = { "2", "3", "1", "1", "0" };
        ck_assert_int_eq(lt_try(&t, "conv2d", 5, keys, vals, &small, 1, &err), MLTK_ERR_SHAPE);
        TU_ASSERT_CONTAINS(err, "input 2x6 (padding 0,0) is smaller than the kernel's extent 3x3");
        free(err); err = NULL; lt_close(&t);
    }
    {   /* not (C, H, W) */
        const char *vals[] = { "2", "3", "1", "1", "0" };
        ck_assert_int_eq(lt_try(&t, "conv2d", 5, keys, vals, &in2, 1, &err), MLTK_ERR_SHAPE);
        TU_ASSERT_CONTAINS(err, "(5, 5) is not (channels, height, width)");
        free(err); err = NULL; lt_close(&t);
    }
    {   /* same with stride 2 */
        const char *vals[] = { "2", "3", "1", "2", "same" };
        ck_assert_int_eq(lt_try(&t, "conv2d", 5, keys, vals, &in, 1, &err), MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, "padding = same needs stride 1");
        free(err); err = NULL; lt_close(&t);
    }
    {   /* same with an even kernel */
        const char *vals[] = { "2", "2", "1", "1", "same" };
        ck_assert_int_eq(lt_try(&t, "conv2d", 5, keys, vals, &in, 1, &err), MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, "odd kernel extent");
        free(err); err = NULL; lt_close(&t);
    }
    {   /* malformed padding and three kernel sizes */
        const char *vals[] = { "2", "3", "1", "1", "1,x" };
        ck_assert_int_eq(lt_try(&t, "conv2d", 5, keys, vals, &in, 1, &err), MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, "padding '1,x' is not an integer");
        free(err); err = NULL; lt_close(&t);
        const char *vals3[] = { "2", "3,3,3", "1", "1", "0" };
        ck_assert_int_eq(lt_try(&t, "conv2d", 5, keys, vals3, &in, 1, &err), MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, "kernel must be one integer or two");
        free(err); err = NULL; lt_close(&t);
    }
}
END_TEST

/* ---- pooling layers --------------------------------------------------------- */

/* x: a permutation of values 0.05 apart (plus noise well below that), so
 * no perturbation of 1e-2 changes which element is a window's maximum */
static void spaced_fill(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(0.05 * (double)i - 0.025 * (double)n);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)((tu_urand() + 1.0) * 0.5 * (double)(i + 1));
        float tmp;
        if (j > i)
            j = i;
        tmp = x[i];
        x[i] = x[j];
        x[j] = tmp;
    }
}

typedef struct pool_layer_case {
    const char *type, *kernel, *stride, *padding;
    int64_t C, H, W, batch, P, Q;
} pool_layer_case;

static const pool_layer_case pool_layer_cases[] = {
    { "maxpool2d", "2", NULL, "0", 2, 6, 5, 2, 3, 2 },
    { "maxpool2d", "3", "2", "1", 2, 7, 6, 3, 4, 3 },
    { "maxpool2d", "3,2", "1,2", "1,0", 1, 5, 6, 2, 5, 3 },
    { "avgpool2d", "2", NULL, "0", 2, 6, 5, 2, 3, 2 },
    { "avgpool2d", "3", "2", "1", 2, 7, 6, 3, 4, 3 },
    { "avgpool2d", "2,3", "1", "1", 1, 4, 5, 1, 5, 5 },
};

START_TEST(test_pool_layers)
{
    const pool_layer_case *c = &pool_layer_cases[_i];
    const char *keys[] = { "kernel", "padding", "stride" };
    const char *vals[] = { c->kernel, c->padding, c->stride };
    int64_t dims[3] = { c->C, c->H, c->W };
    mltk_shape in = mltk_shape_make(3, dims);
    lt t;

    lt_open(&t, c->type, c->stride ? 3 : 2, keys, vals, &in, c->batch);
    ck_assert_int_eq(t.sl->n_params, 0);
    ck_assert_int_eq(t.sl->out.ndim, 3);
    ck_assert_int_eq(t.sl->out.dim[0], c->C);
    ck_assert_int_eq(t.sl->out.dim[1], c->P);
    ck_assert_int_eq(t.sl->out.dim[2], c->Q);
    float *x = host_alloc(t.nx), *R = host_alloc(t.ny);
    tu_rng_seed(11 + (uint64_t)_i);
    spaced_fill(x, t.nx);
    rand_fill(R, t.ny);
    up(&be, t.x, x, t.nx);
    lt_grad_check(&t, x, R, c->type);
    {
        ref_obj o = { .is_pool = 1 };
        mltk_pool2d_desc *d = &o.pp.d;
        o.pp.kind = strcmp(c->type, "maxpool2d") == 0 ? MLTK_POOL_MAX : MLTK_POOL_AVG;
        d->N = c->batch;
        d->C = c->C;
        d->H = c->H;
        d->W = c->W;
        d->P = c->P;
        d->Q = c->Q;
        parse_pair(c->kernel, &d->R, &d->S);
        parse_pair(c->stride ? c->stride : c->kernel, &d->stride_h, &d->stride_w);
        parse_pair(c->padding, &d->pad_h, &d->pad_w);
        lt_ref_check(&t, &o, x, R, (double)(d->R * d->S), o.pp.kind == MLTK_POOL_MAX,
                     c->type);
    }
    free(x); free(R);
    lt_close(&t);
}
END_TEST

START_TEST(test_global_avgpool)
{
    int64_t dims[3] = { 3, 5, 4 };
    mltk_shape in = mltk_shape_make(3, dims);
    lt t;

    lt_open(&t, "global_avgpool", 0, NULL, NULL, &in, 3);
    ck_assert_int_eq(t.sl->out.ndim, 1);
    ck_assert_int_eq(t.sl->out.dim[0], 3);
    float *x = host_alloc(t.nx), *R = host_alloc(t.ny), *y = host_alloc(t.ny);
    tu_rng_seed(5);
    rand_fill(x, t.nx);
    rand_fill(R, t.ny);
    up(&be, t.x, x, t.nx);
    lt_run(&t, t.dx, 0);
    down(&be, y, t.y, t.ny);
    for (int64_t pl = 0; pl < t.ny; pl++) {
        double s = 0.0;
        for (int i = 0; i < 20; i++)
            s += x[pl * 20 + i];
        ck_assert_msg(fabs(y[pl] - s / 20.0) < 1e-6, "mean of plane %lld: %g vs %g",
                      (long long)pl, (double)y[pl], s / 20.0);
    }
    lt_grad_check(&t, x, R, "global_avgpool");
    {   /* the average over a whole plane: pooling with the plane as kernel */
        ref_obj o = { .is_pool = 1 };
        o.pp.kind = MLTK_POOL_AVG;
        o.pp.d = (mltk_pool2d_desc){ .N = 3, .C = 3, .H = 5, .W = 4, .R = 5, .S = 4, .P = 1,
                                     .Q = 1, .stride_h = 5, .stride_w = 4 };
        lt_ref_check(&t, &o, x, R, 20.0, 0, "global_avgpool");
    }
    free(x); free(R); free(y);
    lt_close(&t);
}
END_TEST

START_TEST(test_pool_errors)
{
    const char *keys[] = { "kernel", "padding" };
    int64_t d3[3] = { 2, 3, 3 }, d1[1] = { 7 };
    mltk_shape in = mltk_shape_make(3, d3), in1 = mltk_shape_make(1, d1);
    char *err = NULL;
    lt t;

    {
        const char *vals[] = { "4", "0" };
        ck_assert_int_eq(lt_try(&t, "maxpool2d", 2, keys, vals, &in, 1, &err), MLTK_ERR_SHAPE);
        TU_ASSERT_CONTAINS(err, "input 3x3 (padding 0,0) is smaller than the kernel 4x4");
        free(err); err = NULL; lt_close(&t);
    }
    {
        const char *vals[] = { "3", "2" };
        ck_assert_int_eq(lt_try(&t, "avgpool2d", 2, keys, vals, &in, 1, &err), MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, "more than half the kernel");
        free(err); err = NULL; lt_close(&t);
    }
    {
        const char *vals[] = { "2", "0" };
        ck_assert_int_eq(lt_try(&t, "maxpool2d", 2, keys, vals, &in1, 1, &err), MLTK_ERR_SHAPE);
        TU_ASSERT_CONTAINS(err, "not (channels, height, width)");
        free(err); err = NULL; lt_close(&t);
        ck_assert_int_eq(lt_try(&t, "global_avgpool", 0, NULL, NULL, &in1, 1, &err),
                         MLTK_ERR_SHAPE);
        TU_ASSERT_CONTAINS(err, "not (channels, height, width)");
        free(err); err = NULL; lt_close(&t);
    }
}
END_TEST

/* ---- suite ------------------------------------------------------------------ */

static Suite *conv_suite(void)
{
    Suite *s = suite_create("conv");
    TCase *ops = tcase_create("ops");
    TCase *layers = tcase_create("layers");
    int n_conv = (int)(sizeof(conv_shapes) / sizeof(conv_shapes[0]));
    int n_pool = (int)(sizeof(pool_shapes) / sizeof(pool_shapes[0]));

    tcase_add_checked_fixture(ops, fixture_open, fixture_close);
    tcase_set_timeout(ops, 300);
    tcase_add_loop_test(ops, test_conv_ops, 0, 2 * n_conv);
    tcase_add_loop_test(ops, test_conv_acts, 0, 12);
    tcase_add_test(ops, test_conv_chunked);
    tcase_add_test(ops, test_conv_invalid);
    tcase_add_loop_test(ops, test_pool_ops, 0, 4 * n_pool);
    tcase_add_test(ops, test_pool_large);
    suite_add_tcase(s, ops);

    tcase_add_checked_fixture(layers, fixture_open, fixture_close);
    tcase_set_timeout(layers, 300);
    tcase_add_loop_test(layers, test_conv2d_layer, 0,
                        (int)(sizeof(conv_layer_cases) / sizeof(conv_layer_cases[0])));
    tcase_add_test(layers, test_conv2d_init);
    tcase_add_test(layers, test_conv2d_errors);
    tcase_add_loop_test(layers, test_pool_layers, 0,
                        (int)(sizeof(pool_layer_cases) / sizeof(pool_layer_cases[0])));
    tcase_add_test(layers, test_global_avgpool);
    tcase_add_test(layers, test_pool_errors);
    suite_add_tcase(s, layers);
    (void)n_pool;
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conv_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
