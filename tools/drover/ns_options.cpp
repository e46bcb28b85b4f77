// Namespace and sandbox flags: registration and translation into a spawn_spec.
#include "ns_options.hpp"

#include <cmath>

#include "drover/spawn/spawn_error.hpp"

namespace drover::cli {

void ns_options::add_to(CLI::App& app) {
    auto* g = app.add_option_group("Namespaces", "as in unshare(1)");
    g->add_flag("-U,--user", user, "new user namespace");
    g->add_flag("-p,--pid", pid, "new PID namespace (the command is PID 1)");
    g->add_flag("-m,--mount", mnt, "new mount namespace (/ made private first)");
    g->add_flag("-u,--uts", uts, "new UTS namespace");
    g->add_flag("-i,--ipc", ipc, "new IPC namespace");
    g->add_flag("-n,--net", net, "new network namespace (lo brought up)");
    g->add_flag("-C,--cgroup", cgroup, "new cgroup namespace");
    g->add_flag("-T,--time", time, "new time namespace");
    auto* s = app.add_option_group("Sandbox");
    s->add_flag("-r,--map-root-user", map_root, "map your uid/gid to root inside (implies -U)");
    s->add_option("--map-user", map_user, "uid map range INNER:OUTER:COUNT (repeatable; implies -U)");
    s->add_option("--map-group", map_group, "gid map range INNER:OUTER:COUNT (repeatable; implies -U)");
    s->add_option("--hostname", hostname, "hostname inside (needs -u)");
    s->add_option("--domainname", domainname, "domainname inside (needs -u)");
    s->add_flag("--mount-proc", mount_proc, "mount a fresh /proc (needs -p; implies -m)");
    s->add_flag("--no-mount-proc", no_mount_proc, "keep the host's /proc even with -p -m");
    s->add_option("--monotonic", monotonic, "CLOCK_MONOTONIC offset in seconds (needs -T)");
    s->add_option("--boottime", boottime, "CLOCK_BOOTTIME offset in seconds (needs -T)");
    s->add_option("--bind", bind, "bind-mount SRC:DST read-write (needs -m)");
    s->add_option("--ro-bind", ro_bind, "bind-mount SRC:DST read-only (needs -m)");
    s->add_option("--tmpfs", tmpfs, "mount a tmpfs on DST[:OPTIONS] (needs -m)");
    s->add_option("--setenv", setenv, "set NAME=VALUE in the environment");
    s->add_option("--unsetenv", unsetenv, "remove NAME from the environment");
    s->add_flag("--clearenv", clearenv, "start from an empty environment");
    s->add_option("--chdir", chdir, "working directory of the command");
    s->add_option("--rlimit", rlimit, "NAME=SOFT[:HARD], e.g. nofile=1024 (repeatable)");
    s->add_flag("--new-session", new_session, "setsid(): detach from the terminal");
    s->add_flag("--no-new-privs", no_new_privs, "set PR_SET_NO_NEW_PRIVS");
}

namespace {

id_range range_or_throw(const std::string& flag, const std::string& text) {
    auto r = parse_id_range(text);
    if (!r) throw spec_error(flag + ": '" + text + "' is not INNER:OUTER:COUNT");
    return *r;
}

std::pair<std::string, std::string> split_pair(const std::string& flag, const std::string& text,
                                               bool second_required) {
    auto colon = text.find(':');
    if (colon == std::string::npos) {
        if (second_required) throw spec_error(flag + ": '" + text + "' is not SRC:DST");
        return {text, {}};
    }
    return {text.substr(0, colon), text.substr(colon + 1)};
}

rlim_t parse_limit(const std::string& flag, const std::string& text) {
    if (text == "unlimited" || text == "infinity") return RLIM_INFINITY;
    try {
        std::size_t used = 0;
        unsigned long long v = std::stoull(text, &used);
        if (used == text.size()) return static_cast<rlim_t>(v);
    } catch (const std::exception&) {
    }
    throw spec_error(flag + ": '" + text + "' is not a number or 'unlimited'");
}

std::chrono::nanoseconds seconds(const char* flag, double s) {
    if (!std::isfinite(s)) throw spec_error(std::string(flag) + ": not a finite number");
    return std::chrono::nanoseconds(static_cast<long long>(std::llround(s * 1e9)));
}

}  // namespace

void ns_options::apply(spawn_spec& spec) const {
    namespace_set& n = spec.namespaces;
    bool any_map = map_root || !map_user.empty() || !map_group.empty();
    if (user || any_map) n.add(ns::user);
    if (pid) n.add(ns::pid);
    if (mnt || mount_proc) n.add(ns::mnt);
    if (uts) n.add(ns::uts);
    if (ipc) n.add(ns::ipc);
    if (net) n.add(ns::net);
    if (cgroup) n.add(ns::cgroup);
    if (time) n.add(ns::time);
    for (const auto& m : map_user) spec.uid_map.push_back(range_or_throw("--map-user", m));
    for (const auto& m : map_group) spec.gid_map.push_back(range_or_throw("--map-group", m));
    if (map_root && (!map_user.empty() || !map_group.empty()))
        throw spec_error("--map-root-user: cannot be combined with --map-user/--map-group");
    spec.hostname = hostname;
    spec.domainname = domainname;
    if (mount_proc && no_mount_proc) throw spec_error("--mount-proc: conflicts with --no-mount-proc");
    if (mount_proc) spec.mount_proc = true;
    if (no_mount_proc) spec.mount_proc = false;
    spec.monotonic_offset = seconds("--monotonic", monotonic);
    spec.boottime_offset = seconds("--boottime", boottime);
    for (const auto& b : bind) {
        auto [src, dst] = split_pair("--bind", b, true);
        spec.binds.push_back({src, dst, false});
    }
    for (const auto& b : ro_bind) {
        auto [src, dst] = split_pair("--ro-bind", b, true);
        spec.binds.push_back({src, dst, true});
    }
    for (const auto& t : tmpfs) {
        auto [dst, opts] = split_pair("--tmpfs", t, false);
        spec.tmpfs.push_back({dst, opts});
    }
    if (clearenv) spec.env.clear();
    for (const auto& e : setenv) {
        auto eq = e.find('=');
        if (eq == std::string::npos || eq == 0) throw spec_error("--setenv: '" + e + "' is not NAME=VALUE");
        spec.env.set(e.substr(0, eq), e.substr(eq + 1));
    }
    for (const auto& e : unsetenv) spec.env.unset(e);
    spec.cwd = chdir;
    for (const auto& r : rlimit) {
        auto eq = r.find('=');
        auto res = parse_rlimit(r.substr(0, eq));
        if (eq == std::string::npos || !res)
            throw spec_error("--rlimit: '" + r + "' is not NAME=SOFT[:HARD] with a known NAME");
        auto [soft, hard] = split_pair("--rlimit", r.substr(eq + 1), false);
        rlim_t s = parse_limit("--rlimit", soft);
        spec.rlimits.push_back({*res, s, hard.empty() ? s : parse_limit("--rlimit", hard)});
    }
    spec.new_session = new_session;
    spec.no_new_privs = no_new_privs;
}

}  // namespace drover::cli
