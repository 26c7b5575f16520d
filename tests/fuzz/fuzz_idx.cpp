// libFuzzer target: the IDX reader (images and labels, plain and gzip) on arbitrary bytes.
// Any input must end in a clean sparcol::Error(kIo) or a valid result: no crash, no sanitizer
// report, no unbounded allocation (the reader checks the header's sizes against the file first).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "sparcol/core/error.hpp"
#include "sparcol/train/data.hpp"

namespace {
std::string scratch_path() {
  static const std::string p = "/tmp/sparcol-fuzz-idx-" + std::to_string(::getpid());
  return p;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = scratch_path();
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    if (size > 0) std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    return 0;
  }
  try {
    auto images = sparcol::train::load_idx_images(path);
    (void)images;
  } catch (const sparcol::Error&) {
  }
  try {
    auto labels = sparcol::train::load_idx_labels(path);
    (void)labels;
  } catch (const sparcol::Error&) {
  }
  return 0;
}
