// What every sparcol program does the same way: parse flags with CLI11 on every rank, agree across
// ranks that the inputs are valid before any work, and turn errors into the documented message and
// exit status (docs/errors.md):
//   sparcol: rank R: error: <message>        on stderr, exit status sparcol::exit_code(code)
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <string>

#include "sparcol/comm/backend.hpp"
#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::app {

// The MPI thread level a program initialises MPI at: MPI_THREAD_MULTIPLE when its command line
// names a method that communicates behind computation on a progress thread (cocod-sgd, or
// sparcol-toy's --method all; see coll/background.hpp), MPI_THREAD_FUNNELED otherwise (what every other path
// needs). Decided from the raw arguments because MPI is initialised before they are parsed.
comm::ThreadLevel mpi_thread_level(int argc, char** argv);

void print_error(int rank, const std::string& message);
void print_warning(int rank, const std::string& message);

// Parses argv. Returns an exit status when the program must stop (0 after --help or --version, 2
// for bad flags), std::nullopt to go on. Only rank 0 prints help and parse errors; every rank parses
// the same command line, so every rank reaches the same verdict without communicating.
std::optional<int> parse(CLI::App& app, int argc, char** argv, int rank);

// Validation that may differ per rank (a file missing on one node, an unwritable path): each rank
// passes its own status (0 = fine; otherwise the exit status it wants, after printing its message).
// Every rank learns the largest status; ranks that were fine print one line naming a failed rank.
// Returns the status every rank should exit with (0 = go on).
int agree_on_status(comm::Backend& world, int my_status);

// Runs body(), turning a sparcol::Error or std::exception into the error line and its exit status.
// With abort_others (multi-rank runs after validation), an error on one rank calls MPI_Abort with
// the status, so peers blocked in a collective do not wait for their timeout.
int guarded(int rank, bool abort_others, const std::function<int()>& body);

// Installs handlers for SIGTERM, SIGINT and SIGHUP that print one line before the process ends:
//   sparcol: rank R: error: terminated by signal 15 while in ring all-reduce (waiting for rank 3)
// mpirun sends SIGTERM to every rank when one rank dies; this names the operation the survivors were
// in, and mpirun's own message names the rank that died. The signal is then re-raised with its
// default action, so the exit status still says "killed by a signal".
void install_termination_report(int rank);
// The asynchronous methods (a2cid2, async-gossip; topo::PairGossip): a failure of their communication
// thread (a neighbour's named timeout) that the main thread cannot pick up, because it is blocked in a
// call without a timeout (MPI_Allgatherv at an evaluation), is printed like any error and ends the
// process with its exit status (abort_job: MPI_Abort, which ends the other ranks too).
void install_async_failure_report(int rank, bool abort_job);

// A check for options held in unsigned integers: CLI11 would store "-1" as 2^64 - 1 without a word.
// Rejects a leading minus sign: "--seed: must not be negative, got -1".
CLI::Validator non_negative();

// Checks that an output path can be created (its directory exists and is writable) before work
// starts; returns an empty string or the reason it cannot.
std::string check_writable(const std::string& path);

}  // namespace sparcol::app
