#pragma once
// The recurrent part of every app's [model] section, read one way into the library's one
// recurrent options struct (rnnkit::RNNOptions): which cell and its options, how wide and deep,
// recurrent dropout, initialisation and forget-gate bias (unset by default: the init's own).
#include <string>

#include <rnnkit/rnn_options.h>

#include "config.h"
#include "config_keys.h"

namespace rnnkit::train {

/// `defaults` with cell, cell_options, hidden_size, num_layers, recurrent_dropout, init and
/// forget_bias read from `section`, with the usual checks (unknown cell, ranges, types, a model
/// too large for this machine). The settings an app names its own way (dropout, bidirectional,
/// variational_dropout) it reads into the same struct itself; input_size is the model's to set.
RNNOptions read_rnn_options(ConfigReader& config, const std::string& section, RNNOptions defaults);
/// The keys read_rnn_options reads in `section` (with plugins and plugins_sha256, which the cell
/// key reads), with `defaults`' values as their defaults.
KeyTable rnn_keys(const std::string& section, const RNNOptions& defaults);

}  // namespace rnnkit::train
