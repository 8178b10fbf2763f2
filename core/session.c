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
#include <inttypes.h>

#include "session.h"
#include "op.h"
#include "train/component.h"

/* ---- backends ------------------------------------------------------------------- */

int mltk_backend_open(struct mltk_backend *be, mltk_registry_t *reg, const char *name,
                      const mltk_backend_opts *opts, char **err)
{
    const struct mltk_backend_i *bi = NULL;
    memset(be, 0, sizeof(*be));
    int rc = mltk_registry_load(reg, name, MLTK_KIND_BACKEND, (const void **)&bi, err);
    if (rc)
        return rc;
    /* the registry checked the same; a backend opened here is never
     * asked for a member it does not have */
    size_t need = offsetof(struct mltk_backend_i, run) + sizeof(bi->run);
    if (bi->size < need)
        return mltk_errf(err, MLTK_ERR_ABI, "backend '%s': vtable too small (%u bytes, ABI "
                         "%d.0 needs at least %zu); rebuild it against mltk %d headers", name,
                         bi->size, MLTK_ABI_MAJOR, need, MLTK_ABI_MAJOR);
    if (!bi->supports || !bi->run)
        return mltk_errf(err, MLTK_ERR_ABI, "backend '%s': its vtable has no '%s' (every ABI "
                         "%d backend runs the op table through supports and run)", name,
                         bi->supports ? "run" : "supports", MLTK_ABI_MAJOR);
    char *why = NULL;
    if (!bi->probe(opts, &why)) {
        rc = mltk_errf(err, MLTK_ERR_BACKEND, "%s", why ? why : "probe failed");
        free(why);
        return rc;
    }
    free(why);
    struct mltk_backend_state *st = mltk_backend_state_new();
    if (!st)
        return mltk_errf(err, MLTK_ERR_NOMEM, "backend '%s': out of memory", name);
    void *ctx = NULL;
    char *cerr = NULL;
    rc = bi->create(&ctx, opts, &cerr);
    if (rc) {
        mltk_errf(err, rc, "%s", cerr ? cerr : mltk_status_str(rc));
        free(cerr);
        mltk_backend_state_free(st);
        return rc;
    }
    be->i = bi;
    be->ctx = ctx;
    be->name = name;
    be->state = st;
    return MLTK_OK;
}

void mltk_backend_close(struct mltk_backend *be)
{
    if (be->i && be->ctx)
        be->i->destroy(be->ctx);
    mltk_backend_state_free(be->state);
    memset(be, 0, sizeof(*be));
}

/* `backend = cuda, cpu`: the first that loads, probes and starts. */
static int select_backend(mltk_session_t *s, const mltk_section *run, char **err)
{
    const char *list = run ? mltk_params_str(run->params, "backend") : "cpu";
    mltk_backend_opts o = { .size = sizeof(o), .device = 0 };
    o.threads = run ? (int)mltk_params_int(run->params, "threads") : 0;
    o.tf32 = run ? mltk_params_bool(run->params, "tf32") : 0;  /* GPU backends only */
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

/* The ops the core runs itself (initialisation, batches, sums, checks),
 * asked of the backend before anything is built so that a backend that
 * lacks one is refused with its name rather than at the first step. */
static int check_core_ops(mltk_session_t *s, char **err)
{
    static const mltk_op f32_ops[] = {
        MLTK_OP_FILL, MLTK_OP_AXPBY, MLTK_OP_SUMSQ, MLTK_OP_NONFINITE,
        MLTK_OP_GATHER_ROWS, MLTK_OP_RNG_UNIFORM, MLTK_OP_RNG_NORMAL,
    };
    int classify = s->train.info.target == MLTK_TARGET_CLASS;
    mltk_op op = MLTK_OP_NONE;
    mltk_dtype dt = MLTK_F32;
    for (size_t i = 0; i < sizeof f32_ops / sizeof *f32_ops && op == MLTK_OP_NONE; i++)
        if (!mltk_op_supported(&s->be, f32_ops[i], MLTK_F32))
            op = f32_ops[i];
    if (op == MLTK_OP_NONE && classify
        && !mltk_op_supported(&s->be, MLTK_OP_COUNT_CORRECT, MLTK_F32))
        op = MLTK_OP_COUNT_CORRECT;
    if (op == MLTK_OP_NONE && classify
        && !mltk_op_supported(&s->be, MLTK_OP_GATHER_ROWS, MLTK_I32)) {
        op = MLTK_OP_GATHER_ROWS;
        dt = MLTK_I32;
    }
    if (op == MLTK_OP_NONE)
        return MLTK_OK;
    return mltk_errf(err, MLTK_ERR_UNSUPPORTED, "%s: backend '%s' does not run op %s in %s, "
                     "which training needs", s->cfg->path, s->be.name, mltk_op_name(op),
                     mltk_dtype_name(dt));
}

/* Class labels against the model's output: every label of both splits
 * must index a logit (the data set's n_classes may be 0, and the test
 * split's labels were only checked against its own). */
static int check_labels(mltk_session_t *s, const mltk_section *data, char **err)
{
    const mltk_shape *out = mltk_model_output_shape(s->model);
    if (s->train.info.target != MLTK_TARGET_CLASS || out->ndim != 1)
        return MLTK_OK;
    const mltk_split *sp[3] = { &s->train, &s->val, &s->test };
    for (int i = 0; i < 3; i++)
        if (sp[i]->n && sp[i]->label_max >= out->dim[0])
            return mltk_errf(err, MLTK_ERR_DATA, "%s: %s split: sample %" PRId64 " has "
                             "label %" PRId32 ", but the model has %" PRId64 " outputs "
                             "(classes 0..%" PRId64 ")", mltk_params_where(data->params),
                             sp[i]->name, sp[i]->label_max_at, sp[i]->label_max, out->dim[0],
                             out->dim[0] - 1);
    return MLTK_OK;
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
    s->opt_slots = s->opt->state_slots(s->opt_self);
    if (s->opt_slots < 0 || s->opt_slots > 8)
        return mltk_errf(err, MLTK_ERR_PLUGIN, "optimizer '%s' asks for %d state slots (0..8)",
                         type, s->opt_slots);
    int64_t n;
    mltk_model_params(s->model, &n);
    for (int i = 0; i < s->opt_slots; i++) {
        void *p = NULL;
        if (mltk_be_alloc(&s->be, (size_t)(n > 0 ? n : 1) * sizeof(float), &p))
            return mltk_errf(err, MLTK_ERR_NOMEM, "cannot allocate optimizer state: %s",
                             mltk_backend_error(&s->be));
        s->opt_state[i] = p;
        mltk_tensor t = mltk_tensor_1d(p, MLTK_F32, n);
        rc = n > 0 ? mltk_op_fill(&s->be, &t, 0.0f) : MLTK_OK;
        if (rc)
            return mltk_errf(err, rc, "cannot zero the optimizer state: %s",
                             mltk_backend_error(&s->be));
    }
    return MLTK_OK;
}

/* ---- per-layer rates and gradient clipping ---------------------------------------- */

/* The optimizer's scratch (2 floats per parameter tensor), and the
 * per-element rate factor when a layer has lr_mult != 1 or freeze = true
 * (each tensor's segment, padding included, filled with its factor; NULL
 * otherwise, the optimizers' fast path). */
static int setup_rates(mltk_session_t *s, char **err)
{
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
    if (mltk_be_alloc(&s->be, (size_t)(2 * n_seg + 2) * sizeof(float),
                      (void **)&s->opt_scratch))
        return mltk_errf(err, MLTK_ERR_NOMEM, "cannot allocate optimizer scratch: %s",
                         mltk_backend_error(&s->be));
    if (!scaled)
        return MLTK_OK;
    if (mltk_be_alloc(&s->be, (size_t)(n > 0 ? n : 1) * sizeof(float), (void **)&s->lr_scale))
        return mltk_errf(err, MLTK_ERR_NOMEM, "cannot allocate the per-layer rates: %s",
                         mltk_backend_error(&s->be));
    for (int i = 0; i < n_seg; i++) {
        mltk_tensor seg = mltk_tensor_1d(s->lr_scale + s->seg_off[i], MLTK_F32,
                                         s->seg_off[i + 1] - s->seg_off[i]);
        int rc = mltk_op_fill(&s->be, &seg, (float)mltk_model_segment_lr_mult(s->model, i));
        if (rc)
            return mltk_errf(err, rc, "filling the per-layer rates failed: %s",
                             mltk_backend_error(&s->be));
    }
    return MLTK_OK;
}

static int setup_clipping(mltk_session_t *s, const mltk_section *train, char **err)
{
    s->clip_norm = train ? mltk_params_float(train->params, "clip_norm") : 0.0;
    s->clip_value = train ? mltk_params_float(train->params, "clip_value") : 0.0;
    mltk_op lacking = MLTK_OP_NONE;
    if (s->clip_value > 0.0 && !mltk_op_supported(&s->be, MLTK_OP_CLAMP, MLTK_F32))
        lacking = MLTK_OP_CLAMP;
    if (s->clip_norm > 0.0 && !mltk_op_supported(&s->be, MLTK_OP_SCALE_TO_NORM, MLTK_F32))
        lacking = MLTK_OP_SCALE_TO_NORM;
    if (lacking != MLTK_OP_NONE)
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED,
                         "%s: backend '%s' cannot clip gradients (it does not run op %s in "
                         "f32)", mltk_params_where(train->params), s->be.name,
                         mltk_op_name(lacking));
    return MLTK_OK;
}

/* ---- the window of steps read back at once ---------------------------------------- */

/* The host side of the per-step records and, when a window holds more
 * than one step, the device copy of everything a step changes, taken at
 * the start of each window: a non-finite step found when the window is
 * read back sends the run back there (train.c). */
static int setup_window(mltk_session_t *s, char **err)
{
    s->win = calloc((size_t)s->check_every, sizeof(*s->win));
    s->win_host = calloc((size_t)(MLTK_SCALARS_HEAD + 3 * s->check_every), sizeof(float));
    if (!s->win || !s->win_host)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    if (s->check_every == 1)
        return MLTK_OK;
    int64_t n;
    mltk_model_params(s->model, &n);
    int64_t total = n * (1 + s->opt_slots) + 1;
    int nt = mltk_model_n_tensors(s->model);
    for (int i = 0; i < nt; i++) {
        mltk_model_named t;
        if (!mltk_model_tensor(s->model, i, &t) && t.state)
            total += mltk_shape_numel(&t.shape);
    }
    s->snap_n = total;
    if (mltk_be_alloc(&s->be, (size_t)total * sizeof(float), (void **)&s->snap))
        return mltk_errf(err, MLTK_ERR_NOMEM, "cannot allocate the copy of the training state "
                         "(%lld floats) that [train] check_every = %lld keeps; check_every = 1 "
                         "needs none: %s", (long long)total, (long long)s->check_every,
                         mltk_backend_error(&s->be));
    return MLTK_OK;
}

/* ---- the learning-rate schedule -------------------------------------------------- */

/* config line of `key` in p, 0 if it was not written */
int mltk_params_key_line(const mltk_params_t *p, const char *key)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->defs[i]->name, key) == 0)
            return p->lines ? p->lines[i] : 0;
    return 0;
}

static int key_line(const mltk_params_t *p, const char *key)
{
    return mltk_params_key_line(p, key);
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
    s->check_every = train ? mltk_params_int(train->params, "check_every") : 50;
    if (s->check_every < 1)
        s->check_every = 1;
    s->replay_to = -1;
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
        rc = mltk_data_open(s, data, err);
    if (!rc)
        rc = check_core_ops(s, err);
    if (!rc)
        rc = mltk_model_create(&s->model, cfg, reg, &s->be, &s->train.info.x_shape,
                               s->batch_size, s->seed, err);
    if (!rc)
        rc = open_loss(s, err);
    if (!rc)
        rc = check_labels(s, data, err);
    if (!rc)
        rc = open_optimizer(s, err);
    if (!rc)
        rc = setup_rates(s, err);
    if (!rc)
        rc = setup_clipping(s, train, err);
    if (!rc) {
        s->steps_per_epoch = mltk_data_batches(s, &s->train);
        rc = mltk_sched_open(&s->sched, cfg, reg, s->lr, s->batch_size, s->steps_per_epoch,
                             s->epochs, err);
    }
    if (!rc) {
        size_t xb = (size_t)s->batch_size * (size_t)s->train.x_numel * sizeof(float);
        size_t yb = (size_t)s->batch_size * s->train.yb_bytes;
        size_t nsc = (size_t)(MLTK_SCALARS_HEAD + 3 * s->check_every);
        if (mltk_be_alloc(&s->be, xb, (void **)&s->xb) ||
            mltk_be_alloc(&s->be, yb, &s->yb) ||
            mltk_be_alloc(&s->be, nsc * sizeof(float), (void **)&s->scalars))
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "cannot allocate batch buffers: %s",
                           mltk_backend_error(&s->be));
    }
    if (!rc)
        rc = setup_window(s, err);
    if (!rc)
        rc = mltk_components_open(s, err);
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
    if (s->val.n)
        fprintf(f, "data: %lld training, %lld validation, %lld test samples\n",
                (long long)s->train.n, (long long)s->val.n, (long long)s->test.n);
    else
        fprintf(f, "data: %lld training, %lld test samples\n", (long long)s->train.n,
                (long long)s->test.n);
    mltk_model_print(s->model, f);
    return MLTK_OK;
}

void mltk_session_destroy(mltk_session_t *s)
{
    if (!s)
        return;
    mltk_components_close(s);
    mltk_ops_free(s);
    if (s->have_be) {
        struct mltk_backend *be = &s->be;
        for (int i = 0; i < s->opt_slots && i < 8; i++)
            if (s->opt_state[i])
                mltk_be_free(be, s->opt_state[i]);
        if (s->xb) mltk_be_free(be, s->xb);
        if (s->yb) mltk_be_free(be, s->yb);
        if (s->scalars) mltk_be_free(be, s->scalars);
        if (s->lr_scale) mltk_be_free(be, s->lr_scale);
        if (s->opt_scratch) mltk_be_free(be, s->opt_scratch);
        if (s->snap) mltk_be_free(be, s->snap);
        mltk_model_destroy(s->model);
        mltk_data_close(s);
    }
    if (s->loss && s->loss_self && s->loss->destroy)
        s->loss->destroy(s->loss_self);
    if (s->opt && s->opt_self && s->opt->destroy)
        s->opt->destroy(s->opt_self);
    mltk_sched_close(&s->sched);
    free(s->win);
    free(s->win_host);
    free(s->resumed);
    free(s->restored.resumed);
    if (s->have_be)
        mltk_backend_close(&s->be);
    free(s);
}
