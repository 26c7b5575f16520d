// The GPU communication path's host-side logic, in every build and without a GPU:
//  * the NCCL point-to-point rules (GroupedBackend) on a host-memory emulation: order matching,
//    groups, cancellation, zero-byte operations, the deadlock the control backend avoids, timeouts
//    that abort the transport;
//  * every collective, host path and executor path, over that emulation (threads as ranks), so a
//    collective whose message order would hang or mismatch on NCCL fails here;
//  * the executor path of every collective (Exec::host(): the CPU twins, the code the GPU runs)
//    against the host path on LoopbackBackend, bitwise, over world sizes 1..8;
//  * the new kernels' CPU twins, and make_backend's names and errors.
// A fresh seed per run is printed on failure; SPARCOL_TEST_SEED=<n> repeats a run.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../common/coll_checks.hpp"
#include "devpath_checks.hpp"
#include "emulated_nccl.hpp"
#include "gpu_skip.hpp"
#include "sparcol/coll/agree.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/comm/make_backend.hpp"
#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/coll_support.hpp"
#include "sparcol/device/dispatch.hpp"

using sparcol::ErrorCode;
using sparcol::comm::Backend;
using sparcol::comm::LoopbackWorld;
using sparcol::device::Exec;
using sparcol::test::DevCheck;

namespace {

const std::uint64_t kSeed = sparcol::test::test_seed();

std::string seed_note() {
  return " (seed " + std::to_string(kSeed) + "; rerun with SPARCOL_TEST_SEED=" + std::to_string(kSeed) + ")";
}

template <class F>
void expect_error(ErrorCode code, const std::string& text, F&& f) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << text << "'";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

enum class World { kLoopback, kEmulatedNccl };

// Runs check(backend) on every rank of a world of `ranks` and merges the results.
template <class F>
DevCheck run_world(World w, int ranks, F&& check) {
  std::vector<DevCheck> per_rank(static_cast<std::size_t>(ranks));
  auto body = [&](Backend& b) { per_rank[static_cast<std::size_t>(b.rank())] = check(b); };
  if (w == World::kLoopback) {
    LoopbackWorld::spawn(ranks, body);
  } else {
    sparcol::test::run_emulated_nccl(ranks, body);
  }
  DevCheck all;
  for (const auto& r : per_rank) {
    if (r.wrong != 0 && all.wrong == 0) all.first = r.first;
    all.wrong += r.wrong;
  }
  return all;
}

// ---------------------------------------------------------------------------------------------
// NCCL point-to-point rules on the emulation
// ---------------------------------------------------------------------------------------------

TEST(EmulatedNccl, MatchesByOrderNotByTag) {
  // On MPI the receive with tag 7 would take the message sent with tag 7; NCCL has no tags: the
  // first receive takes the first send. Collectives must post in the same order on both sides.
  std::vector<float> got(2, 0.0f);
  sparcol::test::run_emulated_nccl(2, [&](Backend& b) {
    float a = 1.0f, c = 2.0f;
    float x = 0.0f, y = 0.0f;
    if (b.rank() == 0) {
      sparcol::comm::Request r[2] = {b.isend(&a, 4, 1, 5), b.isend(&c, 4, 1, 7)};
      b.wait_all(r);
    } else {
      sparcol::comm::Request r[2] = {b.irecv(&x, 4, 0, 7), b.irecv(&y, 4, 0, 5)};
      b.wait_all(r);
      got = {x, y};
    }
  });
  EXPECT_EQ(got[0], 1.0f);
  EXPECT_EQ(got[1], 2.0f);
}

TEST(EmulatedNccl, PostsOfOneRoundFormOneGroup) {
  std::uint64_t groups = 0;
  sparcol::test::run_emulated_nccl(3, [&](Backend& b) {
    auto& g = dynamic_cast<sparcol::comm::GroupedBackend&>(b);
    const int me = b.rank(), K = b.size();
    std::vector<float> in(4, static_cast<float>(me)), out(4 * static_cast<std::size_t>(K));
    std::vector<sparcol::comm::Request> reqs;
    for (int i = 1; i < K; ++i) {
      const int from = (me - i + K) % K;
      reqs.push_back(b.irecv(out.data() + 4 * from, 16, from, 1));
    }
    for (int i = 1; i < K; ++i) reqs.push_back(b.isend(in.data(), 16, (me + i) % K, 1));
    b.wait(reqs[0]);  // the first wait issues everything posted so far, once
    b.wait_all(reqs);
    for (int r = 0; r < K; ++r) {
      if (r == me) continue;
      EXPECT_EQ(out[4 * static_cast<std::size_t>(r)], static_cast<float>(r));
    }
    if (me == 0) groups = g.groups_issued();
  });
  EXPECT_EQ(groups, 1u);
}

TEST(EmulatedNccl, ZeroByteOperationsAreNeverIssued) {
  sparcol::test::run_emulated_nccl(2, [&](Backend& b) {
    auto& g = dynamic_cast<sparcol::comm::GroupedBackend&>(b);
    sparcol::comm::Request r[2] = {b.isend(nullptr, 0, 1 - b.rank(), 3),
                                   b.irecv(nullptr, 0, 1 - b.rank(), 3)};
    b.wait_all(r);
    EXPECT_EQ(g.groups_issued(), 0u);
  });
}

TEST(EmulatedNccl, RequestsDroppedBeforeIssueAreCancelled) {
  // A send posted and dropped before any wait never reaches the peer: the next exchange matches.
  sparcol::test::run_emulated_nccl(2, [&](Backend& b) {
    const int peer = 1 - b.rank();
    float junk = -1.0f, mine = static_cast<float>(b.rank() + 10), theirs = 0.0f;
    { auto dropped = b.isend(&junk, 4, peer, 1); }
    sparcol::comm::Request r[2] = {b.irecv(&theirs, 4, peer, 1), b.isend(&mine, 4, peer, 1)};
    b.wait_all(r);
    EXPECT_EQ(theirs, static_cast<float>(peer + 10));
  });
}

TEST(EmulatedNccl, SizeMismatchIsAnError) {
  expect_error(ErrorCode::kMismatch, "matches by order only", [] {
    sparcol::test::run_emulated_nccl(2, [&](Backend& b) {
      std::vector<float> v(8);
      if (b.rank() == 0) {
        auto r = b.isend(v.data(), 32, 1, 1);
        b.wait(r);
      } else {
        auto r = b.irecv(v.data(), 16, 0, 1);
        b.wait(r);
      }
    });
  });
}

TEST(EmulatedNccl, SendingBeforeAHostAgreementDeadlocksAndTimesOutWithAnAbort) {
  // Rank 0 waits for a send that rank 1 will only receive after a host-side barrier, which rank 0
  // never reaches: on NCCL this hangs in a kernel. The wait gives up after the timeout, aborts the
  // transport and names the peer. (sparcol's collectives send their fingerprints over control() for
  // this reason.)
  int aborts = 0;
  std::string message;
  try {
    sparcol::test::run_emulated_nccl(2, [&](Backend& b) {
      // Rank 0 gives up first; rank 1, in the host barrier, then learns that rank 0 failed.
      b.set_timeout(std::chrono::milliseconds(b.rank() == 0 ? 300 : 20000));
      float x = 1.0f;
      if (b.rank() == 0) {
        auto r = b.isend(&x, 4, 1, 1);
        try {
          b.wait(r);
        } catch (const sparcol::Error& e) {
          aborts = dynamic_cast<sparcol::test::EmulatedNcclBackend&>(b).aborts();
          message = e.what();
          throw;
        }
      } else {
        b.control().barrier();
        auto r = b.irecv(&x, 4, 0, 1);
        b.wait(r);
      }
    });
    ADD_FAILURE() << "expected a timeout";
  } catch (const sparcol::Error&) {
  }
  EXPECT_EQ(aborts, 1);
  EXPECT_NE(message.find("timed out"), std::string::npos) << message;
  EXPECT_NE(message.find("rank 1"), std::string::npos) << message;
  EXPECT_NE(message.find("aborted"), std::string::npos) << message;
}

TEST(EmulatedNccl, FingerprintsTravelOverTheControlBackend) {
  // A mismatch is still an error on every rank, and no NCCL group is issued for the fingerprints.
  std::vector<int> codes(2, -1);
  std::vector<std::uint64_t> groups(2, 99);
  try {
    sparcol::test::run_emulated_nccl(2, [&](Backend& b) {
      try {
        sparcol::coll::agree(
            b, sparcol::coll::CallSignature{sparcol::coll::CollOp::kUser, b.rank() == 0 ? 5u : 6u});
      } catch (const sparcol::Error& e) {
        codes[static_cast<std::size_t>(b.rank())] = static_cast<int>(e.code());
        groups[static_cast<std::size_t>(b.rank())] =
            dynamic_cast<sparcol::comm::GroupedBackend&>(b).groups_issued();
        throw;
      }
    });
  } catch (const sparcol::Error&) {
  }
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(codes[static_cast<std::size_t>(r)], static_cast<int>(ErrorCode::kMismatch)) << "rank " << r;
    EXPECT_EQ(groups[static_cast<std::size_t>(r)], 0u) << "rank " << r;
  }
}

// ---------------------------------------------------------------------------------------------
// Collectives over the emulation (host path) and the executor path on both worlds
// ---------------------------------------------------------------------------------------------

class DevpathColl : public ::testing::TestWithParam<std::tuple<int, std::size_t>> {};

TEST_P(DevpathColl, HostPathOnEmulatedNccl) {
  const int ranks = std::get<0>(GetParam());
  const std::size_t n = std::get<1>(GetParam());
  auto run = [&](auto&& check) {
    std::vector<sparcol::test::CheckResult> per(static_cast<std::size_t>(ranks));
    sparcol::test::run_emulated_nccl(ranks,
                                     [&](Backend& b) { per[static_cast<std::size_t>(b.rank())] = check(b); });
    sparcol::test::CheckResult all;
    for (const auto& r : per) all.merge(r);
    return all;
  };
  auto res = run([&](Backend& b) { return sparcol::test::check_ring_allreduce(b, n, kSeed); });
  EXPECT_EQ(res.wrong, 0u) << res.first << seed_note();
  for (std::size_t k : sparcol::test::rbgs_ks(n)) {
    res = run([&](Backend& b) { return sparcol::test::check_rbgs_allreduce(b, n, k, kSeed, true); });
    EXPECT_EQ(res.wrong, 0u) << "k=" << k << ": " << res.first << seed_note();
  }
  for (std::size_t k : sparcol::test::sparse_ks(n)) {
    res = run([&](Backend& b) { return sparcol::test::check_sparse_allgather(b, n, k, kSeed); });
    EXPECT_EQ(res.wrong, 0u) << "max_k=" << k << ": " << res.first << seed_note();
  }
}

TEST_P(DevpathColl, ExecutorPathMatchesHostPathBitwise) {
  const int ranks = std::get<0>(GetParam());
  const std::size_t n = std::get<1>(GetParam());
  for (World w : {World::kLoopback, World::kEmulatedNccl}) {
    SCOPED_TRACE(w == World::kLoopback ? "loopback" : "emulated nccl");
    for (int algo : {0, 1, 2, 3}) {
      const auto res = run_world(w, ranks, [&](Backend& b) {
        Exec ex = Exec::host();
        return sparcol::test::check_ring_exec(b, ex, n, algo, kSeed);
      });
      EXPECT_EQ(res.wrong, 0u) << "ring algorithm " << algo << ": " << res.first << seed_note();
    }
    for (std::size_t k : sparcol::test::rbgs_ks(n)) {
      for (bool wrap : {true, false}) {
        const auto res = run_world(w, ranks, [&](Backend& b) {
          Exec ex = Exec::host();
          return sparcol::test::check_rbgs_exec(b, ex, n, k, wrap, kSeed);
        });
        EXPECT_EQ(res.wrong, 0u) << "rbgs k=" << k << " wrap " << wrap << ": " << res.first << seed_note();
      }
    }
    for (std::size_t k : sparcol::test::sparse_ks(n)) {
      for (int algo : {0, 1, 2}) {
        const auto res = run_world(w, ranks, [&](Backend& b) {
          Exec ex = Exec::host();
          return sparcol::test::check_sparse_exec(b, ex, n, k, algo, kSeed);
        });
        EXPECT_EQ(res.wrong, 0u) << "sparse max_k=" << k << " algorithm " << algo << ": " << res.first
                                 << seed_note();
      }
    }
    auto res = run_world(w, ranks, [&](Backend& b) {
      Exec ex = Exec::host();
      return sparcol::test::check_sign_exec(b, ex, n, kSeed);
    });
    EXPECT_EQ(res.wrong, 0u) << "sign: " << res.first << seed_note();
    res = run_world(w, ranks, [&](Backend& b) {
      Exec ex = Exec::host();
      return sparcol::test::check_dense_exec(b, ex, n, kSeed);
    });
    EXPECT_EQ(res.wrong, 0u) << "dense: " << res.first << seed_note();
  }
}

INSTANTIATE_TEST_SUITE_P(Sweep, DevpathColl,
                         ::testing::Combine(::testing::Values(1, 2, 3, 5, 8),
                                            ::testing::Values(std::size_t{0}, std::size_t{1}, std::size_t{7},
                                                              std::size_t{1009}, std::size_t{20011})),
                         [](const auto& p) {
                           return "ranks" + std::to_string(std::get<0>(p.param)) + "_n" +
                                  std::to_string(std::get<1>(p.param));
                         });

TEST(DevpathColl, SparseExecutorPathRejectsOutOfRangeIndices) {
  expect_error(ErrorCode::kInvalidArgument, "index 10 at position 2 is out of range for a vector of 10", [] {
    LoopbackWorld::spawn(2, [](Backend& b) {
      Exec ex = Exec::host();
      std::vector<sparcol::Index> idx{1, 2, 10};
      std::vector<float> val{1, 2, 3};
      sparcol::coll::SparseAllgather sag(b, 10, 3, sparcol::coll::SparseAllgather::Algorithm::kAuto, &ex);
      sag.run({idx, val});
    });
  });
}

TEST(DevpathColl, BackendCapabilities) {
  // A host-only backend accepts no device memory (collectives check accepts() at construction), is
  // its own control backend and has no stream.
  LoopbackWorld::spawn(1, [](Backend& b) {
    EXPECT_TRUE(b.accepts(sparcol::MemKind::kHost));
    EXPECT_FALSE(b.accepts(sparcol::MemKind::kDevice));
    EXPECT_EQ(&b.control(), &b);
    EXPECT_EQ(b.stream_handle(), nullptr);
  });
}

// ---------------------------------------------------------------------------------------------
// Twins of the new kernels; executors without a GPU
// ---------------------------------------------------------------------------------------------

TEST(CollSupportTwins, AddIntoIsTheRoundedSum) {
  std::mt19937 gen(static_cast<unsigned>(kSeed));
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> a(1001), b(1001);
  for (auto& x : a) x = dist(gen);
  for (auto& x : b) x = dist(gen);
  std::vector<float> want = a;
  for (std::size_t i = 0; i < a.size(); ++i) want[i] += b[i];
  sparcol::device::cpu::add_into(a.data(), b.data(), a.size());
  EXPECT_EQ(0, std::memcmp(a.data(), want.data(), a.size() * sizeof(float))) << seed_note();
  sparcol::device::cpu::add_into(nullptr, nullptr, 0);  // n = 0 touches nothing
}

TEST(CollSupportTwins, FirstBadIndex) {
  std::vector<sparcol::Index> idx{0, 5, 9, 12, 3, 40};
  std::uint64_t first = 0;
  sparcol::device::cpu::first_bad_index(idx.data(), idx.size(), 10, &first);
  EXPECT_EQ(first, 3u);
  sparcol::device::cpu::first_bad_index(idx.data(), 3, 10, &first);
  EXPECT_EQ(first, sparcol::device::kNoBadIndex);
  sparcol::device::cpu::first_bad_index(nullptr, 0, 10, &first);
  EXPECT_EQ(first, sparcol::device::kNoBadIndex);
  Exec ex = Exec::host();
  EXPECT_EQ(sparcol::device::dispatch::first_bad_index(ex, idx.data(), idx.size(), 41),
            sparcol::device::kNoBadIndex);
  EXPECT_EQ(sparcol::device::dispatch::first_bad_index(ex, idx.data(), idx.size(), 4), 1u);
}

TEST(Exec, HostExecutorAndBuffers) {
  Exec ex = Exec::host();
  EXPECT_EQ(ex.kind(), sparcol::MemKind::kHost);
  EXPECT_FALSE(ex.on_device());
  sparcol::device::Buffer<float> buf(ex, 5, "test");
  for (std::uint64_t i = 0; i < buf.size(); ++i) EXPECT_EQ(buf.data()[i], 0.0f);
  const float src[5] = {1, 2, 3, 4, 5};
  ex.upload(buf.data(), src, sizeof src);
  float back[5] = {};
  ex.download(back, buf.data(), sizeof back);
  EXPECT_EQ(0, std::memcmp(src, back, sizeof src));
  ex.synchronize();  // nothing to wait for
  expect_error(ErrorCode::kInternal, "host executor", [&] { (void)ex.stream(); });
}

TEST(Exec, DeviceExecutorWithoutGpuIsACudaError) {
  SPARCOL_SKIP_WITH_GPU();
  expect_error(ErrorCode::kCuda, "no CUDA device", [] { (void)Exec::device(); });
  expect_error(ErrorCode::kCuda, "no CUDA device", [] { (void)Exec::for_memory(sparcol::MemKind::kDevice); });
}

// ---------------------------------------------------------------------------------------------
// make_backend
// ---------------------------------------------------------------------------------------------

TEST(MakeBackend, NamesAndErrors) {
  const auto& names = sparcol::comm::backend_names();
  EXPECT_EQ(names, (std::vector<std::string>{"mpi", "nccl", "loopback"}));
  EXPECT_TRUE(sparcol::comm::backend_compiled("mpi"));
  EXPECT_TRUE(sparcol::comm::backend_compiled("loopback"));
  EXPECT_EQ(sparcol::comm::backend_compiled("nccl"), SPARCOL_HAVE_NCCL != 0);
  EXPECT_FALSE(sparcol::comm::backend_compiled("gloo"));
  expect_error(ErrorCode::kInvalidArgument, "unknown backend 'gloo' (available in this build: mpi",
               [] { (void)sparcol::comm::make_backend("gloo"); });
#if !SPARCOL_HAVE_NCCL
  expect_error(ErrorCode::kInvalidArgument, "backend 'nccl' is not compiled in",
               [] { (void)sparcol::comm::make_backend("nccl"); });
#endif
  auto lb = sparcol::comm::make_backend("loopback");
  EXPECT_EQ(lb->name(), "loopback");
  EXPECT_EQ(lb->size(), 1);
  auto world = LoopbackWorld::create(3);
  sparcol::comm::BackendOptions opt;
  opt.loopback_world = world;
  opt.loopback_rank = 2;
  EXPECT_EQ(sparcol::comm::make_backend("loopback", opt)->rank(), 2);
  opt.loopback_rank = 3;
  expect_error(ErrorCode::kInvalidArgument, "loopback rank 3 outside a world of 3",
               [&] { (void)sparcol::comm::make_backend("loopback", opt); });
}

TEST(MakeBackend, LocalRankFromTheLauncher) {
  // Restores the variables it changes.
  struct Env {
    const char* name;
    std::string old;
    bool had;
  };
  std::vector<Env> saved;
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"}) {
    const char* o = std::getenv(v);
    saved.push_back({v, o ? o : "", o != nullptr});
    unsetenv(v);
  }
  setenv("SLURM_LOCALID", "3", 1);
  EXPECT_EQ(sparcol::comm::local_rank(), 3);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);  // Open MPI's variable comes first
  EXPECT_EQ(sparcol::comm::local_rank(), 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "x1", 1);
  expect_error(ErrorCode::kInvalidArgument,
               "OMPI_COMM_WORLD_LOCAL_RANK must be a non-negative integer, got 'x1'",
               [] { (void)sparcol::comm::local_rank(); });
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  unsetenv("SLURM_LOCALID");
  EXPECT_EQ(sparcol::comm::local_rank(), 0);  // MPI not initialised in this program
  for (const auto& e : saved)
    if (e.had) setenv(e.name, e.old.c_str(), 1);
}

}  // namespace
