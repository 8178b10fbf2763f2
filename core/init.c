/* init.c - named parameter initialisers, as PyTorch's nn.init defines them.
 *
 * Layers turn a user's `init = he_normal` into an mltk_init here, so every
 * layer plugin agrees on what each name means.  What this is not: the code
 * that draws the numbers (model.c runs the backend's counter-based RNG).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "internal.h"

int mltk_init_named(const char *name, double fan_in, double fan_out, double std,
                    mltk_init *out, char **err)
{
    if (!name || !out)
        return MLTK_ERR_INVALID;
    if (!(fan_in > 0.0) || !(fan_out > 0.0))
        return mltk_errf(err, MLTK_ERR_INVALID, "init '%s': fan_in and fan_out must be > 0",
                         name);
    double b;
    if (strcmp(name, "he_normal") == 0) {
        *out = (mltk_init){ MLTK_INIT_NORMAL, 0.0, sqrt(2.0 / fan_in) };
    } else if (strcmp(name, "he_uniform") == 0) {
        b = sqrt(6.0 / fan_in);
        *out = (mltk_init){ MLTK_INIT_UNIFORM, -b, b };
    } else if (strcmp(name, "xavier_normal") == 0) {
        *out = (mltk_init){ MLTK_INIT_NORMAL, 0.0, sqrt(2.0 / (fan_in + fan_out)) };
    } else if (strcmp(name, "xavier_uniform") == 0) {
        b = sqrt(6.0 / (fan_in + fan_out));
        *out = (mltk_init){ MLTK_INIT_UNIFORM, -b, b };
    } else if (strcmp(name, "normal") == 0) {
        *out = (mltk_init){ MLTK_INIT_NORMAL, 0.0, std };
    } else if (strcmp(name, "zeros") == 0) {
        *out = (mltk_init){ MLTK_INIT_ZEROS, 0.0, 0.0 };
    } else if (strcmp(name, "default") == 0) {
        b = 1.0 / sqrt(fan_in);
        *out = (mltk_init){ MLTK_INIT_UNIFORM, -b, b };
    } else {
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "unknown init '%s' (one of: default, he_normal, he_uniform, "
                         "xavier_normal, xavier_uniform, normal, zeros)", name);
    }
    return MLTK_OK;
}
