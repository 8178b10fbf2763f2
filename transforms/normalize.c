/* normalize.c - the normalize transform: torchvision's ToTensor followed
 * by Normalize.
 *
 * What this is: x = (v - mean[k]) / std[k] on channel k of an image
 * (C, H, W), where v is the sample value, divided by 255 first for u8
 * samples (as ToTensor does); one mean (std) for every channel or one
 * per channel.  The output is f32.  Deterministic; u8 is computed as
 * v * (1 / (255 std)) + (-mean / std) with the two constants rounded to
 * float once (within a few float ulps of torchvision's (v / 255 - mean) /
 * std), which vectorises.
 *
 * What this is not: the core's per-feature standardisation ([data]
 * standardize), which learns its statistics from the training split.
 */
#include <stdlib.h>

#include "tf_common.h"

typedef struct norm {
    double  mean[3], std[3];
    int     nm, ns;
    int64_t c, hw;        /* from setup */
    mltk_dtype dt;
    float   a8[3], b8[3];      /* u8: x = v * a8 + b8 */
    float   scale[3], shift[3];  /* f32: x * scale + shift */
} norm;

static int norm_create(void **self, const mltk_params_t *params, char **err)
{
    norm *n = calloc(1, sizeof(*n));

    if (!n)
        return mltk_errf(err, MLTK_ERR_NOMEM, "normalize: out of memory");
    n->nm = mltk_params_floats(params, "mean", n->mean, 3);
    n->ns = mltk_params_floats(params, "std", n->std, 3);
    if (n->nm != 1 && n->nm != 3) {
        free(n);
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "key 'mean' must be one number or three (one per channel)");
    }
    if (n->ns != 1 && n->ns != 3) {
        free(n);
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "key 'std' must be one number or three (one per channel)");
    }
    for (int k = 0; k < n->ns; k++)
        if (!(n->std[k] > 0.0)) {
            free(n);
            return mltk_errf(err, MLTK_ERR_CONFIG, "key 'std' must be > 0");
        }
    *self = n;
    return MLTK_OK;
}

static void norm_destroy(void *self)
{
    free(self);
}

static int norm_setup(void *self, const mltk_sample_spec *in, mltk_sample_spec *out,
                      int64_t n_classes, char **err)
{
    norm *n = self;
    int rc = tf_check_image("normalize", in, 1, 1, err);

    (void)n_classes;
    if (rc)
        return rc;
    n->c = in->shape.dim[0];
    n->hw = in->shape.dim[1] * in->shape.dim[2];
    n->dt = in->dtype;
    if ((n->nm == 3 || n->ns == 3) && n->c != 3)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "normalize: three means or stds need 3 channels, got %lld",
                         (long long)n->c);
    for (int k = 0; k < n->c; k++) {
        float m = (float)n->mean[n->nm == 3 ? k : 0], s = (float)n->std[n->ns == 3 ? k : 0];
        n->a8[k] = (float)(1.0 / (255.0 * n->std[n->ns == 3 ? k : 0]));
        n->b8[k] = (float)(-n->mean[n->nm == 3 ? k : 0] / n->std[n->ns == 3 ? k : 0]);
        n->scale[k] = 1.0f / s;
        n->shift[k] = m;
    }
    out->dtype = MLTK_F32;
    out->shape = in->shape;
    return MLTK_OK;
}

static int norm_apply(void *self, uint64_t key, const void *src, void *dst, char **err)
{
    const norm *n = self;
    float *d = dst;

    (void)key;
    (void)err;
    for (int64_t k = 0; k < n->c; k++, d += n->hw) {
        if (n->dt == MLTK_U8) {
            const uint8_t *s = (const uint8_t *)src + k * n->hw;
            float a = n->a8[k], b = n->b8[k];
            for (int64_t i = 0; i < n->hw; i++)
                d[i] = (float)s[i] * a + b;
        } else {
            const float *s = (const float *)src + k * n->hw;
            float m = n->shift[k], sd = 1.0f / n->scale[k];
            for (int64_t i = 0; i < n->hw; i++)
                d[i] = (s[i] - m) / sd;
        }
    }
    return MLTK_OK;
}

static const struct mltk_transform_i norm_iface = {
    .size = sizeof(struct mltk_transform_i),
    .flags = 0,
    .create = norm_create,
    .destroy = norm_destroy,
    .setup = norm_setup,
    .apply = norm_apply,
};

MLTK_PLUGIN(normalize, MLTK_KIND_TRANSFORM, &norm_iface)
