// The HDF5 training trace (include/sparcol/train/trace.hpp, docs/traces.md).
#include "sparcol/train/trace.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "sparcol/core/error.hpp"
#include "sparcol/io/h5.hpp"

namespace sparcol::train {

namespace {

// Integer columns; every other column is double.
bool is_int_column(const std::string& name) {
  return name == "step" || name == "skipped" || name == "comm_rounds";
}

double step_value(const TraceStepRow& r, const std::string& c) {
  if (c == "epoch") return r.epoch;
  if (c == "loss") return r.loss;
  if (c == "accuracy") return r.accuracy;
  if (c == "lr") return r.lr;
  if (c == "bytes_sent") return r.bytes_sent;
  if (c == "bytes_recv") return r.bytes_recv;
  if (c == "elements_up") return r.elements_up;
  if (c == "elements_down") return r.elements_down;
  if (c == "time_compute_s") return r.time_compute_s;
  if (c == "time_compress_s") return r.time_compress_s;
  if (c == "time_comm_s") return r.time_comm_s;
  if (c == "time_step_s") return r.time_step_s;
  if (c == "wall_time_s") return r.wall_time_s;
  if (c == "bytes_up") return r.bytes_up;
  if (c == "bytes_down") return r.bytes_down;
  if (c == "bytes_sent_down") return r.bytes_sent_down;
  throw Error(ErrorCode::kInternal, 0, "trace: unknown train column " + c);
}

double eval_value(const TraceEvalRow& r, const std::string& c) {
  if (c == "epoch") return r.epoch;
  if (c == "train_loss") return r.train_loss;
  if (c == "train_accuracy") return r.train_accuracy;
  if (c == "test_loss") return r.test_loss;
  if (c == "test_accuracy") return r.test_accuracy;
  if (c == "time_eval_s") return r.time_eval_s;
  if (c == "test_accuracy_worst") return r.test_accuracy_worst;
  if (c == "consensus_distance") return r.consensus_distance;
  if (c == "averaging_bytes_sent") return r.averaging_bytes_sent;
  if (c == "wall_time_s") return r.wall_time_s;
  throw Error(ErrorCode::kInternal, 0, "trace: unknown eval column " + c);
}

void set_attr(io::Object& o, const TraceAttribute& a) {
  std::visit([&](const auto& v) { o.set_attr(a.name, v); }, a.value);
}

}  // namespace

const std::vector<std::string>& trace_step_columns() {
  static const std::vector<std::string> c{"step",
                                          "epoch",
                                          "loss",
                                          "accuracy",
                                          "lr",
                                          "bytes_sent",
                                          "bytes_recv",
                                          "elements_up",
                                          "elements_down",
                                          "time_compute_s",
                                          "time_compress_s",
                                          "time_comm_s",
                                          "time_step_s",
                                          "wall_time_s",
                                          "skipped",
                                          "comm_rounds",
                                          "bytes_up",
                                          "bytes_down",
                                          "bytes_sent_down"};
  return c;
}

const std::vector<std::string>& trace_eval_columns() {
  static const std::vector<std::string> c{"step",
                                          "epoch",
                                          "train_loss",
                                          "train_accuracy",
                                          "test_loss",
                                          "test_accuracy",
                                          "time_eval_s",
                                          "wall_time_s",
                                          "test_accuracy_worst",
                                          "consensus_distance",
                                          "averaging_bytes_sent"};
  return c;
}

std::string config_difference(const std::string& a, const std::string& b) {
  // key=value lines; report the first key whose value differs or that only one side has.
  auto parse = [](const std::string& text) {
    std::vector<std::pair<std::string, std::string>> kv;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      const auto eq = line.find('=');
      kv.emplace_back(line.substr(0, eq), eq == std::string::npos ? "" : line.substr(eq + 1));
    }
    return kv;
  };
  const auto ka = parse(a), kb = parse(b);
  std::map<std::string, std::string> mb(kb.begin(), kb.end());
  for (const auto& [k, v] : ka) {
    const auto it = mb.find(k);
    if (it == mb.end()) return k + ": " + v + " vs (not set)";
    if (it->second != v) return k + ": " + v + " vs " + it->second;
  }
  std::map<std::string, std::string> ma(ka.begin(), ka.end());
  for (const auto& [k, v] : kb) {
    if (ma.find(k) == ma.end()) return k + ": (not set) vs " + v;
  }
  return {};
}

TraceInfo inspect_trace(const std::string& path) {
  TraceInfo info;
  try {
    io::File f(path, io::File::Mode::kReadOnly);
    if (f.has_attr("config")) info.config = f.attr_string("config");
    if (!f.has("train") || !f.has("eval")) {
      info.error = "no /train or /eval group (not a sparcol-train trace)";
      return info;
    }
    const auto steps = f.open_group("train").open_dataset("step");
    if (steps.rows() > 0) info.last_step = steps.read_rows<std::int64_t>(steps.rows() - 1, 1)[0];
    for (const auto& c : trace_step_columns()) {
      if (f.open_group("train").open_dataset(c).rows() != steps.rows()) {
        info.error = "/train/" + c + " has a different length than /train/step";
        return info;
      }
    }
    info.readable = true;
  } catch (const Error& e) {
    info.error = e.message();
  }
  return info;
}

namespace {

// One trace file opened for writing, with every column: the groups and datasets close before the
// file (members are destroyed in reverse order), so closing really closes it.
struct OpenTrace {
  io::File file;
  io::Group train, eval;
  std::map<std::string, io::Dataset> train_sets, eval_sets;

  // 1024 rows per chunk (8 KiB): a short run's trace stays small, a long one grows in few chunks.
  static constexpr io::ExtendableOptions kColumn{0, 1024, 0};

  OpenTrace(io::File f, bool create)
      : file(std::move(f)),
        train(create ? file.create_group("train") : file.open_group("train")),
        eval(create ? file.create_group("eval") : file.open_group("eval")) {
    for (const auto& c : trace_step_columns()) {
      train_sets.emplace(c, create ? (is_int_column(c) ? train.create_extendable<std::int64_t>(c, kColumn)
                                                       : train.create_extendable<double>(c, kColumn))
                                   : train.open_dataset(c));
    }
    for (const auto& c : trace_eval_columns()) {
      eval_sets.emplace(c, create ? (is_int_column(c) ? eval.create_extendable<std::int64_t>(c, kColumn)
                                                      : eval.create_extendable<double>(c, kColumn))
                                  : eval.open_dataset(c));
    }
  }

  // Closes the datasets and groups, then the file (reporting a failure to write it).
  static void close(std::unique_ptr<OpenTrace> t) {
    io::File f = std::move(t->file);
    t.reset();
    f.close();
  }
};

std::string part_path(const std::string& path) {
  return path + ".part";
}

// The file's changes are made on a copy, FILE.part, which then replaces FILE by rename: a kill at any
// moment leaves FILE as it was before or after, never half-written (HDF5 updates each dataset's
// size separately, so an interrupted in-place flush can leave columns of different lengths).
void replace_with_part(const std::string& path) {
  std::error_code ec;
  std::filesystem::rename(part_path(path), path, ec);
  if (ec) {
    std::filesystem::remove(part_path(path), ec);
    throw Error(ErrorCode::kIo, 0,
                "trace: cannot rename '" + part_path(path) + "' to '" + path + "': " + ec.message());
  }
}

std::unique_ptr<OpenTrace> open_part_copy(const std::string& path) {
  std::error_code ec;
  std::filesystem::copy_file(path, part_path(path), std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) {
    throw Error(ErrorCode::kIo, 0,
                "trace: cannot copy '" + path + "' to '" + part_path(path) + "': " + ec.message());
  }
  return std::make_unique<OpenTrace>(io::File(part_path(path), io::File::Mode::kReadWrite), false);
}

}  // namespace

// Rows and attributes wait here until flush().
struct TraceWriter::Impl {
  std::vector<TraceStepRow> rows;
  std::vector<TraceEvalRow> evals;
  std::vector<TraceAttribute> attributes;
};

TraceWriter::TraceWriter(std::unique_ptr<Impl> impl, std::string path)
    : impl_(std::move(impl)), path_(std::move(path)) {}
TraceWriter::TraceWriter(TraceWriter&&) noexcept = default;
TraceWriter& TraceWriter::operator=(TraceWriter&&) noexcept = default;
TraceWriter::~TraceWriter() = default;

TraceWriter TraceWriter::create(const std::string& path, const std::vector<TraceAttribute>& attributes) {
  {
    io::File f(part_path(path), io::File::Mode::kCreate);
    for (const auto& a : attributes) set_attr(f, a);
    OpenTrace::close(std::make_unique<OpenTrace>(std::move(f), true));
  }
  replace_with_part(path);
  return TraceWriter(std::make_unique<Impl>(), path);
}

TraceWriter TraceWriter::resume(const std::string& path, const std::string& config, std::int64_t step) {
  {
    io::File f(path, io::File::Mode::kReadOnly);
    const std::string stored = f.has_attr("config") ? f.attr_string("config") : std::string();
    const std::string diff = config_difference(stored, config);
    SPARCOL_CHECK_ARG(diff.empty(), -1,
                      "trace '" + path + "' was written by another configuration (" + diff +
                          " in this run); use another --trace, or --overwrite to start it afresh");
  }
  auto t = open_part_copy(path);
  // Keep the rows with step <= `step`: steps are increasing, so that is a prefix of each group.
  auto keep = [&](std::map<std::string, io::Dataset>& sets) {
    const auto steps = sets.at("step").read<std::int64_t>();
    const auto n =
        static_cast<std::uint64_t>(std::upper_bound(steps.begin(), steps.end(), step) - steps.begin());
    for (auto& [name, d] : sets) {
      if (d.rows() != n) d.resize(n);
    }
  };
  keep(t->train_sets);
  keep(t->eval_sets);
  OpenTrace::close(std::move(t));
  replace_with_part(path);
  return TraceWriter(std::make_unique<Impl>(), path);
}

void TraceWriter::append(std::span<const TraceStepRow> rows) {
  SPARCOL_CHECK(impl_ != nullptr, ErrorCode::kInternal, 0, "trace '" + path_ + "' is closed");
  impl_->rows.insert(impl_->rows.end(), rows.begin(), rows.end());
}

void TraceWriter::append(const TraceEvalRow& row) {
  SPARCOL_CHECK(impl_ != nullptr, ErrorCode::kInternal, 0, "trace '" + path_ + "' is closed");
  impl_->evals.push_back(row);
}

void TraceWriter::set_attribute(const TraceAttribute& attribute) {
  SPARCOL_CHECK(impl_ != nullptr, ErrorCode::kInternal, 0, "trace '" + path_ + "' is closed");
  impl_->attributes.push_back(attribute);
}

void TraceWriter::flush() {
  if (!impl_ || (impl_->rows.empty() && impl_->evals.empty() && impl_->attributes.empty())) return;
  auto t = open_part_copy(path_);
  const auto& rows = impl_->rows;
  if (!rows.empty()) {
    std::vector<double> col(rows.size());
    std::vector<std::int64_t> icol(rows.size());
    for (auto& [name, d] : t->train_sets) {
      if (is_int_column(name)) {
        for (std::size_t i = 0; i < rows.size(); ++i)
          icol[i] = name == "step" ? rows[i].step : name == "skipped" ? rows[i].skipped : rows[i].comm_rounds;
        d.append<std::int64_t>(icol);
      } else {
        for (std::size_t i = 0; i < rows.size(); ++i) col[i] = step_value(rows[i], name);
        d.append<double>(col);
      }
    }
  }
  for (const auto& row : impl_->evals) {
    for (auto& [name, d] : t->eval_sets) {
      if (is_int_column(name)) {
        d.append<std::int64_t>(std::vector<std::int64_t>{row.step});
      } else {
        d.append<double>(std::vector<double>{eval_value(row, name)});
      }
    }
  }
  for (const auto& a : impl_->attributes) set_attr(t->file, a);
  OpenTrace::close(std::move(t));
  replace_with_part(path_);
  impl_->rows.clear();
  impl_->evals.clear();
  impl_->attributes.clear();
}

void TraceWriter::close() {
  if (!impl_) return;
  flush();
  impl_.reset();
}

}  // namespace sparcol::train
