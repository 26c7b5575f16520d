// The trainer's outputs: the checks before the first step (check_outputs), and the trace: its
// creation or continuation on resume, the rows gathered from every rank, the flushes.
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/io/report.hpp"
#include "sparcol/train/checkpoint.hpp"

#include "sparcol/coll/agree.hpp"
#include "trainer_state.hpp"

namespace sparcol::train {

namespace fs = std::filesystem;

void Trainer::check_outputs() {
  State& s = *s_;
  const int r = s.rank;
  if (!config_.checkpoint_dir.empty()) {
    std::error_code ec;
    const fs::path dir(config_.checkpoint_dir);
    if (fs::exists(dir, ec)) {
      SPARCOL_CHECK(fs::is_directory(dir, ec), ErrorCode::kIo, r,
                    "--checkpoint: '" + config_.checkpoint_dir + "' is not a directory");
      SPARCOL_CHECK(::access(dir.c_str(), W_OK) == 0, ErrorCode::kIo, r,
                    "--checkpoint: directory '" + config_.checkpoint_dir + "' is not writable");
    } else {
      const std::string why = io::unwritable_reason(config_.checkpoint_dir);
      SPARCOL_CHECK(why.empty(), ErrorCode::kIo, r, "--checkpoint: " + why);
    }
  }
  if (r != 0) return;
  if (!config_.save_params.empty()) {
    const std::string why = io::unwritable_reason(config_.save_params);
    SPARCOL_CHECK(why.empty(), ErrorCode::kIo, r, "--save-params: " + why);
  }
  if (config_.trace.empty()) return;
  const std::string& path = config_.trace;
  const std::string why = io::unwritable_reason(path);
  SPARCOL_CHECK(why.empty(), ErrorCode::kIo, r, "--trace: " + why);
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (s.resumed_from.empty()) {
    SPARCOL_CHECK(
        !exists || config_.overwrite, ErrorCode::kIo, r,
        "--trace: '" + path + "' exists; pass --overwrite to replace it, or --resume to continue it");
    return;
  }
  if (!exists) return;
  const TraceInfo info = inspect_trace(path);
  if (info.readable) {
    const std::string diff = config_difference(info.config, config_text_);
    SPARCOL_CHECK_ARG(diff.empty(), r,
                      "--trace: '" + path + "' was written by another configuration (" + diff +
                          " in this run); use another --trace");
  }
  const bool copy = fs::exists(fs::path(s.resumed_from) / "trace.h5", ec);
  const bool usable = info.readable && info.last_step >= static_cast<std::int64_t>(step_);
  SPARCOL_CHECK(
      usable || copy, ErrorCode::kIo, r,
      "--trace: '" + path + "' " +
          (info.readable ? "ends at step " + std::to_string(info.last_step) + ", before the checkpoint's"
                         : "is unreadable (" + info.error + ")") +
          ", and checkpoint '" + s.resumed_from + "' holds no copy of the trace");
}

void Trainer::open_trace() {
  State& s = *s_;
  if (s.rank != 0 || config_.trace.empty()) return;
  const std::string& path = config_.trace;
  const auto step = static_cast<std::int64_t>(step_);
  std::error_code ec;
  // Resuming into an existing trace continues it (rows past the checkpoint dropped); a damaged or
  // short one is first restored from the checkpoint's copy. A trace that does not exist yet (a
  // resubmitted job writing into a new directory) starts afresh at the checkpoint's step.
  if (!s.resumed_from.empty() && fs::exists(path, ec)) {
    const TraceInfo info = inspect_trace(path);
    if (info.readable && info.last_step >= step) {
      s.trace = std::make_unique<TraceWriter>(TraceWriter::resume(path, config_text_, step));
      return;
    }
    const std::string copy = (fs::path(s.resumed_from) / "trace.h5").string();
    const std::string what = info.readable ? "ends at step " + std::to_string(info.last_step) +
                                                 ", before the checkpoint's step " + std::to_string(step)
                                           : "is unreadable (" + info.error + ")";
    SPARCOL_CHECK(fs::exists(copy, ec), ErrorCode::kIo, 0,
                  "--trace: '" + path + "' " + what + ", and checkpoint '" + s.resumed_from +
                      "' holds no copy of the trace");
    io::print_warning(
        0, "trace '" + path + "' " + what + "; restoring it from the copy in '" + s.resumed_from + "'");
    copy_file_durably(copy, path, 0);
    s.trace = std::make_unique<TraceWriter>(TraceWriter::resume(path, config_text_, step));
    return;
  }
  std::vector<TraceAttribute> a;
  auto i64 = [](auto v) { return TraceValue(static_cast<std::int64_t>(v)); };
  const bool dense = is_dense(config_);
  a.push_back({"program", std::string("sparcol-train")});
  a.push_back({"version", std::string(SPARCOL_VERSION_STRING)});
  a.push_back({"config", config_text_});
  a.push_back({"model", config_.model});
  a.push_back({"num_params", i64(s.x.size())});
  a.push_back({"norm", config_.model == "resnet20" ? config_.norm : std::string("none")});
  a.push_back({"data", config_.model == "synthetic" ? std::string("synthetic") : config_.data_dir});
  a.push_back({"train_samples", i64(config_.train_samples)});
  a.push_back({"test_samples", i64(config_.test_samples)});
  a.push_back({"partition", config_.partition});
  a.push_back({"dirichlet_alpha", config_.dirichlet_alpha});
  a.push_back({"augment", i64(config_.augment)});
  a.push_back({"dropit", config_.dropit});
  a.push_back({"dropit_layers", config_.dropit > 0 ? config_.dropit_layers : std::string("none")});
  a.push_back({"optimizer", config_.optimizer});
  // What the method runs: none (dense), sign (marsit, sign-cascade), low-rank (powersgd), the
  // compressor of the averaging for the local-SGD family (none: exact averaging), or the configured
  // compressor; density 1 where the method has none.
  const bool local = optim::method_is_local(config_.optimizer);
  const std::string compressor = dense   ? std::string("none")
                                 : local ? config_.avg_compressor
                                         : optim::method_compressor(config_.optimizer, config_.compressor);
  const bool has_density = !dense && (local ? compressor != "none" : compressor == config_.compressor);
  a.push_back({"compressor", compressor});
  a.push_back({"density", has_density ? (local ? config_.avg_density : config_.density) : 1.0});
  a.push_back({"layerwise", i64(config_.layerwise)});
  a.push_back({"alpha", s.opt->alpha()});
  a.push_back({"momentum", config_.momentum});
  a.push_back({"weight_decay", config_.weight_decay});
  a.push_back({"lr", config_.lr});
  a.push_back({"schedule", config_.schedule});
  a.push_back({"epochs", config_.epochs});
  a.push_back({"batch", i64(config_.batch)});
  a.push_back({"world_size", i64(s.world)});
  a.push_back({"seed", i64(config_.seed)});
  a.push_back({"steps_per_epoch", i64(steps_per_epoch_)});
  a.push_back({"total_steps", i64(total_steps_)});
  a.push_back({"eval_every", i64(s.eval_every)});
  a.push_back({"first_step", i64(step_)});
  a.push_back({"completed_steps", i64(step_)});
  a.push_back({"skipped_steps", i64(s.opt->skipped_steps())});
  a.push_back({"rcc", s.dense > 0 ? (s.up_all + s.down) / s.dense : 0.0});
  a.push_back({"wall_time_s", s.wall_base});
  a.push_back({"per_worker_models", i64(s.per_worker)});
  a.push_back({"rounds_total", i64(s.rounds)});
  a.push_back({"bytes_sent_total", s.mean_bytes_sent});
  a.push_back({"bytes_recv_total", s.mean_bytes_recv});
  s.trace = std::make_unique<TraceWriter>(TraceWriter::create(path, a));
}

void Trainer::write_trace() {
  State& s = *s_;
  if (s.rank != 0 || !s.trace) return;
  s.trace->append(s.rows);
  for (const auto& e : s.eval_rows) s.trace->append(e);
  s.rows.clear();
  s.eval_rows.clear();
  s.trace->set_attribute({"completed_steps", static_cast<std::int64_t>(step_)});
  s.trace->set_attribute({"skipped_steps", static_cast<std::int64_t>(s.opt->skipped_steps())});
  s.trace->set_attribute({"rcc", s.dense > 0 ? (s.up_all + s.down) / s.dense : 0.0});
  s.trace->set_attribute({"wall_time_s", s.wall_now()});
  write_memory_attributes();
  s.trace->set_attribute({"rounds_total", static_cast<std::int64_t>(s.rounds)});
  s.trace->set_attribute({"bytes_sent_total", s.mean_bytes_sent});
  s.trace->set_attribute({"bytes_recv_total", s.mean_bytes_recv});
  s.trace->flush();
}

// The memory accounting (docs/traces.md): the layer caches at the peak of a step, and at the end of
// the run the ranks' peak resident memory.
void Trainer::write_memory_attributes() {
  State& s = *s_;
  if (s.rank != 0 || !s.trace) return;
  auto i64 = [](auto v) { return TraceValue(static_cast<std::int64_t>(v)); };
  if (!s.peak_caches.empty()) {
    s.trace->set_attribute({"cached_bytes", i64(s.peak_cached)});
    s.trace->set_attribute({"cached_dense_bytes", i64(s.peak_cached_dense)});
    for (const LayerCache& c : s.peak_caches) {
      s.trace->set_attribute({"cached_bytes." + c.layer, i64(c.bytes)});
      s.trace->set_attribute({"cached_dense_bytes." + c.layer, i64(c.dense_bytes)});
    }
  }
  if (!s.peak_rss.empty()) {
    double most = 0;
    for (double r : s.peak_rss) most = std::max(most, r);
    s.trace->set_attribute({"peak_rss_bytes", i64(most)});
    s.trace->set_attribute({"peak_rss_bytes_rank0", i64(s.peak_rss.front())});
  }
}

// Averages the per-rank values of the pending steps over ranks (in rank order, so the result does
// not depend on timing) and hands them to rank 0.
void Trainer::gather_rows() {
  State& s = *s_;
  const std::size_t rows = s.pending_shared.size();
  if (rows == 0) return;
  const auto K = static_cast<std::size_t>(s.world);
  const std::size_t per_rank = rows * kLocalFields;
  std::vector<double> all(K * per_rank);
  coll::allgather_small(backend_, s.pending_local.data(), per_rank * sizeof(double), all.data(),
                        comm::kTagAllgather);
  if (s.rank == 0) {
    for (std::size_t i = 0; i < rows; ++i) {
      double mean[kLocalFields] = {};
      for (std::size_t r = 0; r < K; ++r) {
        for (std::size_t f = 0; f < kLocalFields; ++f) mean[f] += all[r * per_rank + i * kLocalFields + f];
      }
      for (double& m : mean) m /= static_cast<double>(K);
      TraceStepRow row = s.pending_shared[i];
      row.loss = mean[kLoss];
      row.accuracy = mean[kAccuracy];
      row.bytes_sent = mean[kBytesSent];
      row.bytes_recv = mean[kBytesRecv];
      row.elements_up = mean[kElementsUp];
      row.time_compute_s = mean[kTimeCompute];
      row.time_compress_s = mean[kTimeCompress];
      row.time_comm_s = mean[kTimeComm];
      row.time_step_s = mean[kTimeStep];
      row.bytes_up = mean[kBytesUp];
      row.bytes_sent_down = mean[kBytesSentDown];
      s.mean_bytes_sent += row.bytes_sent;
      s.mean_bytes_recv += row.bytes_recv;
      s.prog_loss += row.loss;
      s.prog_acc += row.accuracy;
      s.prog_rows += 1;
      if (!config_.trace.empty()) s.rows.push_back(row);
    }
  }
  s.pending_local.clear();
  s.pending_shared.clear();
}

}  // namespace sparcol::train
