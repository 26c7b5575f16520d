// Asynchronous pairwise gossip (ALGORITHMS.md 10.6; docs/async_gossip.md): a communication thread that
// forms pairs of graph neighbours and averages their vectors while the caller's thread computes.
//
// A PairGossip owns a duplicate of a backend (Backend::duplicate: its messages never meet the
// caller's) and one protocol thread. The caller (the compute thread) grants it averagings: every
// add_step() adds `rate` to this rank's budget (exact scheduling: rate pairwise averagings per
// gradient step) or, with Poisson scheduling, a Poisson(rate) number of them (rate per step in
// expectation; the draws come from the seed and the rank). The protocol thread spends the budget one
// averaging at a time:
//
//   REQUEST  i -> j   "average with me?"    (i has budget >= 1, is in no pair, j is a neighbour not done)
//   ACCEPT   j -> i   j has budget >= 1 and is in no pair: the pair (i, j) forms, both spend 1
//   REFUSE   j -> i   j is busy (waiting for an answer itself), has no budget, or has finished
//   DONE     i -> all i has finished its steps: it refuses every request from now on and sends none
//
// Every REQUEST gets exactly one answer. A rank waits for at most one answer at a time. Two
// neighbours that ask each other at once are told apart by rank: the higher rank accepts the lower
// rank's request (and the lower refuses the higher's), so the pair still forms. Once a pair has
// formed both sides exchange their vectors (one message each way, on a tag of its own), through the
// hooks: prepare(peer, send) fills this rank's message; apply(peer, send, recv) consumes the peer's.
//
// End: finish() tells the thread that the caller's steps are over; it answers what it has asked,
// sends DONE to every neighbour, keeps refusing requests until it has DONE from every neighbour, and
// ends with no message unmatched. finish() joins it.
//
// Failure: every wait of the thread has the backend's timeout(): a neighbour that does not answer a
// request, does not send its half of an exchange, or never says DONE is Error(kTimeout) naming that
// rank. The thread then stops; add_step(), check() and finish() rethrow the error on the caller's
// thread. The destructor never throws: without finish() it ends the protocol the same way (or, while
// an exception unwinds, stops at once, and the neighbours time out naming this rank).
//
// A failure the caller does not pick up within a second (its thread is blocked in a call that cannot
// give up, such as MPI_Allgatherv while a neighbour is stopped) is passed to the unattended-failure
// handler, if one is installed (the programs install one that prints the error and aborts the job:
// a stopped neighbour must end the job, not leave it hanging in another rank's collective).
//
// Threads: MpiBackend needs MPI_THREAD_MULTIPLE (checked, Error(kBackend) naming the level); the
// hooks run on the protocol thread and must synchronise with the caller themselves.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <thread>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/topo/graph.hpp"

namespace sparcol::topo {

struct PairGossipStats {
  std::uint64_t steps = 0;       // add_step() calls
  double granted = 0;            // averagings granted by add_step() (exact: rate * steps)
  std::uint64_t averagings = 0;  // pairs formed (exchanges done)
  std::uint64_t requests = 0;    // REQUESTs sent
  std::uint64_t refused = 0;     // REFUSEs received
  std::uint64_t bytes_sent = 0;  // payload of the exchanges (control messages not counted)
  std::uint64_t bytes_recv = 0;
  std::vector<std::uint64_t> per_neighbor;  // averagings with neighbors()[k]
  // Control messages sent to and received from neighbors()[k]: once every rank has finished, what i
  // sent to j equals what j received from i (no message left unmatched).
  std::vector<std::uint64_t> sent_to, received_from;
};

class PairGossip {
 public:
  struct Hooks {
    std::function<void(int peer, std::span<float> send)> prepare;
    std::function<void(int peer, std::span<const float> send, std::span<const float> recv)> apply;
  };

  // A collective call (it duplicates the backend). The graph must have backend.size() nodes, every
  // rank a neighbour; rate > 0; count floats per exchange. seed: the choice of neighbours.
  PairGossip(comm::Backend& backend, const Graph& graph, std::size_t count, double rate, Hooks hooks,
             std::uint64_t seed, bool poisson = false);
  ~PairGossip();
  PairGossip(const PairGossip&) = delete;
  PairGossip& operator=(const PairGossip&) = delete;

  // One gradient step done: the budget grows by rate. Rethrows a failure of the protocol thread.
  void add_step();
  // Rethrows a failure of the protocol thread, if any.
  void check();
  // The caller's steps are over: blocks until every neighbour is done too and the thread has ended;
  // rethrows its failure. A second call returns the same statistics.
  PairGossipStats finish();
  bool finished() const { return joined_; }
  PairGossipStats stats();

  std::span<const int> neighbors() const { return neighbors_; }

  // Called on the protocol thread with a failure the caller has not picked up within a second (see
  // above). Process-wide; nullptr (the default) removes it.
  using FailureHandler = void (*)(std::exception_ptr);
  static void set_unattended_failure_handler(FailureHandler handler);

 private:
  void loop();
  void run_protocol();

  std::unique_ptr<comm::Backend> dup_;
  std::vector<int> neighbors_;
  std::size_t count_;
  double rate_;
  Hooks hooks_;
  std::uint64_t seed_;
  bool poisson_;
  std::mt19937_64 draws_;  // Poisson scheduling (the caller's thread, under mu_)

  std::mutex mu_;
  std::condition_variable cv_;
  double budget_ = 0;       // averagings granted and not yet spent
  bool finishing_ = false;  // the caller's steps are over
  bool abandon_ = false;    // stop at once (destructor while unwinding)
  bool ended_ = false;      // the thread has left its loop
  std::exception_ptr error_;
  bool error_seen_ = false;  // the caller has been given error_
  PairGossipStats stats_;
  bool joined_ = false;
  std::thread thread_;
};

}  // namespace sparcol::topo
