/* op_ref.h - double-precision references of the ops of backend.h, for the
 * conformance table (check_conformance.c).
 *
 * What this is: each op of the op table written as the plainest loop that
 * states its definition (PyTorch's, where backend.h names one), computed
 * in double from the float (or bf16, f16) values the op is given.  Tensors
 * are host arrays of doubles in logical row-major order, one per tensor
 * of the op's call, in the call's order; an absent optional tensor is
 * NULL.  Outputs arrive holding their initial contents (what the op may
 * read: beta C, accumulate, running statistics, optimizer state) and are
 * overwritten with the expected result.  Float and half conversions (round
 * to nearest even) are here too, so that the cast op and low-precision
 * cases have an exact reference.
 *
 * The definitions follow the ABI 1 cpu kernels that ABI 2 keeps (the
 * formulas check_backend.c, check_conv.c and check_norm.c tested):
 * conv2d is cross-correlation with groups and dilation; pooling takes the
 * first maximum and counts padding in the average's divisor; batch norm
 * normalises with the biased variance and updates the running variance
 * with the unbiased one; the losses are means (KL: batch mean times T^2);
 * the optimizer steps are torch.optim's, with lr_scale 0 leaving a
 * parameter bit for bit.
 *
 * What this is not: fast, or a second implementation to be kept in step
 * with the kernels' rounding: where a float kernel's result differs from
 * the exact value, the caller's tolerance says by how much it may.
 */
#ifndef MLTK_OP_REF_H
#define MLTK_OP_REF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <mltk/backend.h>
#include <mltk/rng.h>

/* ---- float, bf16 and f16 ----------------------------------------------------- */

static inline uint32_t ref_fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float ref_bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* float -> bf16, round to nearest even; NaN -> quiet NaN */
static inline uint16_t ref_f2bf(float f)
{
    uint32_t x = ref_fbits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x0040u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static inline float ref_bf2f(uint16_t h) { return ref_bitsf((uint32_t)h << 16); }

/* float -> IEEE binary16, round to nearest even (overflow to infinity,
 * subnormals rounded); NaN -> quiet NaN */
static inline uint16_t ref_f2h(float f)
{
    uint32_t x = ref_fbits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u)            /* >= 65520: rounds to infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {           /* below 2^-14: subnormal or zero */
        /* value = ax as float; in units of 2^-24 */
        double v = (double)ref_bitsf(ax) * 16777216.0;
        double r = nearbyint(v);      /* round to nearest even (default mode) */
        return (uint16_t)(sign | (uint16_t)r);
    }
    uint32_t e = (ax >> 23) - 112;    /* rebias 127 -> 15 */
    uint32_t m = ax & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        h++;                          /* may carry into the exponent: fine */
    return (uint16_t)(sign | h);
}

static inline float ref_h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0)
        return ref_bitsf(sign) + (sign ? -1.0f : 1.0f) * (float)m * 0x1p-24f;
    if (e == 31)
        return ref_bitsf(sign | 0x7f800000u | (m << 13));
    return ref_bitsf(sign | ((e + 112) << 23) | (m << 13));
}

/* v as stored in dtype dt (float first, then bf16 or f16; integers
 * truncated as a cast does) */
static inline double ref_round(double v, mltk_dtype dt)
{
    switch (dt) {
    case MLTK_F32:  return (double)(float)v;
    case MLTK_BF16: return (double)ref_bf2f(ref_f2bf((float)v));
    case MLTK_F16:  return (double)ref_h2f(ref_f2h((float)v));
    case MLTK_I32:  return (double)(int32_t)v;
    default:        return v;
    }
}

/* ---- activations --------------------------------------------------------------- */

static inline double ref_act(mltk_act act, double alpha, double x)
{
    switch (act) {
    case MLTK_ACT_RELU:       return x > 0 ? x : (isnan(x) ? x : 0);
    case MLTK_ACT_LEAKY_RELU: return x > 0 ? x : alpha * x;
    case MLTK_ACT_SIGMOID:    return 1.0 / (1.0 + exp(-x));
    case MLTK_ACT_TANH:       return tanh(x);
    case MLTK_ACT_ELU:        return x > 0 ? x : alpha * expm1(x);
    case MLTK_ACT_GELU_TANH: {
        double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
        return 0.5 * x * (1.0 + tanh(u));
    }
    case MLTK_ACT_GELU:       return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    default:                  return x;
    }
}

/* d act / dx at x */
static inline double ref_dact(mltk_act act, double alpha, double x)
{
    switch (act) {
    case MLTK_ACT_RELU:       return x > 0 ? 1 : 0;
    case MLTK_ACT_LEAKY_RELU: return x > 0 ? 1 : alpha;
    case MLTK_ACT_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-x));
        return s * (1 - s);
    }
    case MLTK_ACT_TANH: {
        double t = tanh(x);
        return 1 - t * t;
    }
    case MLTK_ACT_ELU:        return x > 0 ? 1 : alpha * exp(x);
    case MLTK_ACT_GELU_TANH: {
        const double k = 0.7978845608028654, c = 0.044715;
        double t = tanh(k * (x + c * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x);
    }
    case MLTK_ACT_GELU:
        return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
    default:                  return 1;
    }
}

/* d act / dx from the output y, for the acts that use it (relu, leaky
 * relu with alpha >= 0, sigmoid, tanh) */
static inline double ref_dact_y(mltk_act act, double alpha, double y)
{
    switch (act) {
    case MLTK_ACT_RELU:       return y > 0 ? 1 : 0;
    case MLTK_ACT_LEAKY_RELU: return y > 0 ? 1 : alpha;
    case MLTK_ACT_SIGMOID:    return y * (1 - y);
    case MLTK_ACT_TANH:       return 1 - y * y;
    default:                  return 1;
    }
}

/* 1 if act's backward reads y (else x) */
static inline int ref_act_uses_y(mltk_act act)
{
    return act == MLTK_ACT_RELU || act == MLTK_ACT_LEAKY_RELU || act == MLTK_ACT_SIGMOID
        || act == MLTK_ACT_TANH;
}

/* ---- linear algebra ---------------------------------------------------------------- */

/* C (M,N) = act(alpha op(A) op(B) + beta C + bias); A stored (M,K) or
 * (K,M) when ta, B (K,N) or (N,K) when tb; beta == 0: C not read.
 * `batch` products, A or B reused when a_batched / b_batched is 0. */
static inline void ref_gemm(double *C, const double *A, const double *B, const double *bias,
                            int64_t batch, int a_batched, int b_batched, int64_t M,
                            int64_t N, int64_t K, const mltk_gemm_params *p)
{
    for (int64_t b = 0; b < batch; b++) {
        const double *a = A + (a_batched ? b * M * K : 0);
        const double *bb = B + (b_batched ? b * K * N : 0);
        double *c = C + b * M * N;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) {
                    double av = p->ta ? a[k * M + i] : a[i * K + k];
                    double bv = p->tb ? bb[j * K + k] : bb[k * N + j];
                    s += av * bv;
                }
                double v = (double)p->alpha * s;
                if (p->beta != 0.0f)
                    v += (double)p->beta * c[i * N + j];
                if (bias)
                    v += bias[j];
                c[i * N + j] = ref_act(p->act, p->act_alpha, v);
            }
    }
}

/* ---- losses ------------------------------------------------------------------------- */

/* PyTorch's cross-entropy with label smoothing ls and class weights w
 * (NULL: 1): loss = sum_i [(1-ls) w[y_i] nll_i + ls/C sum_c w[c] (-logp_ic)]
 * / sum_i w[y_i]; d (may be NULL) = grad_scale d loss / d logits. */
static inline void ref_xent(double *loss, double *d, const double *z, const double *lab,
                            const double *w, int64_t N, int64_t C, double ls, double gs)
{
    double W = 0, sw = 0, total = 0;
    for (int64_t i = 0; i < N; i++)
        W += w ? w[(int64_t)lab[i]] : 1.0;
    for (int64_t c = 0; c < C; c++)
        sw += w ? w[c] : 1.0;
    for (int64_t i = 0; i < N; i++) {
        const double *r = z + i * C;
        int64_t y = (int64_t)lab[i];
        double m = r[0], s = 0, wz = 0;
        for (int64_t c = 1; c < C; c++)
            m = r[c] > m ? r[c] : m;
        for (int64_t c = 0; c < C; c++) {
            s += exp(r[c] - m);
            wz += (w ? w[c] : 1.0) * r[c];
        }
        double lse = m + log(s), wy = w ? w[y] : 1.0;
        total += (1 - ls) * wy * (lse - r[y]) + ls / (double)C * (sw * lse - wz);
        if (d)
            for (int64_t c = 0; c < C; c++) {
                double p = exp(r[c] - m) / s, wc = w ? w[c] : 1.0;
                double g = ((1 - ls) * wy + ls / (double)C * sw) * p - ls / (double)C * wc
                    - (c == y ? (1 - ls) * wy : 0.0);
                d[i * C + c] = gs * g / W;
            }
    }
    *loss = N > 0 ? total / W : 0.0;
}

/* PyTorch's cross-entropy against probabilities t (N, C) with label
 * smoothing ls and class weights w (NULL: 1), written as its definition
 * with logp = log softmax(z) taken directly:
 *   loss = sum_i -sum_c w[c] ((1-ls) t_ic + ls/C) logp_ic / N
 * (divided by N with weights too); d (may be NULL) = grad_scale d loss /
 * d logits = gs ((sum_c v_ic) softmax_ij - v_ij) / N, v = w t'. */
static inline void ref_xent_soft(double *loss, double *d, const double *z, const double *t,
                                 const double *w, int64_t N, int64_t C, double ls, double gs)
{
    double total = 0;
    for (int64_t i = 0; i < N; i++) {
        const double *r = z + i * C, *ti = t + i * C;
        double m = r[0], s = 0, S = 0;
        for (int64_t c = 1; c < C; c++)
            m = r[c] > m ? r[c] : m;
        for (int64_t c = 0; c < C; c++)
            s += exp(r[c] - m);
        double lse = m + log(s);
        for (int64_t c = 0; c < C; c++) {
            double v = (w ? w[c] : 1.0) * ((1 - ls) * ti[c] + ls / (double)C);
            total -= v * (r[c] - lse);
            S += v;
        }
        if (d)
            for (int64_t c = 0; c < C; c++) {
                double v = (w ? w[c] : 1.0) * ((1 - ls) * ti[c] + ls / (double)C);
                d[i * C + c] = gs * (S * exp(r[c] - lse) - v) / (double)N;
            }
    }
    *loss = N > 0 ? total / (double)N : 0.0;
}

/* rows whose first maximum is at the label */
static inline double ref_count_correct(const double *z, const double *lab, int64_t N, int64_t C)
{
    double n = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t best = 0;
        for (int64_t c = 1; c < C; c++)
            if (z[i * C + c] > z[i * C + best])
                best = c;
        n += best == (int64_t)lab[i];
    }
    return n;
}

/* mean of (x-t)^2, |x-t| or bce with logits; d = grad_scale d mean / d x
 * (sign(0) = 0 for l1) */
static inline void ref_pointwise(double *loss, double *d, const double *x, const double *t,
                                 int64_t n, mltk_pointwise kind, double gs)
{
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = x[i] - t[i], g;
        switch (kind) {
        case MLTK_LOSS_MSE: total += r * r; g = 2 * r; break;
        case MLTK_LOSS_L1:  total += fabs(r); g = r > 0 ? 1 : r < 0 ? -1 : 0; break;
        default:
            total += (x[i] > 0 ? x[i] : 0) - x[i] * t[i] + log1p(exp(-fabs(x[i])));
            g = 1.0 / (1.0 + exp(-x[i])) - t[i];
            break;
        }
        if (d)
            d[i] = gs * g / (double)n;
    }
    *loss = n > 0 ? total / (double)n : 0.0;
}

/* T^2 / N sum_rows KL(softmax(t/T) || softmax(s/T)); d = grad_scale T/N (p - q) */
static inline void ref_kl(double *loss, double *d, const double *s, const double *t,
                          int64_t N, int64_t C, double T, double gs)
{
    double total = 0;
    for (int64_t i = 0; i < N; i++) {
        const double *a = s + i * C, *b = t + i * C;
        double ms = a[0] / T, mt = b[0] / T, ss = 0, st = 0;
        for (int64_t c = 1; c < C; c++) {
            ms = a[c] / T > ms ? a[c] / T : ms;
            mt = b[c] / T > mt ? b[c] / T : mt;
        }
        for (int64_t c = 0; c < C; c++) {
            ss += exp(a[c] / T - ms);
            st += exp(b[c] / T - mt);
        }
        double lss = ms + log(ss), lst = mt + log(st);
        for (int64_t c = 0; c < C; c++) {
            double lq = b[c] / T - lst, lp = a[c] / T - lss, q = exp(lq);
            if (q > 0)
                total += q * (lq - lp);
            if (d)
                d[i * C + c] = gs * T / (double)N * (exp(lp) - q);
        }
    }
    *loss = N > 0 ? total * T * T / (double)N : 0.0;
}

/* ---- data movement -------------------------------------------------------------------- */

/* torchvision's order, literally: pad with zeros, crop H x W at (top,
 * left), mirror the crop.  y and x are one image (C,H,W). */
static inline void ref_augment_one(double *y, const double *x, int64_t C, int64_t H,
                                   int64_t W, int64_t top, int64_t left, int flip,
                                   int64_t pad)
{
    for (int64_t c = 0; c < C; c++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                int64_t sh = h + top - pad, sw = w + left - pad;
                double v = sh >= 0 && sh < H && sw >= 0 && sw < W ? x[(c * H + sh) * W + sw]
                                                                  : 0.0;
                y[(c * H + h) * W + (flip ? W - 1 - w : w)] = v;
            }
}

static inline void ref_augment(double *y, const double *x, const double *idx, int64_t n,
                               int64_t C, int64_t H, int64_t W, const mltk_augment_params *p)
{
    int64_t per = C * H * W;
    for (int64_t i = 0; i < n; i++) {
        uint64_t c0 = p->offset + 4 * (uint64_t)i;
        int64_t span = 2 * p->pad + 1;
        int64_t top = (int64_t)floor((double)mltk_rng_u01(p->seed, c0) * (double)span);
        int64_t left = (int64_t)floor((double)mltk_rng_u01(p->seed, c0 + 1) * (double)span);
        int flip = p->flip && mltk_rng_u01(p->seed, c0 + 2) < 0.5f;
        ref_augment_one(y + i * per, x + (int64_t)idx[i] * per, C, H, W, top, left, flip,
                        p->pad);
    }
}

/* ---- convolution and pooling ------------------------------------------------------------- */

/* Visit every (output yi, input xi, weight wi) triple of the convolution. */
#define REF_CONV_FOR_EACH(d, BODY)                                              \
    for (int64_t n_ = 0; n_ < (d)->N; n_++)                                     \
    for (int64_t k_ = 0; k_ < (d)->K; k_++)                                     \
    for (int64_t p_ = 0; p_ < (d)->P; p_++)                                     \
    for (int64_t q_ = 0; q_ < (d)->Q; q_++) {                                   \
        int64_t cg_ = (d)->C / (d)->groups, g_ = k_ / ((d)->K / (d)->groups);   \
        int64_t yi = ((n_ * (d)->K + k_) * (d)->P + p_) * (d)->Q + q_;          \
        for (int64_t cl_ = 0; cl_ < cg_; cl_++)                                 \
        for (int64_t r_ = 0; r_ < (d)->R; r_++)                                 \
        for (int64_t s_ = 0; s_ < (d)->S; s_++) {                               \
            int64_t ih_ = p_ * (d)->stride_h - (d)->pad_h + r_ * (d)->dil_h;    \
            int64_t iw_ = q_ * (d)->stride_w - (d)->pad_w + s_ * (d)->dil_w;    \
            if (ih_ < 0 || ih_ >= (d)->H || iw_ < 0 || iw_ >= (d)->W)           \
                continue;                                                       \
            int64_t xi = ((n_ * (d)->C + g_ * cg_ + cl_) * (d)->H + ih_) * (d)->W + iw_; \
            int64_t wi = ((k_ * cg_ + cl_) * (d)->R + r_) * (d)->S + s_;        \
            BODY                                                                \
        }                                                                       \
    }

static inline void ref_conv_forward(double *y, const double *x, const double *w,
                                    const double *b, const mltk_conv2d_params *p)
{
    const mltk_conv2d_desc *d = &p->d;
    int64_t ny = d->N * d->K * d->P * d->Q;
    for (int64_t i = 0; i < ny; i++)
        y[i] = b ? b[(i / (d->P * d->Q)) % d->K] : 0.0;
    REF_CONV_FOR_EACH(d, { y[yi] += x[xi] * w[wi]; })
    for (int64_t i = 0; i < ny; i++)
        y[i] = ref_act(p->act, p->act_alpha, y[i]);
}

static inline void ref_conv_backward_data(double *dx, const double *dy, const double *w,
                                          const mltk_conv2d_desc *d)
{
    memset(dx, 0, (size_t)(d->N * d->C * d->H * d->W) * sizeof(double));
    REF_CONV_FOR_EACH(d, { dx[xi] += dy[yi] * w[wi]; })
}

static inline void ref_conv_backward_filter(double *dw, double *db, const double *dy,
                                            const double *x, const mltk_conv2d_desc *d)
{
    memset(dw, 0, (size_t)(d->K * (d->C / d->groups) * d->R * d->S) * sizeof(double));
    REF_CONV_FOR_EACH(d, { dw[wi] += dy[yi] * x[xi]; })
    if (db) {
        for (int64_t k = 0; k < d->K; k++)
            db[k] = 0;
        for (int64_t i = 0; i < d->N * d->K * d->P * d->Q; i++)
            db[(i / (d->P * d->Q)) % d->K] += dy[i];
    }
}

/* y (and dx from dy when dx != NULL) of max (first maximum) or average
 * (padding in the divisor) pooling */
static inline void ref_pool(double *y, double *dx, const double *x, const double *dy,
                            const mltk_pool2d_params *pp)
{
    const mltk_pool2d_desc *d = &pp->d;
    if (dx)
        memset(dx, 0, (size_t)(d->N * d->C * d->H * d->W) * sizeof(double));
    for (int64_t pl = 0; pl < d->N * d->C; pl++)
        for (int64_t p = 0; p < d->P; p++)
            for (int64_t q = 0; q < d->Q; q++) {
                int64_t hs = p * d->stride_h - d->pad_h, ws = q * d->stride_w - d->pad_w;
                int64_t yi = (pl * d->P + p) * d->Q + q, best = -1;
                double acc = 0, m = -INFINITY, div = (double)(d->R * d->S);
                for (int64_t r = 0; r < d->R; r++)
                    for (int64_t s = 0; s < d->S; s++) {
                        int64_t h = hs + r, w = ws + s;
                        if (h < 0 || h >= d->H || w < 0 || w >= d->W)
                            continue;
                        int64_t xi = (pl * d->H + h) * d->W + w;
                        acc += x[xi];
                        if (best < 0 || x[xi] > m) {
                            m = x[xi];
                            best = xi;
                        }
                    }
                if (y)
                    y[yi] = pp->kind == MLTK_POOL_MAX ? m : acc / div;
                if (!dx)
                    continue;
                if (pp->kind == MLTK_POOL_MAX) {
                    if (best >= 0)
                        dx[best] += dy[yi];
                    continue;
                }
                for (int64_t r = 0; r < d->R; r++)
                    for (int64_t s = 0; s < d->S; s++) {
                        int64_t h = hs + r, w = ws + s;
                        if (h >= 0 && h < d->H && w >= 0 && w < d->W)
                            dx[(pl * d->H + h) * d->W + w] += dy[yi] / div;
                    }
            }
}

/* ---- normalisation ------------------------------------------------------------------------ */

/* x (N,C,L): per channel mean and biased variance */
static inline void ref_bn_stats(const double *x, int64_t N, int64_t C, int64_t L,
                                double *mean, double *var)
{
    for (int64_t c = 0; c < C; c++) {
        double s = 0, s2 = 0, m;
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++)
                s += x[(n * C + c) * L + l];
        m = s / (double)(N * L);
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                double v = x[(n * C + c) * L + l] - m;
                s2 += v * v;
            }
        mean[c] = m;
        var[c] = s2 / (double)(N * L);
    }
}

/* training forward: y, save_mean, save_invstd; running stats (may be
 * NULL) updated with momentum and the unbiased variance */
static inline void ref_bn_train(double *y, double *smean, double *sinv, double *rmean,
                                double *rvar, const double *x, const double *g,
                                const double *b, int64_t N, int64_t C, int64_t L,
                                const mltk_bn_params *p)
{
    for (int64_t c = 0; c < C; c++) {
        double m, v;
        double s = 0, s2 = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++)
                s += x[(n * C + c) * L + l];
        m = s / (double)(N * L);
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                double e = x[(n * C + c) * L + l] - m;
                s2 += e * e;
            }
        v = s2 / (double)(N * L);
        double inv = 1.0 / sqrt(v + (double)p->eps);
        smean[c] = m;
        sinv[c] = inv;
        if (rmean)
            rmean[c] = (1 - (double)p->momentum) * rmean[c] + (double)p->momentum * m;
        if (rvar)
            rvar[c] = (1 - (double)p->momentum) * rvar[c]
                + (double)p->momentum * (N * L > 1 ? s2 / (double)(N * L - 1) : v);
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                int64_t i = (n * C + c) * L + l;
                y[i] = (x[i] - m) * inv * (g ? g[c] : 1.0) + (b ? b[c] : 0.0);
            }
    }
}

static inline void ref_bn_eval(double *y, const double *x, const double *g, const double *b,
                               const double *rm, const double *rv, int64_t N, int64_t C,
                               int64_t L, double eps)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t l = 0; l < L; l++) {
                int64_t i = (n * C + c) * L + l;
                y[i] = (x[i] - rm[c]) / sqrt(rv[c] + eps) * (g ? g[c] : 1.0) + (b ? b[c] : 0.0);
            }
}

/* training-mode backward from the saved mean and 1/std */
static inline void ref_bn_backward(double *dx, double *dg, double *db, const double *dy,
                                   const double *x, const double *g, const double *sm,
                                   const double *si, int64_t N, int64_t C, int64_t L)
{
    double M = (double)(N * L);
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                int64_t i = (n * C + c) * L + l;
                sdy += dy[i];
                sdyx += dy[i] * (x[i] - sm[c]) * si[c];
            }
        if (dg)
            dg[c] = sdyx;
        if (db)
            db[c] = sdy;
        if (dx) {
            double gc = g ? g[c] : 1.0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t l = 0; l < L; l++) {
                    int64_t i = (n * C + c) * L + l;
                    double xh = (x[i] - sm[c]) * si[c];
                    dx[i] = gc * si[c] * (dy[i] - sdy / M - xh * sdyx / M);
                }
        }
    }
}

/* x (R,K) over its rows: y, mean, rstd */
static inline void ref_ln_forward(double *y, double *mean, double *rstd, const double *x,
                                  const double *g, const double *b, int64_t R, int64_t K,
                                  double eps)
{
    for (int64_t r = 0; r < R; r++) {
        const double *row = x + r * K;
        double s = 0, s2 = 0;
        for (int64_t k = 0; k < K; k++)
            s += row[k];
        double m = s / (double)K;
        for (int64_t k = 0; k < K; k++)
            s2 += (row[k] - m) * (row[k] - m);
        double inv = 1.0 / sqrt(s2 / (double)K + eps);
        mean[r] = m;
        rstd[r] = inv;
        for (int64_t k = 0; k < K; k++)
            y[r * K + k] = (row[k] - m) * inv * (g ? g[k] : 1.0) + (b ? b[k] : 0.0);
    }
}

static inline void ref_ln_backward(double *dx, double *dg, double *db, const double *dy,
                                   const double *x, const double *g, const double *mean,
                                   const double *rstd, int64_t R, int64_t K)
{
    if (dg)
        for (int64_t k = 0; k < K; k++)
            dg[k] = 0;
    if (db)
        for (int64_t k = 0; k < K; k++)
            db[k] = 0;
    for (int64_t r = 0; r < R; r++) {
        double s1 = 0, s2 = 0;
        for (int64_t k = 0; k < K; k++) {
            int64_t i = r * K + k;
            double xh = (x[i] - mean[r]) * rstd[r], gd = dy[i] * (g ? g[k] : 1.0);
            s1 += gd;
            s2 += gd * xh;
            if (dg)
                dg[k] += dy[i] * xh;
            if (db)
                db[k] += dy[i];
        }
        if (dx)
            for (int64_t k = 0; k < K; k++) {
                int64_t i = r * K + k;
                double xh = (x[i] - mean[r]) * rstd[r], gd = dy[i] * (g ? g[k] : 1.0);
                dx[i] = rstd[r] * (gd - s1 / (double)K - xh * s2 / (double)K);
            }
    }
}

static inline void ref_softmax(double *y, const double *x, int64_t R, int64_t K)
{
    for (int64_t r = 0; r < R; r++) {
        double m = x[r * K], s = 0;
        for (int64_t k = 1; k < K; k++)
            m = x[r * K + k] > m ? x[r * K + k] : m;
        for (int64_t k = 0; k < K; k++)
            s += exp(x[r * K + k] - m);
        for (int64_t k = 0; k < K; k++)
            y[r * K + k] = exp(x[r * K + k] - m) / s;
    }
}

static inline void ref_softmax_backward(double *dx, const double *dy, const double *y,
                                        int64_t R, int64_t K)
{
    for (int64_t r = 0; r < R; r++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++)
            s += dy[r * K + k] * y[r * K + k];
        for (int64_t k = 0; k < K; k++)
            dx[r * K + k] = y[r * K + k] * (dy[r * K + k] - s);
    }
}

/* ---- optimizer steps ---------------------------------------------------------------------- */

/* torch.optim.SGD; mom (may be NULL when momentum is 0); sc (may be NULL)
 * multiplies lr per element, 0 freezes */
static inline void ref_sgd(double *p, double *mom, const double *g, const double *sc,
                           int64_t n, const mltk_sgd_params *o)
{
    double lr = o->lr, mu = o->momentum, damp = o->dampening, wd = o->weight_decay;
    for (int64_t i = 0; i < n; i++) {
        double s = sc ? sc[i] : 1.0, d = g[i] + wd * p[i];
        if (mu != 0) {
            mom[i] = o->t == 1 ? d : mu * mom[i] + (1 - damp) * d;
            d = o->nesterov ? d + mu * mom[i] : mom[i];
        }
        if (s != 0)
            p[i] -= lr * s * d;
    }
}

/* torch.optim.Adam / AdamW */
static inline void ref_adam(double *p, double *m, double *v, const double *g, const double *sc,
                            int64_t n, const mltk_adam_params *o)
{
    double b1 = o->beta1, b2 = o->beta2, lr = o->lr, wd = o->weight_decay;
    double bc1 = 1 - pow(b1, (double)o->t), bc2 = 1 - pow(b2, (double)o->t);
    for (int64_t i = 0; i < n; i++) {
        double s = sc ? sc[i] : 1.0, pi = p[i], gi = g[i];
        if (o->decoupled)
            pi *= 1 - lr * s * wd;
        else
            gi += wd * pi;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        if (s != 0)
            p[i] = pi - lr * s * (m[i] / bc1) / (sqrt(v[i] / bc2) + (double)o->eps);
    }
}

/* torch.optim.RMSprop; mom used when momentum > 0, gavg when centered */
static inline void ref_rmsprop(double *p, double *sq, double *mom, double *gavg,
                               const double *g, const double *sc, int64_t n,
                               const mltk_rmsprop_params *o)
{
    double a = o->alpha, lr = o->lr, wd = o->weight_decay, mu = o->momentum;
    for (int64_t i = 0; i < n; i++) {
        double s = sc ? sc[i] : 1.0, gi = g[i] + wd * p[i];
        sq[i] = a * sq[i] + (1 - a) * gi * gi;
        double avg;
        if (o->centered) {
            gavg[i] = a * gavg[i] + (1 - a) * gi;
            double var = sq[i] - gavg[i] * gavg[i];
            avg = sqrt(var > 0 ? var : 0) + (double)o->eps;
        } else {
            avg = sqrt(sq[i]) + (double)o->eps;
        }
        double d = gi / avg;
        if (mu > 0) {
            mom[i] = mu * mom[i] + d;
            d = mom[i];
        }
        if (s != 0)
            p[i] -= lr * s * d;
    }
}

/* LAMB with Adam's bias correction; per segment s of seg_off, scratch
 * [2s] = ||p||, [2s+1] = ||r|| before the update, trust = ||p|| / ||r||
 * (1 when either is 0) */
static inline void ref_lamb(double *p, double *m, double *v, double *scratch,
                            const double *g, const double *sc, const mltk_lamb_params *o)
{
    double b1 = o->beta1, b2 = o->beta2;
    double bc1 = 1 - pow(b1, (double)o->t), bc2 = 1 - pow(b2, (double)o->t);
    for (int s = 0; s < o->n_seg; s++) {
        double pp = 0, rr = 0;
        int64_t lo = o->seg_off[s], hi = o->seg_off[s + 1];
        for (int64_t i = lo; i < hi; i++) {
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            double r = (m[i] / bc1) / (sqrt(v[i] / bc2) + (double)o->eps)
                + (double)o->weight_decay * p[i];
            pp += p[i] * p[i];
            rr += r * r;
        }
        double pn = sqrt(pp), rn = sqrt(rr);
        scratch[2 * s] = pn;
        scratch[2 * s + 1] = rn;
        double trust = pn > 0 && rn > 0 ? pn / rn : 1.0;
        for (int64_t i = lo; i < hi; i++) {
            double sc_i = sc ? sc[i] : 1.0;
            double r = (m[i] / bc1) / (sqrt(v[i] / bc2) + (double)o->eps)
                + (double)o->weight_decay * p[i];
            if (sc_i != 0)
                p[i] -= (double)o->lr * trust * sc_i * r;
        }
    }
}

#endif /* MLTK_OP_REF_H */
