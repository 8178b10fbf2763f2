/* components.c - the table of training components and the calls that walk it.
 *
 * What this is: the list of components (component.h), opened when the
 * session is built and closed when it is destroyed, and the functions the
 * loop calls at each of its points; the named state they keep in
 * checkpoints; the defaults of a section the config does not have, taken
 * from its descriptor in schema.c (the only place defaults are written).
 *
 * What this is not: any component's policy (one file each under train/).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "component.h"

/* ---- the table: registering a component is one line here ------------------------ */

/* Hooks run in this order: the run record and the logs first (an epoch is
 * written before it is acted on), the NaN policy after loss scaling (an
 * overflow the scaler handles is no NaN), early stopping before the
 * checkpoint of the epoch (which then holds the restored best weights). */
static const mltk_component_i *const table[] = {
    &mltk_component_run_record,
    &mltk_component_logs,
    &mltk_component_progress,
    &mltk_component_alerts,
    &mltk_component_loss_scale,
    &mltk_component_nan_policy,
    &mltk_component_early_stop,
    &mltk_component_checkpointing,
};
#define N_COMP ((int)(sizeof table / sizeof *table))

struct mltk_components {
    void          *self[N_COMP];
    mltk_desc     *desc[N_COMP];    /* a parsed schema for defaults, or NULL */
    mltk_params_t *defaults[N_COMP];
};

void *mltk_component_self(const mltk_session_t *s, const mltk_component_i *c)
{
    for (int i = 0; s->components && i < N_COMP; i++)
        if (table[i] == c)
            return s->components->self[i];
    return NULL;
}

/* ---- named state ------------------------------------------------------------------ */

int mltk_kv_put(mltk_kv *kv, const char *key, const char *fmt, ...)
{
    if (kv->n == kv->cap) {
        int cap = kv->cap ? 2 * kv->cap : 16;
        char **m = realloc(kv->kv, (size_t)cap * 2 * sizeof(*m));
        if (!m)
            return MLTK_ERR_NOMEM;
        kv->kv = m;
        kv->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *v = NULL;
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n >= 0 && (v = malloc((size_t)n + 1))) {
        va_start(ap, fmt);
        vsnprintf(v, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    char *k = mltk_strdup(key);
    if (!v || !k) {
        free(v);
        free(k);
        return MLTK_ERR_NOMEM;
    }
    kv->kv[2 * kv->n] = k;
    kv->kv[2 * kv->n + 1] = v;
    kv->n++;
    return MLTK_OK;
}

void mltk_kv_free(mltk_kv *kv)
{
    for (int i = 0; i < 2 * kv->n; i++)
        free(kv->kv[i]);
    free(kv->kv);
    kv->kv = NULL;
    kv->n = kv->cap = 0;
}

const char *mltk_kv_get(const mltk_kv *kv, const char *key)
{
    for (int i = kv->n - 1; i >= 0; i--)
        if (strcmp(kv->kv[2 * i], key) == 0)
            return kv->kv[2 * i + 1];
    return NULL;
}

static int kv_need(const mltk_kv *kv, const char *key, const char **v, char **err)
{
    *v = mltk_kv_get(kv, key);
    if (!*v)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: not an mltk checkpoint: no '%s' in its "
                         "metadata", kv->path ? kv->path : "(state)", key);
    return MLTK_OK;
}

int mltk_kv_i64(const mltk_kv *kv, const char *key, int64_t max, int64_t *out, char **err)
{
    const char *v;
    int rc = kv_need(kv, key, &v, err);
    if (rc)
        return rc;
    char *end;
    errno = 0;
    long long x = *v >= '0' && *v <= '9' ? strtoll(v, &end, 10) : -1;
    if (x < 0 || errno || *end || x > max)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: metadata '%s' is not a whole number from 0 "
                         "to %" PRId64 ": '%s'", kv->path ? kv->path : "(state)", key, max, v);
    *out = x;
    return MLTK_OK;
}

int mltk_kv_f64(const mltk_kv *kv, const char *key, double *out, char **err)
{
    const char *v;
    int rc = kv_need(kv, key, &v, err);
    if (rc)
        return rc;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || isnan(x))
        return mltk_errf(err, MLTK_ERR_DATA, "%s: metadata '%s' is not a number: '%s'",
                         kv->path ? kv->path : "(state)", key, v);
    *out = x;
    return MLTK_OK;
}

/* ---- opening and closing ------------------------------------------------------------ */

/* The section's values, or its schema's defaults when the config has none. */
static int section_params(mltk_session_t *s, int i, const mltk_section **sec,
                          const mltk_params_t **p, char **err)
{
    const mltk_component_i *c = table[i];
    *sec = c->section ? mltk_config_section(s->cfg, c->section) : NULL;
    *p = *sec ? (*sec)->params : NULL;
    if (*p || !c->schema)
        return MLTK_OK;
    struct mltk_components *cs = s->components;
    char origin[64];
    snprintf(origin, sizeof origin, "(built-in schema [%s])", c->section);
    int rc = mltk_desc_parse(&cs->desc[i], c->schema, origin, err);
    const mltk_desc *descs[1] = { cs->desc[i] };
    if (!rc)
        rc = mltk_params_build(&cs->defaults[i], descs, 1, 0, NULL, NULL, NULL, s->cfg->path,
                               0, c->section, err);
    *p = cs->defaults[i];
    return rc;
}

int mltk_components_open(mltk_session_t *s, char **err)
{
    s->components = calloc(1, sizeof(*s->components));
    s->stepper = calloc(1, sizeof(*s->stepper));
    if (!s->components || !s->stepper)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    s->stepper->grad_scale = 1.0f;
    for (int i = 0; i < N_COMP; i++) {
        const mltk_section *sec;
        const mltk_params_t *p;
        int rc = section_params(s, i, &sec, &p, err);
        if (!rc && table[i]->open)
            rc = table[i]->open(&s->components->self[i], s, sec, p, err);
        if (rc)
            return rc;
    }
    return MLTK_OK;
}

void mltk_components_close(mltk_session_t *s)
{
    struct mltk_components *cs = s->components;
    for (int i = N_COMP - 1; cs && i >= 0; i--) {
        if (table[i]->close && cs->self[i])
            table[i]->close(cs->self[i]);
        mltk_params_free(cs->defaults[i]);
        mltk_desc_free(cs->desc[i]);
    }
    free(cs);
    if (s->stepper)
        mltk_kv_free(&s->stepper->win_state);
    free(s->stepper);
    s->components = NULL;
    s->stepper = NULL;
}

/* ---- the loop's points ---------------------------------------------------------------- */

#define EACH(member, ...)                                                           \
    do {                                                                            \
        for (int i_ = 0; i_ < N_COMP && !rc; i_++)                                  \
            if (table[i_]->member && s->components->self[i_])                       \
                rc = table[i_]->member(s->components->self[i_], __VA_ARGS__);       \
    } while (0)

int mltk_components_train_begin(mltk_session_t *s, char **err)
{
    int rc = MLTK_OK;
    EACH(train_begin, s, err);
    return rc;
}

int mltk_components_sync_due(mltk_session_t *s, uint64_t step)
{
    int rc = 0;
    EACH(sync_due, s, step);
    return rc;
}

int mltk_components_step_end(mltk_session_t *s, const mltk_step_result *r, char **err)
{
    int rc = MLTK_OK;
    EACH(step_end, s, r, err);
    return rc;
}

int mltk_components_epoch_end(mltk_session_t *s, mltk_epoch_end *ee, char **err)
{
    int rc = MLTK_OK;
    EACH(epoch_end, s, ee, err);
    return rc;
}

int mltk_components_train_end(mltk_session_t *s, const char *status, char **err)
{
    int rc = MLTK_OK;
    for (int i = 0; s->components && i < N_COMP; i++)
        if (table[i]->train_end && s->components->self[i]) {
            int r2 = table[i]->train_end(s->components->self[i], s, status, rc ? NULL : err);
            rc = rc ? rc : r2;
        }
    return rc;
}

int mltk_components_save_state(mltk_session_t *s, mltk_kv *out)
{
    int rc = MLTK_OK;
    EACH(save_state, out);
    return rc;
}

int mltk_components_load_state(mltk_session_t *s, const mltk_kv *in, char **err)
{
    int rc = MLTK_OK;
    EACH(load_state, s, in, err);
    return rc;
}

/* ---- monitored metrics ------------------------------------------------------------------ */

double mltk_metric_of(const mltk_epoch_stats *e, const char *name)
{
    if (strcmp(name, "val_acc") == 0)
        return e->val_acc;
    if (strcmp(name, "train_loss") == 0)
        return e->train_loss;
    return e->val_loss;
}

int mltk_monitor_maximize(const char *monitor, const char *mode)
{
    if (strcmp(mode, "auto") == 0)
        return strcmp(monitor, "val_acc") == 0;
    return strcmp(mode, "max") == 0;
}

int mltk_metric_better(double v, double best, int maximize, double delta)
{
    if (!isfinite(v))
        return 0;
    return maximize ? v > best + delta : v < best - delta;
}
