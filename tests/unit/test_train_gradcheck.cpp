// Finite-difference gradient checks for every model (sparcol/train/model.hpp), on small shapes (every
// code path, several directions per tensor) and on the real sizes (fewer directions).
//
// Method. The models compute in float and ReLU/max-pool make the loss only piecewise smooth, so a
// plain central difference is unreliable: along a segment of length 2h the loss can cross several
// kinks whose slope jumps are comparable to the slope itself (small test networks, GroupNorm over few
// values). The check therefore compares the loss change over the segment with the integral of the
// analytic directional derivative along it (fundamental theorem of calculus, which holds for
// continuous piecewise-smooth functions), refining the integration grid until kinks are resolved.
//  * h is chosen per direction so the loss changes by about 3e-4, far above the ~3e-7 rounding noise
//    of a float loss difference, within [1e-4, 3e-3];
//  * directions per tensor: the tensor's own gradient direction (catches wrong scales), a random
//    unit direction (catches wrong components) and the coordinates with the largest |g|;
//  * tolerance: 1% of the integral of |slope| plus 1e-6 * max(1, loss).
// A gradient that is wrong by a factor, a sign, or in any component fails at every grid size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "sparcol/core/rng.hpp"
#include "sparcol/train/model.hpp"

namespace train = sparcol::train;

namespace {

// A fresh seed per run (printed on failure); SPARCOL_TEST_SEED=<n> replays one.
std::uint64_t fresh_seed() {
  if (const char* env = std::getenv("SPARCOL_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) | rd();
}

// Random batch of `n` samples for a model: N(0, 1) inputs, labels uniform.
struct RandomBatch {
  train::Batch batch;
  RandomBatch(const train::InputShape& shape, int classes, std::size_t n, std::uint64_t seed) {
    sparcol::CounterRng rng(seed, sparcol::kStreamUser + 40);
    batch.images.resize(n * shape.size());
    for (float& v : batch.images) v = static_cast<float>(rng.normal());
    batch.labels.resize(n);
    for (auto& l : batch.labels)
      l = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(classes)));
  }
};

class GradChecker {
 public:
  GradChecker(train::Model& model, std::vector<float> params, const train::BatchView& batch,
              std::uint64_t seed)
      : model_(model), params_(std::move(params)), batch_(batch), rng_(seed, sparcol::kStreamUser + 41) {
    grad_.assign(params_.size(), std::numeric_limits<float>::quiet_NaN());
    loss_ = model_.forward_backward(params_, batch_, grad_);
    scratch_.resize(params_.size());
  }

  // Every gradient element must have been written (the NaN fill is gone) and be finite.
  void expect_finite() const {
    for (std::size_t i = 0; i < grad_.size(); ++i)
      ASSERT_TRUE(std::isfinite(grad_[i])) << "grad[" << i << "]";
    EXPECT_TRUE(std::isfinite(loss_));
  }

  // Checks the loss change along the segment p + t v, t in [-h, h], on [offset, offset + v.size()),
  // against the integral of the analytic directional derivative over the segment (trapezoid rule
  // on n sub-intervals, n = 2, 8, 32, 128, 512 until it agrees). ReLU networks are continuous and piecewise
  // smooth, so the two agree for a correct gradient once n resolves the kinks on the segment,
  // while a wrong gradient disagrees at every n.
  void check(std::size_t offset, const std::vector<double>& v, const std::string& label) {
    double gv = 0.0;
    for (std::size_t i = 0; i < v.size(); ++i) gv += static_cast<double>(grad_[offset + i]) * v[i];
    const double h = std::clamp(3e-4 / std::max(std::abs(gv), 1e-12), 1e-4, 3e-3);
    const std::vector<float> saved(params_.begin() + static_cast<std::ptrdiff_t>(offset),
                                   params_.begin() + static_cast<std::ptrdiff_t>(offset + v.size()));
    double err = 0.0, tol = 0.0, measured = 0.0, integral = 0.0;
    for (int n : {2, 8, 32, 128, 512}) {
      std::vector<double> loss(static_cast<std::size_t>(n) + 1), slope(loss.size());
      for (int k = 0; k <= n; ++k) {
        const double t = -h + 2.0 * h * k / n;
        for (std::size_t i = 0; i < v.size(); ++i)
          params_[offset + i] = static_cast<float>(saved[i] + t * v[i]);
        loss[static_cast<std::size_t>(k)] = model_.forward_backward(params_, batch_, scratch_);
        double d = 0.0;
        for (std::size_t i = 0; i < v.size(); ++i) d += static_cast<double>(scratch_[offset + i]) * v[i];
        slope[static_cast<std::size_t>(k)] = d;
      }
      integral = 0.0;
      double scale = 0.0;  // integral of |slope|: the size of the signal
      for (int k = 0; k < n; ++k) {
        const auto a = static_cast<std::size_t>(k);
        integral += 0.5 * (slope[a] + slope[a + 1]) * (2.0 * h / n);
        scale += 0.5 * (std::abs(slope[a]) + std::abs(slope[a + 1])) * (2.0 * h / n);
      }
      measured = loss.back() - loss.front();
      err = std::abs(measured - integral);
      // Rounding noise of a float loss difference is ~1e-7 of the loss; the floor keeps 3x to 10x margin.
      tol = 1e-2 * scale + 1e-6 * std::max(1.0, loss_);
      if (err <= tol) break;
    }
    std::copy(saved.begin(), saved.end(), params_.begin() + static_cast<std::ptrdiff_t>(offset));
    EXPECT_LE(err, tol) << label << ": loss change " << measured << ", integrated gradient " << integral
                        << " (h " << h << ")";
    worst_ = std::max(worst_, err / tol);
    ++checks_;
  }

  // Gradient direction, one random direction and the `coords` largest-|g| coordinates of tensor t.
  void check_tensor(const train::TensorInfo& t, int coords, bool random_direction) {
    std::vector<double> v(t.size);
    double norm = 0.0;
    for (std::size_t i = 0; i < t.size; ++i)
      norm += static_cast<double>(grad_[t.offset + i]) * grad_[t.offset + i];
    norm = std::sqrt(norm);
    if (norm > 0.0) {
      for (std::size_t i = 0; i < t.size; ++i) v[i] = grad_[t.offset + i] / norm;
      check(t.offset, v, t.name + " (gradient direction)");
    }
    if (random_direction) {
      norm = 0.0;
      for (double& x : v) {
        x = rng_.normal();
        norm += x * x;
      }
      for (double& x : v) x /= std::sqrt(norm);
      check(t.offset, v, t.name + " (random direction)");
    }
    std::vector<std::size_t> order(t.size);
    for (std::size_t i = 0; i < t.size; ++i) order[i] = i;
    const auto k = std::min<std::size_t>(static_cast<std::size_t>(coords), t.size);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](std::size_t a, std::size_t b) {
                        return std::abs(grad_[t.offset + a]) > std::abs(grad_[t.offset + b]);
                      });
    for (std::size_t j = 0; j < k; ++j) {
      check(t.offset + order[j], {1.0}, t.name + "[" + std::to_string(order[j]) + "]");
    }
  }

  double worst() const { return worst_; }
  int checks() const { return checks_; }

 private:
  train::Model& model_;
  std::vector<float> params_, grad_, scratch_;
  train::BatchView batch_;
  sparcol::CounterRng rng_;
  double loss_ = 0.0, worst_ = 0.0;
  int checks_ = 0;
};

// Builds the model, initialises it from `seed`, perturbs the parameters a little (so norm weights
// and biases are not exactly 1 and 0; weights by 20% of their scale, so logits stay moderate) and
// checks the tensors whose names start with one of `only` (all when empty).
void run_check(const std::string& name, const train::ModelOptions& o, std::size_t batch, int coords,
               bool random_dir, bool training = true, int warmup_steps = 0,
               const std::vector<std::string>& only = {}) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(name + ", seed " + std::to_string(seed));
  auto model = train::make_model(name, o);
  std::vector<float> params(model->num_params());
  model->init(params, seed);
  sparcol::CounterRng rng(seed, sparcol::kStreamUser + 42);
  for (const auto& t : model->tensors()) {
    double sq = 0.0;
    for (std::size_t i = 0; i < t.size; ++i) sq += params[t.offset + i] * params[t.offset + i];
    const double rms = std::sqrt(sq / static_cast<double>(t.size));
    const double noise = t.shape.size() > 1 && rms > 0.0 ? 0.2 * rms : 0.05;
    for (std::size_t i = 0; i < t.size; ++i) params[t.offset + i] += static_cast<float>(noise * rng.normal());
  }
  RandomBatch data(o.input, o.num_classes, batch, seed + 1);
  // BatchNorm eval-mode checks need running statistics that differ from the initial 0 / 1.
  std::vector<float> grad(params.size());
  for (int s = 0; s < warmup_steps; ++s) {
    RandomBatch warm(o.input, o.num_classes, batch, seed + 100 + static_cast<std::uint64_t>(s));
    model->forward_backward(params, warm.batch.view(), grad);
  }
  model->set_training(training);
  GradChecker checker(*model, params, data.batch.view(), seed + 2);
  checker.expect_finite();
  for (const auto& t : model->tensors()) {
    const bool wanted = only.empty() || std::any_of(only.begin(), only.end(), [&](const std::string& prefix) {
                          return t.name.rfind(prefix, 0) == 0;
                        });
    if (wanted) checker.check_tensor(t, coords, random_dir);
  }
  ::testing::Test::RecordProperty("worst_relative_error", std::to_string(checker.worst()));
  EXPECT_GT(checker.checks(), 0);
}

train::ModelOptions small(const train::InputShape& input, int classes) {
  train::ModelOptions o;
  o.input = input;
  o.num_classes = classes;
  return o;
}

}  // namespace

TEST(GradCheck, MlpSmall) {
  auto o = small({1, 4, 4}, 3);
  o.mlp_hidden = {7, 5};
  run_check("mlp", o, 4, 3, true);
}

TEST(GradCheck, CnnSmallTwoChannels) {
  auto o = small({2, 8, 8}, 3);
  o.cnn_channels1 = 3;
  o.cnn_channels2 = 4;
  o.cnn_hidden = 6;
  run_check("cnn", o, 3, 3, true);
}

TEST(GradCheck, ResNetGroupNormSmall) {
  auto o = small({2, 8, 8}, 3);
  o.resnet_width = 4;
  o.resnet_blocks = 2;  // identity blocks and option-A shortcut blocks
  o.norm = train::NormKind::kGroupNorm;
  o.norm_groups = 2;
  run_check("resnet20", o, 3, 2, true);
}

TEST(GradCheck, ResNetBatchNormTrainingSmall) {
  auto o = small({1, 8, 8}, 3);
  o.resnet_width = 4;
  o.resnet_blocks = 1;
  o.norm = train::NormKind::kBatchNorm;
  run_check("resnet20", o, 4, 2, true, true);
}

TEST(GradCheck, ResNetBatchNormEvalSmall) {
  auto o = small({1, 8, 8}, 3);
  o.resnet_width = 4;
  o.resnet_blocks = 1;
  o.norm = train::NormKind::kBatchNorm;
  run_check("resnet20", o, 4, 2, true, false, 5);
}

TEST(GradCheck, SyntheticSmall) {
  auto o = small({1, 1, 8}, 2);
  o.synthetic_params = 1003;  // not a multiple of the latent size
  run_check("synthetic", o, 6, 5, true);
}

// Real sizes: 1x28x28 Fashion-MNIST shape, default widths.
TEST(GradCheck, MlpFullSize) {
  run_check("mlp", small({1, 28, 28}, 10), 4, 2, true);
}

TEST(GradCheck, CnnFullSize) {
  run_check("cnn", small({1, 28, 28}, 10), 2, 2, true);
}

// The stem, the first block of each stage (identity, then option-A shortcuts), the last block and
// the head: every kind of layer at every size, at a fraction of the cost of all 20 layers.
const std::vector<std::string> kResNetSample = {"conv1.",    "norm1.",    "layer1.0.", "layer2.0.",
                                                "layer3.0.", "layer3.2.", "fc."};

TEST(GradCheck, ResNet20GroupNormFullSize) {
  auto o = small({1, 28, 28}, 10);
  o.norm = train::NormKind::kGroupNorm;
  run_check("resnet20", o, 2, 0, false, true, 0, kResNetSample);
}

TEST(GradCheck, ResNet20BatchNormFullSize) {
  auto o = small({1, 28, 28}, 10);
  o.norm = train::NormKind::kBatchNorm;
  run_check("resnet20", o, 2, 0, false, true, 0, kResNetSample);
}

// DropIT configured at gamma = 0 (ALGORITHMS.md 10.10): every layer that DropIT can drop ("all")
// takes the caching path and must still give the exact gradient. (At gamma > 0 the weight gradient
// is an approximation by design: tests/unit/test_train_dropit.cpp checks it against its definition.)
TEST(GradCheck, DropitGammaZeroAllLayers) {
  auto mlp = small({1, 4, 4}, 3);
  mlp.mlp_hidden = {7, 5};
  auto cnn = small({2, 8, 8}, 3);
  cnn.cnn_channels1 = 3;
  cnn.cnn_channels2 = 4;
  cnn.cnn_hidden = 6;
  auto gn = small({2, 8, 8}, 3);
  gn.resnet_width = 4;
  gn.resnet_blocks = 1;
  gn.norm = train::NormKind::kGroupNorm;
  auto bn = gn;
  bn.norm = train::NormKind::kBatchNorm;
  for (auto* o : {&mlp, &cnn, &gn, &bn}) {
    o->dropit_gamma = 0.0;
    o->dropit_layers = train::DropitLayers::kAll;
  }
  run_check("mlp", mlp, 4, 3, true);
  run_check("cnn", cnn, 3, 3, true);
  run_check("resnet20", gn, 3, 2, true);
  run_check("resnet20", bn, 4, 2, true);
}
