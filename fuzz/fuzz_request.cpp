// rnnkit-serve's request decoding on arbitrary bodies: every route's decoder either returns a
// request within the limits or throws an HttpError with a 4xx status and a message; any other
// exception, a crash or a request past a limit is a finding.
#include <cstdlib>
#include <string>

#include "serve/request.h"

using namespace rnnkit::serve;

namespace {
template <class F>
void expect_4xx(F&& f) {
  try {
    f();
  } catch (const HttpError& e) {
    if (e.status < 400 || e.status > 499 || std::string(e.what()).empty()) std::abort();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  ServeOptions o;
  o.max_texts = 8;
  o.max_text_bytes = 64;
  o.max_tokens = 100;
  expect_4xx([&] {
    const auto r = decode_texts(body, o, true);
    if (r.texts.empty() || static_cast<int64_t>(r.texts.size()) > o.max_texts) std::abort();
    for (const auto& t : r.texts) {
      if (t.find('\0') != std::string::npos) std::abort();
    }
  });
  expect_4xx([&] {
    const auto r = decode_tag(body, o);
    for (const auto& i : r.items) {
      if (static_cast<int64_t>(i.text.size()) > o.max_text_bytes) std::abort();
    }
  });
  expect_4xx([&] {
    const auto r = decode_generate(body, o, 50);
    if (r.sample.max_length < 1 || r.sample.max_length > o.max_tokens) std::abort();
    if (r.sample.top_k < 0 || r.sample.top_k > 50 || !(r.sample.temperature >= 0)) std::abort();
  });
  return 0;
}
