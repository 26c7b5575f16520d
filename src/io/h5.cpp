#include "sparcol/io/h5.hpp"

#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "sparcol/core/error.hpp"

namespace sparcol::io {

static_assert(std::is_same_v<hid_t, std::int64_t>, "sparcol::io assumes HDF5 >= 1.10 (64-bit hid_t)");
static_assert(std::is_same_v<herr_t, int>, "sparcol::io assumes herr_t is int");

namespace {

// The innermost message of HDF5's error stack (where the failure was detected), then clears it.
std::string h5_detail() {
  std::string out;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
        auto* s = static_cast<std::string*>(data);
        if (n == 0 && e != nullptr && e->desc != nullptr) *s = std::string(e->func_name) + "(): " + e->desc;
        return 0;
      },
      &out);
  H5Eclear2(H5E_DEFAULT);
  return out;
}

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  const std::string detail = h5_detail();
  throw Error(ErrorCode::kIo, -1,
              "HDF5: " + what + " (" + where + ")" + (detail.empty() ? "" : ": " + detail));
}

// Every HDF5 call returns a negative value on failure (hid_t, herr_t, htri_t, ssize_t alike).
template <typename R>
R check(R rc, const std::string& where, const std::string& what) {
  if (rc < 0) fail(where, what);
  return rc;
}

// HDF5 prints its error stack to stderr by default; sparcol reports errors through Error instead.
void quiet_hdf5() {
  static const bool once = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)once;
}

template <H5Element T>
hid_t mem_type() {
  if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  if constexpr (std::is_same_v<T, std::int64_t>) return H5T_NATIVE_INT64;
  if constexpr (std::is_same_v<T, std::uint64_t>) return H5T_NATIVE_UINT64;
}

// Files are written little-endian with explicit types, so they read the same on any machine.
template <H5Element T>
hid_t file_type() {
  if constexpr (std::is_same_v<T, double>) return H5T_IEEE_F64LE;
  if constexpr (std::is_same_v<T, float>) return H5T_IEEE_F32LE;
  if constexpr (std::is_same_v<T, std::int64_t>) return H5T_STD_I64LE;
  if constexpr (std::is_same_v<T, std::uint64_t>) return H5T_STD_U64LE;
}

template <H5Element T>
const char* element_name() {
  if constexpr (std::is_same_v<T, double>) return "double";
  if constexpr (std::is_same_v<T, float>) return "float";
  if constexpr (std::is_same_v<T, std::int64_t>) return "int64";
  if constexpr (std::is_same_v<T, std::uint64_t>) return "uint64";
}

// Names a stored type by class, size and sign (byte order is converted by HDF5 without loss).
std::string classify(hid_t type, const std::string& where) {
  const H5T_class_t cls = H5Tget_class(type);
  check(static_cast<int>(cls), where, "query the element type of");
  const std::size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT && size == 8) return "double";
  if (cls == H5T_FLOAT && size == 4) return "float";
  if (cls == H5T_INTEGER && size == 8) {
    const H5T_sign_t sign = check(H5Tget_sign(type), where, "query the sign of");
    return sign == H5T_SGN_NONE ? "uint64" : "int64";
  }
  return "other";
}

H5Id owned(hid_t id, H5Id::CloseFn close) {
  return H5Id(id, close);
}

// A scalar dataspace for attributes.
H5Id scalar_space(const std::string& where) {
  return owned(check(H5Screate(H5S_SCALAR), where, "create a scalar dataspace for"), H5Sclose);
}

H5Id vlen_string_type(const std::string& where) {
  H5Id t = owned(check(H5Tcopy(H5T_C_S1), where, "copy the string type for"), H5Tclose);
  check(H5Tset_size(t.get(), H5T_VARIABLE), where, "make a variable-length string type for");
  check(H5Tset_cset(t.get(), H5T_CSET_UTF8), where, "set UTF-8 on the string type for");
  return t;
}

std::string attr_where(const std::string& where, std::string_view name) {
  return where + " attribute '" + std::string(name) + "'";
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// H5Id
// ------------------------------------------------------------------------------------------------

H5Id& H5Id::operator=(H5Id&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
  }
  return *this;
}

void H5Id::reset() {
  // Errors on close cannot be reported from a destructor; File::close() reports them for files.
  if (id_ >= 0 && close_ != nullptr) close_(id_);
  id_ = -1;
}

// ------------------------------------------------------------------------------------------------
// Object: names and attributes
// ------------------------------------------------------------------------------------------------

Object::Object(H5Id id, std::string file, std::string path)
    : id_(std::move(id)), file_(std::move(file)), path_(std::move(path)), where_(file_ + ":" + path_) {}

std::string Object::child_path(std::string_view name) const {
  if (!name.empty() && name.front() == '/') return std::string(name);
  return (path_ == "/" ? "/" : path_ + "/") + std::string(name);
}

bool Object::has_attr(std::string_view name) const {
  const std::string n(name);
  return check(H5Aexists(id(), n.c_str()), attr_where(where_, name), "check for") > 0;
}

namespace {
// Creates (replacing any existing one) attribute `name` of file type `ftype` on `obj`.
H5Id create_attr(hid_t obj, const std::string& where, std::string_view name, hid_t ftype) {
  const std::string n(name);
  const std::string aw = attr_where(where, name);
  if (check(H5Aexists(obj, n.c_str()), aw, "check for") > 0) check(H5Adelete(obj, n.c_str()), aw, "replace");
  H5Id space = scalar_space(aw);
  return owned(check(H5Acreate2(obj, n.c_str(), ftype, space.get(), H5P_DEFAULT, H5P_DEFAULT), aw, "create"),
               H5Aclose);
}

H5Id open_attr(hid_t obj, const std::string& where, std::string_view name) {
  const std::string n(name);
  const std::string aw = attr_where(where, name);
  if (check(H5Aexists(obj, n.c_str()), aw, "check for") <= 0) {
    throw Error(ErrorCode::kIo, -1, "HDF5: no attribute '" + n + "' on " + where);
  }
  H5Id a = owned(check(H5Aopen(obj, n.c_str(), H5P_DEFAULT), aw, "open"), H5Aclose);
  H5Id space = owned(check(H5Aget_space(a.get()), aw, "get the dataspace of"), H5Sclose);
  const hssize_t npoints = check(H5Sget_simple_extent_npoints(space.get()), aw, "get the size of");
  if (npoints != 1) {
    throw Error(ErrorCode::kIo, -1,
                "HDF5: " + aw + " holds " + std::to_string(npoints) + " values, expected one");
  }
  return a;
}

// Reads a one-element numeric attribute into T after checking its type class.
template <typename T>
T read_numeric_attr(hid_t obj, const std::string& where, std::string_view name, H5T_class_t want, hid_t mtype,
                    const char* what) {
  const std::string aw = attr_where(where, name);
  H5Id a = open_attr(obj, where, name);
  H5Id type = owned(check(H5Aget_type(a.get()), aw, "get the type of"), H5Tclose);
  if (H5Tget_class(type.get()) != want) {
    throw Error(ErrorCode::kIo, -1, "HDF5: " + aw + " is not " + what);
  }
  T value{};
  check(H5Aread(a.get(), mtype, &value), aw, "read");
  return value;
}
}  // namespace

void Object::set_attr(std::string_view name, std::string_view value) {
  const std::string aw = attr_where(where_, name);
  H5Id type = vlen_string_type(aw);
  H5Id a = create_attr(id(), where_, name, type.get());
  const std::string copy(value);  // NUL-terminated
  const char* ptr = copy.c_str();
  check(H5Awrite(a.get(), type.get(), &ptr), aw, "write");
}

void Object::set_attr(std::string_view name, std::int64_t value) {
  H5Id a = create_attr(id(), where_, name, H5T_STD_I64LE);
  check(H5Awrite(a.get(), H5T_NATIVE_INT64, &value), attr_where(where_, name), "write");
}

void Object::set_attr(std::string_view name, double value) {
  H5Id a = create_attr(id(), where_, name, H5T_IEEE_F64LE);
  check(H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &value), attr_where(where_, name), "write");
}

std::string Object::attr_string(std::string_view name) const {
  const std::string aw = attr_where(where_, name);
  H5Id a = open_attr(id(), where_, name);
  H5Id type = owned(check(H5Aget_type(a.get()), aw, "get the type of"), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw Error(ErrorCode::kIo, -1, "HDF5: " + aw + " is not a string");
  if (check(H5Tis_variable_str(type.get()), aw, "query the string kind of") > 0) {
    H5Id mtype = vlen_string_type(aw);
    char* buf = nullptr;
    check(H5Aread(a.get(), mtype.get(), &buf), aw, "read");
    std::string out = buf != nullptr ? std::string(buf) : std::string();
    H5free_memory(buf);
    return out;
  }
  // Fixed-length strings (as some writers produce): read the bytes and cut at the first NUL.
  const std::size_t size = H5Tget_size(type.get());
  H5Id mtype = owned(check(H5Tcopy(H5T_C_S1), aw, "copy the string type for"), H5Tclose);
  check(H5Tset_size(mtype.get(), size), aw, "size the string type for");
  std::string out(size, '\0');
  check(H5Aread(a.get(), mtype.get(), out.data()), aw, "read");
  out.resize(std::min(out.find('\0'), out.size()));
  return out;
}

std::int64_t Object::attr_int64(std::string_view name) const {
  return read_numeric_attr<std::int64_t>(id(), where_, name, H5T_INTEGER, H5T_NATIVE_INT64, "an integer");
}

double Object::attr_double(std::string_view name) const {
  return read_numeric_attr<double>(id(), where_, name, H5T_FLOAT, H5T_NATIVE_DOUBLE,
                                   "a floating-point number");
}

// ------------------------------------------------------------------------------------------------
// Location: groups and datasets
// ------------------------------------------------------------------------------------------------

bool Location::has(std::string_view name) const {
  // H5Lexists fails (rather than answering false) when an intermediate group is missing, so walk the
  // path one component at a time.
  std::string prefix;
  std::size_t pos = 0;
  if (!name.empty() && name.front() == '/') {
    prefix = "/";
    pos = 1;
  }
  while (pos < name.size()) {
    const std::size_t slash = std::min(name.find('/', pos), name.size());
    if (slash > pos) {
      if (!prefix.empty() && prefix.back() != '/') prefix += '/';
      prefix.append(name.substr(pos, slash - pos));
      if (check(H5Lexists(id(), prefix.c_str(), H5P_DEFAULT), where_ + " link '" + prefix + "'",
                "check for") <= 0)
        return false;
    }
    pos = slash + 1;
  }
  return !prefix.empty() && prefix != "/";
}

Group Location::create_group(std::string_view name) {
  const std::string n(name), p = child_path(name);
  if (has(name))
    throw Error(ErrorCode::kIo, -1, "HDF5: cannot create group " + file_ + ":" + p + ": it exists");
  H5Id g = owned(check(H5Gcreate2(id(), n.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), file_ + ":" + p,
                       "create group"),
                 H5Gclose);
  return Group(std::move(g), file_, p);
}

Group Location::open_group(std::string_view name) const {
  const std::string n(name), p = child_path(name);
  if (!has(name)) throw Error(ErrorCode::kIo, -1, "HDF5: no group " + file_ + ":" + p);
  H5Id g = owned(check(H5Gopen2(id(), n.c_str(), H5P_DEFAULT), file_ + ":" + p, "open group"), H5Gclose);
  return Group(std::move(g), file_, p);
}

Group Location::require_group(std::string_view name) {
  return has(name) ? open_group(name) : create_group(name);
}

void Location::remove(std::string_view name) {
  const std::string n(name);
  check(H5Ldelete(id(), n.c_str(), H5P_DEFAULT), file_ + ":" + child_path(name), "remove");
}

Dataset Location::open_dataset(std::string_view name) const {
  const std::string n(name), p = child_path(name);
  if (!has(name)) throw Error(ErrorCode::kIo, -1, "HDF5: no dataset " + file_ + ":" + p);
  H5Id d = owned(check(H5Dopen2(id(), n.c_str(), H5P_DEFAULT), file_ + ":" + p, "open dataset"), H5Dclose);
  return Dataset(std::move(d), file_, p);
}

template <H5Element T>
Dataset Location::write(std::string_view name, std::span<const T> values) {
  const std::string n(name), p = child_path(name), w = file_ + ":" + p;
  if (has(name)) throw Error(ErrorCode::kIo, -1, "HDF5: cannot write dataset " + w + ": it exists");
  const hsize_t dims[1] = {values.size()};
  H5Id space = owned(check(H5Screate_simple(1, dims, nullptr), w, "create the dataspace of"), H5Sclose);
  H5Id d = owned(
      check(H5Dcreate2(id(), n.c_str(), file_type<T>(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            w, "create dataset"),
      H5Dclose);
  if (!values.empty())
    check(H5Dwrite(d.get(), mem_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), w, "write");
  return Dataset(std::move(d), file_, p);
}

template <H5Element T>
Dataset Location::create_extendable(std::string_view name, ExtendableOptions options) {
  const std::string n(name), p = child_path(name), w = file_ + ":" + p;
  if (has(name)) throw Error(ErrorCode::kIo, -1, "HDF5: cannot create dataset " + w + ": it exists");
  SPARCOL_CHECK_ARG(
      options.deflate >= 0 && options.deflate <= 9, -1,
      "HDF5: deflate level must be in 0..9 for " + w + ", got " + std::to_string(options.deflate));
  const std::uint64_t row_elems = std::max<std::uint64_t>(1, options.cols);
  std::uint64_t chunk_rows = options.chunk_rows;
  if (chunk_rows == 0)
    chunk_rows = std::max<std::uint64_t>(1, (std::uint64_t{64} << 10) / (sizeof(T) * row_elems));
  // HDF5 limits a chunk to 4 GiB - 1 bytes.
  SPARCOL_CHECK_ARG(chunk_rows * row_elems * sizeof(T) < (std::uint64_t{1} << 32), -1,
                    "HDF5: a chunk of " + std::to_string(chunk_rows) + " rows of " +
                        std::to_string(row_elems) + " elements exceeds HDF5's 4 GiB chunk limit for " + w);
  const int rank = options.cols == 0 ? 1 : 2;
  const hsize_t dims[2] = {0, options.cols};
  const hsize_t maxdims[2] = {H5S_UNLIMITED, options.cols};
  const hsize_t chunk[2] = {chunk_rows, options.cols};
  H5Id space = owned(check(H5Screate_simple(rank, dims, maxdims), w, "create the dataspace of"), H5Sclose);
  H5Id dcpl = owned(check(H5Pcreate(H5P_DATASET_CREATE), w, "create the property list of"), H5Pclose);
  check(H5Pset_chunk(dcpl.get(), rank, chunk), w, "set the chunk size of");
  if (options.deflate > 0) {
    check(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(options.deflate)), w, "enable compression on");
  }
  H5Id d = owned(
      check(H5Dcreate2(id(), n.c_str(), file_type<T>(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), w,
            "create dataset"),
      H5Dclose);
  return Dataset(std::move(d), file_, p);
}

template <H5Element T>
std::vector<T> Location::read(std::string_view name) const {
  return open_dataset(name).read<T>();
}

// ------------------------------------------------------------------------------------------------
// File
// ------------------------------------------------------------------------------------------------

namespace {
H5Id open_file(const std::string& name, File::Mode mode) {
  quiet_hdf5();
  const std::string w = name + ":/";
  if (mode == File::Mode::kCreate) {
    return owned(check(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), w, "create file"),
                 H5Fclose);
  }
  // A clearer message than HDF5's for the commonest failure.
  std::error_code ec;
  if (!std::filesystem::exists(name, ec)) throw Error(ErrorCode::kIo, -1, "HDF5: no such file: " + name);
  const unsigned flags = mode == File::Mode::kReadOnly ? H5F_ACC_RDONLY : H5F_ACC_RDWR;
  return owned(check(H5Fopen(name.c_str(), flags, H5P_DEFAULT), w, "open file"), H5Fclose);
}
}  // namespace

File::File(const std::string& file_name, Mode mode) : Location(open_file(file_name, mode), file_name, "/") {}

void File::flush() {
  check(H5Fflush(id(), H5F_SCOPE_LOCAL), where_, "flush");
}

void File::close() {
  if (!id_.valid()) return;
  const hid_t f = id_.release();  // closed here whatever happens: never twice
  check(H5Fclose(f), where_, "close");
}

// ------------------------------------------------------------------------------------------------
// Dataset
// ------------------------------------------------------------------------------------------------

namespace {
struct Shape {
  std::vector<hsize_t> dims, maxdims;
};
Shape shape_of(hid_t dataset, const std::string& w) {
  H5Id space = owned(check(H5Dget_space(dataset), w, "get the dataspace of"), H5Sclose);
  const int nd = check(H5Sget_simple_extent_ndims(space.get()), w, "get the rank of");
  Shape s{std::vector<hsize_t>(static_cast<std::size_t>(nd)),
          std::vector<hsize_t>(static_cast<std::size_t>(nd))};
  check(H5Sget_simple_extent_dims(space.get(), s.dims.data(), s.maxdims.data()), w, "get the extent of");
  return s;
}
}  // namespace

Dataset::Dataset(H5Id id, std::string file, std::string path)
    : Object(std::move(id), std::move(file), std::move(path)) {
  const Shape s = shape_of(this->id(), where_);
  dims_.assign(s.dims.begin(), s.dims.end());
  extendable_ = !s.maxdims.empty() && s.maxdims[0] == H5S_UNLIMITED;
  H5Id type = owned(check(H5Dget_type(this->id()), where_, "get the type of"), H5Tclose);
  type_name_ = classify(type.get(), where_);
}

template <H5Element T>
void Dataset::check_type(const char* op) const {
  if (type_name_ != element_name<T>()) {
    throw Error(ErrorCode::kIo, -1,
                std::string("HDF5: cannot ") + op + " " + element_name<T>() + " values: dataset " + where_ +
                    " stores " + type_name_);
  }
  if (dims_.empty() || dims_.size() > 2) {
    throw Error(ErrorCode::kIo, -1,
                "HDF5: dataset " + where_ + " has rank " + std::to_string(dims_.size()) +
                    "; only 1-D and 2-D datasets are supported");
  }
}

template <H5Element T>
void Dataset::append(std::span<const T> data) {
  check_type<T>("append");
  if (!extendable_) throw Error(ErrorCode::kIo, -1, "HDF5: dataset " + where_ + " is not extendable");
  const std::uint64_t c = cols();
  if (data.size() % c != 0) {
    throw Error(ErrorCode::kIo, -1,
                "HDF5: appending " + std::to_string(data.size()) + " values to " + where_ +
                    ", whose rows hold " + std::to_string(c) + ": not a whole number of rows");
  }
  const std::uint64_t new_rows = data.size() / c;
  if (new_rows == 0) return;
  std::vector<hsize_t> ext(dims_.begin(), dims_.end()), start(dims_.size(), 0),
      count(dims_.begin(), dims_.end());
  start[0] = dims_[0];
  ext[0] = dims_[0] + new_rows;
  count[0] = new_rows;
  check(H5Dset_extent(id(), ext.data()), where_, "extend");
  dims_[0] = ext[0];
  H5Id fspace = owned(check(H5Dget_space(id()), where_, "get the dataspace of"), H5Sclose);
  check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
        where_, "select the new rows of");
  const hsize_t mdims[1] = {data.size()};
  H5Id mspace =
      owned(check(H5Screate_simple(1, mdims, nullptr), where_, "create a memory dataspace for"), H5Sclose);
  check(H5Dwrite(id(), mem_type<T>(), mspace.get(), fspace.get(), H5P_DEFAULT, data.data()), where_,
        "append to");
}

void Dataset::resize(std::uint64_t new_rows) {
  if (!extendable_) throw Error(ErrorCode::kIo, -1, "HDF5: dataset " + where_ + " is not extendable");
  std::vector<hsize_t> ext(dims_.begin(), dims_.end());
  ext[0] = new_rows;
  check(H5Dset_extent(id(), ext.data()), where_, "resize");
  dims_[0] = new_rows;
}

void Dataset::flush() {
  check(H5Fflush(id(), H5F_SCOPE_LOCAL), where_, "flush the file of");
}

template <H5Element T>
std::vector<T> Dataset::read_rows(std::uint64_t first, std::uint64_t count) const {
  check_type<T>("read");
  if (first > rows() || count > rows() - first) {
    throw Error(ErrorCode::kIo, -1,
                "HDF5: rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
                    ") are outside " + where_ + " (" + std::to_string(rows()) + " rows)");
  }
  std::vector<T> out(count * cols());
  if (out.empty()) return out;
  std::vector<hsize_t> start(dims_.size(), 0), cnt(dims_.begin(), dims_.end());
  start[0] = first;
  cnt[0] = count;
  H5Id fspace = owned(check(H5Dget_space(id()), where_, "get the dataspace of"), H5Sclose);
  check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr), where_,
        "select rows of");
  const hsize_t mdims[1] = {out.size()};
  H5Id mspace =
      owned(check(H5Screate_simple(1, mdims, nullptr), where_, "create a memory dataspace for"), H5Sclose);
  check(H5Dread(id(), mem_type<T>(), mspace.get(), fspace.get(), H5P_DEFAULT, out.data()), where_, "read");
  return out;
}

#define SPARCOL_H5_INSTANTIATE(T)                                                       \
  template Dataset Location::write<T>(std::string_view, std::span<const T>);            \
  template Dataset Location::create_extendable<T>(std::string_view, ExtendableOptions); \
  template std::vector<T> Location::read<T>(std::string_view) const;                    \
  template void Dataset::append<T>(std::span<const T>);                                 \
  template std::vector<T> Dataset::read_rows<T>(std::uint64_t, std::uint64_t) const;
SPARCOL_H5_INSTANTIATE(double)
SPARCOL_H5_INSTANTIATE(float)
SPARCOL_H5_INSTANTIATE(std::int64_t)
SPARCOL_H5_INSTANTIATE(std::uint64_t)
#undef SPARCOL_H5_INSTANTIATE

}  // namespace sparcol::io
