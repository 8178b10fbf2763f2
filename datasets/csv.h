/* csv.h - the table parser of the csv dataset plugin (csv.c), exposed for
 * its tests and the fuzz harness (tests/fuzz/fuzz_csv.c).
 *
 * What this is: one function that turns the bytes of a CSV file into a
 * split (float32 features, int32 classes or float32 targets), checking
 * every record, and the options it takes.  A training file is parsed on
 * its own; a test file is parsed against its training file's result, whose
 * columns, class mapping and column means it reuses.
 * What this is not: part of the plugin ABI or of libmltk.  The plugin
 * exports only its entry symbol, so nothing outside the tree can call this.
 */
#ifndef MLTK_CSV_H
#define MLTK_CSV_H

#include <stddef.h>
#include <stdint.h>

/* A record (one row, quoted line breaks included) longer than this is
 * refused, and so is a file of more data rows than CSV_MAX_ROWS. */
#define CSV_MAX_RECORD  (1 << 20)
#define CSV_MAX_ROWS    INT32_MAX
/* distinct labels of a classification target */
#define CSV_MAX_CLASSES 65536

enum { CSV_MISSING_REFUSE = 0, CSV_MISSING_ZERO = 1, CSV_MISSING_MEAN = 2 };

typedef struct csv_opts {
    char        delim;          /* field separator: ',' ';' '\t' ... */
    int         header;         /* the first record names the columns */
    int         classify;       /* 1 classification, 0 regression */
    int         missing;        /* CSV_MISSING_* (features only) */
    const char *target;         /* comma-separated column names or indices */
    const char *features;       /* the same, or "" for all but the targets */
} csv_opts;

/* One parsed file.  Everything is malloc()ed; csv_free releases it. */
typedef struct csv_data {
    int64_t  n;                 /* data rows */
    int64_t  n_cols;            /* fields per record */
    int64_t  n_features;
    int64_t  n_targets;         /* 1 for classification */
    float   *x;                 /* (n, n_features) */
    int32_t *yc;                /* (n) classes, classification */
    float   *yv;                /* (n, n_targets) values, regression */
    int64_t  n_classes;
    char   **class_names;       /* (n_classes), in class order */
    int      int_labels;        /* every label was an integer */
    double  *class_values;      /* (n_classes) those integers, ascending */
    double  *means;             /* (n_features) column means of the
                                 * training file, missing = mean only */
    char   **col_names;         /* (n_cols) header names, or NULL */
    int64_t *feat_cols;         /* (n_features) column of each feature */
    int64_t *targ_cols;         /* (n_targets) column of each target */
} csv_data;

/* Parse the CSV bytes buf[0, len) of the file named `file` (for messages)
 * with options o.  train is NULL for a training file; for a test file it is
 * the parsed training file (same options), whose header (when there is
 * one), class mapping and column means apply.  On success *out holds the
 * split; on error *out holds nothing and *err one line naming the file and
 * the line (and the column where there is one): MLTK_ERR_DATA for a
 * malformed file, MLTK_ERR_CONFIG for a target or feature the file does
 * not have, MLTK_ERR_NOMEM. */
int csv_parse_buffer(csv_data *out, const csv_opts *o, const char *file,
                     const char *buf, size_t len, const csv_data *train, char **err);

void csv_free(csv_data *d);

#endif
