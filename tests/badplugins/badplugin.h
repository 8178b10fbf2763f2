/* badplugin.h - a trivial layer vtable shared by the test suite's plugins.
 *
 * What this is: the smallest complete struct mltk_layer_i (every member
 * does nothing and succeeds), so that each plugin under tests/badplugins
 * differs from a loadable one in exactly the way its name says.
 * What this is not: a usable layer; the registry tests only load these.
 */
#ifndef MLTK_TESTS_BADPLUGIN_H
#define MLTK_TESTS_BADPLUGIN_H

#include <stddef.h>
#include <mltk/plugin.h>

#define BP_UNUSED __attribute__((unused))

static BP_UNUSED int bp_create(void **self, const mltk_params_t *params, char **err)
{
    (void)params;
    (void)err;
    *self = NULL;
    return MLTK_OK;
}

static BP_UNUSED void bp_destroy(void *self)
{
    (void)self;
}

static BP_UNUSED int bp_setup(void *self, mltk_layer_setup_t *s, int n_in,
                    const mltk_shape *in, mltk_shape *out, char **err)
{
    (void)self;
    (void)s;
    (void)err;
    /* no calls into libmltk: these modules are not linked against it */
    if (n_in > 0)
        *out = in[0];
    else
        out->ndim = 0;
    return MLTK_OK;
}

static BP_UNUSED int bp_run(void *self, const mltk_layer_run *r)
{
    (void)self;
    (void)r;
    return MLTK_OK;
}

/* A layer vtable claiming `SIZE` bytes, with `FORWARD` as its forward. */
#define BP_LAYER_I(SIZE, FORWARD)                                              \
    { .size = (SIZE), .create = bp_create, .destroy = bp_destroy,              \
      .setup = bp_setup, .forward = (FORWARD), .backward = bp_run,             \
      .inplace = NULL }

/* An entry point `mltk_plugin_<SYM>` returning a struct with the given
 * header fields, for the plugins that get one of them wrong on purpose. */
#define BP_ENTRY(SYM, MAJOR, MINOR, SIZE, NAME, KIND, IFACE)                    \
    __attribute__((visibility("default")))                                     \
    const struct mltk_plugin *mltk_plugin_##SYM(void);                         \
    const struct mltk_plugin *mltk_plugin_##SYM(void)                          \
    {                                                                          \
        static const struct mltk_plugin p = {                                  \
            .abi_major = (MAJOR), .abi_minor = (MINOR), .size = (SIZE),        \
            .name = (NAME), .kind = (KIND), .iface = (IFACE) };                \
        return &p;                                                             \
    }

#endif /* MLTK_TESTS_BADPLUGIN_H */
