/* csv.c - numeric tables in CSV files (RFC 4180) as a data set.
 *
 * What this is: a dataset plugin that reads one CSV file per split whole
 * into host memory as float32 features and int32 classes (classification)
 * or float32 targets (regression).  Records follow RFC 4180: fields are
 * separated by one delimiter byte, a field may be quoted with '"' (a
 * doubled quote inside stands for one, and a quoted field may span line
 * breaks), records end with LF or CR LF.  Outside quotes, spaces and tabs
 * around a field are dropped, a UTF-8 byte order mark at the start is
 * skipped and blank lines are skipped.  The first record is the header
 * when `header = true`.  Every other record must have as many fields as
 * the first.  Feature fields must be decimal numbers (no inf, no hex);
 * an empty field, NA, NaN (any case) or ? is a missing value, refused
 * unless `missing` says how to fill it in (targets are never filled in).
 *
 * The test split is parsed against the training file, which open("test")
 * therefore reads too: it takes the training file's header (the test
 * file's must be the same), its class mapping (a label the training file
 * lacks is an error) and, for `missing = mean`, its column means, so that
 * nothing about the test split leaks into how it is read.  Classes: when
 * every training label is an integer they are sorted by value (labels
 * 0..K-1 keep their values), otherwise the labels are strings sorted
 * bytewise; class i is the i-th, and info.class_names lists them.  The
 * checksum is the SHA-256 of the training file's bytes, followed by the
 * test file's for the test split.
 *
 * Every message about the data names the file and the line (and the
 * column: by header name, or by 0-based index without a header).  The
 * parser of the bytes is csv_parse_buffer() (csv.h), which the fuzz
 * harness tests/fuzz/fuzz_csv.c calls directly.
 *
 * What this is not: a streaming reader (tables are read whole), a reader
 * of categorical features (one-hot encode them first), or a scaler:
 * standardisation is the core's ([data] standardize), as are the
 * validation split, class balance and shuffling.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <mltk/plugin.h>

#include "csv.h"
#include "sha256.h"

/* ---- small helpers -------------------------------------------------------- */

static char *csv_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);

    if (p)
        memcpy(p, s, n);
    return p;
}

/* The array p (elements of `size` bytes, capacity *cap) grown to hold
 * need >= 1 elements: p itself when it does, a new pointer, or NULL when
 * out of memory or the size overflows (p is then still valid). */
static void *csv_grow(void *p, int64_t *cap, int64_t need, size_t size)
{
    int64_t c = *cap > 0 ? *cap : 16;
    size_t bytes;
    void *q;

    if (need <= *cap)
        return p;
    while (c < need) {
        if (c > INT64_MAX / 2)
            return NULL;
        c *= 2;
    }
    if (__builtin_mul_overflow((size_t)c, size, &bytes))
        return NULL;
    q = realloc(p, bytes);
    if (q)
        *cap = c;
    return q;
}

/* ---- numbers and missing values ------------------------------------------- */

/* A missing value: empty, NA, NaN (any case) or ?. */
static int csv_is_missing(const char *s)
{
    return s[0] == '\0' || strcmp(s, "?") == 0 || strcasecmp(s, "na") == 0 ||
           strcasecmp(s, "nan") == 0;
}

/* A decimal number: [+-] digits [. digits] [e [+-] digits], at least one
 * digit before the exponent.  0 and *v on success, -1 when s is not one,
 * -2 when it is one outside the range of float32. */
static int csv_number(const char *s, double *v)
{
    const char *p = s;
    int digits = 0;
    char *end;

    if (*p == '+' || *p == '-')
        p++;
    while (*p >= '0' && *p <= '9') {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
    }
    if (!digits)
        return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p)
        return -1;
    *v = strtod(s, &end);
    if (end != p)
        return -1;
    if (!isfinite(*v) || fabs(*v) > FLT_MAX)
        return -2;
    return 0;
}

/* ---- the tokenizer -------------------------------------------------------- */

typedef struct csv_reader {
    const char *file;
    const char *p, *end;
    char        delim;
    int64_t     line;       /* line of the byte at p, 1-based */
    int64_t     rec_line;   /* line where the current record starts */
    char       *tmp;        /* the record's fields, unquoted, each NUL-ended */
    size_t      used;
    int64_t    *off;        /* (n_fields) start of each field in tmp */
    int64_t     n_fields, off_cap;
    char *const *names;     /* (n_names) header names for messages, or NULL */
    int64_t     n_names;
} csv_reader;

/* Text from the file for a message: at most max bytes of s, each control
 * byte (a quoted line break) shown as '?', so that the message stays one
 * line; "..." marks a cut. */
static const char *csv_show(char *buf, size_t len, const char *s, size_t max)
{
    size_t i;

    if (max > len - 4)
        max = len - 4;
    for (i = 0; s[i] && i < max; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s[i])
        memcpy(buf + i, "...", 3), i += 3;
    buf[i] = '\0';
    return buf;
}

/* "column 'NAME'" or "column 3" */
static const char *csv_col(char *buf, size_t len, char *const *names, int64_t c)
{
    char name[128];

    if (names)
        snprintf(buf, len, "column '%s'", csv_show(name, sizeof(name), names[c], 100));
    else
        snprintf(buf, len, "column %lld", (long long)c);
    return buf;
}

/* the field being read, for messages */
static const char *csv_here(char *buf, size_t len, const csv_reader *r)
{
    return csv_col(buf, len, r->n_fields < r->n_names ? r->names : NULL, r->n_fields);
}

static int csv_space(const csv_reader *r, char c)
{
    return (c == ' ' || c == '\t' || c == '\r') && c != r->delim;
}

static int csv_too_long(csv_reader *r, char **err)
{
    return mltk_errf(err, MLTK_ERR_DATA, "%s:%lld: a record longer than %d bytes",
                     r->file, (long long)r->rec_line, CSV_MAX_RECORD);
}

/* Read the next record into r->tmp / r->off.  1: a record, 0: the end of
 * the data, or a status with *err. */
static int csv_record(csv_reader *r, char **err)
{
    const char *start, *lim;
    char col[256];

    /* blank lines */
    for (;;) {
        const char *q = r->p;
        while (q < r->end && csv_space(r, *q))
            q++;
        if (q < r->end && *q == '\n') {
            r->p = q + 1;
            r->line++;
            continue;
        }
        if (q == r->end)
            return 0;
        break;
    }
    r->rec_line = r->line;
    r->used = 0;
    r->n_fields = 0;
    start = r->p;
    lim = (size_t)(r->end - start) > CSV_MAX_RECORD ? start + CSV_MAX_RECORD : r->end;
    for (;;) {
        const char *p = r->p;
        size_t f0;

        int64_t *off = csv_grow(r->off, &r->off_cap, r->n_fields + 1, sizeof(*r->off));
        if (!off)
            return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", r->file);
        r->off = off;
        f0 = r->used;
        r->off[r->n_fields] = (int64_t)f0;
        while (p < lim && csv_space(r, *p))
            p++;
        if (p < lim && *p == '"') {
            int64_t qline = r->line;
            p++;
            for (;;) {
                if (p >= lim) {
                    if (lim < r->end)
                        return csv_too_long(r, err);
                    return mltk_errf(err, MLTK_ERR_DATA,
                                     "%s:%lld: %s: unterminated quote (the file "
                                     "ends inside the quoted field)", r->file,
                                     (long long)qline, csv_here(col, sizeof(col), r));
                }
                if (*p == '"') {
                    if (p + 1 < lim && p[1] == '"') {
                        r->tmp[r->used++] = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (*p == '\0')
                    return mltk_errf(err, MLTK_ERR_DATA,
                                     "%s:%lld: a NUL byte (this is not a text file)",
                                     r->file, (long long)r->line);
                if (*p == '\n')
                    r->line++;
                r->tmp[r->used++] = *p++;
            }
            while (p < lim && csv_space(r, *p))
                p++;
            if (p < lim && *p != r->delim && *p != '\n') {
                if (*p == '\0')
                    return mltk_errf(err, MLTK_ERR_DATA,
                                     "%s:%lld: a NUL byte (this is not a text file)",
                                     r->file, (long long)r->line);
                return mltk_errf(err, MLTK_ERR_DATA,
                                 "%s:%lld: %s: text after the closing quote",
                                 r->file, (long long)r->line, csv_here(col, sizeof(col), r));
            }
        } else {
            size_t last = r->used;     /* end of the field without trailing spaces */
            while (p < lim && *p != r->delim && *p != '\n') {
                if (*p == '"')
                    return mltk_errf(err, MLTK_ERR_DATA,
                                     "%s:%lld: %s: a quote inside an unquoted "
                                     "field (quote the whole field)", r->file,
                                     (long long)r->line, csv_here(col, sizeof(col), r));
                if (*p == '\0')
                    return mltk_errf(err, MLTK_ERR_DATA,
                                     "%s:%lld: a NUL byte (this is not a text file)",
                                     r->file, (long long)r->line);
                r->tmp[r->used++] = *p;
                if (!csv_space(r, *p))
                    last = r->used;
                p++;
            }
            r->used = last;
        }
        r->tmp[r->used++] = '\0';
        r->n_fields++;
        if (p >= lim && lim < r->end)
            return csv_too_long(r, err);
        if (p < lim && *p == r->delim) {
            r->p = p + 1;
            continue;
        }
        if (p < lim) {             /* '\n' */
            r->p = p + 1;
            r->line++;
        } else {
            r->p = p;
        }
        return 1;
    }
}

static const char *csv_field(const csv_reader *r, int64_t i)
{
    return r->tmp + r->off[i];
}

/* ---- columns -------------------------------------------------------------- */

/* Resolve the comma-separated names or indices of `spec` (key `key`) into
 * cols (at most max).  Returns the count, or -1 with *err. */
static int64_t csv_columns(int64_t *cols, int64_t max, const char *spec, const char *key,
                           char *const *names, int64_t n_cols, const char *file,
                           int64_t line, int *rc, char **err)
{
    int64_t n = 0;
    const char *p = spec;

    for (;;) {
        const char *a = p, *b;
        char item[256], show[128];
        size_t len;
        int64_t c = -1, j;

        while (*p && *p != ',')
            p++;
        b = p;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        len = (size_t)(b - a);
        if (len == 0 || len >= sizeof(item)) {
            *rc = mltk_errf(err, MLTK_ERR_CONFIG,
                            "%s: key '%s': '%s' is not a list of column names or "
                            "indices", file, key, spec);
            return -1;
        }
        memcpy(item, a, len);
        item[len] = '\0';
        if (names) {
            for (j = 0; j < n_cols; j++) {
                if (strcmp(names[j], item) != 0)
                    continue;
                if (c >= 0) {
                    *rc = mltk_errf(err, MLTK_ERR_CONFIG,
                                    "%s:%lld: key '%s': the header names columns %lld "
                                    "and %lld '%s'; select one by its index", file,
                                    (long long)line, key, (long long)c, (long long)j,
                                    csv_show(show, sizeof(show), item, 100));
                    return -1;
                }
                c = j;
            }
        }
        if (c < 0 && strspn(item, "0123456789") == len) {
            errno = 0;
            long long v = strtoll(item, NULL, 10);
            if (errno || v >= n_cols) {
                *rc = mltk_errf(err, MLTK_ERR_CONFIG,
                                "%s:%lld: key '%s': column index %s, but the records "
                                "have %lld fields (indices 0 to %lld)", file,
                                (long long)line, key, item, (long long)n_cols,
                                (long long)(n_cols - 1));
                return -1;
            }
            c = v;
        }
        if (c < 0) {
            *rc = mltk_errf(err, MLTK_ERR_CONFIG,
                            names ? "%s:%lld: key '%s': no column named '%s' in the header"
                                  : "%s:%lld: key '%s': '%s' is not a column index "
                                    "(the file has no header: header = false)",
                            file, (long long)line, key, csv_show(show, sizeof(show), item, 100));
            return -1;
        }
        for (j = 0; j < n; j++)
            if (cols[j] == c) {
                *rc = mltk_errf(err, MLTK_ERR_CONFIG,
                                "%s:%lld: key '%s': column %lld is listed twice", file,
                                (long long)line, key, (long long)c);
                return -1;
            }
        if (n == max) {
            *rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s: key '%s': more columns than "
                            "the %lld the records have", file, key, (long long)max);
            return -1;
        }
        cols[n++] = c;
        if (!*p)
            break;
        p++;
    }
    return n;
}

/* ---- labels of a training file -------------------------------------------- */

/* The distinct labels, first seen first, with an open-addressing index. */
typedef struct csv_labels {
    char   **text;      /* (n) */
    int64_t  n, cap;
    int32_t *slot;      /* (n_slots) id + 1, 0 empty */
    int64_t  n_slots;
} csv_labels;

static uint64_t csv_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

/* The id of label s, added when new: >= 0, -1 out of memory, -2 too many. */
static int64_t csv_label_id(csv_labels *L, const char *s)
{
    uint64_t h;
    int64_t i;

    if (L->n * 2 >= L->n_slots) {
        int64_t ns = L->n_slots ? L->n_slots * 2 : 64;
        int32_t *slot = calloc((size_t)ns, sizeof(*slot));
        if (!slot)
            return -1;
        for (i = 0; i < L->n; i++) {
            uint64_t k = csv_hash(L->text[i]) & (uint64_t)(ns - 1);
            while (slot[k])
                k = (k + 1) & (uint64_t)(ns - 1);
            slot[k] = (int32_t)(i + 1);
        }
        free(L->slot);
        L->slot = slot;
        L->n_slots = ns;
    }
    h = csv_hash(s) & (uint64_t)(L->n_slots - 1);
    while (L->slot[h]) {
        if (strcmp(L->text[L->slot[h] - 1], s) == 0)
            return L->slot[h] - 1;
        h = (h + 1) & (uint64_t)(L->n_slots - 1);
    }
    if (L->n >= CSV_MAX_CLASSES)
        return -2;
    char **text = csv_grow(L->text, &L->cap, L->n + 1, sizeof(*L->text));
    if (!text)
        return -1;
    L->text = text;
    L->text[L->n] = csv_strdup(s);
    if (!L->text[L->n])
        return -1;
    L->slot[h] = (int32_t)(L->n + 1);
    return L->n++;
}

static void csv_labels_free(csv_labels *L)
{
    for (int64_t i = 0; i < L->n; i++)
        free(L->text[i]);
    free(L->text);
    free(L->slot);
}

/* An integer label: a number with no fraction within +-2^53. */
static int csv_int_label(const char *s, double *v)
{
    return csv_number(s, v) == 0 && *v == floor(*v) && fabs(*v) <= 9007199254740992.0;
}

static int csv_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct csv_text_id {
    const char *text;
    int64_t     id;
} csv_text_id;

static int csv_cmp_text_id(const void *a, const void *b)
{
    return strcmp(((const csv_text_id *)a)->text, ((const csv_text_id *)b)->text);
}

static int csv_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The classes of a training file from its distinct labels L: d->n_classes,
 * class_names, int_labels, class_values, and d->yc rewritten from label ids
 * to classes. */
static int csv_classes(csv_data *d, csv_labels *L, const char *file, char **err)
{
    int64_t *cls = malloc((size_t)(L->n ? L->n : 1) * sizeof(*cls));
    double *val = malloc((size_t)(L->n ? L->n : 1) * sizeof(*val));
    int64_t i, k = 0;
    int rc = MLTK_OK;

    if (!cls || !val) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", file);
        goto out;
    }
    d->int_labels = 1;
    for (i = 0; i < L->n && d->int_labels; i++)
        d->int_labels = csv_int_label(L->text[i], &val[i]);
    if (d->int_labels) {
        double *u = malloc((size_t)(L->n ? L->n : 1) * sizeof(*u));
        if (!u) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", file);
            goto out;
        }
        memcpy(u, val, (size_t)L->n * sizeof(*u));
        qsort(u, (size_t)L->n, sizeof(*u), csv_cmp_double);
        for (i = 0; i < L->n; i++)          /* unique: "1" and "1.0" are one class */
            if (k == 0 || u[i] != u[k - 1])
                u[k++] = u[i];
        d->class_values = u;
        for (i = 0; i < L->n; i++) {
            const double *hit = bsearch(&val[i], u, (size_t)k, sizeof(*u), csv_cmp_double);
            cls[i] = hit - u;
        }
    } else {
        csv_text_id *ord = malloc((size_t)(L->n ? L->n : 1) * sizeof(*ord));
        if (!ord) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", file);
            goto out;
        }
        for (i = 0; i < L->n; i++) {
            ord[i].text = L->text[i];
            ord[i].id = i;
        }
        qsort(ord, (size_t)L->n, sizeof(*ord), csv_cmp_text_id);
        for (i = 0; i < L->n; i++)
            cls[ord[i].id] = i;
        free(ord);
        k = L->n;
    }
    d->n_classes = k;
    d->class_names = calloc((size_t)(k ? k : 1), sizeof(*d->class_names));
    if (!d->class_names) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", file);
        goto out;
    }
    for (i = 0; i < k; i++) {
        char buf[32];
        if (d->int_labels)
            snprintf(buf, sizeof(buf), "%lld", (long long)d->class_values[i]);
        d->class_names[i] = csv_strdup(d->int_labels ? buf : "");
        if (!d->class_names[i]) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", file);
            goto out;
        }
    }
    if (!d->int_labels)
        for (i = 0; i < L->n; i++) {
            free(d->class_names[cls[i]]);
            d->class_names[cls[i]] = L->text[i];
            L->text[i] = NULL;
        }
    for (i = 0; i < d->n; i++)
        d->yc[i] = (int32_t)cls[d->yc[i]];
out:
    free(cls);
    free(val);
    return rc;
}

/* The class of label s in a test file: >= 0, or -1 when the training file
 * does not have it. */
static int64_t csv_test_class(const csv_data *t, const char *s)
{
    if (t->int_labels) {
        double v;
        const double *hit;
        if (!csv_int_label(s, &v))
            return -1;
        hit = bsearch(&v, t->class_values, (size_t)t->n_classes, sizeof(v), csv_cmp_double);
        return hit ? hit - t->class_values : -1;
    } else {
        char *const *hit = bsearch(&s, t->class_names, (size_t)t->n_classes,
                                   sizeof(*t->class_names), csv_cmp_str);
        return hit ? hit - t->class_names : -1;
    }
}

/* ---- the parser ----------------------------------------------------------- */

void csv_free(csv_data *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->yc);
    free(d->yv);
    if (d->class_names)
        for (int64_t i = 0; i < d->n_classes; i++)
            free(d->class_names[i]);
    free(d->class_names);
    free(d->class_values);
    free(d->means);
    if (d->col_names)
        for (int64_t i = 0; i < d->n_cols; i++)
            free(d->col_names[i]);
    free(d->col_names);
    free(d->feat_cols);
    free(d->targ_cols);
    memset(d, 0, sizeof(*d));
}

/* Set up the columns of d from the first record (r->n_fields of them):
 * the header names, the targets and the features. */
static int csv_setup_columns(csv_data *d, const csv_opts *o, const csv_reader *r,
                             const csv_data *train, char **err)
{
    int64_t i, j, n_cols = r->n_fields;
    int rc = MLTK_OK;
    uint8_t *is_target;
    char buf[256];

    if (n_cols < 1 || n_cols > CSV_MAX_RECORD)    /* the reader's bound */
        return mltk_errf(err, MLTK_ERR_DATA, "%s:%lld: %lld fields", r->file,
                         (long long)r->rec_line, (long long)n_cols);
    if (train) {
        /* a test file: the training file's columns, checked */
        if (n_cols != train->n_cols)
            return mltk_errf(err, MLTK_ERR_DATA,
                             "%s:%lld: %lld fields, expected %lld as in the training file",
                             r->file, (long long)r->rec_line, (long long)n_cols,
                             (long long)train->n_cols);
        if (o->header)
            for (i = 0; i < n_cols; i++)
                if (strcmp(csv_field(r, i), train->col_names[i]) != 0)
                    return mltk_errf(err, MLTK_ERR_DATA,
                                     "%s:%lld: column %lld is named '%s', but '%s' "
                                     "in the training file", r->file,
                                     (long long)r->rec_line, (long long)i,
                                     csv_show(buf, 128, csv_field(r, i), 100),
                                     csv_show(buf + 128, 128, train->col_names[i], 100));
    }
    d->n_cols = n_cols;
    if (o->header) {
        d->col_names = calloc((size_t)n_cols, sizeof(*d->col_names));
        if (!d->col_names)
            return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", r->file);
        for (i = 0; i < n_cols; i++)
            if (!(d->col_names[i] = csv_strdup(csv_field(r, i))))
                return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", r->file);
    }
    d->targ_cols = malloc((size_t)n_cols * sizeof(*d->targ_cols));
    d->feat_cols = malloc((size_t)n_cols * sizeof(*d->feat_cols));
    is_target = calloc((size_t)n_cols, 1);
    if (!d->targ_cols || !d->feat_cols || !is_target) {
        free(is_target);
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", r->file);
    }
    d->n_targets = csv_columns(d->targ_cols, n_cols, o->target, "target", d->col_names,
                               n_cols, r->file, r->rec_line, &rc, err);
    if (d->n_targets < 0)
        goto out;
    if (o->classify && d->n_targets != 1) {
        rc = mltk_errf(err, MLTK_ERR_CONFIG,
                       "%s: key 'target' names %lld columns, but a classification has "
                       "one target column", r->file, (long long)d->n_targets);
        goto out;
    }
    for (i = 0; i < d->n_targets; i++)
        is_target[d->targ_cols[i]] = 1;
    if (o->features && *o->features) {
        d->n_features = csv_columns(d->feat_cols, n_cols, o->features, "features",
                                    d->col_names, n_cols, r->file, r->rec_line, &rc, err);
        if (d->n_features < 0)
            goto out;
        for (i = 0; i < d->n_features; i++)
            if (is_target[d->feat_cols[i]]) {
                rc = mltk_errf(err, MLTK_ERR_CONFIG,
                               "%s: key 'features': %s is also a target", r->file,
                               csv_col(buf, sizeof(buf), d->col_names, d->feat_cols[i]));
                goto out;
            }
    } else {
        for (i = 0, j = 0; i < n_cols; i++)
            if (!is_target[i])
                d->feat_cols[j++] = i;
        d->n_features = j;
    }
    if (d->n_features == 0)
        rc = mltk_errf(err, MLTK_ERR_CONFIG,
                       "%s: no feature columns: every column is a target", r->file);
out:
    free(is_target);
    return rc;
}

/* One numeric field of column c on the current record into *v: 0, 1 when
 * it is missing (and may be), or a status with *err. */
static int csv_value(const csv_reader *r, const csv_data *d, int64_t c, int may_miss,
                     int is_target, double *v, int *rc, char **err)
{
    const char *s = csv_field(r, c);
    char col[256], show[80];
    int e;

    if (csv_is_missing(s)) {
        if (may_miss)
            return 1;
        *rc = mltk_errf(err, MLTK_ERR_DATA, "%s:%lld: %s: missing value%s", r->file,
                        (long long)r->rec_line, csv_col(col, sizeof(col), d->col_names, c),
                        is_target ? " (a target is never filled in)" : "");
        return -1;
    }
    e = csv_number(s, v);
    if (e == 0)
        return 0;
    *rc = mltk_errf(err, MLTK_ERR_DATA,
                    e == -2 ? "%s:%lld: %s: '%s' is outside the range of float32"
                            : "%s:%lld: %s: '%s' is not a number",
                    r->file, (long long)r->rec_line,
                    csv_col(col, sizeof(col), d->col_names, c),
                    csv_show(show, sizeof(show), s, 60));
    return -1;
}

int csv_parse_buffer(csv_data *out, const csv_opts *o, const char *file,
                     const char *buf, size_t len, const csv_data *train, char **err)
{
    csv_reader r;
    csv_data d;
    csv_labels L;
    int64_t cap_rows = 0, cap_x = 0, cap_y = 0, i, j;
    double *sum = NULL;
    int64_t *count = NULL;
    int have_cols = 0, any_missing = 0, rc = MLTK_OK, k;
    char col[256], show[80];

    memset(out, 0, sizeof(*out));
    memset(&d, 0, sizeof(d));
    memset(&L, 0, sizeof(L));
    memset(&r, 0, sizeof(r));
    r.file = file;
    r.p = buf;
    r.end = buf + len;
    r.delim = o->delim;
    r.line = 1;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        r.p += 3;
    /* a record's fields, unquoted, take at most its length + 1 bytes */
    r.tmp = malloc((len < CSV_MAX_RECORD ? len : CSV_MAX_RECORD) + 2);
    if (!r.tmp) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", file);
        goto out;
    }

    while ((k = csv_record(&r, err)) == 1) {
        if (!have_cols) {
            rc = csv_setup_columns(&d, o, &r, train, err);
            if (rc)
                goto out;
            have_cols = 1;
            r.names = d.col_names;
            r.n_names = d.col_names ? d.n_cols : 0;
            if (!train && o->missing == CSV_MISSING_MEAN) {
                sum = calloc((size_t)d.n_features, sizeof(*sum));
                count = calloc((size_t)d.n_features, sizeof(*count));
                if (!sum || !count) {
                    rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", file);
                    goto out;
                }
            }
            if (o->header)
                continue;
        }
        if (r.n_fields != d.n_cols) {
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s:%lld: %lld fields, expected %lld%s",
                           file, (long long)r.rec_line, (long long)r.n_fields,
                           (long long)d.n_cols, o->header ? " as in the header" : "");
            goto out;
        }
        if (d.n >= CSV_MAX_ROWS) {
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s:%lld: more than %lld data rows", file,
                           (long long)r.rec_line, (long long)CSV_MAX_ROWS);
            goto out;
        }
        if (d.n + 1 > cap_rows) {
            int64_t need_x, need_y;
            int64_t rows = cap_rows ? cap_rows * 2 : 64;
            float *nx = NULL, *nyv = NULL;
            int32_t *nyc = NULL;
            if (!__builtin_mul_overflow(rows, d.n_features, &need_x) &&
                !__builtin_mul_overflow(rows, d.n_targets, &need_y)) {
                if ((nx = csv_grow(d.x, &cap_x, need_x, sizeof(*d.x))))
                    d.x = nx;
                if (nx && o->classify && (nyc = csv_grow(d.yc, &cap_y, rows, sizeof(*d.yc))))
                    d.yc = nyc;
                if (nx && !o->classify &&
                    (nyv = csv_grow(d.yv, &cap_y, need_y, sizeof(*d.yv))))
                    d.yv = nyv;
            }
            if (!nx || (!nyc && !nyv)) {
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s:%lld: out of memory for %lld rows",
                               file, (long long)r.rec_line, (long long)rows);
                goto out;
            }
            cap_rows = rows;
        }
        for (j = 0; j < d.n_features; j++) {
            double v = 0;
            int m = csv_value(&r, &d, d.feat_cols[j], o->missing != CSV_MISSING_REFUSE,
                              0, &v, &rc, err);
            if (m < 0)
                goto out;
            if (m == 1) {
                any_missing = 1;
                d.x[d.n * d.n_features + j] = o->missing == CSV_MISSING_ZERO ? 0.0f : NAN;
                continue;
            }
            d.x[d.n * d.n_features + j] = (float)v;
            if (sum) {
                sum[j] += v;
                count[j]++;
            }
        }
        if (o->classify) {
            const char *s = csv_field(&r, d.targ_cols[0]);
            int64_t id;
            if (csv_is_missing(s)) {
                rc = mltk_errf(err, MLTK_ERR_DATA,
                               "%s:%lld: %s: missing value (a target is never filled in)",
                               file, (long long)r.rec_line,
                               csv_col(col, sizeof(col), d.col_names, d.targ_cols[0]));
                goto out;
            }
            if (train) {
                id = csv_test_class(train, s);
                if (id < 0) {
                    rc = mltk_errf(err, MLTK_ERR_DATA,
                                   "%s:%lld: %s: label '%s' does not occur in the "
                                   "training file", file, (long long)r.rec_line,
                                   csv_col(col, sizeof(col), d.col_names, d.targ_cols[0]),
                                   csv_show(show, sizeof(show), s, 60));
                    goto out;
                }
            } else {
                id = csv_label_id(&L, s);
                if (id == -1) {
                    rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", file);
                    goto out;
                }
                if (id == -2) {
                    rc = mltk_errf(err, MLTK_ERR_DATA,
                                   "%s:%lld: %s: more than %d distinct labels (is this a "
                                   "regression target? task = regression)", file,
                                   (long long)r.rec_line,
                                   csv_col(col, sizeof(col), d.col_names, d.targ_cols[0]),
                                   CSV_MAX_CLASSES);
                    goto out;
                }
            }
            d.yc[d.n] = (int32_t)id;
        } else {
            for (j = 0; j < d.n_targets; j++) {
                double v = 0;
                if (csv_value(&r, &d, d.targ_cols[j], 0, 1, &v, &rc, err) < 0)
                    goto out;
                d.yv[d.n * d.n_targets + j] = (float)v;
            }
        }
        d.n++;
    }
    if (k < 0) {
        rc = k;
        goto out;
    }
    if (!have_cols) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s:%lld: the file is empty (expected %s)",
                       file, (long long)r.line,
                       o->header ? "a header and data rows" : "data rows");
        goto out;
    }
    if (d.n == 0) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s:%lld: no data rows after the header",
                       file, (long long)r.line);
        goto out;
    }

    /* the classes, and the missing values filled in */
    if (o->classify) {
        if (train) {
            d.n_classes = train->n_classes;
        } else {
            rc = csv_classes(&d, &L, file, err);
            if (rc)
                goto out;
        }
    }
    if (o->missing == CSV_MISSING_MEAN) {
        d.means = malloc((size_t)d.n_features * sizeof(*d.means));
        if (!d.means) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", file);
            goto out;
        }
        for (j = 0; j < d.n_features; j++) {
            if (train) {
                d.means[j] = train->means[j];
                continue;
            }
            if (count[j] == 0) {
                rc = mltk_errf(err, MLTK_ERR_DATA,
                               "%s: %s: every value is missing, so missing = mean has "
                               "no mean", file,
                               csv_col(col, sizeof(col), d.col_names, d.feat_cols[j]));
                goto out;
            }
            d.means[j] = sum[j] / (double)count[j];
        }
        if (any_missing)
            for (i = 0; i < d.n; i++)
                for (j = 0; j < d.n_features; j++)
                    if (isnan(d.x[i * d.n_features + j]))
                        d.x[i * d.n_features + j] = (float)d.means[j];
    }
    *out = d;
    memset(&d, 0, sizeof(d));
out:
    csv_free(&d);
    csv_labels_free(&L);
    free(sum);
    free(count);
    free(r.tmp);
    free(r.off);
    return rc;
}

/* ---- the data set --------------------------------------------------------- */

typedef struct csv_set {
    csv_data d;
    char     checksum[65];
} csv_set;

/* dir/name, or name when it is absolute or dir is empty */
static char *csv_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p;

    if (name[0] == '/' || a == 0)
        return csv_strdup(name);
    p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    if (dir[a - 1] != '/')
        p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}

/* The whole file at path into *buf (*len bytes), hashed into sha. */
static int csv_slurp(const char *path, char **buf, size_t *len, sha256 *sha, char **err)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    size_t cap = 1 << 16, n = 0;
    char *b = NULL;
    int rc = MLTK_OK;

    *buf = NULL;
    *len = 0;
    if (!f)
        return mltk_errf(err, MLTK_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            fclose(f);
            return mltk_errf(err, MLTK_ERR_IO, "cannot open %s: %s", path, strerror(EISDIR));
        }
        if (S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size < SIZE_MAX - 1)
            cap = (size_t)st.st_size + 1;
    }
    for (;;) {
        size_t k;
        if (n == cap || !b) {
            size_t nc = !b ? cap : cap * 2;
            char *q;
            if (b && nc < cap) {
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: too large to read", path);
                goto out;
            }
            q = realloc(b, nc);
            if (!q) {
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for %zu bytes",
                               path, nc);
                goto out;
            }
            b = q;
            cap = nc;
        }
        k = fread(b + n, 1, cap - n, f);
        n += k;
        if (k == 0) {
            if (ferror(f)) {
                rc = mltk_errf(err, MLTK_ERR_IO, "%s: read error at byte %zu: %s", path,
                               n, strerror(errno));
                goto out;
            }
            break;
        }
    }
    sha256_update(sha, b, n);
    *buf = b;
    *len = n;
    b = NULL;
out:
    free(b);
    fclose(f);
    return rc;
}

static void csv_close(void *self)
{
    csv_set *s = self;

    if (!s)
        return;
    csv_free(&s->d);
    free(s);
}

static int csv_opts_from(csv_opts *o, const mltk_params_t *params, char **err)
{
    const char *delim = mltk_params_str(params, "delimiter");
    const char *missing = mltk_params_str(params, "missing");

    memset(o, 0, sizeof(*o));
    if (strcmp(delim, "comma") == 0)
        o->delim = ',';
    else if (strcmp(delim, "semicolon") == 0)
        o->delim = ';';
    else if (strcmp(delim, "tab") == 0 || strcmp(delim, "\\t") == 0)
        o->delim = '\t';
    else if (strcmp(delim, "space") == 0)
        o->delim = ' ';
    else if (strcmp(delim, "pipe") == 0)
        o->delim = '|';
    else if (strlen(delim) == 1 && delim[0] != '"' && delim[0] != '\n' && delim[0] != '\r')
        o->delim = delim[0];
    else
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "key 'delimiter' must be one character other than a quote, "
                         "or comma, semicolon, tab, space or pipe (got '%s')", delim);
    o->header = mltk_params_bool(params, "header");
    o->classify = strcmp(mltk_params_str(params, "task"), "regression") != 0;
    o->missing = strcmp(missing, "zero") == 0   ? CSV_MISSING_ZERO
                 : strcmp(missing, "mean") == 0 ? CSV_MISSING_MEAN
                                                : CSV_MISSING_REFUSE;
    o->target = mltk_params_str(params, "target");
    o->features = mltk_params_str(params, "features");
    return MLTK_OK;
}

static int csv_open(void **self, const mltk_params_t *params, const char *split,
                    char **err)
{
    const char *dir = mltk_params_str(params, "path");
    char *train_path = NULL, *test_path = NULL, *buf = NULL;
    csv_data train;
    csv_opts o;
    csv_set *s = NULL;
    size_t len;
    sha256 sha;
    int test, rc;

    memset(&train, 0, sizeof(train));
    *self = NULL;
    if (split && (strcmp(split, "train") == 0 || strcmp(split, "test") == 0))
        test = strcmp(split, "test") == 0;
    else
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "csv: unknown split '%s' (expected train or test)",
                         split ? split : "(null)");
    rc = csv_opts_from(&o, params, err);
    if (rc)
        return rc;
    train_path = csv_join(dir, mltk_params_str(params, "train"));
    test_path = csv_join(dir, mltk_params_str(params, "test"));
    s = calloc(1, sizeof(*s));
    if (!train_path || !test_path || !s) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "csv: out of memory");
        goto out;
    }

    sha256_init(&sha);
    rc = csv_slurp(train_path, &buf, &len, &sha, err);
    if (rc)
        goto out;
    rc = csv_parse_buffer(test ? &train : &s->d, &o, train_path, buf, len, NULL, err);
    free(buf);
    buf = NULL;
    if (rc)
        goto out;
    if (test) {
        rc = csv_slurp(test_path, &buf, &len, &sha, err);
        if (rc)
            goto out;
        rc = csv_parse_buffer(&s->d, &o, test_path, buf, len, &train, err);
        if (rc)
            goto out;
        if (o.classify) {
            /* the class names are the training file's */
            s->d.class_names = train.class_names;
            train.class_names = NULL;
        }
    }
    sha256_final(&sha, s->checksum);
    *self = s;
    s = NULL;
out:
    free(buf);
    free(train_path);
    free(test_path);
    csv_free(&train);
    csv_close(s);
    return rc;
}

static int csv_info(void *self, mltk_dataset_info *info)
{
    const csv_set *s = self;

    memset(info, 0, sizeof(*info));
    info->n = s->d.n;
    info->x_shape = mltk_shape_make(1, &s->d.n_features);
    info->x_dtype = MLTK_F32;
    if (s->d.yc) {
        info->target = MLTK_TARGET_CLASS;
        info->y_shape.ndim = 0;
        info->n_classes = s->d.n_classes;
        info->class_names = (const char *const *)s->d.class_names;
    } else {
        info->target = MLTK_TARGET_VALUE;
        info->y_shape = mltk_shape_make(1, &s->d.n_targets);
    }
    memcpy(info->checksum, s->checksum, sizeof(info->checksum));
    return MLTK_OK;
}

/* samples [first, first+count): x (count, n_features) float32, y (count)
 * int32 or (count, n_targets) float32 */
static int csv_read(void *self, int64_t first, int64_t count, float *x, void *y,
                    char **err)
{
    const csv_set *s = self;
    const csv_data *d = &s->d;

    if (first < 0 || count < 0 || first > d->n || count > d->n - first)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "csv: samples [%lld, %lld) are outside the %lld of this split",
                         (long long)first, (long long)(first + count), (long long)d->n);
    if (x && count)
        memcpy(x, d->x + first * d->n_features,
               (size_t)(count * d->n_features) * sizeof(*x));
    if (y && count) {
        if (d->yc)
            memcpy(y, d->yc + first, (size_t)count * sizeof(*d->yc));
        else
            memcpy(y, d->yv + first * d->n_targets,
                   (size_t)(count * d->n_targets) * sizeof(*d->yv));
    }
    return MLTK_OK;
}

static int csv_get(void *self, int64_t i, void *x, void *y, char **err)
{
    return csv_read(self, i, 1, x, y, err);
}

static int csv_label(void *self, int64_t i, int32_t *y, char **err)
{
    const csv_set *s = self;

    if (!s->d.yc)
        return mltk_errf(err, MLTK_ERR_INVALID, "csv: a regression split has no classes");
    if (i < 0 || i >= s->d.n)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "csv: sample %lld is outside the %lld of this split",
                         (long long)i, (long long)s->d.n);
    *y = s->d.yc[i];
    return MLTK_OK;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_dataset_i csv_iface = {
    .size = sizeof(struct mltk_dataset_i),
    .open = csv_open,
    .close = csv_close,
    .info = csv_info,
    .read = csv_read,
    .get = csv_get,
    .label = csv_label,
};

MLTK_PLUGIN(csv, MLTK_KIND_DATASET, &csv_iface)
