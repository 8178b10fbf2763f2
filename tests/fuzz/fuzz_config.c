/* fuzz_config.c - a libFuzzer harness for config validation
 * (core/config.c on core/ini.c, core/schema.c, core/params.c).
 *
 * What this is: the plugin registry is built once (LLVMFuzzerInitialize)
 * from the build tree's plugin directories (FUZZ_PLUGIN_DIRS, set by the
 * build; $MLTK_FUZZ_PLUGIN_DIRS overrides it, colon-separated), which
 * scans descriptors and loads no library.  Each input is then written to
 * a file and loaded with mltk_config_load(), which checks it against the
 * built-in schema of each section and the descriptor of the plugin each
 * section names.  A rejection must be MLTK_ERR_CONFIG (or MLTK_ERR_NOMEM)
 * with a message that starts with the file; an accepted config is walked
 * as the model builder and the plugins would read it: every section found
 * by its name, and every parameter read with the getter of its type.
 * What this is not: a check of what comes after validation (model
 * building, shapes, training).
 */
#include "config.h"

#include <math.h>

#include "session.h"
#include "fuzz.h"

#define NAME "fuzz_config"

#ifndef FUZZ_PLUGIN_DIRS
#define FUZZ_PLUGIN_DIRS ""
#endif

static mltk_registry_t *reg;
static char path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    mltk_log_set_level(MLTK_LOG_ERROR);
    const char *env = getenv("MLTK_FUZZ_PLUGIN_DIRS");
    char *dirs = strdup(env && *env ? env : FUZZ_PLUGIN_DIRS);
    const char *list[64];
    int n = 0;
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d && n < 63;
         d = strtok_r(NULL, ":", &save))
        list[n++] = d;
    list[n] = NULL;
    char *err = NULL;
    if (mltk_registry_create(&reg, list, 0, &err) != MLTK_OK) {
        fprintf(stderr, "%s: %s\n", NAME, err ? err : "cannot create the registry");
        exit(1);
    }
    free(dirs);
    if (mltk_registry_count(reg) == 0) {
        fprintf(stderr, "%s: no plugin descriptors in '%s'; build the tree first or set "
                "MLTK_FUZZ_PLUGIN_DIRS\n", NAME, env && *env ? env : FUZZ_PLUGIN_DIRS);
        exit(1);
    }
    return 0;
}

static void walk(const mltk_config_t *cfg)
{
    volatile double sum = 0;
    for (int i = 0; i < cfg->n_sec; i++) {
        const mltk_section *s = &cfg->sec[i];
        fuzz_check(s->name && s->label && s->params, NAME, "a section without name or params");
        fuzz_check(mltk_config_section(cfg, s->name) == s, NAME, "a section not found by name");
        fuzz_check(s->line >= 1, NAME, "a section without a line");
        const mltk_params_t *p = s->params;
        fuzz_check(mltk_params_where(p) != NULL, NAME, "params without a where");
        for (int k = 0; k < p->n; k++) {
            const mltk_param_def *d = p->defs[k];
            int64_t iv[64];
            double fv[64];
            int n;
            switch (d->type) {
            case MLTK_P_INT:
                sum += (double)mltk_params_int(p, d->name);
                break;
            case MLTK_P_FLOAT: {
                double v = mltk_params_float(p, d->name);
                fuzz_check(!p->values[k] || isfinite(v), NAME, "a float that is not finite");
                sum += v;
                break;
            }
            case MLTK_P_BOOL:
                sum += mltk_params_bool(p, d->name);
                break;
            case MLTK_P_INTS:
                n = mltk_params_ints(p, d->name, iv, 64);
                fuzz_check(n >= 0 && n <= 64, NAME, "an ints count out of range");
                for (int j = 0; j < n; j++)
                    sum += (double)iv[j];
                break;
            case MLTK_P_FLOATS:
                n = mltk_params_floats(p, d->name, fv, 64);
                fuzz_check(n >= 0 && n <= 64, NAME, "a floats count out of range");
                for (int j = 0; j < n; j++)
                    sum += fv[j];
                break;
            default: {
                const char *v = mltk_params_str(p, d->name);
                fuzz_check(v != NULL, NAME, "a string parameter read as NULL");
                sum += (double)strlen(v);
                break;
            }
            }
            sum += mltk_params_has(p, d->name);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file(path, sizeof path, "config", data, size);
    mltk_config_t *cfg = NULL;
    char *err = NULL;
    int rc = mltk_config_load(&cfg, reg, path, &err);
    if (rc) {
        fuzz_check(!cfg, NAME, "a rejection that returns a config");
        fuzz_check(rc == MLTK_ERR_CONFIG || rc == MLTK_ERR_NOMEM, NAME,
                   "a rejection that is not MLTK_ERR_CONFIG or MLTK_ERR_NOMEM");
        fuzz_check(rc == MLTK_ERR_NOMEM || fuzz_names(err, path), NAME,
                   "a message that does not start with the file");
        free(err);
        return 0;
    }
    fuzz_check(cfg && !err, NAME, "accepted, but no config or a message");
    walk(cfg);
    mltk_config_destroy(cfg);
    return 0;
}
