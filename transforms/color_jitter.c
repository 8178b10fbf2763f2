/* color_jitter.c - the color_jitter transform: torchvision's ColorJitter
 * (brightness, contrast, saturation) with the arithmetic of
 * torchvision.transforms.functional on tensors.
 *
 * What this is: on an image (C, H, W), with factors drawn uniformly
 * from [max(0, 1 - v), 1 + v] for each key v > 0 (draw 0: brightness,
 * 1: contrast, 2: saturation; a key 0 leaves its operation out):
 *   brightness b:  x = clamp(b x, 0, max)
 *   contrast c:    x = clamp(c x + (1 - c) m, 0, max), m the mean of the
 *                  image's grey levels
 *   saturation s:  x = clamp(s x + (1 - s) g, 0, max), g the pixel's grey
 *                  level (an image of one channel is left as it is)
 * where grey = 0.2989 R + 0.587 G + 0.114 B (one channel: itself), max is
 * 255 for u8 and max_value for f32, and u8 results are truncated to a
 * byte after each operation (as torchvision's .to(uint8)), grey levels
 * too.  The operations run in the order brightness, contrast, saturation
 * (order = fixed), or in a random order (order = random, the default,
 * as torchvision's randperm): a Fisher-Yates shuffle of the three with
 * draws 3 (position 2 swapped with randint(0, 3)) and 4 (position 1 with
 * randint(0, 2)).  Computed in float32.
 *
 * What this is not: hue jitter.
 */
#include <stdlib.h>

#include "tf_common.h"

typedef struct cj {
    double  v[3];      /* brightness, contrast, saturation */
    int     random_order;
    float   maxf;
    int64_t c, hw;     /* from setup */
    mltk_dtype dt;
} cj;

static int cj_create(void **self, const mltk_params_t *params, char **err)
{
    cj *j = calloc(1, sizeof(*j));

    if (!j)
        return mltk_errf(err, MLTK_ERR_NOMEM, "color_jitter: out of memory");
    j->v[0] = mltk_params_float(params, "brightness");
    j->v[1] = mltk_params_float(params, "contrast");
    j->v[2] = mltk_params_float(params, "saturation");
    j->random_order = strcmp(mltk_params_str(params, "order"), "random") == 0;
    j->maxf = (float)mltk_params_float(params, "max_value");
    *self = j;
    return MLTK_OK;
}

static void cj_destroy(void *self)
{
    free(self);
}

static int cj_setup(void *self, const mltk_sample_spec *in, mltk_sample_spec *out,
                    int64_t n_classes, char **err)
{
    cj *j = self;
    int rc = tf_check_image("color_jitter", in, 1, 1, err);

    (void)n_classes;
    if (rc)
        return rc;
    j->c = in->shape.dim[0];
    j->hw = in->shape.dim[1] * in->shape.dim[2];
    j->dt = in->dtype;
    *out = *in;
    return MLTK_OK;
}

static float clampf(float v, float hi)
{
    return v < 0.0f ? 0.0f : v > hi ? hi : v;
}

/* grey level of pixel p (truncated to a byte for u8) */
static float grey_u8(const uint8_t *x, int64_t c, int64_t hw, int64_t p)
{
    if (c == 1)
        return x[p];
    return (float)(uint8_t)(0.2989f * x[p] + 0.587f * x[hw + p] + 0.114f * x[2 * hw + p]);
}

static float grey_f32(const float *x, int64_t c, int64_t hw, int64_t p)
{
    if (c == 1)
        return x[p];
    return 0.2989f * x[p] + 0.587f * x[hw + p] + 0.114f * x[2 * hw + p];
}

/* operation op (0 brightness, 1 contrast, 2 saturation) by factor f on x */
static void cj_op_u8(const cj *j, int op, float f, uint8_t *x)
{
    int64_t n = j->c * j->hw;

    if (op == 0) {
        for (int64_t i = 0; i < n; i++)
            x[i] = (uint8_t)clampf(f * x[i], 255.0f);
    } else if (op == 1) {
        double s = 0;
        float m;
        for (int64_t p = 0; p < j->hw; p++)
            s += grey_u8(x, j->c, j->hw, p);
        m = (float)(s / (double)j->hw) * (1.0f - f);
        for (int64_t i = 0; i < n; i++)
            x[i] = (uint8_t)clampf(f * x[i] + m, 255.0f);
    } else if (j->c == 3) {
        for (int64_t p = 0; p < j->hw; p++) {
            float g = grey_u8(x, j->c, j->hw, p) * (1.0f - f);
            for (int64_t k = 0; k < 3; k++)
                x[k * j->hw + p] = (uint8_t)clampf(f * x[k * j->hw + p] + g, 255.0f);
        }
    }
}

static void cj_op_f32(const cj *j, int op, float f, float *x)
{
    int64_t n = j->c * j->hw;

    if (op == 0) {
        for (int64_t i = 0; i < n; i++)
            x[i] = clampf(f * x[i], j->maxf);
    } else if (op == 1) {
        double s = 0;
        float m;
        for (int64_t p = 0; p < j->hw; p++)
            s += grey_f32(x, j->c, j->hw, p);
        m = (float)(s / (double)j->hw) * (1.0f - f);
        for (int64_t i = 0; i < n; i++)
            x[i] = clampf(f * x[i] + m, j->maxf);
    } else if (j->c == 3) {
        for (int64_t p = 0; p < j->hw; p++) {
            float g = grey_f32(x, j->c, j->hw, p) * (1.0f - f);
            for (int64_t k = 0; k < 3; k++)
                x[k * j->hw + p] = clampf(f * x[k * j->hw + p] + g, j->maxf);
        }
    }
}

static int cj_apply(void *self, uint64_t key, const void *src, void *dst, char **err)
{
    const cj *j = self;
    int order[3] = { 0, 1, 2 };
    float f[3];

    (void)err;
    for (int i = 0; i < 3; i++) {
        double lo = j->v[i] < 1.0 ? 1.0 - j->v[i] : 0.0;
        f[i] = (float)tf_uniform(mltk_rng_u01(key, (uint64_t)i), lo, 1.0 + j->v[i]);
    }
    if (j->random_order) {
        for (int i = 2, k = 3; i >= 1; i--, k++) {
            int s = (int)tf_randint(mltk_rng_u01(key, (uint64_t)k), 0, i + 1), t = order[i];
            order[i] = order[s];
            order[s] = t;
        }
    }
    memcpy(dst, src, (size_t)(j->c * j->hw) * mltk_dtype_size(j->dt));
    for (int i = 0; i < 3; i++) {
        int op = order[i];
        if (j->v[op] <= 0.0)
            continue;
        if (j->dt == MLTK_U8)
            cj_op_u8(j, op, f[op], dst);
        else
            cj_op_f32(j, op, f[op], dst);
    }
    return MLTK_OK;
}

static const struct mltk_transform_i cj_iface = {
    .size = sizeof(struct mltk_transform_i),
    .flags = MLTK_TRANSFORM_RANDOM,
    .create = cj_create,
    .destroy = cj_destroy,
    .setup = cj_setup,
    .apply = cj_apply,
};

MLTK_PLUGIN(color_jitter, MLTK_KIND_TRANSFORM, &cj_iface)
