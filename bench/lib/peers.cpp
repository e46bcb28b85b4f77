// The peers: the same sandbox started by unshare(1), bwrap and runc (each spawned by drover
// with no namespaces of its own) beside drover starting it directly.
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "bench/floor.hpp"
#include "bench/runner.hpp"
#include "drover/spawn/launch.hpp"
#include "drover/spawn/warm.hpp"
#include "drover/sys/path.hpp"

namespace drover::bench {

namespace {

namespace fs = std::filesystem;

constexpr namespace_set sandbox_set{ns::user, ns::pid, ns::mnt, ns::uts, ns::ipc, ns::net};

// Runs `argv` once with stderr captured: the reason a peer refuses, if it does.
std::string probe(const std::vector<std::string>& argv) {
    spawn_spec spec;
    spec.argv = argv;
    spec.out = stdio::null();
    spec.err = stdio::pipe();
    try {
        prepared_spawn p(spec);
        launched_child child;
        spawn_failure failure;
        if (!launch(p, child, failure) || !await_exec(p, child, failure)) return failure.message();
        std::string err;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(child.stderr_pipe.get(), buf, sizeof buf)) > 0 ||
               (n < 0 && errno == EINTR))
            if (n > 0 && err.size() < 4096) err.append(buf, static_cast<std::size_t>(n));
        exit_status st = wait_blocking(child);
        if (st.success()) return {};
        while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
        if (auto nl = err.find_last_of('\n'); nl != std::string::npos) err = err.substr(nl + 1);
        return st.str() + (err.empty() ? "" : ": " + err);
    } catch (const std::exception& e) {
        return e.what();
    }
}

// A throwaway OCI bundle: a rootfs holding only the static helper, and a config asking for
// the same namespaces (with a one-id user map, like drover's default).
struct runc_bundle {
    fs::path dir;
    std::string error;

    explicit runc_bundle(const std::string& helper) {
        char tmpl[] = "/tmp/drover-bench-runc-XXXXXX";
        if (!::mkdtemp(tmpl)) {
            error = "mkdtemp failed";
            return;
        }
        dir = tmpl;
        std::error_code ec;
        fs::create_directories(dir / "rootfs" / "proc", ec);
        fs::create_directories(dir / "state", ec);
        fs::copy_file(helper, dir / "rootfs" / "true", ec);
        if (ec) {
            error = "cannot copy " + helper + ": " + ec.message();
            return;
        }
        std::string uid = std::to_string(::getuid()), gid = std::to_string(::getgid());
        std::ofstream cfg(dir / "config.json");
        cfg << R"({"ociVersion":"1.0.2",)"
            << R"("process":{"terminal":false,"user":{"uid":0,"gid":0},"args":["/true"],)"
            << R"("env":["PATH=/"],"cwd":"/"},)"
            << R"("root":{"path":"rootfs","readonly":true},"hostname":"bench",)"
            << R"("mounts":[{"destination":"/proc","type":"proc","source":"proc"}],)"
            << R"("linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"uts"},)"
            << R"({"type":"ipc"},{"type":"network"},{"type":"user"}],)"
            << R"("uidMappings":[{"containerID":0,"hostID":)" << uid << R"(,"size":1}],)"
            << R"("gidMappings":[{"containerID":0,"hostID":)" << gid << R"(,"size":1}]}})";
        if (!cfg) error = "cannot write config.json";
    }
    ~runc_bundle() {
        std::error_code ec;
        if (!dir.empty()) fs::remove_all(dir, ec);
    }
    runc_bundle(const runc_bundle&) = delete;
    runc_bundle& operator=(const runc_bundle&) = delete;
};

struct candidate {
    peer_result result;
    std::optional<prepared_spawn> prepared;
    std::unique_ptr<warm_pool> warm;  // drover-warm: each timed start takes a ready set
    std::vector<std::int64_t> samples;
};

// drover starting the same sandbox in a warm set (warm.hpp). The pool has no refill thread:
// a set is made before each start, outside the timed region, so the sample is the latency of
// a job that finds a ready set, and no refill competes with the other runners for the CPUs.
candidate warm_candidate(const spawn_spec& spec) {
    candidate c;
    c.result.name = "drover-warm";
    c.result.argv = spec.argv;
    try {
        prepared_spawn p(spec);
        if (std::string why = warm_unsupported(p); !why.empty()) {
            c.result.note = "not possible here: " + why;
            return c;
        }
        warm_options o;
        o.size = 1;
        o.refill_thread = false;
        c.warm = std::make_unique<warm_pool>(std::move(p), o);
        if (c.warm->fill() == 0) {
            c.result.note = "cannot make a warm set: " + c.warm->stats().last_error;
            c.warm.reset();
            return c;
        }
        c.result.ran = true;
        c.result.note = "a ready warm set per start (made before the timed region)";
    } catch (const std::exception& e) {
        c.result.note = std::string("cannot make a warm set: ") + e.what();
    }
    return c;
}

}  // namespace

void run_peers(const bench_config& cfg, bench_report& report, const progress_fn& progress) {
    report.peer_set = sandbox_set.str();
    std::vector<candidate> peers;
    const std::string program = "/bin/true";

    {
        candidate d;
        d.result.name = "drover";
        d.result.argv = {program};
        spawn_spec spec;
        spec.namespaces = sandbox_set;  // fresh /proc (pid+mnt) and lo up are the defaults
        spec.argv = {program};
        d.prepared.emplace(spec);
        peers.push_back(std::move(d));
        peers.push_back(warm_candidate(spec));
    }
    auto add_peer = [&](std::string name, std::vector<std::string> argv, std::string note) {
        candidate c;
        c.result.name = std::move(name);
        c.result.argv = std::move(argv);
        c.result.note = std::move(note);
        peers.push_back(std::move(c));
    };
    std::string unshare = sys::find_in_path("unshare");
    add_peer(
        "unshare",
        {unshare, "--user", "--map-root-user", "--pid", "--fork", "--mount", "--mount-proc",
         "--uts", "--ipc", "--net", program},
        unshare.empty() ? "not installed" : "leaves lo down (unshare(1) has no option for it)");
    std::string bwrap = sys::find_in_path("bwrap");
    add_peer("bwrap",
             {bwrap, "--unshare-all", "--unshare-user", "--dev-bind", "/", "/", "--proc", "/proc",
              program},
             bwrap.empty() ? "not installed" : "--unshare-all adds a cgroup namespace; lo up");
    std::string runc = sys::find_in_path("runc");
    std::string helper = static_helper_path();
    std::optional<runc_bundle> bundle;
    std::string runc_note = "static helper as /true in a one-file rootfs; fresh /proc; lo down";
    if (runc.empty())
        runc_note = "not installed";
    else if (helper.empty())
        runc_note = "drover_static_true not found (the bundle's rootfs needs it)";
    else
        bundle.emplace(helper);
    if (bundle && !bundle->error.empty()) runc_note = bundle->error;
    std::string id = "drover-bench-" + std::to_string(::getpid());
    add_peer("runc",
             bundle ? std::vector<std::string>{runc, "--root", (bundle->dir / "state").string(),
                                               "run", "--bundle", bundle->dir.string(), id}
                    : std::vector<std::string>{"runc"},
             runc_note);

    // Probe each peer once; a missing or refusing one is skipped with the reason.
    for (candidate& c : peers) {
        if (c.result.name == "drover") {
            c.result.ran = true;
            continue;
        }
        if (c.result.name == "drover-warm") continue;  // probed when its pool was filled
        if (c.result.argv.empty() || c.result.argv.front().empty() ||
            c.result.argv.front().find('/') == std::string::npos) {
            c.result.note = c.result.note.empty() ? "not available" : c.result.note;
            continue;
        }
        if (std::string why = probe(c.result.argv); !why.empty()) {
            c.result.note = "refused to run here: " + why;
            continue;
        }
        spawn_spec spec;
        spec.argv = c.result.argv;
        c.prepared.emplace(spec);
        c.result.ran = true;
    }

    // Warm-up first (in order), then the measured runs shuffled together.
    std::vector<std::size_t> warm, measured;
    for (std::size_t i = 0; i < peers.size(); ++i) {
        if (!peers[i].result.ran) continue;
        for (int k = 0; k < cfg.warmup; ++k) warm.push_back(i);
        for (int k = 0; k < cfg.count; ++k) measured.push_back(i);
    }
    std::mt19937_64 rng(cfg.seed ^ 0x9e3779b97f4a7c15ULL);
    std::shuffle(measured.begin(), measured.end(), rng);
    const std::size_t total = warm.size() + measured.size();
    std::size_t done = 0;
    std::int64_t last = 0;
    auto one = [&](std::size_t i, bool keep) {
        candidate& c = peers[i];
        launch_extras extras;
        if (c.warm) {
            if (c.warm->stats().ready == 0) (void)c.warm->fill();  // not timed
            extras.warm = c.warm.get();
        }
        const prepared_spawn& p = c.warm ? c.warm->spec() : *c.prepared;
        const std::int64_t start = floor_now_ns();
        launched_child child;
        spawn_failure failure;
        std::string error;
        if (!launch(p, child, failure, extras) || !await_exec(p, child, failure)) {
            error = failure.message();
        } else if (exit_status st = wait_blocking(child); !st.success()) {
            error = st.str();
        }
        const std::int64_t took = floor_now_ns() - start;
        if (!keep) return;
        if (error.empty())
            c.samples.push_back(took);
        else
            ++c.result.failures[error];
    };
    auto tick = [&] {
        ++done;
        if (!progress) return;
        std::int64_t now = floor_now_ns();
        if (done != total && now - last < 100'000'000) return;
        last = now;
        progress({"peers", done, total});
    };
    for (std::size_t i : warm) {
        one(i, false);
        tick();
    }
    for (std::size_t i : measured) {
        one(i, true);
        tick();
    }
    report.peers.clear();
    for (candidate& c : peers) {
        if (c.warm) {
            // A miss is a cold start timed as a warm one: say how many there were.
            const warm_stats st = c.warm->stats();
            if (st.misses) c.result.note += "; " + std::to_string(st.misses) + " starts found no ready set and went cold";
            c.warm.reset();
        }
        c.result.total = summarize(c.samples);
        report.peers.push_back(std::move(c.result));
    }
    if (bundle) {
        // A failed run can leave runc's state behind: delete it before the directory goes.
        std::vector<std::string> del = {runc,     "--root", (bundle->dir / "state").string(),
                                        "delete", "-f",     id};
        (void)probe(del);
    }
}

}  // namespace drover::bench
