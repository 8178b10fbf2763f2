/* check_registry.c - tests of core/registry.c.
 *
 * What this is: the scan of plugin directories (order, shadowing,
 * MLTK_PLUGIN_PATH, what is skipped, absolute paths), lookups with their
 * did-you-mean messages, `mltk plugins show`'s table, and loading: one
 * good plugin and one broken plugin per check the loader makes, each with
 * the exact message a user would read.  The plugins are the modules under
 * tests/badplugins, built by `make check`; their descriptors are copied
 * into a temporary directory, pointing at the built modules.  Also: broken
 * descriptors that do not fail the scan, INI files that are not
 * descriptors, the refusal of directories, descriptors and libraries that
 * others may write to, entry symbols outside mltk_plugin_*, truncated and
 * foreign libraries (refused before dlopen), and the width of `plugins
 * show`.
 * What this is not: tests of real plugins (tests/plugins.mk).
 */
#include "config.h"

#include <check.h>
#include <elf.h>
#include <link.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

static char *tmp;     /* per-test scratch directory */
static char *realtmp; /* its realpath() */

/* Files the tests write are private (0644, directories 0700) whatever the
 * caller's umask.  MLTK_ALLOW_INSECURE_PLUGIN_DIR stays as the test
 * environment sets it (for a build tree that its umask left writable by
 * the group: the modules under tests/badplugins); the tests of the
 * permission checks unset it. */
static void setup(void)
{
    unsetenv("MLTK_PLUGIN_PATH");
    unsetenv("COLUMNS");
    umask(022);
    tmp = tu_tmpdir();
    realtmp = realpath(tmp, NULL);
    ck_assert_ptr_nonnull(realtmp);
}

static void teardown(void)
{
    tu_rmtree(tmp);
    free(tmp);
    free(realtmp);
}

/* A subdirectory of tmp; malloc()ed path. */
static char *subdir(const char *name)
{
    char *d = tu_fmt("%s/%s", tmp, name);
    ck_assert_int_eq(mkdir(d, 0700), 0);
    return d;
}

static char *replace(const char *s, const char *what, const char *with)
{
    size_t n = 0, lw = strlen(what), lr = strlen(with);
    for (const char *p = strstr(s, what); p; p = strstr(p + lw, what))
        n++;
    char *out = malloc(strlen(s) + n * lr + 1);
    ck_assert_ptr_nonnull(out);
    char *o = out;
    for (const char *p; (p = strstr(s, what)) != NULL; s = p + lw) {
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        memcpy(o, with, lr);
        o += lr;
    }
    strcpy(o, s);
    return out;
}

static char *fake_desc(const char *name, const char *kind, const char *extra)
{
    return tu_fmt("[plugin]\nname = %s\nkind = %s\nabi = 2\nlibrary = %s.so\n%s", name,
                  kind, name, extra ? extra : "");
}

/* ---- scanning ---------------------------------------------------------------- */

START_TEST(test_scan_order_and_info)
{
    char *a = subdir("a"), *b = subdir("b");
    char *t;
    free(tu_write(a, "dense.ini", t = fake_desc("dense", "layer", "summary = first\n")));
    free(t);
    free(tu_write(a, "adam.ini", t = fake_desc("adam", "optimizer", "version = 2.0\n")));
    free(t);
    free(tu_write(a, "cpu.ini", t = fake_desc("cpu", "backend", NULL)));
    free(t);
    free(tu_write(a, "notes.txt", "not a descriptor"));
    free(tu_write(a, ".hidden.ini", "this would not parse"));
    char *sub = tu_fmt("%s/dir.ini", a);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    free(sub);
    free(tu_write(b, "dense.ini", t = fake_desc("dense", "layer", "summary = second\n")));
    free(t);
    free(tu_write(b, "idx.ini", t = fake_desc("idx", "dataset", NULL)));
    free(t);

    const char *dirs[] = { a, b, NULL };
    mltk_registry_t *reg = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_registry_create(&reg, dirs, 0, &err) == MLTK_OK, "%s", err);
    ck_assert_int_eq(mltk_registry_count(reg), 4);

    /* sorted by kind, then name */
    static const char *const names[] = { "cpu", "dense", "adam", "idx" };
    static const int kinds[] = { MLTK_KIND_BACKEND, MLTK_KIND_LAYER, MLTK_KIND_OPTIMIZER,
                                 MLTK_KIND_DATASET };
    static const char *const where[] = { "a", "a", "a", "b" };
    for (int i = 0; i < 4; i++) {
        mltk_plugin_info info;
        ck_assert_int_eq(mltk_registry_info(reg, i, &info), MLTK_OK);
        ck_assert_str_eq(info.name, names[i]);
        ck_assert_int_eq(info.kind, kinds[i]);
        ck_assert_int_eq(info.abi, MLTK_ABI_MAJOR);
        char *desc = tu_fmt("%s/%s/%s.ini", realtmp, where[i], names[i]);
        char *lib = tu_fmt("%s/%s/%s.so", realtmp, where[i], names[i]);
        ck_assert_str_eq(info.descriptor, desc);
        ck_assert_str_eq(info.library, lib);
        free(desc);
        free(lib);
    }
    mltk_plugin_info info;
    ck_assert_int_eq(mltk_registry_info(reg, 1, &info), MLTK_OK);
    ck_assert_str_eq(info.summary, "first");   /* the first directory wins */
    ck_assert_str_eq(info.version, "");
    ck_assert_int_eq(mltk_registry_info(reg, 2, &info), MLTK_OK);
    ck_assert_str_eq(info.version, "2.0");
    ck_assert_str_eq(info.summary, "");
    ck_assert_int_eq(mltk_registry_info(reg, 4, &info), MLTK_ERR_INVALID);
    ck_assert_int_eq(mltk_registry_info(reg, -1, &info), MLTK_ERR_INVALID);
    mltk_registry_destroy(reg);

    /* the other order: b's dense wins */
    const char *dirs2[] = { b, a, NULL };
    ck_assert_int_eq(mltk_registry_create(&reg, dirs2, 0, &err), MLTK_OK);
    const mltk_desc *d = NULL;
    ck_assert_int_eq(mltk_registry_find(reg, "dense", MLTK_KIND_LAYER, &d, &err), MLTK_OK);
    ck_assert_str_eq(d->summary, "second");
    mltk_registry_destroy(reg);

    /* the same directory twice is scanned once */
    const char *dirs3[] = { a, a, NULL };
    ck_assert_int_eq(mltk_registry_create(&reg, dirs3, 0, &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_count(reg), 3);
    mltk_registry_destroy(reg);
    ck_assert_ptr_null(err);
    free(a);
    free(b);
}
END_TEST

START_TEST(test_scan_plugin_path)
{
    char *a = subdir("a"), *b = subdir("b");
    char *t;
    free(tu_write(a, "dense.ini", t = fake_desc("dense", "layer", "summary = in a\n")));
    free(t);
    free(tu_write(b, "dense.ini", t = fake_desc("dense", "layer", "summary = in b\n")));
    free(t);
    free(tu_write(b, "sgd.ini", t = fake_desc("sgd", "optimizer", NULL)));
    free(t);

    /* empty entries and missing directories in the path are skipped */
    char *path = tu_fmt("%s::%s/missing:%s", b, tmp, a);
    setenv("MLTK_PLUGIN_PATH", path, 1);
    mltk_registry_t *reg = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_registry_create(&reg, NULL, 0, &err) == MLTK_OK, "%s", err);
    ck_assert_int_eq(mltk_registry_count(reg), 2);
    const mltk_desc *d = NULL;
    ck_assert_int_eq(mltk_registry_find(reg, "dense", MLTK_KIND_LAYER, &d, &err), MLTK_OK);
    ck_assert_str_eq(d->summary, "in b");
    mltk_registry_destroy(reg);

    /* directories given come before the environment */
    const char *dirs[] = { a, NULL };
    ck_assert_int_eq(mltk_registry_create(&reg, dirs, 0, &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_find(reg, "dense", MLTK_KIND_LAYER, &d, &err), MLTK_OK);
    ck_assert_str_eq(d->summary, "in a");
    ck_assert_int_eq(mltk_registry_find(reg, "sgd", MLTK_KIND_OPTIMIZER, &d, &err),
                     MLTK_OK);
    mltk_registry_destroy(reg);
    free(path);
    free(a);
    free(b);
}
END_TEST

static void expect_find(mltk_registry_t *reg, const char *name, int kind, int rc,
                        const char *msg);

START_TEST(test_scan_errors)
{
    mltk_registry_t *reg = (mltk_registry_t *)&reg;
    char *err = NULL;
    char *missing = tu_fmt("%s/does-not-exist", tmp);
    const char *dirs[] = { missing, NULL };
    ck_assert_int_eq(mltk_registry_create(&reg, dirs, 0, &err), MLTK_ERR_IO);
    ck_assert_ptr_null(reg);
    char *want = tu_fmt("plugin directory '%s': No such file or directory", missing);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;

    /* a malformed descriptor does not fail the scan: it is listed as
     * broken (kind 0, its error as summary), and asking for it - by any
     * kind - fails with its error, naming file and line */
    char *a = subdir("a");
    char *t = fake_desc("x", "layer", "bogus = 1\n");
    free(tu_write(a, "x.ini", t));
    free(t);
    free(tu_write(a, "y.ini", t = fake_desc("y", "layer", NULL)));
    free(t);
    const char *dirs2[] = { a, NULL };
    ck_assert_msg(mltk_registry_create(&reg, dirs2, 0, &err) == MLTK_OK, "%s", err);
    ck_assert_int_eq(mltk_registry_count(reg), 2);
    want = tu_fmt("%s/a/x.ini:6: [plugin]: unknown key 'bogus' (valid keys: name, kind, "
                  "abi, library, symbol, summary, version)", realtmp);
    mltk_plugin_info info;
    ck_assert_int_eq(mltk_registry_info(reg, 1, &info), MLTK_OK);  /* broken ones last */
    ck_assert_str_eq(info.name, "x");
    ck_assert_int_eq(info.kind, 0);
    ck_assert_str_eq(info.summary, want);
    ck_assert_int_eq(mltk_registry_broken(reg, "x"), 1);
    ck_assert_int_eq(mltk_registry_broken(reg, "y"), 0);
    ck_assert_int_eq(mltk_registry_broken(reg, "z"), 0);
    expect_find(reg, "x", MLTK_KIND_LAYER, MLTK_ERR_PLUGIN, want);
    expect_find(reg, "x", MLTK_KIND_LOSS, MLTK_ERR_PLUGIN, want);
    expect_find(reg, "x", 0, MLTK_ERR_PLUGIN, want);
    const mltk_desc *d = NULL;
    ck_assert_int_eq(mltk_registry_find(reg, "y", MLTK_KIND_LAYER, &d, &err), MLTK_OK);
    FILE *f = open_memstream(&t, &(size_t){ 0 });
    ck_assert_int_eq(mltk_registry_describe(reg, "x", f, &err), MLTK_ERR_PLUGIN);
    fclose(f);
    ck_assert_str_eq(t, "");
    free(t);
    ck_assert_str_eq(err, want);
    free(err);
    err = NULL;
    mltk_registry_destroy(reg);
    free(want);

    /* one that cannot even be read as text is named after its file */
    free(tu_write(a, "z.ini", "[plugin]\nname = z\n"));
    char *zpath = tu_fmt("%s/z.ini", a);
    FILE *zf = fopen(zpath, "ab");
    ck_assert_ptr_nonnull(zf);
    fputc('\0', zf);
    fclose(zf);
    free(zpath);
    ck_assert_int_eq(mltk_registry_create(&reg, dirs2, 0, &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_count(reg), 3);
    ck_assert_int_eq(mltk_registry_broken(reg, "z"), 1);
    ck_assert_int_eq(mltk_registry_find(reg, "z", 0, &d, &err), MLTK_ERR_PLUGIN);
    TU_ASSERT_CONTAINS(err, "z.ini");
    free(err);
    mltk_registry_destroy(reg);
    free(missing);
    free(a);

    ck_assert_int_eq(mltk_registry_create(NULL, NULL, 0, NULL), MLTK_ERR_INVALID);
    ck_assert_int_eq(mltk_registry_count(NULL), 0);
    mltk_registry_destroy(NULL);
}
END_TEST

/* ---- lookups ----------------------------------------------------------------- */

static mltk_registry_t *fake_registry(void)
{
    char *a = subdir("plugins");
    static const char *const plugins[][2] = {
        { "dense", "layer" }, { "flatten", "layer" }, { "relu", "layer" },
        { "adam", "optimizer" }, { "sgd", "optimizer" }, { "idx", "dataset" },
    };
    for (int i = 0; i < 6; i++) {
        char *name = tu_fmt("%s.ini", plugins[i][0]);
        char *t = fake_desc(plugins[i][0], plugins[i][1], NULL);
        free(tu_write(a, name, t));
        free(t);
        free(name);
    }
    const char *dirs[] = { a, NULL };
    mltk_registry_t *reg = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_registry_create(&reg, dirs, 0, &err) == MLTK_OK, "%s", err);
    free(a);
    return reg;
}

static void expect_find(mltk_registry_t *reg, const char *name, int kind, int rc,
                        const char *msg)
{
    const mltk_desc *d = (const mltk_desc *)&d;
    char *err = NULL;
    ck_assert_int_eq(mltk_registry_find(reg, name, kind, &d, &err), rc);
    ck_assert_ptr_null(d);
    ck_assert_str_eq(err, msg);
    free(err);
}

START_TEST(test_find)
{
    mltk_registry_t *reg = fake_registry();
    const mltk_desc *d = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_registry_find(reg, "relu", MLTK_KIND_LAYER, &d, &err), MLTK_OK);
    ck_assert_str_eq(d->name, "relu");
    ck_assert_int_eq(mltk_registry_find(reg, "relu", 0, &d, &err), MLTK_OK);
    ck_assert_ptr_null(err);

    expect_find(reg, "dnese", MLTK_KIND_LAYER, MLTK_ERR_PLUGIN,
                "unknown layer 'dnese'; did you mean 'dense'? (known layers: dense, "
                "flatten, relu)");
    expect_find(reg, "conv2d", MLTK_KIND_LAYER, MLTK_ERR_PLUGIN,
                "unknown layer 'conv2d' (known layers: dense, flatten, relu)");
    expect_find(reg, "adma", MLTK_KIND_OPTIMIZER, MLTK_ERR_PLUGIN,
                "unknown optimizer 'adma'; did you mean 'adam'? (known optimizers: adam, "
                "sgd)");
    expect_find(reg, "sgd", MLTK_KIND_LAYER, MLTK_ERR_PLUGIN,
                "unknown layer 'sgd': 'sgd' is an optimizer plugin (known layers: dense, "
                "flatten, relu)");
    expect_find(reg, "dense", MLTK_KIND_LOSS, MLTK_ERR_PLUGIN,
                "unknown loss 'dense': 'dense' is a layer plugin (no losses found)");
    char *want = tu_fmt("unknown loss 'mse' (no losses found; searched: %s/plugins)",
                        realtmp);
    expect_find(reg, "mse", MLTK_KIND_LOSS, MLTK_ERR_PLUGIN, want);
    free(want);
    want = tu_fmt("unknown backend 'cpu' (no backends found; searched: %s/plugins)",
                  realtmp);
    expect_find(reg, "cpu", MLTK_KIND_BACKEND, MLTK_ERR_PLUGIN, want);
    free(want);
    expect_find(reg, "flaten", 0, MLTK_ERR_PLUGIN,
                "unknown plugin 'flaten'; did you mean 'flatten'? (known plugins: dense, "
                "flatten, relu, adam, sgd, idx)");
    mltk_registry_destroy(reg);

    /* nothing on the plugin path at all */
    ck_assert_int_eq(mltk_registry_create(&reg, NULL, 0, &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_count(reg), 0);
    expect_find(reg, "dense", MLTK_KIND_LAYER, MLTK_ERR_PLUGIN,
                "unknown layer 'dense' (no layers found: no plugin directory exists; use "
                "--plugin-dir or MLTK_PLUGIN_PATH)");
    mltk_registry_destroy(reg);
}
END_TEST

/* ---- describing ---------------------------------------------------------------- */

START_TEST(test_describe)
{
    char *a = subdir("a");
    free(tu_write(a, "dense.ini",
                  "[plugin]\nname = dense\nkind = layer\nabi = 2\nlibrary = dense.so\n"
                  "summary = Fully connected layer, y = x W^T + b\nversion = 0.1.0\n"
                  "[param.units]\ntype = int\nmin = 1\nrequired = true\n"
                  "doc = number of output features\n"
                  "[param.activation]\ntype = enum\nchoices = none, relu\n"
                  "default = none\ndoc = fused activation\n"
                  "[param.dropout]\ntype = float\nmin = 0\nmax = 0.9\ndefault = 0\n"));
    free(tu_write(a, "flatten.ini", "[plugin]\nname = flatten\nkind = layer\nabi = 2\n"
                                    "library = flatten.so\n"));
    free(tu_write(a, "future.ini", "[plugin]\nname = future\nkind = loss\nabi = 3\n"
                                   "library = future.so\n"));
    free(tu_write(a, "flatten.so", "exists"));
    const char *dirs[] = { a, NULL };
    mltk_registry_t *reg = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_registry_create(&reg, dirs, 0, &err), MLTK_OK);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(mltk_registry_describe(reg, "dense", f, &err), MLTK_OK);
    fclose(f);
    char *want = tu_fmt(
        "dense - Fully connected layer, y = x W^T + b\n"
        "  kind:       layer\n"
        "  version:    0.1.0\n"
        "  ABI:        2\n"
        "  descriptor: %s/a/dense.ini\n"
        "  library:    %s/a/dense.so (not found)\n"
        "\n"
        "parameters:\n"
        "  NAME        TYPE   DEFAULT  RANGE      REQUIRED  DESCRIPTION\n"
        "  units       int    -        >= 1       yes       number of output features\n"
        "  activation  enum   none     none|relu  no        fused activation\n"
        "  dropout     float  0        [0, 0.9]   no\n",
        realtmp, realtmp);
    ck_assert_str_eq(buf, want);
    free(want);
    free(buf);

    f = open_memstream(&buf, &len);
    ck_assert_int_eq(mltk_registry_describe(reg, "flatten", f, &err), MLTK_OK);
    fclose(f);
    want = tu_fmt("flatten - (no summary)\n"
                  "  kind:       layer\n"
                  "  ABI:        2\n"
                  "  descriptor: %s/a/flatten.ini\n"
                  "  library:    %s/a/flatten.so\n"
                  "\n"
                  "parameters: none\n", realtmp, realtmp);
    ck_assert_str_eq(buf, want);
    free(want);
    free(buf);

    /* a descriptor for another ABI is still described, and marked */
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(mltk_registry_describe(reg, "future", f, &err), MLTK_OK);
    fclose(f);
    want = tu_fmt("  ABI:        3 (this mltk speaks ABI %d.%d: cannot be loaded)\n",
                  MLTK_ABI_MAJOR, MLTK_ABI_MINOR);
    TU_ASSERT_CONTAINS(buf, want);
    free(want);
    free(buf);
    ck_assert_ptr_null(err);

    f = open_memstream(&buf, &len);
    ck_assert_int_eq(mltk_registry_describe(reg, "dnese", f, &err), MLTK_ERR_PLUGIN);
    fclose(f);
    ck_assert_str_eq(buf, "");
    ck_assert_str_eq(err, "unknown plugin 'dnese'; did you mean 'dense'? (known plugins: "
                          "dense, flatten, future)");
    free(err);
    free(buf);
    mltk_registry_destroy(reg);
    free(a);
}
END_TEST

/* ---- loading ---------------------------------------------------------------------- */

/* Where `make check` built the test modules. */
static char *module_dir(void)
{
    return tu_fmt("%s/tests/badplugins/.libs", tu_builddir());
}

/* Copy the descriptors of `names` (templates <name>.ini.in) into tmp/bad
 * as <name>.ini, pointing at the built modules; a registry of that
 * directory. */
static mltk_registry_t *bad_registry(const char *const *names, int n)
{
    char *dir = tu_fmt("%s/bad", tmp);
    if (access(dir, F_OK) != 0)
        ck_assert_int_eq(mkdir(dir, 0700), 0);
    char *mods = module_dir();
    for (int i = 0; i < n; i++) {
        char *src = tu_fmt("%s/tests/badplugins/%s.ini.in", tu_srcdir(), names[i]);
        char *text = tu_read(src);
        ck_assert_msg(text != NULL, "cannot read %s", src);
        char *major = tu_fmt("%d", MLTK_ABI_MAJOR);
        char *dirfixed = replace(text, "@BADPLUGIN_DIR@", mods);
        char *fixed = replace(dirfixed, "@MLTK_ABI_MAJOR@", major);
        free(dirfixed);
        free(major);
        char *fname = tu_fmt("%s.ini", names[i]);
        free(tu_write(dir, fname, fixed));
        free(fname);
        free(fixed);
        free(text);
        free(src);
    }
    const char *dirs[] = { dir, NULL };
    mltk_registry_t *reg = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_registry_create(&reg, dirs, 0, &err) == MLTK_OK, "%s", err);
    ck_assert_int_eq(mltk_registry_count(reg), n);
    free(mods);
    free(dir);
    return reg;
}

START_TEST(test_load_good)
{
    const char *names[] = { "bp_good" };
    mltk_registry_t *reg = bad_registry(names, 1);
    const void *iface = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_registry_load(reg, "bp_good", MLTK_KIND_LAYER, &iface, &err)
                  == MLTK_OK, "%s", err);
    ck_assert_ptr_nonnull(iface);
    const struct mltk_layer_i *li = iface;
    ck_assert_uint_eq(li->size, sizeof(struct mltk_layer_i));
    void *self = (void *)&self;
    ck_assert_int_eq(li->create(&self, NULL, NULL), MLTK_OK);
    ck_assert_ptr_null(self);
    ck_assert_ptr_null(li->inplace);

    /* loaded once: the same vtable again */
    const void *again = NULL;
    ck_assert_int_eq(mltk_registry_load(reg, "bp_good", 0, &again, &err), MLTK_OK);
    ck_assert_ptr_eq(again, iface);

    /* the wrong kind is refused before anything is loaded */
    ck_assert_int_eq(mltk_registry_load(reg, "bp_good", MLTK_KIND_OPTIMIZER, &again, &err),
                     MLTK_ERR_PLUGIN);
    ck_assert_ptr_null(again);
    ck_assert_str_eq(err, "unknown optimizer 'bp_good': 'bp_good' is a layer plugin "
                          "(no optimizers found)");
    free(err);
    mltk_registry_destroy(reg);
}
END_TEST

/* a libtool build tree: the descriptor names bp_good.so, which is in .libs/ */
START_TEST(test_load_libs_fallback)
{
    char *dir = subdir("tree");
    char *libs = tu_fmt("%s/.libs", dir);
    ck_assert_int_eq(mkdir(libs, 0700), 0);
    char *mods = module_dir();
    char *src = tu_fmt("%s/bp_good.so", mods);
    char *dst = tu_fmt("%s/bp_good.so", libs);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    ck_assert_msg(in && out, "cannot copy %s to %s", src, dst);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
    free(tu_write(dir, "bp_good.ini", "[plugin]\nname = bp_good\nkind = layer\nabi = 2\n"
                                      "library = bp_good.so\n"));
    const char *dirs[] = { dir, NULL };
    mltk_registry_t *reg = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_registry_create(&reg, dirs, 0, &err), MLTK_OK);
    mltk_plugin_info info;
    ck_assert_int_eq(mltk_registry_info(reg, 0, &info), MLTK_OK);
    char *want = tu_fmt("%s/tree/.libs/bp_good.so", realtmp);
    ck_assert_str_eq(info.library, want);
    free(want);
    const void *iface = NULL;
    ck_assert_msg(mltk_registry_load(reg, "bp_good", MLTK_KIND_LAYER, &iface, &err)
                  == MLTK_OK, "%s", err);
    ck_assert_ptr_nonnull(iface);
    mltk_registry_destroy(reg);
    free(src);
    free(dst);
    free(mods);
    free(libs);
    free(dir);
}
END_TEST

typedef struct bad_case {
    const char *name;
    int         rc;
    const char *msg;  /* @LIB@, @DESC@, @MAJ@, @MIN@, @NEED@ replaced */
    int         prefix_only;  /* msg is a prefix (dlerror text follows) */
} bad_case;

static const bad_case bad_cases[] = {
    { "bp_nolib", MLTK_ERR_PLUGIN,
      "plugin 'bp_nolib': library @LIB@ not found (descriptor @DESC@)", 0 },
    { "bp_nosym", MLTK_ERR_PLUGIN,
      "plugin 'bp_nosym': @LIB@ does not export 'mltk_plugin_bp_nosym' "
      "(descriptor @DESC@)", 0 },
    /* built for ABI 1 (its last minor, 1.2), which ABI 2 broke: the hint
     * is to rebuild it */
    { "bp_abimajor", MLTK_ERR_ABI,
      "plugin 'bp_abimajor' was built for plugin ABI 1.2; rebuild it against mltk @MAJ@ "
      "headers (library @LIB@)", 0 },
    { "bp_abiminor", MLTK_ERR_ABI,
      "plugin 'bp_abiminor' was built for ABI @MAJ@.@MIN+1@, newer than this mltk's ABI "
      "@MAJ@.@MIN@; update mltk or rebuild the plugin (library @LIB@)", 0 },
    { "bp_kind", MLTK_ERR_PLUGIN,
      "plugin 'bp_kind': @LIB@ is a loss plugin, but its descriptor @DESC@ says layer", 0 },
    { "bp_name", MLTK_ERR_PLUGIN,
      "plugin 'bp_name': @LIB@ calls itself 'bp_other', but its descriptor @DESC@ names "
      "it 'bp_name'", 0 },
    { "bp_small", MLTK_ERR_ABI,
      "plugin 'bp_small': @LIB@ reports a plugin struct of 8 bytes, ABI @MAJ@.0 needs at "
      "least @NEED_PLUGIN@", 0 },
    { "bp_vtsize", MLTK_ERR_ABI,
      "plugin 'bp_vtsize': struct mltk_layer_i in @LIB@ is @VT_SIZE@ bytes, ABI @MAJ@.0 "
      "needs at least @NEED_LAYER@", 0 },
    { "bp_nullfn", MLTK_ERR_PLUGIN,
      "plugin 'bp_nullfn': @LIB@ leaves required member 'forward' of struct mltk_layer_i "
      "NULL", 0 },
    { "bp_undef", MLTK_ERR_PLUGIN,
      "plugin 'bp_undef': cannot load @LIB@: ", 1 },
};

static char *expand(const char *msg, const char *lib, const char *desc)
{
    char num[32];
    char *s = replace(msg, "@LIB@", lib);
    struct { const char *key; long long v; } nums[] = {
        { "@MAJ+1@", MLTK_ABI_MAJOR + 1 },
        { "@MIN+1@", MLTK_ABI_MINOR + 1 },
        { "@MAJ@", MLTK_ABI_MAJOR },
        { "@MIN@", MLTK_ABI_MINOR },
        { "@NEED_PLUGIN@", (long long)(offsetof(struct mltk_plugin, iface)
                                       + sizeof(const void *)) },
        { "@NEED_LAYER@", (long long)(offsetof(struct mltk_layer_i, inplace)
                                      + sizeof(void (*)(void))) },
        { "@VT_SIZE@", (long long)offsetof(struct mltk_layer_i, forward) },
    };
    char *t = replace(s, "@DESC@", desc);
    free(s);
    s = t;
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        snprintf(num, sizeof num, "%lld", nums[i].v);
        t = replace(s, nums[i].key, num);
        free(s);
        s = t;
    }
    return s;
}

START_TEST(test_load_bad)
{
    const bad_case *c = &bad_cases[_i];
    mltk_registry_t *reg = bad_registry(&c->name, 1);
    char *mods = module_dir();
    char *lib = tu_fmt("%s/%s.so", mods, c->name);
    char *desc = tu_fmt("%s/bad/%s.ini", realtmp, c->name);
    char *want = expand(c->msg, lib, desc);
    /* twice: a failed load leaves nothing behind and fails the same way */
    for (int round = 0; round < 2; round++) {
        const void *iface = (const void *)&iface;
        char *err = NULL;
        int rc = mltk_registry_load(reg, c->name, MLTK_KIND_LAYER, &iface, &err);
        ck_assert_msg(rc == c->rc, "%s: rc %d, want %d (%s)", c->name, rc, c->rc, err);
        ck_assert_ptr_null(iface);
        ck_assert_ptr_nonnull(err);
        if (c->prefix_only)
            ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
                          "expected \"%s\" to start with \"%s\"", err, want);
        else
            ck_assert_str_eq(err, want);
        free(err);
    }
    /* the descriptor is still listed */
    mltk_plugin_info info;
    ck_assert_int_eq(mltk_registry_info(reg, 0, &info), MLTK_OK);
    ck_assert_str_eq(info.name, c->name);
    ck_assert_str_eq(info.library, lib);
    free(want);
    free(desc);
    free(lib);
    free(mods);
    mltk_registry_destroy(reg);
}
END_TEST

START_TEST(test_load_undefined_symbol_named)
{
    const char *names[] = { "bp_undef" };
    mltk_registry_t *reg = bad_registry(names, 1);
    const void *iface = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_registry_load(reg, "bp_undef", MLTK_KIND_LAYER, &iface, &err),
                     MLTK_ERR_PLUGIN);
    TU_ASSERT_CONTAINS(err, "mltk_bp_symbol_defined_nowhere");
    free(err);
    mltk_registry_destroy(reg);
}
END_TEST

START_TEST(test_load_not_a_library)
{
    char *a = subdir("a");
    free(tu_write(a, "junk.ini", "[plugin]\nname = junk\nkind = layer\nabi = 2\n"
                                 "library = junk.so\n"));
    free(tu_write(a, "junk.so", "this is text, not an ELF shared object\n"));
    const char *dirs[] = { a, NULL };
    mltk_registry_t *reg = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_registry_create(&reg, dirs, 0, &err), MLTK_OK);
    const void *iface = NULL;
    ck_assert_int_eq(mltk_registry_load(reg, "junk", MLTK_KIND_LAYER, &iface, &err),
                     MLTK_ERR_PLUGIN);
    /* refused before dlopen() */
    char *want = tu_fmt("plugin 'junk': library %s/a/junk.so is truncated or not a shared "
                        "object (39 bytes, shorter than an ELF header; descriptor "
                        "%s/a/junk.ini)", realtmp, realtmp);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    mltk_registry_destroy(reg);
    free(a);
}
END_TEST

START_TEST(test_load_descriptor_abi)
{
    char *a = subdir("a");
    char *desc = tu_write(a, "future.ini", "[plugin]\nname = future\nkind = layer\n"
                                           "abi = 3\nlibrary = future.so\n");
    const char *dirs[] = { a, NULL };
    mltk_registry_t *reg = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_registry_create(&reg, dirs, 0, &err), MLTK_OK);
    mltk_plugin_info info;
    ck_assert_int_eq(mltk_registry_info(reg, 0, &info), MLTK_OK);
    ck_assert_int_eq(info.abi, 3);
    const void *iface = NULL;
    ck_assert_int_eq(mltk_registry_load(reg, "future", MLTK_KIND_LAYER, &iface, &err),
                     MLTK_ERR_ABI);
    char *want = tu_fmt("plugin 'future' was built for ABI 3, this mltk speaks ABI %d.%d "
                        "(descriptor %s/a/future.ini)", MLTK_ABI_MAJOR, MLTK_ABI_MINOR,
                        realtmp);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;
    mltk_registry_destroy(reg);
    free(desc);
    free(a);

    /* a descriptor still declaring ABI 1 (1.x, or just 1): refused before
     * its library is opened, with the hint to rebuild */
    const char *old[2] = { "abi = 1.2", "abi = 1" }, *ver[2] = { "1.2", "1" };
    for (int k = 0; k < 2; k++) {
        char *b = subdir(k ? "old1" : "old12");
        char *text = tu_fmt("[plugin]\nname = old\nkind = layer\n%s\nlibrary = old.so\n",
                            old[k]);
        char *path = tu_write(b, "old.ini", text);   /* under tmp, named by realtmp */
        const char *bdirs[] = { b, NULL };
        reg = NULL;
        ck_assert_int_eq(mltk_registry_create(&reg, bdirs, 0, &err), MLTK_OK);
        iface = NULL;
        ck_assert_int_eq(mltk_registry_load(reg, "old", MLTK_KIND_LAYER, &iface, &err),
                         MLTK_ERR_ABI);
        ck_assert_ptr_null(iface);
        want = tu_fmt("plugin 'old' was built for plugin ABI %s; rebuild it against mltk %d "
                      "headers (descriptor %s/%s/old.ini)", ver[k], MLTK_ABI_MAJOR, realtmp,
                      k ? "old1" : "old12");
        ck_assert_str_eq(err, want);
        free(want);
        free(err);
        err = NULL;
        mltk_registry_destroy(reg);
        free(path);
        free(text);
        free(b);
    }
}
END_TEST

/* all the test plugins in one registry: each fails alone */
START_TEST(test_load_many)
{
    const char *names[] = { "bp_good", "bp_nolib", "bp_nosym", "bp_abimajor",
                            "bp_abiminor", "bp_kind", "bp_name", "bp_small", "bp_vtsize",
                            "bp_nullfn", "bp_undef" };
    mltk_registry_t *reg = bad_registry(names, 11);
    for (int i = 0; i < 11; i++) {
        const void *iface = NULL;
        char *err = NULL;
        int rc = mltk_registry_load(reg, names[i], MLTK_KIND_LAYER, &iface, &err);
        if (i == 0) {
            ck_assert_msg(rc == MLTK_OK, "%s", err);
            ck_assert_ptr_nonnull(iface);
        } else {
            ck_assert_int_lt(rc, 0);
            ck_assert_ptr_null(iface);
            char *who = tu_fmt("plugin '%s'", names[i]);
            ck_assert_msg(strncmp(err, who, strlen(who)) == 0, "got \"%s\"", err);
            free(who);
            free(err);
        }
    }
    mltk_registry_destroy(reg);
}
END_TEST

/* ---- what is a descriptor ---------------------------------------------------------- */

/* A training config (or any INI file without [plugin]) kept in a plugin
 * directory, as in `mltk --config train.ini --plugin-dir .`, is skipped. */
START_TEST(test_scan_skips_other_ini)
{
    char *a = subdir("a");
    char *t;
    free(tu_write(a, "scale.ini", t = fake_desc("scale", "layer", NULL)));
    free(t);
    free(tu_write(a, "train.ini", "[run]\nseed = 1\n\n[layer.s]\ntype = scale\n"));
    free(tu_write(a, "empty.ini", ""));
    free(tu_write(a, "notes.ini", "; [plugin] in a comment does not count\nplugin = 1\n"));
    free(tu_write(a, "spaced.ini", "# a descriptor all the same\n  [ plugin ]  \n"
                                   "name = spaced\nkind = layer\nabi = 2\n"
                                   "library = spaced.so\n"));
    const char *dirs[] = { a, NULL };
    mltk_registry_t *reg = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_registry_create(&reg, dirs, 0, &err) == MLTK_OK, "%s", err);
    ck_assert_int_eq(mltk_registry_count(reg), 2);
    const mltk_desc *d = NULL;
    ck_assert_int_eq(mltk_registry_find(reg, "scale", MLTK_KIND_LAYER, &d, &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_broken(reg, "train"), 0);
    mltk_plugin_info info;
    ck_assert_int_eq(mltk_registry_info(reg, 1, &info), MLTK_OK);
    ck_assert_str_eq(info.name, "spaced");
    mltk_registry_destroy(reg);
    free(a);

    char *name = NULL;
    ck_assert_int_eq(mltk_desc_sniff("[plugin]\nname = abc\n", &name), 1);
    ck_assert_str_eq(name, "abc");
    free(name);
    ck_assert_int_eq(mltk_desc_sniff("[plugin]\nname = 1abc\n", &name), 1);
    ck_assert_ptr_null(name);
    ck_assert_int_eq(mltk_desc_sniff("[param.x]\nname = abc\n[plugin]\n", &name), 1);
    ck_assert_ptr_null(name);
    ck_assert_int_eq(mltk_desc_sniff("[plugins]\nname = abc\n", &name), 0);
    ck_assert_ptr_null(name);
    ck_assert_int_eq(mltk_desc_sniff("", &name), 0);
    ck_assert_int_eq(mltk_desc_sniff("[plugin", &name), 0);
}
END_TEST

/* ---- entry symbols ---------------------------------------------------------------- */

START_TEST(test_symbol_prefix)
{
    const char *names[] = { "bp_good", "bp_badsym" };
    mltk_registry_t *reg = bad_registry(names, 2);
    char *desc = tu_fmt("%s/bad/bp_badsym.ini", realtmp);
    char *want = tu_fmt("%s:10: [plugin]: symbol 'abort' must start with 'mltk_plugin_' and "
                        "name an entry point (such as 'mltk_plugin_bp_badsym', the "
                        "default)", desc);
    const void *iface = (const void *)&iface;
    char *err = NULL;
    /* refused before its library is opened: the process lives on */
    ck_assert_int_eq(mltk_registry_load(reg, "bp_badsym", MLTK_KIND_LAYER, &iface, &err),
                     MLTK_ERR_PLUGIN);
    ck_assert_ptr_null(iface);
    ck_assert_str_eq(err, want);
    free(err);
    err = NULL;
    ck_assert_msg(mltk_registry_load(reg, "bp_good", MLTK_KIND_LAYER, &iface, &err)
                  == MLTK_OK, "%s", err);
    mltk_registry_destroy(reg);
    free(want);
    free(desc);

    /* the prefix alone names nothing; a full entry name is accepted */
    char *a = subdir("a");
    char *t;
    free(tu_write(a, "p1.ini", t = fake_desc("p1", "layer", "symbol = mltk_plugin_\n")));
    free(t);
    free(tu_write(a, "p2.ini", t = fake_desc("p2", "layer", "symbol = mltk_plugin_p2_v2\n")));
    free(t);
    free(tu_write(a, "p3.ini", t = fake_desc("p3", "layer", "symbol = Mltk_plugin_p3\n")));
    free(t);
    const char *dirs[] = { a, NULL };
    ck_assert_int_eq(mltk_registry_create(&reg, dirs, 0, &err), MLTK_OK);
    const mltk_desc *d = NULL;
    ck_assert_int_eq(mltk_registry_find(reg, "p2", MLTK_KIND_LAYER, &d, &err), MLTK_OK);
    ck_assert_str_eq(d->symbol, "mltk_plugin_p2_v2");
    ck_assert_int_eq(mltk_registry_find(reg, "p1", MLTK_KIND_LAYER, &d, &err),
                     MLTK_ERR_PLUGIN);
    TU_ASSERT_CONTAINS(err, "p1.ini:6: [plugin]: symbol 'mltk_plugin_' must start with");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_registry_find(reg, "p3", MLTK_KIND_LAYER, &d, &err),
                     MLTK_ERR_PLUGIN);
    TU_ASSERT_CONTAINS(err, "p3.ini:6: [plugin]: symbol 'Mltk_plugin_p3' must start with");
    free(err);
    err = NULL;
    mltk_registry_destroy(reg);
    free(a);
}
END_TEST

/* A broken descriptor among good ones: the good ones load. */
START_TEST(test_broken_not_used)
{
    const char *names[] = { "bp_broken", "bp_good" };
    mltk_registry_t *reg = bad_registry(names, 2);
    const void *iface = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_registry_load(reg, "bp_good", MLTK_KIND_LAYER, &iface, &err)
                  == MLTK_OK, "%s", err);
    mltk_plugin_info info;
    ck_assert_int_eq(mltk_registry_info(reg, 0, &info), MLTK_OK);
    ck_assert_str_eq(info.name, "bp_good");
    ck_assert_int_eq(mltk_registry_info(reg, 1, &info), MLTK_OK);
    ck_assert_str_eq(info.name, "bp_broken");
    ck_assert_int_eq(info.kind, 0);
    char *want = tu_fmt("%s/bad/bp_broken.ini:8: [plugin]: unknown key 'colour' (valid "
                        "keys: name, kind, abi, library, symbol, summary, version)", realtmp);
    ck_assert_str_eq(info.summary, want);
    ck_assert_int_eq(mltk_registry_load(reg, "bp_broken", MLTK_KIND_LAYER, &iface, &err),
                     MLTK_ERR_PLUGIN);
    ck_assert_str_eq(err, want);
    free(err);
    err = NULL;
    free(want);
    mltk_registry_destroy(reg);
}
END_TEST

/* ---- the library file ---------------------------------------------------------------- */

/* tmp/bad/bp_trunc.so: bp_good.so, cut to `len` bytes (0: whole), then
 * edited by `edit` */
static void write_trunc(long len, void (*edit)(unsigned char *buf, long n))
{
    char *mods = module_dir();
    char *src = tu_fmt("%s/bp_good.so", mods);
    free(mods);
    FILE *in = fopen(src, "rb");
    ck_assert_ptr_nonnull(in);
    static unsigned char buf[4 << 20];
    long n = (long)fread(buf, 1, sizeof buf, in);
    fclose(in);
    ck_assert_int_gt(n, 4096);
    ck_assert_int_lt(n, (long)sizeof buf);
    if (len < 0)
        n--;
    else if (len && len < n)
        n = len;
    if (edit)
        edit(buf, n);
    char *dst = tu_fmt("%s/bad/bp_trunc.so", tmp);
    FILE *out = fopen(dst, "wb");
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(fwrite(buf, 1, (size_t)n, out), (size_t)n);
    ck_assert_int_eq(fclose(out), 0);
    free(dst);
    free(src);
}

static void edit_machine(unsigned char *buf, long n)
{
    ElfW(Ehdr) *eh = (ElfW(Ehdr) *)buf;
    (void)n;
    eh->e_machine = eh->e_machine == EM_X86_64 ? EM_AARCH64 : EM_X86_64;
}

static void edit_type(unsigned char *buf, long n)
{
    (void)n;
    ((ElfW(Ehdr) *)buf)->e_type = ET_EXEC;
}

static void edit_segment(unsigned char *buf, long n)
{
    ElfW(Ehdr) *eh = (ElfW(Ehdr) *)buf;
    ElfW(Phdr) *ph = (ElfW(Phdr) *)(buf + eh->e_phoff);
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD) {
            ph[i].p_offset = (ElfW(Off))n;  /* starts at the end, has bytes */
            ck_assert_uint_gt(ph[i].p_filesz, 0);
            return;
        }
    }
    ck_abort_msg("bp_good.so has no PT_LOAD");
}

typedef struct trunc_case {
    long len;                                /* 0: whole file, -1: one byte short */
    void (*edit)(unsigned char *, long);
    const char *what;                        /* " is ...", or NULL: loads */
    const char *detail;                      /* contained in the detail */
} trunc_case;

static const trunc_case trunc_cases[] = {
    { 0, NULL, NULL, NULL },
    { 3000, NULL, " is truncated or not a shared object (", "3000" },
    { -1, NULL, " is truncated or not a shared object (", "end" },
    { 100, NULL, " is truncated or not a shared object (",
      "the program headers end at byte" },
    { 63, NULL, " is truncated or not a shared object (",
      "63 bytes, shorter than an ELF header" },
    { 0, edit_machine, " is not for this machine (", "built for ELF machine" },
    { 0, edit_type, " is truncated or not a shared object (",
      "ELF type 2, not a shared object" },
    { 0, edit_segment, " is truncated or not a shared object (", "loadable segment" },
};

START_TEST(test_load_truncated)
{
    const trunc_case *c = &trunc_cases[_i];
    const char *names[] = { "bp_trunc" };
    mltk_registry_t *reg = bad_registry(names, 1);
    write_trunc(c->len, c->edit);
    const void *iface = NULL;
    char *err = NULL;
    int rc = mltk_registry_load(reg, "bp_trunc", MLTK_KIND_LAYER, &iface, &err);
    if (!c->what) {
        /* the whole copy passes the checks and is opened: its entry
         * point is bp_good's */
        ck_assert_int_eq(rc, MLTK_ERR_PLUGIN);
        TU_ASSERT_CONTAINS(err, "does not export 'mltk_plugin_bp_trunc'");
    } else {
        ck_assert_int_eq(rc, MLTK_ERR_PLUGIN);
        char *head = tu_fmt("plugin 'bp_trunc': library %s/bad/bp_trunc.so%s", realtmp,
                            c->what);
        char *tail = tu_fmt("; descriptor %s/bad/bp_trunc.ini)", realtmp);
        ck_assert_msg(strncmp(err, head, strlen(head)) == 0, "got \"%s\"", err);
        ck_assert_msg(strlen(err) > strlen(tail)
                      && strcmp(err + strlen(err) - strlen(tail), tail) == 0,
                      "got \"%s\"", err);
        TU_ASSERT_CONTAINS(err, c->detail);
        free(head);
        free(tail);
    }
    ck_assert_ptr_null(iface);
    free(err);
    err = NULL;
    mltk_registry_destroy(reg);
}
END_TEST

/* ---- trust ---------------------------------------------------------------------------- */

static int create_in(const char *dir, mltk_registry_t **reg, char **err)
{
    const char *dirs[] = { dir, NULL };
    *reg = NULL;
    *err = NULL;
    return mltk_registry_create(reg, dirs, 0, err);
}

static char *refusal(const char *what, const char *path, const char *at, const char *by,
                     unsigned mode)
{
    char *where = strcmp(path, at) ? tu_fmt("the directory above it, %s,", at)
                                   : tu_fmt("it");
    char *m = tu_fmt("refusing %s %s: %s is writable by %s (mode %04o), so %s could plant a "
                     "plugin; fix it with 'chmod go-w %s', or pass "
                     "--allow-insecure-plugin-dir (MLTK_ALLOW_INSECURE_PLUGIN_DIR=1) to "
                     "trust it anyway", what, path, where, by, mode,
                     strcmp(by, "others") ? "the group's members" : "anyone", at);
    free(where);
    return m;
}

START_TEST(test_trust_dirs)
{
    unsetenv("MLTK_ALLOW_INSECURE_PLUGIN_DIR");
    char *a = subdir("a");
    char *real_a = tu_fmt("%s/a", realtmp);
    char *t;
    free(tu_write(a, "x.ini", t = fake_desc("x", "layer", NULL)));
    free(t);
    mltk_registry_t *reg;
    char *err;
    ck_assert_int_eq(create_in(a, &reg, &err), MLTK_OK);
    mltk_registry_destroy(reg);

    /* writable by others, sticky or not, or by the group: refused */
    static const struct { unsigned mode; const char *by; } bad[] = {
        { 0777, "others" }, { 01777, "others" }, { 0770, "its group" }, { 0722, "others" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(chmod(a, bad[i].mode), 0);
        ck_assert_int_eq(create_in(a, &reg, &err), MLTK_ERR_PLUGIN);
        ck_assert_ptr_null(reg);
        char *want = refusal("plugin directory", real_a, real_a, bad[i].by, bad[i].mode);
        ck_assert_str_eq(err, want);
        free(want);
        free(err);
        err = NULL;
    }
    /* the same through MLTK_PLUGIN_PATH */
    setenv("MLTK_PLUGIN_PATH", a, 1);
    ck_assert_int_eq(mltk_registry_create(&reg, NULL, 0, &err), MLTK_ERR_PLUGIN);
    TU_ASSERT_CONTAINS(err, "refusing plugin directory");
    free(err);
    err = NULL;
    unsetenv("MLTK_PLUGIN_PATH");
    /* ... unless allowed */
    setenv("MLTK_ALLOW_INSECURE_PLUGIN_DIR", "1", 1);
    ck_assert_int_eq(create_in(a, &reg, &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_count(reg), 1);
    mltk_registry_destroy(reg);
    setenv("MLTK_ALLOW_INSECURE_PLUGIN_DIR", "0", 1);
    ck_assert_int_eq(create_in(a, &reg, &err), MLTK_ERR_PLUGIN);
    free(err);
    err = NULL;
    unsetenv("MLTK_ALLOW_INSECURE_PLUGIN_DIR");
    ck_assert_int_eq(chmod(a, 0755), 0);
    ck_assert_int_eq(create_in(a, &reg, &err), MLTK_OK);
    mltk_registry_destroy(reg);

    /* a directory above: refused when others may write to it, but not when
     * it is sticky (as /tmp) */
    char *up = subdir("up");
    char *inner = tu_fmt("%s/plugins", up);
    ck_assert_int_eq(mkdir(inner, 0700), 0);
    char *real_up = tu_fmt("%s/up", realtmp), *real_inner = tu_fmt("%s/up/plugins", realtmp);
    ck_assert_int_eq(chmod(up, 0777), 0);
    ck_assert_int_eq(create_in(inner, &reg, &err), MLTK_ERR_PLUGIN);
    char *want = refusal("plugin directory", real_inner, real_up, "others", 0777);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;
    ck_assert_int_eq(chmod(up, 0775), 0);
    ck_assert_int_eq(create_in(inner, &reg, &err), MLTK_ERR_PLUGIN);
    want = refusal("plugin directory", real_inner, real_up, "its group", 0775);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;
    ck_assert_int_eq(chmod(up, 01777), 0);
    ck_assert_int_eq(create_in(inner, &reg, &err), MLTK_OK);
    mltk_registry_destroy(reg);

    /* not ours: refused (only root can hand a directory to someone else) */
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(inner, 1, (gid_t)-1), 0);
        ck_assert_int_eq(create_in(inner, &reg, &err), MLTK_ERR_PLUGIN);
        want = tu_fmt("refusing plugin directory %s: it belongs to uid 1, neither root nor "
                      "you (uid 0), who could change what mltk loads; have root or you own "
                      "it (chown), or pass --allow-insecure-plugin-dir "
                      "(MLTK_ALLOW_INSECURE_PLUGIN_DIR=1) to trust it anyway", real_inner);
        ck_assert_str_eq(err, want);
        free(want);
        free(err);
        err = NULL;
    }
    free(real_up);
    free(real_inner);
    free(inner);
    free(up);
    free(real_a);
    free(a);
}
END_TEST

START_TEST(test_trust_files)
{
    unsetenv("MLTK_ALLOW_INSECURE_PLUGIN_DIR");
    const char *names[] = { "bp_trunc", "bp_good" };
    mltk_registry_t *reg = bad_registry(names, 2);
    mltk_registry_destroy(reg);
    write_trunc(0, NULL);   /* a whole copy of bp_good.so */
    char *dir = tu_fmt("%s/bad", tmp);
    char *lib = tu_fmt("%s/bad/bp_trunc.so", tmp), *real_lib = tu_fmt("%s/bad/bp_trunc.so",
                                                                        realtmp);
    char *desc = tu_fmt("%s/bad/bp_trunc.ini", tmp), *real_desc = tu_fmt("%s/bad/bp_trunc.ini",
                                                                          realtmp);
    char *err = NULL;
    const void *iface = NULL;

    /* a library others may write to is not opened */
    ck_assert_int_eq(chmod(lib, 0666), 0);
    ck_assert_int_eq(create_in(dir, &reg, &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_load(reg, "bp_trunc", MLTK_KIND_LAYER, &iface, &err),
                     MLTK_ERR_PLUGIN);
    char *want = refusal("plugin library", real_lib, real_lib, "others", 0666);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;
    mltk_registry_destroy(reg);
    ck_assert_int_eq(chmod(lib, 0755), 0);

    /* a descriptor others may write to is broken: the others still load */
    ck_assert_int_eq(chmod(desc, 0620), 0);
    ck_assert_int_eq(create_in(dir, &reg, &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_broken(reg, "bp_trunc"), 1);
    ck_assert_int_eq(mltk_registry_load(reg, "bp_trunc", MLTK_KIND_LAYER, &iface, &err),
                     MLTK_ERR_PLUGIN);
    want = refusal("plugin descriptor", real_desc, real_desc, "its group", 0620);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;
    const mltk_desc *d = NULL;
    ck_assert_int_eq(mltk_registry_find(reg, "bp_good", MLTK_KIND_LAYER, &d, &err), MLTK_OK);
    mltk_registry_destroy(reg);
    ck_assert_int_eq(chmod(desc, 0644), 0);
    ck_assert_int_eq(create_in(dir, &reg, &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_broken(reg, "bp_trunc"), 0);
    mltk_registry_destroy(reg);
    free(real_desc);
    free(desc);
    free(real_lib);
    free(lib);
    free(dir);
}
END_TEST

/* ---- the width of `plugins show` --------------------------------------------------- */

START_TEST(test_describe_width)
{
    char *a = subdir("a");
    free(tu_write(a, "wide.ini",
                  "[plugin]\nname = wide\nkind = layer\nabi = 2\nlibrary = wide.so\n"
                  "summary = a layer whose summary is long enough to need a second line "
                  "at sixty columns\n"
                  "[param.mode]\ntype = enum\n"
                  "choices = alpha, beta, gamma, delta, epsilon, zeta, eta, theta\n"
                  "default = alpha\n"
                  "doc = how the layer works; this description is far too long for one "
                  "line of a narrow terminal\n"
                  "[param.n]\ntype = int\nmin = 1\ndefault = 2\ndoc = short\n"));
    const char *dirs[] = { a, NULL };
    mltk_registry_t *reg = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_registry_create(&reg, dirs, 0, &err), MLTK_OK);

    setenv("COLUMNS", "60", 1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(mltk_registry_describe(reg, "wide", f, &err), MLTK_OK);
    fclose(f);
    /* the description goes under its row when its column would be too
     * narrow; the choices wrap after a '|' */
    const char *want_tail =
        "parameters:\n"
        "  NAME  TYPE  DEFAULT  RANGE                      REQUIRED\n"
        "  mode  enum  alpha    alpha|beta|gamma|delta|    no\n"
        "                       epsilon|zeta|eta|theta\n"
        "      how the layer works; this description is far too long\n"
        "      for one line of a narrow terminal\n"
        "  n     int   2        >= 1                       no\n"
        "      short\n";
    ck_assert_msg(strstr(buf, want_tail) != NULL, "got:\n%s", buf);
    const char *want_head = "wide - a layer whose summary is long enough to need a second\n"
                            "       line at sixty columns\n";
    ck_assert_msg(strncmp(buf, want_head, strlen(want_head)) == 0, "got:\n%s", buf);
    for (char *l = buf; *l;) {
        size_t n = strcspn(l, "\n");
        ck_assert_msg(n <= 60 || strncmp(l, "  descriptor:", 13) == 0
                      || strncmp(l, "  library:", 10) == 0, "line of %zu: %.*s", n, (int)n, l);
        ck_assert_msg(n == 0 || l[n - 1] != ' ', "blank at the end: '%.*s'", (int)n, l);
        l += n + (l[n] == '\n');
    }
    free(buf);

    /* wide enough: the description in its column, wrapped there */
    setenv("COLUMNS", "100", 1);
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(mltk_registry_describe(reg, "wide", f, &err), MLTK_OK);
    fclose(f);
    want_tail =
        "  NAME  TYPE  DEFAULT  RANGE                                REQUIRED  DESCRIPTION\n"
        "  mode  enum  alpha    alpha|beta|gamma|delta|epsilon|      no        how the layer "
        "works; this\n"
        "                       zeta|eta|theta                                 description is "
        "far too long\n"
        "                                                                      for one line of "
        "a narrow\n"
        "                                                                      terminal\n"
        "  n     int   2        >= 1                                 no        short\n";
    ck_assert_msg(strstr(buf, want_tail) != NULL, "got:\n%s", buf);
    free(buf);

    /* not a terminal and no COLUMNS: 80 */
    unsetenv("COLUMNS");
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(mltk_registry_describe(reg, "wide", f, &err), MLTK_OK);
    fclose(f);
    for (char *l = buf; *l;) {
        size_t n = strcspn(l, "\n");
        ck_assert_msg(n <= 80 || strncmp(l, "  descriptor:", 13) == 0
                      || strncmp(l, "  library:", 10) == 0, "line of %zu: %.*s", n, (int)n, l);
        l += n + (l[n] == '\n');
    }
    TU_ASSERT_CONTAINS(buf, "wide - a layer whose summary is long enough to need a second "
                            "line at sixty\n       columns\n");
    free(buf);
    mltk_registry_destroy(reg);
    free(a);
}
END_TEST

/* ---- the suite ---------------------------------------------------------------------- */

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *t = tcase_create("scan");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_scan_order_and_info);
    tcase_add_test(t, test_scan_plugin_path);
    tcase_add_test(t, test_scan_errors);
    tcase_add_test(t, test_find);
    tcase_add_test(t, test_describe);
    tcase_add_test(t, test_describe_width);
    tcase_add_test(t, test_scan_skips_other_ini);
    tcase_add_test(t, test_trust_dirs);
    suite_add_tcase(s, t);

    t = tcase_create("load");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_load_good);
    tcase_add_test(t, test_load_libs_fallback);
    tcase_add_loop_test(t, test_load_bad, 0, N_OF(bad_cases));
    tcase_add_test(t, test_load_undefined_symbol_named);
    tcase_add_test(t, test_load_not_a_library);
    tcase_add_test(t, test_load_descriptor_abi);
    tcase_add_test(t, test_load_many);
    tcase_add_test(t, test_symbol_prefix);
    tcase_add_test(t, test_broken_not_used);
    tcase_add_loop_test(t, test_load_truncated, 0, N_OF(trunc_cases));
    tcase_add_test(t, test_trust_files);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(registry_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
