/* metrics.c - evaluation metrics accumulated on the host.
 *
 * What this is: the accumulator behind mltk_metrics_* (confusion matrix
 * and rank histogram for classifiers, running sums for regressors), the
 * results computed from it, the parser of the `metrics = ...` list, the
 * text report, and the confusion-matrix CSV writer (its reader belongs to
 * `mltk plot`, core/cli/confusion.c).  The
 * definitions, and where they follow scikit-learn, are in metrics.h.
 * What this is not: a device-side reduction.  The trainer downloads each
 * batch of outputs and hands it over; at n classes a row costs O(n).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

/* ---- the accumulator -------------------------------------------------------- */

struct mltk_metrics {
    mltk_metrics_kind kind;
    int      n;          /* classes or outputs */
    int      top_k;
    int64_t  rows;
    /* classification */
    int64_t *confusion;  /* (n, n), row = true class, column = argmax */
    int64_t *rank_hist;  /* (n): rows whose label had r strictly larger logits */
    /* regression, per output */
    double  *sse;        /* sum of (target - pred)^2 */
    double  *sae;        /* sum of |target - pred| */
    double  *mean;       /* running mean of the target (Welford) */
    double  *m2;         /* running sum of squared deviations of the target */
};

int mltk_metrics_create(mltk_metrics **out, mltk_metrics_kind kind, int n, int top_k,
                        char **err)
{
    *out = NULL;
    if (kind == MLTK_METRICS_CLASSIFICATION) {
        if (n < 2 || n > 1000000)
            return mltk_errf(err, MLTK_ERR_INVALID,
                             "metrics: a classifier needs 2 to 1000000 classes, got %d", n);
        if (top_k == 0)
            top_k = n < 5 ? n : 5;
        if (top_k < 1 || top_k > n)
            return mltk_errf(err, MLTK_ERR_INVALID,
                             "metrics: top_k must be in [1, %d] (the number of classes), got %d",
                             n, top_k);
    } else if (kind == MLTK_METRICS_REGRESSION) {
        if (n < 1 || n > 100000000)
            return mltk_errf(err, MLTK_ERR_INVALID,
                             "metrics: a regressor needs at least 1 output, got %d", n);
        top_k = 0;
    } else {
        return mltk_errf(err, MLTK_ERR_INVALID, "metrics: unknown kind %d", (int)kind);
    }
    mltk_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return mltk_errf(err, MLTK_ERR_NOMEM, "metrics: out of memory");
    m->kind = kind;
    m->n = n;
    m->top_k = top_k;
    size_t un = (size_t)n;
    int ok;
    if (kind == MLTK_METRICS_CLASSIFICATION) {
        m->confusion = calloc(un * un, sizeof(int64_t));
        m->rank_hist = calloc(un, sizeof(int64_t));
        ok = m->confusion && m->rank_hist;
    } else {
        m->sse = calloc(un, sizeof(double));
        m->sae = calloc(un, sizeof(double));
        m->mean = calloc(un, sizeof(double));
        m->m2 = calloc(un, sizeof(double));
        ok = m->sse && m->sae && m->mean && m->m2;
    }
    if (!ok) {
        mltk_metrics_destroy(m);
        return mltk_errf(err, MLTK_ERR_NOMEM,
                         "metrics: out of memory for %d %s", n,
                         kind == MLTK_METRICS_CLASSIFICATION ? "classes" : "outputs");
    }
    *out = m;
    return MLTK_OK;
}

void mltk_metrics_destroy(mltk_metrics *m)
{
    if (!m)
        return;
    free(m->confusion);
    free(m->rank_hist);
    free(m->sse);
    free(m->sae);
    free(m->mean);
    free(m->m2);
    free(m);
}

void mltk_metrics_reset(mltk_metrics *m)
{
    size_t un = (size_t)m->n;
    m->rows = 0;
    if (m->kind == MLTK_METRICS_CLASSIFICATION) {
        memset(m->confusion, 0, un * un * sizeof(int64_t));
        memset(m->rank_hist, 0, un * sizeof(int64_t));
    } else {
        memset(m->sse, 0, un * sizeof(double));
        memset(m->sae, 0, un * sizeof(double));
        memset(m->mean, 0, un * sizeof(double));
        memset(m->m2, 0, un * sizeof(double));
    }
}

mltk_metrics_kind mltk_metrics_get_kind(const mltk_metrics *m) { return m->kind; }
int mltk_metrics_n(const mltk_metrics *m) { return m->n; }
int mltk_metrics_top_k(const mltk_metrics *m) { return m->top_k; }
int64_t mltk_metrics_rows(const mltk_metrics *m) { return m->rows; }

/* ---- adding batches --------------------------------------------------------- */

/* logits (rows, n), labels (rows) */
int mltk_metrics_add_class(mltk_metrics *m, const float *logits, const int32_t *labels,
                           int64_t rows, char **err)
{
    if (m->kind != MLTK_METRICS_CLASSIFICATION)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "metrics: class labels given to a regression accumulator");
    if (rows < 0)
        return mltk_errf(err, MLTK_ERR_INVALID, "metrics: negative row count %lld",
                         (long long)rows);
    const int n = m->n;
    /* check the whole batch first, so a bad one leaves nothing behind */
    for (int64_t r = 0; r < rows; r++) {
        if (labels[r] < 0 || labels[r] >= n)
            return mltk_errf(err, MLTK_ERR_DATA,
                             "metrics: row %lld: label %d is outside [0, %d)",
                             (long long)r, (int)labels[r], n);
        const float *x = logits + r * n;
        for (int c = 0; c < n; c++)
            if (!isfinite(x[c]))
                return mltk_errf(err, MLTK_ERR_NUMERIC,
                                 "metrics: row %lld: logit of class %d is %s",
                                 (long long)r, c, isnan(x[c]) ? "NaN" : "infinite");
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *x = logits + r * n;
        const int y = labels[r];
        const float xy = x[y];
        int best = 0, above = 0;
        for (int c = 0; c < n; c++) {
            if (x[c] > x[best])
                best = c;
            above += x[c] > xy;
        }
        m->confusion[(size_t)y * (size_t)n + (size_t)best]++;
        m->rank_hist[above]++;
    }
    m->rows += rows;
    return MLTK_OK;
}

/* pred, target (rows, n) */
int mltk_metrics_add_regress(mltk_metrics *m, const float *pred, const float *target,
                             int64_t rows, char **err)
{
    if (m->kind != MLTK_METRICS_REGRESSION)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "metrics: regression targets given to a classification accumulator");
    if (rows < 0)
        return mltk_errf(err, MLTK_ERR_INVALID, "metrics: negative row count %lld",
                         (long long)rows);
    const int n = m->n;
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < n; j++) {
            float p = pred[r * n + j], t = target[r * n + j];
            if (!isfinite(p) || !isfinite(t))
                return mltk_errf(err, MLTK_ERR_NUMERIC,
                                 "metrics: row %lld, output %d: %s is %s", (long long)r, j,
                                 isfinite(p) ? "target" : "prediction",
                                 isnan(isfinite(p) ? t : p) ? "NaN" : "infinite");
        }
    for (int64_t r = 0; r < rows; r++) {
        /* Welford's update, one row at a time: the same rows in any
         * batching give the same bits */
        double count = (double)(m->rows + r + 1);
        for (int j = 0; j < n; j++) {
            double p = pred[r * n + j], t = target[r * n + j];
            double d = t - p;
            m->sse[j] += d * d;
            m->sae[j] += fabs(d);
            double delta = t - m->mean[j];
            m->mean[j] += delta / count;
            m->m2[j] += delta * (t - m->mean[j]);
        }
    }
    m->rows += rows;
    return MLTK_OK;
}

/* ---- results ---------------------------------------------------------------- */

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0.0;
}

double mltk_metrics_top_k_accuracy(const mltk_metrics *m, int k)
{
    if (m->kind != MLTK_METRICS_CLASSIFICATION || m->rows == 0 || k < 1)
        return 0.0;
    int64_t hit = 0;
    for (int r = 0; r < k && r < m->n; r++)
        hit += m->rank_hist[r];
    return ratio((double)hit, (double)m->rows);
}

void mltk_metrics_class(const mltk_metrics *m, int c, mltk_class_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (m->kind != MLTK_METRICS_CLASSIFICATION || c < 0 || c >= m->n)
        return;
    size_t n = (size_t)m->n, uc = (size_t)c;
    for (size_t i = 0; i < n; i++) {
        out->support += m->confusion[uc * n + i];
        out->predicted += m->confusion[i * n + uc];
    }
    out->tp = m->confusion[uc * n + uc];
    out->precision = ratio((double)out->tp, (double)out->predicted);
    out->recall = ratio((double)out->tp, (double)out->support);
    /* 2 tp / (2 tp + fp + fn), and fp + fn + 2 tp == predicted + support */
    out->f1 = ratio(2.0 * (double)out->tp, (double)(out->support + out->predicted));
}

const int64_t *mltk_metrics_confusion(const mltk_metrics *m)
{
    return m->confusion;
}

double mltk_metrics_output_mse(const mltk_metrics *m, int j)
{
    if (m->kind != MLTK_METRICS_REGRESSION || j < 0 || j >= m->n)
        return 0.0;
    return ratio(m->sse[j], (double)m->rows);
}

double mltk_metrics_output_mae(const mltk_metrics *m, int j)
{
    if (m->kind != MLTK_METRICS_REGRESSION || j < 0 || j >= m->n)
        return 0.0;
    return ratio(m->sae[j], (double)m->rows);
}

double mltk_metrics_output_r2(const mltk_metrics *m, int j)
{
    if (m->kind != MLTK_METRICS_REGRESSION || j < 0 || j >= m->n || m->rows < 2)
        return NAN;
    if (m->m2[j] == 0.0)   /* constant target: sklearn's force_finite */
        return m->sse[j] == 0.0 ? 1.0 : 0.0;
    return 1.0 - m->sse[j] / m->m2[j];
}

void mltk_metrics_summary_get(const mltk_metrics *m, mltk_metrics_summary *s)
{
    memset(s, 0, sizeof(*s));
    s->rows = m->rows;
    if (m->kind == MLTK_METRICS_REGRESSION) {
        double mse = 0, mae = 0, r2 = 0;
        for (int j = 0; j < m->n; j++) {
            mse += mltk_metrics_output_mse(m, j);
            mae += mltk_metrics_output_mae(m, j);
            r2 += mltk_metrics_output_r2(m, j);
        }
        s->mse = mse / m->n;
        s->mae = mae / m->n;
        s->r2 = r2 / m->n;
        return;
    }
    int64_t tp_sum = 0;
    int present = 0;
    double p_sum = 0, r_sum = 0, f_sum = 0, pw = 0, rw = 0, fw = 0;
    for (int c = 0; c < m->n; c++) {
        mltk_class_stats cs;
        mltk_metrics_class(m, c, &cs);
        tp_sum += cs.tp;
        if (cs.support == 0 && cs.predicted == 0)
            continue;   /* neither in the labels nor predicted: not averaged */
        present++;
        p_sum += cs.precision;
        r_sum += cs.recall;
        f_sum += cs.f1;
        pw += cs.precision * (double)cs.support;
        rw += cs.recall * (double)cs.support;
        fw += cs.f1 * (double)cs.support;
    }
    s->accuracy = ratio((double)tp_sum, (double)m->rows);
    s->top_k = m->top_k;
    s->top_k_accuracy = mltk_metrics_top_k_accuracy(m, m->top_k);
    s->precision_macro = ratio(p_sum, present);
    s->recall_macro = ratio(r_sum, present);
    s->f1_macro = ratio(f_sum, present);
    /* the supports sum to the row count */
    s->precision_weighted = ratio(pw, (double)m->rows);
    s->recall_weighted = ratio(rw, (double)m->rows);
    s->f1_weighted = ratio(fw, (double)m->rows);
    s->f1_micro = s->accuracy;
}

/* ---- the `metrics = ...` list ---------------------------------------------- */

static const struct {
    const char *name;
    unsigned    flag;
} metric_names[] = {
    { "accuracy", MLTK_METRIC_ACCURACY },
    { "acc", MLTK_METRIC_ACCURACY },
    { "f1_macro", MLTK_METRIC_F1_MACRO },
    { "f1_weighted", MLTK_METRIC_F1_WEIGHTED },
    { "f1_micro", MLTK_METRIC_F1_MICRO },
    { "precision", MLTK_METRIC_PRECISION },
    { "recall", MLTK_METRIC_RECALL },
    { "confusion", MLTK_METRIC_CONFUSION },
    { "mse", MLTK_METRIC_MSE },
    { "mae", MLTK_METRIC_MAE },
    { "r2", MLTK_METRIC_R2 },
};
#define N_METRIC_NAMES ((int)(sizeof(metric_names) / sizeof(metric_names[0])))
#define VALID_METRICS "accuracy, topK (e.g. top5), f1_macro, f1_weighted, f1_micro, " \
                      "precision, recall, confusion, mse, mae, r2"

/* "top<K>": K, or 0 if the token is not of that form, -1 if K is bad */
static int parse_top(const char *tok)
{
    if (strncmp(tok, "top", 3) != 0 || !tok[3])
        return 0;
    long k = 0;
    for (const char *p = tok + 3; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        k = k * 10 + (*p - '0');
        if (k > 1000000)
            return -1;
    }
    return k >= 1 ? (int)k : -1;
}

static int add_k(mltk_metrics_spec *spec, int k, const char *where, char **err)
{
    int i = 0;
    while (i < spec->n_k && spec->top_k[i] < k)
        i++;
    if (i < spec->n_k && spec->top_k[i] == k)
        return MLTK_OK;
    if (spec->n_k == MLTK_METRICS_MAX_K)
        return mltk_errf(err, MLTK_ERR_CONFIG, "%s%sat most %d topK metrics in one list",
                         where ? where : "", where ? ": " : "", MLTK_METRICS_MAX_K);
    memmove(spec->top_k + i + 1, spec->top_k + i, (size_t)(spec->n_k - i) * sizeof(int));
    spec->top_k[i] = k;
    spec->n_k++;
    spec->flags |= MLTK_METRIC_TOP_K;
    return MLTK_OK;
}

static int unknown_metric(const char *tok, const char *where, char **err)
{
    const char *cands[N_METRIC_NAMES + 2];
    int nc = 0;
    for (int i = 0; i < N_METRIC_NAMES; i++)
        cands[nc++] = metric_names[i].name;
    cands[nc++] = "top1";
    cands[nc++] = "top5";
    const char *dym = mltk_did_you_mean(tok, cands, nc);
    char *hint = dym ? mltk_strfmt("; did you mean '%s'?", dym) : NULL;
    int rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s%sunknown metric '%s'%s (valid: " VALID_METRICS ")",
                       where ? where : "", where ? ": " : "", tok, hint ? hint : "");
    free(hint);
    return rc;
}

int mltk_metrics_spec_parse(mltk_metrics_spec *spec, const char *text, const char *where,
                            char **err)
{
    memset(spec, 0, sizeof(*spec));
    const char *p = text ? text : "";
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t len = (size_t)(p - start);
        if (len == 0)
            continue;
        char tok[64];
        if (len >= sizeof(tok))
            len = sizeof(tok) - 1;   /* too long to be valid; reported below */
        memcpy(tok, start, len);
        tok[len] = '\0';
        int found = 0;
        for (int i = 0; i < N_METRIC_NAMES && !found; i++)
            if (strcmp(tok, metric_names[i].name) == 0) {
                spec->flags |= metric_names[i].flag;
                found = 1;
            }
        if (found)
            continue;
        int k = parse_top(tok);
        if (k < 0)
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "%s%s'%s': K in topK must be a whole number from 1 to 1000000",
                             where ? where : "", where ? ": " : "", tok);
        if (k == 0)
            return unknown_metric(tok, where, err);
        int rc = add_k(spec, k, where, err);
        if (rc)
            return rc;
    }
    return MLTK_OK;
}

int mltk_metrics_spec_check(const mltk_metrics_spec *spec, mltk_metrics_kind kind, int n,
                            const char *where, char **err)
{
    const char *w = where ? where : "", *sep = where ? ": " : "";
    if (kind == MLTK_METRICS_REGRESSION && (spec->flags & MLTK_METRICS_CLASS_MASK))
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "%s%saccuracy, topK, f1, precision, recall and confusion need a "
                         "classifier, but the model's target is a regression target; "
                         "use mse, mae or r2", w, sep);
    if (kind == MLTK_METRICS_CLASSIFICATION && (spec->flags & MLTK_METRICS_REGRESS_MASK))
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "%s%smse, mae and r2 need a regression target, but the model is a "
                         "classifier; use accuracy, topK, f1_macro, ...", w, sep);
    for (int i = 0; i < spec->n_k; i++)
        if (spec->top_k[i] > n)
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "%s%stop%d: there are only %d classes", w, sep, spec->top_k[i], n);
    return MLTK_OK;
}

void mltk_metrics_spec_default(mltk_metrics_spec *spec, mltk_metrics_kind kind, int n)
{
    memset(spec, 0, sizeof(*spec));
    if (kind == MLTK_METRICS_REGRESSION) {
        spec->flags = MLTK_METRIC_MSE;
        return;
    }
    spec->flags = MLTK_METRIC_ACCURACY;
    if (n > 5) {
        spec->flags |= MLTK_METRIC_TOP_K;
        spec->n_k = 1;
        spec->top_k[0] = 5;
    }
}

/* ---- name/value pairs ------------------------------------------------------- */

static int put(mltk_metric_value *out, int cap, int *n, const char *prefix,
               const char *name, double v, char **err)
{
    if (*n >= cap)
        return mltk_errf(err, MLTK_ERR_INVALID, "metrics: room for only %d values", cap);
    int len = snprintf(out[*n].name, sizeof(out[*n].name), "%s%s%s",
                       prefix ? prefix : "", prefix && *prefix ? "_" : "", name);
    if (len < 0 || (size_t)len >= sizeof(out[*n].name))
        return mltk_errf(err, MLTK_ERR_INVALID, "metrics: name '%s_%s' is too long",
                         prefix ? prefix : "", name);
    out[*n].value = v;
    (*n)++;
    return MLTK_OK;
}

int mltk_metrics_values(mltk_metric_value *out, int cap, int *n_out, const mltk_metrics *m,
                        const mltk_metrics_spec *spec, const char *prefix, char **err)
{
    mltk_metrics_summary s;
    mltk_metrics_summary_get(m, &s);
    unsigned f = spec->flags & (m->kind == MLTK_METRICS_CLASSIFICATION
                                    ? MLTK_METRICS_CLASS_MASK : MLTK_METRICS_REGRESS_MASK);
    int n = 0, rc = MLTK_OK;
    *n_out = 0;
    if (f & MLTK_METRIC_ACCURACY)
        rc = put(out, cap, &n, prefix, "acc", s.accuracy, err);
    for (int i = 0; !rc && (f & MLTK_METRIC_TOP_K) && i < spec->n_k; i++) {
        char name[24];
        snprintf(name, sizeof(name), "top%d", spec->top_k[i]);
        rc = put(out, cap, &n, prefix, name, mltk_metrics_top_k_accuracy(m, spec->top_k[i]),
                 err);
    }
    if (!rc && (f & MLTK_METRIC_F1_MACRO))
        rc = put(out, cap, &n, prefix, "f1_macro", s.f1_macro, err);
    if (!rc && (f & MLTK_METRIC_F1_WEIGHTED))
        rc = put(out, cap, &n, prefix, "f1_weighted", s.f1_weighted, err);
    if (!rc && (f & MLTK_METRIC_F1_MICRO))
        rc = put(out, cap, &n, prefix, "f1_micro", s.f1_micro, err);
    if (!rc && (f & MLTK_METRIC_PRECISION))
        rc = put(out, cap, &n, prefix, "precision", s.precision_macro, err);
    if (!rc && (f & MLTK_METRIC_RECALL))
        rc = put(out, cap, &n, prefix, "recall", s.recall_macro, err);
    if (!rc && (f & MLTK_METRIC_MSE))
        rc = put(out, cap, &n, prefix, "mse", s.mse, err);
    if (!rc && (f & MLTK_METRIC_MAE))
        rc = put(out, cap, &n, prefix, "mae", s.mae, err);
    if (!rc && (f & MLTK_METRIC_R2))
        rc = put(out, cap, &n, prefix, "r2", s.r2, err);
    *n_out = n;
    return rc;
}

/* ---- the text report -------------------------------------------------------- */

#define NAME_COLS 16   /* class names longer than this are cut in tables */

static void class_label(char *buf, size_t len, const char *const *names, int c)
{
    if (names && names[c])
        snprintf(buf, len, "%s", names[c]);
    else
        snprintf(buf, len, "%d", c);
    if (strlen(buf) > NAME_COLS) {
        buf[NAME_COLS - 1] = '~';    /* marks the cut */
        buf[NAME_COLS] = '\0';
    }
}

static int digits(int64_t v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static void print_confusion(FILE *f, const mltk_metrics *m, const char *const *names)
{
    const int n = m->n;
    char lab[NAME_COLS + 8];
    if (n > MLTK_METRICS_PRINT_MAX_CLASSES) {
        fprintf(f, "confusion matrix: %d classes, too many to print; "
                "write it with metrics = confusion\n\n", n);
        return;
    }
    int rw = 4;   /* "true" */
    int cw = 1;
    for (int c = 0; c < n; c++) {
        class_label(lab, sizeof(lab), names, c);
        int l = (int)strlen(lab);
        rw = l > rw ? l : rw;
        cw = l > cw ? l : cw;
    }
    for (size_t i = 0; i < (size_t)n * (size_t)n; i++)
        cw = digits(m->confusion[i]) > cw ? digits(m->confusion[i]) : cw;
    fprintf(f, "confusion matrix (rows: true class, columns: predicted class)\n");
    fprintf(f, "%*s", rw, "");
    for (int c = 0; c < n; c++) {
        class_label(lab, sizeof(lab), names, c);
        fprintf(f, "  %*s", cw, lab);
    }
    fputc('\n', f);
    for (int i = 0; i < n; i++) {
        class_label(lab, sizeof(lab), names, i);
        fprintf(f, "%*s", rw, lab);
        for (int j = 0; j < n; j++)
            fprintf(f, "  %*lld", cw, (long long)m->confusion[(size_t)i * (size_t)n + (size_t)j]);
        fputc('\n', f);
    }
    fputc('\n', f);
}

static void print_classes(FILE *f, const mltk_metrics *m, const char *const *names)
{
    char lab[NAME_COLS + 8], topk[32];
    mltk_metrics_summary s;
    mltk_metrics_summary_get(m, &s);
    snprintf(topk, sizeof(topk), "top-%d accuracy", s.top_k);
    int w = (int)strlen(topk);
    for (int c = 0; c < m->n; c++) {
        class_label(lab, sizeof(lab), names, c);
        w = (int)strlen(lab) > w ? (int)strlen(lab) : w;
    }
    /* sklearn's classification_report layout: rates of the whole set go
     * in the f1 column */
    fprintf(f, "%*s  %9s  %9s  %9s  %9s\n", w, "class", "precision", "recall", "f1", "support");
    for (int c = 0; c < m->n; c++) {
        mltk_class_stats cs;
        mltk_metrics_class(m, c, &cs);
        class_label(lab, sizeof(lab), names, c);
        fprintf(f, "%*s  %9.4f  %9.4f  %9.4f  %9lld\n", w, lab, cs.precision, cs.recall,
                cs.f1, (long long)cs.support);
    }
    fputc('\n', f);
    fprintf(f, "%*s  %9s  %9s  %9.4f  %9lld\n", w, "accuracy", "", "", s.accuracy,
            (long long)s.rows);
    fprintf(f, "%*s  %9s  %9s  %9.4f  %9lld\n", w, topk, "", "", s.top_k_accuracy,
            (long long)s.rows);
    fprintf(f, "%*s  %9.4f  %9.4f  %9.4f  %9lld\n", w, "macro avg", s.precision_macro,
            s.recall_macro, s.f1_macro, (long long)s.rows);
    fprintf(f, "%*s  %9.4f  %9.4f  %9.4f  %9lld\n", w, "weighted avg", s.precision_weighted,
            s.recall_weighted, s.f1_weighted, (long long)s.rows);
}

static void print_outputs(FILE *f, const mltk_metrics *m)
{
    fprintf(f, "%8s  %12s  %12s  %9s\n", "output", "mse", "mae", "r2");
    for (int j = 0; j < m->n; j++)
        fprintf(f, "%8d  %12.6g  %12.6g  %9.4f\n", j, mltk_metrics_output_mse(m, j),
                mltk_metrics_output_mae(m, j), mltk_metrics_output_r2(m, j));
    if (m->n > 1) {
        mltk_metrics_summary s;
        mltk_metrics_summary_get(m, &s);
        fprintf(f, "%8s  %12.6g  %12.6g  %9.4f\n", "mean", s.mse, s.mae, s.r2);
    }
    fprintf(f, "(%lld rows)\n", (long long)m->rows);
}

int mltk_metrics_print(FILE *f, const mltk_metrics *m, const char *const *names)
{
    if (m->kind == MLTK_METRICS_CLASSIFICATION) {
        print_confusion(f, m, names);
        print_classes(f, m, names);
    } else {
        print_outputs(f, m);
    }
    return fflush(f) || ferror(f) ? MLTK_ERR_IO : MLTK_OK;
}

/* ---- writing a file atomically ---------------------------------------------- */

int mltk_atomic_open(FILE **f, char **tmp_path, const char *path, char **err)
{
    static unsigned counter;
    *f = NULL;
    *tmp_path = NULL;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned seq = __atomic_fetch_add(&counter, 1u, __ATOMIC_RELAXED);
        char *tmp = mltk_strfmt("%s.tmp.%ld.%u", path, (long)getpid(), seq);
        if (!tmp)
            return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", path);
        /* O_EXCL: never write through someone else's file; 0666 & ~umask */
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            int e = errno;
            free(tmp);
            if (e == EEXIST)
                continue;
            return mltk_errf(err, MLTK_ERR_IO, "%s: cannot create a temporary file beside it: %s",
                             path, strerror(e));
        }
        *f = fdopen(fd, "wb");
        if (!*f) {
            int e = errno;
            close(fd);
            unlink(tmp);
            free(tmp);
            return mltk_errf(err, MLTK_ERR_IO, "%s: %s", path, strerror(e));
        }
        *tmp_path = tmp;
        return MLTK_OK;
    }
    return mltk_errf(err, MLTK_ERR_IO, "%s: cannot find a free temporary name beside it", path);
}

int mltk_atomic_close(FILE *f, char *tmp_path, const char *path, int ok, char **err)
{
    int rc = MLTK_OK;
    int bad = fflush(f) != 0 || ferror(f);
    int e = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (ok && bad)
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: write failed: %s", path, strerror(e));
    else if (ok && rename(tmp_path, path) != 0)
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot replace the file: %s", path,
                       strerror(errno));
    if (!ok || rc)
        unlink(tmp_path);
    free(tmp_path);
    return rc;
}

/* ---- the confusion-matrix CSV: writing -------------------------------------- */

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_name(FILE *f, const char *const *names, int c)
{
    if (names && names[c])
        csv_field(f, names[c]);
    else
        fprintf(f, "%d", c);
}

int mltk_metrics_write_confusion_csv(const char *path, const mltk_metrics *m,
                                     const char *const *names, char **err)
{
    if (m->kind != MLTK_METRICS_CLASSIFICATION)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "%s: a regression accumulator has no confusion matrix", path);
    FILE *f;
    char *tmp;
    int rc = mltk_atomic_open(&f, &tmp, path, err);
    if (rc)
        return rc;
    const int n = m->n;
    fputs("true\\predicted", f);
    for (int c = 0; c < n; c++) {
        fputc(',', f);
        csv_name(f, names, c);
    }
    fputc('\n', f);
    for (int i = 0; i < n; i++) {
        csv_name(f, names, i);
        for (int j = 0; j < n; j++)
            fprintf(f, ",%lld", (long long)m->confusion[(size_t)i * (size_t)n + (size_t)j]);
        fputc('\n', f);
    }
    return mltk_atomic_close(f, tmp, path, 1, err);
}
