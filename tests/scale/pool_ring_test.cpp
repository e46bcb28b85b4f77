// job_pool with output read ends in the io_uring: the same bytes and backpressure as from the
// descriptor table, and more piped jobs alive under the same RLIMIT_NOFILE.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "../../src/process/ring_pipe.hpp"
#include "drover/process/limits.hpp"
#include "drover/sys/syscalls.hpp"
#include "pool_support.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;

class pool_ring : public ::testing::Test {
protected:
    void SetUp() override {
        if (!detail::ring_pipes_supported())
            GTEST_SKIP() << "io_uring registered buffer rings are not available (Linux >= 5.19, io_uring enabled)";
    }
};

TEST_F(pool_ring, every_byte_of_every_job_arrives_through_the_ring) {
    std::vector<prepared_spawn> jobs;
    for (int i = 0; i < 16; ++i) jobs.push_back(helper_job("flood", std::to_string(7000 * (i + 1))));
    pool_stats st;
    auto results = run_pool(jobs, {.concurrency = 16, .output_fds = output_fd_policy::ring}, &st);
    EXPECT_EQ(st.ring_output_jobs, 16u);
    for (std::size_t i = 0; i < results.size(); ++i) {
        ASSERT_TRUE(results[i].ok()) << i;
        ASSERT_EQ(results[i].out.size(), 7000 * (i + 1)) << i;
        ASSERT_EQ(results[i].err.size(), 7000 * (i + 1)) << i;
        for (std::size_t p = 0; p < results[i].out.size(); ++p) {
            ASSERT_EQ(static_cast<unsigned char>(results[i].out[p]), (p * 31 + 7) & 0xff) << i << " at " << p;
            ASSERT_EQ(static_cast<unsigned char>(results[i].err[p]), (p * 17 + 3) & 0xff) << i << " at " << p;
        }
    }
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST_F(pool_ring, truncation_through_the_ring_keeps_the_prefix_and_counts_the_rest) {
    constexpr std::size_t flood = 300 * 1000, cap = 10 * 1000;
    pool_stats st;
    auto results = run_pool({helper_job("flood", std::to_string(flood))},
                            {.concurrency = 1, .output = {cap, overflow_policy::truncate},
                             .output_fds = output_fd_policy::ring}, &st);
    ASSERT_EQ(st.ring_output_jobs, 1u);
    const job_result& r = results[0];
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.out_dropped, flood - cap);
    EXPECT_EQ(r.out, std::string(r.out.substr(0, cap)) + truncation_marker(flood - cap, 1));
}

TEST_F(pool_ring, backpressure_through_the_ring_gives_the_sink_every_byte_in_chunks_of_its_size) {
    // A chunk size below the ring's 16 KiB buffers: one read is handed over in pieces.
    constexpr std::size_t flood = 256 * 1024, cap = 3000;
    std::size_t pos[2] = {}, biggest = 0, mismatches = 0, calls = 0;
    pool_options o{.concurrency = 1, .output = {cap, overflow_policy::backpressure},
                   .output_fds = output_fd_policy::ring};
    o.sink = [&](const output_chunk& c) -> asio::awaitable<void> {
        for (char ch : c.data) {
            auto p = static_cast<long long>(pos[c.stream - 1]++);
            auto want = static_cast<char>(c.stream == 1 ? (p * 31 + 7) & 0xff : (p * 17 + 3) & 0xff);
            if (ch != want) ++mismatches;
        }
        biggest = std::max(biggest, c.data.size());
        if (++calls % 8 == 0) {  // a slow consumer now and then: the child waits for it
            asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
            co_await t.async_wait(asio::use_awaitable);
        }
    };
    pool_stats st;
    auto results = run_pool({helper_job("flood", std::to_string(flood))}, o, &st);
    ASSERT_EQ(st.ring_output_jobs, 1u);
    ASSERT_TRUE(results[0].ok());
    EXPECT_FALSE(results[0].failure);
    EXPECT_EQ(pos[0], flood);
    EXPECT_EQ(pos[1], flood);
    EXPECT_EQ(mismatches, 0u);
    EXPECT_LE(biggest, cap);
    EXPECT_EQ(results[0].out_dropped, 0u);
}

// Piped blockers started until the pool holds back; returns the most alive at once.
struct held_run {
    std::size_t peak = 0;
    std::size_t ring_jobs = 0;
    std::vector<job_result> results;
};

held_run run_until_held(std::size_t n, output_fd_policy where) {
    auto in = sys::pipe();
    if (!in) throw std::system_error(in.error(), "pipe");
    sys::unique_fd read_end = std::move(in->read), write_end = std::move(in->write);
    held_run h;
    h.results.resize(n);
    test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<void> {
        pool_options o{.concurrency = n, .output = {4096, overflow_policy::truncate}};
        o.output_fds = where;
        job_pool pool(ex, o);
        for (std::size_t i = 0; i < n; ++i) {
            spawn_spec s;
            s.argv = {test::blocker, std::to_string(i % 256), std::to_string(i)};
            s.in = stdio::from_fd(read_end.get());
            s.out = stdio::pipe();
            s.err = stdio::pipe();
            pool.submit(prepared_spawn(std::move(s)));
        }
        pool.close();
        asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
            // Until everything runs or the pool holds back for descriptors (bounded: 30 s).
            asio::steady_timer t(ex);
            for (int i = 0; i < 3000; ++i) {
                if (pool.stats().started == n) break;
                if (pool.throttle().why == throttle_state::kind::fd_budget && pool.stats().live == pool.stats().started)
                    break;
                t.expires_after(10ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            h.peak = pool.stats().peak_live;
            write_end.reset();  // every blocker's stdin at EOF: they all exit
        }, asio::detached);
        co_await pool.run([&](job_result r) { h.results[r.index] = std::move(r); });
        h.ring_jobs = pool.stats().ring_output_jobs;
    });
    return h;
}

TEST_F(pool_ring, under_a_low_fd_limit_the_ring_keeps_more_piped_jobs_alive) {
    nofile_guard guard;
    // Room for ~20 jobs with three descriptors each beyond what the pool keeps in reserve.
    rlimit low{static_cast<rlim_t>(count_open_fds() + 16 + fds_per_child(3, true) * 16 + 60), guard.saved.rlim_max};
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    constexpr std::size_t n = 80;
    held_run table = run_until_held(n, output_fd_policy::table);
    held_run automatic = run_until_held(n, output_fd_policy::automatic);
    for (const held_run* h : {&table, &automatic})
        for (std::size_t i = 0; i < n; ++i) {
            const job_result& r = h->results[i];
            ASSERT_TRUE(r.status) << i << ": " << (r.failure ? r.failure->message() : "no status");
            ASSERT_EQ(*r.status, exit_status::exited_with(static_cast<int>(i % 256))) << i;
            ASSERT_EQ(r.out, std::to_string(i) + "\n") << i;
            ASSERT_EQ(r.err, "e" + std::to_string(i) + "\n") << i;
        }
    EXPECT_EQ(table.ring_jobs, 0u);
    EXPECT_GT(automatic.ring_jobs, 0u);
    EXPECT_GE(automatic.peak, 2 * table.peak) << "table " << table.peak << ", automatic " << automatic.peak;
    std::printf("alive at once under RLIMIT_NOFILE %llu: %zu with the table only, %zu with the ring (%zu jobs through it)\n",
                static_cast<unsigned long long>(low.rlim_cur), table.peak, automatic.peak, automatic.ring_jobs);
    EXPECT_EQ(test::zombie_children(), 0);
}

}  // namespace
}  // namespace drover
