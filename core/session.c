/* session.c - everything a config describes, built once: backend, data,
 * model, loss, optimizer, learning-rate schedule, gradient clipping,
 * per-layer rates (lr_mult, freeze) and their memory.
 *
 * What this is not: the loop that trains (train.c).  After
 * mltk_session_create returns, nothing else is allocated until destroy.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "session.h"

/* ---- backends ------------------------------------------------------------------- */

int mltk_backend_open(struct mltk_backend *be, mltk_registry_t *reg, const char *name,
                      const mltk_backend_opts *opts, char **err)
{
    const struct mltk_backend_i *bi = NULL;
    memset(be, 0, sizeof(*be));
    int rc = mltk_registry_load(reg, name, MLTK_KIND_BACKEND, (const void **)&bi, err);
    if (rc)
        return rc;
    if (bi->size < offsetof(struct mltk_backend_i, get_proc))
        return mltk_errf(err, MLTK_ERR_ABI, "backend '%s': vtable too small (%u bytes)",
                         name, bi->size);
    char *why = NULL;
    if (!bi->probe(&why)) {
        rc = mltk_errf(err, MLTK_ERR_BACKEND, "%s", why ? why : "probe failed");
        free(why);
        return rc;
    }
    free(why);
    void *ctx = NULL;
    char *cerr = NULL;
    rc = bi->create(&ctx, opts, &cerr);
    if (rc) {
        mltk_errf(err, rc, "%s", cerr ? cerr : mltk_status_str(rc));
        free(cerr);
        return rc;
    }
    be->i = bi;
    be->ctx = ctx;
    be->name = name;
    return MLTK_OK;
}

void mltk_backend_close(struct mltk_backend *be)
{
    if (be->i && be->ctx)
        be->i->destroy(be->ctx);
    memset(be, 0, sizeof(*be));
}

/* `backend = cuda, cpu`: the first that loads, probes and starts. */
static int select_backend(mltk_session_t *s, const mltk_section *run, char **err)
{
    const char *list = run ? mltk_params_str(run->params, "backend") : "cpu";
    mltk_backend_opts o = { .size = sizeof(o), .device = 0 };
    o.threads = run ? (int)mltk_params_int(run->params, "threads") : 0;
    o.seed = s->seed;
    char skipped[1024] = "";
    size_t used = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char name[64];
        while (len && (*p == ' ' || *p == '\t')) { p++; len--; }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (len && len < sizeof name) {
            memcpy(name, p, len);
            name[len] = 0;
            char *why = NULL;
            const mltk_desc *d = NULL;
            int rc = mltk_registry_find(s->reg, name, MLTK_KIND_BACKEND, &d, NULL);
            if (rc) {
                why = mltk_strdup("not installed");
            } else {
                rc = mltk_backend_open(&s->be, s->reg, d->name, &o, &why);
            }
            if (rc == MLTK_OK) {
                s->have_be = 1;
                mltk_log(MLTK_LOG_INFO, "backend: %s (%s)%s%s", name,
                         s->be.i->device_name ? s->be.i->device_name(s->be.ctx) : name,
                         used ? "; skipped " : "", skipped);
                return MLTK_OK;
            }
            used += (size_t)snprintf(skipped + used, used < sizeof skipped ? sizeof skipped - used : 0,
                                     "%s%s: %s", used ? "; " : "", name, why ? why : "failed");
            if (used >= sizeof skipped)
                used = sizeof skipped - 1;
            free(why);
        }
        if (!e)
            break;
        p = e + 1;
    }
    return mltk_errf(err, MLTK_ERR_BACKEND, "%s: no usable backend in '%s' (%s)",
                     run ? mltk_params_where(run->params) : s->cfg->path, list, skipped);
}

/* ---- loss and optimizer ----------------------------------------------------------- */

static int open_loss(mltk_session_t *s, char **err)
{
    const mltk_section *sec = mltk_config_section(s->cfg, "loss");
    const char *type = mltk_params_str(sec->params, "type");
    char *perr = NULL;
    int rc = mltk_registry_load(s->reg, type, MLTK_KIND_LOSS, (const void **)&s->loss, err);
    if (rc) {
        mltk_err_prefix(err, "%s", mltk_params_where(sec->params));
        return rc;
    }
    rc = s->loss->create(&s->loss_self, sec->params, &perr);
    if (!rc)
        rc = s->loss->setup(s->loss_self, mltk_model_output_shape(s->model),
                            s->train.info.target, &s->train.info.y_shape,
                            s->train.info.n_classes, &perr);
    if (rc) {
        mltk_errf(err, rc, "%s: %s", mltk_params_where(sec->params),
                  perr ? perr : mltk_status_str(rc));
        free(perr);
    }
    return rc;
}

static int open_optimizer(mltk_session_t *s, char **err)
{
    const mltk_section *sec = mltk_config_section(s->cfg, "optimizer");
    const char *type = mltk_params_str(sec->params, "type");
    char *perr = NULL;
    int rc = mltk_registry_load(s->reg, type, MLTK_KIND_OPTIMIZER, (const void **)&s->opt, err);
    if (rc) {
        mltk_err_prefix(err, "%s", mltk_params_where(sec->params));
        return rc;
    }
    rc = s->opt->create(&s->opt_self, sec->params, &perr);
    if (rc) {
        mltk_errf(err, rc, "%s: %s", mltk_params_where(sec->params),
                  perr ? perr : mltk_status_str(rc));
        free(perr);
        return rc;
    }
    s->lr = mltk_params_has(sec->params, "lr") ? mltk_params_float(sec->params, "lr") : 0.0;
    s->opt_step2 = s->opt->size >= offsetof(struct mltk_optimizer_i, step2)
                                   + sizeof(s->opt->step2) && s->opt->step2;
    s->opt_slots = s->opt->state_slots(s->opt_self);
    if (s->opt_slots < 0 || s->opt_slots > 8)
        return mltk_errf(err, MLTK_ERR_PLUGIN, "optimizer '%s' asks for %d state slots (0..8)",
                         type, s->opt_slots);
    int64_t n;
    mltk_model_params(s->model, &n);
    for (int i = 0; i < s->opt_slots; i++) {
        void *p = NULL;
        if (s->be.i->alloc(s->be.ctx, (size_t)n * sizeof(float), &p))
            return mltk_errf(err, MLTK_ERR_NOMEM, "cannot allocate optimizer state");
        s->opt_state[i] = p;
        rc = s->be.i->fill(s->be.ctx, p, 0.0f, n);
        if (rc)
            return rc;
    }
    return MLTK_OK;
}

/* ---- per-layer rates and gradient clipping ---------------------------------------- */

/* The step2 scratch, and the per-element rate factor when a layer has
 * lr_mult != 1 or freeze = true (each tensor's segment, padding included,
 * filled with its factor; NULL otherwise, the optimizers' fast path). */
static int setup_rates(mltk_session_t *s, char **err)
{
    const struct mltk_backend_i *b = s->be.i;
    int n_seg = 0;
    int64_t n;
    mltk_model_params(s->model, &n);
    s->seg_off = mltk_model_segments(s->model, &n_seg);
    s->n_seg = n_seg;
    int scaled = 0;
    for (int i = 0; i < n_seg; i++) {
        scaled |= mltk_model_segment_lr_mult(s->model, i) != 1.0;
        s->any_frozen |= mltk_model_segment_frozen(s->model, i);
    }
    if (s->opt_step2 && b->alloc(s->be.ctx, (size_t)(2 * n_seg + 2) * sizeof(float),
                                 (void **)&s->opt_scratch))
        return mltk_errf(err, MLTK_ERR_NOMEM, "cannot allocate optimizer scratch");
    if (!scaled)
        return MLTK_OK;
    const mltk_section *sec = mltk_config_section(s->cfg, "optimizer");
    if (!s->opt_step2)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "%s: lr_mult and freeze need an optimizer with a per-element rate "
                         "(ABI 1.1 step2), which '%s' lacks", mltk_params_where(sec->params),
                         mltk_params_str(sec->params, "type"));
    if (b->alloc(s->be.ctx, (size_t)(n > 0 ? n : 1) * sizeof(float), (void **)&s->lr_scale))
        return mltk_errf(err, MLTK_ERR_NOMEM, "cannot allocate the per-layer rates");
    for (int i = 0; i < n_seg; i++) {
        int rc = b->fill(s->be.ctx, s->lr_scale + s->seg_off[i],
                         (float)mltk_model_segment_lr_mult(s->model, i),
                         s->seg_off[i + 1] - s->seg_off[i]);
        if (rc)
            return mltk_errf(err, rc, "filling the per-layer rates failed: %s",
                             mltk_status_str(rc));
    }
    return MLTK_OK;
}

static int setup_clipping(mltk_session_t *s, const mltk_section *train, char **err)
{
    s->clip_norm = train ? mltk_params_float(train->params, "clip_norm") : 0.0;
    s->clip_value = train ? mltk_params_float(train->params, "clip_value") : 0.0;
    if ((s->clip_norm > 0.0 && (!MLTK_BACKEND_HAS(&s->be, scale_to_norm)
                                || !s->be.i->sumsq)) ||
        (s->clip_value > 0.0 && !MLTK_BACKEND_HAS(&s->be, clamp)))
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED,
                         "%s: backend '%s' cannot clip gradients (no %s op)",
                         mltk_params_where(train->params), s->be.name,
                         s->clip_norm > 0.0 ? "scale_to_norm" : "clamp");
    return MLTK_OK;
}

/* ---- the learning-rate schedule -------------------------------------------------- */

/* config line of `key` in p, 0 if it was not written */
static int key_line(const mltk_params_t *p, const char *key)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->defs[i]->name, key) == 0)
            return p->lines ? p->lines[i] : 0;
    return 0;
}

int mltk_sched_open(mltk_sched *sc, const mltk_config_t *cfg, mltk_registry_t *reg,
                    double lr, int64_t batch_size, int64_t steps_per_epoch, int epochs,
                    char **err)
{
    memset(sc, 0, sizeof(*sc));
    sc->warmup_start = 1.0;
    sc->st.base_lr = lr;
    sc->st.steps_per_epoch = steps_per_epoch;
    sc->st.total_steps = (int64_t)epochs * steps_per_epoch;
    const mltk_section *sec = mltk_config_section(cfg, "schedule");
    if (!sec)
        return MLTK_OK;
    const mltk_params_t *p = sec->params;
    const char *type = sec->plugin ? sec->plugin->name : mltk_params_str(p, "type");
    int64_t ws = mltk_params_int(p, "warmup_steps"), we = mltk_params_int(p, "warmup_epochs");
    double start = mltk_params_float(p, "warmup_start_factor");
    if (ws > 0 && we > 0)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "%s:%d: [schedule]: set warmup_steps or warmup_epochs, not both",
                         cfg->path, key_line(p, "warmup_epochs"));
    if (!(start > 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "%s:%d: [schedule]: key 'warmup_start_factor' must be > 0 (the warm-up "
                         "starts at this fraction of the rate), got %g", cfg->path,
                         key_line(p, "warmup_start_factor"), start);
    sc->warmup_steps = we > 0 ? we * steps_per_epoch : ws;
    sc->warmup_start = start;
    if (strcmp(mltk_params_str(p, "scale_lr"), "linear") == 0) {
        sc->st.base_lr = lr * (double)batch_size / 256.0;
        mltk_log(MLTK_LOG_INFO, "schedule: lr %g per 256 samples is %g for batches of %lld",
                 lr, sc->st.base_lr, (long long)batch_size);
    }
    int rc = mltk_registry_load(reg, type, MLTK_KIND_SCHEDULE, (const void **)&sc->i, err);
    if (rc) {
        mltk_err_prefix(err, "%s", mltk_params_where(p));
        return rc;
    }
    char *perr = NULL;
    rc = sc->i->create(&sc->self, p, &perr);
    if (rc) {
        mltk_errf(err, rc, "%s: %s", mltk_params_where(p), perr ? perr : mltk_status_str(rc));
        free(perr);
        sc->i = NULL;
        sc->self = NULL;
    }
    return rc;
}

void mltk_sched_close(mltk_sched *sc)
{
    if (sc->i && sc->i->destroy && sc->self)
        sc->i->destroy(sc->self);
    sc->i = NULL;
    sc->self = NULL;
}

/* ---- data augmentation ------------------------------------------------------------ */

/* [data] augment_shift / augment_flip: images only, and only on a
 * backend with the augmenting gather. */
static int setup_augment(mltk_session_t *s, const mltk_section *data, char **err)
{
    s->aug_shift = mltk_params_int(data->params, "augment_shift");
    s->aug_flip = mltk_params_bool(data->params, "augment_flip");
    if (!s->aug_shift && !s->aug_flip)
        return MLTK_OK;
    const char *key = s->aug_shift ? "augment_shift" : "augment_flip";
    if (s->train.info.x_shape.ndim != 3)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "%s:%d: %s applies to images (C, H, W); these samples have %d "
                         "dimension(s)", s->cfg->path, key_line(data->params, key), key,
                         s->train.info.x_shape.ndim);
    if (!MLTK_BACKEND_HAS(&s->be, gather_augment_2d))
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED,
                         "%s:%d: backend '%s' cannot augment images (no gather_augment_2d)",
                         s->cfg->path, key_line(data->params, key), s->be.name);
    return MLTK_OK;
}

/* ---- the session ------------------------------------------------------------------ */

int mltk_session_create(mltk_session_t **out, mltk_config_t *cfg, mltk_registry_t *reg,
                        const mltk_session_opts *opts, char **err)
{
    mltk_session_t *s = calloc(1, sizeof(*s));
    if (!s)
        return MLTK_ERR_NOMEM;
    s->cfg = cfg;
    s->reg = reg;
    if (opts)
        s->opts = *opts;
    const mltk_section *run = mltk_config_section(cfg, "run");
    const mltk_section *train = mltk_config_section(cfg, "train");
    const mltk_section *data = mltk_config_section(cfg, "data");
    const mltk_section *log = mltk_config_section(cfg, "log");
    s->seed = run ? (uint64_t)mltk_params_int(run->params, "seed") : 0;
    s->batch_size = train ? mltk_params_int(train->params, "batch_size") : 32;
    s->epochs = train ? (int)mltk_params_int(train->params, "epochs") : 10;
    s->shuffle = train ? mltk_params_bool(train->params, "shuffle") : 1;
    if (s->opts.epochs > 0)
        s->epochs = s->opts.epochs;
    /* --quiet/--verbose, else a [log] level the user wrote, else the
     * environment's (MLTK_LOG_LEVEL) or the default */
    if (s->opts.log_level > 0) {
        mltk_log_set_level((mltk_log_level)(s->opts.log_level - 1));
    } else if (log && mltk_params_set(log->params, "level")) {
        static const char *const levels[] = { "error", "warn", "info", "debug" };
        for (int i = 0; i < 4; i++)
            if (strcmp(mltk_params_str(log->params, "level"), levels[i]) == 0)
                mltk_log_set_level((mltk_log_level)i);
    }

    int rc = select_backend(s, run, err);
    if (!rc)
        rc = mltk_split_load(&s->train, data, reg, &s->be, "train",
                             mltk_params_int(data->params, "train_limit"), err);
    if (!rc)
        rc = mltk_split_load(&s->test, data, reg, &s->be, "test",
                             mltk_params_int(data->params, "test_limit"), err);
    if (!rc && !mltk_shape_equal(&s->train.info.x_shape, &s->test.info.x_shape))
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: train and test samples differ in shape",
                       mltk_params_where(data->params));
    if (!rc)
        rc = setup_augment(s, data, err);
    if (!rc)
        rc = mltk_model_create(&s->model, cfg, reg, &s->be, &s->train.info.x_shape,
                               s->batch_size, s->seed, err);
    if (!rc)
        rc = open_loss(s, err);
    if (!rc)
        rc = open_optimizer(s, err);
    if (!rc)
        rc = setup_rates(s, err);
    if (!rc)
        rc = setup_clipping(s, train, err);
    if (!rc) {
        s->steps_per_epoch = (s->train.n + s->batch_size - 1) / s->batch_size;
        rc = mltk_sched_open(&s->sched, cfg, reg, s->lr, s->batch_size, s->steps_per_epoch,
                             s->epochs, err);
    }
    if (!rc) {
        size_t xb = (size_t)s->batch_size * (size_t)s->train.x_numel * sizeof(float);
        size_t yb = (size_t)s->batch_size * s->train.y_bytes;
        if (s->be.i->alloc(s->be.ctx, xb, (void **)&s->xb) ||
            s->be.i->alloc(s->be.ctx, yb, &s->yb) ||
            s->be.i->alloc(s->be.ctx, 8 * sizeof(float), (void **)&s->scalars))
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "cannot allocate batch buffers");
    }
    if (rc) {
        mltk_session_destroy(s);
        return rc;
    }
    *out = s;
    return MLTK_OK;
}

int mltk_session_print_summary(mltk_session_t *s, void *out)
{
    FILE *f = out ? out : stdout;
    fprintf(f, "backend: %s\n", s->be.i->device_name ? s->be.i->device_name(s->be.ctx) : s->be.name);
    fprintf(f, "data: %lld training, %lld test samples\n", (long long)s->train.n,
            (long long)s->test.n);
    mltk_model_print(s->model, f);
    return MLTK_OK;
}

void mltk_session_destroy(mltk_session_t *s)
{
    if (!s)
        return;
    if (s->jsonl)
        fclose(s->jsonl);
    mltk_ops_free(s);
    if (s->have_be) {
        struct mltk_backend *be = &s->be;
        for (int i = 0; i < s->opt_slots && i < 8; i++)
            if (s->opt_state[i])
                be->i->free(be->ctx, s->opt_state[i]);
        if (s->xb) be->i->free(be->ctx, s->xb);
        if (s->yb) be->i->free(be->ctx, s->yb);
        if (s->scalars) be->i->free(be->ctx, s->scalars);
        if (s->lr_scale) be->i->free(be->ctx, s->lr_scale);
        if (s->opt_scratch) be->i->free(be->ctx, s->opt_scratch);
        mltk_model_destroy(s->model);
        mltk_split_free(&s->train, be);
        mltk_split_free(&s->test, be);
    }
    if (s->loss && s->loss_self && s->loss->destroy)
        s->loss->destroy(s->loss_self);
    if (s->opt && s->opt_self && s->opt->destroy)
        s->opt->destroy(s->opt_self);
    mltk_sched_close(&s->sched);
    if (s->have_be)
        mltk_backend_close(&s->be);
    free(s);
}
