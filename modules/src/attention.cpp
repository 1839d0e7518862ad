#include "rnnkit/attention.h"

#include <cmath>
#include <limits>

#include <c10/util/Exception.h>

namespace rnnkit {

using torch::Tensor;

AttentionMemory AttentionMemory::index_select(const Tensor& index) const {
  auto pick = [&](const Tensor& t) { return t.defined() ? t.index_select(0, index) : t; };
  return {pick(values), pick(keys), pick(mask)};
}

Tensor length_mask(const Tensor& lengths, int64_t S, const Tensor& like) {
  const auto opts = torch::TensorOptions().dtype(torch::kLong).device(like.device());
  const Tensor len = lengths.to(opts);
  TORCH_CHECK(len.dim() == 1, "attention: expected lengths [B], got ", lengths.sizes());
  TORCH_CHECK(
      len.numel() == 0 || (len.min().item<int64_t>() >= 1 && len.max().item<int64_t>() <= S),
      "attention: expected every length in 1..", S, " (the source's positions), got ", lengths);
  return torch::arange(S, opts).unsqueeze(0) < len.unsqueeze(1);  // [B, S]
}

namespace {

void check_memory_input(const char* who, const Tensor& h, int64_t Dh) {
  TORCH_CHECK(h.dim() == 3 && h.size(2) == Dh, who, ": expected h [S, B, ", Dh, "], got ",
              h.sizes());
  TORCH_CHECK(h.size(0) >= 1, who, ": expected at least one source position, got ", h.sizes());
}

Tensor mask_of(const Tensor& h, const Tensor& lengths) {
  const int64_t S = h.size(0), B = h.size(1);
  if (!lengths.defined()) return torch::ones({B, S}, h.options().dtype(torch::kBool));
  TORCH_CHECK(lengths.numel() == B, "attention: expected ", B, " lengths, got ", lengths.numel());
  return length_mask(lengths, S, h);
}

}  // namespace

AttentionOutput AttentionImplBase::attend(const Tensor& s, const AttentionMemory& m) const {
  TORCH_CHECK(s.dim() == 2 && s.size(0) == m.batch(), "attention: expected a query [", m.batch(),
              ", Dq], got ", s.sizes());
  auto out = attend_all(s.unsqueeze(0), m);
  return {out.context.squeeze(0), out.weights.squeeze(0)};
}

AttentionOutput AttentionImplBase::attend_all(const Tensor& s, const AttentionMemory& m) const {
  TORCH_CHECK(s.dim() == 3 && s.size(1) == m.batch(), "attention: expected queries [T, ", m.batch(),
              ", Dq], got ", s.sizes());
  const Tensor e = scores(s.transpose(0, 1), m);  // [B, T, S]
  const Tensor masked =
      e.masked_fill(~m.mask.unsqueeze(1), -std::numeric_limits<double>::infinity());
  const Tensor alpha = torch::softmax(masked, 2);  // [B, T, S]
  const Tensor c = torch::bmm(alpha, m.values);    // [B, T, Dh]
  return {c.transpose(0, 1), alpha.transpose(0, 1)};
}

// ---- additive ----

AdditiveAttentionImpl::AdditiveAttentionImpl(AttentionOptions options_)
    : options(std::move(options_)) {
  reset();
}

void AdditiveAttentionImpl::reset() {
  auto& o = options;
  TORCH_CHECK(o.query_size() > 0 && o.memory_size() > 0,
              "AdditiveAttention: expected positive query_size and memory_size, got ",
              o.query_size(), " and ", o.memory_size());
  TORCH_CHECK(o.attention_size() >= 0, "AdditiveAttention: expected attention_size >= 0, got ",
              o.attention_size());
  const int64_t A = o.attention_size() > 0 ? o.attention_size() : o.query_size();
  W_s = register_parameter("W_s", torch::empty({A, o.query_size()}));
  W_h = register_parameter("W_h", torch::empty({A, o.memory_size()}));
  b = register_parameter("b", torch::empty({A}));
  v = register_parameter("v", torch::empty({A}));
  reset_parameters();
}

void AdditiveAttentionImpl::reset_parameters() {
  torch::NoGradGuard g;
  // torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  const double ks = 1.0 / std::sqrt(static_cast<double>(W_s.size(1)));
  const double kh = 1.0 / std::sqrt(static_cast<double>(W_h.size(1)));
  const double kv = 1.0 / std::sqrt(static_cast<double>(v.size(0)));
  W_s.uniform_(-ks, ks);
  W_h.uniform_(-kh, kh);
  b.uniform_(-kh, kh);
  v.uniform_(-kv, kv);
}

void AdditiveAttentionImpl::pretty_print(std::ostream& os) const {
  os << "rnnkit::AdditiveAttention(query_size=" << options.query_size()
     << ", memory_size=" << options.memory_size() << ", attention_size=" << W_s.size(0) << ")";
}

AttentionMemory AdditiveAttentionImpl::memory(const Tensor& h, const Tensor& lengths) const {
  check_memory_input("AdditiveAttention", h, options.memory_size());
  const Tensor values = h.transpose(0, 1);            // [B, S, Dh]
  const Tensor keys = torch::linear(values, W_h, b);  // [B, S, A]
  return {values, keys, mask_of(h, lengths)};
}

Tensor AdditiveAttentionImpl::scores(const Tensor& s, const AttentionMemory& m) const {
  TORCH_CHECK(s.size(2) == options.query_size(), "AdditiveAttention: expected queries of width ",
              options.query_size(), ", got ", s.sizes());
  const Tensor q = torch::linear(s, W_s);                              // [B, T, A]
  const Tensor t = torch::tanh(q.unsqueeze(2) + m.keys.unsqueeze(1));  // [B, T, S, A]
  return torch::matmul(t, v);                                          // [B, T, S]
}

// ---- multiplicative ----

MultiplicativeAttentionImpl::MultiplicativeAttentionImpl(AttentionOptions options_)
    : options(std::move(options_)) {
  reset();
}

void MultiplicativeAttentionImpl::reset() {
  auto& o = options;
  TORCH_CHECK(o.query_size() > 0 && o.memory_size() > 0,
              "MultiplicativeAttention: expected positive query_size and memory_size, got ",
              o.query_size(), " and ", o.memory_size());
  TORCH_CHECK(o.score() == "dot" || o.score() == "general",
              "MultiplicativeAttention: expected score \"dot\" or \"general\", got \"", o.score(),
              "\"");
  TORCH_CHECK(o.score() != "dot" || o.query_size() == o.memory_size(),
              "MultiplicativeAttention: the dot score needs query_size == memory_size, got ",
              o.query_size(), " and ", o.memory_size(), " (use \"general\")");
  if (o.score() == "general") {
    W = register_parameter("W", torch::empty({o.query_size(), o.memory_size()}));
  } else {
    W = Tensor();
  }
  reset_parameters();
}

void MultiplicativeAttentionImpl::reset_parameters() {
  if (!W.defined()) return;
  torch::NoGradGuard g;
  const double k = 1.0 / std::sqrt(static_cast<double>(W.size(1)));
  W.uniform_(-k, k);
}

void MultiplicativeAttentionImpl::pretty_print(std::ostream& os) const {
  os << "rnnkit::MultiplicativeAttention(query_size=" << options.query_size()
     << ", memory_size=" << options.memory_size() << ", score=" << options.score() << ")";
}

AttentionMemory MultiplicativeAttentionImpl::memory(const Tensor& h, const Tensor& lengths) const {
  check_memory_input("MultiplicativeAttention", h, options.memory_size());
  const Tensor values = h.transpose(0, 1);                              // [B, S, Dh]
  const Tensor keys = W.defined() ? torch::linear(values, W) : values;  // [B, S, Dq]
  return {values, keys, mask_of(h, lengths)};
}

Tensor MultiplicativeAttentionImpl::scores(const Tensor& s, const AttentionMemory& m) const {
  TORCH_CHECK(s.size(2) == options.query_size(),
              "MultiplicativeAttention: expected queries of width ", options.query_size(), ", got ",
              s.sizes());
  return torch::bmm(s, m.keys.transpose(1, 2));  // [B, T, S]
}

std::shared_ptr<AttentionImplBase> make_attention(const std::string& kind,
                                                  const AttentionOptions& options) {
  if (kind == "additive") return std::make_shared<AdditiveAttentionImpl>(options);
  if (kind == "dot" || kind == "general") {
    return std::make_shared<MultiplicativeAttentionImpl>(AttentionOptions(options).score(kind));
  }
  TORCH_CHECK(false, "attention: expected \"additive\", \"dot\" or \"general\", got \"", kind,
              "\"");
}

}  // namespace rnnkit
