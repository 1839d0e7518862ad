#pragma once
// rnnkit-serve's request decoding: a JSON body to a typed request, with the limits of
// ServeOptions. Every error is an HttpError with a 4xx status and a message that names the field
// or the limit; nothing else escapes (fuzz/fuzz_request.cpp holds it to that).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <rnnkit/train/json.h>

#include "lm/lm.h"
#include "serve.h"

namespace rnnkit::serve {

/// A request the server answers with `status` and {"error": message}.
struct HttpError : std::runtime_error {
  HttpError(int s, const std::string& message) : std::runtime_error(message), status(s) {}
  int status;
};

/// POST .../classify and .../score: {"texts": [...]}. Texts are checked as the line readers
/// check a line (no NUL, the size limit) and normalised to NFC as they normalise it.
struct TextsRequest {
  std::vector<std::string> texts;
};
/// `refuse_empty`: a text with nothing but spaces is a 400 (a classifier has nothing to read).
TextsRequest decode_texts(const std::string& body, const ServeOptions& o, bool refuse_empty);

/// POST .../tag: {"texts": [...]} or {"tokens": [[...]]}, and "tags".
struct TagRequest {
  struct Item {
    std::string text;                 ///< the text, or the tokens joined by spaces
    std::vector<std::string> tokens;  ///< given tokens; empty: tokenize `text`
  };
  std::vector<Item> items;
  bool tags = false;
};
TagRequest decode_tag(const std::string& body, const ServeOptions& o);

/// POST .../generate: prompt, max_tokens, temperature, top_k (at most `vocab_size`), seed,
/// stop_at_eos and stream.
struct GenerateRequest {
  lm::SampleOptions sample;
  bool stream = false;
};
GenerateRequest decode_generate(const std::string& body, const ServeOptions& o, int64_t vocab_size);

/// POST .../translate: {"texts": [...], "beam": 5, "alpha": 1.0, "n_best": 1, "attention": false},
/// the options of `rnnkit-seq2seq translate` (beam 1..kMaxBeam, n_best 1..beam, alpha >= 0).
/// The largest beam a request may ask for (the command line allows 1000; a server bounds the
/// work one request can cause).
inline constexpr int64_t kMaxTranslateBeam = 100;
struct TranslateRequest {
  std::vector<std::string> texts;
  int64_t beam = 5;
  double alpha = 1.0;
  int64_t n_best = 1;
  bool attention = false;
};
TranslateRequest decode_translate(const std::string& body, const ServeOptions& o);

}  // namespace rnnkit::serve
