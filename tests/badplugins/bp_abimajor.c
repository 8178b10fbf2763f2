/* bp_abimajor.c - a test plugin built for plugin ABI 1 (its last minor,
 * 1.2), which ABI 2 broke: its descriptor names the current ABI, so the
 * loader reaches the entry point and must refuse the library's major with
 * a message saying to rebuild it.
 *
 * What this is not: a real layer (see badplugin.h); its vtable is never
 * read.
 */
#include "badplugin.h"

/* the major and minor an ABI 1 build of the entry point reported */
#define BP_ABI1_MAJOR 1
#define BP_ABI1_MINOR 2

static const struct mltk_layer_i iface = BP_LAYER_I(sizeof(struct mltk_layer_i), bp_run);

BP_ENTRY(bp_abimajor, BP_ABI1_MAJOR, BP_ABI1_MINOR, sizeof(struct mltk_plugin),
         "bp_abimajor", MLTK_KIND_LAYER, &iface)
