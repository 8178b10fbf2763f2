/* resize.c - the resize and center_crop transforms: torchvision's Resize
 * (on PIL images, bilinear) and CenterCrop.
 *
 * What this is: one source built twice (-DRESIZE_CROP=0 for resize, 1 for
 * center_crop).  Deterministic, u8 and f32, the output keeps the dtype.
 *   resize:      size = S (one integer): the shorter side becomes S and
 *                the longer int(S * long / short), as Resize(S); size =
 *                H', W': exactly that.  PIL's antialiased bilinear
 *                (resample.h).
 *   center_crop: the (size_h, size_w) window at top = round((H - h) / 2),
 *                left = round((W - w) / 2) (half to even, as Python's
 *                round in CenterCrop).
 *
 * What this is not: max_size, other interpolations, or padding a crop
 * larger than the image (refused at setup).
 */
#include <stdlib.h>

#include "resample.h"
#include "tf_common.h"

#ifndef RESIZE_CROP
#error "build with -DRESIZE_CROP=0 (resize) or 1 (center_crop)"
#endif

#if RESIZE_CROP
#define RS_NAME "center_crop"
#else
#define RS_NAME "resize"
#endif

typedef struct rs {
    int64_t sh, sw;          /* the size key (sh = sw for one value) */
    int     one;             /* the size key held one value */
    int64_t c, h, w, oh, ow, top, left;   /* from setup */
    mltk_dtype dt;
} rs;

static int rs_create(void **self, const mltk_params_t *params, char **err)
{
    rs *r = calloc(1, sizeof(*r));
    int64_t v[3];
    int rc;

    if (!r)
        return mltk_errf(err, MLTK_ERR_NOMEM, RS_NAME ": out of memory");
    r->one = mltk_params_ints(params, "size", v, 3) == 1;
    if ((rc = tf_read_pair(params, "size", &r->sh, &r->sw, err))) {
        free(r);
        return rc;
    }
    *self = r;
    return MLTK_OK;
}

static void rs_destroy(void *self)
{
    free(self);
}

static int rs_setup(void *self, const mltk_sample_spec *in, mltk_sample_spec *out,
                    int64_t n_classes, char **err)
{
    rs *r = self;
    int rc = tf_check_image(RS_NAME, in, 1, 1, err);

    (void)n_classes;
    if (rc)
        return rc;
    r->c = in->shape.dim[0];
    r->h = in->shape.dim[1];
    r->w = in->shape.dim[2];
    r->dt = in->dtype;
    r->oh = r->sh;
    r->ow = r->sw;
    if (r->h > (1 << 20) || r->w > (1 << 20))
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         RS_NAME ": images up to 1048576 pixels a side, got %lldx%lld",
                         (long long)r->h, (long long)r->w);
#if RESIZE_CROP
    if (r->oh > r->h || r->ow > r->w)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         RS_NAME ": size %lldx%lld is larger than the image %lldx%lld",
                         (long long)r->oh, (long long)r->ow, (long long)r->h,
                         (long long)r->w);
    r->top = (int64_t)nearbyint((double)(r->h - r->oh) / 2.0);
    r->left = (int64_t)nearbyint((double)(r->w - r->ow) / 2.0);
#else
    if (r->one) {
        int64_t s = r->sh;
        if (r->h <= r->w) {
            r->oh = s;
            r->ow = (int64_t)((double)s * (double)r->w / (double)r->h);
        } else {
            r->ow = s;
            r->oh = (int64_t)((double)s * (double)r->h / (double)r->w);
        }
        if (r->oh < 1 || r->ow < 1 || r->oh > (1 << 20) || r->ow > (1 << 20))
            return mltk_errf(err, MLTK_ERR_SHAPE,
                             RS_NAME ": resizing %lldx%lld to a shorter side of %lld "
                             "gives %lldx%lld", (long long)r->h, (long long)r->w,
                             (long long)s, (long long)r->oh, (long long)r->ow);
    }
#endif
    *out = *in;
    out->shape.dim[1] = r->oh;
    out->shape.dim[2] = r->ow;
    return MLTK_OK;
}

static int rs_apply(void *self, uint64_t key, const void *src, void *dst, char **err)
{
    const rs *r = self;
    int rc;

    (void)key;
#if RESIZE_CROP
    if (r->dt == MLTK_U8)
        rc = tf_resize_u8(dst, r->oh, r->ow, src, r->c, r->h, r->w, r->left, r->top,
                          r->ow, r->oh);
    else
        rc = tf_resize_f32(dst, r->oh, r->ow, src, r->c, r->h, r->w, r->left, r->top,
                           r->ow, r->oh);
#else
    if (r->dt == MLTK_U8)
        rc = tf_resize_u8(dst, r->oh, r->ow, src, r->c, r->h, r->w, 0, 0, r->w, r->h);
    else
        rc = tf_resize_f32(dst, r->oh, r->ow, src, r->c, r->h, r->w, 0, 0, r->w, r->h);
#endif
    if (rc)
        return mltk_errf(err, MLTK_ERR_NOMEM, RS_NAME ": out of memory");
    return MLTK_OK;
}

static const struct mltk_transform_i rs_iface = {
    .size = sizeof(struct mltk_transform_i),
    .flags = 0,
    .create = rs_create,
    .destroy = rs_destroy,
    .setup = rs_setup,
    .apply = rs_apply,
};

#if RESIZE_CROP
MLTK_PLUGIN(center_crop, MLTK_KIND_TRANSFORM, &rs_iface)
#else
MLTK_PLUGIN(resize, MLTK_KIND_TRANSFORM, &rs_iface)
#endif
