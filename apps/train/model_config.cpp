#include <rnnkit/train/model_config.h>

#include <fmt/core.h>

namespace rnnkit::train {

RNNOptions read_rnn_options(ConfigReader& c, const std::string& section, RNNOptions r) {
  r.cell(c.get_cell(section, "cell", r.cell()));
  r.cell_options(c.get_cell_options(section, r.cell()));
  r.hidden_size(c.get_int(section, "hidden_size", r.hidden_size(), 1, kMaxWidth));
  r.num_layers(c.get_int(section, "num_layers", r.num_layers(), 1, kMaxLayers));
  // Each in range, the product may still not fit: up to 4 gates, both directions, a layer's
  // input about as wide as its state.
  c.check_fits_in_memory(
      section, "hidden_size",
      static_cast<double>(r.num_layers()) * 2 * 4 * static_cast<double>(r.hidden_size()) * 2 *
          static_cast<double>(r.hidden_size()),
      fmt::format("{} layer(s) of hidden_size {}", r.num_layers(), r.hidden_size()));
  r.recurrent_dropout(c.get_double(section, "recurrent_dropout", r.recurrent_dropout(), 0, 0.99));
  r.init(parse_init(c.get_choice(section, "init", to_string(r.init()), init_names())));
  if (c.has_key(section, "forget_bias"))
    r.forget_bias(c.get_double(section, "forget_bias", 0, -100, 100));
  return r;
}

}  // namespace rnnkit::train
