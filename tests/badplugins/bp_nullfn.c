/* bp_nullfn.c - a test plugin that a layer vtable without the required
 * `forward`.
 *
 * What this is not: a real layer (see badplugin.h).
 */
#include "badplugin.h"

static const struct mltk_layer_i iface = BP_LAYER_I(sizeof(struct mltk_layer_i), NULL);

MLTK_PLUGIN(bp_nullfn, MLTK_KIND_LAYER, &iface)
