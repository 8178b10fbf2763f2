/* random_erasing.c - the random_erasing transform: torchvision's
 * RandomErasing.
 *
 * What this is: with probability p (draw 0 < p), replace a box of an
 * image (C, H, W) by `value` (or, with random_value = true, by standard
 * normal noise).  The box is torchvision's get_params: up to 10 attempts,
 * attempt t (0-based) drawing 1 + 4t (area fraction from `scale`),
 * 2 + 4t (log aspect ratio from `ratio`), 3 + 4t (row offset
 * i = randint(0, H - h + 1)) and 4 + 4t (column offset j), with
 * h = round(sqrt(area * ratio)), w = round(sqrt(area / ratio)) (half to
 * even) and the attempt kept only when h < H and w < W; after 10 failed
 * attempts nothing is erased.  Noise element e (in (C, h, w) order) is
 * Box-Muller on draws 41 + 2e and 42 + 2e.  Meant for f32 samples after
 * normalize; u8 samples take `value` rounded to a byte (random_value
 * needs f32).
 *
 * What this is not: per-channel values.
 */
#include <stdlib.h>

#include "tf_common.h"

typedef struct rer {
    double  p, s0, s1, lr0, lr1, value;
    int     noise;
    int64_t c, h, w;   /* from setup */
    mltk_dtype dt;
} rer;

static int rer_create(void **self, const mltk_params_t *params, char **err)
{
    rer *r = calloc(1, sizeof(*r));
    double r0 = 1, r1 = 1;
    int rc;

    if (!r)
        return mltk_errf(err, MLTK_ERR_NOMEM, "random_erasing: out of memory");
    if ((rc = tf_read_range(params, "scale", &r->s0, &r->s1, err))
        || (rc = tf_read_range(params, "ratio", &r0, &r1, err))) {
        free(r);
        return rc;
    }
    r->lr0 = log(r0);
    r->lr1 = log(r1);
    r->p = mltk_params_float(params, "p");
    r->value = mltk_params_float(params, "value");
    r->noise = mltk_params_bool(params, "random_value");
    *self = r;
    return MLTK_OK;
}

static void rer_destroy(void *self)
{
    free(self);
}

static int rer_setup(void *self, const mltk_sample_spec *in, mltk_sample_spec *out,
                     int64_t n_classes, char **err)
{
    rer *r = self;
    int rc = tf_check_image("random_erasing", in, 1, 1, err);

    (void)n_classes;
    if (rc)
        return rc;
    if (r->noise && in->dtype != MLTK_F32)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "random_erasing: random_value needs f32 samples (put normalize "
                         "before it), got %s", mltk_dtype_name(in->dtype));
    r->c = in->shape.dim[0];
    r->h = in->shape.dim[1];
    r->w = in->shape.dim[2];
    r->dt = in->dtype;
    *out = *in;
    return MLTK_OK;
}

static int rer_apply(void *self, uint64_t key, const void *src, void *dst, char **err)
{
    const rer *r = self;
    double area = (double)r->h * (double)r->w;
    size_t es = mltk_dtype_size(r->dt);
    int64_t bi = 0, bj = 0, bh = 0, bw = 0;
    uint64_t e = 0;

    (void)err;
    memcpy(dst, src, (size_t)(r->c * r->h * r->w) * es);
    if (!((double)mltk_rng_u01(key, 0) < r->p))
        return MLTK_OK;
    for (uint64_t t = 0; t < 10; t++) {
        double ea = area * tf_uniform(mltk_rng_u01(key, 1 + 4 * t), r->s0, r->s1);
        double ar = exp(tf_uniform(mltk_rng_u01(key, 2 + 4 * t), r->lr0, r->lr1));
        double fh = nearbyint(sqrt(ea * ar)), fw = nearbyint(sqrt(ea / ar));

        if (!(fh < (double)r->h && fw < (double)r->w))
            continue;
        bh = (int64_t)fh;
        bw = (int64_t)fw;
        bi = tf_randint(mltk_rng_u01(key, 3 + 4 * t), 0, r->h - bh + 1);
        bj = tf_randint(mltk_rng_u01(key, 4 + 4 * t), 0, r->w - bw + 1);
        break;
    }
    for (int64_t k = 0; k < r->c; k++)
        for (int64_t y = bi; y < bi + bh; y++) {
            int64_t o = (k * r->h + y) * r->w + bj;
            if (r->dt == MLTK_U8) {
                memset((uint8_t *)dst + o, tf_fill_u8(r->value), (size_t)bw);
                continue;
            }
            for (int64_t x = 0; x < bw; x++, e++)
                ((float *)dst)[o + x] = r->noise ? (float)tf_normal(key, 41 + 2 * e)
                                                 : (float)r->value;
        }
    return MLTK_OK;
}

static const struct mltk_transform_i rer_iface = {
    .size = sizeof(struct mltk_transform_i),
    .flags = MLTK_TRANSFORM_RANDOM,
    .create = rer_create,
    .destroy = rer_destroy,
    .setup = rer_setup,
    .apply = rer_apply,
};

MLTK_PLUGIN(random_erasing, MLTK_KIND_TRANSFORM, &rer_iface)
