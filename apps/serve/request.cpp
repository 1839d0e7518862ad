#include "request.h"

#include <algorithm>
#include <limits>

#include <fmt/core.h>
#include <rnnkit/data/text.h>
#include <rnnkit/train/texts.h>

namespace rnnkit::serve {
using train::Json;

namespace {

std::string type_of(const Json& j) { return j.type_name(); }

Json parse_body(const std::string& body) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const Json::exception& e) {
    // nlohmann's text names the byte; invalid UTF-8 lands here too, and a number too large for
    // a double (out_of_range, not parse_error: found by fuzz_request).
    throw HttpError(400, std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) throw HttpError(400, "expected a JSON object, got " + type_of(j));
  return j;
}

void reject_unknown(const Json& j, const std::vector<std::string>& known) {
  for (const auto& [k, v] : j.items()) {
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      std::string list;
      for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
      throw HttpError(400, "unknown field '" + k.substr(0, 100) + "' (known: " + list + ")");
    }
  }
}

train::TextLimits limits_of(const ServeOptions& o) {
  train::TextLimits l;
  l.max_texts = o.max_texts;
  l.max_text_bytes = o.max_text_bytes;
  return l;
}

/// train::TextError as this request's 413 (a limit) or 400.
template <class F>
auto as_http(F&& f) {
  try {
    return f();
  } catch (const train::TextError& e) {
    throw HttpError(e.too_large ? 413 : 400, e.what());
  }
}

/// A text from a request, checked and normalised as every way into a model does (train::texts.h).
std::string checked_text(const Json& v, const std::string& field, const ServeOptions& o) {
  if (!v.is_string()) {
    throw HttpError(400, "field '" + field + "': expected a string, got " + type_of(v));
  }
  return as_http([&] { return train::checked_text(v.get<std::string>(), field, limits_of(o)); });
}

/// The array `field` with between 1 and max_texts entries.
const Json& checked_array(const Json& j, const std::string& field, const std::string& what,
                          const ServeOptions& o) {
  const Json& t = j[field];
  if (!t.is_array()) {
    throw HttpError(400,
                    "field '" + field + "': expected an array of " + what + ", got " + type_of(t));
  }
  as_http([&] { train::check_text_count(t.size(), field, limits_of(o)); });
  return t;
}

template <class T>
T get_number(const Json& j, const std::string& field, T fallback, T min, T max) {
  if (!j.contains(field)) return fallback;
  const Json& v = j[field];
  const bool ok = std::is_integral_v<T> ? v.is_number_integer() : v.is_number();
  if (!ok) {
    throw HttpError(400,
                    fmt::format("field '{}': expected {}, got {}", field,
                                std::is_integral_v<T> ? "an integer" : "a number", type_of(v)));
  }
  // An unsigned JSON integer above int64's range is out of range, not a wrapped negative.
  if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned() &&
        v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw HttpError(400, fmt::format("field '{}': expected a value in [{}, {}], got {}", field,
                                       min, max, v.dump()));
    }
  }
  const T x = v.get<T>();
  if (!(x >= min && x <= max)) {
    throw HttpError(400, fmt::format("field '{}': expected a value in [{}, {}], got {}", field, min,
                                     max, v.dump()));
  }
  return x;
}

bool get_bool(const Json& j, const std::string& field, bool fallback) {
  if (!j.contains(field)) return fallback;
  if (!j[field].is_boolean()) {
    throw HttpError(400, "field '" + field + "': expected true or false, got " + type_of(j[field]));
  }
  return j[field].get<bool>();
}

std::vector<std::string> texts_of(const Json& j, const ServeOptions& o, bool refuse_empty) {
  if (!j.contains("texts")) throw HttpError(400, "missing field 'texts' (an array of strings)");
  const Json& t = checked_array(j, "texts", "strings", o);
  std::vector<std::string> out;
  for (size_t i = 0; i < t.size(); ++i) {
    const std::string field = "texts[" + std::to_string(i) + "]";
    out.push_back(checked_text(t[i], field, o));
    if (refuse_empty) as_http([&] { train::refuse_blank(out.back(), field, "classify"); });
  }
  return out;
}

}  // namespace

TextsRequest decode_texts(const std::string& body, const ServeOptions& o, bool refuse_empty) {
  const Json j = parse_body(body);
  reject_unknown(j, {"texts"});
  return {texts_of(j, o, refuse_empty)};
}

TagRequest decode_tag(const std::string& body, const ServeOptions& o) {
  const Json j = parse_body(body);
  reject_unknown(j, {"texts", "tokens", "tags"});
  TagRequest r;
  r.tags = get_bool(j, "tags", false);
  if (j.contains("tokens") == j.contains("texts")) {
    throw HttpError(400, "give one of the fields 'texts' (raw text) and 'tokens' (pre-tokenized)");
  }
  if (j.contains("texts")) {
    for (auto& t : texts_of(j, o, false)) r.items.push_back({std::move(t), {}});
    return r;
  }
  const Json& t = checked_array(j, "tokens", "arrays of strings", o);
  for (size_t i = 0; i < t.size(); ++i) {
    const std::string field = "tokens[" + std::to_string(i) + "]";
    if (!t[i].is_array()) {
      throw HttpError(400,
                      "field '" + field + "': expected an array of strings, got " + type_of(t[i]));
    }
    TagRequest::Item item;
    for (size_t k = 0; k < t[i].size(); ++k) {
      const std::string f = field + "[" + std::to_string(k) + "]";
      std::string w = checked_text(t[i][k], f, o);
      if (w.empty() || w.find_first_of(" \t\r\n\f\v") != std::string::npos) {
        throw HttpError(400, "field '" + f + "': a token is a non-empty string without spaces");
      }
      item.text += (item.text.empty() ? "" : " ") + w;
      if (static_cast<int64_t>(item.text.size()) > o.max_text_bytes) {
        throw HttpError(413, "field '" + field + "': the sentence is over the limit of " +
                                 std::to_string(o.max_text_bytes) + " bytes (--max-text-bytes)");
      }
      item.tokens.push_back(std::move(w));
    }
    r.items.push_back(std::move(item));
  }
  return r;
}

GenerateRequest decode_generate(const std::string& body, const ServeOptions& o,
                                int64_t vocab_size) {
  const Json j = parse_body(body);
  reject_unknown(j,
                 {"prompt", "max_tokens", "temperature", "top_k", "seed", "stop_at_eos", "stream"});
  GenerateRequest r;
  auto& s = r.sample;
  if (j.contains("prompt")) s.prompt = checked_text(j["prompt"], "prompt", o);
  s.max_length = get_number<int64_t>(j, "max_tokens", 100, 1, o.max_tokens);
  s.temperature = get_number<double>(j, "temperature", 1.0, 0.0, 100.0);
  s.top_k = get_number<int64_t>(j, "top_k", 0, 0, vocab_size);
  s.seed = static_cast<uint64_t>(
      get_number<int64_t>(j, "seed", 1, 0, std::numeric_limits<int64_t>::max()));
  s.stop_at_eos = get_bool(j, "stop_at_eos", true);
  r.stream = get_bool(j, "stream", false);
  return r;
}

TranslateRequest decode_translate(const std::string& body, const ServeOptions& o) {
  const Json j = parse_body(body);
  reject_unknown(j, {"texts", "beam", "alpha", "n_best", "attention"});
  TranslateRequest r;
  r.texts = texts_of(j, o, false);
  r.beam = get_number<int64_t>(j, "beam", 5, 1, kMaxTranslateBeam);
  r.alpha = get_number<double>(j, "alpha", 1.0, 0.0, 10.0);
  r.n_best = get_number<int64_t>(j, "n_best", 1, 1, r.beam);
  r.attention = get_bool(j, "attention", false);
  return r;
}

}  // namespace rnnkit::serve
