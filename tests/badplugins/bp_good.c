/* bp_good.c - a test plugin that a layer that loads: the reference the
 * others differ from.
 *
 * What this is not: a real layer (see badplugin.h).
 */
#include "badplugin.h"

static const struct mltk_layer_i iface = BP_LAYER_I(sizeof(struct mltk_layer_i), bp_run);

MLTK_PLUGIN(bp_good, MLTK_KIND_LAYER, &iface)
