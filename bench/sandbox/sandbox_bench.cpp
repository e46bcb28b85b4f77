// drover_bench_sandbox: what drover's sandbox walls cost — drover without walls, drover with
// make_sandboxed() and bwrap with the same walls, spawn -> exec -> exit -> reap of a static
// program, in one run, interleaved in a seeded shuffled order, pinned to one CPU.
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bench/args.hpp"
#include "bench/floor.hpp"
#include "bench/runner.hpp"
#include "bench/stats.hpp"
#include "drover/spawn/launch.hpp"
#include "drover/spawn/seccomp.hpp"
#include "drover/spawn/spawn_spec.hpp"
#include "drover/spawn/warm.hpp"
#include "drover/sys/path.hpp"
#include "drover/sys/unique_fd.hpp"

using namespace drover;
using drover::bench::summary;

namespace {

constexpr namespace_set bare_set{ns::user, ns::pid, ns::mnt, ns::uts, ns::ipc, ns::net};
// The descriptor bwrap reads its --seccomp program from: clear of 0-2 and of the report pipe.
constexpr int bwrap_seccomp_child_fd = 10;

struct options {
    int count = 200;
    int warmup = 10;
    std::uint64_t seed = 1;
    int cpu = -2;  // -2: the last CPU we may run on; -1: do not pin
    std::string program = DROVER_SANDBOX_TRUE;
    std::string bwrap;
    std::string json_path;
    std::string write_bpf;  // only write the compiled default filter there, then exit
    bool ablate = false;
    std::vector<std::string> only;  // measure only these variant keys (for profiling one)
};

// One way of starting the program, and what it measured.
struct variant {
    std::string key;
    std::string label;
    std::string what;
    bool diagnostic = false;  // not one of the three the targets compare
    std::vector<std::string> argv;
    std::string namespaces;
    std::optional<spawn_spec> spec;
    std::optional<prepared_spawn> prepared;
    bool force_fork = false;
    bool warm = false;                 // started from a warm pool (filled before each timed spawn)
    bool prestart = true;              // ... of pre-started jobs (else: holders a job enters)
    bool stub = true;                  // ... waiting in drover_ready_stub where it can
    std::shared_ptr<warm_pool> pool;   // made with `prepared`
    int rewind_fd = -1;  // a seccomp program bwrap reads to EOF: back to 0 before each launch
    std::string skipped;

    std::vector<std::int64_t> total;  // ns, wall clock: before launch() -> reaped, lease dropped
    std::vector<stage_durations> stages;
    std::vector<std::int64_t> outside;  // total minus drover's staged total (lease, pipes, frame)
    std::map<std::string, std::size_t> methods;
    std::map<std::string, std::size_t> failures;
};

struct sample_record {
    std::size_t variant = 0;
    bool ok = false;
    std::int64_t total = 0;
    stage_durations stages;
    clone_method method = clone_method::fork;
};

std::string loadavg() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

// Pins this thread (and so every child, which inherits the mask) to one CPU, so that all
// variants share one core's caches and none gets a second core for its helper process.
// Returns what happened, for the report.
std::string pin(int wanted, int& pinned) {
    pinned = -1;
    if (wanted == -1) return "not pinned (--cpu -1)";
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return std::string("not pinned: sched_getaffinity: ") + std::strerror(errno);
    int cpu = wanted;
    if (cpu == -2) {
        for (int c = CPU_SETSIZE - 1; c >= 0; --c)
            if (CPU_ISSET(c, &allowed)) {
                cpu = c;
                break;
            }
    }
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed))
        return "not pinned: CPU " + std::to_string(cpu) + " is not in this process's affinity mask";
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (::sched_setaffinity(0, sizeof one, &one) != 0)
        return std::string("not pinned: sched_setaffinity: ") + std::strerror(errno);
    pinned = cpu;
    return "pinned to CPU " + std::to_string(cpu) + " (sched_setaffinity; children inherit it)";
}

// The compiled default filter in a memfd, for bwrap --seccomp FD.
sys::unique_fd filter_memfd(std::string_view bytes, std::string& error) {
    sys::unique_fd fd(::memfd_create("drover-bench-seccomp", MFD_CLOEXEC));
    if (!fd) {
        error = std::string("memfd_create: ") + std::strerror(errno);
        return {};
    }
    for (std::size_t off = 0; off < bytes.size();) {
        ssize_t n = ::write(fd.get(), bytes.data() + off, bytes.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error = std::string("writing the filter: ") + std::strerror(errno);
            return {};
        }
        off += static_cast<std::size_t>(n);
    }
    return fd;
}

// The same policy compiled as seccomp_program::compile does, but with libseccomp's list layout
// (SCMP_FLTATR_CTL_OPTIMIZE = 1) instead of drover's binary tree (2, since 3a22a0d): a
// diagnostic of what the layout is worth. The kernel runs the filter once per syscall number
// of each ABI when it is installed (seccomp_cache_prepare, with interrupts off), so the path
// length to a verdict is paid ~900 times per spawn.
std::shared_ptr<const seccomp_program> compile_list(const seccomp_policy& policy, std::string& error) {
    auto action = [](const seccomp_action& a) -> std::uint32_t {
        switch (a.what) {
            case seccomp_action::kind::allow: return SCMP_ACT_ALLOW;
            case seccomp_action::kind::errno_code: return SCMP_ACT_ERRNO(static_cast<std::uint32_t>(a.err));
            case seccomp_action::kind::kill_process: return SCMP_ACT_KILL_PROCESS;
            case seccomp_action::kind::kill_thread: return SCMP_ACT_KILL_THREAD;
            case seccomp_action::kind::log: return SCMP_ACT_LOG;
            case seccomp_action::kind::trap: return SCMP_ACT_TRAP;
        }
        return SCMP_ACT_KILL_PROCESS;
    };
    auto op = [](seccomp_arg::op o) {
        switch (o) {
            case seccomp_arg::op::eq: return SCMP_CMP_EQ;
            case seccomp_arg::op::ne: return SCMP_CMP_NE;
            case seccomp_arg::op::lt: return SCMP_CMP_LT;
            case seccomp_arg::op::le: return SCMP_CMP_LE;
            case seccomp_arg::op::gt: return SCMP_CMP_GT;
            case seccomp_arg::op::ge: return SCMP_CMP_GE;
            case seccomp_arg::op::masked_eq: return SCMP_CMP_MASKED_EQ;
        }
        return SCMP_CMP_EQ;
    };
    std::unique_ptr<void, void (*)(void*)> ctx(seccomp_init(action(policy.default_action)), seccomp_release);
    if (!ctx) {
        error = "seccomp_init failed";
        return nullptr;
    }
    seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);
    if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 1); rc < 0) {
        error = std::string("SCMP_FLTATR_CTL_OPTIMIZE: ") + std::strerror(-rc);
        return nullptr;
    }
#if defined(__x86_64__)
    if (policy.all_abis)
        for (std::uint32_t arch : {SCMP_ARCH_X86, SCMP_ARCH_X32}) seccomp_arch_add(ctx.get(), arch);
#endif
    for (const seccomp_rule& r : policy.rules) {
        if (r.action == policy.default_action) continue;
        scmp_arg_cmp cmps[6];
        for (std::size_t i = 0; i < r.args.size() && i < 6; ++i) {
            const seccomp_arg& a = r.args[i];
            cmps[i] = a.compare == seccomp_arg::op::masked_eq ? scmp_arg_cmp{a.index, SCMP_CMP_MASKED_EQ, a.mask, a.value}
                                                              : scmp_arg_cmp{a.index, op(a.compare), a.value, 0};
        }
        for (const std::string& name : r.syscalls) {
            int nr = seccomp_syscall_resolve_name(name.c_str());
            if (nr == __NR_SCMP_ERROR) continue;
            int rc = seccomp_rule_add_array(ctx.get(), action(r.action), nr,
                                            static_cast<unsigned>(std::min<std::size_t>(r.args.size(), 6)), cmps);
            if (rc < 0 && rc != -EOPNOTSUPP && rc != -EEXIST) {
                error = "rule for " + name + ": " + std::strerror(-rc);
                return nullptr;
            }
        }
    }
    sys::unique_fd mem(::memfd_create("drover-bench-seccomp-list", MFD_CLOEXEC));
    if (!mem || seccomp_export_bpf(ctx.get(), mem.get()) < 0) {
        error = "exporting the filter failed";
        return nullptr;
    }
    off_t size = ::lseek(mem.get(), 0, SEEK_END);
    std::string bytes(static_cast<std::size_t>(std::max<off_t>(size, 0)), '\0');
    if (size <= 0 || ::pread(mem.get(), bytes.data(), bytes.size(), 0) != size) {
        error = "reading the exported filter failed";
        return nullptr;
    }
    try {
        return seccomp_program::from_bytes(bytes);
    } catch (const std::exception& e) {
        error = e.what();
        return nullptr;
    }
}

// Runs a variant once with stderr captured: the reason it refuses, if it does.
std::string probe(const variant& v) {
    spawn_spec spec = *v.spec;
    spec.err = stdio::pipe();
    try {
        prepared_spawn p(spec);
        if (v.rewind_fd >= 0) ::lseek(v.rewind_fd, 0, SEEK_SET);
        force_clone_method(v.force_fork ? std::optional(clone_method::fork) : std::nullopt);
        launched_child child;
        spawn_failure failure;
        if (!launch(p, child, failure) || !await_exec(p, child, failure)) return failure.message();
        std::string err;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(child.stderr_pipe.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
            if (n > 0 && err.size() < 4096) err.append(buf, static_cast<std::size_t>(n));
        exit_status st = wait_blocking(child);
        if (st.success()) return {};
        while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
        return st.str() + (err.empty() ? "" : ": " + err);
    } catch (const std::exception& e) {
        return e.what();
    }
}

sample_record spawn_once(variant& v, std::size_t index, bool keep) {
    sample_record r;
    r.variant = index;
    // Outside the timed region: what a caller would do once per job anyway (bwrap's reader
    // starts where the last one stopped), and the process-wide clone switch.
    if (v.rewind_fd >= 0) ::lseek(v.rewind_fd, 0, SEEK_SET);
    force_clone_method(v.force_fork ? std::optional(clone_method::fork) : std::nullopt);
    // A warm pool is kept full off the timed region, as its refill thread would between jobs;
    // what a set costs to make is reported beside (refill).
    launch_extras extras;
    std::uint64_t hits_before = 0;
    if (v.pool) {
        v.pool->fill();
        extras.warm = v.pool.get();
        hits_before = v.pool->stats().hits;
    }
    std::string error;
    std::shared_ptr<warm_set> set;  // its holder's end comes after the timed region
    const std::int64_t start = bench::floor_now_ns();
    launched_child child;
    spawn_failure failure;
    if (!launch(*v.prepared, child, failure, extras) || !await_exec(*v.prepared, child, failure)) {
        error = failure.message();
    } else {
        set = child.set;
        exit_status st = wait_blocking(child);
        // The leased host ids go back to the pool inside the timed region: part of every job.
        child.ids.reset();
        if (!st.success()) error = "the program " + st.str();
    }
    r.total = bench::floor_now_ns() - start;
    // Warm: the pool had a set and the job took it (a pre-started job has no holder to keep).
    const bool was_warm = v.pool && v.pool->stats().hits > hits_before;
    set.reset();
    r.method = child.method;
    r.stages = child.timings.durations();
    r.ok = error.empty();
    if (!keep) return r;
    if (!r.ok) {
        ++v.failures[error];
        return r;
    }
    v.total.push_back(r.total);
    v.stages.push_back(r.stages);
    v.outside.push_back(std::max<std::int64_t>(0, r.total - r.stages.total));
    ++v.methods[std::string(clone_method_name(r.method)) + (v.pool ? (was_warm ? " warm" : " cold") : "")];
    return r;
}

double median_of(std::vector<std::int64_t> v) {
    if (v.empty()) return 0;
    return bench::summarize(std::span<const std::int64_t>(v)).p50;
}

std::array<double, 6> stage_medians(const variant& v) {
    std::array<double, 6> out{};
    for (std::size_t i = 0; i < out.size(); ++i) {
        std::vector<std::int64_t> col;
        col.reserve(v.stages.size());
        for (const stage_durations& d : v.stages) col.push_back(d.as_array()[i]);
        out[i] = median_of(std::move(col));
    }
    return out;
}

std::string ms(double ns) { return fmt::format("{:.3f}", ns / 1e6); }

std::string methods_text(const variant& v) {
    std::string out;
    for (const auto& [m, n] : v.methods) out += (out.empty() ? "" : ", ") + m + " " + std::to_string(n);
    return out.empty() ? "-" : out;
}

nlohmann::json summary_json(const summary& s) {
    return {{"n", s.n},       {"p50", s.p50}, {"p90", s.p90},       {"p99", s.p99},
            {"mean", s.mean}, {"min", s.min}, {"max", s.max}, {"stddev", s.stddev}};
}

void usage(const char* self) {
    std::fprintf(stderr,
                 "usage: %s [-n N] [--warmup N] [--seed S] [--cpu K|-1] [--program PATH] [--bwrap PATH]\n"
                 "          [--ablate] [--only KEY,...] [--json FILE]\n"
                 "       %s --write-bpf FILE   (drover's default seccomp filter, compiled, for bwrap --seccomp)\n",
                 self, self);
}

// A whole number in [lo, hi] for `flag` into `out`, or false after a one-line error.
template <class T>
bool whole(const char* flag, std::string_view text, T lo, T hi, T& out) {
    auto v = bench::whole_arg("drover_bench_sandbox", flag, text, lo, hi);
    if (v) out = *v;
    return v.has_value();
}

bool parse(int argc, char** argv, options& o) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](const char* what) -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs %s\n", a.c_str(), what);
                return nullptr;
            }
            return argv[++i];
        };
        const char* v = nullptr;
        if (a == "-n" || a == "--count") {
            if (!(v = value("a number")) || !whole("-n", v, 1, 1'000'000, o.count)) return false;
        } else if (a == "--warmup") {
            if (!(v = value("a number")) || !whole("--warmup", v, 0, 100'000, o.warmup)) return false;
        } else if (a == "--seed") {
            if (!(v = value("a number")) ||
                !whole("--seed", v, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(), o.seed))
                return false;
        } else if (a == "--cpu") {
            if (!(v = value("a CPU number or -1")) || !whole("--cpu", v, -1, CPU_SETSIZE - 1, o.cpu)) return false;
        } else if (a == "--program") {
            if (!(v = value("a path"))) return false;
            o.program = v;
        } else if (a == "--bwrap") {
            if (!(v = value("a path"))) return false;
            o.bwrap = v;
        } else if (a == "--json") {
            if (!(v = value("a file"))) return false;
            o.json_path = v;
        } else if (a == "--write-bpf") {
            if (!(v = value("a file"))) return false;
            o.write_bpf = v;
        } else if (a == "--only") {
            if (!(v = value("variant keys, comma-separated"))) return false;
            for (std::string_view rest = v; !rest.empty();) {
                std::size_t comma = rest.find(',');
                o.only.emplace_back(rest.substr(0, comma));
                rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            }
        } else if (a == "--ablate") {
            o.ablate = true;
        } else {
            usage(argv[0]);
            return false;
        }
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    if (!parse(argc, argv, o)) return 2;

    std::shared_ptr<const seccomp_program> filter;
    try {
        filter = seccomp_program::compile(seccomp_policy::builtin_default());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "drover_bench_sandbox: compiling the default filter: %s\n", e.what());
        return 1;
    }
    if (!o.write_bpf.empty()) {
        std::ofstream out(o.write_bpf, std::ios::binary | std::ios::trunc);
        std::string_view b = filter->bytes();
        out.write(b.data(), static_cast<std::streamsize>(b.size()));
        if (!out) {
            std::fprintf(stderr, "drover_bench_sandbox: cannot write %s\n", o.write_bpf.c_str());
            return 1;
        }
        return 0;
    }
    if (::access(o.program.c_str(), X_OK) != 0) {
        std::fprintf(stderr, "drover_bench_sandbox: %s: not executable (build drover_bench_sandbox_true)\n",
                     o.program.c_str());
        return 1;
    }

    const std::string load_before = loadavg();
    int pinned = -1;
    const std::string pin_note = pin(o.cpu, pinned);
    bench::machine_info machine = bench::describe_machine();

    std::string memfd_error;
    sys::unique_fd bpf = filter_memfd(filter->bytes(), memfd_error);
    if (o.bwrap.empty()) o.bwrap = sys::find_in_path("bwrap");

    std::vector<variant> variants;
    auto add = [&](std::string key, std::string label, std::string what, bool diagnostic, spawn_spec spec) {
        variant v;
        v.key = std::move(key);
        v.label = std::move(label);
        v.what = std::move(what);
        v.diagnostic = diagnostic;
        v.argv = spec.argv;
        v.namespaces = spec.namespaces.str();
        v.spec = std::move(spec);
        variants.push_back(std::move(v));
        return &variants.back();
    };
    spawn_spec bare;
    bare.argv = {o.program};
    bare.namespaces = bare_set;  // fresh /proc (pid+mnt), / private and lo up are the defaults
    add("bare", "drover bare",
        "spawn_spec with user+pid+mnt+uts+ipc+net and nothing else (caller's ids as 0, / made private, "
        "fresh /proc over the host's, lo up)",
        false, bare);

    spawn_spec plain;
    plain.argv = {o.program};
    add("plain", "drover, no namespaces",
        "the same program with no namespace and no wall: the bare spawn a warm sandbox is held to", false, plain);

    spawn_spec sandboxed;
    sandboxed.argv = {o.program};
    make_sandboxed(sandboxed);
    add("sandbox", "drover sandbox",
        "the same program after make_sandboxed(spec): user+pid+mnt+uts+ipc+net+cgroup, new root "
        "(host / read-only, minimal /dev, fresh /proc with sys/sysrq-trigger/irq/bus read-only, "
        "tmpfs /tmp), no capabilities, default seccomp filter, no_new_privs, new session, "
        "die with parent, host ids leased per job when root",
        false, sandboxed);

    {
        variant* v = add("sandbox-warm", "drover sandbox, warm",
                         "'drover sandbox' entering a warm holder's namespaces (warm_pool, refilled before each "
                         "timed spawn): the holder made user+mnt+uts+ipc+net, the root, hostname and lo; the job "
                         "makes its PID and cgroup namespaces, /proc and every wall of its own",
                         false, sandboxed);
        v->warm = true;
        v->prestart = false;
        v = add("sandbox-prestarted", "drover sandbox, pre-started",
                "'drover sandbox' from a warm pool of pre-started jobs (warm_options::prestart): each job "
                "process made its namespaces, root, /proc, ids, capabilities, limits and seccomp filter "
                "ahead and waits in drover_ready_stub; the timed start sends argv, env and descriptors, and "
                "the stub puts the descriptors in place and execs",
                false, sandboxed);
        v->warm = true;
        v = add("sandbox-prestarted-nostub", "drover sandbox, pre-started, no stub",
                "the same with warm_options::stub = false: the job waits in drover's forked child, and "
                "the timed start also installs its seccomp filter and tears down the copy of this "
                "process's memory it was forked with",
                true, sandboxed);
        v->warm = true;
        v->stub = false;
    }

    {
        std::vector<std::string> bwrap_argv = {o.bwrap.empty() ? "bwrap" : o.bwrap,
                                         "--unshare-all",
                                         "--ro-bind", "/", "/",
                                         "--dev", "/dev",
                                         "--proc", "/proc",
                                         "--tmpfs", "/tmp",
                                         "--new-session",
                                         "--die-with-parent",
                                         "--cap-drop", "ALL",
                                         "--seccomp", std::to_string(bwrap_seccomp_child_fd),
                                         "--", o.program};
        spawn_spec spec;  // bwrap itself: no namespaces of drover's
        spec.argv = bwrap_argv;
        if (bpf) spec.pass_fds.push_back({bwrap_seccomp_child_fd, bpf.get()});
        variant* v = add("bwrap", "bwrap",
                         "drover spawns bwrap (no namespaces of its own) with the walls above as bwrap "
                         "flags; --seccomp reads drover's default filter, compiled, from a memfd "
                         "rewound before each launch",
                         false, spec);
        v->rewind_fd = bpf.get();
        if (o.bwrap.empty())
            v->skipped = "bwrap not found in PATH";
        else if (!bpf)
            v->skipped = memfd_error;
    }

    {
        // Diagnostic: the walls without the leased ids, so the parent has no maps to write and
        // the spawn can take the vfork path; the difference to "sandbox" is the lease, the
        // fork path and the parent-written maps.
        spawn_spec spec;
        spec.argv = {o.program};
        make_sandboxed(spec, sandbox_preset{.automatic_ids = false});
        add("sandbox-own-ids", "drover sandbox, own ids",
            "diagnostic: make_sandboxed with automatic_ids=false (the caller's ids as 0, maps written by "
            "the child itself), so no lease and no parent work between clone3 and execve",
            true, spec);
    }
    if (o.ablate) {
        spawn_spec fork_bare = bare;
        variant* v = add("bare-fork", "drover bare, fork path",
                         "diagnostic: 'drover bare' with force_clone_method(fork)", true, fork_bare);
        v->force_fork = true;

        spawn_spec no_seccomp = sandboxed;
        no_seccomp.seccomp.reset();
        add("sandbox-no-seccomp", "drover sandbox, no seccomp",
            "diagnostic: 'drover sandbox' without the seccomp filter (no_new_privs kept)", true, no_seccomp);

        // Single walls added to 'drover bare', for the ones the new root does not explain.
        spawn_spec with_cgroup = bare;
        with_cgroup.namespaces.add(ns::cgroup);
        add("bare+cgroupns", "drover bare + cgroup ns", "diagnostic: 'drover bare' plus a cgroup namespace", true,
            with_cgroup);
        spawn_spec with_session = bare;
        with_session.new_session = true;
        add("bare+setsid", "drover bare + new session", "diagnostic: 'drover bare' plus setsid()", true,
            with_session);
        spawn_spec with_caps = bare;
        with_caps.capabilities = capability_set{};
        add("bare+nocaps", "drover bare + no caps",
            "diagnostic: 'drover bare' with every capability dropped (implies no_new_privs)", true, with_caps);

        std::string list_error;
        auto list = compile_list(seccomp_policy::builtin_default(), list_error);
        spawn_spec list_spec = sandboxed;
        list_spec.seccomp = list;
        variant* l = add("sandbox-list-filter", "drover sandbox, list filter",
                         "diagnostic: 'drover sandbox' with the same policy compiled by libseccomp as a list "
                         "(SCMP_FLTATR_CTL_OPTIMIZE=1) and installed through seccomp_program::from_bytes" +
                             (list ? " (" + std::to_string(list->instructions()) + " instructions)" : std::string()),
                         true, list_spec);
        if (!list) l->skipped = "compiling the list filter: " + list_error;

        spawn_spec no_root = sandboxed;
        no_root.fs = filesystem_spec{};
        no_root.mount_proc = true;
        add("sandbox-no-root", "drover sandbox, no new root",
            "diagnostic: 'drover sandbox' without the new root (fs.enabled=false; a fresh /proc over the "
            "host's instead): every other wall kept",
            true, no_root);

        spawn_spec no_dev = sandboxed;
        std::erase_if(no_dev.fs.ops, [](const fs_op& op) { return op.what == fs_op::kind::dev; });
        add("sandbox-no-dev", "drover sandbox, no /dev op",
            "diagnostic: 'drover sandbox' without the minimal /dev (the host's /dev stays visible, "
            "read-only)",
            true, no_dev);

        spawn_spec no_proc = sandboxed;
        std::erase_if(no_proc.fs.ops, [](const fs_op& op) { return op.what == fs_op::kind::proc; });
        add("sandbox-no-proc", "drover sandbox, no /proc op",
            "diagnostic: 'drover sandbox' without the fresh /proc op (the host's /proc stays, read-only)",
            true, no_proc);

        // What a warm job still pays for itself, wall by wall.
        add("warm-no-seccomp", "warm sandbox, no seccomp",
            "diagnostic: 'drover sandbox, warm' without the seccomp filter", true, no_seccomp)->warm = true;
        add("warm-no-proc", "warm sandbox, no /proc",
            "diagnostic: 'drover sandbox, warm' without /proc (no procfs mounted per job)", true, no_proc)->warm = true;
        spawn_spec no_pid = sandboxed;
        no_pid.namespaces.remove(ns::pid);
        std::erase_if(no_pid.fs.ops, [](const fs_op& op) { return op.what == fs_op::kind::proc; });
        add("warm-no-pidns", "warm sandbox, no pid ns",
            "diagnostic: 'drover sandbox, warm' without a PID namespace or /proc (one clone3 fewer "
            "namespace per job)",
            true, no_pid)->warm = true;
        spawn_spec no_caps_work = sandboxed;
        no_caps_work.capabilities.reset();
        add("warm-keep-caps", "warm sandbox, caps kept",
            "diagnostic: 'drover sandbox, warm' without dropping capabilities (no bounding-set loop)", true,
            no_caps_work)->warm = true;
    }

    if (!o.only.empty())
        std::erase_if(variants, [&](const variant& v) {
            return std::find(o.only.begin(), o.only.end(), v.key) == o.only.end();
        });

    // Prepare and probe each variant once; one that cannot run is reported, not measured.
    for (variant& v : variants) {
        if (!v.skipped.empty()) continue;
        if (std::string why = probe(v); !why.empty()) {
            v.skipped = "refused to run here: " + why;
            continue;
        }
        try {
            v.prepared.emplace(*v.spec);
            if (v.warm) {
                warm_options wo;
                wo.size = 1;
                wo.refill_thread = false;
                wo.prestart = v.prestart;
                wo.stub = v.stub;
                v.pool = std::make_shared<warm_pool>(*v.prepared, wo);
                if (v.pool->fill() < 1) v.skipped = "no warm set could be made: " + v.pool->stats().last_error;
            }
        } catch (const std::exception& e) {
            v.skipped = e.what();
        }
    }

    // Warm-up in order, then every measured spawn of every variant in one shuffled order, so
    // that drift (page cache, CPU frequency, a neighbour's load) hits every variant alike.
    std::vector<std::size_t> order;
    std::size_t measurable = 0;
    for (std::size_t i = 0; i < variants.size(); ++i) {
        if (!variants[i].skipped.empty()) continue;
        ++measurable;
        for (int k = 0; k < o.count; ++k) order.push_back(i);
    }
    std::mt19937_64 rng(o.seed ^ 0x9e3779b97f4a7c15ULL);
    std::shuffle(order.begin(), order.end(), rng);

    std::fprintf(stderr, "drover_bench_sandbox: %zu variants x %d spawns (+%d warm-up each), %s\n", measurable,
                 o.count, o.warmup, pin_note.c_str());
    const std::int64_t run_start = bench::floor_now_ns();
    for (int k = 0; k < o.warmup; ++k)
        for (std::size_t i = 0; i < variants.size(); ++i)
            if (variants[i].skipped.empty()) spawn_once(variants[i], i, false);
    std::vector<sample_record> records;
    records.reserve(order.size());
    std::int64_t last_progress = run_start;
    for (std::size_t s = 0; s < order.size(); ++s) {
        records.push_back(spawn_once(variants[order[s]], order[s], true));
        std::int64_t now = bench::floor_now_ns();
        if (now - last_progress > 2'000'000'000) {
            std::fprintf(stderr, "  %zu/%zu\n", s + 1, order.size());
            last_progress = now;
        }
    }
    force_clone_method(std::nullopt);
    const double run_seconds = static_cast<double>(bench::floor_now_ns() - run_start) / 1e9;
    const std::string load_after = loadavg();

    // Report.
    std::map<std::string, summary> sums;
    std::printf("drover_bench_sandbox — %s, kernel %s, %d cores (%s), cgroup %s, drover %s (%s)\n",
                machine.date.c_str(), machine.kernel.c_str(), machine.cores, machine.cpu_model.c_str(),
                machine.cgroup_mode.c_str(), machine.drover_version.c_str(), machine.drover_commit.c_str());
    std::printf("program %s; %d spawns per variant after %d warm-up, seed %llu; %s\n", o.program.c_str(), o.count,
                o.warmup, static_cast<unsigned long long>(o.seed), pin_note.c_str());
    std::printf("load average before %s, after %s; measured in %.1f s\n\n", load_before.c_str(), load_after.c_str(),
                run_seconds);
    std::printf("%-38s %5s %9s %9s %9s %9s %9s  %-18s %s\n", "spawn->exec->exit->reap (ms)", "n", "p50", "p90",
                "p99", "mean", "max", "clone method", "failures");
    for (const variant& v : variants) {
        if (!v.skipped.empty()) {
            std::printf("%-38s skipped: %s\n", v.label.c_str(), v.skipped.c_str());
            continue;
        }
        summary s = bench::summarize(std::span<const std::int64_t>(v.total));
        sums[v.key] = s;
        std::size_t failed = 0;
        for (const auto& [why, n] : v.failures) failed += n;
        std::printf("%-38s %5zu %9s %9s %9s %9s %9s  %-18s %zu\n", v.label.c_str(), s.n, ms(s.p50).c_str(),
                    ms(s.p90).c_str(), ms(s.p99).c_str(), ms(s.mean).c_str(), ms(s.max).c_str(),
                    methods_text(v).c_str(), failed);
        for (const auto& [why, n] : v.failures) std::printf("    %zu x %s\n", n, why.c_str());
    }

    nlohmann::json ratios = nlohmann::json::object();
    auto ratio = [&](const char* name, const char* num, const char* den, double target, bool at_least) {
        if (!sums.count(num) || !sums.count(den) || sums[den].p50 <= 0) {
            std::printf("%-38s n/a (a variant did not run)\n", name);
            return;
        }
        double r = sums[num].p50 / sums[den].p50;
        bool met = at_least ? r >= target : r <= target;
        std::printf("%-38s %6.2fx   (target %s %.2fx: %s)\n", name, r, at_least ? ">=" : "<=", target,
                    met ? "met" : "NOT met");
        ratios[name] = {{"value", r}, {"target", target}, {"at_least", at_least}, {"met", met},
                        {"numerator", num}, {"denominator", den}, {"statistic", "p50"}};
    };
    std::printf("\n");
    ratio("bwrap p50 / drover sandbox p50", "bwrap", "sandbox", 4.0, true);
    ratio("drover sandbox p50 / drover bare p50", "sandbox", "bare", 1.25, false);
    ratio("warm sandbox p50 / no-namespace p50", "sandbox-warm", "plain", 1.2, false);
    ratio("bwrap p50 / warm sandbox p50", "bwrap", "sandbox-warm", 10.0, true);
    ratio("pre-started p50 / no-namespace p50", "sandbox-prestarted", "plain", 1.2, false);
    ratio("bwrap p50 / pre-started p50", "bwrap", "sandbox-prestarted", 10.0, true);
    for (const variant& v : variants) {
        if (!v.pool) continue;
        warm_stats ws = v.pool->stats();
        std::printf("%-38s %.3f ms mean, %.3f ms max over %llu sets (made off the timed region)\n",
                    (v.label + " refill").c_str(), ws.made ? static_cast<double>(ws.refill_total_ns) / static_cast<double>(ws.made) / 1e6 : 0.0,
                    static_cast<double>(ws.refill_max_ns) / 1e6, static_cast<unsigned long long>(ws.made));
    }

    std::printf("\nwhere the time goes: medians of drover's stages (ms; for bwrap, bwrap's own process)\n");
    std::printf("%-38s", "variant");
    for (std::string_view n : stage_durations::names) std::printf(" %8.*s", static_cast<int>(n.size()), n.data());
    std::printf(" %8s %8s\n", "staged", "outside");
    for (const variant& v : variants) {
        if (!v.skipped.empty() || v.stages.empty()) continue;
        auto m = stage_medians(v);
        std::printf("%-38s", v.label.c_str());
        for (double x : m) std::printf(" %8s", ms(x).c_str());
        std::vector<std::int64_t> staged;
        for (const stage_durations& d : v.stages) staged.push_back(d.total);
        std::printf(" %8s %8s\n", ms(median_of(staged)).c_str(), ms(median_of(v.outside)).c_str());
    }
    // Medians do not add up; means do (staged mean = sum of the stage means).
    std::printf("stage means (ms; these add up to the staged mean)\n");
    for (const variant& v : variants) {
        if (!v.skipped.empty() || v.stages.empty()) continue;
        std::array<double, 7> sum{};
        for (const stage_durations& d : v.stages) {
            auto a = d.as_array();
            for (std::size_t i = 0; i < a.size(); ++i) sum[i] += static_cast<double>(a[i]);
            sum[6] += static_cast<double>(d.total);
        }
        double outside = 0;
        for (std::int64_t x : v.outside) outside += static_cast<double>(x);
        const double n = static_cast<double>(v.stages.size());
        std::printf("%-38s", v.label.c_str());
        for (double x : sum) std::printf(" %8s", ms(x / n).c_str());
        std::printf(" %8s\n", ms(outside / n).c_str());
    }
    std::printf("(staged: clone3 entered -> reaped; outside: the rest of the wall time — id lease, pipes, "
                "lease release)\n");

    if (!o.json_path.empty()) {
        nlohmann::json j;
        j["benchmark"] = "drover_bench_sandbox";
        j["machine"] = {{"date", machine.date},
                        {"kernel", machine.kernel},
                        {"cpu_model", machine.cpu_model},
                        {"cores", machine.cores},
                        {"cgroup_mode", machine.cgroup_mode},
                        {"drover_version", machine.drover_version},
                        {"drover_commit", machine.drover_commit},
                        {"euid", ::geteuid()},
                        {"loadavg_before", load_before},
                        {"loadavg_after", load_after}};
        j["parameters"] = {{"count", o.count},
                           {"warmup", o.warmup},
                           {"seed", o.seed},
                           {"program", o.program},
                           {"pinned_cpu", pinned >= 0 ? nlohmann::json(pinned) : nlohmann::json()},
                           {"pinning", pin_note},
                           {"seccomp_instructions", filter->instructions()},
                           {"run_seconds", run_seconds},
                           {"units", "ns"}};
        nlohmann::json vs = nlohmann::json::array();
        for (const variant& v : variants) {
            nlohmann::json jv;
            jv["key"] = v.key;
            jv["label"] = v.label;
            jv["what"] = v.what;
            jv["diagnostic"] = v.diagnostic;
            jv["argv"] = v.argv;
            jv["namespaces"] = v.namespaces;
            jv["skipped"] = v.skipped.empty() ? nlohmann::json() : nlohmann::json(v.skipped);
            jv["failures"] = v.failures;
            jv["clone_methods"] = v.methods;
            if (v.pool) {
                warm_stats ws = v.pool->stats();
                jv["warm"] = {{"sets_made", ws.made},
                              {"hits", ws.hits},
                              {"misses", ws.misses},
                              {"refill_mean_ns", ws.made ? ws.refill_total_ns / static_cast<std::int64_t>(ws.made) : 0},
                              {"refill_max_ns", ws.refill_max_ns}};
            }
            if (v.skipped.empty()) {
                jv["total"] = summary_json(bench::summarize(std::span<const std::int64_t>(v.total)));
                auto m = stage_medians(v);
                nlohmann::json med;
                for (std::size_t i = 0; i < m.size(); ++i) med[std::string(stage_durations::names[i])] = m[i];
                med["outside"] = median_of(v.outside);
                jv["stage_medians"] = med;
                jv["samples"] = v.total;
                nlohmann::json cols;
                for (std::size_t i = 0; i < stage_durations::names.size(); ++i) {
                    std::vector<std::int64_t> col;
                    for (const stage_durations& d : v.stages) col.push_back(d.as_array()[i]);
                    cols[std::string(stage_durations::names[i])] = col;
                }
                cols["outside"] = v.outside;
                jv["stage_samples"] = cols;
            }
            vs.push_back(std::move(jv));
        }
        j["variants"] = vs;
        j["ratios"] = ratios;
        nlohmann::json seq = nlohmann::json::array();
        for (const sample_record& r : records)
            seq.push_back({variants[r.variant].key, r.ok, r.total, std::string(clone_method_name(r.method))});
        j["order"] = {{"fields", {"variant", "ok", "total", "clone_method"}}, {"samples", seq}};
        std::ofstream out(o.json_path, std::ios::trunc);
        out << j.dump(1) << "\n";
        if (!out) {
            std::fprintf(stderr, "drover_bench_sandbox: cannot write %s\n", o.json_path.c_str());
            return 1;
        }
    }
    return 0;
}
