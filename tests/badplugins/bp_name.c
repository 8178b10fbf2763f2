/* bp_name.c - a test plugin that calls itself 'bp_other' while its
 * descriptor names it 'bp_name'.
 *
 * What this is not: a real layer (see badplugin.h).
 */
#include "badplugin.h"

static const struct mltk_layer_i iface = BP_LAYER_I(sizeof(struct mltk_layer_i), bp_run);

BP_ENTRY(bp_name, MLTK_ABI_MAJOR, MLTK_ABI_MINOR, sizeof(struct mltk_plugin), "bp_other",
         MLTK_KIND_LAYER, &iface)
