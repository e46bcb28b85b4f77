// init: a tiny PID 1 for the inside of a PID namespace (`drover init -- CMD`), like tini.
#pragma once

#include <string>
#include <vector>

namespace drover::supervise {

/// Runs `argv` as a child and acts as its init until it exits: reaps every process that is
/// reparented to it (as PID 1 of a PID namespace, or as a child subreaper otherwise), forwards
/// every signal it receives to the child (through a pidfd), and returns the child's status in
/// the shell's convention (code, or 128 + signal). 127/126 if argv[0] cannot be run.
///
/// Call it from a single-threaded program (it forks and blocks all signals in the caller);
/// `drover init` is such a program. Writes one line to stderr if the command cannot be run.
int run_init(const std::vector<std::string>& argv);

}  // namespace drover::supervise
