/* cpu_norm.c - the cpu backend's normalisation, dropout and softmax
 * kernels: batch norm (train, eval, backward), layer norm (forward,
 * backward), inverted dropout with Philox masks, row softmax (forward,
 * backward), for the f32 ops MLTK_OP_BATCHNORM_*, MLTK_OP_LAYERNORM_*,
 * MLTK_OP_DROPOUT_FORWARD and MLTK_OP_SOFTMAX_* of backend.h.
 *
 * What this is: kernels written to auto-vectorize, split over the
 * persistent pool so that every output element, and every per-channel or
 * per-row statistic, is computed by exactly one chunk in a fixed order.
 * Results therefore do not depend on the thread count.  Statistics
 * (means, variances, gradient sums) are accumulated in double; the data
 * are shifted by a reference value (the channel's or row's first element)
 * before squaring, so the one-pass variance does not cancel when the mean
 * is large against the spread.  Numerics follow PyTorch: biased variance
 * normalises, the running variance takes the unbiased one,
 * running = (1 - momentum) running + momentum batch.  No op allocates.
 *
 * The core has checked each call (shapes, eps >= 0, dropout p in [0, 1))
 * before cpu.c's `run` unpacks it into the raw pointers and sizes taken
 * here.  Absent optional tensors are NULL: gamma/beta (scale 1, shift
 * 0), the running statistics (not updated), and dx, dgamma or dbeta
 * (skipped).  Batch norm training with a single value per channel (N L ==
 * 1) is MLTK_ERR_INVALID, as PyTorch refuses it.  softmax and dropout may
 * run in place (y == x), softmax backward with dx == dy.
 *
 * What this is not: the activations (cpu.c) or the losses (cpu_misc.c).
 * exp and the lane-wise Philox generator are small local copies of the
 * ones in cpu.c, which keeps its helpers private.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <mltk/rng.h>

#include "cpu_internal.h"

/* ---- scalar math ---- */

static inline float n_bits_to_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t n_f_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* e^x for x <= 0 (softmax shifts by the row maximum): x = k ln2 + r,
 * |r| <= ln2/2, e^r by a degree-7 Taylor polynomial (error < 1e-8), 2^k
 * from the exponent bits.  Below -87.3 the argument is clamped: the
 * result, e^-87.3 = 1.2e-38, is then within 1.2e-38 of the truth. */
static inline float n_exp_neg(float x)
{
    const float magic = 12582912.0f;  /* 1.5 * 2^23: adding it rounds */
    /* clamp at -87.3 on the bits (for negative floats a larger pattern is
     * a more negative value): an integer minimum, free of the FP compare
     * that keeps the loop from vectorizing without AVX-512 */
    const uint32_t lo = 0xc2ae999au;  /* -87.3f */
    uint32_t xb = n_f_to_bits(x);
    float xc = n_bits_to_f(xb > lo ? lo : xb);
    float kf = xc * 1.44269504088896341f + magic;
    uint32_t kb = n_f_to_bits(kf) - n_f_to_bits(magic);
    kf -= magic;
    float r = xc - kf * 0.693145751953125f;
    r = r - kf * 1.42860676533018e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* no select on the way out: a branch there would keep the loop from
     * vectorizing without AVX-512 masks */
    return p * n_bits_to_f((kb + 127u) << 23);
}

#define NLANES 16

/* float sum of x[0..n) in NLANES partial sums combined in a fixed order */
static inline float lanes_sum_f(const float *restrict x, int64_t n)
{
    float acc[NLANES] = {0};
    int64_t i = 0;
    for (; i + NLANES <= n; i += NLANES)
        for (int j = 0; j < NLANES; j++)
            acc[j] += x[i + j];
    for (; i < n; i++)
        acc[0] += x[i];
    for (int w = NLANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] += acc[j + w];
    return acc[0];
}

/* s1 += sum (x - k), s2 += sum (x - k)^2 over x[0..n), in double */
static inline void shifted_sums(const float *restrict x, int64_t n, double k,
                                double *s1, double *s2)
{
    double a1[NLANES] = {0}, a2[NLANES] = {0};
    int64_t i = 0;
    for (; i + NLANES <= n; i += NLANES)
        for (int j = 0; j < NLANES; j++) {
            double d = (double)x[i + j] - k;
            a1[j] += d;
            a2[j] += d * d;
        }
    for (; i < n; i++) {
        double d = (double)x[i] - k;
        a1[0] += d;
        a2[0] += d * d;
    }
    for (int w = NLANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) {
            a1[j] += a1[j + w];
            a2[j] += a2[j + w];
        }
    *s1 += a1[0];
    *s2 += a2[0];
}

/* s1 += sum g, s2 += sum g (x - m) over [0..n), in double */
static inline void grad_sums(const float *restrict g, const float *restrict x,
                             int64_t n, double m, double *s1, double *s2)
{
    double a1[NLANES] = {0}, a2[NLANES] = {0};
    int64_t i = 0;
    for (; i + NLANES <= n; i += NLANES)
        for (int j = 0; j < NLANES; j++) {
            double gj = g[i + j];
            a1[j] += gj;
            a2[j] += gj * ((double)x[i + j] - m);
        }
    for (; i < n; i++) {
        double gj = g[i];
        a1[0] += gj;
        a2[0] += gj * ((double)x[i] - m);
    }
    for (int w = NLANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) {
            a1[j] += a1[j + w];
            a2[j] += a2[j + w];
        }
    *s1 += a1[0];
    *s2 += a2[0];
}

/* y = (x - m) a + b over [0..n) */
KERNEL static void k_affine(float *y, const float *x, float m, float a, float b,
                            int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] - m) * a + b;
}

/* dx = k1 dy - k3 (x - m) - k2 over [0..n) */
KERNEL static void k_bn_dx(float *restrict dx, const float *restrict dy,
                           const float *restrict x, float m, float k1, float k2,
                           float k3, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] = k1 * dy[i] - k3 * (x[i] - m) - k2;
}

/* ---- batch norm: statistics and update per channel ---- */

/* Channel tile of the (N, C) layout (L == 1): columns side by side. */
#define CTILE 256

typedef struct bn_args {
    float *y, *dx, *dgamma, *dbeta;
    const float *x, *dy, *gamma, *beta;
    float *save_mean, *save_invstd, *run_mean, *run_var;
    const float *mean_in, *invstd_in, *rvar_in;
    int64_t N, C, L;
    double momentum, eps;
} bn_args;

/* From the channel's shifted sums (M values): save the mean and 1/std,
 * update the running statistics, return mean and scale gamma/std. */
static void bn_finish_channel(const bn_args *a, int64_t c, double k, double s1,
                              double s2, float *mean_f, float *scale_f, float *shift_f)
{
    double M = (double)(a->N * a->L);
    double dm = s1 / M;
    double var = s2 / M - dm * dm;
    if (var < 0.0)
        var = 0.0;
    double mean = k + dm;
    double invstd = 1.0 / sqrt(var + a->eps);
    a->save_mean[c] = (float)mean;
    a->save_invstd[c] = (float)invstd;
    if (a->run_mean && a->run_var) {
        double mo = a->momentum;
        a->run_mean[c] = (float)(mo * mean + (1.0 - mo) * (double)a->run_mean[c]);
        a->run_var[c] = (float)(mo * (var * M / (M - 1.0))
                                + (1.0 - mo) * (double)a->run_var[c]);
    }
    double g = a->gamma ? (double)a->gamma[c] : 1.0;
    *mean_f = (float)mean;
    *scale_f = (float)(g * invstd);
    *shift_f = a->beta ? a->beta[c] : 0.0f;
}

/* channels [cb, ce) of x (N, C, L), L > 1: one channel at a time */
static void bn_train_planes(void *arg, int64_t cb, int64_t ce, int chunk)
{
    const bn_args *a = arg;
    const int64_t C = a->C, L = a->L;
    (void)chunk;
    for (int64_t c = cb; c < ce; c++) {
        double k = a->x[c * L], s1 = 0.0, s2 = 0.0;
        for (int64_t n = 0; n < a->N; n++)
            shifted_sums(a->x + (n * C + c) * L, L, k, &s1, &s2);
        float m, sc, sh;
        bn_finish_channel(a, c, k, s1, s2, &m, &sc, &sh);
        for (int64_t n = 0; n < a->N; n++)
            k_affine(a->y + (n * C + c) * L, a->x + (n * C + c) * L, m, sc, sh, L);
    }
}

/* channels [cb, ce) of x (N, C), L == 1: CTILE columns at a time */
KERNEL static void bn_train_cols_tile(const bn_args *a, int64_t c0, int64_t w)
{
    double k[CTILE], s1[CTILE], s2[CTILE];
    float m[CTILE], sc[CTILE], sh[CTILE];
    const int64_t C = a->C;
    for (int64_t j = 0; j < w; j++) {
        k[j] = a->x[c0 + j];
        s1[j] = s2[j] = 0.0;
    }
    for (int64_t n = 0; n < a->N; n++) {
        const float *restrict xr = a->x + n * C + c0;
        for (int64_t j = 0; j < w; j++) {
            double d = (double)xr[j] - k[j];
            s1[j] += d;
            s2[j] += d * d;
        }
    }
    for (int64_t j = 0; j < w; j++)
        bn_finish_channel(a, c0 + j, k[j], s1[j], s2[j], &m[j], &sc[j], &sh[j]);
    for (int64_t n = 0; n < a->N; n++) {
        const float *restrict xr = a->x + n * C + c0;
        float *yr = a->y + n * C + c0;
        for (int64_t j = 0; j < w; j++)
            yr[j] = (xr[j] - m[j]) * sc[j] + sh[j];
    }
}

static void bn_train_cols(void *arg, int64_t cb, int64_t ce, int chunk)
{
    (void)chunk;
    for (int64_t c0 = cb; c0 < ce; c0 += CTILE)
        bn_train_cols_tile(arg, c0, ce - c0 < CTILE ? ce - c0 : CTILE);
}

/* Split channels (each wholly in one chunk) over the pool. */
static void bn_run_channels(cpu_ctx *cx, cpu_pool_fn fn, bn_args *a, int64_t cost)
{
    int64_t work = a->N * a->C * a->L * cost;
    int chunks = cpu_pool_chunks(cx->pool, a->C, work, GRAIN);
    cpu_pool_run(cx->pool, fn, a, a->C, chunks, a->L == 1 ? ALIGN_F : 1, work);
}

/* x (N, C, L) -> y (N, C, L); save_mean, save_invstd (C); running
 * statistics (C) updated unless NULL */
int cpu_batchnorm_forward_train(void *ctx, float *y, const float *x, const float *gamma,
                                const float *beta, float *save_mean, float *save_invstd,
                                float *running_mean, float *running_var, int64_t N,
                                int64_t C, int64_t L, float momentum, float eps,
                                char **err)
{
    cpu_ctx *cx = ctx;
    if (N == 0 || C == 0 || L == 0)
        return MLTK_OK;
    if (N * L < 2)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "batchnorm: training needs more than one value per channel "
                         "(N = %lld, L = %lld)", (long long)N, (long long)L);
    bn_args a = { .y = y, .x = x, .gamma = gamma, .beta = beta, .save_mean = save_mean,
                  .save_invstd = save_invstd, .run_mean = running_mean,
                  .run_var = running_var, .N = N, .C = C, .L = L,
                  .momentum = momentum, .eps = eps };
    bn_run_channels(cx, L == 1 ? bn_train_cols : bn_train_planes, &a, 3);
    return MLTK_OK;
}

/* ---- batch norm: evaluation ---- */

/* planes [pb, pe) of (N C) planes of L values */
static void bn_eval_planes(void *arg, int64_t pb, int64_t pe, int chunk)
{
    const bn_args *a = arg;
    (void)chunk;
    for (int64_t p = pb; p < pe; p++) {
        int64_t c = p % a->C;
        double g = a->gamma ? (double)a->gamma[c] : 1.0;
        float sc = (float)(g / sqrt((double)a->rvar_in[c] + a->eps));
        float sh = a->beta ? a->beta[c] : 0.0f;
        k_affine(a->y + p * a->L, a->x + p * a->L, a->mean_in[c], sc, sh, a->L);
    }
}

/* rows [rb, re) of x (N, C), L == 1 */
KERNEL static void bn_eval_rows(void *arg, int64_t rb, int64_t re, int chunk)
{
    const bn_args *a = arg;
    const int64_t C = a->C;
    const float eps = (float)a->eps;
    const float *restrict rm = a->mean_in, *restrict rv = a->rvar_in;
    (void)chunk;
    for (int64_t r = rb; r < re; r++) {
        const float *xr = a->x + r * C;
        float *yr = a->y + r * C;
        if (a->gamma && a->beta) {
            const float *restrict g = a->gamma, *restrict b = a->beta;
            for (int64_t c = 0; c < C; c++)
                yr[c] = (xr[c] - rm[c]) * (g[c] / sqrtf(rv[c] + eps)) + b[c];
        } else {
            for (int64_t c = 0; c < C; c++) {
                float g = a->gamma ? a->gamma[c] : 1.0f;
                float b = a->beta ? a->beta[c] : 0.0f;
                yr[c] = (xr[c] - rm[c]) * (g / sqrtf(rv[c] + eps)) + b;
            }
        }
    }
}

/* y = gamma (x - running_mean) / sqrt(running_var + eps) + beta */
int cpu_batchnorm_forward_eval(void *ctx, float *y, const float *x, const float *gamma,
                               const float *beta, const float *running_mean,
                               const float *running_var, int64_t N, int64_t C, int64_t L,
                               float eps)
{
    cpu_ctx *cx = ctx;
    if (N == 0 || C == 0 || L == 0)
        return MLTK_OK;
    bn_args a = { .y = y, .x = x, .gamma = gamma, .beta = beta, .mean_in = running_mean,
                  .rvar_in = running_var, .N = N, .C = C, .L = L, .eps = eps };
    int64_t work = N * C * L * 2;
    if (L == 1) {
        int chunks = cpu_pool_chunks(cx->pool, N, work, GRAIN);
        cpu_pool_run(cx->pool, bn_eval_rows, &a, N, chunks, 1, work);
    } else {
        int chunks = cpu_pool_chunks(cx->pool, N * C, work, GRAIN);
        cpu_pool_run(cx->pool, bn_eval_planes, &a, N * C, chunks, 1, work);
    }
    return MLTK_OK;
}

/* ---- batch norm: training backward ---- */

/* Per channel c with M = N L values, xhat = (x - mean) invstd:
 *   dbeta = sum dy,  dgamma = sum dy xhat,
 *   dx = gamma invstd (dy - dbeta / M - xhat dgamma / M)
 *      = k1 dy - k3 (x - mean) - k2
 * with k1 = gamma invstd, k2 = k1 dbeta / M, k3 = k1 invstd dgamma / M. */
static void bn_grad_coefs(const bn_args *a, int64_t c, double s1, double s2,
                          float *k1, float *k2, float *k3)
{
    double M = (double)(a->N * a->L);
    double is = a->invstd_in[c];
    double dg = s2 * is;
    if (a->dbeta)
        a->dbeta[c] = (float)s1;
    if (a->dgamma)
        a->dgamma[c] = (float)dg;
    double g1 = (a->gamma ? (double)a->gamma[c] : 1.0) * is;
    *k1 = (float)g1;
    *k2 = (float)(g1 * s1 / M);
    *k3 = (float)(g1 * is * dg / M);
}

static void bn_bwd_planes(void *arg, int64_t cb, int64_t ce, int chunk)
{
    const bn_args *a = arg;
    const int64_t C = a->C, L = a->L;
    (void)chunk;
    for (int64_t c = cb; c < ce; c++) {
        double s1 = 0.0, s2 = 0.0, m = a->mean_in[c];
        for (int64_t n = 0; n < a->N; n++)
            grad_sums(a->dy + (n * C + c) * L, a->x + (n * C + c) * L, L, m, &s1, &s2);
        float k1, k2, k3;
        bn_grad_coefs(a, c, s1, s2, &k1, &k2, &k3);
        if (!a->dx)
            continue;
        for (int64_t n = 0; n < a->N; n++) {
            int64_t o = (n * C + c) * L;
            k_bn_dx(a->dx + o, a->dy + o, a->x + o, a->mean_in[c], k1, k2, k3, L);
        }
    }
}

KERNEL static void bn_bwd_cols_tile(const bn_args *a, int64_t c0, int64_t w)
{
    double s1[CTILE], s2[CTILE], m[CTILE];
    float mf[CTILE], k1[CTILE], k2[CTILE], k3[CTILE];
    const int64_t C = a->C;
    for (int64_t j = 0; j < w; j++) {
        m[j] = a->mean_in[c0 + j];
        mf[j] = a->mean_in[c0 + j];
        s1[j] = s2[j] = 0.0;
    }
    for (int64_t n = 0; n < a->N; n++) {
        const float *restrict xr = a->x + n * C + c0, *restrict gr = a->dy + n * C + c0;
        for (int64_t j = 0; j < w; j++) {
            double g = gr[j];
            s1[j] += g;
            s2[j] += g * ((double)xr[j] - m[j]);
        }
    }
    for (int64_t j = 0; j < w; j++)
        bn_grad_coefs(a, c0 + j, s1[j], s2[j], &k1[j], &k2[j], &k3[j]);
    if (!a->dx)
        return;
    for (int64_t n = 0; n < a->N; n++) {
        const float *restrict xr = a->x + n * C + c0, *restrict gr = a->dy + n * C + c0;
        float *restrict dr = a->dx + n * C + c0;
        for (int64_t j = 0; j < w; j++)
            dr[j] = k1[j] * gr[j] - k3[j] * (xr[j] - mf[j]) - k2[j];
    }
}

static void bn_bwd_cols(void *arg, int64_t cb, int64_t ce, int chunk)
{
    (void)chunk;
    for (int64_t c0 = cb; c0 < ce; c0 += CTILE)
        bn_bwd_cols_tile(arg, c0, ce - c0 < CTILE ? ce - c0 : CTILE);
}

int cpu_batchnorm_backward(void *ctx, float *dx, float *dgamma, float *dbeta,
                           const float *dy, const float *x, const float *gamma,
                           const float *save_mean, const float *save_invstd, int64_t N,
                           int64_t C, int64_t L)
{
    cpu_ctx *cx = ctx;
    if (C > 0 && (N == 0 || L == 0)) {
        /* no values: the parameter gradients are zero */
        for (int64_t c = 0; c < C; c++) {
            if (dgamma)
                dgamma[c] = 0.0f;
            if (dbeta)
                dbeta[c] = 0.0f;
        }
        return MLTK_OK;
    }
    if (C == 0)
        return MLTK_OK;
    bn_args a = { .dx = dx, .dgamma = dgamma, .dbeta = dbeta, .dy = dy, .x = x,
                  .gamma = gamma, .mean_in = save_mean, .invstd_in = save_invstd,
                  .N = N, .C = C, .L = L };
    bn_run_channels(cx, L == 1 ? bn_bwd_cols : bn_bwd_planes, &a, 4);
    return MLTK_OK;
}

/* ---- layer norm ---- */

typedef struct ln_args {
    float *y, *dx, *dgamma, *dbeta, *mean, *rstd;
    const float *x, *dy, *gamma, *beta;
    const float *mean_in, *rstd_in;
    int64_t rows, cols;
    double eps;
} ln_args;

KERNEL static void ln_fwd_rows(void *arg, int64_t rb, int64_t re, int chunk)
{
    const ln_args *a = arg;
    const int64_t n = a->cols;
    (void)chunk;
    for (int64_t r = rb; r < re; r++) {
        const float *restrict x = a->x + r * n;
        float *y = a->y + r * n;
        double k = x[0], s1 = 0.0, s2 = 0.0;
        shifted_sums(x, n, k, &s1, &s2);
        double dm = s1 / (double)n;
        double var = s2 / (double)n - dm * dm;
        if (var < 0.0)
            var = 0.0;
        float m = (float)(k + dm);
        float rs = (float)(1.0 / sqrt(var + a->eps));
        a->mean[r] = m;
        a->rstd[r] = rs;
        if (a->gamma && a->beta) {
            const float *restrict g = a->gamma, *restrict b = a->beta;
            for (int64_t i = 0; i < n; i++)
                y[i] = (x[i] - m) * rs * g[i] + b[i];
        } else if (a->gamma) {
            const float *restrict g = a->gamma;
            for (int64_t i = 0; i < n; i++)
                y[i] = (x[i] - m) * rs * g[i];
        } else {
            for (int64_t i = 0; i < n; i++) {
                float v = (x[i] - m) * rs;
                y[i] = a->beta ? v + a->beta[i] : v;
            }
        }
    }
}

/* x (rows, cols) -> y (rows, cols); mean, rstd (rows) */
int cpu_layernorm_forward(void *ctx, float *y, const float *x, const float *gamma,
                          const float *beta, float *mean, float *rstd, int64_t rows,
                          int64_t cols, float eps)
{
    cpu_ctx *cx = ctx;
    if (rows == 0 || cols == 0)
        return MLTK_OK;
    ln_args a = { .y = y, .x = x, .gamma = gamma, .beta = beta, .mean = mean,
                  .rstd = rstd, .rows = rows, .cols = cols, .eps = eps };
    int64_t work = rows * cols * 3;
    int chunks = cpu_pool_chunks(cx->pool, rows, work, GRAIN);
    cpu_pool_run(cx->pool, ln_fwd_rows, &a, rows, chunks, 1, work);
    return MLTK_OK;
}

/* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma, per row */
KERNEL static void ln_bwd_rows(void *arg, int64_t rb, int64_t re, int chunk)
{
    const ln_args *a = arg;
    const int64_t n = a->cols;
    (void)chunk;
    for (int64_t r = rb; r < re; r++) {
        const float *restrict x = a->x + r * n;
        const float *restrict dy = a->dy + r * n;
        float *dx = a->dx + r * n;
        const float m = a->mean_in[r], rs = a->rstd_in[r];
        double s1[NLANES] = {0}, s2[NLANES] = {0};
        int64_t i = 0;
        for (; i + NLANES <= n; i += NLANES)
            for (int j = 0; j < NLANES; j++) {
                double g = a->gamma ? (double)dy[i + j] * a->gamma[i + j] : dy[i + j];
                s1[j] += g;
                s2[j] += g * (((double)x[i + j] - m) * rs);
            }
        for (; i < n; i++) {
            double g = a->gamma ? (double)dy[i] * a->gamma[i] : dy[i];
            s1[0] += g;
            s2[0] += g * (((double)x[i] - m) * rs);
        }
        for (int w = NLANES / 2; w > 0; w /= 2)
            for (int j = 0; j < w; j++) {
                s1[j] += s1[j + w];
                s2[j] += s2[j + w];
            }
        const float mg = (float)(s1[0] / (double)n), mgx = (float)(s2[0] / (double)n);
        if (a->gamma) {
            const float *restrict ga = a->gamma;
            for (int64_t c = 0; c < n; c++)
                dx[c] = rs * (dy[c] * ga[c] - mg - (x[c] - m) * rs * mgx);
        } else {
            for (int64_t c = 0; c < n; c++)
                dx[c] = rs * (dy[c] - mg - (x[c] - m) * rs * mgx);
        }
    }
}

/* dgamma[c] = sum over rows of dy xhat, dbeta[c] = sum of dy: columns
 * [cb, ce), CTILE at a time, rows in order */
KERNEL static void ln_bwd_cols(void *arg, int64_t cb, int64_t ce, int chunk)
{
    const ln_args *a = arg;
    const int64_t n = a->cols;
    double sg[CTILE], sb[CTILE];
    (void)chunk;
    for (int64_t c0 = cb; c0 < ce; c0 += CTILE) {
        int64_t w = ce - c0 < CTILE ? ce - c0 : CTILE;
        for (int64_t j = 0; j < w; j++)
            sg[j] = sb[j] = 0.0;
        for (int64_t r = 0; r < a->rows; r++) {
            const float *restrict x = a->x + r * n + c0;
            const float *restrict dy = a->dy + r * n + c0;
            const double m = a->mean_in[r], rs = a->rstd_in[r];
            for (int64_t j = 0; j < w; j++) {
                double g = dy[j];
                sb[j] += g;
                sg[j] += g * (((double)x[j] - m) * rs);
            }
        }
        for (int64_t j = 0; j < w; j++) {
            if (a->dgamma)
                a->dgamma[c0 + j] = (float)sg[j];
            if (a->dbeta)
                a->dbeta[c0 + j] = (float)sb[j];
        }
    }
}

int cpu_layernorm_backward(void *ctx, float *dx, float *dgamma, float *dbeta,
                           const float *dy, const float *x, const float *gamma,
                           const float *mean, const float *rstd, int64_t rows,
                           int64_t cols)
{
    cpu_ctx *cx = ctx;
    if (cols == 0)
        return MLTK_OK;
    ln_args a = { .dx = dx, .dgamma = dgamma, .dbeta = dbeta, .dy = dy, .x = x,
                  .gamma = gamma, .mean_in = mean, .rstd_in = rstd, .rows = rows,
                  .cols = cols };
    int64_t work = rows * cols * 3;
    if (dx && rows > 0) {
        int chunks = cpu_pool_chunks(cx->pool, rows, work, GRAIN);
        cpu_pool_run(cx->pool, ln_bwd_rows, &a, rows, chunks, 1, work);
    }
    if (dgamma || dbeta) {
        int chunks = cpu_pool_chunks(cx->pool, cols, work, GRAIN);
        cpu_pool_run(cx->pool, ln_bwd_cols, &a, cols, chunks, ALIGN_F, work);
    }
    return MLTK_OK;
}

/* ---- dropout ---- */

/* dropout draws RNG_LANES Philox blocks at once (philox_u01_lanes,
 * cpu_internal.h), exactly the values of mltk_rng_u01 */
#define DLANES RNG_LANES

typedef struct drop_args {
    float *y, *mask;
    const float *x;
    float p, scale;
    uint64_t seed, offset;
} drop_args;

/* mask = u >= p ? scale : 0, y = x mask over [0..n) */
KERNEL static void k_drop(float *y, float *restrict mask, const float *x,
                          const float *restrict u, float p, float scale, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float m = u[i] >= p ? scale : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

static void drop_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const drop_args *a = arg;
    uint64_t off = a->offset;
    int64_t i = b;
    (void)chunk;
    /* element by element up to a block boundary, then DLANES blocks at
     * a time, then element by element again */
    while (i < e && ((off + (uint64_t)i) & 3) != 0) {
        float u = mltk_rng_u01(a->seed, off + (uint64_t)i);
        k_drop(a->y + i, a->mask + i, a->x + i, &u, a->p, a->scale, 1);
        i++;
    }
    while (e - i >= 4 * DLANES) {
        float u[4 * DLANES];
        philox_u01_lanes(u, (off + (uint64_t)i) >> 2, a->seed);
        k_drop(a->y + i, a->mask + i, a->x + i, u, a->p, a->scale, 4 * DLANES);
        i += 4 * DLANES;
    }
    for (; i < e; i++) {
        float u = mltk_rng_u01(a->seed, off + (uint64_t)i);
        k_drop(a->y + i, a->mask + i, a->x + i, &u, a->p, a->scale, 1);
    }
}

/* mask[i] = u(seed, offset + i) >= p ? 1/(1-p) : 0; y = x mask (y == x
 * allowed) */
int cpu_dropout_forward(void *ctx, float *y, float *mask, const float *x, int64_t n,
                        float p, uint64_t seed, uint64_t offset)
{
    cpu_ctx *cx = ctx;
    if (n == 0)
        return MLTK_OK;
    drop_args a = { .y = y, .mask = mask, .x = x, .p = p,
                    .scale = 1.0f / (1.0f - p), .seed = seed, .offset = offset };
    int chunks = cpu_pool_chunks(cx->pool, n, n * 8, GRAIN);
    cpu_pool_run(cx->pool, drop_chunk, &a, n, chunks, ALIGN_F, n * 8);
    return MLTK_OK;
}

/* ---- softmax ---- */

typedef struct sm_args {
    float *y;
    const float *x, *dy;
    int64_t cols;
} sm_args;

/* row maximum, NLANES running maxima */
static inline float row_max_f(const float *restrict x, int64_t n)
{
    float m[NLANES];
    if (n < NLANES) {
        float r = x[0];
        for (int64_t i = 1; i < n; i++)
            r = x[i] > r ? x[i] : r;
        return r;
    }
    for (int j = 0; j < NLANES; j++)
        m[j] = x[j];
    int64_t i = NLANES;
    for (; i + NLANES <= n; i += NLANES)
        for (int j = 0; j < NLANES; j++)
            m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (; i < n; i++)
        m[0] = x[i] > m[0] ? x[i] : m[0];
    float r = m[0];
    for (int j = 1; j < NLANES; j++)
        r = m[j] > r ? m[j] : r;
    return r;
}

/* y = exp(x - max) / sum, rows [rb, re); y == x allowed */
KERNEL static void sm_fwd_rows(void *arg, int64_t rb, int64_t re, int chunk)
{
    const sm_args *a = arg;
    const int64_t n = a->cols;
    (void)chunk;
    for (int64_t r = rb; r < re; r++) {
        const float *x = a->x + r * n;
        float *y = a->y + r * n;
        float m = row_max_f(x, n);
        for (int64_t i = 0; i < n; i++)
            y[i] = n_exp_neg(x[i] - m);
        float inv = 1.0f / lanes_sum_f(y, n);
        for (int64_t i = 0; i < n; i++)
            y[i] *= inv;
    }
}

/* dx = y (dy - sum(dy y)), rows [rb, re); dx == dy allowed */
KERNEL static void sm_bwd_rows(void *arg, int64_t rb, int64_t re, int chunk)
{
    const sm_args *a = arg;
    const int64_t n = a->cols;
    (void)chunk;
    for (int64_t r = rb; r < re; r++) {
        const float *restrict y = a->x + r * n;
        const float *dy = a->dy + r * n;
        float *dx = a->y + r * n;
        double acc[NLANES] = {0};
        int64_t i = 0;
        for (; i + NLANES <= n; i += NLANES)
            for (int j = 0; j < NLANES; j++)
                acc[j] += (double)dy[i + j] * y[i + j];
        for (; i < n; i++)
            acc[0] += (double)dy[i] * y[i];
        for (int w = NLANES / 2; w > 0; w /= 2)
            for (int j = 0; j < w; j++)
                acc[j] += acc[j + w];
        const float dot = (float)acc[0];
        for (int64_t c = 0; c < n; c++)
            dx[c] = y[c] * (dy[c] - dot);
    }
}

/* softmax over the last dimension of x (rows, cols) */
int cpu_softmax_forward(void *ctx, float *y, const float *x, int64_t rows, int64_t cols)
{
    cpu_ctx *cx = ctx;
    if (rows == 0 || cols == 0)
        return MLTK_OK;
    sm_args a = { .y = y, .x = x, .cols = cols };
    int64_t work = rows * cols * 8;
    int chunks = cpu_pool_chunks(cx->pool, rows, work, GRAIN);
    cpu_pool_run(cx->pool, sm_fwd_rows, &a, rows, chunks, 1, work);
    return MLTK_OK;
}

int cpu_softmax_backward(void *ctx, float *dx, const float *dy, const float *y,
                         int64_t rows, int64_t cols)
{
    cpu_ctx *cx = ctx;
    if (rows == 0 || cols == 0)
        return MLTK_OK;
    sm_args a = { .y = dx, .x = y, .dy = dy, .cols = cols };
    int64_t work = rows * cols * 3;
    int chunks = cpu_pool_chunks(cx->pool, rows, work, GRAIN);
    cpu_pool_run(cx->pool, sm_bwd_rows, &a, rows, chunks, 1, work);
    return MLTK_OK;
}
