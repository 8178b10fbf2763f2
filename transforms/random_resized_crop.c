/* random_resized_crop.c - the random_resized_crop transform:
 * torchvision's RandomResizedCrop on PIL images.
 *
 * What this is: choose a box of the image (C, H, W) covering a fraction
 * of its area drawn from `scale` with an aspect ratio (width / height)
 * drawn log-uniformly from `ratio`, and resize it to (size_h, size_w)
 * with PIL's antialiased bilinear filter (resample.h).  The box is
 * torchvision's get_params: up to 10 attempts, attempt t (0-based) using
 * draws 4t (area fraction), 4t+1 (log aspect ratio), 4t+2 (row offset
 * i = randint(0, H - h + 1)) and 4t+3 (column offset j); an attempt whose
 * w = round(sqrt(area * ratio)), h = round(sqrt(area / ratio)) (rounding
 * half to even, as Python's round) does not fit is skipped.  After 10
 * failed attempts: the centre crop of the whole image clamped to the
 * ratio range.  u8 and f32 samples; the output keeps the dtype.
 *
 * What this is not: other interpolations than bilinear.
 */
#include <stdlib.h>

#include "resample.h"
#include "tf_common.h"

typedef struct rrc {
    int64_t th, tw;
    double  s0, s1, lr0, lr1;   /* area fraction range, log ratio range */
    double  r0, r1;             /* ratio range */
    int64_t c, h, w;            /* from setup */
    mltk_dtype dt;
} rrc;

static int rrc_create(void **self, const mltk_params_t *params, char **err)
{
    rrc *r = calloc(1, sizeof(*r));
    int rc;

    if (!r)
        return mltk_errf(err, MLTK_ERR_NOMEM, "random_resized_crop: out of memory");
    if ((rc = tf_read_pair(params, "size", &r->th, &r->tw, err))
        || (rc = tf_read_range(params, "scale", &r->s0, &r->s1, err))
        || (rc = tf_read_range(params, "ratio", &r->r0, &r->r1, err))) {
        free(r);
        return rc;
    }
    r->lr0 = log(r->r0);
    r->lr1 = log(r->r1);
    *self = r;
    return MLTK_OK;
}

static void rrc_destroy(void *self)
{
    free(self);
}

static int rrc_setup(void *self, const mltk_sample_spec *in, mltk_sample_spec *out,
                     int64_t n_classes, char **err)
{
    rrc *r = self;
    int rc = tf_check_image("random_resized_crop", in, 1, 1, err);

    (void)n_classes;
    if (rc)
        return rc;
    r->c = in->shape.dim[0];
    r->h = in->shape.dim[1];
    r->w = in->shape.dim[2];
    r->dt = in->dtype;
    if (r->h > (1 << 20) || r->w > (1 << 20))
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "random_resized_crop: images up to 1048576 pixels a side, got "
                         "%lldx%lld", (long long)r->h, (long long)r->w);
    *out = *in;
    out->shape.dim[1] = r->th;
    out->shape.dim[2] = r->tw;
    return MLTK_OK;
}

/* The box (i, j, h, w) for key: torchvision's RandomResizedCrop.get_params. */
static void rrc_box(const rrc *r, uint64_t key, int64_t *bi, int64_t *bj, int64_t *bh,
                    int64_t *bw)
{
    double area = (double)r->h * (double)r->w, in_ratio;

    for (int t = 0; t < 10; t++) {
        double target = area * tf_uniform(mltk_rng_u01(key, 4 * (uint64_t)t), r->s0, r->s1);
        double ar = exp(tf_uniform(mltk_rng_u01(key, 4 * (uint64_t)t + 1), r->lr0, r->lr1));
        double fw = nearbyint(sqrt(target * ar)), fh = nearbyint(sqrt(target / ar));

        if (fw > 0 && fw <= (double)r->w && fh > 0 && fh <= (double)r->h) {
            *bh = (int64_t)fh;
            *bw = (int64_t)fw;
            *bi = tf_randint(mltk_rng_u01(key, 4 * (uint64_t)t + 2), 0, r->h - *bh + 1);
            *bj = tf_randint(mltk_rng_u01(key, 4 * (uint64_t)t + 3), 0, r->w - *bw + 1);
            return;
        }
    }
    in_ratio = (double)r->w / (double)r->h;
    if (in_ratio < r->r0) {
        *bw = r->w;
        *bh = (int64_t)nearbyint((double)*bw / r->r0);
    } else if (in_ratio > r->r1) {
        *bh = r->h;
        *bw = (int64_t)nearbyint((double)*bh * r->r1);
    } else {
        *bw = r->w;
        *bh = r->h;
    }
    if (*bh < 1)
        *bh = 1;
    if (*bw < 1)
        *bw = 1;
    if (*bh > r->h)
        *bh = r->h;
    if (*bw > r->w)
        *bw = r->w;
    *bi = (r->h - *bh) / 2;
    *bj = (r->w - *bw) / 2;
}

static int rrc_apply(void *self, uint64_t key, const void *src, void *dst, char **err)
{
    const rrc *r = self;
    int64_t i, j, h, w;
    int rc;

    rrc_box(r, key, &i, &j, &h, &w);
    if (r->dt == MLTK_U8)
        rc = tf_resize_u8(dst, r->th, r->tw, src, r->c, r->h, r->w, j, i, w, h);
    else
        rc = tf_resize_f32(dst, r->th, r->tw, src, r->c, r->h, r->w, j, i, w, h);
    if (rc)
        return mltk_errf(err, MLTK_ERR_NOMEM, "random_resized_crop: out of memory");
    return MLTK_OK;
}

static const struct mltk_transform_i rrc_iface = {
    .size = sizeof(struct mltk_transform_i),
    .flags = MLTK_TRANSFORM_RANDOM,
    .create = rrc_create,
    .destroy = rrc_destroy,
    .setup = rrc_setup,
    .apply = rrc_apply,
};

MLTK_PLUGIN(random_resized_crop, MLTK_KIND_TRANSFORM, &rrc_iface)
