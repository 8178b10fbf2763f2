/* check_layers.c - values and gradients of the dense, relu and flatten
 * layers and the cross_entropy loss, and of add, concat and embedding
 * against double references, run on the cpu backend; the cross_entropy
 * loss against probability targets (mixup, cutmix) also against
 * PyTorch's own numbers (loss_ref.h).
 *
 * What this is: each plugin is loaded through the registry from the build
 * tree, its parameters are built against its own descriptor, and it runs
 * standalone (mltk_single_layer).  Forward outputs are compared with naive
 * double-precision references; every gradient (inputs and parameters) is
 * compared with central finite differences of a scalar function of the
 * float forward pass (tests/fdcheck.h, at an absolute step: testutil.h),
 * and, for dense, relu and flatten, with central differences of their
 * double-precision reference (tests/op_ref.h's ref_gemm and ref_act;
 * fd_check_ref: |analytic - reference| <= 1e-5 of the gradient's largest
 * element, where float rounding leaves ~1e-7).  The add, concat and
 * embedding layers (whose own tests are check_graph.c's) are held to
 * double references here too: outputs bit for bit, gradients as above.
 *
 * Tolerances: the scalar is L = sum(y * R) for fixed random R (so that
 * dL/dy = R is what backward receives).  With eps = 1e-2 the float
 * rounding of L (about 1e-7 relative over a few dozen terms) contributes
 * about 1e-5 to a difference quotient, and the truncation error of a
 * central difference of a smooth activation is O(eps^2) = 1e-4 relative,
 * so |analytic - numeric| <= 1e-2 * max(|analytic|, |numeric|) + atol with
 * atol = 1e-3 (1e-4 for the loss, whose gradients are ~1/N smaller) has a
 * margin of 10x and still catches any wrong term.  Piecewise-linear
 * activations are checked at points at least 0.02 from their kink, so no
 * perturbation crosses it.
 *
 * The backend is cpu, or the one named by $MLTK_TEST_BACKEND (the plugins
 * only use backend memory through the op contract, so the same checks run
 * on any backend).
 *
 * What this is not: the backend conformance suite (ops against the cpu
 * backend) or the model graph tests.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "loss_ref.h"
#include "op_ref.h"
#include "testutil.h"

/* ---- fixture: registry and cpu backend ------------------------------------ */

static mltk_registry_t *reg;
static struct mltk_backend be;

static void fixture_open(void)
{
    char *err = NULL;
    mltk_backend_opts o = { .size = sizeof(o), .threads = 1, .device = 0, .seed = 1 };
    const char *name = getenv("MLTK_TEST_BACKEND");
    int rc = mltk_registry_create(&reg, NULL, 1, &err);

    if (!name || !*name)
        name = "cpu";
    ck_assert_msg(rc == MLTK_OK, "registry: %s", err ? err : "?");
    rc = mltk_backend_open(&be, reg, name, &o, &err);
    ck_assert_msg(rc == MLTK_OK, "backend %s: %s", name, err ? err : "?");
}

static void fixture_close(void)
{
    mltk_backend_close(&be);
    mltk_registry_destroy(reg);
    reg = NULL;
}

/* ---- small helpers -------------------------------------------------------- */

/* A contiguous view of `data` with shape `s`. */
static mltk_tensor tview(void *data, mltk_shape s, mltk_dtype dt)
{
    return (mltk_tensor){ .data = data, .shape = s, .dtype = dt };
}

static float *dev_alloc(int64_t n)
{
    void *p = NULL;
    int rc = mltk_be_alloc(&be, (size_t)(n > 0 ? n : 1) * sizeof(float), &p);

    ck_assert_msg(rc == MLTK_OK, "alloc: %s", mltk_backend_error(&be));
    return p;
}

static void up(float *dev, const float *host, int64_t n)
{
    ck_assert_int_eq(mltk_be_upload(&be, dev, host, (size_t)n * sizeof(float)), MLTK_OK);
}

static void down(float *host, const float *dev, int64_t n)
{
    ck_assert_int_eq(mltk_be_sync(&be), MLTK_OK);
    ck_assert_int_eq(mltk_be_download(&be, host, dev, (size_t)n * sizeof(float)), MLTK_OK);
}

static mltk_shape batch_shape(int64_t batch, const mltk_shape *s)
{
    mltk_shape b;

    b.ndim = s->ndim + 1;
    b.dim[0] = batch;
    for (int i = 0; i < s->ndim; i++)
        b.dim[i + 1] = s->dim[i];
    return b;
}

static int close_enough(double a, double n, double rtol, double atol)
{
    double m = fabs(a) > fabs(n) ? fabs(a) : fabs(n);
    return fabs(a - n) <= rtol * m + atol;
}

/* Build a plugin's params from key/value pairs against its descriptor. */
static mltk_params_t *build_params(const char *name, int kind, int n,
                                   const char *const *keys, const char *const *vals)
{
    const mltk_desc *d = NULL;
    mltk_params_t *p = NULL;
    char *err = NULL;
    int rc = mltk_registry_find(reg, name, kind, &d, &err);

    ck_assert_msg(rc == MLTK_OK, "find %s: %s", name, err ? err : "?");
    rc = mltk_params_build(&p, &d, 1, n, keys, vals, NULL, NULL, 0, name, &err);
    ck_assert_msg(rc == MLTK_OK, "params %s: %s", name, err ? err : "?");
    return p;
}

/* ---- a layer under test --------------------------------------------------- */

typedef struct lt {
    const struct mltk_layer_i *iface;
    void              *self;
    mltk_params_t     *params;
    mltk_single_layer *sl;
    mltk_shape         in;       /* per sample */
    int64_t            batch;
    int64_t            nx, ny;   /* elements for this batch */
    float             *x, *y, *dy, *dx;   /* backend memory */
} lt;

static void lt_open(lt *t, const char *name, int n, const char *const *keys,
                    const char *const *vals, const mltk_shape *in, int64_t max_batch,
                    int64_t batch)
{
    char *err = NULL;
    int rc;

    memset(t, 0, sizeof(*t));
    t->params = build_params(name, MLTK_KIND_LAYER, n, keys, vals);
    rc = mltk_registry_load(reg, name, MLTK_KIND_LAYER, (const void **)&t->iface, &err);
    ck_assert_msg(rc == MLTK_OK, "load %s: %s", name, err ? err : "?");
    rc = t->iface->create(&t->self, t->params, &err);
    ck_assert_msg(rc == MLTK_OK, "create %s: %s", name, err ? err : "?");
    rc = mltk_single_layer_create(&t->sl, t->iface, t->self, &be, 1, in, max_batch, 42, &err);
    ck_assert_msg(rc == MLTK_OK, "setup %s: %s", name, err ? err : "?");
    t->in = *in;
    t->batch = batch;
    t->nx = batch * mltk_shape_numel(in);
    t->ny = batch * mltk_shape_numel(&t->sl->out);
    t->x = dev_alloc(t->nx);
    t->dx = dev_alloc(t->nx);
    t->y = dev_alloc(t->ny);
    t->dy = dev_alloc(t->ny);
}

static void lt_close(lt *t)
{
    mltk_be_free(&be, t->x);
    mltk_be_free(&be, t->dx);
    mltk_be_free(&be, t->y);
    mltk_be_free(&be, t->dy);
    mltk_single_layer_destroy(t->sl, &be);
    if (t->iface->destroy)
        t->iface->destroy(t->self);
    mltk_params_free(t->params);
}

/* One forward (and, with backward != 0, one backward) call; x/y and dx/dy
 * may be redirected to alias each other for in-place runs. */
static void lt_run(lt *t, float *x, float *y, float *dx, float *dy, int backward)
{
    mltk_tensor xt = tview(x, batch_shape(t->batch, &t->in), MLTK_F32);
    mltk_tensor dxt = tview(dx, batch_shape(t->batch, &t->in), MLTK_F32);
    mltk_tensor yt = tview(y, batch_shape(t->batch, &t->sl->out), MLTK_F32);
    mltk_tensor dyt = tview(dy, batch_shape(t->batch, &t->sl->out), MLTK_F32);
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

/* L = sum(y * R) after a forward pass */
static double lt_objective(lt *t, const float *R)
{
    float *y = malloc((size_t)t->ny * sizeof(float));
    double L = 0.0;

    lt_run(t, t->x, t->y, t->dx, t->dy, 0);
    down(y, t->y, t->ny);
    for (int64_t i = 0; i < t->ny; i++)
        L += (double)y[i] * R[i];
    free(y);
    return L;
}

/* L of the layer with n host values (mirrored in backend memory `dev`)
 * uploaded first: the function fdcheck.h differentiates. */
typedef struct lt_fd {
    lt          *t;
    float       *host, *dev;
    int64_t      n;
    const float *R;
} lt_fd;

static double lt_fd_eval(void *ctx)
{
    lt_fd *c = ctx;

    up(c->dev, c->host, c->n);
    return lt_objective(c->t, c->R);
}

/* Compare analytic gradients `ana` of the n values `host` (mirrored in
 * backend memory `dev`) with central differences of L. */
static void check_fd(lt *t, const char *what, float *host, float *dev, int64_t n,
                     const float *ana, const float *R, double eps, double atol)
{
    lt_fd c = { t, host, dev, n, R };
    fd_opts o = tu_fd_bounds(eps, atol);
    fd_report r;

    if (tu_fd_check(what, lt_fd_eval, &c, host, n, ana, &o, &r))
        ck_abort_msg("%s", r.msg);
    up(dev, host, n);   /* the probes leave the last value uploaded */
}

/* ---- gradients against the double references of tests/op_ref.h ----------- */

/* L = sum R y of a layer's double-precision reference, over double copies
 * of its input and parameters: what fd_check_ref differentiates. */
typedef struct lref {
    void        (*fwd)(const struct lref *c, double *y);
    double       *x, *p[2];   /* input, parameters (as many as the layer has) */
    double       *y;
    const float  *R;
    int64_t       ny;
    int64_t       B, I, U;    /* dense */
    mltk_gemm_params gp;      /* dense: ta 0, tb 1 (W is (U, I)), act */
    mltk_act      act;        /* elementwise */
    double        alpha;
} lref;

static double lref_eval(void *ctx)
{
    lref *c = ctx;

    c->fwd(c, c->y);
    return fd_dot_d(c->R, c->y, c->ny);
}

/* y (B, U) = act(x (B, I) W^T + b) */
static void lref_dense(const lref *c, double *y)
{
    ref_gemm(y, c->x, c->p[0], c->p[1], 1, 1, 1, c->B, c->U, c->I, &c->gp);
}

static void lref_act(const lref *c, double *y)
{
    for (int64_t i = 0; i < c->ny; i++)
        y[i] = ref_act(c->act, c->alpha, c->x[i]);
}

/* Forward and backward (dy = R) at host input x (uploaded here) and the
 * layer's parameters as they are; dx and every parameter gradient against
 * central differences of c's reference (fd_check_ref: within 1e-5 of the
 * gradient's largest element). */
static void lt_ref_grads(lt *t, lref *c, const float *x, const float *R, const char *name)
{
    fd_ref_opts fo = FD_REF_OPTS_DEFAULT;
    fd_report rep;
    float *dx = malloc((size_t)t->nx * sizeof(float));
    double *xd = malloc((size_t)t->nx * sizeof(double));
    double *y = malloc((size_t)t->ny * sizeof(double));
    char what[96];

    ck_assert(dx && xd && y && t->sl->n_params <= 2);
    fd_to_double(xd, x, t->nx);
    c->x = xd;
    c->y = y;
    c->R = R;
    c->ny = t->ny;
    c->p[0] = c->p[1] = NULL;
    for (int p = 0; p < t->sl->n_params; p++) {
        int64_t np = mltk_tensor_numel(&t->sl->params[p]);
        float *h = malloc((size_t)np * sizeof(float));
        c->p[p] = malloc((size_t)np * sizeof(double));
        ck_assert(h && c->p[p]);
        down(h, t->sl->params[p].data, np);
        fd_to_double(c->p[p], h, np);
        free(h);
    }
    up(t->x, x, t->nx);
    up(t->dy, R, t->ny);
    lt_run(t, t->x, t->y, t->dx, t->dy, 0);
    lt_run(t, t->x, t->y, t->dx, t->dy, 1);
    down(dx, t->dx, t->nx);
    snprintf(what, sizeof(what), "%s dx (double reference)", name);
    if (fd_check_ref(what, lref_eval, c, xd, t->nx, dx, &fo, &rep))
        ck_abort_msg("%s", rep.msg);
    for (int p = 0; p < t->sl->n_params; p++) {
        int64_t np = mltk_tensor_numel(&t->sl->params[p]);
        float *g = malloc((size_t)np * sizeof(float));
        ck_assert_ptr_nonnull(g);
        down(g, t->sl->grads[p].data, np);
        snprintf(what, sizeof(what), "%s dparam%d (double reference)", name, p);
        if (fd_check_ref(what, lref_eval, c, c->p[p], np, g, &fo, &rep))
            ck_abort_msg("%s", rep.msg);
        free(g);
    }
    for (int p = 0; p < 2; p++) {
        free(c->p[p]);
        c->p[p] = NULL;
    }
    free(dx);
    free(xd);
    free(y);
}

/* ---- dense ---------------------------------------------------------------- */

static const char *const act_names[] = { "none", "relu", "leaky_relu", "sigmoid", "tanh" };

static double act_ref(int act, double z, double slope)
{
    switch (act) {
    case 1: return z > 0 ? z : 0;
    case 2: return z > 0 ? z : slope * z;
    case 3: return 1.0 / (1.0 + exp(-z));
    case 4: return tanh(z);
    default: return z;
    }
}

/* z (B, U) = x (B, I) W^T + b in double */
static void ref_dense(double *z, const float *x, const float *w, const float *b,
                      int64_t B, int64_t I, int64_t U)
{
    for (int64_t r = 0; r < B; r++)
        for (int64_t u = 0; u < U; u++) {
            double s = b ? b[u] : 0.0;
            for (int64_t i = 0; i < I; i++)
                s += (double)x[r * I + i] * w[u * I + i];
            z[r * U + u] = s;
        }
}

/* One full dense case: forward against the reference, then every gradient
 * against finite differences, then backward without an input gradient. */
static void dense_case(int act, int bias, const mltk_shape *in, int64_t units,
                       int64_t max_batch, int64_t batch, const char *slope_text)
{
    char units_s[32];
    const char *keys[4] = { "units", "bias", "activation", "negative_slope" };
    const char *vals[4] = { units_s, bias ? "true" : "false", act_names[act],
                            slope_text ? slope_text : "0.01" };
    double slope = slope_text ? atof(slope_text) : 0.01;
    int piecewise = act == 1 || act == 2;
    int64_t I = mltk_shape_numel(in), U = units;
    lt t;

    snprintf(units_s, sizeof(units_s), "%lld", (long long)units);
    lt_open(&t, "dense", slope_text ? 4 : 3, keys, vals, in, max_batch, batch);

    /* shapes and parameter declarations */
    ck_assert_int_eq(t.sl->out.ndim, 1);
    ck_assert_int_eq(t.sl->out.dim[0], U);
    ck_assert_int_eq(t.sl->n_params, bias ? 2 : 1);
    ck_assert_int_eq(t.sl->params[0].shape.ndim, 2);
    ck_assert_int_eq(t.sl->params[0].shape.dim[0], U);
    ck_assert_int_eq(t.sl->params[0].shape.dim[1], I);
    if (bias) {
        ck_assert_int_eq(t.sl->params[1].shape.ndim, 1);
        ck_assert_int_eq(t.sl->params[1].shape.dim[0], U);
    }

    float *x = malloc((size_t)t.nx * sizeof(float));
    float *w = malloc((size_t)(U * I) * sizeof(float));
    float *b = malloc((size_t)U * sizeof(float));
    float *y = malloc((size_t)t.ny * sizeof(float));
    float *R = malloc((size_t)t.ny * sizeof(float));
    float *dx = malloc((size_t)t.nx * sizeof(float));
    float *dw = malloc((size_t)(U * I) * sizeof(float));
    float *db = malloc((size_t)U * sizeof(float));
    float *dw2 = malloc((size_t)(U * I) * sizeof(float));
    float *db2 = malloc((size_t)U * sizeof(float));
    double *z = malloc((size_t)t.ny * sizeof(double));

    /* the initialisation: U(-1/sqrt(I), 1/sqrt(I)), not constant */
    down(w, t.sl->params[0].data, U * I);
    {
        double bound = 1.0 / sqrt((double)I), lo = 1e9, hi = -1e9;
        for (int64_t i = 0; i < U * I; i++) {
            ck_assert_msg(fabs(w[i]) <= bound * (1 + 1e-6), "weight %g outside +-%g",
                          (double)w[i], bound);
            lo = w[i] < lo ? w[i] : lo;
            hi = w[i] > hi ? w[i] : hi;
        }
        ck_assert_msg(hi - lo > 0.2 * bound, "weights barely vary: [%g, %g]", lo, hi);
        if (bias) {
            down(b, t.sl->params[1].data, U);
            for (int64_t i = 0; i < U; i++)
                ck_assert(fabs(b[i]) <= bound * (1 + 1e-6));
        }
    }

    /* inputs: for piecewise-linear activations, keep every pre-activation
     * at least 0.02 from the kink (perturbations move it by <= eps * 1) */
    for (int attempt = 0;; attempt++) {
        ck_assert_msg(attempt < 1000, "no input keeps the pre-activations off the kink");
        tu_rng_seed(1000 + (uint64_t)attempt);
        for (int64_t i = 0; i < t.nx; i++)
            x[i] = (float)tu_urand();
        ref_dense(z, x, w, bias ? b : NULL, batch, I, U);
        int ok = 1;
        for (int64_t i = 0; piecewise && i < t.ny; i++)
            if (fabs(z[i]) < 0.02)
                ok = 0;
        if (ok)
            break;
    }
    for (int64_t i = 0; i < t.ny; i++)
        R[i] = (float)tu_urand();
    up(t.x, x, t.nx);
    up(t.dy, R, t.ny);

    /* forward against the double reference */
    lt_run(&t, t.x, t.y, t.dx, t.dy, 0);
    down(y, t.y, t.ny);
    for (int64_t i = 0; i < t.ny; i++) {
        double want = act_ref(act, z[i], slope);
        ck_assert_msg(close_enough(y[i], want, 1e-5, 1e-6), "y[%lld] = %.7g, want %.7g",
                      (long long)i, (double)y[i], want);
    }

    /* backward, then finite differences of every input and parameter */
    lt_run(&t, t.x, t.y, t.dx, t.dy, 1);
    down(dx, t.dx, t.nx);
    down(dw, t.sl->grads[0].data, U * I);
    if (bias)
        down(db, t.sl->grads[1].data, U);
    check_fd(&t, "dx", x, t.x, t.nx, dx, R, 1e-2, 1e-3);
    check_fd(&t, "dweight", w, t.sl->params[0].data, U * I, dw, R, 1e-2, 1e-3);
    if (bias)
        check_fd(&t, "dbias", b, t.sl->params[1].data, U, db, R, 1e-2, 1e-3);
    {
        lref c = { .fwd = lref_dense, .B = batch, .I = I, .U = U,
                   .gp = { .ta = 0, .tb = 1, .alpha = 1.0f, .beta = 0.0f,
                           .act = (mltk_act)act, .act_alpha = (float)slope } };
        lt_ref_grads(&t, &c, x, R, "dense");
    }

    /* no input gradient wanted: parameter gradients are unchanged */
    lt_run(&t, t.x, t.y, t.dx, t.dy, 0);
    {
        mltk_tensor g0 = mltk_tensor_1d(t.sl->grads[0].data, MLTK_F32, U * I);
        ck_assert_int_eq(mltk_op_fill(&be, &g0, 123.0f), MLTK_OK);
    }
    lt_run(&t, t.x, t.y, NULL, t.dy, 1);
    down(dw2, t.sl->grads[0].data, U * I);
    for (int64_t i = 0; i < U * I; i++)
        ck_assert_msg(fabs(dw2[i] - dw[i]) <= 1e-6 * (1 + fabs(dw[i])),
                      "dweight[%lld] differs without dx: %g vs %g", (long long)i,
                      (double)dw2[i], (double)dw[i]);
    if (bias) {
        down(db2, t.sl->grads[1].data, U);
        for (int64_t i = 0; i < U; i++)
            ck_assert(fabs(db2[i] - db[i]) <= 1e-6 * (1 + fabs(db[i])));
    }

    free(x); free(w); free(b); free(y); free(R); free(dx);
    free(dw); free(db); free(dw2); free(db2); free(z);
    lt_close(&t);
}

/* every activation with and without bias: in 7, units 5, batch 3 of 4 */
START_TEST(test_dense_acts)
{
    int64_t d = 7;
    mltk_shape in = mltk_shape_make(1, &d);

    dense_case(_i / 2, _i % 2, &in, 5, 4, 3, NULL);
}
END_TEST

/* multi-dimensional input, read as 24 flat features */
START_TEST(test_dense_multidim)
{
    int64_t d[3] = { 2, 3, 4 };
    mltk_shape in = mltk_shape_make(3, d);

    dense_case(4, 1, &in, 4, 2, 2, NULL);   /* tanh, bias */
    dense_case(0, 0, &in, 3, 5, 5, NULL);   /* none, no bias, full batch */
}
END_TEST

START_TEST(test_dense_leaky_slope)
{
    int64_t d = 6;
    mltk_shape in = mltk_shape_make(1, &d);

    dense_case(2, 1, &in, 3, 4, 4, "0.3");
    dense_case(2, 0, &in, 1, 1, 1, "0");    /* one unit, one sample */
}
END_TEST

START_TEST(test_dense_errors)
{
    const mltk_desc *d = NULL;
    mltk_params_t *p = NULL;
    char *err = NULL;
    const char *keys[] = { "units", "activation" };
    const char *bad_units[] = { "0" };
    const char *bad_act[] = { "4", "softmax" };
    const struct mltk_layer_i *iface = NULL;
    mltk_single_layer *sl = NULL;
    void *self = NULL;
    mltk_shape in[2];
    int64_t dims = 3;
    int rc;

    ck_assert_int_eq(mltk_registry_find(reg, "dense", MLTK_KIND_LAYER, &d, &err), MLTK_OK);
    /* units is required and at least 1; activation is one of the choices */
    rc = mltk_params_build(&p, &d, 1, 0, NULL, NULL, NULL, NULL, 0, "layer 'fc' (dense)", &err);
    ck_assert_int_ne(rc, MLTK_OK);
    ck_assert_msg(err && strstr(err, "units"), "message: %s", err ? err : "(none)");
    free(err);
    err = NULL;
    rc = mltk_params_build(&p, &d, 1, 1, keys, bad_units, NULL, NULL, 0, "layer 'fc' (dense)", &err);
    ck_assert_int_ne(rc, MLTK_OK);
    ck_assert_msg(err && strstr(err, "units"), "message: %s", err ? err : "(none)");
    free(err);
    err = NULL;
    rc = mltk_params_build(&p, &d, 1, 2, keys, bad_act, NULL, NULL, 0, "layer 'fc' (dense)", &err);
    ck_assert_int_ne(rc, MLTK_OK);
    ck_assert_msg(err && strstr(err, "softmax"), "message: %s", err ? err : "(none)");
    free(err);
    err = NULL;

    /* two inputs do not fit a dense layer */
    p = build_params("dense", MLTK_KIND_LAYER, 1, keys, bad_act);
    ck_assert_int_eq(mltk_registry_load(reg, "dense", MLTK_KIND_LAYER,
                                        (const void **)&iface, &err), MLTK_OK);
    ck_assert_int_eq(iface->create(&self, p, &err), MLTK_OK);
    in[0] = in[1] = mltk_shape_make(1, &dims);
    rc = mltk_single_layer_create(&sl, iface, self, &be, 2, in, 4, 1, &err);
    ck_assert_int_eq(rc, MLTK_ERR_SHAPE);
    ck_assert_msg(err && strstr(err, "expected 1 input"), "message: %s", err ? err : "(none)");
    free(err);
    iface->destroy(self);
    mltk_params_free(p);
}
END_TEST

/* ---- relu ----------------------------------------------------------------- */

START_TEST(test_relu)
{
    int64_t d[2] = { 3, 5 };
    mltk_shape in = mltk_shape_make(2, d);
    lt t;

    lt_open(&t, "relu", 0, NULL, NULL, &in, 3, 2);
    ck_assert(mltk_shape_equal(&t.sl->out, &in));
    ck_assert_int_eq(t.sl->n_params, 0);
    ck_assert_ptr_nonnull(t.iface->inplace);
    ck_assert_int_eq(t.iface->inplace(t.self), 1);

    float *x = malloc((size_t)t.nx * sizeof(float)), *y = malloc((size_t)t.ny * sizeof(float));
    float *R = malloc((size_t)t.ny * sizeof(float)), *dx = malloc((size_t)t.nx * sizeof(float));
    float *dx2 = malloc((size_t)t.nx * sizeof(float));

    tu_rng_seed(77);
    for (int64_t i = 0; i < t.nx; i++) {
        double u = tu_urand();
        x[i] = (float)(u < 0 ? u - 0.05 : u + 0.05);   /* off the kink */
    }
    for (int64_t i = 0; i < t.ny; i++)
        R[i] = (float)tu_urand();
    up(t.x, x, t.nx);
    up(t.dy, R, t.ny);

    lt_run(&t, t.x, t.y, t.dx, t.dy, 0);
    down(y, t.y, t.ny);
    for (int64_t i = 0; i < t.ny; i++)
        ck_assert_float_eq(y[i], x[i] > 0 ? x[i] : 0.0f);
    lt_run(&t, t.x, t.y, t.dx, t.dy, 1);
    down(dx, t.dx, t.nx);
    for (int64_t i = 0; i < t.nx; i++)
        ck_assert_float_eq(dx[i], x[i] > 0 ? R[i] : 0.0f);
    check_fd(&t, "dx", x, t.x, t.nx, dx, R, 1e-2, 1e-3);
    {
        lref c = { .fwd = lref_act, .act = MLTK_ACT_RELU };
        lt_ref_grads(&t, &c, x, R, "relu");
    }

    /* in place: the output overwrites the input, dx overwrites dy */
    up(t.x, x, t.nx);
    lt_run(&t, t.x, t.x, t.dy, t.dy, 0);
    down(y, t.x, t.nx);
    for (int64_t i = 0; i < t.ny; i++)
        ck_assert_float_eq(y[i], x[i] > 0 ? x[i] : 0.0f);
    lt_run(&t, t.x, t.x, t.dy, t.dy, 1);
    down(dx2, t.dy, t.nx);
    for (int64_t i = 0; i < t.nx; i++)
        ck_assert_float_eq(dx2[i], dx[i]);

    free(x); free(y); free(R); free(dx); free(dx2);
    lt_close(&t);
}
END_TEST

/* ---- flatten -------------------------------------------------------------- */

START_TEST(test_flatten)
{
    int64_t d[3] = { 2, 3, 4 };
    mltk_shape in = mltk_shape_make(3, d);
    lt t;

    lt_open(&t, "flatten", 0, NULL, NULL, &in, 4, 3);
    ck_assert_int_eq(t.sl->out.ndim, 1);
    ck_assert_int_eq(t.sl->out.dim[0], 24);
    ck_assert_int_eq(t.sl->n_params, 0);
    ck_assert_int_eq(t.iface->inplace(t.self), 1);

    float *x = malloc((size_t)t.nx * sizeof(float)), *y = malloc((size_t)t.ny * sizeof(float));
    float *R = malloc((size_t)t.ny * sizeof(float)), *dx = malloc((size_t)t.nx * sizeof(float));

    tu_rng_seed(5);
    for (int64_t i = 0; i < t.nx; i++)
        x[i] = (float)tu_urand();
    for (int64_t i = 0; i < t.ny; i++)
        R[i] = (float)tu_urand();
    up(t.x, x, t.nx);
    up(t.dy, R, t.ny);
    lt_run(&t, t.x, t.y, t.dx, t.dy, 0);
    down(y, t.y, t.ny);
    ck_assert_int_eq(memcmp(x, y, (size_t)t.nx * sizeof(float)), 0);
    lt_run(&t, t.x, t.y, t.dx, t.dy, 1);
    down(dx, t.dx, t.nx);
    ck_assert_int_eq(memcmp(dx, R, (size_t)t.nx * sizeof(float)), 0);
    check_fd(&t, "dx", x, t.x, t.nx, dx, R, 1e-2, 1e-3);
    {
        lref c = { .fwd = lref_act, .act = MLTK_ACT_NONE };   /* the identity */
        lt_ref_grads(&t, &c, x, R, "flatten");
    }

    /* in place: nothing to do, nothing changes */
    lt_run(&t, t.x, t.x, t.dy, t.dy, 0);
    lt_run(&t, t.x, t.x, t.dy, t.dy, 1);
    down(y, t.x, t.nx);
    ck_assert_int_eq(memcmp(x, y, (size_t)t.nx * sizeof(float)), 0);
    /* no input gradient wanted */
    lt_run(&t, t.x, t.y, NULL, t.dy, 1);

    free(x); free(y); free(R); free(dx);
    lt_close(&t);
}
END_TEST

/* ---- add, concat and embedding against double references ---------------- */

/* check_graph.c compares these layers' outputs with exact references and
 * their gradients with float finite differences; here their gradients are
 * held to central differences of a double reference as well
 * (fd_check_ref), with a two-input run for add and concat. */
typedef struct glref {
    int          kind;        /* 0 add, 1 concat, 2 embedding */
    double      *x[2], *tab;  /* inputs (embedding: x[0] the ids), table */
    double      *y;
    const float *R;
    int64_t      B, r[2], c[2], axis;   /* add, concat: samples (r[j], c[j]) */
    int64_t      T, V, D;     /* embedding: ids per sample, vocab, dim */
    int64_t      ny;
} glref;

static void glref_forward(const glref *g, double *y)
{
    if (g->kind == 2) {
        for (int64_t i = 0; i < g->B * g->T; i++)
            for (int64_t d = 0; d < g->D; d++)
                y[i * g->D + d] = g->tab[(int64_t)g->x[0][i] * g->D + d];
        return;
    }
    int join = g->kind == 1;
    int64_t R = join && g->axis == 0 ? g->r[0] + g->r[1] : g->r[0];
    int64_t C = join && g->axis == 1 ? g->c[0] + g->c[1] : g->c[0];
    for (int64_t b = 0; b < g->B; b++)
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) {
                double v;
                if (g->kind == 0) {
                    int64_t e = (b * R + i) * C + j;
                    v = g->x[0][e] + g->x[1][e];
                } else {
                    int k = g->axis == 0 ? i >= g->r[0] : j >= g->c[0];
                    int64_t ii = g->axis == 0 && k ? i - g->r[0] : i;
                    int64_t jj = g->axis == 1 && k ? j - g->c[0] : j;
                    v = g->x[k][(b * g->r[k] + ii) * g->c[k] + jj];
                }
                y[(b * R + i) * C + j] = v;
            }
}

static double glref_eval(void *ctx)
{
    glref *g = ctx;

    glref_forward(g, g->y);
    return fd_dot_d(g->R, g->y, g->ny);
}

/* One layer of n_in inputs (per-sample shapes in[]) at batch B with host
 * inputs x[] (and for embedding its table as initialised): y against the
 * reference bit for bit, then the gradients of every input (embedding:
 * of the table; ids have none) against the reference's differences. */
static void graph_case(const char *name, int n, const char *const *keys,
                       const char *const *vals, int n_in, const mltk_shape *in, int64_t B,
                       float *const *x, glref *g)
{
    const struct mltk_layer_i *iface = NULL;
    mltk_params_t *params = build_params(name, MLTK_KIND_LAYER, n, keys, vals);
    mltk_single_layer *sl = NULL;
    void *self = NULL;
    char *err = NULL;
    fd_ref_opts fo = FD_REF_OPTS_DEFAULT;
    fd_report rep;
    mltk_tensor xt[2], dxt[2];
    float *xd[2] = { NULL, NULL }, *dxd[2] = { NULL, NULL }, *h = NULL;
    int64_t nx[2] = { 0, 0 };
    char what[96];

    ck_assert_int_eq(mltk_registry_load(reg, name, MLTK_KIND_LAYER, (const void **)&iface,
                                        &err), MLTK_OK);
    ck_assert_int_eq(iface->create(&self, params, &err), MLTK_OK);
    ck_assert_msg(mltk_single_layer_create(&sl, iface, self, &be, n_in, in, B, 42, &err)
                  == MLTK_OK, "setup %s: %s", name, err ? err : "?");
    int64_t ny = B * mltk_shape_numel(&sl->out);
    float *yd = dev_alloc(ny), *dyd = dev_alloc(ny), *y = malloc((size_t)ny * sizeof(float));
    float *R = malloc((size_t)ny * sizeof(float));
    double *ref = malloc((size_t)ny * sizeof(double));
    ck_assert(y && R && ref);
    tu_rng_seed(4242);
    for (int64_t i = 0; i < ny; i++)
        R[i] = (float)tu_urand();
    for (int j = 0; j < n_in; j++) {
        nx[j] = B * mltk_shape_numel(&in[j]);
        xd[j] = dev_alloc(nx[j]);
        dxd[j] = dev_alloc(nx[j]);
        up(xd[j], x[j], nx[j]);
        g->x[j] = malloc((size_t)nx[j] * sizeof(double));
        ck_assert_ptr_nonnull(g->x[j]);
        fd_to_double(g->x[j], x[j], nx[j]);
        xt[j] = tview(xd[j], batch_shape(B, &in[j]), MLTK_F32);
        dxt[j] = tview(g->kind == 2 ? NULL : dxd[j], batch_shape(B, &in[j]), MLTK_F32);
    }
    if (g->kind == 2) {
        int64_t nt = mltk_tensor_numel(&sl->params[0]);
        h = malloc((size_t)nt * sizeof(float));
        g->tab = malloc((size_t)nt * sizeof(double));
        ck_assert(h && g->tab);
        down(h, sl->params[0].data, nt);
        fd_to_double(g->tab, h, nt);
    }
    g->y = ref;
    g->R = R;
    g->ny = ny;
    up(dyd, R, ny);
    mltk_tensor yt = tview(yd, batch_shape(B, &sl->out), MLTK_F32);
    mltk_tensor dyt = tview(dyd, batch_shape(B, &sl->out), MLTK_F32);
    mltk_layer_run r = {
        .be = &be, .mode = MLTK_TRAIN, .batch = B, .n_in = n_in, .x = xt, .dx = dxt,
        .y = &yt, .dy = &dyt, .params = sl->params, .grads = sl->grads,
        .buffers = sl->buffers, .seed = 7, .step = 0,
    };
    ck_assert_int_eq(iface->forward(self, &r), MLTK_OK);
    down(y, yd, ny);
    glref_forward(g, ref);
    for (int64_t i = 0; i < ny; i++)   /* sums of two floats round once */
        EXPECT((double)y[i] == (double)(float)ref[i], "%s y[%lld] = %.9g, double reference "
               "%.9g", name, (long long)i, (double)y[i], ref[i]);
    ck_assert_int_eq(iface->backward(self, &r), MLTK_OK);
    if (g->kind == 2) {
        int64_t nt = mltk_tensor_numel(&sl->params[0]);
        down(h, sl->grads[0].data, nt);
        snprintf(what, sizeof(what), "%s dtable (double reference)", name);
        if (fd_check_ref(what, glref_eval, g, g->tab, nt, h, &fo, &rep))
            ck_abort_msg("%s", rep.msg);
    } else {
        for (int j = 0; j < n_in; j++) {
            float *dx = malloc((size_t)nx[j] * sizeof(float));
            ck_assert_ptr_nonnull(dx);
            down(dx, dxd[j], nx[j]);
            snprintf(what, sizeof(what), "%s dx%d (double reference)", name, j);
            if (fd_check_ref(what, glref_eval, g, g->x[j], nx[j], dx, &fo, &rep))
                ck_abort_msg("%s", rep.msg);
            free(dx);
        }
    }
    for (int j = 0; j < n_in; j++) {
        mltk_be_free(&be, xd[j]);
        mltk_be_free(&be, dxd[j]);
        free(g->x[j]);
    }
    mltk_be_free(&be, yd);
    mltk_be_free(&be, dyd);
    free(y); free(R); free(ref); free(h); free(g->tab);
    mltk_single_layer_destroy(sl, &be);
    iface->destroy(self);
    mltk_params_free(params);
}

START_TEST(test_graph_layers_ref)
{
    enum { B = 3 };
    float x0[B * 4 * 3], x1[B * 4 * 3], ids[B * 6];

    tu_rng_seed(4100);
    for (int i = 0; i < B * 12; i++) {
        x0[i] = (float)tu_urand();
        x1[i] = (float)tu_urand();
    }
    {   /* add: two (4, 3) inputs */
        int64_t d[2] = { 4, 3 };
        mltk_shape in[2] = { mltk_shape_make(2, d), mltk_shape_make(2, d) };
        float *xs[2] = { x0, x1 };
        glref g = { .kind = 0, .B = B, .r = { 4, 4 }, .c = { 3, 3 }, .axis = 0 };
        graph_case("add", 0, NULL, NULL, 2, in, B, xs, &g);
    }
    {   /* concat along the sample's first axis: (1, 3) and (3, 3) */
        const char *keys[] = { "axis" }, *vals[] = { "0" };
        int64_t d0[2] = { 1, 3 }, d1[2] = { 3, 3 };
        mltk_shape in[2] = { mltk_shape_make(2, d0), mltk_shape_make(2, d1) };
        float *xs[2] = { x0, x1 };
        glref g = { .kind = 1, .B = B, .r = { 1, 3 }, .c = { 3, 3 }, .axis = 0 };
        graph_case("concat", 1, keys, vals, 2, in, B, xs, &g);
    }
    {   /* ... and along its last: (4, 1) and (4, 2) */
        const char *keys[] = { "axis" }, *vals[] = { "-1" };
        int64_t d0[2] = { 4, 1 }, d1[2] = { 4, 2 };
        mltk_shape in[2] = { mltk_shape_make(2, d0), mltk_shape_make(2, d1) };
        float *xs[2] = { x0, x1 };
        glref g = { .kind = 1, .B = B, .r = { 4, 4 }, .c = { 1, 2 }, .axis = 1 };
        graph_case("concat", 1, keys, vals, 2, in, B, xs, &g);
    }
    {   /* embedding: vocab 7, dim 5, 6 ids per sample with repeats */
        const char *keys[] = { "vocab", "dim" }, *vals[] = { "7", "5" };
        int64_t t = 6;
        mltk_shape in = mltk_shape_make(1, &t);
        float *xs[1] = { ids };
        for (int i = 0; i < B * 6; i++)
            ids[i] = (float)((i * 5 + 3) % 7 == 6 ? 3 : (i * 5 + 3) % 7);
        glref g = { .kind = 2, .B = B, .T = 6, .V = 7, .D = 5 };
        graph_case("embedding", 2, keys, vals, 1, &in, B, xs, &g);
    }
}
END_TEST

/* ---- cross_entropy -------------------------------------------------------- */

typedef struct xt {
    const struct mltk_loss_i *iface;
    void          *self;
    mltk_params_t *params;
} xt;

static void xent_open(xt *l)
{
    char *err = NULL;
    int rc;

    memset(l, 0, sizeof(*l));
    l->params = build_params("cross_entropy", MLTK_KIND_LOSS, 0, NULL, NULL);
    rc = mltk_registry_load(reg, "cross_entropy", MLTK_KIND_LOSS,
                            (const void **)&l->iface, &err);
    ck_assert_msg(rc == MLTK_OK, "load: %s", err ? err : "?");
    rc = l->iface->create(&l->self, l->params, &err);
    ck_assert_msg(rc == MLTK_OK, "create: %s", err ? err : "?");
}

static void xent_close(xt *l)
{
    l->iface->destroy(l->self);
    mltk_params_free(l->params);
}

/* mean over rows of logsumexp(z) - z[label], in double */
static double xent_ref(const float *z, const int32_t *lab, int64_t N, int64_t C)
{
    double total = 0.0;

    for (int64_t r = 0; r < N; r++) {
        double m = -INFINITY, s = 0.0;
        for (int64_t c = 0; c < C; c++)
            m = z[r * C + c] > m ? z[r * C + c] : m;
        for (int64_t c = 0; c < C; c++)
            s += exp(z[r * C + c] - m);
        total += m + log(s) - z[r * C + lab[r]];
    }
    return total / (double)N;
}

static float xent_loss(xt *l, float *dz, const float *z_host, const int32_t *lab_dev,
                       float *loss_dev, float *grad_dev, int64_t N, int64_t C)
{
    int64_t pd[2] = { N, C }, td = N;
    mltk_tensor pred = tview(dz, mltk_shape_make(2, pd), MLTK_F32);
    mltk_tensor tgt = tview((void *)lab_dev, mltk_shape_make(1, &td), MLTK_I32);
    mltk_tensor dpred = tview(grad_dev, mltk_shape_make(2, pd), MLTK_F32);
    mltk_tensor loss_t = mltk_tensor_1d(loss_dev, MLTK_F32, 1);
    float loss;

    up(dz, z_host, N * C);
    ck_assert_int_eq(l->iface->forward(l->self, &be, &pred, &tgt, &loss_t, &dpred, 1.0f),
                     MLTK_OK);
    down(&loss, loss_dev, 1);
    return loss;
}

/* the float loss of logits z (host) as fdcheck.h differentiates it */
typedef struct xent_fd {
    xt            *l;
    float         *zd, *ld, *gd;
    const float   *z;
    const int32_t *labd;
    int64_t        N, C;
} xent_fd;

static double xent_fd_eval(void *ctx)
{
    xent_fd *c = ctx;

    return xent_loss(c->l, c->zd, c->z, c->labd, c->ld, c->gd, c->N, c->C);
}

START_TEST(test_xent)
{
    enum { N = 4, C = 6 };
    int64_t cdim = C;
    mltk_shape ps = mltk_shape_make(1, &cdim), ts = { 0, { 0 } };
    float z[N * C], g[N * C], gref;
    int32_t lab[N] = { 0, 5, 2, 2 };
    char *err = NULL;
    xt l;

    xent_open(&l);
    ck_assert_int_eq(l.iface->setup(l.self, &ps, MLTK_TARGET_CLASS, &ts, C, &err), MLTK_OK);
    float *zd = dev_alloc(N * C), *gd = dev_alloc(N * C), *ld = dev_alloc(1);
    int32_t *labd = (int32_t *)dev_alloc(N);
    ck_assert_int_eq(mltk_be_upload(&be, labd, lab, sizeof(lab)), MLTK_OK);

    tu_rng_seed(31);
    for (int i = 0; i < N * C; i++)
        z[i] = (float)(3.0 * tu_urand());
    z[1 * C + 3] = 40.0f;   /* a large logit: the loss must stay finite */

    float loss = xent_loss(&l, zd, z, labd, ld, gd, N, C);
    double want = xent_ref(z, lab, N, C);
    ck_assert_msg(isfinite(loss) && close_enough(loss, want, 1e-5, 1e-6),
                  "loss %.7g, want %.7g", (double)loss, want);
    down(g, gd, N * C);

    /* the gradient against the closed form (softmax - onehot) / N */
    for (int r = 0; r < N; r++) {
        double m = -INFINITY, s = 0.0;
        for (int c = 0; c < C; c++)
            m = z[r * C + c] > m ? z[r * C + c] : m;
        for (int c = 0; c < C; c++)
            s += exp(z[r * C + c] - m);
        for (int c = 0; c < C; c++) {
            gref = (float)((exp(z[r * C + c] - m) / s - (c == lab[r])) / N);
            ck_assert_msg(close_enough(g[r * C + c], gref, 1e-4, 1e-7),
                          "dz[%d,%d] = %g, want %g", r, c, (double)g[r * C + c], (double)gref);
        }
    }

    /* ... and against central differences of the float loss */
    {
        xent_fd c = { &l, zd, ld, gd, z, labd, N, C };
        fd_opts o = tu_fd_bounds(1e-2, 1e-4);
        fd_report r;
        if (tu_fd_check("dz", xent_fd_eval, &c, z, N * C, g, &o, &r))
            ck_abort_msg("%s", r.msg);
    }

    /* loss only: no gradient buffer */
    {
        int64_t pd[2] = { N, C }, td = N;
        mltk_tensor pred = tview(zd, mltk_shape_make(2, pd), MLTK_F32);
        mltk_tensor tgt = tview(labd, mltk_shape_make(1, &td), MLTK_I32);
        mltk_tensor none = tview(NULL, mltk_shape_make(2, pd), MLTK_F32);
        mltk_tensor loss_t = mltk_tensor_1d(ld, MLTK_F32, 1);
        float loss2;
        up(zd, z, N * C);
        ck_assert_int_eq(l.iface->forward(l.self, &be, &pred, &tgt, &loss_t, &none, 1.0f),
                         MLTK_OK);
        down(&loss2, ld, 1);
        ck_assert_float_eq_tol(loss2, loss, 1e-6f);
        /* A label outside [0, C) never reaches the loss: the core refuses
         * it when the data is loaded (check_idx.c, test_label_range_load). */
    }

    mltk_be_free(&be, zd);
    mltk_be_free(&be, gd);
    mltk_be_free(&be, ld);
    mltk_be_free(&be, labd);
    xent_close(&l);
}
END_TEST

/* ---- cross_entropy against probabilities (soft targets) ---------------------- */

/* the cross_entropy loss with the keys of a loss_ref.h case, set up for
 * LREF_XC classes */
static void xent_open_soft(xt *l, float smoothing, int weighted)
{
    char ls[32], w[256];
    const char *keys[2] = { "label_smoothing", "weights" }, *vals[2] = { ls, w };
    int64_t cdim = LREF_XC;
    mltk_shape ps = mltk_shape_make(1, &cdim), ts = { 0, { 0 } };
    char *err = NULL;
    int n = 0;

    snprintf(ls, sizeof ls, "%.9g", (double)smoothing);
    for (int c = 0; c < LREF_XC; c++)
        n += snprintf(w + n, sizeof w - (size_t)n, "%s%.9g", c ? ", " : "",
                      (double)lref_xent_weights[c]);
    memset(l, 0, sizeof(*l));
    l->params = build_params("cross_entropy", MLTK_KIND_LOSS, weighted ? 2 : 1, keys, vals);
    ck_assert_int_eq(mltk_registry_load(reg, "cross_entropy", MLTK_KIND_LOSS,
                                        (const void **)&l->iface, &err), MLTK_OK);
    ck_assert_msg(l->iface->create(&l->self, l->params, &err) == MLTK_OK, "create: %s",
                  err ? err : "?");
    /* the data set's kind: class targets; batch transforms make them soft */
    ck_assert_msg(l->iface->setup(l->self, &ps, MLTK_TARGET_CLASS, &ts, LREF_XC, &err)
                  == MLTK_OK, "setup: %s", err ? err : "?");
}

/* loss (and dpred when gd) of logits zd against target tgt at grad_scale gs */
static float xent_soft_run(xt *l, float *zd, const mltk_tensor *tgt, float *ld, float *gd,
                           float gs)
{
    int64_t pd[2] = { LREF_XN, LREF_XC };
    mltk_tensor pred = tview(zd, mltk_shape_make(2, pd), MLTK_F32);
    mltk_tensor dpred = tview(gd, mltk_shape_make(2, pd), MLTK_F32);
    mltk_tensor loss_t = mltk_tensor_1d(ld, MLTK_F32, 1);
    float loss;
    int rc = l->iface->forward(l->self, &be, &pred, tgt, &loss_t, &dpred, gs);

    ck_assert_msg(rc == MLTK_OK, "forward: %d (%s)", rc, mltk_backend_error(&be));
    down(&loss, ld, 1);
    return loss;
}

typedef struct xent_soft_fd {
    xt                *l;
    float             *zd, *ld;
    const float       *z;
    const mltk_tensor *tgt;
} xent_soft_fd;

static double xent_soft_fd_eval(void *ctx)
{
    xent_soft_fd *c = ctx;

    up(c->zd, c->z, LREF_XN * LREF_XC);
    return xent_soft_run(c->l, c->zd, c->tgt, c->ld, NULL, 1.0f);
}

/* Each case of loss_ref.h's lref_soft (PyTorch's F.cross_entropy with
 * float targets, label smoothing and weights, in float64): the loss, the
 * gradient at grad_scale 1 and 2.5, and central differences of the float
 * loss.  The target is f32 (N, C), as the core hands it when a batch
 * transform made the targets soft. */
START_TEST(test_xent_soft_torch)
{
    enum { NC = LREF_XN * LREF_XC };
    const struct lref_soft *r = &lref_soft[_i];
    int64_t pd[2] = { LREF_XN, LREF_XC };
    float *zd = dev_alloc(NC), *td = dev_alloc(NC), *gd = dev_alloc(NC), *ld = dev_alloc(1);
    float g[NC], z[NC];
    xt l;

    memcpy(z, lref_xent_z, sizeof z);
    xent_open_soft(&l, r->label_smoothing, r->weighted);
    up(zd, lref_xent_z, NC);
    up(td, lref_soft_t, NC);
    mltk_tensor tgt = tview(td, mltk_shape_make(2, pd), MLTK_F32);

    float loss = xent_soft_run(&l, zd, &tgt, ld, gd, 1.0f);
    ck_assert_msg(close_enough(loss, r->loss, 1e-6, 1e-7), "case %d: loss %.9g, torch %.9g",
                  _i, (double)loss, r->loss);
    down(g, gd, NC);
    for (int e = 0; e < NC; e++)
        ck_assert_msg(close_enough(g[e], r->grad[e], 1e-5, 1e-9), "case %d: dz[%d] = %.9g, "
                      "torch %.9g", _i, e, (double)g[e], r->grad[e]);

    /* grad_scale scales the gradient, not the loss */
    float loss2 = xent_soft_run(&l, zd, &tgt, ld, gd, 2.5f);
    ck_assert_msg(loss2 == loss, "case %d: loss %.9g at grad_scale 2.5, %.9g at 1", _i,
                  (double)loss2, (double)loss);
    down(g, gd, NC);
    for (int e = 0; e < NC; e++)
        ck_assert_msg(close_enough(g[e], 2.5 * r->grad[e], 1e-5, 1e-9), "case %d: dz[%d] = "
                      "%.9g at grad_scale 2.5, torch x 2.5 = %.9g", _i, e, (double)g[e],
                      2.5 * r->grad[e]);

    /* central differences of the float loss, at grad_scale 1 */
    xent_soft_run(&l, zd, &tgt, ld, gd, 1.0f);
    down(g, gd, NC);
    {
        xent_soft_fd c = { &l, zd, ld, z, &tgt };
        fd_opts o = tu_fd_bounds(1e-2, 1e-4);
        fd_report rep;
        if (tu_fd_check("dz", xent_soft_fd_eval, &c, z, NC, g, &o, &rep))
            ck_abort_msg("case %d: %s", _i, rep.msg);
    }

    mltk_be_free(&be, zd);
    mltk_be_free(&be, td);
    mltk_be_free(&be, gd);
    mltk_be_free(&be, ld);
    xent_close(&l);
}
END_TEST

/* One-hot probabilities are the class indices: the same loss and gradient
 * (with label smoothing; without weights, whose denominators differ).  A
 * float target that is neither (N) indices nor pred's shape is refused by
 * the op with a message naming its shape. */
START_TEST(test_xent_soft_onehot)
{
    enum { NC = LREF_XN * LREF_XC };
    int64_t pd[2] = { LREF_XN, LREF_XC }, n = LREF_XN, bad[2] = { LREF_XN, LREF_XC + 1 };
    float *zd = dev_alloc(NC), *td = dev_alloc(NC + LREF_XN), *gd = dev_alloc(NC);
    float *ld = dev_alloc(1), oh[NC], g1[NC], g2[NC];
    int32_t lab[LREF_XN], *labd = (int32_t *)dev_alloc(LREF_XN);
    xt l;

    for (int i = 0; i < LREF_XN; i++) {
        lab[i] = lref_xent_labels[i];
        for (int c = 0; c < LREF_XC; c++)
            oh[i * LREF_XC + c] = c == lab[i] ? 1.0f : 0.0f;
    }
    ck_assert_int_eq(mltk_be_upload(&be, labd, lab, sizeof lab), MLTK_OK);
    up(zd, lref_xent_z, NC);
    up(td, oh, NC);
    xent_open_soft(&l, 0.1f, 0);
    mltk_tensor hard = tview(labd, mltk_shape_make(1, &n), MLTK_I32);
    mltk_tensor soft = tview(td, mltk_shape_make(2, pd), MLTK_F32);
    float lh = xent_soft_run(&l, zd, &hard, ld, gd, 1.0f);
    down(g1, gd, NC);
    float ls = xent_soft_run(&l, zd, &soft, ld, gd, 1.0f);
    down(g2, gd, NC);
    ck_assert_msg(close_enough(ls, lh, 1e-6, 1e-7), "one-hot %.9g, indices %.9g",
                  (double)ls, (double)lh);
    ck_assert_msg(close_enough(ls, lref_xent[1].loss, 1e-6, 1e-7), "one-hot %.9g, torch "
                  "%.9g", (double)ls, lref_xent[1].loss);
    for (int e = 0; e < NC; e++)
        ck_assert_msg(close_enough(g2[e], g1[e], 1e-5, 1e-9), "dz[%d]: one-hot %.9g, "
                      "indices %.9g", e, (double)g2[e], (double)g1[e]);

    /* refused: f32 (N), f32 (N, C + 1) */
    mltk_tensor loss_t = mltk_tensor_1d(ld, MLTK_F32, 1);
    mltk_tensor pred = tview(zd, mltk_shape_make(2, pd), MLTK_F32);
    mltk_tensor dpred = tview(gd, mltk_shape_make(2, pd), MLTK_F32);
    mltk_tensor t1 = tview(td, mltk_shape_make(1, &n), MLTK_F32);
    ck_assert_int_eq(l.iface->forward(l.self, &be, &pred, &t1, &loss_t, &dpred, 1.0f),
                     MLTK_ERR_INVALID);
    TU_ASSERT_CONTAINS(mltk_backend_error(&be), "softmax_xent: labels is f32; it must be "
                       "i32 (N) class indices, or f32 probabilities of logits' shape (5, 7), "
                       "but it is (5)");
    mltk_tensor t2 = tview(td, mltk_shape_make(2, bad), MLTK_F32);
    ck_assert_int_eq(l.iface->forward(l.self, &be, &pred, &t2, &loss_t, &dpred, 1.0f),
                     MLTK_ERR_SHAPE);
    TU_ASSERT_CONTAINS(mltk_backend_error(&be), "softmax_xent: labels is (5, 8) but logits "
                       "is (5, 7)");

    mltk_be_free(&be, zd);
    mltk_be_free(&be, td);
    mltk_be_free(&be, gd);
    mltk_be_free(&be, ld);
    mltk_be_free(&be, labd);
    xent_close(&l);
}
END_TEST

START_TEST(test_xent_setup_errors)
{
    int64_t d2[2] = { 2, 5 }, c10 = 10, c7 = 7;
    mltk_shape two = mltk_shape_make(2, d2), p10 = mltk_shape_make(1, &c10);
    mltk_shape p7 = mltk_shape_make(1, &c7), ts = { 0, { 0 } };
    char *err = NULL;
    xt l;

    xent_open(&l);
    ck_assert_int_eq(l.iface->setup(l.self, &two, MLTK_TARGET_CLASS, &ts, 10, &err),
                     MLTK_ERR_SHAPE);
    ck_assert_msg(err && strstr(err, "1-d") && strstr(err, "(2, 5)"), "message: %s", err);
    free(err);
    err = NULL;
    ck_assert_int_eq(l.iface->setup(l.self, &p7, MLTK_TARGET_CLASS, &ts, 10, &err),
                     MLTK_ERR_SHAPE);
    ck_assert_msg(err && strstr(err, "7 classes") && strstr(err, "10"), "message: %s", err);
    free(err);
    err = NULL;
    ck_assert_int_eq(l.iface->setup(l.self, &p10, MLTK_TARGET_VALUE, &p10, 0, &err),
                     MLTK_ERR_SHAPE);
    ck_assert_msg(err && strstr(err, "class"), "message: %s", err);
    free(err);
    err = NULL;
    /* n_classes unknown (0): any width is accepted */
    ck_assert_int_eq(l.iface->setup(l.self, &p7, MLTK_TARGET_CLASS, &ts, 0, &err), MLTK_OK);
    ck_assert_int_eq(l.iface->setup(l.self, &p10, MLTK_TARGET_CLASS, &ts, 10, &err), MLTK_OK);
    xent_close(&l);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("plugins");

    tcase_add_checked_fixture(tc, fixture_open, fixture_close);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_dense_acts, 0, 10);
    tcase_add_test(tc, test_dense_multidim);
    tcase_add_test(tc, test_dense_leaky_slope);
    tcase_add_test(tc, test_dense_errors);
    tcase_add_test(tc, test_relu);
    tcase_add_test(tc, test_flatten);
    tcase_add_test(tc, test_graph_layers_ref);
    tcase_add_test(tc, test_xent);
    tcase_add_test(tc, test_xent_setup_errors);
    tcase_add_loop_test(tc, test_xent_soft_torch, 0,
                        (int)(sizeof lref_soft / sizeof lref_soft[0]));
    tcase_add_test(tc, test_xent_soft_onehot);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(layers_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
