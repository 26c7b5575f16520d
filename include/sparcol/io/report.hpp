// What the programs and the trainer say about files and trouble, written once for all of them:
// whether an output path can be created, and the warning line of docs/errors.md,
//   sparcol: rank R: warning: <message>       (one write, so that ranks' lines do not interleave)
// apps/common/app_support.hpp builds on these; the trainer (sparcol_train) uses them directly.
#pragma once

#include <string>

namespace sparcol::io {

// Why path cannot be created or replaced as a file (it is a directory, its directory is missing or
// not writable, it exists and is not writable), or "" when it can. Creates nothing.
std::string unwritable_reason(const std::string& path);

// Writes "sparcol: rank R: warning: message\n" to stderr in one write.
void print_warning(int rank, const std::string& message);

}  // namespace sparcol::io
