/* check_safetensors.c - tests of core/safetensors.c.
 *
 * What this is: round trips (values bit-exact, names and metadata with
 * escapes), the exact bytes of small files against hand-written ones,
 * the reader's rejection of every malformed file we can think of (each
 * prefix of a file, JSON errors at known offsets, bad dtypes, shapes and
 * offsets), and crash safety: failed writes leave the previous file and
 * no temporary file, and a writer killed at random moments always leaves
 * a complete, loadable file.
 * What this is not: the interoperability tests against Python's readers
 * and writers (tests/test_st_interop.sh).  For those this program has two
 * driver modes:
 *   check_safetensors --write PATH [nobf16]   write the interop fixture
 *   check_safetensors --dump PATH             print a file's contents
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "safetensors.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

static void put_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    if (n)
        ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* The whole file, malloc()ed, its size in *n; NULL if unreadable. */
static unsigned char *get_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(p);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

/* A file of u64 strlen(header), the header, then `data`. */
static void put_raw(const char *path, const char *header, const void *data, size_t n)
{
    size_t h = strlen(header);
    unsigned char *p = malloc(8 + h + n + 1);
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(p + 8, header, h);
    if (n)
        memcpy(p + 8 + h, data, n);
    put_file(path, p, 8 + h + n);
    free(p);
}

/* Open must fail with MLTK_ERR_DATA and a message "PATH: ...want...". */
static void expect_reject(const char *path, const char *want)
{
    mltk_st_file *f = (mltk_st_file *)1;
    char *err = NULL;
    int rc = mltk_st_open(&f, path, &err);
    ck_assert_msg(rc == MLTK_ERR_DATA, "%s: rc %d (%s), wanted a rejection with '%s'",
                  path, rc, err ? err : "no message", want);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':',
                  "message does not start with the file: %s", err);
    TU_ASSERT_CONTAINS(err, want);
    free(err);
}

static mltk_st_file *open_ok(const char *path)
{
    mltk_st_file *f = NULL;
    char *err = NULL;
    int rc = mltk_st_open(&f, path, &err);
    ck_assert_msg(rc == MLTK_OK, "%s", err ? err : "no message");
    ck_assert_ptr_nonnull(f);
    return f;
}

/* Files in `dir` whose name contains ".tmp." */
static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static mltk_st_entry entry(const char *name, mltk_st_dtype dt, int ndim,
                           const int64_t *shape, const void *data)
{
    mltk_st_entry e = { .name = name, .dtype = dt, .ndim = ndim, .data = data };
    size_t n = mltk_st_dtype_size(dt);
    for (int i = 0; i < ndim; i++)
        n *= (size_t)(e.shape[i] = shape[i]);
    e.nbytes = n;
    return e;
}

/* ---- the fixture: also written by the driver for the Python tests ------- */
/* tests/st_read.py builds the same tensors and metadata on its own. */

static const float fx_w[6] = { -1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f };
static const uint32_t fx_special[5] = { 0x80000000u, 0x7f800000u, 0xff800000u,
                                        0x00000001u, 0x7fc00001u };
static const double fx_d[3] = { 1.0 / 3.0, -2.5, 1e300 };
static const int32_t fx_i32[4] = { INT32_MIN, -1, 0, INT32_MAX };
static const int64_t fx_i64[3] = { INT64_MIN, 1234567890123LL, INT64_MAX };
static const uint8_t fx_u8[8] = { 0, 37, 74, 111, 148, 185, 222, 3 };
static const uint16_t fx_h[3] = { 0x3C00, 0xC000, 0x7BFF };     /* 1, -2, 65504 */
static const uint16_t fx_bf[2] = { 0x3F80, 0xC040 };            /* 1, -3 */
static const uint8_t fx_mask[3] = { 1, 0, 1 };
static const double fx_scalar = 42.0;

static const char *const fx_meta[] = {
    "format", "mltk",
    "config", "[run]\nepochs = 3\nname = \"demo\"\tpath = C:\\tmp\n\n[layer.fc1]\n",
    "unicode", "na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
    "ctrl", "\x01\x1f\x7f end",
};
#define FX_N_META 4

/* The fixture's tensors into e[]; returns how many (11, or 10 without
 * the BF16 one that numpy cannot hold). */
static int fixture(mltk_st_entry *e, int with_bf16)
{
    static const int64_t s23[] = { 2, 3 }, s5[] = { 5 }, s3[] = { 3 }, s4[] = { 4 },
                         s222[] = { 2, 2, 2 }, s2[] = { 2 }, s04[] = { 0, 4 };
    int n = 0;
    e[n++] = entry("layer.0/weight", MLTK_ST_F32, 2, s23, fx_w);
    e[n++] = entry("special", MLTK_ST_F32, 1, s5, fx_special);
    e[n++] = entry("d", MLTK_ST_F64, 1, s3, fx_d);
    e[n++] = entry("i32", MLTK_ST_I32, 1, s4, fx_i32);
    e[n++] = entry("i64", MLTK_ST_I64, 1, s3, fx_i64);
    e[n++] = entry("u8", MLTK_ST_U8, 3, s222, fx_u8);
    e[n++] = entry("h", MLTK_ST_F16, 1, s3, fx_h);
    if (with_bf16)
        e[n++] = entry("bf", MLTK_ST_BF16, 1, s2, fx_bf);
    e[n++] = entry("mask", MLTK_ST_BOOL, 1, s3, fx_mask);
    e[n++] = entry("scalar", MLTK_ST_F64, 0, NULL, &fx_scalar);
    e[n++] = entry("empty \"q\" na\xc3\xafve", MLTK_ST_F32, 2, s04, NULL);
    return n;
}

/* ---- dtypes ------------------------------------------------------------- */

START_TEST(test_dtypes)
{
    static const char *const names[] = { "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3",
        "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64" };
    static const size_t sizes[] = { 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8 };
    ck_assert_int_eq(MLTK_ST_N_DTYPES, 15);
    for (int i = 0; i < MLTK_ST_N_DTYPES; i++) {
        ck_assert_str_eq(mltk_st_dtype_name((mltk_st_dtype)i), names[i]);
        ck_assert_uint_eq(mltk_st_dtype_size((mltk_st_dtype)i), sizes[i]);
        ck_assert_int_eq(mltk_st_dtype_parse(names[i]), i);
    }
    ck_assert_int_eq(mltk_st_dtype_parse("f32"), -1);
    ck_assert_int_eq(mltk_st_dtype_parse("F32 "), -1);
    ck_assert_int_eq(mltk_st_dtype_parse(NULL), -1);
    ck_assert_str_eq(mltk_st_dtype_name(MLTK_ST_N_DTYPES), "?");
    ck_assert_uint_eq(mltk_st_dtype_size((mltk_st_dtype)-1), 0);
}
END_TEST

/* ---- round trip and exact bytes ----------------------------------------- */

START_TEST(test_roundtrip)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/model.safetensors", dir);
    mltk_st_entry e[16];
    int n = fixture(e, 1);
    char *err = NULL;
    ck_assert_int_eq(mltk_st_write(path, e, n, fx_meta, FX_N_META, &err), MLTK_OK);
    ck_assert_ptr_null(err);

    mltk_st_file *f = open_ok(path);
    ck_assert_int_eq(mltk_st_count(f), n);
    for (int i = 0; i < n; i++) {
        const mltk_st_tensor *t = mltk_st_get(f, i);
        ck_assert_str_eq(t->name, e[i].name);
        ck_assert_int_eq(t->dtype, e[i].dtype);
        ck_assert_int_eq(t->ndim, e[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            ck_assert_int_eq(t->shape[d], e[i].shape[d]);
        ck_assert_uint_eq(t->nbytes, e[i].nbytes);
        ck_assert(t->nbytes == 0 || memcmp(t->data, e[i].data, t->nbytes) == 0);
        ck_assert_ptr_eq(mltk_st_find(f, e[i].name), t);
    }
    ck_assert_ptr_null(mltk_st_get(f, n));
    ck_assert_ptr_null(mltk_st_get(f, -1));
    ck_assert_ptr_null(mltk_st_find(f, "nope"));
    ck_assert_ptr_null(mltk_st_find(f, "layer.0/weigh"));
    /* values, not just bytes: the special floats kept their bits */
    const mltk_st_tensor *sp = mltk_st_find(f, "special");
    float v[5];
    memcpy(v, sp->data, sizeof v);
    ck_assert(v[0] == 0.0f && signbit(v[0]));
    ck_assert(isinf(v[1]) && v[1] > 0 && isinf(v[2]) && v[2] < 0);
    ck_assert(v[3] > 0 && v[3] < 1e-44f);
    ck_assert(isnan(v[4]));
    ck_assert_int_eq(mltk_st_find(f, "i64")->shape[0], 3);
    int64_t i64[3];
    memcpy(i64, mltk_st_find(f, "i64")->data, sizeof i64);
    ck_assert(i64[0] == INT64_MIN && i64[2] == INT64_MAX);

    ck_assert_int_eq(mltk_st_meta_count(f), FX_N_META);
    for (int i = 0; i < FX_N_META; i++) {
        ck_assert_str_eq(mltk_st_meta_key(f, i), fx_meta[2 * i]);
        ck_assert_str_eq(mltk_st_meta_value(f, i), fx_meta[2 * i + 1]);
        ck_assert_str_eq(mltk_st_meta(f, fx_meta[2 * i]), fx_meta[2 * i + 1]);
    }
    ck_assert_ptr_null(mltk_st_meta(f, "missing"));
    ck_assert_ptr_null(mltk_st_meta_key(f, FX_N_META));
    mltk_st_close(f);

    /* rewriting replaces the file; no temporary file stays behind, not
     * even one that a killed writer with our pid left */
    char *stale = tu_fmt("%s.tmp.%ld", path, (long)getpid());
    free(tu_write(NULL, stale, "left by a killed writer"));
    ck_assert_int_eq(mltk_st_write(path, e, 1, NULL, 0, &err), MLTK_OK);
    ck_assert_int_eq(access(stale, F_OK), -1);
    free(stale);
    f = open_ok(path);
    ck_assert_int_eq(mltk_st_count(f), 1);
    ck_assert_int_eq(mltk_st_meta_count(f), 0);
    mltk_st_close(f);
    ck_assert_int_eq(count_temp_files(dir), 0);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_exact_bytes)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/a.safetensors", dir);
    static const float a[2] = { 1.0f, -2.0f };
    static const int64_t s2[] = { 2 };
    static const char *const kv[] = { "k", "v" };
    mltk_st_entry e = entry("a", MLTK_ST_F32, 1, s2, a);
    ck_assert_int_eq(mltk_st_write(path, &e, 1, kv, 1, NULL), MLTK_OK);
    /* 79 bytes of JSON and one space: 80 = 0x50 */
    static const char want[] =
        "\x50\0\0\0\0\0\0\0"
        "{\"__metadata__\":{\"k\":\"v\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} "
        "\x00\x00\x80\x3f\x00\x00\x00\xc0";
    size_t n = 0;
    unsigned char *got = get_file(path, &n);
    ck_assert_uint_eq(n, 96);
    ck_assert_uint_eq(sizeof want - 1, 96);
    ck_assert(memcmp(got, want, 96) == 0);
    free(got);

    /* escapes in a name: quote, backslash, newline, a control character,
     * UTF-8 as is; a scalar; no metadata; 66 bytes of JSON + 6 spaces */
    static const uint8_t b = 42;
    e = entry("q\"\\\n\x01\xc3\xa9", MLTK_ST_U8, 0, NULL, &b);
    ck_assert_int_eq(mltk_st_write(path, &e, 1, NULL, 0, NULL), MLTK_OK);
    static const char want2[] =
        "\x48\0\0\0\0\0\0\0"
        "{\"q\\\"\\\\\\n\\u0001\xc3\xa9\":{\"dtype\":\"U8\",\"shape\":[],"
        "\"data_offsets\":[0,1]}}      *";
    got = get_file(path, &n);
    ck_assert_uint_eq(n, 81);
    ck_assert_uint_eq(sizeof want2 - 1, 81);
    ck_assert(memcmp(got, want2, 81) == 0);
    free(got);

    /* no tensors at all: "{}" and 6 spaces */
    ck_assert_int_eq(mltk_st_write(path, NULL, 0, NULL, 0, NULL), MLTK_OK);
    got = get_file(path, &n);
    ck_assert_uint_eq(n, 16);
    ck_assert(memcmp(got, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
    free(got);
    mltk_st_close(open_ok(path));
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* A header in another writer's style: whitespace, escapes, keys in any
 * order, tensors listed out of data order. */
START_TEST(test_read_foreign_header)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/f.safetensors", dir);
    static const char hdr[] =
        "{ \"__metadata__\" : { \"s\" : \"\\/\\b\\f\\n\\r\\t\\\"\\\\\",\n"
        "    \"u\" : \"\\u00e9\\u65E5\\ud83d\\ude00\" } ,\n"
        "  \"second\" : { \"data_offsets\" : [4, 6], \"shape\" : [1],"
        " \"dtype\" : \"BF16\" },\r\n"
        "  \"\\u0066irst\" : {\"shape\":[ ],\"dtype\":\"I32\",\"data_offsets\":[0,4]},"
        "\"z\":{\"dtype\":\"F64\",\"shape\":[0,3],\"data_offsets\":[4,4]}\t}   ";
    static const unsigned char data[6] = { 7, 0, 0, 0, 0x80, 0x3f };
    put_raw(path, hdr, data, 6);
    mltk_st_file *f = open_ok(path);
    ck_assert_int_eq(mltk_st_count(f), 3);
    const mltk_st_tensor *a = mltk_st_get(f, 0), *b = mltk_st_get(f, 1);
    ck_assert_str_eq(a->name, "second");
    ck_assert_str_eq(b->name, "first");
    ck_assert_str_eq(mltk_st_get(f, 2)->name, "z");
    ck_assert_int_eq(b->dtype, MLTK_ST_I32);
    ck_assert_int_eq(b->ndim, 0);
    ck_assert_uint_eq(b->nbytes, 4);
    int32_t i;
    memcpy(&i, b->data, 4);
    ck_assert_int_eq(i, 7);
    ck_assert_ptr_eq(a->data, (const char *)b->data + 4);
    uint16_t bits;
    memcpy(&bits, a->data, 2);
    ck_assert_uint_eq(bits, 0x3F80);
    ck_assert_uint_eq(mltk_st_get(f, 2)->nbytes, 0);
    ck_assert_ptr_eq(mltk_st_find(f, "first"), b);
    ck_assert_str_eq(mltk_st_meta(f, "s"), "/\b\f\n\r\t\"\\");
    ck_assert_str_eq(mltk_st_meta(f, "u"),
                     "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80");
    mltk_st_close(f);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* ---- rejection ---------------------------------------------------------- */

START_TEST(test_truncated_every_length)
{
    char *dir = tu_tmpdir(), *good = tu_fmt("%s/good.safetensors", dir),
         *path = tu_fmt("%s/cut.safetensors", dir);
    static const float w[3] = { 1, 2, 3 };
    static const int32_t k[2] = { -7, 9 };
    static const int64_t s3[] = { 3 }, s2[] = { 2 };
    static const char *const kv[] = { "epoch", "4" };
    mltk_st_entry e[2] = { entry("w", MLTK_ST_F32, 1, s3, w),
                           entry("k", MLTK_ST_I32, 1, s2, k) };
    ck_assert_int_eq(mltk_st_write(good, e, 2, kv, 1, NULL), MLTK_OK);
    size_t size = 0;
    unsigned char *bytes = get_file(good, &size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | bytes[i];
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert_uint_eq(size, 8 + hlen + 20);
    for (size_t len = 0; len < size; len++) {
        put_file(path, bytes, len);
        char want[128];
        if (len < 8)
            snprintf(want, sizeof want, "offset 0: file has %zu bytes, too short", len);
        else if (len < 8 + hlen)
            snprintf(want, sizeof want, "offset 0: header length %llu is beyond the "
                     "end of the file (%zu bytes after", (unsigned long long)hlen,
                     len - 8);
        else
            snprintf(want, sizeof want, ": truncated: expected 20 bytes of tensor "
                     "data, found %zu", len - 8 - (size_t)hlen);
        expect_reject(path, want);
    }
    /* one byte too many */
    unsigned char *more = malloc(size + 1);
    memcpy(more, bytes, size);
    more[size] = 0;
    put_file(path, more, size + 1);
    char want[128];
    snprintf(want, sizeof want, "offset %zu: expected 20 bytes of tensor data, found "
             "21 (trailing bytes", size);
    expect_reject(path, want);
    free(more);
    free(bytes);
    tu_rmtree(dir);
    free(good);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_header_length)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/h.safetensors", dir);
    unsigned char b[28] = { 0 };
    memset(b, 0xff, 8);
    put_file(path, b, 28);
    expect_reject(path, "offset 0: header length 18446744073709551615 is beyond "
                        "the limit of 100000000 bytes");
    uint64_t n = 100000001;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(n >> (8 * i));
    put_file(path, b, 28);
    expect_reject(path, "header length 100000001 is beyond the limit");
    memset(b, 0, 8);
    b[0] = 0xe8;
    b[1] = 0x03;   /* 1000 */
    put_file(path, b, 28);
    expect_reject(path, "offset 0: header length 1000 is beyond the end of the file "
                        "(20 bytes after the length)");
    put_file(path, b, 5);
    expect_reject(path, "offset 0: file has 5 bytes, too short for the 8-byte header "
                        "length");

    /* a file that is not there: an I/O error naming it */
    char *missing = tu_fmt("%s/none.safetensors", dir), *err = NULL;
    mltk_st_file *f = (mltk_st_file *)1;
    ck_assert_int_eq(mltk_st_open(&f, missing, &err), MLTK_ERR_IO);
    ck_assert_ptr_null(f);
    char *want = tu_fmt("%s: cannot open file: No such file or directory", missing);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_st_open(&f, dir, &err), MLTK_ERR_IO);
    TU_ASSERT_CONTAINS(err, "not a regular file");
    free(err);
    free(missing);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* Malformed JSON; jansson's words, at offset 8 + where jansson stopped
 * reading the header (the offending byte, or just past the offending
 * token).  The first byte must be '{' and only spaces may follow the
 * object: those checks and their words are ours. */
static const struct { const char *hdr, *want; } bad_json[] = {
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}",
      "offset 61: '}' expected near end of file" },
    { "{\"a\" {}}", "offset 14: ':' expected near '{'" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}",
      "offset 40: unexpected token near ']'" },
    { "{'a':1}", "offset 10: string or '}' expected near '''" },
    { "[1]", "offset 8: expected '{' starting the header, found '['" },
    { "", "offset 8: header ends where '{' starting the header was expected" },
    { " {}", "offset 8: expected '{' starting the header, found ' '" },
    { "{\"a\nb\":1}", "offset 11: unexpected newline near '\"a'" },
    { "{\"a\xff" "b\":1}", "offset 11: unable to decode byte 0xff" },
    { "{\"\xc0\xaf\":1}", "offset 10: unable to decode byte 0xc0" },          /* overlong '/' */
    { "{\"\xed\xa0\x80\":1}", "offset 10: unable to decode byte 0xed" },      /* a surrogate */
    { "{\"\\udc00\":1}", "offset 17: invalid Unicode '\\uDC00'" },
    { "{\"\\ud800x\":1}", "offset 18: invalid Unicode '\\uD800'" },
    { "{\"\\ud800\\u0041\":1}", "offset 23: invalid Unicode '\\uD800\\u0041'" },
    { "{\"\\x\":1}", "offset 12: invalid escape near '\"\\x'" },
    { "{\"\\u12G4\":1}", "offset 15: invalid escape near '\"\\u12G'" },
    { "{\"\\u0000\":1}", "offset 17: NUL byte in object key not supported" },
    { "{\"a\":\"x", "offset 15: premature end of input near '\"x'" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}",
      "offset 38: invalid token near '0'" },
    { "{\"a\":[1.]}", "offset 16: invalid token near '1.'" },
    { "{\"a\":[-]}", "offset 15: invalid token near '-'" },
    { "{\"a\":[-1e5]}", "header: tensor 'a': expected an object, found an array" },
    { "{\"a\":true}", "header: tensor 'a': expected an object, found true" },
    { "{\"a\":1} x", "offset 16: expected nothing but spaces after the header, found 'x'" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}",
      "offset 63: string or '}' expected near '}'" },
    { "{\"a\":[[[[[[[[[[[[[[[[[[[[", "offset 33: ']' expected near end of file" },
};

START_TEST(test_bad_json)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/j.safetensors", dir);
    for (size_t i = 0; i < sizeof bad_json / sizeof *bad_json; i++) {
        put_raw(path, bad_json[i].hdr, NULL, 0);
        expect_reject(path, bad_json[i].want);
    }
    /* padding must be spaces, not NUL bytes */
    static const unsigned char nul[16] = { 8, 0, 0, 0, 0, 0, 0, 0,
                                           '{', '"', 'a', '"', ':', '1', '}', 0 };
    put_file(path, nul, 16);
    expect_reject(path, "offset 15: expected nothing but spaces after the header, "
                        "found byte 0x00");
    /* nesting beyond jansson's limit is an error, not a deep recursion */
    char *deep = malloc(4000);
    strcpy(deep, "{\"a\":");
    memset(deep + 5, '[', 3000);
    deep[3005] = '\0';
    put_raw(path, deep, NULL, 0);
    expect_reject(path, "maximum parsing depth reached");
    free(deep);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

#define T_(dt, shape, offs) "{\"dtype\":\"" dt "\",\"shape\":" shape \
                            ",\"data_offsets\":" offs "}"

/* Well-formed JSON, wrong safetensors; `data` bytes of data follow. */
static const struct { const char *hdr; size_t data; const char *want; } bad_st[] = {
    { "{\"a\":" T_("F128", "[1]", "[0,4]") "}", 4,
      "header: tensor 'a': unknown dtype 'F128'" },
    { "{\"a\":" T_("f32", "[1]", "[0,4]") "}", 4,
      "header: tensor 'a': unknown dtype 'f32'; did you mean 'F32'?" },
    { "{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      "tensor 'a': dtype must be a string, found an integer" },
    { "{\"a\":" T_("F32", "[-1]", "[0,0]") "}", 0,
      "header: tensor 'a': shape[0] must be a non-negative integer, found a negative "
      "one" },
    { "{\"a\":" T_("F32", "[2,1.5]", "[0,12]") "}", 12,
      "tensor 'a': shape[1] must be a non-negative integer, found a real number (only "
      "integers are allowed in a header)" },
    { "{\"a\":" T_("F32", "[null]", "[0,4]") "}", 4,
      "tensor 'a': shape[0] must be a non-negative integer, found null" },
    { "{\"a\":" T_("F32", "[\"2\"]", "[0,8]") "}", 8,
      "tensor 'a': shape[0] must be a non-negative integer, found a string" },
    { "{\"a\":" T_("F32", "[99999999999999999999]", "[0,4]") "}", 4,
      "offset 57: too big integer near '99999999999999999999'" },
    { "{\"a\":" T_("F32", "\"2\"", "[0,8]") "}", 8,
      "tensor 'a': shape must be an array, found a string" },
    { "{\"a\":" T_("U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1,
      "tensor 'a': shape has 9 dimensions, at most 8 are supported" },
    { "{\"a\":" T_("U8", "[4294967296,4294967296]", "[0,1]") "}", 1,
      "tensor 'a': shape is too large" },
    { "{\"a\":" T_("F32", "[1]", "[4,0]") "}", 4,
      "tensor 'a': data_offsets [4, 0] end before they begin" },
    { "{\"a\":" T_("F32", "[1]", "[0]") "}", 4,
      "tensor 'a': data_offsets must be [begin, end], two non-negative integers" },
    { "{\"a\":" T_("F32", "[1]", "[0,-4]") "}", 4,
      "tensor 'a': data_offsets must be [begin, end]" },
    { "{\"a\":" T_("F32", "[1]", "{}") "}", 4,
      "tensor 'a': data_offsets must be [begin, end]" },
    { "{\"a\":" T_("F32", "[2]", "[0,4]") "}", 4,
      "header: tensor 'a': data_offsets [0, 4] hold 4 bytes, but 2 elements of F32 "
      "need 8" },
    { "{\"a\":" T_("F64", "[2,3]", "[0,24]") "}", 24,
      "tensor 'a': data_offsets [0, 24] hold 24 bytes, but 6 elements of F64 need 48" },
    { "{\"a\":" T_("F32", "[2]", "[0,8]") ",\"b\":" T_("F32", "[2]", "[4,12]") "}", 12,
      "header: tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]" },
    { "{\"b\":" T_("F32", "[2]", "[0,8]") ",\"a\":" T_("F32", "[2]", "[0,8]") "}", 8,
      "data_offsets [0, 8] overlap tensor" },
    { "{\"a\":" T_("F32", "[1]", "[0,4]") ",\"b\":" T_("F32", "[1]", "[8,12]") "}", 12,
      "header: tensor 'b': data_offsets [8, 12] leave bytes [4, 8) before it unused" },
    { "{\"a\":" T_("F32", "[1]", "[4,8]") "}", 8,
      "tensor 'a': data_offsets [4, 8] leave bytes [0, 4) before it unused" },
    { "{\"a\":" T_("F32", "[2]", "[0,8]") ",\"z\":" T_("U8", "[0]", "[4,4]") "}", 8,
      "tensor 'z': data_offsets [4, 4] overlap tensor 'a' [0, 8]" },
    { "{\"a\":" T_("F32", "[1]", "[0,4]") ",\"a\":" T_("F32", "[1]", "[4,8]") "}", 8,
      "offset 65: duplicate object key near '\"a\"'" },
    { "{\"a\":[1]}", 0, "header: tensor 'a': expected an object, found an array" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"offsets\":[0,4]}}", 4,
      "tensor 'a': unknown key 'offsets'" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
      "tensor 'a': missing 'data_offsets'" },
    { "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
      "\"data_offsets\":[0,4]}}", 4, "offset 35: duplicate object key near '\"dtype\"'" },
    { "{\"__metadata__\":[],\"a\":" T_("F32", "[1]", "[0,4]") "}", 4,
      "header: __metadata__ must be an object, found an array" },
    { "{\"__metadata__\":{\"k\":\"v\",\"n\":3}}", 0,
      "header: __metadata__: value of 'n' must be a string, found an integer" },
    { "{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0,
      "offset 36: duplicate object key near '\"k\"'" },
    { "{\"__metadata__\":{},\"__metadata__\":{}}", 0,
      "offset 41: duplicate object key near '\"__metadata__\"'" },
};

START_TEST(test_bad_tensors)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/t.safetensors", dir);
    static const unsigned char zeros[64];
    for (size_t i = 0; i < sizeof bad_st / sizeof *bad_st; i++) {
        put_raw(path, bad_st[i].hdr, zeros, bad_st[i].data);
        expect_reject(path, bad_st[i].want);
    }
    /* and the good neighbours of those: zero-size tensors anywhere */
    put_raw(path, "{\"e\":" T_("U8", "[0]", "[0,0]") ",\"a\":" T_("F32", "[1]", "[0,4]")
            ",\"z\":" T_("U8", "[3,0]", "[4,4]") "}", zeros, 4);
    mltk_st_file *f = open_ok(path);
    ck_assert_int_eq(mltk_st_count(f), 3);
    ck_assert_uint_eq(mltk_st_find(f, "z")->nbytes, 0);
    mltk_st_close(f);
    put_raw(path, "{}", NULL, 0);
    f = open_ok(path);
    ck_assert_int_eq(mltk_st_count(f), 0);
    ck_assert_ptr_null(mltk_st_find(f, "a"));
    mltk_st_close(f);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* ---- the writer's arguments --------------------------------------------- */

START_TEST(test_write_invalid)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/w.safetensors", dir);
    static const float x[2] = { 1, 2 };
    static const int64_t s2[] = { 2 }, neg[] = { -2 };
    mltk_st_entry e[2] = { entry("a", MLTK_ST_F32, 1, s2, x),
                           entry("a", MLTK_ST_F32, 1, s2, x) };
    static const struct { int which; const char *want; } cases[] = {
        { 0, "tensor 'a': name given twice" },
        { 1, "tensor 'a': 4 bytes given" },
        { 2, "tensor 1: name is not valid UTF-8 or is '__metadata__'" },
        { 3, "tensor 1: name is not valid UTF-8" },
        { 4, "tensor 'b': negative dimension 0" },
        { 5, "tensor 'b': ndim 9 is not in 0..8" },
        { 6, "metadata key 'k' given twice" },
        { 7, "metadata value 0 is not valid UTF-8" },
        { 8, "metadata key 1 is NULL" },
        { 9, "tensor 'b': invalid dtype 99" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        mltk_st_entry t[2] = { e[0], e[1] };
        const char *kv[4] = { "k", "v", "j", "w" };
        int n_meta = 2;
        t[1].name = "b";
        switch (cases[c].which) {
        case 0: t[1].name = "a"; break;
        case 1: t[0].nbytes = 4; break;
        case 2: t[1].name = "__metadata__"; break;
        case 3: t[1].name = "bad \xff"; break;
        case 4: t[1] = entry("b", MLTK_ST_F32, 1, neg, x); t[1].nbytes = 0; break;
        case 5: t[1].ndim = 9; break;
        case 6: kv[2] = "k"; break;
        case 7: kv[1] = "\xc3"; break;
        case 8: kv[2] = NULL; break;
        case 9: t[1].dtype = (mltk_st_dtype)99; break;
        }
        char *err = NULL;
        ck_assert_int_eq(mltk_st_write(path, t, 2, kv, n_meta, &err), MLTK_ERR_INVALID);
        ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "%s", err);
        TU_ASSERT_CONTAINS(err, cases[c].want);
        free(err);
        ck_assert_int_eq(access(path, F_OK), -1);
    }
    ck_assert_int_eq(count_temp_files(dir), 0);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* ---- crash safety ------------------------------------------------------- */

/* a 4 MB tensor of `gen`, and gen in the metadata */
#define GEN_N (1 << 20)

static int write_gen(const char *path, float *buf, long gen, char **err)
{
    for (int i = 0; i < GEN_N; i++)
        buf[i] = (float)gen;
    char g[32];
    snprintf(g, sizeof g, "%ld", gen);
    const char *kv[2] = { "gen", g };
    static const int64_t s[] = { GEN_N };
    uint8_t tail = (uint8_t)gen;
    static const int64_t s1[] = { 1 };
    mltk_st_entry e[2] = { entry("w", MLTK_ST_F32, 1, s, buf),
                           entry("tail", MLTK_ST_U8, 1, s1, &tail) };
    return mltk_st_write(path, e, 2, kv, 1, err);
}

/* The file loads and is one generation throughout; its generation. */
static long check_gen(const char *path)
{
    mltk_st_file *f = open_ok(path);
    const char *g = mltk_st_meta(f, "gen");
    ck_assert_ptr_nonnull(g);
    long gen = atol(g);
    const mltk_st_tensor *w = mltk_st_find(f, "w"), *tail = mltk_st_find(f, "tail");
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(tail);
    ck_assert_uint_eq(w->nbytes, (size_t)GEN_N * 4);
    const float *v = w->data;
    for (int i = 0; i < GEN_N; i++)
        EXPECT(v[i] == (float)gen, "element %d is %g in generation %ld", i, v[i], gen);
    ck_assert_uint_eq(*(const uint8_t *)tail->data, (uint8_t)gen);
    mltk_st_close(f);
    return gen;
}

START_TEST(test_failed_write_keeps_old)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/ckpt.safetensors", dir);
    float *buf = malloc((size_t)GEN_N * 4);
    ck_assert_int_eq(write_gen(path, buf, 1, NULL), MLTK_OK);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = get_file(path, &n0);

    /* the temporary file cannot grow past 64 kB: write() fails with EFBIG */
    struct rlimit old, small;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 65536;
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    char *err = NULL;
    int rc = write_gen(path, buf, 2, &err);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    ck_assert_int_eq(rc, MLTK_ERR_IO);
    char *want = tu_fmt("%s: cannot write temporary file %s.tmp.%ld: File too large",
                        path, path, (long)getpid());
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;
    unsigned char *after = get_file(path, &n1);
    ck_assert_uint_eq(n1, n0);
    ck_assert(memcmp(before, after, n0) == 0);
    free(after);
    ck_assert_int_eq(count_temp_files(dir), 0);
    ck_assert_int_eq(check_gen(path), 1);

    /* a directory that does not exist */
    char *nodir = tu_fmt("%s/no/such/dir/x.safetensors", dir);
    ck_assert_int_eq(write_gen(nodir, buf, 3, &err), MLTK_ERR_IO);
    ck_assert_msg(strncmp(err, nodir, strlen(nodir)) == 0, "%s", err);
    TU_ASSERT_CONTAINS(err, "cannot create temporary file");
    TU_ASSERT_CONTAINS(err, "No such file or directory");
    free(err);
    err = NULL;
    free(nodir);

    /* the target is a directory: the rename fails, the temporary goes */
    char *sub = tu_fmt("%s/sub.safetensors", dir), *inner = tu_fmt("%s/keep", sub);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    free(tu_write(NULL, inner, "kept"));
    ck_assert_int_eq(write_gen(sub, buf, 4, &err), MLTK_ERR_IO);
    TU_ASSERT_CONTAINS(err, "cannot rename temporary file");
    TU_ASSERT_CONTAINS(err, strerror(EISDIR));
    free(err);
    err = NULL;
    ck_assert_int_eq(count_temp_files(dir), 0);
    char *kept = tu_read(inner);
    ck_assert_str_eq(kept, "kept");
    free(kept);

    /* a read-only directory (root may write anyway) */
    if (geteuid() != 0) {
        ck_assert_int_eq(chmod(dir, 0555), 0);
        ck_assert_int_eq(write_gen(path, buf, 5, &err), MLTK_ERR_IO);
        TU_ASSERT_CONTAINS(err, strerror(EACCES));
        free(err);
        err = NULL;
        ck_assert_int_eq(chmod(dir, 0755), 0);
        ck_assert_int_eq(check_gen(path), 1);
    }
    ck_assert_int_eq(count_temp_files(dir), 0);
    free(before);
    free(buf);
    free(sub);
    free(inner);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_killed_writer)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/ckpt.safetensors", dir);
    float *buf = malloc((size_t)GEN_N * 4);
    ck_assert_int_eq(write_gen(path, buf, 0, NULL), MLTK_OK);
    long last = 0;
    int killed_mid_write = 0;
    tu_rng_seed(20240611);
    for (int round = 0; round < 20; round++) {
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            for (long g = last + 1; g < last + 100000; g++)
                if (write_gen(path, buf, g, NULL))
                    _exit(3);
            _exit(0);
        }
        /* 1 to 60 ms; every fifth round long enough for several writes */
        useconds_t us = (useconds_t)(1000 + (tu_urand() + 1) * 29500);
        usleep(round % 5 == 4 ? 400000 : us);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "the writer ended by itself (status %d)", status);
        long gen = check_gen(path);
        ck_assert_msg(gen >= last, "generation went back from %ld to %ld", last, gen);
        last = gen;
        /* the killed process may leave its own temporary file, no other */
        char *tmp = tu_fmt("%s.tmp.%ld", path, (long)pid);
        int left = count_temp_files(dir);
        ck_assert_int_le(left, 1);
        if (left) {
            ck_assert_int_eq(unlink(tmp), 0);
            killed_mid_write++;
        }
        free(tmp);
    }
    /* the writers got somewhere, and were cut short at least once */
    ck_assert_int_gt(last, 0);
    ck_assert_int_gt(killed_mid_write, 0);
    free(buf);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* ---- driver modes for tests/test_st_interop.sh -------------------------- */

static void print_hex(const void *p, size_t n)
{
    const unsigned char *c = p;
    if (!n)
        fputs("-", stdout);
    for (size_t i = 0; i < n; i++)
        printf("%02x", c[i]);
}

static int driver(int argc, char **argv)
{
    char *err = NULL;
    int rc;
    if (strcmp(argv[1], "--write") == 0 && (argc == 3 || argc == 4)) {
        mltk_st_entry e[16];
        int n = fixture(e, !(argc == 4 && strcmp(argv[3], "nobf16") == 0));
        rc = mltk_st_write(argv[2], e, n, fx_meta, FX_N_META, &err);
    } else if (strcmp(argv[1], "--dump") == 0 && argc == 3) {
        mltk_st_file *f = NULL;
        rc = mltk_st_open(&f, argv[2], &err);
        for (int i = 0; !rc && i < mltk_st_meta_count(f); i++) {
            fputs("meta ", stdout);
            print_hex(mltk_st_meta_key(f, i), strlen(mltk_st_meta_key(f, i)));
            fputs(" ", stdout);
            print_hex(mltk_st_meta_value(f, i), strlen(mltk_st_meta_value(f, i)));
            fputs("\n", stdout);
        }
        for (int i = 0; !rc && i < mltk_st_count(f); i++) {
            const mltk_st_tensor *t = mltk_st_get(f, i);
            fputs("tensor ", stdout);
            print_hex(t->name, strlen(t->name));
            printf(" %s %d", mltk_st_dtype_name(t->dtype), t->ndim);
            for (int d = 0; d < t->ndim; d++)
                printf(" %lld", (long long)t->shape[d]);
            fputs(" ", stdout);
            print_hex(t->data, t->nbytes);
            fputs("\n", stdout);
        }
        mltk_st_close(f);
    } else {
        fprintf(stderr, "usage: %s [--write PATH [nobf16] | --dump PATH]\n", argv[0]);
        return 2;
    }
    if (rc)
        fprintf(stderr, "%s\n", err ? err : mltk_status_str(rc));
    free(err);
    return rc ? 1 : 0;
}

/* ---- the suite ---------------------------------------------------------- */

static Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *t = tcase_create("format");
    tcase_add_test(t, test_dtypes);
    tcase_add_test(t, test_roundtrip);
    tcase_add_test(t, test_exact_bytes);
    tcase_add_test(t, test_read_foreign_header);
    suite_add_tcase(s, t);

    t = tcase_create("rejection");
    tcase_add_test(t, test_truncated_every_length);
    tcase_add_test(t, test_header_length);
    tcase_add_test(t, test_bad_json);
    tcase_add_test(t, test_bad_tensors);
    tcase_add_test(t, test_write_invalid);
    suite_add_tcase(s, t);

    t = tcase_create("crash safety");
    tcase_add_test(t, test_failed_write_keeps_old);
    tcase_add_test(t, test_killed_writer);
    tcase_set_timeout(t, 120);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return driver(argc, argv);
    SRunner *sr = srunner_create(safetensors_suite());
    /* the crash tests change resource limits and fork writers */
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
