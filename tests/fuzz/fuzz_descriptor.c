/* fuzz_descriptor.c - a libFuzzer harness for descriptor parsing
 * (core/descriptor.c).
 *
 * What this is: each input is parsed twice, as the core parses its
 * built-in section schemas (mltk_desc_parse, from text cut at the first
 * NUL) and as the registry reads a plugin's descriptor (mltk_desc_load,
 * from a file).  A rejection must be MLTK_ERR_PLUGIN or MLTK_ERR_CONFIG
 * (or MLTK_ERR_NOMEM) with a message that starts with the origin; an
 * accepted descriptor is walked and checked: a name, parameters with
 * names, known types, min <= max, every parameter found by its name,
 * and for a plugin a kind and a library path.
 * What this is not: a check of the registry (which loads the library) or
 * of values against a descriptor (fuzz_config.c does that).
 */
#include "config.h"

#include "internal.h"
#include "fuzz.h"

#define NAME "fuzz_descriptor"
#define ORIGIN "fuzz-schema.ini"

static char path[256];

static void check_desc(const mltk_desc *d, int plugin)
{
    fuzz_check(d && d->name && *d->name, NAME, "accepted without a name");
    fuzz_check(d->n_params >= 0 && (d->params || !d->n_params), NAME, "no parameter table");
    if (plugin)
        fuzz_check(d->kind > 0 && d->library && *d->library, NAME,
                   "a plugin accepted without kind or library");
    for (int i = 0; i < d->n_params; i++) {
        const mltk_param_def *p = &d->params[i];
        fuzz_check(p->name && *p->name, NAME, "a parameter without a name");
        fuzz_check(mltk_desc_param(d, p->name) == p, NAME, "a parameter not found by name");
        fuzz_check(strcmp(mltk_ptype_name(p->type), "?") != 0, NAME, "an unknown type");
        fuzz_check(!(p->has_min && p->has_max) || p->min <= p->max, NAME, "min > max");
        if (p->type == MLTK_P_ENUM)
            fuzz_check(p->choices && p->choices[0], NAME, "an enum without choices");
        for (char **c = p->choices; c && *c; c++)
            fuzz_check(strlen(*c) < (size_t)1 << 20, NAME, "a runaway choice");
    }
}

static void check_error(int rc, char *err, const char *origin)
{
    fuzz_check(rc == MLTK_ERR_PLUGIN || rc == MLTK_ERR_CONFIG || rc == MLTK_ERR_NOMEM, NAME,
               "a rejection that is not MLTK_ERR_PLUGIN, _CONFIG or _NOMEM");
    fuzz_check(rc == MLTK_ERR_NOMEM || fuzz_names(err, origin), NAME,
               "a message that does not start with the origin");
    free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size), *err = NULL;
    mltk_desc *d = NULL;
    int rc = mltk_desc_parse(&d, text, ORIGIN, &err);
    if (rc)
        check_error(rc, err, ORIGIN);
    else
        check_desc(d, 0);
    mltk_desc_free(d);
    free(text);

    fuzz_file(path, sizeof path, "descriptor", data, size);
    d = NULL;
    err = NULL;
    rc = mltk_desc_load(&d, path, &err);
    if (rc)
        check_error(rc, err, path);
    else
        check_desc(d, 1);
    mltk_desc_free(d);
    return 0;
}
