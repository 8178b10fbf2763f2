/* data.c - data sets resident in backend memory, and the epoch order.
 *
 * A split is read once through its dataset plugin into host memory and
 * uploaded to the backend; each epoch draws a permutation on the host from
 * a counter-based stream (so shuffling is the same on every backend) and
 * uploads it, and a batch is then one gather on the backend.
 *
 * Class labels are checked here, once, when a split is loaded: the ops
 * that read them (cross-entropy, the batch gather) trust their input, so
 * a label outside [0, n_classes) is refused naming the split and the
 * sample before any step runs.  The gathers' indices are the epoch's
 * permutation of [0, n), in range by construction.
 *
 * What this is not: a streaming pipeline for data sets larger than device
 * memory (prefetching workers belong to a later change); a split that
 * does not fit fails with a clear out-of-memory message.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <mltk/rng.h>
#include "session.h"

/* ---- loading ---------------------------------------------------------------- */

/* n class labels: each >= 0 and, when the data set declares how many
 * classes it has, < n_classes; the largest and where it first is. */
static int check_labels(mltk_split *sp, const int32_t *y, int64_t n, const char *name,
                        char **err)
{
    int64_t nc = sp->info.n_classes;
    sp->label_max = 0;
    sp->label_max_at = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0)
            return mltk_errf(err, MLTK_ERR_DATA, "the %s split's sample %" PRId64 " has the "
                             "negative label %" PRId32, name, i, y[i]);
        if (nc > 0 && y[i] >= nc)
            return mltk_errf(err, MLTK_ERR_DATA, "the %s split's sample %" PRId64 " has "
                             "label %" PRId32 ", outside [0, %" PRId64 ") (the data set's "
                             "n_classes)", name, i, y[i], nc);
        if (y[i] > sp->label_max) {
            sp->label_max = y[i];
            sp->label_max_at = i;
        }
    }
    return MLTK_OK;
}

int mltk_split_load(mltk_split *sp, const mltk_section *data, mltk_registry_t *reg,
                    const struct mltk_backend *be, const char *name, int64_t limit,
                    char **err)
{
    const struct mltk_dataset_i *ds = NULL;
    const char *type = mltk_params_str(data->params, "type");
    void *self = NULL;
    float *hx = NULL;
    void *hy = NULL;
    char *perr = NULL;
    memset(sp, 0, sizeof(*sp));

    int rc = mltk_registry_load(reg, type, MLTK_KIND_DATASET, (const void **)&ds, err);
    if (rc)
        return rc;
    rc = ds->open(&self, data->params, name, &perr);
    if (rc)
        goto out;
    rc = ds->info(self, &sp->info);
    if (rc)
        goto out;
    sp->n = sp->info.n;
    if (limit > 0 && limit < sp->n)
        sp->n = limit;
    if (sp->n <= 0) {
        rc = mltk_errf(&perr, MLTK_ERR_DATA, "the %s split is empty", name);
        goto out;
    }
    sp->x_numel = mltk_shape_numel(&sp->info.x_shape);
    sp->y_bytes = sp->info.target == MLTK_TARGET_CLASS
                      ? sizeof(int32_t)
                      : sizeof(float) * (size_t)mltk_shape_numel(&sp->info.y_shape);
    size_t xb = (size_t)sp->n * (size_t)sp->x_numel * sizeof(float);
    size_t yb = (size_t)sp->n * sp->y_bytes;
    hx = malloc(xb);
    hy = malloc(yb);
    if (!hx || !hy) {
        rc = mltk_errf(&perr, MLTK_ERR_NOMEM, "cannot hold the %s split in memory (%zu bytes)",
                       name, xb + yb);
        goto out;
    }
    rc = ds->read(self, 0, sp->n, hx, hy, &perr);
    if (rc)
        goto out;
    if (sp->info.target == MLTK_TARGET_CLASS) {
        rc = check_labels(sp, hy, sp->n, name, &perr);
        if (rc)
            goto out;
    }
    if (mltk_be_alloc(be, xb, &sp->x) || mltk_be_alloc(be, yb, &sp->y) ||
        mltk_be_alloc(be, (size_t)sp->n * sizeof(int32_t), (void **)&sp->perm)) {
        rc = mltk_errf(&perr, MLTK_ERR_NOMEM, "the %s split (%zu bytes) does not fit in %s "
                       "memory: %s", name, xb + yb, be->name, mltk_backend_error(be));
        goto out;
    }
    sp->perm_host = malloc((size_t)sp->n * sizeof(int32_t));
    if (!sp->perm_host) {
        rc = MLTK_ERR_NOMEM;
        goto out;
    }
    rc = mltk_be_upload(be, sp->x, hx, xb);
    if (!rc)
        rc = mltk_be_upload(be, sp->y, hy, yb);
    if (rc)
        rc = mltk_errf(&perr, rc, "cannot upload the %s split: %s", name,
                       mltk_backend_error(be));
out:
    /* a data file that cannot be read is a data problem, whatever failed */
    if (rc == MLTK_ERR_IO)
        rc = MLTK_ERR_DATA;
    if (rc && perr) {
        mltk_errf(err, rc, "%s: data set '%s', %s split: %s",
                  mltk_params_where(data->params), type, name, perr);
    } else if (rc) {
        mltk_errf(err, rc, "%s: data set '%s', %s split: %s",
                  mltk_params_where(data->params), type, name, mltk_status_str(rc));
    }
    free(perr);
    free(hx);
    free(hy);
    if (self)
        ds->close(self);
    if (rc)
        mltk_split_free(sp, be);
    return rc;
}

void mltk_split_free(mltk_split *sp, const struct mltk_backend *be)
{
    if (sp->x) mltk_be_free(be, sp->x);
    if (sp->y) mltk_be_free(be, sp->y);
    if (sp->perm) mltk_be_free(be, sp->perm);
    free(sp->perm_host);
    memset(sp, 0, sizeof(*sp));
}

/* ---- epoch order ---------------------------------------------------------------- */

int mltk_split_shuffle(mltk_split *sp, const struct mltk_backend *be, uint64_t seed,
                       int64_t epoch, int shuffle)
{
    int32_t *p = sp->perm_host;
    for (int64_t i = 0; i < sp->n; i++)
        p[i] = (int32_t)i;
    if (shuffle) {
        /* stream: seed mixed with the epoch; element i draws for position i */
        uint64_t s = seed ^ (0xA0761D6478BD642Full * (uint64_t)(epoch + 1));
        for (int64_t i = sp->n - 1; i > 0; i--) {
            double u = mltk_rng_u01(s, (uint64_t)i);
            int64_t j = (int64_t)(u * (double)(i + 1));
            if (j > i)
                j = i;
            int32_t t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
    }
    return mltk_be_upload(be, sp->perm, p, (size_t)sp->n * sizeof(int32_t));
}
