/* check_csv.c - the csv dataset plugin: tables that parse, and every kind
 * of bad one.
 *
 * What this is: small CSV files are written into a fresh temporary
 * directory per test and opened through the plugin as the core would
 * (loaded by the registry, params built against its descriptor), then
 * read back with info, get, label and read: feature values, classes and
 * their names, regression targets, filled-in missing values, the checksum
 * (SHA-256 of the files read).  RFC 4180 quoting, headers or none,
 * targets and features by name or index, delimiters, the class mapping of
 * a test split (taken from the training file) are each checked; every
 * malformed file must fail with MLTK_ERR_DATA (or MLTK_ERR_CONFIG for a
 * column the file lacks) and exactly the expected message, which names
 * the file and line.
 *
 * What this is not: a test of the data pipeline (standardisation,
 * batching), which is the core's, nor of training on CSV files
 * (tests/test_csv_train.sh).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv.h"
#include "session.h"
#include "dsfixture.h"
#include "sha256.h"

/* ---- fixture: registry, plugin and a temporary directory ------------------ */

static void fixture_open(void)
{
    dsfix_open("csv", "check_csv");
}

static void fixture_close(void)
{
    dsfix_close();
}

/* ---- files and opening ---------------------------------------------------- */

static void write_file(const char *name, const char *text)
{
    write_bytes(name, text, strlen(text));
}

/* Open `split` of train/test with the key/value pairs kv (NULL-ended:
 * "target", "y", ..., NULL); returns open's status. */
static int open_csv(void **self, const char *split, const char *train, const char *test,
                    const char *const *kv, char **err)
{
    const char *keys[16], *vals[16];
    int n = 0, rc;
    mltk_params_t *p = NULL;

    keys[n] = "path";
    vals[n++] = dir;
    keys[n] = "train";
    vals[n++] = train;
    keys[n] = "test";
    vals[n++] = test ? test : train;
    for (int i = 0; kv && kv[i]; i += 2) {
        keys[n] = kv[i];
        vals[n++] = kv[i + 1];
    }
    *err = NULL;
    rc = mltk_params_build(&p, &desc, 1, n, keys, vals, NULL, NULL, 0, "data (csv)", err);
    ck_assert_msg(rc == MLTK_OK, "params: %s", *err ? *err : "?");
    *self = NULL;
    rc = ds->open(self, p, split, err);
    mltk_params_free(p);   /* open must not keep the params */
    return rc;
}

static void *must_open(const char *split, const char *train, const char *test,
                       const char *const *kv)
{
    void *self = NULL;
    char *err = NULL;
    int rc = open_csv(&self, split, train, test, kv, &err);

    ck_assert_msg(rc == MLTK_OK, "open %s: %s", split, err ? err : "?");
    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(self);
    return self;
}

/* Opening must fail with `status` and exactly the message `fmt`, in which
 * %s stands for the path of file `file`. */
static void expect_msg(const char *split, const char *train, const char *test,
                       const char *const *kv, int status, const char *file,
                       const char *fmt)
{
    void *self = NULL;
    char *err = NULL, want[8192];
    int rc = open_csv(&self, split, train, test, kv, &err);

    snprintf(want, sizeof(want), fmt, file ? path_of(file) : "");
    ck_assert_msg(rc == status, "status %d (%s), want %d; message: %s", rc,
                  mltk_status_str(rc), status, err ? err : "(none)");
    ck_assert_ptr_null(self);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, want);
    free(err);
}

static void expect_x(void *self, int64_t i, int n, const float *want)
{
    float x[16];
    int32_t y;
    float yv[4];
    mltk_dataset_info info;
    char *err = NULL;

    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.x_shape.ndim, 1);
    ck_assert_int_eq(info.x_shape.dim[0], n);
    ck_assert_int_eq(ds->get(self, i, x, info.target == MLTK_TARGET_CLASS ? (void *)&y
                                                                           : (void *)yv,
                             &err), MLTK_OK);
    for (int j = 0; j < n; j++)
        ck_assert_msg(x[j] == want[j] || (isnan(want[j]) && isnan(x[j])),
                      "sample %lld feature %d = %g, want %g", (long long)i, j, (double)x[j],
                      (double)want[j]);
}

static int32_t class_of(void *self, int64_t i)
{
    int32_t y = -1, y2 = -1;
    float x[16];
    char *err = NULL;

    ck_assert_int_eq(ds->label(self, i, &y, &err), MLTK_OK);
    ck_assert_int_eq(ds->get(self, i, x, &y2, &err), MLTK_OK);
    ck_assert_int_eq(y, y2);
    return y;
}

static void expect_names(void *self, int n, const char *const *names)
{
    mltk_dataset_info info;

    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.target, MLTK_TARGET_CLASS);
    ck_assert_int_eq(info.n_classes, n);
    ck_assert_ptr_nonnull(info.class_names);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(info.class_names[i], names[i]);
}

static void sha_hex(const char *a, const char *b, char out[65])
{
    sha256 s;

    sha256_init(&s);
    sha256_update(&s, a, strlen(a));
    if (b)
        sha256_update(&s, b, strlen(b));
    sha256_final(&s, out);
}

/* ---- good tables ---------------------------------------------------------- */

static const char basic[] =
    "a,b,y\n"
    "1,2,0\n"
    "3,4,1\n"
    "5.5,-6e-1,0\n";

START_TEST(test_basic)
{
    static const char *const kv[] = { "target", "y", NULL };
    static const char *const names[] = { "0", "1" };
    mltk_dataset_info info;
    char sum[65], *err = NULL;
    float x[6];
    int32_t y[3];
    void *self;

    write_file("basic.csv", basic);
    self = must_open("train", "basic.csv", NULL, kv);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 3);
    ck_assert_int_eq(info.x_dtype, MLTK_F32);
    ck_assert_int_eq(info.target, MLTK_TARGET_CLASS);
    ck_assert_int_eq(info.y_shape.ndim, 0);
    sha_hex(basic, NULL, sum);
    ck_assert_str_eq(info.checksum, sum);
    expect_names(self, 2, names);
    expect_x(self, 0, 2, (const float[]){ 1, 2 });
    expect_x(self, 2, 2, (const float[]){ 5.5f, -0.6f });
    ck_assert_int_eq(class_of(self, 0), 0);
    ck_assert_int_eq(class_of(self, 1), 1);
    ck_assert_int_eq(class_of(self, 2), 0);
    /* read, for the older core */
    ck_assert_int_eq(ds->read(self, 0, 3, x, y, &err), MLTK_OK);
    ck_assert(x[2] == 3 && x[3] == 4 && y[1] == 1);
    ck_assert_int_eq(ds->read(self, 2, 2, x, y, &err), MLTK_ERR_INVALID);
    ck_assert_str_eq(err, "csv: samples [2, 4) are outside the 3 of this split");
    free(err);
    err = NULL;
    ck_assert_int_eq(ds->get(self, 3, x, y, &err), MLTK_ERR_INVALID);
    free(err);
    ds->close(self);

    /* the test split: the checksum covers the training file, then the test file */
    write_file("t.csv", "a,b,y\n7,8,1\n");
    self = must_open("test", "basic.csv", "t.csv", kv);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 1);
    sha_hex(basic, "a,b,y\n7,8,1\n", sum);
    ck_assert_str_eq(info.checksum, sum);
    expect_names(self, 2, names);   /* the training file's classes */
    expect_x(self, 0, 2, (const float[]){ 7, 8 });
    ck_assert_int_eq(class_of(self, 0), 1);
    ds->close(self);
}
END_TEST

START_TEST(test_quotes)
{
    static const char *const kv[] = { "target", "the \"label\"", "features", "b,a", NULL };
    static const char *const names[] = { "cat", "dog, big" };
    void *self;

    /* quoted names and values, a doubled quote, a delimiter and a line
     * break inside quotes, spaces around fields, CR LF, a BOM, blank lines */
    write_file("q.csv",
               "\xef\xbb\xbf" "\"a\",\"b\nc\",\"the \"\"label\"\"\"\r\n"
               "\r\n"
               " \"1.5\" , 2 ,\"dog, big\"\r\n"
               "3,\"4\",cat\n"
               "\n");
    /* "b" is not a header name: features b,a must fail; the header names
     * the second column "b\nc" */
    expect_msg("train", "q.csv", NULL, kv, MLTK_ERR_CONFIG, "q.csv",
               "%s:1: key 'features': no column named 'b' in the header");
    static const char *const kv2[] = { "target", "the \"label\"", "features", "1,a", NULL };
    self = must_open("train", "q.csv", NULL, kv2);
    expect_names(self, 2, names);
    expect_x(self, 0, 2, (const float[]){ 2, 1.5f });
    expect_x(self, 1, 2, (const float[]){ 4, 3 });
    ck_assert_int_eq(class_of(self, 0), 1);
    ck_assert_int_eq(class_of(self, 1), 0);
    ds->close(self);

    /* an error after the quoted line break names the right line: 5 */
    write_file("q2.csv", "a,\"b\n\nc\",y\n1,2,3\n1,x,3\n");
    static const char *const kv3[] = { "target", "y", NULL };
    expect_msg("train", "q2.csv", NULL, kv3, MLTK_ERR_DATA, "q2.csv",
               "%s:5: column 'b??c': 'x' is not a number");
}
END_TEST

START_TEST(test_no_header)
{
    static const char *const kv[] = { "header", "false", "target", "0", "task", "regression",
                                      NULL };
    mltk_dataset_info info;
    float yv[2];
    float x[2];
    char *err = NULL;
    void *self;

    write_file("nh.csv", "10,1,2\n-20,3,4\n");
    self = must_open("train", "nh.csv", NULL, kv);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 2);
    ck_assert_int_eq(info.target, MLTK_TARGET_VALUE);
    ck_assert_int_eq(info.y_shape.ndim, 1);
    ck_assert_int_eq(info.y_shape.dim[0], 1);
    ck_assert_ptr_null(info.class_names);
    expect_x(self, 1, 2, (const float[]){ 3, 4 });
    ck_assert_int_eq(ds->get(self, 1, x, yv, &err), MLTK_OK);
    ck_assert(yv[0] == -20.0f);
    ck_assert_int_eq(ds->label(self, 0, (int32_t *)yv, &err), MLTK_ERR_INVALID);
    free(err);
    ds->close(self);

    /* two targets by index, in the order given, and a feature list */
    static const char *const kv2[] = { "header", "false", "target", "2, 0",
                                       "task", "regression", NULL };
    self = must_open("train", "nh.csv", NULL, kv2);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.y_shape.ndim, 1);
    ck_assert_int_eq(info.y_shape.dim[0], 2);
    expect_x(self, 0, 1, (const float[]){ 1 });
    err = NULL;
    ck_assert_int_eq(ds->get(self, 0, x, yv, &err), MLTK_OK);
    ck_assert(yv[0] == 2.0f && yv[1] == 10.0f);
    ds->close(self);

    /* a name without a header */
    static const char *const kv3[] = { "header", "false", "target", "y", NULL };
    expect_msg("train", "nh.csv", NULL, kv3, MLTK_ERR_CONFIG, "nh.csv",
               "%s:1: key 'target': 'y' is not a column index (the file has no header: "
               "header = false)");
    static const char *const kv4[] = { "header", "false", "target", "3", NULL };
    expect_msg("train", "nh.csv", NULL, kv4, MLTK_ERR_CONFIG, "nh.csv",
               "%s:1: key 'target': column index 3, but the records have 3 fields "
               "(indices 0 to 2)");
    static const char *const kv5[] = { "header", "false", "target", "0,1", NULL };
    expect_msg("train", "nh.csv", NULL, kv5, MLTK_ERR_CONFIG, "nh.csv",
               "%s: key 'target' names 2 columns, but a classification has one target "
               "column");
    static const char *const kv6[] = { "header", "false", "target", "0",
                                       "features", "2,0", NULL };
    expect_msg("train", "nh.csv", NULL, kv6, MLTK_ERR_CONFIG, "nh.csv",
               "%s: key 'features': column 0 is also a target");
    static const char *const kv7[] = { "header", "false", "target", "0,1,2",
                                       "task", "regression", NULL };
    expect_msg("train", "nh.csv", NULL, kv7, MLTK_ERR_CONFIG, "nh.csv",
               "%s: no feature columns: every column is a target");
}
END_TEST

START_TEST(test_delimiters)
{
    static const char *const kv[] = { "target", "y", "delimiter", "semicolon", NULL };
    static const char *const kvt[] = { "target", "y", "delimiter", "tab", NULL };
    static const char *const kvp[] = { "target", "y", "delimiter", "|", NULL };
    static const char *const kvb[] = { "target", "y", "delimiter", "ab", NULL };
    void *self;

    write_file("s.csv", "a;y\n1,5;0\n");
    expect_msg("train", "s.csv", NULL, kv, MLTK_ERR_DATA, "s.csv",
               "%s:2: column 'a': '1,5' is not a number");
    write_file("s.csv", "a;y\n1.5;0\n");
    self = must_open("train", "s.csv", NULL, kv);
    expect_x(self, 0, 1, (const float[]){ 1.5f });
    ds->close(self);
    write_file("t.tsv", "a\tb c\ty\n1\t 2\t0\n");
    self = must_open("train", "t.tsv", NULL, kvt);
    expect_x(self, 0, 2, (const float[]){ 1, 2 });
    ds->close(self);
    write_file("p.csv", "a|y\n-1|0\n");
    self = must_open("train", "p.csv", NULL, kvp);
    expect_x(self, 0, 1, (const float[]){ -1 });
    ds->close(self);
    expect_msg("train", "p.csv", NULL, kvb, MLTK_ERR_CONFIG, NULL,
               "key 'delimiter' must be one character other than a quote, or comma, "
               "semicolon, tab, space or pipe (got 'ab')%s");
}
END_TEST

START_TEST(test_labels)
{
    static const char *const kv[] = { "target", "y", NULL };
    static const char *const fruit[] = { "Pear", "apple", "fig", "pear" };
    static const char *const ints[] = { "-1", "3", "10" };
    static const char *const seq[] = { "0", "1", "2" };
    void *self;

    /* strings: sorted bytewise, so upper case first */
    write_file("f.csv", "x,y\n1,pear\n2,apple\n3,fig\n4,apple\n5,Pear\n");
    self = must_open("train", "f.csv", NULL, kv);
    expect_names(self, 4, fruit);
    ck_assert_int_eq(class_of(self, 0), 3);
    ck_assert_int_eq(class_of(self, 1), 1);
    ck_assert_int_eq(class_of(self, 2), 2);
    ck_assert_int_eq(class_of(self, 3), 1);
    ck_assert_int_eq(class_of(self, 4), 0);
    ds->close(self);

    /* integers that are not 0..K-1: sorted by value (not as text) */
    write_file("i.csv", "x,y\n1,10\n2,-1\n3,3\n4,10.0\n");
    self = must_open("train", "i.csv", NULL, kv);
    expect_names(self, 3, ints);
    ck_assert_int_eq(class_of(self, 0), 2);
    ck_assert_int_eq(class_of(self, 1), 0);
    ck_assert_int_eq(class_of(self, 2), 1);
    ck_assert_int_eq(class_of(self, 3), 2);   /* 10.0 is 10 */
    ds->close(self);

    /* 0..K-1 keep their values, whatever the order they appear in */
    write_file("k.csv", "x,y\n1,2\n2,0\n3,1\n");
    self = must_open("train", "k.csv", NULL, kv);
    expect_names(self, 3, seq);
    ck_assert_int_eq(class_of(self, 0), 2);
    ck_assert_int_eq(class_of(self, 1), 0);
    ds->close(self);

    /* the test split maps with the training file's classes */
    write_file("ft.csv", "x,y\n9,fig\n8,Pear\n");
    self = must_open("test", "f.csv", "ft.csv", kv);
    expect_names(self, 4, fruit);
    ck_assert_int_eq(class_of(self, 0), 2);
    ck_assert_int_eq(class_of(self, 1), 0);
    ds->close(self);
    write_file("it.csv", "x,y\n9,3\n8,1e1\n");
    self = must_open("test", "i.csv", "it.csv", kv);
    ck_assert_int_eq(class_of(self, 0), 1);
    ck_assert_int_eq(class_of(self, 1), 2);
    ds->close(self);

    /* a label the training file lacks */
    write_file("fb.csv", "x,y\n9,fig\n8,kiwi\n");
    expect_msg("test", "f.csv", "fb.csv", kv, MLTK_ERR_DATA, "fb.csv",
               "%s:3: column 'y': label 'kiwi' does not occur in the training file");
    write_file("ib.csv", "x,y\n9,3\n8,4\n");
    expect_msg("test", "i.csv", "ib.csv", kv, MLTK_ERR_DATA, "ib.csv",
               "%s:3: column 'y': label '4' does not occur in the training file");
    /* a missing label */
    write_file("fm.csv", "x,y\n9,fig\n8,NA\n");
    expect_msg("train", "fm.csv", NULL, kv, MLTK_ERR_DATA, "fm.csv",
               "%s:3: column 'y': missing value (a target is never filled in)");
}
END_TEST

START_TEST(test_missing)
{
    static const char *const refuse[] = { "target", "y", NULL };
    static const char *const zero[] = { "target", "y", "missing", "zero", NULL };
    static const char *const mean[] = { "target", "y", "missing", "mean", NULL };
    static const char *const regr[] = { "target", "y", "missing", "mean",
                                       "task", "regression", NULL };
    void *self;

    /* each spelling of a missing value */
    write_file("m.csv", "a,b,y\n1,2,0\n,4,1\n3,NA,0\nnan,?,1\n5,\"\",0\n");
    expect_msg("train", "m.csv", NULL, refuse, MLTK_ERR_DATA, "m.csv",
               "%s:3: column 'a': missing value");
    self = must_open("train", "m.csv", NULL, zero);
    expect_x(self, 1, 2, (const float[]){ 0, 4 });
    expect_x(self, 2, 2, (const float[]){ 3, 0 });
    expect_x(self, 3, 2, (const float[]){ 0, 0 });
    expect_x(self, 4, 2, (const float[]){ 5, 0 });
    ds->close(self);
    /* the means of the values there: a (1+3+5)/3 = 3, b (2+4)/2 = 3 */
    self = must_open("train", "m.csv", NULL, mean);
    expect_x(self, 0, 2, (const float[]){ 1, 2 });
    expect_x(self, 1, 2, (const float[]){ 3, 4 });
    expect_x(self, 3, 2, (const float[]){ 3, 3 });
    ds->close(self);

    /* the test split fills with the training file's means, not its own */
    write_file("mt.csv", "a,b,y\n100,,1\n,200,0\n");
    self = must_open("test", "m.csv", "mt.csv", mean);
    expect_x(self, 0, 2, (const float[]){ 100, 3 });
    expect_x(self, 1, 2, (const float[]){ 3, 200 });
    ds->close(self);

    /* a column with no value at all has no mean */
    write_file("me.csv", "a,b,y\n1,,0\n2,NA,1\n");
    expect_msg("train", "me.csv", NULL, mean, MLTK_ERR_DATA, "me.csv",
               "%s: column 'b': every value is missing, so missing = mean has no mean");
    /* targets are never filled in */
    write_file("mr.csv", "a,y\n1,2.5\n2,\n");
    expect_msg("train", "mr.csv", NULL, regr, MLTK_ERR_DATA, "mr.csv",
               "%s:3: column 'y': missing value (a target is never filled in)");
}
END_TEST

/* ---- malformed files ------------------------------------------------------ */

START_TEST(test_malformed)
{
    static const char *const kv[] = { "target", "y", NULL };
    static const char *const nh[] = { "target", "0", "header", "false", NULL };
    static const char *const regr[] = { "target", "y", "task", "regression", NULL };

    write_file("e.csv", "");
    expect_msg("train", "e.csv", NULL, kv, MLTK_ERR_DATA, "e.csv",
               "%s:1: the file is empty (expected a header and data rows)");
    write_file("e2.csv", "\n\n");
    expect_msg("train", "e2.csv", NULL, nh, MLTK_ERR_DATA, "e2.csv",
               "%s:3: the file is empty (expected data rows)");
    write_file("h.csv", "a,b,y\n");
    expect_msg("train", "h.csv", NULL, kv, MLTK_ERR_DATA, "h.csv",
               "%s:2: no data rows after the header");
    write_file("c.csv", "a,b,y\n1,2,0\n1,2\n");
    expect_msg("train", "c.csv", NULL, kv, MLTK_ERR_DATA, "c.csv",
               "%s:3: 2 fields, expected 3 as in the header");
    write_file("c2.csv", "1,2,0\n1,2,0,4\n");
    expect_msg("train", "c2.csv", NULL, nh, MLTK_ERR_DATA, "c2.csv",
               "%s:2: 4 fields, expected 3");
    write_file("n.csv", "a,b,y\n1,2,0\n1,2x,0\n");
    expect_msg("train", "n.csv", NULL, kv, MLTK_ERR_DATA, "n.csv",
               "%s:3: column 'b': '2x' is not a number");
    write_file("n2.csv", "a,b,y\n1,inf,0\n");
    expect_msg("train", "n2.csv", NULL, kv, MLTK_ERR_DATA, "n2.csv",
               "%s:2: column 'b': 'inf' is not a number");
    write_file("n3.csv", "a,b,y\n1,1e39,0\n");
    expect_msg("train", "n3.csv", NULL, kv, MLTK_ERR_DATA, "n3.csv",
               "%s:2: column 'b': '1e39' is outside the range of float32");
    write_file("n4.csv", "a,b,y\n1,2,high\n");
    expect_msg("train", "n4.csv", NULL, regr, MLTK_ERR_DATA, "n4.csv",
               "%s:2: column 'y': 'high' is not a number");
    write_file("u.csv", "a,b,y\n1,2,0\n1,\"2,0\n3,4,1\n");
    expect_msg("train", "u.csv", NULL, kv, MLTK_ERR_DATA, "u.csv",
               "%s:3: column 'b': unterminated quote (the file ends inside the quoted "
               "field)");
    write_file("u2.csv", "a,b,y\n1,\"2\"3,0\n");
    expect_msg("train", "u2.csv", NULL, kv, MLTK_ERR_DATA, "u2.csv",
               "%s:2: column 'b': text after the closing quote");
    write_file("u3.csv", "a,b,y\n1,2\"3,0\n");
    expect_msg("train", "u3.csv", NULL, kv, MLTK_ERR_DATA, "u3.csv",
               "%s:2: column 'b': a quote inside an unquoted field (quote the whole field)");
    write_bytes("z.csv", "a,b,y\n1,2,0\n1,\0,0\n", 18);
    expect_msg("train", "z.csv", NULL, kv, MLTK_ERR_DATA, "z.csv",
               "%s:3: a NUL byte (this is not a text file)");
    write_file("k.csv", "a,b,c\n1,2,0\n");
    expect_msg("train", "k.csv", NULL, kv, MLTK_ERR_CONFIG, "k.csv",
               "%s:1: key 'target': no column named 'y' in the header");
    write_file("d.csv", "a,a,y\n1,2,0\n");
    static const char *const kvd[] = { "target", "y", "features", "a", NULL };
    expect_msg("train", "d.csv", NULL, kvd, MLTK_ERR_CONFIG, "d.csv",
               "%s:1: key 'features': the header names columns 0 and 1 'a'; select one "
               "by its index");
    expect_msg("train", "nofile.csv", NULL, kv, MLTK_ERR_IO, "nofile.csv",
               "cannot open %s: No such file or directory");

    /* the test file must have the training file's columns */
    write_file("ok.csv", "a,b,y\n1,2,0\n");
    write_file("t1.csv", "a,c,y\n1,2,0\n");
    expect_msg("test", "ok.csv", "t1.csv", kv, MLTK_ERR_DATA, "t1.csv",
               "%s:1: column 1 is named 'c', but 'b' in the training file");
    write_file("t2.csv", "a,y\n1,0\n");
    expect_msg("test", "ok.csv", "t2.csv", kv, MLTK_ERR_DATA, "t2.csv",
               "%s:1: 2 fields, expected 3 as in the training file");
    /* a bad training file fails the test split too */
    expect_msg("test", "n.csv", "ok.csv", kv, MLTK_ERR_DATA, "n.csv",
               "%s:3: column 'b': '2x' is not a number");
}
END_TEST

START_TEST(test_long_record)
{
    static const char *const kv[] = { "target", "y", NULL };
    size_t n = (size_t)CSV_MAX_RECORD + 100;
    char *buf = malloc(n + 64);
    int len;

    ck_assert_ptr_nonnull(buf);
    len = snprintf(buf, 64, "a,y\n1,0\n\"");
    memset(buf + len, '7', n);
    memcpy(buf + len + n, "\",0\n", 4);
    write_bytes("long.csv", buf, (size_t)len + n + 4);
    free(buf);
    expect_msg("train", "long.csv", NULL, kv, MLTK_ERR_DATA, "long.csv",
               "%s:3: a record longer than 1048576 bytes");
}
END_TEST

START_TEST(test_bad_split)
{
    static const char *const kv[] = { "target", "y", NULL };
    void *self = NULL;
    char *err = NULL;

    write_file("ok.csv", "a,y\n1,0\n");
    ck_assert_int_eq(open_csv(&self, "val", "ok.csv", NULL, kv, &err), MLTK_ERR_INVALID);
    ck_assert_str_eq(err, "csv: unknown split 'val' (expected train or test)");
    ck_assert_ptr_null(self);
    free(err);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *csv_suite(void)
{
    Suite *s = suite_create("csv");
    TCase *tc = tcase_create("files");

    tcase_add_checked_fixture(tc, fixture_open, fixture_close);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_basic);
    tcase_add_test(tc, test_quotes);
    tcase_add_test(tc, test_no_header);
    tcase_add_test(tc, test_delimiters);
    tcase_add_test(tc, test_labels);
    tcase_add_test(tc, test_missing);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_long_record);
    tcase_add_test(tc, test_bad_split);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(csv_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
