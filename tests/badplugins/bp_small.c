/* bp_small.c - a test plugin that reports a struct mltk_plugin smaller than
 * the ABI's (MLTK_ABI_MAJOR.0).
 *
 * What this is not: a real layer (see badplugin.h).
 */
#include "badplugin.h"

static const struct mltk_layer_i iface = BP_LAYER_I(sizeof(struct mltk_layer_i), bp_run);

BP_ENTRY(bp_small, MLTK_ABI_MAJOR, MLTK_ABI_MINOR, 8, "bp_small", MLTK_KIND_LAYER, &iface)
