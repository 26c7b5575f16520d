#include "sparcol/comm/grouped_backend.hpp"

#include <string>
#include <thread>

#include "sparcol/core/error.hpp"

namespace sparcol::comm {

// The operations posted between two flushes. Requests share ownership with the backend's list of
// issued groups, so a group whose requests were all dropped can still be drained.
struct GroupedBackend::Group {
  std::vector<Op> ops;
  std::unique_ptr<Launched> launched;  // set when issued
  bool complete = false;
};

namespace {

class GroupRequest final : public RequestImpl {
 public:
  GroupRequest(GroupedBackend* backend, std::shared_ptr<GroupedBackend::Group> group, std::size_t index)
      : backend_(backend), group_(std::move(group)), index_(index) {}

  ~GroupRequest() override {
    // Not issued yet: drop the operation, nobody will wait for it. Issued: nothing can be cancelled.
    if (group_ && !group_->launched) group_->ops[index_].live = false;
  }

  bool wait_until(std::chrono::steady_clock::time_point deadline) override {
    if (!group_) return true;
    backend_->flush();
    // A timeout aborts the transport before it is reported (Backend::wait would only report it).
    if (!poll(deadline)) backend_->fail_timeout(info);
    return true;
  }

  bool test() override {
    if (!group_) return true;
    backend_->flush();
    return poll(std::chrono::steady_clock::time_point::min());
  }

  GroupedBackend::Group* group() const { return group_.get(); }

 private:
  bool poll(std::chrono::steady_clock::time_point deadline);

  GroupedBackend* backend_;
  std::shared_ptr<GroupedBackend::Group> group_;  // null for a zero-byte operation (complete at once)
  std::size_t index_;
};

}  // namespace

GroupedBackend::GroupedBackend(std::unique_ptr<Backend> control)
    : owned_control_(std::move(control)), control_(owned_control_.get()) {
  SPARCOL_CHECK(control_ != nullptr, ErrorCode::kInternal, -1, "GroupedBackend needs a control backend");
  SPARCOL_CHECK(control_->accepts(MemKind::kHost), ErrorCode::kInternal, -1,
                "GroupedBackend's control backend must move host memory");
}

GroupedBackend::GroupedBackend(Backend& control) : control_(&control) {
  SPARCOL_CHECK(control_->accepts(MemKind::kHost), ErrorCode::kInternal, -1,
                "GroupedBackend's control backend must move host memory");
}

Backend& GroupedBackend::control() {
  // The control channel follows this backend's settings: one SPARCOL_TIMEOUT_S, one switch for the
  // collective check.
  control_->set_timeout(timeout());
  control_->set_check_collectives(check_collectives());
  return *control_;
}

Request GroupedBackend::isend(const void* buf, std::size_t bytes, int peer, int tag) {
  return post(true, const_cast<void*>(buf), bytes, peer, tag);
}

Request GroupedBackend::irecv(void* buf, std::size_t bytes, int peer, int tag) {
  return post(false, buf, bytes, peer, tag);
}

Request GroupedBackend::post(bool is_send, void* buf, std::size_t bytes, int peer, int tag) {
  const char* op = is_send ? "isend" : "irecv";
  SPARCOL_CHECK_ARG(peer >= 0 && peer < size(), rank(),
                    name() + " " + op + ": peer " + std::to_string(peer) + " out of range [0, " +
                        std::to_string(size()) + ")");
  std::unique_ptr<GroupRequest> req;
  if (bytes == 0) {
    req = std::make_unique<GroupRequest>(this, nullptr, 0);
  } else {
    check_buffer(
        buf, (name() + " " + op + (is_send ? " to rank " : " from rank ") + std::to_string(peer)).c_str());
    if (!open_) open_ = std::make_shared<Group>();
    open_->ops.push_back(Op{is_send, buf, bytes, peer, tag, true});
    req = std::make_unique<GroupRequest>(this, open_, open_->ops.size() - 1);
  }
  req->info = RequestInfo{is_send, peer, tag, bytes};
  if (is_send) {
    count_send(bytes);
  } else {
    count_recv(bytes);
  }
  return Request(std::move(req));
}

void GroupedBackend::flush() {
  // Groups seen complete are forgotten in issue order (they complete in that order).
  std::size_t done = 0;
  while (done < issued_.size() && issued_[done]->complete) ++done;
  issued_.erase(issued_.begin(), issued_.begin() + static_cast<std::ptrdiff_t>(done));
  if (!open_) return;
  std::shared_ptr<Group> g = std::move(open_);
  open_.reset();
  std::vector<Op> live;
  live.reserve(g->ops.size());
  for (const Op& o : g->ops)
    if (o.live) live.push_back(o);
  if (live.empty()) {
    g->complete = true;
    return;
  }
  g->launched = launch(live);
  ++groups_issued_;
  issued_.push_back(std::move(g));
}

void GroupedBackend::idle() {
  std::this_thread::yield();
}

bool GroupedBackend::poll_until(Group& group, Clock::time_point until) {
  unsigned spins = 0;
  while (!group.complete) {
    poll_failure();
    if (group.launched->done()) {
      group.complete = true;
      break;
    }
    if (until == Clock::time_point::min()) return false;  // a test, not a wait
    if ((++spins & 15u) == 0 && Clock::now() > until) return false;
    idle();
  }
  return true;
}

bool GroupRequest::poll(std::chrono::steady_clock::time_point deadline) {
  return backend_->poll_until(*group_, deadline);
}

void GroupedBackend::wait_all(std::span<Request> requests) {
  flush();
  const auto until = deadline();
  for (auto& r : requests) {
    if (!r.pending()) continue;
    auto* q = dynamic_cast<GroupRequest*>(r.impl());
    SPARCOL_CHECK(q != nullptr, ErrorCode::kInternal, rank(),
                  name() + ": wait_all given a request of another backend");
    ActivityScope scope(q->info.tag, q->info.peer);
    if (q->group() != nullptr && !poll_until(*q->group(), until)) fail_timeout(q->info);
    r.reset();
  }
}

void GroupedBackend::drain(const char* during) {
  flush();
  const auto until = deadline();
  for (auto& g : issued_) {
    if (!poll_until(*g, until)) {
      const Op& first = g->ops.front();
      fail_timeout(RequestInfo{first.is_send, first.peer, first.tag, first.bytes}, during);
    }
  }
  issued_.clear();
}

void GroupedBackend::barrier() {
  drain("barrier");
  control().barrier();
}

void GroupedBackend::fail_timeout(const RequestInfo& info, const char* during) {
  const std::string note = abort_transport();
  try {
    throw_timeout(info, during);
  } catch (const Error& e) {
    throw Error(e.code(), e.rank(), e.message() + note);
  }
}

}  // namespace sparcol::comm
