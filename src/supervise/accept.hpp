// accept: the accept loop that the control socket and the metrics endpoint share.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>

#include "drover/process/asio.hpp"

namespace drover::supervise::detail {

/// What one listening socket's loop works with; all of it belongs to `owner`, which the loop
/// and every connection keep alive.
struct accept_state {
    std::size_t connections = 0;
    std::size_t max_connections = 32;
    bool closed = false;
};

/// Accepts on `acceptor` until it is closed, serving each connection with `serve(socket)` on
/// `ex`, at most `state.max_connections` at once (the rest wait in the kernel's queue; `room`
/// wakes the loop when one ends). When accept fails for want of descriptors or memory it
/// waits 100 ms instead of trying again at once, which would spin.
template <class Acceptor, class Serve>
asio::awaitable<void> accept_bounded(std::shared_ptr<void> owner, asio::any_io_executor ex, Acceptor& acceptor,
                                     asio::steady_timer& room, accept_state& state, Serve serve) {
    while (!state.closed) {
        if (state.connections >= state.max_connections) {
            room.expires_at(asio::steady_timer::time_point::max());
            (void)co_await room.async_wait(use_tuple);
            continue;
        }
        auto [ec, sock] = co_await acceptor.async_accept(use_tuple);
        if (ec) {
            if (ec == asio::error::operation_aborted || state.closed) co_return;
            room.expires_after(std::chrono::milliseconds(100));
            (void)co_await room.async_wait(use_tuple);
            continue;
        }
        ++state.connections;
        asio::co_spawn(ex, serve(std::move(sock)), [owner, &state, &room](std::exception_ptr) {
            --state.connections;
            room.cancel();
        });
    }
}

}  // namespace drover::supervise::detail
