// What sparcol-bench hands to its writer, sparcol::io::BenchTable (table on stdout, CSV, JSON, HDF5;
// only rank 0 writes).
#pragma once

#include <memory>

#include "runs.hpp"
#include "sparcol/io/bench_table.hpp"

namespace sparcol::bench {

using comm::Backend;

io::BenchSetup table_setup(const Config& c, const Setup& s);
io::BenchRow table_row(const Row& r);

// Rank 0 opens the output files (an unwritable path is an error on every rank, before any timing).
// Returns rank 0's writer, nullptr elsewhere.
std::unique_ptr<io::BenchTable> open_outputs(Backend& b, const Config& c, const Setup& s);

}  // namespace sparcol::bench
