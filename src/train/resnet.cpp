// resnet20: the CIFAR ResNet of He et al. (2016, sec. 4.2) with n = resnet_blocks basic blocks per
// stage (6n + 2 layers; n = 3 gives ResNet-20), adapted to 1x28x28 inputs:
//
//   stem:   conv3x3(C -> w) -> norm -> relu                                    28x28
//   stage1: n blocks, w channels                                               28x28
//   stage2: n blocks, 2w channels, the first with stride 2                     14x14
//   stage3: n blocks, 4w channels, the first with stride 2                      7x7
//   head:   global average pool -> fc(4w -> classes)
//   block:  conv3x3(stride s) -> norm -> relu -> conv3x3 -> norm -> (+ shortcut) -> relu
//
// Shortcuts are the paper's "option A" for CIFAR (parameter-free: subsample and zero-pad channels,
// ops::shortcut_forward), which keeps the model at the paper's size. Convolutions have no bias (a
// norm follows each). norm: GroupNorm with norm_groups groups (ALGORITHMS.md 12.1 [P]: 2) or
// BatchNorm with running statistics in the model's buffers.
//
// Tensors, in order: conv1.weight, norm1.weight, norm1.bias, then per block
// layer<s>.<i>.{conv1.weight, norm1.weight, norm1.bias, conv2.weight, norm2.weight, norm2.bias},
// then fc.weight, fc.bias. Buffers (BatchNorm only): <norm>.running_mean, <norm>.running_var.
// Initialisation: He normal (fan_in) for convolutions, LeCun normal for fc, norm weight 1 and bias 0,
// fc bias 0; running mean 0 and variance 1.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "models.hpp"
#include "ops.hpp"

namespace sparcol::train::detail {

namespace {

struct Norm {
  int c = 0;
  std::size_t gamma = 0, beta = 0;                // parameter offsets
  std::size_t running_mean = 0, running_var = 0;  // buffer offsets (BatchNorm)
  std::vector<float> mean, rstd;                  // statistics of the last forward
  bool batch_stats = false;                       // BatchNorm: the last forward used batch statistics
};

// conv3x3 (pad 1) followed by a norm; keeps its input pointer and both outputs for backward.
struct ConvNorm {
  int c_in = 0, c_out = 0, stride = 1, h = 0, w = 0;  // h, w: input spatial size
  std::size_t weight = 0;
  std::size_t layer_id = 0;  // DropIT cache (Model::add_layer_input)
  Norm norm;
  const float* input = nullptr;
  std::vector<float> conv_out, norm_out;
  ops::ConvGeom geom(int n) const { return {c_in, c_out, 3, stride, 1, n, h, w}; }
  int out_hw() const { return ((h - 1) / stride + 1) * ((w - 1) / stride + 1); }
};

struct Block {
  ConvNorm a, b;
  const float* input = nullptr;  // block input (previous block's output)
};

class ResNet final : public Model {
 public:
  explicit ResNet(const ModelOptions& o)
      : Model(o.input, o.num_classes),
        norm_kind_(o.norm),
        groups_(o.norm_groups),
        eps_(o.norm_eps),
        momentum_(o.bn_momentum) {
    const int w = o.resnet_width;
    require(w >= 1 && o.resnet_blocks >= 1, "resnet20", "resnet_width and resnet_blocks must be >= 1");
    require(input_.height % 4 == 0 && input_.width % 4 == 0, "resnet20",
            "input height and width must be multiples of 4 (two stride-2 stages)");
    if (norm_kind_ == NormKind::kGroupNorm) {
      require(groups_ >= 1 && w % groups_ == 0, "resnet20",
              "norm_groups must divide the stage widths (" + std::to_string(w) + ", " +
                  std::to_string(2 * w) + ", " + std::to_string(4 * w) + "), got " + std::to_string(groups_));
    } else {
      require(o.bn_momentum >= 0.0f && o.bn_momentum <= 1.0f, "resnet20", "bn_momentum must be in [0, 1]");
    }
    require(o.norm_eps > 0.0f, "resnet20", "norm_eps must be positive");

    add_conv_norm(stem_, input_.channels, w, 1, input_.height, input_.width, "conv1", "norm1");
    int c = w, h = input_.height, wd = input_.width;
    for (int s = 0; s < 3; ++s) {
      const int c_out = w << s;
      for (int i = 0; i < o.resnet_blocks; ++i) {
        const int stride = (s > 0 && i == 0) ? 2 : 1;
        const std::string base = "layer" + std::to_string(s + 1) + "." + std::to_string(i) + ".";
        Block blk;
        add_conv_norm(blk.a, c, c_out, stride, h, wd, base + "conv1", base + "norm1");
        h = (h - 1) / stride + 1;
        wd = (wd - 1) / stride + 1;
        add_conv_norm(blk.b, c_out, c_out, 1, h, wd, base + "conv2", base + "norm2");
        blocks_.push_back(std::move(blk));
        c = c_out;
      }
    }
    final_c_ = c;
    final_hw_ = h * wd;
    fc_w_ = add_tensor("fc.weight", {static_cast<std::size_t>(num_classes_), static_cast<std::size_t>(c)});
    fc_b_ = add_tensor("fc.bias", {static_cast<std::size_t>(num_classes_)});
    fc_id_ = add_layer_input("fc");
  }

  std::string name() const override { return "resnet20"; }

  void init(std::span<float> params, std::uint64_t seed) override {
    require(params.size() == num_params(), "resnet20", "init: parameter vector of the wrong size");
    for (std::size_t t = 0; t < tensors_.size(); ++t) {
      const TensorInfo& info = tensors_[t];
      std::span<float> values = params.subspan(info.offset, info.size);
      if (info.shape.size() == 4) {  // convolution [out, in, 3, 3]
        const double fan_in = static_cast<double>(info.shape[1] * info.shape[2] * info.shape[3]);
        init_normal(values, seed, static_cast<std::uint32_t>(t), std::sqrt(2.0 / fan_in));
      } else if (info.shape.size() == 2) {  // fc [classes, c]
        init_normal(values, seed, static_cast<std::uint32_t>(t),
                    std::sqrt(1.0 / static_cast<double>(info.shape[1])));
      } else {  // 1-D: norm weight (gamma) 1, norm bias (beta) and fc bias 0
        std::fill(values.begin(), values.end(), info.name.ends_with(".weight") ? 1.0f : 0.0f);
      }
    }
    for (const TensorInfo& b : buffer_tensors_) {
      const bool is_var = b.name.ends_with(".running_var");
      std::fill_n(buffers_.begin() + static_cast<std::ptrdiff_t>(b.offset), b.size, is_var ? 1.0f : 0.0f);
    }
  }

  double forward_backward(std::span<const float> params, const BatchView& batch,
                          std::span<float> grad) override {
    check_call(params, batch, grad.data(), grad.size());
    const int n = static_cast<int>(batch.size);
    const float* p = params.data();
    float* g = grad.data();
    forward(p, batch.images, n, training_);
    const auto input_count = [n](const ConvNorm& u) {
      return static_cast<std::size_t>(u.c_in) * static_cast<std::size_t>(n) * u.h * u.w;
    };
    cache_input(stem_.layer_id, stem_.input, input_count(stem_));
    for (const Block& blk : blocks_) {
      cache_input(blk.a.layer_id, blk.a.input, input_count(blk.a));
      cache_input(blk.b.layer_id, blk.b.input, input_count(blk.b));
    }
    cache_input(fc_id_, pooled_.data(), pooled_.size());

    dlogits_.resize(logits_.size());
    const double loss = ops::softmax_cross_entropy(logits_.data(), batch.labels, n, num_classes_,
                                                   dlogits_.data(), &last_correct_);
    dpooled_.resize(pooled_.size());
    ops::linear_backward(dlogits_.data(), weight_input(fc_id_, pooled_.data()), p + fc_w_, dpooled_.data(),
                         g + fc_w_, g + fc_b_, n, final_c_, num_classes_);

    // Three scratch gradients of the largest activation size; dA always holds d(loss)/d(current
    // block output), dC receives d(loss)/d(block input) and then becomes the next dA.
    const std::size_t largest = stem_.norm_out.size();
    for (auto* buf : {&grad_a_, &grad_b_, &grad_c_}) buf->resize(largest);
    float* dA = grad_a_.data();
    float* dB = grad_b_.data();
    float* dC = grad_c_.data();
    ops::avgpool_backward(dpooled_.data(), dA, final_c_, n, final_hw_);

    for (std::size_t i = blocks_.size(); i-- > 0;) {
      Block& blk = blocks_[i];
      const std::size_t out_count = blk.b.norm_out.size();
      ops::relu_backward(blk.b.norm_out.data(), dA, out_count);  // dA: d/d(residual sum)
      conv_norm_backward(blk.b, p, g, dA, dB, dC, n);            // dC: d/d(a.norm_out)
      ops::relu_backward(blk.a.norm_out.data(), dC, blk.a.norm_out.size());
      conv_norm_backward(blk.a, p, g, dC, dB, dC, n);  // dC: d/d(block input), conv path
      if (blk.a.stride == 1 && blk.a.c_in == blk.a.c_out) {
        ops::add_inplace(dC, dA, out_count);
      } else {
        ops::shortcut_backward_accumulate(dA, dC, blk.a.c_in, blk.a.c_out, n, blk.a.h, blk.a.w, blk.a.stride);
      }
      std::swap(dA, dC);
    }
    ops::relu_backward(stem_.norm_out.data(), dA, stem_.norm_out.size());
    conv_norm_backward(stem_, p, g, dA, dB, nullptr, n);
    return loss;
  }

 protected:
  void predict(std::span<const float> params, const BatchView& batch, std::span<float> logits) override {
    forward(params.data(), batch.images, static_cast<int>(batch.size), false);
    std::copy_n(logits_.begin(), logits.size(), logits.begin());
  }

 private:
  void add_conv_norm(ConvNorm& u, int c_in, int c_out, int stride, int h, int w, const std::string& conv,
                     const std::string& norm) {
    u.c_in = c_in;
    u.c_out = c_out;
    u.stride = stride;
    u.h = h;
    u.w = w;
    const auto co = static_cast<std::size_t>(c_out);
    u.weight = add_tensor(conv + ".weight", {co, static_cast<std::size_t>(c_in), 3, 3});
    u.layer_id = add_layer_input(conv);
    u.norm.c = c_out;
    u.norm.gamma = add_tensor(norm + ".weight", {co});
    u.norm.beta = add_tensor(norm + ".bias", {co});
    if (norm_kind_ == NormKind::kBatchNorm) {
      u.norm.running_mean = add_buffer(norm + ".running_mean", co);
      u.norm.running_var = add_buffer(norm + ".running_var", co);
    }
  }

  void conv_norm_forward(ConvNorm& u, const float* p, const float* x, int n, bool batch_stats) {
    const ops::ConvGeom geom = u.geom(n);
    u.input = x;
    u.conv_out.resize(geom.out_size());
    u.norm_out.resize(geom.out_size());
    col_.resize(std::max(col_.size(), geom.col_rows() * geom.col_cols()));
    ops::conv_forward(x, p + u.weight, nullptr, u.conv_out.data(), geom, col_.data());
    Norm& nm = u.norm;
    const int hw = u.out_hw();
    if (norm_kind_ == NormKind::kGroupNorm) {
      nm.mean.resize(static_cast<std::size_t>(n) * groups_);
      nm.rstd.resize(nm.mean.size());
      ops::groupnorm_forward(u.conv_out.data(), p + nm.gamma, p + nm.beta, u.norm_out.data(), nm.mean.data(),
                             nm.rstd.data(), nm.c, n, hw, groups_, eps_);
      return;
    }
    nm.mean.resize(static_cast<std::size_t>(nm.c));
    nm.rstd.resize(nm.mean.size());
    nm.batch_stats = batch_stats;
    const std::size_t nhw = static_cast<std::size_t>(n) * hw;
    if (batch_stats) {
      ops::batchnorm_forward_train(u.conv_out.data(), p + nm.gamma, p + nm.beta, u.norm_out.data(),
                                   nm.mean.data(), nm.rstd.data(), buffers_.data() + nm.running_mean,
                                   buffers_.data() + nm.running_var, nm.c, nhw, eps_, momentum_);
    } else {
      ops::batchnorm_forward_eval(u.conv_out.data(), p + nm.gamma, p + nm.beta, u.norm_out.data(),
                                  nm.mean.data(), nm.rstd.data(), buffers_.data() + nm.running_mean,
                                  buffers_.data() + nm.running_var, nm.c, nhw, eps_);
    }
  }

  // dy: d/d(norm_out) (before any ReLU); scratch receives d/d(conv_out); dx (or null) receives
  // d/d(input). dx may alias dy, which the norm backward consumes before the convolution writes dx;
  // neither may alias scratch.
  void conv_norm_backward(ConvNorm& u, const float* p, float* g, const float* dy, float* scratch, float* dx,
                          int n) {
    const Norm& nm = u.norm;
    const int hw = u.out_hw();
    if (norm_kind_ == NormKind::kGroupNorm) {
      ops::groupnorm_backward(dy, u.conv_out.data(), p + nm.gamma, nm.mean.data(), nm.rstd.data(), scratch,
                              g + nm.gamma, g + nm.beta, nm.c, n, hw, groups_);
    } else if (nm.batch_stats) {
      ops::batchnorm_backward_train(dy, u.conv_out.data(), p + nm.gamma, nm.mean.data(), nm.rstd.data(),
                                    scratch, g + nm.gamma, g + nm.beta, nm.c,
                                    static_cast<std::size_t>(n) * hw);
    } else {
      ops::batchnorm_backward_eval(dy, u.conv_out.data(), p + nm.gamma, nm.mean.data(), nm.rstd.data(),
                                   scratch, g + nm.gamma, g + nm.beta, nm.c,
                                   static_cast<std::size_t>(n) * hw);
    }
    ops::conv_backward(scratch, weight_input(u.layer_id, u.input), p + u.weight, dx, g + u.weight, nullptr,
                       u.geom(n), col_.data());
  }

  void forward(const float* p, const float* x, int n, bool batch_stats) {
    const float* xin = x;  // the batch arrives NCHW; with one channel that is already CNHW
    if (input_.channels > 1) {
      x_cnhw_.resize(static_cast<std::size_t>(n) * input_.size());
      ops::nchw_to_cnhw(x, x_cnhw_.data(), n, input_.channels, input_.height * input_.width);
      xin = x_cnhw_.data();
    }
    conv_norm_forward(stem_, p, xin, n, batch_stats);
    ops::relu_forward(stem_.norm_out.data(), stem_.norm_out.size());
    const float* cur = stem_.norm_out.data();
    for (Block& blk : blocks_) {
      blk.input = cur;
      conv_norm_forward(blk.a, p, cur, n, batch_stats);
      ops::relu_forward(blk.a.norm_out.data(), blk.a.norm_out.size());
      conv_norm_forward(blk.b, p, blk.a.norm_out.data(), n, batch_stats);
      float* out = blk.b.norm_out.data();  // the residual sum and block output are built in place
      const std::size_t count = blk.b.norm_out.size();
      if (blk.a.stride == 1 && blk.a.c_in == blk.a.c_out) {
        ops::add_inplace(out, cur, count);
      } else {
        shortcut_.resize(count);
        ops::shortcut_forward(cur, shortcut_.data(), blk.a.c_in, blk.a.c_out, n, blk.a.h, blk.a.w,
                              blk.a.stride);
        ops::add_inplace(out, shortcut_.data(), count);
      }
      ops::relu_forward(out, count);
      cur = out;
    }
    pooled_.resize(static_cast<std::size_t>(n) * final_c_);
    ops::avgpool_forward(cur, pooled_.data(), final_c_, n, final_hw_);
    logits_.resize(static_cast<std::size_t>(n) * num_classes_);
    ops::linear_forward(pooled_.data(), p + fc_w_, p + fc_b_, logits_.data(), n, final_c_, num_classes_);
  }

  NormKind norm_kind_;
  int groups_;
  float eps_, momentum_;
  ConvNorm stem_;
  std::vector<Block> blocks_;
  int final_c_ = 0, final_hw_ = 0;
  std::size_t fc_w_ = 0, fc_b_ = 0, fc_id_ = 0;
  std::vector<float> x_cnhw_, col_, shortcut_, pooled_, logits_, dlogits_, dpooled_, grad_a_, grad_b_,
      grad_c_;
};

}  // namespace

std::unique_ptr<Model> make_resnet20(const ModelOptions& options) {
  return std::make_unique<ResNet>(options);
}

}  // namespace sparcol::train::detail
