// libFuzzer target: the checkpoint reader (sparcol::train::parse_checkpoint_bytes, which
// read_checkpoint_file applies to a whole file) on arbitrary bytes.
//
// Every input is parsed twice:
//   1. as it is: almost every mutation fails a checksum, which tests the header checks;
//   2. with the header made valid for the bytes after it (magic, version, header size, payload size
//      and both CRC-32s recomputed), so the record parser sees arbitrary payloads instead of stopping
//      at the checksum.
// Either parse must return a CheckpointData or throw sparcol::Error with code kIo; anything else (a
// crash, a sanitizer report, another error code, an allocation beyond the input's size) is a finding.
// An accepted input must serialise back to exactly the bytes parsed (the format has one encoding).
//
// Seeds (tests/fuzz/corpus/checkpoint): valid.bin, a real rank file written by
//   sparcol-train --model synthetic --params 64 --epochs 0.01 --checkpoint DIR
// (every record the trainer writes), and truncated.bin, its first 700 bytes.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "sparcol/core/error.hpp"
#include "sparcol/train/checkpoint.hpp"

namespace {

constexpr std::size_t kHeader = 32;

std::uint32_t crc_of(const char* p, std::size_t n) {
  return static_cast<std::uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(p), static_cast<uInt>(n)));
}

template <typename T>
void store(std::string& s, std::size_t offset, T v) {
  std::memcpy(s.data() + offset, &v, sizeof v);
}

// Fails loudly: libFuzzer records the input that got here.
[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_checkpoint: %s\n", what);
  std::abort();
}

void check(std::string_view bytes) {
  try {
    const auto data = sparcol::train::parse_checkpoint_bytes(bytes, "fuzz-input", 0);
    std::size_t held = 0;
    for (const auto& r : data.records())
      held += r.name.size() + r.f32.size() * sizeof(float) + r.bytes.size();
    if (held > bytes.size()) finding("the records hold more bytes than the input");
    if (sparcol::train::checkpoint_bytes(data) != bytes)
      finding("an accepted input does not serialise back to itself");
  } catch (const sparcol::Error& e) {
    if (e.code() != sparcol::ErrorCode::kIo) finding(e.what());
    if (std::string(e.what()).find("checkpoint 'fuzz-input': ") == std::string::npos)
      finding("the message does not name the file");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  check(raw);

  // The same bytes with a valid header: the first 32 bytes (padded with zeros) are the header.
  std::string fixed(raw);
  if (fixed.size() < kHeader) fixed.resize(kHeader, '\0');
  std::memcpy(fixed.data(), "SPCOLCKP", 8);
  store(fixed, 8, sparcol::train::kCheckpointVersion);
  store(fixed, 12, static_cast<std::uint32_t>(kHeader));
  store(fixed, 16, static_cast<std::uint64_t>(fixed.size() - kHeader));
  store(fixed, 24, crc_of(fixed.data() + kHeader, fixed.size() - kHeader));
  store(fixed, 28, crc_of(fixed.data(), 28));
  check(fixed);
  return 0;
}
