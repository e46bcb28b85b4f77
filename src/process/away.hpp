// away: a spawn handed to a spawner thread and its way back to the caller's executor.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "drover/process/asio.hpp"
#include <asio/post.hpp>

#include "drover/spawn/launch.hpp"

namespace drover::detail {

// The caller's completion, type-erased: posted to the caller's executor when the launch is
// done, or destroyed unrun if that executor's context is being destroyed.
struct away_resume {
    virtual ~away_resume() = default;
    virtual void post() = 0;
};

template <typename Handler>
struct away_resume_for final : away_resume {
    // Tracked: the caller's io_context::run() does not return while a launch is away.
    decltype(asio::prefer(std::declval<asio::any_io_executor>(), asio::execution::outstanding_work.tracked)) ex;
    Handler handler;
    away_resume_for(const asio::any_io_executor& e, Handler h)
        : ex(asio::prefer(e, asio::execution::outstanding_work.tracked)), handler(std::move(h)) {}
    void post() override { asio::post(ex, std::move(handler)); }
};

class away_service;

// One spawn away on a spawner thread. The spec and extras are borrowed from the spawning
// coroutine's frame, which cannot be destroyed while the launch is away (away_service).
struct away_launch {
    const prepared_spawn* spec = nullptr;
    launch_extras extras;
    launched_child child;
    spawn_failure failure;
    bool ok = false;
    bool concluded = false;  // the report was read and judged on the spawner thread
    std::unique_ptr<away_resume> resume;
    away_service* service = nullptr;

    // On a spawner with a descriptor table of its own (own_table.cpp): the caller's
    // descriptors the spawn uses, and how the child's come back to the caller's table.
    std::vector<int> imports;
    struct own_channel* channel = nullptr;
    std::uint64_t ship_id = 0;
    unsigned shipped = 0;  // which of the child's descriptors are on their way (ship_bit)

    away_launch() = default;
    away_launch(const away_launch&) = delete;
    away_launch& operator=(const away_launch&) = delete;
    // A child nobody took (its caller was cancelled or its loop destroyed) is killed and reaped.
    ~away_launch();
};

// Whether this spawn goes to a spawner thread: threads are on, other children of this process
// are alive or being spawned (called before this spawn's own spawn_under_way) in at least the
// thread count, and a spawner thread exists or can be made. true reserves a spawner for
// hand_off(): an idle one, a new one, or a place in the queue of the busy ones.
// `threads`: the spawn's own setting (launch_extras::spawn_threads), 0 for the process's.
bool should_hand_off(unsigned threads) noexcept;

// Queues `job` (its resume set) for the reserved spawner; `ex` names the caller's context.
void hand_off(const asio::any_io_executor& ex, std::shared_ptr<away_launch> job);

// The caller's context counts `job` as away (its completion is dropped if the context goes).
void start_away(const asio::any_io_executor& ex, away_launch& job);
// The launch is done: its completion goes to the caller's executor, or is dropped.
void finish_away(away_service* s, std::shared_ptr<away_launch> job);

// Spawns run from a spawner's own table since the process started.
std::size_t own_table_spawns() noexcept;

// Whether this spawn goes to a spawner with a table of its own (spawn_table); if so,
// `imports` gets the caller's descriptors it uses, and a lease of host ids is taken here
// (in the caller's table) into `extras`.
bool should_use_own_table(const prepared_spawn& p, launch_extras& extras, std::vector<int>& imports);

// Queues `job` (imports set) for a spawner with a table of its own.
void hand_off_own(const asio::any_io_executor& ex, std::shared_ptr<away_launch> job);

// On the caller's thread, once the launch is back: takes the child's descriptors from the
// spawner's socket into the caller's table. false (child killed and reaped, `failure` set) if
// they could not be taken.
bool collect_shipped(away_launch& job) noexcept;

// A descriptor of the caller's table just made (a pidfd): how many the table holds, at least.
void note_table_extent(int fd) noexcept;

// Runs the launch and, if the child exec'd on the posix_spawn path, judges its report.
void run_launch(away_launch& j) noexcept;

// The count of process objects alive and of spawns under way, which tells a burst from a
// lone spawn. (A spawn on the fork-style path has no process object until its report is
// read, so both are needed.)
void note_process_born() noexcept;
void note_process_gone() noexcept;
struct spawn_under_way {
    spawn_under_way() noexcept;
    ~spawn_under_way();
    spawn_under_way(const spawn_under_way&) = delete;
    spawn_under_way& operator=(const spawn_under_way&) = delete;
};

}  // namespace drover::detail
