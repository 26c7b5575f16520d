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

#include "sparcol/compress/topk.hpp"
#include "sparcol/core/types.hpp"
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

// DropIT (ALGORITHMS.md 10.10): which linear and convolution layers cache a sparse input. kHidden:
// all but the first and the last (the authors' exemptions); kAll: every one.
enum class DropitLayers { kHidden, kAll };
// "hidden" or "all"; anything else throws kInvalidArgument.
DropitLayers parse_dropit_layers(std::string_view name);

// What one linear or convolution layer keeps of its input for the backward pass (the weight
// gradient), as of the last forward_backward. Dense: the input itself, numel values. Dropped: the
// k = floor((1 - gamma) * numel) entries of largest magnitude, as (fp32 value, uint32 index).
struct LayerCache {
  std::string layer;            // "fc1", "conv2", "layer2.0.conv1", ...
  bool dropped = false;         // the layer caches a sparse input (DropIT on for it, gamma > 0)
  std::size_t numel = 0;        // elements of the layer input (batch x features or C x N x H x W)
  std::size_t kept = 0;         // elements cached (numel when dense)
  std::size_t bytes = 0;        // bytes cached: numel * 4 dense, kept * (4 + 4) dropped
  std::size_t dense_bytes = 0;  // numel * 4: what the layer would cache without DropIT
};
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

  // DropIT (ALGORITHMS.md 10.10): gamma in [0, 1), 0 = off. In training (forward_backward), the
  // chosen layers cache only the top floor((1 - gamma) * numel) of their input by magnitude and
  // compute the weight gradient from that sparse input; input and bias gradients stay exact.
  // Evaluation never drops.
  double dropit_gamma = 0.0;
  DropitLayers dropit_layers = DropitLayers::kHidden;

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

  // DropIT (ModelOptions::dropit_gamma); make_model applies the options' setting. gamma outside
  // [0, 1) throws kInvalidArgument. Models without linear or convolution layers (synthetic) have
  // no layer caches and refuse gamma > 0.
  void set_dropit(double gamma, DropitLayers layers);
  double dropit_gamma() const { return dropit_gamma_; }
  DropitLayers dropit_layers() const { return dropit_layers_; }
  // One entry per linear and convolution layer, in forward order, as of the last forward_backward
  // (numel 0 before the first). They are all alive together at the end of the forward pass, the
  // peak of a step: cached_bytes() is their sum, cached_dense_bytes() the sum without DropIT.
  const std::vector<LayerCache>& layer_caches() const { return layer_caches_; }
  std::size_t cached_bytes() const;
  std::size_t cached_dense_bytes() const;

 protected:
  Model(const InputShape& input, int num_classes) : input_(input), num_classes_(num_classes) {}

  // Appends a tensor to the parameter layout; returns its offset.
  std::size_t add_tensor(std::string name, std::vector<std::size_t> shape);
  std::size_t add_buffer(std::string name, std::size_t size);

  // DropIT hooks for linear and convolution layers. add_layer_input registers a layer (forward
  // order; the first and the last registered are the "hidden" set's exemptions) and returns its id.
  // cache_input, after the training forward: what layer `id` keeps of its input x (numel values),
  // the exact top-k of |x| (ties to the smaller index) when the layer is dropped. weight_input, in
  // the backward: the input for the layer's weight gradient, x itself when the layer is dense, else
  // the sparse input rebuilt (zeros elsewhere) in a scratch that is valid until the next call.
  std::size_t add_layer_input(std::string layer);
  void cache_input(std::size_t id, const float* x, std::size_t numel);
  const float* weight_input(std::size_t id, const float* x);
  bool layer_dropped(std::size_t id) const;

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

 private:
  struct SparseInput {
    std::vector<Index> indices;
    std::vector<float> values;
  };
  double dropit_gamma_ = 0.0;
  DropitLayers dropit_layers_ = DropitLayers::kHidden;
  std::vector<LayerCache> layer_caches_;
  std::vector<SparseInput> sparse_inputs_;
  std::vector<float> rebuilt_;  // weight_input's scratch
  compress::TopkSelector selector_;
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
