// async: how drover's asynchronous operations take any Asio completion token — the coroutine
// itself for use_awaitable, the coroutine co_spawned with an error_code-first signature else.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>
#include <system_error>
#include <type_traits>
#include <utility>

namespace drover {

/// The completion token of drover's operations when none is given: `co_await op(...)`.
using default_token = asio::use_awaitable_t<asio::any_io_executor>;

namespace detail {

/// The error_code a handler gets for an exception from one of drover's coroutines: a
/// spawn_error's stage and errno (spawn_failure::as_error_code()), a system_error's code,
/// errc::invalid_spec for a spec_error, ENOMEM for bad_alloc, errc::unexpected_exception
/// for anything else. No error for a null pointer.
std::error_code error_code_of(std::exception_ptr e) noexcept;

/// The completion signature of an operation whose coroutine gives a T.
template <class T>
struct code_first {
    using type = void(std::error_code, T);
};
template <>
struct code_first<void> {
    using type = void(std::error_code);
};

/// Turns co_spawn's completion (exception_ptr, value...) into Asio's usual (error_code,
/// value...), and passes the caller's executor, allocator and cancellation slot through to
/// co_spawn (so a slot bound to the handler cancels the coroutine).
template <class Handler>
class code_first_handler {
public:
    code_first_handler(Handler h, asio::any_io_executor ex) : handler_(std::move(h)), ex_(std::move(ex)) {}

    using executor_type = asio::associated_executor_t<Handler, asio::any_io_executor>;
    executor_type get_executor() const noexcept { return asio::get_associated_executor(handler_, ex_); }
    using cancellation_slot_type = asio::associated_cancellation_slot_t<Handler>;
    cancellation_slot_type get_cancellation_slot() const noexcept {
        return asio::get_associated_cancellation_slot(handler_);
    }
    using allocator_type = asio::associated_allocator_t<Handler>;
    allocator_type get_allocator() const noexcept { return asio::get_associated_allocator(handler_); }

    template <class... Values>
    void operator()(std::exception_ptr e, Values&&... values) {
        std::move(handler_)(error_code_of(e), std::forward<Values>(values)...);
    }

private:
    Handler handler_;
    asio::any_io_executor ex_;
};

struct initiate_coroutine {
    template <class Handler, class Make>
    void operator()(Handler&& handler, asio::any_io_executor ex, Make make) const {
        using handler_t = code_first_handler<std::decay_t<Handler>>;
        asio::co_spawn(ex, std::move(make)(), handler_t(std::forward<Handler>(handler), ex));
    }
};

template <class Token>
inline constexpr bool is_default_token = std::is_same_v<std::decay_t<Token>, default_token>;

/// Runs the coroutine `make()` gives as an operation with completion `token`. With the
/// default token that is the coroutine itself, called now (no co_spawn, so `co_await op()`
/// behaves exactly as the coroutine: same exceptions, same cancellation, no extra hop). Any
/// other token gets void(error_code, T): `make` is called when the operation is initiated
/// (with asio::experimental::deferred, when the deferred operation is), on `ex`.
template <class Token, class Make>
auto async_coroutine(asio::any_io_executor ex, Token&& token, Make make) {
    using value_type = typename std::invoke_result_t<Make&>::value_type;
    if constexpr (is_default_token<Token>) {
        return make();
    } else {
        return asio::async_initiate<Token, typename code_first<value_type>::type>(
            initiate_coroutine{}, token, std::move(ex), std::move(make));
    }
}

}  // namespace detail

/// A completion token for a drover operation: use_awaitable (the default), a callback, use_future,
/// asio::experimental::deferred, as_tuple(...), or any other token for void(error_code, T).
template <class Token, class T>
concept completion_token_for = asio::completion_token_for<Token, typename detail::code_first<T>::type>;

}  // namespace drover
