// Attention, the attentive decoder and the bridge (modules/include/rnnkit/attention.h,
// decoder.h), in float64: against the equations written out here one scalar at a time, by finite
// differences, with padded source positions that must get weight exactly 0 and no gradient.
#include <cmath>

#include <rnnkit/attention.h>
#include <rnnkit/decoder.h>

#include "test_util.h"

using namespace rnnkit;
using torch::Tensor;

namespace {

const std::vector<std::string>& attention_kinds() {
  static const std::vector<std::string> k{"additive", "dot", "general"};
  return k;
}

/// e<t'> for one sentence b, one query, written out: the plain reference.
double reference_score(const std::string& kind, AttentionImplBase& att, const Tensor& s,
                       const Tensor& h, int64_t b, int64_t tp) {
  const Tensor q = s[b], k = h[tp][b];
  if (kind == "dot") return (q * k).sum().item<double>();
  if (kind == "general") {
    auto& m = dynamic_cast<MultiplicativeAttentionImpl&>(att);
    return torch::dot(q, torch::mv(m.W, k)).item<double>();
  }
  auto& a = dynamic_cast<AdditiveAttentionImpl&>(att);
  double e = 0;
  for (int64_t i = 0; i < a.v.size(0); ++i) {
    const double pre = torch::dot(a.W_s[i], q).item<double>() +
                       torch::dot(a.W_h[i], k).item<double>() + a.b[i].item<double>();
    e += a.v[i].item<double>() * std::tanh(pre);
  }
  return e;
}

}  // namespace

class Attention : public ::testing::TestWithParam<std::string> {};

TEST_P(Attention, MatchesTheEquationsAndMasksPadding) {
  torch::manual_seed(3);
  const int64_t S = 5, B = 3, D = 4;
  auto att = make_attention(GetParam(), AttentionOptions(D, D).attention_size(6));
  att->to(torch::kDouble);
  const Tensor h = torch::randn({S, B, D}, rnnkit_test::f64());
  const Tensor s = torch::randn({B, D}, rnnkit_test::f64());
  const Tensor lengths = torch::tensor({5, 2, 1}, torch::kLong);
  const auto m = att->memory(h, lengths);
  const auto out = att->attend(s, m);
  ASSERT_EQ(out.context.sizes(), (std::vector<int64_t>{B, D}));
  ASSERT_EQ(out.weights.sizes(), (std::vector<int64_t>{B, S}));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = lengths[b].item<int64_t>();
    std::vector<double> e(len);
    double mx = -1e300, z = 0;
    for (int64_t tp = 0; tp < len; ++tp) {
      e[tp] = reference_score(GetParam(), *att, s, h, b, tp);
      mx = std::max(mx, e[tp]);
    }
    for (auto v : e) z += std::exp(v - mx);
    Tensor c = torch::zeros({D}, rnnkit_test::f64());
    for (int64_t tp = 0; tp < S; ++tp) {
      const double alpha = tp < len ? std::exp(e[tp] - mx) / z : 0.0;
      if (tp < len) {
        EXPECT_NEAR(out.weights[b][tp].item<double>(), alpha, 1e-12) << b << "," << tp;
        c += alpha * h[tp][b];
      } else {
        EXPECT_EQ(out.weights[b][tp].item<double>(), 0.0) << "padded weight " << b << "," << tp;
      }
    }
    EXPECT_LT(rnnkit_test::max_abs_diff(out.context[b], c), 1e-12) << b;
  }
  // T queries at once give what T single queries give.
  const Tensor qs = torch::randn({2, B, D}, rnnkit_test::f64());
  const auto all = att->attend_all(qs, m);
  for (int64_t t = 0; t < 2; ++t) {
    const auto one = att->attend(qs[t], m);
    EXPECT_LT(rnnkit_test::max_abs_diff(all.context[t], one.context), 1e-12);
    EXPECT_LT(rnnkit_test::max_abs_diff(all.weights[t], one.weights), 1e-12);
  }
}

TEST_P(Attention, PaddedPositionsGetNoGradientAndFiniteDifferencesAgree) {
  torch::manual_seed(4);
  const int64_t S = 4, B = 2, D = 3;
  auto att = make_attention(GetParam(), AttentionOptions(D, D).attention_size(2));
  att->to(torch::kDouble);
  const Tensor h = torch::randn({S, B, D}, rnnkit_test::f64()).requires_grad_(true);
  const Tensor s = torch::randn({B, D}, rnnkit_test::f64()).requires_grad_(true);
  const Tensor lengths = torch::tensor({4, 2}, torch::kLong);
  auto loss = [&] {
    const auto out = att->attend(s, att->memory(h, lengths));
    return rnnkit_test::weighted_sum({out.context, out.weights}, 5);
  };
  loss().backward();
  EXPECT_EQ(h.grad().slice(0, 2).select(1, 1).abs().max().item<double>(), 0.0)
      << "padded positions of sentence 1 received gradient";
  EXPECT_GT(h.grad().slice(0, 0, 2).select(1, 1).abs().max().item<double>(), 0.0);
  auto vars = att->parameters();
  vars.push_back(h);
  vars.push_back(s);
  rnnkit_test::gradcheck(loss, vars, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Kinds, Attention, ::testing::ValuesIn(attention_kinds()),
                         rnnkit_test::param_name);

TEST(AttentionErrors, SayWhatWasExpected) {
  EXPECT_THROW(make_attention("cosine", AttentionOptions(2, 2)), c10::Error);
  EXPECT_THROW(make_attention("dot", AttentionOptions(2, 3)), c10::Error);
  auto att = make_attention("general", AttentionOptions(2, 3));
  const Tensor h = torch::randn({4, 2, 3});
  EXPECT_THROW(att->memory(h, torch::tensor({0, 2}, torch::kLong)), c10::Error);
  EXPECT_THROW(att->memory(h, torch::tensor({5, 2}, torch::kLong)), c10::Error);
  EXPECT_THROW(att->memory(torch::randn({4, 2, 2}), {}), c10::Error);
  try {
    att->memory(h, torch::tensor({5, 2}, torch::kLong));
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("1..4"), std::string::npos)
        << e.what_without_backtrace();
  }
}

// ---- the decoder ----

struct DecoderCase {
  std::string cell, attention;
  bool input_feeding;
};

std::vector<DecoderCase> decoder_cases() {
  std::vector<DecoderCase> out;
  // Per cell: additive and input feeding step one step at a time; general without input
  // feeding takes the fast path (the whole target through the layers at once, attention after),
  // which forward() must match step() on for every cell.
  for (const auto& cell : rnnkit_test::builtin_cells()) {
    out.push_back({cell, "additive", false});
    out.push_back({cell, "general", true});
    out.push_back({cell, "general", false});
  }
  out.push_back({"lstm", "dot", false});
  out.push_back({"lstm", "none", false});
  out.push_back({"gru", "none", false});
  return out;
}

std::string decoder_case_name(const ::testing::TestParamInfo<DecoderCase>& info) {
  return info.param.cell + "_" + info.param.attention + (info.param.input_feeding ? "_feed" : "");
}

class Decoder : public ::testing::TestWithParam<DecoderCase> {};

/// The decoder's equations written out for one step with the cells' plain steps and the
/// attention's (already checked) single query: the reference for step().
static DecoderOutput reference_step(AttentionDecoderImpl& d, const Tensor& y, DecoderState& st,
                                    const AttentionMemory& m) {
  const auto& kind = d.options.attention();
  const int64_t L = d.options.rnn().num_layers();
  Tensor x = y;
  AttentionOutput att;
  if (kind == "additive") {
    att = d.attention->attend(st.layers.back().a, m);
    x = torch::cat({y, att.context}, 1);
  }
  if (d.options.input_feeding()) x = torch::cat({x, st.feed}, 1);
  for (int64_t l = 0; l < L; ++l) {
    st.layers[l] = d.rnn->cell(l, 0).step(x, st.layers[l]);
    x = st.layers[l].a;
  }
  if (kind == "none") return {x, {}};
  if (kind != "additive") att = d.attention->attend(x, m);
  const Tensor ht = torch::tanh(torch::mm(torch::cat({att.context, x}, 1), d.W_c.t()));
  st.feed = ht;
  return {ht, att.weights};
}

TEST_P(Decoder, StepsMatchTheEquationsAndTeacherForcingMatchesTheSteps) {
  const auto& p = GetParam();
  torch::manual_seed(7);
  const int64_t S = 4, B = 3, E = 3, H = 4, Dh = 4, T = 5;
  AttentionDecoder dec(DecoderOptions(RNNOptions(p.cell, E, H).num_layers(2), Dh)
                           .attention(p.attention)
                           .input_feeding(p.input_feeding));
  dec->to(torch::kDouble);
  dec->eval();
  const Tensor h = torch::randn({S, B, Dh}, rnnkit_test::f64());
  const Tensor lengths = torch::tensor({4, 1, 3}, torch::kLong);
  const Tensor y = torch::randn({T, B, E}, rnnkit_test::f64());
  const auto m = dec->memory(h, lengths);
  DecoderState init;
  for (int i = 0; i < 2; ++i) {
    State s{torch::randn({B, H}, rnnkit_test::f64()), {}};
    if (dec->rnn->cell(0, 0).has_memory_cell()) s.c = torch::randn({B, H}, rnnkit_test::f64());
    init.layers.push_back(s);
  }
  init.feed = torch::zeros({B, H}, rnnkit_test::f64());
  const auto all = dec->forward(y, init, m);
  DecoderState a = init, r = init;
  for (int64_t t = 0; t < T; ++t) {
    const auto o = dec->step(y[t], a, m);
    const auto ref = reference_step(*dec, y[t], r, m);
    EXPECT_LT(rnnkit_test::max_abs_diff(o.output, ref.output), 1e-12) << "step " << t;
    EXPECT_LT(rnnkit_test::max_abs_diff(o.output, all.output[t]), 1e-12) << "forward, step " << t;
    if (p.attention != "none") {
      EXPECT_LT(rnnkit_test::max_abs_diff(o.weights, all.weights[t]), 1e-12);
      EXPECT_EQ(o.weights[1].slice(0, 1).abs().max().item<double>(), 0.0)
          << "sentence 1 has one source position";
    }
  }
}

TEST_P(Decoder, FiniteDifferencesThroughTheBridgeDecoderAndMaskedMemory) {
  const auto& p = GetParam();
  torch::manual_seed(8);
  const int64_t S = 3, B = 2, E = 2, T = 3;
  const int64_t H = p.attention == "dot" ? 4 : 3;  // dot: the query is as wide as the memory
  RNN enc(RNNOptions(p.cell, 2, 2).bidirectional(true));
  Bridge bridge(BridgeOptions(1, 2, 2, 1, H)
                    .decoder_memory_cell(make_cell(p.cell, CellSpec(E, H))->has_memory_cell()));
  AttentionDecoder dec(DecoderOptions(RNNOptions(p.cell, E, H), 4)
                           .attention(p.attention)
                           .input_feeding(p.input_feeding));
  enc->to(torch::kDouble);
  bridge->to(torch::kDouble);
  dec->to(torch::kDouble);
  const Tensor x = torch::randn({S, B, 2}, rnnkit_test::f64()).requires_grad_(true);
  const Tensor y = torch::randn({T, B, E}, rnnkit_test::f64());
  const Tensor lengths = torch::tensor({3, 2}, torch::kLong);
  auto loss = [&] {
    auto e = enc->forward(x, lengths);
    DecoderState st;
    st.layers = bridge->forward(e.states);
    auto out = dec->forward(y, st, dec->memory(e.output, lengths));
    return rnnkit_test::weighted_sum({out.output}, 9);
  };
  loss().backward();
  EXPECT_EQ(x.grad()[2][1].abs().max().item<double>(), 0.0) << "a padded input got gradient";
  std::vector<Tensor> vars = dec->parameters();
  for (const auto& v : bridge->parameters())
    if (v.grad().defined()) vars.push_back(v);
  vars.push_back(x);
  rnnkit_test::gradcheck(loss, vars, decoder_case_name({GetParam(), 0}));
}

INSTANTIATE_TEST_SUITE_P(Cases, Decoder, ::testing::ValuesIn(decoder_cases()), decoder_case_name);

TEST(Bridge, TopLayersReadTheTopEncoderLayersAndJoinDirections) {
  torch::manual_seed(9);
  Bridge br(BridgeOptions(3, 2, 2, 2, 3).decoder_memory_cell(true));
  br->to(torch::kDouble);
  EXPECT_EQ(br->source_layer(0), 1);
  EXPECT_EQ(br->source_layer(1), 2);
  std::vector<State> enc;
  for (int i = 0; i < 6; ++i)
    enc.push_back(
        {torch::randn({4, 2}, rnnkit_test::f64()), torch::randn({4, 2}, rnnkit_test::f64())});
  const auto out = br->forward(enc);
  ASSERT_EQ(out.size(), 2u);
  const Tensor want =
      torch::tanh(torch::mm(torch::cat({enc[4].a, enc[5].a}, 1), br->W[1].t()) + br->b[1]);
  EXPECT_LT(rnnkit_test::max_abs_diff(out[1].a, want), 1e-12);
  const Tensor want_c =
      torch::mm(torch::cat({enc[2].c, enc[3].c}, 1), br->W_cell[0].t()) + br->b_cell[0];
  EXPECT_LT(rnnkit_test::max_abs_diff(out[0].c, want_c), 1e-12);
  EXPECT_THROW(br->forward({enc[0]}), c10::Error);
  EXPECT_THROW(
      AttentionDecoder(
          DecoderOptions(RNNOptions("gru", 2, 2), 2).attention("additive").input_feeding(true)),
      c10::Error);
}
