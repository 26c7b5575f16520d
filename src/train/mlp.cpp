// mlp: input (flattened) -> [linear -> relu] per hidden width -> linear -> logits.
//
// Tensors, per layer l = 1..L: "fc<l>.weight" [out, in], "fc<l>.bias" [out].
// Initialisation: He normal (std sqrt(2 / fan_in)) for layers followed by ReLU, LeCun normal
// (std sqrt(1 / fan_in)) for the output layer; biases zero.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "models.hpp"
#include "ops.hpp"

namespace sparcol::train::detail {

namespace {

class Mlp final : public Model {
 public:
  explicit Mlp(const ModelOptions& o) : Model(o.input, o.num_classes) {
    widths_.push_back(static_cast<int>(o.input.size()));
    for (int h : o.mlp_hidden) {
      require(h >= 1, "mlp", "hidden widths must be >= 1");
      widths_.push_back(h);
    }
    widths_.push_back(o.num_classes);
    for (std::size_t l = 0; l + 1 < widths_.size(); ++l) {
      const std::string base = "fc" + std::to_string(l + 1);
      const auto in = static_cast<std::size_t>(widths_[l]), out = static_cast<std::size_t>(widths_[l + 1]);
      weight_.push_back(add_tensor(base + ".weight", {out, in}));
      bias_.push_back(add_tensor(base + ".bias", {out}));
      add_layer_input(base);  // id l
    }
  }

  std::string name() const override { return "mlp"; }

  void init(std::span<float> params, std::uint64_t seed) override {
    require(params.size() == num_params(), "mlp", "init: parameter vector of the wrong size");
    const std::size_t layers = weight_.size();
    for (std::size_t l = 0; l < layers; ++l) {
      const double fan_in = widths_[l];
      const double stddev = std::sqrt((l + 1 < layers ? 2.0 : 1.0) / fan_in);
      const TensorInfo& w = tensors_[2 * l];
      init_normal(params.subspan(w.offset, w.size), seed, static_cast<std::uint32_t>(2 * l), stddev);
      const TensorInfo& b = tensors_[2 * l + 1];
      std::fill_n(params.begin() + static_cast<std::ptrdiff_t>(b.offset), b.size, 0.0f);
    }
  }

  double forward_backward(std::span<const float> params, const BatchView& batch,
                          std::span<float> grad) override {
    check_call(params, batch, grad.data(), grad.size());
    const int n = static_cast<int>(batch.size);
    forward(params.data(), batch.images, n);
    const std::size_t layers = weight_.size();
    for (std::size_t l = 0; l < layers; ++l) {
      cache_input(l, l == 0 ? batch.images : acts_[l - 1].data(), static_cast<std::size_t>(n) * widths_[l]);
    }
    std::vector<float>& dlogits = delta_[0];
    dlogits.resize(static_cast<std::size_t>(n) * num_classes_);
    const double loss = ops::softmax_cross_entropy(acts_[layers - 1].data(), batch.labels, n, num_classes_,
                                                   dlogits.data(), &last_correct_);
    // Walk back: delta_[cur] holds d(loss)/d(output of layer l), post-activation.
    int cur = 0;
    for (std::size_t l = layers; l-- > 0;) {
      const float* in = l == 0 ? batch.images : acts_[l - 1].data();
      float* dx = nullptr;
      if (l > 0) {
        delta_[1 - cur].resize(static_cast<std::size_t>(n) * widths_[l]);
        dx = delta_[1 - cur].data();
      }
      ops::linear_backward(delta_[cur].data(), weight_input(l, in), params.data() + weight_[l], dx,
                           grad.data() + weight_[l], grad.data() + bias_[l], n, widths_[l], widths_[l + 1]);
      if (l > 0) {
        ops::relu_backward(acts_[l - 1].data(), dx, static_cast<std::size_t>(n) * widths_[l]);
        cur = 1 - cur;
      }
    }
    return loss;
  }

 protected:
  void predict(std::span<const float> params, const BatchView& batch, std::span<float> logits) override {
    forward(params.data(), batch.images, static_cast<int>(batch.size));
    const auto& out = acts_.back();
    std::copy(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(logits.size()), logits.begin());
  }

 private:
  // acts_[l]: output of layer l (after ReLU for hidden layers; logits for the last).
  void forward(const float* p, const float* x, int n) {
    const std::size_t layers = weight_.size();
    acts_.resize(layers);
    const float* in = x;
    for (std::size_t l = 0; l < layers; ++l) {
      const std::size_t count = static_cast<std::size_t>(n) * widths_[l + 1];
      acts_[l].resize(count);
      ops::linear_forward(in, p + weight_[l], p + bias_[l], acts_[l].data(), n, widths_[l], widths_[l + 1]);
      if (l + 1 < layers) ops::relu_forward(acts_[l].data(), count);
      in = acts_[l].data();
    }
  }

  std::vector<int> widths_;  // input, hidden..., classes
  std::vector<std::size_t> weight_, bias_;
  std::vector<std::vector<float>> acts_;
  std::vector<float> delta_[2];
};

}  // namespace

std::unique_ptr<Model> make_mlp(const ModelOptions& options) {
  return std::make_unique<Mlp>(options);
}

}  // namespace sparcol::train::detail
