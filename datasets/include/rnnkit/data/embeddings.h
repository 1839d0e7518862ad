#pragma once
// Pretrained word vectors in GloVe or word2vec text format, to initialise embeddings.
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/types.h>

#include "rnnkit/data/vocab.h"

namespace rnnkit::data {

struct WordVectors {
  int64_t dim = 0;
  std::unordered_map<std::string, std::vector<float>> vectors;
};

/// Reads "word v1 ... vD" lines (word2vec's "COUNT DIM" header line is recognised and skipped).
/// Only words for which `wanted` returns true are kept (all if it is empty). A line whose
/// dimension differs from the first line's, or with a non-number, is a DataError at its line.
WordVectors read_word_vectors(const std::string& path,
                              const std::function<bool(const std::string&)>& wanted = {});

/// The vectors of `path` that init_embeddings can use for `vocab`: a token's own, or its
/// lowercased form's (the rest is never stored: GloVe files hold millions of words).
WordVectors read_word_vectors_for(const std::string& path, const Vocab& vocab);

/// read_word_vectors_for, then init_embeddings into `weight` [V, D]; a file whose dimension is not
/// D is a DataError naming `dim_key` (the config key that sets D). Returns how many tokens got a
/// vector.
int64_t load_pretrained(const std::string& path, const Vocab& vocab, const torch::Tensor& weight,
                        const std::string& dim_key);

/// Copies the vector of each vocabulary token into its row of weight [V, D]: an exact match
/// first, then the lowercased token. Rows of other tokens keep their (random) values. Returns
/// how many tokens got a vector.
int64_t init_embeddings(const torch::Tensor& weight, const Vocab& vocab,
                        const WordVectors& vectors);

}  // namespace rnnkit::data
