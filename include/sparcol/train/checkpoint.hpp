// Checkpoints of the native trainer: one binary file per rank inside a checkpoint directory, written
// so that a crash at any moment leaves either the previous complete checkpoint or the new one, never a
// mixture (docs/train.md, "Checkpoints").
//
// Layout on disk (DIR is the trainer's --checkpoint directory):
//   DIR/ckpt-<step>/rank-<r>.bin   every rank's state after <step> completed steps (r = 0 .. K-1)
//   DIR/ckpt-<step>/trace.h5       rank 0's copy of the trace as flushed at that step (when tracing)
//   DIR/latest                     one line "ckpt-<step>": the newest complete checkpoint
//   DIR/.ckpt-<step>.staging/      a checkpoint being written (ignored and replaced when found)
// A directory named ckpt-<step> is complete by construction: it is the staging directory renamed once
// every rank's file was durable (written to a temporary name, fsynced, renamed, directory fsynced).
//
// Rank file format (all integers little-endian; the host's byte order, checked at compile time):
//   offset  0  char[8]  magic "SPCOLCKP"
//           8  u32      format version (kCheckpointVersion)
//          12  u32      header size in bytes (32)
//          16  u64      payload size in bytes (the file is exactly header + payload)
//          24  u32      CRC-32 (zlib) of the payload
//          28  u32      CRC-32 of bytes 0..27
//          32  payload: records, each  u32 name length, name, u8 type, u64 count, count elements
// Record types: u64, f64, f32 (arrays of any length) and bytes (a string). Readers find records by
// name, so records can be added in later versions without breaking old readers.
//
// Errors: a missing, truncated or corrupt file (wrong magic or version, size or checksum mismatch,
// malformed records, a missing record) throws Error(kIo, rank, "checkpoint '<file>': <what>").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sparcol::train {

inline constexpr std::uint32_t kCheckpointVersion = 1;

// The named records of one rank file.
class CheckpointData {
 public:
  void put_u64(const std::string& name, std::uint64_t value);
  void put_f64(const std::string& name, double value);
  void put_f32(const std::string& name, std::span<const float> values);
  void put_string(const std::string& name, const std::string& value);

  bool has(const std::string& name) const;
  // Getters throw Error(kIo) naming the file (set by parse_checkpoint_bytes) when the record is
  // missing or has another type.
  std::uint64_t get_u64(const std::string& name) const;
  double get_f64(const std::string& name) const;
  const std::vector<float>& get_f32(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  // Copies a float record into out, which must have exactly the record's length.
  void get_f32_into(const std::string& name, std::span<float> out) const;

  // Where the data came from, for messages ("" before reading), and the rank that reads it.
  const std::string& file() const { return file_; }

  struct Record {
    std::string name;
    std::uint8_t type = 0;
    std::uint64_t u64 = 0;
    double f64 = 0.0;
    std::vector<float> f32;
    std::string bytes;
  };
  const std::vector<Record>& records() const { return records_; }

 private:
  friend CheckpointData parse_checkpoint_bytes(std::string_view bytes, const std::string& name, int rank);
  const Record& find(const std::string& name, std::uint8_t type) const;
  Record& add(const std::string& name, std::uint8_t type);

  std::vector<Record> records_;
  std::string file_;
  int rank_ = -1;
};

// Writes path atomically: path + ".part" is written, fsynced and renamed to path, and the directory
// is fsynced. An existing file at path is replaced only by the complete new one.
void write_checkpoint_file(const std::string& path, const CheckpointData& data, int rank);
// Reads the whole file at path and parses it with parse_checkpoint_bytes (messages name path).
CheckpointData read_checkpoint_file(const std::string& path, int rank);

// The bytes of a rank file holding data (header and payload; what write_checkpoint_file writes).
std::string checkpoint_bytes(const CheckpointData& data);
// Parses the bytes of a rank file: checks the header (magic, version, sizes, both checksums), then
// every record. `name` stands for the file in messages and becomes the result's file(). Every way the
// bytes can be wrong throws Error(kIo, rank, "checkpoint '<name>': <what>"); nothing larger than the
// input is allocated. For any valid input, checkpoint_bytes(result) == bytes.
CheckpointData parse_checkpoint_bytes(std::string_view bytes, const std::string& name, int rank);

// ---------------------------------------------------------------------------------------------
// The checkpoint directory protocol. No communication here: the trainer calls these in order with
// barriers between them (docs/train.md):
//   rank 0: begin_checkpoint(dir, step)             -> staging directory, empty
//   barrier; every rank: write_checkpoint_file(staging/rank-<r>.bin); barrier
//   rank 0: commit_checkpoint(dir, step)            -> ckpt-<step>, latest, old ones pruned
// ---------------------------------------------------------------------------------------------
std::string checkpoint_name(std::uint64_t step);  // "ckpt-<step>"
std::string staging_path(const std::string& dir, std::uint64_t step);
std::string rank_file_name(int rank);  // "rank-<r>.bin"

// Creates dir if missing (one level), removes a stale staging directory for step and creates it empty.
// Returns the staging directory.
std::string begin_checkpoint(const std::string& dir, std::uint64_t step);

// Makes the staging directory of step the checkpoint ckpt-<step>: fsyncs it, renames it into place
// (an existing ckpt-<step> from an earlier run is moved aside first and removed after), fsyncs dir,
// and replaces `latest` atomically. Then removes checkpoints beyond the newest `keep` among those with
// step <= this step, and every checkpoint with a larger step (left by a run that was resumed from an
// earlier checkpoint: it belongs to an abandoned trajectory). keep >= 1.
void commit_checkpoint(const std::string& dir, std::uint64_t step, int keep);

// The steps of the complete checkpoints in dir, ascending (empty if dir does not exist).
std::vector<std::uint64_t> list_checkpoints(const std::string& dir);

// Resolves what --resume names: a checkpoint directory (…/ckpt-<step>) or a --checkpoint directory
// (its `latest`, or the newest complete checkpoint when `latest` is missing or names a checkpoint
// that is gone). Throws Error(kIo, rank) naming the path when there is none.
std::string resolve_checkpoint(const std::string& path, int rank);
// The step of a checkpoint directory from its name (…/ckpt-<step>); throws kIo if it has no such name.
std::uint64_t checkpoint_step(const std::string& checkpoint_dir, int rank);

// fsyncs a file or directory (kIo on failure naming path and the system error).
void fsync_path(const std::string& path, int rank);
// Writes bytes to path as write_checkpoint_file does (path.part, fsync, rename, fsync directory).
void write_file_durably(const std::string& path, const std::string& bytes, int rank);
// Copies a file byte for byte to dst the same way.
void copy_file_durably(const std::string& src, const std::string& dst, int rank);

}  // namespace sparcol::train
