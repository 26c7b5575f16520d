// Models for the native trainer, written natively (forward and backward) on the CPU; GEMMs and
// im2col convolutions go through OpenBLAS (cblas_sgemm). Architectures: docs/models.md.
//
// Parameters are ONE flat float vector owned by the caller; tensors() names its per-tensor views
// (name, offset, size, shape) so an optimizer can compress the vector whole or per tensor. The model
// never keeps a pointer to the parameters between calls. Gradients are written to a caller-owned
// vector of the same size: every element is overwritten (nothing accumulates across calls).
//
// Loss: mean softmax cross-entropy over the batch; the gradient is that of the mean.
//
// Buffers: BatchNorm running statistics are model state but not parameters: they live inside the
// model (buffers(), one flat vector with buffer_tensors() views), are updated by forward_backward in
// training mode and read by evaluate(). The library never communicates them; each rank's buffers
// follow its own data. The trainer's policy (docs/models.md, "BatchNorm buffers"): evaluate with
// the mean over ranks, train on with the local buffers, checkpoint each rank's own.
//
// Determinism: the same (params, batch, buffers, mode) give bitwise the same loss and gradient on
// every call: every reduction runs in a fixed order, and OpenBLAS runs single-threaded (see
// set_blas_threads). Models keep scratch activations, so one Model must not be used from two
// threads at once; threads-as-ranks use one Model each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sparcol/train/data.hpp"

namespace sparcol::train {

struct TensorInfo {
  std::string name;        // e.g. "layer2.0.conv1.weight"
  std::size_t offset = 0;  // in elements, into the flat vector
  std::size_t size = 0;
  std::vector<std::size_t> shape;  // product == size; weights [out, in] or [out, in, kh, kw]
};

struct EvalResult {
  double loss = 0.0;      // mean cross-entropy
  double accuracy = 0.0;  // fraction in [0, 1]
  std::size_t count = 0;  // samples evaluated
};

enum class NormKind { kGroupNorm, kBatchNorm };
// "gn"/"groupnorm" or "bn"/"batchnorm"; anything else throws kInvalidArgument.
NormKind parse_norm_kind(std::string_view name);

struct ModelOptions {
  InputShape input{};  // the data set's sample shape; synthetic: (1, 1, P) with P the latent size
  int num_classes = 10;

  // mlp: hidden layer widths (ReLU after each)
  std::vector<int> mlp_hidden{256, 128};

  // cnn: conv5x5(pad 2) -> relu -> maxpool2 -> conv5x5(pad 2) -> relu -> maxpool2 -> fc -> relu -> fc
  int cnn_channels1 = 16;
  int cnn_channels2 = 32;
  int cnn_hidden = 128;

  // resnet20: stem width w, stages of widths w, 2w, 4w with resnet_blocks basic blocks each
  // (3 blocks: 6*3+2 = 20 layers)
  int resnet_width = 16;
  int resnet_blocks = 3;
  NormKind norm = NormKind::kGroupNorm;
  int norm_groups = 2;       // GroupNorm groups per layer (ALGORITHMS.md 12.1 [P]); must divide widths
  float bn_momentum = 0.1f;  // running <- (1 - m) * running + m * batch (PyTorch convention)
  float norm_eps = 1e-5f;

  // synthetic: number of parameters N (1 .. 2^32 - 1) and the seed of the fixed feature map
  std::size_t synthetic_params = 0;
  std::uint64_t synthetic_feature_seed = 0x5eed;
};

class Model {
 public:
  virtual ~Model() = default;

  virtual std::string name() const = 0;
  std::size_t num_params() const { return num_params_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const InputShape& input_shape() const { return input_; }
  int num_classes() const { return num_classes_; }

  // BatchNorm running statistics (empty for other models).
  std::span<float> buffers() { return buffers_; }
  std::span<const float> buffers() const { return buffers_; }
  const std::vector<TensorInfo>& buffer_tensors() const { return buffer_tensors_; }

  // Writes initial parameters (a pure function of seed: every rank calling it with the same seed
  // gets the same x_0) and resets the buffers. params.size() must equal num_params().
  virtual void init(std::span<float> params, std::uint64_t seed) = 0;

  // Mean cross-entropy over the batch at params; writes its gradient to grad. In training mode
  // BatchNorm normalises with batch statistics and updates the running statistics; otherwise it
  // uses the running statistics and leaves them unchanged. Sizes and labels are checked
  // (kInvalidArgument).
  virtual double forward_backward(std::span<const float> params, const BatchView& batch,
                                  std::span<float> grad) = 0;
  // Samples of the last forward_backward batch whose first maximal logit was the label (the
  // training-mode prediction made on the way to the loss; the trainer's running train accuracy).
  std::size_t last_batch_correct() const { return last_correct_; }

  // Loss and accuracy over the whole data set, batch_size samples at a time, in inference mode
  // (BatchNorm uses running statistics) whatever set_training says; no gradient, buffers unchanged.
  virtual EvalResult evaluate(std::span<const float> params, const Dataset& data,
                              std::size_t batch_size = 128);

  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }

 protected:
  Model(const InputShape& input, int num_classes) : input_(input), num_classes_(num_classes) {}

  // Appends a tensor to the parameter layout; returns its offset.
  std::size_t add_tensor(std::string name, std::vector<std::size_t> shape);
  std::size_t add_buffer(std::string name, std::size_t size);

  // Inference-mode logits [batch.size][num_classes] (used by evaluate).
  virtual void predict(std::span<const float> params, const BatchView& batch, std::span<float> logits) = 0;

  // Throws unless params/grad have num_params() elements and the batch is non-empty with labels in
  // range; rank-free (-1) kInvalidArgument errors.
  void check_call(std::span<const float> params, const BatchView& batch, const float* grad,
                  std::size_t grad_size) const;
  void check_dataset(const Dataset& data) const;

  InputShape input_;
  int num_classes_;
  std::size_t num_params_ = 0;
  std::vector<TensorInfo> tensors_;
  std::vector<float> buffers_;
  std::vector<TensorInfo> buffer_tensors_;
  bool training_ = true;
  std::size_t last_correct_ = 0;  // set by every forward_backward
};

// "mlp", "cnn", "resnet20", "synthetic"; anything else throws kInvalidArgument listing these.
// Invalid options (sizes that do not fit the input, groups not dividing widths, synthetic without
// a parameter count) throw kInvalidArgument naming the option.
std::unique_ptr<Model> make_model(std::string_view name, const ModelOptions& options);
std::vector<std::string> model_names();

// The same model with its forward and backward on the current CUDA device (device::set_device
// first): "mlp" only so far (docs/gpu.md, "The trainer on the GPU"); the same tensors and x_0 as
// make_model's, the parameters and gradients still host vectors. Error(kCuda) without a GPU or in a
// build without CUDA; Error(kInvalidArgument) for a model that has no GPU path yet.
std::unique_ptr<Model> make_gpu_model(std::string_view name, const ModelOptions& options);

// OpenBLAS threads for this process. make_model sets 1 unless set_blas_threads was called first:
// ranks share the cores, and one thread keeps every GEMM's summation order fixed.
void set_blas_threads(int threads);
int blas_threads();

}  // namespace sparcol::train
