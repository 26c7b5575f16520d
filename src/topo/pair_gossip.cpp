#include "sparcol/topo/pair_gossip.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <random>
#include <string>

#include "sparcol/core/error.hpp"

namespace sparcol::topo {

namespace {

using Clock = std::chrono::steady_clock;

// Tags on the duplicate (its own context: they meet no other message of the program); reserved tags,
// so that a program terminated while the thread waits names "pair gossip" (comm::tag_name).
constexpr int kTagControl = comm::kTagPairGossip;
constexpr int kTagData = comm::kTagPairGossipData;

enum MessageType : std::int64_t { kRequest = 1, kAccept = 2, kRefuse = 3, kDone = 4 };

struct Control {
  std::int64_t type = 0;
  std::int64_t seq = 0;  // the sender's count of messages to this peer (diagnostics)
};

std::string secs(std::chrono::milliseconds t) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", static_cast<double>(t.count()) / 1000.0);
  return b;
}

std::atomic<PairGossip::FailureHandler> g_failure_handler{nullptr};

}  // namespace

void PairGossip::set_unattended_failure_handler(FailureHandler handler) {
  g_failure_handler.store(handler);
}

PairGossip::PairGossip(comm::Backend& backend, const Graph& graph, std::size_t count, double rate,
                       Hooks hooks, std::uint64_t seed, bool poisson)
    : count_(count),
      rate_(rate),
      hooks_(std::move(hooks)),
      seed_(seed),
      poisson_(poisson),
      draws_(seed * 0xD1B54A32D192ED03ull + static_cast<std::uint64_t>(backend.rank()) * 7919 + 3) {
  const int me = backend.rank();
  SPARCOL_CHECK_ARG(graph.n == backend.size(), me,
                    "pair gossip: topology " + graph.name + " has " + std::to_string(graph.n) +
                        " nodes but the run has " + std::to_string(backend.size()) + " ranks");
  SPARCOL_CHECK_ARG(rate > 0 && rate < 1e6, me,
                    "pair gossip: the rate must be in (0, 1e6), got " + std::to_string(rate));
  SPARCOL_CHECK_ARG(hooks_.prepare && hooks_.apply, me, "pair gossip: both hooks are needed");
  const std::string why = backend.concurrent_use_reason();
  SPARCOL_CHECK(why.empty(), ErrorCode::kBackend, me, "pair gossip (a communication thread): " + why);
  const auto& nb = graph.neighbors[static_cast<std::size_t>(me)];
  neighbors_.assign(nb.begin(), nb.end());
  SPARCOL_CHECK_ARG(!neighbors_.empty() || graph.n == 1, me,
                    "pair gossip: rank " + std::to_string(me) + " has no neighbour on " + graph.name);
  stats_.per_neighbor.assign(neighbors_.size(), 0);
  stats_.sent_to.assign(neighbors_.size(), 0);
  stats_.received_from.assign(neighbors_.size(), 0);
  dup_ = backend.duplicate();
  thread_ = std::thread([this] { loop(); });
}

PairGossip::~PairGossip() {
  if (joined_) return;
  {
    std::lock_guard lock(mu_);
    finishing_ = true;
    if (std::uncaught_exceptions() > 0) abandon_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void PairGossip::add_step() {
  std::lock_guard lock(mu_);
  if (error_) {
    error_seen_ = true;
    std::rethrow_exception(error_);
  }
  const double grant =
      poisson_ ? static_cast<double>(std::poisson_distribution<long long>(rate_)(draws_)) : rate_;
  budget_ += grant;
  stats_.granted += grant;
  ++stats_.steps;
  cv_.notify_all();
}

void PairGossip::check() {
  std::lock_guard lock(mu_);
  if (error_) {
    error_seen_ = true;
    std::rethrow_exception(error_);
  }
}

PairGossipStats PairGossip::stats() {
  std::lock_guard lock(mu_);
  return stats_;
}

PairGossipStats PairGossip::finish() {
  if (!joined_) {
    {
      std::lock_guard lock(mu_);
      finishing_ = true;
      cv_.notify_all();
    }
    {
      std::lock_guard lock(mu_);
      error_seen_ = true;  // the thread need not wait for the caller: it is here
      cv_.notify_all();
    }
    thread_.join();
    joined_ = true;
  }
  std::lock_guard lock(mu_);
  if (error_) std::rethrow_exception(error_);
  return stats_;
}

void PairGossip::loop() {
  try {
    run_protocol();
  } catch (...) {
    std::unique_lock lock(mu_);
    error_ = std::current_exception();
    // The caller picks the error up at its next step; one blocked elsewhere gets the handler.
    const bool seen = cv_.wait_for(lock, std::chrono::seconds(1), [&] { return error_seen_ || abandon_; });
    const FailureHandler handler = g_failure_handler.load();
    if (!seen && handler != nullptr) {
      const std::exception_ptr e = error_;
      lock.unlock();
      handler(e);
    }
  }
  std::lock_guard lock(mu_);
  ended_ = true;
  cv_.notify_all();
}

void PairGossip::run_protocol() {
  comm::Backend& b = *dup_;
  const int me = b.rank();
  const std::size_t deg = neighbors_.size();
  const auto timeout = b.timeout();
  const bool has_timeout = timeout.count() > 0;
  std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(me) + 1);

  std::vector<Control> in(deg);
  std::vector<comm::Request> in_req(deg);
  std::vector<bool> posted(deg, false), nb_done(deg, false);
  std::vector<Clock::time_point> heard(deg, Clock::now()), next_try(deg, Clock::now());
  std::vector<std::chrono::microseconds> backoff(deg, std::chrono::microseconds(20));
  std::vector<std::int64_t> seq(deg, 0);
  struct Out {
    std::unique_ptr<Control> msg;
    comm::Request req;
    int peer;
  };
  std::deque<Out> outbox;
  std::vector<float> send(count_), recv(count_);

  int pending = -1;      // the neighbour whose answer to our REQUEST we wait for
  bool crossed = false;  // that answer will be REFUSE: we accepted the same neighbour's own request
  Clock::time_point pending_since{};
  bool done_sent = false;
  Clock::time_point done_since{};

  auto post = [&](std::size_t k) {
    in_req[k] = b.irecv(&in[k], sizeof(Control), neighbors_[k], kTagControl);
    posted[k] = true;
  };
  auto emit = [&](std::size_t k, std::int64_t type) {
    auto msg = std::make_unique<Control>(Control{type, seq[k]++});
    comm::Request r = b.isend(msg.get(), sizeof(Control), neighbors_[k], kTagControl);
    outbox.push_back(Out{std::move(msg), std::move(r), neighbors_[k]});
    std::lock_guard lock(mu_);
    ++stats_.sent_to[k];
  };
  auto reap = [&] {
    while (!outbox.empty() && (!outbox.front().req.pending() || outbox.front().req.impl()->test()))
      outbox.pop_front();
  };
  auto budget_now = [&] {
    std::lock_guard lock(mu_);
    return budget_;
  };
  // The pair with neighbour k has formed: spend one averaging and exchange.
  auto exchange = [&](std::size_t k) {
    {
      std::lock_guard lock(mu_);
      budget_ -= 1;
    }
    const int peer = neighbors_[k];
    hooks_.prepare(peer, send);
    std::vector<comm::Request> reqs;
    reqs.push_back(b.irecv(recv.data(), count_ * sizeof(float), peer, kTagData));
    reqs.push_back(b.isend(send.data(), count_ * sizeof(float), peer, kTagData));
    b.wait_all(reqs);
    hooks_.apply(peer, send, recv);
    heard[k] = Clock::now();
    backoff[k] = std::chrono::microseconds(20);
    std::lock_guard lock(mu_);
    ++stats_.averagings;
    ++stats_.per_neighbor[k];
    stats_.bytes_sent += count_ * sizeof(float);
    stats_.bytes_recv += count_ * sizeof(float);
  };
  auto handle = [&](std::size_t k, const Control& m, bool finishing) {
    heard[k] = Clock::now();
    const int peer = neighbors_[k];
    switch (m.type) {
      case kRequest: {
        if (finishing || done_sent) {
          emit(k, kRefuse);
        } else if (pending == static_cast<int>(k) && !crossed) {
          // We asked each other: the higher rank accepts the lower rank's request.
          if (me > peer) {
            crossed = true;
            emit(k, kAccept);
            exchange(k);
          } else {
            emit(k, kRefuse);
          }
        } else if (pending >= 0 || budget_now() < 1) {
          emit(k, kRefuse);
        } else {
          emit(k, kAccept);
          exchange(k);
        }
        break;
      }
      case kAccept:
      case kRefuse: {
        SPARCOL_CHECK(
            pending == static_cast<int>(k), ErrorCode::kInternal, me,
            "pair gossip: an answer from rank " + std::to_string(peer) + " to a request never sent");
        const bool was_crossed = crossed;
        pending = -1;
        crossed = false;
        if (was_crossed) {
          SPARCOL_CHECK(m.type == kRefuse, ErrorCode::kInternal, me,
                        "pair gossip: rank " + std::to_string(peer) + " accepted a crossed request");
        } else if (m.type == kAccept) {
          exchange(k);
        } else {
          std::lock_guard lock(mu_);
          ++stats_.refused;
          next_try[k] = Clock::now() + backoff[k];
          backoff[k] = std::min(backoff[k] * 2, std::chrono::microseconds(2000));
        }
        break;
      }
      case kDone:
        nb_done[k] = true;
        break;
      default:
        throw Error(ErrorCode::kMismatch, me,
                    "pair gossip: message of unknown type " + std::to_string(m.type) + " from rank " +
                        std::to_string(peer));
    }
  };

  for (std::size_t k = 0; k < deg; ++k) post(k);
  auto idle = std::chrono::microseconds(10);
  for (;;) {
    bool finishing = false, abandon = false;
    double budget = 0;
    {
      std::lock_guard lock(mu_);
      finishing = finishing_;
      abandon = abandon_;
      budget = budget_;
    }
    if (abandon) return;
    bool progress = false;
    for (std::size_t k = 0; k < deg; ++k) {
      if (!posted[k] || !in_req[k].impl()->test()) continue;
      in_req[k].reset();
      posted[k] = false;
      const Control m = in[k];
      {
        std::lock_guard lock(mu_);
        ++stats_.received_from[k];
      }
      handle(k, m, finishing);
      progress = true;
      // Still to come from k: anything until its DONE, and after it the answer to our request.
      if (!nb_done[k] || pending == static_cast<int>(k)) post(k);
    }
    reap();
    budget = budget_now();  // accepting a request above may have spent some
    const auto now = Clock::now();
    if (finishing && !done_sent && pending < 0) {
      for (std::size_t k = 0; k < deg; ++k) emit(k, kDone);
      done_sent = true;
      done_since = now;
      progress = true;
    }
    if (!finishing && pending < 0 && budget >= 1) {
      std::vector<std::size_t> free;
      for (std::size_t k = 0; k < deg; ++k)
        if (!nb_done[k] && now >= next_try[k]) free.push_back(k);
      if (!free.empty()) {
        const std::size_t k = free[std::uniform_int_distribution<std::size_t>(0, free.size() - 1)(rng)];
        emit(k, kRequest);
        pending = static_cast<int>(k);
        pending_since = now;
        progress = true;
        std::lock_guard lock(mu_);
        ++stats_.requests;
      }
    }
    if (done_sent && pending < 0 && std::all_of(nb_done.begin(), nb_done.end(), [](bool d) { return d; }))
      break;
    if (has_timeout) {
      if (pending >= 0 && now - pending_since > timeout) {
        throw Error(ErrorCode::kTimeout, me,
                    "timed out after " + secs(timeout) + " s in pair gossip on backend " + b.name() +
                        ": waiting for rank " +
                        std::to_string(neighbors_[static_cast<std::size_t>(pending)]) +
                        " to answer a pair request; that rank is dead, stopped, or not running the protocol "
                        "(SPARCOL_TIMEOUT_S sets the limit)");
      }
      if (done_sent) {
        for (std::size_t k = 0; k < deg; ++k) {
          if (nb_done[k] || now - std::max(heard[k], done_since) <= timeout) continue;
          throw Error(ErrorCode::kTimeout, me,
                      "timed out after " + secs(timeout) + " s in pair gossip on backend " + b.name() +
                          ": waiting for rank " + std::to_string(neighbors_[k]) +
                          " to finish its steps (its 'done' message); that rank is dead, stopped, or slower "
                          "than the timeout (SPARCOL_TIMEOUT_S sets the limit)");
        }
      }
    }
    // What this thread waits on, for the message of a program terminated meanwhile (comm::Activity).
    int waiting_for = pending >= 0 ? neighbors_[static_cast<std::size_t>(pending)] : -1;
    if (waiting_for < 0 && done_sent)
      for (std::size_t k = 0; k < deg && waiting_for < 0; ++k)
        if (!nb_done[k]) waiting_for = neighbors_[k];
    comm::Activity& activity = comm::current_activity();
    activity.peer.store(waiting_for, std::memory_order_relaxed);
    activity.tag.store(waiting_for >= 0 ? kTagControl : -1, std::memory_order_relaxed);
    if (progress) {
      idle = std::chrono::microseconds(10);
      continue;
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, idle, [&] { return finishing_ != finishing || abandon_ || budget_ != budget; });
    idle = std::min(idle * 2, std::chrono::microseconds(200));
  }
  comm::current_activity().tag.store(-1, std::memory_order_relaxed);
  // Every answer has been received and every neighbour is done: only our sends may still be in flight.
  std::vector<comm::Request> rest;
  for (auto& o : outbox) rest.push_back(std::move(o.req));
  b.wait_all(rest);
}

}  // namespace sparcol::topo
