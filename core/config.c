/* config.c - the user's training config: reading and strict validation.
 *
 * What this is: the loader of train.ini.  It reads the file (keeping its
 * text for run records), checks the section structure ([run], [train],
 * [log], [data], [layer.NAME]..., [loss], [optimizer], [schedule]), finds
 * the plugin each plugin-backed section names with `type` ([schedule]'s
 * defaults to `constant`), and validates every key
 * against the core's schema for the section plus the plugin's descriptor,
 * so that every mistake is one line "file:line: ..." before any plugin
 * code runs.
 * What this is not: the model builder.  Whether layer inputs exist, shapes
 * fit or a backend can run here is decided later (model.c, session.c).
 *
 * Lifetime: a config borrows the plugin descriptors of the registry it was
 * loaded with; destroy the config before the registry.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "schema.h"


/* ---- the sections a config may hold ----------------------------------------- */

typedef struct sec_kind {
    const char *name;     /* "run", ...; "layer" stands for layer.NAME */
    const char *schema;
    int         kind;     /* plugin kind named by `type`, 0 for none */
    int         required;
    const char *def_type; /* plugin used when `type` is absent, or NULL */
} sec_kind;

enum { SK_RUN, SK_TRAIN, SK_LOG, SK_DATA, SK_LAYER, SK_LOSS, SK_OPTIMIZER, SK_SCHEDULE,
       SK_CHECKPOINT, SK_MODEL, SK_EARLY_STOPPING, SK_METRICS, SK_ALERT, SK_TRANSFORM,
       N_SK };

static const sec_kind sec_kinds[N_SK] = {
    [SK_RUN]       = { "run", mltk_schema_run, 0, 0, NULL },
    [SK_TRAIN]     = { "train", mltk_schema_train, 0, 0, NULL },
    [SK_LOG]       = { "log", mltk_schema_log, 0, 0, NULL },
    [SK_DATA]      = { "data", mltk_schema_data, MLTK_KIND_DATASET, 1, NULL },
    [SK_LAYER]     = { "layer", mltk_schema_layer, MLTK_KIND_LAYER, 1, NULL },
    [SK_LOSS]      = { "loss", mltk_schema_loss, MLTK_KIND_LOSS, 1, NULL },
    [SK_OPTIMIZER] = { "optimizer", mltk_schema_optimizer, MLTK_KIND_OPTIMIZER, 1, NULL },
    [SK_SCHEDULE]  = { "schedule", mltk_schema_schedule, MLTK_KIND_SCHEDULE, 0, "constant" },
    [SK_CHECKPOINT] = { "checkpoint", mltk_schema_checkpoint, 0, 0, NULL },
    [SK_MODEL]     = { "model", mltk_schema_model, 0, 0, NULL },
    [SK_EARLY_STOPPING] = { "early_stopping", mltk_schema_early_stopping, 0, 0, NULL },
    [SK_METRICS]   = { "metrics", mltk_schema_metrics, 0, 0, NULL },
    [SK_ALERT]     = { "alert", mltk_schema_alert, 0, 0, NULL },
    [SK_TRANSFORM] = { "transform", mltk_schema_transform, MLTK_KIND_TRANSFORM, 0, NULL },
};

/* the sections named NAME.LABEL, one per label */
static int is_family(int sk)
{
    return sk == SK_LAYER || sk == SK_TRANSFORM;
}

/* The config with what it owns besides the public fields. */
typedef struct config_priv {
    struct mltk_config pub;    /* first: a mltk_config_t * points here */
    mltk_desc         *schema[N_SK];
} config_priv;

/* ---- reading: sections and their key/value pairs ----------------------------- */

typedef struct raw_sec {
    char  *name;
    int    line;
    int    sk;       /* SK_* */
    char **keys, **vals;
    int   *lines;
    int    n, cap;
} raw_sec;

typedef struct cparse {
    const char *path;
    raw_sec    *s;
    int         n, cap;
} cparse;

static void cparse_free(cparse *p)
{
    for (int i = 0; i < p->n; i++) {
        raw_sec *s = &p->s[i];
        for (int k = 0; k < s->n; k++) {
            free(s->keys[k]);
            free(s->vals[k]);
        }
        free(s->keys);
        free(s->vals);
        free(s->lines);
        free(s->name);
    }
    free(p->s);
}

static int is_ident(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* Which SK_* a header names; an error for anything else. */
static int classify(const char *path, int line, const char *name, int *sk, char **err)
{
    for (int k = 0; k < N_SK; k++) {
        if (!is_family(k) && strcmp(name, sec_kinds[k].name) == 0) {
            *sk = k;
            return MLTK_OK;
        }
    }
    if (strncmp(name, "layer.", 6) == 0) {
        const char *lname = name + 6;
        if (!is_ident(lname))
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "%s:%d: invalid layer name '%s' in [%s] (letters, digits "
                             "and '_', not starting with a digit)", path, line, lname, name);
        if (strcmp(lname, "data") == 0)
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "%s:%d: a layer cannot be named 'data' (the name stands for "
                             "the model's input)", path, line);
        *sk = SK_LAYER;
        return MLTK_OK;
    }
    if (strncmp(name, "transform.", 10) == 0) {
        if (!is_ident(name + 10))
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "%s:%d: invalid transform name '%s' in [%s] (letters, digits "
                             "and '_', not starting with a digit)", path, line, name + 10,
                             name);
        *sk = SK_TRANSFORM;
        return MLTK_OK;
    }
    if (strcmp(name, "layer") == 0)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "%s:%d: section [layer] needs a layer name, e.g. [layer.fc1]",
                         path, line);
    if (strcmp(name, "transform") == 0)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "%s:%d: section [transform] needs a name, e.g. [transform.flip]",
                         path, line);
    /* a near miss of "layer" before a dot or as the whole name */
    const char *dot = strchr(name, '.');
    char prefix[64];
    size_t plen = dot ? (size_t)(dot - name) : strlen(name);
    if (plen < sizeof prefix) {
        memcpy(prefix, name, plen);
        prefix[plen] = '\0';
        if (mltk_edit_distance(prefix, "layer") <= 2 && (dot || plen >= 5)) {
            if (dot && is_ident(dot + 1))
                return mltk_errf(err, MLTK_ERR_CONFIG,
                                 "%s:%d: unknown section [%s]; did you mean [layer.%s]?",
                                 path, line, name, dot + 1);
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "%s:%d: unknown section [%s]; did you mean [layer.NAME]?",
                             path, line, name);
        }
    }
    const char *names[N_SK];
    int n_names = 0;
    for (int i = 0; i < N_SK; i++)
        if (!is_family(i))
            names[n_names++] = sec_kinds[i].name;
    const char *hint = mltk_did_you_mean(name, names, n_names);
    if (hint)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "%s:%d: unknown section [%s]; did you mean [%s]?", path, line,
                         name, hint);
    return mltk_errf(err, MLTK_ERR_CONFIG,
                     "%s:%d: unknown section [%s] (sections: [run], [train], [log], "
                     "[data], [layer.NAME], [loss], [optimizer], [schedule], [checkpoint], "
                     "[model], [early_stopping], [metrics], [alert], [transform.NAME])", path, line,
                     name);
}

static int on_ini(void *user, int line, const char *section, const char *key,
                  const char *value, char **err)
{
    cparse *p = user;
    if (!key) {
        for (int i = 0; i < p->n; i++)
            if (strcmp(p->s[i].name, section) == 0)
                return mltk_errf(err, MLTK_ERR_CONFIG,
                                 "%s:%d: duplicate section [%s] (first on line %d)",
                                 p->path, line, section, p->s[i].line);
        int sk = 0;
        int rc = classify(p->path, line, section, &sk, err);
        if (rc)
            return rc;
        if (p->n == p->cap) {
            int cap = p->cap ? 2 * p->cap : 16;
            raw_sec *ns = realloc(p->s, (size_t)cap * sizeof *ns);
            if (!ns)
                return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", p->path);
            p->s = ns;
            p->cap = cap;
        }
        raw_sec *s = &p->s[p->n];
        memset(s, 0, sizeof *s);
        s->name = mltk_strdup(section);
        if (!s->name)
            return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", p->path);
        s->line = line;
        s->sk = sk;
        p->n++;
        return MLTK_OK;
    }
    if (!section || p->n == 0)  /* (the reader reports a header before its keys) */
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "%s:%d: key '%s' outside any section (put it under a [section] "
                         "header)", p->path, line, key);
    raw_sec *s = &p->s[p->n - 1];
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        char **nk = realloc(s->keys, (size_t)cap * sizeof *nk);
        if (nk)
            s->keys = nk;
        char **nv = realloc(s->vals, (size_t)cap * sizeof *nv);
        if (nv)
            s->vals = nv;
        int *nl = realloc(s->lines, (size_t)cap * sizeof *nl);
        if (nl)
            s->lines = nl;
        if (!nk || !nv || !nl)
            return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", p->path);
        s->cap = cap;
    }
    s->keys[s->n] = mltk_strdup(key);
    s->vals[s->n] = mltk_strdup(value);
    s->lines[s->n] = line;
    s->n++;
    if (!s->keys[s->n - 1] || !s->vals[s->n - 1])
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", p->path);
    return MLTK_OK;
}

/* ---- validation ---------------------------------------------------------------- */

static int validate(config_priv *c, mltk_registry_t *reg, raw_sec *rs,
                    mltk_section *out, char **err)
{
    const char *path = c->pub.path;
    const sec_kind *k = &sec_kinds[rs->sk];
    out->line = rs->line;
    out->name = mltk_strdup(rs->name);
    out->label = mltk_strdup(rs->sk == SK_LAYER ? rs->name + 6
                             : rs->sk == SK_TRANSFORM ? rs->name + 10 : rs->name);
    if (!out->name || !out->label)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");

    char *what = rs->sk == SK_LAYER ? mltk_strfmt("layer '%s'", out->label)
                 : rs->sk == SK_TRANSFORM ? mltk_strfmt("transform '%s'", out->label)
                 : mltk_strfmt("[%s]", rs->name);
    if (!what)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    const mltk_desc *descs[2] = { c->schema[rs->sk], NULL };
    int n_desc = 1;
    int rc = MLTK_OK;
    if (k->kind) {
        int t = -1;
        for (int i = 0; i < rs->n; i++) {
            if (strcmp(rs->keys[i], "type") == 0) {
                t = i;
                break;
            }
        }
        if (t < 0 && !k->def_type) {
            rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s:%d: %s: missing required key 'type'",
                           path, rs->line, what);
            goto out;
        }
        if (t >= 0 && !*rs->vals[t]) {
            rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s:%d: %s: key 'type' has no value",
                           path, rs->lines[t], what);
            goto out;
        }
        rc = mltk_registry_find(reg, t >= 0 ? rs->vals[t] : k->def_type, k->kind,
                                &out->plugin, err);
        if (rc == MLTK_ERR_PLUGIN)  /* no such plugin: the config is wrong */
            rc = MLTK_ERR_CONFIG;
        if (rc) {
            mltk_err_prefix(err, "%s:%d: %s", path, t >= 0 ? rs->lines[t] : rs->line, what);
            goto out;
        }
        descs[1] = out->plugin;
        n_desc = 2;
        char *w2 = mltk_strfmt("%s (%s)", what, out->plugin->name);
        if (!w2) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
            goto out;
        }
        free(what);
        what = w2;
    }
    rc = mltk_params_build(&out->params, descs, n_desc, rs->n,
                           (const char *const *)rs->keys, (const char *const *)rs->vals,
                           rs->lines, path, rs->line, what, err);
out:
    free(what);
    return rc;
}

/* ---- loading -------------------------------------------------------------------- */

void mltk_config_destroy(mltk_config_t *cfg)
{
    if (!cfg)
        return;
    config_priv *c = (config_priv *)cfg;
    for (int i = 0; i < cfg->n_sec; i++) {
        mltk_params_free(cfg->sec[i].params);
        free(cfg->sec[i].name);
        free(cfg->sec[i].label);
    }
    free(cfg->sec);
    for (int k = 0; k < N_SK; k++)
        mltk_desc_free(c->schema[k]);
    free(cfg->path);
    free(cfg->text);
    free(c);
}

int mltk_config_load(mltk_config_t **cfg, mltk_registry_t *reg, const char *path,
                     char **err)
{
    if (!cfg || !path)
        return mltk_errf(err, MLTK_ERR_INVALID, "mltk_config_load: no config or no path");
    *cfg = NULL;
    if (!reg)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "%s: a plugin registry is needed to validate the config", path);
    cparse p;
    memset(&p, 0, sizeof p);
    p.path = path;
    config_priv *c = calloc(1, sizeof *c);
    if (!c)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    int rc = MLTK_OK;
    c->pub.path = mltk_strdup(path);
    if (!c->pub.path) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int k = 0; k < N_SK; k++) {
        char origin[64];
        snprintf(origin, sizeof origin, "(built-in schema [%s])", sec_kinds[k].name);
        rc = mltk_desc_parse(&c->schema[k], sec_kinds[k].schema, origin, err);
        if (rc)
            goto out;
    }
    rc = mltk_read_file(path, &c->pub.text, err);
    if (rc)
        goto out;
    rc = mltk_ini_parse(c->pub.text, path, on_ini, &p, err);
    if (rc)
        goto out;

    c->pub.sec = calloc((size_t)(p.n ? p.n : 1), sizeof *c->pub.sec);
    if (!c->pub.sec) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < p.n; i++) {
        c->pub.n_sec = i + 1;
        rc = validate(c, reg, &p.s[i], &c->pub.sec[i], err);
        if (rc)
            goto out;
    }
    for (int k = 0; k < N_SK; k++) {
        if (!sec_kinds[k].required)
            continue;
        int found = 0;
        for (int i = 0; i < p.n && !found; i++)
            found = p.s[i].sk == k;
        if (!found) {
            if (k == SK_LAYER)
                rc = mltk_errf(err, MLTK_ERR_CONFIG,
                               "%s: missing section [layer.NAME] (a model needs at least "
                               "one layer)", path);
            else
                rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s: missing section [%s]", path,
                               sec_kinds[k].name);
            goto out;
        }
    }
    *cfg = &c->pub;
    c = NULL;
out:
    cparse_free(&p);
    mltk_config_destroy(c ? &c->pub : NULL);
    return rc;
}

const mltk_section *mltk_config_section(const mltk_config_t *c, const char *name)
{
    if (!c || !name)
        return NULL;
    for (int i = 0; i < c->n_sec; i++)
        if (strcmp(c->sec[i].name, name) == 0)
            return &c->sec[i];
    return NULL;
}
