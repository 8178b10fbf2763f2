/* data.c - the data sets of a run: the splits, their order and their batches.
 *
 * The [data] plugin is opened once per data set split ("train", "test")
 * and hands out one sample at a time in its own dtype (get); the
 * [transform.NAME] sections, in file order, turn each sample into the
 * model's input; a sample that leaves the chain as bytes or token ids is
 * converted to float32 (x = raw * x_scale + x_shift) and, with [data]
 * standardize, scaled per feature by the training split's mean and
 * standard deviation.
 *
 * The run uses up to three splits: train; validation, held out of the
 * training data set when [data] val_fraction is set, stratified by class
 * (each class gives round(fraction * its count) samples, drawn from the
 * seed), so that the per-epoch figures never touch the test split; and
 * test, evaluated after every epoch without a validation split, or once
 * at the end with one.
 *
 * A split is resident when it has no random transforms and fits under
 * [data] resident_max_mb (or mode = resident): prepared once, uploaded,
 * and each batch is one gather on the backend.  Otherwise it streams:
 * worker threads (loader.c) prepare each batch on the host ahead of the
 * step.  Either way the order of an epoch is drawn on the host from a
 * counter-based stream of (seed, epoch): a permutation, or with [data]
 * balance = oversample, n draws with replacement in which every class is
 * equally likely; a process of a data-parallel run takes the positions
 * rank, rank + world, ...  Every random draw of a transform comes from
 * (seed, epoch, the sample's index in the data set, the transform's
 * position), so the batches are the same whatever the number of workers,
 * and a run resumed in the middle of an epoch sees the batches it would
 * have seen.
 *
 * Class labels are read once, at open (the plugin's label(), or get()),
 * checked (never negative, below the data set's n_classes) and counted
 * per split: the ops that read them trust their input.
 *
 * What this is not: the worker threads (loader.c), the plugins' file
 * formats (datasets/), or the transforms (transforms/).
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mltk/rng.h>
#include "session.h"
#include "train/component.h"

/* ---- small helpers ------------------------------------------------------------ */

/* splitmix64's finaliser: a key from several counters */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

static uint64_t key4(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    return mix64(mix64(mix64(seed ^ 0x243F6A8885A308D3ull) + a) + b) + c;
}

static size_t spec_bytes(const mltk_sample_spec *sp)
{
    return (size_t)mltk_shape_numel(&sp->shape) * mltk_dtype_size(sp->dtype);
}

static int key_line(const mltk_params_t *p, const char *key, int fallback)
{
    int line = mltk_params_key_line(p, key);
    return line ? line : fallback;
}

/* ---- one sample ----------------------------------------------------------------- */

/* raw (numel elements of dt) -> float32 x = raw * scale + shift */
static void to_float(float *x, const void *raw, mltk_dtype dt, int64_t numel, double scale,
                     double shift)
{
    float a = (float)scale, b = (float)shift;
    if (dt == MLTK_U8) {
        const uint8_t *r = raw;
        for (int64_t i = 0; i < numel; i++)
            x[i] = (float)r[i] * a + b;
    } else if (dt == MLTK_I32) {
        const int32_t *r = raw;
        for (int64_t i = 0; i < numel; i++)
            x[i] = (float)r[i] * a + b;
    } else {
        const float *r = raw;
        if (a == 1.0f && b == 0.0f)
            memcpy(x, r, (size_t)numel * sizeof(float));
        else
            for (int64_t i = 0; i < numel; i++)
                x[i] = r[i] * a + b;
    }
}

int mltk_data_sample(mltk_session_t *s, const mltk_split *sp, int64_t j, int64_t epoch,
                     float *x, void *y, void *scratch, int standardize, char **err)
{
    mltk_data *d = &s->data;
    const mltk_source *src = sp->src;
    unsigned char *buf[2] = { scratch, (unsigned char *)scratch + d->scratch_bytes };
    int cur = 0;
    int rc;
    if (src->has_get) {
        rc = src->ds->get(src->self, j, buf[0], y, err);
    } else {
        /* an ABI 2.0 plugin: read() of one float32 sample, one thread at a time */
        pthread_mutex_lock(&d->read_mu);
        rc = src->ds->read(src->self, j, 1, (float *)(void *)buf[0], y, err);
        pthread_mutex_unlock(&d->read_mu);
    }
    if (rc)
        return rc;
    mltk_dtype dt = src->info.x_dtype;
    for (int k = 0; k < d->n_xf; k++) {
        const mltk_xform *t = &d->xf[k];
        if (t->batch || (t->train_only && !sp->train) || (t->eval_only && sp->train))
            continue;
        uint64_t key = t->random ? key4(s->seed, (uint64_t)epoch, (uint64_t)j, (uint64_t)k)
                                 : 0;
        rc = t->i->apply(t->self, key, buf[cur], buf[cur ^ 1], err);
        if (rc)
            return rc;
        cur ^= 1;
        dt = t->out.dtype;
    }
    int from_raw = dt != MLTK_F32;
    double scale = from_raw && src->info.x_scale != 0 ? src->info.x_scale : 1.0;
    double shift = from_raw ? src->info.x_shift : 0.0;
    to_float(x, buf[cur], dt, sp->x_numel, scale, shift);
    if (standardize && d->mean)
        for (int64_t i = 0; i < sp->x_numel; i++)
            x[i] = (x[i] - d->mean[i]) / d->std[i];
    return MLTK_OK;
}

/* ---- opening the data set ------------------------------------------------------------ */

/* a 2.0 plugin's read() standing in for get(): one float32 sample */
static int has_get(const struct mltk_dataset_i *ds)
{
    return ds->size >= offsetof(struct mltk_dataset_i, get) + sizeof(ds->get) && ds->get;
}

static int has_label(const struct mltk_dataset_i *ds)
{
    return ds->size >= offsetof(struct mltk_dataset_i, label) + sizeof(ds->label)
           && ds->label;
}

/* Every class label of src, checked against n_classes; an error names
 * the split and the sample. */
static int read_labels(mltk_source *src, char **err)
{
    int64_t n = src->info.n, nc = src->info.n_classes;
    src->labels = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    void *x = has_label(src->ds) ? NULL : malloc(src->x_bytes ? src->x_bytes : 1);
    if (!src->labels || (!has_label(src->ds) && !x)) {
        free(x);
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory for the %s split's labels",
                         src->split);
    }
    int rc = MLTK_OK;
    for (int64_t i = 0; i < n && !rc; i++) {
        rc = !x ? src->ds->label(src->self, i, &src->labels[i], err)
             : has_get(src->ds) ? src->ds->get(src->self, i, x, &src->labels[i], err)
             : src->ds->read(src->self, i, 1, x, &src->labels[i], err);
        if (rc)
            break;
        int32_t l = src->labels[i];
        if (l < 0)
            rc = mltk_errf(err, MLTK_ERR_DATA, "the %s split's sample %" PRId64 " has the "
                           "negative label %" PRId32, src->split, i, l);
        else if (nc > 0 && l >= nc)
            rc = mltk_errf(err, MLTK_ERR_DATA, "the %s split's sample %" PRId64 " has "
                           "label %" PRId32 ", outside [0, %" PRId64 ") (the data set's "
                           "n_classes)", src->split, i, l, nc);
    }
    free(x);
    return rc;
}

/* The plugin opened for one data set split, its info checked. */
static int source_open(mltk_source *src, const mltk_section *data, mltk_registry_t *reg,
                       const char *split, char **err)
{
    const char *type = mltk_params_str(data->params, "type");
    char *perr = NULL;
    memset(src, 0, sizeof(*src));
    src->split = split;
    int rc = mltk_registry_load(reg, type, MLTK_KIND_DATASET, (const void **)&src->ds, err);
    if (rc)
        return rc;
    if (!has_get(src->ds) && !src->ds->read) {
        rc = mltk_errf(&perr, MLTK_ERR_PLUGIN, "the plugin has neither get nor read");
        goto out;
    }
    rc = src->ds->open(&src->self, data->params, split, &perr);
    if (rc) {
        src->self = NULL;
        goto out;
    }
    memset(&src->info, 0, sizeof(src->info));
    rc = src->ds->info(src->self, &src->info);
    if (rc)
        goto out;
    src->has_get = has_get(src->ds);
    if (!src->has_get)
        src->info.x_dtype = MLTK_F32;  /* read() gives float32 */
    mltk_dtype dt = src->info.x_dtype;
    if (dt != MLTK_F32 && dt != MLTK_U8 && dt != MLTK_I32) {
        rc = mltk_errf(&perr, MLTK_ERR_PLUGIN, "the data set gives samples of dtype %s "
                       "(f32, u8 or i32 are understood)", mltk_dtype_name(dt));
        goto out;
    }
    if (src->info.n <= 0) {
        rc = mltk_errf(&perr, MLTK_ERR_DATA, "the %s split is empty", split);
        goto out;
    }
    if (mltk_size_bytes(&src->x_bytes, mltk_shape_numel(&src->info.x_shape),
                        mltk_dtype_size(dt))) {
        rc = mltk_errf(&perr, MLTK_ERR_DATA, "a sample of the %s split is too large", split);
        goto out;
    }
    if (src->info.target == MLTK_TARGET_CLASS)
        rc = read_labels(src, &perr);
out:
    /* a data file that cannot be read is a data problem, whatever failed */
    if (rc == MLTK_ERR_IO)
        rc = MLTK_ERR_DATA;
    if (rc)
        mltk_errf(err, rc, "%s: data set '%s', %s split: %s", mltk_params_where(data->params),
                  type, split, perr ? perr : mltk_status_str(rc));
    free(perr);
    return rc;
}

static void source_close(mltk_source *src)
{
    if (src->ds && src->self)
        src->ds->close(src->self);
    free(src->labels);
    memset(src, 0, sizeof(*src));
}

/* ---- the transforms ------------------------------------------------------------------ */

static int open_transforms(mltk_session_t *s, char **err)
{
    mltk_data *d = &s->data;
    const mltk_config_t *cfg = s->cfg;
    int n = 0;
    for (int i = 0; i < cfg->n_sec; i++)
        n += strncmp(cfg->sec[i].name, "transform.", 10) == 0;
    if (!n)
        return MLTK_OK;
    d->xf = calloc((size_t)n, sizeof(*d->xf));
    if (!d->xf)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    /* the spec of a sample along the training chain and along the
     * evaluation chain (the validation and test splits) */
    mltk_sample_spec spec = { d->train_src.info.x_dtype, d->train_src.info.x_shape };
    mltk_sample_spec ev = spec;
    d->scratch_bytes = spec_bytes(&spec);
    int64_t nc = d->train_src.info.target == MLTK_TARGET_CLASS ? d->train_src.info.n_classes
                                                               : 0;
    int after_batch = 0;
    for (int i = 0; i < cfg->n_sec; i++) {
        const mltk_section *sec = &cfg->sec[i];
        if (strncmp(sec->name, "transform.", 10) != 0)
            continue;
        mltk_xform *t = &d->xf[d->n_xf++];
        const char *type = mltk_params_str(sec->params, "type");
        char *perr = NULL;
        t->sec = sec;
        int rc = mltk_registry_load(s->reg, type, MLTK_KIND_TRANSFORM, (const void **)&t->i,
                                    err);
        if (rc) {
            mltk_err_prefix(err, "%s", mltk_params_where(sec->params));
            return rc;
        }
        t->random = (t->i->flags & MLTK_TRANSFORM_RANDOM) != 0;
        t->batch = (t->i->flags & MLTK_TRANSFORM_BATCH) != 0;
        const char *splits = mltk_params_str(sec->params, "splits");
        t->train_only = strcmp(splits, "train") == 0
                        || (strcmp(splits, "auto") == 0 && (t->random || t->batch));
        t->eval_only = strcmp(splits, "eval") == 0;
        if ((t->random || t->batch) && !t->train_only)
            return mltk_errf(err, MLTK_ERR_CONFIG, "%s:%d: transform '%s' (%s) draws random "
                             "numbers and applies to the training split only; splits = %s "
                             "is not possible", cfg->path,
                             key_line(sec->params, "splits", sec->line), sec->label, type,
                             splits);
        if (t->batch ? !t->i->apply_batch : !t->i->apply)
            return mltk_errf(err, MLTK_ERR_PLUGIN, "%s: the plugin has no %s",
                             mltk_params_where(sec->params),
                             t->batch ? "apply_batch" : "apply");
        if (t->batch && nc <= 0)
            return mltk_errf(err, MLTK_ERR_CONFIG, "%s: a batch transform mixes class "
                             "targets, and this data set has %s", mltk_params_where(sec->params),
                             d->train_src.info.target == MLTK_TARGET_CLASS
                                 ? "no declared number of classes" : "value targets");
        if (!t->batch && after_batch)
            return mltk_errf(err, MLTK_ERR_CONFIG, "%s: a per-sample transform after a batch "
                             "transform; batch transforms (mixup, cutmix) come last",
                             mltk_params_where(sec->params));
        after_batch |= t->batch;
        if (t->batch && spec.dtype != MLTK_F32)
            spec.dtype = MLTK_F32;  /* the core converts before batch transforms */
        if (!t->train_only && !t->eval_only
            && (!mltk_shape_equal(&spec.shape, &ev.shape) || spec.dtype != ev.dtype)) {
            char a[64], b[64];
            return mltk_errf(err, MLTK_ERR_CONFIG, "%s: transform '%s' applies to every split, "
                             "but it gets samples of shape %s (%s) on the training split and "
                             "%s (%s) on the others; give it splits = train or eval, or make "
                             "the transforms before it agree",
                             mltk_params_where(sec->params), sec->label,
                             mltk_shape_str(&spec.shape, a, sizeof a),
                             mltk_dtype_name(spec.dtype), mltk_shape_str(&ev.shape, b, sizeof b),
                             mltk_dtype_name(ev.dtype));
        }
        t->in = t->eval_only ? ev : spec;
        rc = t->i->create(&t->self, sec->params, &perr);
        if (rc) {
            t->self = NULL;
        } else {
            rc = t->i->setup(t->self, &t->in, &t->out, nc, &perr);
        }
        if (rc) {
            mltk_errf(err, rc == MLTK_ERR_CONFIG || rc == MLTK_ERR_DATA ? MLTK_ERR_CONFIG : rc,
                      "%s: %s", mltk_params_where(sec->params),
                      perr ? perr : mltk_status_str(rc));
            free(perr);
            return rc == MLTK_ERR_DATA ? MLTK_ERR_CONFIG : rc;
        }
        if (t->batch && (t->out.dtype != t->in.dtype
                         || !mltk_shape_equal(&t->out.shape, &t->in.shape)))
            return mltk_errf(err, MLTK_ERR_PLUGIN, "%s: a batch transform must keep the "
                             "sample's shape and dtype", mltk_params_where(sec->params));
        t->in_bytes = spec_bytes(&t->in);
        t->out_bytes = spec_bytes(&t->out);
        if (t->out_bytes > d->scratch_bytes)
            d->scratch_bytes = t->out_bytes;
        if (!t->eval_only)
            spec = t->out;
        if (!t->train_only)
            ev = t->out;
    }
    /* the training chain and the evaluation chain must end at the same
     * shape: the model has one input */
    if (!mltk_shape_equal(&ev.shape, &spec.shape)) {
        char a[64], b[64];
        return mltk_errf(err, MLTK_ERR_CONFIG, "%s: the training transforms make samples of "
                         "shape %s but the other splits' are %s; a training-only transform "
                         "that changes the shape (a crop) needs a counterpart with splits = "
                         "eval (resize and center_crop)",
                         s->cfg->path, mltk_shape_str(&spec.shape, a, sizeof a),
                         mltk_shape_str(&ev.shape, b, sizeof b));
    }
    return MLTK_OK;
}

/* the output shape of the training chain (the model's input; the
 * evaluation chain ends at the same shape) */
static mltk_shape chain_shape(const mltk_data *d)
{
    mltk_shape sh = d->train_src.info.x_shape;
    for (int k = 0; k < d->n_xf; k++)
        if (!d->xf[k].eval_only)
            sh = d->xf[k].out.shape;
    return sh;
}

static int split_has_random(const mltk_data *d, const mltk_split *sp)
{
    for (int k = 0; k < d->n_xf; k++)
        if ((d->xf[k].random || d->xf[k].batch) && (sp->train || !d->xf[k].train_only))
            return 1;
    return 0;
}

static int split_has_batch_xf(const mltk_data *d, const mltk_split *sp)
{
    for (int k = 0; k < d->n_xf; k++)
        if (d->xf[k].batch && sp->train)
            return 1;
    return 0;
}

/* ---- the splits ------------------------------------------------------------------------ */

static int split_init(mltk_session_t *s, mltk_split *sp, const char *name, mltk_source *src,
                      int64_t n, int train, char **err)
{
    mltk_data *d = &s->data;
    sp->name = name;
    sp->src = src;
    sp->n = n;
    sp->train = train;
    sp->info = src->info;
    sp->info.x_shape = chain_shape(d);
    sp->info.x_dtype = MLTK_F32;
    sp->x_numel = mltk_shape_numel(&sp->info.x_shape);
    sp->y_bytes = src->info.target == MLTK_TARGET_CLASS
                      ? sizeof(int32_t)
                      : sizeof(float) * (size_t)mltk_shape_numel(&src->info.y_shape);
    sp->yb_shape = src->info.target == MLTK_TARGET_CLASS ? (mltk_shape){ 0 } : src->info.y_shape;
    sp->yb_dtype = src->info.target == MLTK_TARGET_CLASS ? MLTK_I32 : MLTK_F32;
    sp->yb_bytes = sp->y_bytes;
    if (split_has_batch_xf(d, sp)) {
        sp->yb_shape = (mltk_shape){ .ndim = 1, .dim = { src->info.n_classes } };
        sp->yb_dtype = MLTK_F32;
        sp->yb_bytes = sizeof(float) * (size_t)src->info.n_classes;
    }
    sp->n_epoch = n;
    sp->idx = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    sp->perm_host = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!sp->idx || !sp->perm_host)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory for the %s split", name);
    if (n > INT32_MAX)
        return mltk_errf(err, MLTK_ERR_DATA, "the %s split has %" PRId64 " samples; at most "
                         "%d are supported", name, n, INT32_MAX);
    return MLTK_OK;
}

/* The largest label of sp and the class counts. */
static int split_count(mltk_split *sp, char **err)
{
    if (sp->info.target != MLTK_TARGET_CLASS)
        return MLTK_OK;
    int64_t nc = sp->info.n_classes;
    sp->label_max = 0;
    sp->label_max_at = 0;
    for (int64_t i = 0; i < sp->n; i++) {
        int32_t l = sp->src->labels[sp->idx[i]];
        if (l > sp->label_max) {
            sp->label_max = l;
            sp->label_max_at = sp->idx[i];
        }
    }
    if (nc <= 0)
        nc = (int64_t)sp->label_max + 1;
    sp->class_count = calloc((size_t)nc, sizeof(int64_t));
    if (!sp->class_count)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < sp->n; i++) {
        int32_t l = sp->src->labels[sp->idx[i]];
        if (l < nc)
            sp->class_count[l]++;
    }
    return MLTK_OK;
}

/* Positions 0..n-1 grouped by the class of their sample
 * (labels[idx ? idx[i] : i], or all in class 0 when labels is NULL),
 * each class's in ascending order: class c's are
 * (*by)[(*start)[c] .. (*start)[c + 1]).  nc bounds the labels. */
static int group_by_class(const int32_t *labels, const int64_t *idx, int64_t n, int64_t nc,
                          int64_t **start, int64_t **by, char **err)
{
    *start = calloc((size_t)nc + 1, sizeof(int64_t));
    *by = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    int64_t *fill = calloc((size_t)nc, sizeof(int64_t));
    if (!*start || !*by || !fill) {
        free(*start);
        free(*by);
        free(fill);
        *start = *by = NULL;
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    }
#define CLASS_OF(i) (labels ? labels[idx ? idx[i] : (i)] : 0)
    for (int64_t i = 0; i < n; i++)
        (*start)[CLASS_OF(i) + 1]++;
    for (int64_t c = 0; c < nc; c++)
        (*start)[c + 1] += (*start)[c];
    for (int64_t i = 0; i < n; i++) {
        int64_t c = CLASS_OF(i);
        (*by)[(*start)[c] + fill[c]++] = i;
    }
#undef CLASS_OF
    free(fill);
    return MLTK_OK;
}

/* balance = oversample: the training split's positions by class, once */
static int prepare_oversample(mltk_split *sp, char **err)
{
    int64_t nc = sp->info.n_classes > 0 ? sp->info.n_classes : sp->label_max + 1;
    int rc = group_by_class(sp->src->labels, sp->idx, sp->n, nc, &sp->class_start,
                            &sp->pos_by_class, err);
    if (rc)
        return rc;
    sp->present = malloc((size_t)nc * sizeof(int32_t));
    if (!sp->present)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    for (int64_t c = 0; c < nc; c++)
        if (sp->class_start[c + 1] > sp->class_start[c])
            sp->present[sp->n_present++] = (int32_t)c;
    return MLTK_OK;
}

/* Hold out the validation split: per class (or over all samples for
 * value targets) round(fraction * count) samples, chosen by a shuffle of
 * the class's samples from the seed; both splits keep data set order. */
static int carve_validation(mltk_session_t *s, double frac, int64_t n, char **err)
{
    mltk_data *d = &s->data;
    mltk_source *src = &d->train_src;
    int classify = src->info.target == MLTK_TARGET_CLASS;
    int64_t nc = 1;
    if (classify)
        for (int64_t i = 0; i < n; i++)
            if ((int64_t)src->labels[i] + 1 > nc)
                nc = (int64_t)src->labels[i] + 1;
    if (n <= 0 || n > INT32_MAX)
        return mltk_errf(err, MLTK_ERR_DATA, "the training split has %" PRId64 " samples",
                         n);
    /* the samples grouped by class, in data set order within a class */
    int64_t *by = NULL, *start = NULL;
    int rc = group_by_class(classify ? src->labels : NULL, NULL, n, nc, &start, &by, err);
    if (rc)
        return rc;
    char *is_val = calloc((size_t)n, 1);
    if (!is_val) {
        free(by);
        free(start);
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    }
    uint64_t seed = s->seed ^ 0x5BD1E9955BD1E995ull;
    int64_t n_val = 0;
    for (int64_t c = 0; c < nc; c++) {
        int64_t *g = by + start[c], cnt = start[c + 1] - start[c];
        int64_t take = (int64_t)llround(frac * (double)cnt);
        if (take >= cnt && cnt > 0)
            take = cnt - 1;  /* every class keeps a training sample */
        /* partial Fisher-Yates: the first `take` of a shuffle */
        for (int64_t i = 0; i < take; i++) {
            double u = mltk_rng_u01(seed + (uint64_t)c * 0x9E3779B97F4A7C15ull, (uint64_t)i);
            int64_t j = i + (int64_t)(u * (double)(cnt - i));
            if (j >= cnt)
                j = cnt - 1;
            int64_t t = g[i];
            g[i] = g[j];
            g[j] = t;
            is_val[g[i]] = 1;
        }
        n_val += take;
    }
    free(by);
    free(start);
    if (n_val == 0)
        rc = mltk_errf(err, MLTK_ERR_CONFIG, "[data] val_fraction = %g holds out no sample "
                       "of the %" PRId64 " training samples", frac, n);
    if (!rc)
        rc = split_init(s, &s->train, "train", src, n - n_val, 1, err);
    if (!rc)
        rc = split_init(s, &s->val, "validation", src, n_val, 0, err);
    if (!rc) {
        int64_t a = 0, b = 0;
        for (int64_t i = 0; i < n; i++) {
            if (is_val[i])
                s->val.idx[b++] = i;
            else
                s->train.idx[a++] = i;
        }
    }
    free(is_val);
    return rc;
}

/* ---- standardisation ------------------------------------------------------------------- */

/* Per-feature mean and standard deviation (population, as scikit-learn's
 * StandardScaler) of the training split's samples after the
 * deterministic transforms; a constant feature gets std 1. */
static int fit_standardize(mltk_session_t *s, char **err)
{
    mltk_data *d = &s->data;
    mltk_split *sp = &s->train;
    int64_t m = sp->x_numel;
    double *sum = calloc((size_t)m, sizeof(double)), *sq = calloc((size_t)m, sizeof(double));
    float *x = malloc((size_t)m * sizeof(float));
    void *y = malloc(sp->y_bytes);
    void *scratch = malloc(2 * d->scratch_bytes);
    d->mean = malloc((size_t)m * sizeof(float));
    d->std = malloc((size_t)m * sizeof(float));
    int rc = MLTK_OK;
    if (!sum || !sq || !x || !y || !scratch || !d->mean || !d->std) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory for [data] standardize");
        goto out;
    }
    /* the statistics of the samples as evaluation sees them: no random
     * transform (train = 0 for the duration) */
    sp->train = 0;
    for (int64_t i = 0; i < sp->n && !rc; i++) {
        rc = mltk_data_sample(s, sp, sp->idx[i], 0, x, y, scratch, 0, err);
        for (int64_t f = 0; f < m && !rc; f++) {
            sum[f] += x[f];
            sq[f] += (double)x[f] * x[f];
        }
    }
    sp->train = 1;
    for (int64_t f = 0; f < m && !rc; f++) {
        double mean = sum[f] / (double)sp->n;
        double var = sq[f] / (double)sp->n - mean * mean;
        double sd = var > 0 ? sqrt(var) : 0;
        d->mean[f] = (float)mean;
        d->std[f] = sd > 1e-12 * (fabs(mean) > 1 ? fabs(mean) : 1) ? (float)sd : 1.0f;
    }
out:
    free(sum);
    free(sq);
    free(x);
    free(y);
    free(scratch);
    return rc;
}

/* ---- resident splits ------------------------------------------------------------------------ */

static int make_resident(mltk_session_t *s, mltk_split *sp, char **err)
{
    mltk_data *d = &s->data;
    const struct mltk_backend *be = &s->be;
    size_t xb, yb;
    if (mltk_size_bytes(&xb, sp->n, (size_t)sp->x_numel * sizeof(float))
        || mltk_size_bytes(&yb, sp->n, sp->y_bytes))
        return mltk_errf(err, MLTK_ERR_NOMEM, "the %s split is too large", sp->name);
    float *hx = malloc(xb ? xb : 1);
    char *hy = malloc(yb ? yb : 1);
    void *scratch = malloc(2 * d->scratch_bytes);
    int rc = MLTK_OK;
    if (!hx || !hy || !scratch) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "cannot hold the %s split in memory (%zu bytes)",
                       sp->name, xb + yb);
        goto out;
    }
    for (int64_t i = 0; i < sp->n && !rc; i++)
        rc = mltk_data_sample(s, sp, sp->idx[i], 0, hx + i * sp->x_numel,
                              hy + (size_t)i * sp->y_bytes, scratch, 1, err);
    if (rc)
        goto out;
    if (mltk_be_alloc(be, xb, &sp->x) || mltk_be_alloc(be, yb, &sp->y)) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "the %s split (%zu bytes) does not fit in %s "
                       "memory: %s", sp->name, xb + yb, be->name, mltk_backend_error(be));
        goto out;
    }
    rc = mltk_be_upload(be, sp->x, hx, xb);
    if (!rc)
        rc = mltk_be_upload(be, sp->y, hy, yb);
    if (rc)
        rc = mltk_errf(err, rc, "cannot upload the %s split: %s", sp->name,
                       mltk_backend_error(be));
    sp->resident = 1;
out:
    free(hx);
    free(hy);
    free(scratch);
    return rc;
}

/* resident or streamed, from [data] mode and resident_max_mb */
static int choose_mode(mltk_session_t *s, const mltk_section *data, mltk_split *sp,
                       char **err)
{
    const char *mode = mltk_params_str(data->params, "mode");
    int random = split_has_random(&s->data, sp);
    if (strcmp(mode, "stream") == 0)
        return MLTK_OK;
    if (strcmp(mode, "resident") == 0) {
        if (random)
            return mltk_errf(err, MLTK_ERR_CONFIG, "%s:%d: [data] mode = resident, but the "
                             "%s split has random transforms, which are drawn anew every "
                             "epoch: use mode = stream or auto", s->cfg->path,
                             key_line(data->params, "mode", data->line), sp->name);
        return make_resident(s, sp, err);
    }
    double mb = (double)sp->n * (double)sp->x_numel * 4.0 / (1024.0 * 1024.0);
    if (random || mb > (double)mltk_params_int(data->params, "resident_max_mb"))
        return MLTK_OK;
    return make_resident(s, sp, err);
}

/* ---- class weights for balance = weights ---------------------------------------------------- */

/* "w0, w1, ...": n / (C count_c) for the classes of the training split
 * (0 for a class it lacks), as scikit-learn's class_weight = "balanced". */
static char *balanced_weights(const mltk_split *sp)
{
    int64_t nc = sp->info.n_classes > 0 ? sp->info.n_classes : sp->label_max + 1;
    size_t cap = (size_t)nc * 24 + 1;
    char *buf = malloc(cap), *p = buf;
    if (!buf)
        return NULL;
    *p = '\0';
    for (int64_t c = 0; c < nc; c++) {
        double w = sp->class_count[c] ? (double)sp->n / ((double)nc * (double)sp->class_count[c])
                                      : 0.0;
        p += snprintf(p, cap - (size_t)(p - buf), "%s%.9g", c ? ", " : "", w);
    }
    return buf;
}

/* [data] balance = weights: the loss's class weights (its `weights` key,
 * which the user must not give as well) */
static int balance_weights(mltk_session_t *s, const mltk_section *data, char **err)
{
    mltk_section *loss = (mltk_section *)mltk_config_section(s->cfg, "loss");
    int line = key_line(data->params, "balance", data->line);
    if (s->train.info.target != MLTK_TARGET_CLASS)
        return mltk_errf(err, MLTK_ERR_CONFIG, "%s:%d: [data] balance applies to class "
                         "targets; this data set has value targets", s->cfg->path, line);
    if (!loss || !mltk_params_declares(loss->params, "weights"))
        return mltk_errf(err, MLTK_ERR_CONFIG, "%s:%d: [data] balance = weights needs a loss "
                         "with class weights (cross_entropy); [loss] type = %s has none",
                         s->cfg->path, line,
                         loss ? mltk_params_str(loss->params, "type") : "(none)");
    if (mltk_params_set(loss->params, "weights"))
        return mltk_errf(err, MLTK_ERR_CONFIG, "%s:%d: [data] balance = weights computes the "
                         "class weights; [loss] weights (line %d) gives them as well: keep "
                         "one", s->cfg->path, line,
                         mltk_params_key_line(loss->params, "weights"));
    char *w = balanced_weights(&s->train);
    if (!w)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    int rc = mltk_params_override(loss->params, "weights", w);
    mltk_log(MLTK_LOG_INFO, "[data] balance = weights: class weights %s", w);
    free(w);
    return rc ? mltk_errf(err, rc, "out of memory") : MLTK_OK;
}

/* ---- open and close -------------------------------------------------------------------------- */

int mltk_data_open(mltk_session_t *s, const mltk_section *data, char **err)
{
    mltk_data *d = &s->data;
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->read_mu, NULL);
    d->opened = 1;
    d->world = 1;
    d->workers = (int)mltk_params_int(data->params, "workers");
    d->prefetch = (int)mltk_params_int(data->params, "prefetch");
    d->drop_last = mltk_params_bool(data->params, "drop_last");
    d->standardize = mltk_params_bool(data->params, "standardize");
    const char *bal = mltk_params_str(data->params, "balance");
    d->balance = strcmp(bal, "oversample") == 0 ? 1 : strcmp(bal, "weights") == 0 ? 2 : 0;
    double frac = mltk_params_float(data->params, "val_fraction");

    int rc = source_open(&d->train_src, data, s->reg, "train", err);
    if (!rc)
        rc = source_open(&d->test_src, data, s->reg, "test", err);
    if (!rc && (!mltk_shape_equal(&d->train_src.info.x_shape, &d->test_src.info.x_shape)
                || d->train_src.info.x_dtype != d->test_src.info.x_dtype))
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: train and test samples differ in shape or "
                       "dtype", mltk_params_where(data->params));
    if (!rc)
        rc = open_transforms(s, err);
    if (rc)
        return rc;
    if (!d->scratch_bytes)
        d->scratch_bytes = d->train_src.x_bytes;

    int64_t n_train = d->train_src.info.n, n_test = d->test_src.info.n;
    int64_t tl = mltk_params_int(data->params, "train_limit");
    int64_t el = mltk_params_int(data->params, "test_limit");
    if (tl > 0 && tl < n_train)
        n_train = tl;
    if (el > 0 && el < n_test)
        n_test = el;
    if (frac > 0) {
        rc = carve_validation(s, frac, n_train, err);
    } else {
        rc = split_init(s, &s->train, "train", &d->train_src, n_train, 1, err);
        for (int64_t i = 0; !rc && i < n_train; i++)
            s->train.idx[i] = i;
    }
    if (!rc)
        rc = split_init(s, &s->test, "test", &d->test_src, n_test, 0, err);
    for (int64_t i = 0; !rc && i < n_test; i++)
        s->test.idx[i] = i;
    mltk_split *all[3] = { &s->train, &s->val, &s->test };
    for (int k = 0; k < 3 && !rc; k++)
        if (all[k]->n)
            rc = split_count(all[k], err);
    if (!rc && d->balance == 1 && s->train.info.target != MLTK_TARGET_CLASS)
        rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s:%d: [data] balance applies to class "
                       "targets; this data set has value targets", s->cfg->path,
                       key_line(data->params, "balance", data->line));
    if (!rc && d->balance == 1)
        rc = prepare_oversample(&s->train, err);
    if (!rc && d->balance == 2)
        rc = balance_weights(s, data, err);
    if (!rc && d->standardize)
        rc = fit_standardize(s, err);
    for (int k = 0; k < 3 && !rc; k++)
        if (all[k]->n) {
            rc = choose_mode(s, data, all[k], err);
            if (!rc && mltk_be_alloc(&s->be, (size_t)all[k]->n * sizeof(int32_t),
                                     (void **)&all[k]->perm))
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of %s memory for the order of the "
                               "%s split", s->be.name, all[k]->name);
        }
    if (!rc && (!s->train.resident || (s->val.n && !s->val.resident) || !s->test.resident))
        rc = mltk_loader_create(&d->ld, s, err);
    if (!rc)
        mltk_log(MLTK_LOG_DEBUG, "data: train %" PRId64 " (%s), validation %" PRId64
                 " (%s), test %" PRId64 " (%s); %d workers", s->train.n,
                 s->train.resident ? "resident" : "streamed", s->val.n,
                 s->val.resident ? "resident" : "streamed", s->test.n,
                 s->test.resident ? "resident" : "streamed", d->workers);
    return rc;
}

static void split_free(mltk_split *sp, const struct mltk_backend *be)
{
    if (sp->x) mltk_be_free(be, sp->x);
    if (sp->y) mltk_be_free(be, sp->y);
    if (sp->perm) mltk_be_free(be, sp->perm);
    free(sp->perm_host);
    free(sp->idx);
    free(sp->class_count);
    free(sp->class_start);
    free(sp->pos_by_class);
    free(sp->present);
    memset(sp, 0, sizeof(*sp));
}

void mltk_data_close(mltk_session_t *s)
{
    mltk_data *d = &s->data;
    if (!d->opened)
        return;
    mltk_loader_destroy(d->ld);
    d->ld = NULL;
    split_free(&s->train, &s->be);
    split_free(&s->val, &s->be);
    split_free(&s->test, &s->be);
    for (int k = 0; k < d->n_xf; k++)
        if (d->xf[k].i && d->xf[k].self)
            d->xf[k].i->destroy(d->xf[k].self);
    free(d->xf);
    free(d->mean);
    free(d->std);
    source_close(&d->train_src);
    source_close(&d->test_src);
    pthread_mutex_destroy(&d->read_mu);
    memset(d, 0, sizeof(*d));
}

/* ---- the epochs ---------------------------------------------------------------------------------- */

mltk_split *mltk_data_eval_split(mltk_session_t *s)
{
    return s->val.n ? &s->val : &s->test;
}

int64_t mltk_data_epoch_samples(const mltk_session_t *s, const mltk_split *sp)
{
    const mltk_data *d = &s->data;
    if (sp->train && d->world > 1)
        return (sp->n_epoch - d->rank + d->world - 1) / d->world;
    return sp->n_epoch;
}

int64_t mltk_data_rows(const mltk_session_t *s, const mltk_split *sp, int64_t b)
{
    int64_t left = mltk_data_epoch_samples(s, sp) - b * s->batch_size;
    return left < s->batch_size ? left : s->batch_size;
}

int64_t mltk_data_batches(const mltk_session_t *s, const mltk_split *sp)
{
    int64_t n = mltk_data_epoch_samples(s, sp), b = s->batch_size;
    if (sp->train && s->data.drop_last && n >= b)
        return n / b;
    return (n + b - 1) / b;
}

/* The order of an epoch: positions into [0, n). */
static void draw_order(mltk_session_t *s, mltk_split *sp, int64_t epoch)
{
    mltk_data *d = &s->data;
    int32_t *p = sp->perm_host;
    int64_t n = sp->n;
    if (!sp->train || (!s->shuffle && d->balance != 1)) {
        for (int64_t i = 0; i < n; i++)
            p[i] = (int32_t)i;
    } else if (d->balance == 1) {
        /* oversample: each draw picks a class uniformly among the classes
         * present, then a sample of it uniformly (the grouping is made
         * once, at open) */
        int64_t nc = sp->n_present;
        const int64_t *start = sp->class_start;
        uint64_t seed = s->seed ^ (0xA0761D6478BD642Full * (uint64_t)epoch) ^ 0xB5ull;
        for (int64_t i = 0; i < n; i++) {
            double u0 = mltk_rng_u01(seed, 2 * (uint64_t)i);
            double u1 = mltk_rng_u01(seed, 2 * (uint64_t)i + 1);
            int64_t k0 = (int64_t)(u0 * (double)nc);
            int64_t c = sp->present[k0 < nc ? k0 : nc - 1];
            int64_t cnt = start[c + 1] - start[c];
            int64_t k = (int64_t)(u1 * (double)cnt);
            p[i] = (int32_t)sp->pos_by_class[start[c] + (k < cnt ? k : cnt - 1)];
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            p[i] = (int32_t)i;
        /* stream: seed mixed with the epoch (counted from 0 as before);
         * element i draws for position i */
        uint64_t seed = s->seed ^ (0xA0761D6478BD642Full * (uint64_t)(epoch + 1));
        for (int64_t i = n - 1; i > 0; i--) {
            double u = mltk_rng_u01(seed, (uint64_t)i);
            int64_t j = (int64_t)(u * (double)(i + 1));
            if (j > i)
                j = i;
            int32_t t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
    }
    /* a shard: positions rank, rank + world, ... moved to the front */
    if (sp->train && d->world > 1) {
        int64_t k = 0;
        for (int64_t i = d->rank; i < n; i += d->world)
            p[k++] = p[i];
    }
}

int mltk_data_epoch(mltk_session_t *s, mltk_split *sp, int64_t epoch, int64_t first_batch,
                    char **err)
{
    draw_order(s, sp, epoch);
    int rc = MLTK_OK;
    if (sp->resident && sp->train)
        rc = mltk_be_upload(&s->be, sp->perm, sp->perm_host, (size_t)sp->n * sizeof(int32_t));
    if (rc)
        return mltk_errf(err, rc, "cannot upload the order of the %s split: %s", sp->name,
                         mltk_backend_error(&s->be));
    if (!sp->resident)
        mltk_loader_begin(s->data.ld, sp, epoch, first_batch, mltk_data_batches(s, sp));
    s->data.wait_mark = s->data.wait_s;
    return MLTK_OK;
}

int mltk_data_batch(mltk_session_t *s, mltk_split *sp, int64_t b, int64_t *rows, void **x,
                    void **y, char **err)
{
    const struct mltk_backend *be = &s->be;
    int64_t off = b * s->batch_size, r = mltk_data_rows(s, sp, b);
    *rows = r;
    if (sp->resident && !sp->train) {
        /* in order: the split's own rows */
        *x = (float *)sp->x + off * sp->x_numel;
        *y = (char *)sp->y + (size_t)off * sp->y_bytes;
        return MLTK_OK;
    }
    if (sp->resident) {
        const mltk_shape *xs = &sp->info.x_shape;
        mltk_tensor dst = mltk_batch_tensor(s->xb, xs, r, MLTK_F32);
        mltk_tensor src = mltk_batch_tensor(sp->x, xs, sp->n, MLTK_F32);
        mltk_tensor idx = mltk_tensor_1d(sp->perm + off, MLTK_I32, r);
        int rc = mltk_op_gather_rows(be, &dst, &src, &idx);
        if (!rc) {
            mltk_tensor ydst = mltk_batch_tensor(s->yb, &sp->yb_shape, r, sp->yb_dtype);
            mltk_tensor ysrc = mltk_batch_tensor(sp->y, &sp->yb_shape, sp->n, sp->yb_dtype);
            rc = mltk_op_gather_rows(be, &ydst, &ysrc, &idx);
        }
        if (rc)
            return mltk_step_failed(s, rc, "gathering the batch", err);
        *x = s->xb;
        *y = s->yb;
        return MLTK_OK;
    }
    float *hx = NULL;
    void *hy = NULL;
    int64_t got = 0;
    int rc = mltk_loader_get(s->data.ld, b, &got, &hx, &hy, err);
    if (rc)
        return rc;
    rc = mltk_be_upload(be, s->xb, hx, (size_t)got * (size_t)sp->x_numel * sizeof(float));
    if (!rc)
        rc = mltk_be_upload(be, s->yb, hy, (size_t)got * sp->yb_bytes);
    mltk_loader_release(s->data.ld, b);
    if (rc)
        return mltk_errf(err, rc, "cannot upload a batch: %s", mltk_backend_error(be));
    *rows = got;
    *x = s->xb;
    *y = s->yb;
    return MLTK_OK;
}
