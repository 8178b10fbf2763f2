/* checkpoint.c - training checkpoints, weight files and exact resume.
 *
 * What this is: the files of mltk-checkpoint(5) (see mltk.ini(5),
 * [checkpoint] and [model]), all of them safetensors:
 *
 *   weights     every parameter and persistent state tensor of the model,
 *               float32, under its "layer.name" ("fc1.weight",
 *               "bn1.running_mean"), which is what PyTorch's
 *               state_dict calls them; __metadata__ has format
 *               "mltk.weights", the config text, the step and epoch.
 *   checkpoint  the weights plus the optimizer's state, one tensor per
 *               slot and parameter ("optimizer.slot0.fc1.weight"), and in
 *               __metadata__ (format "mltk.checkpoint") everything else a
 *               run is: the step, the epoch and batch position of the data
 *               loader, the partial loss sum of the epoch in progress, the
 *               schedule's state, the rate factor left by rollbacks, the
 *               seed and the config text, and the state of each training
 *               component under names of its own (train/component.h:
 *               "nan_skips", "best_ckpt", "es_best", "loss_scale.scale").  The
 *               random streams of mltk are counter-based (Philox keyed by
 *               the seed, counted by step, epoch and element), so the seed
 *               and the position are their whole state.
 *
 * Files are written through mltk_st_write (temporary file, fsync,
 * rename): a crash leaves the previous checkpoint as it was.  A resume
 * restores every tensor and counter and refuses a config whose model or
 * optimizer differs, listing the differences.  init_from loads tensors by
 * name from any safetensors file (ours or PyTorch's, F32, F64, F16 or
 * BF16) and reports what it loaded, skipped and could not match.
 *
 * What this is not: the policy of when to write (train.c) or a converter
 * of layouts: a tensor whose shape differs is a mismatch, never reshaped.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "session.h"
#include "safetensors.h"
#include "train/component.h"

#define FORMAT_CKPT    "mltk.checkpoint"
#define FORMAT_WEIGHTS "mltk.weights"
#define FORMAT_VERSION "1"
#define OPT_PREFIX     "optimizer.slot"
#define CRC_PREFIX     "crc32c."

/* ---- a list of host tensors and metadata to write ------------------------------ */

typedef struct st_list {
    mltk_st_entry *e;
    int            n, cap;
    mltk_kv        meta;     /* the __metadata__ pairs (owned) */
} st_list;

static void list_free(st_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free((void *)l->e[i].data);
        free((char *)l->e[i].name);
    }
    free(l->e);
    mltk_kv_free(&l->meta);
    memset(l, 0, sizeof(*l));
}

/* Append a float32 tensor: `n` floats downloaded from backend memory. */
static int list_add(st_list *l, const struct mltk_backend *be, const char *name,
                    const mltk_shape *shape, const float *dev, char **err)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        mltk_st_entry *e = realloc(l->e, (size_t)cap * sizeof(*e));
        if (!e)
            return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        l->e = e;
        l->cap = cap;
    }
    int64_t numel = mltk_shape_numel(shape);
    size_t bytes = (size_t)numel * sizeof(float);
    mltk_st_entry *e = &l->e[l->n];
    memset(e, 0, sizeof(*e));
    e->name = mltk_strdup(name);
    void *host = malloc(bytes ? bytes : 1);
    if (!e->name || !host) {
        free((char *)e->name);
        free(host);
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    }
    e->data = host;
    l->n++;
    e->dtype = MLTK_ST_F32;
    e->ndim = shape->ndim;
    for (int d = 0; d < shape->ndim; d++)
        e->shape[d] = shape->dim[d];
    e->nbytes = bytes;
    int rc = MLTK_OK;
    if (bytes && !be)
        memcpy(host, dev, bytes);  /* host memory already */
    else if (bytes)
        rc = mltk_be_download(be, host, dev, bytes);
    if (rc)
        return mltk_errf(err, rc, "cannot read tensor %s from the %s backend: %s", name,
                         be->name, *mltk_backend_error(be) ? mltk_backend_error(be)
                                                           : mltk_status_str(rc));
    return MLTK_OK;
}

/* ---- what the files hold ---------------------------------------------------------- */

static int add_model(st_list *l, mltk_session_t *s, char **err)
{
    int n = mltk_model_n_tensors(s->model);
    for (int i = 0; i < n; i++) {
        mltk_model_named t;
        int rc = mltk_model_tensor(s->model, i, &t);
        if (!rc)
            rc = list_add(l, &s->be, t.name, &t.shape, t.data, err);
        if (rc)
            return rc;
    }
    return MLTK_OK;
}

static int add_optimizer(st_list *l, mltk_session_t *s, char **err)
{
    for (int k = 0; k < s->opt_slots; k++)
        for (int i = 0; i < s->n_seg; i++) {
            mltk_model_named t;
            int rc = mltk_model_tensor(s->model, i, &t);
            if (rc)
                return rc;
            char *name = mltk_strfmt(OPT_PREFIX "%d.%s", k, t.name);
            if (!name)
                return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
            rc = list_add(l, &s->be, name, &t.shape, s->opt_state[k] + s->seg_off[i], err);
            free(name);
            if (rc)
                return rc;
        }
    return MLTK_OK;
}

static int add_common_meta(st_list *l, mltk_session_t *s, const char *format)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    int rc = mltk_kv_put(&l->meta, "format", "%s", format);
    rc = rc ? rc : mltk_kv_put(&l->meta, "format_version", FORMAT_VERSION);
    rc = rc ? rc : mltk_kv_put(&l->meta, "mltk_version", "%s", mltk_version());
    rc = rc ? rc : mltk_kv_put(&l->meta, "created", "%s", when);
    rc = rc ? rc : mltk_kv_put(&l->meta, "step", "%" PRIu64, s->step);
    rc = rc ? rc : mltk_kv_put(&l->meta, "epoch", "%" PRId64, s->epoch_done);
    rc = rc ? rc : mltk_kv_put(&l->meta, "config_path", "%s", s->cfg->path);
    rc = rc ? rc : mltk_kv_put(&l->meta, "config", "%s", s->cfg->text ? s->cfg->text : "");
    return rc;
}

/* "crc32c.<tensor>": the CRC-32C of each tensor's bytes as stored, 8
 * lowercase hex digits; every reader verifies them (verify_checksums) */
static int add_checksums(st_list *l, char **err)
{
    for (int i = 0; i < l->n; i++) {
        char *key = mltk_strfmt(CRC_PREFIX "%s", l->e[i].name);
        int rc = key ? mltk_kv_put(&l->meta, key, "%08" PRIx32,
                                   mltk_crc32c(l->e[i].data, l->e[i].nbytes))
                     : MLTK_ERR_NOMEM;
        free(key);
        if (rc)
            return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    }
    return MLTK_OK;
}

static int write_list(st_list *l, const char *path, char **err)
{
    int rc = add_checksums(l, err);
    if (rc)
        return rc;
    return mltk_st_write(path, l->e, l->n, (const char *const *)l->meta.kv, l->meta.n, err);
}

/* [data] standardize: the statistics the inputs are scaled with, as the
 * tensors data.mean and data.std (the sample's shape); a model is only
 * usable with them.  (No layer can be named data, so no layer's tensor
 * is named data.*.) */
static int add_data_stats(st_list *l, mltk_session_t *s, char **err)
{
    if (!s->data.mean)
        return MLTK_OK;
    int rc = list_add(l, NULL, "data.mean", &s->train.info.x_shape, s->data.mean, err);
    return rc ? rc : list_add(l, NULL, "data.std", &s->train.info.x_shape, s->data.std, err);
}

int mltk_weights_save(mltk_session_t *s, const char *path, char **err)
{
    st_list l = { 0 };
    int rc = add_model(&l, s, err);
    rc = rc ? rc : add_data_stats(&l, s, err);
    if (!rc && add_common_meta(&l, s, FORMAT_WEIGHTS))
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = write_list(&l, path, err);
    list_free(&l);
    return rc;
}

int mltk_ckpt_save(mltk_session_t *s, const char *path, char **err)
{
    st_list l = { 0 };
    const mltk_section *opt = mltk_config_section(s->cfg, "optimizer");
    int rc = add_model(&l, s, err);
    if (!rc)
        rc = add_optimizer(&l, s, err);
    if (rc) {
        list_free(&l);
        return rc;
    }
    char sched[512] = "";
    if (s->sched.i && s->sched.i->size >= offsetof(struct mltk_schedule_i, save_state)
                                         + sizeof(s->sched.i->save_state)
        && s->sched.i->save_state) {
        int n = s->sched.i->save_state(s->sched.self, sched, sizeof sched);
        if (n < 0 || (size_t)n >= sizeof sched)
            sched[0] = '\0';
    }
    rc = add_common_meta(&l, s, FORMAT_CKPT);
    rc = rc ? rc : mltk_kv_put(&l.meta, "batch", "%" PRId64, s->batch_done);
    rc = rc ? rc : mltk_kv_put(&l.meta, "batch_size", "%" PRId64, s->batch_size);
    rc = rc ? rc : mltk_kv_put(&l.meta, "train_samples", "%" PRId64, s->train.n);
    rc = rc ? rc : mltk_kv_put(&l.meta, "loss_sum", "%a", (double)s->loss_sum_now);
    rc = rc ? rc : mltk_kv_put(&l.meta, "rows_skipped", "%" PRId64, s->rows_skipped);
    rc = rc ? rc : mltk_kv_put(&l.meta, "seed", "%" PRIu64, s->seed);
    rc = rc ? rc : mltk_kv_put(&l.meta, "rng", "philox4x32-10 keyed by seed; counters from step, "
                                        "epoch and element");
    rc = rc ? rc : mltk_kv_put(&l.meta, "optimizer", "%s", mltk_params_str(opt->params, "type"));
    rc = rc ? rc : mltk_kv_put(&l.meta, "optimizer_slots", "%d", s->opt_slots);
    rc = rc ? rc : mltk_kv_put(&l.meta, "schedule_state", "%s", sched);
    rc = rc ? rc : mltk_kv_put(&l.meta, "lr_factor", "%a", s->lr_factor);
    rc = rc ? rc : mltk_kv_put(&l.meta, "last_lr", "%a", s->last_lr);
    rc = rc ? rc : mltk_kv_put(&l.meta, "elapsed_s", "%a",
                               s->t_start > 0 ? mltk_now() - s->t_start : 0.0);
    if (s->started[0])
        rc = rc ? rc : mltk_kv_put(&l.meta, "started", "%s", s->started);
    if (s->resumed && *s->resumed)
        rc = rc ? rc : mltk_kv_put(&l.meta, "resumed", "%s", s->resumed);
    rc = rc ? rc : mltk_components_save_state(s, &l.meta);
    rc = rc ? rc : mltk_kv_put(&l.meta, "train_loss", "%.17g", s->last_stats.train_loss);
    rc = rc ? rc : mltk_kv_put(&l.meta, "val_loss", "%.17g", s->last_stats.val_loss);
    rc = rc ? rc : mltk_kv_put(&l.meta, "val_acc", "%.17g", s->last_stats.val_acc);
    if (rc)
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = write_list(&l, path, err);
    list_free(&l);
    return rc;
}

/* ---- reading the metadata back --------------------------------------------------------- */

/* Every value the readers use is checked before anything is changed: its
 * presence, its type (whole number, number, time, text) and its range.
 * Messages read "PATH: metadata 'KEY' ...", the value quoted with its
 * unprintable bytes escaped. */

/* v for a message: at most 40 bytes, bytes outside printable ASCII as \xNN */
static void quote_value(const char *v, char *buf, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p && n + 5 < cap; p++) {
        if (p - (const unsigned char *)v >= 40) {
            n += (size_t)snprintf(buf + n, cap - n, "...");
            break;
        }
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            buf[n++] = (char)*p;
        else
            n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", *p);
    }
    buf[n < cap ? n : cap - 1] = '\0';
}

static int meta_bad(const char *path, const char *key, const char *v, const char *what,
                    char **err)
{
    char q[200];
    quote_value(v, q, sizeof q);
    return mltk_errf(err, MLTK_ERR_DATA, "%s: metadata '%s' is not %s: '%s'", path, key,
                     what, q);
}

/* The value of `key`: NULL when absent and not `required` (else an error). */
static int meta_get(const mltk_st_file *f, const char *path, const char *key, int required,
                    const char **v, char **err)
{
    *v = mltk_st_meta(f, key);
    if (!*v && required)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: not a whole mltk checkpoint: no '%s' in "
                         "its metadata", path, key);
    return MLTK_OK;
}

/* A whole number in [lo, hi], decimal digits only. */
static int meta_int(const mltk_st_file *f, const char *path, const char *key, int64_t lo,
                    int64_t hi, int64_t *out, char **err)
{
    const char *v;
    int rc = meta_get(f, path, key, 1, &v, err);
    if (rc)
        return rc;
    char what[96];
    snprintf(what, sizeof what, "a whole number from %" PRId64 " to %" PRId64, lo, hi);
    if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 19)
        return meta_bad(path, key, v, what, err);
    errno = 0;
    unsigned long long x = strtoull(v, NULL, 10);
    if (errno || x > (unsigned long long)INT64_MAX || (int64_t)x < lo || (int64_t)x > hi)
        return meta_bad(path, key, v, what, err);
    *out = (int64_t)x;
    return MLTK_OK;
}

/* A number (C99 hexadecimal or decimal) in [lo, hi]; NaN too with
 * `nan_ok`.  Absent: MLTK_OK and *out untouched unless `required`. */
static int meta_num(const mltk_st_file *f, const char *path, const char *key, int required,
                    double lo, double hi, int nan_ok, double *out, char **err)
{
    const char *v;
    int rc = meta_get(f, path, key, required, &v, err);
    if (rc || !v)
        return rc;
    char what[96];
    snprintf(what, sizeof what, "a number from %.17g to %.17g%s", lo, hi,
             nan_ok ? " (or nan)" : "");
    char *end;
    errno = 0;
    double x = *v && !strchr(" \t\n\r\f\v", *v) ? strtod(v, &end) : 0;
    if (!*v || strchr(" \t\n\r\f\v", *v) || *end || (isnan(x) && !nan_ok)
        || (!isnan(x) && (x < lo || x > hi)))
        return meta_bad(path, key, v, what, err);
    *out = x;
    return MLTK_OK;
}

/* Text without control characters (newlines and tabs too with `lines`). */
static int meta_text(const mltk_st_file *f, const char *path, const char *key, int required,
                     int lines, const char **out, char **err)
{
    const char *v;
    int rc = meta_get(f, path, key, required, &v, err);
    if (rc || !v)
        return rc;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 && !(lines && (*p == '\n' || *p == '\t' || *p == '\r'))) || *p == 0x7f)
            return meta_bad(path, key, v, lines ? "text" : "one line of text", err);
    *out = v;
    return MLTK_OK;
}

/* "2026-01-31T12:00:00Z" */
static int is_iso_time(const char *v, size_t len)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
    if (len != sizeof pat - 1)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (pat[i] == 'd' ? !(v[i] >= '0' && v[i] <= '9') : v[i] != pat[i])
            return 0;
    return 1;
}

/* A list of such times separated by single spaces (`list`), or one. */
static int meta_times(const mltk_st_file *f, const char *path, const char *key, int list,
                      const char **out, char **err)
{
    const char *v;
    int rc = meta_get(f, path, key, 0, &v, err);
    if (rc || !v)
        return rc;
    const char *what = list ? "a list of times like 2026-01-31T12:00:00Z" :
                              "a time like 2026-01-31T12:00:00Z";
    for (const char *p = v;;) {
        size_t len = strcspn(p, " ");
        if (!is_iso_time(p, len) || (!list && p[len]))
            return meta_bad(path, key, v, what, err);
        if (!p[len])
            break;
        p += len + 1;
    }
    *out = v;
    return MLTK_OK;
}

/* What a checkpoint's metadata says, checked (check_ckpt_meta). */
typedef struct ckpt_meta {
    int64_t     step, epoch, batch, batch_size, train_samples, rows_skipped, slots;
    uint64_t    seed;
    double      loss_sum, lr_factor, last_lr, elapsed_s;
    double      train_loss, val_loss, val_acc;
    const char *optimizer, *schedule_state, *started, *resumed;
} ckpt_meta;

/* The keys every mltk file has, and format and format_version. */
static int check_common_meta(const mltk_st_file *f, const char *path, ckpt_meta *m,
                             char **err)
{
    const char *v;
    int rc = meta_text(f, path, "mltk_version", 1, 0, &v, err);
    rc = rc ? rc : meta_times(f, path, "created", 0, &v, err);
    rc = rc ? rc : meta_int(f, path, "step", 0, INT64_MAX, &m->step, err);
    rc = rc ? rc : meta_int(f, path, "epoch", 0, INT_MAX - 1, &m->epoch, err);
    rc = rc ? rc : meta_text(f, path, "config_path", 0, 0, &v, err);
    rc = rc ? rc : meta_text(f, path, "config", 0, 1, &v, err);
    return rc;
}

/* All a training checkpoint's own keys, in type and range; what depends
 * on the session (the batch position within an epoch, the optimizer's
 * slots) is checked by the restore.  The components check theirs. */
static int check_ckpt_meta(const mltk_st_file *f, const char *path, ckpt_meta *m,
                           char **err)
{
    const char *v;
    memset(m, 0, sizeof *m);
    m->train_loss = m->val_loss = m->val_acc = NAN;
    int rc = check_common_meta(f, path, m, err);
    rc = rc ? rc : meta_int(f, path, "batch", 0, INT64_MAX, &m->batch, err);
    rc = rc ? rc : meta_int(f, path, "batch_size", 1, INT64_MAX, &m->batch_size, err);
    rc = rc ? rc : meta_int(f, path, "train_samples", 1, INT64_MAX, &m->train_samples, err);
    rc = rc ? rc : meta_int(f, path, "rows_skipped", 0, m->train_samples, &m->rows_skipped,
                            err);
    rc = rc ? rc : meta_num(f, path, "loss_sum", 1, -FLT_MAX, FLT_MAX, 0, &m->loss_sum, err);
    /* the seed is a u64 */
    rc = rc ? rc : meta_get(f, path, "seed", 1, &v, err);
    if (!rc) {
        errno = 0;
        int ok = *v && strspn(v, "0123456789") == strlen(v) && strlen(v) <= 20;
        m->seed = ok ? strtoull(v, NULL, 10) : 0;
        if (!ok || errno)
            rc = meta_bad(path, "seed", v, "a whole number from 0 to 18446744073709551615",
                          err);
    }
    rc = rc ? rc : meta_text(f, path, "optimizer", 1, 0, &m->optimizer, err);
    if (!rc && (!*m->optimizer || strlen(m->optimizer) > 64))
        rc = meta_bad(path, "optimizer", m->optimizer, "an optimizer's name", err);
    rc = rc ? rc : meta_int(f, path, "optimizer_slots", 0, 8, &m->slots, err);
    rc = rc ? rc : meta_text(f, path, "schedule_state", 1, 0, &m->schedule_state, err);
    rc = rc ? rc : meta_num(f, path, "lr_factor", 1, 0.0, 1.0, 0, &m->lr_factor, err);
    rc = rc ? rc : meta_num(f, path, "last_lr", 1, 0.0, DBL_MAX, 0, &m->last_lr, err);
    /* the last epoch's numbers, reported only: NaN where there were none */
    rc = rc ? rc : meta_num(f, path, "train_loss", 0, -DBL_MAX, DBL_MAX, 1, &m->train_loss,
                            err);
    rc = rc ? rc : meta_num(f, path, "val_loss", 0, -DBL_MAX, DBL_MAX, 1, &m->val_loss, err);
    rc = rc ? rc : meta_num(f, path, "val_acc", 0, 0.0, 1.0, 1, &m->val_acc, err);
    /* the run's clock and start (absent before they were kept: then the
     * clock starts at 0 and the resume counts as the start) */
    rc = rc ? rc : meta_num(f, path, "elapsed_s", 0, 0.0, 1e12, 0, &m->elapsed_s, err);
    rc = rc ? rc : meta_times(f, path, "started", 0, &m->started, err);
    rc = rc ? rc : meta_times(f, path, "resumed", 1, &m->resumed, err);
    return rc;
}

/* ---- checksums ----------------------------------------------------------------------------- */

/* Every tensor's CRC-32C against the "crc32c.<name>" of the metadata.
 * A file with no such key at all was written by another tool (not
 * checked) or by an mltk from before checksums (format mltk.*: accepted,
 * with a warning, once per file).  Sets *n_checked. */
static int verify_checksums(const mltk_st_file *f, const char *path, int *n_checked,
                            char **err)
{
    int have = 0;
    *n_checked = 0;
    for (int i = 0; i < mltk_st_meta_count(f); i++)
        if (strncmp(mltk_st_meta_key(f, i), CRC_PREFIX, strlen(CRC_PREFIX)) == 0)
            have++;
    if (!have) {
        const char *format = mltk_st_meta(f, "format");
        if (format && strncmp(format, "mltk.", 5) == 0 && mltk_st_count(f) > 0)
            mltk_log(MLTK_LOG_WARN, "%s: written without tensor checksums (by an older mltk)"
                     ": its tensor data cannot be verified", path);
        return MLTK_OK;
    }
    for (int i = 0; i < mltk_st_count(f); i++) {
        const mltk_st_tensor *t = mltk_st_get(f, i);
        char *key = mltk_strfmt(CRC_PREFIX "%s", t->name);
        if (!key)
            return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        const char *v = mltk_st_meta(f, key);
        int rc = MLTK_OK;
        if (!v)
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s: tensor '%s' has no checksum ('%s' is "
                           "missing from the metadata)", path, t->name, key);
        else if (strlen(v) != 8 || strspn(v, "0123456789abcdef") != 8)
            rc = meta_bad(path, key, v, "a CRC-32C (8 lowercase hex digits)", err);
        if (!rc) {
            uint32_t want = (uint32_t)strtoul(v, NULL, 16);
            uint32_t got = mltk_crc32c(t->data, t->nbytes);
            if (got != want)
                rc = mltk_errf(err, MLTK_ERR_DATA, "%s: tensor '%s' is damaged: its data's "
                               "CRC-32C is %08" PRIx32 ", the file recorded %08" PRIx32,
                               path, t->name, got, want);
        }
        free(key);
        if (rc)
            return rc;
        (*n_checked)++;
    }
    if (have != *n_checked) {
        for (int i = 0; i < mltk_st_meta_count(f); i++) {
            const char *k = mltk_st_meta_key(f, i);
            if (strncmp(k, CRC_PREFIX, strlen(CRC_PREFIX)) == 0
                && !mltk_st_find(f, k + strlen(CRC_PREFIX)))
                return mltk_errf(err, MLTK_ERR_DATA, "%s: metadata '%s' is the checksum of "
                                 "a tensor the file does not have", path, k);
        }
    }
    return MLTK_OK;
}

/* Open a checkpoint or weights file that is read: a file that cannot be
 * read (missing, unreadable) is a data problem like a damaged one. */
static int open_input(mltk_st_file **f, const char *path, char **err)
{
    int rc = mltk_st_open(f, path, err);
    return rc == MLTK_ERR_IO ? MLTK_ERR_DATA : rc;
}

/* ---- loading tensors ----------------------------------------------------------------- */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023;
    float v;
    if (exp == 0)
        v = ldexpf((float)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 1024), (int)exp - 25);
    return sign ? -v : v;
}

/* The tensor's values as float32 in a malloc()ed buffer, or NULL when its
 * dtype is not a floating type we convert. */
static float *to_f32(const mltk_st_tensor *t, int64_t numel)
{
    float *out = malloc((size_t)(numel ? numel : 1) * sizeof(float));
    if (!out)
        return NULL;
    const unsigned char *p = t->data;
    for (int64_t i = 0; i < numel; i++) {
        switch (t->dtype) {
        case MLTK_ST_F32: memcpy(&out[i], p + 4 * i, 4); break;
        case MLTK_ST_F64: { double d; memcpy(&d, p + 8 * i, 8); out[i] = (float)d; break; }
        case MLTK_ST_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = half_to_float(h); break; }
        case MLTK_ST_BF16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t w = (uint32_t)h << 16;
            memcpy(&out[i], &w, 4);
            break;
        }
        default:
            free(out);
            return NULL;
        }
    }
    return out;
}

static int shape_matches(const mltk_st_tensor *t, const mltk_shape *s)
{
    if (t->ndim != s->ndim)
        return 0;
    for (int d = 0; d < s->ndim; d++)
        if (t->shape[d] != s->dim[d])
            return 0;
    return 1;
}

/* "(10, 32)", "(32,)": shapes as Python writes tuples, the same for the
 * file's tensors and the model's in every message */
static void dims_str(int ndim, const int64_t *dim, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64, d ? ", " : "",
                                 dim[d]);
    if (used < cap)
        snprintf(buf + used, cap - used, "%s)", ndim == 1 ? "," : "");
}

static void st_shape_str(const mltk_st_tensor *t, char *buf, size_t cap)
{
    dims_str(t->ndim, t->shape, buf, cap);
}

static const char *model_shape_str(const mltk_shape *s, char *buf, size_t cap)
{
    dims_str(s->ndim, s->dim, buf, cap);
    return buf;
}

static int upload_tensor(mltk_session_t *s, const mltk_st_tensor *t, float *dev,
                         int64_t numel, const char *path, char **err)
{
    float *host = to_f32(t, numel);
    if (!host)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: tensor '%s' has dtype %s; mltk loads F32, "
                         "F64, F16 and BF16", path, t->name, mltk_st_dtype_name(t->dtype));
    int rc = numel ? mltk_be_upload(&s->be, dev, host, (size_t)numel * sizeof(float))
                   : MLTK_OK;
    free(host);
    if (rc)
        return mltk_errf(err, rc, "%s: cannot load tensor '%s' into %s memory: %s", path,
                         t->name, s->be.name, *mltk_backend_error(&s->be)
                                              ? mltk_backend_error(&s->be) : mltk_status_str(rc));
    return MLTK_OK;
}

/* ---- differences between a file and the model ------------------------------------------ */

typedef struct diff {
    char  *text;
    size_t len;
    int    n;
} diff;

static void diff_add(diff *d, const char *fmt, ...) MLTK_PRINTF(2, 3);
static void diff_add(diff *d, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    d->n++;
    if (d->n > 20) {
        if (d->n == 21)
            strcpy(line, "...");
        else
            return;
    }
    size_t add = strlen(line) + 5;
    char *t = realloc(d->text, d->len + add + 1);
    if (!t)
        return;
    d->text = t;
    d->len += (size_t)sprintf(d->text + d->len, "\n  - %s", line);
}

/* Compare the model's tensors with the file's (the optimizer's excluded):
 * missing, differently shaped, not floating point, and unexpected. */
static void diff_model(diff *d, mltk_session_t *s, const mltk_st_file *f, int *loadable)
{
    char a[128], b[128];
    int n = mltk_model_n_tensors(s->model);
    *loadable = 0;
    for (int i = 0; i < n; i++) {
        mltk_model_named t;
        if (mltk_model_tensor(s->model, i, &t))
            continue;
        const mltk_st_tensor *ft = mltk_st_find(f, t.name);
        if (!ft) {
            diff_add(d, "%s %s is in the model but not in the file", t.name,
                     model_shape_str(&t.shape, a, sizeof a));
        } else if (!shape_matches(ft, &t.shape)) {
            st_shape_str(ft, b, sizeof b);
            diff_add(d, "%s has shape %s in the model but %s in the file", t.name,
                     model_shape_str(&t.shape, a, sizeof a), b);
        } else if (ft->dtype != MLTK_ST_F32 && ft->dtype != MLTK_ST_F64
                   && ft->dtype != MLTK_ST_F16 && ft->dtype != MLTK_ST_BF16) {
            diff_add(d, "%s has dtype %s in the file", t.name, mltk_st_dtype_name(ft->dtype));
        } else {
            (*loadable)++;
        }
    }
    mltk_model_named t;
    for (int i = 0; i < mltk_st_count(f); i++) {
        const mltk_st_tensor *ft = mltk_st_get(f, i);
        if (strncmp(ft->name, OPT_PREFIX, strlen(OPT_PREFIX)) == 0
            || strncmp(ft->name, "data.", 5) == 0)
            continue;
        if (mltk_model_find_tensor(s->model, ft->name, &t) < 0) {
            st_shape_str(ft, b, sizeof b);
            diff_add(d, "%s %s is in the file but not in the model", ft->name, b);
        }
    }
}

/* ---- init_from: transfer learning -------------------------------------------------------- */

int mltk_weights_load(mltk_session_t *s, const char *path, int strict, char **err)
{
    mltk_st_file *f = NULL;
    int rc = open_input(&f, path, err);
    if (rc)
        return rc;
    diff d = { 0 };
    int loadable = 0, n_crc;
    rc = verify_checksums(f, path, &n_crc, err);
    if (rc)
        goto out;
    diff_model(&d, s, f, &loadable);
    if (strict && d.n) {
        rc = mltk_errf(err, MLTK_ERR_DATA,
                       "init_from %s: %d tensor(s) do not match the model (strict = true; "
                       "strict = false loads the %d that do):%s", path, d.n, loadable,
                       d.text ? d.text : "");
        goto out;
    }
    int n = mltk_model_n_tensors(s->model);
    for (int i = 0; i < n && !rc; i++) {
        mltk_model_named t;
        if (mltk_model_tensor(s->model, i, &t))
            continue;
        const mltk_st_tensor *ft = mltk_st_find(f, t.name);
        if (ft && shape_matches(ft, &t.shape) && (ft->dtype == MLTK_ST_F32
            || ft->dtype == MLTK_ST_F64 || ft->dtype == MLTK_ST_F16 || ft->dtype == MLTK_ST_BF16))
            rc = upload_tensor(s, ft, t.data, mltk_shape_numel(&t.shape), path, err);
    }
    if (!rc)
        rc = mltk_model_params_changed(s->model, err);
    if (!rc) {
        mltk_log(MLTK_LOG_INFO, "init_from %s: loaded %d of %d tensors%s%s", path, loadable, n,
                 d.n ? "; not loaded:" : "", d.text ? d.text : "");
    }
out:
    free(d.text);
    mltk_st_close(f);
    return rc;
}

/* ---- resume --------------------------------------------------------------------------------- */

int mltk_ckpt_restore(mltk_session_t *s, const char *path, char **err)
{
    mltk_st_file *f = NULL;
    int rc = open_input(&f, path, err);
    if (rc)
        return rc;
    const char *format = mltk_st_meta(f, "format");
    diff d = { 0 };
    mltk_kv comp = { .path = path };
    ckpt_meta m;
    int n_crc;
    if (!format || strcmp(format, FORMAT_CKPT) != 0) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: not a training checkpoint (format '%s'); a "
                       "weights file starts a run with [model] init_from instead", path,
                       format ? format : "none");
        goto out;
    }
    const char *v = mltk_st_meta(f, "format_version");
    if (!v || strcmp(v, FORMAT_VERSION) != 0) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: checkpoint format version '%s'; this mltk "
                       "reads version %s", path, v ? v : "none", FORMAT_VERSION);
        goto out;
    }
    /* the file is whole and means something before anything is compared
     * or changed */
    rc = verify_checksums(f, path, &n_crc, err);
    if (!rc)
        rc = check_ckpt_meta(f, path, &m, err);
    if (rc)
        goto out;

    /* what must not have changed */
    int loadable = 0;
    diff_model(&d, s, f, &loadable);
    const mltk_section *opt = mltk_config_section(s->cfg, "optimizer");
    const char *otype = mltk_params_str(opt->params, "type");
    if (strcmp(m.optimizer, otype) != 0)
        diff_add(&d, "optimizer: '%s' in the checkpoint, '%s' in the config", m.optimizer,
                 otype);
    if (m.slots != s->opt_slots)
        diff_add(&d, "optimizer state: %" PRId64 " slot(s) in the checkpoint, %d now", m.slots,
                 s->opt_slots);
    if (m.batch_size != s->batch_size)
        diff_add(&d, "[train] batch_size: %" PRId64 " in the checkpoint, %" PRId64 " now",
                 m.batch_size, s->batch_size);
    if (m.train_samples != s->train.n)
        diff_add(&d, "training samples: %" PRId64 " in the checkpoint, %" PRId64 " now",
                 m.train_samples, s->train.n);
    if (d.n) {
        rc = mltk_errf(err, MLTK_ERR_CONFIG, "cannot resume from %s: the configuration "
                       "changed in ways that matter:%s", path, d.text ? d.text : "");
        goto out;
    }
    if (m.batch > s->steps_per_epoch || (m.batch == s->steps_per_epoch && m.batch)) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: batch position %" PRId64 " is past the end of "
                       "an epoch (%" PRId64 " batches)", path, m.batch, s->steps_per_epoch);
        goto out;
    }
    /* the components' state, whole, before anything is changed */
    for (int i = 0; !rc && i < mltk_st_meta_count(f); i++)
        if (mltk_kv_put(&comp, mltk_st_meta_key(f, i), "%s", mltk_st_meta_value(f, i)))
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    if (rc)
        goto out;
    if (*m.schedule_state) {
        if (!s->sched.i || s->sched.i->size < offsetof(struct mltk_schedule_i, load_state)
                                              + sizeof(s->sched.i->load_state)
            || !s->sched.i->load_state || s->sched.i->load_state(s->sched.self,
                                                                 m.schedule_state)) {
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s: the schedule cannot take its saved state "
                           "'%s' (was the [schedule] type changed?)", path, m.schedule_state);
            goto out;
        }
    }

    /* the components (each checks its keys before it takes them) */
    rc = mltk_components_load_state(s, &comp, err);
    if (rc)
        goto out;

    /* tensors */
    int n = mltk_model_n_tensors(s->model);
    for (int i = 0; i < n && !rc; i++) {
        mltk_model_named t;
        rc = mltk_model_tensor(s->model, i, &t);
        if (!rc)
            rc = upload_tensor(s, mltk_st_find(f, t.name), t.data, mltk_shape_numel(&t.shape),
                               path, err);
    }
    for (int k = 0; k < s->opt_slots && !rc; k++)
        for (int i = 0; i < s->n_seg && !rc; i++) {
            mltk_model_named t;
            rc = mltk_model_tensor(s->model, i, &t);
            char *name = rc ? NULL : mltk_strfmt(OPT_PREFIX "%d.%s", k, t.name);
            if (!rc && !name)
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
            const mltk_st_tensor *ft = name ? mltk_st_find(f, name) : NULL;
            if (!rc && (!ft || !shape_matches(ft, &t.shape)))
                rc = mltk_errf(err, MLTK_ERR_DATA, "%s: optimizer state '%s' is missing or "
                               "has another shape", path, name);
            if (!rc)
                rc = upload_tensor(s, ft, s->opt_state[k] + s->seg_off[i],
                                   mltk_shape_numel(&t.shape), path, err);
            free(name);
        }
    if (!rc)
        rc = mltk_model_params_changed(s->model, err);
    if (rc)
        goto out;
    if (m.seed != s->seed)
        mltk_log(MLTK_LOG_WARN, "%s was written with seed %" PRIu64 ", the config has %" PRIu64
                 ": the run goes on with %" PRIu64 ", so its shuffling and dropout differ "
                 "from the run it continues", path, m.seed, s->seed, s->seed);
    s->step = (uint64_t)m.step;
    s->epoch_done = m.epoch;
    s->batch_done = m.batch;
    s->loss_sum_now = (float)m.loss_sum;
    s->rows_skipped = m.rows_skipped;
    s->lr_factor = m.lr_factor;
    s->last_lr = m.last_lr;
    s->last_stats.train_loss = m.train_loss;
    s->last_stats.val_loss = m.val_loss;
    s->last_stats.val_acc = m.val_acc;
    /* the run's times, which a resume takes over (train.c) and a rollback
     * leaves alone */
    free(s->restored.resumed);
    s->restored.resumed = NULL;
    if (m.resumed && !(s->restored.resumed = mltk_strdup(m.resumed))) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(s->restored.started, sizeof s->restored.started, "%s",
             m.started ? m.started : "");
    s->restored.elapsed_s = m.elapsed_s;
    if (m.batch)
        mltk_log(MLTK_LOG_INFO, "resumed from %s: step %" PRId64 ", epoch %" PRId64 " after "
                 "its batch %" PRId64, path, m.step, m.epoch + 1, m.batch);
    else
        mltk_log(MLTK_LOG_INFO, "resumed from %s: step %" PRId64 ", after epoch %" PRId64,
                 path, m.step, m.epoch);
out:
    mltk_kv_free(&comp);
    free(d.text);
    mltk_st_close(f);
    return rc;
}

/* ---- the checkpoint directory ---------------------------------------------------------- */

static int is_ckpt_name(const char *n)
{
    size_t len = strlen(n);
    return strncmp(n, "ckpt-", 5) == 0 && len > 17
           && strcmp(n + len - 12, ".safetensors") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The checkpoints in `dir`, oldest first (names sort by step). */
static int list_ckpts(const char *dir, char ***names, int *n, char **err)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return MLTK_OK;
        return mltk_errf(err, MLTK_ERR_IO, "cannot read the checkpoint directory %s: %s", dir,
                         strerror(errno));
    }
    int cap = 0, rc = MLTK_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_ckpt_name(e->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(*names, (size_t)cap * sizeof(*nn));
            if (!nn) {
                rc = MLTK_ERR_NOMEM;
                break;
            }
            *names = nn;
        }
        if (!((*names)[*n] = mltk_strdup(e->d_name))) {
            rc = MLTK_ERR_NOMEM;
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(*names, (size_t)*n, sizeof(**names), cmp_str);
    return rc;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

char *mltk_ckpt_path(const char *dir, uint64_t step)
{
    return mltk_strfmt("%s/ckpt-%012" PRIu64 ".safetensors", dir, step);
}

int mltk_ckpt_latest(const char *dir, char **path, char **err)
{
    char **names;
    int n;
    *path = NULL;
    int rc = list_ckpts(dir, &names, &n, err);
    if (!rc && n) {
        *path = mltk_strfmt("%s/%s", dir, names[n - 1]);
        if (!*path)
            rc = MLTK_ERR_NOMEM;
    }
    free_names(names, n);
    return rc;
}

int mltk_ckpt_before(const char *dir, const char *path, char **prev, char **err)
{
    char **names;
    int n;
    *prev = NULL;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int rc = list_ckpts(dir, &names, &n, err);
    for (int i = n - 1; !rc && i >= 0; i--)
        if (strcmp(names[i], base) < 0) {
            if (!(*prev = mltk_strfmt("%s/%s", dir, names[i])))
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
            break;
        }
    free_names(names, n);
    return rc;
}

/* The pid of a temporary file's name, "<base>.tmp.<pid>" (mltk_st_write,
 * best.safetensors) or "<base>.tmp.<pid>.<n>" (mltk_atomic_open), when
 * <base> is one of `bases` ("ckpt-*": any checkpoint's name) or the
 * write test of train.c; else 0. */
static long tmp_pid(const char *name, const char *const *bases)
{
    const char *t = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp."))
        t = p;
    if (!t || t == name)
        return 0;
    char base[256];
    size_t blen = (size_t)(t - name);
    if (blen >= sizeof base)
        return 0;
    memcpy(base, name, blen);
    base[blen] = '\0';
    int ours = strcmp(base, ".mltk-write-test") == 0;
    for (int i = 0; bases && bases[i] && !ours; i++)
        ours = strcmp(bases[i], "ckpt-*") == 0 ? is_ckpt_name(base)
                                               : strcmp(bases[i], base) == 0;
    if (!ours)
        return 0;
    t += 5;
    size_t d = strspn(t, "0123456789");
    if (d == 0 || d > 9)
        return 0;
    if (t[d] == '.' && strspn(t + d + 1, "0123456789") > 0
        && t[d + 1 + strspn(t + d + 1, "0123456789")] == '\0')
        return strtol(t, NULL, 10);
    return t[d] == '\0' ? strtol(t, NULL, 10) : 0;
}

int mltk_remove_stale_tmp(const char *dir, const char *const *bases)
{
    DIR *d = opendir(dir);
    int removed = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = tmp_pid(e->d_name, bases);
        /* only a writer that is gone: a live run's file (or one whose pid
         * is not ours to signal, EPERM) stays */
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *p = mltk_strfmt("%s/%s", dir, e->d_name);
        struct stat st;
        if (p && lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            if (unlink(p) == 0) {
                mltk_log(MLTK_LOG_INFO, "removed %s, left by a writer that is gone "
                         "(process %ld)", p, pid);
                removed++;
            } else {
                mltk_log(MLTK_LOG_WARN, "cannot remove %s, left by a writer that is gone: %s",
                         p, strerror(errno));
            }
        }
        free(p);
    }
    closedir(d);
    return removed;
}

int mltk_ckpt_rotate(const char *dir, int64_t keep, char **err)
{
    char **names;
    int n;
    int rc = list_ckpts(dir, &names, &n, err);
    for (int i = 0; !rc && i + keep < n; i++) {
        char *p = mltk_strfmt("%s/%s", dir, names[i]);
        if (p && unlink(p) != 0 && errno != ENOENT)
            mltk_log(MLTK_LOG_WARN, "cannot remove old checkpoint %s: %s", p, strerror(errno));
        free(p);
    }
    free_names(names, n);
    return rc;
}

/* best.safetensors becomes another name of `path` (a hard link made under a
 * temporary name and renamed, so it is atomic too); a copy where links are
 * not possible. */
int mltk_ckpt_mark_best(const char *dir, const char *path, char **err)
{
    char *best = mltk_strfmt("%s/best.safetensors", dir);
    char *tmp = mltk_strfmt("%s/best.safetensors.tmp.%ld", dir, (long)getpid());
    int rc = MLTK_OK;
    if (!best || !tmp) {
        rc = MLTK_ERR_NOMEM;
        goto out;
    }
    unlink(tmp);
    if (link(path, tmp) == 0) {
        if (rename(tmp, best) != 0) {
            rc = mltk_errf(err, MLTK_ERR_IO, "cannot write %s: %s", best, strerror(errno));
            unlink(tmp);
        }
        goto out;
    }
    mltk_st_file *f = NULL;
    rc = mltk_st_open(&f, path, err);
    if (!rc) {
        int n = mltk_st_count(f), nm = mltk_st_meta_count(f);
        mltk_st_entry *e = calloc((size_t)(n + 1), sizeof(*e));
        const char **kv = calloc((size_t)(2 * nm + 1), sizeof(*kv));
        if (!e || !kv) {
            rc = MLTK_ERR_NOMEM;
        } else {
            for (int i = 0; i < n; i++)
                e[i] = *mltk_st_get(f, i);
            for (int i = 0; i < nm; i++) {
                kv[2 * i] = mltk_st_meta_key(f, i);
                kv[2 * i + 1] = mltk_st_meta_value(f, i);
            }
            rc = mltk_st_write(best, e, n, kv, nm, err);
        }
        free(e);
        free(kv);
        mltk_st_close(f);
    }
out:
    free(best);
    free(tmp);
    return rc;
}

/* ---- mltk inspect ------------------------------------------------------------------------ */

/* x written back the shortest way that reads back as the same double
 * ("1", "0.001", "0.30119999999999997" only where it must) */
static void shortest(double x, char *buf, size_t cap)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x || isnan(x))
            return;
    }
}

/* a metadata value for the report: numbers the shortest way */
static void inspect_value(const char *key, const char *v, char *buf, size_t cap)
{
    static const char *const numbers[] = { "lr_factor", "last_lr", "loss_sum", "elapsed_s",
                                           "train_loss", "val_loss", "val_acc" };
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
        char *end;
        double x;
        if (strcmp(key, numbers[i]) == 0 && *v && (x = strtod(v, &end), !*end)) {
            shortest(x, buf, cap);
            return;
        }
    }
    snprintf(buf, cap, "%s", v);
}

int mltk_ckpt_inspect(const char *path, FILE *out, char **err)
{
    mltk_st_file *f = NULL;
    int rc = open_input(&f, path, err);
    if (rc)
        return rc;
    const char *format = mltk_st_meta(f, "format");
    int n_crc = 0;
    ckpt_meta m;
    memset(&m, 0, sizeof m);
    /* the same checks as a resume or init_from: a damaged file is refused */
    rc = verify_checksums(f, path, &n_crc, err);
    if (!rc && format && strcmp(format, FORMAT_CKPT) == 0)
        rc = check_ckpt_meta(f, path, &m, err);
    else if (!rc && format && strcmp(format, FORMAT_WEIGHTS) == 0)
        rc = check_common_meta(f, path, &m, err);
    if (rc) {
        mltk_st_close(f);
        return rc;
    }
    /* labels padded to the longest, "schedule_state:", and a space */
    fprintf(out, "%-16s%s\n", "file:", path);
    fprintf(out, "%-16s%s\n", "format:", format ? format : "safetensors (not written by mltk)");
    static const char *const keys[] = { "mltk_version", "created", "started", "resumed",
                                         "elapsed_s", "step", "epoch", "batch", "seed",
                                         "optimizer", "schedule_state", "lr_factor",
                                         "train_loss", "val_loss", "val_acc", "config_path" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *v = mltk_st_meta(f, keys[i]);
        char label[32], val[256];
        if (!v || !*v)
            continue;
        snprintf(label, sizeof label, "%s:", keys[i]);
        inspect_value(keys[i], v, val, sizeof val);
        /* epochs as the epoch lines count them, from 1 */
        if (strcmp(keys[i], "epoch") == 0 && format && strncmp(format, "mltk.", 5) == 0) {
            if (m.batch > 0)
                snprintf(val, sizeof val, "%" PRId64 " (in progress: %" PRId64 " batches done)",
                         m.epoch + 1, m.batch);
            else if (m.epoch > 0)
                snprintf(val, sizeof val, "%" PRId64 " (completed)", m.epoch);
            else
                snprintf(val, sizeof val, "1 (not started)");
        }
        fprintf(out, "%-16s%s\n", label, val);
    }
    if (n_crc)
        fprintf(out, "%-16s%d tensors verified (CRC-32C)\n", "checksums:", n_crc);
    else
        fprintf(out, "%-16s%s\n", "checksums:", "none in the file: tensor data not verified");
    int n = mltk_st_count(f);
    int64_t total = 0;
    fprintf(out, "\n%-44s %-6s %-18s %12s %12s %12s\n", "tensor", "dtype", "shape", "min",
            "max", "mean");
    for (int i = 0; i < n; i++) {
        const mltk_st_tensor *t = mltk_st_get(f, i);
        char shape[64];
        st_shape_str(t, shape, sizeof shape);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= t->shape[d];
        total += numel;
        float *v = to_f32(t, numel);
        if (v && numel > 0) {
            double lo = v[0], hi = v[0], sum = 0;
            for (int64_t k = 0; k < numel; k++) {
                lo = v[k] < lo ? v[k] : lo;
                hi = v[k] > hi ? v[k] : hi;
                sum += v[k];
            }
            fprintf(out, "%-44s %-6s %-18s %12.5g %12.5g %12.5g\n", t->name,
                    mltk_st_dtype_name(t->dtype), shape, lo, hi, sum / (double)numel);
        } else {
            fprintf(out, "%-44s %-6s %-18s\n", t->name, mltk_st_dtype_name(t->dtype), shape);
        }
        free(v);
    }
    fprintf(out, "%d tensors, %" PRId64 " values\n", n, total);
    const char *cfg = mltk_st_meta(f, "config");
    if (cfg && *cfg)
        fprintf(out, "\nconfig:\n%s%s", cfg, cfg[strlen(cfg) - 1] == '\n' ? "" : "\n");
    if (ferror(out))
        rc = mltk_errf(err, MLTK_ERR_IO, "writing the report failed");
    mltk_st_close(f);
    return rc;
}

int mltk_inspect(const char *path, void *out, char **err)
{
    return mltk_ckpt_inspect(path, out ? out : stdout, err);
}
