// control: `drover ctl`'s unix socket — one request line in, one JSON line out; only the
// supervisor's own uid or root may connect (SO_PEERCRED).
#pragma once

#include <asio/any_io_executor.hpp>
#include <memory>
#include <string>

#include "drover/supervise/supervisor.hpp"

namespace drover::supervise {

/// $XDG_RUNTIME_DIR/drover/supervise.sock, or /run/drover/supervise.sock for root.
std::string default_control_socket();

/// Listens on `path` for requests "status", "start NAME", "stop NAME", "restart NAME" and answers
/// {"ok": true, "status": {...}} or {"ok": false, "error": "..."}. The socket file is made
/// connectable by anyone (0666) so that the credential check, not the file mode, is what
/// refuses other users, with an answer that says so. Removes the socket when destroyed.
/// Use on the supervisor's executor; `sup` must outlive it.
class control_server {
public:
    /// Binds (replacing a stale socket nobody answers on); throws std::system_error naming
    /// the path, or if another supervisor answers there.
    control_server(asio::any_io_executor ex, supervisor& sup, std::string path);
    control_server(const control_server&) = delete;
    control_server& operator=(const control_server&) = delete;
    ~control_server();
    [[nodiscard]] const std::string& path() const noexcept;

    struct impl;

private:
    std::shared_ptr<impl> p_;
};

/// Client side, blocking: sends `request`, returns the answer line. Throws std::system_error
/// naming the socket if it cannot connect.
std::string control_request(const std::string& path, const std::string& request);

}  // namespace drover::supervise
