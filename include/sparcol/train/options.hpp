// The options of sparcol-train and who reads them: one table (options.cpp) that drives
//   - validation: an option given explicitly that the chosen method, model, partition or schedule
//     does not read is an error naming the option and the choice (kInvalidArgument, exit 2);
//   - the canonical configuration text that checkpoints and traces record (canonical_config): exactly
//     the options of the table that determine the trajectory and that this configuration reads;
//   - the help text (which methods, models, ... read an option).
// Presets set only the options the configuration reads (apply_preset), so a preset never triggers
// the error: only explicit flags do.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "sparcol/train/trainer.hpp"

namespace sparcol::train {

// The choice an option depends on: every run reads it, or only some methods (--optimizer), models
// (--model), partitions (--partition) or schedules (--schedule).
enum class ReadBy { kAll, kMethod, kModel, kPartition, kSchedule };

struct TrainOption {
  std::string flag;                  // "--alpha"
  ReadBy read_by = ReadBy::kAll;     // which choice decides whether the option is read
  std::vector<std::string> readers;  // the methods, models, ... that read it (read_by != kAll)
  std::string key;                   // key in the canonical text; "" = changes no parameter
  std::function<std::string(const TrainConfig&)> value;  // canonical value (when key is set)
};

// Every option of TrainConfig, in the order of the canonical text.
const std::vector<TrainOption>& train_options();

// The option of the table named flag, or nullptr.
const TrainOption* find_train_option(const std::string& flag);

// Whether the configuration reads the option (its method, model, ... is one of the readers).
bool reads(const TrainOption& option, const TrainConfig& config);

// "--optimizer gmc-plus, def-a" for options read by some choices only, "" for options every run reads.
std::string readers_text(const TrainOption& option);

// The first option for which given(flag) is true that config does not read: throws
// kInvalidArgument "--alpha applies to --optimizer gmc-plus, def-a only (this run: --optimizer gmc)".
void check_options_read(const TrainConfig& config, const std::function<bool(const std::string& flag)>& given,
                        int rank);

// liec's downward density: --down-density, or --density when not given (ALGORITHMS.md 10.2).
double resolved_down_density(const TrainConfig& c);
// The rank of powersgd and powergossip: --low-rank, or the method's default (powersgd 2, powergossip 1).
int resolved_low_rank(const TrainConfig& config);
// CSER's densities of C1 and C2: --cser-density1 / --cser-density2, or density / 2 and min(1, 2 density).
double cser_density1(const TrainConfig& config);
double cser_density2(const TrainConfig& config);

}  // namespace sparcol::train
