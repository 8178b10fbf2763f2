/* descriptor.c - plugin descriptors: parsing and strict validation.
 *
 * What this is: the reader of the INI files that describe a plugin without
 * loading it ([plugin] name, kind, abi, library, symbol, summary, version;
 * one [param.NAME] per parameter with type, default, min, max, required,
 * choices, doc), and of the core's own section schemas (core/schema.c),
 * which use the same format without kind, abi and library.  Every mistake
 * in a descriptor is reported as "path:line: ...".  Also the quick test
 * whether an INI file in a plugin directory is a descriptor at all (it has
 * a [plugin] section), and the rule that a plugin's entry symbol is a
 * mltk_plugin_* name.
 * What this is not: the plugin loader (registry.c) or the checker of a
 * user's values against a descriptor (params.c).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"


/* ---- the keys a descriptor may hold ------------------------------------- */

enum { PK_NAME, PK_KIND, PK_ABI, PK_LIBRARY, PK_SYMBOL, PK_SUMMARY, PK_VERSION,
       N_PK };
static const char *const plugin_keys[N_PK] = {
    "name", "kind", "abi", "library", "symbol", "summary", "version"
};

enum { AK_TYPE, AK_DEFAULT, AK_MIN, AK_MAX, AK_REQUIRED, AK_CHOICES, AK_DOC,
       N_AK };
static const char *const param_keys[N_AK] = {
    "type", "default", "min", "max", "required", "choices", "doc"
};

/* one [param.NAME] section as read */
typedef struct raw_param {
    char *name;
    int   line;
    char *val[N_AK];
    int   vline[N_AK];
} raw_param;

typedef struct dparse {
    const char *origin;
    int         plugin_line;       /* line of [plugin], 0 if not seen */
    char       *pval[N_PK];
    int         pline[N_PK];
    raw_param  *params;
    int         n_params, cap_params;
    int         cur;               /* -1 none, -2 [plugin], >= 0 a param */
} dparse;

static void dparse_free(dparse *p)
{
    for (int i = 0; i < N_PK; i++)
        free(p->pval[i]);
    for (int i = 0; i < p->n_params; i++) {
        free(p->params[i].name);
        for (int k = 0; k < N_AK; k++)
            free(p->params[i].val[k]);
    }
    free(p->params);
}

/* ---- helpers -------------------------------------------------------------- */

static int is_ident(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

static int key_index(const char *const *keys, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return i;
    return -1;
}

/* "; did you mean 'x'?" or " (valid keys: a, b, c)" for an unknown key */
static int unknown_key(char **err, const char *origin, int line,
                       const char *section, const char *key,
                       const char *const *keys, int n)
{
    const char *hint = mltk_did_you_mean(key, keys, n);
    if (hint)
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "%s:%d: [%s]: unknown key '%s'; did you mean '%s'?",
                         origin, line, section, key, hint);
    char list[256] = "";
    size_t off = 0;
    for (int i = 0; i < n && off < sizeof list; i++) {
        int w = snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", keys[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return mltk_errf(err, MLTK_ERR_PLUGIN,
                     "%s:%d: [%s]: unknown key '%s' (valid keys: %s)",
                     origin, line, section, key, list);
}


/* "2" or "2.0": the major version, and the minor when it is written (-1
 * when not) */
static int parse_abi(const char *s, int *major, int *minor)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || v > INT_MAX)
        return -1;
    long mv = -1;
    if (*end == '.') {
        const char *m = end + 1;
        if (!isdigit((unsigned char)*m))
            return -1;
        mv = strtol(m, &end, 10);
        if (errno || mv > INT_MAX)
            return -1;
    }
    if (*end != '\0')
        return -1;
    *major = (int)v;
    *minor = (int)mv;
    return 0;
}

/* ---- reading the INI ------------------------------------------------------ */

static int on_ini(void *user, int line, const char *section, const char *key,
                  const char *value, char **err)
{
    dparse *p = user;
    if (!key) {  /* a [header] */
        if (strcmp(section, "plugin") == 0) {
            if (p->plugin_line)
                return mltk_errf(err, MLTK_ERR_PLUGIN,
                                 "%s:%d: duplicate section [plugin] (first on line %d)",
                                 p->origin, line, p->plugin_line);
            p->plugin_line = line;
            p->cur = -2;
            return MLTK_OK;
        }
        if (strncmp(section, "param.", 6) == 0) {
            const char *name = section + 6;
            if (!is_ident(name))
                return mltk_errf(err, MLTK_ERR_PLUGIN,
                                 "%s:%d: invalid parameter name '%s' in [%s] "
                                 "(letters, digits and '_', not starting with a digit)",
                                 p->origin, line, name, section);
            for (int i = 0; i < p->n_params; i++)
                if (strcmp(p->params[i].name, name) == 0)
                    return mltk_errf(err, MLTK_ERR_PLUGIN,
                                     "%s:%d: duplicate section [%s] (first on line %d)",
                                     p->origin, line, section, p->params[i].line);
            if (p->n_params == p->cap_params) {
                int cap = p->cap_params ? 2 * p->cap_params : 8;
                raw_param *np = realloc(p->params, (size_t)cap * sizeof *np);
                if (!np)
                    return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", p->origin);
                p->params = np;
                p->cap_params = cap;
            }
            raw_param *rp = &p->params[p->n_params];
            memset(rp, 0, sizeof *rp);
            rp->name = mltk_strdup(name);
            if (!rp->name)
                return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", p->origin);
            rp->line = line;
            p->cur = p->n_params++;
            return MLTK_OK;
        }
        /* an unknown section: suggest [param.X] for a near "param" prefix */
        const char *dot = strchr(section, '.');
        if (dot) {
            char prefix[64];
            size_t n = (size_t)(dot - section);
            if (n < sizeof prefix) {
                memcpy(prefix, section, n);
                prefix[n] = '\0';
                if (mltk_edit_distance(prefix, "param") <= 2)
                    return mltk_errf(err, MLTK_ERR_PLUGIN,
                                     "%s:%d: unknown section [%s]; did you mean [param.%s]?",
                                     p->origin, line, section, dot + 1);
            }
        }
        if (mltk_edit_distance(section, "plugin") <= 2)
            return mltk_errf(err, MLTK_ERR_PLUGIN,
                             "%s:%d: unknown section [%s]; did you mean [plugin]?",
                             p->origin, line, section);
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "%s:%d: unknown section [%s] (a descriptor has a [plugin] "
                         "section and one [param.NAME] section per parameter)",
                         p->origin, line, section);
    }

    if (!section)
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "%s:%d: key '%s' outside any section (put it under [plugin] "
                         "or [param.NAME])", p->origin, line, key);
    char **slot;
    int *lslot;
    if (p->cur == -2) {
        int k = key_index(plugin_keys, N_PK, key);
        if (k < 0)
            return unknown_key(err, p->origin, line, section, key, plugin_keys, N_PK);
        slot = &p->pval[k];
        lslot = &p->pline[k];
    } else {
        raw_param *rp = &p->params[p->cur];
        int k = key_index(param_keys, N_AK, key);
        if (k < 0)
            return unknown_key(err, p->origin, line, section, key, param_keys, N_AK);
        slot = &rp->val[k];
        lslot = &rp->vline[k];
    }
    if (*slot)
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "%s:%d: [%s]: duplicate key '%s' (first on line %d)",
                         p->origin, line, section, key, *lslot);
    *slot = mltk_strdup(value);
    if (!*slot)
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", p->origin);
    *lslot = line;
    return MLTK_OK;
}

/* ---- building the descriptor -------------------------------------------- */

static int split_choices(const char *origin, int line, const char *pname,
                         const char *text, char ***out, char **err)
{
    int n = 1;
    for (const char *c = text; *c; c++)
        n += *c == ',';
    char **ch = calloc((size_t)n + 1, sizeof *ch);
    if (!ch)
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", origin);
    *out = ch;
    const char *s = text;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        while (len && isspace((unsigned char)*s)) {
            s++;
            len--;
        }
        while (len && isspace((unsigned char)s[len - 1]))
            len--;
        if (len == 0)
            return mltk_errf(err, MLTK_ERR_PLUGIN,
                             "%s:%d: [param.%s]: empty entry in choices '%s'",
                             origin, line, pname, text);
        ch[i] = malloc(len + 1);
        if (!ch[i])
            return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", origin);
        memcpy(ch[i], s, len);
        ch[i][len] = '\0';
        for (int j = 0; j < i; j++)
            if (strcmp(ch[j], ch[i]) == 0)
                return mltk_errf(err, MLTK_ERR_PLUGIN,
                                 "%s:%d: [param.%s]: choice '%s' is listed twice",
                                 origin, line, pname, ch[i]);
        s = e ? e + 1 : s + len;
    }
    return MLTK_OK;
}

static int build_param(const char *origin, raw_param *rp, mltk_param_def *pd,
                       char **err)
{
    pd->name = rp->name;
    rp->name = NULL;
    pd->line = rp->line;
    const char *pn = pd->name;

    if (!rp->val[AK_TYPE])
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "%s:%d: [param.%s]: missing required key 'type'",
                         origin, rp->line, pn);
    int t = mltk_ptype_parse(rp->val[AK_TYPE]);
    if (!t)
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "%s:%d: [param.%s]: unknown type '%s' (types: int, float, "
                         "bool, string, enum, ints, floats, list)",
                         origin, rp->vline[AK_TYPE], pn, rp->val[AK_TYPE]);
    pd->type = (mltk_ptype)t;
    int numeric = t == MLTK_P_INT || t == MLTK_P_FLOAT || t == MLTK_P_INTS
                  || t == MLTK_P_FLOATS;

    static const int bound_keys[2] = { AK_MIN, AK_MAX };
    for (int b = 0; b < 2; b++) {
        int k = bound_keys[b];
        if (!rp->val[k])
            continue;
        if (!numeric)
            return mltk_errf(err, MLTK_ERR_PLUGIN,
                             "%s:%d: [param.%s]: '%s' applies only to int, float, "
                             "ints and floats parameters, not %s",
                             origin, rp->vline[k], pn, param_keys[k],
                             mltk_ptype_name(pd->type));
        double v;
        if (mltk_parse_float(rp->val[k], &v))
            return mltk_errf(err, MLTK_ERR_PLUGIN,
                             "%s:%d: [param.%s]: %s must be a number, got '%s'",
                             origin, rp->vline[k], pn, param_keys[k], rp->val[k]);
        if (k == AK_MIN) {
            pd->has_min = 1;
            pd->min = v;
        } else {
            pd->has_max = 1;
            pd->max = v;
        }
    }
    if (pd->has_min && pd->has_max && pd->min > pd->max)
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "%s:%d: [param.%s]: max (%s) is less than min (%s)",
                         origin, rp->vline[AK_MAX], pn, rp->val[AK_MAX], rp->val[AK_MIN]);

    if (rp->val[AK_REQUIRED] && mltk_parse_bool(rp->val[AK_REQUIRED], &pd->required))
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "%s:%d: [param.%s]: required must be true or false, got '%s'",
                         origin, rp->vline[AK_REQUIRED], pn, rp->val[AK_REQUIRED]);

    if (rp->val[AK_CHOICES]) {
        if (t != MLTK_P_ENUM)
            return mltk_errf(err, MLTK_ERR_PLUGIN,
                             "%s:%d: [param.%s]: 'choices' applies only to enum "
                             "parameters, not %s", origin, rp->vline[AK_CHOICES], pn,
                             mltk_ptype_name(pd->type));
        int rc = split_choices(origin, rp->vline[AK_CHOICES], pn, rp->val[AK_CHOICES],
                               &pd->choices, err);
        if (rc)
            return rc;
    } else if (t == MLTK_P_ENUM) {
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "%s:%d: [param.%s]: an enum parameter needs 'choices'",
                         origin, rp->line, pn);
    }

    pd->doc = rp->val[AK_DOC];
    rp->val[AK_DOC] = NULL;

    if (rp->val[AK_DEFAULT]) {
        if (pd->required)
            return mltk_errf(err, MLTK_ERR_PLUGIN,
                             "%s:%d: [param.%s]: a required parameter cannot have a default",
                             origin, rp->vline[AK_DEFAULT], pn);
        char *why = NULL;
        int rc = mltk_param_check(pd, rp->val[AK_DEFAULT], &why);
        if (rc) {
            rc = mltk_errf(err, rc == MLTK_ERR_NOMEM ? rc : MLTK_ERR_PLUGIN,
                           "%s:%d: [param.%s]: default %s", origin,
                           rp->vline[AK_DEFAULT], pn, why ? why : "is invalid");
            free(why);
            return rc;
        }
        pd->def = rp->val[AK_DEFAULT];
        rp->val[AK_DEFAULT] = NULL;
    }
    return MLTK_OK;
}

/* plugin: 1 = kind, abi and library are required (a plugin's file);
 *         0 = all three or none (none: a core section schema) */
static int desc_from_text(mltk_desc **out, const char *text, const char *origin,
                          int plugin, char **err)
{
    *out = NULL;
    dparse p;
    memset(&p, 0, sizeof p);
    p.origin = origin;
    p.cur = -1;
    mltk_desc *d = NULL;
    int rc = mltk_ini_parse(text, origin, on_ini, &p, err);
    if (rc) {
        if (rc == MLTK_ERR_CONFIG)
            rc = MLTK_ERR_PLUGIN;
        goto out;
    }
    if (!p.plugin_line) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN, "%s: missing section [plugin]", origin);
        goto out;
    }
    if (!p.pval[PK_NAME]) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN, "%s:%d: [plugin]: missing required key 'name'",
                       origin, p.plugin_line);
        goto out;
    }
    if (!is_ident(p.pval[PK_NAME])) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                       "%s:%d: [plugin]: invalid name '%s' (letters, digits and '_', "
                       "not starting with a digit)", origin, p.pline[PK_NAME],
                       p.pval[PK_NAME]);
        goto out;
    }
    int any = p.pval[PK_KIND] || p.pval[PK_ABI] || p.pval[PK_LIBRARY];
    if (plugin || any) {
        static const int need[3] = { PK_KIND, PK_ABI, PK_LIBRARY };
        for (int i = 0; i < 3; i++) {
            if (!p.pval[need[i]]) {
                rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                               "%s:%d: [plugin]: missing required key '%s'",
                               origin, p.plugin_line, plugin_keys[need[i]]);
                goto out;
            }
        }
    }

    d = calloc(1, sizeof *d);
    if (!d) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", origin);
        goto out;
    }
    d->abi_minor = -1;
    if (p.pval[PK_KIND]) {
        d->kind = mltk_kind_parse(p.pval[PK_KIND]);
        if (!d->kind) {
            static const char *const kinds[] = { "backend", "layer", "loss",
                                                 "optimizer", "dataset", "schedule",
                                                 "transform" };
            const char *hint = mltk_did_you_mean(p.pval[PK_KIND], kinds, 7);
            rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                           "%s:%d: [plugin]: unknown kind '%s'%s%s%s (kinds: backend, "
                           "layer, loss, optimizer, dataset, schedule, transform)", origin, p.pline[PK_KIND],
                           p.pval[PK_KIND], hint ? "; did you mean '" : "",
                           hint ? hint : "", hint ? "'?" : "");
            goto out;
        }
    }
    if (p.pval[PK_ABI] && parse_abi(p.pval[PK_ABI], &d->abi, &d->abi_minor)) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                       "%s:%d: [plugin]: abi must be a major version number such as %d, "
                       "got '%s'", origin, p.pline[PK_ABI], MLTK_ABI_MAJOR, p.pval[PK_ABI]);
        goto out;
    }
    if (p.pval[PK_LIBRARY] && !*p.pval[PK_LIBRARY]) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN, "%s:%d: [plugin]: library is empty",
                       origin, p.pline[PK_LIBRARY]);
        goto out;
    }
    if (p.pval[PK_SYMBOL] && !is_ident(p.pval[PK_SYMBOL])) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                       "%s:%d: [plugin]: symbol '%s' is not a C identifier",
                       origin, p.pline[PK_SYMBOL], p.pval[PK_SYMBOL]);
        goto out;
    }
    /* the loader calls the entry symbol of a plugin's file: only an entry
     * point may be named, never an arbitrary function of the library or of
     * what it links (`symbol = abort`) */
    static const size_t n_prefix = sizeof MLTK_PLUGIN_SYMBOL_PREFIX - 1;
    if (plugin && p.pval[PK_SYMBOL]
        && (strncmp(p.pval[PK_SYMBOL], MLTK_PLUGIN_SYMBOL_PREFIX, n_prefix) != 0
            || !p.pval[PK_SYMBOL][n_prefix])) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                       "%s:%d: [plugin]: symbol '%s' must start with '%s' and name an "
                       "entry point (such as '%s%s', the default)", origin,
                       p.pline[PK_SYMBOL], p.pval[PK_SYMBOL], MLTK_PLUGIN_SYMBOL_PREFIX,
                       MLTK_PLUGIN_SYMBOL_PREFIX, p.pval[PK_NAME]);
        goto out;
    }
    d->name = p.pval[PK_NAME];
    p.pval[PK_NAME] = NULL;
    d->library = p.pval[PK_LIBRARY];
    p.pval[PK_LIBRARY] = NULL;
    d->summary = p.pval[PK_SUMMARY];
    p.pval[PK_SUMMARY] = NULL;
    d->version = p.pval[PK_VERSION];
    p.pval[PK_VERSION] = NULL;
    if (p.pval[PK_SYMBOL]) {
        d->symbol = p.pval[PK_SYMBOL];
        p.pval[PK_SYMBOL] = NULL;
    } else {
        d->symbol = mltk_strfmt("%s%s", MLTK_PLUGIN_SYMBOL_PREFIX, d->name);
    }
    d->path = mltk_strdup(origin);
    if (!d->symbol || !d->path) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", origin);
        goto out;
    }
    if (p.n_params) {
        d->params = calloc((size_t)p.n_params, sizeof *d->params);
        if (!d->params) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", origin);
            goto out;
        }
    }
    for (int i = 0; i < p.n_params; i++) {
        d->n_params = i + 1;
        rc = build_param(origin, &p.params[i], &d->params[i], err);
        if (rc)
            goto out;
    }
    *out = d;
    d = NULL;
out:
    mltk_desc_free(d);
    dparse_free(&p);
    return rc;
}

/* ---- public (core-internal) entry points --------------------------------- */

int mltk_desc_parse(mltk_desc **d, const char *text, const char *origin, char **err)
{
    return desc_from_text(d, text, origin ? origin : "(descriptor)", 0, err);
}

/* The .so named by `library`, relative to the descriptor's directory; in
 * a libtool build tree the module lies in .libs/ beside it. */
static char *resolve_library(const char *desc_path, const char *library)
{
    if (library[0] == '/')
        return mltk_strdup(library);
    char *dir = mltk_strdup(desc_path);
    if (!dir)
        return NULL;
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    char *abs = realpath(dir, NULL);
    const char *base = abs ? abs : dir;
    char *path = mltk_strfmt("%s/%s", base, library);
    if (path && access(path, F_OK) != 0) {
        char *alt = mltk_strfmt("%s/.libs/%s", base, library);
        if (alt && access(alt, F_OK) == 0) {
            free(path);
            path = alt;
        } else {
            free(alt);
        }
    }
    free(abs);
    free(dir);
    return path;
}

int mltk_desc_load(mltk_desc **d, const char *path, char **err)
{
    *d = NULL;
    char *text = NULL;
    int rc = mltk_read_file(path, &text, err);
    if (rc)
        return rc == MLTK_ERR_CONFIG ? MLTK_ERR_PLUGIN : rc;
    rc = mltk_desc_load_text(d, text, path, err);
    free(text);
    return rc;
}

/* Skip blanks. */
static const char *skip_space(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
        s++;
    return s;
}

int mltk_desc_sniff(const char *text, char **name)
{
    *name = NULL;
    int found = 0, in_plugin = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line);
        const char *s = skip_space(line, end);
        if (s < end && *s == '[') {
            const char *close = memchr(s, ']', (size_t)(end - s));
            const char *a = close ? skip_space(s + 1, close) : NULL;
            const char *b = close;
            while (a && b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            in_plugin = a && b - a == 6 && memcmp(a, "plugin", 6) == 0;
            found |= in_plugin;
        } else if (in_plugin && !*name && end - s > 4 && memcmp(s, "name", 4) == 0) {
            const char *v = skip_space(s + 4, end);
            if (v < end && *v == '=') {
                v = skip_space(v + 1, end);
                const char *w = v;
                while (w < end && (isalnum((unsigned char)*w) || *w == '_'))
                    w++;
                if (w > v && skip_space(w, end) == end) {
                    char *n = malloc((size_t)(w - v) + 1);
                    if (n) {
                        memcpy(n, v, (size_t)(w - v));
                        n[w - v] = '\0';
                        if (is_ident(n))
                            *name = n;
                        else
                            free(n);
                    }
                }
            }
        }
        line = *end ? end + 1 : end;
    }
    return found;
}

int mltk_desc_load_text(mltk_desc **d, const char *text, const char *path, char **err)
{
    *d = NULL;
    int rc = desc_from_text(d, text, path, 1, err);
    if (rc)
        return rc;
    char *lib = resolve_library(path, (*d)->library);
    if (!lib) {
        mltk_desc_free(*d);
        *d = NULL;
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", path);
    }
    free((*d)->library);
    (*d)->library = lib;
    return MLTK_OK;
}

void mltk_desc_free(mltk_desc *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n_params; i++) {
        mltk_param_def *pd = &d->params[i];
        free(pd->name);
        free(pd->def);
        free(pd->doc);
        if (pd->choices)
            for (char **c = pd->choices; *c; c++)
                free(*c);
        free(pd->choices);
    }
    free(d->params);
    free(d->name);
    free(d->library);
    free(d->symbol);
    free(d->summary);
    free(d->version);
    free(d->path);
    free(d);
}

const mltk_param_def *mltk_desc_param(const mltk_desc *d, const char *name)
{
    if (!d || !name)
        return NULL;
    for (int i = 0; i < d->n_params; i++)
        if (strcmp(d->params[i].name, name) == 0)
            return &d->params[i];
    return NULL;
}
