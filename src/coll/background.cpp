#include "sparcol/coll/background.hpp"

#include <chrono>

#include "sparcol/core/error.hpp"

namespace sparcol::coll {

std::string background_unsupported_reason(comm::Backend& backend) {
  const std::string why = backend.concurrent_use_reason();
  return why.empty() ? why : "communication behind computation (a progress thread): " + why;
}

Background::Background(comm::Backend& backend) {
  const std::string why = background_unsupported_reason(backend);
  SPARCOL_CHECK(why.empty(), ErrorCode::kBackend, backend.rank(), why);
  dup_ = backend.duplicate();
  thread_ = std::thread([this] { loop(); });
}

Background::~Background() {
  {
    std::unique_lock lock(mu_);
    // A job in flight ends by itself (its waits time out); then the thread sees stop_.
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void Background::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return has_job_ || stop_; });
    if (!has_job_) return;  // stop_ and nothing to do
    Job job = std::move(job_);
    has_job_ = false;
    lock.unlock();
    std::exception_ptr err;
    try {
      job(*dup_);
    } catch (...) {
      err = std::current_exception();
    }
    lock.lock();
    error_ = err;
    finished_ = true;
    cv_.notify_all();
  }
}

void Background::start(Job job) {
  std::lock_guard lock(mu_);
  SPARCOL_CHECK(!in_flight_, ErrorCode::kInternal, dup_->rank(),
                "background: a job is still in flight (wait() before starting another)");
  job_ = std::move(job);
  has_job_ = true;
  finished_ = false;
  in_flight_ = true;
  error_ = nullptr;
  cv_.notify_all();
}

bool Background::done() {
  std::lock_guard lock(mu_);
  return !in_flight_ || finished_;
}

double Background::wait() {
  if (!in_flight_) return 0.0;
  const auto t0 = std::chrono::steady_clock::now();
  std::exception_ptr err;
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return finished_; });
    in_flight_ = false;
    err = error_;
    error_ = nullptr;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (err) std::rethrow_exception(err);
  return s;
}

}  // namespace sparcol::coll
