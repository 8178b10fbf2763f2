/* bp_vtsize.c - a test plugin that a layer vtable whose size ends before
 * `forward`.
 *
 * What this is not: a real layer (see badplugin.h).
 */
#include "badplugin.h"

static const struct mltk_layer_i iface =
    BP_LAYER_I(offsetof(struct mltk_layer_i, forward), bp_run);

MLTK_PLUGIN(bp_vtsize, MLTK_KIND_LAYER, &iface)
