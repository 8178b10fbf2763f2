/* tbevents.c - TensorBoard event files: scalars, histograms and texts.
 *
 * What this is: a writer of the files TensorBoard reads, with no
 * dependency on TensorFlow or protobuf.  The Event, Summary,
 * HistogramProto and TensorProto messages are encoded by hand from their
 * field numbers (tensorflow/core/util/event.proto, framework/summary.proto,
 * tensor.proto, tensor_shape.proto), in the canonical order protobuf
 * itself writes: fields by number, proto3 defaults (0, empty) left out
 * except inside a oneof.  Each event is framed as a TFRecord with masked
 * CRC-32Cs (see tbevents.h).
 * What this is not: a reader (tests/tb_read.py and the test suite read
 * the files back independently), nor a general protobuf encoder: it knows
 * the few fields it writes and nothing else.  Images, audio, graphs and
 * the summary-v2 tensor forms of scalars and histograms are not written.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tbevents.h"

/* ---- CRC-32C ------------------------------------------------------------ */

/* mltk_crc32c itself is in util.c (checkpoints checksum their tensors
 * with it too); the TFRecord mask is this format's own. */
uint32_t mltk_crc32c_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

/* ---- protobuf wire format ------------------------------------------------- */

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

/* A growable byte buffer; after a failed allocation `oom` is set and every
 * later append is dropped, so encoders check once at the end. */
typedef struct pb_buf {
    uint8_t *p;
    size_t   len, cap;
    int      oom;
} pb_buf;

static int pb_reserve(pb_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *np = realloc(b->p, cap);
    if (!np) {
        b->oom = 1;
        return -1;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

static void pb_raw(pb_buf *b, const void *d, size_t n)
{
    if (n == 0 || pb_reserve(b, n))
        return;
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static size_t varint_encode(uint8_t out[10], uint64_t v)
{
    size_t k = 0;
    while (v >= 0x80) {
        out[k++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[k++] = (uint8_t)v;
    return k;
}

static void pb_varint(pb_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    pb_raw(b, tmp, varint_encode(tmp, v));
}

static void pb_key(pb_buf *b, int field, int wire)
{
    pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire);
}

static void pb_le(pb_buf *b, uint64_t v, int nbytes)
{
    uint8_t tmp[8];
    for (int i = 0; i < nbytes; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    pb_raw(b, tmp, (size_t)nbytes);
}

static uint64_t double_bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* A double field; `always` for oneof members, else +0.0 is left out. */
static void pb_double(pb_buf *b, int field, double v, int always)
{
    if (!always && double_bits(v) == 0)
        return;
    pb_key(b, field, WIRE_FIXED64);
    pb_le(b, double_bits(v), 8);
}

static void pb_float(pb_buf *b, int field, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    pb_key(b, field, WIRE_FIXED32);
    pb_le(b, u, 4);
}

static void pb_bytes(pb_buf *b, int field, const void *d, size_t n)
{
    pb_key(b, field, WIRE_LEN);
    pb_varint(b, n);
    pb_raw(b, d, n);
}

static void pb_packed_doubles(pb_buf *b, int field, const double *v, int n)
{
    if (n <= 0)
        return;
    pb_key(b, field, WIRE_LEN);
    pb_varint(b, (uint64_t)n * 8);
    for (int i = 0; i < n; i++)
        pb_le(b, double_bits(v[i]), 8);
}

/* A nested message: pb_open() writes the key and returns where the body
 * starts; pb_close() inserts the body's length in front of it once the
 * body is written.  Messages nest like parentheses. */
static size_t pb_open(pb_buf *b, int field)
{
    pb_key(b, field, WIRE_LEN);
    return b->len;
}

static void pb_close(pb_buf *b, size_t start)
{
    if (b->oom)
        return;
    uint8_t tmp[10];
    size_t k = varint_encode(tmp, b->len - start);
    if (pb_reserve(b, k))
        return;
    memmove(b->p + start + k, b->p + start, b->len - start);
    memcpy(b->p + start, tmp, k);
    b->len += k;
}

/* ---- events ------------------------------------------------------------- */

/* Field numbers, from event.proto and summary.proto */
enum {
    EVENT_WALL_TIME = 1, EVENT_STEP = 2, EVENT_FILE_VERSION = 3, EVENT_SUMMARY = 5,
    SUMMARY_VALUE = 1,
    VALUE_TAG = 1, VALUE_SIMPLE = 2, VALUE_HISTO = 5, VALUE_TENSOR = 8, VALUE_METADATA = 9,
    META_PLUGIN_DATA = 1, PLUGIN_NAME = 1,
    HISTO_MIN = 1, HISTO_MAX = 2, HISTO_NUM = 3, HISTO_SUM = 4, HISTO_SUM_SQUARES = 5,
    HISTO_BUCKET_LIMIT = 6, HISTO_BUCKET = 7,
    TENSOR_DTYPE = 1, TENSOR_SHAPE = 2, TENSOR_STRING_VAL = 8,
};

#define DT_STRING 7  /* types.proto */

struct mltk_tb_writer {
    FILE  *f;
    char  *path;
    pb_buf ev;       /* the event being encoded; reused */
    size_t sum_at;   /* where the open Summary and Value bodies start */
    size_t val_at;
    int    failed;   /* a write failed: the file may end in half a record */
};

static double wall_time(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* Start an Event{wall_time, step, summary{value{tag, ...}}}; the caller
 * writes the rest of the Value and calls value_end(). */
static void value_begin(mltk_tb_writer *w, const char *tag, int64_t step)
{
    pb_buf *b = &w->ev;
    b->len = 0;
    b->oom = 0;
    pb_double(b, EVENT_WALL_TIME, wall_time(), 0);
    if (step != 0) {
        pb_key(b, EVENT_STEP, WIRE_VARINT);
        pb_varint(b, (uint64_t)step);
    }
    w->sum_at = pb_open(b, EVENT_SUMMARY);
    w->val_at = pb_open(b, SUMMARY_VALUE);
    pb_bytes(b, VALUE_TAG, tag, strlen(tag));
}

static void value_end(mltk_tb_writer *w)
{
    pb_close(&w->ev, w->val_at);
    pb_close(&w->ev, w->sum_at);
}

static int write_failed(mltk_tb_writer *w, const char *what, char **err)
{
    w->failed = 1;
    return mltk_errf(err, MLTK_ERR_IO, "%s: %s failed: %s", w->path, what,
                     strerror(errno ? errno : EIO));
}

/* Frame w->ev as one TFRecord and hand it to stdio. */
static int write_record(mltk_tb_writer *w, char **err)
{
    const pb_buf *b = &w->ev;
    if (b->oom)
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory encoding an event",
                         w->path);
    uint8_t head[12], foot[4];
    for (int i = 0; i < 8; i++)
        head[i] = (uint8_t)((uint64_t)b->len >> (8 * i));
    uint32_t c = mltk_crc32c_mask(mltk_crc32c(head, 8));
    for (int i = 0; i < 4; i++)
        head[8 + i] = (uint8_t)(c >> (8 * i));
    c = mltk_crc32c_mask(mltk_crc32c(b->p, b->len));
    for (int i = 0; i < 4; i++)
        foot[i] = (uint8_t)(c >> (8 * i));
    errno = 0;
    if (fwrite(head, 1, sizeof head, w->f) != sizeof head ||
        fwrite(b->p, 1, b->len, w->f) != b->len ||
        fwrite(foot, 1, sizeof foot, w->f) != sizeof foot)
        return write_failed(w, "write", err);
    return MLTK_OK;
}

static int check_args(const mltk_tb_writer *w, const char *tag, const char *what,
                      char **err)
{
    if (!w)
        return mltk_errf(err, MLTK_ERR_INVALID, "tensorboard %s: no writer", what);
    if (w->failed)
        return mltk_errf(err, MLTK_ERR_IO, "%s: an earlier write failed; no more "
                         "events go to this file", w->path);
    if (!tag || !*tag)
        return mltk_errf(err, MLTK_ERR_INVALID, "%s: %s with an empty tag", w->path,
                         what);
    return MLTK_OK;
}

/* ---- opening the file ------------------------------------------------------ */


/* The host part of the file name: letters, digits, '.', '-' and '_'. */
static void host_name(char *out, size_t len, const char *given)
{
    char buf[256] = "";
    if (given)
        snprintf(buf, sizeof buf, "%s", given);
    else if (gethostname(buf, sizeof buf) != 0)
        buf[0] = '\0';
    buf[sizeof buf - 1] = '\0';
    size_t k = 0;
    for (const char *s = buf; *s && k + 1 < len; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
        out[k++] = ok ? c : '_';
    }
    out[k] = '\0';
    if (k == 0)
        snprintf(out, len, "localhost");
}

int mltk_tb_open(mltk_tb_writer **wp, const char *dir, const char *hostname,
                 char **err)
{
    *wp = NULL;
    if (!dir || !*dir)
        return mltk_errf(err, MLTK_ERR_INVALID, "tensorboard: empty log directory");
    int rc = mltk_mkdir_p(dir, err);
    if (rc)
        return rc;
    mltk_tb_writer *w = calloc(1, sizeof *w);
    if (!w)
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", dir);

    char host[128];
    host_name(host, sizeof host, hostname);
    long long now = (long long)time(NULL);
    long pid = (long)getpid();
    int fd = -1;
    for (int n = 0; fd < 0 && n < 1000; n++) {
        free(w->path);
        w->path = n ? mltk_strfmt("%s/events.out.tfevents.%lld.%s.%ld.mltk.%d", dir,
                                  now, host, pid, n)
                    : mltk_strfmt("%s/events.out.tfevents.%lld.%s.%ld.mltk", dir, now,
                                  host, pid);
        if (!w->path) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", dir);
            goto out;
        }
        fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) {
            rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot create file: %s", w->path,
                           strerror(errno));
            goto out;
        }
    }
    if (fd < 0) {
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot create file: %s", w->path,
                       strerror(EEXIST));
        goto out;
    }
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot open stream: %s", w->path,
                       strerror(errno));
        close(fd);
        goto out;
    }

    static const char version[] = "brain.Event:2";
    pb_double(&w->ev, EVENT_WALL_TIME, wall_time(), 0);
    pb_bytes(&w->ev, EVENT_FILE_VERSION, version, sizeof version - 1);
    rc = write_record(w, err);
out:
    if (rc) {
        if (w->f)
            fclose(w->f);
        free(w->path);
        free(w->ev.p);
        free(w);
        return rc;
    }
    *wp = w;
    return MLTK_OK;
}

/* ---- scalars, histograms, texts -------------------------------------------- */

int mltk_tb_scalar(mltk_tb_writer *w, const char *tag, int64_t step, double value,
                   char **err)
{
    int rc = check_args(w, tag, "scalar", err);
    if (rc)
        return rc;
    value_begin(w, tag, step);
    pb_float(&w->ev, VALUE_SIMPLE, (float)value);
    value_end(w);
    return write_record(w, err);
}

int mltk_tb_histogram(mltk_tb_writer *w, const char *tag, int64_t step,
                      const float *v, int64_t n, char **err)
{
    int rc = check_args(w, tag, "histogram", err);
    if (rc)
        return rc;
    if (n < 0 || (n > 0 && !v))
        return mltk_errf(err, MLTK_ERR_INVALID, "%s: histogram '%s': %s", w->path, tag,
                         n < 0 ? "negative number of values" : "no values given");

    /* statistics of the finite values */
    double mn = INFINITY, mx = -INFINITY, sum = 0, sq = 0;
    int64_t num = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = v[i];
        if (!isfinite(x))
            continue;
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
        sum += x;
        sq += x * x;
        num++;
    }

    /* equal-width buckets; limit[i] is the right edge of bucket i */
    double limit[MLTK_TB_HISTO_BUCKETS], count[MLTK_TB_HISTO_BUCKETS] = { 0 };
    int k = MLTK_TB_HISTO_BUCKETS;
    if (num == 0) {
        mn = mx = 0;
        k = 1;
        limit[0] = 0;
    } else if (mn == mx) {
        k = 1;
        limit[0] = mx;
        count[0] = (double)num;
    } else {
        for (int i = 0; i < k; i++)
            limit[i] = mn + (mx - mn) * (i + 1) / k;
        limit[k - 1] = mx;
        for (int64_t i = 0; i < n; i++) {
            double x = v[i];
            if (!isfinite(x))
                continue;
            int b = (int)((x - mn) / (mx - mn) * k);
            b = b < 0 ? 0 : b > k - 1 ? k - 1 : b;
            /* rounding may put x one bucket off its limits: follow them */
            while (b > 0 && x < limit[b - 1])
                b--;
            while (b < k - 1 && x >= limit[b])
                b++;
            count[b] += 1;
        }
    }

    value_begin(w, tag, step);
    size_t h = pb_open(&w->ev, VALUE_HISTO);
    pb_double(&w->ev, HISTO_MIN, mn, 0);
    pb_double(&w->ev, HISTO_MAX, mx, 0);
    pb_double(&w->ev, HISTO_NUM, (double)num, 0);
    pb_double(&w->ev, HISTO_SUM, sum, 0);
    pb_double(&w->ev, HISTO_SUM_SQUARES, sq, 0);
    pb_packed_doubles(&w->ev, HISTO_BUCKET_LIMIT, limit, k);
    pb_packed_doubles(&w->ev, HISTO_BUCKET, count, k);
    pb_close(&w->ev, h);
    value_end(w);
    return write_record(w, err);
}

int mltk_tb_text(mltk_tb_writer *w, const char *tag, int64_t step, const char *text,
                 char **err)
{
    int rc = check_args(w, tag, "text", err);
    if (rc)
        return rc;
    if (!text)
        return mltk_errf(err, MLTK_ERR_INVALID, "%s: text '%s' is NULL", w->path, tag);
    static const char plugin[] = "text";
    pb_buf *b = &w->ev;
    value_begin(w, tag, step);
    size_t t = pb_open(b, VALUE_TENSOR);
    pb_key(b, TENSOR_DTYPE, WIRE_VARINT);
    pb_varint(b, DT_STRING);
    pb_close(b, pb_open(b, TENSOR_SHAPE));  /* no dims: a scalar */
    pb_bytes(b, TENSOR_STRING_VAL, text, strlen(text));
    pb_close(b, t);
    size_t m = pb_open(b, VALUE_METADATA);
    size_t pd = pb_open(b, META_PLUGIN_DATA);
    pb_bytes(b, PLUGIN_NAME, plugin, sizeof plugin - 1);
    pb_close(b, pd);
    pb_close(b, m);
    value_end(w);
    return write_record(w, err);
}

/* ---- flushing and closing ----------------------------------------------------- */

int mltk_tb_flush(mltk_tb_writer *w, char **err)
{
    if (!w)
        return mltk_errf(err, MLTK_ERR_INVALID, "tensorboard flush: no writer");
    if (w->failed)
        return mltk_errf(err, MLTK_ERR_IO, "%s: an earlier write failed; no more "
                         "events go to this file", w->path);
    errno = 0;
    if (fflush(w->f) != 0 || ferror(w->f))
        return write_failed(w, "flush", err);
    return MLTK_OK;
}

void mltk_tb_close(mltk_tb_writer *w)
{
    if (!w)
        return;
    fclose(w->f);
    free(w->path);
    free(w->ev.p);
    free(w);
}

const char *mltk_tb_path(const mltk_tb_writer *w)
{
    return w ? w->path : NULL;
}
