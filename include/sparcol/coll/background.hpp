// Communication behind computation: collectives that run on a progress thread while the caller
// computes (docs/architecture.md, "Communication behind computation").
//
// A Background owns a duplicate of a backend (Backend::duplicate: its own communicator, so its
// messages never meet the caller's) and one thread that runs jobs on it, one at a time:
//
//   coll::Background bg(backend);                      // collective: every rank, same order
//   coll::RingAllreduce ring(bg.backend(), n);         // any collective, built over the duplicate
//   bg.start([&](comm::Backend&) { ring.run(data); }); // returns at once
//   ... compute; the caller may use `backend` meanwhile (not bg.backend(), not `data`) ...
//   bg.wait();                                         // the result is in data; rethrows a failure
//
// The jobs run the ordinary collectives (ring all-reduce, sparse all-gather, RBGS: the same code as
// the blocking calls, so the results are bitwise the blocking results), with their call fingerprint
// and their timeouts: a peer that dies or stops while a job is in flight makes the job throw the
// collective's Error(kTimeout) (naming the operation and the peer) after the backend's timeout, and
// wait() rethrows it. The destructor waits for a job in flight (ending within the timeout) and joins
// the thread; it never throws.
//
// Threads: the job runs on the progress thread while the caller's thread may use the original
// backend. MpiBackend therefore needs MPI_THREAD_MULTIPLE; the constructor checks the level MPI
// provides and throws Error(kBackend) naming it otherwise (programs that use a Background initialise
// MPI with ThreadLevel::kMultiple). The loopback backend has no such requirement.
//
// Why a progress thread rather than MPI's non-blocking collectives (MPI_Iallreduce): Open MPI
// progresses a non-blocking collective only inside MPI calls, so a compute loop that makes none
// hides nothing; the thread progresses the transfer by itself, and the same thread runs sparcol's
// own collectives (sparse all-gather, RBGS), which have no MPI counterpart.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "sparcol/comm/backend.hpp"

namespace sparcol::coll {

class Background {
 public:
  using Job = std::function<void(comm::Backend&)>;

  // Duplicates `backend` (a collective call) and starts the progress thread.
  explicit Background(comm::Backend& backend);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  // The duplicate the jobs run on: build collectives over it; use it only from jobs.
  comm::Backend& backend() { return *dup_; }

  // Starts `job` on the progress thread. Error(kInternal) if a job is still in flight (wait first).
  void start(Job job);
  // Blocks until the job in flight has finished (nothing in flight: returns at once); rethrows what
  // the job threw. Returns the seconds spent waiting.
  double wait();
  // Whether a job was started and not yet waited for.
  bool in_flight() const { return in_flight_; }
  // Whether the job in flight has finished (wait() would not block).
  bool done();

 private:
  void loop();

  std::unique_ptr<comm::Backend> dup_;
  std::mutex mu_;
  std::condition_variable cv_;
  Job job_;
  bool has_job_ = false;   // a job waits for the thread
  bool finished_ = false;  // the job in flight has finished
  bool stop_ = false;
  bool in_flight_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

// Whether this process can run a Background over `backend` (MPI: the thread level is
// MPI_THREAD_MULTIPLE); otherwise why not.
std::string background_unsupported_reason(comm::Backend& backend);

}  // namespace sparcol::coll
