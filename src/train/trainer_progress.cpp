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
  // What the method runs (optim::method_compressor): its density only where it has one; the
  // local-SGD family says how often and how it averages.
  const std::string comp = optim::method_compressor(config_.optimizer, config_.compressor);
  const std::string with =
      is_dense(config_) ? std::string()
      : optim::method_is_local(config_.optimizer)
          ? " every " + std::to_string(config_.period) + " steps" +
                (config_.avg_compressor == "none"
                     ? std::string(" (exact averaging)")
                     : " (averaging with " + config_.avg_compressor + " " + num(config_.avg_density) + ")")
      : comp != config_.compressor ? " with " + comp
                                   : " with " + comp + " " + num(config_.density);
  *out_ << "sparcol-train: " << config_.model << " (" << s.x.size() << " parameters), " << config_.optimizer
        << with << ", " << s.world << " ranks x batch " << config_.batch << ", " << steps_per_epoch_
        << " steps per epoch, " << total_steps_ << " steps";
  if (!s.resumed_from.empty()) *out_ << ", resumed at step " << step_ << " from " << s.resumed_from;
  *out_ << std::endl;
  if (optim::method_is_decentralized(config_.optimizer)) {
    const std::string t =
        config_.topology.empty() ? optim::default_topology(config_.optimizer) : config_.topology;
    *out_ << "topology: " << topo::describe(topo::make_topology(t, s.world)) << std::endl;
  }
  const std::string method_text = s.opt->startup_text();
  if (!method_text.empty()) *out_ << method_text << std::endl;
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
  // RCC (spec 9) compares all-reduce messages with the dense all-reduce's; the decentralized methods
  // account no all-reduce elements, so for them the line gives the bytes a step instead of a 0.
  char rcc[96];
  if (s.dense > 0)
    std::snprintf(rcc, sizeof rcc, "RCC %.4f%%", 100.0 * sum.rcc);
  else
    std::snprintf(rcc, sizeof rcc, "RCC n/a (no all-reduce; rank 0 sent %.0f B a step)",
                  step_ > 0 ? s.bytes_sent / static_cast<double>(step_) : 0.0);
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "done: step %llu/%llu, test accuracy %.2f%%, test loss %.4f, %s, %.1f s "
                "(rank 0: compute %.1f s, compress %.1f s, communication %.1f s, evaluation %.1f s)",
                static_cast<unsigned long long>(step_), static_cast<unsigned long long>(total_steps_),
                100.0 * sum.test_accuracy, sum.test_loss, rcc, seconds(Clock::now() - s.run_start),
                s.t_compute, s.t_compress, s.t_comm, s.t_eval);
  *out_ << buf;
  *out_ << "; " << sum.rounds_total << " communication rounds";
  if (sum.skipped_steps > 0) *out_ << "; " << sum.skipped_steps << " steps skipped (non-finite gradients)";
  *out_ << std::endl;
  print_memory();
}

// The memory lines of the summary: what the linear and convolution layers cached for backward at the
// peak of a step (DropIT or not), per layer and in total, and every rank's peak resident memory.
void Trainer::print_memory() {
  State& s = *s_;
  auto kib = [](double bytes) { return num(std::round(bytes / 1024.0 * 10.0) / 10.0) + " KiB"; };
  if (!s.peak_caches.empty()) {
    std::string dropit = config_.dropit > 0 ? "DropIT " + num(config_.dropit) + " " + config_.dropit_layers
                                            : std::string("DropIT off");
    const double ratio = s.peak_cached_dense > 0
                             ? static_cast<double>(s.peak_cached) / static_cast<double>(s.peak_cached_dense)
                             : 0.0;
    char buf[96];
    std::snprintf(buf, sizeof buf, "%.3f", ratio);
    *out_ << "memory: layer inputs cached for backward at the peak of a step " << kib(s.peak_cached) << " ("
          << dropit << "; without DropIT " << kib(s.peak_cached_dense) << ", ratio " << buf << ")"
          << std::endl;
    *out_ << "memory per layer:";
    for (const LayerCache& c : s.peak_caches) {
      *out_ << " " << c.layer << " " << kib(c.bytes);
      if (c.dropped)
        *out_ << " (" << c.kept << " of " << c.numel << " kept, dense " << kib(c.dense_bytes) << ")";
    }
    *out_ << std::endl;
  }
  if (!s.peak_rss.empty()) {
    *out_ << "memory: peak resident memory per rank (getrusage)";
    for (std::size_t r = 0; r < s.peak_rss.size(); ++r) {
      *out_ << (r == 0 ? " " : ", ") << num(std::round(s.peak_rss[r] / 1048576.0 * 10.0) / 10.0) << " MiB";
    }
    *out_ << std::endl;
  }
}

}  // namespace sparcol::train
