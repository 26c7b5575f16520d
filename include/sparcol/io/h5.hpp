// A small C++ layer over the HDF5 C API: files, groups, attributes and 1-D/2-D numeric datasets.
//
// Written for what sparcol stores: benchmark tables (sparcol-bench --h5, docs/bench.md) and training
// traces that grow one row per iteration and must survive a crash and be resumed. It covers
//   * files: create (truncating) or open read-only / read-write;
//   * groups (nested paths such as "a/b" must exist level by level; create_group makes one level);
//   * attributes on a file, group or dataset: string (variable-length UTF-8), int64, double;
//   * 1-D datasets of double, float, int64, uint64 written whole (fixed size, contiguous);
//   * extendable datasets (chunked, unlimited first dimension), 1-D or 2-D (rows x cols, cols fixed at
//     creation), appended to and flushed to disk, truncated for a resume, read back whole or in part.
//
// Contracts:
// * Errors: every HDF5 call is checked. A failure throws sparcol::Error(ErrorCode::kIo) whose message
//   names the file, the object path and the operation, plus the innermost message of HDF5's error
//   stack. HDF5's own automatic stack printing is switched off, so nothing but that message reaches
//   the user. The rank in these errors is -1 (io knows nothing of ranks); programs add theirs.
// * Types are strict: reading or appending T to a dataset stored with another element type throws
//   (kIo naming both types) instead of converting silently (a double -> int64 conversion truncates).
// * Lifetime: handles are RAII and move-only. A Group or Dataset keeps the file open at the HDF5
//   level even if its File object is destroyed first (HDF5 closes the file when the last object in
//   it is closed), so any destruction order is safe.
// * A Dataset handle caches its shape: rows appended through another handle to the same dataset are
//   seen after reopening it.
// * Threads: the system HDF5 here is built without thread safety: use this layer from one thread.
// * Durability: data written is in HDF5's cache until flush() or close; after flush() a crash keeps
//   every row appended so far (the file stays readable with h5py/h5dump).
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace sparcol::io {

// Element types the datasets support.
template <typename T>
concept H5Element = std::same_as<T, double> || std::same_as<T, float> || std::same_as<T, std::int64_t> ||
    std::same_as<T, std::uint64_t>;

// An owned HDF5 identifier (hid_t is int64_t in HDF5 >= 1.10) and the function that closes it.
class H5Id {
 public:
  using CloseFn = int (*)(std::int64_t);
  H5Id() = default;
  H5Id(std::int64_t id, CloseFn close) : id_(id), close_(close) {}
  H5Id(H5Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Id& operator=(H5Id&& o) noexcept;
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() { reset(); }

  std::int64_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Gives up ownership without closing.
  std::int64_t release() {
    const std::int64_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  std::int64_t id_ = -1;
  CloseFn close_ = nullptr;
};

// Layout of an extendable dataset.
struct ExtendableOptions {
  std::uint64_t cols = 0;        // 0: 1-D (a growing vector); > 0: 2-D with this many columns per row
  std::uint64_t chunk_rows = 0;  // rows per chunk; 0 picks about 64 KiB per chunk
  int deflate = 0;               // zlib level 0..9 (0: uncompressed)
};

class Group;

// What files, groups and datasets share: a name for messages and attributes.
class Object {
 public:
  // "file.h5:/group/name": what error messages call this object.
  const std::string& where() const { return where_; }
  const std::string& file_name() const { return file_; }
  const std::string& path() const { return path_; }

  bool has_attr(std::string_view name) const;
  // Setting an attribute that exists replaces it (whatever its previous type).
  void set_attr(std::string_view name, std::string_view value);
  void set_attr(std::string_view name, const char* value) { set_attr(name, std::string_view(value)); }
  void set_attr(std::string_view name, std::int64_t value);
  void set_attr(std::string_view name, double value);
  std::string attr_string(std::string_view name) const;
  std::int64_t attr_int64(std::string_view name) const;
  double attr_double(std::string_view name) const;

 protected:
  Object(H5Id id, std::string file, std::string path);
  std::int64_t id() const { return id_.get(); }
  std::string child_path(std::string_view name) const;

  H5Id id_;
  std::string file_;
  std::string path_;
  std::string where_;
};

class Dataset : public Object {
 public:
  int rank() const { return static_cast<int>(dims_.size()); }
  std::uint64_t rows() const { return dims_.empty() ? 0 : dims_[0]; }
  // Elements per row: the second dimension of a 2-D dataset, 1 for a 1-D one.
  std::uint64_t cols() const { return dims_.size() > 1 ? dims_[1] : 1; }
  std::uint64_t size() const { return rows() * cols(); }
  bool extendable() const { return extendable_; }
  // The stored element type: "double", "float", "int64", "uint64" or "other".
  const std::string& type_name() const { return type_name_; }

  // Appends data.size() / cols() rows (data.size() must be a multiple of cols(); row-major).
  template <H5Element T>
  void append(std::span<const T> data);
  template <H5Element T>
  void append(const std::vector<T>& data) {
    append<T>(std::span<const T>(data));
  }
  // Shrinks (or grows, with fill value 0) an extendable dataset to `rows` rows: resume after a crash.
  void resize(std::uint64_t rows);
  // Writes the file's cached data for this dataset to disk.
  void flush();

  // Rows [first, first + count) (row-major); the whole dataset with read<T>().
  template <H5Element T>
  std::vector<T> read_rows(std::uint64_t first, std::uint64_t count) const;
  template <H5Element T>
  std::vector<T> read() const {
    return read_rows<T>(0, rows());
  }

 private:
  friend class Location;
  Dataset(H5Id id, std::string file, std::string path);
  template <H5Element T>
  void check_type(const char* op) const;

  std::vector<std::uint64_t> dims_;
  bool extendable_ = false;
  std::string type_name_;
};

// A file or a group: holds groups and datasets.
class Location : public Object {
 public:
  // True if a link `name` (a group or dataset, relative path allowed) exists here.
  bool has(std::string_view name) const;
  Group create_group(std::string_view name);
  Group open_group(std::string_view name) const;
  // Opens the group if it exists, else creates it.
  Group require_group(std::string_view name);
  // Removes the link (the file space is not reclaimed: HDF5 does not shrink files).
  void remove(std::string_view name);

  // Writes a fixed-size 1-D dataset whole (an empty span gives a dataset of length 0).
  // Throws if `name` exists already.
  template <H5Element T>
  Dataset write(std::string_view name, std::span<const T> values);
  template <H5Element T>
  Dataset write(std::string_view name, const std::vector<T>& values) {
    return write<T>(name, std::span<const T>(values));
  }
  // Creates an empty extendable dataset of T (see ExtendableOptions). Throws if `name` exists.
  template <H5Element T>
  Dataset create_extendable(std::string_view name, ExtendableOptions options = {});
  Dataset open_dataset(std::string_view name) const;

  // Reads a whole dataset (any rank; row-major) of element type T.
  template <H5Element T>
  std::vector<T> read(std::string_view name) const;

 protected:
  Location(H5Id id, std::string file, std::string path)
      : Object(std::move(id), std::move(file), std::move(path)) {}
};

class File : public Location {
 public:
  enum class Mode { kCreate, kReadOnly, kReadWrite };  // kCreate truncates an existing file

  File(const std::string& file_name, Mode mode);
  void flush();
  // Closes the file now (also done by the destructor, which cannot report errors).
  void close();
};

class Group : public Location {
 private:
  friend class Location;
  Group(H5Id id, std::string file, std::string path)
      : Location(std::move(id), std::move(file), std::move(path)) {}
};

}  // namespace sparcol::io
