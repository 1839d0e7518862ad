#pragma once
// rnnkit::Cloneable<Derived>: torch::nn::Cloneable's deep copy for a module that also derives from
// an interface holding torch::nn::Module (CellImplBase, AttentionImplBase). Both bases must share
// one Module, so both inherit it virtually; Debian's LibTorch 1.13 patches torch::nn::Cloneable
// to do so, pytorch.org's 2.x do not (two Module subobjects: every member lookup is ambiguous).
// This is the same deep copy through Module's public API alone (torch's Cloneable clears private
// members that only it may touch): a new Derived built from the original's `options` (its
// constructor calls reset()), then every parameter and buffer copied from the original,
// recursively and by name, onto `device` when one is given, and each submodule's training flag.
// So it is for modules whose state is their options and their tensors, as every rnnkit cell and
// attention is.
#include <memory>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace rnnkit {

template <typename Derived>
class Cloneable : public virtual torch::nn::Module {
 public:
  using torch::nn::Module::Module;

  /// Builds the parameters, buffers and submodules from the options (as torch's Cloneable).
  virtual void reset() = 0;

  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<torch::Device>& device = c10::nullopt) const override {
    torch::NoGradGuard no_grad;
    const auto& self = static_cast<const Derived&>(*this);
    auto copy = std::make_shared<Derived>(self.options);
    auto copy_tensors = [&](torch::OrderedDict<std::string, torch::Tensor> from,
                            torch::OrderedDict<std::string, torch::Tensor> to, const char* what) {
      TORCH_CHECK(from.size() == to.size(), self.name(), "::clone: the copy has ", to.size(), " ",
                  what, " after reset(), the original ", from.size(),
                  " (are they registered in reset(), not in the constructor?)");
      for (const auto& item : from) {
        const auto& t = item.value();
        auto* target = to.find(item.key());
        TORCH_CHECK(target != nullptr, self.name(), "::clone: reset() made no ", what, " named ",
                    item.key());
        target->set_data(device && t.device() != *device ? t.to(*device) : t.clone());
      }
    };
    copy_tensors(self.named_parameters(), copy->named_parameters(), "parameters");
    copy_tensors(self.named_buffers(), copy->named_buffers(), "buffers");
    const auto modes = self.named_modules();
    for (const auto& item : copy->named_modules()) {
      if (const auto* original = modes.find(item.key()))
        item.value()->train((*original)->is_training());
    }
    return copy;
  }

 private:
  /// A parent's clone() (torch's Cloneable) clones its children through this.
  void clone_(torch::nn::Module& other, const c10::optional<torch::Device>& device) final {
    auto clone = std::dynamic_pointer_cast<Derived>(other.clone(device));
    TORCH_CHECK(clone != nullptr,
                "clone: a submodule of another type than the one it is cloned into");
    static_cast<Derived&>(*this) = *clone;
  }
};

}  // namespace rnnkit
