#include "app_support.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>

#include <algorithm>
#include <iostream>
#include <new>

#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/io/report.hpp"
#include "sparcol/topo/pair_gossip.hpp"

namespace sparcol::app {

namespace {
int g_rank = -1;
// Set once this process printed its own error line: the launcher's SIGTERM that follows MPI_Abort
// then adds nothing.
volatile sig_atomic_t g_reported = 0;

// Async-signal-safe: only write(2) and fixed buffers.
void append(char* buf, std::size_t& len, std::size_t cap, const char* s) {
  while (*s != '\0' && len + 1 < cap) buf[len++] = *s++;
}
void append_int(char* buf, std::size_t& len, std::size_t cap, long v) {
  char tmp[24];
  int n = 0;
  bool neg = v < 0;
  unsigned long u = neg ? static_cast<unsigned long>(-v) : static_cast<unsigned long>(v);
  do {
    tmp[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0 && n < 22);
  if (neg) tmp[n++] = '-';
  while (n > 0 && len + 1 < cap) buf[len++] = tmp[--n];
}

void on_terminate(int sig) {
  if (g_reported != 0) {
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  char buf[256];
  std::size_t len = 0;
  append(buf, len, sizeof buf, "sparcol: rank ");
  append_int(buf, len, sizeof buf, g_rank);
  append(buf, len, sizeof buf, ": error: terminated by signal ");
  append_int(buf, len, sizeof buf, sig);
  // The first thread's record that is waiting (the main loop's, or a progress thread's).
  const comm::Activity* a = comm::waiting_activity();
  const int tag = a ? a->tag.load(std::memory_order_relaxed) : -1;
  const int peer = a ? a->peer.load(std::memory_order_relaxed) : -1;
  if (tag >= 0) {
    append(buf, len, sizeof buf, " while in ");
    append(buf, len, sizeof buf, comm::tag_name(tag));
    if (peer >= 0) {
      append(buf, len, sizeof buf, " (waiting for rank ");
      append_int(buf, len, sizeof buf, peer);
      append(buf, len, sizeof buf, ")");
    }
  } else {
    append(buf, len, sizeof buf, " outside communication");
  }
  append(buf, len, sizeof buf, "\n");
  [[maybe_unused]] const auto w = ::write(2, buf, len);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}
}  // namespace

// One write per line: stderr is unbuffered, and under mpirun the lines of several ranks would
// otherwise interleave piece by piece.
void print_error(int rank, const std::string& message) {
  g_reported = 1;
  const std::string who = rank >= 0 ? "sparcol: rank " + std::to_string(rank) + ": " : "sparcol: ";
  const std::string line = who + "error: " + message + "\n";
  std::cerr.write(line.data(), static_cast<std::streamsize>(line.size())).flush();
}

void print_warning(int rank, const std::string& message) {
  io::print_warning(rank, message);
}

std::optional<int> parse(CLI::App& app, int argc, char** argv, int rank) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    if (rank <= 0) app.exit(e);
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    if (rank <= 0) app.exit(e);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    if (rank <= 0) app.exit(e);
    return 0;
  } catch (const CLI::ParseError& e) {
    if (rank <= 0) print_error(rank, std::string(e.what()) + " (run with --help for the flags)");
    return exit_code(ErrorCode::kInvalidArgument);
  }
  return std::nullopt;
}

int agree_on_status(comm::Backend& world, int my_status) {
  // Sum of (status, and rank+1 of failing ranks so the lowest can be named) over ranks, as floats:
  // exact for the small integers involved.
  const int n = world.size();
  std::vector<float> v(static_cast<std::size_t>(n), 0.0f);
  v[static_cast<std::size_t>(world.rank())] = static_cast<float>(my_status);
  world.allreduce_sum(v.data(), v.size());
  int worst = 0, first = -1;
  for (int r = 0; r < n; ++r) {
    const int s = static_cast<int>(v[static_cast<std::size_t>(r)]);
    if (s != 0 && first < 0) first = r;
    worst = std::max(worst, s);
  }
  if (worst != 0 && my_status == 0 && world.rank() == 0) {
    print_error(world.rank(),
                "stopping: rank " + std::to_string(first) + " rejected its input (see its message)");
  }
  return worst;
}

int guarded(int rank, bool abort_others, const std::function<int()>& body) {
  int status = 0;
  try {
    return body();
  } catch (const Error& e) {
    print_error(e.rank() >= 0 ? e.rank() : rank, e.message());
    status = exit_code(e.code());
  } catch (const CLI::Error& e) {
    print_error(rank, e.what());
    status = exit_code(ErrorCode::kInvalidArgument);
  } catch (const std::bad_alloc&) {
    print_error(rank, "out of memory");
    status = exit_code(ErrorCode::kInternal);
  } catch (const std::exception& e) {
    print_error(rank, e.what());
    status = exit_code(ErrorCode::kInternal);
  }
  if (abort_others) comm::MpiEnvironment::abort(status);
  return status;
}

namespace {
int g_async_rank = -1;
bool g_async_abort = false;

void on_async_failure(std::exception_ptr e) {
  int status = exit_code(ErrorCode::kInternal);
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    print_error(err.rank() >= 0 ? err.rank() : g_async_rank, err.message());
    status = exit_code(err.code());
  } catch (const std::exception& err) {
    print_error(g_async_rank, err.what());
  } catch (...) {
    print_error(g_async_rank, "unknown failure of the communication thread");
  }
  if (g_async_abort) comm::MpiEnvironment::abort(status);
  std::_Exit(status);
}
}  // namespace

void install_async_failure_report(int rank, bool abort_job) {
  g_async_rank = rank;
  g_async_abort = abort_job;
  topo::PairGossip::set_unattended_failure_handler(&on_async_failure);
}

void install_termination_report(int rank) {
  g_rank = rank;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_terminate;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
}

CLI::Validator non_negative() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        const auto first = value.find_first_not_of(" \t");
        if (first != std::string::npos && value[first] == '-') return "must not be negative, got " + value;
        return {};
      },
      "", "NONNEGATIVE");
}

std::string check_writable(const std::string& path) {
  return io::unwritable_reason(path);
}

comm::ThreadLevel mpi_thread_level(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    // A method list naming cocod-sgd, or sparcol-toy's --method all (which includes it).
    const bool all = a == "--method=all" || (a == "all" && i > 1 && std::string(argv[i - 1]) == "--method");
    // a2cid2 and async-gossip run their pairing protocol on a communication thread.
    const bool async = a.find("a2cid2") != std::string::npos || a.find("async-gossip") != std::string::npos;
    if (a.find("cocod-sgd") != std::string::npos || async || all) return comm::ThreadLevel::kMultiple;
  }
  return comm::ThreadLevel::kFunneled;
}

}  // namespace sparcol::app
