#include "rnnkit/export/onnx.h"

#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>
#include <utility>

#include <onnx/onnx_pb.h>
#include <torch/torch.h>

#include <rnnkit/cells/gru_cell.h>
#include <rnnkit/cells/lstm_cell.h>
#include <rnnkit/cells/rnn_cell.h>
#include <rnnkit/cells/simple_gru_cell.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/system.h>
#include <rnnkit/train/train.h>
#include <cxxopts.hpp>
#include <iostream>

#include <rnnkit/version.h>

namespace rnnkit::onnx_export {

using torch::Tensor;

std::string exportable_cells() {
  return "lstm, lstm_peephole, gru, gru_reset_after, gru_simple, rnn and rnn_relu";
}

namespace {

int32_t elem_type(Type t) {
  switch (t) {
    case Type::kFloat:
      return onnx::TensorProto::FLOAT;
    case Type::kInt64:
      return onnx::TensorProto::INT64;
    case Type::kInt32:
      return onnx::TensorProto::INT32;
    case Type::kBool:
      return onnx::TensorProto::BOOL;
  }
  return onnx::TensorProto::UNDEFINED;
}

void set_type(onnx::ValueInfoProto& v, Type type, const std::vector<Dim>& dims) {
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem_type(type));
  auto* shape = t->mutable_shape();
  for (const auto& d : dims) {
    auto* dim = shape->add_dim();
    if (const auto* n = std::get_if<int64_t>(&d)) {
      dim->set_dim_value(*n);
    } else {
      dim->set_dim_param(std::get<std::string>(d));
    }
  }
}

// A body's value: its type and rank, its sizes unknown.
void set_rank(onnx::ValueInfoProto& v, Type type, int64_t rank) {
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem_type(type));
  for (int64_t i = 0; i < rank; ++i) t->mutable_shape()->add_dim();
}

// Graph inputs or outputs as the JSON beside the model lists them.
train::Json describe(const google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>& values) {
  train::Json out = train::Json::array();
  for (const auto& v : values) {
    const auto& t = v.type().tensor_type();
    train::Json shape = train::Json::array();
    for (const auto& d : t.shape().dim()) {
      if (d.has_dim_value()) {
        shape.push_back(d.dim_value());
      } else {
        shape.push_back(d.dim_param());
      }
    }
    const char* type = t.elem_type() == onnx::TensorProto::INT64   ? "int64"
                       : t.elem_type() == onnx::TensorProto::INT32 ? "int32"
                       : t.elem_type() == onnx::TensorProto::BOOL  ? "bool"
                                                                   : "float32";
    out.push_back({{"name", v.name()}, {"type", type}, {"shape", shape}, {"doc", v.doc_string()}});
  }
  return out;
}

void set_attr(onnx::NodeProto& node, const Attr& a) {
  auto* p = node.add_attribute();
  p->set_name(a.name);
  if (const auto* i = std::get_if<int64_t>(&a.value)) {
    p->set_type(onnx::AttributeProto::INT);
    p->set_i(*i);
  } else if (const auto* f = std::get_if<float>(&a.value)) {
    p->set_type(onnx::AttributeProto::FLOAT);
    p->set_f(*f);
  } else if (const auto* s = std::get_if<std::string>(&a.value)) {
    p->set_type(onnx::AttributeProto::STRING);
    p->set_s(*s);
  } else if (const auto* is = std::get_if<std::vector<int64_t>>(&a.value)) {
    p->set_type(onnx::AttributeProto::INTS);
    for (auto v : *is) p->add_ints(v);
  } else {
    p->set_type(onnx::AttributeProto::STRINGS);
    for (const auto& v : std::get<std::vector<std::string>>(a.value)) p->add_strings(v);
  }
}

}  // namespace

struct Graph::Impl {
  onnx::ModelProto model;
  std::vector<onnx::GraphProto*> open;  // the main graph, then the bodies being built
  std::vector<std::unique_ptr<onnx::GraphProto>> bodies;
  int64_t counter = 0;
  std::string fresh(const std::string& hint) { return hint + "_" + std::to_string(counter++); }
};

Graph::Graph(const std::string& name, const std::string& doc) : impl_(std::make_unique<Impl>()) {
  auto& m = impl_->model;
  m.set_ir_version(onnx::IR_VERSION);  // 8 with Debian 12's ONNX 1.12: opset 17
  m.set_producer_name("rnnkit");
  m.set_producer_version(RNNKIT_VERSION);
  m.set_doc_string(doc);
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  m.mutable_graph()->set_name(name);
  impl_->open.push_back(m.mutable_graph());
}

Graph::~Graph() = default;

std::string Graph::constant(const Tensor& t_, const std::string& hint) {
  const auto t = t_.detach().to(torch::kCPU).contiguous();
  auto* init = impl_->model.mutable_graph()->add_initializer();
  const auto name = impl_->fresh(hint);
  init->set_name(name);
  for (auto d : t.sizes()) init->add_dims(d);
  if (t.scalar_type() == torch::kLong) {
    init->set_data_type(onnx::TensorProto::INT64);
  } else {
    TORCH_CHECK(t.is_floating_point(), "onnx export: expected a float or int64 tensor, got ",
                t.scalar_type());
    init->set_data_type(onnx::TensorProto::FLOAT);
  }
  const auto c = t.scalar_type() == torch::kLong ? t : t.to(torch::kFloat);
  // ONNX's raw_data is little-endian, as this x86/ARM host is.
  init->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.nbytes()));
  return name;
}

std::string Graph::ints(const std::vector<int64_t>& v) {
  return constant(torch::tensor(v, torch::kLong), "i");
}
std::string Graph::scalar(float v) { return constant(torch::tensor(v, torch::kFloat), "f"); }
std::string Graph::int_scalar(int64_t v) { return constant(torch::tensor(v, torch::kLong), "i"); }

std::string Graph::node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<Attr>& attrs) {
  return node(op, inputs, 1, attrs).front();
}

std::vector<std::string> Graph::node(const std::string& op, const std::vector<std::string>& inputs,
                                     int outputs, const std::vector<Attr>& attrs) {
  auto* n = impl_->open.back()->add_node();
  n->set_op_type(op);
  n->set_name(impl_->fresh(op));
  for (const auto& i : inputs) n->add_input(i);
  std::vector<std::string> out;
  for (int i = 0; i < outputs; ++i) {
    out.push_back(impl_->fresh(op + "_out"));
    n->add_output(out.back());
  }
  for (const auto& a : attrs) set_attr(*n, a);
  return out;
}

void Graph::input(const std::string& name, Type type, const std::vector<Dim>& dims,
                  const std::string& doc) {
  auto* v = impl_->model.mutable_graph()->add_input();
  v->set_name(name);
  v->set_doc_string(doc);
  set_type(*v, type, dims);
}

void Graph::output(const std::string& value, const std::string& name, Type type,
                   const std::vector<Dim>& dims, const std::string& doc) {
  auto* n = impl_->model.mutable_graph()->add_node();
  n->set_op_type("Identity");
  n->set_name(impl_->fresh("output"));
  n->add_input(value);
  n->add_output(name);
  auto* v = impl_->model.mutable_graph()->add_output();
  v->set_name(name);
  v->set_doc_string(doc);
  set_type(*v, type, dims);
}

void Graph::metadata(const std::string& key, const std::string& value) {
  auto* p = impl_->model.add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

void Graph::begin_body() {
  impl_->bodies.push_back(std::make_unique<onnx::GraphProto>());
  impl_->bodies.back()->set_name(impl_->fresh("body"));
  impl_->open.push_back(impl_->bodies.back().get());
}

std::string Graph::body_input(Type type, int64_t rank) {
  TORCH_CHECK(impl_->open.size() > 1, "onnx export: body_input outside a body");
  auto* v = impl_->open.back()->add_input();
  v->set_name(impl_->fresh("slice"));
  set_rank(*v, type, rank);
  return v->name();
}

std::vector<std::string> Graph::scan(const std::vector<std::string>& inputs,
                                     const std::vector<std::string>& body_outputs,
                                     const std::vector<int64_t>& ranks,
                                     const std::vector<Attr>& attrs) {
  TORCH_CHECK(impl_->open.size() > 1 && body_outputs.size() == ranks.size(),
              "onnx export: scan without a body, or outputs and ranks disagree");
  auto* body = impl_->open.back();
  for (size_t i = 0; i < body_outputs.size(); ++i) {
    // A body output must be a value the body computes: an Identity names it.
    auto* n = body->add_node();
    n->set_op_type("Identity");
    n->set_name(impl_->fresh("Identity"));
    n->add_input(body_outputs[i]);
    const auto name = impl_->fresh("body_out");
    n->add_output(name);
    auto* v = body->add_output();
    v->set_name(name);
    set_rank(*v, Type::kFloat, ranks[i]);
  }
  impl_->open.pop_back();
  auto* n = impl_->open.back()->add_node();
  n->set_op_type("Scan");
  n->set_name(impl_->fresh("Scan"));
  for (const auto& i : inputs) n->add_input(i);
  std::vector<std::string> out;
  for (size_t i = 0; i < body_outputs.size(); ++i) {
    out.push_back(impl_->fresh("Scan_out"));
    n->add_output(out.back());
  }
  for (const auto& a : attrs) set_attr(*n, a);
  auto* g = n->add_attribute();
  g->set_name("body");
  g->set_type(onnx::AttributeProto::GRAPH);
  *g->mutable_g() = *body;
  return out;
}

std::string Graph::serialize() const {
  std::string bytes;
  if (!impl_->model.SerializeToString(&bytes)) {
    throw ExportError("onnx export: the protobuf library could not serialise the model");
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// The recurrent stack.

namespace {

enum class Kind { kLSTM, kPeephole, kGRU, kGRUResetAfter, kSimpleGRU, kRNNTanh, kRNNReLU };

Kind kind_of(CellImplBase& cell, const std::string& name, const std::string& what) {
  if (auto* c = dynamic_cast<LSTMCellImpl*>(&cell)) {
    return c->options.peephole() ? Kind::kPeephole : Kind::kLSTM;
  }
  if (auto* c = dynamic_cast<GRUCellImpl*>(&cell)) {
    return c->options.reset_after() ? Kind::kGRUResetAfter : Kind::kGRU;
  }
  if (dynamic_cast<SimpleGRUCellImpl*>(&cell)) return Kind::kSimpleGRU;
  if (auto* c = dynamic_cast<RNNCellImpl*>(&cell)) {
    return c->options.activation() == Activation::kReLU ? Kind::kRNNReLU : Kind::kRNNTanh;
  }
  throw ExportError(what + ": cell '" + name +
                    "' cannot be exported to ONNX (a plugin's cell has no ONNX form); the cells "
                    "that export are " +
                    exportable_cells());
}

// W [H, H + D] (recurrent columns first) -> its input part [H, D] and recurrent part [H, H].
Tensor input_part(const Tensor& W, int64_t H) { return W.slice(1, H); }
Tensor recurrent_part(const Tensor& W, int64_t H) { return W.slice(1, 0, H); }

struct OnnxWeights {
  Tensor W, R, B;  // [G*H, D], [G*H, H], [2*G*H] for one direction
};

OnnxWeights native_weights(CellImplBase& cell, Kind kind, int64_t H) {
  torch::NoGradGuard no_grad;
  auto zeros = [&](const Tensor& like, int64_t n) { return torch::zeros({n}, like.options()); };
  auto pack = [&](const std::vector<Tensor>& Ws, const std::vector<Tensor>& bw,
                  const std::vector<Tensor>& br) {
    std::vector<Tensor> in, rec;
    for (const auto& W : Ws) {
      in.push_back(input_part(W, H));
      rec.push_back(recurrent_part(W, H));
    }
    auto b = bw;
    b.insert(b.end(), br.begin(), br.end());
    return OnnxWeights{torch::cat(in), torch::cat(rec), torch::cat(b)};
  };
  switch (kind) {
    case Kind::kLSTM: {  // ONNX's order i, o, f, c
      auto& c = dynamic_cast<LSTMCellImpl&>(cell);
      return pack({c.W_u, c.W_o, c.W_f, c.W_c}, {c.b_u, c.b_o, c.b_f, c.b_c},
                  {zeros(c.b_u, 4 * H)});
    }
    case Kind::kGRU:
    case Kind::kGRUResetAfter: {  // z, r, h; ONNX keeps z * h<t-1>: z = 1 - Γu = σ(-(...))
      auto& c = dynamic_cast<GRUCellImpl&>(cell);
      const Tensor rb_h = kind == Kind::kGRUResetAfter ? c.b_cc : zeros(c.b_c, H);
      return pack({-c.W_u, c.W_r, c.W_c}, {-c.b_u, c.b_r, c.b_c},
                  {zeros(c.b_u, H), zeros(c.b_r, H), rb_h});
    }
    case Kind::kRNNTanh:
    case Kind::kRNNReLU: {
      auto& c = dynamic_cast<RNNCellImpl&>(cell);
      return pack({c.W_a}, {c.b_a}, {zeros(c.b_a, H)});
    }
    default:
      break;
  }
  TORCH_CHECK(false, "onnx export: no native operator for this cell");
}

const char* native_op(Kind k) {
  switch (k) {
    case Kind::kLSTM:
      return "LSTM";
    case Kind::kGRU:
    case Kind::kGRUResetAfter:
      return "GRU";
    default:
      return "RNN";
  }
}

bool is_native(Kind k) { return k != Kind::kPeephole && k != Kind::kSimpleGRU; }

// [rows of] a stacked state [L*K, B, H] for layer l: [K, B, H].
std::string layer_rows(Graph& g, const std::string& s, int64_t first, int64_t count) {
  return g.node("Slice", {s, g.ints({first}), g.ints({first + count}), g.ints({0})});
}

// Zeros [B, H] for x [T, B, D].
std::string zero_state(Graph& g, const std::string& x, int64_t H) {
  const auto B = g.node("Shape", {x}, {Attr("start", 1), Attr("end", 2)});
  const auto shape = g.node("Concat", {B, g.ints({H})}, {Attr("axis", 0)});
  return g.node("ConstantOfShape", {shape});  // float zeros by default
}

// One direction of a Scan-written layer: returns {y [T, B, H], a_n [B, H], c_n [B, H] or ""}.
struct ScanResult {
  std::string y, a, c;
};

ScanResult scan_direction(Graph& g, CellImplBase& cell, Kind kind, int64_t H, const std::string& x,
                          const std::string& mask, std::string a0, std::string c0, bool reverse) {
  torch::NoGradGuard no_grad;
  const bool lstm = kind == Kind::kPeephole;
  // The products' weights, transposed for MatMul: [H + D, G*H] and [G*H].
  Tensor W, b;
  std::vector<Tensor> peep;
  if (lstm) {
    auto& c = dynamic_cast<LSTMCellImpl&>(cell);
    W = torch::cat({c.W_u, c.W_f, c.W_o, c.W_c}).t();
    b = torch::cat({c.b_u, c.b_f, c.b_o, c.b_c});
    peep = {c.p_u, c.p_f, c.p_o};
  } else {
    auto& c = dynamic_cast<SimpleGRUCellImpl&>(cell);
    W = torch::cat({c.W_u, c.W_c}).t();
    b = torch::cat({c.b_u, c.b_c});
  }
  const auto Wn = g.constant(W, "W"), bn = g.constant(b, "b");
  std::vector<std::string> pn;
  for (const auto& p : peep) pn.push_back(g.constant(p, "p"));
  const auto one = g.scalar(1.f), zero = g.scalar(0.f);
  const int64_t G = lstm ? 4 : 2;
  const auto split = g.ints(std::vector<int64_t>(G, H));

  g.begin_body();
  const auto a_prev = g.body_input(Type::kFloat, 2);
  const auto c_prev = lstm ? g.body_input(Type::kFloat, 2) : a_prev;
  const auto x_t = g.body_input(Type::kFloat, 2);
  const auto m_t = g.body_input(Type::kBool, 2);                         // [B, 1]
  const auto ax = g.node("Concat", {a_prev, x_t}, {Attr("axis", 1)});    // [B, H + D]
  const auto z = g.node("Add", {g.node("MatMul", {ax, Wn}), bn});        // [B, G*H]
  const auto parts = g.node("Split", {z, split}, G, {Attr("axis", 1)});  // G x [B, H]
  std::string a_new, c_new;
  if (lstm) {
    auto gate = [&](int i) {  // σ(W [a<t-1>, x<t>] + p * c<t-1> + b)
      return g.node("Sigmoid", {g.node("Add", {parts[i], g.node("Mul", {pn[i], c_prev})})});
    };
    const auto gu = gate(0), gf = gate(1), go = gate(2);  // Γu, Γf, Γo
    const auto c_tilde = g.node("Tanh", {parts[3]});      // c̃<t>
    c_new = g.node("Add", {g.node("Mul", {gu, c_tilde}), g.node("Mul", {gf, c_prev})});
    a_new = g.node("Mul", {go, g.node("Tanh", {c_new})});  // a<t> = Γo * tanh(c<t>)
  } else {
    const auto gu = g.node("Sigmoid", {parts[0]});    // Γu
    const auto c_tilde = g.node("Tanh", {parts[1]});  // c̃<t>
    a_new = g.node(
        "Add", {g.node("Mul", {gu, c_tilde}), g.node("Mul", {g.node("Sub", {one, gu}), a_prev})});
  }
  // Past a sequence's length the state stays and the output is zero.
  const auto a_out = g.node("Where", {m_t, a_new, a_prev});
  const auto y_t = g.node("Where", {m_t, a_new, zero});
  std::vector<std::string> outs{a_out};
  std::vector<int64_t> ranks{2};
  if (lstm) {
    outs.push_back(g.node("Where", {m_t, c_new, c_prev}));
    ranks.push_back(2);
  }
  outs.push_back(y_t);
  ranks.push_back(2);
  std::vector<std::string> inputs{a0};
  if (lstm) inputs.push_back(c0);
  inputs.push_back(x);
  inputs.push_back(mask);
  const int64_t dir = reverse ? 1 : 0;
  const auto r = g.scan(inputs, outs, ranks,
                        {Attr("num_scan_inputs", 2), Attr("scan_input_directions", {dir, dir}),
                         Attr("scan_output_directions", std::vector<int64_t>{dir})});
  return lstm ? ScanResult{r[2], r[0], r[1]} : ScanResult{r[1], r[0], ""};
}

}  // namespace

void check_exportable(RNNImpl& rnn, const std::string& what) {
  for (int64_t l = 0; l < rnn.options.num_layers(); ++l) {
    for (int64_t d = 0; d < rnn.num_directions(); ++d) {
      kind_of(rnn.cell(l, d), rnn.options.cell(), what);
    }
  }
}

std::string step_mask(Graph& g, const std::string& x, const std::string& lengths) {
  const auto T =
      g.node("Squeeze", {g.node("Shape", {x}, {Attr("start", 0), Attr("end", 1)}), g.ints({0})});
  const auto t = g.node("Range", {g.int_scalar(0), T, g.int_scalar(1)});  // [T]
  const auto mask = g.node("Less", {g.node("Unsqueeze", {t, g.ints({1})}),
                                    g.node("Unsqueeze", {lengths, g.ints({0})})});  // [T, B]
  return g.node("Unsqueeze", {mask, g.ints({2})});                                  // [T, B, 1]
}

RNNValues add_rnn(Graph& g, RNNImpl& rnn, const std::string& x_in, const std::string& lengths,
                  const std::string& h0, const std::string& c0) {
  check_exportable(rnn, "rnn");
  const int64_t L = rnn.options.num_layers(), K = rnn.num_directions();
  const int64_t H = rnn.options.hidden_size();
  const Kind kind = kind_of(rnn.cell(0, 0), rnn.options.cell(), "rnn");
  const bool memory = rnn.cell(0, 0).has_memory_cell();
  std::string seq_lens, mask;
  if (is_native(kind)) {
    seq_lens = g.node("Cast", {lengths}, {Attr("to", int64_t{onnx::TensorProto::INT32})});
  } else {
    mask = step_mask(g, x_in, lengths);
  }
  std::string x = x_in;
  std::vector<std::string> hs, cs;
  for (int64_t l = 0; l < L; ++l) {
    const auto h0_l = h0.empty() ? std::string() : layer_rows(g, h0, l * K, K);  // [K, B, H]
    const auto c0_l = c0.empty() ? std::string() : layer_rows(g, c0, l * K, K);
    if (is_native(kind)) {
      std::vector<Tensor> W, R, B;
      for (int64_t d = 0; d < K; ++d) {
        auto w = native_weights(rnn.cell(l, d), kind, H);
        W.push_back(w.W);
        R.push_back(w.R);
        B.push_back(w.B);
      }
      std::vector<std::string> in{x,
                                  g.constant(torch::stack(W), "W"),
                                  g.constant(torch::stack(R), "R"),
                                  g.constant(torch::stack(B), "B"),
                                  seq_lens,
                                  h0_l};
      if (kind == Kind::kLSTM) in.push_back(c0_l);
      std::vector<Attr> attrs{Attr("hidden_size", H),
                              Attr("direction", K == 2 ? "bidirectional" : "forward")};
      if (kind == Kind::kGRUResetAfter) attrs.emplace_back("linear_before_reset", int64_t{1});
      if (kind == Kind::kRNNTanh || kind == Kind::kRNNReLU) {
        attrs.emplace_back("activations",
                           std::vector<std::string>(K, kind == Kind::kRNNReLU ? "Relu" : "Tanh"));
      }
      const auto out = g.node(native_op(kind), in, kind == Kind::kLSTM ? 3 : 2, attrs);
      // Y [T, K, B, H] -> [T, B, K, H] -> [T, B, K*H]
      x = g.node("Reshape",
                 {g.node("Transpose", {out[0]}, {Attr("perm", {0, 2, 1, 3})}), g.ints({0, 0, -1})});
      hs.push_back(out[1]);
      if (kind == Kind::kLSTM) cs.push_back(out[2]);
    } else {
      std::vector<std::string> ys;
      for (int64_t d = 0; d < K; ++d) {
        auto state0 = [&](const std::string& s0) {
          return s0.empty() ? zero_state(g, x, H)
                            : g.node("Squeeze", {layer_rows(g, s0, l * K + d, 1), g.ints({0})});
        };
        const auto a0 = state0(h0_l.empty() ? "" : h0);
        const auto cc0 = memory ? state0(c0_l.empty() ? "" : c0) : "";
        const auto r = scan_direction(g, rnn.cell(l, d), kind, H, x, mask, a0, cc0, d == 1);
        ys.push_back(r.y);
        hs.push_back(g.node("Unsqueeze", {r.a, g.ints({0})}));
        if (memory) cs.push_back(g.node("Unsqueeze", {r.c, g.ints({0})}));
      }
      x = K == 1 ? ys[0] : g.node("Concat", ys, {Attr("axis", 2)});
    }
  }
  RNNValues v;
  v.output = x;
  v.h_n = hs.size() == 1 ? hs[0] : g.node("Concat", hs, {Attr("axis", 0)});
  if (memory) v.c_n = cs.size() == 1 ? cs[0] : g.node("Concat", cs, {Attr("axis", 0)});
  return v;
}

std::string sidecar_path(const std::string& path) {
  const std::string ext = ".onnx";
  if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0) {
    return path.substr(0, path.size() - ext.size()) + ".json";
  }
  return path + ".json";
}

int export_command(const std::string& program, int argc, char** argv,
                   const std::function<void(const std::string&, const std::string&)>& run) {
  cxxopts::Options cli(
      program + " export",
      "Write a checkpoint's model as an ONNX file (opset 17) and its vocabularies, "
      "labels and tokenizer as JSON beside it (docs/export.md)");
  train::add_model_options(cli);
  cli.add_options()("output", "the ONNX file to write (NAME.onnx; NAME.json is written beside it)",
                    cxxopts::value<std::string>())("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  const auto checkpoint = train::required(args, "checkpoint");
  const auto output = train::required(args, "output");
  const auto run_opts = train::run_options(args, "");
  TORCH_CHECK(run_opts.precision == "fp32",
              "export: --precision does not apply; the ONNX model is float32");
  train::setup_runtime(run_opts, 0);
  run(checkpoint, output);
  std::cout << "wrote " << output << " and " << sidecar_path(output) << "\n";
  return 0;
}

std::vector<std::string> tokens_of(const data::Vocab& vocab) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < vocab.size(); ++i) out.push_back(vocab.token(i));
  return out;
}

train::Json Graph::signature() const {
  const auto& g = impl_->model.graph();
  return {{"inputs", describe(g.input())}, {"outputs", describe(g.output())}};
}

void save(Graph& model, const train::Json& app_meta, const std::string& path) {
  train::Json meta = {{"format", kFormat}};
  meta.update(app_meta);
  meta.update(model.signature());
  for (const auto& [key, value] : meta.items()) {
    model.metadata(key, value.is_string() ? value.get<std::string>() : value.dump());
  }
  const std::string side_path = sidecar_path(path);
  for (const auto* p : {&path, &side_path}) {  // before any work: say what is wrong with the path
    const auto folder = std::filesystem::path(*p).parent_path();
    if (!folder.empty() && !std::filesystem::is_directory(folder)) {
      throw ExportError("onnx export: " + *p + ": the folder " + folder.string() +
                        " does not exist");
    }
    if (std::filesystem::is_directory(*p))
      throw ExportError("onnx export: " + *p + ": is a folder");
  }
  const std::string bytes = model.serialize(), sidecar = meta.dump(1) + "\n";
  const std::string tmp_model = train::unique_temp_path(path);
  const std::string tmp_side = train::unique_temp_path(side_path);
  try {
    for (const auto& [tmp, text] : {std::pair{tmp_model, &bytes}, std::pair{tmp_side, &sidecar}}) {
      train::OutputFile out(tmp);
      out.stream().write(text->data(), static_cast<std::streamsize>(text->size()));
      out.close();
    }
    train::commit_file(tmp_side, side_path);
  } catch (const std::exception& e) {
    std::remove(tmp_model.c_str());
    std::remove(tmp_side.c_str());
    throw ExportError(std::string("onnx export: ") + e.what());
  }
  try {
    train::commit_file(tmp_model, path);
  } catch (const std::exception& e) {  // a JSON without its model would mislead: take it back
    std::remove(tmp_model.c_str());
    std::remove(side_path.c_str());
    throw ExportError(std::string("onnx export: ") + e.what());
  }
}

}  // namespace rnnkit::onnx_export
