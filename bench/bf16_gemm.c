/* bf16_gemm.c - the cpu backend's bf16 matrix products (cpu_sbgemm, and
 * widening to f32 followed by cblas_sgemm) against OpenBLAS cblas_sgemm,
 * and all against the machine's roofs.
 *
 * What this is: a standalone program that times, on the same shapes and
 * thread count, cpu_sbgemm on bf16 operands, the cpu backend's fallback
 * for CPUs without AVX-512 BF16 (both bf16 operands widened to f32 over
 * the pool, exactly, then cblas_sgemm: what backends/cpu/cpu.c runs for a
 * bf16 gemm there) and cblas_sgemm on float ones: the products of the MLP example (784-256-128-10 at batch 128:
 * forward, weight gradient and input gradient of each layer), a 2048^3
 * square, and a convolution as a product (M = 128*14*14 positions, N = 64
 * filters, K = 32*9 channel-taps).  Each repetition runs sgemm, sbgemm
 * and widen+sgemm, so that all see the same load on a shared machine; the
 * median of each is reported as GFLOP/s (2MNK / time), with the ratios to
 * sgemm, the fraction of the fp32 roof (the roof widen+sgemm runs under),
 * the
 * cost of converting both float operands to bf16 first (pool-parallel, in
 * chunks), and the largest difference between the two results relative
 * to the largest sgemm output.
 *
 * The roofs, from first principles and measured:
 *   clock      a chain of dependent integer adds (one cycle each) on every
 *              thread at once: cycles per second of the thread's CPU time
 *              (so that other processes' time slices do not count).
 *   bf16 roof  threads x GHz x 64 flop/cycle: one 512-bit vdpbf16ps per
 *              cycle per core (16 lanes x 2 products x 2 flop; Zen 4 runs
 *              512-bit operations as two 256-bit halves, so its rate per
 *              cycle is that of two 256-bit ones), and the fp32 roof at 32
 *              flop/cycle (two 256-bit FMAs per cycle).
 *   peak       a loop of 12 independent vdpbf16ps chains per thread
 *              (enough to cover the latency), on every thread at once,
 *              where the CPU has AVX-512 BF16.
 * Where the CPU lacks AVX-512 BF16 the portable path is timed instead and
 * said so; its numbers are not the kernel's, and there is no bf16 roof
 * (no instruction multiplies bf16): the fraction of the fp32 roof is the
 * one that applies there.
 *
 * Build from the source tree (config.h: the one configure writes in a
 * build directory, -I that directory; or this stand-in):
 *   mkdir -p /tmp/bf16cfg && echo '#define _GNU_SOURCE 1' > /tmp/bf16cfg/config.h
 *   gcc -O2 -I/tmp/bf16cfg -Ibackends/cpu \
 *       -I/usr/include/x86_64-linux-gnu/openblas-pthread \
 *       bench/bf16_gemm.c backends/cpu/cpu_bf16.c backends/cpu/pool.c \
 *       -o /tmp/bf16_gemm -lopenblas -lpthread -lm
 *   /tmp/bf16_gemm [threads (2)] [seconds per shape and library (0.3)]
 *
 * What this is not: a test (bits are not compared; tests/check_bf16.c
 * does that) or a training benchmark (bench/mlp_vs_torch.py).
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "cpu_bf16.h"
#include "pool.h"

#if defined(__x86_64__) && defined(__GNUC__) \
    && ((defined(__clang__) && __clang_major__ >= 9) \
        || (!defined(__clang__) && __GNUC__ >= 10))
#include <immintrin.h>
#define HAVE_BF16_LOOP 1
#endif

/* ---- plumbing ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread: the roof loops count cycles per second
 * of running, which other processes' time slices do not dilute */
static double thread_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void print_load(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            strcpy(buf, "?\n");
        fclose(f);
    }
    printf("load average %s: %s", when, buf);
}

/* Run fn(arg_i) on `threads` threads at once (plain threads, so that each
 * really runs alongside the others). */
static void run_together(void *(*fn)(void *), void *args, size_t arg_size, int threads)
{
    pthread_t *t = xmalloc((size_t)threads * sizeof *t);
    for (int i = 1; i < threads; i++)
        pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * arg_size);
    fn(args);
    for (int i = 1; i < threads; i++)
        pthread_join(t[i], NULL);
    free(t);
}

/* ---- roofs ---- */

typedef struct loop_arg {
    int64_t iters;
    double seconds;
    float sink;
} loop_arg;

/* 16 dependent one-cycle adds per iteration */
static void *add_chain(void *p)
{
    loop_arg *a = p;
    uint64_t x = 0;
    double t0 = thread_now();
    for (int64_t i = 0; i < a->iters; i++) {
#if defined(__x86_64__)
        __asm__ __volatile__("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                             "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                             "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                             "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                             : "+r"(x));
#else
        x += 16;
#endif
    }
    a->seconds = thread_now() - t0;
    a->sink = (float)x;
    return NULL;
}

/* GHz of the slowest of `threads` threads running the chain together (the
 * best of three tries) */
static double measure_ghz(int threads)
{
    loop_arg a[64];
    double ghz = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < threads; i++)
            a[i] = (loop_arg){ .iters = 20 * 1000 * 1000 };
        run_together(add_chain, a, sizeof a[0], threads);
        double g = 1e9;
        for (int i = 0; i < threads; i++) {
            double gi = 16.0 * (double)a[i].iters / a[i].seconds * 1e-9;
            g = gi < g ? gi : g;
        }
        ghz = rep == 0 || g > ghz ? g : ghz;
    }
    return ghz;
}

#ifdef HAVE_BF16_LOOP
/* 12 independent vdpbf16ps chains */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static void *dp_loop(void *p)
{
    loop_arg *a = p;
    __m512 acc[12];
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++)
        acc[i] = _mm512_setzero_ps();
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80);   /* (1, 1) */
    __m512bh y = (__m512bh)_mm512_set1_epi32(0x0d800d80);   /* (2^-100, 2^-100) */
    double t0 = thread_now();
    for (int64_t it = 0; it < a->iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
        __asm__ __volatile__("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]),
                             "+v"(acc[4]), "+v"(acc[5]), "+v"(acc[6]), "+v"(acc[7]),
                             "+v"(acc[8]), "+v"(acc[9]), "+v"(acc[10]), "+v"(acc[11]));
    }
    a->seconds = thread_now() - t0;
    __m512 s = acc[0];
#pragma GCC unroll 12
    for (int i = 1; i < 12; i++)
        s = _mm512_add_ps(s, acc[i]);
    a->sink = _mm512_reduce_add_ps(s);
    return NULL;
}

/* GFLOP/s of all threads running the loop together (per CPU second of
 * each; the best of three tries) */
static double measure_bf16_peak(int threads)
{
    loop_arg a[64];
    double best = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < threads; i++)
            a[i] = (loop_arg){ .iters = 10 * 1000 * 1000 };
        run_together(dp_loop, a, sizeof a[0], threads);
        double g = 0.0;
        for (int i = 0; i < threads; i++)
            g += 12.0 * 64.0 * (double)a[i].iters / a[i].seconds * 1e-9;
        best = g > best ? g : best;
    }
    return best;
}
#endif

/* ---- conversion in chunks ---- */

typedef struct cvt_job {
    uint16_t *dst;
    const float *src;
} cvt_job;

static void cvt_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const cvt_job *j = arg;
    (void)chunk;
    cpu_bf16_from_f32(j->dst + begin, j->src + begin, end - begin);
}

static void convert(cpu_pool *pool, uint16_t *dst, const float *src, int64_t n)
{
    cvt_job j = { dst, src };
    cpu_pool_run(pool, cvt_chunk, &j, n, cpu_pool_chunks(pool, n, n, 16384), 16, n);
}

typedef struct widen_job {
    float *dst;
    const uint16_t *src;
} widen_job;

static void widen_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const widen_job *j = arg;
    (void)chunk;
    cpu_bf16_to_f32(j->dst + begin, j->src + begin, end - begin);
}

/* dst (n) = src (n) widened as cpu.c's bf16_convert does: on the calling
 * thread below 2^20 elements, else over the pool in chunks of 16384
 * elements of work (counting reads and writes) */
static void widen(cpu_pool *pool, float *dst, const uint16_t *src, int64_t n)
{
    widen_job j = { dst, src };
    int chunks = n < (1 << 20) ? 1 : cpu_pool_chunks(pool, n, 2 * n, 16384);
    cpu_pool_run(pool, widen_chunk, &j, n, chunks, 32, 2 * n);
}

/* ---- shapes ---- */

typedef struct shape {
    const char *name;
    int ta, tb;
    int64_t M, N, K;
    int mlp;    /* part of an MLP training step */
} shape;

static const shape shapes[] = {
    { "mlp fc1 forward", 0, 1, 128, 256, 784, 1 },
    { "mlp fc1 dW", 1, 0, 256, 784, 128, 1 },
    { "mlp fc1 dX (unused)", 0, 0, 128, 784, 256, 0 },
    { "mlp fc2 forward", 0, 1, 128, 128, 256, 1 },
    { "mlp fc2 dW", 1, 0, 128, 256, 128, 1 },
    { "mlp fc2 dX", 0, 0, 128, 256, 128, 1 },
    { "mlp fc3 forward", 0, 1, 128, 10, 128, 1 },
    { "mlp fc3 dW", 1, 0, 10, 128, 128, 1 },
    { "mlp fc3 dX", 0, 0, 128, 128, 10, 1 },
    { "square 2048^3", 0, 0, 2048, 2048, 2048, 0 },
    { "conv 25088x64x288 (B^T)", 0, 1, 128 * 14 * 14, 64, 32 * 9, 0 },
    { "conv 25088x64x288", 0, 0, 128 * 14 * 14, 64, 32 * 9, 0 },
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

typedef struct result {
    double t_s, t_b, t_w, t_cvt, maxdiff, maxdiff_w;
} result;

static result bench_shape(const shape *s, cpu_pool *pool, double budget)
{
    int64_t M = s->M, N = s->N, K = s->K;
    int64_t lda = s->ta ? M : K, ldb = s->tb ? K : N;
    int64_t na = M * K, nb = K * N, nc = M * N;
    float *A = xmalloc((size_t)na * sizeof *A), *B = xmalloc((size_t)nb * sizeof *B);
    float *Cs = xmalloc((size_t)nc * sizeof *Cs), *Cb = xmalloc((size_t)nc * sizeof *Cb);
    float *Cw = xmalloc((size_t)nc * sizeof *Cw);
    float *Aw = xmalloc((size_t)na * sizeof *Aw), *Bw = xmalloc((size_t)nb * sizeof *Bw);
    uint16_t *A16 = xmalloc((size_t)na * sizeof *A16), *B16 = xmalloc((size_t)nb * sizeof *B16);
    void *ws = xmalloc(cpu_sbgemm_workspace(M, N, K));
    uint64_t r = 88172645463325252ull;
    for (int64_t i = 0; i < na + nb; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        float v = (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        if (i < na)
            A[i] = v;
        else
            B[i - na] = v;
    }
    convert(pool, A16, A, na);
    convert(pool, B16, B, nb);

    enum { MAXREP = 1000 };
    static double ts[MAXREP], tb[MAXREP], tw[MAXREP], tc[MAXREP];
    int reps = 0;
    double start = now();
    /* one warm-up of each, then alternate until the budget is spent (at
     * least 3 and at most MAXREP repetitions) */
    for (int warm = 1; reps < MAXREP; warm = 0) {
        double t0 = now();
        cpu_pool_park(pool);
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                    s->tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A,
                    (int)lda, B, (int)ldb, 0.0f, Cs, (int)N);
        double t1 = now();
        int rc = cpu_sbgemm(pool, Cb, N, s->ta, A16, lda, s->tb, B16, ldb, 1.0f, 0.0f, ws,
                            M, N, K);
        double t2 = now();
        if (rc) {
            fprintf(stderr, "cpu_sbgemm: error %d\n", rc);
            exit(1);
        }
        widen(pool, Aw, A16, na);
        widen(pool, Bw, B16, nb);
        cpu_pool_park(pool);
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                    s->tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, Aw,
                    (int)lda, Bw, (int)ldb, 0.0f, Cw, (int)N);
        double t2w = now();
        convert(pool, A16, A, na);
        convert(pool, B16, B, nb);
        double t3 = now();
        if (warm) {
            start = now();
            continue;
        }
        ts[reps] = t1 - t0;
        tb[reps] = t2 - t1;
        tw[reps] = t2w - t2;
        tc[reps] = t3 - t2w;
        reps++;
        if (reps >= 3 && now() - start > 2.0 * budget)
            break;
    }
    double big = 0.0, diff = 0.0, diff_w = 0.0;
    for (int64_t i = 0; i < nc; i++) {
        big = fabs(Cs[i]) > big ? fabs(Cs[i]) : big;
        diff = fabs(Cs[i] - Cb[i]) > diff ? fabs(Cs[i] - Cb[i]) : diff;
        diff_w = fabs(Cs[i] - Cw[i]) > diff_w ? fabs(Cs[i] - Cw[i]) : diff_w;
    }
    result res = { median(ts, reps), median(tb, reps), median(tw, reps), median(tc, reps),
                   big > 0 ? diff / big : diff, big > 0 ? diff_w / big : diff_w };
    free(A);
    free(B);
    free(Cs);
    free(Cb);
    free(Cw);
    free(Aw);
    free(Bw);
    free(A16);
    free(B16);
    free(ws);
    return res;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    double budget = argc > 2 ? atof(argv[2]) : 0.3;
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "usage: %s [threads 1..64] [seconds]\n", argv[0]);
        return 2;
    }
    openblas_set_num_threads(threads);
    cpu_pool *pool = NULL;
    if (cpu_pool_create(&pool, threads)) {
        fprintf(stderr, "cannot start %d threads\n", threads);
        return 1;
    }
    int native = cpu_bf16_native();

    print_load("before");
    printf("threads %d; OpenBLAS %s (core %s)\n", threads, openblas_get_config(),
           openblas_get_corename());
    double ghz = measure_ghz(threads);
    double roof_bf16 = threads * ghz * 64.0, roof_f32 = threads * ghz * 32.0;
    printf("clock (dependent adds, %d threads together, per CPU second): %.2f GHz\n",
           threads, ghz);
    printf("roofs from first principles: bf16 %.0f GFLOP/s (%d x %.2f GHz x 64), "
           "fp32 %.0f GFLOP/s (x 32)\n", roof_bf16, threads, ghz, roof_f32);
    double peak = 0.0;
#ifdef HAVE_BF16_LOOP
    if (native) {
        peak = measure_bf16_peak(threads);
        printf("vdpbf16ps loop (12 chains, %d threads): %.0f GFLOP/s = %.1f flop/cycle/core "
               "(%.0f%% of the bf16 roof)\n", threads, peak, peak / (threads * ghz),
               100.0 * peak / roof_bf16);
    }
#endif
    if (!native)
        printf("this CPU (or OS) has no AVX-512 BF16 (no bf16 instructions at all): "
               "sbgemm is the PORTABLE path, not the native kernel, and there is no bf16 "
               "roof here; widen+sgemm runs on the fp32 units, so %%f32roof is the "
               "fraction that applies\n");
    printf("\n%-24s %2s %2s %6s %5s %5s  %8s %8s %8s %6s %6s %8s %8s %8s %6s %7s %9s %9s\n",
           "shape", "ta", "tb", "M", "N", "K", "sgemm", "sbgemm", "widen", "sb/s", "wd/s",
           "%f32 s", "%f32 wd", "%bf16 sb", "%peak", "cvt us", "diff sb", "diff wd");
    printf("%-24s %2s %2s %6s %5s %5s  %8s %8s %8s\n", "", "", "", "", "", "", "GFLOP/s",
           "GFLOP/s", "GFLOP/s");

    double mlp_flop = 0, mlp_ts = 0, mlp_tb = 0, mlp_tw = 0;
    for (int i = 0; i < N_SHAPES; i++) {
        const shape *s = &shapes[i];
        result r = bench_shape(s, pool, budget);
        double flop = 2.0 * (double)s->M * (double)s->N * (double)s->K;
        double gs = flop / r.t_s * 1e-9, gb = flop / r.t_b * 1e-9, gw = flop / r.t_w * 1e-9;
        printf("%-24s %2d %2d %6lld %5lld %5lld  %8.1f %8.1f %8.1f %5.2fx %5.2fx %7.1f%% "
               "%7.1f%% ", s->name, s->ta, s->tb, (long long)s->M, (long long)s->N,
               (long long)s->K, gs, gb, gw, gb / gs, gw / gs, 100.0 * gs / roof_f32,
               100.0 * gw / roof_f32);
        if (native)
            printf("%7.1f%% ", 100.0 * gb / roof_bf16);
        else
            printf("%8s ", "-");
        if (peak > 0)
            printf("%5.1f%% ", 100.0 * gb / peak);
        else
            printf("%6s ", "-");
        printf("%7.0f %9.2e %9.2e\n", r.t_cvt * 1e6, r.maxdiff, r.maxdiff_w);
        if (s->mlp) {
            mlp_flop += flop;
            mlp_ts += r.t_s;
            mlp_tb += r.t_b;
            mlp_tw += r.t_w;
        }
        fflush(stdout);
    }
    printf("\nMLP training step's products (8 above, medians summed): sgemm %.1f GFLOP/s "
           "(%.0f us), sbgemm %.1f GFLOP/s (%.0f us, %.2fx), widen+sgemm %.1f GFLOP/s "
           "(%.0f us, %.2fx)\n", mlp_flop / mlp_ts * 1e-9, mlp_ts * 1e6,
           mlp_flop / mlp_tb * 1e-9, mlp_tb * 1e6, mlp_ts / mlp_tb, mlp_flop / mlp_tw * 1e-9,
           mlp_tw * 1e6, mlp_ts / mlp_tw);
    print_load("after");
    cpu_pool_destroy(pool);
    return 0;
}
