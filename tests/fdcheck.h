/* fdcheck.h - finite-difference gradient checks for the test suites.
 *
 * What this is: one harness that compares an analytic gradient (what a
 * backward op or a layer's backward computed) with central differences of
 * a scalar function of float inputs, evaluated in double:
 *
 *     numeric[i] = (f(x + h e_i) - f(x - h e_i)) / (x_i+ - x_i-)
 *
 * where x_i+ and x_i- are the float values actually stored (so the
 * rounding of x_i +- h to float does not bias the quotient), and the step
 * is chosen per magnitude, h = o->step * max(1, |x_i|).  An index passes
 * when
 *
 *     |analytic - numeric| <= o->abs + o->rel * max(|analytic|, |numeric|)
 *                             + noise,
 *
 * noise = o->f_noise * max(1, |f(x)|) / (x_i+ - x_i-): the float rounding
 * of f's evaluation divided by the step, which bounds what a correct
 * gradient can differ by.  An index where f has a kink (relu at 0, a tie
 * of a max, |x| at 0) is recognised by its one-sided differences
 * disagreeing by more than o->kink (relative) and skipped, not failed,
 * when o->kink > 0.
 *
 * How to use it: write f as a function of a context that runs the forward
 * computation on the float inputs (which `x` points into: x may be any
 * one input of several) and reduces the output to a double, typically
 * sum_i w_i y_i with fixed weights w (fd_weights(), fd_dot()); run the
 * backward once with dy = w to get `grad`; then
 *
 *     fd_opts o = FD_OPTS_DEFAULT;
 *     fd_report r;
 *     if (fd_check_r("dense dW", f, ctx, W, n, dW, &o, &r))
 *         ck_abort_msg("%s", r.msg);
 *
 * or simply `ck_assert(fd_check("dense dW", f, ctx, W, n, dW, &o) == 0)`,
 * which prints every failing index (up to o->max_print) to stderr.
 * x is restored bit for bit after each probe.  f must be deterministic:
 * the same x gives the same value.  f may return NaN to signal a failed
 * evaluation (the check then fails with that message).
 *
 * Where the computation has a double-precision reference (op_ref.h),
 * fd_check_ref (below) holds the float analytic gradient to central
 * differences of that reference instead, at 1e-5 of the gradient's
 * largest element rather than ~1 %.
 *
 * What this is not: a test framework (it calls nothing of Check's; the
 * caller asserts on the result) or a way to check second derivatives.
 * Everything is static inline so each suite takes only what it uses.
 */
#ifndef MLTK_FDCHECK_H
#define MLTK_FDCHECK_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- options and report ---------------------------------------------------- */

typedef struct fd_opts {
    double  step;      /* base step; h = step * max(1, |x_i|) */
    double  rel;       /* relative bound on |analytic - numeric| */
    double  abs;       /* absolute bound */
    double  f_noise;   /* relative rounding of one evaluation of f (float
                        * outputs reduced in double: a few FLT_EPSILON) */
    double  kink;      /* > 0: skip an index whose forward and backward
                        * one-sided differences differ by more than this
                        * fraction of their magnitude (plus the bound) */
    int64_t max_points;/* > 0: probe at most this many indices, spread
                        * evenly over [0, n) (the first and last always) */
    int     max_print; /* failing indices printed to stderr by fd_check */
} fd_opts;

/* Central differences of float evaluations at h = 1e-2 are accurate to
 * about h^2 |f'''| + FLT_EPSILON |f| / h: with the activations and
 * normalisations here (|f'''| of order 1 at unit inputs) that is ~1e-4 of
 * the gradient, so 1e-2 relative + 1e-3 absolute leaves a wide margin yet
 * catches any wrong formula (a missing factor or term changes the
 * gradient by far more than 1 %). */
#define FD_OPTS_DEFAULT                                                          \
    { .step = 1e-2, .rel = 1e-2, .abs = 1e-3, .f_noise = 8 * (double)FLT_EPSILON, \
      .kink = 0.1, .max_points = 0, .max_print = 5 }

typedef struct fd_report {
    int64_t checked;   /* indices probed */
    int64_t failed;    /* indices out of bounds */
    int64_t skipped;   /* indices skipped at a kink */
    int64_t worst;     /* index of the largest excess over the bound, or -1 */
    double  worst_analytic, worst_numeric;
    double  scale;     /* fd_check_ref: max |numeric| over the probed indices */
    double  max_err;   /* fd_check_ref: max |analytic - numeric| / scale */
    char    msg[512];  /* the first failure, "what: index i: analytic A,
                        * numeric N (|diff| D > bound B)"; "" if none */
} fd_report;

/* ---- helpers ----------------------------------------------------------------- */

/* Fixed weights for the scalar function sum_i w_i y_i: uniform in
 * [-1, 1), deterministic in `seed`, never near 0 (|w| >= 0.25) so that
 * every output takes part. */
static inline void fd_weights(float *w, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        double u = (double)(z >> 11) / 9007199254740992.0;   /* [0, 1) */
        double v = 0.25 + 0.75 * u;                          /* [0.25, 1) */
        w[i] = (float)((z & 1) ? -v : v);
    }
}

/* sum_i w_i y_i in double */
static inline double fd_dot(const float *w, const float *y, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)w[i] * (double)y[i];
    return s;
}

/* The i-th probed index when probing m of n evenly (m <= n). */
static inline int64_t fd_index(int64_t k, int64_t m, int64_t n)
{
    if (m >= n || m <= 1)
        return k;
    return (int64_t)((double)k * (double)(n - 1) / (double)(m - 1) + 0.5);
}

/* ---- the check ---------------------------------------------------------------- */

/* The work of fd_check_r and fd_check: failures are printed to `out`
 * (NULL: not printed), at most max_print of them. */
static inline int64_t fd_check_impl(const char *what, double (*f)(void *ctx), void *ctx,
                                    float *x, int64_t n, const float *grad,
                                    const fd_opts *o, fd_report *r, FILE *out)
{
    static const fd_opts def = FD_OPTS_DEFAULT;
    fd_report local;
    if (!o)
        o = &def;
    if (!r)
        r = &local;
    memset(r, 0, sizeof *r);
    r->worst = -1;
    double worst_excess = -1;
    int printed = 0;

    double f0 = f(ctx);
    if (!isfinite(f0)) {
        r->failed = 1;
        snprintf(r->msg, sizeof r->msg, "%s: f(x) = %g is not finite", what, f0);
        if (out)
            fprintf(out, "fd_check: %s\n", r->msg);
        return 1;
    }
    double noise_f = o->f_noise * (fabs(f0) > 1 ? fabs(f0) : 1);
    int64_t m = o->max_points > 0 && o->max_points < n ? o->max_points : n;
    int64_t prev = -1;
    for (int64_t k = 0; k < m; k++) {
        int64_t i = fd_index(k, m, n);
        if (i == prev)
            continue;
        prev = i;
        float x0 = x[i];
        double h = o->step * (fabs((double)x0) > 1 ? fabs((double)x0) : 1);
        float xp = (float)((double)x0 + h), xm = (float)((double)x0 - h);
        x[i] = xp;
        double fp = f(ctx);
        x[i] = xm;
        double fm = f(ctx);
        x[i] = x0;
        double den = (double)xp - (double)xm;
        double num = (fp - fm) / den;
        double ana = (double)grad[i];
        char line[512];
        r->checked++;
        if (!isfinite(fp) || !isfinite(fm) || !isfinite(ana)) {
            snprintf(line, sizeof line,
                     "%s: index %lld of %lld: analytic %.9g, f(x+h) %g, f(x-h) %g "
                     "(not finite)", what, (long long)i, (long long)n, ana, fp, fm);
        } else {
            double mag = fabs(ana) > fabs(num) ? fabs(ana) : fabs(num);
            double bound = o->abs + o->rel * mag + noise_f / den;
            double diff = fabs(ana - num);
            if (diff <= bound)
                continue;
            if (o->kink > 0) {
                /* one-sided differences: at a kink they disagree by O(1) */
                double dp = (fp - f0) / ((double)xp - (double)x0);
                double dm = (f0 - fm) / ((double)x0 - (double)xm);
                double dmag = fabs(dp) > fabs(dm) ? fabs(dp) : fabs(dm);
                if (fabs(dp - dm) > o->kink * dmag + 2 * bound) {
                    r->skipped++;
                    continue;
                }
            }
            if (diff - bound > worst_excess) {
                worst_excess = diff - bound;
                r->worst = i;
                r->worst_analytic = ana;
                r->worst_numeric = num;
            }
            snprintf(line, sizeof line,
                     "%s: index %lld of %lld: analytic %.9g, numeric %.9g "
                     "(|diff| %.3g > bound %.3g; x = %.9g, h = %.3g)",
                     what, (long long)i, (long long)n, ana, num, diff, bound,
                     (double)x0, den / 2);
        }
        r->failed++;
        if (!r->msg[0])
            memcpy(r->msg, line, sizeof r->msg);
        if (out && printed < o->max_print) {
            fprintf(out, "fd_check: %s\n", line);
            printed++;
        }
    }
    if (out && r->failed)
        fprintf(out, "fd_check: %s: %lld of %lld probed indices out of bounds "
                "(%lld skipped at kinks)\n", what, (long long)r->failed,
                (long long)r->checked, (long long)r->skipped);
    return r->failed;
}

/* Compare grad (n) with central differences of f over x (n).  Returns the
 * number of failing indices (0: all within bounds) and fills *r (may be
 * NULL) with counts, the worst index and the first failure's message.
 * `what` names the case in messages.  o NULL: FD_OPTS_DEFAULT.  Prints
 * nothing. */
static inline int64_t fd_check_r(const char *what, double (*f)(void *ctx), void *ctx,
                                 float *x, int64_t n, const float *grad,
                                 const fd_opts *o, fd_report *r)
{
    return fd_check_impl(what, f, ctx, x, n, grad, o, r, NULL);
}

/* As fd_check_r without a report, printing the failing indices (up to
 * o->max_print) and a summary line to stderr. */
static inline int64_t fd_check(const char *what, double (*f)(void *ctx), void *ctx,
                               float *x, int64_t n, const float *grad, const fd_opts *o)
{
    return fd_check_impl(what, f, ctx, x, n, grad, o, NULL, stderr);
}

/* ---- against a double-precision reference ------------------------------------ */

/* The check above differentiates the float forward pass, so its bounds
 * are ~1 % (a float f, a step of 1e-2).  Where the computation has a
 * double-precision reference (tests/op_ref.h), the float analytic
 * gradient can be held to far less: fd_check_ref differentiates the
 * REFERENCE, a double function g of double inputs x evaluated at the
 * float values the layer was given, by central differences at the
 * absolute step o->step (1e-6: truncation ~h^2 |g'''| ~ 1e-12 and
 * rounding ~2^-53 |g| / h ~ 1e-10 of g, both far below the bound), and
 * passes index i when
 *
 *     |analytic_i - numeric_i| <= o->rel * S + o->abs,
 *     S = max_j |numeric_j| over the probed indices,
 *
 * i.e. the error is measured against the scale of the whole gradient,
 * not of one element: an element that sums terms of mixed sign to ~0
 * keeps the float rounding of its terms (~2^-24 of S times a few), which
 * a bound relative to that element alone could not allow.  The default
 * o->rel = 1e-5 is ~170 float ulps (2^-24) of S: room for a float
 * backward that sums tens to hundreds of products, and ~1000x less than
 * any missing or misplaced term.  x is restored bit for bit.  g must not
 * have a kink within o->step of x (the suites keep inputs 0.02 or more
 * from one). */
typedef struct fd_ref_opts {
    double  step;       /* absolute step h on the double inputs */
    double  rel;        /* bound relative to S, the gradient's scale */
    double  abs;        /* absolute bound (0: none) */
    int64_t max_points; /* > 0: probe at most this many indices, evenly */
    int     max_print;  /* failing indices printed by fd_check_ref_print */
} fd_ref_opts;

#define FD_REF_OPTS_DEFAULT { .step = 1e-6, .rel = 1e-5, .abs = 0, .max_points = 0, \
                              .max_print = 5 }

/* d[i] = (double)f[i] */
static inline void fd_to_double(double *d, const float *f, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = (double)f[i];
}

/* sum_i w_i y_i with double y */
static inline double fd_dot_d(const float *w, const double *y, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)w[i] * y[i];
    return s;
}

static inline int64_t fd_check_ref_impl(const char *what, double (*g)(void *ctx), void *ctx,
                                        double *x, int64_t n, const float *grad,
                                        const fd_ref_opts *o, fd_report *r, FILE *out)
{
    static const fd_ref_opts def = FD_REF_OPTS_DEFAULT;
    fd_report local;
    if (!o)
        o = &def;
    if (!r)
        r = &local;
    memset(r, 0, sizeof *r);
    r->worst = -1;
    int64_t m = o->max_points > 0 && o->max_points < n ? o->max_points : n;
    double *num = malloc((size_t)(m > 0 ? m : 1) * sizeof(double));
    int64_t *idx = malloc((size_t)(m > 0 ? m : 1) * sizeof(int64_t));
    if (!num || !idx) {
        free(num);
        free(idx);
        r->failed = 1;
        snprintf(r->msg, sizeof r->msg, "%s: out of memory", what);
        return 1;
    }
    /* the reference gradient first: its scale bounds every index */
    int64_t k_n = 0, prev = -1;
    double scale = 0;
    for (int64_t k = 0; k < m; k++) {
        int64_t i = fd_index(k, m, n);
        if (i == prev)
            continue;
        prev = i;
        double x0 = x[i], h = o->step;
        x[i] = x0 + h;
        double xp = x[i], gp = g(ctx);
        x[i] = x0 - h;
        double xm = x[i], gm = g(ctx);
        x[i] = x0;
        idx[k_n] = i;
        num[k_n] = (gp - gm) / (xp - xm);
        if (fabs(num[k_n]) > scale)
            scale = fabs(num[k_n]);
        k_n++;
    }
    r->scale = scale;
    double bound = o->rel * scale + o->abs, worst_excess = -1;
    int printed = 0;
    for (int64_t k = 0; k < k_n; k++) {
        int64_t i = idx[k];
        double ana = (double)grad[i], diff = fabs(ana - num[k]);
        char line[512];
        r->checked++;
        if (!isfinite(num[k]) || !isfinite(ana)) {
            snprintf(line, sizeof line, "%s: index %lld of %lld: analytic %.9g, reference %.9g "
                     "(not finite)", what, (long long)i, (long long)n, ana, num[k]);
        } else {
            if (scale > 0 && diff / scale > r->max_err)
                r->max_err = diff / scale;
            if (diff <= bound)
                continue;
            if (diff - bound > worst_excess) {
                worst_excess = diff - bound;
                r->worst = i;
                r->worst_analytic = ana;
                r->worst_numeric = num[k];
            }
            snprintf(line, sizeof line,
                     "%s: index %lld of %lld: analytic %.9g, double reference %.9g "
                     "(|diff| %.3g > bound %.3g: %.3g of the gradient's scale %.6g)",
                     what, (long long)i, (long long)n, ana, num[k], diff, bound, o->rel,
                     scale);
        }
        r->failed++;
        if (!r->msg[0])
            memcpy(r->msg, line, sizeof r->msg);
        if (out && printed < o->max_print) {
            fprintf(out, "fd_check_ref: %s\n", line);
            printed++;
        }
    }
    if (out && r->failed)
        fprintf(out, "fd_check_ref: %s: %lld of %lld probed indices out of bounds\n", what,
                (long long)r->failed, (long long)r->checked);
    free(num);
    free(idx);
    return r->failed;
}

/* Compare the float analytic gradient grad (n) with central differences
 * of the double reference g over the double inputs x (n) (see above).
 * Returns the number of failing indices and fills *r (may be NULL):
 * counts, r->scale, r->max_err (the largest |analytic - numeric| / S),
 * the worst index and the first failure's message.  o NULL:
 * FD_REF_OPTS_DEFAULT.  Prints nothing. */
static inline int64_t fd_check_ref(const char *what, double (*g)(void *ctx), void *ctx,
                                   double *x, int64_t n, const float *grad,
                                   const fd_ref_opts *o, fd_report *r)
{
    return fd_check_ref_impl(what, g, ctx, x, n, grad, o, r, NULL);
}

/* As fd_check_ref, printing the failing indices (up to o->max_print) and
 * a summary line to stderr. */
static inline int64_t fd_check_ref_print(const char *what, double (*g)(void *ctx), void *ctx,
                                         double *x, int64_t n, const float *grad,
                                         const fd_ref_opts *o, fd_report *r)
{
    return fd_check_ref_impl(what, g, ctx, x, n, grad, o, r, stderr);
}

#endif /* MLTK_FDCHECK_H */
