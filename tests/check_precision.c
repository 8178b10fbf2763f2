/* check_precision.c - [run] precision = bf16 and [run] tf32.
 *
 * What this checks:
 *   - dense and conv2d in bf16 against a double-precision reference, in a
 *     two-layer model of each (so that both the input gradient of the
 *     upper layer and the weight gradient of the lower one are seen, and
 *     the lower layer's relu), forward and backward: every output and
 *     every parameter gradient is within a bound derived from bf16
 *     rounding, propagated through the layers (below), and the fp32 model
 *     built from the same seed is within the same bound with no rounding
 *     of the operands;
 *   - the refusals: precision = fp16 (the cpu backend has no fp16 matrix
 *     product), precision = bf16 on a backend without a bf16 one, with
 *     their exact messages; tf32 is accepted and ignored on the cpu;
 *   - a bf16 MLP trains on 8000 Fashion-MNIST samples to the fp32 run's
 *     accuracy (within 0.02 on 2000 test samples, and >= 0.80), repeats
 *     bit for bit, and its checkpoint and weights file hold F32 tensors
 *     equal to the f32 master weights.  Skipped (the test passes, saying
 *     so) when Debian's Fashion-MNIST is absent.
 *
 * The bound.  A bf16 operand is its f32 value times (1 + e), |e| <= u =
 * 2^-9 (round to nearest even, 8 significant bits); the test uses u =
 * 2^-8, twice that.  For a product sum_k a_k b_k whose operand a already
 * carries an absolute error ea (from the layers below) and whose b is
 * exact (data, master weights, the given output gradient):
 *   |computed - exact| <= (2u + u^2 + g) sum |a||b| + (1 + u)^2 sum ea |b|
 * with g = 2^-16 for the f32 accumulation of either model.  A relu whose
 * input lies within its error bound of 0 may switch; its gradient's error
 * there is the whole |dh| + e_dh.  The fp32 model uses the same formulas
 * with u = 0.
 *
 * What this is not: a test of the backend's bf16 kernels (check_bf16 and
 * check_conformance do that), or of accuracy on the full examples
 * (bench/bf16_vs_fp32.sh).
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mltk/mltk.h>
#include <mltk/backend.h>
#include "session.h"
#include "safetensors.h"
#include "testutil.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

static mltk_registry_t *reg;
static struct mltk_backend cpu;
static char *tmpdir;

static void setup(void)
{
    char *err = NULL;
    ck_assert_msg(mltk_registry_create(&reg, NULL, 1, &err) == MLTK_OK, "%s", err);
    mltk_backend_opts o = { .size = sizeof o, .threads = 2, .seed = 1 };
    ck_assert_msg(mltk_backend_open(&cpu, reg, "cpu", &o, &err) == MLTK_OK, "%s", err);
    tmpdir = tu_tmpdir();
}

static void teardown(void)
{
    mltk_backend_close(&cpu);
    mltk_registry_destroy(reg);
    reg = NULL;
    tu_rmtree(tmpdir);
    free(tmpdir);
    tmpdir = NULL;
}

/* the sections a config needs besides the model's */
#define REST "[data]\ntype = idx\n[loss]\ntype = cross_entropy\n[optimizer]\ntype = sgd\n"

static mltk_config_t *load_cfg(const char *name, const char *text)
{
    char *err = NULL, *path = tu_write(tmpdir, name, text);
    mltk_config_t *cfg = NULL;
    ck_assert_msg(mltk_config_load(&cfg, reg, path, &err) == MLTK_OK, "%s", err);
    free(path);
    return cfg;
}

/* ---- double references, shared by dense (1x1 "images") and conv2d --------- */

/* A layer as a convolution: dense is C = in, K = units, H = W = R = S = 1. */
typedef struct lyr {
    int64_t C, H, W, K, R, S, P, Q, stride, pad;
} lyr;

static int64_t xi(const lyr *l, int64_t n, int64_t c, int64_t h, int64_t w)
{
    return ((n * l->C + c) * l->H + h) * l->W + w;
}
static int64_t yi(const lyr *l, int64_t n, int64_t k, int64_t p, int64_t q)
{
    return ((n * l->K + k) * l->P + p) * l->Q + q;
}
static int64_t wi(const lyr *l, int64_t k, int64_t c, int64_t r, int64_t s)
{
    return ((k * l->C + c) * l->R + r) * l->S + s;
}

/* Runs BODY with ix, iy, iw (the x, y and w indices) for every term of the
 * correlation of N samples. */
#define FOR_TERMS(l, N, BODY)                                                        \
    for (int64_t n = 0; n < (N); n++)                                                 \
        for (int64_t k = 0; k < (l)->K; k++)                                          \
            for (int64_t p = 0; p < (l)->P; p++)                                      \
                for (int64_t q = 0; q < (l)->Q; q++)                                  \
                    for (int64_t c = 0; c < (l)->C; c++)                              \
                        for (int64_t r = 0; r < (l)->R; r++)                          \
                            for (int64_t s = 0; s < (l)->S; s++) {                    \
                                int64_t hh = p * (l)->stride - (l)->pad + r;          \
                                int64_t ww = q * (l)->stride - (l)->pad + s;          \
                                if (hh < 0 || hh >= (l)->H || ww < 0 || ww >= (l)->W) \
                                    continue;                                         \
                                int64_t ix = xi((l), n, c, hh, ww);                   \
                                int64_t iy = yi((l), n, k, p, q);                     \
                                int64_t iw = wi((l), k, c, r, s);                     \
                                BODY;                                                 \
                            }

/* y = x * w (no bias) */
static void ref_fwd(const lyr *l, int64_t N, double *y, const double *x, const double *w)
{
    memset(y, 0, (size_t)(N * l->K * l->P * l->Q) * sizeof(double));
    FOR_TERMS(l, N, y[iy] += x[ix] * w[iw])
}
/* dx = dy * w transposed */
static void ref_bwd_data(const lyr *l, int64_t N, double *dx, const double *dy, const double *w)
{
    memset(dx, 0, (size_t)(N * l->C * l->H * l->W) * sizeof(double));
    FOR_TERMS(l, N, dx[ix] += dy[iy] * w[iw])
}
/* dw = correlation of x with dy */
static void ref_bwd_filter(const lyr *l, int64_t N, double *dw, const double *dy,
                           const double *x)
{
    memset(dw, 0, (size_t)(l->K * l->C * l->R * l->S) * sizeof(double));
    FOR_TERMS(l, N, dw[iw] += dy[iy] * x[ix])
}

static double *dalloc(int64_t n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

static double *dabs(const double *a, int64_t n)
{
    double *r = dalloc(n);
    for (int64_t i = 0; i < n; i++)
        r[i] = fabs(a[i]);
    return r;
}

/* the bound of a product: c2 * A + c1 * E, into out */
static void bound(double *out, const double *A, const double *E, int64_t n, double u)
{
    const double g = ldexp(1.0, -16);
    for (int64_t i = 0; i < n; i++)
        out[i] = (2 * u + u * u + g) * A[i] + (1 + u) * (1 + u) * (E ? E[i] : 0.0);
}

/* ---- a two-layer model: layer 1 (relu, from the data), layer 2 (none) ------ */

typedef struct two {
    lyr     l1, l2;
    int64_t N;
    int     conv;       /* 0: dense layers */
} two;

typedef struct run_out {
    float *y;               /* N x out */
    float *gw1, *gb1, *gw2, *gb2;
    float *w1, *b1, *w2, *b2;  /* the master weights */
} run_out;

static float *fdown(const struct mltk_backend *be, const float *dev, int64_t n)
{
    float *h = malloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(mltk_be_download(be, h, dev, (size_t)n * sizeof(float)), MLTK_OK);
    return h;
}

static void run_model(const two *t, const char *cfg_text, const char *name, const float *x,
                      const float *g, run_out *o)
{
    char *err = NULL;
    mltk_config_t *cfg = load_cfg(name, cfg_text);
    mltk_model *m = NULL;
    mltk_shape in;
    if (t->conv) {
        const int64_t d[3] = { t->l1.C, t->l1.H, t->l1.W };
        in = mltk_shape_make(3, d);
    } else {
        in = mltk_shape_make(1, &t->l1.C);
    }
    ck_assert_msg(mltk_model_create(&m, cfg, reg, &cpu, &in, t->N, 5, &err) == MLTK_OK, "%s",
                  err);
    int64_t nx = t->N * t->l1.C * t->l1.H * t->l1.W;
    int64_t ny = t->N * t->l2.K * t->l2.P * t->l2.Q;
    void *xd = NULL;
    ck_assert_int_eq(mltk_be_alloc(&cpu, (size_t)nx * sizeof(float), &xd), MLTK_OK);
    ck_assert_int_eq(mltk_be_upload(&cpu, xd, x, (size_t)nx * sizeof(float)), MLTK_OK);
    ck_assert_msg(mltk_model_forward(m, xd, t->N, MLTK_TRAIN, 0, &err) == MLTK_OK, "%s", err);
    ck_assert_int_eq(mltk_be_upload(&cpu, mltk_model_output_grad(m), g,
                                    (size_t)ny * sizeof(float)), MLTK_OK);
    ck_assert_msg(mltk_model_backward(m, t->N, 0, &err) == MLTK_OK, "%s", err);
    o->y = fdown(&cpu, mltk_model_output(m), ny);
    int64_t np;
    float *p0 = mltk_model_params(m, &np), *g0 = mltk_model_grads(m, &np);
    float **pw[4] = { &o->w1, &o->b1, &o->w2, &o->b2 };
    float **gw[4] = { &o->gw1, &o->gb1, &o->gw2, &o->gb2 };
    ck_assert_int_eq(mltk_model_n_tensors(m), 4);
    for (int i = 0; i < 4; i++) {
        mltk_model_named nt;
        ck_assert_int_eq(mltk_model_tensor(m, i, &nt), MLTK_OK);
        int64_t n = mltk_shape_numel(&nt.shape);
        *pw[i] = fdown(&cpu, nt.data, n);
        *gw[i] = fdown(&cpu, g0 + (nt.data - p0), n);
    }
    mltk_be_free(&cpu, xd);
    mltk_model_destroy(m);
    mltk_config_destroy(cfg);
}

static void free_out(run_out *o)
{
    free(o->y);
    free(o->gw1); free(o->gb1); free(o->gw2); free(o->gb2);
    free(o->w1); free(o->b1); free(o->w2); free(o->b2);
}

/* The reference and the bound with operand rounding u; then every value
 * of `o` against them.  Returns the largest |error| / bound. */
typedef struct refs {
    double *y, *gw1, *gb1, *gw2, *gb2;        /* exact */
    double *ey, *egw1, *egb1, *egw2, *egb2;   /* bounds */
} refs;

static void make_refs(const two *t, const float *xf, const float *gf, const run_out *m, double u,
                      refs *R)
{
    const lyr *l1 = &t->l1, *l2 = &t->l2;
    const int64_t N = t->N;
    const int64_t nx = N * l1->C * l1->H * l1->W, nh = N * l1->K * l1->P * l1->Q;
    const int64_t ny = N * l2->K * l2->P * l2->Q;
    const int64_t nw1 = l1->K * l1->C * l1->R * l1->S, nw2 = l2->K * l2->C * l2->R * l2->S;
    const int64_t hw1 = l1->P * l1->Q, hw2 = l2->P * l2->Q;
    double *x = dalloc(nx), *g = dalloc(ny), *w1 = dalloc(nw1), *w2 = dalloc(nw2);
    for (int64_t i = 0; i < nx; i++) x[i] = xf[i];
    for (int64_t i = 0; i < ny; i++) g[i] = gf[i];
    for (int64_t i = 0; i < nw1; i++) w1[i] = m->w1[i];
    for (int64_t i = 0; i < nw2; i++) w2[i] = m->w2[i];
    double *ax = dabs(x, nx), *ag = dabs(g, ny), *aw1 = dabs(w1, nw1), *aw2 = dabs(w2, nw2);

    /* forward: pre1 = x w1 + b1, h = relu(pre1), y = h w2 + b2 */
    double *pre = dalloc(nh), *h = dalloc(nh), *A = dalloc(nh), *eh = dalloc(nh);
    ref_fwd(l1, N, pre, x, w1);
    ref_fwd(l1, N, A, ax, aw1);
    bound(eh, A, NULL, nh, u);            /* error of pre1, and of h (relu: 1-Lipschitz) */
    for (int64_t i = 0; i < nh; i++) {
        pre[i] += m->b1[(i / hw1) % l1->K];
        h[i] = pre[i] > 0 ? pre[i] : 0.0;
    }
    double *ah = dabs(h, nh), *tmp = dalloc(ny), *tmp2 = dalloc(ny);
    R->y = dalloc(ny);
    R->ey = dalloc(ny);
    ref_fwd(l2, N, R->y, h, w2);
    for (int64_t i = 0; i < ny; i++)
        R->y[i] += m->b2[(i / hw2) % l2->K];
    ref_fwd(l2, N, tmp, ah, aw2);
    ref_fwd(l2, N, tmp2, eh, aw2);
    bound(R->ey, tmp, tmp2, ny, u);

    /* backward: dz2 = g; dw2 = corr(h, g); db2 = sum g; dh = g w2^T */
    R->gw2 = dalloc(nw2);
    R->egw2 = dalloc(nw2);
    double *t1 = dalloc(nw2), *t2 = dalloc(nw2);
    ref_bwd_filter(l2, N, R->gw2, g, h);
    ref_bwd_filter(l2, N, t1, ag, ah);
    ref_bwd_filter(l2, N, t2, ag, eh);
    bound(R->egw2, t1, t2, nw2, u);
    R->gb2 = dalloc(l2->K);
    R->egb2 = dalloc(l2->K);
    for (int64_t i = 0; i < ny; i++) {
        R->gb2[(i / hw2) % l2->K] += g[i];
        R->egb2[(i / hw2) % l2->K] += ldexp(fabs(g[i]), -16);
    }
    double *dh = dalloc(nh), *adh = dalloc(nh), *edh = dalloc(nh);
    ref_bwd_data(l2, N, dh, g, w2);
    ref_bwd_data(l2, N, adh, ag, aw2);
    bound(edh, adh, NULL, nh, u);
    /* dz1 = dh where pre1 > 0; where |pre1| is within its bound the relu
     * may have switched in the computed model */
    double *dz = dalloc(nh), *edz = dalloc(nh);
    for (int64_t i = 0; i < nh; i++) {
        dz[i] = pre[i] > 0 ? dh[i] : 0.0;
        if (fabs(pre[i]) <= eh[i])
            edz[i] = fabs(dh[i]) + edh[i];
        else
            edz[i] = pre[i] > 0 ? edh[i] : 0.0;
    }
    double *adz = dabs(dz, nh);
    R->gw1 = dalloc(nw1);
    R->egw1 = dalloc(nw1);
    double *t3 = dalloc(nw1), *t4 = dalloc(nw1);
    ref_bwd_filter(l1, N, R->gw1, dz, x);
    ref_bwd_filter(l1, N, t3, adz, ax);
    ref_bwd_filter(l1, N, t4, edz, ax);
    bound(R->egw1, t3, t4, nw1, u);
    R->gb1 = dalloc(l1->K);
    R->egb1 = dalloc(l1->K);
    for (int64_t i = 0; i < nh; i++) {   /* f32 sums of the f32 dz1 */
        R->gb1[(i / hw1) % l1->K] += dz[i];
        R->egb1[(i / hw1) % l1->K] += edz[i] + ldexp(adz[i], -16);
    }
    free(x); free(g); free(w1); free(w2); free(ax); free(ag); free(aw1); free(aw2);
    free(pre); free(h); free(A); free(eh); free(ah); free(tmp); free(tmp2);
    free(t1); free(t2); free(dh); free(adh); free(edh); free(dz); free(edz); free(adz);
    free(t3); free(t4);
}

static void free_refs(refs *R)
{
    free(R->y); free(R->gw1); free(R->gb1); free(R->gw2); free(R->gb2);
    free(R->ey); free(R->egw1); free(R->egb1); free(R->egw2); free(R->egb2);
}

/* every value within its bound; returns the largest |error| / bound */
static double within(const char *what, const char *model, const float *got, const double *ref,
                     const double *e, int64_t n)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        ck_assert_msg(d <= e[i] + 1e-30, "%s %s[%lld] = %.9g, reference %.9g: error %.3g over "
                      "the bound %.3g", model, what, (long long)i, (double)got[i], ref[i], d,
                      e[i]);
        if (e[i] > 0 && d / e[i] > worst)
            worst = d / e[i];
    }
    return worst;
}

static int64_t numel_y(const lyr *l, int64_t N) { return N * l->K * l->P * l->Q; }

static void check_two(const two *t, const char *layers)
{
    const int64_t nx = t->N * t->l1.C * t->l1.H * t->l1.W, ny = numel_y(&t->l2, t->N);
    float *x = malloc((size_t)nx * sizeof(float)), *g = malloc((size_t)ny * sizeof(float));
    ck_assert(x && g);
    tu_rng_seed(11);
    for (int64_t i = 0; i < nx; i++)   /* magnitudes over several binades */
        x[i] = (float)((tu_urand() * 2 - 1) * ldexp(1.0, (int)(tu_urand() * 4) - 2));
    for (int64_t i = 0; i < ny; i++)
        g[i] = (float)(tu_urand() * 2 - 1);
    char *c32 = tu_fmt("[run]\nseed = 5\n%s" REST, layers);
    char *c16 = tu_fmt("[run]\nseed = 5\nprecision = bf16\n%s" REST, layers);
    run_out o32, o16;
    run_model(t, c32, "fp32.ini", x, g, &o32);
    run_model(t, c16, "bf16.ini", x, g, &o16);
    const int64_t nw1 = t->l1.K * t->l1.C * t->l1.R * t->l1.S;
    const int64_t nw2 = t->l2.K * t->l2.C * t->l2.R * t->l2.S;
    /* same seed: the same master weights */
    ck_assert(memcmp(o32.w1, o16.w1, (size_t)nw1 * sizeof(float)) == 0);
    ck_assert(memcmp(o32.w2, o16.w2, (size_t)nw2 * sizeof(float)) == 0);

    const double u_bf16 = ldexp(1.0, -8);
    const struct { const char *name; run_out *o; double u; } runs[2] = {
        { "fp32", &o32, 0.0 }, { "bf16", &o16, u_bf16 } };
    double worst[2] = { 0, 0 };
    for (int i = 0; i < 2; i++) {
        refs R;
        make_refs(t, x, g, runs[i].o, runs[i].u, &R);
        double w = 0;
        w = fmax(w, within("y", runs[i].name, runs[i].o->y, R.y, R.ey, ny));
        w = fmax(w, within("dw2", runs[i].name, runs[i].o->gw2, R.gw2, R.egw2, nw2));
        w = fmax(w, within("db2", runs[i].name, runs[i].o->gb2, R.gb2, R.egb2, t->l2.K));
        w = fmax(w, within("dw1", runs[i].name, runs[i].o->gw1, R.gw1, R.egw1, nw1));
        w = fmax(w, within("db1", runs[i].name, runs[i].o->gb1, R.gb1, R.egb1, t->l1.K));
        worst[i] = w;
        free_refs(&R);
    }
    fprintf(stderr, "check_precision: %s: largest error / bound: fp32 %.3g, bf16 %.3g\n",
            t->conv ? "conv2d" : "dense", worst[0], worst[1]);
    /* bf16 really ran: its results differ from fp32's, by more than the
     * fp32 rounding alone (the fp32 model sits far inside its bound) */
    ck_assert_msg(memcmp(o32.y, o16.y, (size_t)ny * sizeof(float)) != 0,
                  "bf16 and fp32 outputs are identical");
    ck_assert_msg(worst[1] > 0.01, "bf16 errors at most %.3g of their bound: not bf16?",
                  worst[1]);
    free_out(&o32);
    free_out(&o16);
    free(c32);
    free(c16);
    free(x);
    free(g);
}

START_TEST(dense_bf16_within_bound)
{
    /* 40 -> 24 (relu) -> 10, batch 16 */
    two t = { .l1 = { .C = 40, .H = 1, .W = 1, .K = 24, .R = 1, .S = 1, .P = 1, .Q = 1,
                      .stride = 1 },
              .l2 = { .C = 24, .H = 1, .W = 1, .K = 10, .R = 1, .S = 1, .P = 1, .Q = 1,
                      .stride = 1 },
              .N = 16, .conv = 0 };
    check_two(&t, "[layer.d1]\ntype = dense\nunits = 24\nactivation = relu\n"
                  "[layer.d2]\ntype = dense\nunits = 10\n");
}
END_TEST

START_TEST(conv2d_bf16_within_bound)
{
    /* (3, 9, 9) -> conv 3x3 same, 8 filters, relu -> conv 3x3 stride 2
     * padding 1, 5 filters: (5, 5, 5); batch 4 */
    two t = { .l1 = { .C = 3, .H = 9, .W = 9, .K = 8, .R = 3, .S = 3, .P = 9, .Q = 9,
                      .stride = 1, .pad = 1 },
              .l2 = { .C = 8, .H = 9, .W = 9, .K = 5, .R = 3, .S = 3, .P = 5, .Q = 5,
                      .stride = 2, .pad = 1 },
              .N = 4, .conv = 1 };
    check_two(&t, "[layer.c1]\ntype = conv2d\nfilters = 8\nkernel = 3\npadding = same\n"
                  "activation = relu\n"
                  "[layer.c2]\ntype = conv2d\nfilters = 5\nkernel = 3\nstride = 2\n"
                  "padding = 1\n");
}
END_TEST

/* ---- refusals ---------------------------------------------------------------- */

/* the cpu backend with its bf16 matrix product hidden */
static const struct mltk_backend_i *cpu_i;
static int nobf16_supports(void *ctx, mltk_op op, mltk_dtype dt)
{
    if (op == MLTK_OP_GEMM && dt == MLTK_BF16)
        return 0;
    return cpu_i->supports(ctx, op, dt);
}

static char *model_error(const struct mltk_backend *be, const char *name, const char *text,
                         int *rc)
{
    char *err = NULL;
    mltk_config_t *cfg = load_cfg(name, text);
    mltk_model *m = NULL;
    const int64_t d = 12;
    mltk_shape in = mltk_shape_make(1, &d);
    *rc = mltk_model_create(&m, cfg, reg, be, &in, 4, 1, &err);
    mltk_model_destroy(m);
    mltk_config_destroy(cfg);
    return err;
}

START_TEST(fp16_and_missing_bf16_refused)
{
    int rc;
    /* fp16: the cpu backend has no fp16 matrix product */
    char *err = model_error(&cpu, "fp16.ini",
                            "[run]\nprecision = fp16\n[layer.d]\ntype = dense\nunits = 3\n" REST,
                            &rc);
    char *want = tu_fmt("%s/fp16.ini:2: [run] precision = fp16: backend 'cpu' has no fp16 "
                        "matrix product", tmpdir);
    ck_assert_int_eq(rc, MLTK_ERR_UNSUPPORTED);
    ck_assert_str_eq(err, want);
    free(err);
    free(want);

    /* bf16 on a backend without a bf16 matrix product */
    struct mltk_backend_i vt = *cpu.i;
    cpu_i = cpu.i;
    vt.supports = nobf16_supports;
    struct mltk_backend nob = cpu;
    nob.i = &vt;
    nob.name = "nobf16";
    err = model_error(&nob, "bf16.ini",
                      "[run]\nseed = 3\n\nprecision = bf16\n[layer.d]\ntype = dense\nunits = 3\n"
                      REST, &rc);
    want = tu_fmt("%s/bf16.ini:4: [run] precision = bf16: backend 'nobf16' has no bf16 "
                  "matrix product", tmpdir);
    ck_assert_int_eq(rc, MLTK_ERR_UNSUPPORTED);
    ck_assert_str_eq(err, want);
    free(err);
    free(want);

    /* tf32 is for GPU backends; the cpu accepts and ignores it, and fp32
     * (the default, or written out) builds as before */
    err = model_error(&cpu, "tf32.ini",
                      "[run]\ntf32 = true\nprecision = fp32\n[layer.d]\ntype = dense\nunits = 3\n"
                      REST, &rc);
    ck_assert_msg(rc == MLTK_OK, "%s", err ? err : "?");
    free(err);
}
END_TEST

/* ---- training --------------------------------------------------------------- */

static const char mlp[] =
    "[run]\nseed = 7\nbackend = cpu\nthreads = 2\nprecision = %s\n"
    "[train]\nepochs = 3\nbatch_size = 64\n"
    "[data]\ntype = idx\ntrain_limit = 8000\ntest_limit = 2000\n"
    "[layer.flat]\ntype = flatten\n"
    "[layer.fc1]\ntype = dense\nunits = 128\nactivation = relu\n"
    "[layer.fc2]\ntype = dense\nunits = 64\n"
    "[layer.act]\ntype = relu\n"
    "[layer.out]\ntype = dense\nunits = 10\n"
    "[loss]\ntype = cross_entropy\n"
    "[optimizer]\ntype = adam\nlr = 0.002\n"
    "[checkpoint]\ndir = %s/ck-%s-%d\n"
    "[model]\nsave = %s/w-%s-%d.safetensors\n";

static int train(const char *prec, int k, mltk_epoch_stats *st, float **params, int64_t *np,
                 char **err)
{
    char *text = tu_fmt(mlp, prec, tmpdir, prec, k, tmpdir, prec, k);
    char *name = tu_fmt("%s-%d.ini", prec, k);
    char *path = tu_write(tmpdir, name, text);
    mltk_config_t *cfg = NULL;
    mltk_session_t *s = NULL;
    mltk_session_opts o = { .quiet = 1 };
    int rc = mltk_config_load(&cfg, reg, path, err);
    if (!rc)
        rc = mltk_session_create(&s, cfg, reg, &o, err);
    if (!rc)
        rc = mltk_session_train(s, st, err);
    if (!rc && params) {
        float *p = mltk_model_params(s->model, np);
        *params = fdown(&s->be, p, *np);
    }
    mltk_session_destroy(s);
    mltk_config_destroy(cfg);
    free(text);
    free(name);
    free(path);
    return rc;
}

/* every tensor of the safetensors file F32, and the model's parameters
 * (by name) equal to the f32 master weights; returns how many of them are
 * not bf16 values (low 16 bits non-zero) */
static int64_t st_all_f32(const char *path, const float *params, int64_t np)
{
    static const char *const names[] = { "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                         "out.weight", "out.bias" };
    char *err = NULL;
    mltk_st_file *f = NULL;
    ck_assert_msg(mltk_st_open(&f, path, &err) == MLTK_OK, "%s", err);
    for (int i = 0; i < mltk_st_count(f); i++) {
        const mltk_st_tensor *t = mltk_st_get(f, i);
        ck_assert_msg(t->dtype == MLTK_ST_F32, "%s: tensor '%s' is %s", path, t->name,
                      mltk_st_dtype_name(t->dtype));
    }
    int64_t off = 0, not_bf16 = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const mltk_st_tensor *t = mltk_st_find(f, names[i]);
        ck_assert_msg(t != NULL, "%s: no tensor '%s'", path, names[i]);
        int64_t n = (int64_t)(t->nbytes / sizeof(float));
        ck_assert_int_le(off + n, np);
        float *v = malloc(t->nbytes);
        ck_assert_ptr_nonnull(v);
        memcpy(v, t->data, t->nbytes);
        ck_assert_msg(memcmp(v, params + off, t->nbytes) == 0,
                      "%s: '%s' differs from the master weights", path, names[i]);
        for (int64_t j = 0; j < n; j++) {
            uint32_t b;
            memcpy(&b, &v[j], sizeof b);
            not_bf16 += (b & 0xffffu) != 0;
        }
        free(v);
        off += (n + 15) & ~(int64_t)15;  /* the flat buffer's 64-byte tensor starts */
    }
    mltk_st_close(f);
    return not_bf16;
}

START_TEST(bf16_mlp_trains_like_fp32)
{
    if (access(FMNIST, R_OK) != 0) {
        fprintf(stderr, "check_precision: %s absent: bf16 training not checked\n", FMNIST);
        return;
    }
    mltk_epoch_stats f, b, b2;
    float *pf = NULL, *pb = NULL, *pb2 = NULL;
    int64_t nf = 0, nb = 0, nb2 = 0;
    char *err = NULL;
    ck_assert_msg(train("fp32", 0, &f, &pf, &nf, &err) == MLTK_OK, "%s", err);
    ck_assert_msg(train("bf16", 0, &b, &pb, &nb, &err) == MLTK_OK, "%s", err);
    fprintf(stderr, "check_precision: 8000 samples, 3 epochs: fp32 val_acc %.4f loss %.4f; "
            "bf16 val_acc %.4f loss %.4f\n", f.val_acc, f.val_loss, b.val_acc, b.val_loss);
    ck_assert_msg(b.val_acc >= 0.80, "bf16 val_acc %.4f < 0.80", b.val_acc);
    ck_assert_msg(fabs(b.val_acc - f.val_acc) <= 0.02, "bf16 val_acc %.4f, fp32 %.4f",
                  b.val_acc, f.val_acc);
    ck_assert(b.train_loss > 0.0 && b.train_loss < 0.6);
    ck_assert_msg(fabs(b.val_loss - f.val_loss) <= 0.05, "bf16 val_loss %.4f, fp32 %.4f",
                  b.val_loss, f.val_loss);
    /* the products were bf16: the runs differ */
    ck_assert_int_eq(nf, nb);
    ck_assert(memcmp(pf, pb, (size_t)nf * sizeof(float)) != 0);

    /* a seeded bf16 run repeats bit for bit */
    ck_assert_msg(train("bf16", 1, &b2, &pb2, &nb2, &err) == MLTK_OK, "%s", err);
    ck_assert(nb2 == nb && memcmp(pb, pb2, (size_t)nb * sizeof(float)) == 0);
    ck_assert(b.val_acc == b2.val_acc && b.val_loss == b2.val_loss);

    /* the checkpoint and the weights file: F32, the master weights (not
     * their bf16 copies: most values have low bits) */
    char *ckpt = NULL;
    char *dir = tu_fmt("%s/ck-bf16-0", tmpdir);
    ck_assert_msg(mltk_ckpt_latest(dir, &ckpt, &err) == MLTK_OK && ckpt, "%s",
                  err ? err : "no checkpoint");
    int64_t lowbits = st_all_f32(ckpt, pb, nb);
    ck_assert_msg(lowbits > nb / 2, "only %lld weights are not bf16 values", (long long)lowbits);
    char *wpath = tu_fmt("%s/w-bf16-0.safetensors", tmpdir);
    ck_assert_int_eq(st_all_f32(wpath, pb, nb), lowbits);
    free(ckpt);
    free(dir);
    free(wpath);
    free(pf);
    free(pb);
    free(pb2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("precision");
    TCase *tc = tcase_create("bf16");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, dense_bf16_within_bound);
    tcase_add_test(tc, conv2d_bf16_within_bound);
    tcase_add_test(tc, fp16_and_missing_bf16_refused);
    tcase_add_test(tc, bf16_mlp_trains_like_fp32);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
