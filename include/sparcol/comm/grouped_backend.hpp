// GroupedBackend: the host-side logic of a backend whose point-to-point transfers follow NCCL's
// rules, shared by NcclBackend and by a host-memory emulation of those rules in the tests.
//
// NCCL's send/recv differ from MPI's in three ways that a collective written against Backend must
// respect (docs/gpu.md, "NCCL point-to-point semantics"):
//   1. No tags, no matching by tag: the i-th send from rank a to rank b meets the i-th receive that
//      rank b posts from rank a, whatever tag either names. Both sides must therefore post their
//      operations to each peer in the same order. (Sizes must agree too; NCCL cannot check them, so
//      a size mismatch is undefined there: the call fingerprint is what catches it.)
//   2. Operations are issued in groups (ncclGroupStart/End): everything posted between two waits is
//      issued together when the first wait (or test) comes, so that a rank can post a receive and a
//      send to the same peer without either blocking the other.
//   3. A group completes as a whole, and groups complete in the order they were issued (one stream).
//      So a rank must not wait for a group whose sends its peer will only receive in a later group of
//      its own that it posts after waiting for something of ours: the classic "send early, receive
//      after an agreement" pattern deadlocks. sparcol's collectives avoid it by sending their call
//      fingerprints over control() (a host backend), never over this one.
// Zero-byte operations complete at once and are never issued (both sides skip them: sizes agree).
//
// Cancelling: a request destroyed before its group was issued (an exception between posting and
// waiting) is dropped from the group. Once issued, a transfer cannot be cancelled: its buffers must
// be considered lost, and a peer left waiting will time out.
// Timeouts: a wait polls until timeout(); then abort_transport() is called (NcclBackend aborts its
// communicator, so no rank is left hanging in a kernel) and Error(kTimeout) names the operation
// and the peer of the request waited for.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "sparcol/comm/backend.hpp"

namespace sparcol::comm {

class GroupedBackend : public Backend {
 public:
  // One posted point-to-point operation.
  struct Op {
    bool is_send = false;
    void* buf = nullptr;  // const for sends
    std::size_t bytes = 0;
    int peer = -1;
    int tag = 0;
    bool live = true;  // false once its request was destroyed before the group was issued
  };

  int rank() const override { return control_->rank(); }
  int size() const override { return control_->size(); }
  Backend& control() override;

  Request isend(const void* buf, std::size_t bytes, int peer, int tag) final;
  Request irecv(void* buf, std::size_t bytes, int peer, int tag) final;
  void wait_all(std::span<Request> requests) override;
  // Every rank arrives: the barrier of control(), after this rank's issued groups have completed.
  void barrier() override;

  // Issues the operations posted since the last issue as one group (nothing when there are none).
  void flush();
  // Waits until every issued group has completed (a timeout aborts, see above).
  void drain(const char* during);

  // Groups issued so far (statistics, tests).
  std::uint64_t groups_issued() const { return groups_issued_; }

  // The transport's handle on an issued group.
  class Launched {
   public:
    virtual ~Launched() = default;
    // Non-blocking: true once every operation of the group has completed. Throws Error on a
    // failure of the transport (after aborting it where that is needed).
    virtual bool done() = 0;
  };

  struct Group;  // the operations of one group and its launch; defined in grouped_backend.cpp
  // Polls an issued `group` until it completes or `until` passes (false then); until ==
  // time_point::min() polls once. For the backend's own requests.
  bool poll_until(Group& group, Clock::time_point until);
  // Aborts the transport and throws Error(kTimeout) for `info` (Backend::throw_timeout's message).
  [[noreturn]] void fail_timeout(const RequestInfo& info, const char* during = nullptr);

 protected:
  // The control backend is owned (NcclBackend) or borrowed (tests); it must outlive this object.
  explicit GroupedBackend(std::unique_ptr<Backend> control);
  explicit GroupedBackend(Backend& control);

  // Issues the live operations of one group, in order; never called with an empty span.
  virtual std::unique_ptr<Launched> launch(const std::vector<Op>& ops) = 0;
  // Argument check of every posted buffer (NcclBackend: device memory required).
  virtual void check_buffer(const void* buf, const char* what) const = 0;
  // Called between polls of a pending group (a yield by default).
  virtual void idle();
  // Called once before a timeout or an asynchronous failure is reported: stop every pending
  // transfer so that the process can go on (NcclBackend: ncclCommAbort). Returns text for the error
  // message (e.g. "; the NCCL communicator was aborted"). Called at most once per failure.
  virtual std::string abort_transport() { return {}; }
  // Polled with the groups: throws when the transport reports an asynchronous failure.
  virtual void poll_failure() {}

 private:
  Request post(bool is_send, void* buf, std::size_t bytes, int peer, int tag);

  std::unique_ptr<Backend> owned_control_;
  Backend* control_;
  std::shared_ptr<Group> open_;                 // operations posted since the last flush
  std::vector<std::shared_ptr<Group>> issued_;  // issued groups not yet seen complete, in issue order
  std::uint64_t groups_issued_ = 0;
};

}  // namespace sparcol::comm
