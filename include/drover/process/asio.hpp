// Asio 1.22 spellings drover uses: completion tokens for coroutines that want error codes.
#pragma once

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>
#include <string>
#include <utility>

namespace drover {

/// co_await op(..., use_tuple) gives std::tuple<error_code, ...> instead of throwing.
inline constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

/// A co_spawn completion handler for a coroutine nothing awaits. Unlike asio::detached, an
/// exception that escapes it is not dropped: `report` gets its what() text (and is not called
/// when the coroutine ends normally).
template <class Report>
auto on_escape(Report report) {
    return [report = std::move(report)](std::exception_ptr e) mutable {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            report(std::string(x.what()));
        } catch (...) {
            report(std::string("an exception that is not a std::exception"));
        }
    };
}

}  // namespace drover
