/* confusion.c - `mltk plot --confusion`: reading a confusion-matrix CSV.
 *
 * What this is: the reader of the CSV that the trainer writes
 * (mltk_metrics_write_confusion_csv in core/metrics.c): RFC 4180 records,
 * a header row of class names, then one row of counts per true class.
 * What this is not: a general CSV library, nor part of libmltk.  It is
 * the command's own code and uses only the public API (<mltk/mltk.h>)
 * and the C library, so that the command, not the library, owns what
 * plotting needs.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mltk/mltk.h>

#include "plot.h"

/* ---- the file --------------------------------------------------------------- */

/* The whole text file at path, malloc()ed and NUL-terminated, into *text. */
static int read_text(const char *path, char **text, char **err)
{
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mltk_errf(err, MLTK_ERR_IO, "%s: cannot open file: %s", path,
                         strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (size_t got = 1; buf && got;) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
            if (!buf)
                break;
        }
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
    }
    int rc = MLTK_OK;
    if (!buf)
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory reading the file", path);
    else if (ferror(f))
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot read file: %s", path, strerror(errno));
    else if ((buf[len] = '\0', strlen(buf) != len))
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: byte offset %zu: NUL byte; this is not a "
                       "text file", path, strlen(buf));
    fclose(f);
    if (rc)
        free(buf);
    else
        *text = buf;
    return rc;
}

/* ---- records ---------------------------------------------------------------- */

typedef struct csv_row {
    char **field;
    int    n, cap;
    int    line;     /* line the record starts on */
} csv_row;

static void row_clear(csv_row *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->field[i]);
    r->n = 0;
}

static int row_push(csv_row *r, const char *s, size_t len)
{
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 16;
        char **nf = realloc(r->field, (size_t)cap * sizeof(char *));
        if (!nf)
            return MLTK_ERR_NOMEM;
        r->field = nf;
        r->cap = cap;
    }
    char *v = malloc(len + 1);
    if (!v)
        return MLTK_ERR_NOMEM;
    memcpy(v, s, len);
    v[len] = '\0';
    r->field[r->n++] = v;
    return MLTK_OK;
}

/* Read one record at *pp (RFC 4180: quoted fields may hold commas, "" and
 * line breaks); advances *pp and *line past it.  Returns 1 for a record,
 * 0 at the end of the text, negative on error. */
static int csv_next(csv_row *r, const char **pp, int *line, const char *path, char **err)
{
    const char *p = *pp;
    row_clear(r);
    while (*p == '\n' || (*p == '\r' && p[1] == '\n')) {   /* skip blank lines */
        p += *p == '\r' ? 2 : 1;
        (*line)++;
    }
    if (!*p) {
        *pp = p;
        return 0;
    }
    r->line = *line;
    char *buf = NULL;
    size_t blen = 0, bcap = 0;
    int rc = MLTK_OK;
    for (;;) {
        blen = 0;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) {
                    rc = mltk_errf(err, MLTK_ERR_DATA, "%s:%d: unterminated quoted field",
                                   path, r->line);
                    goto out;
                }
                if (*p == '"' && p[1] == '"') {
                    p++;
                } else if (*p == '"') {
                    p++;
                    break;
                } else if (*p == '\n') {
                    (*line)++;
                }
                if (blen + 1 >= bcap) {
                    bcap = bcap ? bcap * 2 : 64;
                    char *nb = realloc(buf, bcap);
                    if (!nb) {
                        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", path);
                        goto out;
                    }
                    buf = nb;
                }
                buf[blen++] = *p++;
            }
            if (*p && *p != ',' && *p != '\n' && !(*p == '\r' && p[1] == '\n')) {
                rc = mltk_errf(err, MLTK_ERR_DATA,
                               "%s:%d: text after the closing quote of field %d",
                               path, *line, r->n + 1);
                goto out;
            }
            rc = row_push(r, buf ? buf : "", blen);
        } else {
            const char *s = p;
            while (*p && *p != ',' && *p != '\n' && !(*p == '\r' && p[1] == '\n'))
                p++;
            rc = row_push(r, s, (size_t)(p - s));
        }
        if (rc) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\r')
            p++;
        if (*p == '\n') {
            p++;
            (*line)++;
        }
        break;
    }
out:
    free(buf);
    *pp = p;
    return rc ? rc : 1;
}

/* ---- the matrix ------------------------------------------------------------- */

void mltk_confusion_free(mltk_confusion *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        if (c->names)
            free(c->names[i]);
        if (c->row_names)
            free(c->row_names[i]);
    }
    free(c->names);
    free(c->row_names);
    free(c->count);
    memset(c, 0, sizeof(*c));
}

static int parse_count(const char *s, int64_t *out)
{
    while (*s == ' ')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    int64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    while (*s == ' ')
        s++;
    if (*s)
        return -1;
    *out = v;
    return 0;
}

int mltk_confusion_read(mltk_confusion *c, const char *path, char **err)
{
    memset(c, 0, sizeof(*c));
    char *text = NULL;
    csv_row row = { 0 };
    int rc = read_text(path, &text, err);
    if (rc)
        return rc;
    const char *p = text;
    int line = 1;
    rc = csv_next(&row, &p, &line, path, err);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: empty file; expected a confusion matrix", path);
        goto out;
    }
    if (row.n < 2) {
        rc = mltk_errf(err, MLTK_ERR_DATA,
                       "%s:%d: the header needs a corner cell and at least one class name",
                       path, row.line);
        goto out;
    }
    int n = row.n - 1;
    c->names = calloc((size_t)n, sizeof(char *));
    c->row_names = calloc((size_t)n, sizeof(char *));
    c->count = calloc((size_t)n * (size_t)n, sizeof(int64_t));
    if (!c->names || !c->row_names || !c->count) {
        free(c->names);
        free(c->row_names);
        c->names = c->row_names = NULL;
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for %d classes", path, n);
        goto out;
    }
    c->n = n;
    for (int j = 0; j < n; j++) {
        c->names[j] = row.field[j + 1];
        row.field[j + 1] = NULL;
    }
    int rows = 0;
    while ((rc = csv_next(&row, &p, &line, path, err)) == 1) {
        if (rows == n) {
            rc = mltk_errf(err, MLTK_ERR_DATA,
                           "%s:%d: more rows than the %d classes of the header", path,
                           row.line, n);
            goto out;
        }
        if (row.n != n + 1) {
            rc = mltk_errf(err, MLTK_ERR_DATA,
                           "%s:%d: %d fields, expected %d (a name and %d counts)", path,
                           row.line, row.n, n + 1, n);
            goto out;
        }
        for (int j = 0; j < n; j++)
            if (parse_count(row.field[j + 1], &c->count[(size_t)rows * (size_t)n + (size_t)j])) {
                rc = mltk_errf(err, MLTK_ERR_DATA,
                               "%s:%d: field %d: '%s' is not a non-negative whole number",
                               path, row.line, j + 2, row.field[j + 1]);
                goto out;
            }
        c->row_names[rows] = row.field[0];
        row.field[0] = NULL;
        rows++;
    }
    if (rc < 0)
        goto out;
    if (rows != n) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s:%d: %d rows, but the header names %d classes",
                       path, line, rows, n);
        goto out;
    }
    rc = MLTK_OK;
out:
    row_clear(&row);
    free(row.field);
    free(text);
    if (rc)
        mltk_confusion_free(c);
    return rc;
}
