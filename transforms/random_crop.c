/* random_crop.c - the random_crop transform: torchvision's RandomCrop.
 *
 * What this is: pad an image (C, H, W) by `padding` pixels of `fill` on
 * every side, then cut a (C, size_h, size_w) window at a uniformly drawn
 * offset: row offset i = randint(0, H + 2 padding - size_h + 1) from draw
 * 0, column offset j = randint(0, W + 2 padding - size_w + 1) from draw
 * 1 (torchvision draws i, then j).  size 0 keeps the input size, so that
 * with padding > 0 it shifts the image by up to `padding` pixels (the
 * classic CIFAR augmentation).  u8 and f32 samples; the output has the
 * input's dtype.
 *
 * What this is not: pad_if_needed or the reflect/edge padding modes (a
 * size larger than the padded image is refused at setup).
 */
#include <stdlib.h>

#include "tf_common.h"

typedef struct rcrop {
    int64_t th, tw, pad;   /* from the keys (th = tw = 0: the input's size) */
    double  fill;
    /* from setup */
    int64_t c, h, w, oh, ow;
    size_t  es;            /* bytes per element */
    uint8_t fill8;
    float   fillf;
} rcrop;

static int rcrop_create(void **self, const mltk_params_t *params, char **err)
{
    rcrop *r = calloc(1, sizeof(*r));
    int rc;

    if (!r)
        return mltk_errf(err, MLTK_ERR_NOMEM, "random_crop: out of memory");
    if ((rc = tf_read_pair(params, "size", &r->th, &r->tw, err))) {
        free(r);
        return rc;
    }
    r->pad = mltk_params_int(params, "padding");
    r->fill = mltk_params_float(params, "fill");
    *self = r;
    return MLTK_OK;
}

static void rcrop_destroy(void *self)
{
    free(self);
}

static int rcrop_setup(void *self, const mltk_sample_spec *in, mltk_sample_spec *out,
                       int64_t n_classes, char **err)
{
    rcrop *r = self;
    int rc = tf_check_image("random_crop", in, 1, 1, err);

    (void)n_classes;
    if (rc)
        return rc;
    r->c = in->shape.dim[0];
    r->h = in->shape.dim[1];
    r->w = in->shape.dim[2];
    r->oh = r->th ? r->th : r->h;
    r->ow = r->tw ? r->tw : r->w;
    if (r->oh > r->h + 2 * r->pad || r->ow > r->w + 2 * r->pad)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "random_crop: size %lldx%lld is larger than the padded image "
                         "%lldx%lld", (long long)r->oh, (long long)r->ow,
                         (long long)(r->h + 2 * r->pad), (long long)(r->w + 2 * r->pad));
    r->es = mltk_dtype_size(in->dtype);
    r->fill8 = tf_fill_u8(r->fill);
    r->fillf = (float)r->fill;
    *out = *in;
    out->shape.dim[1] = r->oh;
    out->shape.dim[2] = r->ow;
    return MLTK_OK;
}

static void fill_n(void *dst, size_t es, int64_t n, uint8_t f8, float ff)
{
    if (n <= 0)
        return;
    if (es == 1) {
        memset(dst, f8, (size_t)n);
    } else {
        float *d = dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = ff;
    }
}

static int rcrop_apply(void *self, uint64_t key, const void *src, void *dst, char **err)
{
    const rcrop *r = self;
    int64_t i = tf_randint(mltk_rng_u01(key, 0), 0, r->h + 2 * r->pad - r->oh + 1);
    int64_t j = tf_randint(mltk_rng_u01(key, 1), 0, r->w + 2 * r->pad - r->ow + 1);
    /* the window's top-left corner in source coordinates */
    int64_t sy = i - r->pad, sx = j - r->pad;
    /* columns [a, b) of the window fall inside the source */
    int64_t a = sx < 0 ? -sx : 0, b = r->w - sx < r->ow ? r->w - sx : r->ow;
    const uint8_t *s = src;
    uint8_t *d = dst;

    (void)err;
    if (b < a)
        b = a;
    for (int64_t k = 0; k < r->c; k++) {
        for (int64_t y = 0; y < r->oh; y++) {
            uint8_t *o = d + (size_t)((k * r->oh + y) * r->ow) * r->es;
            int64_t yy = sy + y;
            if (yy < 0 || yy >= r->h || a >= b) {
                fill_n(o, r->es, r->ow, r->fill8, r->fillf);
                continue;
            }
            fill_n(o, r->es, a, r->fill8, r->fillf);
            memcpy(o + (size_t)a * r->es,
                   s + (size_t)((k * r->h + yy) * r->w + sx + a) * r->es,
                   (size_t)(b - a) * r->es);
            fill_n(o + (size_t)b * r->es, r->es, r->ow - b, r->fill8, r->fillf);
        }
    }
    return MLTK_OK;
}

static const struct mltk_transform_i rcrop_iface = {
    .size = sizeof(struct mltk_transform_i),
    .flags = MLTK_TRANSFORM_RANDOM,
    .create = rcrop_create,
    .destroy = rcrop_destroy,
    .setup = rcrop_setup,
    .apply = rcrop_apply,
};

MLTK_PLUGIN(random_crop, MLTK_KIND_TRANSFORM, &rcrop_iface)
