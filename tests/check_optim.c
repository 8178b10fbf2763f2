/* check_optim.c - the sgd and adam optimizer plugins, step by step.
 *
 * What this is: each optimizer is loaded from the build tree, configured
 * through its descriptor with every option, and stepped several times over
 * a flat buffer on the cpu backend with a different gradient and learning
 * rate each step.  Parameters and state slots are compared after every
 * step with torch.optim.SGD / Adam / AdamW semantics computed here
 * independently in double precision.  Invalid option combinations must
 * fail in create with a message naming the options.  The backend is cpu,
 * or the one named by $MLTK_TEST_BACKEND.
 *
 * What this is not: a test of the backend kernels in isolation (the
 * backend conformance suite does that) or of learning-rate schedules.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

/* ---- fixture: registry and cpu backend ------------------------------------ */

static mltk_registry_t *reg;
static struct mltk_backend be;

static void fixture_open(void)
{
    char *err = NULL;
    mltk_backend_opts o = { .size = sizeof(o), .threads = 2, .device = 0, .seed = 1 };
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

/* ---- helpers -------------------------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9e3779b97f4a7c15ull + 1;
}

/* uniform in [-1, 1) */
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static int close_enough(double a, double b, double rtol, double atol)
{
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= rtol * m + atol;
}

typedef struct opt {
    const struct mltk_optimizer_i *iface;
    void          *self;
    mltk_params_t *params;
} opt;

/* Build params and create; returns create's status (the message in *err). */
static int opt_open(opt *o, const char *name, int n, const char *const *keys,
                    const char *const *vals, char **err)
{
    const mltk_desc *d = NULL;
    int rc;

    memset(o, 0, sizeof(*o));
    rc = mltk_registry_find(reg, name, MLTK_KIND_OPTIMIZER, &d, err);
    ck_assert_msg(rc == MLTK_OK, "find %s: %s", name, *err ? *err : "?");
    rc = mltk_params_build(&o->params, &d, 1, n, keys, vals, NULL, NULL, 0, name, err);
    ck_assert_msg(rc == MLTK_OK, "params %s: %s", name, *err ? *err : "?");
    rc = mltk_registry_load(reg, name, MLTK_KIND_OPTIMIZER, (const void **)&o->iface, err);
    ck_assert_msg(rc == MLTK_OK, "load %s: %s", name, *err ? *err : "?");
    return o->iface->create(&o->self, o->params, err);
}

static void opt_close(opt *o)
{
    if (o->self)
        o->iface->destroy(o->self);
    mltk_params_free(o->params);
}

/* The reference update of one optimizer configuration, in double. */
typedef struct ref {
    int    adam;
    double momentum, dampening, weight_decay;   /* sgd */
    int    nesterov;
    double beta1, beta2, eps;                   /* adam */
    int    decoupled;
} ref;

/* torch.optim.SGD: one step of element values p, g with state s0 */
static void ref_sgd(const ref *c, double *p, double g, double *buf, double lr, int64_t t)
{
    double d = g + c->weight_decay * *p;

    if (c->momentum != 0.0) {
        *buf = t == 1 ? d : c->momentum * *buf + (1.0 - c->dampening) * d;
        d = c->nesterov ? d + c->momentum * *buf : *buf;
    }
    *p -= lr * d;
}

/* torch.optim.Adam (decoupled 0) and AdamW (decoupled 1) */
static void ref_adam(const ref *c, double *p, double g, double *m, double *v, double lr,
                     int64_t t)
{
    double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);

    if (c->decoupled)
        *p *= 1.0 - lr * c->weight_decay;
    else
        g += c->weight_decay * *p;
    *m = c->beta1 * *m + (1.0 - c->beta1) * g;
    *v = c->beta2 * *v + (1.0 - c->beta2) * g * g;
    *p -= (lr / bc1) * *m / (sqrt(*v) / sqrt(bc2) + c->eps);
}

/* Run `steps` steps of the plugin and the reference side by side over n
 * elements, comparing parameters and state after each step. */
static void run_steps(opt *o, const ref *c, int slots, int64_t n, int steps, double lr0)
{
    float *p = malloc((size_t)n * sizeof(float)), *g = malloc((size_t)n * sizeof(float));
    float *s = malloc((size_t)n * sizeof(float));
    double *rp = malloc((size_t)n * sizeof(double)), *r0 = calloc((size_t)n, sizeof(double));
    double *r1 = calloc((size_t)n, sizeof(double));
    void *pd = NULL, *gd = NULL, *sd[2] = { NULL, NULL }, *scr = NULL;
    mltk_tensor state[2], pt, gt, scratch;
    const int64_t seg_off[2] = { 0, n };

    memset(state, 0, sizeof(state));
    ck_assert_int_eq(o->iface->state_slots(o->self), slots);
    ck_assert_int_eq(mltk_be_alloc(&be, (size_t)n * 4, &pd), MLTK_OK);
    ck_assert_int_eq(mltk_be_alloc(&be, (size_t)n * 4, &gd), MLTK_OK);
    ck_assert_int_eq(mltk_be_alloc(&be, 2 * sizeof(float), &scr), MLTK_OK);
    for (int k = 0; k < slots; k++) {
        ck_assert_int_eq(mltk_be_alloc(&be, (size_t)n * 4, &sd[k]), MLTK_OK);
        state[k] = mltk_tensor_1d(sd[k], MLTK_F32, n);
        ck_assert_int_eq(mltk_op_fill(&be, &state[k], 0.0f), MLTK_OK);  /* zeroed, as the core does */
    }
    pt = mltk_tensor_1d(pd, MLTK_F32, n);
    gt = mltk_tensor_1d(gd, MLTK_F32, n);
    scratch = mltk_tensor_1d(scr, MLTK_F32, 2);

    rng_seed(2024);
    for (int64_t i = 0; i < n; i++) {
        p[i] = (float)urand();
        rp[i] = p[i];
    }
    ck_assert_int_eq(mltk_be_upload(&be, pd, p, (size_t)n * 4), MLTK_OK);

    for (int64_t t = 1; t <= steps; t++) {
        /* a new gradient and a decaying rate each step, as a schedule gives */
        float lr = (float)(lr0 * (1.0 - 0.1 * (double)(t - 1)));
        for (int64_t i = 0; i < n; i++)
            g[i] = (float)urand();
        ck_assert_int_eq(mltk_be_upload(&be, gd, g, (size_t)n * 4), MLTK_OK);
        {
            /* one parameter tensor: the whole buffer is one segment */
            struct mltk_opt_step st = {
                .size = sizeof(st), .p = &pt, .g = &gt, .state = state, .n = n,
                .lr = lr, .t = t, .lr_scale = NULL, .n_seg = 1, .seg_off = seg_off,
                .scratch = &scratch,
            };
            int rc = o->iface->step(o->self, &be, &st);
            ck_assert_msg(rc == MLTK_OK, "step %lld: %s", (long long)t,
                          mltk_backend_error(&be));
        }
        for (int64_t i = 0; i < n; i++) {
            if (c->adam)
                ref_adam(c, &rp[i], g[i], &r0[i], &r1[i], lr, t);
            else
                ref_sgd(c, &rp[i], g[i], &r0[i], lr, t);
        }
        ck_assert_int_eq(mltk_be_sync(&be), MLTK_OK);
        ck_assert_int_eq(mltk_be_download(&be, p, pd, (size_t)n * 4), MLTK_OK);
        for (int64_t i = 0; i < n; i++)
            ck_assert_msg(close_enough(p[i], rp[i], 1e-5, 1e-6),
                          "step %lld: p[%lld] = %.8g, want %.8g", (long long)t,
                          (long long)i, (double)p[i], rp[i]);
        for (int k = 0; k < slots; k++) {
            const double *want = k == 0 ? r0 : r1;
            ck_assert_int_eq(mltk_be_download(&be, s, sd[k], (size_t)n * 4), MLTK_OK);
            for (int64_t i = 0; i < n; i++)
                ck_assert_msg(close_enough(s[i], want[i], 1e-5, 1e-7),
                              "step %lld: state %d [%lld] = %.8g, want %.8g",
                              (long long)t, k, (long long)i, (double)s[i], want[i]);
        }
    }

    mltk_be_free(&be, pd);
    mltk_be_free(&be, gd);
    mltk_be_free(&be, scr);
    for (int k = 0; k < slots; k++)
        mltk_be_free(&be, sd[k]);
    free(p); free(g); free(s); free(rp); free(r0); free(r1);
}

/* ---- sgd ------------------------------------------------------------------ */

static const struct sgd_case {
    const char *momentum, *dampening, *nesterov, *weight_decay;
} sgd_cases[] = {
    { "0", "0", "false", "0" },           /* plain */
    { "0", "0", "false", "0.05" },        /* weight decay without momentum */
    { "0.9", "0", "false", "0" },         /* heavy ball */
    { "0.9", "0.3", "false", "0.01" },    /* dampening and decay */
    { "0.8", "0", "true", "0" },          /* nesterov */
    { "0.5", "0", "true", "0.1" },        /* nesterov with decay */
};

START_TEST(test_sgd_options)
{
    const struct sgd_case *k = &sgd_cases[_i];
    const char *keys[] = { "lr", "momentum", "dampening", "nesterov", "weight_decay" };
    const char *vals[] = { "0.5", k->momentum, k->dampening, k->nesterov, k->weight_decay };
    ref c = { 0 };
    char *err = NULL;
    opt o;

    ck_assert_msg(opt_open(&o, "sgd", 5, keys, vals, &err) == MLTK_OK, "create: %s", err);
    c.momentum = atof(k->momentum);
    c.dampening = atof(k->dampening);
    c.nesterov = strcmp(k->nesterov, "true") == 0;
    c.weight_decay = atof(k->weight_decay);
    run_steps(&o, &c, c.momentum > 0 ? 1 : 0, 1037, 6, 0.1);
    opt_close(&o);
}
END_TEST

START_TEST(test_sgd_defaults)
{
    ref c = { 0 };
    char *err = NULL;
    opt o;

    ck_assert_msg(opt_open(&o, "sgd", 0, NULL, NULL, &err) == MLTK_OK, "create: %s", err);
    ck_assert_double_eq_tol(mltk_params_float(o.params, "lr"), 0.01, 1e-12);
    ck_assert_double_eq(mltk_params_float(o.params, "momentum"), 0.0);
    ck_assert_int_eq(mltk_params_bool(o.params, "nesterov"), 0);
    run_steps(&o, &c, 0, 5, 3, 0.01);
    opt_close(&o);
}
END_TEST

START_TEST(test_sgd_errors)
{
    const char *keys[] = { "nesterov", "momentum", "dampening" };
    const char *no_mom[] = { "true", "0", "0" };
    const char *damp[] = { "true", "0.9", "0.1" };
    const char *neg[] = { "false", "-0.5" };
    const mltk_desc *d = NULL;
    mltk_params_t *p = NULL;
    char *err = NULL;
    opt o;

    /* nesterov without momentum: refused in create, like PyTorch */
    ck_assert_int_eq(opt_open(&o, "sgd", 1, keys, no_mom, &err), MLTK_ERR_CONFIG);
    ck_assert_msg(err && strstr(err, "nesterov") && strstr(err, "momentum"), "message: %s", err);
    o.self = NULL;
    opt_close(&o);
    free(err);
    err = NULL;
    /* ... and with dampening */
    ck_assert_int_eq(opt_open(&o, "sgd", 3, keys, damp, &err), MLTK_ERR_CONFIG);
    ck_assert_msg(err && strstr(err, "dampening"), "message: %s", err);
    o.self = NULL;
    opt_close(&o);
    free(err);
    err = NULL;
    /* a negative momentum is out of the descriptor's range */
    ck_assert_int_eq(mltk_registry_find(reg, "sgd", MLTK_KIND_OPTIMIZER, &d, &err), MLTK_OK);
    ck_assert_int_ne(mltk_params_build(&p, &d, 1, 2, keys, neg, NULL, NULL, 0, "sgd", &err),
                     MLTK_OK);
    ck_assert_msg(err && strstr(err, "momentum"), "message: %s", err);
    free(err);
}
END_TEST

/* ---- adam ----------------------------------------------------------------- */

static const struct adam_case {
    const char *beta1, *beta2, *eps, *weight_decay, *decoupled;
} adam_cases[] = {
    { "0.9", "0.999", "1e-8", "0", "false" },     /* the defaults */
    { "0.9", "0.999", "1e-8", "0.1", "false" },   /* L2 in the gradient */
    { "0.9", "0.999", "1e-8", "0.1", "true" },    /* AdamW */
    { "0.5", "0.9", "0.1", "0", "false" },        /* a large eps matters */
    { "0", "0.99", "1e-6", "0.02", "true" },      /* no first-moment memory */
};

START_TEST(test_adam_options)
{
    const struct adam_case *k = &adam_cases[_i];
    const char *keys[] = { "lr", "beta1", "beta2", "eps", "weight_decay", "decoupled" };
    const char *vals[] = { "0.01", k->beta1, k->beta2, k->eps, k->weight_decay, k->decoupled };
    ref c = { 0 };
    char *err = NULL;
    opt o;

    ck_assert_msg(opt_open(&o, "adam", 6, keys, vals, &err) == MLTK_OK, "create: %s", err);
    c.adam = 1;
    c.beta1 = atof(k->beta1);
    c.beta2 = atof(k->beta2);
    c.eps = atof(k->eps);
    c.weight_decay = atof(k->weight_decay);
    c.decoupled = strcmp(k->decoupled, "true") == 0;
    run_steps(&o, &c, 2, 1037, 7, 0.05);
    opt_close(&o);
}
END_TEST

START_TEST(test_adam_defaults)
{
    ref c = { .adam = 1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 };
    char *err = NULL;
    opt o;

    ck_assert_msg(opt_open(&o, "adam", 0, NULL, NULL, &err) == MLTK_OK, "create: %s", err);
    ck_assert_double_eq_tol(mltk_params_float(o.params, "lr"), 0.001, 1e-12);
    ck_assert_double_eq_tol(mltk_params_float(o.params, "beta1"), 0.9, 1e-12);
    ck_assert_double_eq_tol(mltk_params_float(o.params, "beta2"), 0.999, 1e-12);
    ck_assert_double_eq_tol(mltk_params_float(o.params, "eps"), 1e-8, 1e-20);
    ck_assert_int_eq(mltk_params_bool(o.params, "decoupled"), 0);
    run_steps(&o, &c, 2, 3, 4, 0.001);
    opt_close(&o);
}
END_TEST

START_TEST(test_adam_errors)
{
    const char *keys[] = { "beta1", "beta2" };
    const char *one[] = { "1" };
    const char *one2[] = { "0.9", "1" };
    char *err = NULL;
    opt o;

    /* beta = 1 passes the descriptor's [0, 1] range but never decays */
    ck_assert_int_eq(opt_open(&o, "adam", 1, keys, one, &err), MLTK_ERR_CONFIG);
    ck_assert_msg(err && strstr(err, "beta1") && strstr(err, "[0, 1)"), "message: %s", err);
    o.self = NULL;
    opt_close(&o);
    free(err);
    err = NULL;
    ck_assert_int_eq(opt_open(&o, "adam", 2, keys, one2, &err), MLTK_ERR_CONFIG);
    ck_assert_msg(err && strstr(err, "beta2"), "message: %s", err);
    o.self = NULL;
    opt_close(&o);
    free(err);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("plugins");

    tcase_add_checked_fixture(tc, fixture_open, fixture_close);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_sgd_options, 0,
                        (int)(sizeof(sgd_cases) / sizeof(sgd_cases[0])));
    tcase_add_test(tc, test_sgd_defaults);
    tcase_add_test(tc, test_sgd_errors);
    tcase_add_loop_test(tc, test_adam_options, 0,
                        (int)(sizeof(adam_cases) / sizeof(adam_cases[0])));
    tcase_add_test(tc, test_adam_defaults);
    tcase_add_test(tc, test_adam_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(optim_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
