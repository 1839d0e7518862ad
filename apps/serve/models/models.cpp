#include "models.h"

namespace rnnkit::serve {

const std::vector<ServedApp>& served_apps() {
  // The order of the OpenAPI paths and of the metrics' route templates.
  static const std::vector<ServedApp> apps = {classifier_app(), tagger_app(), language_model_app(),
                                              translator_app()};
  return apps;
}

}  // namespace rnnkit::serve
