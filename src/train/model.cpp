// Model base class (layout, argument checks, batched evaluation), the factory and BLAS threading.
#include "sparcol/train/model.hpp"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>

#include "models.hpp"
#include "ops.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"

namespace sparcol::train {

// ---------------------------------------------------------------------------------------------
// BLAS threads
// ---------------------------------------------------------------------------------------------
namespace {
std::atomic<bool> g_blas_threads_set{false};
std::once_flag g_blas_default_once;
}  // namespace

void set_blas_threads(int threads) {
  SPARCOL_CHECK_ARG(threads >= 1, -1,
                    "set_blas_threads: threads must be >= 1, got " + std::to_string(threads));
  g_blas_threads_set = true;
  openblas_set_num_threads(threads);
}

int blas_threads() {
  return openblas_get_num_threads();
}

namespace {
void ensure_blas_default() {
  std::call_once(g_blas_default_once, [] {
    if (!g_blas_threads_set) openblas_set_num_threads(1);
  });
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Base class
// ---------------------------------------------------------------------------------------------
std::size_t Model::add_tensor(std::string name, std::vector<std::size_t> shape) {
  std::size_t size = 1;
  for (std::size_t d : shape) size *= d;
  tensors_.push_back(TensorInfo{std::move(name), num_params_, size, std::move(shape)});
  num_params_ += size;
  return tensors_.back().offset;
}

std::size_t Model::add_buffer(std::string name, std::size_t size) {
  const std::size_t offset = buffers_.size();
  buffer_tensors_.push_back(TensorInfo{std::move(name), offset, size, {size}});
  buffers_.resize(offset + size, 0.0f);
  return offset;
}

void Model::check_call(std::span<const float> params, const BatchView& batch, const float* grad,
                       std::size_t grad_size) const {
  const std::string who = name() + ": ";
  SPARCOL_CHECK_ARG(params.size() == num_params_, -1,
                    who + "parameter vector has " + std::to_string(params.size()) + " elements, expected " +
                        std::to_string(num_params_));
  if (grad != nullptr) {
    SPARCOL_CHECK_ARG(grad_size == num_params_, -1,
                      who + "gradient vector has " + std::to_string(grad_size) + " elements, expected " +
                          std::to_string(num_params_));
  }
  SPARCOL_CHECK_ARG(batch.size > 0 && batch.images != nullptr && batch.labels != nullptr, -1,
                    who + "empty batch");
  SPARCOL_CHECK_ARG(batch.size <= 1u << 24, -1,
                    who + "batch of " + std::to_string(batch.size) + " samples is too large");
  for (std::size_t i = 0; i < batch.size; ++i) {
    SPARCOL_CHECK_ARG(batch.labels[i] >= 0 && batch.labels[i] < num_classes_, -1,
                      who + "label " + std::to_string(batch.labels[i]) + " of batch sample " +
                          std::to_string(i) + " is outside [0, " + std::to_string(num_classes_) + ")");
  }
}

void Model::check_dataset(const Dataset& data) const {
  SPARCOL_CHECK_ARG(data.shape == input_, -1,
                    name() + ": data set samples are " + std::to_string(data.shape.channels) + "x" +
                        std::to_string(data.shape.height) + "x" + std::to_string(data.shape.width) +
                        ", the model expects " + std::to_string(input_.channels) + "x" +
                        std::to_string(input_.height) + "x" + std::to_string(input_.width));
}

// ---------------------------------------------------------------------------------------------
// DropIT (ALGORITHMS.md 10.10)
// ---------------------------------------------------------------------------------------------
void Model::set_dropit(double gamma, DropitLayers layers) {
  SPARCOL_CHECK_ARG(gamma >= 0.0 && gamma < 1.0, -1,
                    name() + ": DropIT gamma must be in [0, 1), got " + std::to_string(gamma));
  SPARCOL_CHECK_ARG(gamma == 0.0 || !layer_caches_.empty(), -1,
                    name() + ": DropIT needs linear or convolution layers; this model has none");
  dropit_gamma_ = gamma;
  dropit_layers_ = layers;
  for (std::size_t id = 0; id < layer_caches_.size(); ++id) layer_caches_[id].dropped = layer_dropped(id);
}

std::size_t Model::add_layer_input(std::string layer) {
  LayerCache c;
  c.layer = std::move(layer);
  layer_caches_.push_back(std::move(c));
  sparse_inputs_.emplace_back();
  return layer_caches_.size() - 1;
}

bool Model::layer_dropped(std::size_t id) const {
  if (dropit_gamma_ <= 0.0) return false;
  if (dropit_layers_ == DropitLayers::kAll) return true;
  return id > 0 && id + 1 < layer_caches_.size();
}

void Model::cache_input(std::size_t id, const float* x, std::size_t numel) {
  LayerCache& c = layer_caches_[id];
  c.numel = numel;
  c.dense_bytes = numel * sizeof(float);
  c.dropped = layer_dropped(id);
  if (!c.dropped) {  // the layer keeps x itself (the model's own activation buffer)
    c.kept = numel;
    c.bytes = c.dense_bytes;
    return;
  }
  SPARCOL_CHECK_ARG(numel <= kMaxElements, -1,
                    name() + ": DropIT: the input of " + c.layer + " has more than 2^32 - 1 elements");
  // k = floor((1 - gamma) * numel), as the authors' int(numel * (1 - gamma)).
  const auto k = static_cast<std::uint64_t>(std::floor((1.0 - dropit_gamma_) * static_cast<double>(numel)));
  SparseInput& s = sparse_inputs_[id];
  selector_.select(std::span<const float>(x, numel), k, s.indices, s.values);
  c.kept = s.indices.size();
  c.bytes = c.kept * (sizeof(float) + sizeof(Index));
}

const float* Model::weight_input(std::size_t id, const float* x) {
  const LayerCache& c = layer_caches_[id];
  if (!c.dropped) return x;
  const SparseInput& s = sparse_inputs_[id];
  rebuilt_.assign(c.numel, 0.0f);
  for (std::size_t i = 0; i < s.indices.size(); ++i) rebuilt_[s.indices[i]] = s.values[i];
  return rebuilt_.data();
}

std::size_t Model::cached_bytes() const {
  std::size_t total = 0;
  for (const LayerCache& c : layer_caches_) total += c.bytes;
  return total;
}

std::size_t Model::cached_dense_bytes() const {
  std::size_t total = 0;
  for (const LayerCache& c : layer_caches_) total += c.dense_bytes;
  return total;
}

EvalResult Model::evaluate(std::span<const float> params, const Dataset& data, std::size_t batch_size) {
  check_dataset(data);
  SPARCOL_CHECK_ARG(batch_size > 0, -1, name() + ": evaluation batch size must be positive");
  EvalResult result;
  std::vector<float> logits;
  double loss_sum = 0.0;
  std::size_t correct = 0;
  for (std::size_t first = 0; first < data.count; first += batch_size) {
    const std::size_t n = std::min(batch_size, data.count - first);
    const BatchView view = dataset_view(data, first, n);
    check_call(params, view, nullptr, 0);
    logits.resize(n * static_cast<std::size_t>(num_classes_));
    predict(params, view, logits);
    std::size_t hits = 0;
    loss_sum += ops::softmax_cross_entropy(logits.data(), view.labels, static_cast<int>(n), num_classes_,
                                           nullptr, &hits) *
                static_cast<double>(n);
    correct += hits;
  }
  result.count = data.count;
  if (data.count > 0) {
    result.loss = loss_sum / static_cast<double>(data.count);
    result.accuracy = static_cast<double>(correct) / static_cast<double>(data.count);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Factory
// ---------------------------------------------------------------------------------------------
NormKind parse_norm_kind(std::string_view name) {
  if (name == "gn" || name == "groupnorm") return NormKind::kGroupNorm;
  if (name == "bn" || name == "batchnorm") return NormKind::kBatchNorm;
  throw Error(ErrorCode::kInvalidArgument, -1,
              "unknown normalisation '" + std::string(name) + "' (expected gn, groupnorm, bn or batchnorm)");
}

DropitLayers parse_dropit_layers(std::string_view name) {
  if (name == "hidden") return DropitLayers::kHidden;
  if (name == "all") return DropitLayers::kAll;
  throw Error(ErrorCode::kInvalidArgument, -1,
              "unknown DropIT layer set '" + std::string(name) + "' (expected hidden or all)");
}

std::vector<std::string> model_names() {
  return {"mlp", "cnn", "resnet20", "synthetic"};
}

std::unique_ptr<Model> make_model(std::string_view name, const ModelOptions& options) {
  ensure_blas_default();
  detail::require(options.input.channels >= 1 && options.input.height >= 1 && options.input.width >= 1,
                  "model", "the input shape must be positive");
  detail::require(options.num_classes >= 2, "model", "num_classes must be >= 2");
  std::unique_ptr<Model> model;
  if (name == "mlp") model = detail::make_mlp(options);
  if (name == "cnn") model = detail::make_cnn(options);
  if (name == "resnet20") model = detail::make_resnet20(options);
  if (name == "synthetic") model = detail::make_synthetic(options);
  if (model) {
    model->set_dropit(options.dropit_gamma, options.dropit_layers);
    return model;
  }
  std::string known;
  for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(ErrorCode::kInvalidArgument, -1,
              "unknown model '" + std::string(name) + "' (expected one of: " + known + ")");
}

namespace detail {

void init_normal(std::span<float> values, std::uint64_t seed, std::uint32_t tensor_id, double stddev) {
  CounterRng rng(seed, kStreamInit, tensor_id);
  for (float& v : values) v = static_cast<float>(stddev * rng.normal());
}

void require(bool cond, const char* model, const std::string& what) {
  SPARCOL_CHECK_ARG(cond, -1, std::string(model) + ": " + what);
}

}  // namespace detail

}  // namespace sparcol::train
