// metrics_http: `drover supervise --metrics-listen`: GET /metrics over loopback TCP or a unix
// socket, a deliberately small HTTP/1.x responder on the supervisor's executor.
#pragma once

#include <asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "drover/supervise/supervisor.hpp"

namespace drover::supervise {

/// Where metrics are served: a loopback TCP address or a unix socket path. A value.
struct metrics_address {
    enum class kind : std::uint8_t { tcp, unix_socket };
    kind type = kind::tcp;
    std::string host;        ///< tcp: a loopback address in canonical form (localhost: 127.0.0.1)
    std::uint16_t port = 0;  ///< tcp: 0 asks for any free port
    std::string path;        ///< unix_socket: the socket file
};

/// Parses "127.0.0.1:PORT", "[::1]:PORT", "localhost:PORT" or "unix:/path". PORT is 0..65535
/// (0: any free port). Other addresses are refused: metrics tell much about what runs, and
/// the server has no authentication. Throws std::invalid_argument with one line naming the
/// problem (without the option's name, which the caller adds).
metrics_address parse_metrics_address(std::string_view text);

/// Where the end of a request head is: the offset just past its blank line ("\r\n\r\n", or
/// "\n\n" from lenient clients), or npos if `bytes` holds no complete head yet.
std::size_t http_head_end(std::string_view bytes) noexcept;

/// The status answered to a complete request head: 200 for GET /metrics (a query string is
/// ignored), 404 for another path, 405 for another method, 505 for a version other than
/// HTTP/1.0 and HTTP/1.1, 400 for a request line that is not three parts.
int judge_http_request(std::string_view head) noexcept;

/// Limits of the server (tests shorten the timeout).
struct metrics_server_options {
    std::size_t max_head = 8192;  ///< a longer request head is answered 431
    /// A client has this long to send its request head (and, after a 431, to stop sending).
    std::chrono::nanoseconds read_timeout = std::chrono::seconds(5);
    std::size_t max_connections = 32;  ///< more wait in the listen queue
    /// Told, on the executor, if the server stops accepting for good (out of memory, say):
    /// "metrics ADDRESS: no longer accepting: WHY". The library does not print it; unset, it
    /// is lost.
    std::function<void(const std::string& what)> on_failure;
};

/// Serves render_prometheus(sup.metrics()) at GET /metrics, one request per connection
/// (Connection: close). A unix socket is made 0600 before it listens, replaces a stale socket
/// nobody answers on, and is removed when the server is destroyed. Use on the supervisor's
/// executor (a single thread); `sup` must outlive the server. Destroying it closes the
/// listener and every open connection.
class metrics_server {
public:
    /// Binds and listens; throws std::system_error naming the address (in use, not ours, ...).
    metrics_server(asio::any_io_executor ex, supervisor& sup, metrics_address where,
                   metrics_server_options options = {});
    metrics_server(const metrics_server&) = delete;
    metrics_server& operator=(const metrics_server&) = delete;
    ~metrics_server();

    /// "127.0.0.1:43210", "[::1]:43210" or "unix:/path", with the port actually bound.
    [[nodiscard]] std::string local_address() const;
    /// The TCP port bound (0 for a unix socket).
    [[nodiscard]] std::uint16_t port() const;

    struct impl;

private:
    std::shared_ptr<impl> p_;
};

}  // namespace drover::supervise
