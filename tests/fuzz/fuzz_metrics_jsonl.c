/* fuzz_metrics_jsonl.c - a libFuzzer harness for the metrics.jsonl reader
 * of `mltk plot` (mltk_run_log_read, core/cli/plot.c).
 *
 * What this is: each input is written to a .jsonl file and read as a
 * run's log.  A rejection must be MLTK_ERR_DATA (or MLTK_ERR_NOMEM) with
 * a message "FILE:LINE: ..."; an accepted log is checked: no more records
 * than lines, every column present for each record, epochs that are
 * numbers, the other values finite or NaN.
 * What this is not: a check of the drawing; no PNG is written.
 */
#include "config.h"

#include <math.h>
#include <mltk/mltk.h>

#include "plot.h"
#include "fuzz.h"

#define NAME "fuzz_metrics_jsonl"

static char path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* a last line without its newline is skipped with a warning */
    mltk_log_set_level(MLTK_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "%s/fuzz_metrics.%ld.jsonl", fuzz_tmpdir(),
                 (long)getpid());
    fuzz_file(path, sizeof path, "metrics", data, size);
    long lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    mltk_run_log r;
    char *err = NULL;
    int rc = mltk_run_log_read(&r, path, &err);
    if (rc) {
        fuzz_check(rc == MLTK_ERR_DATA || rc == MLTK_ERR_NOMEM, NAME,
                   "a rejection that is not MLTK_ERR_DATA or MLTK_ERR_NOMEM");
        char *end = NULL;
        long line = fuzz_names(err, path) ? strtol(err + strlen(path) + 1, &end, 10) : 0;
        fuzz_check(rc == MLTK_ERR_NOMEM || (line >= 1 && line <= lines && end && *end == ':'),
                   NAME, "a message that does not start with FILE:LINE:");
        free(err);
        return 0;
    }
    fuzz_check(!err && r.n >= 0 && r.n <= lines, NAME, "more records than lines");
    for (int i = 0; i < r.n; i++) {
        fuzz_check(!isnan(r.epoch[i]), NAME, "an epoch that is not a number");
        double v[4] = { r.train_loss[i], r.val_loss[i], r.train_acc[i], r.val_acc[i] };
        for (int k = 0; k < 4; k++)
            fuzz_check(isnan(v[k]) || isfinite(v[k]), NAME, "an infinite value");
    }
    mltk_run_log_free(&r);
    return 0;
}
