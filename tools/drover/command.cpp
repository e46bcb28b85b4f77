// command: what the subcommands share (their registration is in one file each).
#include "command.hpp"

#include "drover/process/spawn_threads.hpp"

#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string_view>

namespace drover::cli {

std::string self_exe() {
    char buf[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "/proc/self/exe";
    return std::string(buf, static_cast<std::size_t>(n));
}

void print_error(const std::string& what) {
    std::fprintf(stderr, "drover: %s\n", what.c_str());
}

void name_option_values(CLI::App& app) {
    // What each option's value is, as help and the man pages show it ("--uid UID", not
    // CLI11's "--uid TEXT").
    static const std::map<std::string_view, std::string_view> names = {
        {"--json-status-fd", "FD"}, {"--uid", "UID"}, {"--gid", "GID"},
        {"--map-user", "INNER:OUTER:COUNT"}, {"--map-group", "INNER:OUTER:COUNT"}, {"--hostname", "NAME"},
        {"--domainname", "NAME"}, {"--root", "DIR"}, {"--bind", "SRC[:DST]"}, {"--ro-bind", "SRC[:DST]"},
        {"--dev-bind", "SRC[:DST]"}, {"--bind-try", "SRC[:DST]"}, {"--ro-bind-try", "SRC[:DST]"},
        {"--dev-bind-try", "SRC[:DST]"}, {"--tmpfs", "DST[:OPTIONS]"}, {"--dev", "DST"}, {"--proc", "DST"},
        {"--dir", "DST"}, {"--symlink", "TEXT:DST"}, {"--file", "FD:DST"}, {"--remount-ro", "DST"},
        {"--cap-drop", "CAPS"}, {"--cap-add", "CAPS"}, {"--seccomp", "POLICY"}, {"--seccomp-fd", "FD"},
        {"--monotonic", "SECONDS"}, {"--boottime", "SECONDS"}, {"--setenv", "NAME=VALUE"}, {"--unsetenv", "NAME"},
        {"--chdir", "DIR"}, {"--rlimit", "NAME=SOFT[:HARD]"}, {"--timeout", "DURATION"},
        {"--timeout-signal", "SIGNAL"}, {"--kill-after", "DURATION"}, {"--cpu-time", "DURATION"},
        {"--memory-max", "SIZE"}, {"--pids-max", "N"}, {"--cpu", "SHARE"}, {"--max-output", "SIZE"},
        {"--shard", "K/N"}, {"--resume", "FILE"}, {"--stop-grace", "DURATION"}, {"--socket", "PATH"},
        {"--userns", "auto|own"}, {"--on-max-output", "truncate|kill"}, {"--shard-by", "line|hash"},
        {"--expect", "N"}, {"--ns", "NS"}, {"--throughput-ns", "NS"}, {"--count", "N"}, {"--warmup", "N"},
        {"--seed", "N"}, {"--workload", "WORKLOAD"}, {"--concurrency", "N[,N...]"}, {"--duration", "SECONDS"},
        {"--json", "FILE"}, {"--csv", "FILE"}, {"--markdown", "FILE"}, {"--svg", "FILE"}, {"--profile", "FILE"}};
    // The names CLI11 gives by the C++ type ("UINT", "TEXT:{auto,own}"); a name a command set
    // itself (-j N) is kept.
    auto cli11_named = [](const std::string& type) {
        for (std::string_view t : {"TEXT", "INT", "UINT", "FLOAT"})
            if (type == t || type.rfind(std::string(t) + ":", 0) == 0) return true;
        return false;
    };
    for (CLI::Option* o : app.get_options()) {
        if (o->get_type_size() == 0 || !cli11_named(o->get_type_name())) continue;  // flags take no value
        std::string name = o->get_lnames().empty() ? o->get_name() : "--" + o->get_lnames().front();
        auto it = names.find(name);
        if (it == names.end()) continue;
        o->type_name(std::string(it->second));
        // CLI11 appends each check's own text to the name ("auto|own:{auto,own}"); the name
        // already says what is taken. The checks stay; only their text in help goes.
        for (int i = 0;; ++i) {
            try {
                o->get_validator(i)->description("");
            } catch (const CLI::OptionNotFound&) {
                break;
            }
        }
    }
    for (CLI::App* sub : app.get_subcommands({})) name_option_values(*sub);
}

CLI::Option* add_spawn_threads_option(CLI::App& cmd, unsigned& threads, const std::string& what) {
    return cmd
        .add_option_function<std::string>(
            "--spawn-threads",
            [&threads](const std::string& text) {
                const char* why = nullptr;
                unsigned n = parse_spawn_threads(text.c_str(), &why);
                if (n == 0) throw CLI::ValidationError("--spawn-threads", "\"" + text + "\": " + why);
                threads = n;
            },
            what)
        ->type_name("N|auto");
}

std::string spawn_threads_env_problem() {
    const char* env = std::getenv("DROVER_SPAWN_THREADS");
    if (!env || !*env) return {};
    const char* why = nullptr;
    if (parse_spawn_threads(env, &why) != 0) return {};
    return std::string("DROVER_SPAWN_THREADS=") + env + ": " + why;
}

std::string spawn_table_env_problem() {
    const char* env = std::getenv("DROVER_SPAWN_TABLE");
    if (!env || !*env) return {};
    const char* why = nullptr;
    spawn_table t;
    if (parse_spawn_table(env, t, &why)) return {};
    return std::string("DROVER_SPAWN_TABLE=") + env + ": " + why;
}

}  // namespace drover::cli
