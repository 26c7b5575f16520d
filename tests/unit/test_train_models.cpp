// Models (sparcol/train/model.hpp): factory and options, parameter layout, initialisation,
// determinism, evaluation and BatchNorm buffers, and short SGD runs that must reduce the loss.
// Gradients are checked against finite differences in test_train_gradcheck.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/train/batch_iterator.hpp"
#include "sparcol/train/data.hpp"
#include "sparcol/train/model.hpp"
#include "sparcol/train/partition.hpp"

using sparcol::Error;
namespace train = sparcol::train;

namespace {

// A fresh seed per run (printed on failure); SPARCOL_TEST_SEED=<n> replays one.
std::uint64_t fresh_seed() {
  if (const char* env = std::getenv("SPARCOL_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) | rd();
}

train::ModelOptions opts(const train::InputShape& input = {1, 28, 28}, int classes = 10) {
  train::ModelOptions o;
  o.input = input;
  o.num_classes = classes;
  return o;
}

train::Batch random_batch(const train::InputShape& shape, int classes, std::size_t n, std::uint64_t seed) {
  sparcol::CounterRng rng(seed, sparcol::kStreamUser + 50);
  train::Batch b;
  b.images.resize(n * shape.size());
  for (float& v : b.images) v = static_cast<float>(rng.normal());
  b.labels.resize(n);
  for (auto& l : b.labels) l = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(classes)));
  return b;
}

// Fashion-MNIST's first `count` training images when installed; otherwise a stand-in with the same
// shape: ten fixed random patterns (one per class) plus noise, normalised.
train::Dataset small_image_set(std::size_t count, std::uint64_t seed) {
  train::Dataset d;
  if (std::filesystem::exists(std::filesystem::path(train::kFashionMnistDir) /
                              "train-images-idx3-ubyte.gz")) {
    auto split = train::load_fashion_mnist();
    d = std::move(split.train);
    d.count = count;
    d.images.resize(count * d.sample_size());
    d.labels.resize(count);
  } else {
    d.count = count;
    d.shape = {1, 28, 28};
    d.num_classes = 10;
    sparcol::CounterRng rng(seed, sparcol::kStreamUser + 51);
    std::vector<float> patterns(10 * 784);
    for (float& v : patterns) v = rng.uniform() < 0.3 ? 1.0f : 0.0f;
    d.images.resize(count * 784);
    d.labels.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
      const auto c = static_cast<std::int32_t>(rng.below(10));
      d.labels[i] = c;
      for (std::size_t p = 0; p < 784; ++p) {
        const double v = patterns[static_cast<std::size_t>(c) * 784 + p] + 0.5 * rng.normal();
        d.images[i * 784 + p] = static_cast<float>(std::clamp(v, 0.0, 1.0));
      }
    }
  }
  train::normalize(d, train::fashion_mnist_normalization());
  return d;
}

// Plain SGD with heavy-ball momentum (ALGORITHMS.md 0.1) for `steps` minibatches.
void sgd(train::Model& m, std::vector<float>& params, const train::Dataset& data, std::size_t steps, float lr,
         std::uint64_t seed, std::size_t batch = 32) {
  std::vector<std::uint32_t> all(data.count);
  for (std::size_t i = 0; i < data.count; ++i) all[i] = static_cast<std::uint32_t>(i);
  train::BatchIterator it(data, all, {batch, false, seed, 0});
  std::vector<float> grad(params.size()), mom(params.size(), 0.0f);
  train::Batch b;
  for (std::size_t s = 0; s < steps; ++s) {
    it.next(b);
    m.forward_backward(params, b.view(), grad);
    for (std::size_t i = 0; i < params.size(); ++i) {
      mom[i] = 0.9f * mom[i] + grad[i];
      params[i] -= lr * mom[i];
    }
  }
}

}  // namespace

TEST(Models, FactoryNamesAndErrors) {
  for (const auto& name : train::model_names()) {
    auto o = opts();
    if (name == "synthetic") {
      o.input = {1, 1, 16};
      o.num_classes = 2;
      o.synthetic_params = 100;
    }
    EXPECT_EQ(train::make_model(name, o)->name(), name);
  }
  try {
    train::make_model("vgg16", opts());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("unknown model 'vgg16'"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("resnet20"), std::string::npos) << e.what();
  }
  auto o = opts();
  o.norm_groups = 3;  // does not divide 16
  EXPECT_THROW(train::make_model("resnet20", o), Error);
  EXPECT_THROW(train::make_model("cnn", opts({1, 30, 30})), Error);
  EXPECT_THROW(train::make_model("synthetic", opts({1, 1, 8}, 2)), Error);  // no parameter count
  auto s = opts({1, 1, 8}, 10);
  s.synthetic_params = 50;
  EXPECT_THROW(train::make_model("synthetic", s), Error);  // binary only
  EXPECT_EQ(train::parse_norm_kind("bn"), train::NormKind::kBatchNorm);
  EXPECT_EQ(train::parse_norm_kind("groupnorm"), train::NormKind::kGroupNorm);
  EXPECT_THROW(train::parse_norm_kind("ln"), Error);
}

TEST(Models, LayoutTilesTheFlatVector) {
  // Parameter counts worked out by hand from the architectures in docs/models.md.
  struct Case {
    std::string name;
    train::NormKind norm;
    std::size_t params, tensors, buffers;
  };
  const Case cases[] = {
      {"mlp", train::NormKind::kGroupNorm, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10, 6, 0},
      {"cnn", train::NormKind::kGroupNorm, 16 * 25 + 16 + 32 * 16 * 25 + 32 + 128 * 1568 + 128 + 1280 + 10, 8,
       0},
      // stem 144 + 32; stage1 6 convs of 2304 + 6 norms of 32; stage2 4608 + 5*9216 + 6*64;
      // stage3 18432 + 5*36864 + 6*128; fc 650
      {"resnet20", train::NormKind::kGroupNorm, 269434, 1 + 2 + 9 * 6 + 2, 0},
      {"resnet20", train::NormKind::kBatchNorm, 269434, 1 + 2 + 9 * 6 + 2,
       2 * (16 + 6 * 16 + 6 * 32 + 6 * 64)},
  };
  for (const auto& c : cases) {
    auto o = opts();
    o.norm = c.norm;
    auto m = train::make_model(c.name, o);
    EXPECT_EQ(m->num_params(), c.params) << c.name;
    EXPECT_EQ(m->tensors().size(), c.tensors) << c.name;
    EXPECT_EQ(m->buffers().size(), c.buffers) << c.name;
    std::size_t next = 0;
    for (const auto& t : m->tensors()) {
      EXPECT_EQ(t.offset, next) << t.name;
      std::size_t prod = 1;
      for (auto d : t.shape) prod *= d;
      EXPECT_EQ(prod, t.size) << t.name;
      next += t.size;
    }
    EXPECT_EQ(next, m->num_params());
  }
  auto m = train::make_model("resnet20", opts());
  EXPECT_EQ(m->tensors().front().name, "conv1.weight");
  EXPECT_EQ(m->tensors()[3].name, "layer1.0.conv1.weight");
  EXPECT_EQ(m->tensors().back().name, "fc.bias");
  EXPECT_EQ(m->tensors()[3].shape, (std::vector<std::size_t>{16, 16, 3, 3}));
}

TEST(Models, InitIsSeededAndScaled) {
  auto m = train::make_model("resnet20", opts());
  std::vector<float> a(m->num_params()), b(m->num_params()), c(m->num_params());
  m->init(a, 11);
  m->init(b, 11);
  m->init(c, 12);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // He normal: layer1.0.conv1.weight has fan_in 144, so std sqrt(2/144) = 0.118.
  const auto& t = m->tensors()[3];
  double sq = 0.0;
  for (std::size_t i = 0; i < t.size; ++i) sq += a[t.offset + i] * a[t.offset + i];
  EXPECT_NEAR(std::sqrt(sq / static_cast<double>(t.size)), std::sqrt(2.0 / 144.0), 0.01);
  EXPECT_EQ(a[m->tensors()[1].offset], 1.0f);  // norm1.weight
  EXPECT_EQ(a[m->tensors()[2].offset], 0.0f);  // norm1.bias
  std::vector<float> wrong(3);
  EXPECT_THROW(m->init(wrong, 1), Error);
}

TEST(Models, DeterministicBitwise) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (const std::string name : {"mlp", "cnn", "resnet20", "resnet20-bn", "synthetic"}) {
    auto o = opts();
    std::string model_name = name;
    if (name == "resnet20-bn") {
      model_name = "resnet20";
      o.norm = train::NormKind::kBatchNorm;
    }
    if (name == "synthetic") {
      o = opts({1, 1, 32}, 2);
      o.synthetic_params = 100000;
    }
    auto m1 = train::make_model(model_name, o);
    auto m2 = train::make_model(model_name, o);
    std::vector<float> params(m1->num_params()), g1(params.size()), g2(params.size()), g3(params.size());
    m1->init(params, seed);
    sparcol::CounterRng rng(seed, sparcol::kStreamUser + 52);
    for (float& p : params) p += static_cast<float>(0.01 * rng.normal());
    const auto b = random_batch(o.input, o.num_classes, 8, seed);
    const double l1 = m1->forward_backward(params, b.view(), g1);
    const double l2 = m1->forward_backward(params, b.view(), g2);
    const double l3 = m2->forward_backward(params, b.view(), g3);
    EXPECT_EQ(l1, l2) << name;
    EXPECT_EQ(l1, l3) << name;
    EXPECT_EQ(g1, g2) << name;
    EXPECT_EQ(g1, g3) << name;
  }
}

// Threads as ranks (LoopbackBackend) run one model per thread, all calling OpenBLAS at once: each
// must still get bitwise the single-threaded result.
TEST(Models, ConcurrentInstancesAgreeBitwise) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto reference = train::make_model("cnn", opts());
  std::vector<float> params(reference->num_params()), expected(params.size());
  reference->init(params, seed);
  const auto b = random_batch({1, 28, 28}, 10, 8, seed);
  const double loss = reference->forward_backward(params, b.view(), expected);
  constexpr int kThreads = 4;
  std::vector<std::vector<float>> grads(kThreads, std::vector<float>(params.size()));
  std::vector<double> losses(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto m = train::make_model("cnn", opts());
      for (int rep = 0; rep < 3; ++rep) losses[t] = m->forward_backward(params, b.view(), grads[t]);
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(losses[t], loss) << "thread " << t;
    EXPECT_EQ(grads[t], expected) << "thread " << t;
  }
}

TEST(Models, RejectsBadCalls) {
  auto m = train::make_model("mlp", opts());
  std::vector<float> params(m->num_params()), grad(m->num_params()), short_grad(10);
  m->init(params, 1);
  auto b = random_batch({1, 28, 28}, 10, 4, 1);
  EXPECT_THROW(m->forward_backward(params, b.view(), short_grad), Error);
  EXPECT_THROW(m->forward_backward(std::span<const float>(params).first(10), b.view(), grad), Error);
  b.labels[2] = 10;
  EXPECT_THROW(m->forward_backward(params, b.view(), grad), Error);
  train::Batch empty;
  EXPECT_THROW(m->forward_backward(params, empty.view(), grad), Error);
  train::Dataset wrong_shape;
  wrong_shape.shape = {1, 32, 32};
  EXPECT_THROW(m->evaluate(params, wrong_shape), Error);
}

TEST(Models, EvaluateMatchesForwardLoss) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto o = opts({1, 8, 8}, 4);
  o.resnet_width = 4;
  o.resnet_blocks = 1;
  auto m = train::make_model("resnet20", o);  // GroupNorm: no train/eval difference
  std::vector<float> params(m->num_params()), grad(params.size());
  m->init(params, seed);
  train::Dataset d;
  d.count = 37;
  d.shape = o.input;
  d.num_classes = 4;
  const auto b = random_batch(o.input, 4, 37, seed);
  d.images = b.images;
  d.labels = b.labels;
  const double loss = m->forward_backward(params, b.view(), grad);
  const auto r = m->evaluate(params, d, 10);  // batches 10, 10, 10, 7
  EXPECT_EQ(r.count, 37u);
  EXPECT_NEAR(r.loss, loss, 1e-5 * loss);
  EXPECT_GE(r.accuracy, 0.0);
  EXPECT_LE(r.accuracy, 1.0);
}

TEST(Models, BatchNormBuffers) {
  auto o = opts({1, 8, 8}, 3);
  o.resnet_width = 4;
  o.resnet_blocks = 1;
  o.norm = train::NormKind::kBatchNorm;
  o.bn_momentum = 0.25f;
  auto m = train::make_model("resnet20", o);
  std::vector<float> params(m->num_params()), grad(params.size());
  m->init(params, 5);
  ASSERT_FALSE(m->buffer_tensors().empty());
  EXPECT_EQ(m->buffer_tensors()[0].name, "norm1.running_mean");
  EXPECT_EQ(m->buffer_tensors()[1].name, "norm1.running_var");
  EXPECT_EQ(m->buffers()[m->buffer_tensors()[1].offset], 1.0f);
  // The stem's running mean after one training step: (1 - m) * 0 + m * batch mean of channel 0 of
  // conv1's output = m * mean over (n, h, w) of the convolution with the first filter.
  train::Batch b = random_batch(o.input, 3, 6, 9);
  for (float& v : b.images) v = 1.0f;  // constant input: conv output (away from borders) = sum of weights
  m->forward_backward(params, b.view(), grad);
  const float rm = m->buffers()[0];
  EXPECT_NE(rm, 0.0f);
  // Evaluation reads the buffers but never changes them.
  const std::vector<float> before(m->buffers().begin(), m->buffers().end());
  train::Dataset d;
  d.count = b.size();
  d.shape = o.input;
  d.num_classes = 3;
  d.images = b.images;
  d.labels = b.labels;
  m->evaluate(params, d);
  EXPECT_EQ(std::vector<float>(m->buffers().begin(), m->buffers().end()), before);
  // Eval-mode forward_backward uses running statistics: it also leaves the buffers alone.
  m->set_training(false);
  m->forward_backward(params, b.view(), grad);
  EXPECT_EQ(std::vector<float>(m->buffers().begin(), m->buffers().end()), before);
  // A second training step moves them again; init resets them.
  m->set_training(true);
  m->forward_backward(params, b.view(), grad);
  EXPECT_NE(std::vector<float>(m->buffers().begin(), m->buffers().end()), before);
  m->init(params, 5);
  EXPECT_EQ(m->buffers()[0], 0.0f);
  EXPECT_EQ(m->buffers()[m->buffer_tensors()[1].offset], 1.0f);
}

TEST(Training, MlpSgdReducesLoss) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const auto data = small_image_set(2000, seed);
  auto m = train::make_model("mlp", opts());
  std::vector<float> params(m->num_params());
  m->init(params, seed);
  const auto before = m->evaluate(params, data);
  sgd(*m, params, data, 300, 0.02f, seed);
  const auto after = m->evaluate(params, data);
  EXPECT_LT(after.loss, 0.5 * before.loss) << before.loss << " -> " << after.loss;
  EXPECT_GT(after.accuracy, 0.75);
}

TEST(Training, CnnSgdReducesLoss) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const auto data = small_image_set(2000, seed);
  auto o = opts();
  o.cnn_channels1 = 8;  // narrower than the default to keep the test at a few seconds
  o.cnn_channels2 = 16;
  o.cnn_hidden = 64;
  auto m = train::make_model("cnn", o);
  std::vector<float> params(m->num_params());
  m->init(params, seed);
  const auto before = m->evaluate(params, data);
  sgd(*m, params, data, 200, 0.02f, seed);
  const auto after = m->evaluate(params, data);
  EXPECT_LT(after.loss, 0.5 * before.loss) << before.loss << " -> " << after.loss;
  EXPECT_GT(after.accuracy, 0.7);
}

TEST(Training, SyntheticLogisticRegressionLearns) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const auto data = train::make_synthetic_data(4000, 1000, 32, seed);
  auto o = opts({1, 1, 32}, 2);
  o.synthetic_params = 1'000'000;
  auto m = train::make_model("synthetic", o);
  std::vector<float> params(m->num_params());
  m->init(params, seed);
  const auto before = m->evaluate(params, data.test);
  EXPECT_NEAR(before.loss, std::log(2.0), 1e-6);
  sgd(*m, params, data.train, 150, 0.1f, seed);
  const auto after = m->evaluate(params, data.test);
  EXPECT_LT(after.loss, 0.35) << before.loss << " -> " << after.loss;
  EXPECT_GT(after.accuracy, 0.88);
}

// N = 10^8 parameters (800 MB for params and grad). Not run by default:
//   sparcol_train_tests --gtest_also_run_disabled_tests --gtest_filter='*HundredMillion*'
TEST(Training, DISABLED_SyntheticHundredMillionParameters) {
  const auto data = train::make_synthetic_data(2000, 1000, 32, 1);
  auto o = opts({1, 1, 32}, 2);
  o.synthetic_params = 100'000'000;
  auto m = train::make_model("synthetic", o);
  std::vector<float> params(m->num_params());
  m->init(params, 1);
  sgd(*m, params, data.train, 20, 0.1f, 1);
  const auto after = m->evaluate(params, data.test);
  EXPECT_LT(after.loss, 0.6);
}
