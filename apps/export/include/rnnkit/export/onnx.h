#pragma once
// ONNX export: a small graph builder over Debian's ONNX protobuf schema (libonnx-dev), and the
// recurrent stack written as ONNX operators. The apps build their models' graphs with it
// (apps/NAME/export.cpp); docs/export.md says what a user gets.
//
// Recurrent layers map onto ONNX's own operators where the equations agree, and onto a Scan
// over primitive operators where they do not:
//
//     lstm                     LSTM   gates i, o, f, c = Γu, Γo, Γf, c̃
//     gru                      GRU    linear_before_reset = 0; z = 1 - Γu (W_u and b_u negated)
//     gru reset_after          GRU    linear_before_reset = 1; Rb_h = b_cc
//     rnn (tanh, relu)         RNN    activations Tanh or Relu
//     lstm peephole            Scan   ONNX's peephole LSTM feeds Γo with c<t>, rnnkit's with c<t-1>
//     gru_simple               Scan   no ONNX operator has a GRU without Γr
//
// Every value is a string name in the graph; the protobuf types stay inside onnx.cpp, so the
// apps compile without protobuf's headers. The protobuf's own schema writes the bytes.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <ATen/core/Tensor.h>

#include <rnnkit/data/vocab.h>
#include <rnnkit/rnn.h>
#include <rnnkit/train/json.h>

namespace rnnkit::onnx_export {

constexpr int64_t kOpset = 17;

/// A model that cannot be exported, or a file that cannot be written.
class ExportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The cells that export, for messages: "lstm, lstm_peephole, gru, gru_reset_after, ...".
std::string exportable_cells();

enum class Type { kFloat, kInt64, kInt32, kBool };
/// A dimension of a graph input or output: a size, or a name for a dynamic axis ("batch").
using Dim = std::variant<int64_t, std::string>;

struct Attr {
  Attr(std::string n, int64_t v) : name(std::move(n)), value(v) {}
  Attr(std::string n, int v) : name(std::move(n)), value(int64_t{v}) {}
  Attr(std::string n, float v) : name(std::move(n)), value(v) {}
  Attr(std::string n, std::string v) : name(std::move(n)), value(std::move(v)) {}
  Attr(std::string n, const char* v) : name(std::move(n)), value(std::string(v)) {}
  Attr(std::string n, std::vector<int64_t> v) : name(std::move(n)), value(std::move(v)) {}
  Attr(std::string n, std::initializer_list<int64_t> v)
      : name(std::move(n)), value(std::vector<int64_t>(v)) {}
  Attr(std::string n, std::vector<std::string> v) : name(std::move(n)), value(std::move(v)) {}
  std::string name;
  std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<std::string>> value;
};

class Graph {
 public:
  /// `name`: the graph's name; `doc`: the model's doc_string.
  Graph(const std::string& name, const std::string& doc);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  /// An initializer of the main graph holding `t` (float32 or int64, any device), by name.
  std::string constant(const at::Tensor& t, const std::string& hint = "w");
  std::string ints(const std::vector<int64_t>& v);  ///< a 1-D int64 constant
  std::string scalar(float v);                      ///< a 0-D float constant
  std::string int_scalar(int64_t v);                ///< a 0-D int64 constant

  /// A node of the graph being built (the main graph, or the body begun last); its one output.
  std::string node(const std::string& op, const std::vector<std::string>& inputs,
                   const std::vector<Attr>& attrs = {});
  /// The same with `outputs` outputs.
  std::vector<std::string> node(const std::string& op, const std::vector<std::string>& inputs,
                                int outputs, const std::vector<Attr>& attrs = {});

  /// A graph input and a graph output (the output is `value` under the name `name`).
  void input(const std::string& name, Type type, const std::vector<Dim>& dims,
             const std::string& doc);
  void output(const std::string& value, const std::string& name, Type type,
              const std::vector<Dim>& dims, const std::string& doc);
  void metadata(const std::string& key, const std::string& value);

  /// A Scan's body: nodes go into it until scan() closes it. Its inputs (states, then the
  /// scanned slices) are begun with body_input; scan() takes its outputs (states, then slices).
  void begin_body();
  std::string body_input(Type type, int64_t rank);
  /// Closes the body begun last with `body_outputs` as its outputs (each float of `ranks[i]`),
  /// and adds Scan(inputs) to the enclosing graph: its outputs.
  std::vector<std::string> scan(const std::vector<std::string>& inputs,
                                const std::vector<std::string>& body_outputs,
                                const std::vector<int64_t>& ranks, const std::vector<Attr>& attrs);

  /// {"inputs": [...], "outputs": [...]}: each graph input and output's name, type ("int64",
  /// "float32"), shape (sizes and axis names) and doc, read off the graph.
  train::Json signature() const;

  /// The model's bytes (the protobuf's own serialisation).
  std::string serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// What add_rnn gives: output [T, B, K*H] (zero past each length), and the final states as
/// torch::nn stacks them, [L*K, B, H] (c_n empty for cells without a memory cell).
struct RNNValues {
  std::string output, h_n, c_n;
};

/// Throws ExportError naming the cell (and `what`, e.g. "[model] cell") unless every layer of
/// `rnn` is a cell add_rnn writes.
void check_exportable(RNNImpl& rnn, const std::string& what);

/// The recurrent stack in eval mode (no dropout) over x [T, B, D] (float, time-major) with
/// lengths [B] int64 (every one >= 1). h0 and c0, when given, are [L*K, B, H] initial states.
RNNValues add_rnn(Graph& g, RNNImpl& rnn, const std::string& x, const std::string& lengths,
                  const std::string& h0 = "", const std::string& c0 = "");

/// [T, B, 1] bool: step t is a real step of sequence b (t < lengths[b]), for x [T, B, ...].
std::string step_mask(Graph& g, const std::string& x, const std::string& lengths);

/// Where the JSON beside a model at `path` goes: NAME.onnx -> NAME.json, any other PATH ->
/// PATH.json.
std::string sidecar_path(const std::string& path);

/// The metadata's "format": what a reader checks before trusting the keys.
constexpr const char* kFormat = "rnnkit-onnx 1";

/// The metadata: "format", the app's `meta`, and the graph's signature(). Every top-level key
/// goes into the model's metadata_props (a string as it is, anything else as JSON); then writes the
/// model to `path` and `meta` to sidecar_path(path), each through a temp file and a rename. When
/// either fails, neither is left behind (an earlier file at either path stays) and an ExportError
/// names the path and the reason.
void save(Graph& model, const train::Json& meta, const std::string& path);

/// The `export` command of an app: --checkpoint, --output and the model options (threads,
/// --trust-checkpoint-plugins); `run(checkpoint, output)` loads and exports. Prints what it wrote.
int export_command(const std::string& program, int argc, char** argv,
                   const std::function<void(const std::string&, const std::string&)>& run);

/// The tokens of a vocabulary, in id order.
std::vector<std::string> tokens_of(const data::Vocab& vocab);

}  // namespace rnnkit::onnx_export
