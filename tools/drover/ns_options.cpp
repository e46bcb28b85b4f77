// Namespace, sandbox and limit flags: registration and translation into a spawn_spec.
#include <algorithm>
#include "ns_options.hpp"

#include <unistd.h>

#include <cmath>
#include <map>

#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/units.hpp"

namespace drover::cli {

namespace {

// A repeatable flag that takes exactly one value per use (a vector option would otherwise
// swallow the command that follows it).
CLI::Option* repeatable(CLI::App* g, const std::string& name, std::vector<std::string>& into, const std::string& help) {
    return g->add_option(name, into, help)->expected(1)->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

}  // namespace

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

    auto* sb = app.add_option_group("Sandbox", "the walls of a sandbox, as bubblewrap builds them");
    // An option group parses its own options: the order they came in is recorded there.
    app_ = sb;
    sb->add_flag("--sandbox", sandbox,
                 "all namespaces but time, the host's / read-only (or --root), private /dev, fresh /proc, "
                 "tmpfs /tmp, loopback-only network, no capabilities, default seccomp policy, "
                 "no_new_privs, host ids of its own (as root); other flags add to or override it");
    sb->add_flag("--share-net", share_net, "with --sandbox: keep the host's network");
    sb->add_option("--userns", userns, "host ids of the job: auto (a range of its own; root) or own (implies -U)")
        ->check(CLI::IsMember({"auto", "own"}));
    sb->add_option("--uid", uid, "run as this uid (inside the user namespace, if any)");
    sb->add_option("--gid", gid, "run as this gid (inside the user namespace, if any)");
    sb->add_flag("-r,--map-root-user", map_root, "map your uid/gid to root inside (implies -U)");
    repeatable(sb, "--map-user", map_user, "uid map range INNER:OUTER:COUNT (repeatable; implies -U)");
    repeatable(sb, "--map-group", map_group, "gid map range INNER:OUTER:COUNT (repeatable; implies -U)");
    sb->add_option("--hostname", hostname, "hostname inside (needs -u)");
    sb->add_option("--domainname", domainname, "domainname inside (needs -u)");
    sb->add_option("--root", root, "a prepared root file system to pivot into (implies -m)");
    sb->add_flag("--overlay-root", overlay_root,
                 "copy-on-write root: --root (or the host's /) under a tmpfs overlay, gone with the job");
    sb->add_flag("--ro-root", ro_root, "remount the new root read-only at the end");
    sb->add_flag("--new-root", new_root, "build a new root on an empty tmpfs (implied by the flags below but --bind/--ro-bind/--tmpfs)");
    struct fs_flag {
        const char* name;
        std::vector<std::string>* into;
        fs_op::kind kind;
        bool try_;
        const char* help;
    };
    const fs_flag flags[] = {
        {"--bind", &bind, fs_op::kind::bind, false, "bind-mount SRC[:DST] read-write"},
        {"--ro-bind", &ro_bind, fs_op::kind::ro_bind, false, "bind-mount SRC[:DST] read-only, all the way down"},
        {"--dev-bind", &dev_bind, fs_op::kind::dev_bind, false, "bind-mount SRC[:DST] with usable device nodes"},
        {"--bind-try", &bind_try, fs_op::kind::bind, true, "as --bind; skipped if SRC does not exist"},
        {"--ro-bind-try", &ro_bind_try, fs_op::kind::ro_bind, true, "as --ro-bind; skipped if SRC does not exist"},
        {"--dev-bind-try", &dev_bind_try, fs_op::kind::dev_bind, true, "as --dev-bind; skipped if SRC does not exist"},
        {"--tmpfs", &tmpfs, fs_op::kind::tmpfs, false, "a tmpfs on DST[:OPTIONS] (size=64m,mode=1777)"},
        {"--dev", &dev, fs_op::kind::dev, false, "a minimal /dev at DST"},
        {"--proc", &proc, fs_op::kind::proc, false, "a fresh /proc at DST (needs -p)"},
        {"--dir", &dir, fs_op::kind::dir, false, "a directory DST"},
        {"--symlink", &symlink, fs_op::kind::symlink, false, "a symlink TEXT:DST"},
        {"--file", &file, fs_op::kind::file, false, "a file FD:DST holding what descriptor FD gives"},
        {"--remount-ro", &remount_ro, fs_op::kind::remount_ro, false, "make the mount at DST read-only"},
    };
    for (const fs_flag& f : flags) {
        CLI::Option* o = repeatable(sb, f.name, *f.into, std::string(f.help) + " (needs -m; repeatable, in order)");
        fs_flags_.emplace_back(o, f.kind);
        if (f.try_) try_flags_.push_back(o);
    }
    sb->add_flag("--mount-proc", mount_proc, "mount a fresh /proc (needs -p; implies -m)");
    sb->add_flag("--no-mount-proc", no_mount_proc, "keep the host's /proc even with -p -m");
    repeatable(sb, "--cap-drop", cap_drop, "drop capabilities: ALL or NAME[,NAME...] (repeatable)");
    repeatable(sb, "--cap-add", cap_add, "keep capabilities NAME[,NAME...] (after --cap-drop ALL or --sandbox)");
    sb->add_option("--seccomp", seccomp, "syscall filter: default, none, or a policy FILE (TOML or JSON)");
    sb->add_option("--seccomp-fd", seccomp_fd, "syscall filter: a compiled BPF program read from descriptor FD");
    sb->add_option("--monotonic", monotonic, "CLOCK_MONOTONIC offset in seconds (needs -T)");
    sb->add_option("--boottime", boottime, "CLOCK_BOOTTIME offset in seconds (needs -T)");
    repeatable(sb, "--setenv", setenv, "set NAME=VALUE in the environment");
    repeatable(sb, "--unsetenv", unsetenv, "remove NAME from the environment");
    sb->add_flag("--clearenv", clearenv, "start from an empty environment");
    sb->add_option("--chdir", chdir, "working directory of the command");
    repeatable(sb, "--rlimit", rlimit, "NAME=SOFT[:HARD], e.g. nofile=1024 (repeatable)");
    sb->add_flag("--new-session", new_session, "setsid(): detach from the terminal");
    sb->add_flag("--no-new-privs", no_new_privs, "set PR_SET_NO_NEW_PRIVS");

    auto* lim = app.add_option_group("Limits", "per job, enforced from outside; the verdict says which ended it");
    lim->add_option("--timeout", timeout, "wall-clock limit (2, 1.5s, 500ms, 1m)");
    lim->add_option("--timeout-signal", timeout_signal, "signal at the time limit (default KILL)");
    lim->add_option("--kill-after", kill_after, "then SIGKILL this much later (default 1s)");
    lim->add_option("--cpu-time", cpu_time, "CPU time limit (user + system, whole job)");
    lim->add_option("--memory-max", memory_max, "memory limit (256M, 1G): the OOM killer ends the job");
    lim->add_option("--pids-max", pids_max, "most processes and threads at once");
    lim->add_option("--cpu", cpu, "CPU share: 50% or 0.5 of one CPU, 2 for two");
}

namespace {

id_range range_or_throw(const std::string& flag, const std::string& text) {
    // All three parts, as documented: "0:0" is not taken as a count of one.
    auto r = std::count(text.begin(), text.end(), ':') == 2 ? parse_id_range(text) : std::nullopt;
    if (!r) throw spec_error(flag + ": '" + text + "' is not INNER:OUTER:COUNT");
    return *r;
}

std::pair<std::string, std::string> split_pair(const std::string& flag, const std::string& text,
                                               bool second_required, const char* shape = "SRC:DST") {
    auto colon = text.find(':');
    if (colon == std::string::npos) {
        if (second_required) throw spec_error(flag + ": '" + text + "' is not " + shape);
        return {text, {}};
    }
    return {text.substr(0, colon), text.substr(colon + 1)};
}

rlim_t parse_limit(const std::string& flag, const std::string& text) {
    if (text == "unlimited" || text == "infinity") return RLIM_INFINITY;
    // RLIM_INFINITY is (rlim_t)-1: every smaller number is a limit, larger ones do not exist.
    if (auto v = parse_integer(text, 0, INT64_MAX)) return static_cast<rlim_t>(*v);
    throw spec_error(flag + ": '" + text + "' is not a number from 0 to 9223372036854775807 or 'unlimited'");
}

std::chrono::nanoseconds offset(const char* flag, const std::string& text) {
    if (text.empty()) return {};
    bool negative = text[0] == '-';
    auto d = parse_duration(negative ? std::string_view(text).substr(1) : std::string_view(text),
                            std::chrono::seconds(1'000'000'000));
    if (!d) throw spec_error(std::string(flag) + ": '" + text + "' is not a number of seconds within +-1e9");
    return negative ? -*d : *d;
}

std::uint32_t id_or_throw(const char* flag, const std::string& text) {
    auto v = parse_integer(text, 0, 4294967294LL);
    if (!v) throw spec_error(std::string(flag) + ": '" + text + "' is not an id from 0 to 4294967294");
    return static_cast<std::uint32_t>(*v);
}

void add_caps(const std::string& flag, const std::string& list, capability_set& into, bool add) {
    std::size_t pos = 0;
    while (pos <= list.size()) {
        std::size_t comma = list.find(',', pos);
        if (comma == std::string::npos) comma = list.size();
        std::string name = list.substr(pos, comma - pos);
        pos = comma + 1;
        if (name == "ALL" || name == "all") {
            into = add ? capability_set::all() : capability_set{};
            continue;
        }
        auto cap = parse_capability(name);
        if (!cap) throw spec_error(flag + ": '" + name + "' is not a capability (CAP_NET_RAW, net_raw, ALL)");
        if (add) into.add(*cap);
        else into.remove(*cap);
    }
}

}  // namespace

void ns_options::apply_fs(spawn_spec& spec) const {
    bool any_bwrap_only = !dev_bind.empty() || !bind_try.empty() || !ro_bind_try.empty() || !dev_bind_try.empty() ||
                          !dev.empty() || !proc.empty() || !dir.empty() || !symlink.empty() || !file.empty() ||
                          !remount_ro.empty();
    bool new_root_mode = sandbox || !root.empty() || overlay_root || ro_root || new_root || any_bwrap_only;
    op_flags_.clear();
    bind_flags_.clear();
    tmpfs_flags_.clear();
    if (!new_root_mode) {
        // unshare-style: binds and tmpfs over the host's own paths, in the private mount namespace.
        for (const auto& b : bind) {
            auto [src, dst] = split_pair("--bind", b, false);
            spec.binds.push_back({src, dst.empty() ? src : dst, false});
            bind_flags_.push_back("--bind " + b);
        }
        for (const auto& b : ro_bind) {
            auto [src, dst] = split_pair("--ro-bind", b, false);
            spec.binds.push_back({src, dst.empty() ? src : dst, true});
            bind_flags_.push_back("--ro-bind " + b);
        }
        for (const auto& t : tmpfs) {
            auto [dst, opts] = split_pair("--tmpfs", t, false);
            spec.tmpfs.push_back({dst, opts});
            tmpfs_flags_.push_back("--tmpfs " + t);
        }
        return;
    }
    spec.fs.enabled = true;
    if (!root.empty()) spec.fs.root_dir = root;
    if (overlay_root) spec.fs.overlay = true;
    if (ro_root) spec.fs.read_only = true;
    // The ops in the order they were given, like bubblewrap's.
    std::map<CLI::Option*, std::size_t> next;
    for (CLI::Option* o : app_->parse_order()) {
        auto it = std::find_if(fs_flags_.begin(), fs_flags_.end(), [o](const auto& f) { return f.first == o; });
        if (it == fs_flags_.end()) continue;
        const auto& values = o->results();
        std::size_t i = next[o]++;
        if (i >= values.size()) continue;
        const std::string& v = values[i];
        std::string flag = o->get_name();
        fs_op op;
        op.what = it->second;
        op.optional = std::find(try_flags_.begin(), try_flags_.end(), o) != try_flags_.end();
        switch (op.what) {
            case fs_op::kind::bind:
            case fs_op::kind::ro_bind:
            case fs_op::kind::dev_bind: {
                auto [src, dst] = split_pair(flag, v, false);
                op.source = src;
                op.target = dst.empty() ? src : dst;
                break;
            }
            case fs_op::kind::tmpfs: {
                auto [dst, opts] = split_pair(flag, v, false);
                op.target = dst;
                op.options = opts;
                break;
            }
            case fs_op::kind::symlink: {
                auto [text, dst] = split_pair(flag, v, true, "TEXT:DST");
                op.source = text;
                op.target = dst;
                break;
            }
            case fs_op::kind::file: {
                auto [fd, dst] = split_pair(flag, v, true, "FD:DST");
                auto n = parse_integer(fd, 0, 1 << 20);
                if (!n) throw spec_error(flag + ": '" + fd + "' is not a descriptor number");
                op.fd = static_cast<int>(*n);
                op.target = dst;
                break;
            }
            default:
                op.target = v;
        }
        if (op.target.empty() || op.target[0] != '/') throw spec_error(flag + ": '" + v + "': the target must be an absolute path");
        spec.fs.ops.push_back(std::move(op));
        op_flags_.push_back(flag + " " + v);
    }
}

void ns_options::apply(spawn_spec& spec, bool open_files) const {
    namespace_set& n = spec.namespaces;
    apply_fs(spec);
    if (sandbox) {
        sandbox_preset preset;
        preset.share_net = share_net;
        preset.root_dir = root;
        preset.overlay = overlay_root;
        if (!userns.empty()) preset.automatic_ids = userns == "auto";
        make_sandboxed(spec, preset);
        if (ro_root) spec.fs.read_only = true;
    }
    preset_ops_ = spec.fs.ops.size() - op_flags_.size();
    if (share_net && !sandbox) throw spec_error("--share-net: only with --sandbox");
    bool any_map = map_root || !map_user.empty() || !map_group.empty() || !userns.empty();
    if (user || any_map) n.add(ns::user);
    if (pid) n.add(ns::pid);
    if (mnt || mount_proc || spec.fs.enabled) n.add(ns::mnt);
    if (uts) n.add(ns::uts);
    if (ipc) n.add(ns::ipc);
    if (net) n.add(ns::net);
    if (cgroup) n.add(ns::cgroup);
    if (time) n.add(ns::time);
    if (userns == "auto") spec.ids = userns_ids::automatic;
    if (userns == "own") spec.ids = userns_ids::own;
    if (spec.ids == userns_ids::automatic && ::geteuid() != 0)
        throw spec_error("--userns auto: needs root (CAP_SETUID and CAP_SETGID to map a range of host ids); "
                         "without it jobs run with your own ids (--userns own)");
    for (const auto& m : map_user) spec.uid_map.push_back(range_or_throw("--map-user", m));
    for (const auto& m : map_group) spec.gid_map.push_back(range_or_throw("--map-group", m));
    if (map_root && (!map_user.empty() || !map_group.empty()))
        throw spec_error("--map-root-user: cannot be combined with --map-user/--map-group");
    if (spec.ids == userns_ids::automatic && (map_root || !map_user.empty() || !map_group.empty()))
        throw spec_error("--userns auto: conflicts with --map-root-user/--map-user/--map-group");
    if (!uid.empty()) spec.uid = id_or_throw("--uid", uid);
    if (!gid.empty()) spec.gid = id_or_throw("--gid", gid);
    if (!hostname.empty()) spec.hostname = hostname;
    spec.domainname = domainname;
    if (mount_proc && no_mount_proc) throw spec_error("--mount-proc: conflicts with --no-mount-proc");
    if (mount_proc) spec.mount_proc = true;
    if (no_mount_proc) spec.mount_proc = false;
    spec.monotonic_offset = offset("--monotonic", monotonic);
    spec.boottime_offset = offset("--boottime", boottime);
    if (!cap_drop.empty() || !cap_add.empty()) {
        capability_set keep = spec.capabilities.value_or(capability_set::all());
        for (const auto& c : cap_drop) add_caps("--cap-drop", c, keep, false);
        for (const auto& c : cap_add) add_caps("--cap-add", c, keep, true);
        spec.capabilities = keep;
    }
    if (!seccomp.empty() && !seccomp_fd.empty()) throw spec_error("--seccomp: conflicts with --seccomp-fd");
    if (seccomp == "none") {
        spec.seccomp.reset();
    } else if (seccomp == "default") {
        spec.seccomp = seccomp_program::compile(seccomp_policy::builtin_default());
    } else if (!seccomp.empty() && open_files) {
        spec.seccomp = seccomp_program::compile(seccomp_policy::load(seccomp));
    }
    if (!seccomp_fd.empty()) {
        auto fd = parse_integer(seccomp_fd, 0, 1 << 20);
        if (!fd) throw spec_error("--seccomp-fd: '" + seccomp_fd + "' is not a descriptor number");
        if (open_files) spec.seccomp = seccomp_program::read_fd(static_cast<int>(*fd));
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
        auto res = eq == std::string::npos ? std::nullopt : parse_rlimit(r.substr(0, eq));
        if (!res) throw spec_error("--rlimit: '" + r + "' is not NAME=SOFT[:HARD] with a known NAME");
        auto [soft, hard] = split_pair("--rlimit", r.substr(eq + 1), false);
        rlim_t s = parse_limit("--rlimit", soft);
        spec.rlimits.push_back({*res, s, hard.empty() ? s : parse_limit("--rlimit", hard)});
    }
    if (new_session) spec.new_session = true;
    if (no_new_privs) spec.no_new_privs = true;
}

job_limits ns_options::limits() const {
    job_limits l;
    auto dur = [](const char* flag, const std::string& t) {
        auto d = parse_duration(t);
        if (!d || d->count() == 0)
            throw spec_error(std::string(flag) + ": '" + t + "' is not a positive duration (2, 1.5s, 500ms, 1m; at most a year)");
        return *d;
    };
    if (!timeout.empty()) l.wall_time = dur("--timeout", timeout);
    if (!kill_after.empty()) l.kill_grace = dur("--kill-after", kill_after);
    if (!timeout_signal.empty()) {
        auto s = parse_signal(timeout_signal);
        if (!s) throw spec_error("--timeout-signal: '" + timeout_signal + "' is not a signal (TERM, SIGKILL, 9)");
        l.timeout_signal = *s;
    }
    if (!cpu_time.empty()) l.cpu_time = dur("--cpu-time", cpu_time);
    if (!memory_max.empty()) {
        auto m = parse_size(memory_max);
        if (!m || *m < 4096)
            throw spec_error("--memory-max: '" + memory_max + "' is not a size of at least 4096 bytes (256M, 1G)");
        l.cgroup.memory_max = m;
    }
    if (!pids_max.empty()) {
        auto p = parse_integer(pids_max, 1, 4194304);
        if (!p) throw spec_error("--pids-max: '" + pids_max + "' is not a number from 1 to 4194304");
        l.cgroup.tasks_max = static_cast<std::uint64_t>(*p);
    }
    if (!cpu.empty()) {
        auto c = parse_cpu_share(cpu);
        if (!c) throw spec_error("--cpu: '" + cpu + "' is not a CPU share (50%, 0.5, 2; more than 0, at most 1024)");
        l.cgroup.cpu_quota = c;
    }
    // A sandboxed job is accounted and killed as a whole.
    if (sandbox) l.own_cgroup = true;
    return l;
}

}  // namespace drover::cli
