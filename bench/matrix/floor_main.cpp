// drover_floor: the raw floors as a small process of their own (no drover code, no Asio, a tiny
// heap and fd table), so that what `drover bench` reports as the floor does not pay for
// drover's address space. Two modes:
//   drover_floor [--method vfork|fork] [--bare] NAMESPACES COUNT [PROGRAM]
//       runs COUNT spawns and prints p50/p90/max (a quick independent probe);
//   drover_floor --serve
//       answers requests on stdin, one line each (what drover bench uses, see floor_client):
//         plan NAMESPACES vfork|fork setup|bare exec|exit [PROGRAM]  -> ok ID METHOD | err TEXT
//         run ID                                                   -> ok TOTAL_NS CLONE_NS | fail TEXT
//         peer PID TID                                             -> ok | err TEXT
//             (the thread that sends "run": each run first waits until it is asleep, see
//             floor_wait_asleep)
//         loop ID START_NS END_NS   -> ok SPAWNS FAILURES FINISH_NS [FIRST_FAILURE] | err TEXT
//             (CLOCK_MONOTONIC times: several helpers given one START begin together; the
//             answer comes once the loop is over)
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "bench/floor.hpp"

namespace {

using drover::bench::floor_method;
using drover::bench::floor_plan;

bool parse_method(std::string_view text, floor_method& m) {
    if (text == "vfork") m = floor_method::vfork;
    else if (text == "fork") m = floor_method::fork;
    else return false;
    return true;
}

// A time or plan id from a request: digits only, within `max`.
bool parse_count(std::string_view text, std::int64_t max, std::int64_t& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && end == text.data() + text.size() && out >= 0 && out <= max;
}

std::vector<std::string_view> words(std::string_view line, std::size_t max) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size() && out.size() + 1 < max) {
        while (i < line.size() && line[i] == ' ') ++i;
        if (i == line.size()) break;
        std::size_t end = std::min(line.find(' ', i), line.size());
        out.push_back(line.substr(i, end - i));
        i = end;
    }
    while (i < line.size() && line[i] == ' ') ++i;
    if (i < line.size()) out.push_back(line.substr(i));  // the program: the rest of the line
    return out;
}

// The asking thread ("peer"), which a run waits to fall asleep; 0 until told.
pid_t peer_pid = 0, peer_tid = 0;

// One request; the answer is one line.
std::string answer(std::string_view line, std::vector<floor_plan>& plans) {
    auto w = words(line, 6);
    if (w.empty()) return "err empty request";
    if (w[0] == "plan") {
        std::uint64_t flags = 0;
        floor_method m{};
        if (w.size() < 5 || !drover::bench::parse_floor_namespaces(w[1], flags) ||
            !parse_method(w[2], m) || (w[3] != "setup" && w[3] != "bare") ||
            (w[4] != "exec" && w[4] != "exit"))
            return "err usage: plan NAMESPACES vfork|fork setup|bare exec|exit [PROGRAM]";
        bool exec = w[4] == "exec";
        if (exec && (w.size() < 6 || w[5].empty() || w[5][0] != '/'))
            return "err exec needs an absolute PROGRAM";
        std::vector<std::string> argv;
        if (exec) argv.emplace_back(w[5]);
        plans.push_back(floor_plan::make(flags, m, w[3] == "setup", exec, std::move(argv)));
        return "ok " + std::to_string(plans.size() - 1) + " " +
               std::string(drover::bench::floor_method_name(plans.back().method));
    }
    if (w[0] == "run" && w.size() == 2) {
        std::int64_t id = 0;
        if (!parse_count(w[1], 1'000'000, id) || static_cast<std::size_t>(id) >= plans.size())
            return "err no such plan: " + std::string(w[1]);
        drover::bench::floor_wait_asleep(peer_pid, peer_tid);
        auto s = drover::bench::floor_spawn(plans[static_cast<std::size_t>(id)]);
        if (!s.ok) return "fail " + s.error;
        return "ok " + std::to_string(s.total_ns) + " " + std::to_string(s.clone_ns);
    }
    if (w[0] == "peer") {
        constexpr std::int64_t most = std::numeric_limits<pid_t>::max();
        std::int64_t pid = 0, tid = 0;
        if (w.size() != 3 || !parse_count(w[1], most, pid) || !parse_count(w[2], most, tid) || pid == 0 || tid == 0)
            return "err usage: peer PID TID";
        peer_pid = static_cast<pid_t>(pid);
        peer_tid = static_cast<pid_t>(tid);
        return "ok";
    }
    if (w[0] == "loop") {
        // Bounds: a loop starts within a minute and lasts at most an hour and a bit (drover
        // bench's --duration is at most 3600 s), so a bad request cannot park the helper.
        constexpr std::int64_t minute = 60'000'000'000, longest = 3700'000'000'000;
        std::int64_t id = 0, start = 0, end = 0;
        if (w.size() != 4 || !parse_count(w[1], 1'000'000, id) ||
            !parse_count(w[2], std::numeric_limits<std::int64_t>::max(), start) ||
            !parse_count(w[3], std::numeric_limits<std::int64_t>::max(), end))
            return "err usage: loop ID START_NS END_NS";
        if (static_cast<std::size_t>(id) >= plans.size()) return "err no such plan: " + std::string(w[1]);
        const std::int64_t now = drover::bench::floor_now_ns();
        if (start > now + minute || end < start || end - start > longest)
            return "err loop times out of range: start within 60 s, end after start, at most 3700 s";
        auto r = drover::bench::floor_loop(plans[static_cast<std::size_t>(id)], start, end);
        if (!r.ok) return "err " + r.error;
        std::string a = "ok " + std::to_string(r.spawns) + " " + std::to_string(r.failures) + " " +
                        std::to_string(r.finish_ns);
        if (r.failures) a += " " + r.error;
        return a;
    }
    return "err unknown request";
}

int serve() {
    std::vector<floor_plan> plans;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, stdin)) {
        std::string_view line(buf);
        if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
        else if (line.size() == sizeof buf - 1) {
            std::printf("err request longer than %zu bytes\n", sizeof buf - 2);
            std::fflush(stdout);
            return 2;
        }
        std::string a = answer(line, plans);
        std::printf("%s\n", a.c_str());
        std::fflush(stdout);
    }
    return 0;
}

int usage() {
    std::fprintf(stderr,
                 "usage: drover_floor [--method vfork|fork] [--bare] NAMESPACES COUNT [PROGRAM]\n"
                 "       drover_floor --serve\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    if (args.size() == 1 && args[0] == "--serve") return serve();
    floor_method method = floor_method::vfork;
    bool setup = true;
    while (!args.empty() && args[0].starts_with("--")) {
        if (args[0] == "--bare") {
            setup = false;
            args.erase(args.begin());
        } else if (args[0] == "--method" && args.size() > 1 && parse_method(args[1], method)) {
            args.erase(args.begin(), args.begin() + 2);
        } else {
            return usage();
        }
    }
    std::uint64_t flags = 0;
    int count = 0;
    if (args.size() < 2 || args.size() > 3 || !drover::bench::parse_floor_namespaces(args[0], flags))
        return usage();
    auto [end, ec] = std::from_chars(args[1].data(), args[1].data() + args[1].size(), count);
    if (ec != std::errc{} || end != args[1].data() + args[1].size() || count <= 0 || count > 10'000'000)
        return usage();
    std::vector<std::string> prog;
    if (args.size() == 3) prog.emplace_back(args[2]);
    auto plan = floor_plan::make(flags, method, setup, !prog.empty(), prog);
    std::vector<std::int64_t> samples;
    for (int i = 0; i < count; ++i) {
        auto s = drover::bench::floor_spawn(plan);
        if (!s.ok) {
            std::fprintf(stderr, "drover_floor: %s\n", s.error.c_str());
            return 1;
        }
        samples.push_back(s.total_ns);
    }
    std::sort(samples.begin(), samples.end());
    std::printf("%.*s %s%s n=%d p50=%.1fus p90=%.1fus max=%.1fus\n", static_cast<int>(args[0].size()),
                args[0].data(), std::string(drover::bench::floor_method_name(plan.method)).c_str(),
                setup ? "" : " bare", count, static_cast<double>(samples[samples.size() / 2]) / 1e3,
                static_cast<double>(samples[samples.size() * 9 / 10]) / 1e3,
                static_cast<double>(samples.back()) / 1e3);
    return 0;
}
