// The C++ side of tests/python/test_rnnkit.py's comparison: reads what the test saved with
// torch.save (cell, sizes, the weights, x, lengths and r), runs rnnkit::RNN's forward and the
// backward of sum(output * r) in this process, through the C++ API alone, and writes the output,
// the final activations and every gradient with torch::pickle_save, which torch.load reads.
// usage: rnnkit_python_reference IN.pt OUT.pt
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <rnnkit/rnn.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: rnnkit_python_reference IN.pt OUT.pt\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  const auto d = torch::pickle_load(bytes).toGenericDict();
  auto get = [&](const char* key) { return d.at(key); };
  rnnkit::RNN rnn(rnnkit::RNNOptions(get("cell").toStringRef(), get("input_size").toInt(),
                                     get("hidden_size").toInt())
                      .num_layers(get("num_layers").toInt())
                      .bidirectional(get("bidirectional").toBool()));
  rnn->to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    auto params = rnn->named_parameters();
    for (const auto& kv : get("state").toGenericDict()) {
      params[kv.key().toStringRef()].copy_(kv.value().toTensor());
    }
  }
  const auto x = get("x").toTensor().clone().requires_grad_(true);
  const auto out = rnn->forward(x, get("lengths").toTensor());
  (out.output * get("r").toTensor()).sum().backward();
  c10::Dict<std::string, torch::Tensor> result;
  result.insert("output", out.output.detach());
  result.insert("a_n", out.a_n().detach());
  result.insert("x.grad", x.grad());
  for (const auto& kv : rnn->named_parameters())
    result.insert("grad." + kv.key(), kv.value().grad());
  const auto saved = torch::pickle_save(c10::IValue(result));
  std::ofstream(argv[2], std::ios::binary)
      .write(saved.data(), static_cast<std::streamsize>(saved.size()));
  return 0;
}
