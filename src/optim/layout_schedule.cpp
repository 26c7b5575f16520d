#include <cmath>
#include <numbers>
#include <string>

#include "sparcol/core/error.hpp"
#include "sparcol/optim/layout.hpp"
#include "sparcol/optim/schedule.hpp"

namespace sparcol::optim {

Layout Layout::flat(std::uint64_t n, int dims) {
  Layout l;
  l.tensors = {TensorSpec{"flat", 0, n, dims}};
  return l;
}

void Layout::validate() const {
  std::uint64_t expect = 0;
  for (const auto& t : tensors) {
    SPARCOL_CHECK_ARG(t.offset == expect, -1,
                      "layout: tensor '" + t.name + "' starts at " + std::to_string(t.offset) +
                          ", expected " + std::to_string(expect) +
                          " (tensors must tile the flat vector in order)");
    expect += t.size;
  }
}

Schedule::Schedule(ScheduleConfig config, std::uint64_t steps_per_epoch)
    : config_(std::move(config)), steps_per_epoch_(steps_per_epoch == 0 ? 1 : steps_per_epoch) {
  SPARCOL_CHECK_ARG(config_.kind == "constant" || config_.kind == "step" || config_.kind == "cosine", -1,
                    "unknown learning-rate schedule '" + config_.kind + "' (valid: constant, step, cosine)");
  SPARCOL_CHECK_ARG(std::isfinite(config_.lr) && config_.lr >= 0, -1,
                    "learning rate must be a finite number >= 0, got " + std::to_string(config_.lr));
  SPARCOL_CHECK_ARG(config_.kind != "cosine" || config_.total_epochs > 0, -1,
                    "cosine schedule needs total epochs > 0");
}

double Schedule::lr(std::uint64_t step) const {
  const double epoch = static_cast<double>(step) / static_cast<double>(steps_per_epoch_);
  if (config_.kind == "step") {
    double lr = config_.lr;
    for (double m : config_.milestones)
      if (epoch >= m) lr *= config_.gamma;
    return lr;
  }
  if (config_.kind == "cosine") {
    const double e = std::min(epoch, config_.total_epochs);
    return config_.min_lr + (config_.lr - config_.min_lr) *
                                (1.0 + std::cos(std::numbers::pi * e / config_.total_epochs)) / 2.0;
  }
  return config_.lr;
}

}  // namespace sparcol::optim
