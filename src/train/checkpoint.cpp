// Checkpoint files and the checkpoint directory protocol (include/sparcol/train/checkpoint.hpp).
#include "sparcol/train/checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "sparcol/core/error.hpp"

namespace sparcol::train {

static_assert(std::endian::native == std::endian::little,
              "checkpoint files are little-endian; a big-endian host would need byte swapping");

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'S', 'P', 'C', 'O', 'L', 'C', 'K', 'P'};
constexpr std::uint32_t kHeaderSize = 32;
constexpr std::uint8_t kTypeU64 = 1;
constexpr std::uint8_t kTypeF64 = 2;
constexpr std::uint8_t kTypeF32 = 3;
constexpr std::uint8_t kTypeBytes = 4;
// Records are small in number and named by short identifiers; anything longer is corruption.
constexpr std::uint32_t kMaxNameLength = 4096;

const char* type_name(std::uint8_t type) {
  switch (type) {
    case kTypeU64:
      return "u64";
    case kTypeF64:
      return "f64";
    case kTypeF32:
      return "f32";
    case kTypeBytes:
      return "bytes";
    default:
      return "unknown";
  }
}

std::uint32_t crc(const void* data, std::size_t bytes) {
  // zlib's crc32 takes a uInt length: feed large buffers in pieces.
  uLong c = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (bytes > 0) {
    const auto n = static_cast<uInt>(std::min<std::size_t>(bytes, 1u << 30));
    c = crc32(c, p, n);
    p += n;
    bytes -= n;
  }
  return static_cast<std::uint32_t>(c);
}

template <typename T>
void put_raw(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

[[noreturn]] void io_error(int rank, const std::string& what) {
  throw Error(ErrorCode::kIo, rank, what);
}

std::string sys_error() {
  return std::strerror(errno);
}

// Writes all bytes to fd (retrying short writes).
void write_all(int fd, const char* data, std::size_t bytes, const std::string& path, int rank) {
  while (bytes > 0) {
    const ssize_t n = ::write(fd, data, bytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      io_error(rank, "checkpoint '" + path + "': write failed: " + sys_error());
    }
    data += n;
    bytes -= static_cast<std::size_t>(n);
  }
}

// Writes bytes to path + ".part", fsyncs, renames to path, fsyncs the directory.
}  // namespace

void write_file_durably(const std::string& path, const std::string& bytes, int rank) {
  const std::string part = path + ".part";
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_error(rank, "cannot create '" + part + "': " + sys_error());
  try {
    write_all(fd, bytes.data(), bytes.size(), part, rank);
    if (::fsync(fd) != 0) io_error(rank, "fsync of '" + part + "' failed: " + sys_error());
  } catch (...) {
    ::close(fd);
    ::unlink(part.c_str());
    throw;
  }
  if (::close(fd) != 0) io_error(rank, "closing '" + part + "' failed: " + sys_error());
  if (::rename(part.c_str(), path.c_str()) != 0) {
    ::unlink(part.c_str());
    io_error(rank, "cannot rename '" + part + "' to '" + path + "': " + sys_error());
  }
  std::string dir = fs::path(path).parent_path().string();
  fsync_path(dir.empty() ? "." : dir, rank);
}

namespace {

std::string read_whole(const std::string& path, int rank) {
  std::error_code ec;
  if (!fs::exists(path, ec)) io_error(rank, "checkpoint '" + path + "': no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) io_error(rank, "checkpoint '" + path + "': cannot open: " + sys_error());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) io_error(rank, "checkpoint '" + path + "': read failed");
  return bytes;
}

// Parses "ckpt-<digits>" (nothing else); false otherwise.
bool parse_checkpoint_name(const std::string& name, std::uint64_t& step) {
  static const std::string prefix = "ckpt-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  std::uint64_t v = 0;
  for (std::size_t i = prefix.size(); i < name.size(); ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return false;
    if (v > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  step = v;
  return true;
}

void remove_tree(const fs::path& p, int rank) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) io_error(rank, "cannot remove '" + p.string() + "': " + ec.message());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CheckpointData
// ---------------------------------------------------------------------------------------------
CheckpointData::Record& CheckpointData::add(const std::string& name, std::uint8_t type) {
  SPARCOL_CHECK(!has(name), ErrorCode::kInternal, rank_, "checkpoint record '" + name + "' added twice");
  SPARCOL_CHECK(!name.empty() && name.size() <= kMaxNameLength, ErrorCode::kInternal, rank_,
                "checkpoint record name '" + name + "' is empty or too long");
  records_.push_back(Record{});
  records_.back().name = name;
  records_.back().type = type;
  return records_.back();
}

void CheckpointData::put_u64(const std::string& name, std::uint64_t value) {
  add(name, kTypeU64).u64 = value;
}
void CheckpointData::put_f64(const std::string& name, double value) {
  add(name, kTypeF64).f64 = value;
}
void CheckpointData::put_f32(const std::string& name, std::span<const float> values) {
  add(name, kTypeF32).f32.assign(values.begin(), values.end());
}
void CheckpointData::put_string(const std::string& name, const std::string& value) {
  add(name, kTypeBytes).bytes = value;
}

bool CheckpointData::has(const std::string& name) const {
  return std::any_of(records_.begin(), records_.end(), [&](const Record& r) { return r.name == name; });
}

const CheckpointData::Record& CheckpointData::find(const std::string& name, std::uint8_t type) const {
  for (const auto& r : records_) {
    if (r.name != name) continue;
    if (r.type != type) {
      io_error(rank_, "checkpoint '" + file_ + "': record '" + name + "' holds " + type_name(r.type) +
                          ", expected " + type_name(type));
    }
    return r;
  }
  io_error(rank_, "checkpoint '" + file_ + "': record '" + name + "' is missing");
}

std::uint64_t CheckpointData::get_u64(const std::string& name) const {
  return find(name, kTypeU64).u64;
}
double CheckpointData::get_f64(const std::string& name) const {
  return find(name, kTypeF64).f64;
}
const std::vector<float>& CheckpointData::get_f32(const std::string& name) const {
  return find(name, kTypeF32).f32;
}
const std::string& CheckpointData::get_string(const std::string& name) const {
  return find(name, kTypeBytes).bytes;
}

void CheckpointData::get_f32_into(const std::string& name, std::span<float> out) const {
  const auto& v = get_f32(name);
  if (v.size() != out.size()) {
    io_error(rank_, "checkpoint '" + file_ + "': record '" + name + "' holds " + std::to_string(v.size()) +
                        " values, this run expects " + std::to_string(out.size()));
  }
  std::copy(v.begin(), v.end(), out.begin());
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------
std::string checkpoint_bytes(const CheckpointData& data) {
  std::string payload;
  for (const auto& r : data.records()) {
    put_raw(payload, static_cast<std::uint32_t>(r.name.size()));
    payload.append(r.name);
    put_raw(payload, r.type);
    switch (r.type) {
      case kTypeU64:
        put_raw(payload, std::uint64_t{1});
        put_raw(payload, r.u64);
        break;
      case kTypeF64:
        put_raw(payload, std::uint64_t{1});
        put_raw(payload, r.f64);
        break;
      case kTypeF32:
        put_raw(payload, static_cast<std::uint64_t>(r.f32.size()));
        payload.append(reinterpret_cast<const char*>(r.f32.data()), r.f32.size() * sizeof(float));
        break;
      default:
        put_raw(payload, static_cast<std::uint64_t>(r.bytes.size()));
        payload.append(r.bytes);
        break;
    }
  }
  std::string file;
  file.reserve(kHeaderSize + payload.size());
  file.append(kMagic, sizeof kMagic);
  put_raw(file, kCheckpointVersion);
  put_raw(file, kHeaderSize);
  put_raw(file, static_cast<std::uint64_t>(payload.size()));
  put_raw(file, crc(payload.data(), payload.size()));
  put_raw(file, crc(file.data(), file.size()));
  file.append(payload);
  return file;
}

void write_checkpoint_file(const std::string& path, const CheckpointData& data, int rank) {
  write_file_durably(path, checkpoint_bytes(data), rank);
}

CheckpointData read_checkpoint_file(const std::string& path, int rank) {
  return parse_checkpoint_bytes(read_whole(path, rank), path, rank);
}

CheckpointData parse_checkpoint_bytes(std::string_view bytes, const std::string& name, int rank) {
  const std::string who = "checkpoint '" + name + "': ";
  if (bytes.size() < kHeaderSize) {
    io_error(rank, who + "truncated (" + std::to_string(bytes.size()) + " bytes, shorter than the header)");
  }
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    io_error(rank, who + "wrong magic (not a checkpoint)");
  auto at = [&](std::size_t offset, auto value) {
    std::memcpy(&value, bytes.data() + offset, sizeof value);
    return value;
  };
  const auto header_crc = at(28, std::uint32_t{});
  if (crc(bytes.data(), 28) != header_crc) io_error(rank, who + "header checksum mismatch (corrupt)");
  const auto version = at(8, std::uint32_t{});
  if (version != kCheckpointVersion) {
    io_error(rank, who + "format version " + std::to_string(version) + ", this program reads version " +
                       std::to_string(kCheckpointVersion));
  }
  const auto header_size = at(12, std::uint32_t{});
  const auto payload_size = at(16, std::uint64_t{});
  if (header_size != kHeaderSize)
    io_error(rank, who + "unexpected header size " + std::to_string(header_size));
  if (bytes.size() - kHeaderSize != payload_size) {
    io_error(rank, who + (bytes.size() - kHeaderSize < payload_size ? "truncated" : "trailing data") + " (" +
                       std::to_string(bytes.size() - kHeaderSize) + " payload bytes, the header says " +
                       std::to_string(payload_size) + ")");
  }
  if (crc(bytes.data() + kHeaderSize, payload_size) != at(24, std::uint32_t{})) {
    io_error(rank, who + "checksum mismatch (corrupt)");
  }

  CheckpointData data;
  data.file_ = name;
  data.rank_ = rank;
  std::size_t pos = kHeaderSize;
  auto need = [&](std::uint64_t n, const char* what) {
    if (n > bytes.size() - pos) io_error(rank, who + "malformed record (" + what + " runs past the end)");
  };
  while (pos < bytes.size()) {
    need(4, "name length");
    const auto name_len = at(pos, std::uint32_t{});
    pos += 4;
    if (name_len == 0 || name_len > kMaxNameLength)
      io_error(rank, who + "malformed record (bad name length)");
    need(name_len + 9ull, "record header");
    std::string record(bytes.substr(pos, name_len));
    pos += name_len;
    const auto type = static_cast<std::uint8_t>(bytes[pos]);
    pos += 1;
    const auto count = at(pos, std::uint64_t{});
    pos += 8;
    if (data.has(record)) io_error(rank, who + "record '" + record + "' appears twice");
    switch (type) {
      case kTypeU64:
      case kTypeF64:
        if (count != 1) io_error(rank, who + "malformed record '" + record + "'");
        need(8, "value");
        if (type == kTypeU64) {
          data.put_u64(record, at(pos, std::uint64_t{}));
        } else {
          data.put_f64(record, at(pos, double{}));
        }
        pos += 8;
        break;
      case kTypeF32: {
        if (count > (bytes.size() - pos) / sizeof(float)) {
          io_error(rank, who + "malformed record (float array '" + record + "' runs past the end)");
        }
        auto& rec = data.add(record, kTypeF32);
        rec.f32.resize(count);
        if (count > 0) std::memcpy(rec.f32.data(), bytes.data() + pos, count * sizeof(float));
        pos += count * sizeof(float);
        break;
      }
      case kTypeBytes:
        need(count, "string");
        data.put_string(record, std::string(bytes.substr(pos, count)));
        pos += count;
        break;
      default:
        io_error(rank, who + "record '" + record + "' has unknown type " + std::to_string(type));
    }
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Directory protocol
// ---------------------------------------------------------------------------------------------
std::string checkpoint_name(std::uint64_t step) {
  return "ckpt-" + std::to_string(step);
}

std::string staging_path(const std::string& dir, std::uint64_t step) {
  return (fs::path(dir) / ("." + checkpoint_name(step) + ".staging")).string();
}

std::string rank_file_name(int rank) {
  return "rank-" + std::to_string(rank) + ".bin";
}

void fsync_path(const std::string& path, int rank) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) io_error(rank, "cannot open '" + path + "' to fsync it: " + sys_error());
  const int rc = ::fsync(fd);
  const std::string err = rc != 0 ? sys_error() : "";
  ::close(fd);
  if (rc != 0) io_error(rank, "fsync of '" + path + "' failed: " + err);
}

void copy_file_durably(const std::string& src, const std::string& dst, int rank) {
  std::ifstream in(src, std::ios::binary);
  if (!in) io_error(rank, "cannot read '" + src + "': " + sys_error());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) io_error(rank, "reading '" + src + "' failed");
  write_file_durably(dst, bytes, rank);
}

std::string begin_checkpoint(const std::string& dir, std::uint64_t step) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fs::create_directory(dir, ec);
    if (ec) io_error(0, "cannot create checkpoint directory '" + dir + "': " + ec.message());
  }
  const std::string staging = staging_path(dir, step);
  remove_tree(staging, 0);
  fs::create_directory(staging, ec);
  if (ec) io_error(0, "cannot create '" + staging + "': " + ec.message());
  return staging;
}

void commit_checkpoint(const std::string& dir, std::uint64_t step, int keep) {
  SPARCOL_CHECK_ARG(keep >= 1, 0, "checkpoints to keep must be >= 1, got " + std::to_string(keep));
  const fs::path root(dir);
  const std::string staging = staging_path(dir, step);
  const fs::path final_path = root / checkpoint_name(step);
  fsync_path(staging, 0);
  // An existing complete checkpoint of the same step (an earlier run resumed from before it) is
  // moved aside, not overwritten in place: the new one appears whole by rename, then the old goes.
  std::error_code ec;
  fs::path aside;
  if (fs::exists(final_path, ec)) {
    aside = root / ("." + checkpoint_name(step) + ".replaced");
    remove_tree(aside, 0);
    fs::rename(final_path, aside, ec);
    if (ec) io_error(0, "cannot move '" + final_path.string() + "' aside: " + ec.message());
  }
  fs::rename(staging, final_path, ec);
  if (ec) io_error(0, "cannot rename '" + staging + "' to '" + final_path.string() + "': " + ec.message());
  fsync_path(dir, 0);
  write_file_durably((root / "latest").string(), checkpoint_name(step) + "\n", 0);
  if (!aside.empty()) remove_tree(aside, 0);

  // Leftovers of crashed writers (staging or moved-aside directories of other steps) go too.
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    const bool leftover =
        name.rfind(".ckpt-", 0) == 0 && (name.ends_with(".staging") || name.ends_with(".replaced"));
    if (leftover) remove_tree(entry.path(), 0);
  }
  // Prune: the newest `keep` with step <= this one stay; later steps belong to an abandoned run.
  std::vector<std::uint64_t> older;
  for (std::uint64_t s : list_checkpoints(dir)) {
    if (s > step) {
      remove_tree(root / checkpoint_name(s), 0);
    } else {
      older.push_back(s);
    }
  }
  if (older.size() > static_cast<std::size_t>(keep)) {
    for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < older.size(); ++i) {
      remove_tree(root / checkpoint_name(older[i]), 0);
    }
  }
}

std::vector<std::uint64_t> list_checkpoints(const std::string& dir) {
  std::vector<std::uint64_t> steps;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return steps;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::uint64_t s = 0;
    if (entry.is_directory(ec) && parse_checkpoint_name(entry.path().filename().string(), s))
      steps.push_back(s);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::uint64_t checkpoint_step(const std::string& checkpoint_dir, int rank) {
  fs::path p(checkpoint_dir);
  if (p.filename().empty()) p = p.parent_path();  // trailing slash
  std::uint64_t step = 0;
  if (!parse_checkpoint_name(p.filename().string(), step)) {
    io_error(rank, "'" + checkpoint_dir + "' is not a checkpoint directory (expected a name ckpt-<step>)");
  }
  return step;
}

std::string resolve_checkpoint(const std::string& path, int rank) {
  std::error_code ec;
  fs::path p(path);
  if (p.filename().empty()) p = p.parent_path();
  std::uint64_t step = 0;
  if (parse_checkpoint_name(p.filename().string(), step)) {
    if (!fs::is_directory(p, ec)) io_error(rank, "checkpoint '" + path + "' does not exist");
    return p.string();
  }
  if (!fs::is_directory(p, ec)) io_error(rank, "checkpoint directory '" + path + "' does not exist");
  const fs::path latest = p / "latest";
  if (fs::exists(latest, ec)) {
    std::ifstream in(latest);
    std::string name;
    std::getline(in, name);
    if (parse_checkpoint_name(name, step) && fs::is_directory(p / name, ec)) return (p / name).string();
  }
  // `latest` is missing or stale (a crash between renaming a checkpoint and updating it): every
  // ckpt-<step> directory is complete, so the newest one is the latest.
  const auto steps = list_checkpoints(p.string());
  if (steps.empty()) io_error(rank, "no checkpoint in '" + path + "' (no ckpt-<step> directory)");
  return (p / checkpoint_name(steps.back())).string();
}

}  // namespace sparcol::train
