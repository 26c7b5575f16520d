// The bench's outputs (include/sparcol/io/bench_table.hpp, layouts in docs/bench.md).
#include "sparcol/io/bench_table.hpp"

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/io/h5.hpp"

namespace sparcol::io {

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

double ratio(double a, double b) {
  return b > 0 ? a / b : 0.0;
}
std::string num(double v) {
  return fmt("%.6g", v);
}
std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}
void open_file(std::ofstream& f, const std::string& path) {
  f.open(path, std::ios::out | std::ios::trunc);
  if (!f) throw Error(ErrorCode::kIo, -1, "cannot open '" + path + "' for writing: " + std::strerror(errno));
}

}  // namespace

BenchTable::BenchTable(BenchSetup setup) : s_(std::move(setup)) {
  if (!s_.csv.empty()) open_file(csv_, s_.csv);
  if (!s_.json.empty()) open_file(json_, s_.json);
  if (!s_.h5.empty()) h5_ = std::make_unique<File>(s_.h5, File::Mode::kCreate);
}

BenchTable::~BenchTable() = default;

void BenchTable::header() {
  std::printf("# sparcol-bench %s, build: %s\n", SPARCOL_VERSION_STRING, s_.build.c_str());
  std::string libs =
      s_.nccl_library.empty() ? s_.mpi_library : "NCCL " + s_.nccl_library + "; control: " + s_.mpi_library;
  std::printf("# ranks %d, backend %s%s%s, device %s, float32 sum\n", s_.ranks, s_.backend.c_str(),
              libs.empty() ? "" : " (", libs.empty() ? "" : (libs + ")").c_str(), s_.device.c_str());
  std::string ops;
  for (const auto& op : s_.ops) ops += std::string(ops.empty() ? "" : ",") + op;
  std::printf("# ops %s; %s; iters %d, warmup %d, check %d, seed %" PRIu64
              ", collective fingerprint check %s%s\n",
              ops.c_str(),
              s_.k ? ("k " + std::to_string(s_.k) + " per rank").c_str()
                   : ("density " + fmt("%g", s_.density)).c_str(),
              s_.iters, s_.warmup, s_.check, s_.seed, s_.collective_check ? "on" : "off",
              s_.nan_injected ? ", NaN injected" : "");
  const bool nccl = s_.backend == "nccl";
  std::printf(
      "# time: median over runs of the slowest rank; base: plain %s moving the same payload;\n"
      "# x-base = base/time, x-allred = %s(whole vector)/time (> 1: faster)\n#\n",
      nccl ? "NCCL" : "MPI", nccl ? "ncclAllReduce" : "MPI_Allreduce");
  std::printf("#%13s %11s %8s %-17s %11s %9s %9s %12s %11s %8s %9s %10s %7s\n", "size(B)", "count", "density",
              "op", "time(us)", "algbw", "busbw", "sent(B)", "base(us)", "x-base", "x-allred", "sum(us)",
              "#wrong");
  std::printf("#%13s %11s %8s %-17s %11s %9s %9s %12s %11s %8s %9s %10s %7s\n", "", "(elements)", "", "", "",
              "(GB/s)", "(GB/s)", "(per rank)", "", "", "", "", "");
  std::fflush(stdout);
  if (csv_.is_open()) {
    csv_ << "op,bytes,count,k,density,ranks,time_us,time_min_us,time_p99_us,baseline_us,baseline_min_us,"
            "baseline_p99_us,allreduce_us,sum_us,algbw_gbs,busbw_gbs,sent_bytes,wrong\n";
  }
  if (h5_) {
    auto& f = *h5_;
    f.set_attr("program", "sparcol-bench");
    f.set_attr("version", SPARCOL_VERSION_STRING);
    f.set_attr("build", s_.build);
    f.set_attr("backend", s_.backend);
    f.set_attr("mpi_library", s_.mpi_library);
    f.set_attr("device", s_.device);
    f.set_attr("nccl_library", s_.nccl_library);
    f.set_attr("ranks", static_cast<std::int64_t>(s_.ranks));
    f.set_attr("dtype", "float32");
    f.set_attr("iters", static_cast<std::int64_t>(s_.iters));
    f.set_attr("warmup", static_cast<std::int64_t>(s_.warmup));
    f.set_attr("check", static_cast<std::int64_t>(s_.check));
    f.set_attr("seed", static_cast<std::int64_t>(s_.seed));
    f.set_attr("density", s_.k ? 0.0 : s_.density);
    f.set_attr("k", static_cast<std::int64_t>(s_.k));
    f.set_attr("min_bytes", static_cast<std::int64_t>(s_.min_bytes));
    f.set_attr("max_bytes", static_cast<std::int64_t>(s_.max_bytes));
    f.set_attr("step_factor", static_cast<std::int64_t>(s_.step_factor));
    f.set_attr("collective_check", static_cast<std::int64_t>(s_.collective_check ? 1 : 0));
    f.set_attr("nan_injected", static_cast<std::int64_t>(s_.nan_injected ? 1 : 0));
    f.set_attr("date", now_iso());
    for (const auto& op : s_.ops) make_group(op);
    f.flush();
  }
}

void BenchTable::row(const BenchRow& r) {
  rows_.push_back(r);
  const bool mpi_op = !r.has_baseline;
  std::printf(" %13" PRIu64 " %11" PRIu64 " %8s %-17s %11s %9s %9s %12" PRIu64 " %11s %8s %9s %10s %7s\n",
              r.bytes, r.count, fmt("%.4g", r.density).c_str(), r.op.c_str(), fmt("%.1f", r.time.p50).c_str(),
              fmt("%.3f", r.algbw_gbs).c_str(), fmt("%.3f", r.busbw_gbs).c_str(), r.sent_bytes,
              mpi_op ? "-" : fmt("%.1f", r.base.p50).c_str(),
              mpi_op ? "-" : fmt("%.3f", ratio(r.base.p50, r.time.p50)).c_str(),
              std::isnan(r.allreduce_us) ? "N/A" : fmt("%.2f", ratio(r.allreduce_us, r.time.p50)).c_str(),
              std::isnan(r.sum_us) ? "-" : fmt("%.1f", r.sum_us).c_str(),
              r.wrong < 0 ? "N/A" : std::to_string(r.wrong).c_str());
  std::fflush(stdout);
  if (csv_.is_open()) {
    csv_ << r.op.c_str() << ',' << r.bytes << ',' << r.count << ',' << r.k << ',' << num(r.density) << ','
         << r.ranks << ',' << num(r.time.p50) << ',' << num(r.time.min) << ',' << num(r.time.p99) << ','
         << num(r.base.p50) << ',' << num(r.base.min) << ',' << num(r.base.p99) << ','
         << (std::isnan(r.allreduce_us) ? "" : num(r.allreduce_us)) << ','
         << (std::isnan(r.sum_us) ? "" : num(r.sum_us)) << ',' << num(r.algbw_gbs) << ',' << num(r.busbw_gbs)
         << ',' << r.sent_bytes << ',' << r.wrong << '\n';
    csv_.flush();
  }
  if (h5_) append_h5(r);
}

// Prints the footer and closes the files; returns the total wrong count (-1: nothing checked).
std::int64_t BenchTable::finish() {
  std::int64_t wrong = s_.check ? 0 : -1;
  for (const auto& r : rows_) wrong += r.wrong > 0 ? r.wrong : 0;
  std::printf("#\n");
  for (const auto& op : s_.ops) {
    double bus = 0;
    int n = 0;
    for (const auto& r : rows_)
      if (r.op == op) bus += r.busbw_gbs, ++n;
    if (n > 0) std::printf("# avg busbw %-17s: %.3f GB/s\n", op.c_str(), bus / n);
  }
  if (wrong < 0) {
    std::printf("# total wrong: N/A (-c 0)\n");
  } else {
    std::printf("# total wrong: %" PRId64 " %s\n", wrong, wrong == 0 ? "(OK)" : "(FAILED)");
  }
  std::fflush(stdout);
  if (json_.is_open()) write_json();
  if (h5_) {
    h5_->set_attr("total_wrong", wrong);
    h5_->close();
  }
  return wrong;
}

// One group per op, one extendable 1-D dataset per column: a row per size is appended and flushed,
// so an interrupted sweep leaves every finished size readable.
void BenchTable::make_group(const std::string& op) {
  auto g = h5_->create_group(op);
  for (const char* n : {"bytes", "count", "k", "sent_bytes"}) g.create_extendable<std::uint64_t>(n);
  for (const char* n : {"ranks", "wrong"}) g.create_extendable<std::int64_t>(n);
  for (const char* n : {"density", "time_us", "time_min_us", "time_p99_us", "baseline_us", "allreduce_us",
                        "algbw_gbs", "busbw_gbs", "sum_us"})
    g.create_extendable<double>(n);
}

void BenchTable::append_h5(const BenchRow& r) {
  auto g = h5_->open_group(r.op);
  auto u = [&](const char* n, std::uint64_t v) { g.open_dataset(n).append(std::vector<std::uint64_t>{v}); };
  auto i = [&](const char* n, std::int64_t v) { g.open_dataset(n).append(std::vector<std::int64_t>{v}); };
  auto d = [&](const char* n, double v) { g.open_dataset(n).append(std::vector<double>{v}); };
  u("bytes", r.bytes);
  u("count", r.count);
  u("k", r.k);
  u("sent_bytes", r.sent_bytes);
  i("ranks", r.ranks);
  i("wrong", r.wrong);
  d("density", r.density);
  d("time_us", r.time.p50);
  d("time_min_us", r.time.min);
  d("time_p99_us", r.time.p99);
  d("baseline_us", r.base.p50);
  d("allreduce_us", r.allreduce_us);
  d("algbw_gbs", r.algbw_gbs);
  d("busbw_gbs", r.busbw_gbs);
  d("sum_us", r.sum_us);
  h5_->flush();
}

void BenchTable::write_json() {
  auto esc = [](const std::string& s) {
    std::string o;
    for (char ch : s) {
      if (ch == '"' || ch == '\\') o += '\\';
      if (static_cast<unsigned char>(ch) < 0x20) continue;
      o += ch;
    }
    return o;
  };
  auto jnum = [](double v) { return std::isfinite(v) ? fmt("%.6g", v) : std::string("null"); };
  json_ << "{\n  \"program\": \"sparcol-bench\",\n  \"version\": \"" << SPARCOL_VERSION_STRING << "\",\n"
        << "  \"build\": \"" << esc(s_.build) << "\",\n  \"backend\": \"" << esc(s_.backend) << "\",\n"
        << "  \"mpi_library\": \"" << esc(s_.mpi_library) << "\",\n  \"device\": \"" << esc(s_.device)
        << "\",\n  \"nccl_library\": \"" << esc(s_.nccl_library) << "\",\n  \"ranks\": " << s_.ranks << ",\n"
        << "  \"iters\": " << s_.iters << ",\n  \"warmup\": " << s_.warmup << ",\n  \"check\": " << s_.check
        << ",\n  \"seed\": " << s_.seed << ",\n  \"density\": " << jnum(s_.k ? 0.0 : s_.density)
        << ",\n  \"k\": " << s_.k << ",\n  \"results\": [\n";
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    const BenchRow& r = rows_[i];
    json_ << "    {\"op\": \"" << r.op.c_str() << "\", \"bytes\": " << r.bytes << ", \"count\": " << r.count
          << ", \"k\": " << r.k << ", \"density\": " << jnum(r.density) << ", \"ranks\": " << r.ranks
          << ", \"time_us\": " << jnum(r.time.p50) << ", \"time_min_us\": " << jnum(r.time.min)
          << ", \"time_p99_us\": " << jnum(r.time.p99) << ", \"baseline_us\": " << jnum(r.base.p50)
          << ", \"baseline_min_us\": " << jnum(r.base.min) << ", \"baseline_p99_us\": " << jnum(r.base.p99)
          << ", \"allreduce_us\": " << jnum(r.allreduce_us) << ", \"sum_us\": " << jnum(r.sum_us)
          << ", \"algbw_gbs\": " << jnum(r.algbw_gbs) << ", \"busbw_gbs\": " << jnum(r.busbw_gbs)
          << ", \"sent_bytes\": " << r.sent_bytes << ", \"wrong\": " << r.wrong << "}"
          << (i + 1 < rows_.size() ? "," : "") << "\n";
  }
  json_ << "  ]\n}\n";
  json_.close();
  if (!json_) throw Error(ErrorCode::kIo, -1, "writing '" + s_.json + "' failed");
}

}  // namespace sparcol::io
