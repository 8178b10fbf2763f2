/* plot.h - `mltk plot`: training curves and confusion matrices as PNG.
 * The command's own functions (core/cli/plot.c, core/cli/confusion.c);
 * not part of libmltk, not installed.
 *
 * What this is: what the two entry points of `mltk plot` draw, and the
 * pieces under them that the test suite checks on their own: the reader
 * of a run's metrics.jsonl, the 1-2-5 tick chooser and the size of a
 * confusion plot.
 * What this is not: a plotting library.  The layouts are fixed; images
 * are drawn with cairo's image surface and toy text API (fontconfig's
 * "sans-serif"), so no font, theme or style is configurable.
 *
 * Ownership: every `char **err` is filled with a malloc()ed message the
 * caller frees; paths are borrowed for the call.  PNGs are written to a
 * temporary file beside png_path and renamed over it when complete, so a
 * reader never sees half an image.
 */
#ifndef MLTK_PLOT_H
#define MLTK_PLOT_H

#include <stdint.h>

/* ---- entry points ----------------------------------------------------------- */
/* mltk_plot_curves(png_path, run_dirs, n_runs, err): the training curves
 * of n_runs runs (1 <= n_runs <= 64) in one PNG of
 * MLTK_PLOT_CURVES_WIDTH x MLTK_PLOT_CURVES_HEIGHT pixels: a loss panel
 * (train_loss solid, val_loss dashed) and an accuracy panel (train_acc
 * solid, val_acc dashed) over the epoch, one colour per run, and a legend
 * naming each run by the base name of its directory.  Each run_dirs[i] is
 * a run directory holding metrics.jsonl, or the path of a .jsonl file
 * itself.  Errors: MLTK_ERR_IO for a missing or unreadable file (naming
 * it), MLTK_ERR_DATA "FILE:LINE: ..." for a malformed line, MLTK_ERR_IO
 * if the PNG cannot be written.
 *
 * mltk_plot_confusion(png_path, csv_path, err): the confusion matrix in
 * csv_path (as written by mltk_metrics_write_confusion_csv) as a heat map
 * with the count in each cell (when the cells are large enough to hold
 * it), "true" down the side, "predicted" along the bottom, class labels
 * and a colour bar.  The image is mltk_plot_confusion_size() pixels.
 * Errors as above; at most MLTK_PLOT_MAX_CLASSES classes. */
int mltk_plot_curves(const char *png_path, const char *const *run_dirs, int n_runs,
                     char **err);
int mltk_plot_confusion(const char *png_path, const char *csv_path, char **err);

#define MLTK_PLOT_CURVES_WIDTH  1280
#define MLTK_PLOT_CURVES_HEIGHT 600
#define MLTK_PLOT_MAX_CLASSES   4096

/* ---- the parts under them --------------------------------------------------- */

/* One run's log: per line of metrics.jsonl, in file order.  Missing keys,
 * null, NaN and Infinity are NaN.  A line without "epoch" gets its line's
 * record number (1, 2, ...). */
typedef struct mltk_run_log {
    char   *name;        /* legend label: the run directory's base name */
    char   *path;        /* the .jsonl file read */
    int     n;
    double *epoch, *train_loss, *val_loss, *train_acc, *val_acc;
} mltk_run_log;

/* Read run_dir/metrics.jsonl (or run_dir itself when it is a file).
 * Each line is a JSON object, parsed with jansson; NaN and Infinity as
 * Python's json module writes them are accepted, keys other than the five
 * plotted are ignored whatever their values, blank lines too.  A line
 * that does not parse is an error "FILE:LINE: jansson's message (column
 * N)".  A last line without its
 * newline that does not parse is taken as a write in progress and
 * skipped.  Free with mltk_run_log_free. */
int mltk_run_log_read(mltk_run_log *r, const char *run_dir, char **err);
void mltk_run_log_free(mltk_run_log *r);

/* Axis ticks at multiples of 1, 2 or 5 times a power of ten covering
 * [lo, hi], with at most max_ticks + 1 ticks (max_ticks >= 2).  The range
 * is widened to whole steps; an empty range (lo == hi) is widened around
 * its value first.  integer: steps of at least 1 (epochs). */
typedef struct mltk_ticks {
    double lo, hi;   /* widened range: first and last tick */
    double step;
    int    n;        /* number of ticks, lo + i * step for i < n */
    int    decimals; /* digits after the point that the labels need */
} mltk_ticks;
void mltk_plot_ticks(mltk_ticks *t, double lo, double hi, int max_ticks, int integer);

/* Pixel size of the confusion plot of n classes. */
void mltk_plot_confusion_size(int n, int *width, int *height);

/* ---- the confusion-matrix CSV (confusion.c) -------------------------------- */
/* The format mltk_metrics_write_confusion_csv writes (core/metrics.h). */

/* A confusion matrix read back from such a CSV. */
typedef struct mltk_confusion {
    int      n;
    char   **names;     /* n column (predicted) names, from the header */
    char   **row_names; /* n row (true) names */
    int64_t *count;     /* (n, n), row = true class */
} mltk_confusion;

/* Read the CSV at `path`.  Errors are MLTK_ERR_IO (cannot open) or
 * MLTK_ERR_DATA "path:line: ..." (a ragged row, a count that is not a
 * non-negative integer, rows != columns).  Free with
 * mltk_confusion_free. */
int mltk_confusion_read(mltk_confusion *c, const char *path, char **err);
void mltk_confusion_free(mltk_confusion *c);


#endif /* MLTK_PLOT_H */
