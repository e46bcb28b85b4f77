// Asio 1.22 spellings drover uses: completion tokens for coroutines that want error codes.
#pragma once

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

namespace drover {

/// co_await op(..., use_tuple) gives std::tuple<error_code, ...> instead of throwing.
inline constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

}  // namespace drover
