#include <rnnkit/train/model_config.h>

#include <cmath>
#include <limits>

namespace rnnkit::app {

RecurrentSpec RecurrentSpec::read(ConfigReader& c, const std::string& section,
                                  const RecurrentSpec& defaults) {
  RecurrentSpec r = defaults;
  r.cell = c.get_cell(section, "cell", defaults.cell);
  r.cell_options = c.get_cell_options(section, r.cell);
  r.hidden_size = c.get_int(section, "hidden_size", defaults.hidden_size, 1);
  r.num_layers = c.get_int(section, "num_layers", defaults.num_layers, 1);
  r.recurrent_dropout =
      c.get_double(section, "recurrent_dropout", defaults.recurrent_dropout, 0, 0.99);
  r.init = parse_init(c.get_choice(section, "init", to_string(defaults.init), init_names()));
  if (c.has_key(section, "forget_bias"))
    r.forget_bias = c.get_double(section, "forget_bias", 0, -100, 100);
  return r;
}

}  // namespace rnnkit::app
