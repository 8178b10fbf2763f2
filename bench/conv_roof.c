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
 * Build and run from the build directory (bench/cnn_vs_torch.py does it):
 *   cc -O2 -I$(srcdir)/include bench/conv_roof.c -o conv_roof \
 *      .libs/libmltk.so -Wl,-rpath,$PWD/.libs -ldl
 *   ./conv_roof [threads] [build dir]
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

static const struct mltk_backend_i *bi;
static void *ctx;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *falloc(size_t n)
{
    void *p = NULL;
    if (bi->alloc(ctx, (n > 0 ? n : 1) * sizeof(float), &p)) {
        fprintf(stderr, "conv_roof: out of memory\n");
        exit(1);
    }
    float *f = p;
    for (size_t i = 0; i < n; i++)
        f[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return f;
}

static int check(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "conv_roof: %s failed (%d)\n", what, rc);
        exit(1);
    }
    return rc;
}

/* ---- the roof ---- */

static double gemm_roof(void)
{
    const int64_t n = 2048;
    float *a = falloc((size_t)(n * n)), *b = falloc((size_t)(n * n));
    float *c = falloc((size_t)(n * n));
    double best = 1e30;
    for (int it = 0; it < 4; it++) {
        double t = now();
        check(bi->gemm(ctx, 0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n), "gemm");
        t = now() - t;
        best = t < best ? t : best;
    }
    bi->free(ctx, a);
    bi->free(ctx, b);
    bi->free(ctx, c);
    return 2.0 * (double)n * n * n / best / 1e9;
}

/* ---- one layer ---- */

typedef struct layer {
    const char *name;
    mltk_conv2d_desc d;
    int need_dx;
} layer;

/* best of `reps` runs of op `which` (0 fwd, 1 bwd data, 2 bwd filter) */
static double time_op(const layer *l, int which, float *y, float *x, float *w,
                      float *b, float *dw, float *db, void *ws, int reps)
{
    double best = 1e30;
    for (int it = 0; it < reps + 1; it++) {
        double t = now();
        if (which == 0)
            check(bi->conv2d_forward(ctx, y, x, w, b, &l->d, MLTK_ACT_RELU, 0.0f, ws), "fwd");
        else if (which == 1)
            check(bi->conv2d_backward_data(ctx, x, y, w, &l->d, ws), "bwd data");
        else
            check(bi->conv2d_backward_filter(ctx, dw, db, y, x, &l->d, ws), "bwd filter");
        t = now() - t;
        if (it > 0 && t < best)  /* the first run warms up */
            best = t;
    }
    return best;
}

static double run_layer(const layer *l, double roof, int reps)
{
    const mltk_conv2d_desc *d = &l->d;
    size_t nx = (size_t)(d->N * d->C * d->H * d->W), ny = (size_t)(d->N * d->K * d->P * d->Q);
    size_t nw = (size_t)(d->K * d->C / d->groups * d->R * d->S);
    double macs = (double)d->N * d->K * d->P * d->Q * (double)(d->C / d->groups) * d->R * d->S;
    float *x = falloc(nx), *y = falloc(ny), *w = falloc(nw), *b = falloc((size_t)d->K);
    float *dw = falloc(nw), *db = falloc((size_t)d->K);
    size_t wsb = bi->conv2d_workspace(ctx, d);
    void *ws = NULL;
    double total = 0.0;
    static const char *const names[3] = { "forward+bias+relu", "backward data", "backward filter" };

    if (wsb && bi->alloc(ctx, wsb, &ws)) {
        fprintf(stderr, "conv_roof: cannot allocate %zu bytes of workspace\n", wsb);
        exit(1);
    }
    printf("%s: x (%lld,%lld,%lld,%lld) w (%lld,%lld,%lld,%lld) -> (%lld,%lld,%lld,%lld), "
           "workspace %.1f MB\n", l->name, (long long)d->N, (long long)d->C,
           (long long)d->H, (long long)d->W, (long long)d->K, (long long)(d->C / d->groups),
           (long long)d->R, (long long)d->S, (long long)d->N, (long long)d->K,
           (long long)d->P, (long long)d->Q, (double)wsb / 1048576.0);
    for (int op = 0; op < 3; op++) {
        if (op == 1 && !l->need_dx)
            continue;
        double t = time_op(l, op, y, x, w, b, dw, db, ws, reps);
        double gf = 2.0 * macs / t / 1e9;
        total += t;
        printf("  %-18s %8.3f ms  %7.1f GFLOP/s  %5.1f%% of roof\n", names[op], t * 1e3,
               gf, 100.0 * gf / roof);
    }
    if (ws)
        bi->free(ctx, ws);
    bi->free(ctx, x); bi->free(ctx, y); bi->free(ctx, w); bi->free(ctx, b);
    bi->free(ctx, dw); bi->free(ctx, db);
    return total;
}

static double run_pool(const char *name, const mltk_pool2d_desc *d, int reps)
{
    size_t nx = (size_t)(d->N * d->C * d->H * d->W), ny = (size_t)(d->N * d->C * d->P * d->Q);
    float *x = falloc(nx), *y = falloc(ny), *dx = falloc(nx);
    double tf = 1e30, tb = 1e30;
    for (int it = 0; it < reps + 1; it++) {
        double t = now();
        check(bi->pool2d_forward(ctx, MLTK_POOL_MAX, y, x, d), "pool fwd");
        double t2 = now();
        check(bi->pool2d_backward(ctx, MLTK_POOL_MAX, dx, y, x, y, d), "pool bwd");
        double t3 = now();
        if (it > 0) {
            tf = t2 - t < tf ? t2 - t : tf;
            tb = t3 - t2 < tb ? t3 - t2 : tb;
        }
    }
    printf("%s: max 2x2/2 over (%lld,%lld,%lld,%lld): forward %.3f ms, backward %.3f ms\n",
           name, (long long)d->N, (long long)d->C, (long long)d->H, (long long)d->W,
           tf * 1e3, tb * 1e3);
    bi->free(ctx, x); bi->free(ctx, y); bi->free(ctx, dx);
    return tf + tb;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    const char *dir = argc > 2 ? argv[2] : ".";
    char path[4096];
    char *err = NULL;

    snprintf(path, sizeof(path), "%s/backends/cpu/.libs/cpu.so", dir);
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
    bi = entry()->iface;
    mltk_backend_opts o = { .size = sizeof(o), .threads = threads, .device = 0, .seed = 1 };
    if (bi->create(&ctx, &o, &err)) {
        fprintf(stderr, "conv_roof: %s\n", err ? err : "cannot create the backend");
        return 1;
    }
    double roof = gemm_roof();
    printf("%s\nsgemm roof (2048^3): %.1f GFLOP/s\n\n", bi->device_name(ctx), roof);

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
    double total = 0.0;
    for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]); i++) {
        total += run_layer(&layers[i], roof, 10);
        char name[16];
        snprintf(name, sizeof(name), "pool%zu", i + 1);
        total += run_pool(name, &pools[i], 10);
    }
    printf("\nconv + pool time per batch of 128: %.2f ms\n", total * 1e3);
    bi->destroy(ctx);
    return 0;
}
