/* plot.c - `mltk plot`: training curves and confusion matrices as PNG.
 *
 * What this is: a reader of the trainer's per-epoch log (metrics.jsonl,
 * one JSON object per line, parsed with jansson), a 1-2-5 tick chooser,
 * and two fixed layouts drawn with cairo on an image surface: loss and
 * accuracy curves of one or more runs, and a confusion-matrix heat map
 * read from the CSV that metrics.c writes (core/cli/confusion.c).
 * What this is not: part of libmltk, which neither draws nor links cairo;
 * this is the command's own code and uses only the public API.  Nor a
 * plotting library (no styles, log axes or options).  Text uses cairo's
 * toy API with fontconfig's "sans-serif", which is enough for ASCII
 * labels and numbers.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cairo.h>
#include <jansson.h>

#include <mltk/mltk.h>

#include "plot.h"

/* ---- reading metrics.jsonl -------------------------------------------------- */

/* The keys plotted, and where each goes in a record. */
enum { K_EPOCH, K_TRAIN_LOSS, K_VAL_LOSS, K_TRAIN_ACC, K_VAL_ACC, N_KEYS };
static const char *const key_names[N_KEYS] = {
    "epoch", "train_loss", "val_loss", "train_acc", "val_acc"
};

/* A malloc()ed formatted string, or NULL. */
static char *strfmt(const char *fmt, ...) MLTK_PRINTF(1, 2);
static char *strfmt(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

/* Python's json module writes NaN, Infinity and -Infinity, which JSON
 * (and so jansson) does not have.  Outside strings they are overwritten
 * in place with "[]" and spaces: a value of the same length that is not a
 * number (so NaN here too), and jansson's columns still count the line as
 * written. */
static void blank_nonfinite(char *s, size_t len)
{
    static const char *const words[] = { "-Infinity", "Infinity", "NaN" };
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        if (in_string) {
            if (s[i] == '\\')
                i++;
            else if (s[i] == '"')
                in_string = 0;
            continue;
        }
        in_string = s[i] == '"';
        for (int w = 0; w < 3; w++) {
            size_t n = strlen(words[w]);
            if (n <= len - i && memcmp(s + i, words[w], n) == 0) {
                memset(s + i, ' ', n);
                memcpy(s + i, "[]", 2);
                i += n - 1;
                break;
            }
        }
    }
}

/* One line of len bytes (its newline removed): 0 and rec filled (NaN for
 * absent keys and values that are not finite numbers), 1 for a blank
 * line, -1 with a malloc()ed "PATH:LINE: what (column N)" in *why. */
static int read_record(char *line, size_t len, const char *path, int lineno,
                       double rec[N_KEYS], char **why)
{
    for (int k = 0; k < N_KEYS; k++)
        rec[k] = NAN;
    if (strspn(line, " \t\r") == len)
        return 1;
    blank_nonfinite(line, len);
    json_error_t e;
    /* integers as doubles: a count beyond 64 bits is still a number */
    json_t *obj = json_loadb(line, len, JSON_DECODE_INT_AS_REAL, &e);
    if (!obj || !json_is_object(obj)) {
        *why = obj ? strfmt("%s:%d: expected a JSON object, found an array (column 1)", path,
                            lineno)
                   : strfmt("%s:%d: %s (column %d)", path, lineno, e.text, e.column);
        json_decref(obj);
        return -1;
    }
    for (int k = 0; k < N_KEYS; k++) {
        json_t *v = json_object_get(obj, key_names[k]);
        if (json_is_number(v) && isfinite(json_number_value(v)))
            rec[k] = json_number_value(v);
    }
    json_decref(obj);
    return 0;
}

void mltk_run_log_free(mltk_run_log *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->path);
    free(r->epoch);
    free(r->train_loss);
    free(r->val_loss);
    free(r->train_acc);
    free(r->val_acc);
    memset(r, 0, sizeof(*r));
}

/* The last path component of s, without trailing slashes (malloc()ed). */
static char *base_name(const char *s)
{
    size_t len = strlen(s);
    while (len > 1 && s[len - 1] == '/')
        len--;
    size_t b = len;
    while (b > 0 && s[b - 1] != '/')
        b--;
    char *out = malloc(len - b + 1);
    if (out) {
        memcpy(out, s + b, len - b);
        out[len - b] = '\0';
    }
    return out;
}

/* The legend label of a run: the directory's base name, resolved when it
 * is "." or ".."; for a .jsonl file its stem, unless that is "metrics". */
static char *run_name(const char *run_dir, int is_file)
{
    char *name = base_name(run_dir);
    if (!name)
        return NULL;
    if (is_file) {
        size_t l = strlen(name);
        if (l > 6 && strcmp(name + l - 6, ".jsonl") == 0)
            name[l - 6] = '\0';
        if (strcmp(name, "metrics") != 0)
            return name;
        free(name);
        char *dir = strdup(run_dir);
        if (!dir)
            return NULL;
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            strcpy(dir, ".");
        name = run_name(dir[0] ? dir : "/", 0);
        free(dir);
        return name;
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || !*name) {
        char *real = realpath(run_dir, NULL);
        if (real) {
            free(name);
            name = base_name(real);
            free(real);
        }
    }
    return name;
}

static int grow(mltk_run_log *r, int *cap)
{
    if (r->n < *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 64;
    double **cols[N_KEYS] = { &r->epoch, &r->train_loss, &r->val_loss, &r->train_acc,
                              &r->val_acc };
    for (int k = 0; k < N_KEYS; k++) {
        double *nb = realloc(*cols[k], (size_t)nc * sizeof(double));
        if (!nb)
            return -1;
        *cols[k] = nb;
    }
    *cap = nc;
    return 0;
}

int mltk_run_log_read(mltk_run_log *r, const char *run_dir, char **err)
{
    memset(r, 0, sizeof(*r));
    struct stat st;
    if (stat(run_dir, &st) != 0)
        return mltk_errf(err, MLTK_ERR_IO, "%s: no such run directory or log: %s", run_dir,
                         strerror(errno));
    int is_file = !S_ISDIR(st.st_mode);
    r->path = is_file ? strdup(run_dir) : strfmt("%s/metrics.jsonl", run_dir);
    r->name = run_name(run_dir, is_file);
    if (!r->path || !r->name) {
        mltk_run_log_free(r);
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", run_dir);
    }
    if (!is_file && stat(r->path, &st) != 0) {
        int e = errno;
        mltk_run_log_free(r);
        return mltk_errf(err, MLTK_ERR_IO,
                         "%s: cannot read metrics.jsonl: %s; is this a run directory "
                         "(one with [log] jsonl = metrics.jsonl)?", run_dir, strerror(e));
    }
    FILE *f = fopen(r->path, "rb");
    if (!f) {
        int e = errno;
        mltk_run_log_free(r);
        return mltk_errf(err, MLTK_ERR_IO, "%s: cannot open file: %s", r->path, strerror(e));
    }
    int rc = MLTK_OK, cap = 0, records = 0, lineno = 0;
    char *line = NULL, *why = NULL;
    size_t line_cap = 0;
    for (ssize_t len; !rc && (len = getline(&line, &line_cap, f)) >= 0;) {
        int last_unterminated = len == 0 || line[len - 1] != '\n';
        if (!last_unterminated)
            line[--len] = '\0';
        lineno++;
        double rec[N_KEYS];
        int got = read_record(line, (size_t)len, r->path, lineno, rec, &why);
        if (got < 0 && last_unterminated) {
            mltk_log(MLTK_LOG_WARN, "%s; the last line has no newline, so it is taken as a "
                     "write in progress and skipped", why ? why : "out of memory");
        } else if (got < 0) {
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s", why ? why : "out of memory");
        } else if (got == 0) {
            records++;
            if (grow(r, &cap)) {
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", r->path);
                break;
            }
            r->epoch[r->n] = isnan(rec[K_EPOCH]) ? records : rec[K_EPOCH];
            r->train_loss[r->n] = rec[K_TRAIN_LOSS];
            r->val_loss[r->n] = rec[K_VAL_LOSS];
            r->train_acc[r->n] = rec[K_TRAIN_ACC];
            r->val_acc[r->n] = rec[K_VAL_ACC];
            r->n++;
        }
        free(why);
        why = NULL;
    }
    if (!rc && ferror(f))
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot read file: %s", r->path, strerror(errno));
    free(line);
    fclose(f);
    if (rc)
        mltk_run_log_free(r);
    return rc;
}

/* ---- ticks ------------------------------------------------------------------ */

void mltk_plot_ticks(mltk_ticks *t, double lo, double hi, int max_ticks, int integer)
{
    if (max_ticks < 2)
        max_ticks = 2;
    if (!isfinite(lo) || !isfinite(hi)) {
        lo = 0;
        hi = 1;
    }
    if (hi < lo) {
        double x = lo;
        lo = hi;
        hi = x;
    }
    if (hi == lo) {
        double pad = lo != 0 ? fabs(lo) * 0.1 : 1.0;
        if (integer && pad < 1)
            pad = 1;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / (max_ticks - 1);
    double e = pow(10.0, floor(log10(raw)));
    double step = 10 * e;
    static const double mult[] = { 1, 2, 5, 10 };
    for (int i = 0; i < 4; i++)
        if (mult[i] * e >= raw * (1 - 1e-9)) {
            step = mult[i] * e;
            break;
        }
    if (integer && step < 1)
        step = 1;
    /* the slack keeps 0.3 / 0.1 == 2.9999999999999996 on tick 3 */
    double a = floor(lo / step + 1e-9), b = ceil(hi / step - 1e-9);
    t->lo = a * step;
    t->hi = b * step;
    t->step = step;
    t->n = (int)(b - a + 0.5) + 1;
    int d = (int)ceil(-log10(step) - 1e-9);
    t->decimals = d > 0 ? d : 0;
}

/* ---- drawing helpers -------------------------------------------------------- */

typedef struct rgb { double r, g, b; } rgb;

/* matplotlib's "tab10" */
static const rgb palette[10] = {
    { 31 / 255.0, 119 / 255.0, 180 / 255.0 }, { 255 / 255.0, 127 / 255.0, 14 / 255.0 },
    { 44 / 255.0, 160 / 255.0, 44 / 255.0 },  { 214 / 255.0, 39 / 255.0, 40 / 255.0 },
    { 148 / 255.0, 103 / 255.0, 189 / 255.0 }, { 140 / 255.0, 86 / 255.0, 75 / 255.0 },
    { 227 / 255.0, 119 / 255.0, 194 / 255.0 }, { 127 / 255.0, 127 / 255.0, 127 / 255.0 },
    { 188 / 255.0, 189 / 255.0, 34 / 255.0 },  { 23 / 255.0, 190 / 255.0, 207 / 255.0 },
};

static void font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_w(cairo_t *cr, const char *s)
{
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    return te.x_advance;
}

/* Cut s (into buf) with "..." until it is at most max_w wide. */
static const char *fit(cairo_t *cr, const char *s, double max_w, char *buf, size_t cap)
{
    if (text_w(cr, s) <= max_w)
        return s;
    size_t len = strlen(s);
    if (len + 4 > cap)
        len = cap - 4;
    while (len > 0) {
        len--;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;   /* never split a UTF-8 sequence */
        memcpy(buf, s, len);
        strcpy(buf + len, "...");
        if (text_w(cr, buf) <= max_w)
            return buf;
    }
    return "";
}

/* Text with its anchor at (x, y): ha 0 left, 0.5 centre, 1 right; va 0
 * baseline at y, 0.5 centred on y (by the font's ascent and descent). */
static void text_at(cairo_t *cr, double x, double y, const char *s, double ha, double va)
{
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    double w = text_w(cr, s);
    double dy = va == 0 ? 0 : (fe.ascent - fe.descent) / 2;
    cairo_move_to(cr, x - w * ha, y + dy);
    cairo_show_text(cr, s);
}

static void tick_label(char *buf, size_t cap, double v, int decimals)
{
    if (fabs(v) >= 1e6 || (v != 0 && fabs(v) < 1e-4 && decimals > 6))
        snprintf(buf, cap, "%.3g", v);
    else
        snprintf(buf, cap, "%.*f", decimals, v);
    if (strcmp(buf, "-0") == 0 || (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1)))
        memmove(buf, buf + 1, strlen(buf));   /* "-0.00" */
}

/* Pixel-centred coordinate, for crisp 1-pixel lines. */
static double crisp(double v)
{
    return floor(v) + 0.5;
}

/* ---- curves ----------------------------------------------------------------- */

typedef struct panel {
    double     x0, y0, x1, y1;   /* plot area, pixels */
    mltk_ticks xt, yt;
} panel;

/* The first and last ticks sit PAD pixels inside the frame, so that dots
 * at the ends of the range are not cut in half. */
#define PAD 10

static double px(const panel *p, double x)
{
    return p->x0 + PAD + (x - p->xt.lo) / (p->xt.hi - p->xt.lo) * (p->x1 - p->x0 - 2 * PAD);
}

static double py(const panel *p, double y)
{
    return p->y1 - PAD - (y - p->yt.lo) / (p->yt.hi - p->yt.lo) * (p->y1 - p->y0 - 2 * PAD);
}

static void draw_axes(cairo_t *cr, const panel *p, const char *title, const char *xlabel,
                      const char *ylabel)
{
    char lab[64];
    cairo_set_line_width(cr, 1);
    /* grid */
    cairo_set_source_rgb(cr, 0.90, 0.90, 0.90);
    for (int i = 0; i < p->yt.n; i++) {
        double y = crisp(py(p, p->yt.lo + i * p->yt.step));
        cairo_move_to(cr, p->x0, y);
        cairo_line_to(cr, p->x1, y);
    }
    for (int i = 0; i < p->xt.n; i++) {
        double x = crisp(px(p, p->xt.lo + i * p->xt.step));
        cairo_move_to(cr, x, p->y0);
        cairo_line_to(cr, x, p->y1);
    }
    cairo_stroke(cr);
    /* frame and ticks */
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    cairo_rectangle(cr, crisp(p->x0), crisp(p->y0), floor(p->x1) - floor(p->x0),
                    floor(p->y1) - floor(p->y0));
    for (int i = 0; i < p->yt.n; i++) {
        double y = crisp(py(p, p->yt.lo + i * p->yt.step));
        cairo_move_to(cr, crisp(p->x0) - 5, y);
        cairo_line_to(cr, crisp(p->x0), y);
    }
    for (int i = 0; i < p->xt.n; i++) {
        double x = crisp(px(p, p->xt.lo + i * p->xt.step));
        cairo_move_to(cr, x, crisp(p->y1));
        cairo_line_to(cr, x, crisp(p->y1) + 5);
    }
    cairo_stroke(cr);
    /* tick labels */
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    font(cr, 13, 0);
    for (int i = 0; i < p->yt.n; i++) {
        double v = p->yt.lo + i * p->yt.step;
        tick_label(lab, sizeof(lab), v, p->yt.decimals);
        text_at(cr, p->x0 - 9, py(p, v), lab, 1, 0.5);
    }
    for (int i = 0; i < p->xt.n; i++) {
        double v = p->xt.lo + i * p->xt.step;
        tick_label(lab, sizeof(lab), v, p->xt.decimals);
        text_at(cr, px(p, v), p->y1 + 22, lab, 0.5, 0);
    }
    /* axis labels and title */
    font(cr, 14, 0);
    text_at(cr, (p->x0 + p->x1) / 2, p->y1 + 46, xlabel, 0.5, 0);
    cairo_save(cr);
    cairo_translate(cr, p->x0 - 62, (p->y0 + p->y1) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, ylabel, 0.5, 0);
    cairo_restore(cr);
    font(cr, 16, 1);
    text_at(cr, (p->x0 + p->x1) / 2, p->y0 - 14, title, 0.5, 0);
}

/* A polyline through the finite points, broken where y is NaN, and a dot
 * at each point (when the points are far enough apart). */
static void draw_series(cairo_t *cr, const panel *p, const double *x, const double *y,
                        int n, rgb c, int dashed)
{
    static const double dash[] = { 8, 5 };
    cairo_save(cr);
    cairo_rectangle(cr, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
    cairo_set_line_width(cr, 2.2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
    int pen = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            pen = 0;
            continue;
        }
        if (pen)
            cairo_line_to(cr, px(p, x[i]), py(p, y[i]));
        else
            cairo_move_to(cr, px(p, x[i]), py(p, y[i]));
        pen = 1;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    /* dots only while an epoch is wide enough to tell them apart */
    int dots = px(p, p->xt.lo + 1) - px(p, p->xt.lo) >= 18;
    for (int i = 0; i < n && dots; i++)
        if (isfinite(x[i]) && isfinite(y[i])) {
            cairo_new_sub_path(cr);
            cairo_arc(cr, px(p, x[i]), py(p, y[i]), dashed ? 3.5 : 4, 0, 2 * M_PI);
        }
    cairo_fill(cr);
    cairo_restore(cr);
}

static void range_of(const double *v, int n, double *lo, double *hi)
{
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            *lo = v[i] < *lo ? v[i] : *lo;
            *hi = v[i] > *hi ? v[i] : *hi;
        }
}

/* One panel of series a (solid) and b (dashed) of every run. */
static void draw_panel(cairo_t *cr, panel *p, const mltk_run_log *runs, int n_runs,
                       size_t off_a, size_t off_b, const char *title, const char *ylabel,
                       const char *empty)
{
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int r = 0; r < n_runs; r++) {
        const double *a = *(double *const *)((const char *)&runs[r] + off_a);
        const double *b = *(double *const *)((const char *)&runs[r] + off_b);
        range_of(a, runs[r].n, &ylo, &yhi);
        range_of(b, runs[r].n, &ylo, &yhi);
        for (int i = 0; i < runs[r].n; i++)
            if (isfinite(a[i]) || isfinite(b[i]))
                range_of(&runs[r].epoch[i], 1, &xlo, &xhi);
    }
    int have = ylo <= yhi;
    mltk_plot_ticks(&p->xt, have ? xlo : 1, have ? xhi : 10, 8, 1);
    mltk_plot_ticks(&p->yt, have ? ylo : 0, have ? yhi : 1, 6, 0);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    cairo_fill(cr);
    draw_axes(cr, p, title, "epoch", ylabel);
    if (!have) {
        font(cr, 14, 0);
        cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
        text_at(cr, (p->x0 + p->x1) / 2, (p->y0 + p->y1) / 2, empty, 0.5, 0.5);
        return;
    }
    for (int r = 0; r < n_runs; r++) {
        const double *a = *(double *const *)((const char *)&runs[r] + off_a);
        const double *b = *(double *const *)((const char *)&runs[r] + off_b);
        draw_series(cr, p, runs[r].epoch, a, runs[r].n, palette[r % 10], 0);
        draw_series(cr, p, runs[r].epoch, b, runs[r].n, palette[r % 10], 1);
    }
}

static void legend_line(cairo_t *cr, double x, double y, rgb c, int dashed)
{
    static const double dash[] = { 8, 5 };
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
    cairo_set_line_width(cr, 2.2);
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
    cairo_move_to(cr, x, y);
    cairo_line_to(cr, x + 30, y);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_arc(cr, x + 15, y, 4, 0, 2 * M_PI);
    cairo_fill(cr);
}

static void draw_legend(cairo_t *cr, double x0, double y0, double y1,
                        const mltk_run_log *runs, int n_runs)
{
    char buf[256];
    const double dy = 24;
    /* room for the runs above the style key (3 rows and a gap) */
    int fits = (int)((y1 - y0 - 4 * dy - 30) / dy);
    font(cr, 15, 1);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    text_at(cr, x0, y0, "runs", 0, 0);
    double y = y0 + dy + 4;
    font(cr, 14, 0);
    for (int r = 0; r < n_runs; r++, y += dy) {
        if (r == fits - 1 && n_runs > fits) {
            cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
            snprintf(buf, sizeof(buf), "... and %d more", n_runs - r);
            text_at(cr, x0, y, buf, 0, 0.5);
            y += dy;
            break;
        }
        legend_line(cr, x0, y, palette[r % 10], 0);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        const char *name = fit(cr, runs[r].name, MLTK_PLOT_CURVES_WIDTH - x0 - 56, buf,
                               sizeof(buf));
        text_at(cr, x0 + 40, y, name, 0, 0.5);
    }
    y += dy / 2;
    rgb grey = { 0.35, 0.35, 0.35 };
    font(cr, 15, 1);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    text_at(cr, x0, y + 6, "lines", 0, 0);
    y += dy + 10;
    font(cr, 14, 0);
    legend_line(cr, x0, y, grey, 0);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    text_at(cr, x0 + 40, y, "train", 0, 0.5);
    y += dy;
    legend_line(cr, x0, y, grey, 1);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    text_at(cr, x0 + 40, y, "validation", 0, 0.5);
}

/* ---- writing a PNG ---------------------------------------------------------- */

static cairo_status_t png_out(void *closure, const unsigned char *data, unsigned int len)
{
    return fwrite(data, 1, len, closure) == len ? CAIRO_STATUS_SUCCESS
                                                : CAIRO_STATUS_WRITE_ERROR;
}

/* Write s to path through a temporary file beside it, renamed over path
 * once complete, so that a reader never sees half an image. */
static int write_png(cairo_surface_t *s, cairo_t *cr, const char *path, char **err)
{
    cairo_status_t st = cairo_status(cr);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(s);
    if (st != CAIRO_STATUS_SUCCESS)
        return mltk_errf(err, MLTK_ERR_IO, "%s: drawing failed: %s", path,
                         cairo_status_to_string(st));
    cairo_surface_flush(s);
    static unsigned counter;
    char *tmp = NULL;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        free(tmp);
        tmp = strfmt("%s.tmp.%ld.%u", path, (long)getpid(), counter++);
        if (!tmp)
            return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", path);
        /* O_EXCL: never write through someone else's file; 0666 & ~umask */
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return mltk_errf(err, MLTK_ERR_IO, "%s: cannot create a temporary file beside it: %s",
                         path, strerror(e));
    }
    int rc = MLTK_OK;
    st = cairo_surface_write_to_png_stream(s, png_out, f);
    int bad = fflush(f) != 0 || ferror(f), e = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (st != CAIRO_STATUS_SUCCESS)
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot write the PNG: %s", path,
                       cairo_status_to_string(st));
    else if (bad)
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: write failed: %s", path, strerror(e));
    else if (rename(tmp, path) != 0)
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot replace the file: %s", path,
                       strerror(errno));
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- mltk_plot_curves ------------------------------------------------------- */

int mltk_plot_curves(const char *png_path, const char *const *run_dirs, int n_runs,
                     char **err)
{
    if (n_runs < 1 || n_runs > 64)
        return mltk_errf(err, MLTK_ERR_INVALID, "plot: between 1 and 64 runs, got %d", n_runs);
    mltk_run_log *runs = calloc((size_t)n_runs, sizeof(*runs));
    if (!runs)
        return mltk_errf(err, MLTK_ERR_NOMEM, "plot: out of memory");
    int rc = MLTK_OK;
    for (int r = 0; r < n_runs && !rc; r++)
        rc = mltk_run_log_read(&runs[r], run_dirs[r], err);
    if (rc)
        goto out;

    const int W = MLTK_PLOT_CURVES_WIDTH, H = MLTK_PLOT_CURVES_HEIGHT;
    const double legend_w = 220;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

    font(cr, 20, 1);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    char title[160];
    if (n_runs == 1)
        snprintf(title, sizeof(title), "Training curves: %s", runs[0].name);
    else
        snprintf(title, sizeof(title), "Training curves: %d runs", n_runs);
    char buf[200];
    text_at(cr, (W - legend_w) / 2, 34, fit(cr, title, W - legend_w - 40, buf, sizeof(buf)),
            0.5, 0);

    /* two panels side by side; each keeps 84 px on its left for tick
     * labels and the axis label, 60 px below */
    double pw = (W - legend_w) / 2;
    panel loss = { .x0 = 84, .y0 = 84, .x1 = pw - 20, .y1 = H - 64 };
    panel acc = { .x0 = pw + 84, .y0 = 84, .x1 = 2 * pw - 20, .y1 = H - 64 };
    draw_panel(cr, &loss, runs, n_runs, offsetof(mltk_run_log, train_loss),
               offsetof(mltk_run_log, val_loss), "Loss", "loss", "no loss recorded");
    draw_panel(cr, &acc, runs, n_runs, offsetof(mltk_run_log, train_acc),
               offsetof(mltk_run_log, val_acc), "Accuracy", "accuracy",
               "no accuracy recorded");
    draw_legend(cr, W - legend_w + 16, 96, H - 20, runs, n_runs);

    rc = write_png(s, cr, png_path, err);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
out:
    for (int r = 0; r < n_runs; r++)
        mltk_run_log_free(&runs[r]);
    free(runs);
    return rc;
}

/* ---- mltk_plot_confusion ---------------------------------------------------- */

/* Fixed margins around an n x n matrix of square cells. */
enum { CM_LEFT = 210, CM_TOP = 72, CM_BOTTOM = 130, CM_RIGHT = 130 };

static int cm_cell(int n)
{
    int c = n > 0 ? 720 / n : 120;
    return c > 120 ? 120 : c < 1 ? 1 : c;
}

void mltk_plot_confusion_size(int n, int *width, int *height)
{
    int side = n * cm_cell(n);
    *width = CM_LEFT + side + CM_RIGHT;
    *height = CM_TOP + side + CM_BOTTOM;
}

/* matplotlib's "Blues", t in [0, 1] */
static rgb blues(double t)
{
    static const rgb stop[5] = {
        { 247 / 255.0, 251 / 255.0, 255 / 255.0 }, { 198 / 255.0, 219 / 255.0, 239 / 255.0 },
        { 107 / 255.0, 174 / 255.0, 214 / 255.0 }, { 33 / 255.0, 113 / 255.0, 181 / 255.0 },
        { 8 / 255.0, 48 / 255.0, 107 / 255.0 },
    };
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double f = t * 4;
    int i = f >= 4 ? 3 : (int)f;
    f -= i;
    rgb c = { stop[i].r + (stop[i + 1].r - stop[i].r) * f,
              stop[i].g + (stop[i + 1].g - stop[i].g) * f,
              stop[i].b + (stop[i + 1].b - stop[i].b) * f };
    return c;
}

static void draw_cm_labels(cairo_t *cr, const mltk_confusion *cm, int cell, int side)
{
    char buf[256];
    const int n = cm->n;
    const double bottom = CM_TOP + side;
    int step = cell >= 12 ? 1 : (12 + cell - 1) / cell;
    double fs = cell >= 16 ? 14 : cell >= 12 ? cell - 2 : 10;
    font(cr, fs, 0);
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    /* true classes down the left side */
    double widest_row = 0;
    for (int i = 0; i < n; i += step) {
        const char *s = fit(cr, cm->row_names[i], CM_LEFT - 56, buf, sizeof(buf));
        double w = text_w(cr, s);
        widest_row = w > widest_row ? w : widest_row;
        text_at(cr, CM_LEFT - 8, CM_TOP + (i + 0.5) * cell, s, 1, 0.5);
    }
    /* predicted classes along the bottom: level if they all fit under
     * their columns, else at 45 degrees ending under their column (then
     * spaced so that neighbours do not touch) */
    double widest = 0;
    for (int j = 0; j < n; j += step) {
        double w = text_w(cr, cm->names[j]);
        widest = w > widest ? w : widest;
    }
    int level = widest <= cell * step - 6;
    int xstep = step;
    if (!level)
        while (cell * xstep * 0.7071 < fe.height * 1.1)
            xstep++;
    double drop = 0;   /* how far the labels reach below the matrix */
    for (int j = 0; j < n; j += xstep) {
        double cx = CM_LEFT + (j + 0.5) * cell;
        if (level) {
            text_at(cr, cx, bottom + 8 + fe.ascent, cm->names[j], 0.5, 0);
            drop = 8 + fe.ascent + fe.descent;
            continue;
        }
        const char *s = fit(cr, cm->names[j], (CM_BOTTOM - 50) * 1.41, buf, sizeof(buf));
        double w = text_w(cr, s);
        /* rotated about the label's end, so it hangs down to the left */
        cairo_save(cr);
        cairo_translate(cr, cx + fe.ascent * 0.35, bottom + 8 + fe.ascent * 0.35);
        cairo_rotate(cr, -M_PI / 4);
        cairo_move_to(cr, -w, 0);
        cairo_show_text(cr, s);
        cairo_restore(cr);
        double d = 8 + fe.ascent * 0.35 + w * 0.7071 + fe.descent;
        drop = d > drop ? d : drop;
    }
    /* axis names, next to the labels */
    font(cr, 15, 1);
    cairo_font_extents(cr, &fe);
    double y = bottom + drop + 14 + fe.ascent;
    double ymax = CM_TOP + side + CM_BOTTOM - 12;
    text_at(cr, CM_LEFT + side / 2.0, y < ymax ? y : ymax, "predicted", 0.5, 0);
    double x = CM_LEFT - 8 - widest_row - 14 - fe.ascent / 2;
    cairo_save(cr);
    cairo_translate(cr, x > 20 ? x : 20, CM_TOP + side / 2.0);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, "true", 0.5, 0.5);
    cairo_restore(cr);
}

static void draw_cm_bar(cairo_t *cr, int64_t max, int side)
{
    char lab[64];
    double x = CM_LEFT + side + 20, w = 20, y0 = CM_TOP, y1 = CM_TOP + side;
    cairo_pattern_t *g = cairo_pattern_create_linear(0, y1, 0, y0);
    for (int k = 0; k <= 16; k++) {
        rgb c = blues(k / 16.0);
        cairo_pattern_add_color_stop_rgb(g, k / 16.0, c.r, c.g, c.b);
    }
    cairo_rectangle(cr, x, y0, w, y1 - y0);
    cairo_set_source(cr, g);
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, crisp(x), crisp(y0), w, floor(y1) - floor(y0));
    cairo_stroke(cr);
    double top = max > 0 ? (double)max : 1;
    mltk_ticks t;
    mltk_plot_ticks(&t, 0, top, side >= 200 ? 6 : 3, 1);
    font(cr, 12, 0);
    for (int i = 0; i < t.n; i++) {
        double v = t.lo + i * t.step;
        if (v > top + 1e-9)
            break;
        double y = crisp(y1 - v / top * (y1 - y0));
        cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
        cairo_move_to(cr, x + w, y);
        cairo_line_to(cr, x + w + 5, y);
        cairo_stroke(cr);
        tick_label(lab, sizeof(lab), v, 0);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        text_at(cr, x + w + 8, y, lab, 0, 0.5);
    }
}

int mltk_plot_confusion(const char *png_path, const char *csv_path, char **err)
{
    mltk_confusion cm;
    int rc = mltk_confusion_read(&cm, csv_path, err);
    if (rc)
        return rc;
    const int n = cm.n;
    if (n > MLTK_PLOT_MAX_CLASSES) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: %d classes; at most %d can be drawn",
                       csv_path, n, MLTK_PLOT_MAX_CLASSES);
        mltk_confusion_free(&cm);
        return rc;
    }
    int W, H;
    mltk_plot_confusion_size(n, &W, &H);
    const int cell = cm_cell(n), side = n * cell;
    int64_t max = 0, total = 0, diag = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int64_t v = cm.count[(size_t)i * (size_t)n + (size_t)j];
            max = v > max ? v : max;
            total += v;
            diag += i == j ? v : 0;
        }

    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

    char title[160], buf[200];
    if (total > 0)
        snprintf(title, sizeof(title), "Confusion matrix: %lld samples, accuracy %.2f%%",
                 (long long)total, 100.0 * (double)diag / (double)total);
    else
        snprintf(title, sizeof(title), "Confusion matrix: no samples");
    font(cr, 18, 1);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, W / 2.0, 38, fit(cr, title, W - 20, buf, sizeof(buf)), 0.5, 0);

    /* cells */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int64_t v = cm.count[(size_t)i * (size_t)n + (size_t)j];
            rgb c = blues(max > 0 ? (double)v / (double)max : 0);
            cairo_set_source_rgb(cr, c.r, c.g, c.b);
            cairo_rectangle(cr, CM_LEFT + j * cell, CM_TOP + i * cell, cell, cell);
            cairo_fill(cr);
        }
    if (cell >= 16) {   /* thin white lines between cells */
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_set_line_width(cr, 1);
        for (int k = 1; k < n; k++) {
            cairo_move_to(cr, CM_LEFT + k * cell + 0.5, CM_TOP);
            cairo_line_to(cr, CM_LEFT + k * cell + 0.5, CM_TOP + side);
            cairo_move_to(cr, CM_LEFT, CM_TOP + k * cell + 0.5);
            cairo_line_to(cr, CM_LEFT + side, CM_TOP + k * cell + 0.5);
        }
        cairo_stroke(cr);
    }
    /* counts, where they fit */
    if (cell >= 20) {
        double fs0 = cell * 0.3 > 18 ? 18 : cell * 0.3;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                int64_t v = cm.count[(size_t)i * (size_t)n + (size_t)j];
                char num[32];
                snprintf(num, sizeof(num), "%lld", (long long)v);
                double fs = fs0;
                font(cr, fs, 0);
                while (text_w(cr, num) > cell - 4 && fs > 7) {
                    fs -= 1;
                    font(cr, fs, 0);
                }
                if (text_w(cr, num) > cell - 4)
                    continue;
                double t = max > 0 ? (double)v / (double)max : 0;
                if (t > 0.55)
                    cairo_set_source_rgb(cr, 1, 1, 1);
                else
                    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
                text_at(cr, CM_LEFT + (j + 0.5) * cell, CM_TOP + (i + 0.5) * cell, num, 0.5,
                        0.5);
            }
    }
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, CM_LEFT - 0.5, CM_TOP - 0.5, side + 1, side + 1);
    cairo_stroke(cr);

    draw_cm_labels(cr, &cm, cell, side);
    draw_cm_bar(cr, max, side);

    rc = write_png(s, cr, png_path, err);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    mltk_confusion_free(&cm);
    return rc;
}
