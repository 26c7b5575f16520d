// Checkpoint and resume glue of the trainer (docs/train.md, "Checkpoints"): this rank's state to and
// from its file in a checkpoint directory (the file format and the atomic directory protocol are in
// checkpoint.hpp).
#include <filesystem>

#include "sparcol/core/error.hpp"
#include "sparcol/train/checkpoint.hpp"

#include "trainer_state.hpp"

namespace sparcol::train {

namespace fs = std::filesystem;

void Trainer::load_checkpoint(const std::string& checkpoint_dir) {
  State& s = *s_;
  const int r = s.rank;
  const std::string path = (fs::path(checkpoint_dir) / rank_file_name(r)).string();
  const CheckpointData d = read_checkpoint_file(path, r);
  const std::string who = "checkpoint '" + path + "'";
  const auto world = d.get_u64("world_size");
  SPARCOL_CHECK_ARG(world == static_cast<std::uint64_t>(s.world), r,
                    who + " was written by a run on " + std::to_string(world) + " ranks; this run has " +
                        std::to_string(s.world));
  SPARCOL_CHECK(d.get_u64("rank") == static_cast<std::uint64_t>(r), ErrorCode::kIo, r,
                who + " belongs to rank " + std::to_string(d.get_u64("rank")));
  const std::string diff = config_difference(d.get_string("config"), config_text_);
  SPARCOL_CHECK_ARG(diff.empty(), r,
                    who + " was written by another configuration (" + diff +
                        " in this run); resume with the same flags, or start afresh");
  const auto step = d.get_u64("step");
  SPARCOL_CHECK(step == checkpoint_step(checkpoint_dir, r), ErrorCode::kIo, r,
                who + " holds step " + std::to_string(step) + ", but its directory names another step");
  SPARCOL_CHECK(d.get_u64("part_crc") == s.part_crc, ErrorCode::kIo, r,
                who + ": this rank's part of the training set differs from the checkpoint's");

  d.get_f32_into("params", s.x);
  d.get_f32_into("buffers", s.model->buffers());
  for (auto& b : s.opt->state()) d.get_f32_into("opt." + b.name, b.data);
  s.opt->set_skipped_steps(d.get_u64("skipped_steps"));
  BatchIteratorState st;
  st.epoch = d.get_u64("iter.epoch");
  st.position = d.get_u64("iter.position");
  st.seed = d.get_u64("iter.seed");
  st.part_size = d.get_u64("iter.part_size");
  try {
    s.iter->restore(st);
  } catch (const Error& e) {
    throw Error(ErrorCode::kIo, r, who + ": batch order: " + e.message());
  }
  s.acc_loss = d.get_f64("acc.loss");
  s.acc_correct = d.get_f64("acc.correct");
  s.acc_samples = d.get_f64("acc.samples");
  s.acc_steps = d.get_f64("acc.steps");
  s.up_all = d.get_f64("total.elements_up_all");
  s.down = d.get_f64("total.elements_down");
  s.dense = d.get_f64("total.dense_elements");
  // Communication totals (absent from checkpoints of earlier versions: counted from the resume on).
  auto total = [&](const char* name) { return d.has(name) ? d.get_f64(name) : 0.0; };
  s.rounds = total("total.rounds");
  s.bytes_sent = total("total.bytes_sent");
  s.bytes_recv = total("total.bytes_recv");
  s.mean_bytes_sent = total("total.mean_bytes_sent");
  s.mean_bytes_recv = total("total.mean_bytes_recv");
  s.wall_base = d.get_f64("wall_time_s");
  step_ = step;
  s.resumed_from = checkpoint_dir;
}

void Trainer::checkpoint(std::uint64_t completed) {
  State& s = *s_;
  const std::string& dir = config_.checkpoint_dir;
  if (s.rank == 0) {
    const std::string staging = begin_checkpoint(dir, completed);
    if (s.trace) {
      // The copy lets a resume restore a trace that was lost or damaged after this checkpoint. After
      // a flush the file on disk is complete (TraceWriter replaces it whole).
      s.trace->flush();
      copy_file_durably(config_.trace, (fs::path(staging) / "trace.h5").string(), 0);
    }
  }
  backend_.barrier();  // the staging directory exists

  CheckpointData d;
  d.put_string("config", config_text_);
  d.put_u64("world_size", static_cast<std::uint64_t>(s.world));
  d.put_u64("rank", static_cast<std::uint64_t>(s.rank));
  d.put_u64("step", completed);
  d.put_u64("skipped_steps", s.opt->skipped_steps());
  const auto st = s.iter->state();
  d.put_u64("iter.epoch", st.epoch);
  d.put_u64("iter.position", st.position);
  d.put_u64("iter.seed", st.seed);
  d.put_u64("iter.part_size", st.part_size);
  d.put_u64("part_crc", s.part_crc);
  d.put_f32("params", s.x);
  d.put_f32("buffers", s.model->buffers());
  for (const auto& b : s.opt->state()) d.put_f32("opt." + b.name, b.data);
  d.put_f64("acc.loss", s.acc_loss);
  d.put_f64("acc.correct", s.acc_correct);
  d.put_f64("acc.samples", s.acc_samples);
  d.put_f64("acc.steps", s.acc_steps);
  d.put_f64("total.elements_up_all", s.up_all);
  d.put_f64("total.elements_down", s.down);
  d.put_f64("total.dense_elements", s.dense);
  d.put_f64("total.rounds", s.rounds);
  d.put_f64("total.bytes_sent", s.bytes_sent);
  d.put_f64("total.bytes_recv", s.bytes_recv);
  d.put_f64("total.mean_bytes_sent", s.mean_bytes_sent);
  d.put_f64("total.mean_bytes_recv", s.mean_bytes_recv);
  d.put_f64("wall_time_s", s.wall_now());
  write_checkpoint_file((fs::path(staging_path(dir, completed)) / rank_file_name(s.rank)).string(), d,
                        s.rank);
  backend_.barrier();  // every rank's file is durable

  if (s.rank == 0) {
    commit_checkpoint(dir, completed, config_.keep_checkpoints);
    if (!config_.quiet && out_) {
      *out_ << "checkpoint " << (fs::path(dir) / checkpoint_name(completed)).string() << std::endl;
    }
  }
}

}  // namespace sparcol::train
