#pragma once
// rnnkit's umbrella header.
#include "rnnkit/cell.h"
#include "rnnkit/cells/gru_cell.h"
#include "rnnkit/cells/lstm_cell.h"
#include "rnnkit/cells/rnn_cell.h"
#include "rnnkit/cells/simple_gru_cell.h"
#include "rnnkit/crf.h"
#include "rnnkit/init.h"
#include "rnnkit/plugin.h"
#include "rnnkit/recurrent.h"
#include "rnnkit/registry.h"
#include "rnnkit/rnn.h"
#include "rnnkit/state.h"
