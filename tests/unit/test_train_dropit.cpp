// DropIT in the native models (ALGORITHMS.md 10.10, sparcol/train/model.hpp): every model (mlp, cnn,
// resnet20 with GroupNorm and BatchNorm), both layer sets, several gamma.
//  * gamma = 0 (with either layer set) is bitwise the model without DropIT, and caches every input
//    densely;
//  * for every gamma the input gradients are exact: every gradient that does not come from a dropped
//    layer's weight (biases, norm parameters, the weights of the exempt layers, which see only input
//    gradients from above) is bitwise the dense backward's;
//  * the weight gradient of a dropped linear layer is the dense weight gradient computed from the
//    rebuilt sparse input: with one sample, dW = outer(dy, x_hat) with dy = the bias gradient, so the
//    kept input columns of dW are bitwise the dense ones and the dropped columns are zero, and the
//    kept columns are the top-k of |x| (ties to the smaller index) where x is known (the images);
//  * the cached bytes per layer are the formula of 10.10: k = floor((1 - gamma) * numel) entries of
//    4 + 4 bytes for a dropped layer, numel * 4 for a dense one; the input sizes are written out by
//    hand from each architecture;
//  * evaluation never drops (the same logits at every gamma);
//  * a gamma outside [0, 1) and an unknown layer set are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/train/model.hpp"

namespace train = sparcol::train;

namespace {

struct Case {
  std::string model;
  train::ModelOptions options;
  std::size_t batch = 3;
  // Input elements of every linear and convolution layer for `batch` samples, in forward order,
  // written out from the architecture (docs/models.md).
  std::vector<std::size_t> numel;
};

train::ModelOptions base(const train::InputShape& input, int classes) {
  train::ModelOptions o;
  o.input = input;
  o.num_classes = classes;
  return o;
}

Case mlp_setup() {
  Case s{"mlp", base({1, 4, 4}, 3), 3, {}};
  s.options.mlp_hidden = {7, 5};
  s.numel = {3 * 16, 3 * 7, 3 * 5};  // fc1 (the images), fc2, fc3
  return s;
}

Case cnn_setup() {
  Case s{"cnn", base({2, 8, 8}, 3), 3, {}};
  s.options.cnn_channels1 = 3;
  s.options.cnn_channels2 = 4;
  s.options.cnn_hidden = 6;
  // conv1: 2 x 3 x 8 x 8; conv2: pool1 3 x 3 x 4 x 4; fc1: 3 x (4 x 2 x 2); fc2: 3 x 6
  s.numel = {2 * 3 * 64, 3 * 3 * 16, 3 * 16, 3 * 6};
  return s;
}

Case resnet_setup(train::NormKind norm) {
  Case s{"resnet20", base({2, 8, 8}, 3), 3, {}};
  s.options.resnet_width = 4;
  s.options.resnet_blocks = 2;
  s.options.norm = norm;
  s.options.norm_groups = 2;
  const std::size_t n = 3;
  s.numel.push_back(2 * n * 64);  // stem: the images
  // stage 1 (4 channels, 8x8): two blocks of two convolutions on 4 x 8 x 8
  for (int i = 0; i < 4; ++i) s.numel.push_back(4 * n * 64);
  // stage 2: block 0 conv1 sees stage 1's output (4 x 8 x 8), then 8 x 4 x 4 three times
  s.numel.push_back(4 * n * 64);
  for (int i = 0; i < 3; ++i) s.numel.push_back(8 * n * 16);
  // stage 3: block 0 conv1 sees 8 x 4 x 4, then 16 x 2 x 2 three times
  s.numel.push_back(8 * n * 16);
  for (int i = 0; i < 3; ++i) s.numel.push_back(16 * n * 4);
  s.numel.push_back(n * 16);  // fc: pooled 16 features
  return s;
}

std::vector<Case> all_setups() {
  return {mlp_setup(), cnn_setup(), resnet_setup(train::NormKind::kGroupNorm),
          resnet_setup(train::NormKind::kBatchNorm)};
}

std::string label(const Case& s) {
  if (s.model != "resnet20") return s.model;
  return s.options.norm == train::NormKind::kGroupNorm ? "resnet20-gn" : "resnet20-bn";
}

// N(0, 1) images, labels uniform, from a fixed seed.
train::Batch make_batch(const train::InputShape& shape, int classes, std::size_t n, std::uint64_t seed) {
  train::Batch b;
  sparcol::CounterRng rng(seed, sparcol::kStreamUser + 70);
  b.images.resize(n * shape.size());
  for (float& v : b.images) v = static_cast<float>(rng.normal());
  b.labels.resize(n);
  for (auto& l : b.labels) l = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(classes)));
  return b;
}

struct Outcome {
  std::vector<float> grad;
  double loss = 0;
  std::vector<train::LayerCache> caches;
};

// A fresh model with the given DropIT setting: init from seed, perturb (so biases and norm
// parameters are not 0 and 1), then `steps` training forward_backward calls on the batch (BatchNorm's
// running statistics move); the result of the last.
Outcome run(const Case& s, double gamma, train::DropitLayers layers, const train::Batch& batch, int steps = 1,
            std::vector<float>* params_out = nullptr) {
  train::ModelOptions o = s.options;
  o.dropit_gamma = gamma;
  o.dropit_layers = layers;
  auto model = train::make_model(s.model, o);
  std::vector<float> params(model->num_params());
  model->init(params, 11);
  sparcol::CounterRng rng(12, sparcol::kStreamUser + 71);
  for (float& p : params) p += static_cast<float>(0.05 * rng.normal());
  Outcome r;
  r.grad.assign(params.size(), 0.0f);
  for (int i = 0; i < steps; ++i) r.loss = model->forward_backward(params, batch.view(), r.grad);
  r.caches = model->layer_caches();
  if (params_out) *params_out = params;
  return r;
}

bool bitwise_equal(float a, float b) {
  return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

// The weight tensors of the layers that drop under (layers), by the hidden rule: all but the
// first and the last linear/convolution layer.
std::vector<std::string> dropped_weights(const Case& s, train::DropitLayers layers) {
  auto model = train::make_model(s.model, s.options);
  std::vector<std::string> weights;
  for (const auto& t : model->tensors()) {
    if (t.shape.size() >= 2) weights.push_back(t.name);  // linear [out, in] and conv [out, in, k, k]
  }
  if (layers == train::DropitLayers::kHidden) weights = {weights.begin() + 1, weights.end() - 1};
  return weights;
}

const double kGammas[] = {0.3, 0.5, 0.7, 0.9};

}  // namespace

TEST(Dropit, GammaZeroIsBitwiseTheModelWithoutDropit) {
  for (const Case& s : all_setups()) {
    SCOPED_TRACE(label(s));
    const train::Batch batch = make_batch(s.options.input, s.options.num_classes, s.batch, 5);
    const Outcome plain = run(s, 0.0, train::DropitLayers::kHidden, batch, 2);
    auto model = train::make_model(s.model, s.options);  // no DropIT option touched at all
    std::vector<float> params(model->num_params()), grad(params.size());
    model->init(params, 11);
    sparcol::CounterRng rng(12, sparcol::kStreamUser + 71);
    for (float& p : params) p += static_cast<float>(0.05 * rng.normal());
    double loss = 0;
    for (int i = 0; i < 2; ++i) loss = model->forward_backward(params, batch.view(), grad);
    for (auto layers : {train::DropitLayers::kHidden, train::DropitLayers::kAll}) {
      const Outcome r = run(s, 0.0, layers, batch, 2);
      EXPECT_EQ(std::bit_cast<std::uint64_t>(r.loss), std::bit_cast<std::uint64_t>(loss));
      ASSERT_EQ(r.grad.size(), grad.size());
      for (std::size_t i = 0; i < grad.size(); ++i) ASSERT_TRUE(bitwise_equal(r.grad[i], grad[i])) << i;
      for (const auto& c : r.caches) {
        EXPECT_FALSE(c.dropped) << c.layer;
        EXPECT_EQ(c.kept, c.numel) << c.layer;
      }
    }
    EXPECT_EQ(plain.grad, grad);
  }
}

TEST(Dropit, CachedBytesFollowTheFormula) {
  for (const Case& s : all_setups()) {
    SCOPED_TRACE(label(s));
    const train::Batch batch = make_batch(s.options.input, s.options.num_classes, s.batch, 6);
    for (auto layers : {train::DropitLayers::kHidden, train::DropitLayers::kAll}) {
      for (double gamma : {0.0, 0.5, 0.7, 0.9}) {
        SCOPED_TRACE("gamma " + std::to_string(gamma) +
                     (layers == train::DropitLayers::kAll ? " all" : " hidden"));
        auto model = train::make_model(s.model, [&] {
          train::ModelOptions o = s.options;
          o.dropit_gamma = gamma;
          o.dropit_layers = layers;
          return o;
        }());
        std::vector<float> params(model->num_params()), grad(params.size());
        model->init(params, 3);
        model->forward_backward(params, batch.view(), grad);
        const auto& caches = model->layer_caches();
        ASSERT_EQ(caches.size(), s.numel.size());
        std::size_t total = 0, dense_total = 0;
        for (std::size_t l = 0; l < caches.size(); ++l) {
          const auto& c = caches[l];
          const std::size_t numel = s.numel[l];
          const bool exempt = layers == train::DropitLayers::kHidden && (l == 0 || l + 1 == caches.size());
          const bool dropped = gamma > 0 && !exempt;
          EXPECT_EQ(c.numel, numel) << c.layer;
          EXPECT_EQ(c.dropped, dropped) << c.layer;
          EXPECT_EQ(c.dense_bytes, numel * 4) << c.layer;
          if (dropped) {
            // floor((1 - gamma) * numel) fp32 values and uint32 indices
            const auto k = static_cast<std::size_t>(std::floor((1.0 - gamma) * static_cast<double>(numel)));
            EXPECT_EQ(c.kept, k) << c.layer;
            EXPECT_EQ(c.bytes, k * 8) << c.layer;
          } else {
            EXPECT_EQ(c.kept, numel) << c.layer;
            EXPECT_EQ(c.bytes, numel * 4) << c.layer;
          }
          total += c.bytes;
          dense_total += c.dense_bytes;
        }
        EXPECT_EQ(model->cached_bytes(), total);
        EXPECT_EQ(model->cached_dense_bytes(), dense_total);
      }
    }
  }
  // A hand-computed case: the cnn's conv2 input at gamma 0.9 has 144 elements, of which
  // floor(0.1 * 144) = 14 are kept: 112 bytes instead of 576.
  const Case s = cnn_setup();
  train::ModelOptions o = s.options;
  o.dropit_gamma = 0.9;
  auto model = train::make_model("cnn", o);
  std::vector<float> params(model->num_params()), grad(params.size());
  model->init(params, 3);
  const train::Batch batch = make_batch(o.input, o.num_classes, 3, 6);
  model->forward_backward(params, batch.view(), grad);
  EXPECT_EQ(model->layer_caches()[1].layer, "conv2");
  EXPECT_EQ(model->layer_caches()[1].kept, 14u);
  EXPECT_EQ(model->layer_caches()[1].bytes, 112u);
  EXPECT_EQ(model->layer_caches()[1].dense_bytes, 576u);
}

TEST(Dropit, InputGradientsAreExact) {
  for (const Case& s : all_setups()) {
    SCOPED_TRACE(label(s));
    const train::Batch batch = make_batch(s.options.input, s.options.num_classes, s.batch, 7);
    const Outcome dense = run(s, 0.0, train::DropitLayers::kHidden, batch);
    auto model = train::make_model(s.model, s.options);
    for (auto layers : {train::DropitLayers::kHidden, train::DropitLayers::kAll}) {
      const std::vector<std::string> dropped = dropped_weights(s, layers);
      for (double gamma : kGammas) {
        SCOPED_TRACE("gamma " + std::to_string(gamma));
        const Outcome r = run(s, gamma, layers, batch);
        EXPECT_EQ(std::bit_cast<std::uint64_t>(r.loss), std::bit_cast<std::uint64_t>(dense.loss));
        std::size_t exact = 0, differing = 0;
        for (const auto& t : model->tensors()) {
          const bool approx = std::find(dropped.begin(), dropped.end(), t.name) != dropped.end();
          for (std::size_t i = t.offset; i < t.offset + t.size; ++i) {
            if (approx) {
              differing += !bitwise_equal(r.grad[i], dense.grad[i]);
            } else {
              ASSERT_TRUE(bitwise_equal(r.grad[i], dense.grad[i])) << t.name << "[" << i - t.offset << "]";
              ++exact;
            }
          }
        }
        EXPECT_GT(exact, 0u);
        // The dropped layers' weight gradients do change (the test would not see a DropIT that
        // drops nothing). At small gamma only zeros (ReLU outputs) may be dropped.
        if (gamma >= 0.7) {
          EXPECT_GT(differing, 0u);
        }
      }
    }
  }
}

// One sample: a linear layer's weight gradient is dW[o][i] = dy[o] * x[i] (one product, no sum),
// and dy is the bias gradient. So the dropped run's dW is the dense dW computed from x_hat exactly
// when its columns are the dense columns (kept i) or zero (dropped i), with the kept set the top-k of
// |x|. For fc1 under "all", x is the image: the kept set is checked against an independent top-k.
TEST(Dropit, WeightGradientIsTheDenseOneOfTheSparseInput) {
  Case s = mlp_setup();
  s.batch = 1;
  const train::Batch batch = make_batch(s.options.input, s.options.num_classes, 1, 8);
  const Outcome dense = run(s, 0.0, train::DropitLayers::kAll, batch);
  auto model = train::make_model(s.model, s.options);
  const auto& tensors = model->tensors();
  for (double gamma : kGammas) {
    SCOPED_TRACE("gamma " + std::to_string(gamma));
    const Outcome r = run(s, gamma, train::DropitLayers::kAll, batch);
    for (std::size_t l = 0; l < r.caches.size(); ++l) {
      const auto& w = tensors[2 * l];
      const auto& b = tensors[2 * l + 1];
      ASSERT_EQ(w.name, r.caches[l].layer + ".weight");
      const std::size_t out = w.shape[0], in = w.shape[1];
      // The bias gradient (dy) is exact.
      for (std::size_t o = 0; o < out; ++o)
        ASSERT_TRUE(bitwise_equal(r.grad[b.offset + o], dense.grad[b.offset + o]));
      for (std::size_t i = 0; i < in; ++i) {
        bool same = true, zero = true;
        for (std::size_t o = 0; o < out; ++o) {
          const float v = r.grad[w.offset + o * in + i];
          same = same && bitwise_equal(v, dense.grad[w.offset + o * in + i]);
          zero = zero && v == 0.0f;
        }
        ASSERT_TRUE(same || zero) << w.name << " column " << i;
      }
      if (l == 0) {
        // x = the image: the kept set is the top-k of |x|, ties to the smaller index.
        const std::size_t k = static_cast<std::size_t>(std::floor((1.0 - gamma) * static_cast<double>(in)));
        std::vector<std::size_t> order(in);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t c) {
          return std::abs(batch.images[a]) > std::abs(batch.images[c]);
        });
        std::vector<bool> expected(in, false);
        for (std::size_t j = 0; j < k; ++j) expected[order[j]] = true;
        for (std::size_t i = 0; i < in; ++i) {
          const float v = r.grad[w.offset + i];  // row 0: dy[0] * x_hat[i]
          if (expected[i]) {
            EXPECT_TRUE(bitwise_equal(v, dense.grad[w.offset + i])) << i;
          } else {
            for (std::size_t o = 0; o < out; ++o) EXPECT_EQ(r.grad[w.offset + o * in + i], 0.0f) << i;
          }
        }
        EXPECT_EQ(r.caches[0].kept, k);
      }
    }
  }
}

TEST(Dropit, EvaluationNeverDrops) {
  for (const Case& s : all_setups()) {
    SCOPED_TRACE(label(s));
    train::Dataset data;
    const train::Batch batch = make_batch(s.options.input, s.options.num_classes, 5, 9);
    data.count = 5;
    data.shape = s.options.input;
    data.num_classes = s.options.num_classes;
    data.images = batch.images;
    data.labels = batch.labels;
    std::vector<float> params;
    train::EvalResult ref;
    for (double gamma : {0.0, 0.9}) {
      train::ModelOptions o = s.options;
      o.dropit_gamma = gamma;
      o.dropit_layers = train::DropitLayers::kAll;
      auto model = train::make_model(s.model, o);
      params.assign(model->num_params(), 0.0f);
      model->init(params, 4);
      const auto e = model->evaluate(params, data, 2);
      if (gamma == 0.0) {
        ref = e;
      } else {
        EXPECT_EQ(std::bit_cast<std::uint64_t>(e.loss), std::bit_cast<std::uint64_t>(ref.loss));
        EXPECT_EQ(e.accuracy, ref.accuracy);
      }
      for (const auto& c : model->layer_caches()) EXPECT_EQ(c.numel, 0u) << c.layer;  // nothing cached
    }
  }
}

TEST(Dropit, BadSettingsAreRefused) {
  const Case s = mlp_setup();
  for (double gamma : {-0.1, 1.0, 1.5, std::nan("")}) {
    train::ModelOptions o = s.options;
    o.dropit_gamma = gamma;
    try {
      train::make_model("mlp", o);
      ADD_FAILURE() << "gamma " << gamma << " accepted";
    } catch (const sparcol::Error& e) {
      EXPECT_EQ(e.code(), sparcol::ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("gamma must be in [0, 1)"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(train::parse_dropit_layers("first"), sparcol::Error);
  EXPECT_EQ(train::parse_dropit_layers("hidden"), train::DropitLayers::kHidden);
  EXPECT_EQ(train::parse_dropit_layers("all"), train::DropitLayers::kAll);
  // The synthetic model has no linear or convolution layer to drop.
  train::ModelOptions o = base({1, 1, 8}, 2);
  o.synthetic_params = 100;
  o.dropit_gamma = 0.5;
  EXPECT_THROW(train::make_model("synthetic", o), sparcol::Error);
  o.dropit_gamma = 0.0;
  EXPECT_NO_THROW(train::make_model("synthetic", o));
}
