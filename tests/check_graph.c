/* check_graph.c - multi-input layers, embedding, dense initialisers and
 * the losses, on the cpu backend.
 *
 * What this is: four groups of checks.
 *  - Backend ops (copy_2d, embedding_forward/backward, softmax_xent_ex,
 *    pointwise_loss, kl_div_logits) against naive double-precision
 *    references written here and against PyTorch's values (loss_ref.h,
 *    from gen_loss_ref.py), with 1, 2 and 3 threads and at sizes large
 *    enough to be split over the pool.
 *  - Layer plugins (add, concat, embedding, dense with every `init`) run
 *    standalone (mltk_single_layer): outputs against references, every
 *    gradient (inputs and parameters) against central finite differences
 *    of L = sum(y * R), and the initialisers' statistics against theory.
 *  - Loss plugins (cross_entropy with label_smoothing and weights, mse,
 *    l1, bce_with_logits, kl_div): setup errors, values and gradients
 *    against PyTorch, gradients against finite differences of the loss.
 *  - Whole configs: a residual block whose shapes do not match is refused
 *    with a message naming the add layer and its line; a small residual
 *    MLP with add and concat trains; the ResNet example builds.  These
 *    need Debian's Fashion-MNIST; without it they are left out and the
 *    program exits 77 (skipped) when everything else passed.
 *
 * Tolerances are stated where used.  The layers here are linear in what
 * the finite differences perturb (add, concat, the embedding table, dense
 * without activation), so a central difference with eps = 1e-2 is exact
 * up to float rounding of L (~1e-6 relative): rtol 1e-3 + atol 1e-4 is
 * generous yet catches any wrong term.
 *
 * What this is not: the conformance suite of the other ops (check_backend)
 * or of the dense/relu/flatten layers (check_layers).
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "loss_ref.h"
#include "testutil.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

/* Per-element checks abort only on failure (a passing ck_assert costs
 * Check I/O per call). */

/* ---- fixture: registry and cpu backend ------------------------------------ */

static mltk_registry_t *reg;
static struct mltk_backend be;
static int be_open_flag;

static void backend_open(int threads)
{
    char *err = NULL;
    mltk_backend_opts o = { .size = sizeof(o), .threads = threads, .device = 0, .seed = 1 };
    int rc;

    if (be_open_flag)
        mltk_backend_close(&be);
    rc = mltk_backend_open(&be, reg, "cpu", &o, &err);
    ck_assert_msg(rc == MLTK_OK, "backend cpu: %s", err ? err : "?");
    be_open_flag = 1;
}

static void fixture_open(void)
{
    char *err = NULL;
    int rc = mltk_registry_create(&reg, NULL, 1, &err);

    ck_assert_msg(rc == MLTK_OK, "registry: %s", err ? err : "?");
    backend_open(2);
}

static void fixture_close(void)
{
    if (be_open_flag)
        mltk_backend_close(&be);
    be_open_flag = 0;
    mltk_registry_destroy(reg);
    reg = NULL;
}

/* ---- small helpers -------------------------------------------------------- */

static void rand_fill(float *x, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(scale * tu_urand());
}

static float *dev_alloc(int64_t n)
{
    void *p = NULL;
    int rc = mltk_be_alloc(&be, (size_t)(n > 0 ? n : 1) * sizeof(float), &p);

    ck_assert_msg(rc == MLTK_OK, "alloc: %s", mltk_backend_error(&be));
    return p;
}

static void dev_free(void *p)
{
    mltk_be_free(&be, p);
}

static void up(void *dev, const void *host, int64_t n)
{
    ck_assert_int_eq(mltk_be_upload(&be, dev, host, (size_t)n * 4), MLTK_OK);
}

static void down(void *host, const void *dev, int64_t n)
{
    ck_assert_int_eq(mltk_be_sync(&be), MLTK_OK);
    ck_assert_int_eq(mltk_be_download(&be, host, dev, (size_t)n * 4), MLTK_OK);
}

/* ---- the ops under test, through their typed wrappers ---------------------- */

/* Views of backend memory (data NULL: absent): f32 (n) and (rows, cols),
 * i32 labels (n). */
static mltk_tensor t1(const float *p, int64_t n)
{
    return mltk_tensor_1d((void *)p, MLTK_F32, n);
}

static mltk_tensor t2(const float *p, int64_t rows, int64_t cols)
{
    return mltk_tensor_2d((void *)p, MLTK_F32, rows, cols);
}

static mltk_tensor labels(const int32_t *p, int64_t n)
{
    return mltk_tensor_1d((void *)p, MLTK_I32, n);
}

/* A contiguous view of `data` with shape `s`. */
static mltk_tensor tview(void *data, mltk_shape s, mltk_dtype dt)
{
    return (mltk_tensor){ .data = data, .shape = s, .dtype = dt };
}

static int op_fill(const struct mltk_backend *b, float *x, float v, int64_t n)
{
    mltk_tensor t = t1(x, n);
    return mltk_op_fill(b, &t, v);
}

/* dst (rows, cols) with row stride dst_ld = src (row stride src_ld) (+ dst) */
static int op_copy_2d(const struct mltk_backend *b, float *dst, int64_t dst_ld,
                      const float *src, int64_t src_ld, int64_t rows, int64_t cols,
                      int accumulate)
{
    mltk_tensor d = t2(dst, rows, cols), s = t2(src, rows, cols);
    d.stride[0] = dst_ld;
    d.stride[1] = 1;
    s.stride[0] = src_ld;
    s.stride[1] = 1;
    return mltk_op_copy_2d(b, &d, &s, accumulate);
}

/* y (n, dim) = table (vocab, dim) rows at ids (n) */
static int op_embedding_forward(const struct mltk_backend *b, float *y, const float *table,
                                const float *ids, int64_t n, int64_t dim, int64_t vocab)
{
    mltk_tensor yt = t2(y, n, dim), tt = t2(table, vocab, dim), it = t1(ids, n);
    return mltk_op_embedding_forward(b, &yt, &tt, &it);
}

static int op_embedding_backward(const struct mltk_backend *b, float *dtable, const float *dy,
                                 const float *ids, int64_t n, int64_t dim, int64_t vocab)
{
    mltk_tensor dt = t2(dtable, vocab, dim), dyt = t2(dy, n, dim), it = t1(ids, n);
    return mltk_op_embedding_backward(b, &dt, &dyt, &it);
}

/* cross-entropy of logits (N, C) against labels (N), weights (C) or NULL */
static int op_softmax_xent_ex(const struct mltk_backend *b, float *loss, float *dlogits,
                              const float *logits, const int32_t *lab, const float *w,
                              int64_t N, int64_t C, float label_smoothing, float grad_scale)
{
    mltk_xent_params p = { .label_smoothing = label_smoothing, .grad_scale = grad_scale };
    mltk_tensor lt = t1(loss, 1), dt = t2(dlogits, N, C), zt = t2(logits, N, C);
    mltk_tensor yt = labels(lab, N), wt = t1(w, C);
    return mltk_op_softmax_xent(b, &lt, &dt, &zt, &yt, &wt, &p);
}

static int op_softmax_xent(const struct mltk_backend *b, float *loss, float *dlogits,
                           const float *logits, const int32_t *lab, int64_t N, int64_t C,
                           float grad_scale)
{
    return op_softmax_xent_ex(b, loss, dlogits, logits, lab, NULL, N, C, 0.0f, grad_scale);
}

/* mean pointwise loss `kind` of pred against target (n) */
static int op_pointwise_loss(const struct mltk_backend *b, int kind, float *loss, float *dpred,
                             const float *pred, const float *target, int64_t n,
                             float grad_scale)
{
    mltk_pointwise_params p = { .kind = (mltk_pointwise)kind, .grad_scale = grad_scale };
    mltk_tensor lt = t1(loss, 1), dt = t1(dpred, n), pt = t1(pred, n), tt = t1(target, n);
    return mltk_op_pointwise_loss(b, &lt, &dt, &pt, &tt, &p);
}

/* T^2 KL(softmax(teacher / T) || softmax(student / T)) over (N, C) */
static int op_kl_div_logits(const struct mltk_backend *b, float *loss, float *dstudent,
                            const float *student, const float *teacher, int64_t N, int64_t C,
                            float T, float grad_scale)
{
    mltk_kl_params p = { .T = T, .grad_scale = grad_scale };
    mltk_tensor lt = t1(loss, 1), dt = t2(dstudent, N, C), st = t2(student, N, C);
    mltk_tensor tt = t2(teacher, N, C);
    return mltk_op_kl_div_logits(b, &lt, &dt, &st, &tt, &p);
}

static float *host_alloc(int64_t n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));

    ck_assert_ptr_nonnull(p);
    return p;
}

static int close_enough(double a, double b, double rtol, double atol)
{
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= rtol * m + atol;
}

static void expect_close(const float *got, const double *ref, int64_t n, double rtol,
                         double atol, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        EXPECT(close_enough(got[i], ref[i], rtol, atol),
               "%s[%lld] = %.9g, expected %.9g", what, (long long)i, (double)got[i], ref[i]);
}

static mltk_shape shape1(int64_t a)
{
    return mltk_shape_make(1, &a);
}

static mltk_shape shape2(int64_t a, int64_t b)
{
    int64_t d[2] = { a, b };
    return mltk_shape_make(2, d);
}

static mltk_shape shape3(int64_t a, int64_t b, int64_t c)
{
    int64_t d[3] = { a, b, c };
    return mltk_shape_make(3, d);
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

/* Build a plugin's params from key/value pairs against its descriptor;
 * returns the status (and the message in *err). */
static int try_params(mltk_params_t **p, const char *name, int kind, int n,
                      const char *const *keys, const char *const *vals, char **err)
{
    const mltk_desc *d = NULL;
    int rc = mltk_registry_find(reg, name, kind, &d, err);

    ck_assert_msg(rc == MLTK_OK, "find %s: %s", name, err && *err ? *err : "?");
    return mltk_params_build(p, &d, 1, n, keys, vals, NULL, NULL, 0, name, err);
}

static mltk_params_t *build_params(const char *name, int kind, int n,
                                   const char *const *keys, const char *const *vals)
{
    mltk_params_t *p = NULL;
    char *err = NULL;
    int rc = try_params(&p, name, kind, n, keys, vals, &err);

    ck_assert_msg(rc == MLTK_OK, "params %s: %s", name, err ? err : "?");
    return p;
}

/* ======================================================================== */
/* ---- backend ops ---------------------------------------------------------- */

/* copy_2d at odd sizes, with leading dimensions wider than the copy; the
 * columns outside the copy must be left alone */
START_TEST(test_op_copy_2d)
{
    static const int64_t cases[][4] = {
        /* rows, cols, dst_ld, src_ld */
        { 1, 1, 1, 1 }, { 3, 5, 7, 5 }, { 17, 13, 13, 29 }, { 300, 257, 301, 260 },
        { 1, 70001, 70001, 70001 }, { 129, 1, 3, 2 },
    };

    backend_open(_i);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int64_t R = cases[k][0], C = cases[k][1], dl = cases[k][2], sl = cases[k][3];
        int64_t nd = (R - 1) * dl + C + 3, ns = (R - 1) * sl + C;
        float *hs = host_alloc(ns), *hd = host_alloc(nd), *got = host_alloc(nd);
        float *ds = dev_alloc(ns), *dd = dev_alloc(nd);

        tu_rng_seed(100 + k);
        rand_fill(hs, ns, 2.0);
        rand_fill(hd, nd, 2.0);
        for (int acc = 0; acc < 2; acc++) {
            up(ds, hs, ns);
            up(dd, hd, nd);
            ck_assert_int_eq(op_copy_2d(&be, dd, dl, ds, sl, R, C, acc), MLTK_OK);
            down(got, dd, nd);
            for (int64_t i = 0; i < nd; i++) {
                int64_t r = i / dl, c = i % dl;
                double want = hd[i];
                if (r < R && c < C)
                    want = acc ? (double)hd[i] + (double)hs[r * sl + c] : hs[r * sl + c];
                EXPECT(close_enough(got[i], want, 1e-7, 0.0),
                       "case %zu acc %d: dst[%lld] = %.9g, want %.9g", k, acc,
                       (long long)i, (double)got[i], want);
            }
        }
        free(hs); free(hd); free(got);
        dev_free(ds); dev_free(dd);
    }
    /* argument checks: a leading dimension narrower than the copy; a
     * negative dimension (a shape the core refuses) */
    {
        float *d = dev_alloc(16);
        ck_assert_int_eq(op_copy_2d(&be, d, 2, d + 8, 4, 2, 4, 0), MLTK_ERR_INVALID);
        ck_assert_int_eq(op_copy_2d(&be, d, 4, d + 8, 4, -1, 4, 0), MLTK_ERR_SHAPE);
        ck_assert_int_eq(op_copy_2d(&be, d, 4, d + 8, 4, 0, 4, 0), MLTK_OK);
        dev_free(d);
    }
}
END_TEST

/* embedding gather and scatter-add: exact rows forward; backward sums the
 * rows of repeated ids (double reference); bad ids write nothing */
START_TEST(test_op_embedding)
{
    static const int64_t cases[][3] = {
        /* n, dim, vocab */
        { 1, 1, 1 }, { 7, 3, 5 }, { 50, 33, 9 }, { 2000, 67, 31 }, { 1500, 1, 4 },
    };

    backend_open(_i);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int64_t n = cases[k][0], D = cases[k][1], V = cases[k][2];
        float *ids = host_alloc(n), *tab = host_alloc(V * D), *dy = host_alloc(n * D);
        float *y = host_alloc(n * D), *dt = host_alloc(V * D);
        double *ref = calloc((size_t)(V * D), sizeof(double));
        float *did = dev_alloc(n), *dtab = dev_alloc(V * D), *ddy = dev_alloc(n * D);
        float *dyo = dev_alloc(n * D), *ddt = dev_alloc(V * D);

        ck_assert_ptr_nonnull(ref);
        tu_rng_seed(200 + k);
        for (int64_t i = 0; i < n; i++)   /* skewed: low ids repeat often */
            ids[i] = (float)(int64_t)((tu_urand() * 0.5 + 0.5) * (tu_urand() * 0.5 + 0.5) * (double)V);
        ids[0] = (float)(V - 1);
        rand_fill(tab, V * D, 1.0);
        rand_fill(dy, n * D, 1.0);
        up(did, ids, n);
        up(dtab, tab, V * D);
        up(ddy, dy, n * D);
        ck_assert_int_eq(op_embedding_forward(&be, dyo, dtab, did, n, D, V), MLTK_OK);
        down(y, dyo, n * D);
        for (int64_t i = 0; i < n; i++)
            EXPECT(memcmp(y + i * D, tab + (int64_t)ids[i] * D, (size_t)D * 4) == 0,
                   "case %zu: row %lld is not table row %g", k, (long long)i, (double)ids[i]);
        ck_assert_int_eq(op_fill(&be, ddt, 77.0f, V * D), MLTK_OK);
        ck_assert_int_eq(op_embedding_backward(&be, ddt, ddy, did, n, D, V), MLTK_OK);
        down(dt, ddt, V * D);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < D; j++)
                ref[(int64_t)ids[i] * D + j] += dy[i * D + j];
        /* float sums of up to n terms of magnitude <= 1 */
        expect_close(dt, ref, V * D, 1e-5, 1e-6 * (double)n / 100.0 + 1e-6, "dtable");

        /* an id out of range, negative, fractional or NaN: MLTK_ERR_DATA,
         * and the outputs are untouched */
        {
            const float bad[] = { (float)V, -1.0f, 0.5f, NAN };
            for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
                float save = ids[n - 1];
                ids[n - 1] = bad[b];
                up(did, ids, n);
                ck_assert_int_eq(op_fill(&be, dyo, 5.0f, n * D), MLTK_OK);
                ck_assert_int_eq(op_embedding_forward(&be, dyo, dtab, did, n, D, V),
                                 MLTK_ERR_DATA);
                ck_assert_int_eq(op_embedding_backward(&be, dyo, ddy, did, n, D, V),
                                 MLTK_ERR_DATA);
                down(y, dyo, n * D);
                for (int64_t i = 0; i < n * D; i++)
                    EXPECT(y[i] == 5.0f, "bad id %g: output written", (double)bad[b]);
                ids[n - 1] = save;
            }
        }
        free(ids); free(tab); free(dy); free(y); free(dt); free(ref);
        dev_free(did); dev_free(dtab); dev_free(ddy); dev_free(dyo); dev_free(ddt);
    }
}
END_TEST

/* PyTorch's cross-entropy with label smoothing ls and class weights w
 * (NULL: 1), by its definition, in double:
 *   loss = sum_i [(1-ls) w[y_i] (-logp_i[y_i]) + ls/C sum_c w[c] (-logp_i[c])]
 *          / sum_i w[y_i]
 * and its gradient by the chain rule, d(-logp_c)/dz_j = p_j - [c == j]. */
static double ref_xent_ex(double *grad, const float *z, const int32_t *lab,
                          const float *w, int64_t N, int64_t C, double ls)
{
    double num = 0.0, W = 0.0;
    double *logp = malloc((size_t)C * sizeof(double));

    ck_assert_ptr_nonnull(logp);
    for (int64_t i = 0; i < N; i++)
        W += w ? w[lab[i]] : 1.0;
    for (int64_t i = 0; i < N; i++) {
        const float *x = z + i * C;
        double m = -INFINITY, s = 0.0, wy = w ? w[lab[i]] : 1.0;
        for (int64_t c = 0; c < C; c++)
            m = x[c] > m ? x[c] : m;
        for (int64_t c = 0; c < C; c++)
            s += exp(x[c] - m);
        for (int64_t c = 0; c < C; c++)
            logp[c] = x[c] - m - log(s);
        num += (1.0 - ls) * wy * -logp[lab[i]];
        for (int64_t c = 0; c < C; c++)
            num += ls / (double)C * (w ? w[c] : 1.0) * -logp[c];
        for (int64_t j = 0; grad && j < C; j++) {
            double pj = exp(logp[j]), g = (1.0 - ls) * wy * (pj - (j == lab[i]));
            for (int64_t c = 0; c < C; c++)
                g += ls / (double)C * (w ? w[c] : 1.0) * (pj - (c == j));
            grad[i * C + j] = g / W;
        }
    }
    free(logp);
    return num / W;
}

START_TEST(test_op_softmax_xent_ex)
{
    static const int64_t sizes[][2] = { { 1, 1 }, { 3, 2 }, { 37, 11 }, { 1000, 10 },
                                        { 61, 301 } };
    static const double lss[] = { 0.0, 0.1, 0.37 };

    backend_open(_i);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        int64_t N = sizes[k][0], C = sizes[k][1];
        float *z = host_alloc(N * C), *w = host_alloc(C), *g = host_alloc(N * C);
        int32_t *lab = malloc((size_t)N * sizeof(int32_t));
        double *gref = calloc((size_t)(N * C), sizeof(double));
        float *dz = dev_alloc(N * C), *dw = dev_alloc(C), *dg = dev_alloc(N * C);
        float *dl = dev_alloc(1), loss;
        int32_t *dlab = (int32_t *)dev_alloc(N);

        ck_assert(lab && gref);
        tu_rng_seed(300 + k);
        rand_fill(z, N * C, 4.0);
        for (int64_t c = 0; c < C; c++)
            w[c] = (float)(1.0 + tu_urand());   /* in [0, 2) */
        for (int64_t i = 0; i < N; i++)
            lab[i] = (int32_t)((tu_urand() * 0.5 + 0.5) * (double)C) % (int32_t)C;
        up(dz, z, N * C);
        up(dw, w, C);
        up(dlab, lab, N);
        for (size_t s = 0; s < sizeof(lss) / sizeof(lss[0]); s++) {
            for (int weighted = 0; weighted < 2; weighted++) {
                const float *wh = weighted ? w : NULL;
                double want = ref_xent_ex(gref, z, lab, wh, N, C, lss[s]);
                ck_assert_int_eq(op_softmax_xent_ex(&be, dl, dg, dz, dlab,
                                                    weighted ? dw : NULL, N, C,
                                                    (float)lss[s], 0.5f), MLTK_OK);
                down(&loss, dl, 1);
                down(g, dg, N * C);
                ck_assert_msg(close_enough(loss, want, 1e-5, 1e-7),
                              "N %lld C %lld ls %g w %d: loss %.9g, want %.9g", (long long)N,
                              (long long)C, lss[s], weighted, (double)loss, want);
                for (int64_t i = 0; i < N * C; i++)
                    gref[i] *= 0.5;
                expect_close(g, gref, N * C, 1e-5, 1e-9, "dlogits");
                /* loss only */
                ck_assert_int_eq(op_softmax_xent_ex(&be, dl, NULL, dz, dlab,
                                                    weighted ? dw : NULL, N, C,
                                                    (float)lss[s], 1.0f), MLTK_OK);
                down(&loss, dl, 1);
                ck_assert(close_enough(loss, want, 1e-5, 1e-7));
            }
        }
        /* without options it agrees with softmax_xent */
        {
            float l2;
            ck_assert_int_eq(op_softmax_xent(&be, dl, NULL, dz, dlab, N, C, 1.0f),
                             MLTK_OK);
            down(&l2, dl, 1);
            ck_assert_int_eq(op_softmax_xent_ex(&be, dl, NULL, dz, dlab, NULL, N, C,
                                                0.0f, 1.0f), MLTK_OK);
            down(&loss, dl, 1);
            ck_assert_msg(close_enough(loss, l2, 1e-5, 1e-6), "%g vs %g", (double)loss,
                          (double)l2);
        }
        /* A label outside [0, C) never reaches the op: the core refuses
         * it when the data is loaded (check_idx.c, test_label_range_load). */
        free(z); free(w); free(g); free(lab); free(gref);
        dev_free(dz); dev_free(dw); dev_free(dg); dev_free(dl); dev_free(dlab);
    }
}
END_TEST

/* the three pointwise losses by their definitions, in double */
static double softplus(double v)
{
    return v > 0 ? v + log1p(exp(-v)) : log1p(exp(v));
}

static double ref_pointwise(double *grad, int kind, const float *x, const float *t,
                            int64_t n)
{
    double total = 0.0;

    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)t[i], g;
        switch (kind) {
        case 0: total += d * d; g = 2.0 * d; break;
        case 1: total += fabs(d); g = d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0; break;
        default:
            /* -[t log s(x) + (1 - t) log(1 - s(x))], log s(x) = -softplus(-x) */
            total += t[i] * softplus(-(double)x[i]) + (1.0 - t[i]) * softplus(x[i]);
            g = 1.0 / (1.0 + exp(-(double)x[i])) - t[i];
            break;
        }
        if (grad)
            grad[i] = g / (double)n;
    }
    return total / (double)n;
}

START_TEST(test_op_pointwise_loss)
{
    static const int64_t sizes[] = { 1, 7, 33, 50001 };

    backend_open(_i);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        int64_t n = sizes[k];
        float *x = host_alloc(n), *t = host_alloc(n), *g = host_alloc(n), loss;
        double *gref = calloc((size_t)n, sizeof(double));
        float *dx = dev_alloc(n), *dt = dev_alloc(n), *dg = dev_alloc(n), *dl = dev_alloc(1);

        ck_assert_ptr_nonnull(gref);
        for (int kind = 0; kind < 3; kind++) {
            tu_rng_seed(400 + k * 3 + (uint64_t)kind);
            rand_fill(x, n, kind == 2 ? 12.0 : 3.0);
            for (int64_t i = 0; i < n; i++)
                t[i] = kind == 2 ? (float)(0.5 + 0.5 * tu_urand()) : (float)(2.0 * tu_urand());
            if (n > 3) {
                x[1] = t[1];          /* l1 at a tie: gradient 0 */
                x[2] = 80.0f;         /* saturated logits stay finite */
                x[3] = -95.0f;
            }
            up(dx, x, n);
            up(dt, t, n);
            double want = ref_pointwise(gref, kind, x, t, n);
            ck_assert_int_eq(op_pointwise_loss(&be, kind, dl, dg, dx, dt, n, 2.0f),
                             MLTK_OK);
            down(&loss, dl, 1);
            down(g, dg, n);
            ck_assert_msg(isfinite(loss) && close_enough(loss, want, 1e-6, 1e-7),
                          "kind %d n %lld: loss %.9g, want %.9g", kind, (long long)n,
                          (double)loss, want);
            for (int64_t i = 0; i < n; i++)
                gref[i] *= 2.0;
            expect_close(g, gref, n, 1e-6, 1e-12, "dpred");
            if (kind == 1 && n > 3)
                ck_assert_float_eq(g[1], 0.0f);
            ck_assert_int_eq(op_pointwise_loss(&be, kind, dl, NULL, dx, dt, n, 1.0f),
                             MLTK_OK);
            down(&loss, dl, 1);
            ck_assert(close_enough(loss, want, 1e-6, 1e-7));
        }
        ck_assert_int_eq(op_pointwise_loss(&be, 3, dl, dg, dx, dt, n, 1.0f),
                         MLTK_ERR_INVALID);
        free(x); free(t); free(g); free(gref);
        dev_free(dx); dev_free(dt); dev_free(dg); dev_free(dl);
    }
}
END_TEST

/* T^2 / N sum_i KL(softmax(t_i / T) || softmax(s_i / T)) and its gradient
 * T (p - q) / N, in double */
static double ref_kl(double *grad, const float *s, const float *t, int64_t N, int64_t C,
                     double T)
{
    double total = 0.0;
    double *lp = malloc((size_t)C * sizeof(double)), *lq = malloc((size_t)C * sizeof(double));

    ck_assert(lp && lq);
    for (int64_t i = 0; i < N; i++) {
        double ms = -INFINITY, mt = -INFINITY, ss = 0.0, st = 0.0;
        for (int64_t c = 0; c < C; c++) {
            ms = fmax(ms, s[i * C + c] / T);
            mt = fmax(mt, t[i * C + c] / T);
        }
        for (int64_t c = 0; c < C; c++) {
            ss += exp(s[i * C + c] / T - ms);
            st += exp(t[i * C + c] / T - mt);
        }
        for (int64_t c = 0; c < C; c++) {
            lp[c] = s[i * C + c] / T - ms - log(ss);
            lq[c] = t[i * C + c] / T - mt - log(st);
            if (exp(lq[c]) > 0)
                total += exp(lq[c]) * (lq[c] - lp[c]);
            if (grad)
                grad[i * C + c] = T * (exp(lp[c]) - exp(lq[c])) / (double)N;
        }
    }
    free(lp);
    free(lq);
    return total * T * T / (double)N;
}

START_TEST(test_op_kl_div_logits)
{
    static const int64_t sizes[][2] = { { 1, 1 }, { 2, 3 }, { 19, 10 }, { 700, 13 } };
    static const double temps[] = { 1.0, 4.0, 0.5 };

    backend_open(_i);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        int64_t N = sizes[k][0], C = sizes[k][1];
        float *s = host_alloc(N * C), *t = host_alloc(N * C), *g = host_alloc(N * C), loss;
        double *gref = calloc((size_t)(N * C), sizeof(double));
        float *ds = dev_alloc(N * C), *dt = dev_alloc(N * C), *dg = dev_alloc(N * C);
        float *dl = dev_alloc(1);

        ck_assert_ptr_nonnull(gref);
        tu_rng_seed(500 + k);
        rand_fill(s, N * C, 5.0);
        rand_fill(t, N * C, 5.0);
        t[0] = 90.0f;   /* a confident teacher row: q underflows to 0 elsewhere */
        up(ds, s, N * C);
        up(dt, t, N * C);
        for (size_t j = 0; j < sizeof(temps) / sizeof(temps[0]); j++) {
            double want = ref_kl(gref, s, t, N, C, temps[j]);
            ck_assert_int_eq(op_kl_div_logits(&be, dl, dg, ds, dt, N, C,
                                              (float)temps[j], 0.25f), MLTK_OK);
            down(&loss, dl, 1);
            down(g, dg, N * C);
            ck_assert_msg(isfinite(loss) && close_enough(loss, want, 1e-5, 1e-7),
                          "N %lld C %lld T %g: loss %.9g, want %.9g", (long long)N,
                          (long long)C, temps[j], (double)loss, want);
            for (int64_t i = 0; i < N * C; i++)
                gref[i] *= 0.25;
            expect_close(g, gref, N * C, 1e-5, 1e-10, "dstudent");
        }
        /* identical distributions: zero loss and gradient */
        ck_assert_int_eq(op_kl_div_logits(&be, dl, dg, ds, ds, N, C, 2.0f, 1.0f), MLTK_OK);
        down(&loss, dl, 1);
        down(g, dg, N * C);
        ck_assert_msg(fabs(loss) < 1e-6, "KL(p || p) = %g", (double)loss);
        for (int64_t i = 0; i < N * C; i++)
            EXPECT(fabs(g[i]) < 1e-7, "gradient at p == q: %g", (double)g[i]);
        ck_assert_int_eq(op_kl_div_logits(&be, dl, dg, ds, dt, N, C, 0.0f, 1.0f),
                         MLTK_ERR_INVALID);
        free(s); free(t); free(g); free(gref);
        dev_free(ds); dev_free(dt); dev_free(dg); dev_free(dl);
    }
}
END_TEST

/* the ops against PyTorch's own numbers (loss_ref.h) */
START_TEST(test_op_torch_reference)
{
    enum { XNC = LREF_XN * LREF_XC, KNC = LREF_KN * LREF_KC };
    float *dz = dev_alloc(XNC), *dw = dev_alloc(LREF_XC), *dg = dev_alloc(XNC);
    float *dl = dev_alloc(1), g[XNC], loss;
    int32_t lab[LREF_XN], *dlab = (int32_t *)dev_alloc(LREF_XN);

    for (int i = 0; i < LREF_XN; i++)
        lab[i] = lref_xent_labels[i];
    up(dz, lref_xent_z, XNC);
    up(dw, lref_xent_weights, LREF_XC);
    up(dlab, lab, LREF_XN);
    for (size_t k = 0; k < sizeof(lref_xent) / sizeof(lref_xent[0]); k++) {
        const struct lref_xent *r = &lref_xent[k];
        ck_assert_int_eq(op_softmax_xent_ex(&be, dl, dg, dz, dlab,
                                            r->weighted ? dw : NULL, LREF_XN, LREF_XC,
                                            r->label_smoothing, 1.0f), MLTK_OK);
        down(&loss, dl, 1);
        down(g, dg, XNC);
        ck_assert_msg(close_enough(loss, r->loss, 1e-6, 1e-7), "xent case %zu: %.9g vs %.9g",
                      k, (double)loss, r->loss);
        expect_close(g, r->grad, XNC, 1e-5, 1e-9, "xent grad");
    }
    dev_free(dz); dev_free(dw); dev_free(dg); dev_free(dlab);

    float *dx = dev_alloc(LREF_PN), *dt = dev_alloc(LREF_PN), *dpg = dev_alloc(LREF_PN);
    float pg[LREF_PN];
    for (size_t k = 0; k < sizeof(lref_pw) / sizeof(lref_pw[0]); k++) {
        const struct lref_pw *r = &lref_pw[k];
        up(dx, r->kind == 2 ? lref_pw_logits : lref_pw_x, LREF_PN);
        up(dt, r->kind == 2 ? lref_pw_prob : lref_pw_t, LREF_PN);
        ck_assert_int_eq(op_pointwise_loss(&be, r->kind, dl, dpg, dx, dt, LREF_PN, 1.0f),
                         MLTK_OK);
        down(&loss, dl, 1);
        down(pg, dpg, LREF_PN);
        ck_assert_msg(close_enough(loss, r->loss, 1e-6, 1e-7), "kind %d: %.9g vs %.9g",
                      r->kind, (double)loss, r->loss);
        expect_close(pg, r->grad, LREF_PN, 1e-6, 1e-10, "pointwise grad");
    }
    dev_free(dx); dev_free(dt); dev_free(dpg);

    float *ds = dev_alloc(KNC), *dte = dev_alloc(KNC), *dkg = dev_alloc(KNC), kg[KNC];
    up(ds, lref_kl_s, KNC);
    up(dte, lref_kl_t, KNC);
    for (size_t k = 0; k < sizeof(lref_kl) / sizeof(lref_kl[0]); k++) {
        const struct lref_kl *r = &lref_kl[k];
        ck_assert_int_eq(op_kl_div_logits(&be, dl, dkg, ds, dte, LREF_KN, LREF_KC,
                                          r->temperature, r->alpha), MLTK_OK);
        down(&loss, dl, 1);
        down(kg, dkg, KNC);
        /* the op's loss is unweighted; alpha scales the gradient only */
        ck_assert_msg(close_enough(loss * r->alpha, r->loss, 1e-5, 1e-7),
                      "kl case %zu: %.9g vs %.9g", k, (double)loss * r->alpha, r->loss);
        expect_close(kg, r->grad, KNC, 1e-5, 1e-9, "kl grad");
    }
    dev_free(ds); dev_free(dte); dev_free(dkg); dev_free(dl);
}
END_TEST

/* ======================================================================== */
/* ---- a layer under test, with any number of inputs ----------------------- */

#define MAXIN 4

typedef struct gl {
    const struct mltk_layer_i *iface;
    void              *self;
    mltk_params_t     *params;
    mltk_single_layer *sl;
    int                n_in;
    mltk_shape         in[MAXIN];   /* per sample */
    int64_t            batch;
    int64_t            nx[MAXIN], ny;
    float             *x[MAXIN], *dx[MAXIN], *y, *dy;   /* backend memory */
    float             *hx[MAXIN];                       /* host inputs */
} gl;

/* Create the layer and run its setup; returns the setup status, with the
 * message in *err (the layer is then closed). */
static int gl_try_open(gl *t, const char *name, int n, const char *const *keys,
                       const char *const *vals, int n_in, const mltk_shape *in,
                       int64_t max_batch, int64_t batch, char **err)
{
    int rc;

    memset(t, 0, sizeof(*t));
    t->params = build_params(name, MLTK_KIND_LAYER, n, keys, vals);
    rc = mltk_registry_load(reg, name, MLTK_KIND_LAYER, (const void **)&t->iface, err);
    ck_assert_msg(rc == MLTK_OK, "load %s: %s", name, err && *err ? *err : "?");
    rc = t->iface->create(&t->self, t->params, err);
    ck_assert_msg(rc == MLTK_OK, "create %s: %s", name, err && *err ? *err : "?");
    rc = mltk_single_layer_create(&t->sl, t->iface, t->self, &be, n_in, in, max_batch,
                                  42, err);
    if (rc) {
        t->iface->destroy(t->self);
        mltk_params_free(t->params);
        return rc;
    }
    t->n_in = n_in;
    t->batch = batch;
    for (int j = 0; j < n_in; j++) {
        t->in[j] = in[j];
        t->nx[j] = batch * mltk_shape_numel(&in[j]);
        t->x[j] = dev_alloc(t->nx[j]);
        t->dx[j] = dev_alloc(t->nx[j]);
        t->hx[j] = host_alloc(t->nx[j]);
    }
    t->ny = batch * mltk_shape_numel(&t->sl->out);
    t->y = dev_alloc(t->ny);
    t->dy = dev_alloc(t->ny);
    return MLTK_OK;
}

static void gl_open(gl *t, const char *name, int n, const char *const *keys,
                    const char *const *vals, int n_in, const mltk_shape *in,
                    int64_t max_batch, int64_t batch)
{
    char *err = NULL;
    int rc = gl_try_open(t, name, n, keys, vals, n_in, in, max_batch, batch, &err);

    ck_assert_msg(rc == MLTK_OK, "setup %s: %s", name, err ? err : "?");
}

static void gl_close(gl *t)
{
    for (int j = 0; j < t->n_in; j++) {
        dev_free(t->x[j]);
        dev_free(t->dx[j]);
        free(t->hx[j]);
    }
    dev_free(t->y);
    dev_free(t->dy);
    mltk_single_layer_destroy(t->sl, &be);
    t->iface->destroy(t->self);
    mltk_params_free(t->params);
}

/* random inputs in [-scale, scale), uploaded */
static void gl_rand_inputs(gl *t, double scale)
{
    for (int j = 0; j < t->n_in; j++) {
        rand_fill(t->hx[j], t->nx[j], scale);
        up(t->x[j], t->hx[j], t->nx[j]);
    }
}

/* One forward or backward call; bit j of `want_dx` asks for dx[j]. */
static int gl_call(gl *t, int backward, unsigned want_dx)
{
    mltk_tensor xt[MAXIN], dxt[MAXIN];
    mltk_tensor yt = tview(t->y, batch_shape(t->batch, &t->sl->out), MLTK_F32);
    mltk_tensor dyt = tview(t->dy, batch_shape(t->batch, &t->sl->out), MLTK_F32);

    for (int j = 0; j < t->n_in; j++) {
        xt[j] = tview(t->x[j], batch_shape(t->batch, &t->in[j]), MLTK_F32);
        dxt[j] = tview((want_dx >> j) & 1 ? t->dx[j] : NULL,
                       batch_shape(t->batch, &t->in[j]), MLTK_F32);
    }
    mltk_layer_run r = {
        .be = &be, .mode = MLTK_TRAIN, .batch = t->batch, .n_in = t->n_in,
        .x = xt, .dx = dxt, .y = &yt, .dy = &dyt,
        .params = t->sl->params, .grads = t->sl->grads, .buffers = t->sl->buffers,
        .seed = 7, .step = 0,
    };
    int rc = backward ? t->iface->backward(t->self, &r) : t->iface->forward(t->self, &r);

    ck_assert_int_eq(mltk_be_sync(&be), MLTK_OK);
    return rc;
}

static void gl_run(gl *t, int backward, unsigned want_dx)
{
    ck_assert_int_eq(gl_call(t, backward, want_dx), MLTK_OK);
}

/* L = sum(y * R) after a forward pass */
static double gl_objective(gl *t, const float *R)
{
    float *y = host_alloc(t->ny);
    double L = 0.0;

    gl_run(t, 0, 0);
    down(y, t->y, t->ny);
    for (int64_t i = 0; i < t->ny; i++)
        L += (double)y[i] * R[i];
    free(y);
    return L;
}

/* L with the n host values (mirrored in backend memory `dev`) uploaded
 * first: the function the harness differentiates */
typedef struct gl_fd {
    gl          *t;
    float       *host, *dev;
    int64_t      n;
    const float *R;
} gl_fd;

static double gl_fd_eval(void *ctx)
{
    gl_fd *c = ctx;

    up(c->dev, c->host, c->n);
    return gl_objective(c->t, c->R);
}

/* Analytic gradients `ana` of the n values `host` (mirrored in backend
 * memory `dev`) against central differences of L (tests/fdcheck.h). */
static void check_fd(gl *t, const char *what, float *host, float *dev, int64_t n,
                     const float *ana, const float *R, double eps, double rtol, double atol)
{
    gl_fd c = { t, host, dev, n, R };
    fd_opts o = tu_fd_bounds(eps, atol);
    fd_report r;

    o.rel = rtol;
    if (tu_fd_check(what, gl_fd_eval, &c, host, n, ana, &o, &r))
        ck_abort_msg("%s", r.msg);
    up(dev, host, n);
}

/* Backward with every dx requested, then finite differences of every
 * input (unless skip_inputs) and every parameter. */
static void gl_check_grads(gl *t, const float *R, int skip_inputs)
{
    char what[64];

    up(t->dy, R, t->ny);
    gl_run(t, 0, 0);
    gl_run(t, 1, (1u << t->n_in) - 1);
    for (int j = 0; !skip_inputs && j < t->n_in; j++) {
        float *dx = host_alloc(t->nx[j]);
        down(dx, t->dx[j], t->nx[j]);
        snprintf(what, sizeof(what), "dx%d", j);
        check_fd(t, what, t->hx[j], t->x[j], t->nx[j], dx, R, 1e-2, 1e-3, 1e-4);
        free(dx);
    }
    for (int p = 0; p < t->sl->n_params; p++) {
        int64_t n = mltk_shape_numel(&t->sl->params[p].shape);
        float *w = host_alloc(n), *g = host_alloc(n);
        down(w, t->sl->params[p].data, n);
        down(g, t->sl->grads[p].data, n);
        snprintf(what, sizeof(what), "dparam%d", p);
        check_fd(t, what, w, t->sl->params[p].data, n, g, R, 1e-2, 1e-3, 1e-4);
        free(w);
        free(g);
    }
}

static float *rand_R(gl *t, uint64_t seed)
{
    float *R = host_alloc(t->ny);

    tu_rng_seed(seed);
    rand_fill(R, t->ny, 1.0);
    return R;
}

/* ---- add ------------------------------------------------------------------ */

START_TEST(test_add)
{
    static const struct { int n_in; int64_t d[3]; int nd; int64_t mb, b; } cases[] = {
        { 2, { 7 }, 1, 4, 3 },
        { 3, { 2, 3, 5 }, 3, 2, 2 },
        { 4, { 1, 1 }, 2, 5, 1 },
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        mltk_shape in[MAXIN];
        gl t;

        for (int j = 0; j < cases[k].n_in; j++)
            in[j] = mltk_shape_make(cases[k].nd, cases[k].d);
        gl_open(&t, "add", 0, NULL, NULL, cases[k].n_in, in, cases[k].mb, cases[k].b);
        ck_assert(mltk_shape_equal(&t.sl->out, &in[0]));
        ck_assert_int_eq(t.sl->n_params, 0);
        tu_rng_seed(600 + k);
        gl_rand_inputs(&t, 2.0);

        /* forward: the float sum in input order */
        float *y = host_alloc(t.ny);
        gl_run(&t, 0, 0);
        down(y, t.y, t.ny);
        for (int64_t i = 0; i < t.ny; i++) {
            float want = t.hx[0][i];
            for (int j = 1; j < t.n_in; j++)
                want += t.hx[j][i];
            EXPECT(y[i] == want, "y[%lld] = %g, want %g", (long long)i, (double)y[i],
                   (double)want);
        }
        float *R = rand_R(&t, 700 + k);
        gl_check_grads(&t, R, 0);

        /* only some inputs want a gradient: the others are not written */
        float *dx = host_alloc(t.nx[0]);
        ck_assert_int_eq(op_fill(&be, t.dx[0], 3.0f, t.nx[0]), MLTK_OK);
        gl_run(&t, 1, 2u);
        down(dx, t.dx[0], t.nx[0]);
        for (int64_t i = 0; i < t.nx[0]; i++)
            EXPECT(dx[i] == 3.0f, "dx0 written without being asked for");
        down(dx, t.dx[1], t.nx[1]);
        ck_assert_int_eq(memcmp(dx, R, (size_t)t.nx[1] * 4), 0);
        free(dx); free(y); free(R);
        gl_close(&t);
    }
}
END_TEST

START_TEST(test_add_errors)
{
    mltk_shape in[3] = { shape3(32, 14, 14), shape3(64, 7, 7), shape3(32, 14, 14) };
    char *err = NULL;
    gl t;

    ck_assert_int_eq(gl_try_open(&t, "add", 0, NULL, NULL, 3, in, 4, 4, &err), MLTK_ERR_SHAPE);
    TU_ASSERT_CONTAINS(err, "(32, 14, 14), (64, 7, 7) and (32, 14, 14)");
    TU_ASSERT_CONTAINS(err, "input 2");
    free(err);
    err = NULL;
    ck_assert_int_eq(gl_try_open(&t, "add", 0, NULL, NULL, 1, in, 4, 4, &err), MLTK_ERR_SHAPE);
    TU_ASSERT_CONTAINS(err, "at least 2 inputs");
    free(err);
    err = NULL;
    /* the same number of elements in another shape is still a mismatch */
    in[0] = shape1(6);
    in[1] = shape2(2, 3);
    ck_assert_int_eq(gl_try_open(&t, "add", 0, NULL, NULL, 2, in, 4, 4, &err), MLTK_ERR_SHAPE);
    TU_ASSERT_CONTAINS(err, "(6) and (2, 3)");
    free(err);
}
END_TEST

/* ---- concat --------------------------------------------------------------- */

/* y per sample = the inputs joined along `axis`, by index arithmetic */
static void ref_concat(float *y, gl *t, int axis)
{
    const mltk_shape *o = &t->sl->out;
    int nd = o->ndim;
    int64_t on = mltk_shape_numel(o);

    for (int64_t b = 0; b < t->batch; b++)
        for (int64_t e = 0; e < on; e++) {
            int64_t idx[MLTK_MAX_DIMS] = { 0 }, rem = e;
            for (int k = nd - 1; k >= 0; k--) {
                idx[k] = rem % o->dim[k];
                rem /= o->dim[k];
            }
            int j = 0;
            while (idx[axis] >= t->in[j].dim[axis]) {
                idx[axis] -= t->in[j].dim[axis];
                j++;
            }
            int64_t off = 0;
            for (int k = 0; k < nd; k++)
                off = off * t->in[j].dim[k] + idx[k];
            y[b * on + e] = t->hx[j][b * mltk_shape_numel(&t->in[j]) + off];
        }
}

START_TEST(test_concat)
{
    static const struct { const char *axis; int ax; int n_in; int64_t d[3][3]; int nd;
                          int64_t mb, b; } cases[] = {
        { "0", 0, 3, { { 2, 3, 4 }, { 1, 3, 4 }, { 3, 3, 4 } }, 3, 3, 2 },
        { "1", 1, 3, { { 2, 1, 3 }, { 2, 4, 3 }, { 2, 2, 3 } }, 3, 2, 2 },
        { "-1", 2, 2, { { 2, 3, 1 }, { 2, 3, 5 } }, 3, 4, 3 },
        { "0", 0, 2, { { 5 }, { 2 } }, 1, 1, 1 },
        { "1", 1, 1, { { 3, 4 } }, 2, 2, 2 },
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const char *keys[] = { "axis" };
        const char *vals[] = { cases[k].axis };
        mltk_shape in[MAXIN];
        int ax = cases[k].ax;
        gl t;

        for (int j = 0; j < cases[k].n_in; j++)
            in[j] = mltk_shape_make(cases[k].nd, cases[k].d[j]);
        gl_open(&t, "concat", 1, keys, vals, cases[k].n_in, in, cases[k].mb, cases[k].b);
        ck_assert_int_eq(t.sl->out.ndim, cases[k].nd);
        int64_t sum = 0;
        for (int j = 0; j < cases[k].n_in; j++)
            sum += in[j].dim[ax];
        for (int d = 0; d < cases[k].nd; d++)
            ck_assert_int_eq(t.sl->out.dim[d], d == ax ? sum : in[0].dim[d]);

        tu_rng_seed(800 + k);
        gl_rand_inputs(&t, 1.0);
        float *y = host_alloc(t.ny), *want = host_alloc(t.ny);
        gl_run(&t, 0, 0);
        down(y, t.y, t.ny);
        ref_concat(want, &t, ax);
        ck_assert_msg(memcmp(y, want, (size_t)t.ny * 4) == 0, "case %zu: wrong join", k);

        float *R = rand_R(&t, 900 + k);
        gl_check_grads(&t, R, 0);
        free(y); free(want); free(R);
        gl_close(&t);
    }
}
END_TEST

START_TEST(test_concat_errors)
{
    const char *keys[] = { "axis" };
    const char *ax0[] = { "0" }, *ax3[] = { "3" }, *axm4[] = { "-4" };
    mltk_shape in[2] = { shape3(8, 14, 14), shape3(16, 7, 7) };
    char *err = NULL;
    gl t;

    ck_assert_int_eq(gl_try_open(&t, "concat", 1, keys, ax0, 2, in, 4, 4, &err),
                     MLTK_ERR_SHAPE);
    TU_ASSERT_CONTAINS(err, "input 2 has shape (16, 7, 7) but input 1 has (8, 14, 14)");
    free(err);
    err = NULL;
    in[1] = shape3(16, 14, 14);
    ck_assert_int_eq(gl_try_open(&t, "concat", 1, keys, ax3, 2, in, 4, 4, &err),
                     MLTK_ERR_SHAPE);
    TU_ASSERT_CONTAINS(err, "axis = 3 is out of range");
    free(err);
    err = NULL;
    ck_assert_int_eq(gl_try_open(&t, "concat", 1, keys, axm4, 2, in, 4, 4, &err),
                     MLTK_ERR_SHAPE);
    TU_ASSERT_CONTAINS(err, "axis = -4");
    free(err);
    err = NULL;
    in[1] = shape2(8, 14);
    ck_assert_int_eq(gl_try_open(&t, "concat", 1, keys, ax0, 2, in, 4, 4, &err),
                     MLTK_ERR_SHAPE);
    free(err);
    err = NULL;
    /* out of the descriptor's range: refused before the plugin runs */
    {
        mltk_params_t *p = NULL;
        const char *big[] = { "9" };
        ck_assert_int_ne(try_params(&p, "concat", MLTK_KIND_LAYER, 1, keys, big, &err), MLTK_OK);
        TU_ASSERT_CONTAINS(err, "axis");
        free(err);
    }
}
END_TEST

/* ---- embedding ------------------------------------------------------------ */

START_TEST(test_embedding)
{
    const char *keys[] = { "vocab", "dim" };
    const char *vals[] = { "7", "5" };
    mltk_shape in = shape1(6);
    gl t;

    gl_open(&t, "embedding", 2, keys, vals, 1, &in, 4, 3);
    ck_assert_int_eq(t.sl->out.ndim, 2);
    ck_assert_int_eq(t.sl->out.dim[0], 6);
    ck_assert_int_eq(t.sl->out.dim[1], 5);
    ck_assert_int_eq(t.sl->n_params, 1);
    ck_assert_int_eq(t.sl->params[0].shape.dim[0], 7);
    ck_assert_int_eq(t.sl->params[0].shape.dim[1], 5);

    /* ids with repeats (3 appears four times, 0 twice, 6 never) */
    static const float ids[18] = { 3, 0, 3, 5, 1, 3, 2, 2, 4, 0, 3, 1, 5, 4, 4, 1, 2, 5 };
    memcpy(t.hx[0], ids, sizeof(ids));
    up(t.x[0], ids, 18);
    float *tab = host_alloc(35), *y = host_alloc(t.ny), *g = host_alloc(35);
    down(tab, t.sl->params[0].data, 35);
    gl_run(&t, 0, 0);
    down(y, t.y, t.ny);
    for (int i = 0; i < 18; i++)
        ck_assert_int_eq(memcmp(y + i * 5, tab + (int)ids[i] * 5, 20), 0);

    float *R = rand_R(&t, 1000);
    gl_check_grads(&t, R, 1);   /* the table; ids have no gradient */
    down(g, t.sl->grads[0].data, 35);
    for (int v = 0; v < 7; v++)
        for (int d = 0; d < 5; d++) {
            double want = 0.0;
            for (int i = 0; i < 18; i++)
                if ((int)ids[i] == v)
                    want += R[i * 5 + d];
            EXPECT(close_enough(g[v * 5 + d], want, 1e-6, 1e-7), "dtable[%d,%d] = %g, want %g",
                   v, d, (double)g[v * 5 + d], want);
        }
    /* an input gradient, when asked for, is zero */
    float dx[18];
    ck_assert_int_eq(op_fill(&be, t.dx[0], 4.0f, 18), MLTK_OK);
    gl_run(&t, 1, 1u);
    down(dx, t.dx[0], 18);
    for (int i = 0; i < 18; i++)
        ck_assert_float_eq(dx[i], 0.0f);
    /* an id outside [0, vocab) fails the forward pass as a data error */
    t.hx[0][4] = 7.0f;
    up(t.x[0], t.hx[0], 18);
    ck_assert_int_eq(gl_call(&t, 0, 0), MLTK_ERR_DATA);
    free(tab); free(y); free(g); free(R);
    gl_close(&t);

    /* (T, U) ids -> (T, U, dim); a scalar per sample is refused */
    {
        mltk_shape in2 = shape2(2, 3);
        char *err = NULL;
        gl_open(&t, "embedding", 2, keys, vals, 1, &in2, 2, 2);
        ck_assert_int_eq(t.sl->out.ndim, 3);
        ck_assert_int_eq(t.sl->out.dim[2], 5);
        gl_close(&t);
        mltk_shape s0 = { 0, { 0 } };
        ck_assert_int_eq(gl_try_open(&t, "embedding", 2, keys, vals, 1, &s0, 2, 2, &err),
                         MLTK_ERR_SHAPE);
        TU_ASSERT_CONTAINS(err, "token ids");
        free(err);
    }
}
END_TEST

/* mean and standard deviation of n floats */
static void moments(const float *x, int64_t n, double *mean, double *sd)
{
    double s = 0.0, ss = 0.0;

    for (int64_t i = 0; i < n; i++)
        s += x[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = sqrt(ss / (double)n);
}

/* the table starts N(0, 1) (PyTorch's default) unless init says otherwise */
START_TEST(test_embedding_init)
{
    static const struct { const char *init; double sd; double bound; } cases[] = {
        { "default", 1.0, 0 },
        { "normal", 0.05, 0 },                              /* init_std */
        { "xavier_uniform", 0, 0 },                         /* set below */
        { "zeros", 0, 0 },
    };
    const int64_t V = 300, D = 40, n = V * D;

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const char *keys[] = { "vocab", "dim", "init", "init_std" };
        const char *vals[] = { "300", "40", cases[k].init, "0.05" };
        mltk_shape in = shape1(3);
        float *w = host_alloc(n);
        double mean, sd;
        gl t;

        gl_open(&t, "embedding", 4, keys, vals, 1, &in, 2, 2);
        down(w, t.sl->params[0].data, n);
        moments(w, n, &mean, &sd);
        if (strcmp(cases[k].init, "zeros") == 0) {
            for (int64_t i = 0; i < n; i++)
                EXPECT(w[i] == 0.0f, "zeros init: w[%lld] = %g", (long long)i, (double)w[i]);
        } else if (strcmp(cases[k].init, "xavier_uniform") == 0) {
            /* fan_in = dim, fan_out = vocab */
            double b = sqrt(6.0 / (double)(V + D)), lo = 0, hi = 0;
            for (int64_t i = 0; i < n; i++) {
                lo = fmin(lo, w[i]);
                hi = fmax(hi, w[i]);
            }
            ck_assert_msg(hi <= b && lo >= -b && hi > 0.99 * b && lo < -0.99 * b,
                          "xavier_uniform range [%g, %g], bound %g", lo, hi, b);
        } else {
            /* 12000 draws: the mean is within 5 standard errors, the sample
             * standard deviation within 3% (about 5 of its standard errors) */
            ck_assert_msg(fabs(mean) < 5.0 * cases[k].sd / sqrt((double)n),
                          "%s: mean %g", cases[k].init, mean);
            ck_assert_msg(fabs(sd / cases[k].sd - 1.0) < 0.03, "%s: sd %g, want %g",
                          cases[k].init, sd, cases[k].sd);
        }
        free(w);
        gl_close(&t);
    }
}
END_TEST

/* ---- dense initialisers ---------------------------------------------------- */

/* every `init` and `bias_init`: statistics against theory on a 200 x 100
 * weight, then a gradient check at a small shape */
START_TEST(test_dense_init)
{
    static const char *const inits[] = { "default", "he_normal", "he_uniform",
                                         "xavier_normal", "xavier_uniform", "normal",
                                         "zeros" };
    const char *init = inits[_i];
    const double fi = 100.0, fo = 200.0;
    const int64_t n = 20000;

    for (int bz = 0; bz < 2; bz++) {
        const char *keys[] = { "units", "init", "init_std", "bias_init" };
        const char *vals[] = { "200", init, "0.07", bz ? "zeros" : "default" };
        mltk_shape in = shape1(100);
        float *w = host_alloc(n), *b = host_alloc(200);
        double mean, sd, lo = 0, hi = 0, want_sd = 0, bound = 0;
        gl t;

        gl_open(&t, "dense", 4, keys, vals, 1, &in, 2, 2);
        ck_assert_int_eq(t.sl->n_params, 2);
        down(w, t.sl->params[0].data, n);
        down(b, t.sl->params[1].data, 200);
        moments(w, n, &mean, &sd);
        for (int64_t i = 0; i < n; i++) {
            lo = fmin(lo, w[i]);
            hi = fmax(hi, w[i]);
        }
        if (!strcmp(init, "he_normal"))
            want_sd = sqrt(2.0 / fi);
        else if (!strcmp(init, "xavier_normal"))
            want_sd = sqrt(2.0 / (fi + fo));
        else if (!strcmp(init, "normal"))
            want_sd = 0.07;
        else if (!strcmp(init, "he_uniform"))
            bound = sqrt(6.0 / fi);
        else if (!strcmp(init, "xavier_uniform"))
            bound = sqrt(6.0 / (fi + fo));
        else if (!strcmp(init, "default"))
            bound = 1.0 / sqrt(fi);
        if (want_sd > 0) {
            /* 20000 normal draws: mean within 5 standard errors, sample sd
             * within 3% (~6 of its standard errors) */
            ck_assert_msg(fabs(mean) < 5.0 * want_sd / sqrt((double)n), "%s: mean %g",
                          init, mean);
            ck_assert_msg(fabs(sd / want_sd - 1.0) < 0.03, "%s: sd %g, want %g", init, sd,
                          want_sd);
        } else if (bound > 0) {
            /* U(-b, b): inside the bounds, reaching within 1% of both
             * (missing that has probability 0.995^10000), sd b / sqrt(3) */
            ck_assert_msg(hi <= bound && lo >= -bound, "%s: [%g, %g] outside +-%g", init,
                          lo, hi, bound);
            ck_assert_msg(hi > 0.99 * bound && lo < -0.99 * bound,
                          "%s: [%g, %g] does not fill +-%g", init, lo, hi, bound);
            ck_assert_msg(fabs(sd / (bound / sqrt(3.0)) - 1.0) < 0.03, "%s: sd %g", init, sd);
        } else {
            ck_assert_msg(lo == 0.0 && hi == 0.0, "zeros: [%g, %g]", lo, hi);
        }
        /* the bias: zeros, or PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
        {
            double bl = 0, bh = 0, bb = 1.0 / sqrt(fi);
            for (int i = 0; i < 200; i++) {
                bl = fmin(bl, b[i]);
                bh = fmax(bh, b[i]);
            }
            if (bz)
                ck_assert_msg(bl == 0.0 && bh == 0.0, "bias_init = zeros: [%g, %g]", bl, bh);
            else
                ck_assert_msg(bl >= -bb && bh <= bb && bh - bl > bb,
                              "default bias in [%g, %g], bound %g", bl, bh, bb);
        }
        free(w);
        free(b);
        gl_close(&t);
    }

    /* gradients are unaffected by the initialiser: a small layer */
    {
        const char *keys[] = { "units", "init", "init_std" };
        const char *vals[] = { "4", init, "0.3" };
        mltk_shape in = shape1(5);
        gl t;

        gl_open(&t, "dense", 3, keys, vals, 1, &in, 4, 3);
        tu_rng_seed(1100 + (uint64_t)_i);
        gl_rand_inputs(&t, 1.0);
        float *R = rand_R(&t, 1200 + (uint64_t)_i);
        gl_check_grads(&t, R, 0);
        free(R);
        gl_close(&t);
    }
}
END_TEST

/* ======================================================================== */
/* ---- loss plugins --------------------------------------------------------- */

typedef struct lp {
    const struct mltk_loss_i *iface;
    void          *self;
    mltk_params_t *params;
} lp;

static int loss_try_open(lp *l, const char *name, int n, const char *const *keys,
                         const char *const *vals, char **err)
{
    int rc;

    memset(l, 0, sizeof(*l));
    l->params = build_params(name, MLTK_KIND_LOSS, n, keys, vals);
    rc = mltk_registry_load(reg, name, MLTK_KIND_LOSS, (const void **)&l->iface, err);
    ck_assert_msg(rc == MLTK_OK, "load %s: %s", name, err && *err ? *err : "?");
    rc = l->iface->create(&l->self, l->params, err);
    if (rc)
        mltk_params_free(l->params);
    return rc;
}

static void loss_open(lp *l, const char *name, int n, const char *const *keys,
                      const char *const *vals)
{
    char *err = NULL;
    int rc = loss_try_open(l, name, n, keys, vals, &err);

    ck_assert_msg(rc == MLTK_OK, "create %s: %s", name, err ? err : "?");
}

static void loss_close(lp *l)
{
    l->iface->destroy(l->self);
    mltk_params_free(l->params);
}

/* loss of pred (N, per...) against a target in backend memory; the
 * gradient into grad_dev when not NULL */
static float loss_eval(lp *l, float *pred_dev, const float *pred_host, int64_t N,
                       const mltk_shape *per, void *tgt_dev, int tgt_int,
                       float *grad_dev)
{
    mltk_shape ps = batch_shape(N, per), ts = tgt_int ? shape1(N) : ps;
    mltk_tensor pred = tview(pred_dev, ps, MLTK_F32);
    mltk_tensor tgt = tview(tgt_dev, ts, tgt_int ? MLTK_I32 : MLTK_F32);
    mltk_tensor dpred = tview(grad_dev, ps, MLTK_F32);
    float *ld = dev_alloc(1), loss;
    mltk_tensor loss_t = t1(ld, 1);

    up(pred_dev, pred_host, N * mltk_shape_numel(per));
    ck_assert_int_eq(l->iface->forward(l->self, &be, &pred, &tgt, &loss_t, &dpred, 1.0f),
                     MLTK_OK);
    down(&loss, ld, 1);
    dev_free(ld);
    return loss;
}

/* gradient of the float loss against central differences, eps = 1e-2:
 * the losses are smooth (l1 is checked away from its kink), so the
 * truncation error is O(eps^2) of a gradient of size ~1/n */
typedef struct loss_fd {
    lp               *l;
    float            *pred_dev, *pred;
    int64_t           N;
    const mltk_shape *per;
    void             *tgt_dev;
    int               tgt_int;
} loss_fd;

static double loss_fd_eval(void *ctx)
{
    loss_fd *c = ctx;

    return loss_eval(c->l, c->pred_dev, c->pred, c->N, c->per, c->tgt_dev, c->tgt_int, NULL);
}

static void loss_check_fd(lp *l, float *pred_dev, float *pred, int64_t N,
                          const mltk_shape *per, void *tgt_dev, int tgt_int,
                          const float *g, double atol)
{
    loss_fd c = { l, pred_dev, pred, N, per, tgt_dev, tgt_int };
    fd_opts o = tu_fd_bounds(1e-2, atol);
    fd_report r;

    o.rel = 2e-2;
    if (tu_fd_check("dpred", loss_fd_eval, &c, pred, N * mltk_shape_numel(per), g, &o, &r))
        ck_abort_msg("%s", r.msg);
}

START_TEST(test_loss_cross_entropy)
{
    enum { N = LREF_XN, C = LREF_XC };
    mltk_shape per = shape1(C), ts = { 0, { 0 } };
    float z[N * C], g[N * C];
    int32_t lab[N];
    char *err = NULL;
    char wtext[256] = "";

    for (int i = 0; i < N; i++)
        lab[i] = lref_xent_labels[i];
    for (int c = 0; c < C; c++) {
        size_t len = strlen(wtext);
        snprintf(wtext + len, sizeof(wtext) - len, "%s%.17g", c ? ", " : "",
                 (double)lref_xent_weights[c]);
    }
    float *zd = dev_alloc(N * C), *gd = dev_alloc(N * C);
    int32_t *labd = (int32_t *)dev_alloc(N);
    up(labd, lab, N);

    for (size_t k = 0; k < sizeof(lref_xent) / sizeof(lref_xent[0]); k++) {
        const struct lref_xent *r = &lref_xent[k];
        char ls[32];
        const char *keys[] = { "label_smoothing", "weights" };
        const char *vals[] = { ls, wtext };
        lp l;

        snprintf(ls, sizeof(ls), "%.9g", (double)r->label_smoothing);
        loss_open(&l, "cross_entropy", r->weighted ? 2 : 1, keys, vals);
        ck_assert_int_eq(l.iface->setup(l.self, &per, MLTK_TARGET_CLASS, &ts, C, &err), MLTK_OK);
        memcpy(z, lref_xent_z, sizeof(z));
        float loss = loss_eval(&l, zd, z, N, &per, labd, 1, gd);
        down(g, gd, N * C);
        ck_assert_msg(close_enough(loss, r->loss, 1e-6, 1e-7), "case %zu: loss %.9g, torch %.9g",
                      k, (double)loss, r->loss);
        expect_close(g, r->grad, N * C, 1e-5, 1e-9, "dlogits vs torch");
        loss_check_fd(&l, zd, z, N, &per, labd, 1, g, 1e-4);
        loss_close(&l);
    }

    /* one weight per class: a count mismatch is refused at setup */
    {
        const char *keys[] = { "weights" };
        const char *vals[] = { "1, 2, 3" };
        lp l;
        loss_open(&l, "cross_entropy", 1, keys, vals);
        ck_assert_int_eq(l.iface->setup(l.self, &per, MLTK_TARGET_CLASS, &ts, C, &err),
                         MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, "weights has 3 values but there are 7 classes");
        free(err);
        err = NULL;
        loss_close(&l);
    }
    /* out-of-range options fail in create with the value */
    {
        const char *keys[] = { "label_smoothing", "weights" };
        const char *one[] = { "1" }, *neg[] = { "0", "1, -0.5, 1" }, *zero[] = { "0", "0, 0" };
        lp l;
        ck_assert_int_eq(loss_try_open(&l, "cross_entropy", 1, keys, one, &err), MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, "label_smoothing = 1");
        free(err);
        err = NULL;
        ck_assert_int_eq(loss_try_open(&l, "cross_entropy", 2, keys, neg, &err), MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, "class 1 is -0.5");
        free(err);
        err = NULL;
        ck_assert_int_eq(loss_try_open(&l, "cross_entropy", 2, keys, zero, &err), MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, "every class weight is 0");
        free(err);
        err = NULL;
        mltk_params_t *p = NULL;
        const char *badtype[] = { "0", "1, x" };
        ck_assert_int_ne(try_params(&p, "cross_entropy", MLTK_KIND_LOSS, 2, keys, badtype, &err),
                         MLTK_OK);
        TU_ASSERT_CONTAINS(err, "weights");
        free(err);
    }
    dev_free(zd); dev_free(gd); dev_free(labd);
}
END_TEST

/* mse, l1, bce_with_logits through their plugins against PyTorch */
START_TEST(test_loss_pointwise)
{
    static const char *const names[] = { "mse", "l1", "bce_with_logits" };
    const struct lref_pw *r = &lref_pw[_i];
    mltk_shape per = shape2(3, 5), flat = shape1(15), cls = { 0, { 0 } };
    char *err = NULL;
    lp l;

    ck_assert_int_eq(r->kind, _i);
    loss_open(&l, names[_i], 0, NULL, NULL);
    /* class targets, or targets of another shape, are refused */
    ck_assert_int_eq(l.iface->setup(l.self, &per, MLTK_TARGET_CLASS, &cls, 10, &err),
                     MLTK_ERR_SHAPE);
    TU_ASSERT_CONTAINS(err, "value targets");
    free(err);
    err = NULL;
    ck_assert_int_eq(l.iface->setup(l.self, &per, MLTK_TARGET_VALUE, &flat, 0, &err),
                     MLTK_ERR_SHAPE);
    TU_ASSERT_CONTAINS(err, "(3, 5) per sample but the targets have shape (15)");
    free(err);
    err = NULL;
    ck_assert_int_eq(l.iface->setup(l.self, &flat, MLTK_TARGET_VALUE, &flat, 0, &err), MLTK_OK);

    /* the 15 reference elements as 3 samples of (5) */
    mltk_shape five = shape1(5);
    ck_assert_int_eq(l.iface->setup(l.self, &five, MLTK_TARGET_VALUE, &five, 0, &err), MLTK_OK);
    float x[LREF_PN], g[LREF_PN];
    float *xd = dev_alloc(LREF_PN), *td = dev_alloc(LREF_PN), *gd = dev_alloc(LREF_PN);
    memcpy(x, _i == 2 ? lref_pw_logits : lref_pw_x, sizeof(x));
    up(td, _i == 2 ? lref_pw_prob : lref_pw_t, LREF_PN);
    float loss = loss_eval(&l, xd, x, 3, &five, td, 0, gd);
    down(g, gd, LREF_PN);
    ck_assert_msg(close_enough(loss, r->loss, 1e-6, 1e-7), "%s: loss %.9g, torch %.9g",
                  names[_i], (double)loss, r->loss);
    expect_close(g, r->grad, LREF_PN, 1e-6, 1e-10, "dpred vs torch");
    if (_i == 1)
        ck_assert_float_eq(g[3], 0.0f);   /* the tie */
    /* finite differences away from l1's kink */
    if (_i == 1)
        x[3] += 0.5f;
    loss_eval(&l, xd, x, 3, &five, td, 0, gd);
    down(g, gd, LREF_PN);
    loss_check_fd(&l, xd, x, 3, &five, td, 0, g, 1e-5);
    dev_free(xd); dev_free(td); dev_free(gd);
    loss_close(&l);
}
END_TEST

START_TEST(test_loss_kl_div)
{
    enum { N = LREF_KN, C = LREF_KC };
    mltk_shape per = shape1(C), cls = { 0, { 0 } }, other = shape1(C + 1);
    float s[N * C], g[N * C];
    float *sd = dev_alloc(N * C), *td = dev_alloc(N * C), *gd = dev_alloc(N * C);
    char *err = NULL;

    up(td, lref_kl_t, N * C);
    for (size_t k = 0; k < sizeof(lref_kl) / sizeof(lref_kl[0]); k++) {
        const struct lref_kl *r = &lref_kl[k];
        char T[32], a[32];
        const char *keys[] = { "temperature", "alpha" };
        const char *vals[] = { T, a };
        lp l;

        snprintf(T, sizeof(T), "%.9g", (double)r->temperature);
        snprintf(a, sizeof(a), "%.9g", (double)r->alpha);
        loss_open(&l, "kl_div", 2, keys, vals);
        ck_assert_int_eq(l.iface->setup(l.self, &per, MLTK_TARGET_VALUE, &per, 0, &err), MLTK_OK);
        memcpy(s, lref_kl_s, sizeof(s));
        float loss = loss_eval(&l, sd, s, N, &per, td, 0, gd);
        down(g, gd, N * C);
        ck_assert_msg(close_enough(loss, r->loss, 1e-5, 1e-7), "case %zu: loss %.9g, torch %.9g",
                      k, (double)loss, r->loss);
        expect_close(g, r->grad, N * C, 1e-5, 1e-9, "dstudent vs torch");
        loss_check_fd(&l, sd, s, N, &per, td, 0, g, 1e-4);
        loss_close(&l);
    }
    /* defaults T = 4, alpha = 1 match the first reference */
    {
        lp l;
        loss_open(&l, "kl_div", 0, NULL, NULL);
        ck_assert_int_eq(l.iface->setup(l.self, &per, MLTK_TARGET_VALUE, &per, 0, &err), MLTK_OK);
        memcpy(s, lref_kl_s, sizeof(s));
        float loss = loss_eval(&l, sd, s, N, &per, td, 0, NULL);
        ck_assert(lref_kl[0].temperature == 4.0f && lref_kl[0].alpha == 1.0f);
        ck_assert(close_enough(loss, lref_kl[0].loss, 1e-5, 1e-7));
        /* setup errors: class targets, teacher logits of another shape */
        ck_assert_int_eq(l.iface->setup(l.self, &per, MLTK_TARGET_CLASS, &cls, C, &err),
                         MLTK_ERR_SHAPE);
        TU_ASSERT_CONTAINS(err, "teacher's logits as value targets");
        free(err);
        err = NULL;
        ck_assert_int_eq(l.iface->setup(l.self, &per, MLTK_TARGET_VALUE, &other, 0, &err),
                         MLTK_ERR_SHAPE);
        TU_ASSERT_CONTAINS(err, "(6) per sample but the teacher's logits have shape (7)");
        free(err);
        err = NULL;
        loss_close(&l);
    }
    /* temperature must be > 0 */
    {
        const char *keys[] = { "temperature" };
        const char *vals[] = { "0" };
        lp l;
        ck_assert_int_eq(loss_try_open(&l, "kl_div", 1, keys, vals, &err), MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, "temperature = 0");
        free(err);
        err = NULL;
        mltk_params_t *p = NULL;
        const char *akeys[] = { "alpha" };
        const char *avals[] = { "1.5" };
        ck_assert_int_ne(try_params(&p, "kl_div", MLTK_KIND_LOSS, 1, akeys, avals, &err), MLTK_OK);
        TU_ASSERT_CONTAINS(err, "alpha");
        free(err);
    }
    dev_free(sd); dev_free(td); dev_free(gd);
}
END_TEST

/* ======================================================================== */
/* ---- whole configs ------------------------------------------------------- */

static int run_config(const char *text, const char *name, mltk_epoch_stats *st,
                      char **err, char **path_out)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, name, text);
    mltk_registry_t *r = NULL;
    mltk_config_t *cfg = NULL;
    mltk_session_t *s = NULL;
    mltk_session_opts o = { .quiet = 1 };
    int rc = mltk_registry_create(&r, NULL, 1, err);

    if (!rc)
        rc = mltk_config_load(&cfg, r, path, err);
    if (!rc)
        rc = mltk_session_create(&s, cfg, r, &o, err);
    if (!rc && st)
        rc = mltk_session_train(s, st, err);
    mltk_session_destroy(s);
    mltk_config_destroy(cfg);
    mltk_registry_destroy(r);
    if (path_out)
        *path_out = path;
    else
        free(path);
    tu_rmtree(dir);
    free(dir);
    return rc;
}

/* a residual join of a (32) and a (16) branch: refused at the add layer,
 * naming its file and line and both shapes */
START_TEST(test_config_residual_mismatch)
{
    static const char text[] =
        "[run]\nseed = 1\nbackend = cpu\nthreads = 2\n"                 /* 1-4 */
        "[train]\nepochs = 1\nbatch_size = 32\n"                        /* 5-7 */
        "[data]\ntype = idx\ntrain_limit = 64\ntest_limit = 64\n"       /* 8-11 */
        "[layer.flat]\ntype = flatten\n"                                /* 12-13 */
        "[layer.a]\ntype = dense\nunits = 32\nactivation = relu\n"      /* 14-17 */
        "[layer.b]\ntype = dense\nunits = 16\n"                         /* 18-20 */
        "[layer.join]\ntype = add\ninput = a, b\n"                      /* 21-23 */
        "[layer.out]\ntype = dense\nunits = 10\n"
        "[loss]\ntype = cross_entropy\n[optimizer]\ntype = sgd\n";
    char *err = NULL, *path = NULL;
    int rc = run_config(text, "res.ini", NULL, &err, &path);

    ck_assert_int_eq(rc, MLTK_ERR_SHAPE);
    char *want = tu_fmt("%s:21: layer 'join' (add):", path);
    TU_ASSERT_CONTAINS(err, want);
    TU_ASSERT_CONTAINS(err, "(32) and (16)");
    free(want);
    free(path);
    free(err);
}
END_TEST

/* add and concat in a real graph (a layer read by two others, gradients
 * summed over edges): a residual MLP with a concatenated skip trains */
START_TEST(test_config_residual_trains)
{
    static const char text[] =
        "[run]\nseed = 3\nbackend = cpu\nthreads = 2\n"
        "[train]\nepochs = 2\nbatch_size = 64\n"
        "[data]\ntype = idx\ntrain_limit = 4000\ntest_limit = 1000\n"
        "[layer.flat]\ntype = flatten\n"
        "[layer.stem]\ntype = dense\nunits = 64\nactivation = relu\ninit = he_normal\n"
        "[layer.h1]\ntype = dense\nunits = 64\nactivation = relu\ninit = he_uniform\n"
        "[layer.h2]\ntype = dense\nunits = 64\nbias_init = zeros\n"
        "[layer.res]\ntype = add\ninput = stem, h2\n"
        "[layer.act]\ntype = relu\n"
        "[layer.cat]\ntype = concat\ninput = act, stem\n"
        "[layer.out]\ntype = dense\nunits = 10\ninit = xavier_uniform\n"
        "[loss]\ntype = cross_entropy\nlabel_smoothing = 0.05\n"
        "[optimizer]\ntype = adam\nlr = 0.002\n";
    mltk_epoch_stats st;
    char *err = NULL;
    int rc = run_config(text, "resmlp.ini", &st, &err, NULL);

    ck_assert_msg(rc == MLTK_OK, "training failed: %s", err ? err : "?");
    /* 4000 samples, 2 epochs: an MLP of this size is past 0.75 */
    ck_assert_msg(st.val_acc >= 0.75, "val_acc %.4f", st.val_acc);
    ck_assert(st.train_loss > 0.0 && st.train_loss < 1.0);
}
END_TEST

/* the residual example shipped in examples/ parses, and its graph builds
 * and shape-checks (training it is the example's own business) */
START_TEST(test_config_resnet_example_builds)
{
    char *path = tu_fmt("%s/examples/fashion-mnist-resnet.ini", tu_srcdir());
    char *text = tu_read(path);
    char *err = NULL;
    int rc;

    ck_assert_msg(text != NULL, "cannot read %s", path);
    rc = run_config(text, "fashion-mnist-resnet.ini", NULL, &err, NULL);
    ck_assert_msg(rc == MLTK_OK, "%s: %s", path, err ? err : "?");
    free(text);
    free(path);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

int main(void)
{
    int have_data = access(FMNIST, R_OK) == 0;
    Suite *s = suite_create("graph");
    TCase *ops = tcase_create("ops");
    TCase *layers = tcase_create("layers");
    TCase *losses = tcase_create("losses");

    tcase_add_checked_fixture(ops, fixture_open, fixture_close);
    tcase_set_timeout(ops, 120);
    tcase_add_loop_test(ops, test_op_copy_2d, 1, 4);
    tcase_add_loop_test(ops, test_op_embedding, 1, 4);
    tcase_add_loop_test(ops, test_op_softmax_xent_ex, 1, 4);
    tcase_add_loop_test(ops, test_op_pointwise_loss, 1, 4);
    tcase_add_loop_test(ops, test_op_kl_div_logits, 1, 4);
    tcase_add_test(ops, test_op_torch_reference);
    suite_add_tcase(s, ops);

    tcase_add_checked_fixture(layers, fixture_open, fixture_close);
    tcase_set_timeout(layers, 120);
    tcase_add_test(layers, test_add);
    tcase_add_test(layers, test_add_errors);
    tcase_add_test(layers, test_concat);
    tcase_add_test(layers, test_concat_errors);
    tcase_add_test(layers, test_embedding);
    tcase_add_test(layers, test_embedding_init);
    tcase_add_loop_test(layers, test_dense_init, 0, 7);
    suite_add_tcase(s, layers);

    tcase_add_checked_fixture(losses, fixture_open, fixture_close);
    tcase_set_timeout(losses, 120);
    tcase_add_test(losses, test_loss_cross_entropy);
    tcase_add_loop_test(losses, test_loss_pointwise, 0, 3);
    tcase_add_test(losses, test_loss_kl_div);
    suite_add_tcase(s, losses);

    if (have_data) {
        TCase *cfg = tcase_create("configs");
        tcase_set_timeout(cfg, 600);
        tcase_add_test(cfg, test_config_residual_mismatch);
        tcase_add_test(cfg, test_config_residual_trains);
        tcase_add_test(cfg, test_config_resnet_example_builds);
        suite_add_tcase(s, cfg);
    }

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (failed)
        return EXIT_FAILURE;
    if (!have_data) {
        fprintf(stderr, "Fashion-MNIST not installed (%s): the config tests were "
                "skipped\n", FMNIST);
        return 77;
    }
    return EXIT_SUCCESS;
}
