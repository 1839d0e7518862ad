#include <rnnkit/train/model_config.h>

#include <fmt/core.h>

namespace rnnkit::train {

KeyTable rnn_keys(const std::string& s, const RNNOptions& d) {
  return KeyTable({
      cell(s, "cell", d.cell(), "any registered cell (built in, or from a plugin)"),
      table(s, "cell_options",
            "a table of the cell's own options, e.g. `[model.cell_options]` `peephole = true` for "
            "`lstm`, `activation = \"relu\"` for `rnn`, `reset_after = true` for `gru`, `slim = 1` "
            "for the example's `mgu`; `--set model.cell_options.peephole=true`. Unknown options, "
            "wrong types and out-of-range values stop the run, naming the line. The aliases "
            "(`lstm_peephole`, ...) fix their option."),
      paths(s, "plugins", false,
            "cell plugins to load (relative to this file's folder), as `--plugin` does; each "
            "must load. The plugin a cell comes from is added here in the saved config, so "
            "checkpoints name it; a checkpoint never loads it by itself (README, \"Cell "
            "plugins\")"),
      strings(s, "plugins_sha256",
              "one sha256 (hex) per entry of `plugins`: a file with other bytes is refused "
              "before it is loaded. Training writes it into the saved config"),
      integer(s, "hidden_size", d.hidden_size(), 1, kMaxWidth,
              "the width of a<t> (per direction); a model whose recurrent weights would not fit "
              "in memory to train is refused"),
      integer(s, "num_layers", d.num_layers(), 1, kMaxLayers, "stacked recurrent layers"),
      number(s, "recurrent_dropout", d.recurrent_dropout(), 0, 0.99,
             "variational dropout on a<t-1>, one mask per sequence"),
      choice(s, "init", to_string(d.init()), init_names(), "the weights' initialisation"),
      shown(number(s, "forget_bias", 0, -100, 100,
                   "gated cells: the bias towards keeping c<t-1> after initialisation (LSTM: "
                   "b_f; GRUs: b_u = -forget_bias)"),
            "(the init's)"),
  });
}

RNNOptions read_rnn_options(ConfigReader& c, const std::string& section, RNNOptions r) {
  const KeyTable keys = rnn_keys(section, r);
  auto k = [&](const char* name) -> const Key& { return keys.at(section, name); };
  r.cell(c.cell(k("cell")));
  r.cell_options(c.get_cell_options(section, r.cell()));
  r.hidden_size(c.integer(k("hidden_size")));
  r.num_layers(c.integer(k("num_layers")));
  // Each in range, the product may still not fit: up to 4 gates, both directions, a layer's
  // input about as wide as its state.
  c.check_fits_in_memory(
      section, "hidden_size",
      static_cast<double>(r.num_layers()) * 2 * 4 * static_cast<double>(r.hidden_size()) * 2 *
          static_cast<double>(r.hidden_size()),
      fmt::format("{} layer(s) of hidden_size {}", r.num_layers(), r.hidden_size()));
  r.recurrent_dropout(c.number(k("recurrent_dropout")));
  r.init(parse_init(c.choice(k("init"))));
  if (const auto fb = c.optional_number(k("forget_bias"))) r.forget_bias(*fb);
  return r;
}

}  // namespace rnnkit::train
