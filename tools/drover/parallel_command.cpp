// `drover parallel`: one (sandboxed) job per input line, N at a time, like xargs -P or GNU
// parallel: input read as it comes, each job's output printed whole when it ends, --json
// results, a progress bar, signals passed on to the running jobs.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <optional>
#include <cstdio>
#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <map>
#include <cstdlib>
#include <vector>

#include "command.hpp"
#include "drover/process/asio.hpp"
#include "drover/process/cgroup.hpp"
#include "drover/spawn/units.hpp"
#include "drover/process/limits.hpp"
#include "drover/process/pool.hpp"
#include "drover/process/spawn_threads.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/warm.hpp"
#include "drover/sys/syscalls.hpp"
#include "ns_options.hpp"
#include "progress.hpp"
#include "shard.hpp"

namespace drover::cli {

namespace {

struct parallel_options {
    ns_options ns;
    std::size_t jobs = 0;
    bool json = false;
    bool keep_order = false;
    bool progress = false;
    bool no_progress = false;
    std::string max_output = "16M";
    std::string on_max_output = "truncate";
    unsigned warm = 0;
    bool warm_prestart = false;
    unsigned spawn_threads = 0;  // 0: the process-wide setting (the CPUs, or DROVER_SPAWN_THREADS)
    std::string shard;
    std::string shard_by = "line";
    std::vector<std::string> resume;
    bool resume_failed = false;
    std::string stop_grace = "10s";
    std::vector<std::string> argv;
};

// What a result line says beyond the job itself: where its input was and how the run went.
struct record_context {
    std::uint64_t line = 0;
    const shard_spec* shard = nullptr;
    bool interrupted = false;
};

// Replaces every "{}" in the template's arguments by `line`; without any "{}" the line
// becomes the last argument.
std::vector<std::string> command_for(const std::vector<std::string>& tmpl, const std::string& line) {
    std::vector<std::string> argv;
    bool placed = false;
    for (const std::string& a : tmpl) {
        std::string out;
        std::size_t pos = 0;
        for (std::size_t hit; (hit = a.find("{}", pos)) != std::string::npos; pos = hit + 2) {
            out.append(a, pos, hit - pos);
            out += line;
            placed = true;
        }
        out.append(a, pos);
        argv.push_back(std::move(out));
    }
    if (!placed) argv.push_back(line);
    return argv;
}

// GNU parallel's convention: the number of failed jobs, 101 for more than 100.
int summary_exit_code(std::size_t failed) {
    return failed == 0 ? 0 : failed > 100 ? 101 : static_cast<int>(failed);
}

std::string describe(const job_result& r) {
    if (r.failure) return r.failure->message();
    if (!r.outcome.detail.empty()) return r.outcome.detail;
    return r.status ? r.status->str() : "unknown";
}

nlohmann::json to_json(const job_result& r, const record_context& c) {
    nlohmann::json j;
    j["index"] = r.index;
    j["line"] = c.line;
    if (c.shard) {
        j["shard"] = c.shard->index;
        j["shards"] = c.shard->count;
    }
    j["input"] = r.tag;
    j["ok"] = r.ok();
    if (c.interrupted) j["interrupted"] = true;
    if (r.status) {
        j["exit_code"] = r.status->exited() ? nlohmann::json(r.status->code()) : nlohmann::json();
        j["signal"] = r.status->signaled() ? nlohmann::json(signal_name(r.status->signal())) : nlohmann::json();
    }
    j["status"] = describe(r);
    j["verdict"] = std::string(verdict_name(r.outcome.why));
    if (r.failure) j["failed_stage"] = std::string(stage_id(r.failure->stage));
    auto ms = [](std::int64_t ns) { return static_cast<double>(ns) / 1e6; };
    if (r.status) {
        const resource_usage& u = r.outcome.usage;
        j["wall_ms"] = ms(u.wall_ns);
        j["user_ms"] = ms(u.user_ns);
        j["system_ms"] = ms(u.system_ns);
        j["peak_memory_bytes"] = u.peak_memory ? nlohmann::json(*u.peak_memory) : nlohmann::json();
        j["usage_source"] = std::string(u.source);
    }
    j["queued_ms"] = ms(r.started_ns - r.queued_ns);
    j["duration_ms"] = ms(r.finished_ns - r.started_ns);
    if (r.status) {
        stage_durations d = r.timings.durations();
        nlohmann::json stages;
        auto a = d.as_array();
        for (std::size_t i = 0; i < a.size(); ++i) stages[std::string(stage_durations::names[i])] = ms(a[i]);
        j["spawn_ms"] = stages;
    }
    j["attempts"] = r.attempts;
    j["stdout"] = r.out;
    j["stderr"] = r.err;
    j["stdout_truncated"] = r.out_dropped > 0;
    j["stderr_truncated"] = r.err_dropped > 0;
    return j;
}

// The status line: "[###...] 3/10+ done, 0 failed, 4 running". `total` is what has been read
// so far, `known` once the input has ended (no "+").
std::string progress_text(std::size_t done, std::size_t total, bool known, std::size_t failed, std::size_t live,
                          const std::string& throttle) {
    return fmt::format("[{}] {}/{}{} done, {} failed, {} running{}{}", progress_bar(done, total), done, total,
                       known ? "" : "+", failed, live, throttle.empty() ? "" : ", ", throttle);
}

void write_all(std::FILE* f, const std::string& s) {
    if (!s.empty()) std::fwrite(s.data(), 1, s.size(), f);
    std::fflush(f);
}

// Reads stdin a chunk at a time and hands out whole lines. A pipe, socket or terminal is
// awaited on the event loop; anything else (a file, /dev/null) cannot block for long and is
// read directly.
class line_source {
public:
    explicit line_source(asio::any_io_executor ex) : stream_(ex) {
        struct stat st{};
        bool pollable = ::fstat(STDIN_FILENO, &st) == 0 &&
                        (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || ::isatty(STDIN_FILENO));
        if (pollable) {
            int fd = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
            if (fd >= 0) stream_.assign(fd);
        }
    }

    // The next line (without "\n" and a trailing "\r"), or nullopt at EOF.
    asio::awaitable<std::optional<std::string>> next() {
        for (;;) {
            if (std::size_t nl = buf_.find('\n', scanned_); nl != std::string::npos) {
                std::string line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                scanned_ = 0;
                if (!line.empty() && line.back() == '\r') line.pop_back();
                co_return line;
            }
            scanned_ = buf_.size();
            if (eof_) {
                if (buf_.empty()) co_return std::nullopt;
                std::string last = std::exchange(buf_, {});
                if (last.back() == '\r') last.pop_back();
                co_return last;
            }
            char chunk[65536];
            std::size_t n = 0;
            if (stream_.is_open()) {
                auto [ec, got] = co_await stream_.async_read_some(asio::buffer(chunk), use_tuple);
                if (ec == asio::error::operation_aborted) co_return std::nullopt;  // stop()
                if (ec && ec != asio::error::eof) throw std::system_error(ec, "reading stdin");
                n = got;
            } else {
                ssize_t got = ::read(STDIN_FILENO, chunk, sizeof chunk);
                if (got < 0 && errno == EINTR) continue;
                if (got < 0) throw std::system_error(sys::last_error(), "reading stdin");
                n = static_cast<std::size_t>(got);
            }
            if (n == 0) eof_ = true;
            buf_.append(chunk, n);
        }
    }

    void stop() {
        eof_ = true;
        buf_.clear();
        if (stream_.is_open()) stream_.close();
    }

private:
    asio::posix::stream_descriptor stream_;
    std::string buf_;
    std::size_t scanned_ = 0;
    bool eof_ = false;
};

// The options as the jobs' template spec and limits (throws spec_error); returns the
// --max-output size. `open_files` as in ns_options::apply.
std::size_t translate(const parallel_options& o, bool open_files, spawn_spec& tmpl, job_limits& limits) {
    tmpl.argv = command_for(o.argv, "x");
    o.ns.apply(tmpl, open_files);
    limits = o.ns.limits();
    auto size = parse_size(o.max_output);
    if (!size || *size == 0 || *size > (std::uint64_t{1} << 40))
        throw spec_error("--max-output: '" + o.max_output + "' is not a size from 1 byte to 1T (64K, 16M)");
    return static_cast<std::size_t>(*size);
}

const char* real_env(const char* name) { return std::getenv(name); }

// --shard and --shard-by as a slice (none without --shard); throws spec_error.
std::optional<shard_spec> shard_of(const parallel_options& o) {
    if (o.shard.empty()) return std::nullopt;
    shard_parse p = parse_shard(o.shard, real_env);
    if (!p.spec) throw spec_error(p.error);
    p.spec->by_hash = o.shard_by == "hash";
    return p.spec;
}

std::chrono::nanoseconds grace_of(const parallel_options& o) {
    auto d = parse_duration(o.stop_grace, std::chrono::hours(24));
    if (!d) throw spec_error("--stop-grace: '" + o.stop_grace + "' is not a duration from 0 to 24h (10s, 500ms, 2m)");
    return *d;
}

// The inputs earlier runs finished, from --resume's result files: line number -> input.
std::map<std::uint64_t, std::string> load_done(const parallel_options& o) {
    std::map<std::uint64_t, std::string> done;
    for (const std::string& path : o.resume) {
        std::string problem = read_records(path, [&](result_record&& r) {
            if (r.done(o.resume_failed)) done[r.line] = std::move(r.input);
        });
        if (!problem.empty()) throw spec_error("--resume " + problem);
    }
    return done;
}

// parallel_main's usage checks without the cgroup tree or a spawn.
std::string check_parallel(const parallel_options& o) {
    try {
        shard_of(o);
        grace_of(o);
        if (o.resume_failed && o.resume.empty()) throw spec_error("--resume-failed needs --resume FILE");
        spawn_spec tmpl;
        job_limits limits;
        translate(o, false, tmpl, limits);
        return validate(tmpl);
    } catch (const spec_error& e) {
        return o.ns.in_flag_terms(e.what());
    }
}

int parallel_main(const parallel_options& o) {
    spawn_spec tmpl;
    job_limits limits;
    std::size_t max_output = 0;
    std::shared_ptr<cgroup_tree> tree;
    std::unique_ptr<cgroup_guardian> guardian;
    sys::unique_fd jobs_cgroup;
    std::unique_ptr<warm_pool> warm;
    std::optional<shard_spec> shard;
    std::chrono::nanoseconds grace{};
    std::map<std::uint64_t, std::string> already_done;
    try {
        shard = shard_of(o);
        grace = grace_of(o);
        if (o.resume_failed && o.resume.empty()) throw spec_error("--resume-failed needs --resume FILE");
        already_done = load_done(o);
        max_output = translate(o, true, tmpl, limits);
        // Every job lives in drover's cgroup subtree, which a guardian empties if drover is
        // killed: no job's descendant outlives the run, pid namespace or not.
        tree = std::make_shared<cgroup_tree>("drover." + std::to_string(::getpid()));
        if (tree->mode() != cgroup_mode::none) {
            guardian = std::make_unique<cgroup_guardian>(tree->roots());
            if (!limits.wants_cgroup()) {
                std::string dir = tree->path() + "/jobs";
                if (::mkdir(dir.c_str(), 0755) == 0) jobs_cgroup.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
                tmpl.cgroup_fd = jobs_cgroup.get();
            }
        } else if (limits.wants_cgroup()) {
            if (std::string missing = apply_rlimit_fallbacks(tmpl, limits, false); !missing.empty())
                throw spec_error("limits: " + missing + ": " + tree->warning());
            limits.own_cgroup = false;
            limits.cgroup = {};
        }
        if (std::string problem = validate(tmpl); !problem.empty()) throw spec_error(problem);
        prepared_spawn check(tmpl);  // what only preparing finds (ids, roots) fails here, before any input
        if (o.warm_prestart && o.warm == 0) throw spec_error("--warm-prestart needs --warm N (N above 0)");
        if (o.warm > 0) {
            warm_options wo;
            wo.size = o.warm;
            wo.prestart = o.warm_prestart;
            warm = std::make_unique<warm_pool>(check, wo);
        }
    } catch (const spec_error& e) {
        print_error("parallel: " + o.ns.in_flag_terms(e.what()));
        return parallel_usage_exit;
    }
    raise_nofile_limit();
    std::size_t jobs = o.jobs ? o.jobs : std::max(1u, std::thread::hardware_concurrency());
    // A terminal gets the line unless --no-progress; anything else only with --progress (the
    // same redrawn line, for a program that reads it).
    progress_display bar(o.no_progress ? progress_style::off
                         : o.progress  ? progress_style::redraw
                                       : progress_style_for_stderr(progress_style::off));
    bool show_progress = bar.on();
    std::size_t done = 0, failed = 0, cancelled = 0, read_lines = 0;
    std::uint64_t line_no = 0, skipped_done = 0;
    std::unordered_map<std::size_t, std::uint64_t> line_of;  // submission index -> input line
    bool input_done = false;
    std::string throttle_text;
    int code = 0;
    int stopped_by = 0;  // the signal that stopped the run

    asio::io_context io;
    auto ex = io.get_executor();
    pool_options popt{.concurrency = jobs, .output = {max_output, overflow_policy::truncate, o.on_max_output == "kill"}};
    popt.limits = limits;
    popt.warm = warm.get();
    popt.spawn_threads = o.spawn_threads;
    if (limits.wants_cgroup()) popt.cgroups = tree;
    popt.on_throttle = [&](const throttle_state& t) { throttle_text = t.reason(); };
    auto pool = std::make_shared<job_pool>(ex, popt);
    line_source input(ex);
    // Input is read only while fewer than this many jobs wait: `seq 1e9 | drover parallel`
    // holds a bounded queue, not the whole input.
    const std::size_t queue_bound = std::max<std::size_t>(1024, 4 * jobs);
    asio::steady_timer room(ex);  // cancelled when a job ends

    auto draw = [&] {
        bar.update(progress_text(done, read_lines, input_done, failed, pool->stats().live, throttle_text));
    };
    bool running = true;
    asio::steady_timer tick(ex);  // draws what the display held back, so the line never lags long
    std::function<void(std::error_code)> on_tick = [&](std::error_code ec) {
        if (ec || !running) return;
        bar.flush();
        tick.expires_after(progress_display::default_interval);
        tick.async_wait(on_tick);
    };
    if (show_progress) on_tick({});
    auto print = [&](const job_result& r, const record_context& rc) {
        bool names_failure = !r.ok() && !stopped_by;
        // The line would end up inside the output (stdout may be the same terminal).
        if (o.json || !r.out.empty() || !r.err.empty() || names_failure) bar.erase();
        if (o.json) {
            write_all(stdout, to_json(r, rc).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
            return;
        }
        write_all(stdout, r.out);
        write_all(stderr, r.err);
        if (names_failure)
            std::fprintf(stderr, "drover: parallel: line %llu (%s): %s\n", static_cast<unsigned long long>(rc.line),
                         r.tag.c_str(), describe(r).c_str());
    };
    std::map<std::size_t, std::pair<job_result, record_context>> held;  // --keep-order
    std::size_t next_to_print = 0;
    auto on_done = [&](job_result r) {
        ++done;
        if (r.outcome.why == verdict::cancelled) ++cancelled;
        else if (!r.ok()) ++failed;
        record_context rc;
        if (auto it = line_of.find(r.index); it != line_of.end()) {
            rc.line = it->second;
            line_of.erase(it);
        }
        rc.shard = shard ? &*shard : nullptr;
        // What ran while the run was being stopped and did not succeed may have been cut
        // short by it: --resume runs it again.
        rc.interrupted = stopped_by != 0 && !r.ok();
        if (!o.keep_order) {
            print(r, rc);
        } else {
            // --keep-order: a result waits here until every job submitted before it has been
            // printed (its output is held in memory meanwhile, at most --max-output a stream).
            held.emplace(r.index, std::make_pair(std::move(r), rc));
            for (auto it = held.begin(); it != held.end() && it->first == next_to_print; it = held.erase(it)) {
                print(it->second.first, it->second.second);
                ++next_to_print;
            }
        }
        room.cancel();
        draw();
    };
    auto fail = [&](const std::string& what) {
        print_error("parallel: " + what);
        code = 125;
    };
    auto on_error = [&](std::exception_ptr ep) {
        if (!ep) return;
        try {
            std::rethrow_exception(ep);
        } catch (const spec_error& e) {
            // A line made a command the spec rejects: nothing more starts.
            print_error(std::string("parallel: ") + e.what());
            if (!code) code = parallel_usage_exit;
            pool->cancel_queued();
            pool->close();
        } catch (const std::exception& e) {
            fail(e.what());
            pool->cancel_queued();
            pool->close();
        }
    };
    auto feed = [&]() -> asio::awaitable<void> {
        while (!stopped_by) {
            while (pool->queued() >= queue_bound && !stopped_by) {
                room.expires_at(asio::steady_timer::time_point::max());
                co_await room.async_wait(use_tuple);
            }
            if (stopped_by) break;
            std::optional<std::string> line = co_await input.next();
            if (!line || stopped_by) break;
            ++line_no;
            if (shard && !shard->takes(line_no, *line)) continue;
            if (auto it = already_done.find(line_no); it != already_done.end()) {
                if (it->second != *line)
                    throw spec_error("--resume: input line " + std::to_string(line_no) + " is '" + printable(*line) +
                                     "' but the results have '" + printable(it->second) + "' for it: not the same input");
                ++skipped_done;
                continue;
            }
            spawn_spec s = tmpl;
            s.argv = command_for(o.argv, *line);
            s.in = stdio::null();
            s.out = stdio::pipe();
            s.err = stdio::pipe();
            line_of[pool->submit(prepared_spawn(std::move(s)), std::move(*line))] = line_no;
            ++read_lines;
        }
        input_done = true;
        pool->close();
        draw();
    };

    // SIGINT, SIGTERM, SIGHUP: start nothing more, pass the signal to the running jobs, wait
    // for them, exit 128+signal. The same signal again: SIGKILL for the jobs.
    asio::signal_set signals(ex, SIGINT, SIGTERM, SIGHUP);
    // After the first signal the jobs have --stop-grace to end; then they are killed (a
    // sandboxed job is PID 1 of its namespace, which the kernel spares signals it does not
    // handle, and a scheduler's kill-wait should not be what ends them).
    asio::steady_timer grace_timer(ex);
    std::function<void(std::error_code, int)> on_signal = [&](std::error_code ec, int sig) {
        if (ec) return;
        if (!stopped_by) {
            stopped_by = sig;
            input.stop();
            room.cancel();
            pool->cancel_queued();
            pool->close();
            pool->signal_all(sig);
            grace_timer.expires_after(grace);
            grace_timer.async_wait([&](std::error_code e) {
                if (!e) pool->signal_all(SIGKILL);
            });
        } else {
            pool->signal_all(SIGKILL);
        }
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);

    asio::co_spawn(ex, feed(), on_error);
    asio::co_spawn(ex, pool->run(on_done), [&](std::exception_ptr ep) {
        signals.cancel();  // the run is over: the loop may end
        grace_timer.cancel();
        running = false;
        tick.cancel();
        on_error(ep);
    });
    draw();
    io.run();
    bar.erase();
    if (warm && o.json) {
        // For programs: the same as one JSON object on stderr (stdout holds only job lines).
        warm_stats ws = warm->stats();
        nlohmann::json j = {{"warm_pool",
                             {{"target", ws.target},
                              {"prestarted", warm->prestarted()},
                              {"stub", ws.stub},
                              {"stub_unused", ws.stub_unused},
                              {"ready", ws.ready},
                              {"hits", ws.hits},
                              {"misses", ws.misses},
                              {"made", ws.made},
                              {"failed", ws.failed},
                              {"dead", ws.dead},
                              {"namespaces_per_set", ws.namespaces_per_set},
                              {"refill_last_ms", static_cast<double>(ws.refill_last_ns) / 1e6},
                              {"refill_max_ms", static_cast<double>(ws.refill_max_ns) / 1e6},
                              {"refill_mean_ms", ws.made ? static_cast<double>(ws.refill_total_ns) /
                                                               static_cast<double>(ws.made) / 1e6
                                                         : 0.0},
                              {"last_error", ws.last_error}}}};
        write_all(stderr, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    } else if (warm) {
        warm_stats ws = warm->stats();
        double mean_ms = ws.made ? static_cast<double>(ws.refill_total_ns) / static_cast<double>(ws.made) / 1e6 : 0;
        std::fprintf(stderr,
                     "drover: parallel: warm sets: %llu starts warm, %llu cold (retries included); %llu sets made (%.2f "
                     "ms each on average), %llu failed%s%s\n",
                     static_cast<unsigned long long>(ws.hits), static_cast<unsigned long long>(ws.misses),
                     static_cast<unsigned long long>(ws.made), mean_ms, static_cast<unsigned long long>(ws.failed),
                     ws.last_error.empty() ? "" : ", last: ", ws.last_error.c_str());
        if (warm->prestarted() && !ws.stub)
            std::fprintf(stderr, "drover: parallel: pre-started jobs waited in drover's child: %s\n",
                         ws.stub_unused.c_str());
    }
    if (skipped_done)
        std::fprintf(stderr, "drover: parallel: resumed: %llu inputs the results show done were skipped\n",
                     static_cast<unsigned long long>(skipped_done));
    if (stopped_by) {
        std::fprintf(stderr, "drover: parallel: stopped by %s: %zu jobs ended (%zu failed), %zu never started\n",
                     signal_name(stopped_by).c_str(), done - cancelled, failed, cancelled);
        return 128 + stopped_by;
    }
    if (code) return code;
    // One line at the end for a person watching (a progress bar was shown) or when jobs
    // failed: how many ran, how many failed, and the exit status that says so.
    if (show_progress || failed)
        std::fprintf(stderr, "drover: parallel: %zu jobs: %zu succeeded, %zu failed (exit status %d)\n", done,
                     done - failed - cancelled, failed, summary_exit_code(failed));
    return summary_exit_code(failed);
}

}  // namespace

command_main add_parallel_command(CLI::App& app, command_check* check) {
    auto o = std::make_shared<parallel_options>();
    CLI::App* p = app.add_subcommand(
        "parallel",
        "run a command once per stdin line, N at a time ({} is the line). Exit status: 0 all "
        "jobs succeeded, 1-100 that many failed, 101 more than 100 failed, 125 drover failed, 128+N stopped by "
        "signal N, 255 bad usage (nothing started)");
    p->add_option("-j,--jobs", o->jobs, "jobs at once, 1 to 1048576 (default: number of CPUs)")
        ->type_name("N")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20).description(""));
    p->add_flag("--json", o->json, "one JSON line per job: input, status, timings, stdout, stderr");
    p->add_flag("-k,--keep-order", o->keep_order,
                "print each job's output (or JSON line) in input order, not as jobs finish; a finished job's "
                "output waits in memory for the jobs before it");
    p->add_option("--max-output", o->max_output,
                  "bytes kept per job and stream (64K, 16M); more is dropped with a marker (default 16M)");
    p->add_option("--on-max-output", o->on_max_output,
                  "truncate (default): keep running, drop the rest; kill: stop the job (verdict output)")
        ->check(CLI::IsMember({"truncate", "kill"}));
    p->add_flag("--progress", o->progress, "progress bar on stderr even if it is not a terminal");
    p->add_flag("--no-progress", o->no_progress, "no progress bar");
    p->add_option("--warm", o->warm,
                  "keep N (0 to 4096) namespace sets ready (set up ahead: user, mnt and root, net with lo, uts, ipc); "
                  "each job starts in one of its own, or cold when none is ready (default 0: off)")
        ->type_name("N")
        ->check(CLI::Range(0u, 4096u).description(""));
    p->add_flag("--warm-prestart", o->warm_prestart,
                "with --warm: each set is the job itself, set up all the way (seccomp filter included) and waiting in "
                "drover_ready_stub for its argv and env; a start is one message and one execve (docs/warm.md)");
    add_spawn_threads_option(*p, o->spawn_threads,
                             "threads that may run clone3 for a burst of starts, 1 to 256 or auto (the CPUs); "
                             "default auto (or $DROVER_SPAWN_THREADS); 1: the event-loop thread only");
    p->add_option("--shard", o->shard,
                  "run only slice K of N of the input (K/N, K from 0); auto: the Slurm array task's slice "
                  "(SLURM_ARRAY_TASK_*); auto/N: Slurm's or a Kubernetes Indexed Job's (JOB_COMPLETION_INDEX)");
    p->add_option("--shard-by", o->shard_by, "line (default): by input line number; hash: by the line's text")
        ->check(CLI::IsMember({"line", "hash"}));
    p->add_option("--resume", o->resume,
                  "skip the inputs these --json result files show done (may be given more than once)");
    p->add_flag("--resume-failed", o->resume_failed, "with --resume: run the failed ones again too");
    p->add_option("--stop-grace", o->stop_grace,
                  "after SIGINT, SIGTERM or SIGHUP, jobs still running this long are killed (default 10s)");
    o->ns.add_to(*p);
    p->add_option("command", o->argv, "the command; {} is replaced by the input line")->required();
    p->positionals_at_end();
    if (check) *check = [o] { return check_parallel(*o); };
    return [o] { return parallel_main(*o); };
}

}  // namespace drover::cli
