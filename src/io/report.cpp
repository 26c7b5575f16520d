#include "sparcol/io/report.hpp"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <system_error>

namespace sparcol::io {

std::string unwritable_reason(const std::string& path) {
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

void print_warning(int rank, const std::string& message) {
  const std::string line = "sparcol: rank " + std::to_string(rank) + ": warning: " + message + "\n";
  std::cerr.write(line.data(), static_cast<std::streamsize>(line.size())).flush();
}

}  // namespace sparcol::io
