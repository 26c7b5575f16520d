// The trainer library (sparcol/train/{trainer,trace,checkpoint}.hpp) on threads-as-ranks: checkpoint
// files and their corruption checks, the checkpoint directory protocol, bitwise-identical resume for
// every kind of optimizer state (and BatchNorm buffers), the trace's layout and truncation on resume,
// and the rejection of checkpoints and traces of another configuration or world size.
//
// Data: a small generated image set (8x8, ten classes), so these tests need no installed data set.
// Seeds are fresh per run and printed on failure; SPARCOL_TEST_SEED=<n> replays one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/io/h5.hpp"
#include "sparcol/optim/optimizer.hpp"
#include "sparcol/train/checkpoint.hpp"
#include "sparcol/train/model.hpp"
#include "sparcol/train/options.hpp"
#include "sparcol/train/trace.hpp"
#include "sparcol/train/trainer.hpp"

namespace fs = std::filesystem;
namespace train = sparcol::train;
using sparcol::Error;
using sparcol::ErrorCode;

namespace {

std::uint64_t fresh_seed() {
  if (const char* env = std::getenv("SPARCOL_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) | rd();
}

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("sparcol-trainer-") + info->test_suite_name() + "-" + info->name();
    std::replace(name.begin(), name.end(), '/', '_');
    path_ = fs::temp_directory_path() / (name + "-" + std::to_string(fresh_seed() % 1000000007));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Ten classes, each a bright 2x2 block at its own place on an 8x8 image, plus Gaussian noise.
train::Dataset make_images(std::size_t n, std::uint64_t seed, std::uint32_t stream) {
  train::Dataset d;
  d.count = n;
  d.shape = {1, 8, 8};
  d.num_classes = 10;
  d.images.resize(n * 64);
  d.labels.resize(n);
  sparcol::CounterRng rng(seed, sparcol::kStreamUser + 60, stream);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<int>(rng.below(10));
    d.labels[i] = c;
    float* img = d.images.data() + i * 64;
    for (int p = 0; p < 64; ++p) img[p] = static_cast<float>(0.5 * rng.normal());
    const int r0 = (c / 4) * 2, c0 = (c % 4) * 2;
    for (int dr = 0; dr < 2; ++dr)
      for (int dc = 0; dc < 2; ++dc) img[(r0 + dr) * 8 + c0 + dc] += 2.0f;
  }
  return d;
}

train::DataSplit tiny_data(std::uint64_t seed, std::size_t n_train = 256, std::size_t n_test = 64) {
  return {make_images(n_train, seed, 0), make_images(n_test, seed, 1)};
}

train::TrainConfig base_config(std::uint64_t seed) {
  train::TrainConfig c;
  c.model = "mlp";
  c.optimizer = "gmc";
  c.compressor = "topk";
  c.density = 0.05;
  c.lr = 0.05;
  c.batch = 8;
  c.epochs = 3;
  c.seed = seed;
  c.quiet = true;
  c.progress_every = 5;
  c.eval_every = 7;  // evaluations between checkpoints, too
  return c;
}

struct RunResult {
  std::vector<std::vector<float>> params;  // per rank
  std::vector<train::TrainSummary> summary;
};

// Runs a trainer on every rank of a K-thread loopback world. resume: a checkpoint to start from.
RunResult run_world(int K, const train::TrainConfig& c, const train::DataSplit& data,
                    const std::string& resume = "") {
  RunResult out;
  out.params.resize(static_cast<std::size_t>(K));
  out.summary.resize(static_cast<std::size_t>(K));
  sparcol::comm::LoopbackWorld::spawn(K, [&](sparcol::comm::Backend& b) {
    train::Trainer t(b, c, data);
    if (!resume.empty()) t.load_checkpoint(resume);
    t.check_outputs();
    const auto r = static_cast<std::size_t>(b.rank());
    out.summary[r] = t.run();
    out.params[r].assign(t.params().begin(), t.params().end());
  });
  return out;
}

bool timing_column(const std::string& name) {
  return name.rfind("time_", 0) == 0 || name == "wall_time_s";
}

// Every non-timing column of both groups, bitwise.
void expect_same_trace(const std::string& a, const std::string& b) {
  sparcol::io::File fa(a, sparcol::io::File::Mode::kReadOnly), fb(b, sparcol::io::File::Mode::kReadOnly);
  for (const std::string group : {"train", "eval"}) {
    const auto& cols = group == "train" ? train::trace_step_columns() : train::trace_eval_columns();
    for (const auto& col : cols) {
      if (timing_column(col)) continue;
      const auto da = fa.open_group(group).open_dataset(col), db = fb.open_group(group).open_dataset(col);
      ASSERT_EQ(da.rows(), db.rows()) << group << "/" << col;
      if (da.type_name() == "int64") {
        EXPECT_EQ(da.read<std::int64_t>(), db.read<std::int64_t>()) << group << "/" << col;
      } else {
        const auto va = da.read<double>(), vb = db.read<double>();
        for (std::size_t i = 0; i < va.size(); ++i) {
          // Bitwise: NaN never appears here, so == is bit equality for these values.
          ASSERT_EQ(va[i], vb[i]) << group << "/" << col << " row " << i;
        }
      }
    }
  }
}

void expect_throws_code(const std::function<void()>& f, ErrorCode code, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << text << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint files
// ---------------------------------------------------------------------------------------------
TEST(CheckpointFile, RoundTrip) {
  TempDir dir;
  train::CheckpointData d;
  d.put_u64("step", 1234567890123ull);
  d.put_f64("loss", -0.25);
  const std::vector<float> v{1.5f, -2.0f, 3.25f, 0.0f};
  d.put_f32("params", v);
  d.put_f32("empty", std::vector<float>{});
  d.put_string("config", "a=1\nb=2\n");
  const auto path = dir / "rank-0.bin";
  train::write_checkpoint_file(path, d, 0);
  EXPECT_FALSE(fs::exists(path + ".part"));
  const auto r = train::read_checkpoint_file(path, 0);
  EXPECT_EQ(r.get_u64("step"), 1234567890123ull);
  EXPECT_EQ(r.get_f64("loss"), -0.25);
  EXPECT_EQ(r.get_f32("params"), v);
  EXPECT_TRUE(r.get_f32("empty").empty());
  EXPECT_EQ(r.get_string("config"), "a=1\nb=2\n");
  std::vector<float> out(4);
  r.get_f32_into("params", out);
  EXPECT_EQ(out, v);
  std::vector<float> wrong(3);
  expect_throws_code([&] { r.get_f32_into("params", wrong); }, ErrorCode::kIo, "holds 4 values");
  expect_throws_code([&] { (void)r.get_u64("missing"); }, ErrorCode::kIo, "record 'missing' is missing");
  expect_throws_code([&] { (void)r.get_u64("loss"); }, ErrorCode::kIo, "holds f64, expected u64");
}

TEST(CheckpointFile, RejectsEveryCorruption) {
  TempDir dir;
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  train::CheckpointData d;
  d.put_u64("step", 7);
  std::vector<float> v(1000);
  sparcol::CounterRng rng(seed, sparcol::kStreamUser + 61);
  for (float& x : v) x = static_cast<float>(rng.normal());
  d.put_f32("params", v);
  const auto good = dir / "good.bin";
  train::write_checkpoint_file(good, d, 3);
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto variant = [&](const std::string& name, std::string content) {
    const auto p = dir / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  };
  // Any single flipped byte is caught: in the header by its checksum (or the magic), in the payload
  // by the payload checksum.
  const auto pos = static_cast<std::size_t>(rng.below(bytes.size()));
  std::string flipped = bytes;
  flipped[pos] = static_cast<char>(flipped[pos] ^ 0x5a);
  const auto p1 = variant("flipped.bin", flipped);
  try {
    (void)train::read_checkpoint_file(p1, 3);
    ADD_FAILURE() << "flipped byte " << pos << " not detected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_EQ(e.rank(), 3);
    EXPECT_NE(std::string(e.what()).find(p1), std::string::npos) << e.what();
  }
  expect_throws_code([&] { (void)train::read_checkpoint_file(variant("short.bin", bytes.substr(0, 20)), 0); },
                     ErrorCode::kIo, "truncated");
  expect_throws_code(
      [&] { (void)train::read_checkpoint_file(variant("cut.bin", bytes.substr(0, bytes.size() - 5)), 0); },
      ErrorCode::kIo, "truncated");
  expect_throws_code([&] { (void)train::read_checkpoint_file(variant("long.bin", bytes + "x"), 0); },
                     ErrorCode::kIo, "trailing data");
  std::string magic = bytes;
  magic[0] = 'X';
  expect_throws_code([&] { (void)train::read_checkpoint_file(variant("magic.bin", magic), 0); },
                     ErrorCode::kIo, "wrong magic");
  std::string payload = bytes;
  payload[bytes.size() - 1] = static_cast<char>(payload[bytes.size() - 1] ^ 1);
  expect_throws_code([&] { (void)train::read_checkpoint_file(variant("payload.bin", payload), 0); },
                     ErrorCode::kIo, "checksum mismatch");
  expect_throws_code([&] { (void)train::read_checkpoint_file(dir / "absent.bin", 0); }, ErrorCode::kIo,
                     "no such file");
}

// The bytes in memory: every proper prefix and every single-bit flip of a valid file is rejected
// with kIo (CRC-32 detects every single-bit error), and a valid file parses back to itself.
TEST(CheckpointFile, ParseBytesRejectsEveryPrefixAndEveryBitFlip) {
  train::CheckpointData d;
  d.put_u64("step", 12);
  d.put_f64("loss", 0.5);
  d.put_f32("params", std::vector<float>{1.0f, -2.0f, 0.25f});
  d.put_f32("empty", std::vector<float>{});
  d.put_string("config", "seed=3\n");
  const std::string bytes = train::checkpoint_bytes(d);
  const auto back = train::parse_checkpoint_bytes(bytes, "mem", 2);
  EXPECT_EQ(back.file(), "mem");
  EXPECT_EQ(back.get_f32("params"), d.get_f32("params"));
  EXPECT_EQ(train::checkpoint_bytes(back), bytes);

  auto rejected = [](const std::string& b, const std::string& text) {
    try {
      (void)train::parse_checkpoint_bytes(b, "mem", 2);
    } catch (const Error& e) {
      const std::string what = e.what();
      return e.code() == ErrorCode::kIo && e.rank() == 2 &&
             what.find("checkpoint 'mem': ") != std::string::npos && what.find(text) != std::string::npos;
    }
    return false;
  };
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_TRUE(rejected(bytes.substr(0, n), "truncated")) << "prefix of " << n << " bytes";
  }
  for (std::size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::string b = bytes;
    b[bit / 8] = static_cast<char>(b[bit / 8] ^ (1 << (bit % 8)));
    // The magic is checked first; every other byte is covered by one of the two checksums.
    EXPECT_TRUE(rejected(b, bit < 64 ? "wrong magic" : "checksum mismatch")) << "bit " << bit;
  }
}

TEST(CheckpointDir, CommitPrunesAndResolves) {
  TempDir tmp;
  const std::string dir = tmp / "ck";
  auto write = [&](std::uint64_t step) {
    const auto staging = train::begin_checkpoint(dir, step);
    train::CheckpointData d;
    d.put_u64("step", step);
    train::write_checkpoint_file((fs::path(staging) / train::rank_file_name(0)).string(), d, 0);
    train::commit_checkpoint(dir, step, 2);
  };
  EXPECT_TRUE(train::list_checkpoints(dir).empty());
  write(10);
  write(20);
  write(30);
  EXPECT_EQ(train::list_checkpoints(dir), (std::vector<std::uint64_t>{20, 30}));
  EXPECT_EQ(train::resolve_checkpoint(dir, 0), (fs::path(dir) / "ckpt-30").string());
  EXPECT_EQ(train::checkpoint_step(train::resolve_checkpoint(dir, 0), 0), 30u);
  // A stale staging directory (a crash while writing) is neither listed nor resolved.
  fs::create_directories(train::staging_path(dir, 40));
  EXPECT_EQ(train::list_checkpoints(dir), (std::vector<std::uint64_t>{20, 30}));
  // A resumed run rewrites step 20: the checkpoint is replaced whole, and step 30 (abandoned) goes.
  write(20);
  EXPECT_EQ(train::list_checkpoints(dir), (std::vector<std::uint64_t>{20}));
  EXPECT_EQ(train::resolve_checkpoint(dir, 0), (fs::path(dir) / "ckpt-20").string());
  // `latest` missing or stale: the newest complete checkpoint.
  write(25);
  fs::remove(fs::path(dir) / "latest");
  EXPECT_EQ(train::resolve_checkpoint(dir, 0), (fs::path(dir) / "ckpt-25").string());
  std::ofstream(fs::path(dir) / "latest") << "ckpt-99\n";
  EXPECT_EQ(train::resolve_checkpoint(dir, 0), (fs::path(dir) / "ckpt-25").string());
  // A checkpoint named directly, with or without a trailing slash.
  EXPECT_EQ(train::checkpoint_step(train::resolve_checkpoint(dir + "/ckpt-20/", 0), 0), 20u);
  expect_throws_code([&] { (void)train::resolve_checkpoint(tmp / "nowhere", 1); }, ErrorCode::kIo,
                     "does not exist");
  fs::create_directories(tmp / "empty");
  expect_throws_code([&] { (void)train::resolve_checkpoint(tmp / "empty", 1); }, ErrorCode::kIo,
                     "no checkpoint");
}

// ---------------------------------------------------------------------------------------------
// Resume: an interrupted run continued from a checkpoint equals the uninterrupted run bitwise
// ---------------------------------------------------------------------------------------------
struct ResumeCase {
  const char* name;
  const char* model;
  const char* optimizer;
  const char* compressor;
  int ranks;
  const char* norm;
  bool augment;
  double epochs;        // 16 steps per epoch at 2 ranks; at least 15 steps are needed
  double dropit = 0.0;  // DropIT gamma (nothing to checkpoint: the selection is a function of the batch)
};

// gtest prints parameters in test listings; the name is enough.
void PrintTo(const ResumeCase& c, std::ostream* os) {
  *os << c.name;
}

class Resume : public ::testing::TestWithParam<ResumeCase> {};

TEST_P(Resume, ContinuesBitwiseAsTheUninterruptedRun) {
  const auto& pc = GetParam();
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir tmp;
  const auto data = tiny_data(seed);
  auto c = base_config(seed);
  c.model = pc.model;
  c.optimizer = pc.optimizer;
  c.compressor = pc.compressor;
  c.norm = pc.norm;
  c.augment = pc.augment;
  c.epochs = pc.epochs;
  c.dropit = pc.dropit;
  c.eval_virtual = c.optimizer == "def-a";  // evaluation through a collective (x - mean_k e_k)
  c.weight_decay = 1e-3;                    // exercises the coupled weight decay at the gradient point
  c.checkpoint_every = 6;

  // Uninterrupted, with checkpoints at the same steps (checkpoints never change the trajectory).
  auto full = c;
  full.trace = tmp / "full.h5";
  full.checkpoint_dir = tmp / "ck-full";
  const auto a = run_world(pc.ranks, full, data);
  // Interrupted at step 15 (a checkpoint at 12 and a final one at 15), resumed from step 12.
  auto part = c;
  part.trace = tmp / "part.h5";
  part.checkpoint_dir = tmp / "ck-part";
  part.max_steps = 15;
  const auto b1 = run_world(pc.ranks, part, data);
  EXPECT_EQ(b1.summary[0].steps, 15u);
  part.max_steps = 0;
  const auto b = run_world(pc.ranks, part, data, tmp / "ck-part/ckpt-12");
  EXPECT_EQ(b.summary[0].start_step, 12u);
  EXPECT_EQ(b.summary[0].steps, a.summary[0].steps);

  for (int r = 0; r < pc.ranks; ++r) {
    const auto i = static_cast<std::size_t>(r);
    ASSERT_EQ(a.params[i], b.params[i]) << "rank " << r;
    // Replicated models, except for the decentralized methods (a model per rank).
    if (!sparcol::optim::method_is_decentralized(pc.optimizer)) {
      EXPECT_EQ(a.params[i], a.params[0]) << "replicas differ: rank " << r;
    } else if (r > 0) {
      EXPECT_NE(a.params[i], a.params[0]) << "rank " << r << " holds rank 0's model";
    }
  }
  EXPECT_EQ(a.summary[0].test_accuracy, b.summary[0].test_accuracy);
  EXPECT_EQ(a.summary[0].rcc, b.summary[0].rcc);
  expect_same_trace(full.trace, part.trace);
  // Every rank's final checkpoint agrees too (optimizer state, BatchNorm buffers, batch order).
  for (int r = 0; r < pc.ranks; ++r) {
    const auto fa = train::read_checkpoint_file(
        (fs::path(tmp / "ck-full") / ("ckpt-" + std::to_string(a.summary[0].steps)) /
         train::rank_file_name(r))
            .string(),
        r);
    const auto fb = train::read_checkpoint_file(
        (fs::path(tmp / "ck-part") / ("ckpt-" + std::to_string(b.summary[0].steps)) /
         train::rank_file_name(r))
            .string(),
        r);
    ASSERT_EQ(fa.records().size(), fb.records().size());
    for (const auto& rec : fa.records()) {
      if (rec.name == "wall_time_s") continue;
      if (rec.type == 3) {
        EXPECT_EQ(rec.f32, fb.get_f32(rec.name)) << rec.name << " rank " << r;
      } else if (rec.type == 1) {
        EXPECT_EQ(rec.u64, fb.get_u64(rec.name)) << rec.name << " rank " << r;
      } else if (rec.type == 2) {
        EXPECT_EQ(rec.f64, fb.get_f64(rec.name)) << rec.name << " rank " << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Methods, Resume,
    ::testing::Values(ResumeCase{"gmc_topk", "mlp", "gmc", "topk", 2, "gn", false, 3},
                      ResumeCase{"gmcplus_rbgs", "mlp", "gmc-plus", "rbgs", 3, "gn", false, 3},
                      ResumeCase{"defa_topk", "mlp", "def-a", "topk", 2, "gn", true, 3},
                      ResumeCase{"dgcmfm_sampled", "mlp", "dgc-mfm", "topk-sampled", 2, "gn", false, 3},
                      ResumeCase{"cser_topk", "mlp", "cser", "topk", 2, "gn", false, 3},
                      ResumeCase{"dmsgd_cnn", "cnn", "dmsgd", "none", 2, "gn", false, 3},
                      ResumeCase{"gmc_cnn_dropit", "cnn", "gmc", "topk", 2, "gn", false, 3, 0.7},
                      ResumeCase{"efsgdm_resnet_bn", "resnet20", "ef-sgdm", "topk", 2, "bn", false, 1.25},
                      // The decentralized methods: a model, momentum and messages per rank.
                      ResumeCase{"dpsgd_ring", "mlp", "dpsgd", "topk", 3, "gn", false, 2},
                      ResumeCase{"relaysgd_chain", "mlp", "relaysgd", "topk", 3, "gn", false, 2},
                      ResumeCase{"powergossip_ring", "mlp", "powergossip", "topk", 4, "gn", false, 3},
                      // LIEC: the owners' server errors, the local offsets and the momentum.
                      ResumeCase{"liec_topk", "mlp", "liec", "topk", 3, "gn", false, 3}),
    [](const ::testing::TestParamInfo<ResumeCase>& p) { return std::string(p.param.name); });

// ---------------------------------------------------------------------------------------------
// The trace
// ---------------------------------------------------------------------------------------------
TEST(Trace, LayoutAttributesAndEvaluationSteps) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir tmp;
  const auto data = tiny_data(seed);
  auto c = base_config(seed);
  c.eval_every = -1;  // once per epoch
  c.trace = tmp / "t.h5";
  const auto res = run_world(2, c, data);
  const std::uint64_t spe = 256 / (2 * 8);  // 16 steps per epoch
  EXPECT_EQ(res.summary[0].total_steps, 3 * spe);

  sparcol::io::File f(c.trace, sparcol::io::File::Mode::kReadOnly);
  EXPECT_EQ(f.attr_string("program"), "sparcol-train");
  EXPECT_EQ(f.attr_string("model"), "mlp");
  EXPECT_EQ(f.attr_string("optimizer"), "gmc");
  EXPECT_EQ(f.attr_string("compressor"), "topk");
  EXPECT_EQ(f.attr_string("partition"), "iid");
  EXPECT_EQ(f.attr_int64("world_size"), 2);
  EXPECT_EQ(f.attr_int64("batch"), 8);
  EXPECT_EQ(f.attr_int64("seed"), static_cast<std::int64_t>(seed));
  EXPECT_EQ(f.attr_double("density"), 0.05);
  EXPECT_EQ(f.attr_double("lr"), 0.05);
  EXPECT_EQ(f.attr_int64("completed_steps"), static_cast<std::int64_t>(3 * spe));
  EXPECT_EQ(f.attr_int64("steps_per_epoch"), static_cast<std::int64_t>(spe));
  EXPECT_TRUE(f.has_attr("version"));
  EXPECT_TRUE(f.has_attr("alpha"));
  EXPECT_EQ(f.attr_double("rcc"), res.summary[0].rcc);
  EXPECT_GT(res.summary[0].rcc, 0.0);
  EXPECT_LT(res.summary[0].rcc, 4 * 0.05);

  auto tr = f.open_group("train");
  for (const auto& col : train::trace_step_columns()) {
    EXPECT_EQ(tr.open_dataset(col).rows(), 3 * spe) << col;
  }
  const auto step = tr.read<std::int64_t>("step");
  for (std::size_t i = 0; i < step.size(); ++i) ASSERT_EQ(step[i], static_cast<std::int64_t>(i + 1));
  const auto lr = tr.read<double>("lr");
  EXPECT_EQ(lr.front(), 0.05);        // cosine starts at eta_0 ...
  EXPECT_LT(lr.back(), 0.05 * 0.01);  // ... and ends near 0
  for (const std::string col :
       {"bytes_sent", "bytes_recv", "elements_up", "elements_down", "bytes_up", "bytes_down"}) {
    const auto v = tr.read<double>(col);
    EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](double x) { return x > 0; })) << col;
  }
  const auto acc = tr.read<double>("accuracy");
  EXPECT_TRUE(std::all_of(acc.begin(), acc.end(), [](double x) { return x >= 0 && x <= 1; }));

  auto ev = f.open_group("eval");
  EXPECT_EQ(ev.read<std::int64_t>("step"),
            (std::vector<std::int64_t>{static_cast<std::int64_t>(spe), static_cast<std::int64_t>(2 * spe),
                                       static_cast<std::int64_t>(3 * spe)}));
  const auto test_acc = ev.read<double>("test_accuracy");
  EXPECT_EQ(test_acc.back(), res.summary[0].test_accuracy);
  // The generated task is easy: three epochs learn it well beyond chance (10%).
  EXPECT_GT(test_acc.back(), 0.5);
  // The mean minibatch loss since the previous evaluation, from the per-step rows.
  const auto loss = tr.read<double>("loss");
  double first_epoch = 0;
  for (std::size_t i = 0; i < spe; ++i) first_epoch += loss[i];
  EXPECT_NEAR(ev.read<double>("train_loss")[0], first_epoch / spe, 1e-12);
}

// DropIT in the trainer (ALGORITHMS.md 10.10): the memory attributes of the trace and the summary's
// memory lines, with and without DropIT; gamma 0 given explicitly is bitwise the run without it.
TEST(Trace, DropitMemoryAccounting) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir tmp;
  const auto data = tiny_data(seed);
  auto c = base_config(seed);
  c.model = "cnn";
  c.epochs = 1;
  c.quiet = false;
  c.progress_every = 0;
  auto run_with_output = [&](const train::TrainConfig& cfg, std::string& text) {
    RunResult out;
    out.params.resize(2);
    std::ostringstream os;
    sparcol::comm::LoopbackWorld::spawn(2, [&](sparcol::comm::Backend& b) {
      train::Trainer t(b, cfg, data);
      if (b.rank() == 0) t.set_output(&os);
      t.check_outputs();
      t.run();
      out.params[static_cast<std::size_t>(b.rank())].assign(t.params().begin(), t.params().end());
    });
    text = os.str();
    return out;
  };
  std::string text_off, text_zero, text_on;
  auto off = c;
  off.trace = tmp / "off.h5";
  const auto a = run_with_output(off, text_off);
  auto zero = c;
  zero.dropit = 0.0;
  zero.dropit_layers = "all";
  const auto z = run_with_output(zero, text_zero);
  EXPECT_EQ(a.params, z.params);  // bitwise
  auto on = c;
  on.dropit = 0.9;
  on.trace = tmp / "on.h5";
  const auto d = run_with_output(on, text_on);
  EXPECT_NE(a.params[0], d.params[0]);
  EXPECT_EQ(d.params[0], d.params[1]);  // the replicas agree

  // cnn on 1x8x8, batch 8: conv1 8*64, conv2 4*8*16 (16 channels of 4x4), fc1 8*(32*2*2), fc2 8*128.
  const std::int64_t numel[] = {8 * 64, 16 * 8 * 16, 8 * 128, 8 * 128};
  const char* layers[] = {"conv1", "conv2", "fc1", "fc2"};
  sparcol::io::File fa(off.trace, sparcol::io::File::Mode::kReadOnly);
  sparcol::io::File fd(on.trace, sparcol::io::File::Mode::kReadOnly);
  EXPECT_EQ(fa.attr_double("dropit"), 0.0);
  EXPECT_EQ(fa.attr_string("dropit_layers"), "none");
  EXPECT_EQ(fd.attr_double("dropit"), 0.9);
  EXPECT_EQ(fd.attr_string("dropit_layers"), "hidden");
  std::int64_t dense_total = 0, dropped_total = 0;
  for (int l = 0; l < 4; ++l) {
    const std::string name = layers[l];
    const std::int64_t dense = numel[l] * 4;
    // hidden: conv2 and fc1 keep floor(0.1 numel) (value, index) pairs; conv1 and fc2 stay dense.
    const std::int64_t kept =
        (l == 1 || l == 2)
            ? static_cast<std::int64_t>(std::floor((1.0 - 0.9) * static_cast<double>(numel[l]))) * 8
            : dense;
    EXPECT_EQ(fa.attr_int64("cached_bytes." + name), dense) << name;
    EXPECT_EQ(fa.attr_int64("cached_dense_bytes." + name), dense) << name;
    EXPECT_EQ(fd.attr_int64("cached_bytes." + name), kept) << name;
    EXPECT_EQ(fd.attr_int64("cached_dense_bytes." + name), dense) << name;
    dense_total += dense;
    dropped_total += kept;
  }
  EXPECT_EQ(fa.attr_int64("cached_bytes"), dense_total);
  EXPECT_EQ(fa.attr_int64("cached_dense_bytes"), dense_total);
  EXPECT_EQ(fd.attr_int64("cached_bytes"), dropped_total);
  EXPECT_EQ(fd.attr_int64("cached_dense_bytes"), dense_total);
  EXPECT_GT(fd.attr_int64("peak_rss_bytes"), 1 << 20);
  EXPECT_GE(fd.attr_int64("peak_rss_bytes"), fd.attr_int64("peak_rss_bytes_rank0"));

  EXPECT_NE(text_off.find("memory: layer inputs cached for backward at the peak of a step"),
            std::string::npos)
      << text_off;
  EXPECT_NE(text_off.find("DropIT off"), std::string::npos) << text_off;
  EXPECT_NE(text_on.find("DropIT 0.9 hidden"), std::string::npos) << text_on;
  EXPECT_NE(text_on.find("conv2 "), std::string::npos) << text_on;
  EXPECT_NE(text_on.find("(204 of 2048 kept"), std::string::npos) << text_on;
  EXPECT_NE(text_on.find("memory: peak resident memory per rank (getrusage)"), std::string::npos) << text_on;
}

// Communication rounds and totals for every method, and the per-worker evaluation fields of a method
// with a replicated model (docs/traces.md): rounds 1 per exchange (CSER: 2 at its reset steps), the
// totals are the sums of the rows, the worst rank's accuracy is the accuracy, the consensus distance 0.
TEST(Trace, CommunicationRoundsTotalsAndReplicatedEvaluationFields) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir tmp;
  const auto data = tiny_data(seed);
  for (const std::string method : {"gmc", "cser"}) {
    SCOPED_TRACE(method);
    auto c = base_config(seed);
    c.optimizer = method;
    c.epochs = 1;
    c.cser_period = 4;
    c.trace = tmp / (method + ".h5");
    const auto res = run_world(2, c, data);
    sparcol::io::File f(c.trace, sparcol::io::File::Mode::kReadOnly);
    EXPECT_EQ(f.attr_int64("per_worker_models"), 0);
    auto tr = f.open_group("train");
    const auto step = tr.read<std::int64_t>("step");
    const auto rounds = tr.read<std::int64_t>("comm_rounds");
    ASSERT_EQ(rounds.size(), step.size());
    std::int64_t total = 0;
    for (std::size_t i = 0; i < rounds.size(); ++i) {
      const std::int64_t expect = method == "cser" && step[i] % 4 == 0 ? 2 : 1;
      EXPECT_EQ(rounds[i], expect) << "step " << step[i];
      total += rounds[i];
    }
    EXPECT_EQ(f.attr_int64("rounds_total"), total);
    EXPECT_EQ(res.summary[0].rounds_total, static_cast<std::uint64_t>(total));
    const auto sent = tr.read<double>("bytes_sent");
    double sum_sent = 0;
    for (double v : sent) sum_sent += v;
    EXPECT_DOUBLE_EQ(f.attr_double("bytes_sent_total"), sum_sent);
    EXPECT_GT(res.summary[0].bytes_sent_total, 0u);
    EXPECT_GT(res.summary[0].bytes_recv_total, 0u);
    auto ev = f.open_group("eval");
    const auto acc = ev.read<double>("test_accuracy");
    EXPECT_EQ(ev.read<double>("test_accuracy_worst"), acc);
    for (const std::string col : {"consensus_distance", "averaging_bytes_sent"}) {
      const auto v = ev.read<double>(col);
      EXPECT_EQ(v.size(), acc.size()) << col;
      EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](double x) { return x == 0.0; })) << col;
    }
    EXPECT_EQ(res.summary[0].test_accuracy_worst, res.summary[0].test_accuracy);
    EXPECT_EQ(res.summary[0].consensus_distance, 0.0);
  }
}

// A method with a model per rank (docs/traces.md, "Methods with a model per rank"): the evaluation
// of the averaged model, the worst rank's model and the consensus distance; checkpoints asked for in
// the middle of a period written at the next boundary; resume from a boundary bitwise.
TEST(PerWorker, LocalSgdEvaluatesTheAverageAndResumesBitwiseAtBoundaries) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir tmp;
  const auto data = tiny_data(seed);
  for (const std::string method : {"vrl-sgd", "stl-sgd", "cocod-sgd"}) {
    SCOPED_TRACE(method);
    const bool cocod = method == "cocod-sgd";  // no averaging of its own: x_k = xbar + own steps
    auto c = base_config(seed);
    c.optimizer = method;
    c.partition = "dirichlet";  // the models drift apart between averagings
    c.period = 4;
    c.stl_stages = 2;
    c.epochs = 2;  // 32 steps at 2 ranks
    c.eval_every = 6;
    c.weight_decay = 1e-3;
    c.checkpoint_every = 6;  // vrl (H = 4): asked at 6, 12, 18, 24, 30, 32; written at 8, 12, 20, 24, 32
    auto full = c;
    full.trace = tmp / (method + "-full.h5");
    full.checkpoint_dir = tmp / (method + "-ck-full");
    const auto a = run_world(2, full, data);
    const auto steps = train::list_checkpoints(full.checkpoint_dir);
    if (method != "stl-sgd") {
      EXPECT_EQ(steps, (std::vector<std::uint64_t>{24, 32})) << "the newest two";
    }
    {
      sparcol::io::File f(full.trace, sparcol::io::File::Mode::kReadOnly);
      EXPECT_EQ(f.attr_int64("per_worker_models"), 1);
      auto ev = f.open_group("eval");
      const auto st = ev.read<std::int64_t>("step");
      const auto acc = ev.read<double>("test_accuracy");
      const auto worst = ev.read<double>("test_accuracy_worst");
      const auto cons = ev.read<double>("consensus_distance");
      const auto avg_bytes = ev.read<double>("averaging_bytes_sent");
      ASSERT_EQ(st.size(), cons.size());
      bool some_apart = false;
      for (std::size_t i = 0; i < st.size(); ++i) {
        EXPECT_GE(cons[i], 0.0);
        EXPECT_GE(worst[i], 0.0);
        EXPECT_LE(worst[i], 1.0);
        EXPECT_GT(avg_bytes[i], 0.0);
        const auto p = sparcol::optim::local_period(
            [&] {
              sparcol::optim::OptimConfig oc;
              oc.method = method;
              oc.period = 4;
              oc.stl_stages = 2;
              oc.total_steps = 32;
              return oc;
            }(),
            static_cast<std::uint64_t>(st[i] - 1));
        if (p.average && !cocod) {
          EXPECT_EQ(cons[i], 0.0) << "right after an averaging every x_k is xbar, step " << st[i];
          EXPECT_EQ(worst[i], acc[i]) << "step " << st[i];
        } else {
          some_apart = some_apart || cons[i] > 0;
        }
      }
      EXPECT_TRUE(some_apart) << "an evaluation in the middle of a period sees the models apart";
      auto tr = f.open_group("train");
      const auto rounds = tr.read<std::int64_t>("comm_rounds");
      std::int64_t total = 0;
      for (auto r : rounds) total += r;
      EXPECT_EQ(f.attr_int64("rounds_total"), total);
      EXPECT_LT(total, static_cast<std::int64_t>(rounds.size()) / 3);
    }
    // Interrupted at step 15 (mid-period: no final checkpoint), resumed from its last checkpoint
    // (vrl: 12; stl, averaging after 4, 8, 10, 18, 26: the one asked at 6, written at 8).
    auto part = c;
    part.trace = tmp / (method + "-part.h5");
    part.checkpoint_dir = tmp / (method + "-ck-part");
    part.max_steps = 15;
    run_world(2, part, data);
    const auto part_steps = train::list_checkpoints(part.checkpoint_dir);
    ASSERT_FALSE(part_steps.empty());
    EXPECT_EQ(part_steps.back(), method == "stl-sgd" ? 8u : 12u);
    part.max_steps = 0;
    const auto b =
        run_world(2, part, data, tmp / (method + "-ck-part/ckpt-" + std::to_string(part_steps.back())));
    for (std::size_t r = 0; r < 2; ++r) ASSERT_EQ(a.params[r], b.params[r]) << "rank " << r;
    // vrl ends with an averaging (step 32); stl in the middle of its second stage's period.
    EXPECT_EQ(a.params[0] == a.params[1], method == "vrl-sgd");  // cocod: never equal
    EXPECT_EQ(a.summary[0].test_accuracy, b.summary[0].test_accuracy);
    EXPECT_EQ(a.summary[0].consensus_distance, b.summary[0].consensus_distance);
    EXPECT_EQ(a.summary[0].rounds_total, b.summary[0].rounds_total);
    expect_same_trace(full.trace, part.trace);
  }
}

TEST(Trace, ResumeDropsRowsPastTheCheckpointAndRestoresADamagedTrace) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir tmp;
  const auto data = tiny_data(seed);
  auto c = base_config(seed);
  c.checkpoint_every = 10;
  c.trace = tmp / "ref.h5";
  c.checkpoint_dir = tmp / "ck-ref";
  run_world(2, c, data);

  c.trace = tmp / "t.h5";
  c.checkpoint_dir = tmp / "ck";
  c.max_steps = 27;
  run_world(2, c, data);
  {
    sparcol::io::File f(c.trace, sparcol::io::File::Mode::kReadOnly);
    EXPECT_EQ(f.open_group("train").open_dataset("step").rows(), 27u);
  }
  // Resume from step 20: rows 21..27 (and the evaluation at 21) must go before training continues.
  c.max_steps = 0;
  run_world(2, c, data, tmp / "ck/ckpt-20");
  expect_same_trace(tmp / "ref.h5", c.trace);

  // A trace that does not exist yet (a resubmitted job's new directory) starts at the checkpoint.
  c.trace = tmp / "new.h5";
  run_world(2, c, data, tmp / "ck-ref/ckpt-40");
  {
    sparcol::io::File f(c.trace, sparcol::io::File::Mode::kReadOnly);
    EXPECT_EQ(f.attr_int64("first_step"), 40);
    const auto steps = f.open_group("train").read<std::int64_t>("step");
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps.front(), 41);
    EXPECT_EQ(steps.back(), 48);
  }

  // A trace damaged by a kill is restored from the checkpoint's copy.
  c.max_steps = 25;
  c.trace = tmp / "d.h5";
  c.checkpoint_dir = tmp / "ck2";
  run_world(2, c, data);
  std::ofstream(c.trace, std::ios::binary | std::ios::trunc) << "not an HDF5 file";
  c.max_steps = 0;
  run_world(2, c, data, tmp / "ck2/ckpt-20");
  expect_same_trace(tmp / "ref.h5", c.trace);
}

// ---------------------------------------------------------------------------------------------
// Rejections
// ---------------------------------------------------------------------------------------------
TEST(Resume, RefusesAChangedOptionThatTheRunReads) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir tmp;
  const auto data = tiny_data(seed);
  auto c = base_config(seed);
  c.optimizer = "gmc-plus";
  c.checkpoint_dir = tmp / "ck";
  c.max_steps = 3;
  run_world(2, c, data);
  const std::string ckpt = tmp / "ck/ckpt-3";
  auto other = c;
  other.alpha = 0.25;
  expect_throws_code([&] { run_world(2, other, data, ckpt); }, ErrorCode::kInvalidArgument,
                     "another configuration (alpha: 0.5 vs 0.25");
  other.alpha = 0.5;  // the default, now given: the same configuration
  other.max_steps = 4;
  EXPECT_EQ(run_world(2, other, data, ckpt).summary[0].steps, 4u);

  // dmsgd records --wd-outside (it reads it), so turning it off is refused on resume.
  c.optimizer = "dmsgd";
  c.compressor = "none";
  c.weight_decay = 1e-3;
  c.wd_outside = true;
  c.checkpoint_dir = tmp / "ck2";
  run_world(2, c, data);
  other = c;
  other.wd_outside = false;
  expect_throws_code([&] { run_world(2, other, data, tmp / "ck2/ckpt-3"); }, ErrorCode::kInvalidArgument,
                     "another configuration (wd_outside: 1 vs 0");
}

TEST(Resume, RejectsAnotherConfigurationWorldSizeOrCorruptFile) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir tmp;
  const auto data = tiny_data(seed);
  auto c = base_config(seed);
  c.checkpoint_dir = tmp / "ck";
  c.max_steps = 5;
  run_world(2, c, data);
  const std::string ckpt = tmp / "ck/ckpt-5";

  auto other = c;
  other.lr = 0.1;
  expect_throws_code([&] { run_world(2, other, data, ckpt); }, ErrorCode::kInvalidArgument,
                     "another configuration (lr: 0.05 vs 0.1");
  other = c;
  other.optimizer = "def-a";
  expect_throws_code([&] { run_world(2, other, data, ckpt); }, ErrorCode::kInvalidArgument,
                     "optimizer: gmc vs def-a");
  // Three ranks: ranks 0 and 1 find a 2-rank checkpoint, rank 2 finds no file.
  try {
    run_world(3, c, data, ckpt);
    ADD_FAILURE() << "a 2-rank checkpoint was accepted by 3 ranks";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_TRUE(m.find("written by a run on 2 ranks; this run has 3") != std::string::npos ||
                m.find("rank-2.bin': no such file") != std::string::npos)
        << m;
  }
  // A flipped byte in rank 1's file.
  const std::string f1 = ckpt + "/rank-1.bin";
  {
    std::fstream f(f1, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  expect_throws_code([&] { run_world(2, c, data, ckpt); }, ErrorCode::kIo, f1);
}

TEST(Trace, IsNeverReplacedWithoutOverwriteNorContinuedByAnotherConfiguration) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir tmp;
  const auto data = tiny_data(seed);
  auto c = base_config(seed);
  c.trace = tmp / "t.h5";
  c.checkpoint_dir = tmp / "ck";
  c.max_steps = 4;
  run_world(2, c, data);
  const auto size = fs::file_size(c.trace);
  expect_throws_code([&] { run_world(2, c, data); }, ErrorCode::kIo, "pass --overwrite");
  EXPECT_EQ(fs::file_size(c.trace), size);
  // Resuming into the trace of another configuration (another seed) is refused before any writing.
  auto other = c;
  other.seed = seed + 1;
  other.checkpoint_dir = tmp / "ck-other";
  other.trace = tmp / "other.h5";
  run_world(2, other, data);
  other.trace = c.trace;
  expect_throws_code([&] { run_world(2, other, data, tmp / "ck-other/ckpt-4"); }, ErrorCode::kInvalidArgument,
                     "seed: ");
  EXPECT_EQ(fs::file_size(c.trace), size);
  c.overwrite = true;
  c.max_steps = 2;
  run_world(2, c, data);
  sparcol::io::File f(c.trace, sparcol::io::File::Mode::kReadOnly);
  EXPECT_EQ(f.open_group("train").open_dataset("step").rows(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------
TEST(Config, PresetFillsOnlyWhatWasNotGiven) {
  train::TrainConfig c;
  c.lr = 0.03;
  c.batch = 64;
  train::apply_preset(c, "gmc-paper", [](const std::string& flag) { return flag == "--lr"; });
  EXPECT_EQ(c.lr, 0.03);
  EXPECT_EQ(c.batch, 16u);
  EXPECT_EQ(c.momentum, 0.9);
  EXPECT_EQ(c.weight_decay, 1e-4);
  EXPECT_EQ(c.schedule, "cosine");
  EXPECT_EQ(c.density, 0.0025);
  expect_throws_code([&] { train::apply_preset(c, "nope", [](const std::string&) { return false; }); },
                     ErrorCode::kInvalidArgument, "unknown preset 'nope'");
}

TEST(Config, ValidationNamesTheFlag) {
  struct Bad {
    std::function<void(train::TrainConfig&)> set;
    const char* text;
  };
  const std::vector<Bad> cases{
      {[](auto& c) { c.model = "vgg"; }, "--model: unknown model 'vgg'"},
      {[](auto& c) { c.model = "synthetic"; }, "needs --params"},
      {[](auto& c) { c.params = 10; }, "--params applies to --model synthetic"},
      {[](auto& c) { c.optimizer = "adam"; }, "--optimizer: unknown method 'adam'"},
      {[](auto& c) { c.compressor = "zip"; }, "--compressor: unknown compressor 'zip'"},
      {[](auto& c) { c.density = 0; }, "--density must be in (0, 1]"},
      {[](auto& c) { c.alpha = 1.5; }, "--alpha must be in [0, 1]"},
      {[](auto& c) { c.momentum = 1; }, "--momentum must be in [0, 1)"},
      {[](auto& c) { c.lr = -1; }, "--lr must be > 0"},
      {[](auto& c) { c.schedule = "linear"; }, "--schedule: unknown schedule"},
      {[](auto& c) { c.schedule = "step"; }, "--schedule step needs --milestones"},
      {[](auto& c) { c.epochs = 0; }, "--epochs must be in (0, 1e6]"},
      {[](auto& c) { c.batch = 0; }, "--batch must be in [1, 2^20]"},
      {[](auto& c) { c.partition = "random"; }, "--partition: unknown partition"},
      {[](auto& c) { c.dirichlet_alpha = 0; }, "--dirichlet-alpha must be > 0"},
      {[](auto& c) { c.nan_policy = "ignore"; }, "--nan-policy: unknown policy"},
      {[](auto& c) { c.checkpoint_every = 10; }, "--checkpoint-every needs --checkpoint"},
      {[](auto& c) { c.resume = true; }, "--resume needs a checkpoint"},
      {[](auto& c) { c.eval_virtual = true; }, "--eval-virtual applies to --optimizer def-a"},
      {[](auto& c) { c.norm = "ln"; }, "--norm: unknown normalisation"},
      {[](auto& c) { c.dropit = -0.1; }, "--dropit must be in [0, 1), got -0.1"},
      {[](auto& c) { c.dropit = 1; }, "--dropit must be in [0, 1), got 1"},
      {[](auto& c) {
         c.dropit = 0.5;
         c.dropit_layers = "first";
       },
       "--dropit-layers: unknown layer set 'first' (valid: hidden, all)"},
  };
  for (const auto& b : cases) {
    train::TrainConfig c;
    b.set(c);
    expect_throws_code([&] { train::validate_config(c, 2, 1); }, ErrorCode::kInvalidArgument, b.text);
  }
  train::TrainConfig ok;
  EXPECT_NO_THROW(train::validate_config(ok, 4, 0));
}

TEST(Config, CanonicalTextNamesWhatChangesTheTrajectory) {
  train::TrainConfig a;
  auto b = a;
  b.max_steps = 10;
  b.trace = "x.h5";
  b.progress_every = 1;
  b.eval_every = 3;  // evaluation never changes the trajectory
  EXPECT_EQ(train::canonical_config(a, 4, 7), train::canonical_config(b, 4, 7));
  EXPECT_EQ(train::config_difference(train::canonical_config(a, 4, 7), train::canonical_config(a, 8, 7)),
            "world_size: 4 vs 8");
  b = a;
  b.density = 0.02;
  EXPECT_EQ(train::config_difference(train::canonical_config(a, 4, 7), train::canonical_config(b, 4, 7)),
            "density: 0.01 vs 0.02");
  EXPECT_NE(train::canonical_config(a, 4, 7), train::canonical_config(a, 4, 8));  // other data
}

// The keys of a canonical text, in order.
std::vector<std::string> config_keys(const std::string& text) {
  std::vector<std::string> keys;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto eq = text.find('=', at), nl = text.find('\n', at);
    keys.push_back(text.substr(at, eq - at));
    at = nl + 1;
  }
  return keys;
}

// Written out by hand from docs/train.md and the methods' code, independently of the table.
TEST(Config, CanonicalTextHoldsExactlyTheOptionsTheRunReads) {
  const std::vector<std::string> head{"world_size",   "data_crc",  "model",   "train_samples",
                                      "test_samples", "partition", "augment", "optimizer"};
  const std::vector<std::string> compressed{"compressor", "density", "layerwise", "min_compress_size"};
  const std::vector<std::string> tail{"lr", "schedule", "epochs", "batch", "seed"};
  struct Case {
    const char* method;
    std::vector<std::string> keys;  // between "optimizer" and "lr"
  };
  auto with = [&](std::vector<std::string> first, const std::vector<std::string>& rest) {
    first.insert(first.end(), rest.begin(), rest.end());
    return first;
  };
  const std::vector<Case> cases{
      {"dmsgd", {"momentum", "weight_decay", "wd_outside", "nan_policy"}},
      {"dmsgd-local", {"momentum", "weight_decay", "wd_outside", "nan_policy"}},
      {"ef-sgd", with(compressed, {"weight_decay", "wd_outside", "nan_policy"})},
      {"ef-sgdm", with(compressed, {"momentum", "weight_decay", "wd_outside", "nan_policy"})},
      {"dgc", with(compressed, {"momentum", "weight_decay", "wd_outside", "nan_policy", "clip_norm",
                                "warmup_epochs", "nesterov"})},
      {"dgc-mfm", with(compressed, {"momentum", "weight_decay", "wd_outside", "nan_policy", "clip_norm",
                                    "warmup_epochs", "nesterov"})},
      {"gmc", with(compressed, {"momentum", "weight_decay", "nan_policy"})},
      {"gmc-plus", with(compressed, {"alpha", "momentum", "weight_decay", "nan_policy"})},
      {"def-a", with(compressed, {"alpha", "momentum", "weight_decay", "wd_outside", "nan_policy"})},
      {"cser", with(compressed, {"momentum", "weight_decay", "nan_policy", "cser_period", "cser_density1",
                                 "cser_density2"})},
      {"liec",
       {"compressor", "density", "momentum", "weight_decay", "nan_policy", "down_compressor",
        "down_density"}},
      {"dpsgd", {"momentum", "weight_decay", "wd_outside", "nan_policy", "topology"}},
      {"relaysgd", {"momentum", "weight_decay", "wd_outside", "nan_policy", "topology", "relay_variant"}},
      {"powergossip",
       {"momentum", "weight_decay", "wd_outside", "nan_policy", "low_rank", "topology", "power_iters",
        "diffusion_rate"}},
      {"a2cid2",
       {"momentum", "weight_decay", "nan_policy", "topology", "comm_rate", "comm_schedule", "acid_order"}},
      {"async-gossip", {"momentum", "weight_decay", "nan_policy", "topology", "comm_rate", "comm_schedule"}},
  };
  for (const auto& k : cases) {
    train::TrainConfig c;
    c.optimizer = k.method;
    EXPECT_EQ(config_keys(train::canonical_config(c, 2, 7)), with(with(head, k.keys), tail)) << k.method;
  }
  // Models, partitions and schedules add their own options.
  train::TrainConfig c;
  c.model = "resnet20";
  c.partition = "dirichlet";
  c.schedule = "step";
  c.milestones = {1, 2};
  const auto keys = config_keys(train::canonical_config(c, 2, 7));
  for (const char* key : {"norm", "dirichlet_alpha", "dirichlet_group", "milestones", "gamma"}) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
  }
  c = {};
  c.model = "synthetic";
  c.params = 100;
  const auto syn = config_keys(train::canonical_config(c, 2, 7));
  EXPECT_NE(std::find(syn.begin(), syn.end(), "params"), syn.end());
  for (const char* key : {"norm", "augment", "dirichlet_alpha", "milestones", "gamma"}) {
    EXPECT_EQ(std::find(syn.begin(), syn.end(), key), syn.end()) << key;
  }
}

// DropIT's keys appear only when it is on, after augment; off, the text is that of a run without it.
TEST(Config, CanonicalTextHoldsDropitOnlyWhenOn) {
  train::TrainConfig c;
  c.model = "cnn";
  const std::string off = train::canonical_config(c, 2, 7);
  c.dropit_layers = "all";  // not read without a gamma
  EXPECT_EQ(train::canonical_config(c, 2, 7), off);
  c.dropit = 0.7;
  const std::string on = train::canonical_config(c, 2, 7);
  const auto keys = config_keys(on);
  const auto at = std::find(keys.begin(), keys.end(), "augment");
  ASSERT_NE(at, keys.end());
  ASSERT_GE(keys.end() - at, 3);
  EXPECT_EQ(*(at + 1), "dropit");
  EXPECT_EQ(*(at + 2), "dropit_layers");
  EXPECT_NE(on.find("dropit=0.7\ndropit_layers=all\n"), std::string::npos) << on;
}

TEST(Config, TheOptionTableNamesOnlyKnownChoices) {
  const std::vector<std::string> partitions{"iid", "dirichlet", "shards"},
      schedules{"constant", "step", "cosine"};
  for (const auto& o : train::train_options()) {
    const std::vector<std::string>* known = nullptr;
    const auto models = train::model_names();
    switch (o.read_by) {
      case train::ReadBy::kAll:
        EXPECT_TRUE(o.readers.empty()) << o.flag;
        continue;
      case train::ReadBy::kMethod:
        known = &sparcol::optim::method_names();
        break;
      case train::ReadBy::kModel:
        known = &models;
        break;
      case train::ReadBy::kPartition:
        known = &partitions;
        break;
      case train::ReadBy::kSchedule:
        known = &schedules;
        break;
    }
    EXPECT_FALSE(o.readers.empty()) << o.flag;
    for (const auto& r : o.readers) {
      EXPECT_NE(std::find(known->begin(), known->end(), r), known->end()) << o.flag << " names '" << r << "'";
    }
    EXPECT_EQ(train::find_train_option(o.flag), &o);
    EXPECT_EQ(o.key.empty(), !o.value) << o.flag;
  }
}

TEST(Config, DefaultsAreRecordedResolved) {
  train::TrainConfig a;
  a.optimizer = "gmc-plus";
  auto b = a;
  b.alpha = 0.5;  // gmc-plus's default, given explicitly: the same run
  EXPECT_EQ(train::canonical_config(a, 2, 7), train::canonical_config(b, 2, 7));
  b.alpha = 0.4;
  EXPECT_EQ(train::config_difference(train::canonical_config(a, 2, 7), train::canonical_config(b, 2, 7)),
            "alpha: 0.5 vs 0.4");
  a.optimizer = b.optimizer = "cser";
  b.alpha = -1;
  b.cser_density1 = 0.005;  // density / 2
  EXPECT_EQ(train::canonical_config(a, 2, 7), train::canonical_config(b, 2, 7));
  // What a method does not read is not recorded: an unread option cannot make two runs differ.
  a.optimizer = b.optimizer = "dmsgd";
  b.density = 0.5;
  b.compressor = "rbgs";
  EXPECT_EQ(train::canonical_config(a, 2, 7), train::canonical_config(b, 2, 7));
}

// The asynchronous methods: --comm-rate in (0, 1000]; no checkpoints (their runs depend on timing);
// a2cid2's graph must admit its constants (regular, not complete).
TEST(Config, AsynchronousMethodsCheckTheirRateGraphAndCheckpoints) {
  auto base = [] {
    train::TrainConfig c;
    c.optimizer = "a2cid2";
    return c;
  };
  EXPECT_NO_THROW(train::validate_config(base(), 4, 0));
  for (double bad : {0.0, -1.0, 2000.0, std::numeric_limits<double>::infinity()}) {
    auto c = base();
    c.comm_rate = bad;
    expect_throws_code([&] { train::validate_config(c, 4, 0); }, ErrorCode::kInvalidArgument,
                       "--comm-rate must be in (0, 1000]");
  }
  auto sched = base();
  sched.comm_schedule = "sometimes";
  expect_throws_code([&] { train::validate_config(sched, 4, 0); }, ErrorCode::kInvalidArgument,
                     "--comm-schedule: unknown schedule 'sometimes' (valid: exact, poisson)");
  sched.comm_schedule = "poisson";
  EXPECT_NO_THROW(train::validate_config(sched, 4, 0));
  auto order = base();
  order.acid_order = "mix-later";
  expect_throws_code([&] { train::validate_config(order, 4, 0); }, ErrorCode::kInvalidArgument,
                     "--acid-order: unknown order 'mix-later' (valid: mix-first, exchange-first)");
  order.acid_order = "exchange-first";
  EXPECT_NO_THROW(train::validate_config(order, 4, 0));
  auto ck = base();
  ck.checkpoint_dir = "/tmp/none";
  expect_throws_code([&] { train::validate_config(ck, 4, 0); }, ErrorCode::kInvalidArgument,
                     "--optimizer a2cid2 is asynchronous");
  auto rs = base();
  rs.optimizer = "async-gossip";
  rs.resume = true;
  rs.resume_from = "/tmp/none";
  expect_throws_code([&] { train::validate_config(rs, 4, 0); }, ErrorCode::kInvalidArgument,
                     "--optimizer async-gossip is asynchronous");
  auto complete = base();
  complete.topology = "complete";
  expect_throws_code([&] { train::validate_config(complete, 4, 0); }, ErrorCode::kInvalidArgument,
                     "non-complete graphs only");
  expect_throws_code([&] { train::validate_config(base(), 3, 0); }, ErrorCode::kInvalidArgument,
                     "non-complete graphs only");  // the ring of 3 is the complete graph
  auto ag = base();
  ag.optimizer = "async-gossip";
  ag.topology = "complete";
  EXPECT_NO_THROW(train::validate_config(ag, 3, 0));
}

TEST(Config, AnOptionGivenThatTheRunDoesNotReadIsRefused) {
  struct Case {
    std::function<void(train::TrainConfig&)> set;
    const char* flag;
    const char* text;  // "" = accepted
  };
  const std::vector<Case> cases{
      {[](auto& c) { c.optimizer = "gmc"; }, "--alpha",
       "--alpha applies to --optimizer gmc-plus, def-a only (this run: --optimizer gmc)"},
      {[](auto& c) { c.optimizer = "def-a"; }, "--alpha", ""},
      {[](auto& c) { c.optimizer = "gmc"; }, "--wd-outside",
       "--wd-outside applies to --optimizer dmsgd, dmsgd-local, ef-sgd, ef-sgdm, dgc, dgc-mfm, def-a, dpsgd, "
       "relaysgd, powergossip only (this run: --optimizer gmc)"},
      {[](auto& c) { c.optimizer = "gmc-plus"; }, "--wd-outside", "(this run: --optimizer gmc-plus)"},
      {[](auto& c) { c.optimizer = "cser"; }, "--wd-outside", "(this run: --optimizer cser)"},
      {[](auto& c) { c.optimizer = "ef-sgd"; }, "--wd-outside", ""},
      {[](auto& c) { c.optimizer = "dmsgd"; }, "--compressor", "(this run: --optimizer dmsgd)"},
      {[](auto& c) { c.optimizer = "dmsgd-local"; }, "--density", "(this run: --optimizer dmsgd-local)"},
      {[](auto& c) { c.optimizer = "ef-sgd"; }, "--momentum", "(this run: --optimizer ef-sgd)"},
      {[](auto& c) { c.optimizer = "dgc-mfm"; }, "--clip-norm", ""},
      {[](auto& c) { c.optimizer = "gmc"; }, "--nesterov",
       "--nesterov applies to --optimizer dgc, dgc-mfm only"},
      {[](auto& c) { c.optimizer = "dgc"; }, "--cser-period",
       "--cser-period applies to --optimizer cser only"},
      {[](auto& c) { c.model = "cnn"; }, "--norm",
       "--norm applies to --model resnet20 only (this run: --model cnn)"},
      {[](auto& c) { c.model = "synthetic"; }, "--data", "--data applies to --model mlp, cnn, resnet20 only"},
      {[](auto& c) { c.partition = "shards"; }, "--dirichlet-alpha", "(this run: --partition shards)"},
      {[](auto& c) { c.schedule = "cosine"; }, "--gamma", "--gamma applies to --schedule step only"},
      {[](auto& c) { c.schedule = "step"; }, "--gamma", ""},
      {[](auto& c) { c.optimizer = "dpsgd"; }, "--comm-rate",
       "--comm-rate applies to --optimizer a2cid2, async-gossip only (this run: --optimizer dpsgd)"},
      {[](auto& c) { c.optimizer = "a2cid2"; }, "--comm-rate", ""},
      {[](auto& c) { c.optimizer = "async-gossip"; }, "--topology", ""},
  };
  for (const auto& k : cases) {
    train::TrainConfig c;
    k.set(c);
    const auto given = [&](const std::string& flag) { return flag == k.flag; };
    if (std::string(k.text).empty()) {
      EXPECT_NO_THROW(train::check_options_read(c, given, 0)) << k.flag;
    } else {
      expect_throws_code([&] { train::check_options_read(c, given, 0); }, ErrorCode::kInvalidArgument,
                         k.text);
    }
  }
  // A preset's value for an option the method does not read is not applied, so it never trips the check.
  train::TrainConfig c;
  c.optimizer = "dmsgd";
  train::apply_preset(c, "gmc-paper", [](const std::string&) { return false; });
  EXPECT_EQ(c.density, train::TrainConfig{}.density);
  EXPECT_EQ(c.weight_decay, 1e-4);
  EXPECT_NO_THROW(train::validate_config(c, 2, 0, [](const std::string&) { return false; }));
  c.weight_decay = 0;
  c.wd_outside = true;
  expect_throws_code([&] { train::validate_config(c, 2, 0); }, ErrorCode::kInvalidArgument,
                     "--wd-outside needs a non-zero --weight-decay");
}

}  // namespace
