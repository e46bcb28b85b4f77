// control: `drover ctl`'s unix socket — one request line in, one JSON line out; only the
// supervisor's own uid or root may connect (SO_PEERCRED).
#pragma once

#include <asio/any_io_executor.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "drover/supervise/supervisor.hpp"

namespace drover::supervise {

/// $XDG_RUNTIME_DIR/drover/supervise.sock, or /run/drover/supervise.sock for root.
std::string default_control_socket();

/// One request of the control protocol: "status", "metrics", or a verb and a service name.
struct control_command {
    enum class verb { status, start, stop, restart, metrics };
    verb what = verb::status;
    std::string service;  ///< empty with status and metrics
};

/// Reads one request line (without its newline). Throws std::invalid_argument with the text
/// the client is sent ("unknown request ...") if it is none of the five requests.
control_command parse_control_request(std::string_view line);

/// The line sent for `answer`: compact JSON, bytes that are not UTF-8 replaced (names and
/// errors may echo a request), a newline at the end.
std::string control_answer_line(const nlohmann::json& answer);

/// Listens on `path` for requests "status", "start NAME", "stop NAME", "restart NAME" and answers
/// {"ok": true, "status": {...}} or {"ok": false, "error": "..."}; "metrics" is answered
/// {"ok": true, "metrics": "<Prometheus text>"}. The socket file is made
/// connectable by anyone (0666) so that the credential check, not the file mode, is what
/// refuses other users, with an answer that says so. Removes the socket when destroyed.
/// Use on the supervisor's executor; `sup` must outlive it.
class control_server {
public:
    /// Why the server stopped accepting for good (out of memory, say): one line naming the
    /// socket, "control socket PATH: no longer accepting: WHY". Runs on the executor.
    using failure_callback = std::function<void(const std::string& what)>;

    /// Binds (replacing a stale socket nobody answers on); throws std::system_error naming
    /// the path, or if another supervisor answers there. Should accepting fail later,
    /// `on_failure` is told (the library does not print it; without a callback it is lost).
    control_server(asio::any_io_executor ex, supervisor& sup, std::string path, failure_callback on_failure = {});
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
