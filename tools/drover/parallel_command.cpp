// `drover parallel`: one (sandboxed) job per input line, N at a time, like xargs -P or GNU
// parallel: each job's output printed whole when it ends, --json results, a progress bar.
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "command.hpp"
#include "drover/process/limits.hpp"
#include "drover/process/pool.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "ns_options.hpp"

namespace drover::cli {

namespace {

struct parallel_options {
    ns_options ns;
    std::size_t jobs = 0;
    bool json = false;
    bool progress = false;
    bool no_progress = false;
    std::size_t max_output = 16 << 20;
    std::vector<std::string> argv;
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
    return r.status ? r.status->str() : "unknown";
}

nlohmann::json to_json(const job_result& r) {
    nlohmann::json j;
    j["index"] = r.index;
    j["input"] = r.tag;
    j["ok"] = r.ok();
    if (r.status) {
        j["exit_code"] = r.status->exited() ? nlohmann::json(r.status->code()) : nlohmann::json();
        j["signal"] = r.status->signaled() ? nlohmann::json(signal_name(r.status->signal())) : nlohmann::json();
    }
    j["status"] = describe(r);
    if (r.failure) j["failed_stage"] = std::string(stage_id(r.failure->stage));
    auto ms = [](std::int64_t ns) { return static_cast<double>(ns) / 1e6; };
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

class progress_bar {
public:
    explicit progress_bar(bool on) : on_(on) {}
    void clear() {
        if (on_ && drawn_) std::fputs("\r\033[K", stderr);
        drawn_ = false;
    }
    void draw(std::size_t done, std::size_t total, std::size_t failed, std::size_t live,
              const std::string& throttle) {
        if (!on_) return;
        constexpr int width = 30;
        int filled = total ? static_cast<int>(width * done / total) : width;
        std::string bar(static_cast<std::size_t>(filled), '#');
        bar.resize(width, '.');
        std::fprintf(stderr, "\r\033[K[%s] %zu/%zu done, %zu failed, %zu running%s%s", bar.c_str(),
                     done, total, failed, live, throttle.empty() ? "" : ", ", throttle.c_str());
        std::fflush(stderr);
        drawn_ = true;
    }

private:
    bool on_;
    bool drawn_ = false;
};

void write_all(std::FILE* f, const std::string& s) {
    if (!s.empty()) std::fwrite(s.data(), 1, s.size(), f);
    std::fflush(f);
}

int parallel_main(const parallel_options& o) {
    spawn_spec tmpl;
    try {
        tmpl.argv = command_for(o.argv, "x");
        o.ns.apply(tmpl);
        if (std::string problem = validate(tmpl); !problem.empty()) throw spec_error(problem);
    } catch (const spec_error& e) {
        print_error(std::string("parallel: ") + e.what());
        return usage_exit;
    }
    if (o.max_output == 0) {
        print_error("parallel: --max-output: must be > 0");
        return usage_exit;
    }
    std::vector<std::string> lines;
    for (std::string line; std::getline(std::cin, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(std::move(line));
    }
    raise_nofile_limit();
    std::size_t jobs = o.jobs ? o.jobs : std::max(1u, std::thread::hardware_concurrency());
    bool show_progress = !o.no_progress && (o.progress || ::isatty(STDERR_FILENO));
    progress_bar bar(show_progress);
    std::size_t done = 0, failed = 0;
    std::string throttle_text;
    int code = 0;

    asio::io_context io;
    pool_options popt{.concurrency = jobs, .output = {o.max_output, overflow_policy::truncate}};
    popt.on_throttle = [&](const throttle_state& t) { throttle_text = t.reason(); };
    auto pool = std::make_shared<job_pool>(io.get_executor(), popt);
    try {
        for (const std::string& line : lines) {
            spawn_spec s = tmpl;
            s.argv = command_for(o.argv, line);
            s.in = stdio::null();
            s.out = stdio::pipe();
            s.err = stdio::pipe();
            pool->submit(prepared_spawn(std::move(s)), line);
        }
    } catch (const spec_error& e) {
        print_error(std::string("parallel: ") + e.what());
        return usage_exit;
    }
    pool->close();
    auto on_done = [&](job_result r) {
        ++done;
        if (!r.ok()) ++failed;
        bar.clear();
        if (o.json) {
            write_all(stdout, to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
        } else {
            write_all(stdout, r.out);
            write_all(stderr, r.err);
            if (!r.ok())
                std::fprintf(stderr, "drover: parallel: job %zu (%s): %s\n", r.index, r.tag.c_str(),
                             describe(r).c_str());
        }
        bar.draw(done, lines.size(), failed, pool->stats().live, throttle_text);
    };
    asio::co_spawn(io, pool->run(on_done), [&](std::exception_ptr ep) {
        if (!ep) return;
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            print_error(std::string("parallel: ") + e.what());
            code = 125;
        }
    });
    bar.draw(0, lines.size(), 0, 0, {});
    io.run();
    bar.clear();
    return code ? code : summary_exit_code(failed);
}

}  // namespace

command_main add_parallel_command(CLI::App& app) {
    auto o = std::make_shared<parallel_options>();
    CLI::App* p = app.add_subcommand(
        "parallel",
        "Run a command once per stdin line, N at a time ({} is the line). Exit status: 0 all "
        "jobs succeeded, 1-100 that many failed, 101 more than 100 failed, 2 also for bad usage");
    p->add_option("-j,--jobs", o->jobs, "jobs at once (default: number of CPUs)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
    p->add_flag("--json", o->json, "one JSON line per job: input, status, timings, stdout, stderr");
    p->add_option("--max-output", o->max_output,
                  "bytes kept per job and stream; more is dropped with a marker (default 16 MiB)");
    p->add_flag("--progress", o->progress, "progress bar on stderr even if it is not a terminal");
    p->add_flag("--no-progress", o->no_progress, "no progress bar");
    o->ns.add_to(*p);
    p->add_option("command", o->argv, "the command; {} is replaced by the input line")->required();
    p->positionals_at_end();
    return [o] { return parallel_main(*o); };
}

}  // namespace drover::cli
