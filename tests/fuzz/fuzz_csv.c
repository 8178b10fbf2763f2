/* fuzz_csv.c - a libFuzzer harness for the CSV parser (datasets/csv.c).
 *
 * What this is: the first byte of an input chooses the options (bits 0-1
 * the delimiter , ; tab space; bit 2 a header; bit 3 classification; bits
 * 4-5 the missing rule refuse, zero, mean, refuse; bits 6-7 the target and
 * feature columns: "0" / all, "1" / all, "y" / all, "0,2" / "1,3"), the
 * rest is the file, parsed by csv_parse_buffer() as a training file.  A
 * rejection must be MLTK_ERR_DATA, MLTK_ERR_CONFIG or MLTK_ERR_NOMEM with
 * one line of message that starts with the file.  An accepted file is
 * checked: at least one row and one feature, every feature finite, every
 * class in [0, n_classes) with a name (string classes sorted), every
 * target finite; and the same bytes parsed as the test file of that
 * training file must be accepted with identical rows.
 * What this is not: a test of the plugin's file handling (check_csv).
 */
#include "config.h"

#include <math.h>
#include <mltk/mltk.h>

#include "csv.h"
#include "fuzz.h"

#define NAME "fuzz_csv"

static void check_error(int rc, char *err)
{
    fuzz_check(rc == MLTK_ERR_DATA || rc == MLTK_ERR_CONFIG || rc == MLTK_ERR_NOMEM, NAME,
               "a rejection that is not MLTK_ERR_DATA, MLTK_ERR_CONFIG or MLTK_ERR_NOMEM");
    fuzz_check(rc == MLTK_ERR_NOMEM || fuzz_names(err, "in.csv"), NAME,
               "a message that does not start with the file");
    fuzz_check(!err || !strchr(err, '\n'), NAME, "a message of more than one line");
    free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delims[4] = { ',', ';', '\t', ' ' };
    static const char *const targets[4] = { "0", "1", "y", "0,2" };
    static const char *const features[4] = { "", "", "", "1,3" };
    csv_opts o;
    csv_data tr, te;
    char *err = NULL;
    int rc;

    if (size < 1)
        return 0;
    o.delim = delims[data[0] & 3];
    o.header = data[0] >> 2 & 1;
    o.classify = data[0] >> 3 & 1;
    o.missing = (data[0] >> 4 & 3) == 3 ? CSV_MISSING_REFUSE : data[0] >> 4 & 3;
    o.target = targets[data[0] >> 6];
    o.features = features[data[0] >> 6];
    /* a copy of exactly the file's bytes, so that ASan sees any overread */
    char *buf = malloc(size - 1 ? size - 1 : 1);
    if (!buf)
        abort();
    memcpy(buf, data + 1, size - 1);

    rc = csv_parse_buffer(&tr, &o, "in.csv", buf, size - 1, NULL, &err);
    if (rc) {
        check_error(rc, err);
        free(buf);
        return 0;
    }
    fuzz_check(!err, NAME, "accepted with a message");
    fuzz_check(tr.n >= 1 && tr.n_features >= 1 && tr.n_targets >= 1, NAME,
               "an accepted file without rows, features or targets");
    for (int64_t i = 0; i < tr.n * tr.n_features; i++)
        fuzz_check(isfinite(tr.x[i]), NAME, "a feature that is not finite");
    if (o.classify) {
        fuzz_check(tr.yc && tr.n_classes >= 1 && tr.class_names, NAME, "no classes");
        for (int64_t i = 0; i < tr.n; i++)
            fuzz_check(tr.yc[i] >= 0 && tr.yc[i] < tr.n_classes, NAME, "a class out of range");
        for (int64_t c = 0; c < tr.n_classes; c++) {
            fuzz_check(tr.class_names[c] != NULL, NAME, "a class without a name");
            if (c && !tr.int_labels)
                fuzz_check(strcmp(tr.class_names[c - 1], tr.class_names[c]) < 0, NAME,
                           "string classes not sorted");
        }
    } else {
        for (int64_t i = 0; i < tr.n * tr.n_targets; i++)
            fuzz_check(isfinite(tr.yv[i]), NAME, "a target that is not finite");
    }

    rc = csv_parse_buffer(&te, &o, "in.csv", buf, size - 1, &tr, &err);
    if (rc) {
        fprintf(stderr, "%s: %s\n", NAME, err ? err : "?");
        fuzz_check(0, NAME, "a training file refused as its own test file");
    }
    fuzz_check(te.n == tr.n && te.n_features == tr.n_features && te.n_targets == tr.n_targets,
               NAME, "the test parse differs in size");
    fuzz_check(memcmp(te.x, tr.x, (size_t)(tr.n * tr.n_features) * sizeof(float)) == 0, NAME,
               "the test parse differs in features");
    if (o.classify)
        fuzz_check(memcmp(te.yc, tr.yc, (size_t)tr.n * sizeof(int32_t)) == 0 &&
                   te.n_classes == tr.n_classes, NAME, "the test parse differs in classes");
    else
        fuzz_check(memcmp(te.yv, tr.yv, (size_t)(tr.n * tr.n_targets) * sizeof(float)) == 0,
                   NAME, "the test parse differs in targets");
    csv_free(&te);
    csv_free(&tr);
    free(buf);
    return 0;
}
