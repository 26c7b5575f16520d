// Timing and sanity run for the native trainer's data and models: a benchmark, not a test (it takes
// minutes and asserts nothing; bench/train_sanity.cmake; docs/models.md).
//
//   sparcol_train_sanity [--data DIR] [--models mlp,cnn] [--epochs E] [--batch B] [--lr X]
//                        [--momentum B] [--wd X] [--augment] [--cosine] [--time-only] [--time-iters N]
//                        [--synthetic N] [--dropit GAMMA]
//
// 1. Timing: forward+backward of one batch of 32 for mlp, cnn, resnet20 (GroupNorm and BatchNorm)
//    on one core (OpenBLAS single-threaded), and the implied epochs per minute on 60000 samples;
//    with --synthetic N, also a step and an evaluation of the synthetic model at N parameters; with
//    --dropit GAMMA, also each model with DropIT (hidden layers), its calls interleaved with the
//    dense model's so that both see the same load, and the ratio of their minimum times.
// 2. Training: each model in --models, in one process, on the full Fashion-MNIST training set with
//    plain SGD + heavy-ball momentum, a constant learning rate or (--cosine) cosine annealing to zero
//    over the run, per step; test accuracy after every epoch.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "sparcol/core/error.hpp"
#include "sparcol/train/batch_iterator.hpp"
#include "sparcol/train/data.hpp"
#include "sparcol/train/model.hpp"

namespace train = sparcol::train;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string data = train::kFashionMnistDir;
  std::vector<std::string> models{"mlp", "cnn"};
  int epochs = 2;
  std::size_t batch = 32;
  float lr = 0.02f;
  float momentum = 0.9f;
  float wd = 0.0f;
  bool augment = false;
  bool cosine = false;
  bool time_only = false;
  int time_iters = 20;
  std::size_t synthetic = 0;  // > 0: also time the synthetic model with this many parameters
  double dropit = 0.0;        // > 0: also time every model with DropIT at this gamma
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::unique_ptr<train::Model> build(const std::string& spec, double dropit = 0.0) {
  train::ModelOptions o;
  o.dropit_gamma = dropit;
  std::string name = spec;
  if (spec == "resnet20-bn") {
    name = "resnet20";
    o.norm = train::NormKind::kBatchNorm;
  } else if (spec == "cnn-wide") {  // twice the default widths (the classic 32/64 layout)
    name = "cnn";
    o.cnn_channels1 = 32;
    o.cnn_channels2 = 64;
  } else if (spec == "resnet20-gn" || spec == "resnet20") {
    name = "resnet20";
    o.norm = train::NormKind::kGroupNorm;
  }
  return train::make_model(name, o);
}

void time_models(const train::Dataset& train_set, int iters, double dropit) {
  build("mlp");  // make_model applies the single-thread BLAS default
  std::printf("# forward+backward, batch 32, OpenBLAS threads %d\n", train::blas_threads());
  std::printf("%-12s %10s %10s %10s %14s", "model", "params", "min ms", "median ms", "epochs/min");
  if (dropit > 0)
    std::printf(" %12s %12s %10s %12s", "dropit min", "dropit med", "min ratio", "cached ratio");
  std::printf("\n");
  train::Batch batch;
  batch.images.assign(train_set.images.begin(), train_set.images.begin() + 32 * 784);
  batch.labels.assign(train_set.labels.begin(), train_set.labels.begin() + 32);
  for (const std::string spec : {"mlp", "cnn", "cnn-wide", "resnet20-gn", "resnet20-bn"}) {
    auto m = build(spec);
    auto md = build(spec, dropit);
    std::vector<float> params(m->num_params()), grad(params.size());
    m->init(params, 1);
    for (int i = 0; i < 3; ++i) m->forward_backward(params, batch.view(), grad);
    if (dropit > 0) {
      for (int i = 0; i < 3; ++i) md->forward_backward(params, batch.view(), grad);
    }
    // Per-call times; the minimum is the least disturbed by other processes on a shared machine.
    std::vector<double> ms(static_cast<std::size_t>(iters)), ms_d(ms.size());
    for (std::size_t i = 0; i < ms.size(); ++i) {
      auto t0 = Clock::now();
      m->forward_backward(params, batch.view(), grad);
      ms[i] = 1e3 * seconds_since(t0);
      if (dropit > 0) {
        t0 = Clock::now();
        md->forward_backward(params, batch.view(), grad);
        ms_d[i] = 1e3 * seconds_since(t0);
      }
    }
    std::sort(ms.begin(), ms.end());
    std::sort(ms_d.begin(), ms_d.end());
    const double best = ms.front(), median = ms[ms.size() / 2];
    std::printf("%-12s %10zu %10.2f %10.2f %14.2f", spec.c_str(), m->num_params(), best, median,
                60.0 / ((60000.0 / 32.0) * best / 1e3));
    if (dropit > 0) {
      std::printf(" %12.2f %12.2f %10.3f %12.3f", ms_d.front(), ms_d[ms_d.size() / 2], ms_d.front() / best,
                  static_cast<double>(md->cached_bytes()) / static_cast<double>(md->cached_dense_bytes()));
    }
    std::printf("\n");
  }
}

// One step of the synthetic model at N parameters: forward_backward on a batch of 32 (two passes over
// N) and the evaluation of 10000 test samples (one pass).
void time_synthetic(std::size_t n, int iters) {
  const auto data = train::make_synthetic_data(1024, 10000, 32, 1);
  train::ModelOptions o;
  o.input = data.train.shape;
  o.num_classes = 2;
  o.synthetic_params = n;
  auto m = train::make_model("synthetic", o);
  std::vector<float> params(n), grad(n);
  m->init(params, 1);
  const train::BatchView batch = train::dataset_view(data.train, 0, 32);
  m->forward_backward(params, batch, grad);
  auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) m->forward_backward(params, batch, grad);
  const double step_ms = 1e3 * seconds_since(t0) / iters;
  t0 = Clock::now();
  const auto r = m->evaluate(params, data.test);
  std::printf(
      "# synthetic, N = %zu: forward+backward (batch 32) %.1f ms, evaluate (10000 samples) %.1f ms, loss "
      "%.4f\n",
      n, step_ms, 1e3 * seconds_since(t0), r.loss);
}

void train_model(const std::string& spec, const train::DataSplit& data, const Args& a) {
  auto m = build(spec);
  std::vector<float> params(m->num_params()), grad(params.size()), mom(params.size(), 0.0f);
  m->init(params, 1);
  std::vector<std::uint32_t> all(data.train.count);
  std::iota(all.begin(), all.end(), 0u);
  train::BatchIterator it(data.train, all, {a.batch, a.augment, 1, 0});
  const std::size_t steps_per_epoch = data.train.count / a.batch;
  std::printf("# %s: %zu parameters, batch %zu, lr %g%s, momentum %g, wd %g, augment %d\n", spec.c_str(),
              m->num_params(), a.batch, static_cast<double>(a.lr), a.cosine ? " (cosine)" : "",
              static_cast<double>(a.momentum), static_cast<double>(a.wd), a.augment ? 1 : 0);
  const double total_steps = static_cast<double>(steps_per_epoch) * a.epochs;
  std::size_t step = 0;
  train::Batch b;
  for (int e = 1; e <= a.epochs; ++e) {
    const auto t0 = Clock::now();
    double loss_sum = 0.0;
    m->set_training(true);
    for (std::size_t s = 0; s < steps_per_epoch; ++s) {
      it.next(b);
      loss_sum += m->forward_backward(params, b.view(), grad);
      const float lr =
          a.cosine ? static_cast<float>(a.lr * 0.5 * (1.0 + std::cos(3.141592653589793 * step / total_steps)))
                   : a.lr;
      ++step;
      for (std::size_t i = 0; i < params.size(); ++i) {
        mom[i] = a.momentum * mom[i] + grad[i] + a.wd * params[i];
        params[i] -= lr * mom[i];
      }
    }
    const double train_s = seconds_since(t0);
    m->set_training(false);
    const auto test = m->evaluate(params, data.test);
    std::printf("%s epoch %d: train loss %.4f, test loss %.4f, test accuracy %.2f%%, epoch %.1f s\n",
                spec.c_str(), e, loss_sum / static_cast<double>(steps_per_epoch), test.loss,
                100.0 * test.accuracy, train_s);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sparcol: error: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--data") {
      a.data = value();
    } else if (k == "--models") {
      a.models.clear();
      std::stringstream ss(value());
      for (std::string item; std::getline(ss, item, ',');) a.models.push_back(item);
    } else if (k == "--epochs") {
      a.epochs = std::stoi(value());
    } else if (k == "--batch") {
      a.batch = std::stoul(value());
    } else if (k == "--lr") {
      a.lr = std::stof(value());
    } else if (k == "--momentum") {
      a.momentum = std::stof(value());
    } else if (k == "--wd") {
      a.wd = std::stof(value());
    } else if (k == "--augment") {
      a.augment = true;
    } else if (k == "--cosine") {
      a.cosine = true;
    } else if (k == "--time-only") {
      a.time_only = true;
    } else if (k == "--synthetic") {
      a.synthetic = std::stoul(value());
    } else if (k == "--time-iters") {
      a.time_iters = std::stoi(value());
    } else if (k == "--dropit") {
      a.dropit = std::stod(value());
    } else {
      std::printf(
          "usage: %s [--data DIR] [--models mlp,cnn] [--epochs E] [--batch B] [--lr X] [--momentum B]\n"
          "       [--wd X] [--augment] [--time-only] [--time-iters N] [--synthetic N] [--dropit GAMMA]\n",
          argv[0]);
      return k == "--help" ? 0 : 2;
    }
  }
  try {
    const auto t0 = Clock::now();
    auto data = train::load_fashion_mnist(a.data);
    const auto norm = train::compute_normalization(data.train);
    train::normalize(data.train, norm);
    train::normalize(data.test, norm);
    std::printf("# loaded Fashion-MNIST (%zu train, %zu test) in %.2f s; mean %.4f std %.4f\n",
                data.train.count, data.test.count, seconds_since(t0), static_cast<double>(norm.mean[0]),
                static_cast<double>(norm.stddev[0]));
    time_models(data.train, a.time_iters, a.dropit);
    if (a.synthetic > 0) time_synthetic(a.synthetic, a.time_iters);
    if (a.time_only) return 0;
    for (const auto& spec : a.models) train_model(spec, data, a);
  } catch (const sparcol::Error& e) {
    std::fprintf(stderr, "sparcol: rank 0: error: %s\n", e.message().c_str());
    return sparcol::exit_code(e.code());
  }
  return 0;
}
