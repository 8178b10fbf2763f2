/* registry.c - the plugin registry: discovery by descriptor, lazy loading.
 *
 * What this is: the scan of the plugin path for descriptor files (*.ini),
 * the lookup of a plugin by name and kind with helpful "unknown layer
 * 'dnese'; did you mean 'dense'?" messages, `mltk plugins show`'s
 * parameter table, and the one place a plugin .so is dlopen()ed and its
 * entry point checked (ABI major/minor, struct sizes, name, kind, required
 * vtable members) before any of its code beyond the entry point runs.
 * What this is not: a config validator (config.c, params.c) or a plugin
 * instance manager: vtables returned by mltk_registry_load() stay valid
 * until mltk_registry_destroy() unloads the libraries.
 *
 * Search order: the directories given, then $MLTK_PLUGIN_PATH
 * (colon-separated), then - with use_default_path - the build tree's plugin
 * directories when the running program lives in the build tree, and the
 * installed plugin directory.  Never the current directory.  Within a
 * directory descriptors are read in sorted order; the first descriptor of
 * a name wins and later ones are logged (debug) as shadowed.  A *.ini file
 * without a [plugin] section is not a descriptor (a training config kept
 * next to a plugin) and is skipped with a debug message.
 *
 * Trust: a plugin directory, each descriptor and each library, and every
 * directory above them, must belong to root or to the user running mltk,
 * and no one else may write to them, as sudo and ssh require of what they
 * trust (a sticky directory above, such as /tmp, passes; the plugin
 * directory itself may not be sticky and writable by others, since anyone
 * could add a descriptor to it).  An untrusted directory fails the scan; an
 * untrusted descriptor is broken.  MLTK_ALLOW_INSECURE_PLUGIN_DIR (set by
 * mltk --allow-insecure-plugin-dir) turns these checks off.
 *
 * Broken descriptors (malformed, unreadable or untrusted) do not fail the
 * scan: each is kept under its name (the [plugin] name, else the file's
 * base name) with its error, logged as a warning, listed with kind 0 and
 * the error as its summary, and its error is returned when the plugin is
 * asked for.
 *
 * Loading: before dlopen() the library must be a whole ELF shared object
 * for this machine (a truncated file would be mapped past its end and kill
 * the process with SIGBUS inside the dynamic loader).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#ifndef MLTK_PLUGIN_DIR
#define MLTK_PLUGIN_DIR ""
#endif
#ifndef MLTK_BUILD_DIR
#define MLTK_BUILD_DIR ""
#endif
#ifndef MLTK_BUILD_PLUGIN_DIRS
#define MLTK_BUILD_PLUGIN_DIRS ""
#endif


typedef struct entry {
    mltk_desc  *d;
    void       *handle;  /* dlopen() handle once loaded */
    const void *iface;   /* the checked vtable once loaded */
    char       *broken;  /* why the descriptor cannot be used, or NULL; d then
                          * holds only name and path (kind 0) */
} entry;

struct mltk_registry {
    entry *e;
    int    n, cap;
    char **dirs;         /* directories scanned, absolute, in order */
    int    n_dirs;
};

/* ---- scanning --------------------------------------------------------------- */

static int add_dir(mltk_registry_t *r, const char *abs)
{
    char **nd = realloc(r->dirs, (size_t)(r->n_dirs + 1) * sizeof *nd);
    if (!nd)
        return MLTK_ERR_NOMEM;
    r->dirs = nd;
    r->dirs[r->n_dirs] = mltk_strdup(abs);
    if (!r->dirs[r->n_dirs])
        return MLTK_ERR_NOMEM;
    r->n_dirs++;
    return MLTK_OK;
}

static entry *lookup(const mltk_registry_t *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->e[i].d->name, name) == 0)
            return &r->e[i];
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* by kind, then name; broken descriptors (kind 0) last */
static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int kx = x->d->kind ? x->d->kind : 1000, ky = y->d->kind ? y->d->kind : 1000;
    if (kx != ky)
        return kx - ky;
    return strcmp(x->d->name, y->d->name);
}

/* ---- trust --------------------------------------------------------------------- */

/* MLTK_ALLOW_INSECURE_PLUGIN_DIR set and not "0": no permission checks */
static int insecure_allowed(void)
{
    const char *v = getenv("MLTK_ALLOW_INSECURE_PLUGIN_DIR");
    return v && *v && strcmp(v, "0") != 0;
}

/* Refuse `what` at `path` because of `at` (path itself or a directory
 * above it, st its status): a message saying who else could change it and
 * how to fix that. */
static int refuse(const char *what, const char *path, const char *at,
                  const struct stat *st, int owner, char **err)
{
    char where[64 + 4096];
    if (strcmp(at, path) == 0)
        snprintf(where, sizeof where, "it");
    else
        snprintf(where, sizeof where, "the directory above it, %s,", at);
    const char *allow = "or pass --allow-insecure-plugin-dir "
                        "(MLTK_ALLOW_INSECURE_PLUGIN_DIR=1) to trust it anyway";
    if (owner)
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "refusing %s %s: %s belongs to uid %u, neither root nor you "
                         "(uid %u), who could change what mltk loads; have root or you "
                         "own it (chown), %s", what, path, where, (unsigned)st->st_uid,
                         (unsigned)geteuid(), allow);
    return mltk_errf(err, MLTK_ERR_PLUGIN,
                     "refusing %s %s: %s is writable by %s (mode %04o), so %s could plant "
                     "a plugin; fix it with 'chmod go-w %s', %s", what, path, where,
                     (st->st_mode & S_IWOTH) ? "others" : "its group",
                     (unsigned)(st->st_mode & 07777),
                     (st->st_mode & S_IWOTH) ? "anyone" : "the group's members", at, allow);
}

/* `what` ("plugin directory", ...) at the absolute, resolved `path`: it
 * and each directory above it, up to `stop` (a directory already checked)
 * or /, must belong to root or to us and be writable by no one else.  A
 * directory above may be writable by others when it is sticky: they
 * cannot rename or remove what is ours in it.  `path` itself may not. */
static int check_trusted(const char *what, const char *path, const char *stop,
                         char **err)
{
    if (insecure_allowed() || path[0] != '/')
        return MLTK_OK;
    char *p = mltk_strdup(path);
    if (!p)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    int rc = MLTK_OK;
    for (int self = 1;; self = 0) {
        if (!self && stop && strcmp(p, stop) == 0)
            break;
        struct stat st;
        if (stat(p, &st) != 0) {
            rc = mltk_errf(err, MLTK_ERR_PLUGIN, "%s %s: cannot check %s: %s", what, path,
                           p, strerror(errno));
            break;
        }
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
            rc = refuse(what, path, p, &st, 1, err);
            break;
        }
        if ((st.st_mode & (S_IWGRP | S_IWOTH))
            && (self || !S_ISDIR(st.st_mode) || !(st.st_mode & S_ISVTX))) {
            rc = refuse(what, path, p, &st, 0, err);
            break;
        }
        char *slash = strrchr(p, '/');
        if (!slash || p[1] == '\0')
            break;
        if (slash == p)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    free(p);
    return rc;
}

/* ---- entries ------------------------------------------------------------------ */

/* Add descriptor `d` (owned from here on), or - with `broken` (owned) - a
 * broken descriptor; a name seen before shadows it. */
static int push_entry(mltk_registry_t *r, mltk_desc *d, char *broken, char **err)
{
    entry *first = lookup(r, d->name);
    if (first) {
        mltk_log(MLTK_LOG_DEBUG, "plugin '%s': %s is shadowed by %s%s%s", d->name,
                 d->path, first->d->path, broken ? "; it is broken: " : "",
                 broken ? broken : "");
        mltk_desc_free(d);
        free(broken);
        return MLTK_OK;
    }
    if (r->n == r->cap) {
        int nc = r->cap ? 2 * r->cap : 32;
        entry *ne = realloc(r->e, (size_t)nc * sizeof *ne);
        if (!ne) {
            mltk_desc_free(d);
            free(broken);
            return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        }
        r->e = ne;
        r->cap = nc;
    }
    if (broken)
        mltk_log(MLTK_LOG_WARN, "ignoring plugin '%s': %s", d->name, broken);
    r->e[r->n].d = d;
    r->e[r->n].handle = NULL;
    r->e[r->n].iface = NULL;
    r->e[r->n].broken = broken;
    r->n++;
    return MLTK_OK;
}

/* A broken descriptor at `path`: named `name` (its [plugin] name) or, when
 * that could not be read, after the file. */
static int push_broken(mltk_registry_t *r, const char *path, const char *name,
                       char *why, char **err)
{
    mltk_desc *d = calloc(1, sizeof *d);
    if (d) {
        d->path = mltk_strdup(path);
        d->library = mltk_strdup("");
        if (name) {
            d->name = mltk_strdup(name);
        } else {
            const char *base = strrchr(path, '/');
            base = base ? base + 1 : path;
            d->name = mltk_strdup(base);
            if (d->name && strlen(d->name) > 4)
                d->name[strlen(d->name) - 4] = '\0';   /* ".ini" */
        }
        d->abi_minor = -1;
    }
    if (!d || !d->path || !d->library || !d->name) {
        mltk_desc_free(d);
        free(why);
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    }
    return push_entry(r, d, why ? why : mltk_strdup("unreadable descriptor"), err);
}

/* One *.ini file of the plugin directory `dir` (checked). */
static int scan_file(mltk_registry_t *r, const char *dir, const char *path, char **err)
{
    char *text = NULL, *why = NULL, *name = NULL;
    mltk_desc *d = NULL;
    int rc = mltk_read_file(path, &text, &why);
    if (rc == MLTK_OK && !mltk_desc_sniff(text, &name)) {
        mltk_log(MLTK_LOG_DEBUG, "%s: no [plugin] section, not a plugin descriptor: "
                 "skipped", path);
        free(text);
        return MLTK_OK;
    }
    if (rc == MLTK_OK) {
        char *real = realpath(path, NULL);
        rc = check_trusted("plugin descriptor", real ? real : path, dir, &why);
        free(real);
    }
    if (rc == MLTK_OK)
        rc = mltk_desc_load_text(&d, text, path, &why);
    free(text);
    if (rc == MLTK_ERR_NOMEM) {
        free(name);
        rc = mltk_errf(err, rc, "%s", why ? why : "out of memory");
        free(why);
        return rc;
    }
    rc = rc ? push_broken(r, path, name, why, err) : push_entry(r, d, NULL, err);
    free(name);
    return rc;
}

static int ends_with_ini(const char *s)
{
    size_t n = strlen(s);
    return n > 4 && strcmp(s + n - 4, ".ini") == 0 && s[0] != '.';
}

/* Scan one directory.  A missing directory is an error only when the
 * user named it (`required`). */
static int scan_dir(mltk_registry_t *r, const char *dir, int required, char **err)
{
    char *abs = realpath(dir, NULL);
    if (!abs) {
        if (required)
            return mltk_errf(err, MLTK_ERR_IO, "plugin directory '%s': %s", dir,
                             strerror(errno));
        mltk_log(MLTK_LOG_DEBUG, "plugin directory '%s' skipped: %s", dir,
                 strerror(errno));
        return MLTK_OK;
    }
    for (int i = 0; i < r->n_dirs; i++) {
        if (strcmp(r->dirs[i], abs) == 0) {
            free(abs);
            return MLTK_OK;
        }
    }
    int rc = MLTK_OK;
    DIR *dh = opendir(abs);
    if (!dh) {
        int e = errno;
        if (required)
            rc = mltk_errf(err, MLTK_ERR_IO, "plugin directory '%s': %s", dir,
                           strerror(e));
        else
            mltk_log(MLTK_LOG_DEBUG, "plugin directory '%s' skipped: %s", dir,
                     strerror(e));
        free(abs);
        return rc;
    }
    rc = check_trusted("plugin directory", abs, NULL, err);
    if (rc) {
        closedir(dh);
        free(abs);
        return rc;
    }
    rc = add_dir(r, abs);
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while (rc == MLTK_OK && (de = readdir(dh)) != NULL) {
        if (!ends_with_ini(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) {
                rc = MLTK_ERR_NOMEM;
                break;
            }
            names = nn;
        }
        names[n] = mltk_strdup(de->d_name);
        if (!names[n]) {
            rc = MLTK_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(dh);
    if (rc == MLTK_ERR_NOMEM)
        mltk_errf(err, rc, "out of memory scanning '%s'", abs);
    if (n > 1)
        qsort(names, (size_t)n, sizeof *names, cmp_str);

    for (int i = 0; i < n && rc == MLTK_OK; i++) {
        char *path = mltk_strfmt("%s/%s", abs, names[i]);
        if (!path) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory scanning '%s'", abs);
            break;
        }
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = scan_file(r, abs, path, err);
        free(path);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(abs);
    return rc;
}

/* Scan each directory of a colon-separated list; empty entries skipped. */
static int scan_path(mltk_registry_t *r, const char *list, char **err)
{
    char *copy = mltk_strdup(list);
    if (!copy)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    int rc = MLTK_OK;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ":", &save); tok && rc == MLTK_OK;
         tok = strtok_r(NULL, ":", &save))
        rc = scan_dir(r, tok, 0, err);
    free(copy);
    return rc;
}

/* Is the running program inside the build tree? */
static int in_build_tree(void)
{
    if (!MLTK_BUILD_DIR[0])
        return 0;
    char *exe = realpath("/proc/self/exe", NULL);
    char *build = realpath(MLTK_BUILD_DIR, NULL);
    int in = 0;
    if (exe && build) {
        size_t n = strlen(build);
        in = strncmp(exe, build, n) == 0 && (exe[n] == '/' || exe[n] == '\0');
    }
    free(exe);
    free(build);
    return in;
}

int mltk_registry_create(mltk_registry_t **reg, const char *const *dirs,
                         int use_default_path, char **err)
{
    if (!reg)
        return mltk_errf(err, MLTK_ERR_INVALID, "mltk_registry_create: reg is NULL");
    *reg = NULL;
    mltk_registry_t *r = calloc(1, sizeof *r);
    if (!r)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    int rc = MLTK_OK;
    for (int i = 0; dirs && dirs[i] && rc == MLTK_OK; i++)
        rc = scan_dir(r, dirs[i], 1, err);
    const char *env = getenv("MLTK_PLUGIN_PATH");
    if (rc == MLTK_OK && env && *env)
        rc = scan_path(r, env, err);
    if (rc == MLTK_OK && use_default_path) {
        if (in_build_tree())
            rc = scan_path(r, MLTK_BUILD_PLUGIN_DIRS, err);
        if (rc == MLTK_OK && MLTK_PLUGIN_DIR[0])
            rc = scan_dir(r, MLTK_PLUGIN_DIR, 0, err);
    }
    if (rc) {
        mltk_registry_destroy(r);
        return rc;
    }
    if (r->n > 1)
        qsort(r->e, (size_t)r->n, sizeof *r->e, cmp_entry);
    *reg = r;
    return MLTK_OK;
}

void mltk_registry_destroy(mltk_registry_t *reg)
{
    if (!reg)
        return;
    for (int i = 0; i < reg->n; i++) {
        if (reg->e[i].handle)
            dlclose(reg->e[i].handle);
        mltk_desc_free(reg->e[i].d);
        free(reg->e[i].broken);
    }
    free(reg->e);
    for (int i = 0; i < reg->n_dirs; i++)
        free(reg->dirs[i]);
    free(reg->dirs);
    free(reg);
}

/* ---- enumeration ------------------------------------------------------------ */

int mltk_registry_count(const mltk_registry_t *reg)
{
    return reg ? reg->n : 0;
}

int mltk_registry_info(const mltk_registry_t *reg, int index, mltk_plugin_info *info)
{
    if (!reg || !info || index < 0 || index >= reg->n)
        return MLTK_ERR_INVALID;
    const mltk_desc *d = reg->e[index].d;
    info->name = d->name;
    info->kind = d->kind;
    info->summary = reg->e[index].broken ? reg->e[index].broken
                    : d->summary ? d->summary : "";
    info->descriptor = d->path;
    info->library = d->library;
    info->abi = d->abi;
    info->version = d->version ? d->version : "";
    return MLTK_OK;
}

int mltk_registry_loaded(const mltk_registry_t *reg, int index)
{
    return reg && index >= 0 && index < reg->n && reg->e[index].handle != NULL;
}

int mltk_registry_broken(const mltk_registry_t *reg, const char *name)
{
    const entry *e = reg && name ? lookup(reg, name) : NULL;
    return e && e->broken;
}

/* ---- lookup ----------------------------------------------------------------- */

static const char *kind_plural(int kind)
{
    switch (kind) {
    case MLTK_KIND_BACKEND:   return "backends";
    case MLTK_KIND_LAYER:     return "layers";
    case MLTK_KIND_LOSS:      return "losses";
    case MLTK_KIND_OPTIMIZER: return "optimizers";
    case MLTK_KIND_DATASET:   return "datasets";
    case MLTK_KIND_SCHEDULE:  return "schedules";
    case MLTK_KIND_TRANSFORM: return "transforms";
    }
    return "plugins";
}

static const char *article(int kind)
{
    return kind == MLTK_KIND_OPTIMIZER ? "an" : "a";
}

/* "a, b, c" of the known plugins of `kind` (0: all), malloc()ed */
static char *known_list(const mltk_registry_t *r, int kind, const char ***names,
                        int *n_names)
{
    size_t len = 1;
    int n = 0;
    for (int i = 0; i < r->n; i++) {
        if (kind && r->e[i].d->kind != kind)
            continue;
        len += strlen(r->e[i].d->name) + 2;
        n++;
    }
    char *s = malloc(len);
    const char **v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!s || !v) {
        free(s);
        free(v);
        return NULL;
    }
    s[0] = '\0';
    n = 0;
    for (int i = 0; i < r->n; i++) {
        if (kind && r->e[i].d->kind != kind)
            continue;
        if (n)
            strcat(s, ", ");
        strcat(s, r->e[i].d->name);
        v[n++] = r->e[i].d->name;
    }
    *names = v;
    *n_names = n;
    return s;
}

static int not_found(const mltk_registry_t *r, const char *name, int kind,
                     const entry *other, char **err)
{
    const char *what = kind ? mltk_kind_name(kind) : "plugin";
    const char **names = NULL;
    int n = 0;
    char *list = known_list(r, kind, &names, &n);
    if (!list)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    int rc;
    if (n == 0) {
        char dirs[1024] = "";
        size_t off = 0;
        for (int i = 0; i < r->n_dirs && off < sizeof dirs; i++) {
            int w = snprintf(dirs + off, sizeof dirs - off, "%s%s", i ? ", " : "",
                             r->dirs[i]);
            if (w < 0)
                break;
            off += (size_t)w;
        }
        if (other)
            rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                           "unknown %s '%s': '%s' is %s %s plugin (no %s found)", what,
                           name, name, article(other->d->kind),
                           mltk_kind_name(other->d->kind), kind_plural(kind));
        else if (r->n_dirs)
            rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                           "unknown %s '%s' (no %s found; searched: %s)", what, name,
                           kind_plural(kind), dirs);
        else
            rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                           "unknown %s '%s' (no %s found: no plugin directory exists; "
                           "use --plugin-dir or MLTK_PLUGIN_PATH)", what, name,
                           kind_plural(kind));
    } else if (other) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                       "unknown %s '%s': '%s' is %s %s plugin (known %s: %s)", what, name,
                       name, article(other->d->kind), mltk_kind_name(other->d->kind),
                       kind_plural(kind), list);
    } else {
        const char *hint = mltk_did_you_mean(name, names, n);
        if (hint)
            rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                           "unknown %s '%s'; did you mean '%s'? (known %s: %s)", what,
                           name, hint, kind_plural(kind), list);
        else
            rc = mltk_errf(err, MLTK_ERR_PLUGIN, "unknown %s '%s' (known %s: %s)", what,
                           name, kind_plural(kind), list);
    }
    free(list);
    free(names);
    return rc;
}

static int find_entry(const mltk_registry_t *reg, const char *name, int kind,
                      entry **out, char **err)
{
    *out = NULL;
    if (!reg || !name)
        return mltk_errf(err, MLTK_ERR_INVALID, "plugin lookup: no registry or no name");
    entry *e = lookup(reg, name);
    if (e && e->broken)  /* "file:line: ..." of the descriptor */
        return mltk_errf(err, MLTK_ERR_PLUGIN, "%s", e->broken);
    if (!e || (kind && e->d->kind != kind))
        return not_found(reg, name, kind, e, err);
    *out = e;
    return MLTK_OK;
}

/* ABI 1 (raw float pointers, one vtable member per op) ended with ABI 2;
 * such a plugin only needs a rebuild.  `minor` < 0: not declared. */
static int abi1_refused(const char *name, int minor, const char *what, const char *path,
                        char **err)
{
    if (minor < 0)
        return mltk_errf(err, MLTK_ERR_ABI, "plugin '%s' was built for plugin ABI 1; rebuild "
                         "it against mltk %d headers (%s %s)", name, MLTK_ABI_MAJOR, what, path);
    return mltk_errf(err, MLTK_ERR_ABI, "plugin '%s' was built for plugin ABI 1.%d; rebuild "
                     "it against mltk %d headers (%s %s)", name, minor, MLTK_ABI_MAJOR, what,
                     path);
}

int mltk_registry_find(const mltk_registry_t *reg, const char *name, int kind,
                       const mltk_desc **d, char **err)
{
    *d = NULL;
    entry *e;
    int rc = find_entry(reg, name, kind, &e, err);
    if (rc)
        return rc;
    if (e->d->abi == 1)
        return abi1_refused(name, e->d->abi_minor, "descriptor", e->d->path, err);
    if (e->d->abi != MLTK_ABI_MAJOR)
        return mltk_errf(err, MLTK_ERR_ABI,
                         "plugin '%s' was built for ABI %d, this mltk speaks ABI %d.%d "
                         "(descriptor %s)", name, e->d->abi, MLTK_ABI_MAJOR,
                         MLTK_ABI_MINOR, e->d->path);
    *d = e->d;
    return MLTK_OK;
}

/* ---- loading ---------------------------------------------------------------- */

/* the minimum of each vtable (ABI 2.0), and its members that may not be
 * NULL */
typedef struct member {
    const char *name;
    size_t      off;
} member;

#define M(type, m) { #m, offsetof(type, m) }
#define END_OF(type, m) (offsetof(type, m) + sizeof(((type *)0)->m))

static const member layer_req[] = {
    M(struct mltk_layer_i, create), M(struct mltk_layer_i, destroy),
    M(struct mltk_layer_i, setup), M(struct mltk_layer_i, forward),
    M(struct mltk_layer_i, backward), { NULL, 0 }
};
static const member loss_req[] = {
    M(struct mltk_loss_i, create), M(struct mltk_loss_i, destroy),
    M(struct mltk_loss_i, setup), M(struct mltk_loss_i, forward), { NULL, 0 }
};
static const member optimizer_req[] = {
    M(struct mltk_optimizer_i, create), M(struct mltk_optimizer_i, destroy),
    M(struct mltk_optimizer_i, state_slots), M(struct mltk_optimizer_i, step),
    { NULL, 0 }
};
static const member dataset_req[] = {
    M(struct mltk_dataset_i, open), M(struct mltk_dataset_i, close),
    M(struct mltk_dataset_i, info), { NULL, 0 }  /* get or read: data.c */
};
static const member transform_req[] = {
    M(struct mltk_transform_i, create), M(struct mltk_transform_i, destroy),
    M(struct mltk_transform_i, setup), { NULL, 0 }  /* apply or apply_batch: data.c */
};
static const member schedule_req[] = {
    M(struct mltk_schedule_i, create), M(struct mltk_schedule_i, destroy),
    M(struct mltk_schedule_i, lr), { NULL, 0 }
};
static const member backend_req[] = {
    M(struct mltk_backend_i, probe), M(struct mltk_backend_i, create),
    M(struct mltk_backend_i, destroy), M(struct mltk_backend_i, alloc),
    M(struct mltk_backend_i, free), M(struct mltk_backend_i, upload),
    M(struct mltk_backend_i, download), M(struct mltk_backend_i, copy),
    M(struct mltk_backend_i, sync), M(struct mltk_backend_i, supports),
    M(struct mltk_backend_i, run), { NULL, 0 }
};

static size_t vtable_min_size(int kind, const member **req, const char **sname)
{
    switch (kind) {
    case MLTK_KIND_LAYER:
        *req = layer_req;
        *sname = "mltk_layer_i";
        return END_OF(struct mltk_layer_i, inplace);
    case MLTK_KIND_LOSS:
        *req = loss_req;
        *sname = "mltk_loss_i";
        return END_OF(struct mltk_loss_i, forward);
    case MLTK_KIND_OPTIMIZER:
        *req = optimizer_req;
        *sname = "mltk_optimizer_i";
        return END_OF(struct mltk_optimizer_i, step);
    case MLTK_KIND_DATASET:
        *req = dataset_req;
        *sname = "mltk_dataset_i";
        return END_OF(struct mltk_dataset_i, read);
    case MLTK_KIND_SCHEDULE:  /* observe and the state pair are optional */
        *req = schedule_req;
        *sname = "mltk_schedule_i";
        return END_OF(struct mltk_schedule_i, lr);
    case MLTK_KIND_TRANSFORM:
        *req = transform_req;
        *sname = "mltk_transform_i";
        return END_OF(struct mltk_transform_i, apply_batch);
    case MLTK_KIND_BACKEND:
        *req = backend_req;
        *sname = "mltk_backend_i";
        return END_OF(struct mltk_backend_i, run);  /* workspace, get_proc optional */
    }
    *req = NULL;
    *sname = "?";
    return sizeof(uint32_t);
}

/* Check the struct the entry point returned against the descriptor. */
static int check_plugin(const mltk_desc *d, const struct mltk_plugin *pl, char **err)
{
    if (!pl)
        return mltk_errf(err, MLTK_ERR_PLUGIN, "plugin '%s': %s() in %s returned NULL",
                         d->name, d->symbol, d->library);
    /* abi_major, abi_minor and size come first in every ABI version */
    if (pl->abi_major == 1)
        return abi1_refused(d->name, (int)pl->abi_minor, "library", d->library, err);
    if (pl->abi_major != MLTK_ABI_MAJOR)
        return mltk_errf(err, MLTK_ERR_ABI,
                         "plugin '%s' was built for ABI %u.%u, this mltk speaks ABI %d.%d "
                         "(library %s)", d->name, (unsigned)pl->abi_major,
                         (unsigned)pl->abi_minor, MLTK_ABI_MAJOR, MLTK_ABI_MINOR,
                         d->library);
    if (pl->abi_minor > MLTK_ABI_MINOR)
        return mltk_errf(err, MLTK_ERR_ABI,
                         "plugin '%s' was built for ABI %u.%u, newer than this mltk's ABI "
                         "%d.%d; update mltk or rebuild the plugin (library %s)", d->name,
                         (unsigned)pl->abi_major, (unsigned)pl->abi_minor,
                         MLTK_ABI_MAJOR, MLTK_ABI_MINOR, d->library);
    size_t need = END_OF(struct mltk_plugin, iface);
    if (pl->size < need)
        return mltk_errf(err, MLTK_ERR_ABI,
                         "plugin '%s': %s reports a plugin struct of %u bytes, ABI %d.0 "
                         "needs at least %zu", d->name, d->library, (unsigned)pl->size,
                         MLTK_ABI_MAJOR, need);
    if (!pl->name || strcmp(pl->name, d->name) != 0)
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "plugin '%s': %s calls itself '%s', but its descriptor %s names "
                         "it '%s'", d->name, d->library, pl->name ? pl->name : "(null)",
                         d->path, d->name);
    if (pl->kind != d->kind)
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "plugin '%s': %s is %s %s plugin, but its descriptor %s says %s",
                         d->name, d->library, article(pl->kind), mltk_kind_name(pl->kind),
                         d->path,
                         mltk_kind_name(d->kind));
    if (!pl->iface)
        return mltk_errf(err, MLTK_ERR_PLUGIN, "plugin '%s': %s has no interface "
                         "(iface is NULL)", d->name, d->library);

    const member *req;
    const char *sname;
    size_t min = vtable_min_size(d->kind, &req, &sname);
    uint32_t size;
    memcpy(&size, pl->iface, sizeof size);
    if (size < min)
        return mltk_errf(err, MLTK_ERR_ABI,
                         "plugin '%s': struct %s in %s is %u bytes, ABI %d.0 needs at "
                         "least %zu", d->name, sname, d->library, (unsigned)size,
                         MLTK_ABI_MAJOR, min);
    for (const member *m = req; m && m->name; m++) {
        void (*fp)(void);
        memcpy(&fp, (const char *)pl->iface + m->off, sizeof fp);
        if (!fp)
            return mltk_errf(err, MLTK_ERR_PLUGIN,
                             "plugin '%s': %s leaves required member '%s' of struct %s "
                             "NULL", d->name, d->library, m->name, sname);
    }
    return MLTK_OK;
}

/* ---- the library file ------------------------------------------------------------ */

/* This build's ELF class, byte order and machine; a library must match */
#if UINTPTR_MAX > 0xffffffffu
#define MY_ELFCLASS ELFCLASS64
#else
#define MY_ELFCLASS ELFCLASS32
#endif
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define MY_ELFDATA ELFDATA2MSB
#else
#define MY_ELFDATA ELFDATA2LSB
#endif
#if defined(__x86_64__)
#define MY_ELFMACHINE EM_X86_64
#elif defined(__i386__)
#define MY_ELFMACHINE EM_386
#elif defined(__aarch64__)
#define MY_ELFMACHINE EM_AARCH64
#elif defined(__arm__)
#define MY_ELFMACHINE EM_ARM
#elif defined(__powerpc64__)
#define MY_ELFMACHINE EM_PPC64
#elif defined(__powerpc__)
#define MY_ELFMACHINE EM_PPC
#elif defined(__riscv)
#define MY_ELFMACHINE EM_RISCV
#elif defined(__s390__)
#define MY_ELFMACHINE EM_S390
#else
#define MY_ELFMACHINE EM_NONE  /* not checked */
#endif

/* read exactly n bytes at off: 0, else -1 */
static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
    char *p = buf;
    while (n) {
        ssize_t got = pread(fd, p, n, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
        off += (uint64_t)got;
    }
    return 0;
}

/* Is the open file `fd` of `size` bytes a whole ELF shared object for this
 * machine?  0, or 1 (truncated or not a shared object) or 2 (for another
 * machine) with what is wrong in why[n]. */
static int elf_whole(int fd, uint64_t size, char *why, size_t n)
{
    ElfW(Ehdr) eh;
    if (size < sizeof eh || read_at(fd, &eh, sizeof eh, 0)) {
        snprintf(why, n, "%llu bytes, shorter than an ELF header", (unsigned long long)size);
        return 1;
    }
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
        snprintf(why, n, "not an ELF file");
        return 1;
    }
    if (eh.e_ident[EI_CLASS] != MY_ELFCLASS) {
        snprintf(why, n, "a %s object, this mltk is %s",
                 eh.e_ident[EI_CLASS] == ELFCLASS64 ? "64-bit" : "32-bit",
                 MY_ELFCLASS == ELFCLASS64 ? "64-bit" : "32-bit");
        return 2;
    }
    if (eh.e_ident[EI_DATA] != MY_ELFDATA) {
        snprintf(why, n, "of the other byte order");
        return 2;
    }
    if (eh.e_type != ET_DYN) {
        snprintf(why, n, "ELF type %u, not a shared object", (unsigned)eh.e_type);
        return 1;
    }
    if (MY_ELFMACHINE != EM_NONE && eh.e_machine != MY_ELFMACHINE) {
        snprintf(why, n, "built for ELF machine %u, this mltk runs on %u",
                 (unsigned)eh.e_machine, (unsigned)MY_ELFMACHINE);
        return 2;
    }
    if (eh.e_phnum == 0 || eh.e_phentsize != sizeof(ElfW(Phdr))) {
        snprintf(why, n, "no program headers");
        return 1;
    }
    uint64_t end = (uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr));
    if (end < eh.e_phoff || end > size) {
        snprintf(why, n, "the program headers end at byte %llu, the file has %llu",
                 (unsigned long long)end, (unsigned long long)size);
        return 1;
    }
    if (eh.e_shoff) {
        ElfW(Shdr) sh0;
        uint64_t count = eh.e_shnum;
        if (eh.e_shentsize != sizeof(ElfW(Shdr))) {
            snprintf(why, n, "section headers of %u bytes", (unsigned)eh.e_shentsize);
            return 1;
        }
        if (count == 0) {  /* more than 0xff00: the count is in section 0 */
            if (eh.e_shoff > size - sizeof sh0 || size < sizeof sh0
                || read_at(fd, &sh0, sizeof sh0, eh.e_shoff)) {
                snprintf(why, n, "the section headers start past the end of the file "
                         "(%llu bytes)", (unsigned long long)size);
                return 1;
            }
            count = sh0.sh_size;
        }
        if (count > (UINT64_MAX - eh.e_shoff) / sizeof sh0
            || eh.e_shoff + count * sizeof sh0 > size) {
            snprintf(why, n, "the section headers end past the end of the file (%llu bytes)",
                     (unsigned long long)size);
            return 1;
        }
    }
    ElfW(Phdr) *ph = malloc((size_t)eh.e_phnum * sizeof *ph);
    if (!ph || read_at(fd, ph, (size_t)eh.e_phnum * sizeof *ph, eh.e_phoff)) {
        free(ph);
        snprintf(why, n, "its program headers cannot be read");
        return 1;
    }
    int rc = 0, loads = 0;
    for (int i = 0; i < eh.e_phnum && !rc; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        loads++;
        uint64_t off = ph[i].p_offset, len = ph[i].p_filesz;
        if (off > size || len > size - off) {
            snprintf(why, n, "loadable segment %d ends at byte %llu, the file has %llu", i,
                     (unsigned long long)(off + len), (unsigned long long)size);
            rc = 1;
        }
    }
    free(ph);
    if (!rc && !loads) {
        snprintf(why, n, "no loadable segment");
        rc = 1;
    }
    return rc;
}

/* Everything checked of a plugin's library before dlopen(): who may write
 * it, and that it is whole. */
static int check_library(const mltk_desc *d, char **err)
{
    char *real = realpath(d->library, NULL);
    if (!real)
        return mltk_errf(err, MLTK_ERR_PLUGIN, "plugin '%s': library %s: %s (descriptor %s)",
                         d->name, d->library, strerror(errno), d->path);
    int rc = check_trusted("plugin library", real, NULL, err);
    free(real);
    if (rc)
        return rc;
    int fd = open(d->library, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN, "plugin '%s': cannot open library %s: %s "
                       "(descriptor %s)", d->name, d->library, strerror(errno), d->path);
        if (fd >= 0)
            close(fd);
        return rc;
    }
    char why[160];
    int bad = S_ISREG(st.st_mode) ? elf_whole(fd, (uint64_t)st.st_size, why, sizeof why)
                                  : (snprintf(why, sizeof why, "not a regular file"), 1);
    close(fd);
    if (bad == 2)
        return mltk_errf(err, MLTK_ERR_PLUGIN, "plugin '%s': library %s is not for this "
                         "machine (%s; descriptor %s)", d->name, d->library, why, d->path);
    if (bad)
        return mltk_errf(err, MLTK_ERR_PLUGIN, "plugin '%s': library %s is truncated or not "
                         "a shared object (%s; descriptor %s)", d->name, d->library, why,
                         d->path);
    return MLTK_OK;
}

int mltk_registry_load(mltk_registry_t *reg, const char *name, int kind,
                       const void **iface, char **err)
{
    *iface = NULL;
    const mltk_desc *d;
    int rc = mltk_registry_find(reg, name, kind, &d, err);
    if (rc)
        return rc;
    entry *e = lookup(reg, name);
    if (e->iface) {
        *iface = e->iface;
        return MLTK_OK;
    }
    if (access(d->library, F_OK) != 0)
        return mltk_errf(err, MLTK_ERR_PLUGIN,
                         "plugin '%s': library %s not found (descriptor %s)", name,
                         d->library, d->path);
    rc = check_library(d, err);
    if (rc)
        return rc;
    dlerror();
    /* RTLD_NODELETE: a plugin stays mapped after dlclose.  Libraries that
     * plugins pull in (the CUDA runtime, libstdc++) register exit handlers
     * and keep allocations that must outlive an unload; unmapping them
     * would run dangling handlers at exit. */
    void *h = dlopen(d->library, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        const char *why = dlerror();
        return mltk_errf(err, MLTK_ERR_PLUGIN, "plugin '%s': cannot load %s: %s",
                         name, d->library, why ? why : "unknown dlopen error");
    }
    dlerror();
    void *sym = dlsym(h, d->symbol);
    if (!sym) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN,
                       "plugin '%s': %s does not export '%s' (descriptor %s)", name,
                       d->library, d->symbol, d->path);
        dlclose(h);
        return rc;
    }
    mltk_plugin_entry_fn entry_fn;
    memcpy(&entry_fn, &sym, sizeof entry_fn);
    const struct mltk_plugin *pl = entry_fn();
    rc = check_plugin(d, pl, err);
    if (rc) {
        dlclose(h);
        return rc;
    }
    e->handle = h;
    e->iface = pl->iface;
    *iface = pl->iface;
    mltk_log(MLTK_LOG_DEBUG, "loaded %s plugin '%s' from %s", mltk_kind_name(kind ? kind : d->kind),
             name, d->library);
    return MLTK_OK;
}

/* ---- describing -------------------------------------------------------------- */

static void range_text(const mltk_param_def *pd, char *buf, size_t n)
{
    if (pd->type == MLTK_P_ENUM && pd->choices) {
        size_t off = 0;
        buf[0] = '\0';
        for (char **c = pd->choices; *c && off < n; c++) {
            int w = snprintf(buf + off, n - off, "%s%s", c == pd->choices ? "" : "|", *c);
            if (w < 0)
                break;
            off += (size_t)w;
        }
    } else if (pd->has_min && pd->has_max) {
        snprintf(buf, n, "[%.15g, %.15g]", pd->min, pd->max);
    } else if (pd->has_min) {
        snprintf(buf, n, ">= %.15g", pd->min);
    } else if (pd->has_max) {
        snprintf(buf, n, "<= %.15g", pd->max);
    } else {
        snprintf(buf, n, "-");
    }
}

/* columns of UTF-8 text (one per character) */
static int text_cols(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n && s[i]; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

static int width(int w, const char *s)
{
    int l = text_cols(s, strlen(s));
    return l > w ? l : w;
}

/* The width `mltk plugins show` wraps at: $COLUMNS, else the terminal's
 * when f is one, else 80. */
static int out_columns(FILE *f)
{
    const char *c = getenv("COLUMNS");
    if (c && *c) {
        char *end;
        long v = strtol(c, &end, 10);
        if (!*end && v >= 20 && v <= 10000)
            return (int)v;
    }
    struct winsize ws;
    int fd = fileno(f);
    if (fd >= 0 && isatty(fd) && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

/* The next line, of at most `cols` columns, of the text at *sp, broken
 * between words (sep ' ') or after a '|' (sep '|', enum choices); a word
 * longer than a line is a line of its own.  Sets *start and returns the
 * line's length in bytes (0 at the end), and advances *sp past it. */
static size_t next_line(const char **sp, int cols, char sep, const char **start)
{
    const char *s = *sp;
    while (sep == ' ' && *s == ' ')
        s++;
    const char *end = s;
    int w = 0;
    for (;;) {
        const char *t = end;
        while (sep == ' ' && *t == ' ')
            t++;
        if (!*t)
            break;
        size_t n = strcspn(t, sep == ' ' ? " " : "|");
        if (sep == '|' && t[n] == '|')
            n++;
        int tw = text_cols(end, (size_t)(t + n - end));
        if (end > s && w + tw > cols)
            break;
        w += tw;
        end = t + n;
    }
    *start = s;
    *sp = end;
    return (size_t)(end - s);
}

/* Output that leaves no blanks at the end of a line: pad() only counts
 * blanks, put() writes them before its text. */
typedef struct lineout {
    FILE *f;
    int   pad;
} lineout;

static void pad(lineout *o, int n)
{
    o->pad += n > 0 ? n : 0;
}

static void put(lineout *o, const char *s, size_t n)
{
    if (!n)
        return;
    fprintf(o->f, "%*s", o->pad, "");
    o->pad = 0;
    fwrite(s, 1, n, o->f);
}

static void endl(lineout *o)
{
    o->pad = 0;
    fputc('\n', o->f);
}

/* Print `text` word by word, the first line from column `col` (already
 * printed up to there), later lines indented by `indent`, none past
 * `cols` but for a word longer than a line; then a newline. */
static void put_wrapped(FILE *f, const char *text, int col, int indent, int cols)
{
    int first = 1;
    for (const char *s = text; *s;) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        size_t n = strcspn(s, " ");
        int w = text_cols(s, n);
        if (!first && col + 1 + w > cols) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            first = 1;
        }
        if (!first) {
            fputc(' ', f);
            col++;
        }
        fwrite(s, 1, n, f);
        col += w;
        first = 0;
        s += n;
    }
    fputc('\n', f);
}

int mltk_registry_describe(const mltk_registry_t *reg, const char *name,
                           void *FILE_out, char **err)
{
    FILE *f = FILE_out ? FILE_out : stdout;
    entry *e;
    int rc = find_entry(reg, name, 0, &e, err);
    if (rc)
        return rc;
    const mltk_desc *d = e->d;
    int cols = out_columns(f);
    fprintf(f, "%s - ", d->name);
    put_wrapped(f, d->summary ? d->summary : "(no summary)", text_cols(d->name, strlen(d->name)) + 3,
                text_cols(d->name, strlen(d->name)) + 3, cols);
    fprintf(f, "  kind:       %s\n", mltk_kind_name(d->kind));
    if (d->version)
        fprintf(f, "  version:    %s\n", d->version);
    if (d->abi == MLTK_ABI_MAJOR)
        fprintf(f, "  ABI:        %d\n", d->abi);
    else
        fprintf(f, "  ABI:        %d (this mltk speaks ABI %d.%d: cannot be loaded)\n",
                d->abi, MLTK_ABI_MAJOR, MLTK_ABI_MINOR);
    fprintf(f, "  descriptor: %s\n", d->path);
    fprintf(f, "  library:    %s%s\n", d->library,
            access(d->library, F_OK) == 0 ? "" : " (not found)");
    if (d->n_params == 0) {
        fprintf(f, "\nparameters: none\n");
        return MLTK_OK;
    }

    static const char *const head[5] = { "NAME", "TYPE", "DEFAULT", "RANGE", "REQUIRED" };
    int w[5];
    for (int c = 0; c < 5; c++)
        w[c] = (int)strlen(head[c]);
    char range[256];
    for (int i = 0; i < d->n_params; i++) {
        const mltk_param_def *pd = &d->params[i];
        range_text(pd, range, sizeof range);
        w[0] = width(w[0], pd->name);
        w[1] = width(w[1], mltk_ptype_name(pd->type));
        w[2] = width(w[2], pd->def ? pd->def : "-");
        w[3] = width(w[3], range);
    }
    /* The description wraps in its column, at least 20 wide, RANGE
     * wrapping after a '|' of the choices to make room for it; when there
     * is no such room, the description goes under its row, indented, and
     * RANGE wraps only to stay within the width. */
    int longest = 0;   /* the longest choice, which cannot wrap */
    for (int i = 0; i < d->n_params; i++) {
        range_text(&d->params[i], range, sizeof range);
        const char *l;
        for (const char *r = range; *r;) {
            size_t n = next_line(&r, 1, '|', &l);
            longest = text_cols(l, n) > longest ? text_cols(l, n) : longest;
        }
    }
    int fixed = 2 + w[0] + 2 + w[1] + 2 + w[2] + 2 + 2 + w[4] + 2;
    int want_doc = 11;  /* "DESCRIPTION", up to 30 when the texts are longer */
    for (int i = 0; i < d->n_params; i++)
        want_doc = width(want_doc, d->params[i].doc ? d->params[i].doc : "");
    int wr = cols - fixed - (want_doc < 30 ? want_doc : 30);
    wr = wr < longest ? longest : wr;
    wr = wr < w[3] ? wr : w[3];
    int under = cols - fixed - wr < 20;
    if (under) {
        wr = cols - fixed < longest ? longest : cols - fixed;
        wr = wr < w[3] ? wr : w[3];
    }
    w[3] = wr > (int)strlen(head[3]) ? wr : (int)strlen(head[3]);
    int doc_col = fixed + w[3];
    lineout o = { f, 0 };
    fprintf(f, "\nparameters:\n");
    pad(&o, 2);
    for (int c = 0; c < 5; c++) {
        put(&o, head[c], strlen(head[c]));
        pad(&o, w[c] - (int)strlen(head[c]) + 2);
    }
    if (!under || doc_col + 11 <= cols)
        put(&o, "DESCRIPTION", 11);
    endl(&o);
    for (int i = 0; i < d->n_params; i++) {
        const mltk_param_def *pd = &d->params[i];
        range_text(pd, range, sizeof range);
        const char *cells[5] = { pd->name, mltk_ptype_name(pd->type), pd->def ? pd->def : "-",
                                 NULL, pd->required ? "yes" : "no" };
        const char *rs = range, *ds = pd->doc ? pd->doc : "";
        for (int line = 0;; line++) {
            const char *r0, *d0 = "";
            size_t rn = next_line(&rs, w[3], '|', &r0);
            size_t dn = under ? 0 : next_line(&ds, cols - doc_col, ' ', &d0);
            if (line > 0 && !rn && !dn)
                break;
            pad(&o, 2);
            for (int c = 0; c < 5; c++) {
                const char *t = c == 3 ? r0 : line ? "" : cells[c];
                size_t n = c == 3 ? rn : strlen(t);
                put(&o, t, n);
                pad(&o, w[c] - text_cols(t, n) + 2);
            }
            put(&o, d0, dn);
            endl(&o);
        }
        const char *l;
        for (size_t n; under && (n = next_line(&ds, cols - 6, ' ', &l)) > 0;) {
            pad(&o, 6);
            put(&o, l, n);
            endl(&o);
        }
    }
    return ferror(f) ? mltk_errf(err, MLTK_ERR_IO, "cannot write the description of '%s'",
                                 name) : MLTK_OK;
}
