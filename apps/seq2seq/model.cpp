#include "model.h"

#include <ostream>

#include <c10/util/Exception.h>
#include <rnnkit/cell.h>
#include <rnnkit/registry.h>

namespace rnnkit::seq2seq {

using torch::Tensor;

Seq2SeqImpl::Seq2SeqImpl(Seq2SeqOptions options_) : options(std::move(options_)) { reset(); }

void Seq2SeqImpl::reset() {
  auto& o = options;
  const int64_t E = o.embedding_size(), H = o.rnn().hidden_size();
  TORCH_CHECK(o.source_vocab() > 0 && o.target_vocab() > 0 && E > 0,
              "Seq2Seq: expected positive vocabulary and embedding sizes, got ", o.source_vocab(),
              ", ", o.target_vocab(), ", ", E);
  TORCH_CHECK(!o.tie_embeddings() || E == H,
              "Seq2Seq: tie_embeddings needs embedding_size == hidden_size, got ", E, " and ", H);
  source_embedding = register_module("source_embedding", torch::nn::Embedding(o.source_vocab(), E));
  target_embedding = register_module("target_embedding", torch::nn::Embedding(o.target_vocab(), E));
  {
    torch::NoGradGuard g;
    source_embedding->weight.uniform_(-0.1, 0.1);
    target_embedding->weight.uniform_(-0.1, 0.1);
  }
  const int64_t K = o.bidirectional_encoder() ? 2 : 1, L = o.rnn().num_layers();
  RNNOptions enc = o.rnn();
  enc.input_size(E).bidirectional(o.bidirectional_encoder()).batch_first(false);
  encoder = register_module("encoder", RNN(enc));
  RNNOptions dec = o.rnn();
  dec.input_size(E).bidirectional(false).batch_first(false).recurrent_dropout(0);
  decoder = register_module(
      "decoder",
      AttentionDecoder(
          DecoderOptions(dec, K * H).attention(o.attention()).input_feeding(o.input_feeding())));
  bridge = register_module(
      "bridge", Bridge(BridgeOptions(L, K, H, L, H)
                           .decoder_memory_cell(decoder->rnn->cell(0, 0).has_memory_cell())));
  W_y = o.tie_embeddings() ? target_embedding->weight
                           : register_parameter("W_y", torch::empty({o.target_vocab(), H}));
  b_y = register_parameter("b_y", torch::zeros({o.target_vocab()}));
  if (!o.tie_embeddings()) {
    torch::NoGradGuard g;
    W_y.uniform_(-0.1, 0.1);
  }
}

void Seq2SeqImpl::pretty_print(std::ostream& os) const {
  const auto& o = options;
  os << "rnnkit::seq2seq::Seq2Seq(source_vocab=" << o.source_vocab()
     << ", target_vocab=" << o.target_vocab() << ", embedding_size=" << o.embedding_size()
     << ", cell=" << o.rnn().cell() << ", hidden_size=" << o.rnn().hidden_size()
     << ", num_layers=" << o.rnn().num_layers()
     << ", bidirectional_encoder=" << (o.bidirectional_encoder() ? "true" : "false")
     << ", attention=" << o.attention()
     << ", input_feeding=" << (o.input_feeding() ? "true" : "false")
     << ", tie_embeddings=" << (o.tie_embeddings() ? "true" : "false") << ")";
}

Encoded Seq2SeqImpl::encode(const Tensor& source, const Tensor& lengths) {
  TORCH_CHECK(source.dim() == 2 && source.scalar_type() == torch::kLong,
              "Seq2Seq: expected source [S, B] of int64, got ", source.sizes(), " ",
              source.scalar_type());
  const Tensor x = torch::dropout(source_embedding->forward(source), options.embedding_dropout(),
                                  is_training());  // [S, B, E]
  auto enc = encoder->forward(x, lengths);         // h [S, B, K*H], finals
  Encoded e;
  e.memory = decoder->memory(enc.output, lengths);  // W_h h once per sentence
  e.state.layers = bridge->forward(enc.states);     // s<0>
  return e;
}

Tensor Seq2SeqImpl::logits(const Tensor& h) const {
  const Tensor d = torch::dropout(h, options.rnn().dropout(), is_training());
  // Under autocast the product runs in bf16; the logits come back in the input's type so that
  // the log-softmax is computed at full precision.
  return torch::linear(d, W_y, b_y).to(h.scalar_type());
}

Tensor Seq2SeqImpl::forward(const Tensor& source, const Tensor& lengths, const Tensor& target_in) {
  TORCH_CHECK(target_in.dim() == 2 && target_in.size(1) == source.size(1),
              "Seq2Seq: expected target_in [T, ", source.size(1), "], got ", target_in.sizes());
  auto e = encode(source, lengths);
  const Tensor y = torch::dropout(target_embedding->forward(target_in), options.embedding_dropout(),
                                  is_training());     // [T, B, E]
  auto out = decoder->forward(y, e.state, e.memory);  // h̃ [T, B, H]
  return logits(out.output);                          // [T, B, V]
}

Tensor Seq2SeqStepper::step(const Tensor& last) {
  const Tensor tokens = last.to(model_.W_y.device());
  const Tensor y = model_.target_embedding->forward(tokens);  // [N, E]
  auto out = model_.decoder->step(y, e_.state, e_.memory);    // h̃ [N, H]
  attention_ = out.weights;
  Tensor l = model_.logits(out.output);                            // [N, V]
  if (l.scalar_type() != torch::kDouble) l = l.to(torch::kFloat);  // bf16 scores in fp32
  return torch::log_softmax(l, 1);
}

void Seq2SeqStepper::reorder(const Tensor& index) {
  const Tensor i = index.to(model_.W_y.device());
  e_.memory = e_.memory.index_select(i);
  e_.state = e_.state.index_select(i);
  if (attention_.defined()) attention_ = attention_.index_select(0, i);
}

}  // namespace rnnkit::seq2seq
