// cnn (LeNet-style, "same" padding so 28x28 halves cleanly twice):
//   conv5x5(C -> c1, pad 2) -> relu -> maxpool2 -> conv5x5(c1 -> c2, pad 2) -> relu -> maxpool2
//   -> flatten (c2 * H/4 * W/4) -> fc(hidden) -> relu -> fc(classes)
// Activations are CNHW (ops.hpp); the flatten step converts to [N][features] in NCHW order, so fc1's
// weight columns follow PyTorch's flatten order (c, h, w).
//
// Tensors: conv1.weight [c1, C, 5, 5], conv1.bias, conv2.weight [c2, c1, 5, 5], conv2.bias,
// fc1.weight [hidden, c2*H/4*W/4], fc1.bias, fc2.weight [classes, hidden], fc2.bias.
// Initialisation: He normal for conv1, conv2, fc1 (followed by ReLU), LeCun normal for fc2; biases 0.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "models.hpp"
#include "ops.hpp"

namespace sparcol::train::detail {

namespace {

constexpr int kKernel = 5;
constexpr int kPad = 2;
// Layer ids of the DropIT caches (Model::add_layer_input), in forward order.
constexpr std::size_t kConv1 = 0, kConv2 = 1, kFc1 = 2, kFc2 = 3;

class Cnn final : public Model {
 public:
  explicit Cnn(const ModelOptions& o)
      : Model(o.input, o.num_classes), c1_(o.cnn_channels1), c2_(o.cnn_channels2), hidden_(o.cnn_hidden) {
    require(c1_ >= 1 && c2_ >= 1 && hidden_ >= 1, "cnn", "channel counts and the hidden width must be >= 1");
    require(input_.height % 4 == 0 && input_.width % 4 == 0, "cnn",
            "input height and width must be multiples of 4 (two 2x2 poolings)");
    const auto C = static_cast<std::size_t>(input_.channels), k = static_cast<std::size_t>(kKernel);
    const auto c1 = static_cast<std::size_t>(c1_), c2 = static_cast<std::size_t>(c2_);
    features_ = c2_ * (input_.height / 4) * (input_.width / 4);
    conv1_w_ = add_tensor("conv1.weight", {c1, C, k, k});
    conv1_b_ = add_tensor("conv1.bias", {c1});
    conv2_w_ = add_tensor("conv2.weight", {c2, c1, k, k});
    conv2_b_ = add_tensor("conv2.bias", {c2});
    fc1_w_ =
        add_tensor("fc1.weight", {static_cast<std::size_t>(hidden_), static_cast<std::size_t>(features_)});
    fc1_b_ = add_tensor("fc1.bias", {static_cast<std::size_t>(hidden_)});
    fc2_w_ =
        add_tensor("fc2.weight", {static_cast<std::size_t>(num_classes_), static_cast<std::size_t>(hidden_)});
    fc2_b_ = add_tensor("fc2.bias", {static_cast<std::size_t>(num_classes_)});
    for (const char* layer : {"conv1", "conv2", "fc1", "fc2"}) add_layer_input(layer);  // ids 0..3
  }

  std::string name() const override { return "cnn"; }

  void init(std::span<float> params, std::uint64_t seed) override {
    require(params.size() == num_params(), "cnn", "init: parameter vector of the wrong size");
    const double fan_in[4] = {static_cast<double>(input_.channels) * kKernel * kKernel,
                              static_cast<double>(c1_) * kKernel * kKernel, static_cast<double>(features_),
                              static_cast<double>(hidden_)};
    for (std::uint32_t layer = 0; layer < 4; ++layer) {
      const TensorInfo& w = tensors_[2 * layer];
      const double gain = layer < 3 ? 2.0 : 1.0;
      init_normal(params.subspan(w.offset, w.size), seed, 2 * layer, std::sqrt(gain / fan_in[layer]));
      const TensorInfo& b = tensors_[2 * layer + 1];
      std::fill_n(params.begin() + static_cast<std::ptrdiff_t>(b.offset), b.size, 0.0f);
    }
  }

  double forward_backward(std::span<const float> params, const BatchView& batch,
                          std::span<float> grad) override {
    check_call(params, batch, grad.data(), grad.size());
    const int n = static_cast<int>(batch.size);
    const float* p = params.data();
    float* g = grad.data();
    forward(p, batch.images, n);
    cache_input(kConv1, xin_, static_cast<std::size_t>(n) * input_.size());
    cache_input(kConv2, pool1_.data(), pool1_.size());
    cache_input(kFc1, flat_.data(), flat_.size());
    cache_input(kFc2, hidden_act_.data(), hidden_act_.size());

    // Head: fc2, relu, fc1.
    dlogits_.resize(logits_.size());
    const double loss = ops::softmax_cross_entropy(logits_.data(), batch.labels, n, num_classes_,
                                                   dlogits_.data(), &last_correct_);
    dhidden_.resize(hidden_act_.size());
    ops::linear_backward(dlogits_.data(), weight_input(kFc2, hidden_act_.data()), p + fc2_w_, dhidden_.data(),
                         g + fc2_w_, g + fc2_b_, n, hidden_, num_classes_);
    ops::relu_backward(hidden_act_.data(), dhidden_.data(), dhidden_.size());
    dflat_.resize(flat_.size());
    ops::linear_backward(dhidden_.data(), weight_input(kFc1, flat_.data()), p + fc1_w_, dflat_.data(),
                         g + fc1_w_, g + fc1_b_, n, features_, hidden_);

    // Convolutional part, CNHW.
    const int h2 = input_.height / 2, w2 = input_.width / 2;
    const int h4 = input_.height / 4, w4 = input_.width / 4;
    dpool2_.resize(pool2_.size());
    ops::nchw_to_cnhw(dflat_.data(), dpool2_.data(), n, c2_, h4 * w4);
    dconv2_.resize(conv2_.size());
    ops::maxpool2_backward(dpool2_.data(), arg2_.data(), dconv2_.data(), static_cast<std::size_t>(c2_) * n,
                           h2, w2);
    ops::relu_backward(conv2_.data(), dconv2_.data(), dconv2_.size());
    dpool1_.resize(pool1_.size());
    ops::conv_backward(dconv2_.data(), weight_input(kConv2, pool1_.data()), p + conv2_w_, dpool1_.data(),
                       g + conv2_w_, g + conv2_b_, geom2(n), col_.data());
    dconv1_.resize(conv1_.size());
    ops::maxpool2_backward(dpool1_.data(), arg1_.data(), dconv1_.data(), static_cast<std::size_t>(c1_) * n,
                           input_.height, input_.width);
    ops::relu_backward(conv1_.data(), dconv1_.data(), dconv1_.size());
    ops::conv_backward(dconv1_.data(), weight_input(kConv1, xin_), p + conv1_w_, nullptr, g + conv1_w_,
                       g + conv1_b_, geom1(n), col_.data());
    return loss;
  }

 protected:
  void predict(std::span<const float> params, const BatchView& batch, std::span<float> logits) override {
    forward(params.data(), batch.images, static_cast<int>(batch.size));
    std::copy_n(logits_.begin(), logits.size(), logits.begin());
  }

 private:
  ops::ConvGeom geom1(int n) const {
    return {input_.channels, c1_, kKernel, 1, kPad, n, input_.height, input_.width};
  }
  ops::ConvGeom geom2(int n) const {
    return {c1_, c2_, kKernel, 1, kPad, n, input_.height / 2, input_.width / 2};
  }

  void forward(const float* p, const float* x, int n) {
    // The batch arrives NCHW; with one channel that is already CNHW. xin_ stays valid for backward
    // because the caller's batch outlives the forward_backward call.
    xin_ = x;
    if (input_.channels > 1) {
      x_cnhw_.resize(static_cast<std::size_t>(n) * input_.size());
      ops::nchw_to_cnhw(x, x_cnhw_.data(), n, input_.channels, input_.height * input_.width);
      xin_ = x_cnhw_.data();
    }
    const ops::ConvGeom g1 = geom1(n), g2 = geom2(n);
    col_.resize(std::max(g1.col_rows() * g1.col_cols(), g2.col_rows() * g2.col_cols()));
    const int h2 = input_.height / 2, w2 = input_.width / 2;
    const int h4 = input_.height / 4, w4 = input_.width / 4;

    conv1_.resize(g1.out_size());
    ops::conv_forward(xin_, p + conv1_w_, p + conv1_b_, conv1_.data(), g1, col_.data());
    ops::relu_forward(conv1_.data(), conv1_.size());
    pool1_.resize(conv1_.size() / 4);
    arg1_.resize(pool1_.size());
    ops::maxpool2_forward(conv1_.data(), pool1_.data(), arg1_.data(), static_cast<std::size_t>(c1_) * n,
                          input_.height, input_.width);

    conv2_.resize(g2.out_size());
    ops::conv_forward(pool1_.data(), p + conv2_w_, p + conv2_b_, conv2_.data(), g2, col_.data());
    ops::relu_forward(conv2_.data(), conv2_.size());
    pool2_.resize(conv2_.size() / 4);
    arg2_.resize(pool2_.size());
    ops::maxpool2_forward(conv2_.data(), pool2_.data(), arg2_.data(), static_cast<std::size_t>(c2_) * n, h2,
                          w2);

    flat_.resize(pool2_.size());
    ops::cnhw_to_nchw(pool2_.data(), flat_.data(), c2_, n, h4 * w4);
    hidden_act_.resize(static_cast<std::size_t>(n) * hidden_);
    ops::linear_forward(flat_.data(), p + fc1_w_, p + fc1_b_, hidden_act_.data(), n, features_, hidden_);
    ops::relu_forward(hidden_act_.data(), hidden_act_.size());
    logits_.resize(static_cast<std::size_t>(n) * num_classes_);
    ops::linear_forward(hidden_act_.data(), p + fc2_w_, p + fc2_b_, logits_.data(), n, hidden_, num_classes_);
  }

  int c1_, c2_, hidden_, features_ = 0;
  std::size_t conv1_w_ = 0, conv1_b_ = 0, conv2_w_ = 0, conv2_b_ = 0, fc1_w_ = 0, fc1_b_ = 0, fc2_w_ = 0,
              fc2_b_ = 0;

  // Forward activations (kept for backward) and backward scratch.
  std::vector<float> x_cnhw_, col_, conv1_, pool1_, conv2_, pool2_, flat_, hidden_act_, logits_;
  std::vector<std::uint32_t> arg1_, arg2_;
  std::vector<float> dlogits_, dhidden_, dflat_, dpool2_, dconv2_, dpool1_, dconv1_;
  const float* xin_ = nullptr;  // conv1's input in CNHW (the batch itself or x_cnhw_)
};

}  // namespace

std::unique_ptr<Model> make_cnn(const ModelOptions& options) {
  return std::make_unique<Cnn>(options);
}

}  // namespace sparcol::train::detail
