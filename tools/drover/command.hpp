// The shape of a drover subcommand: registered on the CLI11 app, run after parsing.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <string_view>

namespace drover::cli {

/// A subcommand's entry point, called after a successful parse; returns the exit code.
using command_main = std::function<int()>;

/// After a successful parse: the usage problem the entry point would report for the options
/// (one line, as printed after "drover: COMMAND: "), or "" if there is none. Found without
/// starting anything, making a cgroup or opening a file the options name (a seccomp policy,
/// a descriptor): a check for tests and fuzzing.
using command_check = std::function<std::string()>;

/// Registers `drover run` on `app`; `check`, if given, receives its command_check.
command_main add_run_command(CLI::App& app, command_check* check = nullptr);
/// Registers `drover parallel`.
command_main add_parallel_command(CLI::App& app, command_check* check = nullptr);
/// Registers `drover bench` on `app`.
command_main add_bench_command(CLI::App& app, command_check* check = nullptr);
/// Registers `drover supervise`, `drover init` and `drover ctl` on `app`.
command_main add_supervise_command(CLI::App& app);
command_main add_init_command(CLI::App& app);
command_main add_ctl_command(CLI::App& app);
/// Registers `drover help [COMMAND…]` and the hidden `drover generate-docs` (man pages and
/// shell completions from the registered commands; call it after all others are registered).
command_main add_docs_commands(CLI::App& app, const std::string& version);
/// Registers `drover results merge|summary`.
command_main add_results_command(CLI::App& app);

/// What `drover ctl` makes of a supervisor's answer line: the text for stdout, or the problem
/// (one line, after "drover: ctl: ") when the answer is a refusal or unreadable. `path` names
/// the socket in messages; `status` and `json` are the request and its --json. Never throws
/// for any bytes of `answer`.
struct ctl_reading {
    std::string out;
    std::string error;
};
ctl_reading read_ctl_answer(std::string_view answer, const std::string& path, bool status, bool json);
/// The same for the answer to "metrics": `out` is the Prometheus text exactly as sent.
ctl_reading read_ctl_metrics(std::string_view answer, const std::string& path);

/// Exit code for bad usage (flags, impossible specs): nothing was started.
inline constexpr int usage_exit = 2;
/// `drover parallel`'s: its 1-101 count failed jobs (GNU parallel's convention), so bad
/// usage takes the code GNU parallel gives other errors.
inline constexpr int parallel_usage_exit = 255;
inline int usage_exit_of(std::string_view command) {
    return command == "parallel" ? parallel_usage_exit : usage_exit;
}

/// Gives the options of `app` and its subcommands that CLI11 would show as TEXT the name
/// of what they take (UID, SRC[:DST], DURATION), for help and the man pages.
void name_option_values(CLI::App& app);

/// The path of the running drover binary (/proc/self/exe resolved), for `drover init` as a
/// job's init program; "/proc/self/exe" itself if it cannot be read.
std::string self_exe();

/// Adds --spawn-threads N|auto to `cmd`, stored as a count in `threads` (auto: the CPUs this
/// process may run on); refused outside 1..256 with a one-line error.
CLI::Option* add_spawn_threads_option(CLI::App& cmd, unsigned& threads, const std::string& what);

/// DROVER_SPAWN_THREADS, if set, checked like --spawn-threads: "" if it is fine, else the
/// one-line problem.
std::string spawn_threads_env_problem();

/// DROVER_SPAWN_TABLE, if set: "" if it is shared, own or auto, else the one-line problem.
std::string spawn_table_env_problem();

/// Prints "drover: <what>" on stderr.
void print_error(const std::string& what);

}  // namespace drover::cli
