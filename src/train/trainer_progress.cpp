// What rank 0 of the trainer prints (docs/train.md): the header line, a progress line every
// --progress-every steps, the warnings of skipped steps and the summary. Nothing here changes the run.
#include <cmath>
#include <cstdio>
#include <ostream>

#include "sparcol/io/report.hpp"
#include "sparcol/optim/optimizer.hpp"
#include "sparcol/topo/graph.hpp"

#include "trainer_state.hpp"

namespace sparcol::train {

namespace {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto total = static_cast<long long>(std::llround(s));
  char buf[48];
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", total / 3600, (total % 3600) / 60);
  } else if (total >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", total / 60, total % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%llds", total);
  }
  return buf;
}

}  // namespace

void Trainer::print_header() {
  State& s = *s_;
  if (s.rank != 0 || config_.quiet || !out_) return;
  *out_ << "sparcol-train: " << config_.model << " (" << s.x.size() << " parameters), " << config_.optimizer
        << (is_dense(config_) ? std::string() : " with " + config_.compressor + " " + num(config_.density))
        << ", " << s.world << " ranks x batch " << config_.batch << ", " << steps_per_epoch_
        << " steps per epoch, " << total_steps_ << " steps";
  if (!s.resumed_from.empty()) *out_ << ", resumed at step " << step_ << " from " << s.resumed_from;
  *out_ << std::endl;
  if (optim::method_is_decentralized(config_.optimizer)) {
    const std::string t = config_.topology.empty() ? optim::default_topology(config_.optimizer) : config_.topology;
    *out_ << "topology: " << topo::describe(topo::make_topology(t, s.world)) << std::endl;
  }
}

void Trainer::print_progress(std::uint64_t completed) {
  State& s = *s_;
  if (s.rank != 0 || config_.quiet || out_ == nullptr || s.prog_rows == 0) return;
  const auto now = Clock::now();
  const double dt = seconds(now - s.prog_time);
  const double samples = static_cast<double>((completed - s.prog_step) * config_.batch) * s.world;
  char buf[256];
  const double elapsed = seconds(now - s.run_start);
  const double steps_here = static_cast<double>(completed - s.first_step);
  const double eta =
      steps_here > 0 ? elapsed / steps_here * static_cast<double>(s.end_step - completed) : -1.0;
  std::snprintf(buf, sizeof buf, "step %llu/%llu epoch %.2f loss %.4f acc %.2f%% %.0f samples/s ETA %s",
                static_cast<unsigned long long>(completed), static_cast<unsigned long long>(s.end_step),
                static_cast<double>(completed) / static_cast<double>(steps_per_epoch_),
                s.prog_loss / s.prog_rows, 100.0 * s.prog_acc / s.prog_rows, dt > 0 ? samples / dt : 0.0,
                format_duration(eta).c_str());
  *out_ << buf << std::endl;
  s.prog_loss = s.prog_acc = s.prog_rows = 0;
  s.prog_step = completed;
  s.prog_time = now;
}

void Trainer::report_skip(std::uint64_t completed, const std::vector<int>& bad_ranks) {
  State& s = *s_;
  if (s.rank != 0) return;
  // The first skips one by one, then every 1000th: a diverged run skips every step from then on.
  const std::uint64_t n = s.opt->skipped_steps();
  if (n <= 10 || n % 1000 == 0) {
    std::string ranks;
    for (int r : bad_ranks) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    io::print_warning(0, "step " + std::to_string(completed) + " skipped: non-finite gradient on rank(s) " +
                             ranks + " (" + std::to_string(n) + " skipped so far" +
                             (n == 10 ? "; from now on every 1000th is reported" : "") + ")");
  }
}

void Trainer::print_summary(const TrainSummary& sum) {
  State& s = *s_;
  if (s.rank != 0 || config_.quiet || !out_) return;
  if (sum.steps == sum.start_step) {
    *out_ << "nothing to do: the run is at step " << step_ << " of " << s.end_step << std::endl;
    return;
  }
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "done: step %llu/%llu, test accuracy %.2f%%, test loss %.4f, RCC %.4f%%, %.1f s "
                "(rank 0: compute %.1f s, compress %.1f s, communication %.1f s, evaluation %.1f s)",
                static_cast<unsigned long long>(step_), static_cast<unsigned long long>(total_steps_),
                100.0 * sum.test_accuracy, sum.test_loss, 100.0 * sum.rcc,
                seconds(Clock::now() - s.run_start), s.t_compute, s.t_compress, s.t_comm, s.t_eval);
  *out_ << buf;
  *out_ << "; " << sum.rounds_total << " communication rounds";
  if (sum.skipped_steps > 0) *out_ << "; " << sum.skipped_steps << " steps skipped (non-finite gradients)";
  *out_ << std::endl;
}

}  // namespace sparcol::train
