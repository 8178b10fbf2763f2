/* metrics.h - evaluation metrics accumulated on the host, as the core's
 * modules (the trainer, `mltk plot`) and the test suite see them.  Not
 * installed.
 *
 * What this is: an accumulator that takes batches of model outputs the
 * trainer has downloaded (class logits and labels, or regression
 * predictions and targets) and reports accuracy, top-k accuracy, the
 * confusion matrix, per-class precision / recall / F1, their macro,
 * weighted and micro averages, MSE, MAE and R^2; the parser of the
 * `metrics = ...` config list; text and CSV output of the results.
 * What this is not: a device-side reduction (outputs are copied to the
 * host first), nor multi-label or probabilistic metrics (log loss, AUC).
 *
 * Definitions, chosen to agree with scikit-learn's defaults:
 *   - The predicted class of a row is the first index of its largest
 *     logit (numpy's argmax); accuracy and the confusion matrix use it.
 *   - Top-k: the true class counts as found when fewer than k classes
 *     have a strictly larger logit ("correct if rank < k").  Ties are
 *     counted in the model's favour, so top-1 can exceed accuracy when a
 *     row's largest logit is tied.
 *   - Precision of a class never predicted, recall of a class absent from
 *     the labels, and F1 when both are zero, are 0 (zero_division=0).
 *     F1 = 2 tp / (2 tp + fp + fn).
 *   - Macro averages run over the classes that occur in the labels or in
 *     the predictions (as sklearn does when `labels` is not given); a
 *     class that is neither in the labels nor predicted is left out.
 *     Weighted averages weight each class by its support.  Micro F1 (and
 *     micro precision and recall) of single-label data equals accuracy.
 *   - MSE and MAE are means over all rows and outputs.  R^2 is computed
 *     per output, 1 - SS_res / SS_tot, then averaged uniformly over the
 *     outputs ('uniform_average').  An output whose target is constant
 *     (SS_tot == 0) scores 1.0 if predicted exactly (SS_res == 0) and 0.0
 *     otherwise, as sklearn's force_finite=True.  With fewer than two
 *     rows R^2 is NaN (sklearn returns nan with a warning).
 *   - With no rows yet, every rate and mean is 0 (R^2 NaN).
 * Sums are kept in double and counts in int64, and rows are folded in one
 * at a time, so adding the same rows in any batching gives bit-identical
 * results.
 */
#ifndef MLTK_METRICS_H
#define MLTK_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "internal.h"

/* ---- the accumulator -------------------------------------------------------- */

typedef enum mltk_metrics_kind {
    MLTK_METRICS_CLASSIFICATION = 1,
    MLTK_METRICS_REGRESSION = 2
} mltk_metrics_kind;

typedef struct mltk_metrics mltk_metrics;

/* A new, empty accumulator.  `n` is the number of classes (>= 2) for
 * classification or of outputs per row (>= 1) for regression.  `top_k`
 * (classification only, 1 <= top_k <= n; 0 means min(5, n)) is the k that
 * mltk_metrics_summary reports; any k can be asked for with
 * mltk_metrics_top_k_accuracy.  The caller destroys *m. */
MLTK_HIDDEN int mltk_metrics_create(mltk_metrics **m, mltk_metrics_kind kind, int n,
                                    int top_k, char **err);
MLTK_HIDDEN void mltk_metrics_destroy(mltk_metrics *m);   /* NULL is fine */
/* Forget every row added so far (start of an evaluation pass). */
MLTK_HIDDEN void mltk_metrics_reset(mltk_metrics *m);

MLTK_HIDDEN mltk_metrics_kind mltk_metrics_get_kind(const mltk_metrics *m);
/* classes or outputs */
MLTK_HIDDEN int mltk_metrics_n(const mltk_metrics *m);
MLTK_HIDDEN int mltk_metrics_top_k(const mltk_metrics *m);
/* rows added since creation or the last reset */
MLTK_HIDDEN int64_t mltk_metrics_rows(const mltk_metrics *m);

/* Add a batch of a classifier's outputs: logits (rows, n_classes), labels
 * (rows) in [0, n_classes).  The batch is checked whole before any of it
 * is counted: a label out of range is MLTK_ERR_DATA, a NaN or infinite
 * logit MLTK_ERR_NUMERIC, each naming the row; the accumulator is then
 * unchanged.  Both arrays are only read during the call. */
MLTK_HIDDEN int mltk_metrics_add_class(mltk_metrics *m, const float *logits,
                                       const int32_t *labels, int64_t rows, char **err);
/* Add a batch of a regressor's outputs: pred and target (rows, n_outputs).
 * Non-finite values are MLTK_ERR_NUMERIC naming the row and output; the
 * accumulator is then unchanged. */
MLTK_HIDDEN int mltk_metrics_add_regress(mltk_metrics *m, const float *pred,
                                         const float *target, int64_t rows, char **err);

/* ---- results ---------------------------------------------------------------- */

typedef struct mltk_class_stats {
    int64_t tp;          /* true class == predicted class == c */
    int64_t support;     /* rows whose true class is c (row sum) */
    int64_t predicted;   /* rows predicted as c (column sum) */
    double  precision;   /* tp / predicted, 0 when predicted == 0 */
    double  recall;      /* tp / support, 0 when support == 0 */
    double  f1;          /* 2 tp / (support + predicted), 0 when both are 0 */
} mltk_class_stats;

/* Everything at once.  Fields of the other kind are 0. */
typedef struct mltk_metrics_summary {
    int64_t rows;
    /* classification */
    double  accuracy;           /* argmax == label */
    int     top_k;
    double  top_k_accuracy;     /* rank of the label < top_k */
    double  precision_macro, recall_macro, f1_macro;
    double  precision_weighted, recall_weighted, f1_weighted;
    double  f1_micro;           /* == accuracy */
    /* regression */
    double  mse, mae, r2;
} mltk_metrics_summary;

MLTK_HIDDEN void mltk_metrics_summary_get(const mltk_metrics *m, mltk_metrics_summary *s);
/* Fraction of rows whose label has rank < k (k >= 1; k >= n gives 1). */
MLTK_HIDDEN double mltk_metrics_top_k_accuracy(const mltk_metrics *m, int k);
/* Statistics of class c (0 <= c < n); a zeroed struct for bad c. */
MLTK_HIDDEN void mltk_metrics_class(const mltk_metrics *m, int c, mltk_class_stats *out);
/* The confusion matrix (n_classes, n_classes), row = true class, column =
 * predicted class; borrowed, valid until the next add, reset or destroy.
 * NULL for a regression accumulator. */
MLTK_HIDDEN const int64_t *mltk_metrics_confusion(const mltk_metrics *m);
/* Per-output regression statistics (0 <= j < n_outputs). */
MLTK_HIDDEN double mltk_metrics_output_mse(const mltk_metrics *m, int j);
MLTK_HIDDEN double mltk_metrics_output_mae(const mltk_metrics *m, int j);
MLTK_HIDDEN double mltk_metrics_output_r2(const mltk_metrics *m, int j);

/* ---- the `metrics = ...` list ---------------------------------------------- */

enum {
    MLTK_METRIC_ACCURACY    = 1u << 0,
    MLTK_METRIC_TOP_K       = 1u << 1,   /* "top5": one or more k in .top_k */
    MLTK_METRIC_F1_MACRO    = 1u << 2,
    MLTK_METRIC_F1_WEIGHTED = 1u << 3,
    MLTK_METRIC_F1_MICRO    = 1u << 4,
    MLTK_METRIC_PRECISION   = 1u << 5,   /* macro average */
    MLTK_METRIC_RECALL      = 1u << 6,   /* macro average */
    MLTK_METRIC_CONFUSION   = 1u << 7,   /* write the matrix; no scalar */
    MLTK_METRIC_MSE         = 1u << 8,
    MLTK_METRIC_MAE         = 1u << 9,
    MLTK_METRIC_R2          = 1u << 10
};
#define MLTK_METRICS_CLASS_MASK 0x0ffu
#define MLTK_METRICS_REGRESS_MASK 0x700u
#define MLTK_METRICS_MAX_K 8     /* distinct topK entries in one list */

/* A parsed list, in a fixed order (not the order written). */
typedef struct mltk_metrics_spec {
    unsigned flags;                    /* MLTK_METRIC_* */
    int      n_k;
    int      top_k[MLTK_METRICS_MAX_K]; /* ascending, distinct */
} mltk_metrics_spec;

/* Parse "accuracy, top5, f1_macro, ..." (names separated by commas and/or
 * blanks; repeats are allowed and count once).  The valid names are
 * accuracy, topK (K >= 1, e.g. top5), f1_macro, f1_weighted, f1_micro,
 * precision, recall, confusion, mse, mae, r2.  `where` prefixes messages
 * ("train.ini:14: metrics"; NULL for none).  An unknown name is
 * MLTK_ERR_CONFIG with a did-you-mean when one is close and the list of
 * valid names. */
MLTK_HIDDEN int mltk_metrics_spec_parse(mltk_metrics_spec *spec, const char *text,
                                        const char *where, char **err);
/* Check a spec against the model: classification metrics need a
 * classifier, regression metrics a regressor, and every topK k <= n
 * classes.  `where` as above. */
MLTK_HIDDEN int mltk_metrics_spec_check(const mltk_metrics_spec *spec,
                                        mltk_metrics_kind kind, int n,
                                        const char *where, char **err);
/* The default list of a kind: accuracy for a classifier (and top5 when
 * there are more than 5 classes), mse for a regressor. */
MLTK_HIDDEN void mltk_metrics_spec_default(mltk_metrics_spec *spec,
                                           mltk_metrics_kind kind, int n);

/* ---- output ----------------------------------------------------------------- */

#define MLTK_METRIC_NAME_MAX 48
#define MLTK_METRICS_MAX_VALUES (16 + MLTK_METRICS_MAX_K)

typedef struct mltk_metric_value {
    char   name[MLTK_METRIC_NAME_MAX];  /* "val_acc", "val_top5", ... */
    double value;
} mltk_metric_value;

/* The scalars a spec asks for, named "<prefix>_<metric>" (prefix NULL or
 * "": just "<metric>"): acc, top<k>, f1_macro, f1_weighted, f1_micro,
 * precision, recall, mse, mae, r2, in that order.  `out` has room for
 * `cap` values (MLTK_METRICS_MAX_VALUES is always enough); *n_out is set
 * to how many were filled.  Metrics of the other kind are skipped. */
MLTK_HIDDEN int mltk_metrics_values(mltk_metric_value *out, int cap, int *n_out,
                                    const mltk_metrics *m, const mltk_metrics_spec *spec,
                                    const char *prefix, char **err);

/* Print a human-readable report to f: for a classifier the confusion
 * matrix (up to MLTK_METRICS_PRINT_MAX_CLASSES classes; larger ones are
 * only referred to) and a per-class table of precision, recall, F1 and
 * support with the averages under it; for a regressor a per-output table
 * of MSE, MAE and R^2.  `names` (may be NULL: classes are numbered) holds
 * n class names, borrowed for the call.  Returns MLTK_ERR_IO if writing
 * fails. */
#define MLTK_METRICS_PRINT_MAX_CLASSES 30
MLTK_HIDDEN int mltk_metrics_print(FILE *f, const mltk_metrics *m,
                                   const char *const *names);

/* ---- the confusion-matrix CSV ----------------------------------------------- */
/* Format: a header row "true\predicted,<name 0>,...,<name n-1>", then one
 * row per true class: "<name i>,<count>,...,<count>".  Names are quoted
 * (RFC 4180) when they hold a comma, quote or line break. */

/* Write the matrix to `path` atomically (a temporary file in the same
 * directory, renamed over `path` once complete).  `names` as above. */
MLTK_HIDDEN int mltk_metrics_write_confusion_csv(const char *path, const mltk_metrics *m,
                                                 const char *const *names, char **err);

/* ---- writing a file atomically ---------------------------------------------- */

/* Open a temporary file next to `path` for writing; *tmp_path (malloc()ed)
 * names it.  Finish with mltk_atomic_close. */
MLTK_HIDDEN int mltk_atomic_open(FILE **f, char **tmp_path, const char *path, char **err);
/* Close f; when `ok` and the close succeeded, rename tmp_path over path,
 * otherwise remove tmp_path.  Frees tmp_path.  Returns MLTK_ERR_IO naming
 * `path` if writing, closing or renaming failed (and `ok` was set). */
MLTK_HIDDEN int mltk_atomic_close(FILE *f, char *tmp_path, const char *path, int ok,
                                  char **err);

#endif /* MLTK_METRICS_H */
