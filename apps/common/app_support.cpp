#include "app_support.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <new>

#include "sparcol/comm/mpi_backend.hpp"

namespace sparcol::app {

void print_error(int rank, const std::string& message) {
  if (rank >= 0) {
    std::cerr << "sparcol: rank " << rank << ": error: " << message << std::endl;
  } else {
    std::cerr << "sparcol: error: " << message << std::endl;
  }
}

void print_warning(int rank, const std::string& message) {
  std::cerr << "sparcol: rank " << rank << ": warning: " << message << std::endl;
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
    print_error(world.rank(), "stopping: rank " + std::to_string(first) + " rejected its input (see its message)");
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

std::string check_writable(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) return "empty output path";
  const fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) return "'" + path + "' is a directory";
  fs::path dir = p.parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec)) return "directory '" + dir.string() + "' of '" + path + "' does not exist";
  if (::access(dir.c_str(), W_OK) != 0) return "directory '" + dir.string() + "' is not writable";
  if (fs::exists(p, ec) && ::access(p.c_str(), W_OK) != 0) return "'" + path + "' exists and is not writable";
  return {};
}

}  // namespace sparcol::app
