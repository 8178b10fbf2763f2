/* tf_common.h - what the transform plugins share: the image spec check,
 * random draws from mltk_rng_u01 and key pairs.
 *
 * What this is: static inline helpers compiled into each plugin (nothing
 * here is exported).  Every random number a transform uses is
 * mltk_rng_u01(key, k) for k = 0, 1, ... in the order each plugin's file
 * documents; the helpers below turn those uniforms into integers,
 * normals (Box-Muller) and Beta variates (two Marsaglia-Tsang gammas).
 *
 * What this is not: a random-number generator of its own.
 */
#ifndef MLTK_TRANSFORMS_TF_COMMON_H
#define MLTK_TRANSFORMS_TF_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mltk/plugin.h>
#include <mltk/rng.h>

/* Check that `in` is an image (C, H, W) with C = 1 or 3 and H, W >= 1, in
 * u8 (when u8_ok) or f32 (when f32_ok).  Messages start with the plugin's
 * name. */
static inline int tf_check_image(const char *name, const mltk_sample_spec *in, int u8_ok,
                                 int f32_ok, char **err)
{
    const mltk_shape *s = &in->shape;

    if (s->ndim != 3 || (s->dim[0] != 1 && s->dim[0] != 3) || s->dim[1] < 1
        || s->dim[2] < 1) {
        char buf[160];
        size_t o = 0;
        buf[0] = 0;
        for (int i = 0; i < s->ndim && i < MLTK_MAX_DIMS && o < sizeof(buf) - 24; i++)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%lld", i ? ", " : "",
                                  (long long)s->dim[i]);
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "%s: expected an image (C, H, W) with C = 1 or 3, got (%s)",
                         name, buf);
    }
    if (!((in->dtype == MLTK_U8 && u8_ok) || (in->dtype == MLTK_F32 && f32_ok)))
        return mltk_errf(err, MLTK_ERR_SHAPE, "%s: expected %s samples, got %s", name,
                         u8_ok && f32_ok ? "u8 or f32" : u8_ok ? "u8" : "f32",
                         mltk_dtype_name(in->dtype));
    return MLTK_OK;
}

/* An integer uniform in [lo, hi) (hi > lo) from one uniform u in [0, 1):
 * lo + floor(u * (hi - lo)), as torch.randint(lo, hi) draws it. */
static inline int64_t tf_randint(float u, int64_t lo, int64_t hi)
{
    int64_t v = lo + (int64_t)floor((double)u * (double)(hi - lo));
    return v >= hi ? hi - 1 : v;
}

/* A uniform in [a, b) from u. */
static inline double tf_uniform(float u, double a, double b)
{
    return a + (b - a) * (double)u;
}

/* A standard normal from draws k and k+1 of key (Box-Muller, cosine). */
static inline double tf_normal(uint64_t key, uint64_t k)
{
    double u1 = 1.0 - (double)mltk_rng_u01(key, k);  /* (0, 1] */
    double u2 = (double)mltk_rng_u01(key, k + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Gamma(a, 1), a > 0, by Marsaglia and Tsang (2000), drawing from key at
 * *k onwards (3 uniforms per trial: two for the normal, one for the
 * acceptance test); a < 1 uses Gamma(a + 1) * U^(1/a) (one more uniform,
 * drawn first).  At most 64 trials (the acceptance rate is above 0.95),
 * then the mean of the distribution. */
static inline double tf_gamma(uint64_t key, uint64_t *k, double a)
{
    double boost = 1.0, d, c;

    if (a < 1.0) {
        double u = 1.0 - (double)mltk_rng_u01(key, (*k)++);
        boost = pow(u, 1.0 / a);
        a += 1.0;
    }
    d = a - 1.0 / 3.0;
    c = 1.0 / sqrt(9.0 * d);
    for (int t = 0; t < 64; t++) {
        double z = tf_normal(key, *k), v, u;
        *k += 2;
        u = (double)mltk_rng_u01(key, (*k)++);
        v = 1.0 + c * z;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        if (u < 1.0 - 0.0331 * z * z * z * z
            || log(u) < 0.5 * z * z + d * (1.0 - v + log(v)))
            return d * v * boost;
    }
    return d * boost;
}

/* Beta(a, a) = X / (X + Y) with X, Y ~ Gamma(a), X drawn first, from key
 * at draw 0 onwards; *k is left after the last draw used. */
static inline double tf_beta(uint64_t key, uint64_t *k, double a)
{
    double x = tf_gamma(key, k, a), y = tf_gamma(key, k, a);

    return x + y > 0.0 ? x / (x + y) : 0.5;
}

/* A key of type ints holding one value (both) or two (height, width). */
static inline int tf_read_pair(const mltk_params_t *p, const char *key, int64_t *a,
                               int64_t *b, char **err)
{
    int64_t v[3];
    int n = mltk_params_ints(p, key, v, 3);

    if (n == 1) {
        *a = *b = v[0];
        return MLTK_OK;
    }
    if (n == 2) {
        *a = v[0];
        *b = v[1];
        return MLTK_OK;
    }
    return mltk_errf(err, MLTK_ERR_CONFIG,
                     "key '%s' must be one integer or two (height, width), got %d values",
                     key, n);
}

/* A key of type floats holding two values lo <= hi. */
static inline int tf_read_range(const mltk_params_t *p, const char *key, double *lo,
                                double *hi, char **err)
{
    double v[3];
    int n = mltk_params_floats(p, key, v, 3);

    if (n != 2 || !(v[0] <= v[1]))
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "key '%s' must be two numbers lo, hi with lo <= hi", key);
    *lo = v[0];
    *hi = v[1];
    return MLTK_OK;
}

/* A fill value as a byte: rounded and clamped to [0, 255]. */
static inline uint8_t tf_fill_u8(double v)
{
    return (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : floor(v + 0.5));
}

#endif /* MLTK_TRANSFORMS_TF_COMMON_H */
