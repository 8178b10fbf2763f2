/* params.c - a plugin's parameters, checked against its descriptor.
 *
 * What this is: the one validator every key of every section goes through
 * (types, ranges, choices, required keys, unknown keys with a did-you-mean,
 * duplicates), the filling-in of defaults, and the mltk_params_*()
 * accessors plugins read their parameters with.  Values are kept as the
 * text the user wrote (or the descriptor's default) and parsed on access;
 * they were checked once, here, so access cannot fail.
 * What this is not: an INI reader (config.c and descriptor.c read files)
 * or the owner of the descriptors: params borrow their definitions, so
 * the descriptors must outlive them.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "session.h"

/* Shared with descriptor.c and registry.c, which repeat these prototypes. */
MLTK_HIDDEN int mltk_param_check(const mltk_param_def *def, const char *value,
                                 char **why);
MLTK_HIDDEN const char *mltk_ptype_name(mltk_ptype t);
MLTK_HIDDEN int mltk_ptype_parse(const char *name);

/* ---- parameter types ---------------------------------------------------- */

static const char *const ptype_names[] = {
    NULL, "int", "float", "bool", "string", "enum", "ints", "floats", "list"
};

const char *mltk_ptype_name(mltk_ptype t)
{
    if ((int)t >= MLTK_P_INT && (int)t <= MLTK_P_LIST)
        return ptype_names[t];
    return "?";
}

int mltk_ptype_parse(const char *name)
{
    for (int t = MLTK_P_INT; t <= MLTK_P_LIST; t++)
        if (strcmp(name, ptype_names[t]) == 0)
            return t;
    return 0;
}

/* ---- parsing values ------------------------------------------------------- */

/* the whole of s is one integer; -2 on overflow, -1 on anything else */
static int parse_int(const char *s, int64_t *out)
{
    if (!*s || isspace((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return -1;
    if (errno == ERANGE)
        return -2;
    *out = (int64_t)v;
    return 0;
}

/* the whole of s is one finite number; -2 if not finite */
int mltk_parse_float(const char *s, double *out)
{
    if (!*s || isspace((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0')
        return -1;
    if (!isfinite(v) || (errno == ERANGE && fabs(v) > 1.0))
        return -2;
    *out = v;
    return 0;
}

int mltk_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Call fn on each comma-separated item of s, trimmed.  Returns the first
 * non-zero fn result, or the item count. */
typedef int (*item_fn)(const char *item, void *user);

static int each_item(const char *s, item_fn fn, void *user)
{
    char item[256];
    int count = 0;
    for (;;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        const char *b = s;
        while (len && isspace((unsigned char)*b)) {
            b++;
            len--;
        }
        while (len && isspace((unsigned char)b[len - 1]))
            len--;
        if (len >= sizeof item)
            return -1;
        memcpy(item, b, len);
        item[len] = '\0';
        int rc = fn(item, user);
        if (rc)
            return rc;
        count++;
        if (!e)
            return count;
        s = e + 1;
    }
}

/* ---- checking a value against its definition ----------------------------- */

static void fmt_num(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.15g", v);
}

typedef struct item_check {
    const mltk_param_def *def;
    int     bad;       /* 1 malformed, 2 below min, 3 above max */
    double  got;       /* the offending value for 2 and 3 */
    int     is_int;    /* ... an integer, printed as got_i */
    int64_t got_i;
} item_check;

static int check_range(item_check *c, double v)
{
    if (c->def->has_min && v < c->def->min) {
        c->bad = 2;
        c->got = v;
        return 1;
    }
    if (c->def->has_max && v > c->def->max) {
        c->bad = 3;
        c->got = v;
        return 1;
    }
    return 0;
}

static int check_int_item(const char *item, void *user)
{
    item_check *c = user;
    int64_t v;
    if (parse_int(item, &v)) {
        c->bad = 1;
        return 1;
    }
    c->is_int = 1;
    c->got_i = v;
    return check_range(c, (double)v);
}

static int check_float_item(const char *item, void *user)
{
    item_check *c = user;
    double v;
    if (mltk_parse_float(item, &v)) {
        c->bad = 1;
        return 1;
    }
    return check_range(c, v);
}

static int check_name_item(const char *item, void *user)
{
    item_check *c = user;
    if (!*item) {
        c->bad = 1;
        return 1;
    }
    return 0;
}

static int range_why(const item_check *c, const char *what, char **why)
{
    char lim[64], got[64];
    fmt_num(lim, sizeof lim, c->bad == 2 ? c->def->min : c->def->max);
    if (c->is_int)
        snprintf(got, sizeof got, "%" PRId64, c->got_i);
    else
        fmt_num(got, sizeof got, c->got);
    return mltk_errf(why, MLTK_ERR_CONFIG, "%s be %s %s, got %s", what,
                     c->bad == 2 ? ">=" : "<=", lim, got);
}

/* MLTK_OK, or MLTK_ERR_CONFIG with *why = "must be ..., got '...'" */
int mltk_param_check(const mltk_param_def *def, const char *value, char **why)
{
    item_check c = { def, 0, 0, 0, 0 };
    switch (def->type) {
    case MLTK_P_STRING:
        return MLTK_OK;
    case MLTK_P_INT: {
        int64_t v;
        int r = parse_int(value, &v);
        if (r == -2)
            return mltk_errf(why, MLTK_ERR_CONFIG,
                             "is out of range for a 64-bit integer, got '%s'", value);
        if (r)
            return mltk_errf(why, MLTK_ERR_CONFIG, "must be an integer, got '%s'", value);
        c.is_int = 1;
        c.got_i = v;
        if (check_range(&c, (double)v))
            return range_why(&c, "must", why);
        return MLTK_OK;
    }
    case MLTK_P_FLOAT: {
        double v;
        int r = mltk_parse_float(value, &v);
        if (r == -2)
            return mltk_errf(why, MLTK_ERR_CONFIG, "must be a finite number, got '%s'",
                             value);
        if (r)
            return mltk_errf(why, MLTK_ERR_CONFIG, "must be a number, got '%s'", value);
        if (check_range(&c, v))
            return range_why(&c, "must", why);
        return MLTK_OK;
    }
    case MLTK_P_BOOL: {
        int b;
        if (mltk_parse_bool(value, &b))
            return mltk_errf(why, MLTK_ERR_CONFIG,
                             "must be true or false (or yes/no, on/off, 1/0), got '%s'",
                             value);
        return MLTK_OK;
    }
    case MLTK_P_ENUM: {
        char list[512] = "";
        size_t off = 0;
        for (char **ch = def->choices; ch && *ch; ch++) {
            if (strcmp(*ch, value) == 0)
                return MLTK_OK;
            int w = snprintf(list + off, sizeof list - off, "%s%s",
                             ch == def->choices ? "" : ", ", *ch);
            if (w > 0 && (size_t)w < sizeof list - off)
                off += (size_t)w;
        }
        return mltk_errf(why, MLTK_ERR_CONFIG, "must be one of: %s (got '%s')", list,
                         value);
    }
    case MLTK_P_INTS:
        if (each_item(value, check_int_item, &c) < 0 || c.bad == 1)
            return mltk_errf(why, MLTK_ERR_CONFIG,
                             "must be a comma-separated list of integers, got '%s'", value);
        if (c.bad)
            return range_why(&c, "values must", why);
        return MLTK_OK;
    case MLTK_P_FLOATS:
        if (each_item(value, check_float_item, &c) < 0 || c.bad == 1)
            return mltk_errf(why, MLTK_ERR_CONFIG,
                             "must be a comma-separated list of finite numbers, got '%s'",
                             value);
        if (c.bad)
            return range_why(&c, "values must", why);
        return MLTK_OK;
    case MLTK_P_LIST:
        if (each_item(value, check_name_item, &c) < 0 || c.bad)
            return mltk_errf(why, MLTK_ERR_CONFIG,
                             "must be a comma-separated list of names, got '%s'", value);
        return MLTK_OK;
    }
    return mltk_errf(why, MLTK_ERR_CONFIG, "has an unknown type");
}

/* ---- building params ------------------------------------------------------ */

static int find(const mltk_params_t *p, const char *key)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->defs[i]->name, key) == 0)
            return i;
    return -1;
}

/* "file:line: " (or "file: ", or "") */
static void loc(char *buf, size_t n, const char *file, int line)
{
    if (file && line > 0)
        snprintf(buf, n, "%s:%d: ", file, line);
    else if (file)
        snprintf(buf, n, "%s: ", file);
    else
        buf[0] = '\0';
}

void mltk_params_free(mltk_params_t *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        free(p->values ? p->values[i] : NULL);
    free(p->values);
    free(p->defs);
    free(p->lines);
    free(p->set);
    free(p->where);
    free(p);
}

static int unknown_key(const mltk_params_t *p, const char *at, const char *what,
                       const char *key, char **err)
{
    const char **names = malloc((size_t)(p->n > 0 ? p->n : 1) * sizeof *names);
    if (!names)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    size_t len = 1;
    for (int i = 0; i < p->n; i++) {
        names[i] = p->defs[i]->name;
        len += strlen(names[i]) + 2;
    }
    const char *hint = mltk_did_you_mean(key, names, p->n);
    int rc;
    if (hint) {
        rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s%s: unknown key '%s'; did you mean '%s'?",
                       at, what, key, hint);
    } else if (p->n == 0) {
        rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s%s: unknown key '%s' (this section takes "
                       "no keys)", at, what, key);
    } else {
        char *list = malloc(len);
        if (!list) {
            free(names);
            return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        }
        list[0] = '\0';
        for (int i = 0; i < p->n; i++) {
            if (i)
                strcat(list, ", ");
            strcat(list, names[i]);
        }
        rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s%s: unknown key '%s' (valid keys: %s)",
                       at, what, key, list);
        free(list);
    }
    free(names);
    return rc;
}

int mltk_params_build(mltk_params_t **out, const mltk_desc *const *descs,
                      int n_desc, int n, const char *const *keys,
                      const char *const *values, const int *lines,
                      const char *file, int section_line, const char *what,
                      char **err)
{
    *out = NULL;
    if (!what)
        what = "parameters";
    char at[512];
    int rc = MLTK_OK;
    mltk_params_t *p = calloc(1, sizeof *p);
    if (!p)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");

    int cap = 0;
    for (int d = 0; d < n_desc; d++)
        cap += descs[d] ? descs[d]->n_params : 0;
    size_t slots = (size_t)(cap ? cap : 1);
    p->defs = calloc(slots, sizeof *p->defs);
    p->values = calloc(slots, sizeof *p->values);
    p->lines = calloc(slots, sizeof *p->lines);
    p->set = calloc(slots, sizeof *p->set);
    if (file && section_line > 0)
        p->where = mltk_strfmt("%s:%d: %s", file, section_line, what);
    else if (file)
        p->where = mltk_strfmt("%s: %s", file, what);
    else
        p->where = mltk_strdup(what);
    if (!p->defs || !p->values || !p->lines || !p->set || !p->where) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* every declared key, the first declaration of a name winning */
    for (int d = 0; d < n_desc; d++) {
        if (!descs[d])
            continue;
        for (int i = 0; i < descs[d]->n_params; i++) {
            const mltk_param_def *pd = &descs[d]->params[i];
            if (find(p, pd->name) < 0)
                p->defs[p->n++] = pd;
        }
    }

    for (int i = 0; i < n; i++) {
        int line = lines ? lines[i] : 0;
        loc(at, sizeof at, file, line);
        int k = find(p, keys[i]);
        if (k < 0) {
            rc = unknown_key(p, at, what, keys[i], err);
            goto out;
        }
        if (p->set[k]) {
            if (p->lines[k] > 0)
                rc = mltk_errf(err, MLTK_ERR_CONFIG,
                               "%s%s: duplicate key '%s' (first set on line %d)",
                               at, what, keys[i], p->lines[k]);
            else
                rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s%s: duplicate key '%s'",
                               at, what, keys[i]);
            goto out;
        }
        const mltk_param_def *pd = p->defs[k];
        const char *v = values[i] ? values[i] : "";
        if (!*v && (pd->type != MLTK_P_STRING || pd->required)) {
            rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s%s: key '%s' has no value",
                           at, what, keys[i]);
            goto out;
        }
        char *why = NULL;
        rc = mltk_param_check(pd, v, &why);
        if (rc) {
            rc = mltk_errf(err, rc, "%s%s: key '%s' %s", at, what, keys[i],
                           why ? why : "is invalid");
            free(why);
            goto out;
        }
        p->values[k] = mltk_strdup(v);
        if (!p->values[k]) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
            goto out;
        }
        p->set[k] = 1;
        p->lines[k] = line;
    }

    loc(at, sizeof at, file, section_line);
    for (int k = 0; k < p->n; k++) {
        if (p->set[k])
            continue;
        if (p->defs[k]->required) {
            rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s%s: missing required key '%s'",
                           at, what, p->defs[k]->name);
            goto out;
        }
        if (p->defs[k]->def) {
            p->values[k] = mltk_strdup(p->defs[k]->def);
            if (!p->values[k]) {
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
                goto out;
            }
        }
    }
    *out = p;
    p = NULL;
out:
    mltk_params_free(p);
    return rc;
}

/* ---- accessors ------------------------------------------------------------ */

/* The value text of `key` if it is declared with one of the types in
 * `types` (zero-terminated; NULL accepts any); NULL when it is unset, and
 * NULL with an error logged when it is undeclared or of another type. */
static const char *lookup(const mltk_params_t *p, const char *key,
                          const int *types, const char *accessor)
{
    if (!p || !key) {
        mltk_log(MLTK_LOG_ERROR, "%s: called with no parameters or no key", accessor);
        return NULL;
    }
    int k = find(p, key);
    if (k < 0) {
        mltk_log(MLTK_LOG_ERROR, "%s: %s('%s'): the descriptor declares no such "
                 "parameter", p->where, accessor, key);
        return NULL;
    }
    if (types) {
        int ok = 0;
        for (const int *t = types; *t; t++)
            ok |= (int)p->defs[k]->type == *t;
        if (!ok) {
            mltk_log(MLTK_LOG_ERROR, "%s: %s('%s'): the parameter is of type %s",
                     p->where, accessor, key, mltk_ptype_name(p->defs[k]->type));
            return NULL;
        }
    }
    return p->values[k];
}

int64_t mltk_params_int(const mltk_params_t *p, const char *key)
{
    static const int types[] = { MLTK_P_INT, 0 };
    const char *v = lookup(p, key, types, "mltk_params_int");
    int64_t x = 0;
    if (v && parse_int(v, &x))
        x = 0;
    return x;
}

double mltk_params_float(const mltk_params_t *p, const char *key)
{
    static const int types[] = { MLTK_P_FLOAT, MLTK_P_INT, 0 };
    const char *v = lookup(p, key, types, "mltk_params_float");
    double x = 0;
    if (v && mltk_parse_float(v, &x))
        x = 0;
    return x;
}

int mltk_params_bool(const mltk_params_t *p, const char *key)
{
    static const int types[] = { MLTK_P_BOOL, 0 };
    const char *v = lookup(p, key, types, "mltk_params_bool");
    int b = 0;
    if (v && mltk_parse_bool(v, &b))
        b = 0;
    return b;
}

const char *mltk_params_str(const mltk_params_t *p, const char *key)
{
    const char *v = lookup(p, key, NULL, "mltk_params_str");
    return v ? v : "";
}

int mltk_params_has(const mltk_params_t *p, const char *key)
{
    if (!p || !key)
        return 0;
    int k = find(p, key);
    if (k < 0) {
        mltk_log(MLTK_LOG_ERROR, "%s: mltk_params_has('%s'): the descriptor declares "
                 "no such parameter", p->where, key);
        return 0;
    }
    return p->values[k] != NULL;
}

int mltk_params_set(const mltk_params_t *p, const char *key)
{
    int k = p && key ? find(p, key) : -1;
    return k >= 0 && p->set[k];
}

int mltk_params_declares(const mltk_params_t *p, const char *key)
{
    return p && key && find(p, key) >= 0;
}

int mltk_params_override(mltk_params_t *p, const char *key, const char *value)
{
    int k = find(p, key);
    if (k < 0)
        return MLTK_ERR_CONFIG;
    char *v = mltk_strdup(value);
    if (!v)
        return MLTK_ERR_NOMEM;
    free(p->values[k]);
    p->values[k] = v;
    p->set[k] = 1;
    return MLTK_OK;
}

typedef struct collect {
    int      is_float;
    int64_t *iout;
    double  *fout;
    int      max;
    int      count;
} collect;

static int collect_item(const char *item, void *user)
{
    collect *c = user;
    if (c->count < c->max) {
        if (c->is_float) {
            double v = 0;
            if (c->fout && mltk_parse_float(item, &v) == 0)
                c->fout[c->count] = v;
        } else {
            int64_t v = 0;
            if (c->iout && parse_int(item, &v) == 0)
                c->iout[c->count] = v;
        }
    }
    c->count++;
    return 0;
}

/* Values written: min(count, max).  With out == NULL the full count. */
int mltk_params_ints(const mltk_params_t *p, const char *key, int64_t *out, int max)
{
    static const int types[] = { MLTK_P_INTS, MLTK_P_INT, 0 };
    const char *v = lookup(p, key, types, "mltk_params_ints");
    if (!v)
        return 0;
    collect c = { 0, out, NULL, out ? max : 0, 0 };
    if (each_item(v, collect_item, &c) < 0)
        return 0;
    if (!out)
        return c.count;
    return c.count < max ? c.count : (max > 0 ? max : 0);
}

int mltk_params_floats(const mltk_params_t *p, const char *key, double *out, int max)
{
    static const int types[] = { MLTK_P_FLOATS, MLTK_P_FLOAT, MLTK_P_INTS, MLTK_P_INT, 0 };
    const char *v = lookup(p, key, types, "mltk_params_floats");
    if (!v)
        return 0;
    collect c = { 1, NULL, out, out ? max : 0, 0 };
    if (each_item(v, collect_item, &c) < 0)
        return 0;
    if (!out)
        return c.count;
    return c.count < max ? c.count : (max > 0 ? max : 0);
}

const char *mltk_params_where(const mltk_params_t *p)
{
    return p && p->where ? p->where : "";
}
