// The MGU as a cell plugin: built as libmgu.so, it gives the installed apps the cell "mgu"
// without rebuilding them:
//
//   rnnkit-lm train --config ... --plugin path/to/libmgu.so --set model.cell=mgu
#include <rnnkit/plugin.h>

#include "mgu_cell.h"

RNNKIT_PLUGIN("mgu") { mgu::register_mgu(); }
