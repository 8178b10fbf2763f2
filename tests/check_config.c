/* check_config.c - tests of descriptor.c, params.c and config.c.
 *
 * What this is: descriptors (valid ones, every descriptor error with its
 * "path:line"), parameter validation and the mltk_params_* accessors, and
 * training configs: a complete valid one with its defaults filled in, and
 * every kind of config error with the exact message a user would read.
 * The plugins a config names are described by descriptor files the test
 * writes into a temporary directory; no plugin code is loaded.
 * What this is not: tests of loading plugins (check_registry.c).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "schema.h"
#include "testutil.h"

/* ---- descriptors ------------------------------------------------------------ */

static const char dense_desc[] =
    "# a layer\n"                           /* 1 */
    "[plugin]\n"                            /* 2 */
    "name = dense\n"                        /* 3 */
    "kind = layer\n"                        /* 4 */
    "abi = 2\n"                             /* 5 */
    "library = dense.so\n"                  /* 6 */
    "summary = Fully connected layer\n"     /* 7 */
    "version = 0.1.0\n"                     /* 8 */
    "\n"                                    /* 9 */
    "[param.units]\n"                       /* 10 */
    "type = int\n"
    "min = 1\n"
    "required = true\n"
    "doc = number of output features\n"
    "[param.bias]\n"                        /* 15 */
    "type = bool\n"
    "default = true\n"
    "doc = add a bias\n"
    "[param.activation]\n"                  /* 19 */
    "type = enum\n"
    "choices = none, relu, tanh\n"
    "default = none\n"
    "doc = fused activation\n";

START_TEST(test_desc_good)
{
    mltk_desc *d = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_desc_parse(&d, dense_desc, "dense.ini", &err), MLTK_OK);
    ck_assert_ptr_null(err);
    ck_assert_str_eq(d->name, "dense");
    ck_assert_int_eq(d->kind, MLTK_KIND_LAYER);
    ck_assert_int_eq(d->abi, 2);
    ck_assert_str_eq(d->library, "dense.so");
    ck_assert_str_eq(d->symbol, "mltk_plugin_dense");
    ck_assert_str_eq(d->summary, "Fully connected layer");
    ck_assert_str_eq(d->version, "0.1.0");
    ck_assert_str_eq(d->path, "dense.ini");
    ck_assert_int_eq(d->n_params, 3);

    const mltk_param_def *u = mltk_desc_param(d, "units");
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(u->type, MLTK_P_INT);
    ck_assert_int_eq(u->required, 1);
    ck_assert_int_eq(u->has_min, 1);
    ck_assert_int_eq(u->has_max, 0);
    ck_assert(u->min == 1.0);
    ck_assert_ptr_null(u->def);
    ck_assert_str_eq(u->doc, "number of output features");
    ck_assert_int_eq(u->line, 10);

    const mltk_param_def *b = mltk_desc_param(d, "bias");
    ck_assert_int_eq(b->type, MLTK_P_BOOL);
    ck_assert_str_eq(b->def, "true");
    ck_assert_int_eq(b->required, 0);

    const mltk_param_def *a = mltk_desc_param(d, "activation");
    ck_assert_int_eq(a->type, MLTK_P_ENUM);
    ck_assert_str_eq(a->choices[0], "none");
    ck_assert_str_eq(a->choices[1], "relu");
    ck_assert_str_eq(a->choices[2], "tanh");
    ck_assert_ptr_null(a->choices[3]);
    ck_assert_int_eq(a->line, 19);

    ck_assert_ptr_null(mltk_desc_param(d, "unit"));
    ck_assert_ptr_null(mltk_desc_param(NULL, "units"));
    mltk_desc_free(d);
}
END_TEST

START_TEST(test_desc_symbol_and_abi_minor)
{
    mltk_desc *d = NULL;
    ck_assert_int_eq(mltk_desc_parse(&d,
                         "[plugin]\nname = fast_dense\nkind = layer\nabi = 2.0\n"
                         "library = /opt/x/fd.so\nsymbol = my_entry\n", "x.ini", NULL),
                     MLTK_OK);
    ck_assert_str_eq(d->symbol, "my_entry");
    ck_assert_int_eq(d->abi, 2);
    ck_assert_ptr_null(d->summary);
    ck_assert_int_eq(d->n_params, 0);
    mltk_desc_free(d);
}
END_TEST

START_TEST(test_desc_schemas)
{
    const char *const schemas[] = { mltk_schema_run, mltk_schema_train, mltk_schema_log,
                                    mltk_schema_data, mltk_schema_layer, mltk_schema_loss,
                                    mltk_schema_optimizer };
    const char *const names[] = { "run", "train", "log", "data", "layer", "loss",
                                  "optimizer" };
    for (int i = 0; i < 7; i++) {
        mltk_desc *d = NULL;
        char *err = NULL;
        ck_assert_msg(mltk_desc_parse(&d, schemas[i], "schema", &err) == MLTK_OK,
                      "schema %s: %s", names[i], err);
        ck_assert_str_eq(d->name, names[i]);
        ck_assert_int_eq(d->kind, 0);
        ck_assert_ptr_null(d->library);
        ck_assert_int_gt(d->n_params, 0);
        mltk_desc_free(d);
    }
}
END_TEST

typedef struct desc_case {
    const char *text;
    const char *msg;   /* the whole message, origin "d.ini" */
} desc_case;

#define PLUGIN_HEAD "[plugin]\nname = x\nkind = layer\nabi = 2\nlibrary = x.so\n"  /* 1-5 */

static const desc_case desc_cases[] = {
    { "[plugin]\nname = x\nnmae = y\n",
      "d.ini:3: [plugin]: unknown key 'nmae'; did you mean 'name'?" },
    { PLUGIN_HEAD "[param.a]\ntype = int\ncolour = red\n",
      "d.ini:8: [param.a]: unknown key 'colour' (valid keys: type, default, min, max, "
      "required, choices, doc)" },
    { PLUGIN_HEAD "[param.a]\ntype = integer\n",
      "d.ini:7: [param.a]: unknown type 'integer' (types: int, float, bool, string, enum, "
      "ints, floats, list)" },
    { PLUGIN_HEAD "[param.a]\n",
      "d.ini:6: [param.a]: missing required key 'type'" },
    { PLUGIN_HEAD "[param.a]\ntype = int\nmin = 1\ndefault = 0\n",
      "d.ini:9: [param.a]: default must be >= 1, got 0" },
    { PLUGIN_HEAD "[param.a]\ntype = float\nmax = 0.5\ndefault = 0.75\n",
      "d.ini:9: [param.a]: default must be <= 0.5, got 0.75" },
    { PLUGIN_HEAD "[param.a]\ntype = int\ndefault = 1.5\n",
      "d.ini:8: [param.a]: default must be an integer, got '1.5'" },
    { PLUGIN_HEAD "[param.m]\ntype = enum\nchoices = a, b, c\ndefault = d\n",
      "d.ini:9: [param.m]: default must be one of: a, b, c (got 'd')" },
    { PLUGIN_HEAD "[param.m]\ntype = enum\ndefault = a\n",
      "d.ini:6: [param.m]: an enum parameter needs 'choices'" },
    { PLUGIN_HEAD "[param.m]\ntype = enum\nchoices = a, b, a\n",
      "d.ini:8: [param.m]: choice 'a' is listed twice" },
    { PLUGIN_HEAD "[param.m]\ntype = enum\nchoices = a,,b\n",
      "d.ini:8: [param.m]: empty entry in choices 'a,,b'" },
    { PLUGIN_HEAD "[param.a]\ntype = int\nchoices = 1, 2\n",
      "d.ini:8: [param.a]: 'choices' applies only to enum parameters, not int" },
    { PLUGIN_HEAD "[param.s]\ntype = string\nmin = 1\n",
      "d.ini:8: [param.s]: 'min' applies only to int, float, ints and floats parameters, "
      "not string" },
    { PLUGIN_HEAD "[param.a]\ntype = int\nmin = 5\nmax = 1\n",
      "d.ini:9: [param.a]: max (1) is less than min (5)" },
    { PLUGIN_HEAD "[param.a]\ntype = int\nmin = low\n",
      "d.ini:8: [param.a]: min must be a number, got 'low'" },
    { PLUGIN_HEAD "[param.a]\ntype = int\nrequired = maybe\n",
      "d.ini:8: [param.a]: required must be true or false, got 'maybe'" },
    { PLUGIN_HEAD "[param.a]\ntype = int\nrequired = yes\ndefault = 3\n",
      "d.ini:9: [param.a]: a required parameter cannot have a default" },
    { PLUGIN_HEAD "[param.k]\ntype = ints\nmin = 1\ndefault = 3, 0\n",
      "d.ini:9: [param.k]: default values must be >= 1, got 0" },
    { "[plugin]\nkind = layer\n",
      "d.ini:1: [plugin]: missing required key 'name'" },
    { "[plugin]\nname = x\nkind = layer\nlibrary = x.so\n",
      "d.ini:1: [plugin]: missing required key 'abi'" },
    { "# nothing\n[param.a]\ntype = int\n",
      "d.ini: missing section [plugin]" },
    { "[plugin]\nname = x\n[parm.units]\ntype = int\n",
      "d.ini:3: unknown section [parm.units]; did you mean [param.units]?" },
    { "[plugins]\nname = x\n",
      "d.ini:1: unknown section [plugins]; did you mean [plugin]?" },
    { "[plugin]\nname = x\n[settings]\n",
      "d.ini:3: unknown section [settings] (a descriptor has a [plugin] section and one "
      "[param.NAME] section per parameter)" },
    { "[plugin]\nname = x\nname = y\n",
      "d.ini:3: [plugin]: duplicate key 'name' (first on line 2)" },
    { PLUGIN_HEAD "[param.a]\ntype = int\n[param.a]\ntype = int\n",
      "d.ini:8: duplicate section [param.a] (first on line 6)" },
    { "[plugin]\nname = x\n[plugin]\n",
      "d.ini:3: duplicate section [plugin] (first on line 1)" },
    { "[plugin]\nname = x\nkind = layer\nabi = one\nlibrary = x.so\n",
      "d.ini:4: [plugin]: abi must be a major version number such as 2, got 'one'" },
    { "[plugin]\nname = x\nkind = lyer\nabi = 2\nlibrary = x.so\n",
      "d.ini:3: [plugin]: unknown kind 'lyer'; did you mean 'layer'? (kinds: backend, "
      "layer, loss, optimizer, dataset, schedule, transform)" },
    { "[plugin]\nname = x\nkind = widget\nabi = 2\nlibrary = x.so\n",
      "d.ini:3: [plugin]: unknown kind 'widget' (kinds: backend, layer, loss, optimizer, "
      "dataset, schedule, transform)" },
    { PLUGIN_HEAD "[param.1x]\ntype = int\n",
      "d.ini:6: invalid parameter name '1x' in [param.1x] (letters, digits and '_', not "
      "starting with a digit)" },
    { "[plugin]\nname = 1abc\n",
      "d.ini:2: [plugin]: invalid name '1abc' (letters, digits and '_', not starting "
      "with a digit)" },
    { PLUGIN_HEAD "symbol = not-an-identifier\n",
      "d.ini:6: [plugin]: symbol 'not-an-identifier' is not a C identifier" },
    { "[plugin]\nname = x\njust some words\n",
      "d.ini:3: malformed line (expected 'key = value')" },
    { "[plugin\nname = x\n",
      "d.ini:1: malformed section header (expected '[name]')" },
    { "name = x\n[plugin]\n",
      "d.ini:1: key 'name' outside any section (put it under [plugin] or [param.NAME])" },
    /* found by fuzz_descriptor: inih stripped a byte order mark that followed
     * white space (or a first one) and saw a header that was never reported,
     * so the key after it reached a descriptor without a section */
    { "\f\xEF\xBB\xBF[plugin]\nname = x\n",
      "d.ini:1: a byte order mark (EF BB BF) may only start the file" },
    { "\xEF\xBB\xBF\xEF\xBB\xBF[plugin]\nname = x\n",
      "d.ini:1: a byte order mark (EF BB BF) may only start the file" },
};

START_TEST(test_desc_errors)
{
    const desc_case *c = &desc_cases[_i];
    mltk_desc *d = (mltk_desc *)&d;  /* must be reset to NULL */
    char *err = NULL;
    int rc = mltk_desc_parse(&d, c->text, "d.ini", &err);
    ck_assert_int_eq(rc, MLTK_ERR_PLUGIN);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, c->msg);
    free(err);
}
END_TEST

START_TEST(test_desc_load)
{
    char *dir = tu_tmpdir();
    char *real = realpath(dir, NULL);
    char *path = tu_write(dir, "x.ini", PLUGIN_HEAD);
    mltk_desc *d = NULL;
    char *err = NULL;

    /* library relative to the descriptor, absolute in the result */
    ck_assert_int_eq(mltk_desc_load(&d, path, &err), MLTK_OK);
    char *want = tu_fmt("%s/x.so", real);
    ck_assert_str_eq(d->library, want);
    ck_assert_str_eq(d->path, path);
    free(want);
    mltk_desc_free(d);

    /* a libtool build tree: the module is in .libs/ */
    char *libs = tu_fmt("%s/.libs", dir);
    ck_assert_int_eq(mkdir(libs, 0700), 0);
    free(tu_write(libs, "x.so", "not really a library"));
    ck_assert_int_eq(mltk_desc_load(&d, path, &err), MLTK_OK);
    want = tu_fmt("%s/.libs/x.so", real);
    ck_assert_str_eq(d->library, want);
    free(want);
    mltk_desc_free(d);

    /* ... but one beside the descriptor wins */
    free(tu_write(dir, "x.so", "not really a library"));
    ck_assert_int_eq(mltk_desc_load(&d, path, &err), MLTK_OK);
    want = tu_fmt("%s/x.so", real);
    ck_assert_str_eq(d->library, want);
    free(want);
    mltk_desc_free(d);

    /* an absolute library is kept */
    free(path);
    path = tu_write(dir, "y.ini", "[plugin]\nname = y\nkind = loss\nabi = 2\n"
                                  "library = /nowhere/y.so\n");
    ck_assert_int_eq(mltk_desc_load(&d, path, &err), MLTK_OK);
    ck_assert_str_eq(d->library, "/nowhere/y.so");
    ck_assert_int_eq(d->kind, MLTK_KIND_LOSS);
    mltk_desc_free(d);
    ck_assert_ptr_null(err);

    /* a plugin's file needs kind, abi and library */
    free(path);
    path = tu_write(dir, "z.ini", "\n[plugin]\nname = z\nsummary = incomplete\n");
    ck_assert_int_eq(mltk_desc_load(&d, path, &err), MLTK_ERR_PLUGIN);
    ck_assert_ptr_null(d);
    want = tu_fmt("%s:2: [plugin]: missing required key 'kind'", path);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;

    /* a file that is not there */
    free(path);
    path = tu_fmt("%s/missing.ini", dir);
    ck_assert_int_eq(mltk_desc_load(&d, path, &err), MLTK_ERR_IO);
    want = tu_fmt("%s: cannot open file: No such file or directory", path);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);

    free(path);
    free(libs);
    free(real);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- params ------------------------------------------------------------------ */

static const char all_types_desc[] =
    "[plugin]\nname = t\nkind = layer\nabi = 2\nlibrary = t.so\n"
    "[param.units]\ntype = int\nmin = 1\nmax = 4096\nrequired = true\n"
    "[param.rate]\ntype = float\nmin = 0\nmax = 1\ndefault = 0.5\n"
    "[param.bias]\ntype = bool\ndefault = true\n"
    "[param.mode]\ntype = enum\nchoices = fast, exact\ndefault = exact\n"
    "[param.label]\ntype = string\n"
    "[param.kernel]\ntype = ints\nmin = 1\ndefault = 3, 3\n"
    "[param.betas]\ntype = floats\nmin = 0\nmax = 1\ndefault = 0.9,0.999\n"
    "[param.inputs]\ntype = list\n";

static mltk_desc *all_types(void)
{
    mltk_desc *d = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_desc_parse(&d, all_types_desc, "t.ini", &err) == MLTK_OK, "%s", err);
    return d;
}

/* build from one "key" = "value" pair on line 7 of t.ini, section on line 5 */
static int build1(mltk_params_t **p, const mltk_desc *d, const char *key,
                  const char *value, char **err)
{
    const mltk_desc *descs[1] = { d };
    const char *keys[1] = { key };
    const char *values[1] = { value };
    const int lines[1] = { 7 };
    return mltk_params_build(p, descs, 1, 1, keys, values, lines, "t.ini", 5,
                             "layer 'fc1' (t)", err);
}

START_TEST(test_params_defaults_and_accessors)
{
    mltk_desc *d = all_types();
    const mltk_desc *descs[1] = { d };
    const char *keys[] = { "units", "label", "inputs", "bias" };
    const char *values[] = { "128", "hello world", "fc1, data", "off" };
    const int lines[] = { 6, 7, 8, 9 };
    mltk_params_t *p = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_params_build(&p, descs, 1, 4, keys, values, lines, "t.ini", 5,
                                       "layer 'fc1' (t)", &err), MLTK_OK);
    ck_assert_ptr_null(err);
    ck_assert_str_eq(mltk_params_where(p), "t.ini:5: layer 'fc1' (t)");
    ck_assert_int_eq(mltk_params_int(p, "units"), 128);
    ck_assert(mltk_params_float(p, "units") == 128.0);
    ck_assert(mltk_params_float(p, "rate") == 0.5);
    ck_assert_int_eq(mltk_params_bool(p, "bias"), 0);
    ck_assert_str_eq(mltk_params_str(p, "mode"), "exact");
    ck_assert_str_eq(mltk_params_str(p, "label"), "hello world");
    ck_assert_str_eq(mltk_params_str(p, "inputs"), "fc1, data");
    ck_assert_str_eq(mltk_params_str(p, "units"), "128");

    int64_t k[4] = { 0 };
    ck_assert_int_eq(mltk_params_ints(p, "kernel", k, 4), 2);
    ck_assert_int_eq(k[0], 3);
    ck_assert_int_eq(k[1], 3);
    ck_assert_int_eq(mltk_params_ints(p, "kernel", k, 1), 1);
    ck_assert_int_eq(mltk_params_ints(p, "kernel", NULL, 0), 2);
    ck_assert_int_eq(mltk_params_ints(p, "units", k, 4), 1);
    ck_assert_int_eq(k[0], 128);
    double b[3] = { 0 };
    ck_assert_int_eq(mltk_params_floats(p, "betas", b, 3), 2);
    ck_assert(b[0] == 0.9);
    ck_assert(b[1] == 0.999);
    ck_assert_int_eq(mltk_params_floats(p, "kernel", b, 3), 2);
    ck_assert(b[0] == 3.0);

    ck_assert_int_eq(mltk_params_has(p, "units"), 1);
    ck_assert_int_eq(mltk_params_has(p, "rate"), 1);   /* has a default */
    ck_assert_int_eq(mltk_params_has(p, "label"), 1);

    /* what the user set, and where */
    int ui = -1, ri = -1;
    for (int i = 0; i < p->n; i++) {
        if (strcmp(p->defs[i]->name, "units") == 0)
            ui = i;
        if (strcmp(p->defs[i]->name, "rate") == 0)
            ri = i;
    }
    ck_assert_int_eq(p->n, 8);
    ck_assert_int_eq(p->set[ui], 1);
    ck_assert_int_eq(p->lines[ui], 6);
    ck_assert_int_eq(p->set[ri], 0);
    ck_assert_int_eq(p->lines[ri], 0);
    mltk_params_free(p);

    /* an optional key without default is unset */
    ck_assert_int_eq(build1(&p, d, "units", "1", &err), MLTK_OK);
    ck_assert_int_eq(mltk_params_has(p, "label"), 0);
    ck_assert_str_eq(mltk_params_str(p, "label"), "");
    ck_assert_int_eq(mltk_params_has(p, "inputs"), 0);
    ck_assert_int_eq(mltk_params_bool(p, "bias"), 1);
    mltk_params_free(p);
    mltk_desc_free(d);
}
END_TEST

START_TEST(test_params_value_forms)
{
    mltk_desc *d = all_types();
    mltk_params_t *p = NULL;
    static const char *const yes[] = { "true", "yes", "on", "1", "TRUE", "Yes" };
    static const char *const no[] = { "false", "no", "off", "0", "False" };
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(build1(&p, d, "bias", yes[i], NULL), MLTK_ERR_CONFIG); /* units */
        const mltk_desc *descs[1] = { d };
        const char *keys[2] = { "units", "bias" };
        const char *values[2] = { "+7", yes[i] };
        ck_assert_int_eq(mltk_params_build(&p, descs, 1, 2, keys, values, NULL, NULL, 0,
                                           "x", NULL), MLTK_OK);
        ck_assert_int_eq(mltk_params_bool(p, "bias"), 1);
        ck_assert_int_eq(mltk_params_int(p, "units"), 7);
        mltk_params_free(p);
    }
    for (int i = 0; i < 5; i++) {
        const mltk_desc *descs[1] = { d };
        const char *keys[2] = { "units", "bias" };
        const char *values[2] = { "4096", no[i] };
        ck_assert_int_eq(mltk_params_build(&p, descs, 1, 2, keys, values, NULL, NULL, 0,
                                           "x", NULL), MLTK_OK);
        ck_assert_int_eq(mltk_params_bool(p, "bias"), 0);
        ck_assert_int_eq(mltk_params_int(p, "units"), 4096);
        mltk_params_free(p);
    }
    const mltk_desc *descs[1] = { d };
    const char *keys[4] = { "units", "rate", "kernel", "betas" };
    const char *values[4] = { "1", "1e-3", " 5 ,7,9", "0, 1" };
    ck_assert_int_eq(mltk_params_build(&p, descs, 1, 4, keys, values, NULL, NULL, 0, "x",
                                       NULL), MLTK_OK);
    ck_assert(mltk_params_float(p, "rate") == 1e-3);
    int64_t k[3];
    ck_assert_int_eq(mltk_params_ints(p, "kernel", k, 3), 3);
    ck_assert_int_eq(k[0], 5);
    ck_assert_int_eq(k[2], 9);
    double b[2];
    ck_assert_int_eq(mltk_params_floats(p, "betas", b, 2), 2);
    ck_assert(b[0] == 0.0 && b[1] == 1.0);
    mltk_params_free(p);
    mltk_desc_free(d);
}
END_TEST

START_TEST(test_params_misuse_logged)
{
    mltk_desc *d = all_types();
    mltk_params_t *p = NULL;
    ck_assert_int_eq(build1(&p, d, "units", "3", NULL), MLTK_OK);
    mltk_log_set_level(MLTK_LOG_ERROR);
    tu_capture c;
    tu_capture_begin(&c);
    int64_t v = mltk_params_int(p, "nope");
    double f = mltk_params_float(p, "label");
    const char *s = mltk_params_str(p, "nope");
    int h = mltk_params_has(p, "nope");
    int64_t iv = mltk_params_int(p, "rate");
    char *out = tu_capture_end(&c);
    ck_assert_int_eq(v, 0);
    ck_assert(f == 0.0);
    ck_assert_str_eq(s, "");
    ck_assert_int_eq(h, 0);
    ck_assert_int_eq(iv, 0);
    TU_ASSERT_CONTAINS(out, "mltk: error: t.ini:5: layer 'fc1' (t): "
                            "mltk_params_int('nope'): the descriptor declares no such "
                            "parameter\n");
    TU_ASSERT_CONTAINS(out, "mltk: error: t.ini:5: layer 'fc1' (t): "
                            "mltk_params_float('label'): the parameter is of type string\n");
    TU_ASSERT_CONTAINS(out, "mltk_params_int('rate'): the parameter is of type float\n");
    free(out);
    mltk_params_free(p);
    mltk_desc_free(d);
}
END_TEST

typedef struct param_case {
    const char *key, *value;
    const char *msg;  /* after "t.ini:7: layer 'fc1' (t): " */
} param_case;

static const param_case param_cases[] = {
    { "units", "abc", "key 'units' must be an integer, got 'abc'" },
    { "units", "12abc", "key 'units' must be an integer, got '12abc'" },
    { "units", "1.0", "key 'units' must be an integer, got '1.0'" },
    { "units", "0x10", "key 'units' must be an integer, got '0x10'" },
    { "units", "99999999999999999999",
      "key 'units' is out of range for a 64-bit integer, got '99999999999999999999'" },
    { "units", "0", "key 'units' must be >= 1, got 0" },
    { "units", "5000", "key 'units' must be <= 4096, got 5000" },
    { "units", "", "key 'units' has no value" },
    { "rate", "fast", "key 'rate' must be a number, got 'fast'" },
    { "rate", "0.5x", "key 'rate' must be a number, got '0.5x'" },
    { "rate", "nan", "key 'rate' must be a finite number, got 'nan'" },
    { "rate", "1e999", "key 'rate' must be a finite number, got '1e999'" },
    { "rate", "1.5", "key 'rate' must be <= 1, got 1.5" },
    { "rate", "-0.25", "key 'rate' must be >= 0, got -0.25" },
    { "bias", "maybe",
      "key 'bias' must be true or false (or yes/no, on/off, 1/0), got 'maybe'" },
    { "mode", "slow", "key 'mode' must be one of: fast, exact (got 'slow')" },
    { "mode", "Fast", "key 'mode' must be one of: fast, exact (got 'Fast')" },
    { "kernel", "3,x", "key 'kernel' must be a comma-separated list of integers, got '3,x'" },
    { "kernel", "3,", "key 'kernel' must be a comma-separated list of integers, got '3,'" },
    { "kernel", "3,0", "key 'kernel' values must be >= 1, got 0" },
    { "betas", "0.9,2", "key 'betas' values must be <= 1, got 2" },
    { "betas", "0.9;0.99",
      "key 'betas' must be a comma-separated list of finite numbers, got '0.9;0.99'" },
    { "inputs", "a,,b", "key 'inputs' must be a comma-separated list of names, got 'a,,b'" },
    { "unit", "3", "unknown key 'unit'; did you mean 'units'?" },
    { "Units", "3", "unknown key 'Units'; did you mean 'units'?" },
    { "colour", "red", "unknown key 'colour' (valid keys: units, rate, bias, mode, label, "
                       "kernel, betas, inputs)" },
};

START_TEST(test_params_errors)
{
    const param_case *c = &param_cases[_i];
    mltk_desc *d = all_types();
    mltk_params_t *p = (mltk_params_t *)&p;  /* must be reset to NULL */
    char *err = NULL;
    ck_assert_int_eq(build1(&p, d, c->key, c->value, &err), MLTK_ERR_CONFIG);
    ck_assert_ptr_null(p);
    char *want = tu_fmt("t.ini:7: layer 'fc1' (t): %s", c->msg);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    mltk_desc_free(d);
}
END_TEST

START_TEST(test_params_required_duplicate_nofile)
{
    mltk_desc *d = all_types();
    const mltk_desc *descs[1] = { d };
    mltk_params_t *p = NULL;
    char *err = NULL;

    /* missing required: the section's line */
    ck_assert_int_eq(mltk_params_build(&p, descs, 1, 0, NULL, NULL, NULL, "t.ini", 5,
                                       "layer 'fc1' (t)", &err), MLTK_ERR_CONFIG);
    ck_assert_str_eq(err, "t.ini:5: layer 'fc1' (t): missing required key 'units'");
    free(err);
    err = NULL;

    /* duplicate: both lines */
    const char *keys[] = { "units", "rate", "units" };
    const char *values[] = { "1", "0.1", "2" };
    const int lines[] = { 6, 8, 9 };
    ck_assert_int_eq(mltk_params_build(&p, descs, 1, 3, keys, values, lines, "t.ini", 5,
                                       "layer 'fc1' (t)", &err), MLTK_ERR_CONFIG);
    ck_assert_str_eq(err, "t.ini:9: layer 'fc1' (t): duplicate key 'units' (first set "
                          "on line 6)");
    free(err);
    err = NULL;

    /* no file, no lines: the message names only the section */
    const char *rate_key[] = { "rate" };
    const char *rate_val[] = { "2" };
    ck_assert_int_eq(mltk_params_build(&p, descs, 1, 1, rate_key, rate_val, NULL, NULL, 0,
                                       "layer 'fc1' (t)", &err), MLTK_ERR_CONFIG);
    ck_assert_str_eq(err, "layer 'fc1' (t): key 'rate' must be <= 1, got 2");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_params_build(&p, descs, 1, 1, keys, values, NULL, NULL, 0,
                                       "layer 'fc1' (t)", &err), MLTK_OK);
    ck_assert_str_eq(mltk_params_where(p), "layer 'fc1' (t)");
    mltk_params_free(p);
    mltk_desc_free(d);
}
END_TEST

START_TEST(test_params_two_descriptors)
{
    mltk_desc *layer = NULL, *d = NULL, *clash = NULL;
    ck_assert_int_eq(mltk_desc_parse(&layer, mltk_schema_layer, "schema", NULL), MLTK_OK);
    d = all_types();
    ck_assert_int_eq(mltk_desc_parse(&clash, "[plugin]\nname = c\n[param.units]\n"
                                             "type = string\n", "c.ini", NULL), MLTK_OK);
    const mltk_desc *descs[3] = { layer, d, clash };
    const char *keys[] = { "type", "units", "input" };
    const char *values[] = { "t", "12", "data" };
    mltk_params_t *p = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_params_build(&p, descs, 3, 3, keys, values, NULL, "f.ini", 2,
                                       "layer 'x' (t)", &err), MLTK_OK);
    ck_assert_str_eq(mltk_params_str(p, "type"), "t");
    ck_assert_str_eq(mltk_params_str(p, "input"), "data");
    ck_assert_int_eq(mltk_params_int(p, "units"), 12);
    ck_assert_int_eq(p->n, 12);
    mltk_params_free(p);

    /* the first declaration of a name wins: units is an int, not a string */
    values[1] = "many";
    ck_assert_int_eq(mltk_params_build(&p, descs, 3, 3, keys, values, NULL, "f.ini", 2,
                                       "layer 'x' (t)", &err), MLTK_ERR_CONFIG);
    ck_assert_str_eq(err, "f.ini: layer 'x' (t): key 'units' must be an integer, got 'many'");
    free(err);
    mltk_desc_free(layer);
    mltk_desc_free(d);
    mltk_desc_free(clash);
}
END_TEST

/* ---- configs ----------------------------------------------------------------- */

static const char *const fake_plugins[][2] = {
    { "dense.ini",
      "[plugin]\nname = dense\nkind = layer\nabi = 2\nlibrary = dense.so\n"
      "summary = Fully connected layer\n"
      "[param.units]\ntype = int\nmin = 1\nrequired = true\n"
      "[param.bias]\ntype = bool\ndefault = true\n"
      "[param.activation]\ntype = enum\nchoices = none, relu, tanh\ndefault = none\n" },
    { "flatten.ini",
      "[plugin]\nname = flatten\nkind = layer\nabi = 2\nlibrary = flatten.so\n" },
    { "relu.ini",
      "[plugin]\nname = relu\nkind = layer\nabi = 2\nlibrary = relu.so\n" },
    { "idx.ini",
      "[plugin]\nname = idx\nkind = dataset\nabi = 2\nlibrary = idx.so\n"
      "[param.dir]\ntype = string\ndefault = /usr/share/datasets/fashion-mnist\n"
      "[param.normalize]\ntype = bool\ndefault = true\n" },
    { "cross_entropy.ini",
      "[plugin]\nname = cross_entropy\nkind = loss\nabi = 2\nlibrary = ce.so\n"
      "[param.label_smoothing]\ntype = float\nmin = 0\nmax = 1\ndefault = 0\n" },
    { "adam.ini",
      "[plugin]\nname = adam\nkind = optimizer\nabi = 2\nlibrary = adam.so\n"
      "[param.lr]\ntype = float\nmin = 0\ndefault = 0.001\n"
      "[param.betas]\ntype = floats\nmin = 0\nmax = 1\ndefault = 0.9, 0.999\n" },
    { "sgd.ini",
      "[plugin]\nname = sgd\nkind = optimizer\nabi = 2\nlibrary = sgd.so\n"
      "[param.lr]\ntype = float\nmin = 0\nrequired = true\n"
      "[param.momentum]\ntype = float\nmin = 0\nmax = 1\ndefault = 0\n" },
};

static char *plugin_dir;
static char *work_dir;
static mltk_registry_t *reg;

static void config_setup(void)
{
    unsetenv("MLTK_PLUGIN_PATH");
    plugin_dir = tu_tmpdir();
    work_dir = tu_tmpdir();
    for (size_t i = 0; i < sizeof fake_plugins / sizeof fake_plugins[0]; i++)
        free(tu_write(plugin_dir, fake_plugins[i][0], fake_plugins[i][1]));
    const char *dirs[] = { plugin_dir, NULL };
    char *err = NULL;
    ck_assert_msg(mltk_registry_create(&reg, dirs, 0, &err) == MLTK_OK, "%s", err);
    ck_assert_int_eq(mltk_registry_count(reg), 7);
}

static void config_teardown(void)
{
    mltk_registry_destroy(reg);
    reg = NULL;
    tu_rmtree(plugin_dir);
    tu_rmtree(work_dir);
    free(plugin_dir);
    free(work_dir);
}

static char *data_path(const char *name)
{
    return tu_fmt("%s/tests/data/config/%s", tu_srcdir(), name);
}

START_TEST(test_config_good)
{
    char *path = data_path("good.ini");
    mltk_config_t *cfg = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_config_load(&cfg, reg, path, &err) == MLTK_OK, "%s", err);
    ck_assert_str_eq(cfg->path, path);
    char *text = tu_read(path);
    ck_assert_str_eq(cfg->text, text);
    free(text);

    static const char *const names[] = { "run", "train", "log", "data", "layer.flat",
                                         "layer.fc1", "layer.out", "loss", "optimizer" };
    static const char *const labels[] = { "run", "train", "log", "data", "flat", "fc1",
                                          "out", "loss", "optimizer" };
    static const int lines[] = { 2, 6, 9, 12, 17, 20, 25, 30, 33 };
    static const char *const plugins[] = { NULL, NULL, NULL, "idx", "flatten", "dense",
                                           "dense", "cross_entropy", "adam" };
    ck_assert_int_eq(cfg->n_sec, 9);
    for (int i = 0; i < 9; i++) {
        const mltk_section *s = &cfg->sec[i];
        ck_assert_str_eq(s->name, names[i]);
        ck_assert_str_eq(s->label, labels[i]);
        ck_assert_int_eq(s->line, lines[i]);
        if (plugins[i])
            ck_assert_str_eq(s->plugin->name, plugins[i]);
        else
            ck_assert_ptr_null(s->plugin);
        ck_assert_ptr_eq(mltk_config_section(cfg, names[i]), s);
    }
    ck_assert_ptr_null(mltk_config_section(cfg, "layer.fc2"));
    ck_assert_ptr_null(mltk_config_section(cfg, "fc1"));

    const mltk_params_t *p = mltk_config_section(cfg, "run")->params;
    ck_assert_int_eq(mltk_params_int(p, "seed"), 42);
    ck_assert_str_eq(mltk_params_str(p, "backend"), "cuda, cpu");
    ck_assert_int_eq(mltk_params_int(p, "threads"), 0);
    char *where = tu_fmt("%s:2: [run]", path);
    ck_assert_str_eq(mltk_params_where(p), where);
    free(where);

    p = mltk_config_section(cfg, "train")->params;
    ck_assert_int_eq(mltk_params_int(p, "epochs"), 3);
    ck_assert_int_eq(mltk_params_int(p, "batch_size"), 32);
    ck_assert_int_eq(mltk_params_bool(p, "shuffle"), 1);

    p = mltk_config_section(cfg, "log")->params;
    ck_assert_str_eq(mltk_params_str(p, "level"), "debug");
    ck_assert_int_eq(mltk_params_has(p, "jsonl"), 0);

    p = mltk_config_section(cfg, "data")->params;
    ck_assert_str_eq(mltk_params_str(p, "type"), "idx");
    ck_assert_str_eq(mltk_params_str(p, "dir"), "/usr/share/datasets/fashion-mnist");
    ck_assert_int_eq(mltk_params_int(p, "train_limit"), 1000);
    ck_assert_int_eq(mltk_params_int(p, "test_limit"), 0);
    ck_assert_int_eq(mltk_params_bool(p, "normalize"), 1);
    where = tu_fmt("%s:12: [data] (idx)", path);
    ck_assert_str_eq(mltk_params_where(p), where);
    free(where);

    p = mltk_config_section(cfg, "layer.fc1")->params;
    ck_assert_int_eq(mltk_params_int(p, "units"), 128);
    ck_assert_str_eq(mltk_params_str(p, "activation"), "relu");
    ck_assert_int_eq(mltk_params_bool(p, "bias"), 1);
    ck_assert_int_eq(mltk_params_has(p, "input"), 0);
    where = tu_fmt("%s:20: layer 'fc1' (dense)", path);
    ck_assert_str_eq(mltk_params_where(p), where);
    free(where);

    p = mltk_config_section(cfg, "layer.out")->params;
    ck_assert_int_eq(mltk_params_int(p, "units"), 10);
    ck_assert_str_eq(mltk_params_str(p, "input"), "fc1");
    ck_assert_str_eq(mltk_params_str(p, "activation"), "none");

    p = mltk_config_section(cfg, "loss")->params;
    ck_assert(mltk_params_float(p, "label_smoothing") == 0.0);

    p = mltk_config_section(cfg, "optimizer")->params;
    ck_assert(mltk_params_float(p, "lr") == 0.001);
    double betas[2];
    ck_assert_int_eq(mltk_params_floats(p, "betas", betas, 2), 2);
    ck_assert(betas[1] == 0.999);
    where = tu_fmt("%s:33: [optimizer] (adam)", path);
    ck_assert_str_eq(mltk_params_where(p), where);
    free(where);

    mltk_config_destroy(cfg);
    free(path);
}
END_TEST

/* comments, CRLF line ends, a byte order mark, empty sections */
START_TEST(test_config_syntax_variants)
{
    char *path = tu_write(work_dir, "train.ini",
                          "\xEF\xBB\xBF; comment\r\n"
                          "[train]\r\n"
                          "[data]   # the data\r\n"
                          "  type=idx\r\n"
                          "\tdir =  /tmp/x y  \r\n"
                          "[layer.l_1]\r\n"
                          "type = relu\r\n"
                          "[loss]\r\n"
                          "type = cross_entropy ; trailing\r\n"
                          "[optimizer]\r\n"
                          "type = sgd\r\n"
                          "lr = 0.5\r\n");
    mltk_config_t *cfg = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_config_load(&cfg, reg, path, &err) == MLTK_OK, "%s", err);
    ck_assert_int_eq(cfg->n_sec, 5);
    const mltk_section *t = mltk_config_section(cfg, "train");
    ck_assert_int_eq(t->line, 2);
    ck_assert_int_eq(mltk_params_int(t->params, "epochs"), 10);
    const mltk_section *d = mltk_config_section(cfg, "data");
    ck_assert_str_eq(mltk_params_str(d->params, "dir"), "/tmp/x y");
    ck_assert_str_eq(mltk_config_section(cfg, "layer.l_1")->label, "l_1");
    const mltk_section *o = mltk_config_section(cfg, "optimizer");
    ck_assert(mltk_params_float(o->params, "lr") == 0.5);
    ck_assert(mltk_params_float(o->params, "momentum") == 0.0);
    mltk_config_destroy(cfg);
    free(path);
}
END_TEST

/* A minimal valid config, lines 1-9. */
#define MIN_DATA   "[data]\ntype = idx\n"
#define MIN_LAYER  "[layer.fc1]\ntype = dense\nunits = 10\n"
#define MIN_LOSS   "[loss]\ntype = cross_entropy\n"
#define MIN_OPT    "[optimizer]\ntype = adam\n"
#define MIN        MIN_DATA MIN_LAYER MIN_LOSS MIN_OPT

typedef struct config_case {
    const char *text;
    int         rc;
    const char *msg;  /* after the path */
} config_case;

static const config_case config_cases[] = {
    { "[trian]\nepochs = 2\n" MIN, MLTK_ERR_CONFIG,
      ":1: unknown section [trian]; did you mean [train]?" },
    { "[optimiser]\n" MIN, MLTK_ERR_CONFIG,
      ":1: unknown section [optimiser]; did you mean [optimizer]?" },
    { "[layers.fc2]\n" MIN, MLTK_ERR_CONFIG,
      ":1: unknown section [layers.fc2]; did you mean [layer.fc2]?" },
    { "[layers]\n" MIN, MLTK_ERR_CONFIG,
      ":1: unknown section [layers]; did you mean [layer.NAME]?" },
    { "[network]\n" MIN, MLTK_ERR_CONFIG,
      ":1: unknown section [network] (sections: [run], [train], [log], [data], [layer.NAME], "
      "[loss], [optimizer], [schedule], [checkpoint], [model], [early_stopping], [metrics], "
      "[alert], [transform.NAME])" },
    { "[checkpiont]\n" MIN, MLTK_ERR_CONFIG,
      ":1: unknown section [checkpiont]; did you mean [checkpoint]?" },
    { "[early_stopping]\npatience = -1\n" MIN, MLTK_ERR_CONFIG,
      ":2: [early_stopping]: key 'patience' must be >= 0, got -1" },
    { "[train]\non_nan = retry\n" MIN, MLTK_ERR_CONFIG,
      ":2: [train]: key 'on_nan' must be one of: stop, skip_step, rollback (got 'retry')" },
    { MIN "[train]\nepochs = 1\n[train]\n", MLTK_ERR_CONFIG,
      ":12: duplicate section [train] (first on line 10)" },
    { MIN "[layer.fc1]\n", MLTK_ERR_CONFIG,
      ":10: duplicate section [layer.fc1] (first on line 3)" },
    { "seed = 1\n" MIN, MLTK_ERR_CONFIG,
      ":1: key 'seed' outside any section (put it under a [section] header)" },
    { MIN "this is not ini\n", MLTK_ERR_CONFIG,
      ":10: malformed line (expected 'key = value')" },
    { MIN "[run\n", MLTK_ERR_CONFIG,
      ":10: malformed section header (expected '[name]')" },
    { MIN "[run] seed = 1\n", MLTK_ERR_CONFIG,
      ":10: malformed section header (expected '[name]')" },
    { MIN "[run]\nlearning rate = 3\n", MLTK_ERR_CONFIG,
      ":11: malformed line (expected 'key = value'; keys contain no spaces)" },
    { MIN "[run]\n= 3\n", MLTK_ERR_CONFIG,
      ":11: malformed line (expected 'key = value'; the key is empty)" },
    { MIN_DATA MIN_LAYER MIN_OPT, MLTK_ERR_CONFIG, ": missing section [loss]" },
    { MIN_DATA MIN_LAYER MIN_LOSS, MLTK_ERR_CONFIG, ": missing section [optimizer]" },
    { MIN_LAYER MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG, ": missing section [data]" },
    { MIN_DATA MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ": missing section [layer.NAME] (a model needs at least one layer)" },
    { "", MLTK_ERR_CONFIG, ": missing section [data]" },
    { MIN_DATA "[layer.fc1]\ntype = dnese\n" MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":4: layer 'fc1': unknown layer 'dnese'; did you mean 'dense'? (known layers: dense, "
      "flatten, relu)" },
    { MIN_DATA "[layer.fc1]\ntype = conv9d\n" MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":4: layer 'fc1': unknown layer 'conv9d' (known layers: dense, flatten, relu)" },
    { MIN_DATA "[layer.fc1]\ntype = adam\n" MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":4: layer 'fc1': unknown layer 'adam': 'adam' is an optimizer plugin (known "
      "layers: dense, flatten, relu)" },
    { MIN_DATA "[layer.fc1]\ntype =\n" MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":4: layer 'fc1': key 'type' has no value" },
    { MIN_DATA MIN_LAYER MIN_LOSS "[optimizer]\nlr = 0.1\n", MLTK_ERR_CONFIG,
      ":8: [optimizer]: missing required key 'type'" },
    { MIN_DATA MIN_LAYER MIN_LOSS "[optimizer]\ntype = adma\n", MLTK_ERR_CONFIG,
      ":9: [optimizer]: unknown optimizer 'adma'; did you mean 'adam'? (known optimizers: "
      "adam, sgd)" },
    { MIN_DATA MIN_LAYER "[loss]\ntype = mse\n" MIN_OPT, MLTK_ERR_CONFIG,
      ":7: [loss]: unknown loss 'mse' (known losses: cross_entropy)" },
    { "[data]\ntype = csv\n" MIN_LAYER MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":2: [data]: unknown dataset 'csv' (known datasets: idx)" },
    { MIN_DATA MIN_LAYER MIN_LOSS "[optimizer]\ntype = sgd\n", MLTK_ERR_CONFIG,
      ":8: [optimizer] (sgd): missing required key 'lr'" },
    { MIN_DATA "[layer.fc1]\ntype = dense\n" MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":3: layer 'fc1' (dense): missing required key 'units'" },
    { MIN_DATA "[layer.fc1]\ntype = dense\nunits = 10\nunits = 20\n" MIN_LOSS MIN_OPT,
      MLTK_ERR_CONFIG, ":6: layer 'fc1' (dense): duplicate key 'units' (first set on line 5)" },
    { MIN_DATA "[layer.fc1]\ntype = dense\nunits = abc\n" MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":5: layer 'fc1' (dense): key 'units' must be an integer, got 'abc'" },
    { MIN_DATA "[layer.fc1]\ntype = dense\nunits = 0\n" MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":5: layer 'fc1' (dense): key 'units' must be >= 1, got 0" },
    { MIN_DATA MIN_LAYER "activation = sigmoid\n" MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":6: layer 'fc1' (dense): key 'activation' must be one of: none, relu, tanh "
      "(got 'sigmoid')" },
    { MIN_DATA MIN_LAYER "unit = 3\n" MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":6: layer 'fc1' (dense): unknown key 'unit'; did you mean 'units'?" },
    { MIN_DATA MIN_LAYER "colour = red\n" MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":6: layer 'fc1' (dense): unknown key 'colour' (valid keys: type, input, lr_mult, "
      "freeze, units, bias, activation)" },
    { "[data]\ntype = idx\ntrain_limt = 5\n" MIN_LAYER MIN_LOSS MIN_OPT, MLTK_ERR_CONFIG,
      ":3: [data] (idx): unknown key 'train_limt'; did you mean 'train_limit'?" },
    { MIN "[run]\nthreads = 5000\n", MLTK_ERR_CONFIG,
      ":11: [run]: key 'threads' must be <= 1024, got 5000" },
    { MIN "[run]\nseed = -1\n", MLTK_ERR_CONFIG,
      ":11: [run]: key 'seed' must be >= 0, got -1" },
    { MIN "[run]\nbackend = cuda,,cpu\n", MLTK_ERR_CONFIG,
      ":11: [run]: key 'backend' must be a comma-separated list of names, got 'cuda,,cpu'" },
    { MIN "[train]\nepochs = 0\n", MLTK_ERR_CONFIG,
      ":11: [train]: key 'epochs' must be >= 1, got 0" },
    { MIN "[train]\nshuffle = maybe\n", MLTK_ERR_CONFIG,
      ":11: [train]: key 'shuffle' must be true or false (or yes/no, on/off, 1/0), "
      "got 'maybe'" },
    { MIN "[train]\nepoch = 3\n", MLTK_ERR_CONFIG,
      ":11: [train]: unknown key 'epoch'; did you mean 'epochs'?" },
    { MIN "[log]\nlevel = loud\n", MLTK_ERR_CONFIG,
      ":11: [log]: key 'level' must be one of: error, warn, info, debug (got 'loud')" },
    { MIN "[layer.data]\ntype = relu\n", MLTK_ERR_CONFIG,
      ":10: a layer cannot be named 'data' (the name stands for the model's input)" },
    { MIN "[layer.fc-1]\ntype = relu\n", MLTK_ERR_CONFIG,
      ":10: invalid layer name 'fc-1' in [layer.fc-1] (letters, digits and '_', not "
      "starting with a digit)" },
    { MIN "[layer.]\ntype = relu\n", MLTK_ERR_CONFIG,
      ":10: invalid layer name '' in [layer.] (letters, digits and '_', not starting "
      "with a digit)" },
    { MIN "[layer]\ntype = relu\n", MLTK_ERR_CONFIG,
      ":10: section [layer] needs a layer name, e.g. [layer.fc1]" },
    { MIN "[transform]\ntype = flip\n", MLTK_ERR_CONFIG,
      ":10: section [transform] needs a name, e.g. [transform.flip]" },
    { MIN "[transform.1x]\ntype = flip\n", MLTK_ERR_CONFIG,
      ":10: invalid transform name '1x' in [transform.1x] (letters, digits and '_', not "
      "starting with a digit)" },
    /* a byte order mark after white space: the same bug as in descriptors */
    { " \xEF\xBB\xBF" MIN, MLTK_ERR_CONFIG,
      ":1: a byte order mark (EF BB BF) may only start the file" },
};

START_TEST(test_config_errors)
{
    const config_case *c = &config_cases[_i];
    char *path = tu_write(work_dir, "train.ini", c->text);
    mltk_config_t *cfg = (mltk_config_t *)&cfg;  /* must be reset to NULL */
    char *err = NULL;
    int rc = mltk_config_load(&cfg, reg, path, &err);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(rc == c->rc, "case %d: rc %d, want %d (%s)", _i, rc, c->rc, err);
    char *want = tu_fmt("%s%s", path, c->msg);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    free(path);
}
END_TEST

typedef struct file_case {
    const char *file;
    int         rc;
    const char *msg;
} file_case;

static const file_case file_cases[] = {
    { "typo-key.ini", MLTK_ERR_CONFIG,
      ":14: layer 'fc1' (dense): unknown key 'unit'; did you mean 'units'?" },
    { "unknown-section.ini", MLTK_ERR_CONFIG,
      ":5: unknown section [trian]; did you mean [train]?" },
    { "unknown-type.ini", MLTK_ERR_CONFIG,
      ":6: layer 'fc1': unknown layer 'dnese'; did you mean 'dense'? (known layers: "
      "dense, flatten, relu)" },
    { "missing-loss.ini", MLTK_ERR_CONFIG, ": missing section [loss]" },
    { "bad-value.ini", MLTK_ERR_CONFIG,
      ":7: layer 'fc1' (dense): key 'units' must be an integer, got 'abc'" },
};

START_TEST(test_config_file_errors)
{
    const file_case *c = &file_cases[_i];
    char *path = data_path(c->file);
    mltk_config_t *cfg = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_config_load(&cfg, reg, path, &err), c->rc);
    ck_assert_ptr_null(cfg);
    char *want = tu_fmt("%s%s", path, c->msg);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    free(path);
}
END_TEST

START_TEST(test_config_io_and_args)
{
    mltk_config_t *cfg = NULL;
    char *err = NULL;
    char *path = tu_fmt("%s/absent.ini", work_dir);
    ck_assert_int_eq(mltk_config_load(&cfg, reg, path, &err), MLTK_ERR_IO);
    char *want = tu_fmt("%s: cannot open file: No such file or directory", path);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;
    free(path);

    /* a binary file */
    path = tu_fmt("%s/binary.ini", work_dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite("[data]\n\0\1\2", 1, 10, f);
    fclose(f);
    ck_assert_int_eq(mltk_config_load(&cfg, reg, path, &err), MLTK_ERR_CONFIG);
    want = tu_fmt("%s: byte offset 7: NUL byte; this is not a text file", path);
    ck_assert_str_eq(err, want);
    free(want);
    free(err);
    err = NULL;

    /* no registry */
    ck_assert_int_eq(mltk_config_load(&cfg, NULL, path, &err), MLTK_ERR_INVALID);
    TU_ASSERT_CONTAINS(err, "a plugin registry is needed");
    free(err);
    free(path);

    ck_assert_ptr_null(mltk_config_section(NULL, "run"));
    mltk_config_destroy(NULL);
}
END_TEST

START_TEST(test_config_plugin_abi)
{
    /* a descriptor for another ABI is listed, but a config cannot use it */
    char *old = tu_tmpdir();
    char *desc = tu_write(old, "oldabi.ini", "[plugin]\nname = oldabi\nkind = layer\n"
                                             "abi = 3\nlibrary = oldabi.so\n");
    const char *dirs[] = { plugin_dir, old, NULL };
    mltk_registry_t *r2 = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_registry_create(&r2, dirs, 0, &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_count(r2), 8);
    char *path = tu_write(work_dir, "train.ini",
                          MIN_DATA "[layer.fc1]\ntype = oldabi\n" MIN_LOSS MIN_OPT);
    mltk_config_t *cfg = NULL;
    ck_assert_int_eq(mltk_config_load(&cfg, r2, path, &err), MLTK_ERR_ABI);
    char *real = realpath(desc, NULL);
    char *want = tu_fmt("%s:4: layer 'fc1': plugin 'oldabi' was built for ABI 3, this mltk "
                        "speaks ABI %d.%d (descriptor %s)", path, MLTK_ABI_MAJOR,
                        MLTK_ABI_MINOR, real);
    ck_assert_str_eq(err, want);
    free(want);
    free(real);
    free(err);
    err = NULL;
    free(path);
    free(desc);
    mltk_registry_destroy(r2);

    /* a plugin still built for ABI 1: the message says to rebuild it */
    desc = tu_write(old, "oldabi.ini", "[plugin]\nname = oldabi\nkind = layer\n"
                                       "abi = 1.2\nlibrary = oldabi.so\n");
    r2 = NULL;
    ck_assert_int_eq(mltk_registry_create(&r2, dirs, 0, &err), MLTK_OK);
    path = tu_write(work_dir, "train.ini",
                    MIN_DATA "[layer.fc1]\ntype = oldabi\n" MIN_LOSS MIN_OPT);
    cfg = NULL;
    ck_assert_int_eq(mltk_config_load(&cfg, r2, path, &err), MLTK_ERR_ABI);
    TU_ASSERT_CONTAINS(err, "built for plugin ABI 1.2; rebuild it against mltk 2 headers");
    free(err);
    free(path);
    free(desc);
    mltk_registry_destroy(r2);
    tu_rmtree(old);
    free(old);
}
END_TEST

/* ---- the suite ----------------------------------------------------------------- */

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *t = tcase_create("descriptor");
    tcase_add_test(t, test_desc_good);
    tcase_add_test(t, test_desc_symbol_and_abi_minor);
    tcase_add_test(t, test_desc_schemas);
    tcase_add_loop_test(t, test_desc_errors, 0, N_OF(desc_cases));
    tcase_add_test(t, test_desc_load);
    suite_add_tcase(s, t);

    t = tcase_create("params");
    tcase_add_test(t, test_params_defaults_and_accessors);
    tcase_add_test(t, test_params_value_forms);
    tcase_add_test(t, test_params_misuse_logged);
    tcase_add_loop_test(t, test_params_errors, 0, N_OF(param_cases));
    tcase_add_test(t, test_params_required_duplicate_nofile);
    tcase_add_test(t, test_params_two_descriptors);
    suite_add_tcase(s, t);

    t = tcase_create("config");
    tcase_add_checked_fixture(t, config_setup, config_teardown);
    tcase_add_test(t, test_config_good);
    tcase_add_test(t, test_config_syntax_variants);
    tcase_add_loop_test(t, test_config_errors, 0, N_OF(config_cases));
    tcase_add_loop_test(t, test_config_file_errors, 0, N_OF(file_cases));
    tcase_add_test(t, test_config_io_and_args);
    tcase_add_test(t, test_config_plugin_abi);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
