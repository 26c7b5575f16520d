// Learning-rate schedules (ALGORITHMS.md 0.1, 12.1): eta_t for iteration t.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparcol::optim {

struct ScheduleConfig {
  std::string kind = "constant";  // constant | step | cosine
  double lr = 0.1;                // eta_0
  // step: multiply by `gamma` at each epoch listed in `milestones`
  std::vector<double> milestones;  // epochs (fractional allowed)
  double gamma = 0.1;
  // cosine: eta_e = eta_0 * (1 + cos(pi * e / total_epochs)) / 2, evaluated at the fractional epoch
  // e = t / steps_per_epoch (per step, not per epoch, so the decay is smooth)
  double total_epochs = 1.0;
  double min_lr = 0.0;  // cosine floor: eta = min_lr + (eta_0 - min_lr) * (1 + cos) / 2
};

class Schedule {
 public:
  Schedule(ScheduleConfig config, std::uint64_t steps_per_epoch);
  double lr(std::uint64_t step) const;
  const ScheduleConfig& config() const { return config_; }

 private:
  ScheduleConfig config_;
  std::uint64_t steps_per_epoch_;
};

}  // namespace sparcol::optim
