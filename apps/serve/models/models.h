#pragma once
// The served apps, one file each; served_apps() (models.cpp) lists them.
#include "../served_model.h"

namespace rnnkit::serve {

ServedApp classifier_app();      ///< sentiment: POST .../classify (classifier.cpp)
ServedApp tagger_app();          ///< ner: POST .../tag (tagger.cpp)
ServedApp language_model_app();  ///< lm: POST .../score and .../generate (language_model.cpp)
ServedApp translator_app();      ///< seq2seq: POST .../translate (translator.cpp)

}  // namespace rnnkit::serve
