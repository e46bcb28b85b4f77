// control: the supervisor's unix socket server and the blocking client of `drover ctl`.
#include "drover/supervise/control.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/detached.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "drover/process/asio.hpp"
#include "drover/supervise/json.hpp"
#include "drover/supervise/metrics.hpp"
#include "drover/sys/result.hpp"
#include "drover/sys/unique_fd.hpp"
#include "accept.hpp"

namespace drover::supervise {

using asio::local::stream_protocol;

namespace {

constexpr std::size_t max_request = 4096;
// A client has this long to send its request line; a slow or idle one is dropped.
constexpr auto request_timeout = std::chrono::seconds(2);
// Connections served at once; more wait in the listen queue.
constexpr std::size_t max_connections = 256;
// The client's limit on an answer (a status of thousands of services fits).
constexpr std::size_t max_answer = 16 << 20;

sockaddr_un socket_address(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path)
        throw std::system_error(sys::errno_code(ENAMETOOLONG), "control socket path " + path);
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

sys::unique_fd connect_to(const std::string& path, std::error_code& ec) {
    sockaddr_un a = socket_address(path);
    sys::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        ec = sys::last_error();
        return {};
    }
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ec = sys::last_error();
        return {};
    }
    ec.clear();
    return fd;
}

}  // namespace

std::string default_control_socket() {
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg && ::geteuid() != 0)
        return std::string(xdg) + "/drover/supervise.sock";
    return "/run/drover/supervise.sock";
}

control_command parse_control_request(std::string_view line) {
    auto sp = line.find(' ');
    std::string_view verb = line.substr(0, sp);
    std::string_view name = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    control_command c;
    c.service = std::string(name);
    if (verb == "status" && name.empty()) return c;
    if (verb == "metrics" && name.empty()) {
        c.what = control_command::verb::metrics;
        return c;
    }
    if (!name.empty()) {
        if (verb == "start") c.what = control_command::verb::start;
        else if (verb == "stop") c.what = control_command::verb::stop;
        else if (verb == "restart") c.what = control_command::verb::restart;
        if (c.what != control_command::verb::status) return c;
    }
    throw std::invalid_argument("unknown request '" + std::string(line) +
                                "' (status, metrics, start NAME, stop NAME, restart NAME)");
}

std::string control_answer_line(const nlohmann::json& answer) {
    // Names and errors may carry bytes that are not UTF-8 (a request echoed back): replaced.
    return answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

struct control_server::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor e, supervisor& s, std::string p) : ex(e), sup(s), path(std::move(p)), acceptor(e) {}

    asio::any_io_executor ex;
    supervisor& sup;
    std::string path;
    stream_protocol::acceptor acceptor;
    detail::accept_state accepting{.max_connections = max_connections};
    asio::steady_timer room{ex};  // wakes the accept loop when a connection ends
    dev_t socket_dev = 0;         // the socket file we made: removed only if it is still ours
    ino_t socket_ino = 0;

    asio::awaitable<nlohmann::json> handle(std::string line) {
        nlohmann::json out;
        try {
            control_command c = parse_control_request(line);
            const std::string& name = c.service;
            if (c.what == control_command::verb::metrics) {
                out["ok"] = true;
                out["metrics"] = render_prometheus(sup.metrics());
                co_return out;
            }
            if (c.what != control_command::verb::status) {
                if (!sup.has(name)) throw std::invalid_argument("no service named '" + name + "'");
                if (c.what == control_command::verb::start) co_await sup.start_service(name);
                else if (c.what == control_command::verb::stop) co_await sup.stop_service(name);
                else co_await sup.restart_service(name);
            }
            out["ok"] = true;
            out["status"] = to_json(sup.status());
        } catch (const std::exception& e) {
            out["ok"] = false;
            out["error"] = e.what();
        }
        co_return out;
    }

    // Reads one request line within request_timeout; nullopt if none came.
    asio::awaitable<std::optional<std::string>> read_request(stream_protocol::socket& sock) {
        asio::steady_timer deadline(ex, request_timeout);
        deadline.async_wait([&sock](std::error_code ec) {
            if (!ec) sock.cancel();  // the read below ends with operation_aborted
        });
        std::string buf;
        auto [ec, n] = co_await asio::async_read_until(sock, asio::dynamic_buffer(buf, max_request), '\n', use_tuple);
        deadline.cancel();
        if (ec) co_return std::nullopt;
        co_return buf.substr(0, n - 1);
    }

    asio::awaitable<void> serve(stream_protocol::socket sock) {
        auto self = shared_from_this();
        nlohmann::json answer;
        ucred cred{};
        socklen_t len = sizeof cred;
        // The request is read even when it will be refused, so that the client sees the answer
        // (closing on an unread request makes its write fail with EPIPE or its read with ECONNRESET).
        std::optional<std::string> line = co_await read_request(sock);
        if (!line) co_return;
        if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
            answer = {{"ok", false}, {"error", "cannot read the peer's credentials"}};
        } else if (cred.uid != 0 && cred.uid != ::geteuid()) {
            answer = {{"ok", false},
                      {"error", "permission denied: uid " + std::to_string(cred.uid) +
                                    " is neither root nor the supervisor's uid " + std::to_string(::geteuid())}};
        } else {
            answer = co_await handle(*line);
        }
        std::string text = control_answer_line(answer);
        (void)co_await asio::async_write(sock, asio::buffer(text), use_tuple);
    }

    asio::awaitable<void> accept_loop() {
        return detail::accept_bounded(shared_from_this(), ex, acceptor, room, accepting,
                                      [this](asio::local::stream_protocol::socket sock) { return serve(std::move(sock)); });
    }
};

control_server::control_server(asio::any_io_executor ex, supervisor& sup, std::string path,
                               failure_callback on_failure)
    : p_(std::make_shared<impl>(ex, sup, std::move(path))) {
    const std::string& p = p_->path;
    // Never removes what is not a socket: a path that names a file is a mistake, not a leftover.
    struct stat st{};
    if (::lstat(p.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
        throw std::system_error(sys::errno_code(EEXIST), "control socket " + p + ": exists and is not a socket");
    std::error_code ec;
    if (auto fd = connect_to(p, ec); fd)
        throw std::system_error(sys::errno_code(EADDRINUSE), "control socket " + p + ": another supervisor answers there");
    if (ec.value() == ECONNREFUSED) ::unlink(p.c_str());  // left by a supervisor that was killed
    std::filesystem::path dir = std::filesystem::path(p).parent_path();
    if (!dir.empty()) {
        std::error_code mk;
        std::filesystem::create_directories(dir, mk);
        if (mk) throw std::system_error(mk, "creating the directory of control socket " + p);
    }
    try {
        p_->acceptor.open();
        p_->acceptor.bind(stream_protocol::endpoint(p));
        p_->acceptor.listen();
    } catch (const std::system_error& e) {
        throw std::system_error(e.code(), "control socket " + p);
    }
    ::chmod(p.c_str(), 0666);
    if (::lstat(p.c_str(), &st) == 0) {
        p_->socket_dev = st.st_dev;
        p_->socket_ino = st.st_ino;
    }
    // Should accepting itself fail (out of memory), say so: drover ctl would meet silence.
    asio::co_spawn(ex, p_->accept_loop(),
                   on_escape([path = p, on_failure = std::move(on_failure)](const std::string& what) {
                       if (on_failure) on_failure("control socket " + path + ": no longer accepting: " + what);
                   }));
}

control_server::~control_server() {
    p_->accepting.closed = true;
    std::error_code ec;
    p_->acceptor.close(ec);
    p_->room.cancel();
    struct stat st{};
    if (::lstat(p_->path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == p_->socket_dev &&
        st.st_ino == p_->socket_ino)
        ::unlink(p_->path.c_str());
}

const std::string& control_server::path() const noexcept { return p_->path; }

std::string control_request(const std::string& path, const std::string& request) {
    std::error_code ec;
    sys::unique_fd fd = connect_to(path, ec);
    if (!fd) throw std::system_error(ec, "connecting to " + path + " (is `drover supervise` running?)");
    // A supervisor that hangs must not hang the client.
    timeval tv{30, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::string line = request + "\n";
    for (std::size_t off = 0; off < line.size();) {
        // MSG_NOSIGNAL: a server that went away is an error, not a SIGPIPE.
        ssize_t n = ::send(fd.get(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::system_error(sys::last_error(), "writing to " + path);
        off += static_cast<std::size_t>(n);
    }
    std::string answer;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::system_error(sys::last_error(), "reading from " + path);
        if (n == 0) break;
        answer.append(buf, static_cast<std::size_t>(n));
        if (answer.size() > max_answer) throw std::system_error(sys::errno_code(EMSGSIZE), "the answer from " + path);
    }
    if (!answer.empty() && answer.back() == '\n') answer.pop_back();
    return answer;
}

}  // namespace drover::supervise
