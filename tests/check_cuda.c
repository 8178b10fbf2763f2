/* check_cuda.c - the cuda backend's own behaviour, and every layer plugin on
 * cuda against the cpu.
 *
 * What this is: both backends are opened through the registry from the
 * build tree.  The cuda backend's lifetime and memory (contexts on other
 * devices, the staging buffers of large transfers, overlapping copies, the
 * caching allocator) are tested first.  Then every layer plugin runs
 * forward and backward through the single-layer harness
 * (mltk_single_layer_create) on both backends, from the same parameters
 * and inputs, and outputs, input gradients, parameter gradients and
 * running statistics are compared.  The ops themselves are compared one
 * by one, cuda against cpu, by the cross mode of the conformance table
 * (check_conformance.c), which runs every op case of the table on every
 * backend present.
 *
 * When the cuda backend is not built, cannot be loaded, or finds no usable
 * GPU, the program prints why and exits 77 (automake's "skipped").
 *
 * Tolerances, stated where used: exact for layers that only move, pick or
 * mask values (pooling, flatten, concat, dropout, embedding); ~1e-5
 * relative for pointwise layers and norms (both sides round each
 * operation to fp32 but may fuse a multiply-add differently and use other
 * exp/erf implementations); ~1e-4 for dense and convolution relative to
 * the largest output (fp32 sums of K products, TF32 off), with 1e-5 of
 * the largest value as an absolute floor.  Denormal results may be
 * flushed to zero on the cpu (its kernels run with FTZ), so absolute
 * tolerances are at least 2e-38.
 *
 * Check runs without fork here: a CUDA context does not survive fork(),
 * and both backends are opened once for the whole suite.
 *
 * What this is not: a test of the ops (check_conformance.c) or of the
 * cpu backend, or a benchmark.
 */
#include "config.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mltk/rng.h>

#include "session.h"
#include "testutil.h"

/* ---- the two backends ------------------------------------------------------ */

static mltk_registry_t *reg;
static struct mltk_backend cpu, gpu;
static const struct mltk_backend *const BES[2] = { &cpu, &gpu };
static const char *const SIDE[2] = { "cpu", "cuda" };

#define EACH(s) for (int s = 0; s < 2; s++)
/* ---- a buffer on both backends ------------------------------------------- */

typedef struct buf {
    void  *p[2];
    size_t bytes;
} buf;

#define F(b, s) ((float *)(b).p[s])

static buf buf_new(size_t bytes)
{
    buf b = { { NULL, NULL }, bytes };
    EACH(s) ck_assert_int_eq(mltk_be_alloc(BES[s], bytes ? bytes : 4, &b.p[s]), MLTK_OK);
    return b;
}

static void buf_free(buf *b)
{
    EACH(s) {
        mltk_be_free(BES[s], b->p[s]);
        b->p[s] = NULL;
    }
}

static void buf_set(const buf *b, const void *host, size_t bytes)
{
    if (bytes)
        EACH(s) ck_assert_int_eq(mltk_be_upload(BES[s], b->p[s], host, bytes), MLTK_OK);
}

/* side s's contents, malloc()ed */
static void *buf_get(const buf *b, int s, size_t bytes)
{
    void *h = malloc(bytes ? bytes : 4);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(mltk_be_sync(BES[s]), MLTK_OK);
    if (bytes)
        ck_assert_int_eq(mltk_be_download(BES[s], h, b->p[s], bytes), MLTK_OK);
    return h;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static void rand_fill(float *x, int64_t n, float lo, float hi, uint64_t seed)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)((splitmix(&s) >> 40) * (1.0 / 16777216.0));
}

/* n floats, uniform in [lo, hi), the same on both sides */
static buf fbuf_rand(int64_t n, float lo, float hi, uint64_t seed)
{
    buf b = buf_new((size_t)n * sizeof(float));
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(h);
    rand_fill(h, n, lo, hi, seed);
    buf_set(&b, h, (size_t)n * sizeof(float));
    free(h);
    return b;
}

static buf fbuf_host(const float *h, int64_t n)
{
    buf b = buf_new((size_t)n * sizeof(float));
    buf_set(&b, h, (size_t)n * sizeof(float));
    return b;
}

/* ---- comparing ----------------------------------------------------------- */

/* cuda against cpu, element by element: |g - c| <= rtol |c| + atol + arel
 * max|c| (NaN matches NaN, an infinity the same infinity); the first
 * mismatch is reported with its index */
static void cmp_f(const char *what, const buf *b, int64_t n, double rtol, double atol,
                  double arel)
{
    float *c = buf_get(b, 0, (size_t)n * sizeof(float));
    float *g = buf_get(b, 1, (size_t)n * sizeof(float));
    double mx = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(c[i]) && fabs(c[i]) > mx)
            mx = fabs(c[i]);
    atol = (atol > 2e-38 ? atol : 2e-38) + arel * mx;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - (double)c[i]);
        int ok = d <= rtol * fabs(c[i]) + atol || (isnan(c[i]) && isnan(g[i]))
            || (isinf(c[i]) && g[i] == c[i]);
        EXPECT(ok, "%s[%lld]: cuda %.9g, cpu %.9g (diff %.3g, tol %.3g)", what,
               (long long)i, (double)g[i], (double)c[i], d, rtol * fabs(c[i]) + atol);
    }
    free(c);
    free(g);
}

/* ---- lifetime and memory -------------------------------------------------- */

START_TEST(test_lifetime)
{
    TU_ASSERT_CONTAINS(gpu.i->device_name(gpu.ctx), "cuda: ");
    ck_assert_ptr_null(gpu.i->get_proc(gpu.ctx, "no_such_op"));
    ck_assert_ptr_nonnull(gpu.i->get_proc(gpu.ctx, "cuda_set_tf32"));
    ck_assert_int_eq(gpu.i->sync(gpu.ctx), MLTK_OK);
    char *why = NULL;
    mltk_backend_opts po = { .size = sizeof po, .threads = 0, .device = 0, .seed = 1 };
    ck_assert_int_eq(gpu.i->probe(&po, &why), 1);
    ck_assert_ptr_null(why);

    /* a second context on the same device, and a device that is not there */
    mltk_backend_opts o = { .size = sizeof o, .threads = 0, .device = 0, .seed = 1 };
    void *ctx = NULL;
    char *err = NULL;
    ck_assert_int_eq(gpu.i->create(&ctx, &o, &err), MLTK_OK);
    ck_assert_ptr_nonnull(ctx);
    gpu.i->destroy(ctx);
    o.device = 4096;
    ctx = (void *)1;
    ck_assert_int_eq(gpu.i->create(&ctx, &o, &err), MLTK_ERR_INVALID);
    ck_assert_ptr_null(ctx);
    TU_ASSERT_CONTAINS(err, "device 4096");
    free(err);
    gpu.i->destroy(NULL);
}
END_TEST

START_TEST(test_memory)
{
    /* the last two cross the 4 MiB staging buffers */
    static const size_t sizes[] = { 0, 1, 3, 64, 65, 4097, 1 << 20, (9 << 20) + 13 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        void *p = NULL, *q = NULL;
        ck_assert_int_eq(gpu.i->alloc(gpu.ctx, n, &p), MLTK_OK);
        ck_assert_int_eq(gpu.i->alloc(gpu.ctx, n, &q), MLTK_OK);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p & 63, 0);
        unsigned char *host = malloc(n + 1), *back = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            host[i] = (unsigned char)(i * 7 + k);
        ck_assert_int_eq(gpu.i->upload(gpu.ctx, p, host, n), MLTK_OK);
        ck_assert_int_eq(gpu.i->copy(gpu.ctx, q, p, n), MLTK_OK);
        memset(back, 0xee, n + 1);
        ck_assert_int_eq(gpu.i->download(gpu.ctx, back, q, n), MLTK_OK);
        ck_assert_int_eq(memcmp(host, back, n), 0);
        ck_assert_int_eq(back[n], 0xee);
        /* overlapping copy: memmove semantics */
        if (n >= 64) {
            size_t shift = n / 3, len = n - shift;
            ck_assert_int_eq(gpu.i->copy(gpu.ctx, (char *)q + shift, q, len), MLTK_OK);
            memmove(host + shift, host, len);
            ck_assert_int_eq(gpu.i->download(gpu.ctx, back, q, n), MLTK_OK);
            ck_assert_int_eq(memcmp(host, back, n), 0);
        }
        free(host);
        free(back);
        gpu.i->free(gpu.ctx, p);
        gpu.i->free(gpu.ctx, q);
        /* the caching allocator hands the same class back */
        void *r = NULL;
        ck_assert_int_eq(gpu.i->alloc(gpu.ctx, n, &r), MLTK_OK);
        ck_assert_msg(r == p || r == q, "a freed block of %zu bytes was not reused", n);
        gpu.i->free(gpu.ctx, r);
    }
    gpu.i->free(gpu.ctx, NULL);
    void *p = (void *)1;
    ck_assert_int_eq(gpu.i->alloc(gpu.ctx, SIZE_MAX, &p), MLTK_ERR_NOMEM);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(gpu.i->alloc(gpu.ctx, (size_t)1 << 62, &p), MLTK_ERR_NOMEM);
    ck_assert_int_eq(gpu.i->copy(gpu.ctx, NULL, NULL, 0), MLTK_OK);
    ck_assert_int_eq(gpu.i->copy(gpu.ctx, NULL, &p, 4), MLTK_ERR_INVALID);
    ck_assert_int_eq(gpu.i->upload(gpu.ctx, NULL, &p, 4), MLTK_ERR_INVALID);
    ck_assert_int_eq(gpu.i->download(gpu.ctx, &p, NULL, 4), MLTK_ERR_INVALID);
    /* the context still works after the failures */
    buf b = fbuf_rand(100, -1, 1, 5);
    cmp_f("after failed allocations", &b, 100, 0, 0, 0);
    buf_free(&b);
}
END_TEST

/* ---- every layer plugin through the single-layer harness ----------------------- */

static mltk_params_t *layer_params(const char *name, int n, const char *const *keys,
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

static mltk_shape batched(int64_t batch, const mltk_shape *s)
{
    mltk_shape b = { s->ndim + 1, { batch } };
    for (int i = 0; i < s->ndim; i++)
        b.dim[i + 1] = s->dim[i];
    return b;
}

#define MAX_IN 3

/* A layer on both backends, the same parameters and inputs.  ids_vocab > 0:
 * the inputs are float-coded ids below it. */
static void layer_case(const char *name, int n_kv, const char *const *keys,
                       const char *const *vals, int n_in, const mltk_shape *in, int64_t batch,
                       int64_t ids_vocab, double rtol, double arel)
{
    const struct mltk_layer_i *li = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_registry_load(reg, name, MLTK_KIND_LAYER, (const void **)&li, &err)
                  == MLTK_OK, "load %s: %s", name, err ? err : "?");
    mltk_params_t *params = layer_params(name, n_kv, keys, vals);
    void *self[2] = { NULL, NULL };
    mltk_single_layer *sl[2] = { NULL, NULL };
    EACH(s) {
        ck_assert_msg(li->create(&self[s], params, &err) == MLTK_OK, "create %s: %s", name,
                      err ? err : "?");
        ck_assert_msg(mltk_single_layer_create(&sl[s], li, self[s], BES[s], n_in, in, batch,
                                               42, &err) == MLTK_OK,
                      "setup %s on %s: %s", name, SIDE[s], err ? err : "?");
    }
    ck_assert(mltk_shape_equal(&sl[0]->out, &sl[1]->out));
    ck_assert_int_eq(sl[0]->n_params, sl[1]->n_params);
    ck_assert_int_eq(sl[0]->n_buffers, sl[1]->n_buffers);

    /* the cpu's initial parameters and state, copied to cuda */
    for (int j = 0; j < sl[0]->n_params; j++) {
        int64_t n = mltk_tensor_numel(&sl[0]->params[j]);
        float *h = malloc((size_t)n * 4);
        ck_assert_int_eq(cpu.i->download(cpu.ctx, h, sl[0]->params[j].data, (size_t)n * 4),
                         MLTK_OK);
        ck_assert_int_eq(gpu.i->upload(gpu.ctx, sl[1]->params[j].data, h, (size_t)n * 4),
                         MLTK_OK);
        free(h);
    }
    for (int j = 0; j < sl[0]->n_buffers; j++) {
        if (sl[0]->buffers[j].dtype != MLTK_F32)
            continue;
        int64_t n = mltk_tensor_numel(&sl[0]->buffers[j]);
        float *h = malloc((size_t)n * 4);
        ck_assert_int_eq(cpu.i->download(cpu.ctx, h, sl[0]->buffers[j].data, (size_t)n * 4),
                         MLTK_OK);
        ck_assert_int_eq(gpu.i->upload(gpu.ctx, sl[1]->buffers[j].data, h, (size_t)n * 4),
                         MLTK_OK);
        free(h);
    }

    buf x[MAX_IN], dx[MAX_IN];
    mltk_tensor xt[2][MAX_IN], dxt[2][MAX_IN];
    int64_t nx[MAX_IN];
    for (int i = 0; i < n_in; i++) {
        nx[i] = batch * mltk_shape_numel(&in[i]);
        float *h = malloc((size_t)nx[i] * 4);
        rand_fill(h, nx[i], -2, 2, 100 + (uint64_t)i);
        if (ids_vocab > 0) {
            uint64_t st = 5;
            for (int64_t e = 0; e < nx[i]; e++)
                h[e] = (float)(splitmix(&st) % (uint64_t)ids_vocab);
        }
        x[i] = fbuf_host(h, nx[i]);
        dx[i] = buf_new((size_t)nx[i] * 4);
        free(h);
        EACH(s) {
            xt[s][i] = (mltk_tensor){ .data = x[i].p[s], .shape = batched(batch, &in[i]),
                                      .dtype = MLTK_F32 };
            dxt[s][i] = (mltk_tensor){ .data = dx[i].p[s], .shape = batched(batch, &in[i]),
                                       .dtype = MLTK_F32 };
        }
    }
    int64_t ny = batch * mltk_shape_numel(&sl[0]->out);
    buf y = buf_new((size_t)ny * 4), dy = fbuf_rand(ny, -1, 1, 77);
    char what[96];

    for (int mode = MLTK_TRAIN; mode >= MLTK_EVAL; mode--) {
        EACH(s) {
            mltk_tensor yt = { .data = y.p[s], .shape = batched(batch, &sl[s]->out),
                               .dtype = MLTK_F32 };
            mltk_tensor dyt = { .data = dy.p[s], .shape = batched(batch, &sl[s]->out),
                                .dtype = MLTK_F32 };
            mltk_layer_run r = {
                .be = BES[s], .mode = (mltk_mode)mode, .batch = batch, .n_in = n_in,
                .x = xt[s], .dx = dxt[s], .y = &yt, .dy = &dyt, .params = sl[s]->params,
                .grads = sl[s]->grads, .buffers = sl[s]->buffers, .seed = 7, .step = 3,
            };
            int rc = li->forward(self[s], &r);
            ck_assert_msg(rc == MLTK_OK, "%s forward on %s: %s", name, SIDE[s],
                          mltk_status_str(rc));
            if (mode == MLTK_TRAIN) {
                rc = li->backward(self[s], &r);
                ck_assert_msg(rc == MLTK_OK, "%s backward on %s: %s", name, SIDE[s],
                              mltk_status_str(rc));
            }
            ck_assert_int_eq(mltk_be_sync(BES[s]), MLTK_OK);
        }
        snprintf(what, sizeof what, "%s %s y", name, mode ? "train" : "eval");
        cmp_f(what, &y, ny, rtol, 0, arel);
        if (mode != MLTK_TRAIN)
            continue;
        for (int i = 0; i < n_in && ids_vocab == 0; i++) {
            snprintf(what, sizeof what, "%s dx[%d]", name, i);
            cmp_f(what, &dx[i], nx[i], rtol, 0, arel);
        }
        for (int j = 0; j < sl[0]->n_params; j++) {
            buf g = { { sl[0]->grads[j].data, sl[1]->grads[j].data }, 0 };
            snprintf(what, sizeof what, "%s grad[%d]", name, j);
            cmp_f(what, &g, mltk_tensor_numel(&sl[0]->grads[j]), rtol, 0, arel);
        }
        for (int j = 0; j < sl[0]->n_buffers; j++) {
            if (sl[0]->buffers[j].dtype != MLTK_F32)
                continue;
            buf st = { { sl[0]->buffers[j].data, sl[1]->buffers[j].data }, 0 };
            snprintf(what, sizeof what, "%s state[%d]", name, j);
            cmp_f(what, &st, mltk_tensor_numel(&sl[0]->buffers[j]), 1e-5, 1e-7, 0);
        }
    }

    for (int i = 0; i < n_in; i++) {
        buf_free(&x[i]);
        buf_free(&dx[i]);
    }
    buf_free(&y);
    buf_free(&dy);
    EACH(s) {
        mltk_single_layer_destroy(sl[s], BES[s]);
        if (li->destroy)
            li->destroy(self[s]);
    }
    mltk_params_free(params);
}

static mltk_shape shp(int nd, int64_t a, int64_t b, int64_t c)
{
    int64_t d[3] = { a, b, c };
    return mltk_shape_make(nd, d);
}

START_TEST(test_layers_dense_conv)
{
    mltk_shape v7 = shp(1, 7, 0, 0), img = shp(3, 3, 9, 9), img4 = shp(3, 4, 8, 8);
    const char *dk[] = { "units", "activation", "bias" };
    const char *dv1[] = { "5", "relu", "true" }, *dv2[] = { "33", "tanh", "false" };
    layer_case("dense", 3, dk, dv1, 1, &v7, 6, 0, 1e-5, 1e-5);
    layer_case("dense", 3, dk, dv2, 1, &v7, 130, 0, 1e-5, 1e-5);
    const char *ck[] = { "filters", "kernel", "padding", "stride", "activation", "groups" };
    const char *cv1[] = { "6", "3", "1", "1", "relu", "1" };
    const char *cv2[] = { "8", "3", "0", "2", "none", "1" };
    const char *cv3[] = { "4", "3", "1", "1", "sigmoid", "4" };
    layer_case("conv2d", 6, ck, cv1, 1, &img, 5, 0, 1e-4, 1e-5);
    layer_case("conv2d", 6, ck, cv2, 1, &img, 3, 0, 1e-4, 1e-5);
    layer_case("conv2d", 6, ck, cv3, 1, &img4, 2, 0, 1e-4, 1e-5);
}
END_TEST

START_TEST(test_layers_pool_norm)
{
    mltk_shape img = shp(3, 3, 9, 9), img8 = shp(3, 2, 8, 8), v8 = shp(1, 8, 0, 0);
    mltk_shape mat = shp(2, 5, 7, 0);
    const char *pk[] = { "kernel", "stride", "padding" };
    const char *pv1[] = { "2", "2", "0" }, *pv2[] = { "3", "2", "1" }, *pv3[] = { "3", "1", "1" };
    layer_case("maxpool2d", 3, pk, pv1, 1, &img8, 4, 0, 0, 0);
    layer_case("maxpool2d", 3, pk, pv2, 1, &img, 3, 0, 0, 0);
    layer_case("avgpool2d", 3, pk, pv3, 1, &img, 3, 0, 0, 0);
    layer_case("global_avgpool", 0, NULL, NULL, 1, &img, 3, 0, 1e-6, 1e-7);
    const char *bk[] = { "momentum", "affine" };
    const char *bv1[] = { "0.1", "true" }, *bv2[] = { "0.3", "false" };
    layer_case("batchnorm", 2, bk, bv1, 1, &img, 6, 0, 1e-4, 1e-5);
    layer_case("batchnorm", 2, bk, bv2, 1, &v8, 33, 0, 1e-4, 1e-5);
    const char *lk[] = { "axis" };
    const char *lv1[] = { "last" }, *lv2[] = { "all" };
    layer_case("layernorm", 1, lk, lv1, 1, &mat, 4, 0, 1e-4, 1e-5);
    layer_case("layernorm", 1, lk, lv2, 1, &mat, 4, 0, 1e-4, 1e-5);
}
END_TEST

START_TEST(test_layers_pointwise)
{
    mltk_shape m = shp(2, 3, 11, 0), t = shp(3, 2, 3, 4);
    static const char *const names[] = { "relu", "sigmoid", "tanh", "softmax", "flatten" };
    for (int i = 0; i < 5; i++)
        layer_case(names[i], 0, NULL, NULL, 1, &m, 5, 0, 2e-5, 2e-6);
    layer_case("flatten", 0, NULL, NULL, 1, &t, 3, 0, 0, 0);
    const char *lk[] = { "negative_slope" }, *lv[] = { "0.2" };
    layer_case("leaky_relu", 1, lk, lv, 1, &m, 5, 0, 1e-6, 0);
    const char *ek[] = { "alpha" }, *ev[] = { "0.7" };
    layer_case("elu", 1, ek, ev, 1, &m, 5, 0, 2e-5, 2e-6);
    const char *gk[] = { "approximate" }, *gv1[] = { "none" }, *gv2[] = { "tanh" };
    layer_case("gelu", 1, gk, gv1, 1, &m, 5, 0, 2e-5, 2e-6);
    layer_case("gelu", 1, gk, gv2, 1, &m, 5, 0, 2e-5, 2e-6);
    const char *dk[] = { "rate" }, *dv[] = { "0.3" };
    mltk_shape v40 = shp(1, 40, 0, 0);
    layer_case("dropout", 1, dk, dv, 1, &v40, 9, 0, 0, 0);
}
END_TEST

START_TEST(test_layers_multi_embed)
{
    mltk_shape two[2] = { shp(2, 5, 6, 0), shp(2, 5, 6, 0) };
    layer_case("add", 0, NULL, NULL, 2, two, 4, 0, 1e-6, 0);
    mltk_shape cat[3] = { shp(2, 5, 6, 0), shp(2, 5, 2, 0), shp(2, 5, 1, 0) };
    const char *ck[] = { "axis" }, *cv1[] = { "1" }, *cv0[] = { "0" };
    layer_case("concat", 1, ck, cv1, 3, cat, 3, 0, 0, 0);
    mltk_shape rows[2] = { shp(2, 2, 6, 0), shp(2, 3, 6, 0) };
    layer_case("concat", 1, ck, cv0, 2, rows, 3, 0, 0, 0);
    const char *ek[] = { "vocab", "dim" }, *ev[] = { "11", "6" };
    mltk_shape ids = shp(1, 5, 0, 0);
    layer_case("embedding", 2, ek, ev, 1, &ids, 7, 11, 0, 0);
}
END_TEST

/* ---- suite ------------------------------------------------------------------- */

static Suite *cuda_suite(void)
{
    Suite *s = suite_create("cuda");
    TCase *dev = tcase_create("device");
    tcase_add_test(dev, test_lifetime);
    tcase_add_test(dev, test_memory);
    suite_add_tcase(s, dev);
    TCase *layers = tcase_create("layers");
    tcase_add_test(layers, test_layers_dense_conv);
    tcase_add_test(layers, test_layers_pool_norm);
    tcase_add_test(layers, test_layers_pointwise);
    tcase_add_test(layers, test_layers_multi_embed);
    suite_add_tcase(s, layers);
    return s;
}

/* Open cpu and cuda; exit 77 with the reason when cuda cannot run here. */
static void backends_open(void)
{
    char *err = NULL;
    if (mltk_registry_create(&reg, NULL, 1, &err)) {
        fprintf(stderr, "check_cuda: registry: %s\n", err ? err : "?");
        exit(EXIT_FAILURE);
    }
    mltk_backend_opts o = { .size = sizeof o, .threads = 1, .device = 0, .seed = 1 };
    if (mltk_backend_open(&cpu, reg, "cpu", &o, &err)) {
        fprintf(stderr, "check_cuda: cpu backend: %s\n", err ? err : "?");
        exit(EXIT_FAILURE);
    }
    const mltk_desc *d = NULL;
    if (mltk_registry_find(reg, "cuda", MLTK_KIND_BACKEND, &d, NULL)) {
        printf("check_cuda: skipped: the cuda backend is not built (configure found no "
               "usable CUDA toolkit)\n");
        exit(77);
    }
    const struct mltk_backend_i *bi = NULL;
    if (mltk_registry_load(reg, "cuda", MLTK_KIND_BACKEND, (const void **)&bi, &err)) {
        printf("check_cuda: skipped: %s\n", err ? err : "the cuda backend does not load");
        exit(77);
    }
    char *why = NULL;
    if (!bi->probe(&o, &why)) {
        printf("check_cuda: skipped: cuda: %s\n", why ? why : "probe failed");
        free(why);
        exit(77);
    }
    free(why);
    if (mltk_backend_open(&gpu, reg, "cuda", &o, &err)) {
        fprintf(stderr, "check_cuda: the cuda backend probes OK but does not start: %s\n",
                err ? err : "?");
        exit(EXIT_FAILURE);
    }
    printf("check_cuda: %s against %s\n", gpu.i->device_name(gpu.ctx),
           cpu.i->device_name(cpu.ctx));
}

/* AddressSanitizer's shadow memory collides with the CUDA driver's address
 * reservations unless protect_shadow_gap=0: a sanitized build re-runs
 * itself with that option, so the GPU is tested there too. */
static void asan_cuda_options(char **argv)
{
#if defined(__SANITIZE_ADDRESS__)
    const char *o = getenv("ASAN_OPTIONS");
    if (o && strstr(o, "protect_shadow_gap"))
        return;
    /* (no Check asserts here: they work inside tests only) */
    size_t len = (o ? strlen(o) : 0) + 32;
    char *opts = malloc(len);
    if (!opts)
        return;
    snprintf(opts, len, "%s%sprotect_shadow_gap=0", o ? o : "", o && *o ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    free(opts);
    execv("/proc/self/exe", argv);
    /* not re-run: go on without the option */
#else
    (void)argv;
#endif
}

int main(int argc, char **argv)
{
    (void)argc;
    asan_cuda_options(argv);
    backends_open();
    SRunner *sr = srunner_create(cuda_suite());
    /* a CUDA context does not survive fork(): the tests run in this process */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    mltk_backend_close(&gpu);
    mltk_backend_close(&cpu);
    mltk_registry_destroy(reg);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
