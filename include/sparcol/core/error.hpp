// sparcol::Error: the one exception type the library throws.
//
// Every error carries a code (what kind of failure), the rank that detected it (-1 when no rank is
// known, e.g. argument checks before a backend exists) and a message that names the operation.
// The library never calls exit(); programs catch Error in main, print
//   sparcol: rank R: error: <message>
// and exit (or MPI_Abort) with exit_code(code), documented in docs/errors.md.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace sparcol {

enum class ErrorCode {
  kInvalidArgument,  // bad user input: flags, sizes, densities, names
  kBackend,          // a communication library (MPI, NCCL) reported a failure, or a peer failed
  kCuda,             // a CUDA runtime or kernel failure
  kIo,               // files: missing, unreadable, corrupt, unwritable
  kTimeout,          // a blocking wait exceeded its deadline (a dead or stopped peer)
  kMismatch,         // ranks disagree on which collective they call or on its arguments
  kNumerical,        // non-finite values where the policy says stop
  kInternal,         // a broken invariant inside sparcol (a bug)
};

// Exit status a program uses for an uncaught Error of this code (docs/errors.md).
int exit_code(ErrorCode code) noexcept;
const char* to_string(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, int rank, const std::string& message);
  ErrorCode code() const noexcept { return code_; }
  int rank() const noexcept { return rank_; }
  // The message without the "rank R: " prefix.
  const std::string& message() const noexcept { return message_; }

 private:
  ErrorCode code_;
  int rank_;
  std::string message_;
};

namespace detail {
[[noreturn]] void throw_error(ErrorCode code, int rank, std::string_view message, const char* file, int line);
}  // namespace detail

}  // namespace sparcol

// Throws sparcol::Error(code, rank, message) when cond is false; message is any expression convertible
// to std::string (build it with std::format or string concatenation; it is only evaluated on failure).
#define SPARCOL_CHECK(cond, code, rank, message)                                                \
  do {                                                                                          \
    if (!(cond)) ::sparcol::detail::throw_error((code), (rank), (message), __FILE__, __LINE__); \
  } while (0)

#define SPARCOL_CHECK_ARG(cond, rank, message) \
  SPARCOL_CHECK(cond, ::sparcol::ErrorCode::kInvalidArgument, rank, message)
