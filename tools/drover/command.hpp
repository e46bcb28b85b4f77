// The shape of a drover subcommand: registered on the CLI11 app, run after parsing.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace drover::cli {

/// A subcommand's entry point, called after a successful parse; returns the exit code.
using command_main = std::function<int()>;

/// Registers `drover run` on `app`.
command_main add_run_command(CLI::App& app);
/// Registers `drover parallel`.
command_main add_parallel_command(CLI::App& app);
/// Registers `drover bench` on `app`.
command_main add_bench_command(CLI::App& app);
/// Registers `drover supervise`, `drover init` and `drover ctl` on `app`.
command_main add_supervise_command(CLI::App& app);
command_main add_init_command(CLI::App& app);
command_main add_ctl_command(CLI::App& app);

/// Exit code for bad usage (flags, impossible specs): nothing was started.
inline constexpr int usage_exit = 2;

/// Prints "drover: <what>" on stderr.
void print_error(const std::string& what);

}  // namespace drover::cli
