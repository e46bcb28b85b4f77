// away: a spawn handed to a spawner thread and its way back to the caller's executor.
#pragma once

#include <memory>

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

    away_launch() = default;
    away_launch(const away_launch&) = delete;
    away_launch& operator=(const away_launch&) = delete;
    // A child nobody took (its caller was cancelled or its loop destroyed) is killed and reaped.
    ~away_launch();
};

// Whether this spawn goes to a spawner thread: threads are on, other children of this process
// are alive or being spawned (called before this spawn's own spawn_under_way), and a spawner
// is free. true reserves that spawner for hand_off().
// `threads`: the spawn's own setting (launch_extras::spawn_threads), 0 for the process's.
bool should_hand_off(unsigned threads) noexcept;

// Queues `job` (its resume set) for the reserved spawner; `ex` names the caller's context.
void hand_off(const asio::any_io_executor& ex, std::shared_ptr<away_launch> job);

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
