// synthetic: binary logistic regression with N parameters, for communication studies at realistic
// model sizes (up to 10^8 parameters and beyond; N < 2^32).
//
// Model. A sample is a latent vector u in R^P (make_synthetic_data). A fixed pseudo-random feature map
// expands it to N features, x_j = v_j * u_(j mod P) / sqrt(M), M = ceil(N / P), with per-coordinate
// scales v_j uniform in [-sqrt(3), sqrt(3)) (E[v^2] = 1) drawn from a hash of (feature seed, j). The
// logit is z = w . x with w the N parameters; the loss is the binary cross-entropy of z, computed as
// the softmax cross-entropy of the two logits (0, z), so evaluate() reports it like the other models.
//
// Cost. Because x is built from only P latent values, w . x = u . theta with
//   theta_p = sum_{j mod P = p} v_j w_j / sqrt(M),
// and the gradient of the mean loss is dense, d/dw_j = v_j h_(j mod P) / sqrt(M) with
// h = mean_i (sigmoid(z_i) - y_i) u_i. A step is one pass over w (fold into theta), O(B * P) work, and
// one pass writing the gradient: O(N + B * P) time, no memory of size N beyond the caller's params
// and grad. The v_j are recomputed by the hash in each pass instead of being stored (400 MB at 10^8).
// A gradient step of size eta on w moves theta by eta * h * mean(v^2) ~ eta * h, so learning rates
// behave as for a P-dimensional logistic regression whatever N is.
//
// Tensor: "weight" [N]. Initialisation: zeros (the problem is convex; the loss starts at log 2).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "models.hpp"
#include "ops.hpp"
#include "sparcol/core/types.hpp"

namespace sparcol::train::detail {

namespace {

// The splitmix64 finaliser (Steele, Lea, Flood 2014) of key + j * golden ratio: a cheap, well-mixed
// function of j. Its top 24 bits make v_j, uniform in [-sqrt(3), sqrt(3)).
inline float feature_scale(std::uint64_t key, std::uint64_t j) {
  std::uint64_t z = key + j * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  constexpr float kSqrt3 = 1.7320508075688772f;
  return kSqrt3 * (static_cast<float>(z >> 40) * 0x1.0p-23f - 1.0f);
}

class Synthetic final : public Model {
 public:
  explicit Synthetic(const ModelOptions& o)
      : Model(o.input, o.num_classes), n_(o.synthetic_params), key_(o.synthetic_feature_seed) {
    require(n_ >= 1 && n_ <= kMaxElements, "synthetic",
            "the parameter count must be in [1, 2^32 - 1], got " + std::to_string(n_));
    require(num_classes_ == 2, "synthetic", "num_classes must be 2 (binary logistic regression)");
    p_ = input_.size();
    const std::size_t m = (n_ + p_ - 1) / p_;
    inv_sqrt_m_ = 1.0 / std::sqrt(static_cast<double>(m));
    add_tensor("weight", {n_});
  }

  std::string name() const override { return "synthetic"; }

  void init(std::span<float> params, std::uint64_t /*seed: the initial point is zero*/) override {
    require(params.size() == num_params(), "synthetic", "init: parameter vector of the wrong size");
    std::fill(params.begin(), params.end(), 0.0f);
  }

  double forward_backward(std::span<const float> params, const BatchView& batch,
                          std::span<float> grad) override {
    check_call(params, batch, grad.data(), grad.size());
    fold(params.data());
    const int n = static_cast<int>(batch.size);
    logits_.resize(2 * batch.size);
    logits_from_theta(batch, logits_.data());
    dlogits_.resize(logits_.size());
    const double loss =
        ops::softmax_cross_entropy(logits_.data(), batch.labels, n, 2, dlogits_.data(), &last_correct_);
    // h = sum_i dloss/dz_i * u_i (dlogits already carries the 1/B of the mean), scaled by 1/sqrt(M).
    std::vector<double> h(p_, 0.0);
    for (int i = 0; i < n; ++i) {
      const double r = dlogits_[2 * static_cast<std::size_t>(i) + 1];
      const float* u = batch.images + static_cast<std::size_t>(i) * p_;
      for (std::size_t k = 0; k < p_; ++k) h[k] += r * u[k];
    }
    hf_.resize(p_);
    for (std::size_t k = 0; k < p_; ++k) hf_[k] = static_cast<float>(h[k] * inv_sqrt_m_);
    float* g = grad.data();
    for (std::size_t base = 0; base < n_; base += p_) {
      const std::size_t len = std::min(p_, n_ - base);
      for (std::size_t k = 0; k < len; ++k) g[base + k] = feature_scale(key_, base + k) * hf_[k];
    }
    return loss;
  }

  // Folds once for the whole data set rather than once per batch (a fold is a pass over N).
  EvalResult evaluate(std::span<const float> params, const Dataset& data, std::size_t batch_size) override {
    check_dataset(data);
    require(batch_size > 0, "synthetic", "evaluation batch size must be positive");
    require(params.size() == num_params(), "synthetic", "evaluate: parameter vector of the wrong size");
    fold(params.data());
    EvalResult result;
    double loss_sum = 0.0;
    std::size_t correct = 0;
    for (std::size_t first = 0; first < data.count; first += batch_size) {
      const std::size_t count = std::min(batch_size, data.count - first);
      const BatchView view = dataset_view(data, first, count);
      check_call(params, view, nullptr, 0);
      logits_.resize(2 * count);
      logits_from_theta(view, logits_.data());
      std::size_t hits = 0;
      loss_sum += ops::softmax_cross_entropy(logits_.data(), view.labels, static_cast<int>(count), 2, nullptr,
                                             &hits) *
                  static_cast<double>(count);
      correct += hits;
    }
    result.count = data.count;
    if (data.count > 0) {
      result.loss = loss_sum / static_cast<double>(data.count);
      result.accuracy = static_cast<double>(correct) / static_cast<double>(data.count);
    }
    return result;
  }

 protected:
  void predict(std::span<const float> params, const BatchView& batch, std::span<float> logits) override {
    fold(params.data());
    logits_from_theta(batch, logits.data());
  }

 private:
  // theta_ <- (1/sqrt(M)) * sum_{j mod P = k} v_j w_j, accumulated in double in index order.
  void fold(const float* w) {
    std::vector<double> acc(p_, 0.0);
    for (std::size_t base = 0; base < n_; base += p_) {
      const std::size_t len = std::min(p_, n_ - base);
      for (std::size_t k = 0; k < len; ++k)
        acc[k] += static_cast<double>(w[base + k]) * feature_scale(key_, base + k);
    }
    theta_.resize(p_);
    for (std::size_t k = 0; k < p_; ++k) theta_[k] = acc[k] * inv_sqrt_m_;
  }

  void logits_from_theta(const BatchView& batch, float* logits) const {
    for (std::size_t i = 0; i < batch.size; ++i) {
      const float* u = batch.images + i * p_;
      double z = 0.0;
      for (std::size_t k = 0; k < p_; ++k) z += theta_[k] * u[k];
      logits[2 * i] = 0.0f;
      logits[2 * i + 1] = static_cast<float>(z);
    }
  }

  std::size_t n_;
  std::uint64_t key_;
  std::size_t p_ = 0;
  double inv_sqrt_m_ = 1.0;
  std::vector<double> theta_;
  std::vector<float> hf_, logits_, dlogits_;
};

}  // namespace

std::unique_ptr<Model> make_synthetic(const ModelOptions& options) {
  require(options.synthetic_params > 0, "synthetic", "the parameter count (--params N) must be given");
  return std::make_unique<Synthetic>(options);
}

}  // namespace sparcol::train::detail
