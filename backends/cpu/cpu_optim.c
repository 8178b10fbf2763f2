/* cpu_optim.c - gradient clipping, RMSprop and LAMB for the cpu backend.
 *
 * What this is: the kernels of the optimizer-side ops MLTK_OP_SCALE_TO_NORM,
 * MLTK_OP_CLAMP, MLTK_OP_RMSPROP_STEP and MLTK_OP_LAMB_STEP over flat f32
 * buffers: clipping by global norm and by value, and the fused RMSprop
 * and LAMB updates, as torch.optim.RMSprop and You et al.'s
 * LAMB (with Adam's bias correction) define them.  Every op is one or two
 * passes over the buffers, split into the pool's static chunks; LAMB's
 * per-tensor norms are summed in double per chunk and combined in chunk
 * order, so results are bit-identical from run to run for a given thread
 * count.  Nothing here allocates: LAMB's per-chunk partial sums use the
 * context's `partials`, its per-tensor norms the caller's scratch.  The
 * core has checked every call (sizes, the parameters' ranges, LAMB's
 * segment offsets) before cpu.c's `run` hands it here.
 *
 * What this is not: SGD and Adam (cpu.c) or the global-norm reduction
 * itself (cpu.c's sumsq, which the caller runs first).
 */
#include "config.h"

#include <math.h>

#include "cpu_internal.h"

/* ---- clipping ---- */

typedef struct clip_args {
    float *x;
    float  a, b;   /* scale: a; clamp: [a, b] */
} clip_args;

KERNEL static void k_scale_by(float *restrict x, float s, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = x[i] * s;
}

/* NaN stays NaN, as torch.clamp leaves it */
KERNEL static void k_clamp(float *restrict x, float lo, float hi, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        v = v < lo ? lo : v;
        x[i] = v > hi ? hi : v;
    }
}

static void scale_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const clip_args *a = arg;
    (void)chunk;
    k_scale_by(a->x + b, a->a, e - b);
}

static void clamp_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const clip_args *a = arg;
    (void)chunk;
    k_clamp(a->x + b, a->a, a->b, e - b);
}

/* torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied
 * when below 1 (a NaN or infinite norm propagates as torch's does) */
int cpu_scale_to_norm(void *ctx, float *x, int64_t n, const float *sumsq, float max_norm)
{
    cpu_ctx *c = ctx;
    float norm = sqrtf(sumsq[0]);
    float coef = max_norm / (norm + 1e-6f);
    if (coef >= 1.0f || n == 0)
        return MLTK_OK;
    clip_args a = { .x = x, .a = coef };
    cpu_pool_run(c->pool, scale_chunk, &a, n,
                 cpu_pool_chunks(c->pool, n, 2 * n, GRAIN), ALIGN_F, 2 * n);
    return MLTK_OK;
}

int cpu_clamp(void *ctx, float *x, int64_t n, float lo, float hi)
{
    cpu_ctx *c = ctx;
    if (n == 0)
        return MLTK_OK;
    clip_args a = { .x = x, .a = lo, .b = hi };
    cpu_pool_run(c->pool, clamp_chunk, &a, n,
                 cpu_pool_chunks(c->pool, n, 2 * n, GRAIN), ALIGN_F, 2 * n);
    return MLTK_OK;
}

/* ---- RMSprop ---- */

typedef struct rms_args {
    float *p;
    const float *g;
    float *sq, *mom, *gavg;
    const float *scale;
    float lr, alpha, oma, eps, wd, mu;   /* oma = 1 - alpha */
} rms_args;

/* One loop of torch.optim.RMSprop, specialised by the constant flags:
 *   g' = g + wd p;  sq = alpha sq + (1 - alpha) g'^2
 *   centered: ga = alpha ga + (1 - alpha) g';  avg = sqrt(sq - ga^2) + eps
 *   else:     avg = sqrt(sq) + eps
 *   momentum: b = mu b + g' / avg;  p -= lr b
 *   else:     p -= lr g' / avg
 * with lr multiplied by scale[i] when scaled (0 leaves p[i] as it is). */
static inline __attribute__((always_inline)) void
rms_loop(float *restrict p, const float *restrict g, float *restrict sq,
         float *restrict mom, float *restrict gavg, const float *restrict sc, int64_t n,
         const rms_args *a, const int has_mom, const int centered, const int scaled)
{
    const float lr = a->lr, alpha = a->alpha, oma = a->oma, eps = a->eps;
    const float wd = a->wd, mu = a->mu;
    for (int64_t i = 0; i < n; i++) {
        float p0 = p[i];
        float gi = wd != 0.0f ? g[i] + wd * p0 : g[i];
        float s2 = alpha * sq[i] + oma * gi * gi;
        sq[i] = s2;
        float avg;
        if (centered) {
            float ga = alpha * gavg[i] + oma * gi;
            gavg[i] = ga;
            float var = s2 - ga * ga;
            avg = sqrtf(var > 0.0f ? var : 0.0f) + eps;
        } else {
            avg = sqrtf(s2) + eps;
        }
        float d = gi / avg;
        if (has_mom) {
            d = mu * mom[i] + d;
            mom[i] = d;
        }
        if (scaled) {
            float np = p0 - (lr * sc[i]) * d;
            p[i] = sc[i] != 0.0f ? np : p0;
        } else {
            p[i] = p0 - lr * d;
        }
    }
}

KERNEL static void k_rmsprop(const rms_args *a, int64_t b, int64_t n)
{
    float *p = a->p + b, *sq = a->sq + b;
    const float *g = a->g + b;
    float *mom = a->mom ? a->mom + b : NULL, *gavg = a->gavg ? a->gavg + b : NULL;
    const float *sc = a->scale ? a->scale + b : NULL;
    int code = (mom ? 1 : 0) | (gavg ? 2 : 0) | (sc ? 4 : 0);
    switch (code) {
    case 0: rms_loop(p, g, sq, mom, gavg, sc, n, a, 0, 0, 0); break;
    case 1: rms_loop(p, g, sq, mom, gavg, sc, n, a, 1, 0, 0); break;
    case 2: rms_loop(p, g, sq, mom, gavg, sc, n, a, 0, 1, 0); break;
    case 3: rms_loop(p, g, sq, mom, gavg, sc, n, a, 1, 1, 0); break;
    case 4: rms_loop(p, g, sq, mom, gavg, sc, n, a, 0, 0, 1); break;
    case 5: rms_loop(p, g, sq, mom, gavg, sc, n, a, 1, 0, 1); break;
    case 6: rms_loop(p, g, sq, mom, gavg, sc, n, a, 0, 1, 1); break;
    default: rms_loop(p, g, sq, mom, gavg, sc, n, a, 1, 1, 1); break;
    }
}

static void rms_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    (void)chunk;
    k_rmsprop(arg, b, e - b);
}

int cpu_rmsprop_step(void *ctx, float *p, const float *g, float *sq, float *mom,
                     float *gavg, int64_t n, float lr, float alpha, float eps,
                     float weight_decay, float momentum, int centered,
                     const float *lr_scale)
{
    cpu_ctx *c = ctx;
    if (n == 0)
        return MLTK_OK;
    rms_args a = {
        .p = p, .g = g, .sq = sq, .mom = momentum > 0.0f ? mom : NULL,
        .gavg = centered ? gavg : NULL, .scale = lr_scale, .lr = lr, .alpha = alpha,
        .oma = (float)(1.0 - (double)alpha), .eps = eps, .wd = weight_decay,
        .mu = momentum };
    int64_t cost = 4 + (a.mom ? 2 : 0) + (a.gavg ? 2 : 0) + (lr_scale ? 1 : 0);
    cpu_pool_run(c->pool, rms_chunk, &a, n, cpu_pool_chunks(c->pool, n, n * cost, GRAIN),
                 ALIGN_F, n * cost);
    return MLTK_OK;
}

/* ---- LAMB ---- */

typedef struct lamb_args {
    float *p;
    const float *g;
    float *m, *v;
    const float *scale;
    float b1, b2, omb1, omb2, ibc1, ibc2s, eps, wd, lr;
    const int64_t *off;   /* segment offsets, n_seg + 1 */
    int n_seg;
    float *norms;         /* scratch: ||p||, ||r|| per segment */
    double *partials;     /* per chunk: p^2, r^2 of the first and last segment */
} lamb_args;

/* the update direction of one element after its moments are updated */
static inline __attribute__((always_inline)) float
lamb_r(const lamb_args *a, float m, float v, float p)
{
    return (m * a->ibc1) / (sqrtf(v) * a->ibc2s + a->eps) + a->wd * p;
}

/* m, v updated over n elements; pp += sum p^2, rr += sum r^2 */
KERNEL static void k_lamb_moments(float *restrict m, float *restrict v,
                                  const float *restrict g, const float *restrict p,
                                  int64_t n, const lamb_args *a, double *pp, double *rr)
{
    const float b1 = a->b1, b2 = a->b2, omb1 = a->omb1, omb2 = a->omb2;
    double sp[8] = { 0 }, sr[8] = { 0 };
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            float gi = g[i + j];
            float mi = b1 * m[i + j] + omb1 * gi;
            float vi = b2 * v[i + j] + omb2 * gi * gi;
            m[i + j] = mi;
            v[i + j] = vi;
            float r = lamb_r(a, mi, vi, p[i + j]);
            sp[j] += (double)p[i + j] * (double)p[i + j];
            sr[j] += (double)r * (double)r;
        }
    }
    for (; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + omb1 * gi;
        float vi = b2 * v[i] + omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float r = lamb_r(a, mi, vi, p[i]);
        sp[0] += (double)p[i] * (double)p[i];
        sr[0] += (double)r * (double)r;
    }
    for (int w = 4; w > 0; w /= 2)
        for (int j = 0; j < w; j++) {
            sp[j] += sp[j + w];
            sr[j] += sr[j + w];
        }
    *pp += sp[0];
    *rr += sr[0];
}

/* p -= step * scale * r over n elements (step = lr * trust) */
KERNEL static void k_lamb_apply(float *restrict p, const float *restrict m,
                                const float *restrict v, const float *restrict sc,
                                int64_t n, const lamb_args *a, float step)
{
    if (sc) {
        for (int64_t i = 0; i < n; i++) {
            float p0 = p[i];
            float np = p0 - (step * sc[i]) * lamb_r(a, m[i], v[i], p0);
            p[i] = sc[i] != 0.0f ? np : p0;
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] - step * lamb_r(a, m[i], v[i], p[i]);
    }
}

/* the segment holding element `at` (< off[n_seg]): the last s with
 * off[s] <= at */
static int seg_of(const int64_t *off, int n_seg, int64_t at)
{
    int lo = 0, hi = n_seg - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (off[mid] <= at)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Pass 1 over [b, e): moments, and the norms' sums per segment.  A
 * segment wholly inside the chunk gets its norms written here; the parts
 * of the (at most two) segments crossing the chunk's ends go to the
 * chunk's partials, combined by the caller. */
static void lamb_pass1(void *arg, int64_t b, int64_t e, int chunk)
{
    const lamb_args *a = arg;
    double *part = a->partials + (size_t)chunk * PARTIAL_STRIDE;
    part[0] = part[1] = part[2] = part[3] = 0.0;
    int s0 = seg_of(a->off, a->n_seg, b);
    for (int s = s0; s < a->n_seg && a->off[s] < e; s++) {
        int64_t lo = a->off[s] > b ? a->off[s] : b;
        int64_t hi = a->off[s + 1] < e ? a->off[s + 1] : e;
        double pp = 0.0, rr = 0.0;
        if (hi > lo)
            k_lamb_moments(a->m + lo, a->v + lo, a->g + lo, a->p + lo, hi - lo, a, &pp, &rr);
        if (a->off[s] >= b && a->off[s + 1] <= e) {
            a->norms[2 * s] = (float)sqrt(pp);
            a->norms[2 * s + 1] = (float)sqrt(rr);
        } else if (s == s0) {
            part[0] = pp;
            part[1] = rr;
        } else {
            part[2] = pp;
            part[3] = rr;
        }
    }
}

static void lamb_pass2(void *arg, int64_t b, int64_t e, int chunk)
{
    const lamb_args *a = arg;
    (void)chunk;
    for (int s = seg_of(a->off, a->n_seg, b); s < a->n_seg && a->off[s] < e; s++) {
        int64_t lo = a->off[s] > b ? a->off[s] : b;
        int64_t hi = a->off[s + 1] < e ? a->off[s + 1] : e;
        if (hi <= lo)
            continue;
        float pn = a->norms[2 * s], rn = a->norms[2 * s + 1];
        float trust = pn > 0.0f && rn > 0.0f ? pn / rn : 1.0f;
        k_lamb_apply(a->p + lo, a->m + lo, a->v + lo, a->scale ? a->scale + lo : NULL,
                     hi - lo, a, a->lr * trust);
    }
}

/* The norms of segments that cross chunk boundaries: their pieces, summed
 * in chunk order.  Pieces of one segment come from consecutive chunks. */
static void lamb_combine(const lamb_args *a, int64_t n, int chunks)
{
    int cur = -1;
    double pp = 0.0, rr = 0.0;
    for (int k = 0; k < chunks; k++) {
        int64_t b, e;
        cpu_pool_range(n, chunks, ALIGN_F, k, &b, &e);
        if (b >= e)
            continue;
        const double *part = a->partials + (size_t)k * PARTIAL_STRIDE;
        int s0 = seg_of(a->off, a->n_seg, b), s1 = seg_of(a->off, a->n_seg, e - 1);
        for (int side = 0; side < 2; side++) {
            int s = side ? s1 : s0;
            if (side && s1 == s0)
                break;
            if (a->off[s] >= b && a->off[s + 1] <= e)
                continue;  /* wholly inside: written by the chunk */
            if (s != cur) {
                if (cur >= 0) {
                    a->norms[2 * cur] = (float)sqrt(pp);
                    a->norms[2 * cur + 1] = (float)sqrt(rr);
                }
                cur = s;
                pp = rr = 0.0;
            }
            pp += part[2 * side];
            rr += part[2 * side + 1];
        }
    }
    if (cur >= 0) {
        a->norms[2 * cur] = (float)sqrt(pp);
        a->norms[2 * cur + 1] = (float)sqrt(rr);
    }
}

int cpu_lamb_step(void *ctx, float *p, const float *g, float *m, float *v, int64_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay,
                  int64_t t, const int64_t *seg_off, int n_seg, float *scratch,
                  const float *lr_scale)
{
    cpu_ctx *c = ctx;
    for (int s = 0; s < n_seg; s++)
        if (seg_off[s + 1] == seg_off[s])
            scratch[2 * s] = scratch[2 * s + 1] = 0.0f;  /* empty: no norms */
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    if (n == 0)
        return MLTK_OK;
    lamb_args a = {
        .p = p, .g = g, .m = m, .v = v, .scale = lr_scale, .b1 = beta1, .b2 = beta2,
        .omb1 = (float)(1.0 - (double)beta1), .omb2 = (float)(1.0 - (double)beta2),
        .ibc1 = (float)(1.0 / bc1), .ibc2s = (float)(1.0 / sqrt(bc2)), .eps = eps,
        .wd = weight_decay, .lr = lr, .off = seg_off, .n_seg = n_seg,
        .norms = scratch, .partials = c->partials };
    int chunks = cpu_pool_chunks(c->pool, n, 6 * n, GRAIN);
    cpu_pool_run(c->pool, lamb_pass1, &a, n, chunks, ALIGN_F, 6 * n);
    lamb_combine(&a, n, chunks);
    cpu_pool_run(c->pool, lamb_pass2, &a, n, chunks, ALIGN_F, 4 * n);
    return MLTK_OK;
}
