/* rotate.c - the rotate transform: torchvision's RandomRotation with
 * bilinear interpolation on PIL images.
 *
 * What this is: rotate an image (C, H, W) about its centre (W/2, H/2) by
 * an angle drawn uniformly from [-degrees, degrees] (draw 0: angle =
 * -degrees + 2 degrees u), counter-clockwise for a positive angle, keeping
 * the size (expand = False).  Output pixel (i, j) takes the source point
 * x = cos a (j + 0.5 - W/2) - sin a (i + 0.5 - H/2) + W/2,
 * y = sin a (j + 0.5 - W/2) + cos a (i + 0.5 - H/2) + H/2,
 * sampled bilinearly as PIL's Image.rotate(BILINEAR) (resample.h); points
 * outside the image get `fill`.  u8 (truncated, as PIL) and f32 samples.
 *
 * What this is not: nearest-neighbour rotation (torchvision's default
 * interpolation), expand, or another centre.
 */
#include <stdlib.h>

#include "resample.h"
#include "tf_common.h"

typedef struct rot {
    double  deg, fill;
    int64_t c, h, w;   /* from setup */
    mltk_dtype dt;
} rot;

static int rot_create(void **self, const mltk_params_t *params, char **err)
{
    rot *r = calloc(1, sizeof(*r));

    if (!r)
        return mltk_errf(err, MLTK_ERR_NOMEM, "rotate: out of memory");
    r->deg = mltk_params_float(params, "degrees");
    r->fill = mltk_params_float(params, "fill");
    *self = r;
    return MLTK_OK;
}

static void rot_destroy(void *self)
{
    free(self);
}

static int rot_setup(void *self, const mltk_sample_spec *in, mltk_sample_spec *out,
                     int64_t n_classes, char **err)
{
    rot *r = self;
    int rc = tf_check_image("rotate", in, 1, 1, err);

    (void)n_classes;
    if (rc)
        return rc;
    r->c = in->shape.dim[0];
    r->h = in->shape.dim[1];
    r->w = in->shape.dim[2];
    r->dt = in->dtype;
    *out = *in;
    return MLTK_OK;
}

static int rot_apply(void *self, uint64_t key, const void *src, void *dst, char **err)
{
    const rot *r = self;
    double ang = tf_uniform(mltk_rng_u01(key, 0), -r->deg, r->deg) * (3.14159265358979323846 / 180.0);
    double ca = cos(ang), sa = sin(ang), cx = (double)r->w / 2, cy = (double)r->h / 2;
    int64_t plane = r->h * r->w;
    uint8_t f8 = tf_fill_u8(r->fill), px8[3];
    float ff = (float)r->fill, pxf[3];

    (void)err;
    for (int64_t i = 0; i < r->h; i++) {
        double py = (double)i + 0.5 - cy;
        for (int64_t j = 0; j < r->w; j++) {
            double px = (double)j + 0.5 - cx;
            double x = ca * px - sa * py + cx, y = sa * px + ca * py + cy;
            int64_t o = i * r->w + j;
            if (r->dt == MLTK_U8) {
                tf_sample_bilinear_u8(px8, src, r->c, r->h, r->w, x, y, f8);
                for (int64_t k = 0; k < r->c; k++)
                    ((uint8_t *)dst)[k * plane + o] = px8[k];
            } else {
                tf_sample_bilinear_f32(pxf, src, r->c, r->h, r->w, x, y, ff);
                for (int64_t k = 0; k < r->c; k++)
                    ((float *)dst)[k * plane + o] = pxf[k];
            }
        }
    }
    return MLTK_OK;
}

static const struct mltk_transform_i rot_iface = {
    .size = sizeof(struct mltk_transform_i),
    .flags = MLTK_TRANSFORM_RANDOM,
    .create = rot_create,
    .destroy = rot_destroy,
    .setup = rot_setup,
    .apply = rot_apply,
};

MLTK_PLUGIN(rotate, MLTK_KIND_TRANSFORM, &rot_iface)
