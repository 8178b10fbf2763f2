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
    int rc = bytes ? mltk_be_download(be, host, dev, bytes) : MLTK_OK;
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

static int write_list(st_list *l, const char *path, char **err)
{
    return mltk_st_write(path, l->e, l->n, (const char *const *)l->meta.kv, l->meta.n, err);
}

int mltk_weights_save(mltk_session_t *s, const char *path, char **err)
{
    st_list l = { 0 };
    int rc = add_model(&l, s, err);
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

/* ---- reading numbers back ---------------------------------------------------------- */

static int meta_need(const mltk_st_file *f, const char *path, const char *key,
                     const char **v, char **err)
{
    *v = mltk_st_meta(f, key);
    if (!*v)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: not an mltk checkpoint: no '%s' in its "
                         "metadata", path, key);
    return MLTK_OK;
}

static int meta_i64(const mltk_st_file *f, const char *path, const char *key, int64_t *out,
                    char **err)
{
    const char *v;
    int rc = meta_need(f, path, key, &v, err);
    if (rc)
        return rc;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 0)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: metadata '%s' is not a whole number: '%s'",
                         path, key, v);
    *out = x;
    return MLTK_OK;
}

/* exact doubles travel as C99 hexadecimal floats ("%a"); NaN and inf too */
static int meta_f64(const mltk_st_file *f, const char *path, const char *key, double *out,
                    char **err)
{
    const char *v;
    int rc = meta_need(f, path, key, &v, err);
    if (rc)
        return rc;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: metadata '%s' is not a number: '%s'",
                         path, key, v);
    *out = x;
    return MLTK_OK;
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
        if (strncmp(ft->name, OPT_PREFIX, strlen(OPT_PREFIX)) == 0)
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
    int rc = mltk_st_open(&f, path, err);
    if (rc)
        return rc;
    diff d = { 0 };
    int loadable = 0;
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
    int rc = mltk_st_open(&f, path, err);
    if (rc)
        return rc;
    const char *format = mltk_st_meta(f, "format");
    diff d = { 0 };
    mltk_kv comp = { .path = path };
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

    /* what must not have changed */
    int loadable = 0;
    diff_model(&d, s, f, &loadable);
    const mltk_section *opt = mltk_config_section(s->cfg, "optimizer");
    const char *otype = mltk_params_str(opt->params, "type");
    v = mltk_st_meta(f, "optimizer");
    if (!v || strcmp(v, otype) != 0)
        diff_add(&d, "optimizer: '%s' in the checkpoint, '%s' in the config", v ? v : "none",
                 otype);
    int64_t slots = -1, batch_size = -1, train_n = -1;
    if (meta_i64(f, path, "optimizer_slots", &slots, err) == MLTK_OK && slots != s->opt_slots)
        diff_add(&d, "optimizer state: %" PRId64 " slot(s) in the checkpoint, %d now", slots,
                 s->opt_slots);
    if (meta_i64(f, path, "batch_size", &batch_size, err) == MLTK_OK
        && batch_size != s->batch_size)
        diff_add(&d, "[train] batch_size: %" PRId64 " in the checkpoint, %" PRId64 " now",
                 batch_size, s->batch_size);
    if (meta_i64(f, path, "train_samples", &train_n, err) == MLTK_OK && train_n != s->train.n)
        diff_add(&d, "training samples: %" PRId64 " in the checkpoint, %" PRId64 " now",
                 train_n, s->train.n);
    if (err) {
        free(*err);
        *err = NULL;
    }
    if (d.n) {
        rc = mltk_errf(err, MLTK_ERR_CONFIG, "cannot resume from %s: the configuration "
                       "changed in ways that matter:%s", path, d.text ? d.text : "");
        goto out;
    }

    /* counters */
    int64_t step = 0, epoch = 0, batch = 0, rows_skipped = 0;
    double loss_sum = 0, lr_factor = 1, last_lr = 0;
    rc = meta_i64(f, path, "step", &step, err);
    rc = rc ? rc : meta_i64(f, path, "epoch", &epoch, err);
    rc = rc ? rc : meta_i64(f, path, "batch", &batch, err);
    rc = rc ? rc : meta_i64(f, path, "rows_skipped", &rows_skipped, err);
    rc = rc ? rc : meta_f64(f, path, "loss_sum", &loss_sum, err);
    rc = rc ? rc : meta_f64(f, path, "lr_factor", &lr_factor, err);
    rc = rc ? rc : meta_f64(f, path, "last_lr", &last_lr, err);
    /* the components' state, whole, before anything is changed */
    for (int i = 0; !rc && i < mltk_st_meta_count(f); i++)
        if (mltk_kv_put(&comp, mltk_st_meta_key(f, i), "%s", mltk_st_meta_value(f, i)))
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    if (rc)
        goto out;
    if (batch > s->steps_per_epoch || (batch == s->steps_per_epoch && batch)) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: batch position %" PRId64 " is past the end of "
                       "an epoch (%" PRId64 " batches)", path, batch, s->steps_per_epoch);
        goto out;
    }
    const char *sched = mltk_st_meta(f, "schedule_state");
    if (sched && *sched) {
        if (!s->sched.i || s->sched.i->size < offsetof(struct mltk_schedule_i, load_state)
                                              + sizeof(s->sched.i->load_state)
            || !s->sched.i->load_state || s->sched.i->load_state(s->sched.self, sched)) {
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s: the schedule cannot take its saved state "
                           "'%s' (was the [schedule] type changed?)", path, sched);
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
    s->step = (uint64_t)step;
    s->epoch_done = epoch;
    s->batch_done = batch;
    s->loss_sum_now = (float)loss_sum;
    s->rows_skipped = rows_skipped;
    s->lr_factor = lr_factor;
    s->last_lr = last_lr;
    meta_f64(f, path, "train_loss", &s->last_stats.train_loss, err);
    meta_f64(f, path, "val_loss", &s->last_stats.val_loss, err);
    meta_f64(f, path, "val_acc", &s->last_stats.val_acc, err);
    if (err) {
        free(*err);
        *err = NULL;
    }
    mltk_log(MLTK_LOG_INFO, "resumed from %s: epoch %" PRId64 ", batch %" PRId64 ", step %"
             PRId64, path, epoch, batch, step);
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

int mltk_ckpt_inspect(const char *path, FILE *out, char **err)
{
    mltk_st_file *f = NULL;
    int rc = mltk_st_open(&f, path, err);
    if (rc)
        return rc;
    const char *format = mltk_st_meta(f, "format");
    /* labels padded to the longest, "schedule_state:", and a space */
    fprintf(out, "%-16s%s\n", "file:", path);
    fprintf(out, "%-16s%s\n", "format:", format ? format : "safetensors (not written by mltk)");
    static const char *const keys[] = { "mltk_version", "created", "step", "epoch", "batch",
                                         "seed", "optimizer", "schedule_state", "lr_factor",
                                         "train_loss", "val_loss", "val_acc", "config_path" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *v = mltk_st_meta(f, keys[i]);
        if (v && *v) {
            char label[32];
            snprintf(label, sizeof label, "%s:", keys[i]);
            fprintf(out, "%-16s%s\n", label, v);
        }
    }
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
