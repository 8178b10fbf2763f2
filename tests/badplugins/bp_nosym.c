/* bp_nosym.c - a test plugin that exports mltk_plugin_bp_elsewhere, not the
 * mltk_plugin_bp_nosym its descriptor implies.
 *
 * What this is not: a real layer (see badplugin.h).
 */
#include "badplugin.h"

static const struct mltk_layer_i iface = BP_LAYER_I(sizeof(struct mltk_layer_i), bp_run);

MLTK_PLUGIN(bp_elsewhere, MLTK_KIND_LAYER, &iface)
