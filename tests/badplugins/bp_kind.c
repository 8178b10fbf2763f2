/* bp_kind.c - a test plugin that says it is a loss while its descriptor says
 * layer.
 *
 * What this is not: a real layer (see badplugin.h).
 */
#include "badplugin.h"

static const struct mltk_layer_i iface = BP_LAYER_I(sizeof(struct mltk_layer_i), bp_run);

MLTK_PLUGIN(bp_kind, MLTK_KIND_LOSS, &iface)
