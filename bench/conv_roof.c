/* conv_roof.c - how far the cpu backend's convolutions are from sgemm.
 *
 * What this is: a micro-benchmark that dlopen()s the cpu backend from the
 * build tree and times conv2d forward, backward-data and backward-filter
 * (and the 2x2 max pooling between them) for each layer shape of
 * examples/fashion-mnist-cnn.ini at batch 128, printing milliseconds,
 * GFLOP/s (2 * multiply-adds of the convolution proper) and the share of
 * the sgemm roof, which it measures first: the backend's own gemm on a
 * 2048 x 2048 x 2048 product, the best any layer could do.
 *
 * Ops go through the op API of backend.h (mltk_op_gemm, mltk_op_conv2d_*,
 * mltk_op_pool2d_*) on a struct mltk_backend built here around the
 * plugin's vtable, so each time includes the core's check of the call (a
 * microsecond against milliseconds).
 *
 * Given a second cpu.so (another build of the same plugin ABI, e.g. of the
 * previous commit), it times both side by side: every repetition runs the op on the baseline
 * and then on the build under test, so that both see the same load on a
 * shared machine, and the best time of each is reported with their ratio.
 *
 * Build and run from the build directory (bench/cnn_vs_torch.py does it):
 *   cc -O2 -I$(srcdir)/include bench/conv_roof.c -o conv_roof \
 *      .libs/libmltk.so -Wl,-rpath,$PWD/.libs -ldl
 *   ./conv_roof [threads] [build dir] [baseline cpu.so]
 *
 * What this is not: a test (nothing is compared) or a model benchmark
 * (bench/cnn_vs_torch.py times whole training runs).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mltk/plugin.h>

/* ---- plumbing ---- */

/* the plugin's vtable and context as the op API sees them (no core state:
 * errors go to the log) */
typedef struct backend {
    const struct mltk_backend_i *bi;
    void *ctx;
    struct mltk_backend be;
} backend;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *falloc(const backend *b, size_t n)
{
    void *p = NULL;
    if (b->bi->alloc(b->ctx, (n > 0 ? n : 1) * sizeof(float), &p)) {
        fprintf(stderr, "conv_roof: out of memory\n");
        exit(1);
    }
    float *f = p;
    for (size_t i = 0; i < n; i++)
        f[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return f;
}

static void check(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "conv_roof: %s failed (%d)\n", what, rc);
        exit(1);
    }
}

static int open_backend(backend *b, const char *path, int threads)
{
    char *err = NULL;
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "conv_roof: %s\n", dlerror());
        return 1;
    }
    mltk_plugin_entry_fn entry = (mltk_plugin_entry_fn)dlsym(lib, "mltk_plugin_cpu");
    if (!entry) {
        fprintf(stderr, "conv_roof: no mltk_plugin_cpu in %s\n", path);
        return 1;
    }
    const struct mltk_plugin *pl = entry();
    if (pl->abi_major != MLTK_ABI_MAJOR) {
        fprintf(stderr, "conv_roof: %s was built for plugin ABI %u, this program for %d\n",
                path, (unsigned)pl->abi_major, MLTK_ABI_MAJOR);
        return 1;
    }
    b->bi = pl->iface;
    mltk_backend_opts o = { .size = sizeof(o), .threads = threads, .device = 0, .seed = 1 };
    if (b->bi->create(&b->ctx, &o, &err)) {
        fprintf(stderr, "conv_roof: %s: %s\n", path, err ? err : "cannot create the backend");
        return 1;
    }
    b->be = (struct mltk_backend){ .i = b->bi, .ctx = b->ctx, .name = "cpu", .state = NULL };
    return 0;
}

/* ---- the roof ---- */

static double gemm_roof(const backend *b)
{
    const int64_t n = 2048;
    float *a = falloc(b, (size_t)(n * n)), *bm = falloc(b, (size_t)(n * n));
    float *c = falloc(b, (size_t)(n * n));
    mltk_tensor ta = mltk_tensor_2d(a, MLTK_F32, n, n), tb = mltk_tensor_2d(bm, MLTK_F32, n, n);
    mltk_tensor tc = mltk_tensor_2d(c, MLTK_F32, n, n);
    const mltk_gemm_params gp = { .ta = 0, .tb = 0, .alpha = 1.0f, .beta = 0.0f,
                                  .act = MLTK_ACT_NONE, .act_alpha = 0.0f };
    double best = 1e30;
    for (int it = 0; it < 4; it++) {
        double t = now();
        check(mltk_op_gemm(&b->be, &tc, &ta, &tb, NULL, &gp), "gemm");
        t = now() - t;
        best = t < best ? t : best;
    }
    b->bi->free(b->ctx, a);
    b->bi->free(b->ctx, bm);
    b->bi->free(b->ctx, c);
    return 2.0 * (double)n * n * n / best / 1e9;
}

/* ---- one conv layer ---- */

typedef struct layer {
    const char *name;
    mltk_conv2d_desc d;
    int need_dx;
} layer;

/* a layer's tensors on one backend: the buffers and their views */
typedef struct conv_bufs {
    float *x, *y, *w, *b, *dw, *db;
    void *ws;
    size_t wsb;
    mltk_tensor tx, ty, tw, tb, tdw, tdb;
} conv_bufs;

/* the conv params of a layer: forward with bias and relu */
static mltk_conv2d_params conv_params(const mltk_conv2d_desc *d)
{
    return (mltk_conv2d_params){ .d = *d, .act = MLTK_ACT_RELU, .act_alpha = 0.0f };
}

static mltk_tensor tensor4(float *p, int64_t a, int64_t b, int64_t c, int64_t d)
{
    const int64_t dims[4] = { a, b, c, d };
    return mltk_tensor_make(p, MLTK_F32, 4, dims);
}

static void conv_bufs_open(conv_bufs *t, const backend *be, const mltk_conv2d_desc *d)
{
    size_t nx = (size_t)(d->N * d->C * d->H * d->W), ny = (size_t)(d->N * d->K * d->P * d->Q);
    size_t nw = (size_t)(d->K * d->C / d->groups * d->R * d->S);
    const mltk_conv2d_params cp = conv_params(d);
    size_t wsb = mltk_op_conv2d_workspace(&be->be, &cp, MLTK_F32);
    t->x = falloc(be, nx);
    t->y = falloc(be, ny);
    t->w = falloc(be, nw);
    t->b = falloc(be, (size_t)d->K);
    t->dw = falloc(be, nw);
    t->db = falloc(be, (size_t)d->K);
    t->ws = NULL;
    t->wsb = wsb;
    if (wsb && be->bi->alloc(be->ctx, wsb, &t->ws)) {
        fprintf(stderr, "conv_roof: cannot allocate %zu bytes of workspace\n", wsb);
        exit(1);
    }
    t->tx = tensor4(t->x, d->N, d->C, d->H, d->W);
    t->ty = tensor4(t->y, d->N, d->K, d->P, d->Q);
    t->tw = tensor4(t->w, d->K, d->C / d->groups, d->R, d->S);
    t->tdw = tensor4(t->dw, d->K, d->C / d->groups, d->R, d->S);
    t->tb = mltk_tensor_1d(t->b, MLTK_F32, d->K);
    t->tdb = mltk_tensor_1d(t->db, MLTK_F32, d->K);
}

static void conv_bufs_close(conv_bufs *t, const backend *be)
{
    if (t->ws)
        be->bi->free(be->ctx, t->ws);
    be->bi->free(be->ctx, t->x);
    be->bi->free(be->ctx, t->y);
    be->bi->free(be->ctx, t->w);
    be->bi->free(be->ctx, t->b);
    be->bi->free(be->ctx, t->dw);
    be->bi->free(be->ctx, t->db);
}

/* op `which` (0 fwd, 1 bwd data, 2 bwd filter) once; its seconds */
static double conv_once(const backend *be, conv_bufs *t, const mltk_conv2d_desc *d, int which)
{
    const mltk_conv2d_params cp = conv_params(d);
    double t0 = now();
    if (which == 0)
        check(mltk_op_conv2d_forward(&be->be, &t->ty, &t->tx, &t->tw, &t->tb, &cp, t->ws,
                                     t->wsb), "fwd");
    else if (which == 1)
        check(mltk_op_conv2d_backward_data(&be->be, &t->tx, &t->ty, &t->tw, &cp, t->ws,
                                           t->wsb), "bwd data");
    else
        check(mltk_op_conv2d_backward_filter(&be->be, &t->tdw, &t->tdb, &t->ty, &t->tx, &cp,
                                             t->ws, t->wsb), "bwd filter");
    return now() - t0;
}

static void print_row(const char *what, double t, double t_base, double flop, double roof)
{
    printf("  %-18s %8.3f ms", what, t * 1e3);
    if (flop > 0.0)
        printf("  %6.1f GFLOP/s  %5.1f%% of roof", flop / t / 1e9, 100.0 * flop / t / 1e9 / roof);
    if (t_base > 0.0)
        printf("   (baseline %8.3f ms, %.2fx)", t_base * 1e3, t_base / t);
    printf("\n");
}

/* best of `reps` runs of each op (after one warm-up), interleaved with the
 * baseline's when there is one; returns the build's total */
static double run_layer(const layer *l, const backend *be, const backend *base, double roof,
                        int reps, double *base_total)
{
    const mltk_conv2d_desc *d = &l->d;
    double macs = (double)d->N * d->K * d->P * d->Q * (double)(d->C / d->groups) * d->R * d->S;
    conv_bufs t, tb;
    double total = 0.0;
    static const char *const names[3] = { "forward+bias+relu", "backward data", "backward filter" };

    conv_bufs_open(&t, be, d);
    if (base)
        conv_bufs_open(&tb, base, d);
    printf("%s: x (%lld,%lld,%lld,%lld) w (%lld,%lld,%lld,%lld) -> (%lld,%lld,%lld,%lld), "
           "workspace %.1f MB\n", l->name, (long long)d->N, (long long)d->C,
           (long long)d->H, (long long)d->W, (long long)d->K, (long long)(d->C / d->groups),
           (long long)d->R, (long long)d->S, (long long)d->N, (long long)d->K,
           (long long)d->P, (long long)d->Q, (double)t.wsb / 1048576.0);
    for (int op = 0; op < 3; op++) {
        if (op == 1 && !l->need_dx)
            continue;
        double best = 1e30, best_base = 1e30;
        for (int it = 0; it < reps + 1; it++) {
            double tt;
            if (base) {
                tt = conv_once(base, &tb, d, op);
                if (it > 0 && tt < best_base)
                    best_base = tt;
            }
            tt = conv_once(be, &t, d, op);
            if (it > 0 && tt < best)
                best = tt;
        }
        total += best;
        if (base)
            *base_total += best_base;
        print_row(names[op], best, base ? best_base : 0.0, 2.0 * macs, roof);
    }
    conv_bufs_close(&t, be);
    if (base)
        conv_bufs_close(&tb, base);
    return total;
}

/* ---- one pooling layer ---- */

static void pool_once(const backend *be, float *y, float *x, float *dx,
                      const mltk_pool2d_desc *d, double *tf, double *tb)
{
    const mltk_pool2d_params pp = { .kind = MLTK_POOL_MAX, .d = *d };
    mltk_tensor tx = tensor4(x, d->N, d->C, d->H, d->W), tdx = tensor4(dx, d->N, d->C, d->H, d->W);
    mltk_tensor ty = tensor4(y, d->N, d->C, d->P, d->Q);
    double t = now();
    check(mltk_op_pool2d_forward(&be->be, &ty, &tx, &pp), "pool fwd");
    double t2 = now();
    check(mltk_op_pool2d_backward(&be->be, &tdx, &ty, &tx, &ty, &pp), "pool bwd");
    double t3 = now();
    *tf = t2 - t;
    *tb = t3 - t2;
}

static double run_pool(const char *name, const mltk_pool2d_desc *d, const backend *be,
                       const backend *base, int reps, double *base_total)
{
    size_t nx = (size_t)(d->N * d->C * d->H * d->W), ny = (size_t)(d->N * d->C * d->P * d->Q);
    float *x = falloc(be, nx), *y = falloc(be, ny), *dx = falloc(be, nx);
    float *xb = NULL, *yb = NULL, *dxb = NULL;
    double bf = 1e30, bb = 1e30, bfb = 1e30, bbb = 1e30, tf, tb;
    if (base) {
        xb = falloc(base, nx);
        yb = falloc(base, ny);
        dxb = falloc(base, nx);
    }
    for (int it = 0; it < reps + 1; it++) {
        if (base) {
            pool_once(base, yb, xb, dxb, d, &tf, &tb);
            if (it > 0) {
                bfb = tf < bfb ? tf : bfb;
                bbb = tb < bbb ? tb : bbb;
            }
        }
        pool_once(be, y, x, dx, d, &tf, &tb);
        if (it > 0) {
            bf = tf < bf ? tf : bf;
            bb = tb < bb ? tb : bb;
        }
    }
    printf("%s: max 2x2/2 over (%lld,%lld,%lld,%lld)\n", name, (long long)d->N,
           (long long)d->C, (long long)d->H, (long long)d->W);
    print_row("forward", bf, base ? bfb : 0.0, 0.0, 1.0);
    print_row("backward", bb, base ? bbb : 0.0, 0.0, 1.0);
    be->bi->free(be->ctx, x); be->bi->free(be->ctx, y); be->bi->free(be->ctx, dx);
    if (base) {
        base->bi->free(base->ctx, xb); base->bi->free(base->ctx, yb);
        base->bi->free(base->ctx, dxb);
        *base_total += bfb + bbb;
    }
    return bf + bb;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    const char *dir = argc > 2 ? argv[2] : ".";
    const char *base_path = argc > 3 ? argv[3] : NULL;
    char path[4096];
    backend be, base;

    snprintf(path, sizeof(path), "%s/backends/cpu/.libs/cpu.so", dir);
    if (open_backend(&be, path, threads) || (base_path && open_backend(&base, base_path, threads)))
        return 1;
    double roof = gemm_roof(&be);
    printf("%s\nsgemm roof (2048^3): %.1f GFLOP/s\n", be.bi->device_name(be.ctx), roof);
    if (base_path)
        printf("baseline: %s, run alternately with this build\n", base_path);
    printf("\n");

    /* examples/fashion-mnist-cnn.ini at batch 128 */
    const layer layers[] = {
        { "conv1", { .N = 128, .C = 1, .H = 28, .W = 28, .K = 32, .R = 3, .S = 3,
                     .P = 28, .Q = 28, .stride_h = 1, .stride_w = 1, .pad_h = 1,
                     .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1 }, 0 },
        { "conv2", { .N = 128, .C = 32, .H = 14, .W = 14, .K = 64, .R = 3, .S = 3,
                     .P = 14, .Q = 14, .stride_h = 1, .stride_w = 1, .pad_h = 1,
                     .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1 }, 1 },
    };
    const mltk_pool2d_desc pools[] = {
        { .N = 128, .C = 32, .H = 28, .W = 28, .R = 2, .S = 2, .P = 14, .Q = 14,
          .stride_h = 2, .stride_w = 2 },
        { .N = 128, .C = 64, .H = 14, .W = 14, .R = 2, .S = 2, .P = 7, .Q = 7,
          .stride_h = 2, .stride_w = 2 },
    };
    double total = 0.0, base_total = 0.0;
    for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]); i++) {
        total += run_layer(&layers[i], &be, base_path ? &base : NULL, roof, 10, &base_total);
        char name[16];
        snprintf(name, sizeof(name), "pool%zu", i + 1);
        total += run_pool(name, &pools[i], &be, base_path ? &base : NULL, 10, &base_total);
    }
    printf("\nconv + pool time per batch of 128: %.2f ms", total * 1e3);
    if (base_path)
        printf(" (baseline %.2f ms, %.2fx)", base_total * 1e3, base_total / total);
    printf("\n");
    be.bi->destroy(be.ctx);
    if (base_path)
        base.bi->destroy(base.ctx);
    return 0;
}
