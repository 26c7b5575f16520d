#include "sparcol/core/error.hpp"

#include <cstring>
#include <string>

namespace sparcol {

namespace {
std::string with_rank(int rank, const std::string& message) {
  if (rank < 0) return message;
  return "rank " + std::to_string(rank) + ": " + message;
}
}  // namespace

int exit_code(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 2;
    case ErrorCode::kIo:
      return 3;
    case ErrorCode::kBackend:
      return 4;
    case ErrorCode::kTimeout:
      return 5;
    case ErrorCode::kMismatch:
      return 6;
    case ErrorCode::kNumerical:
      return 7;
    case ErrorCode::kCuda:
      return 9;
    case ErrorCode::kInternal:
      return 10;
  }
  return 10;
}

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kIo:
      return "I/O error";
    case ErrorCode::kBackend:
      return "backend error";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kMismatch:
      return "mismatch across ranks";
    case ErrorCode::kNumerical:
      return "numerical error";
    case ErrorCode::kCuda:
      return "CUDA error";
    case ErrorCode::kInternal:
      return "internal error";
  }
  return "error";
}

Error::Error(ErrorCode code, int rank, const std::string& message)
    : std::runtime_error(with_rank(rank, message)), code_(code), rank_(rank), message_(message) {}

namespace detail {
void throw_error(ErrorCode code, int rank, std::string_view message, const char* file, int line) {
  std::string msg(message);
  if (code == ErrorCode::kInternal || code == ErrorCode::kBackend || code == ErrorCode::kCuda) {
    // Where in sparcol the foreign call failed helps a bug report; argument errors do not need it.
    const char* base = std::strrchr(file, '/');
    msg += " [" + std::string(base ? base + 1 : file) + ":" + std::to_string(line) + "]";
  }
  throw Error(code, rank, msg);
}
}  // namespace detail

}  // namespace sparcol
