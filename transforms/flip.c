/* flip.c - the flip transform: torchvision's RandomHorizontalFlip and
 * RandomVerticalFlip.
 *
 * What this is: mirror an image (C, H, W) left-right (direction =
 * horizontal) or top-bottom (vertical) when draw 0 is below p (as
 * torch.rand(1) < p); otherwise copy it.  u8 and f32 samples, any
 * element order within a pixel is kept.
 *
 * What this is not: a deterministic flip (p = 1 is one).
 */
#include <stdlib.h>

#include "tf_common.h"

typedef struct flip {
    int     vertical;
    double  p;
    int64_t c, h, w;   /* from setup */
    size_t  es;
} flip;

static int flip_create(void **self, const mltk_params_t *params, char **err)
{
    flip *f = calloc(1, sizeof(*f));

    if (!f)
        return mltk_errf(err, MLTK_ERR_NOMEM, "flip: out of memory");
    f->vertical = strcmp(mltk_params_str(params, "direction"), "vertical") == 0;
    f->p = mltk_params_float(params, "p");
    *self = f;
    return MLTK_OK;
}

static void flip_destroy(void *self)
{
    free(self);
}

static int flip_setup(void *self, const mltk_sample_spec *in, mltk_sample_spec *out,
                      int64_t n_classes, char **err)
{
    flip *f = self;
    int rc = tf_check_image("flip", in, 1, 1, err);

    (void)n_classes;
    if (rc)
        return rc;
    f->c = in->shape.dim[0];
    f->h = in->shape.dim[1];
    f->w = in->shape.dim[2];
    f->es = mltk_dtype_size(in->dtype);
    *out = *in;
    return MLTK_OK;
}

static int flip_apply(void *self, uint64_t key, const void *src, void *dst, char **err)
{
    const flip *f = self;
    size_t row = (size_t)f->w * f->es;
    int64_t rows = f->c * f->h;

    (void)err;
    if (!((double)mltk_rng_u01(key, 0) < f->p)) {
        memcpy(dst, src, row * (size_t)rows);
        return MLTK_OK;
    }
    if (f->vertical) {
        for (int64_t k = 0; k < f->c; k++)
            for (int64_t y = 0; y < f->h; y++)
                memcpy((uint8_t *)dst + (size_t)(k * f->h + y) * row,
                       (const uint8_t *)src + (size_t)(k * f->h + f->h - 1 - y) * row, row);
    } else if (f->es == 1) {
        const uint8_t *s = src;
        uint8_t *d = dst;
        for (int64_t r = 0; r < rows; r++, s += f->w, d += f->w)
            for (int64_t x = 0; x < f->w; x++)
                d[x] = s[f->w - 1 - x];
    } else {
        const float *s = src;
        float *d = dst;
        for (int64_t r = 0; r < rows; r++, s += f->w, d += f->w)
            for (int64_t x = 0; x < f->w; x++)
                d[x] = s[f->w - 1 - x];
    }
    return MLTK_OK;
}

static const struct mltk_transform_i flip_iface = {
    .size = sizeof(struct mltk_transform_i),
    .flags = MLTK_TRANSFORM_RANDOM,
    .create = flip_create,
    .destroy = flip_destroy,
    .setup = flip_setup,
    .apply = flip_apply,
};

MLTK_PLUGIN(flip, MLTK_KIND_TRANSFORM, &flip_iface)
