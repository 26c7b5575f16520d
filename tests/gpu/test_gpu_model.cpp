// The GPU model of sparcol-train --device cuda (docs/gpu.md, "The trainer on the GPU") against the
// CPU model it mirrors: the same tensors and x_0 bitwise, the loss and the gradient equal up to the
// GEMMs' summation order, the same predictions. Without a GPU the comparisons skip (failed under
// SPARCOL_REQUIRE_GPU=1) and the refusal of a missing device is checked instead.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gpu_skip.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/train/model.hpp"

namespace {

using namespace sparcol;
using namespace sparcol::train;

ModelOptions fmnist_mlp() {
  ModelOptions o;
  o.input = InputShape{1, 28, 28};
  o.num_classes = 10;
  return o;
}

Dataset random_data(std::size_t n, std::uint64_t seed) {
  Dataset d;
  d.count = n;
  d.shape = InputShape{1, 28, 28};
  d.num_classes = 10;
  CounterRng rng(seed, 0, 0);
  d.images.resize(n * d.shape.size());
  for (float& v : d.images) v = static_cast<float>(rng.uniform());
  d.labels.resize(n);
  for (auto& l : d.labels) l = static_cast<std::int32_t>(rng.uniform() * 10.0) % 10;
  return d;
}

TEST(GpuModel, WithoutAGpuTheRequestIsRefusedNamingWhy) {
  if (device::has_gpu())
    GTEST_SKIP() << "a GPU is present: the refusal of a missing one cannot be shown here";
  try {
    (void)make_gpu_model("mlp", fmnist_mlp());
    FAIL() << "make_gpu_model succeeded without a GPU";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCuda);
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

TEST(GpuModel, OnlyTheMlpHasAGpuPath) {
  SPARCOL_SKIP_WITHOUT_GPU();
  try {
    (void)make_gpu_model("cnn", fmnist_mlp());
    FAIL() << "make_gpu_model(cnn) succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("only --model mlp"), std::string::npos) << e.what();
  }
}

TEST(GpuModel, MlpEqualsTheCpuMlp) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const ModelOptions o = fmnist_mlp();
  auto cpu = make_model("mlp", o);
  auto gpu = make_gpu_model("mlp", o);
  ASSERT_EQ(gpu->num_params(), cpu->num_params());
  ASSERT_EQ(gpu->tensors().size(), cpu->tensors().size());
  for (std::size_t t = 0; t < cpu->tensors().size(); ++t) {
    EXPECT_EQ(gpu->tensors()[t].name, cpu->tensors()[t].name);
    EXPECT_EQ(gpu->tensors()[t].offset, cpu->tensors()[t].offset);
  }
  std::vector<float> x(cpu->num_params()), x_gpu(x.size());
  cpu->init(x, 7);
  gpu->init(x_gpu, 7);
  ASSERT_TRUE(std::equal(x.begin(), x.end(), x_gpu.begin())) << "x_0 differs";

  for (std::size_t n : {1u, 32u, 77u}) {
    SCOPED_TRACE("batch " + std::to_string(n));
    const Dataset d = random_data(n, 100 + n);
    const BatchView b{d.images.data(), d.labels.data(), n};
    std::vector<float> g_cpu(x.size()), g_gpu(x.size(), std::nanf(""));
    const double l_cpu = cpu->forward_backward(x, b, g_cpu);
    const double l_gpu = gpu->forward_backward(x, b, g_gpu);
    EXPECT_NEAR(l_gpu, l_cpu, 1e-5 * std::max(1.0, std::abs(l_cpu)));
    EXPECT_EQ(gpu->last_batch_correct(), cpu->last_batch_correct());
    // Per tensor: every element within 1e-4 of the tensor's largest gradient magnitude (FP32 GEMMs
    // summed in another order; the elementwise parts are the CPU's arithmetic).
    for (const auto& t : cpu->tensors()) {
      float scale = 0.0f;
      for (std::size_t i = 0; i < t.size; ++i) scale = std::max(scale, std::abs(g_cpu[t.offset + i]));
      std::size_t bad = 0;
      for (std::size_t i = 0; i < t.size; ++i) {
        const float a = g_cpu[t.offset + i], c = g_gpu[t.offset + i];
        if (!(std::abs(a - c) <= 1e-4f * scale + 1e-12f)) ++bad;
      }
      EXPECT_EQ(bad, 0u) << t.name << " (scale " << scale << ")";
    }
  }
  const Dataset test = random_data(300, 5);
  const EvalResult e_cpu = cpu->evaluate(x, test, 128), e_gpu = gpu->evaluate(x, test, 128);
  EXPECT_EQ(e_gpu.count, e_cpu.count);
  EXPECT_NEAR(e_gpu.accuracy, e_cpu.accuracy, 1.0 / 300 + 1e-12);
  EXPECT_NEAR(e_gpu.loss, e_cpu.loss, 1e-5 * std::max(1.0, e_cpu.loss));
}

}  // namespace
