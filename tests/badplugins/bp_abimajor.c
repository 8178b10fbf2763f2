/* bp_abimajor.c - a test plugin that built for the next ABI major.
 *
 * What this is not: a real layer (see badplugin.h).
 */
#include "badplugin.h"

static const struct mltk_layer_i iface = BP_LAYER_I(sizeof(struct mltk_layer_i), bp_run);

BP_ENTRY(bp_abimajor, MLTK_ABI_MAJOR + 1, 0, sizeof(struct mltk_plugin), "bp_abimajor",
         MLTK_KIND_LAYER, &iface)
