/* check_image.c - the imagefolder data set: decoding against PIL, resizing
 * and cropping, the folder rules, and every kind of bad file.
 *
 * What this is: tiny JPEG and PNG files (their bytes and the pixels PIL
 * decodes from them, converted to 'L' or 'RGB', resized and center-cropped
 * as torchvision does, are in tests/image_ref.h, written by
 * tests/gen_image_ref.py) are written into a fresh temporary directory per
 * test, laid out as ROOT/CLASS/FILE, opened through the plugin as the core
 * would (params built against its descriptor) and read with get(); every
 * byte must equal PIL's.  The folder rules (sorted classes, sorted files,
 * hidden files and other extensions skipped, nested folders, the test
 * split's classes, the checksum) and the bad files (a truncated JPEG, a
 * truncated PNG, an empty file, a text file named .jpg, images of another
 * size) are checked with their exact messages, in both on_error modes.
 * get() is also called from four threads at once, which must read the
 * same bytes as one thread.
 *
 * What this is not: a test of the loader that calls get() from threads
 * (the core's), or of training (tests/test_image_train.sh).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"
#include "dsfixture.h"
#include "image.h"
#include "image_ref.h"
#include "sha256.h"

/* ---- fixture -------------------------------------------------------------- */

static void fixture_open(void)
{
    dsfix_open("imagefolder", "check_image");
}

static void fixture_close(void)
{
    dsfix_close();
}

/* ---- files ---------------------------------------------------------------- */

/* Write dir/rel (making its folders). */
static void put(const char *rel, const void *data, size_t n)
{
    char *p = path_of(rel);

    for (char *s = strchr(p + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        ck_assert_msg(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s", p);
        *s = '/';
    }
    FILE *f = fopen(p, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", p);
    ck_assert_uint_eq(n ? fwrite(data, 1, n, f) : 0, n);
    ck_assert_int_eq(fclose(f), 0);
}

static const image_ref *ref(const char *name)
{
    for (size_t i = 0; i < sizeof(image_refs) / sizeof(image_refs[0]); i++)
        if (strcmp(image_refs[i].name, name) == 0)
            return &image_refs[i];
    ck_abort_msg("no reference image %s", name);
    return NULL;
}

/* ---- opening through the plugin ------------------------------------------- */

/* Open `split` of root dir/train_rel (test split: dir/test_rel) with the
 * extra key/value pairs; returns open's status. */
static int open_with(void **self, const char *split, const char *train_rel,
                     const char *test_rel, int n_extra, const char *const *ek,
                     const char *const *ev, char **err)
{
    const char *keys[12], *vals[12];
    char train[4400], test[4400];
    int n = 0, rc;
    mltk_params_t *p = NULL;

    snprintf(train, sizeof(train), "%s/%s", dir, train_rel);
    keys[n] = "path";
    vals[n++] = train;
    if (test_rel) {
        snprintf(test, sizeof(test), "%s/%s", dir, test_rel);
        keys[n] = "test_path";
        vals[n++] = test;
    }
    for (int i = 0; i < n_extra; i++) {
        keys[n] = ek[i];
        vals[n++] = ev[i];
    }
    rc = mltk_params_build(&p, &desc, 1, n, keys, vals, NULL, NULL, 0,
                           "data (imagefolder)", err);
    ck_assert_msg(rc == MLTK_OK, "params: %s", *err ? *err : "?");
    *self = NULL;
    rc = ds->open(self, p, split, err);
    mltk_params_free(p);   /* open must not keep the params */
    return rc;
}

static void *open_ok(const char *train_rel, int n_extra, const char *const *ek,
                     const char *const *ev)
{
    void *self = NULL;
    char *err = NULL;
    int rc = open_with(&self, "train", train_rel, NULL, n_extra, ek, ev, &err);

    ck_assert_msg(rc == MLTK_OK, "open %s: %s", train_rel, err ? err : "?");
    ck_assert_ptr_nonnull(self);
    return self;
}

/* open must fail with `status` and exactly the message `want` */
static void expect_open_error(const char *split, const char *train_rel, const char *test_rel,
                              int n_extra, const char *const *ek, const char *const *ev,
                              int status, const char *want)
{
    void *self = NULL;
    char *err = NULL;
    int rc = open_with(&self, split, train_rel, test_rel, n_extra, ek, ev, &err);

    ck_assert_msg(rc == status, "status %d (%s), want %d; message: %s", rc,
                  mltk_status_str(rc), status, err ? err : "(none)");
    ck_assert_ptr_null(self);
    ck_assert_msg(err && strcmp(err, want) == 0, "message:\n  %s\nwant:\n  %s",
                  err ? err : "(none)", want);
    free(err);
}

/* get(i) must fail with MLTK_ERR_DATA and exactly the message `want` */
static void expect_get_error(void *self, int64_t i, const char *want)
{
    uint8_t x[3 * 64 * 64];
    int32_t y = -1;
    char *err = NULL;
    int rc = ds->get(self, i, x, &y, &err);

    ck_assert_msg(rc == MLTK_ERR_DATA, "get(%lld): status %d (%s); message: %s",
                  (long long)i, rc, mltk_status_str(rc), err ? err : "(none)");
    ck_assert_msg(err && strcmp(err, want) == 0, "message:\n  %s\nwant:\n  %s",
                  err ? err : "(none)", want);
    free(err);
}

/* ---- decoding, resizing, cropping against PIL ----------------------------- */

START_TEST(test_refs)
{
    for (size_t r = 0; r < sizeof(image_refs) / sizeof(image_refs[0]); r++) {
        const image_ref *e = &image_refs[r];
        char rel[256], root[64], resize[16], crop[16];
        snprintf(root, sizeof(root), "r%zu", r);
        snprintf(rel, sizeof(rel), "%s/only/%s", root, e->file);
        put(rel, e->data, e->size);
        snprintf(resize, sizeof(resize), "%d", e->resize);
        snprintf(crop, sizeof(crop), "%d", e->crop);
        for (int c = 1; c <= 3; c += 2) {
            const char *ek[3] = { "channels", "resize", "crop" };
            const char *ev[3] = { c == 1 ? "1" : "3", resize, crop };
            int w = c == 1 ? e->w1 : e->w3, h = c == 1 ? e->h1 : e->h3;
            const uint8_t *want = c == 1 ? e->c1 : e->c3;
            void *self = open_ok(root, 3, ek, ev);
            mltk_dataset_info info;
            uint8_t x[3 * 64 * 64];
            int32_t y = -1;
            char *err = NULL;

            memset(&info, 0, sizeof(info));
            ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
            ck_assert_int_eq(info.n, 1);
            ck_assert_int_eq(info.x_dtype, MLTK_U8);
            ck_assert(info.x_scale == 1.0 / 255.0);
            ck_assert(info.x_shift == 0.0);
            ck_assert_int_eq(info.x_shape.ndim, 3);
            ck_assert_msg(info.x_shape.dim[0] == c && info.x_shape.dim[1] == h &&
                          info.x_shape.dim[2] == w, "%s, %d channels: shape (%lld, %lld, "
                          "%lld), want (%d, %d, %d)", e->name, c,
                          (long long)info.x_shape.dim[0], (long long)info.x_shape.dim[1],
                          (long long)info.x_shape.dim[2], c, h, w);
            ck_assert_msg(ds->get(self, 0, x, &y, &err) == MLTK_OK, "%s, %d channels: %s",
                          e->name, c, err ? err : "?");
            ck_assert_int_eq(y, 0);
            for (int i = 0; i < c * h * w; i++)
                ck_assert_msg(x[i] == want[i], "%s, %d channels: byte %d (c %d, y %d, x %d) "
                              "is %u, PIL gives %u", e->name, c, i, i / (h * w),
                              i / w % h, i % w, x[i], want[i]);
            ds->close(self);
        }
    }
}
END_TEST

/* the decoder alone: (h, w, c) interleaved; and the header */
START_TEST(test_decode_direct)
{
    const image_ref *e = ref("jpeg_rgb");
    image_buf im;
    char *err = NULL;
    int w = 0, h = 0;

    ck_assert_int_eq(image_decode("x.jpg", e->data, e->size, 3, &im, &err), MLTK_OK);
    ck_assert_int_eq(im.w, 7);
    ck_assert_int_eq(im.h, 5);
    ck_assert_int_eq(im.c, 3);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++)
            for (int k = 0; k < 3; k++)
                ck_assert_uint_eq(im.px[(y * 7 + x) * 3 + k], e->c3[(k * 5 + y) * 7 + x]);
    free(im.px);
    ck_assert_int_eq(image_header("x.jpg", e->data, e->size, &w, &h, &err), MLTK_OK);
    ck_assert_int_eq(w, 7);
    ck_assert_int_eq(h, 5);
    e = ref("png_palette");
    ck_assert_int_eq(image_header("x.png", e->data, e->size, &w, &h, &err), MLTK_OK);
    ck_assert_int_eq(w, 7);
    ck_assert_int_eq(h, 5);
    ck_assert_int_eq(image_decode("x.png", e->data, e->size, 2, &im, &err), MLTK_ERR_INVALID);
    free(err);
}
END_TEST

/* Resize(n) sizes as torchvision computes them */
START_TEST(test_resize_sizes)
{
    int w, h;

    image_resize_size(9, 6, 4, &w, &h);
    ck_assert(w == 6 && h == 4);
    image_resize_size(6, 9, 4, &w, &h);
    ck_assert(w == 4 && h == 6);
    image_resize_size(28, 28, 32, &w, &h);
    ck_assert(w == 32 && h == 32);
    image_resize_size(500, 375, 256, &w, &h);   /* int(256 * 500 / 375) = 341 */
    ck_assert(w == 341 && h == 256);
}
END_TEST

/* ---- the folder rules ----------------------------------------------------- */

START_TEST(test_folder_rules)
{
    /* classes b, a, Z (byte order: Z a b); hidden things, other extensions
     * and loose files at the root are skipped; folders inside a class are
     * walked as os.walk sorted: "" < "s" < "s x" < "s/t" */
    const image_ref *g = ref("png_grey"), *q = ref("png_rgb"), *p = ref("png_palette");
    put("t/b/2.png", g->data, g->size);
    put("t/b/10.PNG", q->data, q->size);
    put("t/b/.hidden.png", q->data, q->size);
    put("t/b/notes.txt", "hello", 5);
    put("t/a/s/t/1.png", p->data, p->size);
    put("t/a/s x/1.png", q->data, q->size);
    put("t/a/s/1.png", g->data, g->size);
    put("t/a/z.png", p->data, p->size);
    put("t/Z/only.jpeg", ref("jpeg_grey")->data, ref("jpeg_grey")->size);
    put("t/.git/x.png", q->data, q->size);
    put("t/loose.png", q->data, q->size);
    put("t/a/.cache/y.png", q->data, q->size);

    static const char *const order[] = {
        "Z/only.jpeg", "a/z.png", "a/s/1.png", "a/s x/1.png", "a/s/t/1.png",
        "b/10.PNG", "b/2.png",
    };
    static const int32_t labels[] = { 0, 1, 1, 1, 1, 2, 2 };
    const image_ref *content[] = { ref("jpeg_grey"), p, g, q, p, q, g };
    const char *ek[2] = { "channels", "crop" }, *ev[2] = { "1", "3" };
    void *self = open_ok("t", 2, ek, ev);
    mltk_dataset_info info;
    sha256 sha;
    char want_sum[65];

    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 7);
    ck_assert_int_eq(info.n_classes, 3);
    ck_assert_ptr_nonnull(info.class_names);
    ck_assert_str_eq(info.class_names[0], "Z");
    ck_assert_str_eq(info.class_names[1], "a");
    ck_assert_str_eq(info.class_names[2], "b");
    sha256_init(&sha);
    for (int i = 0; i < 7; i++) {
        uint8_t x[9];
        int32_t y = -1;
        char *err = NULL, line[64];
        struct stat st;

        ck_assert_int_eq(ds->label(self, i, &y, &err), MLTK_OK);
        ck_assert_int_eq(y, labels[i]);
        ck_assert_msg(ds->get(self, i, x, &y, &err) == MLTK_OK, "sample %d: %s", i,
                      err ? err : "?");
        ck_assert_int_eq(y, labels[i]);
        /* center 3x3 of the 7x5 image: offset x 2, y 1 */
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++)
                ck_assert_msg(x[r * 3 + c] == content[i]->c1[(r + 1) * 7 + c + 2],
                              "sample %d (%s): pixel (%d, %d)", i, order[i], r, c);
        snprintf(line, sizeof(line), "t/%s", order[i]);
        ck_assert_int_eq(stat(path_of(line), &st), 0);
        snprintf(line, sizeof(line), "\t%lld\n", (long long)st.st_size);
        sha256_update(&sha, order[i], strlen(order[i]));
        sha256_update(&sha, line, strlen(line));
    }
    sha256_final(&sha, want_sum);
    ck_assert_str_eq(info.checksum, want_sum);
    {
        char *err = NULL;
        int32_t y;
        ck_assert_int_eq(ds->label(self, 7, &y, &err), MLTK_ERR_INVALID);
        free(err);
    }
    ds->close(self);
}
END_TEST

START_TEST(test_test_split)
{
    const image_ref *g = ref("png_grey");
    char want[9000];

    put("tr/cat/1.png", g->data, g->size);
    put("tr/dog/1.png", g->data, g->size);
    put("te/cat/1.png", g->data, g->size);
    put("te/dog/1.png", g->data, g->size);
    put("te/dog/2.png", g->data, g->size);
    put("bad/cat/1.png", g->data, g->size);
    put("bad/cow/1.png", g->data, g->size);

    void *self = NULL;
    char *err = NULL;
    mltk_dataset_info info;
    ck_assert_int_eq(open_with(&self, "test", "tr", "te", 0, NULL, NULL, &err), MLTK_OK);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 3);
    ck_assert_int_eq(info.n_classes, 2);
    ds->close(self);

    snprintf(want, sizeof(want), "imagefolder: the class folders of %s/bad (2) differ "
             "from those of %s/tr (2): 'cow' where the training split has 'dog'", dir, dir);
    expect_open_error("test", "tr", "bad", 0, NULL, NULL, MLTK_ERR_DATA, want);
    expect_open_error("test", "tr", NULL, 0, NULL, NULL, MLTK_ERR_CONFIG,
                      "key 'test_path' is not set: the test split needs a folder of "
                      "class folders");
    put("tr2/x.png", g->data, g->size);
    snprintf(want, sizeof(want), "imagefolder: %s/tr2 holds no class folders (expected "
             "%s/tr2/CLASS/IMAGE.jpg)", dir, dir);
    expect_open_error("train", "tr2", NULL, 0, NULL, NULL, MLTK_ERR_DATA, want);
    put("tr3/a/x.txt", "x", 1);
    snprintf(want, sizeof(want), "imagefolder: the class folder %s/tr3/a holds no .jpg, "
             ".jpeg or .png file", dir);
    expect_open_error("train", "tr3", NULL, 0, NULL, NULL, MLTK_ERR_DATA, want);
    snprintf(want, sizeof(want), "imagefolder: cannot open the folder %s/none: %s", dir,
             strerror(ENOENT));
    expect_open_error("train", "none", NULL, 0, NULL, NULL, MLTK_ERR_DATA, want);
}
END_TEST

/* ---- bad files ------------------------------------------------------------ */

static const char html[] = "<!DOCTYPE html><html></html>\n";

/* a/0.png good; a/1.jpg a JPEG cut in its pixel data (the last 10 bytes
 * missing); a/2.png a PNG cut in half;
 * a/3.jpg empty; a/4.jpg a text file; a/5.jpg the first 10 bytes of a JPEG */
static void put_bad(void)
{
    const image_ref *j = ref("jpeg_rgb"), *p = ref("png_rgb");
    put("bad/a/0.png", p->data, p->size);
    put("bad/a/1.jpg", j->data, j->size - 10);
    put("bad/a/2.png", p->data, p->size / 2);
    put("bad/a/3.jpg", "", 0);
    put("bad/a/4.jpg", html, strlen(html));
    put("bad/a/5.jpg", j->data, 10);
}

START_TEST(test_bad_fail)
{
    const image_ref *j = ref("jpeg_rgb"), *p = ref("png_rgb");
    char want[9000];
    void *self;
    mltk_dataset_info info;
    uint8_t x[3 * 35];
    int32_t y;
    char *err = NULL;

    put_bad();
    self = open_ok("bad", 0, NULL, NULL);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 6);
    ck_assert_int_eq(ds->get(self, 0, x, &y, &err), MLTK_OK);
    snprintf(want, sizeof(want), "%s/bad/a/1.jpg: corrupt JPEG at byte %zu: Premature "
             "end of JPEG file", dir, j->size - 10);
    expect_get_error(self, 1, want);
    snprintf(want, sizeof(want), "%s/bad/a/2.png: corrupt PNG at byte %zu: the file "
             "ends early", dir, p->size / 2);
    expect_get_error(self, 2, want);
    snprintf(want, sizeof(want), "%s/bad/a/3.jpg: empty file (expected a JPEG or PNG "
             "image)", dir);
    expect_get_error(self, 3, want);
    snprintf(want, sizeof(want), "%s/bad/a/4.jpg: not a JPEG or PNG image (the file "
             "starts with 3c 21 44 4f 43 54 59 50)", dir);
    expect_get_error(self, 4, want);
    snprintf(want, sizeof(want), "%s/bad/a/5.jpg: corrupt JPEG at byte 10: Premature "
             "end of JPEG file", dir);
    expect_get_error(self, 5, want);
    /* the label needs no decoding */
    ck_assert_int_eq(ds->label(self, 4, &y, &err), MLTK_OK);
    ck_assert_int_eq(y, 0);
    /* read (float32) stops at the first bad sample with its message */
    {
        float xf[6 * 3 * 35];
        int32_t yf[6];
        ck_assert_int_eq(ds->read(self, 0, 1, xf, yf, &err), MLTK_OK);
        for (int i = 0; i < 3 * 35; i++)
            ck_assert((double)xf[i] == (double)((float)p->c3[i] * (float)(1.0 / 255.0)));
        ck_assert_int_eq(ds->read(self, 0, 6, xf, yf, &err), MLTK_ERR_DATA);
        ck_assert_ptr_nonnull(strstr(err, "/bad/a/1.jpg: corrupt JPEG"));
        free(err);
    }
    ds->close(self);

    /* the first file decides the shape, so a bad first file fails open */
    put("bad0/a/0.jpg", "", 0);
    put("bad0/a/1.png", p->data, p->size);
    snprintf(want, sizeof(want), "%s/bad0/a/0.jpg: empty file (expected a JPEG or PNG "
             "image)", dir);
    expect_open_error("train", "bad0", NULL, 0, NULL, NULL, MLTK_ERR_DATA, want);
}
END_TEST

START_TEST(test_bad_skip)
{
    const image_ref *j = ref("jpeg_rgb");
    const char *ek[1] = { "on_error" }, *ev[1] = { "skip" };
    char want[9000];
    void *self;
    mltk_dataset_info info;

    put_bad();
    /* the empty file, the text file and the 10-byte JPEG are left out at
     * open (their headers cannot be read); the two cut in their pixel data
     * have good headers, stay, and fail in get() */
    self = open_ok("bad", 1, ek, ev);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 3);
    snprintf(want, sizeof(want), "%s/bad/a/1.jpg: corrupt JPEG at byte %zu: Premature "
             "end of JPEG file", dir, j->size - 10);
    expect_get_error(self, 1, want);
    ds->close(self);

    /* nothing left */
    put("none/a/0.jpg", "", 0);
    put("none/b/0.png", html, strlen(html));
    snprintf(want, sizeof(want), "imagefolder: %s/none: no readable image (2 skipped)", dir);
    expect_open_error("train", "none", NULL, 1, ek, ev, MLTK_ERR_DATA, want);
}
END_TEST

START_TEST(test_size_mismatch)
{
    const image_ref *small = ref("png_rgb"), *big = ref("resize_down");
    const char *ek[1] = { "resize" }, *ev[1] = { "4" };
    char want[9000];
    void *self;

    put("sz/a/0.png", small->data, small->size);   /* 7x5 */
    put("sz/a/1.png", big->data, big->size);       /* 9x6 */
    self = open_ok("sz", 0, NULL, NULL);
    snprintf(want, sizeof(want), "%s/sz/a/1.png: 9x6, but the first image %s/sz/a/0.png "
             "is 7x5: every image must have the same size (or set resize and crop)",
             dir, dir);
    expect_get_error(self, 1, want);
    ds->close(self);
    /* resized: 7x5 -> 5x4 (int(4 * 7 / 5)), 9x6 -> 6x4 */
    self = open_ok("sz", 1, ek, ev);
    snprintf(want, sizeof(want), "%s/sz/a/1.png: 9x6 (resized to 6x4), but the first "
             "image %s/sz/a/0.png gave 5x4: images of other proportions need crop",
             dir, dir);
    expect_get_error(self, 1, want);
    ds->close(self);
}
END_TEST

/* ---- get() from several threads at once ---------------------------------- */

enum { MT_FILES = 24, MT_THREADS = 4, MT_ROUNDS = 3 };

typedef struct mt_arg {
    void          *self;
    const uint8_t *want;   /* (MT_FILES, 3, 3, 3) from one thread */
    int            bad;
} mt_arg;

static void *mt_run(void *p)
{
    mt_arg *a = p;

    for (int r = 0; r < MT_ROUNDS; r++)
        for (int i = 0; i < MT_FILES; i++) {
            uint8_t x[27];
            int32_t y;
            char *err = NULL;
            int k = (i * 7 + r * 5) % MT_FILES;   /* another order per round */
            if (ds->get(a->self, k, x, &y, &err) != MLTK_OK ||
                memcmp(x, a->want + 27 * k, 27) != 0 || y != k / 8)
                a->bad++;
            free(err);
        }
    return NULL;
}

START_TEST(test_threads)
{
    static const char *const kinds[] = { "jpeg_rgb", "png_palette", "png_interlaced",
                                         "jpeg_cmyk", "resize_down", "png_rgb" };
    const char *ek[2] = { "crop", "resize" }, *ev[2] = { "3", "5" };
    uint8_t want[MT_FILES * 27];
    pthread_t th[MT_THREADS];
    mt_arg args[MT_THREADS];
    void *self;

    for (int i = 0; i < MT_FILES; i++) {
        const image_ref *e = ref(kinds[i % 6]);
        char rel[64];
        /* class i % 3; names sort in i order within each class */
        snprintf(rel, sizeof(rel), "mt/c%d/%02d.%s", i % 3, i,
                 strstr(e->file, ".png") ? "png" : "jpg");
        put(rel, e->data, e->size);
    }
    self = open_ok("mt", 2, ek, ev);
    /* 8 files per class: sample k has label k / 8; its pixels from one
     * thread first */
    for (int k = 0; k < MT_FILES; k++) {
        int32_t y;
        char *err = NULL;
        ck_assert_int_eq(ds->get(self, k, want + 27 * k, &y, &err), MLTK_OK);
        ck_assert_int_eq(y, k / 8);
    }
    for (int t = 0; t < MT_THREADS; t++) {
        args[t] = (mt_arg){ self, want, 0 };
        ck_assert_int_eq(pthread_create(&th[t], NULL, mt_run, &args[t]), 0);
    }
    for (int t = 0; t < MT_THREADS; t++) {
        ck_assert_int_eq(pthread_join(th[t], NULL), 0);
        ck_assert_msg(args[t].bad == 0, "thread %d: %d samples differ", t, args[t].bad);
    }
    ds->close(self);
}
END_TEST

static Suite *image_suite(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("imagefolder");

    tcase_add_checked_fixture(tc, fixture_open, fixture_close);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_refs);
    tcase_add_test(tc, test_decode_direct);
    tcase_add_test(tc, test_resize_sizes);
    tcase_add_test(tc, test_folder_rules);
    tcase_add_test(tc, test_test_split);
    tcase_add_test(tc, test_bad_fail);
    tcase_add_test(tc, test_bad_skip);
    tcase_add_test(tc, test_size_mismatch);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(image_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
