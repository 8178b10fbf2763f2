/* check_tbevents.c - tests of core/tbevents.c.
 *
 * What this is: CRC-32C against published check values and a bit-by-bit
 * CRC of the test's own; event files read back by a small TFRecord and
 * protobuf parser written here (lengths and both masked CRCs verified);
 * the exact bytes of a scalar event; histogram statistics and buckets of
 * hand-computed and random vectors, non-finite values left out; the text
 * event's tensor and plugin name; file naming, mkdir -p and errors.
 * What this is not: the interoperability test; tests/test_tb_interop.sh
 * has the files read by tests/tb_read.py and by TensorBoard itself.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "tbevents.h"
#include "testutil.h"

/* ---- an independent reader ----------------------------------------------- */

/* CRC-32C one bit at a time, straight from the definition. */
static uint32_t ref_crc32c(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ ((crc & 1) ? 0x82f63b78u : 0);
    }
    return ~crc;
}

static uint32_t ref_masked(const uint8_t *p, size_t n)
{
    uint32_t c = ref_crc32c(p, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static uint64_t le(const uint8_t *p, int nbytes)
{
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

typedef struct span {
    const uint8_t *p;
    size_t         n;
} span;

#define MAX_RECORDS 16

typedef struct tbfile {
    uint8_t *data;
    size_t   size;
    int      n;                 /* records */
    span     rec[MAX_RECORDS];  /* each record's Event bytes */
} tbfile;

/* Read a whole event file and split it into records, checking every
 * length against the file size and both CRCs. */
static void read_events(tbfile *t, const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    ck_assert_int_ge(size, 0);
    fseek(f, 0, SEEK_SET);
    t->data = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(t->data);
    ck_assert_uint_eq(fread(t->data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    t->size = (size_t)size;
    t->n = 0;
    size_t off = 0;
    while (off < t->size) {
        ck_assert_msg(t->size - off >= 16, "offset %zu: truncated record", off);
        uint64_t len = le(t->data + off, 8);
        ck_assert_msg(len <= t->size - off - 16, "offset %zu: length %llu past the end",
                      off, (unsigned long long)len);
        ck_assert_uint_eq(le(t->data + off + 8, 4), ref_masked(t->data + off, 8));
        const uint8_t *d = t->data + off + 12;
        ck_assert_uint_eq(le(d + len, 4), ref_masked(d, len));
        ck_assert_int_lt(t->n, MAX_RECORDS);
        t->rec[t->n++] = (span){ d, len };
        off += 16 + len;
    }
    ck_assert_uint_eq(off, t->size);
}

static uint64_t rd_varint(span m, size_t *pos)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        ck_assert_msg(*pos < m.n, "truncated varint");
        uint8_t b = m.p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    ck_abort_msg("varint too long");
    return 0;
}

/* The k-th (0-based) occurrence of `field` in message m: its wire type,
 * or -1 if absent.  Varints and fixed values go to *iv, length-delimited
 * bodies to *sv. */
static int pb_find(span m, int field, int k, uint64_t *iv, span *sv)
{
    size_t pos = 0;
    while (pos < m.n) {
        uint64_t key = rd_varint(m, &pos);
        int f = (int)(key >> 3), wire = (int)(key & 7);
        uint64_t ival = 0;
        span s = { NULL, 0 };
        switch (wire) {
        case 0: ival = rd_varint(m, &pos); break;
        case 1: ck_assert_uint_le(pos + 8, m.n); ival = le(m.p + pos, 8); pos += 8; break;
        case 5: ck_assert_uint_le(pos + 4, m.n); ival = le(m.p + pos, 4); pos += 4; break;
        case 2:
            s.n = rd_varint(m, &pos);
            ck_assert_uint_le(pos + s.n, m.n);
            s.p = m.p + pos;
            pos += s.n;
            break;
        default: ck_abort_msg("wire type %d", wire);
        }
        if (f == field && k-- == 0) {
            if (iv)
                *iv = ival;
            if (sv)
                *sv = s;
            return wire;
        }
    }
    return -1;
}

static span pb_msg(span m, int field)
{
    span s = { NULL, 0 };
    ck_assert_int_eq(pb_find(m, field, 0, NULL, &s), 2);
    return s;
}

static double pb_f64(span m, int field)
{
    uint64_t u = 0;
    int wire = pb_find(m, field, 0, &u, NULL);
    if (wire < 0)
        return 0.0; /* proto3 default */
    ck_assert_int_eq(wire, 1);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static double wall_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* The Summary.Value of an event, after checking its step */
static span event_value(span ev, int64_t step)
{
    uint64_t s = 0;
    if (pb_find(ev, 2, 0, &s, NULL) < 0)
        s = 0;
    ck_assert_int_eq((int64_t)s, step);
    span sum = pb_msg(ev, 5);
    ck_assert_int_eq(pb_find(sum, 1, 1, NULL, NULL), -1); /* one value */
    return pb_msg(sum, 1);
}

/* ---- CRC-32C ------------------------------------------------------------------ */

START_TEST(test_crc32c)
{
    ck_assert_uint_eq(mltk_crc32c("123456789", 9), 0xe3069283u);
    ck_assert_uint_eq(mltk_crc32c("", 0), 0);
    /* RFC 3720 (iSCSI) B.4: 32 bytes of zeros, 32 bytes of 0xff */
    uint8_t buf[256];
    memset(buf, 0, 32);
    ck_assert_uint_eq(mltk_crc32c(buf, 32), 0x8a9136aau);
    memset(buf, 0xff, 32);
    ck_assert_uint_eq(mltk_crc32c(buf, 32), 0x62a8ab43u);
    /* the mask of CRC 0 is the constant; rotation by 17 */
    ck_assert_uint_eq(mltk_crc32c_mask(0), 0xa282ead8u);
    ck_assert_uint_eq(mltk_crc32c_mask(0x00008000u), 0xa282ead8u + 1);
    ck_assert_uint_eq(mltk_crc32c_mask(1), 0xa282ead8u + 0x20000);
    /* the bitwise definition agrees at every length */
    tu_rng_seed(7);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)((tu_urand() + 1) * 128);
    for (size_t n = 0; n <= sizeof buf; n++)
        EXPECT(mltk_crc32c(buf, n) == ref_crc32c(buf, n), "length %zu", n);
}
END_TEST

/* ---- the file ---------------------------------------------------------------- */

START_TEST(test_open_name_and_version)
{
    char *tmp = tu_tmpdir();
    char *dir = tu_fmt("%s/runs/a/b", tmp);    /* missing: made like mkdir -p */
    mltk_tb_writer *w = NULL;
    char *err = NULL;
    double t0 = wall_now();
    ck_assert_int_eq(mltk_tb_open(&w, dir, "node/7 x", &err), MLTK_OK);
    double t1 = wall_now();
    ck_assert_ptr_null(err);
    const char *path = mltk_tb_path(w);
    char *prefix = tu_fmt("%s/events.out.tfevents.", dir);
    ck_assert_int_eq(strncmp(path, prefix, strlen(prefix)), 0);
    long long secs = 0;
    char host[64] = "";
    long pid = 0;
    ck_assert_int_eq(sscanf(path + strlen(prefix), "%lld.%63[^.].%ld.mltk", &secs, host,
                            &pid), 3);
    ck_assert_str_eq(host, "node_7_x");
    ck_assert_int_eq(pid, (long)getpid());
    /* time() reads the kernel's coarse clock, which may lag the precise one
     * by a tick across a second's boundary: one second of slack below */
    ck_assert(secs >= (long long)t0 - 1 && secs <= (long long)t1);
    ck_assert_str_eq(path + strlen(path) - 5, ".mltk");
    ck_assert_int_eq(mltk_tb_flush(w, &err), MLTK_OK);

    /* a second writer in the same second gets its own file */
    mltk_tb_writer *w2 = NULL;
    ck_assert_int_eq(mltk_tb_open(&w2, dir, "node/7 x", &err), MLTK_OK);
    ck_assert_str_ne(mltk_tb_path(w2), path);
    mltk_tb_close(w2);

    tbfile t;
    read_events(&t, path);
    ck_assert_int_eq(t.n, 1);
    /* Event{wall_time, file_version "brain.Event:2"}: 9 + 15 bytes */
    span ev = t.rec[0];
    ck_assert_uint_eq(ev.n, 24);
    ck_assert_uint_eq(ev.p[0], 0x09);
    double wall = pb_f64(ev, 1);
    ck_assert(wall >= t0 - 1e-3 && wall <= t1 + 1e-3);
    ck_assert_int_eq(memcmp(ev.p + 9, "\x1a\x0d" "brain.Event:2", 15), 0);

    free(t.data);
    free(prefix);
    mltk_tb_close(w);
    tu_rmtree(tmp);
    free(dir);
    free(tmp);
}
END_TEST

/* One scalar event, byte for byte, framing included. */
START_TEST(test_scalar_bytes)
{
    char *tmp = tu_tmpdir();
    mltk_tb_writer *w = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_tb_open(&w, tmp, "h", &err), MLTK_OK);
    double t0 = wall_now();
    ck_assert_int_eq(mltk_tb_scalar(w, "loss", 300, 0.5, &err), MLTK_OK);
    double t1 = wall_now();
    ck_assert_int_eq(mltk_tb_scalar(w, "acc", 0, -2.0, &err), MLTK_OK);
    ck_assert_int_eq(mltk_tb_scalar(w, "neg", -1, 1.0 / 3.0, &err), MLTK_OK);
    ck_assert_int_eq(mltk_tb_flush(w, &err), MLTK_OK);
    ck_assert_ptr_null(err);

    tbfile t;
    read_events(&t, mltk_tb_path(w));
    ck_assert_int_eq(t.n, 4);

    /* Event { wall_time: 1 (fixed64), step: 2 = 300, summary: 5 {
     *   value: 1 { tag: 1 = "loss", simple_value: 2 = 0.5f } } } */
    uint8_t want[12 + 27 + 4] = {
        27, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0,           /* length, its CRC */
        0x09, 0, 0, 0, 0, 0, 0, 0, 0,                   /* wall_time */
        0x10, 0xac, 0x02,                               /* step 300 */
        0x2a, 0x0d,                                     /* summary, 13 bytes */
        0x0a, 0x0b,                                     /* value, 11 bytes */
        0x0a, 0x04, 'l', 'o', 's', 's',                 /* tag */
        0x15, 0x00, 0x00, 0x00, 0x3f,                   /* 0.5f */
        0, 0, 0, 0                                      /* data CRC */
    };
    const uint8_t *rec = t.rec[1].p - 12;
    double wall = pb_f64(t.rec[1], 1);
    ck_assert(wall >= t0 - 1e-3 && wall <= t1 + 1e-3);
    memcpy(want + 13, t.rec[1].p + 1, 8);   /* the clock's bytes, checked above */
    uint32_t c = ref_masked(want, 8);
    for (int i = 0; i < 4; i++)
        want[8 + i] = (uint8_t)(c >> (8 * i));
    c = ref_masked(want + 12, 27);
    for (int i = 0; i < 4; i++)
        want[39 + i] = (uint8_t)(c >> (8 * i));
    ck_assert_uint_eq(t.rec[1].n, 27);
    for (size_t i = 0; i < sizeof want; i++)
        EXPECT(rec[i] == want[i], "byte %zu: 0x%02x, expected 0x%02x", i, rec[i], want[i]);

    /* step 0 is left out (proto3 default); -2.0f is 0xc0000000 */
    span ev = t.rec[2];
    ck_assert_int_eq(pb_find(ev, 2, 0, NULL, NULL), -1);
    span v = event_value(ev, 0);
    uint64_t u = 0;
    ck_assert_int_eq(pb_find(v, 2, 0, &u, NULL), 5);
    ck_assert_uint_eq(u, 0xc0000000u);
    /* a negative step is a 10-byte varint; the value is rounded to float */
    ev = t.rec[3];
    ck_assert_int_eq(memcmp(ev.p + 9, "\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11), 0);
    v = event_value(ev, -1);
    ck_assert_int_eq(pb_find(v, 2, 0, &u, NULL), 5);
    float third = 1.0f / 3.0f;
    uint32_t bits;
    memcpy(&bits, &third, 4);
    ck_assert_uint_eq(u, bits);

    free(t.data);
    mltk_tb_close(w);
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

/* ---- histograms ---------------------------------------------------------------- */

typedef struct histo {
    double min, max, num, sum, sum_squares;
    int    k;
    double limit[64], count[64];
} histo;

static void read_histo(span v, histo *h)
{
    span hp = pb_msg(v, 5);
    h->min = pb_f64(hp, 1);
    h->max = pb_f64(hp, 2);
    h->num = pb_f64(hp, 3);
    h->sum = pb_f64(hp, 4);
    h->sum_squares = pb_f64(hp, 5);
    span lim = pb_msg(hp, 6), cnt = pb_msg(hp, 7);
    ck_assert_uint_eq(lim.n % 8, 0);
    ck_assert_uint_eq(lim.n, cnt.n);
    h->k = (int)(lim.n / 8);
    ck_assert_int_le(h->k, 64);
    for (int i = 0; i < h->k; i++) {
        uint64_t a = le(lim.p + 8 * i, 8), b = le(cnt.p + 8 * i, 8);
        memcpy(&h->limit[i], &a, 8);
        memcpy(&h->count[i], &b, 8);
    }
}

/* Write histograms of the given vectors and read them back. */
static void histo_roundtrip(const float *const *vs, const int64_t *ns, int m, histo *out)
{
    char *tmp = tu_tmpdir();
    mltk_tb_writer *w = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_tb_open(&w, tmp, "h", &err), MLTK_OK);
    for (int i = 0; i < m; i++)
        ck_assert_int_eq(mltk_tb_histogram(w, "w", 10 + i, vs[i], ns[i], &err), MLTK_OK);
    ck_assert_int_eq(mltk_tb_flush(w, &err), MLTK_OK);
    tbfile t;
    read_events(&t, mltk_tb_path(w));
    ck_assert_int_eq(t.n, m + 1);
    for (int i = 0; i < m; i++) {
        span v = event_value(t.rec[i + 1], 10 + i);
        span tag = pb_msg(v, 1);
        ck_assert(tag.n == 1 && tag.p[0] == 'w');
        read_histo(v, &out[i]);
    }
    free(t.data);
    mltk_tb_close(w);
    tu_rmtree(tmp);
    free(tmp);
}

START_TEST(test_histogram_hand)
{
    const float a[] = { 2.0f, NAN, -1.0f, 0.5f, INFINITY, 0.0f, -INFINITY };
    const float c[] = { 4, 4, 4 };
    const float e[] = { NAN };
    const float *vs[] = { a, c, e, NULL };
    const int64_t ns[] = { 7, 3, 1, 0 };
    histo h[4];
    histo_roundtrip(vs, ns, 4, h);

    /* finite values -1, 0, 0.5, 2 */
    ck_assert_double_eq(h[0].min, -1.0);
    ck_assert_double_eq(h[0].max, 2.0);
    ck_assert_double_eq(h[0].num, 4.0);
    ck_assert_double_eq(h[0].sum, 1.5);
    ck_assert_double_eq(h[0].sum_squares, 5.25);
    ck_assert_int_eq(h[0].k, MLTK_TB_HISTO_BUCKETS);
    /* 30 buckets of width 0.1 from -1: -1 in bucket 0, 0 in bucket 10
     * ([0, 0.1)), 0.5 in bucket 15, 2 in the last */
    for (int i = 0; i < 30; i++) {
        double want = (i == 0 || i == 10 || i == 15 || i == 29) ? 1 : 0;
        EXPECT(h[0].count[i] == want, "bucket %d: %g, expected %g", i, h[0].count[i], want);
        EXPECT(fabs(h[0].limit[i] - (-1.0 + 0.1 * (i + 1))) < 1e-12, "limit %d: %.17g", i,
               h[0].limit[i]);
    }
    ck_assert_double_eq(h[0].limit[29], 2.0);

    /* all equal: one bucket */
    ck_assert_double_eq(h[1].min, 4.0);
    ck_assert_double_eq(h[1].max, 4.0);
    ck_assert_double_eq(h[1].num, 3.0);
    ck_assert_double_eq(h[1].sum, 12.0);
    ck_assert_double_eq(h[1].sum_squares, 48.0);
    ck_assert_int_eq(h[1].k, 1);
    ck_assert_double_eq(h[1].limit[0], 4.0);
    ck_assert_double_eq(h[1].count[0], 3.0);

    /* no finite value, or no value: empty, one bucket of count 0 */
    for (int j = 2; j < 4; j++) {
        ck_assert_double_eq(h[j].num, 0.0);
        ck_assert_double_eq(h[j].min, 0.0);
        ck_assert_double_eq(h[j].max, 0.0);
        ck_assert_double_eq(h[j].sum, 0.0);
        ck_assert_int_eq(h[j].k, 1);
        ck_assert_double_eq(h[j].count[0], 0.0);
    }
}
END_TEST

START_TEST(test_histogram_random)
{
    enum { N = 5000 };
    static float v[N];
    tu_rng_seed(42);
    for (int i = 0; i < N; i++)
        v[i] = (float)(3.0 * tu_urand() + 0.5 * tu_urand() * tu_urand());
    v[17] = NAN;
    v[4000] = -INFINITY;
    double mn = INFINITY, mx = -INFINITY, sum = 0, sq = 0;
    int num = 0;
    for (int i = 0; i < N; i++) {
        if (i == 17 || i == 4000)
            continue;
        mn = fmin(mn, v[i]);
        mx = fmax(mx, v[i]);
        sum += v[i];
        sq += (double)v[i] * v[i];
        num++;
    }
    const float *vs[] = { v };
    const int64_t ns[] = { N };
    histo h;
    histo_roundtrip(vs, ns, 1, &h);

    ck_assert_double_eq(h.min, mn);
    ck_assert_double_eq(h.max, mx);
    ck_assert_double_eq(h.num, (double)num);
    ck_assert_double_eq_tol(h.sum, sum, 1e-9 * N);
    ck_assert_double_eq_tol(h.sum_squares, sq, 1e-9 * sq);
    ck_assert_int_eq(h.k, MLTK_TB_HISTO_BUCKETS);
    double total = 0;
    for (int b = 0; b < h.k; b++) {
        /* equal widths, increasing, ending at max */
        double w = (mx - mn) / h.k;
        EXPECT(fabs(h.limit[b] - (mn + w * (b + 1))) < 1e-12, "limit %d", b);
        if (b)
            EXPECT(h.limit[b] > h.limit[b - 1], "limit %d not increasing", b);
        /* bucket b holds [limit[b-1], limit[b]), the last one max too */
        int want = 0;
        for (int i = 0; i < N; i++) {
            if (!isfinite(v[i]))
                continue;
            int in = (b == 0 || v[i] >= h.limit[b - 1]) &&
                     (v[i] < h.limit[b] || b == h.k - 1);
            want += in;
        }
        EXPECT(h.count[b] == want, "bucket %d: %g, expected %d", b, h.count[b], want);
        total += h.count[b];
    }
    ck_assert_double_eq(h.limit[h.k - 1], mx);
    ck_assert_double_eq(total, (double)num);
}
END_TEST

/* ---- texts ------------------------------------------------------------------------ */

START_TEST(test_text)
{
    char *tmp = tu_tmpdir();
    mltk_tb_writer *w = NULL;
    char *err = NULL;
    const char *text = "# run\n\n| lr | 0.1 |\n\xc3\xa9t\xc3\xa9";
    ck_assert_int_eq(mltk_tb_open(&w, tmp, "h", &err), MLTK_OK);
    ck_assert_int_eq(mltk_tb_text(w, "config", 5, text, &err), MLTK_OK);
    ck_assert_int_eq(mltk_tb_text(w, "empty", 6, "", &err), MLTK_OK);
    ck_assert_int_eq(mltk_tb_flush(w, &err), MLTK_OK);
    tbfile t;
    read_events(&t, mltk_tb_path(w));
    ck_assert_int_eq(t.n, 3);

    const char *want[] = { text, "" };
    for (int r = 0; r < 2; r++) {
        span v = event_value(t.rec[r + 1], 5 + r);
        ck_assert_int_eq(pb_find(v, 2, 0, NULL, NULL), -1);   /* no simple_value */
        span tensor = pb_msg(v, 8);
        uint64_t dtype = 0;
        ck_assert_int_eq(pb_find(tensor, 1, 0, &dtype, NULL), 0);
        ck_assert_uint_eq(dtype, 7);                            /* DT_STRING */
        ck_assert_uint_eq(pb_msg(tensor, 2).n, 0);              /* scalar shape */
        span s = pb_msg(tensor, 8);
        ck_assert_uint_eq(s.n, strlen(want[r]));
        ck_assert_int_eq(memcmp(s.p, want[r], s.n), 0);
        ck_assert_int_eq(pb_find(tensor, 8, 1, NULL, NULL), -1); /* one string */
        span name = pb_msg(pb_msg(pb_msg(v, 9), 1), 1);
        ck_assert(name.n == 4 && memcmp(name.p, "text", 4) == 0);
    }
    free(t.data);
    mltk_tb_close(w);
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------ */

START_TEST(test_errors)
{
    char *tmp = tu_tmpdir();
    char *file = tu_write(tmp, "plain", "x");
    char *under = tu_fmt("%s/sub", file);
    mltk_tb_writer *w = (mltk_tb_writer *)1;
    char *err = NULL;

    /* a component is a regular file */
    ck_assert_int_eq(mltk_tb_open(&w, under, NULL, &err), MLTK_ERR_IO);
    ck_assert_ptr_null(w);
    TU_ASSERT_CONTAINS(err, under);
    TU_ASSERT_CONTAINS(err, "Not a directory");
    free(err);
    err = NULL;
    /* the directory itself is a regular file */
    ck_assert_int_eq(mltk_tb_open(&w, file, NULL, &err), MLTK_ERR_IO);
    TU_ASSERT_CONTAINS(err, file);
    TU_ASSERT_CONTAINS(err, "not a directory");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_tb_open(&w, "", NULL, &err), MLTK_ERR_INVALID);
    free(err);
    err = NULL;

    /* an unwritable directory (root writes anywhere: not checked then) */
    if (geteuid() != 0) {
        char *ro = tu_fmt("%s/ro", tmp);
        ck_assert_int_eq(mkdir(ro, 0555), 0);
        ck_assert_int_eq(mltk_tb_open(&w, ro, "h", &err), MLTK_ERR_IO);
        TU_ASSERT_CONTAINS(err, ro);
        TU_ASSERT_CONTAINS(err, "Permission denied");
        free(err);
        err = NULL;
        chmod(ro, 0755);
        free(ro);
    }

    /* bad arguments leave the file as it was */
    ck_assert_int_eq(mltk_tb_open(&w, tmp, NULL, &err), MLTK_OK);
    ck_assert_int_eq(mltk_tb_scalar(w, "", 1, 1.0, &err), MLTK_ERR_INVALID);
    TU_ASSERT_CONTAINS(err, "empty tag");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_tb_histogram(w, "h", 1, NULL, 3, &err), MLTK_ERR_INVALID);
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_tb_histogram(w, "h", 1, NULL, -1, &err), MLTK_ERR_INVALID);
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_tb_text(w, "t", 1, NULL, &err), MLTK_ERR_INVALID);
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_tb_flush(w, &err), MLTK_OK);
    tbfile t;
    read_events(&t, mltk_tb_path(w));
    ck_assert_int_eq(t.n, 1);
    free(t.data);
    mltk_tb_close(w);
    mltk_tb_close(NULL);
    ck_assert_ptr_null(mltk_tb_path(NULL));

    tu_rmtree(tmp);
    free(under);
    free(file);
    free(tmp);
}
END_TEST

/* A write error shows at the flush at the latest, naming the file.  The
 * file size limit makes writes past 4 KiB fail with EFBIG. */
START_TEST(test_write_error)
{
    char *tmp = tu_tmpdir();
    mltk_tb_writer *w = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_tb_open(&w, tmp, "h", &err), MLTK_OK);
    char *path = tu_fmt("%s", mltk_tb_path(w));
    struct rlimit old, small;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = MLTK_OK, i;
    for (i = 0; i < 2000 && !rc; i++)  /* about 45 bytes each */
        rc = mltk_tb_scalar(w, "loss", i, 1.0, &err);
    if (!rc)
        rc = mltk_tb_flush(w, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    ck_assert_int_eq(rc, MLTK_ERR_IO);
    ck_assert_int_gt(i, 4096 / 64);  /* not before the limit */
    TU_ASSERT_CONTAINS(err, path);
    TU_ASSERT_CONTAINS(err, "File too large");
    free(err);
    err = NULL;
    /* the file may end in half a record: nothing more is appended */
    ck_assert_int_eq(mltk_tb_scalar(w, "loss", 1, 1.0, &err), MLTK_ERR_IO);
    TU_ASSERT_CONTAINS(err, "an earlier write failed");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_tb_flush(w, &err), MLTK_ERR_IO);
    free(err);
    free(path);
    mltk_tb_close(w);
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------- */

static Suite *tbevents_suite(void)
{
    Suite *s = suite_create("tbevents");
    TCase *tc = tcase_create("tbevents");
    tcase_add_test(tc, test_crc32c);
    tcase_add_test(tc, test_open_name_and_version);
    tcase_add_test(tc, test_scalar_bytes);
    tcase_add_test(tc, test_histogram_hand);
    tcase_add_test(tc, test_histogram_random);
    tcase_add_test(tc, test_text);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_write_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tbevents_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
