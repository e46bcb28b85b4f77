// Sustained throughput of a sandboxed job (make_sandboxed) cold and from a warm pool of each
// kind (holders, pre-started jobs): C coroutines on one loop spawning a static program back to
// back for D seconds, the three paths rotating within each round so that all meet the same
// machine. The pool's refill thread makes sets while the jobs run; its CPU is part of the warm
// paths' cost.
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "drover/process/process.hpp"
#include "drover/spawn/warm.hpp"
#include "drover/sys/syscalls.hpp"

namespace {

using namespace drover;

struct options {
    double seconds = 2;
    std::vector<int> concurrency = {1, 8, 64};
    int rounds = 3;
    unsigned pool = 0;  // 0: max(2, concurrency)
    std::string program = DROVER_SANDBOX_TRUE;
};

struct point {
    double per_second = 0;
    std::uint64_t hits = 0, misses = 0;
    std::size_t failures = 0;
};

// One timed run: `conc` spawners until the deadline; counts the children that exited 0.
point run(const prepared_spawn& spec, int conc, double seconds, warm_pool* pool) {
    point p;
    std::size_t done = 0;
    asio::io_context io(1);
    const std::int64_t begin = sys::monotonic_ns();
    const std::int64_t deadline = begin + static_cast<std::int64_t>(seconds * 1e9);
    launch_extras extras;
    extras.warm = pool;
    for (int k = 0; k < conc; ++k)
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            while (sys::monotonic_ns() < deadline) {
                try {
                    process child = co_await spawn(ex, spec, extras);
                    if ((co_await child.wait()).success()) ++done;
                    else ++p.failures;
                } catch (const std::exception&) {
                    if (++p.failures > 1000) co_return;  // a refusal repeats: do not spin
                }
            }
        }, asio::detached);
    io.run();
    p.per_second = static_cast<double>(done) / (static_cast<double>(sys::monotonic_ns() - begin) / 1e9);
    return p;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

bool parse_number(std::string_view s, double& out, double lo, double hi) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && out >= lo && out <= hi;
}

bool parse(int argc, char** argv, options& o) {
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        const bool has_value = i + 1 < argc;
        double v = 0;
        if (a == "--seconds" && has_value && parse_number(argv[++i], v, 0.1, 600)) {
            o.seconds = v;
        } else if (a == "--rounds" && has_value && parse_number(argv[++i], v, 1, 100) && v == static_cast<int>(v)) {
            o.rounds = static_cast<int>(v);
        } else if (a == "--pool" && has_value && parse_number(argv[++i], v, 1, 1024) && v == static_cast<int>(v)) {
            o.pool = static_cast<unsigned>(v);
        } else if (a == "--program" && has_value) {
            o.program = argv[++i];
        } else if (a == "--concurrency" && has_value) {
            o.concurrency.clear();
            std::string_view list = argv[++i];
            while (!list.empty()) {
                auto comma = list.find(',');
                std::string_view one = list.substr(0, comma);
                if (!parse_number(one, v, 1, 1024) || v != static_cast<int>(v)) return false;
                o.concurrency.push_back(static_cast<int>(v));
                list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
            }
            if (o.concurrency.empty()) return false;
        } else {
            return false;
        }
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    if (!parse(argc, argv, o)) {
        std::fprintf(stderr,
                     "usage: %s [--seconds D (0.1..600)] [--concurrency 1,8,64] [--rounds R (1..100)] "
                     "[--pool S (1..1024)] [--program PATH]\n",
                     argv[0]);
        return 2;
    }
    spawn_spec s;
    s.argv = {o.program};
    make_sandboxed(s);
    prepared_spawn spec(s);
    if (std::string why = warm_unsupported(spec); !why.empty()) {
        std::fprintf(stderr, "the sandboxed spec cannot be warm here: %s\n", why.c_str());
        return 1;
    }
    std::printf("sustained spawns/s of a make_sandboxed() static program, cold and from a warm pool of holders and "
                "of pre-started jobs, %.1f s per run, %d rounds (medians; the three rotate within a round)\n",
                o.seconds, o.rounds);
    std::printf("%6s %6s %10s %10s %10s %10s %10s %10s\n", "conc", "pool", "cold/s", "holders/s", "prestart/s",
                "hold/cold", "pre/cold", "warm hits");
    for (int conc : o.concurrency) {
        const unsigned size = o.pool ? o.pool : std::max(2u, static_cast<unsigned>(conc));
        std::vector<double> results[3];  // cold, holders, pre-started
        std::uint64_t hits = 0, misses = 0;
        std::size_t failures = 0;
        for (int r = 0; r < o.rounds; ++r) {
            for (int k = 0; k < 3; ++k) {
                const int mode = (k + r) % 3;
                if (mode == 0) {
                    point p = run(spec, conc, o.seconds, nullptr);
                    results[0].push_back(p.per_second);
                    failures += p.failures;
                    continue;
                }
                warm_options wo;
                wo.size = size;
                wo.prestart = mode == 2;
                warm_pool pool(spec, wo);
                pool.fill();  // start full, as a pool that was idle before the burst
                point p = run(spec, conc, o.seconds, &pool);
                warm_stats ws = pool.stats();
                results[mode].push_back(p.per_second);
                hits += ws.hits;
                misses += ws.misses;
                failures += p.failures;
            }
        }
        const double c = median(results[0]), h = median(results[1]), w = median(results[2]);
        std::printf("%6d %6u %10.0f %10.0f %10.0f %10.2f %10.2f %9.0f%%\n", conc, size, c, h, w, c > 0 ? h / c : 0,
                    c > 0 ? w / c : 0,
                    hits + misses ? 100.0 * static_cast<double>(hits) / static_cast<double>(hits + misses) : 0);
        if (failures) std::printf("       (%zu spawns failed)\n", failures);
    }
    return 0;
}
