/* bp_abiminor.c - a test plugin that built for a newer ABI minor than the
 * core knows.
 *
 * What this is not: a real layer (see badplugin.h).
 */
#include "badplugin.h"

static const struct mltk_layer_i iface = BP_LAYER_I(sizeof(struct mltk_layer_i), bp_run);

BP_ENTRY(bp_abiminor, MLTK_ABI_MAJOR, MLTK_ABI_MINOR + 1, sizeof(struct mltk_plugin),
         "bp_abiminor", MLTK_KIND_LAYER, &iface)
