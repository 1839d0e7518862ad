#include "rnnkit/data/embeddings.h"

#include <set>

#include "rnnkit/data/text.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

#include <c10/util/Exception.h>
#include <torch/torch.h>

#include "rnnkit/data/text.h"

namespace rnnkit::data {

WordVectors read_word_vectors(const std::string& path,
                              const std::function<bool(const std::string&)>& wanted) {
  LineReader r(path);
  WordVectors out;
  std::string line;
  bool first = true;
  while (r.next(line)) {
    std::istringstream is(line);
    std::string word;
    if (!(is >> word)) continue;
    std::vector<float> v;
    std::string num;
    while (is >> num) {
      char* end = nullptr;
      const float x = std::strtof(num.c_str(), &end);
      if (end == num.c_str() || *end != '\0') {
        throw r.error("expected a number in the vector of '" + word + "', got '" + num + "'");
      }
      // NaN or infinity would only surface later as a diverged training run.
      if (!std::isfinite(x)) {
        throw r.error("the vector of '" + word + "' holds '" + num +
                      "', not a finite number; the vectors file is damaged");
      }
      v.push_back(x);
    }
    if (first && v.size() == 1) {  // word2vec's "COUNT DIM" header
      first = false;
      continue;
    }
    first = false;
    if (out.dim == 0) out.dim = static_cast<int64_t>(v.size());
    if (static_cast<int64_t>(v.size()) != out.dim || out.dim == 0) {
      throw r.error("expected a vector of " + std::to_string(out.dim) + " numbers for '" + word +
                    "', got " + std::to_string(v.size()));
    }
    if (!wanted || wanted(word)) out.vectors.emplace(std::move(word), std::move(v));
  }
  if (out.dim == 0) throw DataError(path, 0, "the file is empty: expected word vectors");
  return out;
}

int64_t init_embeddings(const torch::Tensor& weight, const Vocab& vocab, const WordVectors& v) {
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == vocab.size(),
              "init_embeddings: expected a weight of [", vocab.size(), ", D], got ",
              weight.sizes());
  TORCH_CHECK(weight.size(1) == v.dim, "init_embeddings: the embeddings have ", weight.size(1),
              " dimensions, the vectors ", v.dim);
  torch::NoGradGuard no_grad;
  int64_t found = 0;
  for (int64_t i = 0; i < vocab.size(); ++i) {
    const std::string& tok = vocab.token(i);
    auto it = v.vectors.find(tok);
    if (it == v.vectors.end()) it = v.vectors.find(WordTokenizer{true, false}.normalize(tok));
    if (it == v.vectors.end()) continue;
    weight[i].copy_(
        torch::tensor(it->second, weight.options().device(torch::kCPU)).to(weight.device()));
    ++found;
  }
  return found;
}

WordVectors read_word_vectors_for(const std::string& path, const Vocab& vocab) {
  std::set<std::string> lowered;
  for (int64_t i = 0; i < vocab.size(); ++i) lowered.insert(to_lower(vocab.token(i)));
  return read_word_vectors(
      path, [&](const std::string& w) { return vocab.contains(w) || lowered.count(w) > 0; });
}

int64_t load_pretrained(const std::string& path, const Vocab& vocab, const torch::Tensor& weight,
                        const std::string& dim_key) {
  const auto vectors = read_word_vectors_for(path, vocab);
  if (vectors.dim != weight.size(1)) {
    throw DataError(path, 0,
                    "vectors of " + std::to_string(vectors.dim) + " dimensions, but " + dim_key +
                        " is " + std::to_string(weight.size(1)));
  }
  return init_embeddings(weight, vocab, vectors);
}

}  // namespace rnnkit::data
