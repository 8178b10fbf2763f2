/* bp_undef.c - a test plugin that needs a symbol nothing defines, so
 * dlopen(RTLD_NOW) fails.
 *
 * What this is not: a real layer (see badplugin.h).
 */
#include "badplugin.h"

/* defined nowhere; the module links because modules may have undefined
 * symbols, and fails to load because nothing provides it */
extern int mltk_bp_symbol_defined_nowhere(void);

static int undef_forward(void *self, const mltk_layer_run *r)
{
    (void)self;
    (void)r;
    return mltk_bp_symbol_defined_nowhere();
}

static const struct mltk_layer_i iface = BP_LAYER_I(sizeof(struct mltk_layer_i), undef_forward);

MLTK_PLUGIN(bp_undef, MLTK_KIND_LAYER, &iface)
