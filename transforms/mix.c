/* mix.c - the mixup and cutmix batch transforms, as
 * torchvision.transforms.v2's MixUp and CutMix.
 *
 * What this is: one source built twice (-DMIX_CUTMIX=0 for mixup, 1 for
 * cutmix).  Both work in place on a batch of float32 samples x (rows, ...)
 * and their targets y (rows, n_classes), probabilities (one-hot from the
 * core).  Row i is mixed with row i - 1, row 0 with the last row (the
 * batch rolled by one, as torchvision's batch.roll(1, 0)); the loader
 * shuffles, so the partners are random.  lambda ~ Beta(alpha, alpha),
 * drawn as X / (X + Y) with X, Y ~ Gamma(alpha) by Marsaglia and Tsang
 * (tf_common.h) from draws 2, 3, ... of the batch's key.
 *   mixup:  x_i = lambda x_i + (1 - lambda) x_{i-1}, y_i likewise.
 *   cutmix: on images (C, H, W), centre (r_x, r_y) = (randint(0, W) from
 *           draw 0, randint(0, H) from draw 1), half sizes
 *           int(0.5 sqrt(1 - lambda) W) and int(0.5 sqrt(1 - lambda) H),
 *           the box clipped to the image; x_i takes row i-1's pixels in the
 *           box (every channel), and y_i = l y_i + (1 - l) y_{i-1} with
 *           l = 1 - box area / (H W), the lambda corrected by the area.
 * One lambda and one box for the whole batch, as torchvision.
 *
 * What this is not: timm's per-sample or per-element modes, label
 * smoothing, or switching between mixup and cutmix (list both as
 * separate transforms to apply both).
 */
#include <stdlib.h>

#include "tf_common.h"

#ifndef MIX_CUTMIX
#error "build with -DMIX_CUTMIX=0 (mixup) or 1 (cutmix)"
#endif

#if MIX_CUTMIX
#define MIX_NAME "cutmix"
#else
#define MIX_NAME "mixup"
#endif

typedef struct mix {
    double  alpha;
    int64_t numel, ncls;    /* from setup */
    int64_t c, h, w;        /* cutmix: the image */
} mix;

static int mix_create(void **self, const mltk_params_t *params, char **err)
{
    mix *m = calloc(1, sizeof(*m));

    if (!m)
        return mltk_errf(err, MLTK_ERR_NOMEM, MIX_NAME ": out of memory");
    m->alpha = mltk_params_float(params, "alpha");
    *self = m;
    return MLTK_OK;
}

static void mix_destroy(void *self)
{
    free(self);
}

static int mix_setup(void *self, const mltk_sample_spec *in, mltk_sample_spec *out,
                     int64_t n_classes, char **err)
{
    mix *m = self;

    if (MIX_CUTMIX) {
        int rc = tf_check_image(MIX_NAME, in, 0, 1, err);
        if (rc)
            return rc;
        m->c = in->shape.dim[0];
        m->h = in->shape.dim[1];
        m->w = in->shape.dim[2];
    } else if (in->dtype != MLTK_F32) {
        return mltk_errf(err, MLTK_ERR_SHAPE, MIX_NAME ": expected f32 samples, got %s",
                         mltk_dtype_name(in->dtype));
    }
    if (n_classes < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         MIX_NAME ": needs a data set of classes (class targets), got "
                         "value targets");
    m->numel = mltk_shape_numel(&in->shape);
    m->ncls = n_classes;
    *out = *in;
    return MLTK_OK;
}

/* lambda for the batch: Beta(alpha, alpha) from draws 2, 3, ... */
static double mix_lambda(const mix *m, uint64_t key)
{
    uint64_t k = 2;

    return tf_beta(key, &k, m->alpha);
}

static void mix_rows(float *a, const float *b, int64_t n, float la)
{
    for (int64_t i = 0; i < n; i++)
        a[i] = la * a[i] + (1.0f - la) * b[i];
}

#if MIX_CUTMIX
/* Copy row b's pixels in the box [y1, y2) x [x1, x2) into row a. */
static void paste(const mix *m, float *a, const float *b, int64_t x1, int64_t y1,
                  int64_t x2, int64_t y2)
{
    for (int64_t k = 0; k < m->c; k++)
        for (int64_t y = y1; y < y2; y++) {
            int64_t o = (k * m->h + y) * m->w + x1;
            memcpy(a + o, b + o, (size_t)(x2 - x1) * sizeof(float));
        }
}
#endif

static int mix_apply_batch(void *self, uint64_t key, float *x, float *y, int64_t rows,
                           char **err)
{
    const mix *m = self;
    float la = (float)mix_lambda(m, key), *keep;
    int64_t n = m->numel, nc = m->ncls;
#if MIX_CUTMIX
    double r = 0.5 * sqrt(1.0 - (double)la);
    int64_t rx = tf_randint(mltk_rng_u01(key, 0), 0, m->w);
    int64_t ry = tf_randint(mltk_rng_u01(key, 1), 0, m->h);
    int64_t hw = (int64_t)(r * (double)m->w), hh = (int64_t)(r * (double)m->h);
    int64_t x1 = rx - hw < 0 ? 0 : rx - hw, y1 = ry - hh < 0 ? 0 : ry - hh;
    int64_t x2 = rx + hw > m->w ? m->w : rx + hw, y2 = ry + hh > m->h ? m->h : ry + hh;

    la = (float)(1.0 - (double)((x2 - x1) * (y2 - y1)) / (double)(m->w * m->h));
#endif
    if (rows < 2)
        return MLTK_OK;
    /* the last row as it was, the partner of row 0 */
    keep = malloc((size_t)(n + nc) * sizeof(float));
    if (!keep)
        return mltk_errf(err, MLTK_ERR_NOMEM, MIX_NAME ": out of memory");
    memcpy(keep, x + (rows - 1) * n, (size_t)n * sizeof(float));
    memcpy(keep + n, y + (rows - 1) * nc, (size_t)nc * sizeof(float));
    for (int64_t i = rows - 1; i >= 0; i--) {
        const float *px = i ? x + (i - 1) * n : keep;
        const float *py = i ? y + (i - 1) * nc : keep + n;
#if MIX_CUTMIX
        paste(m, x + i * n, px, x1, y1, x2, y2);
#else
        mix_rows(x + i * n, px, n, la);
#endif
        mix_rows(y + i * nc, py, nc, la);
    }
    free(keep);
    return MLTK_OK;
}

static const struct mltk_transform_i mix_iface = {
    .size = sizeof(struct mltk_transform_i),
    .flags = MLTK_TRANSFORM_RANDOM | MLTK_TRANSFORM_BATCH,
    .create = mix_create,
    .destroy = mix_destroy,
    .setup = mix_setup,
    .apply_batch = mix_apply_batch,
};

#if MIX_CUTMIX
MLTK_PLUGIN(cutmix, MLTK_KIND_TRANSFORM, &mix_iface)
#else
MLTK_PLUGIN(mixup, MLTK_KIND_TRANSFORM, &mix_iface)
#endif
