/* check_plot.c - tests of core/cli/plot.c, the command's plots.
 *
 * What this is: the metrics.jsonl reader (values, nulls, skipped keys,
 * errors naming file:line), the 1-2-5 tick chooser, and both plots: each
 * PNG is read back with cairo and checked for its signature, its size,
 * ink in the plot area and the colours of the runs and of the heat map.
 * What this is not: a check of how the images look; that was judged by
 * eye when the layouts were made.
 */
#include "config.h"

#include <cairo.h>
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "plot.h"
#include "testutil.h"

/* ---- sanitizers ------------------------------------------------------------- */

/* fontconfig, under cairo's toy text API, keeps its configuration and
 * font caches for the life of the process and never frees them; under
 * --enable-sanitizers LeakSanitizer would report them at exit.  They are
 * not ours to free (FcFini while cairo still holds fonts aborts), so they
 * are suppressed; any other leak is still reported.  LeakSanitizer looks
 * this function up by name (hence visible despite -fvisibility=hidden);
 * without sanitizers nothing calls it. */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

__attribute__((visibility("default"))) const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
    return "print_suppressions=0";
}

/* ---- fixtures ----------------------------------------------------------------- */

/* run "alpha": eight clean epochs */
static const char alpha_log[] =
    "{\"epoch\": 1, \"train_loss\": 2.10, \"val_loss\": 1.90, \"val_acc\": 0.42, "
    "\"samples_per_s\": 1000, \"lr\": 0.001, \"wall_s\": 3.2}\n"
    "{\"epoch\": 2, \"train_loss\": 1.40, \"val_loss\": 1.30, \"val_acc\": 0.61, "
    "\"samples_per_s\": 1010, \"lr\": 0.001, \"wall_s\": 6.3}\n"
    "{\"epoch\": 3, \"train_loss\": 1.00, \"val_loss\": 1.05, \"val_acc\": 0.70, "
    "\"samples_per_s\": 1005, \"lr\": 0.001, \"wall_s\": 9.5}\n"
    "{\"epoch\": 4, \"train_loss\": 0.80, \"val_loss\": 0.92, \"val_acc\": 0.75, "
    "\"samples_per_s\": 998, \"lr\": 0.001, \"wall_s\": 12.6}\n"
    "{\"epoch\": 5, \"train_loss\": 0.66, \"val_loss\": 0.85, \"val_acc\": 0.78, "
    "\"samples_per_s\": 1002, \"lr\": 0.0005, \"wall_s\": 15.8}\n"
    "{\"epoch\": 6, \"train_loss\": 0.55, \"val_loss\": 0.82, \"val_acc\": 0.80, "
    "\"samples_per_s\": 1001, \"lr\": 0.0005, \"wall_s\": 19.0}\n"
    "{\"epoch\": 7, \"train_loss\": 0.47, \"val_loss\": 0.81, \"val_acc\": 0.81, "
    "\"samples_per_s\": 999, \"lr\": 0.00025, \"wall_s\": 22.1}\n"
    "{\"epoch\": 8, \"train_loss\": 0.41, \"val_loss\": 0.82, \"val_acc\": 0.815, "
    "\"samples_per_s\": 1000, \"lr\": 0.00025, \"wall_s\": 25.3}\n";

/* run "beta": nulls, a key order of its own, strings, a nested value,
 * NaN as Python writes it, a blank line, CRLF, and no "epoch" on the
 * last line (it becomes record 6) */
static const char beta_log[] =
    "{\"epoch\": 1, \"train_loss\": 2.30, \"val_loss\": null, \"val_acc\": null}\n"
    "{\"val_acc\": 0.50, \"epoch\": 2, \"train_loss\": 1.70, \"val_loss\": 1.60, "
    "\"note\": \"lr \\\"warm\\\" \\u00e9\", \"cfg\": {\"a\": [1, 2.5e-1, {\"b\": null}]}}\n"
    "\n"
    "{\"epoch\": 3, \"train_loss\": 1.30, \"val_loss\": NaN, \"val_acc\": 0.60, "
    "\"ok\": true}\r\n"
    "{\"epoch\": 4, \"train_loss\": 1.10, \"val_loss\": 1.20, \"val_acc\": 0.66}\n"
    "{\"epoch\": 5, \"train_loss\": 0.95, \"val_loss\": 1.10, \"val_acc\": 0.70, "
    "\"train_acc\": 0.72}\n"
    "{\"train_loss\": 0.85, \"val_loss\": 1.02, \"val_acc\": 0.73, \"train_acc\": 0.76}\n";

typedef struct runs {
    char *dir;          /* the temporary directory */
    char *alpha, *beta; /* run directories in it */
} runs;

static void runs_make(runs *r)
{
    r->dir = tu_tmpdir();
    r->alpha = tu_fmt("%s/alpha", r->dir);
    r->beta = tu_fmt("%s/beta", r->dir);
    ck_assert_int_eq(mkdir(r->alpha, 0777), 0);
    ck_assert_int_eq(mkdir(r->beta, 0777), 0);
    free(tu_write(r->alpha, "metrics.jsonl", alpha_log));
    free(tu_write(r->beta, "metrics.jsonl", beta_log));
}

static void runs_free(runs *r)
{
    tu_rmtree(r->dir);
    free(r->dir);
    free(r->alpha);
    free(r->beta);
}

static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* ---- reading PNGs back ------------------------------------------------------- */

typedef struct image {
    cairo_surface_t *s;
    int              w, h, stride;
    unsigned char   *data;
} image;

/* Check the PNG signature, then decode the file. */
static void image_load(image *im, const char *path)
{
    static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    unsigned char head[8] = { 0 };
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s was not written", path);
    ck_assert_int_eq(fread(head, 1, 8, f), 8);
    fclose(f);
    ck_assert_int_eq(memcmp(head, sig, 8), 0);
    im->s = cairo_image_surface_create_from_png(path);
    ck_assert_int_eq(cairo_surface_status(im->s), CAIRO_STATUS_SUCCESS);
    cairo_format_t fmt = cairo_image_surface_get_format(im->s);
    ck_assert(fmt == CAIRO_FORMAT_RGB24 || fmt == CAIRO_FORMAT_ARGB32);
    im->w = cairo_image_surface_get_width(im->s);
    im->h = cairo_image_surface_get_height(im->s);
    im->stride = cairo_image_surface_get_stride(im->s);
    im->data = cairo_image_surface_get_data(im->s);
}

static void image_free(image *im)
{
    cairo_surface_destroy(im->s);
}

/* 0xRRGGBB at (x, y) */
static uint32_t pixel(const image *im, int x, int y)
{
    uint32_t v;
    memcpy(&v, im->data + (size_t)y * (size_t)im->stride + (size_t)x * 4, 4);
    return v & 0xffffff;
}

static int count_colour(const image *im, int x0, int y0, int x1, int y1, uint32_t rgb)
{
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            n += pixel(im, x, y) == rgb;
    return n;
}

static int count_not_white(const image *im, int x0, int y0, int x1, int y1)
{
    return (x1 - x0) * (y1 - y0) - count_colour(im, x0, y0, x1, y1, 0xffffff);
}

/* the first two colours of the palette (matplotlib's tab10) */
#define RUN1 0x1f77b4u
#define RUN2 0xff7f0eu

/* The curve plot's panels, inside their frames (layout of plot.c: legend
 * 220 px on the right, each panel 84 px from its left edge, top 84,
 * bottom 64 px above the image's). */
#define LOSS_X0 86
#define LOSS_X1 508
#define ACC_X0 616
#define ACC_X1 1038
#define PANEL_Y0 86
#define PANEL_Y1 534

/* ---- the log reader ------------------------------------------------------------- */

START_TEST(test_read_alpha)
{
    runs r;
    runs_make(&r);
    mltk_run_log log;
    char *err = NULL;
    ck_assert_int_eq(mltk_run_log_read(&log, r.alpha, &err), 0);
    ck_assert_str_eq(log.name, "alpha");
    ck_assert_int_eq(log.n, 8);
    ck_assert(log.epoch[0] == 1 && log.epoch[7] == 8);
    ck_assert(log.train_loss[0] == 2.10 && log.val_loss[3] == 0.92 && log.val_acc[7] == 0.815);
    for (int i = 0; i < 8; i++)
        ck_assert(isnan(log.train_acc[i]));
    mltk_run_log_free(&log);
    /* a trailing slash, and the .jsonl file named directly */
    char *slash = tu_fmt("%s/", r.alpha);
    ck_assert_int_eq(mltk_run_log_read(&log, slash, &err), 0);
    ck_assert_str_eq(log.name, "alpha");
    mltk_run_log_free(&log);
    free(slash);
    char *file = tu_fmt("%s/metrics.jsonl", r.alpha);
    ck_assert_int_eq(mltk_run_log_read(&log, file, &err), 0);
    ck_assert_str_eq(log.name, "alpha");
    ck_assert_int_eq(log.n, 8);
    mltk_run_log_free(&log);
    free(file);
    file = tu_write(r.dir, "gamma.jsonl", "{\"epoch\": 1, \"val_acc\": 0.5}\n");
    ck_assert_int_eq(mltk_run_log_read(&log, file, &err), 0);
    ck_assert_str_eq(log.name, "gamma");
    mltk_run_log_free(&log);
    free(file);
    runs_free(&r);
}
END_TEST

START_TEST(test_read_beta)
{
    runs r;
    runs_make(&r);
    mltk_run_log log;
    char *err = NULL;
    ck_assert_int_eq(mltk_run_log_read(&log, r.beta, &err), 0);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(log.n, 6);   /* the blank line is no record */
    static const double epoch[6] = { 1, 2, 3, 4, 5, 6 };
    static const double train_loss[6] = { 2.30, 1.70, 1.30, 1.10, 0.95, 0.85 };
    for (int i = 0; i < 6; i++) {
        ck_assert(log.epoch[i] == epoch[i]);
        ck_assert(log.train_loss[i] == train_loss[i]);
    }
    ck_assert(isnan(log.val_loss[0]) && isnan(log.val_acc[0]));   /* null */
    ck_assert(log.val_acc[1] == 0.50 && log.val_loss[1] == 1.60);  /* after a nested value */
    ck_assert(isnan(log.val_loss[2]) && log.val_acc[2] == 0.60);   /* NaN */
    ck_assert(isnan(log.train_acc[3]) && log.train_acc[4] == 0.72 && log.train_acc[5] == 0.76);
    mltk_run_log_free(&log);
    runs_free(&r);
}
END_TEST

static void expect_log_error(const char *text, const char *msg)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "metrics.jsonl", text);
    mltk_run_log log;
    char *err = NULL;
    ck_assert_int_eq(mltk_run_log_read(&log, dir, &err), MLTK_ERR_DATA);
    char *want = tu_fmt("%s%s", path, msg);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(log.epoch);
    free(want);
    free(err);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

START_TEST(test_read_errors)
{
    expect_log_error("{\"epoch\": 1}\n{\"epoch\": 2, \"val_loss\": }\n{\"epoch\": 3}\n",
                     ":2: unexpected token near '}' (column 26)");
    expect_log_error("{\"epoch\": 1}\n\n{\"epoch\" 2}\n",
                     ":3: ':' expected near '2' (column 10)");
    expect_log_error("{\"epoch\": 1, \"val_acc\": 0.5\n",
                     ":1: '}' expected near end of file (column 27)");
    expect_log_error("epoch=1\n", ":1: '[' or '{' expected near 'epoch' (column 5)");
    expect_log_error("{\"epoch\": 1} x\n", ":1: end of file expected near 'x' (column 14)");
    expect_log_error("{\"epoch\": 1.}\n", ":1: invalid token near '1.' (column 12)");
    expect_log_error("{\"a\": \"x\\q\"}\n", ":1: invalid escape near '\"x\\q' (column 10)");
    expect_log_error("{\"a\": [1, 2}\n", ":1: ']' expected near '}' (column 12)");
    expect_log_error("[1]\n", ":1: expected a JSON object, found an array (column 1)");
    /* NaN blanked outside strings only: the column still counts the line */
    expect_log_error("{\"a\": \"NaN\", \"b\": NaN, \"c\": NaN x}\n",
                     ":1: '}' expected near 'x' (column 33)");
}
END_TEST

/* A last line without its newline that does not parse is a write in
 * progress: skipped, with a warning. */
START_TEST(test_read_partial_last_line)
{
    char *dir = tu_tmpdir();
    free(tu_write(dir, "metrics.jsonl", "{\"epoch\": 1, \"val_acc\": 0.5}\n"
                                        "{\"epoch\": 2, \"val_acc\": 0.6}\n{\"epoch\": 3, \"va"));
    mltk_run_log log;
    char *err = NULL;
    tu_capture c;
    tu_capture_begin(&c);
    int rc = mltk_run_log_read(&log, dir, &err);
    char *out = tu_capture_end(&c);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(log.n, 2);
    ck_assert(log.val_acc[1] == 0.6);
    TU_ASSERT_CONTAINS(out, "metrics.jsonl:3: premature end of input near '\"va' (column 16)");
    TU_ASSERT_CONTAINS(out, "taken as a write in progress and skipped");
    free(out);
    mltk_run_log_free(&log);
    /* a complete last line without a newline is read */
    free(tu_write(dir, "metrics.jsonl", "{\"epoch\": 1, \"val_acc\": 0.5}\n{\"epoch\": 2}"));
    ck_assert_int_eq(mltk_run_log_read(&log, dir, &err), 0);
    ck_assert_int_eq(log.n, 2);
    mltk_run_log_free(&log);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_read_missing)
{
    char *dir = tu_tmpdir();
    char *none = tu_fmt("%s/nope", dir);
    mltk_run_log log;
    char *err = NULL;
    ck_assert_int_eq(mltk_run_log_read(&log, none, &err), MLTK_ERR_IO);
    char *want = tu_fmt("%s: no such run directory or log: No such file or directory", none);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;
    /* a directory without the log */
    ck_assert_int_eq(mltk_run_log_read(&log, dir, &err), MLTK_ERR_IO);
    want = tu_fmt("%s: cannot read metrics.jsonl: No such file or directory; is this a run "
                  "directory (one with [log] jsonl = metrics.jsonl)?", dir);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    free(none);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- ticks ------------------------------------------------------------------------- */

START_TEST(test_ticks)
{
    mltk_ticks t;
    /* (0.92 - 0.13)/5 = 0.158 -> 0.2: 0, 0.2, ..., 1.0 */
    mltk_plot_ticks(&t, 0.13, 0.92, 6, 0);
    ck_assert_double_eq_tol(t.step, 0.2, 1e-15);
    ck_assert_double_eq_tol(t.lo, 0.0, 1e-15);
    ck_assert_double_eq_tol(t.hi, 1.0, 1e-12);
    ck_assert_int_eq(t.n, 6);
    ck_assert_int_eq(t.decimals, 1);
    /* (2.45 - 2.2)/5 = 0.05 exactly a step: 2.20 .. 2.45 in 6 ticks */
    mltk_plot_ticks(&t, 2.2, 2.45, 6, 0);
    ck_assert_double_eq_tol(t.step, 0.05, 1e-15);
    ck_assert_double_eq_tol(t.lo, 2.2, 1e-12);
    ck_assert_double_eq_tol(t.hi, 2.45, 1e-12);
    ck_assert_int_eq(t.n, 6);
    ck_assert_int_eq(t.decimals, 2);
    /* epochs 1..8 with at most 8 ticks: 7/7 = 1 */
    mltk_plot_ticks(&t, 1, 8, 8, 1);
    ck_assert(t.step == 1 && t.lo == 1 && t.hi == 8 && t.n == 8 && t.decimals == 0);
    /* epochs 1..30: 29/7 = 4.1 -> 5: 0, 5, ..., 30 */
    mltk_plot_ticks(&t, 1, 30, 8, 1);
    ck_assert(t.step == 5 && t.lo == 0 && t.hi == 30 && t.n == 7);
    /* integer steps never go below 1: epochs 1..2 */
    mltk_plot_ticks(&t, 1, 2, 8, 1);
    ck_assert(t.step == 1 && t.lo == 1 && t.hi == 2 && t.n == 2);
    /* one value: widened by 10% each way: [0.27, 0.33] -> step 0.01 */
    mltk_plot_ticks(&t, 0.3, 0.3, 6, 0);
    ck_assert_double_eq_tol(t.step, 0.02, 1e-15);
    ck_assert_double_eq_tol(t.lo, 0.26, 1e-12);
    ck_assert_double_eq_tol(t.hi, 0.34, 1e-12);
    ck_assert_int_eq(t.n, 5);
    /* zero: [-1, 1] */
    mltk_plot_ticks(&t, 0, 0, 6, 0);
    ck_assert(t.lo <= -1 && t.hi >= 1);
    ck_assert_double_eq_tol(t.step, 0.5, 1e-15);
    /* large losses: (1234 - 0)/5 = 246.8 -> 500 */
    mltk_plot_ticks(&t, 0, 1234, 6, 0);
    ck_assert(t.step == 500 && t.lo == 0 && t.hi == 1500 && t.n == 4 && t.decimals == 0);
}
END_TEST

/* ---- curves ------------------------------------------------------------------------ */

START_TEST(test_curves)
{
    runs r;
    runs_make(&r);
    char *png = tu_fmt("%s/curves.png", r.dir);
    const char *dirs[2] = { r.alpha, r.beta };
    char *err = NULL;
    ck_assert_int_eq(mltk_plot_curves(png, dirs, 2, &err), 0);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(count_tmp_files(r.dir), 0);
    image im;
    image_load(&im, png);
    ck_assert_int_eq(im.w, MLTK_PLOT_CURVES_WIDTH);
    ck_assert_int_eq(im.w, 1280);
    ck_assert_int_eq(im.h, MLTK_PLOT_CURVES_HEIGHT);
    ck_assert_int_eq(im.h, 600);
    /* ink in both panels, and both runs' colours in each */
    ck_assert_int_gt(count_not_white(&im, LOSS_X0, PANEL_Y0, LOSS_X1, PANEL_Y1), 2000);
    ck_assert_int_gt(count_not_white(&im, ACC_X0, PANEL_Y0, ACC_X1, PANEL_Y1), 2000);
    ck_assert_int_gt(count_colour(&im, LOSS_X0, PANEL_Y0, LOSS_X1, PANEL_Y1, RUN1), 100);
    ck_assert_int_gt(count_colour(&im, LOSS_X0, PANEL_Y0, LOSS_X1, PANEL_Y1, RUN2), 100);
    ck_assert_int_gt(count_colour(&im, ACC_X0, PANEL_Y0, ACC_X1, PANEL_Y1, RUN1), 100);
    ck_assert_int_gt(count_colour(&im, ACC_X0, PANEL_Y0, ACC_X1, PANEL_Y1, RUN2), 100);
    /* the legend shows both colours too */
    ck_assert_int_gt(count_colour(&im, 1060, 0, 1280, 600, RUN1), 20);
    ck_assert_int_gt(count_colour(&im, 1060, 0, 1280, 600, RUN2), 20);
    /* the background outside everything is white */
    ck_assert_uint_eq(pixel(&im, 2, 2), 0xffffff);
    ck_assert_uint_eq(pixel(&im, 1277, 597), 0xffffff);
    /* alpha's first train_loss point (epoch 1, 2.10) is a dot of radius 4.
     * Both runs' losses span 0.41 .. 2.30: (2.30 - 0.41)/5 = 0.378 -> step
     * 0.5, axis 0 .. 2.5.  Ticks sit 10 px inside the frame (84 .. 536), so
     * y = 536 - 10 - 2.1/2.5 * (452 - 20) = 163.1; epoch 1 is the first
     * tick of 1 .. 8, x = 84 + 10 = 94. */
    ck_assert_uint_eq(pixel(&im, 94, 163), RUN1);
    image_free(&im);

    /* one run: the accuracy panel of a log without accuracy stays empty */
    char *noacc = tu_fmt("%s/noacc", r.dir);
    ck_assert_int_eq(mkdir(noacc, 0777), 0);
    free(tu_write(noacc, "metrics.jsonl",
                  "{\"epoch\": 1, \"train_loss\": 1.0}\n"
                  "{\"epoch\": 2, \"train_loss\": 0.5, \"val_loss\": 0.7}\n"));
    const char *one[1] = { noacc };
    ck_assert_int_eq(mltk_plot_curves(png, one, 1, &err), 0);
    image_load(&im, png);
    ck_assert_int_gt(count_colour(&im, LOSS_X0, PANEL_Y0, LOSS_X1, PANEL_Y1, RUN1), 50);
    ck_assert_int_eq(count_colour(&im, ACC_X0, PANEL_Y0, ACC_X1, PANEL_Y1, RUN1), 0);
    ck_assert_int_eq(count_colour(&im, LOSS_X0, PANEL_Y0, LOSS_X1, PANEL_Y1, RUN2), 0);
    image_free(&im);
    free(noacc);
    free(png);
    runs_free(&r);
}
END_TEST

START_TEST(test_curves_errors)
{
    runs r;
    runs_make(&r);
    char *png = tu_fmt("%s/curves.png", r.dir);
    char *err = NULL;
    /* a malformed line in the second run: no image, no temporary file */
    free(tu_write(r.beta, "metrics.jsonl", "{\"epoch\": 1, \"val_acc\": 0.5}\n"
                                           "{\"epoch\": 2, \"val_acc\": 0.6}\n"
                                           "{\"epoch\": 3, \"val_acc\": .7}\n"));
    const char *dirs[2] = { r.alpha, r.beta };
    ck_assert_int_eq(mltk_plot_curves(png, dirs, 2, &err), MLTK_ERR_DATA);
    char *want = tu_fmt("%s/metrics.jsonl:3: invalid token near '.' (column 25)", r.beta);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;
    ck_assert_int_ne(access(png, F_OK), 0);
    ck_assert_int_eq(count_tmp_files(r.dir), 0);
    /* a missing run */
    char *none = tu_fmt("%s/missing", r.dir);
    dirs[1] = none;
    ck_assert_int_eq(mltk_plot_curves(png, dirs, 2, &err), MLTK_ERR_IO);
    TU_ASSERT_CONTAINS(err, none);
    free(err);
    err = NULL;
    free(none);
    /* an unwritable destination */
    char *bad = tu_fmt("%s/no/such/dir/c.png", r.dir);
    ck_assert_int_eq(mltk_plot_curves(bad, dirs, 1, &err), MLTK_ERR_IO);
    TU_ASSERT_CONTAINS(err, bad);
    free(err);
    err = NULL;
    free(bad);
    ck_assert_int_eq(mltk_plot_curves(png, dirs, 0, &err), MLTK_ERR_INVALID);
    free(err);
    free(png);
    runs_free(&r);
}
END_TEST

/* ---- the confusion plot ------------------------------------------------------------ */

/* 3 classes: labels and predictions giving the matrix
 *   [ 5 1 0 ]
 *   [ 0 3 0 ]
 *   [ 2 1 0 ]   (class 2 never predicted; the largest count is 5) */
static void write_example_csv(const char *path)
{
    static const int32_t pred[12] = { 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1 };
    static const int32_t label[12] = { 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2 };
    float logits[12 * 3];
    for (int r = 0; r < 12; r++)
        for (int c = 0; c < 3; c++)
            logits[r * 3 + c] = c == pred[r] ? 1.0f : 0.0f;
    mltk_metrics *m = NULL;
    ck_assert_int_eq(mltk_metrics_create(&m, MLTK_METRICS_CLASSIFICATION, 3, 1, NULL), 0);
    ck_assert_int_eq(mltk_metrics_add_class(m, logits, label, 12, NULL), 0);
    static const char *const names[3] = { "airplane", "automobile", "bird" };
    ck_assert_int_eq(mltk_metrics_write_confusion_csv(path, m, names, NULL), 0);
    mltk_metrics_destroy(m);
}

/* Layout of plot.c: the matrix starts 210 px from the left and 72 from the
 * top; a cell is min(120, 720/n) px. */
#define CM_X0 210
#define CM_Y0 72

START_TEST(test_confusion_plot)
{
    char *dir = tu_tmpdir();
    char *csv = tu_fmt("%s/confusion.csv", dir);
    char *png = tu_fmt("%s/confusion.png", dir);
    write_example_csv(csv);
    char *err = NULL;
    ck_assert_int_eq(mltk_plot_confusion(png, csv, &err), 0);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(count_tmp_files(dir), 0);
    int w, h;
    mltk_plot_confusion_size(3, &w, &h);
    /* cell 120 (720/3 = 240, capped), side 360: 210 + 360 + 130 by
     * 72 + 360 + 130 */
    ck_assert_int_eq(w, 700);
    ck_assert_int_eq(h, 562);
    image im;
    image_load(&im, png);
    ck_assert_int_eq(im.w, 700);
    ck_assert_int_eq(im.h, 562);
    /* the corner of each cell (away from its centred count): count 5 is
     * the darkest blue (8, 48, 107), 0 the lightest (247, 251, 255), and
     * 3 lies between them */
    ck_assert_uint_eq(pixel(&im, CM_X0 + 6, CM_Y0 + 6), 0x08306bu);
    ck_assert_uint_eq(pixel(&im, CM_X0 + 240 + 6, CM_Y0 + 6), 0xf7fbffu);
    uint32_t mid = pixel(&im, CM_X0 + 120 + 6, CM_Y0 + 120 + 6);
    ck_assert_uint_ne(mid, 0x08306bu);
    ck_assert_uint_ne(mid, 0xf7fbffu);
    ck_assert_uint_lt(mid & 0xff0000, 0xf70000u);   /* darker red channel than white */
    /* the counts are written: white ink in the dark cell's middle, dark
     * ink in the light cells' middles */
    ck_assert_int_gt(count_colour(&im, CM_X0 + 40, CM_Y0 + 40, CM_X0 + 80, CM_Y0 + 80,
                                  0xffffff), 10);
    ck_assert_int_gt(count_not_white(&im, CM_X0 + 40, CM_Y0 + 240 + 40, CM_X0 + 80,
                                     CM_Y0 + 240 + 80), 10);
    /* labels to the left of the matrix and below it */
    ck_assert_int_gt(count_not_white(&im, 40, CM_Y0, CM_X0 - 2, CM_Y0 + 360), 200);
    ck_assert_int_gt(count_not_white(&im, CM_X0, CM_Y0 + 362, CM_X0 + 360, 562), 200);
    image_free(&im);

    /* malformed CSV: file:line, no image */
    char *bad = tu_write(dir, "bad.csv", "true\\predicted,a,b\na,1,2\nb,3,4,5\n");
    char *png2 = tu_fmt("%s/bad.png", dir);
    ck_assert_int_eq(mltk_plot_confusion(png2, bad, &err), MLTK_ERR_DATA);
    char *want = tu_fmt("%s:3: 4 fields, expected 3 (a name and 2 counts)", bad);
    ck_assert_str_eq(err, want);
    ck_assert_int_ne(access(png2, F_OK), 0);
    free(want);
    free(err);
    err = NULL;
    char *none = tu_fmt("%s/none.csv", dir);
    ck_assert_int_eq(mltk_plot_confusion(png2, none, &err), MLTK_ERR_IO);
    TU_ASSERT_CONTAINS(err, none);
    free(err);
    free(none);
    free(png2);
    free(bad);
    free(csv);
    free(png);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Many classes: the cells shrink, the image stays bounded, labels thin
 * out; the size follows the formula. */
START_TEST(test_confusion_many)
{
    enum { N = 100 };
    char *dir = tu_tmpdir();
    char *csv = tu_fmt("%s/c.csv", dir);
    char *png = tu_fmt("%s/c.png", dir);
    size_t cap = 64 * (N + 1) * (N + 1);
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    size_t len = 0;
    len += (size_t)snprintf(text + len, cap - len, "true\\predicted");
    for (int j = 0; j < N; j++)
        len += (size_t)snprintf(text + len, cap - len, ",class_%d", j);
    len += (size_t)snprintf(text + len, cap - len, "\n");
    for (int i = 0; i < N; i++) {
        len += (size_t)snprintf(text + len, cap - len, "class_%d", i);
        for (int j = 0; j < N; j++)
            len += (size_t)snprintf(text + len, cap - len, ",%d", i == j ? 50 : (i + j) % 3);
        len += (size_t)snprintf(text + len, cap - len, "\n");
    }
    free(tu_write(NULL, csv, text));
    free(text);
    char *err = NULL;
    ck_assert_int_eq(mltk_plot_confusion(png, csv, &err), 0);
    int w, h;
    mltk_plot_confusion_size(N, &w, &h);
    ck_assert_int_eq(w, 210 + 700 + 130);   /* cell 720/100 = 7 */
    ck_assert_int_eq(h, 72 + 700 + 130);
    image im;
    image_load(&im, png);
    ck_assert_int_eq(im.w, w);
    ck_assert_int_eq(im.h, h);
    /* the diagonal is darkest */
    ck_assert_uint_eq(pixel(&im, CM_X0 + 7 * 40 + 3, CM_Y0 + 7 * 40 + 3), 0x08306bu);
    image_free(&im);
    free(csv);
    free(png);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the suite ------------------------------------------------------------------------ */

static Suite *plot_suite(void)
{
    Suite *s = suite_create("plot");
    TCase *t = tcase_create("jsonl");
    tcase_add_test(t, test_read_alpha);
    tcase_add_test(t, test_read_beta);
    tcase_add_test(t, test_read_errors);
    tcase_add_test(t, test_read_partial_last_line);
    tcase_add_test(t, test_read_missing);
    suite_add_tcase(s, t);

    t = tcase_create("ticks");
    tcase_add_test(t, test_ticks);
    suite_add_tcase(s, t);

    t = tcase_create("images");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_curves);
    tcase_add_test(t, test_curves_errors);
    tcase_add_test(t, test_confusion_plot);
    tcase_add_test(t, test_confusion_many);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(plot_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
