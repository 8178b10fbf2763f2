/* check_transforms.c - the transform plugins and the resampling they share.
 *
 * What this is: each transform is loaded through the registry from the
 * build tree, its parameters built from key/value text against its
 * descriptor, then set up and applied to a small patterned image.  The
 * expectations are computed independently: PIL's outputs for resizing
 * and rotation (tests/transforms_ref.h, from tests/transforms_ref.py),
 * and for the random transforms the crop offsets, boxes and factors
 * recomputed here from the same mltk_rng_u01 draws, with the arithmetic
 * of the torchvision formulas written out again in double precision.
 * What this is not: a test of the core's transform chain (the loader's
 * tests run whole configs).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mltk/plugin.h>
#include <mltk/rng.h>

#include "internal.h"
#include "session.h"
#include "resample.h"
#include "transforms_ref.h"

static mltk_registry_t *reg;

static void fixture_open(void)
{
    char *err = NULL, dir[4096];
    const char *dirs[2] = { dir, NULL };
    const char *b = getenv("top_builddir");
    int rc;

    /* the transforms' directory of the build tree, named explicitly */
    snprintf(dir, sizeof(dir), "%s/transforms", b && *b ? b : ".");
    rc = mltk_registry_create(&reg, dirs, 1, &err);
    ck_assert_msg(rc == MLTK_OK, "registry: %s", err ? err : "?");
}

static void fixture_close(void)
{
    mltk_registry_destroy(reg);
    reg = NULL;
}

/* ---- the test image ------------------------------------------------------- */

/* v(k, i, j) of tests/transforms_ref.py */
static int pattern_v(int64_t k, int64_t i, int64_t j)
{
    return (int)((37 * i + 11 * j + 101 * k + 19 * ((i * j) % 7)) % 256);
}

static uint8_t *pattern_u8(int64_t c, int64_t h, int64_t w)
{
    uint8_t *p = malloc((size_t)(c * h * w));

    ck_assert_ptr_nonnull(p);
    for (int64_t k = 0; k < c; k++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++)
                p[(k * h + i) * w + j] = (uint8_t)pattern_v(k, i, j);
    return p;
}

static float *pattern_f32(int64_t c, int64_t h, int64_t w)
{
    float *p = malloc((size_t)(c * h * w) * sizeof(float));

    ck_assert_ptr_nonnull(p);
    for (int64_t k = 0; k < c; k++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++)
                p[(k * h + i) * w + j] = (float)pattern_v(k, i, j) / 255.0f;
    return p;
}

/* ---- a transform under test ----------------------------------------------- */

typedef struct tt {
    const struct mltk_transform_i *iface;
    void             *self;
    mltk_params_t    *params;
    mltk_sample_spec  in, out;
} tt;

/* Parameters "k1=v1|k2=v2" (values may hold commas). */
static int tt_params(tt *t, const char *name, const char *kv, char **err)
{
    const mltk_desc *d = NULL;
    char buf[512], *keys[16], *vals[16], *s, *save = NULL;
    int n = 0, rc;

    rc = mltk_registry_find(reg, name, MLTK_KIND_TRANSFORM, &d, err);
    ck_assert_msg(rc == MLTK_OK, "find %s: %s", name, *err ? *err : "?");
    snprintf(buf, sizeof(buf), "%s", kv ? kv : "");
    for (s = strtok_r(buf, "|", &save); s && n < 16; s = strtok_r(NULL, "|", &save)) {
        char *eq = strchr(s, '=');
        ck_assert_ptr_nonnull(eq);
        *eq = 0;
        keys[n] = s;
        vals[n] = eq + 1;
        n++;
    }
    return mltk_params_build(&t->params, &d, 1, n, (const char *const *)keys,
                             (const char *const *)vals, NULL, NULL, 0, name, err);
}

/* Load, create and set up `name` for samples (c, h, w) of dtype dt;
 * returns setup's status with *err set on failure. */
static int tt_open_rc(tt *t, const char *name, const char *kv, mltk_dtype dt, int64_t c,
                      int64_t h, int64_t w, int64_t n_classes, char **err)
{
    int rc;

    memset(t, 0, sizeof(*t));
    *err = NULL;
    ck_assert_int_eq(tt_params(t, name, kv, err), MLTK_OK);
    rc = mltk_registry_load(reg, name, MLTK_KIND_TRANSFORM, (const void **)&t->iface, err);
    ck_assert_msg(rc == MLTK_OK, "load %s: %s", name, *err ? *err : "?");
    rc = t->iface->create(&t->self, t->params, err);
    if (rc)
        return rc;
    t->in.dtype = dt;
    t->in.shape.ndim = 3;
    t->in.shape.dim[0] = c;
    t->in.shape.dim[1] = h;
    t->in.shape.dim[2] = w;
    return t->iface->setup(t->self, &t->in, &t->out, n_classes, err);
}

static void tt_open(tt *t, const char *name, const char *kv, mltk_dtype dt, int64_t c,
                    int64_t h, int64_t w, int64_t n_classes)
{
    char *err = NULL;
    int rc = tt_open_rc(t, name, kv, dt, c, h, w, n_classes, &err);

    ck_assert_msg(rc == MLTK_OK, "%s: %s", name, err ? err : "?");
}

static void tt_close(tt *t)
{
    if (t->iface && t->iface->destroy)
        t->iface->destroy(t->self);
    mltk_params_free(t->params);
    memset(t, 0, sizeof(*t));
}

static void *tt_apply(tt *t, uint64_t key, const void *src)
{
    size_t bytes = (size_t)mltk_shape_numel(&t->out.shape) * mltk_dtype_size(t->out.dtype);
    void *dst = malloc(bytes ? bytes : 1);
    char *err = NULL;
    int rc;

    ck_assert_ptr_nonnull(dst);
    memset(dst, 0xA5, bytes);
    rc = t->iface->apply(t->self, key, src, dst, &err);
    ck_assert_msg(rc == MLTK_OK, "apply: %s", err ? err : "?");
    return dst;
}

static int64_t randint(uint64_t key, uint64_t k, int64_t lo, int64_t hi)
{
    int64_t v = lo + (int64_t)floor((double)mltk_rng_u01(key, k) * (double)(hi - lo));
    return v >= hi ? hi - 1 : v;
}

/* ---- resample against PIL ------------------------------------------------- */

START_TEST(test_resample_pil)
{
    uint8_t *img = pattern_u8(REF_C, REF_H, REF_W);
    float *f = malloc(REF_H * REF_W * sizeof(float));

    for (int i = 0; i < REF_H * REF_W; i++)
        f[i] = img[i];
    for (int n = 0; n < (int)(sizeof(ref_resize_box) / sizeof(ref_resize_box[0])); n++) {
        const int *b = ref_resize_box[n];
        int64_t oh = b[4], ow = b[5], m = REF_C * oh * ow;
        uint8_t *d = malloc((size_t)m);
        float *df = malloc((size_t)(oh * ow) * sizeof(float));
        ck_assert_int_eq(tf_resize_u8(d, oh, ow, img, REF_C, REF_H, REF_W, b[0], b[1], b[2],
                                      b[3]), 0);
        for (int64_t i = 0; i < m; i++)
            ck_assert_msg(abs((int)d[i] - (int)ref_resize_u8[n][i]) <= 1,
                          "box %d elem %lld: %d, PIL %d", n, (long long)i, d[i],
                          ref_resize_u8[n][i]);
        ck_assert_int_eq(tf_resize_f32(df, oh, ow, f, 1, REF_H, REF_W, b[0], b[1], b[2],
                                       b[3]), 0);
        for (int64_t i = 0; i < oh * ow; i++)
            ck_assert_msg(fabsf(df[i] - ref_resize_f32[n][i]) <= 1e-3f,
                          "box %d elem %lld: %g, PIL %g", n, (long long)i, df[i],
                          ref_resize_f32[n][i]);
        free(d);
        free(df);
    }
    /* a box that does not fit */
    {
        uint8_t d[4];
        ck_assert_int_eq(tf_resize_u8(d, 2, 2, img, REF_C, REF_H, REF_W, 10, 0, 8, 5), -1);
    }
    free(img);
    free(f);
}
END_TEST

/* Large downscale: the scratch then comes from the heap; a constant image
 * stays constant and a ramp stays monotone. */
START_TEST(test_resample_large)
{
    int64_t h = 300, w = 400;
    uint8_t *img = malloc((size_t)(3 * h * w)), d[3 * 7 * 9];
    float *f = malloc((size_t)(h * w) * sizeof(float)), df[7 * 9];

    for (int64_t i = 0; i < 3 * h * w; i++)
        img[i] = 77;
    for (int64_t i = 0; i < h; i++)
        for (int64_t j = 0; j < w; j++)
            f[i * w + j] = (float)j;
    ck_assert_int_eq(tf_resize_u8(d, 7, 9, img, 3, h, w, 0, 0, w, h), 0);
    for (int i = 0; i < 3 * 7 * 9; i++)
        ck_assert_int_eq(d[i], 77);
    ck_assert_int_eq(tf_resize_f32(df, 7, 9, f, 1, h, w, 0, 0, w, h), 0);
    for (int i = 0; i < 7; i++)
        for (int j = 1; j < 9; j++)
            ck_assert(df[i * 9 + j] > df[i * 9 + j - 1]);
    /* the mean of a ramp is kept: column j covers [j w/9, (j+1) w/9) */
    ck_assert_double_eq_tol(df[4], (4.5 * w / 9.0) - 0.5, 0.5);
    free(img);
    free(f);
}
END_TEST

START_TEST(test_resize_plugins)
{
    uint8_t *img = pattern_u8(REF_C, REF_H, REF_W);
    float *imgf = pattern_f32(1, REF_H, REF_W);
    tt t;
    uint8_t *d;
    float *df;

    /* resize = 7, 9: PIL's reference 0 (the whole image) */
    tt_open(&t, "resize", "size=7,9", MLTK_U8, REF_C, REF_H, REF_W, 0);
    ck_assert_int_eq(t.out.dtype, MLTK_U8);
    ck_assert_int_eq(t.out.shape.dim[1], 7);
    ck_assert_int_eq(t.out.shape.dim[2], 9);
    ck_assert_int_eq(t.iface->flags, 0);
    d = tt_apply(&t, 1, img);
    for (int i = 0; i < REF_C * 7 * 9; i++)
        ck_assert_int_le(abs((int)d[i] - (int)ref_resize_u8[0][i]), 1);
    free(d);
    tt_close(&t);
    /* one size: the shorter side (13) becomes 6, the longer int(6*17/13) = 7 */
    tt_open(&t, "resize", "size=6", MLTK_F32, 1, REF_H, REF_W, 0);
    ck_assert_int_eq(t.out.shape.dim[1], 6);
    ck_assert_int_eq(t.out.shape.dim[2], 7);
    tt_close(&t);
    /* center_crop 8x9 of 13x17: top round(2.5) = 2, left round(4) = 4 */
    tt_open(&t, "center_crop", "size=8,9", MLTK_F32, 1, REF_H, REF_W, 0);
    df = tt_apply(&t, 1, imgf);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 9; j++)
            ck_assert_float_eq(df[i * 9 + j], imgf[(i + 2) * REF_W + j + 4]);
    free(df);
    tt_close(&t);
    free(img);
    free(imgf);
}
END_TEST

/* ---- random_crop ---------------------------------------------------------- */

START_TEST(test_random_crop)
{
    int64_t c = 3, h = 9, w = 11, pad = 2, th = 5, tw = 7;
    uint8_t *img = pattern_u8(c, h, w);
    float *imgf = pattern_f32(c, h, w);
    tt t, tf;

    tt_open(&t, "random_crop", "size=5,7|padding=2|fill=300", MLTK_U8, c, h, w, 0);
    tt_open(&tf, "random_crop", "size=5,7|padding=2|fill=-1.5", MLTK_F32, c, h, w, 0);
    ck_assert_int_eq(t.iface->flags, MLTK_TRANSFORM_RANDOM);
    ck_assert_int_eq(t.out.shape.dim[0], 3);
    ck_assert_int_eq(t.out.shape.dim[1], 5);
    ck_assert_int_eq(t.out.shape.dim[2], 7);
    for (uint64_t key = 1; key <= 40; key++) {
        int64_t i0 = randint(key, 0, 0, h + 2 * pad - th + 1) - pad;
        int64_t j0 = randint(key, 1, 0, w + 2 * pad - tw + 1) - pad;
        uint8_t *d = tt_apply(&t, key, img);
        float *df = tt_apply(&tf, key, imgf);
        for (int64_t k = 0; k < c; k++)
            for (int64_t y = 0; y < th; y++)
                for (int64_t x = 0; x < tw; x++) {
                    int64_t sy = i0 + y, sx = j0 + x, o = (k * th + y) * tw + x;
                    int in = sy >= 0 && sy < h && sx >= 0 && sx < w;
                    ck_assert_int_eq(d[o], in ? img[(k * h + sy) * w + sx] : 255);
                    ck_assert_float_eq(df[o], in ? imgf[(k * h + sy) * w + sx] : -1.5f);
                }
        free(d);
        free(df);
    }
    tt_close(&t);
    tt_close(&tf);
    /* size 0 keeps the size: a shift by up to padding */
    tt_open(&t, "random_crop", "padding=3", MLTK_U8, 1, h, w, 0);
    ck_assert_int_eq(t.out.shape.dim[1], h);
    ck_assert_int_eq(t.out.shape.dim[2], w);
    {
        uint64_t key = 5;
        int64_t i0 = randint(key, 0, 0, 7) - 3, j0 = randint(key, 1, 0, 7) - 3;
        uint8_t *d = tt_apply(&t, key, img);
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                int64_t sy = i0 + y, sx = j0 + x;
                int in = sy >= 0 && sy < h && sx >= 0 && sx < w;
                ck_assert_int_eq(d[y * w + x], in ? img[sy * w + sx] : 0);
            }
        free(d);
    }
    tt_close(&t);
    free(img);
    free(imgf);
}
END_TEST

/* ---- random_resized_crop -------------------------------------------------- */

/* torchvision's get_params written out again */
static void rrc_expect(uint64_t key, int64_t h, int64_t w, double s0, double s1, double r0,
                       double r1, int64_t *bi, int64_t *bj, int64_t *bh, int64_t *bw)
{
    double area = (double)(h * w);

    for (uint64_t t = 0; t < 10; t++) {
        double ta = area * (s0 + (s1 - s0) * mltk_rng_u01(key, 4 * t));
        double lr = log(r0) + (log(r1) - log(r0)) * mltk_rng_u01(key, 4 * t + 1);
        double ar = exp(lr);
        int64_t cw = (int64_t)nearbyint(sqrt(ta * ar)), ch = (int64_t)nearbyint(sqrt(ta / ar));
        if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
            *bh = ch;
            *bw = cw;
            *bi = randint(key, 4 * t + 2, 0, h - ch + 1);
            *bj = randint(key, 4 * t + 3, 0, w - cw + 1);
            return;
        }
    }
    ck_abort_msg("the test expects a fitting attempt");
}

START_TEST(test_random_resized_crop)
{
    int64_t c = 3, h = REF_H, w = REF_W;
    uint8_t *img = pattern_u8(c, h, w), *want = malloc(3 * 6 * 8), *d, *d2;
    float *imgf = pattern_f32(c, h, w), *wantf = malloc(3 * 6 * 8 * sizeof(float)), *df;
    tt t, tf;
    int differ = 0;

    tt_open(&t, "random_resized_crop", "size=6,8", MLTK_U8, c, h, w, 0);
    tt_open(&tf, "random_resized_crop", "size=6,8|scale=0.3,0.9|ratio=0.5,2", MLTK_F32,
            c, h, w, 0);
    ck_assert_int_eq(t.out.shape.dim[1], 6);
    ck_assert_int_eq(t.out.shape.dim[2], 8);
    ck_assert_int_eq(tf.out.dtype, MLTK_F32);
    for (uint64_t key = 100; key < 130; key++) {
        int64_t bi, bj, bh, bw;
        rrc_expect(key, h, w, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0, &bi, &bj, &bh, &bw);
        ck_assert_int_eq(tf_resize_u8(want, 6, 8, img, c, h, w, bj, bi, bw, bh), 0);
        d = tt_apply(&t, key, img);
        ck_assert_mem_eq(d, want, 3 * 6 * 8);
        /* the same key gives the same output, the next one another */
        d2 = tt_apply(&t, key, img);
        ck_assert_mem_eq(d, d2, 3 * 6 * 8);
        free(d2);
        d2 = tt_apply(&t, key + 1000, img);
        differ += memcmp(d, d2, 3 * 6 * 8) != 0;
        free(d2);
        free(d);
        rrc_expect(key, h, w, 0.3, 0.9, 0.5, 2.0, &bi, &bj, &bh, &bw);
        ck_assert_int_eq(tf_resize_f32(wantf, 6, 8, imgf, c, h, w, bj, bi, bw, bh), 0);
        df = tt_apply(&tf, key, imgf);
        ck_assert_mem_eq(df, wantf, 3 * 6 * 8 * sizeof(float));
        free(df);
    }
    ck_assert_int_ge(differ, 25);
    tt_close(&t);
    tt_close(&tf);
    /* no attempt fits (width >= sqrt(2 * 221) > 17): the centre crop with
     * w = 17, h = round(17 / 2) = 8 (half to even), i = 2, j = 0 */
    tt_open(&t, "random_resized_crop", "size=6,8|scale=1,1|ratio=2,3", MLTK_U8, c, h, w, 0);
    ck_assert_int_eq(tf_resize_u8(want, 6, 8, img, c, h, w, 0, 2, 17, 8), 0);
    d = tt_apply(&t, 9, img);
    ck_assert_mem_eq(d, want, 3 * 6 * 8);
    free(d);
    tt_close(&t);
    free(img);
    free(imgf);
    free(want);
    free(wantf);
}
END_TEST

/* ---- flip ----------------------------------------------------------------- */

START_TEST(test_flip)
{
    int64_t c = 3, h = 4, w = 5;
    uint8_t *img = pattern_u8(c, h, w), *d;
    float *imgf = pattern_f32(c, h, w), *df;
    tt t;
    int flipped = 0;

    tt_open(&t, "flip", "p=1", MLTK_U8, c, h, w, 0);
    d = tt_apply(&t, 3, img);
    for (int64_t k = 0; k < c; k++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++)
                ck_assert_int_eq(d[(k * h + i) * w + j], img[(k * h + i) * w + w - 1 - j]);
    free(d);
    tt_close(&t);
    tt_open(&t, "flip", "p=1|direction=vertical", MLTK_F32, c, h, w, 0);
    df = tt_apply(&t, 3, imgf);
    for (int64_t k = 0; k < c; k++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++)
                ck_assert_float_eq(df[(k * h + i) * w + j], imgf[(k * h + h - 1 - i) * w + j]);
    free(df);
    tt_close(&t);
    tt_open(&t, "flip", "p=0", MLTK_F32, c, h, w, 0);
    df = tt_apply(&t, 3, imgf);
    ck_assert_mem_eq(df, imgf, (size_t)(c * h * w) * sizeof(float));
    free(df);
    tt_close(&t);
    /* p = 0.5: flipped exactly when draw 0 < 0.5 */
    tt_open(&t, "flip", "", MLTK_F32, 1, h, w, 0);
    for (uint64_t key = 0; key < 64; key++) {
        int want = mltk_rng_u01(key, 0) < 0.5f;
        df = tt_apply(&t, key, imgf);
        ck_assert_int_eq(df[0] == imgf[w - 1], want);
        flipped += want;
        free(df);
    }
    ck_assert(flipped > 16 && flipped < 48);
    tt_close(&t);
    free(img);
    free(imgf);
}
END_TEST

/* ---- rotate --------------------------------------------------------------- */

START_TEST(test_rotate_pil)
{
    uint8_t *img = pattern_u8(REF_C, REF_H, REF_W);
    int n = _i;
    double want = ref_rotate_angle[n];
    uint64_t key = 0;
    double u = 0;
    char kv[64];
    tt t;
    uint8_t *d;
    int64_t m = REF_C * REF_H * REF_W, off = 0;

    /* a key whose draw makes -D + 2 D u equal the reference angle */
    for (key = 1; key < 1000; key++) {
        u = mltk_rng_u01(key, 0);
        if ((2 * u - 1) * want > 0 && fabs(2 * u - 1) > 0.3)
            break;
    }
    snprintf(kv, sizeof(kv), "degrees=%.17g", want / (2 * u - 1));
    tt_open(&t, "rotate", kv, MLTK_U8, REF_C, REF_H, REF_W, 0);
    d = tt_apply(&t, key, img);
    for (int64_t i = 0; i < m; i++) {
        int diff = abs((int)d[i] - (int)ref_rotate_u8[n][i]);
        ck_assert_msg(diff <= 1, "angle %g elem %lld: %d, PIL %d", want, (long long)i, d[i],
                      ref_rotate_u8[n][i]);
        off += diff;
    }
    ck_assert_int_lt(off, m / 4);
    free(d);
    tt_close(&t);
    free(img);
}
END_TEST

START_TEST(test_rotate_f32)
{
    float *imgf = pattern_f32(1, 6, 6), *df;
    tt t;

    /* degrees 0: the image itself; fill outside for large angles */
    tt_open(&t, "rotate", "degrees=0", MLTK_F32, 1, 6, 6, 0);
    df = tt_apply(&t, 7, imgf);
    for (int i = 0; i < 36; i++)
        ck_assert_float_eq_tol(df[i], imgf[i], 1e-6f);
    free(df);
    tt_close(&t);
    tt_open(&t, "rotate", "degrees=180|fill=-2", MLTK_F32, 1, 6, 6, 0);
    for (uint64_t key = 0; key < 8; key++) {
        double a = (-180 + 360 * (double)mltk_rng_u01(key, 0)) * 3.14159265358979323846 / 180;
        /* the corner pixel (0, 0) comes from outside unless the angle is a
         * multiple of 90 degrees (cos and sin near 0 or 1) */
        int corner_out = fabs(sin(2 * a)) > 0.5;
        df = tt_apply(&t, key, imgf);
        if (corner_out)
            ck_assert_float_eq(df[0], -2.0f);
        /* the centre 2x2 stays inside */
        ck_assert(df[2 * 6 + 2] >= 0.0f && df[3 * 6 + 3] >= 0.0f);
        free(df);
    }
    tt_close(&t);
    free(imgf);
}
END_TEST

/* ---- color_jitter --------------------------------------------------------- */

static double clampd(double v, double hi)
{
    return v < 0 ? 0 : v > hi ? hi : v;
}

/* torchvision.transforms.functional on tensors, in double: op 0..2 with
 * factor f on x (c, hw) of range [0, hi]; trunc: u8 (truncate each result
 * and each grey level). */
static void cj_ref(double *x, int64_t c, int64_t hw, int op, double f, double hi, int trunc)
{
    double m = 0;
    double *g = malloc((size_t)hw * sizeof(double));

    for (int64_t p = 0; p < hw; p++) {
        g[p] = c == 1 ? x[p] : 0.2989 * x[p] + 0.587 * x[hw + p] + 0.114 * x[2 * hw + p];
        if (trunc)
            g[p] = floor(g[p]);
        m += g[p];
    }
    m /= (double)hw;
    for (int64_t k = 0; k < c; k++)
        for (int64_t p = 0; p < hw; p++) {
            double *v = &x[k * hw + p];
            if (op == 0)
                *v = clampd(f * *v, hi);
            else if (op == 1)
                *v = clampd(f * *v + (1 - f) * m, hi);
            else if (c == 3)
                *v = clampd(f * *v + (1 - f) * g[p], hi);
            if (trunc)
                *v = floor(*v);
        }
    free(g);
}

START_TEST(test_color_jitter)
{
    int64_t c = 3, h = 5, w = 6, n = c * h * w;
    uint8_t *img = pattern_u8(c, h, w), *d;
    float *imgf = pattern_f32(c, h, w), *df;
    double *x = malloc((size_t)n * sizeof(double));
    const char *keys[3] = { "brightness", "contrast", "saturation" };
    tt t;

    /* each operation alone, u8 (within 1 for float rounding at the
     * truncation) and f32 */
    for (int op = 0; op < 3; op++) {
        char kv[64];
        snprintf(kv, sizeof(kv), "%s=0.6|order=fixed", keys[op]);
        for (int dt = 0; dt < 2; dt++) {
            tt_open(&t, "color_jitter", kv, dt ? MLTK_F32 : MLTK_U8, c, h, w, 0);
            for (uint64_t key = 1; key < 6; key++) {
                double f = 0.4 + 1.2 * (double)mltk_rng_u01(key, (uint64_t)op);
                for (int64_t i = 0; i < n; i++)
                    x[i] = dt ? (double)imgf[i] : (double)img[i];
                cj_ref(x, c, h * w, op, f, dt ? 1.0 : 255.0, !dt);
                if (dt) {
                    df = tt_apply(&t, key, imgf);
                    for (int64_t i = 0; i < n; i++)
                        ck_assert_msg(fabs(df[i] - x[i]) < 1e-5, "op %d elem %lld: %g vs %g",
                                      op, (long long)i, df[i], x[i]);
                    free(df);
                } else {
                    d = tt_apply(&t, key, img);
                    for (int64_t i = 0; i < n; i++)
                        ck_assert_msg(fabs(d[i] - x[i]) <= 1, "op %d elem %lld: %d vs %g",
                                      op, (long long)i, d[i], x[i]);
                    free(d);
                }
            }
            tt_close(&t);
        }
    }
    /* all three in the drawn order (f32): Fisher-Yates with draws 3, 4 */
    tt_open(&t, "color_jitter", "brightness=0.5|contrast=0.5|saturation=0.5", MLTK_F32, c,
            h, w, 0);
    for (uint64_t key = 1; key < 12; key++) {
        int order[3] = { 0, 1, 2 };
        for (int i = 2, k = 3; i >= 1; i--, k++) {
            int64_t s = randint(key, (uint64_t)k, 0, i + 1);
            int tmp = order[i];
            order[i] = order[s];
            order[s] = tmp;
        }
        for (int64_t i = 0; i < n; i++)
            x[i] = imgf[i];
        for (int i = 0; i < 3; i++)
            cj_ref(x, c, h * w, order[i],
                   0.5 + (double)mltk_rng_u01(key, (uint64_t)order[i]), 1.0, 0);
        df = tt_apply(&t, key, imgf);
        for (int64_t i = 0; i < n; i++)
            ck_assert_msg(fabs(df[i] - x[i]) < 1e-5, "key %llu elem %lld: %g vs %g",
                          (unsigned long long)key, (long long)i, df[i], x[i]);
        free(df);
    }
    tt_close(&t);
    /* one channel: saturation leaves it alone */
    tt_open(&t, "color_jitter", "saturation=0.9", MLTK_U8, 1, h, w, 0);
    d = tt_apply(&t, 2, img);
    ck_assert_mem_eq(d, img, (size_t)(h * w));
    free(d);
    tt_close(&t);
    free(x);
    free(img);
    free(imgf);
}
END_TEST

/* ---- normalize ------------------------------------------------------------ */

START_TEST(test_normalize)
{
    int64_t c = 3, h = 4, w = 4;
    uint8_t *img = pattern_u8(c, h, w);
    float *imgf = pattern_f32(c, h, w), *df;
    const double mean[3] = { 0.485, 0.456, 0.406 }, sd[3] = { 0.229, 0.224, 0.225 };
    tt t;

    tt_open(&t, "normalize", "mean=0.485,0.456,0.406|std=0.229,0.224,0.225", MLTK_U8, c, h,
            w, 0);
    ck_assert_int_eq(t.out.dtype, MLTK_F32);
    ck_assert_int_eq(t.iface->flags, 0);
    df = tt_apply(&t, 0, img);
    for (int64_t k = 0; k < c; k++)
        for (int64_t i = 0; i < h * w; i++)
            ck_assert_double_eq_tol(df[k * h * w + i],
                                    (img[k * h * w + i] / 255.0 - mean[k]) / sd[k], 1e-5);
    free(df);
    tt_close(&t);
    tt_open(&t, "normalize", "mean=0.5|std=0.25", MLTK_F32, c, h, w, 0);
    df = tt_apply(&t, 0, imgf);
    for (int64_t i = 0; i < c * h * w; i++)
        ck_assert_double_eq_tol(df[i], (imgf[i] - 0.5) / 0.25, 1e-5);
    free(df);
    tt_close(&t);
    free(img);
    free(imgf);
}
END_TEST

/* ---- random_erasing ------------------------------------------------------- */

START_TEST(test_random_erasing)
{
    int64_t c = 3, h = 10, w = 12, n = c * h * w;
    float *imgf = pattern_f32(c, h, w), *df;
    tt t;
    int erased = 0;

    tt_open(&t, "random_erasing", "p=1|value=-1", MLTK_F32, c, h, w, 0);
    for (uint64_t key = 1; key < 40; key++) {
        int64_t bi = 0, bj = 0, bh = 0, bw = 0;
        for (uint64_t a = 0; a < 10; a++) {
            double ea = (double)(h * w) * (0.02 + 0.31 * mltk_rng_u01(key, 1 + 4 * a));
            double ar = exp(log(0.3) + (log(3.3) - log(0.3)) * mltk_rng_u01(key, 2 + 4 * a));
            int64_t eh = (int64_t)nearbyint(sqrt(ea * ar)), ew = (int64_t)nearbyint(sqrt(ea / ar));
            if (!(eh < h && ew < w))
                continue;
            bh = eh;
            bw = ew;
            bi = randint(key, 3 + 4 * a, 0, h - eh + 1);
            bj = randint(key, 4 + 4 * a, 0, w - ew + 1);
            break;
        }
        erased += bh * bw > 0;
        df = tt_apply(&t, key, imgf);
        for (int64_t k = 0; k < c; k++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++) {
                    int64_t o = (k * h + y) * w + x;
                    int in = y >= bi && y < bi + bh && x >= bj && x < bj + bw;
                    ck_assert_float_eq(df[o], in ? -1.0f : imgf[o]);
                }
        free(df);
    }
    ck_assert_int_ge(erased, 30);
    tt_close(&t);
    /* p = 0: untouched; random values: the box is noise, mean near 0 */
    tt_open(&t, "random_erasing", "p=0", MLTK_F32, c, h, w, 0);
    df = tt_apply(&t, 1, imgf);
    ck_assert_mem_eq(df, imgf, (size_t)n * sizeof(float));
    free(df);
    tt_close(&t);
    tt_open(&t, "random_erasing", "p=1|scale=0.5,0.5|ratio=1,1|random_value=true", MLTK_F32,
            c, h, w, 0);
    df = tt_apply(&t, 1, imgf);
    {
        int changed = 0;
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++)
            if (df[i] != imgf[i]) {
                changed++;
                s += df[i];
                s2 += df[i] * df[i];
            }
        /* h = w = round(sqrt(60)) = 8: 3 * 64 values */
        ck_assert_int_eq(changed, 3 * 64);
        ck_assert(fabs(s / changed) < 0.3 && fabs(s2 / changed - 1) < 0.4);
    }
    free(df);
    tt_close(&t);
    free(imgf);
}
END_TEST

/* ---- mixup and cutmix ----------------------------------------------------- */

START_TEST(test_mixup)
{
    int64_t rows = 5, c = 1, h = 3, w = 4, n = c * h * w, nc = 4;
    float x[5 * 12], x0[5 * 12], y[5 * 4];
    int cls[5] = { 0, 2, 3, 2, 1 };
    tt t;
    char *err = NULL;
    double s = 0, s2 = 0;
    int draws = 2000;

    tt_open(&t, "mixup", "alpha=0.4", MLTK_F32, c, h, w, nc);
    ck_assert_int_eq(t.iface->flags, MLTK_TRANSFORM_RANDOM | MLTK_TRANSFORM_BATCH);
    for (uint64_t key = 1; key < 20; key++) {
        double lam;
        for (int64_t i = 0; i < rows * n; i++)
            x0[i] = x[i] = (float)((i * 7919 + (int64_t)key) % 101) / 10.0f;
        memset(y, 0, sizeof(y));
        for (int64_t r = 0; r < rows; r++)
            y[r * nc + cls[r]] = 1;
        ck_assert_int_eq(t.iface->apply_batch(t.self, key, x, y, rows, &err), MLTK_OK);
        /* row 0 (class 0) mixes with row 4 (class 1): lambda is y[0][0] */
        lam = y[0];
        ck_assert(lam >= 0 && lam <= 1);
        for (int64_t r = 0; r < rows; r++) {
            int64_t p = (r + rows - 1) % rows;
            double sum = 0;
            for (int64_t k = 0; k < nc; k++)
                sum += y[r * nc + k];
            ck_assert_double_eq_tol(sum, 1.0, 1e-6);
            if (cls[p] != cls[r]) {
                ck_assert_double_eq_tol(y[r * nc + cls[r]], lam, 1e-6);
                ck_assert_double_eq_tol(y[r * nc + cls[p]], 1 - lam, 1e-6);
            }
            for (int64_t i = 0; i < n; i++)
                ck_assert_double_eq_tol(x[r * n + i],
                                        lam * x0[r * n + i] + (1 - lam) * x0[p * n + i],
                                        1e-5);
        }
    }
    tt_close(&t);
    /* Beta(1, 1) is uniform: mean 1/2, variance 1/12; Beta(0.2, 0.2):
     * variance 1 / (4 (2 alpha + 1)) = 0.178571 */
    for (int a = 0; a < 2; a++) {
        tt_open(&t, "mixup", a ? "alpha=0.2" : "alpha=1", MLTK_F32, 1, 1, 1, 2);
        s = s2 = 0;
        for (int k = 0; k < draws; k++) {
            float xx[2] = { 0, 1 }, yy[4] = { 1, 0, 0, 1 };
            ck_assert_int_eq(t.iface->apply_batch(t.self, (uint64_t)k * 7 + 3, xx, yy, 2,
                                                  &err), MLTK_OK);
            s += yy[0];
            s2 += yy[0] * yy[0];
        }
        s /= draws;
        s2 = s2 / draws - s * s;
        ck_assert_double_eq_tol(s, 0.5, 0.03);
        ck_assert_double_eq_tol(s2, a ? 0.178571 : 1.0 / 12, 0.015);
        tt_close(&t);
    }
}
END_TEST

START_TEST(test_cutmix)
{
    int64_t rows = 4, c = 3, h = 8, w = 10, n = c * h * w, nc = 4;
    float *x = malloc((size_t)(rows * n) * sizeof(float)), y[4 * 4];
    tt t;
    char *err = NULL;
    int boxes = 0;

    tt_open(&t, "cutmix", "alpha=1", MLTK_F32, c, h, w, nc);
    for (uint64_t key = 1; key < 30; key++) {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < n; i++)
                x[r * n + i] = (float)(r + 1);
        memset(y, 0, sizeof(y));
        for (int64_t r = 0; r < rows; r++)
            y[r * nc + r] = 1;
        ck_assert_int_eq(t.iface->apply_batch(t.self, key, x, y, rows, &err), MLTK_OK);
        for (int64_t r = 0; r < rows; r++) {
            int64_t p = (r + rows - 1) % rows, pasted = 0;
            for (int64_t i = 0; i < n; i++) {
                ck_assert(x[r * n + i] == (float)(r + 1) || x[r * n + i] == (float)(p + 1));
                pasted += x[r * n + i] == (float)(p + 1);
            }
            /* lambda = 1 - the pasted fraction; same box on every channel */
            ck_assert_int_eq(pasted % c, 0);
            ck_assert_double_eq_tol(y[r * nc + r], 1.0 - (double)pasted / (double)n, 1e-6);
            ck_assert_double_eq_tol(y[r * nc + p], (double)pasted / (double)n, 1e-6);
            boxes += pasted > 0;
        }
        /* the centre comes from draws 0 and 1: inside every non-empty box */
        {
            int64_t rx = randint(key, 0, 0, w), ry = randint(key, 1, 0, h);
            if (y[0] < 1.0f)
                ck_assert_float_eq(x[ry * w + rx], (float)rows);
        }
    }
    ck_assert_int_ge(boxes, 60);
    tt_close(&t);
    free(x);
}
END_TEST

/* ---- keys: the same key, the same output; other keys, other outputs ------ */

START_TEST(test_keys)
{
    static const char *const cases[][2] = {
        { "random_crop", "padding=3" },
        { "random_resized_crop", "size=12" },
        { "flip", "" },
        { "rotate", "degrees=30" },
        { "color_jitter", "brightness=0.4|contrast=0.4|saturation=0.4" },
        { "random_erasing", "p=0.9" },
    };
    const char *name = cases[_i][0];
    uint8_t *img = pattern_u8(3, 16, 16);
    tt t;
    size_t bytes;
    int distinct = 0;
    uint8_t *first = NULL;

    tt_open(&t, name, cases[_i][1], MLTK_U8, 3, 16, 16, 0);
    ck_assert_int_eq(t.iface->flags, MLTK_TRANSFORM_RANDOM);
    bytes = (size_t)mltk_shape_numel(&t.out.shape);
    for (uint64_t key = 1; key <= 8; key++) {
        uint8_t *a = tt_apply(&t, key, img), *b = tt_apply(&t, key, img);
        ck_assert_msg(memcmp(a, b, bytes) == 0, "%s: key %llu twice", name,
                      (unsigned long long)key);
        free(b);
        if (!first) {
            first = a;
            continue;
        }
        distinct += memcmp(a, first, bytes) != 0;
        free(a);
    }
    ck_assert_msg(distinct >= 3, "%s: %d of 7 keys differ from key 1", name, distinct);
    free(first);
    tt_close(&t);
    free(img);
}
END_TEST

/* ---- setup errors --------------------------------------------------------- */

static void expect_setup_error(const char *name, const char *kv, mltk_dtype dt, int64_t c,
                               int64_t h, int64_t w, int64_t ncls, int status,
                               const char *msg)
{
    tt t;
    char *err = NULL;
    int rc = tt_open_rc(&t, name, kv, dt, c, h, w, ncls, &err);

    ck_assert_int_eq(rc, status);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, msg);
    free(err);
    tt_close(&t);
}

START_TEST(test_setup_errors)
{
    expect_setup_error("random_crop", "", MLTK_U8, 2, 8, 8, 0, MLTK_ERR_SHAPE,
                       "random_crop: expected an image (C, H, W) with C = 1 or 3, got "
                       "(2, 8, 8)");
    expect_setup_error("flip", "", MLTK_I32, 3, 8, 8, 0, MLTK_ERR_SHAPE,
                       "flip: expected u8 or f32 samples, got i32");
    expect_setup_error("random_crop", "size=12|padding=1", MLTK_U8, 1, 8, 9, 0,
                       MLTK_ERR_SHAPE,
                       "random_crop: size 12x12 is larger than the padded image 10x11");
    expect_setup_error("cutmix", "", MLTK_U8, 3, 8, 8, 10, MLTK_ERR_SHAPE,
                       "cutmix: expected f32 samples, got u8");
    expect_setup_error("mixup", "", MLTK_F32, 3, 8, 8, 0, MLTK_ERR_SHAPE,
                       "mixup: needs a data set of classes (class targets), got value "
                       "targets");
    expect_setup_error("normalize", "mean=0.1,0.2,0.3|std=1", MLTK_U8, 1, 8, 8, 0,
                       MLTK_ERR_SHAPE,
                       "normalize: three means or stds need 3 channels, got 1");
    expect_setup_error("normalize", "mean=0.1,0.2|std=1", MLTK_U8, 3, 8, 8, 0,
                       MLTK_ERR_CONFIG,
                       "key 'mean' must be one number or three (one per channel)");
    expect_setup_error("normalize", "mean=0|std=0", MLTK_U8, 3, 8, 8, 0, MLTK_ERR_CONFIG,
                       "key 'std' must be > 0");
    expect_setup_error("random_resized_crop", "size=4|scale=0.9,0.2", MLTK_U8, 3, 8, 8, 0,
                       MLTK_ERR_CONFIG, "key 'scale' must be two numbers lo, hi with lo <= hi");
    expect_setup_error("random_erasing", "random_value=true", MLTK_U8, 3, 8, 8, 0,
                       MLTK_ERR_SHAPE,
                       "random_erasing: random_value needs f32 samples (put normalize "
                       "before it), got u8");
    expect_setup_error("center_crop", "size=9,4", MLTK_F32, 1, 8, 8, 0, MLTK_ERR_SHAPE,
                       "center_crop: size 9x4 is larger than the image 8x8");
    expect_setup_error("rotate", "degrees=5", MLTK_F32, 3, 8, 0, 0, MLTK_ERR_SHAPE,
                       "rotate: expected an image (C, H, W) with C = 1 or 3, got (3, 8, 0)");
}
END_TEST

/* The descriptor refuses out-of-range keys before any plugin code. */
START_TEST(test_descriptor_ranges)
{
    tt t;
    char *err = NULL;

    memset(&t, 0, sizeof(t));
    ck_assert_int_eq(tt_params(&t, "flip", "p=1.5", &err), MLTK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "p"));
    free(err);
    err = NULL;
    ck_assert_int_eq(tt_params(&t, "rotate", "fill=1", &err), MLTK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "degrees"));
    free(err);
}
END_TEST

static Suite *transforms_suite(void)
{
    Suite *s = suite_create("transforms");
    TCase *tc = tcase_create("transforms");

    tcase_add_checked_fixture(tc, fixture_open, fixture_close);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_resample_pil);
    tcase_add_test(tc, test_resample_large);
    tcase_add_test(tc, test_resize_plugins);
    tcase_add_test(tc, test_random_crop);
    tcase_add_test(tc, test_random_resized_crop);
    tcase_add_test(tc, test_flip);
    tcase_add_loop_test(tc, test_rotate_pil, 0,
                        (int)(sizeof(ref_rotate_angle) / sizeof(ref_rotate_angle[0])));
    tcase_add_test(tc, test_rotate_f32);
    tcase_add_test(tc, test_color_jitter);
    tcase_add_test(tc, test_normalize);
    tcase_add_test(tc, test_random_erasing);
    tcase_add_test(tc, test_mixup);
    tcase_add_test(tc, test_cutmix);
    tcase_add_loop_test(tc, test_keys, 0, 6);
    tcase_add_test(tc, test_setup_errors);
    tcase_add_test(tc, test_descriptor_ranges);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(transforms_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
