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
 * a name wins and later ones are logged (debug) as shadowed.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
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

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->d->kind != y->d->kind)
        return x->d->kind - y->d->kind;
    return strcmp(x->d->name, y->d->name);
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
    DIR *dh = opendir(abs);
    if (!dh) {
        int e = errno;
        int rc = MLTK_OK;
        if (required)
            rc = mltk_errf(err, MLTK_ERR_IO, "plugin directory '%s': %s", dir,
                           strerror(e));
        else
            mltk_log(MLTK_LOG_DEBUG, "plugin directory '%s' skipped: %s", dir,
                     strerror(e));
        free(abs);
        return rc;
    }
    int rc = add_dir(r, abs);
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
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        mltk_desc *d = NULL;
        rc = mltk_desc_load(&d, path, err);
        free(path);
        if (rc)
            break;
        entry *first = lookup(r, d->name);
        if (first) {
            mltk_log(MLTK_LOG_DEBUG, "plugin '%s': %s is shadowed by %s", d->name,
                     d->path, first->d->path);
            mltk_desc_free(d);
            continue;
        }
        if (r->n == r->cap) {
            int nc = r->cap ? 2 * r->cap : 32;
            entry *ne = realloc(r->e, (size_t)nc * sizeof *ne);
            if (!ne) {
                mltk_desc_free(d);
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory scanning '%s'", abs);
                break;
            }
            r->e = ne;
            r->cap = nc;
        }
        r->e[r->n].d = d;
        r->e[r->n].handle = NULL;
        r->e[r->n].iface = NULL;
        r->n++;
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
    info->summary = d->summary ? d->summary : "";
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
    M(struct mltk_dataset_i, info), M(struct mltk_dataset_i, read), { NULL, 0 }
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

static int width(int w, const char *s)
{
    int l = (int)strlen(s);
    return l > w ? l : w;
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
    fprintf(f, "%s - %s\n", d->name, d->summary ? d->summary : "(no summary)");
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
    fprintf(f, "\nparameters:\n  %-*s  %-*s  %-*s  %-*s  %-*s  DESCRIPTION\n", w[0],
            head[0], w[1], head[1], w[2], head[2], w[3], head[3], w[4], head[4]);
    for (int i = 0; i < d->n_params; i++) {
        const mltk_param_def *pd = &d->params[i];
        range_text(pd, range, sizeof range);
        fprintf(f, "  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], pd->name, w[1],
                mltk_ptype_name(pd->type), w[2], pd->def ? pd->def : "-", w[3], range,
                w[4], pd->required ? "yes" : "no", pd->doc ? pd->doc : "");
    }
    return ferror(f) ? mltk_errf(err, MLTK_ERR_IO, "cannot write the description of '%s'",
                                 name) : MLTK_OK;
}
