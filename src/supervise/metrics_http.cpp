// metrics_http: the --metrics-listen address parser, the request-head judge and the small
// HTTP server that answers GET /metrics on loopback TCP or a unix socket.
#include "drover/supervise/metrics_http.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>

#include "drover/process/asio.hpp"
#include "drover/supervise/metrics.hpp"
#include "drover/sys/result.hpp"
#include "drover/sys/unique_fd.hpp"
#include "accept.hpp"

namespace drover::supervise {

using asio::ip::tcp;
using asio::local::stream_protocol;

namespace {

// User text quoted in a one-line error: control bytes as \xNN, at most 64 bytes shown.
std::string quoted(std::string_view text) {
    std::string out = "'";
    for (char c : text.substr(0, 64)) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
        else out += c;
    }
    return out + (text.size() > 64 ? "...'" : "'");
}

std::uint16_t parse_port(std::string_view text) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value > 65535)
        throw std::invalid_argument("port " + quoted(text) + " is not a number from 0 to 65535");
    return static_cast<std::uint16_t>(value);
}

metrics_address parse_unix(std::string_view path) {
    if (path.empty()) throw std::invalid_argument("unix: needs a socket path (unix:/run/drover/metrics.sock)");
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        throw std::invalid_argument("unix socket path is longer than " +
                                    std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
    if (path.find('\0') != std::string_view::npos) throw std::invalid_argument("unix socket path holds a NUL byte");
    metrics_address a;
    a.type = metrics_address::kind::unix_socket;
    a.path = std::string(path);
    return a;
}

// The client-side bits of a unix socket path: connects to see whether someone answers there.
sockaddr_un unix_address(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);  // length checked by parse_unix
    return a;
}

// A socket file left by a killed supervisor is replaced; a live one or a file that is not a
// socket is an error (never remove what is not ours to remove).
void clear_stale_socket(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return;
    if (!S_ISSOCK(st.st_mode))
        throw std::system_error(sys::errno_code(EEXIST), "metrics socket " + path + ": exists and is not a socket");
    sys::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw std::system_error(sys::last_error(), "metrics socket " + path + ": creating a probe socket");
    sockaddr_un a = unix_address(path);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
        throw std::system_error(sys::errno_code(EADDRINUSE), "metrics socket " + path + ": another process answers there");
    if (errno == ECONNREFUSED && ::unlink(path.c_str()) != 0 && errno != ENOENT)
        throw std::system_error(sys::last_error(), "metrics socket " + path + ": removing the stale socket");
}

std::string_view reason_of(int status) noexcept {
    switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 431: return "Request Header Fields Too Large";
        case 505: return "HTTP Version Not Supported";
        default: return "Error";
    }
}

std::string response(int status, std::string_view body, std::string_view type) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_of(status)) + "\r\n";
    out += "Content-Type: " + std::string(type) + "\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (status == 405) out += "Allow: GET\r\n";
    out += "Connection: close\r\n\r\n";
    out += body;
    return out;
}

// A method is an HTTP token: letters, digits and a few marks, nothing else.
bool is_token(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr) || c == '\0')
            return false;
    return true;
}

}  // namespace

metrics_address parse_metrics_address(std::string_view text) {
    if (text.rfind("unix:", 0) == 0) return parse_unix(text.substr(5));
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find("]:");
        if (close == std::string_view::npos) throw std::invalid_argument("expected [IPV6]:PORT");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) throw std::invalid_argument("expected HOST:PORT or unix:PATH");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) throw std::invalid_argument("an IPv6 address goes in brackets: [::1]:PORT");
    }
    metrics_address a;
    a.port = parse_port(port);
    a.host = host == "localhost" ? "127.0.0.1" : std::string(host);
    // A zone index ("::1%lo") names an interface, which loopback does not need.
    if (host.find('%') != std::string_view::npos) throw std::invalid_argument(quoted(host) + " has a zone index: use [::1]");
    std::error_code ec;
    asio::ip::address ip = asio::ip::make_address(a.host, ec);
    if (ec) throw std::invalid_argument(quoted(host) + " is not an IP address or localhost");
    if (!ip.is_loopback())
        throw std::invalid_argument(quoted(host) +
                                    " is not a loopback address (metrics are served on 127.0.0.1, [::1], localhost or "
                                    "a unix socket only: they have no authentication)");
    a.host = ip.to_string();  // canonical ("::0:1" is "::1"), as logged and compared
    return a;
}

std::size_t http_head_end(std::string_view bytes) noexcept {
    for (std::size_t i = bytes.find('\n'); i != std::string_view::npos; i = bytes.find('\n', i + 1)) {
        if (i + 1 < bytes.size() && bytes[i + 1] == '\n') return i + 2;
        if (i + 2 < bytes.size() && bytes[i + 1] == '\r' && bytes[i + 2] == '\n') return i + 3;
    }
    return std::string_view::npos;
}

int judge_http_request(std::string_view head) noexcept {
    std::string_view line = head.substr(0, head.find('\n'));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) return 400;
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method) || target.empty()) return 400;
    if (version.rfind("HTTP/", 0) != 0) return 400;
    if (version != "HTTP/1.0" && version != "HTTP/1.1") return 505;
    if (method != "GET") return 405;
    return target.substr(0, target.find('?')) == "/metrics" ? 200 : 404;
}

struct metrics_server::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor e, supervisor& s, metrics_address a, metrics_server_options o)
        : ex(e), sup(s), where(std::move(a)), opt(o) {}

    asio::any_io_executor ex;
    supervisor& sup;
    metrics_address where;
    metrics_server_options opt;
    std::optional<tcp::acceptor> tcp_acceptor;
    std::optional<stream_protocol::acceptor> unix_acceptor;
    detail::accept_state accepting;
    asio::steady_timer room{ex};  // wakes the accept loop when a connection ends
    // Open connections, closed by the destructor (a client that idles must not hold the loop).
    std::map<unsigned, std::function<void()>> open;
    unsigned next_id = 0;
    dev_t socket_dev = 0;  // the socket file we made: removed only if it is still ours
    ino_t socket_ino = 0;

    struct head_read {
        std::string head;
        bool too_large = false;
    };

    // Reads a request head within the deadline's time, at most max_head bytes; nullopt if the
    // client closed, failed or was too slow.
    template <typename Socket>
    asio::awaitable<std::optional<head_read>> read_head(Socket& sock) {
        std::string buf;
        char chunk[1024];
        for (;;) {
            if (auto end = http_head_end(buf); end != std::string::npos) co_return head_read{buf.substr(0, end), false};
            if (buf.size() >= opt.max_head) co_return head_read{{}, true};
            auto [ec, n] = co_await sock.async_read_some(
                asio::buffer(chunk, std::min(sizeof chunk, opt.max_head - buf.size())), use_tuple);
            if (ec) co_return std::nullopt;
            buf.append(chunk, n);
        }
    }

    // After a 431 the client may still be sending: closing with unread bytes would make the
    // kernel send a reset, which can destroy the answer before the client reads it. So stop
    // sending, then read and drop what comes (bounded by the caller's deadline and 1 MiB).
    template <typename Socket>
    asio::awaitable<void> drain(Socket& sock) {
        std::error_code ignored;
        sock.shutdown(Socket::shutdown_send, ignored);
        char chunk[4096];
        for (std::size_t total = 0; total < (1U << 20);) {
            auto [ec, n] = co_await sock.async_read_some(asio::buffer(chunk), use_tuple);
            if (ec) co_return;
            total += n;
        }
    }

    std::string answer_for(const std::optional<head_read>& r) {
        if (r->too_large) return response(431, "request head too large\n", "text/plain; charset=utf-8");
        int status = judge_http_request(r->head);
        if (status == 200)
            return response(200, render_prometheus(sup.metrics()), "text/plain; version=0.0.4; charset=utf-8");
        return response(status, std::string(reason_of(status)) + "\n", "text/plain; charset=utf-8");
    }

    // The socket is shared so that the deadline's handler and the destructor's closer, which
    // may run after this coroutine ended, find it gone instead of dangling.
    template <typename Socket>
    asio::awaitable<void> serve(Socket accepted) {
        auto self = shared_from_this();
        auto shared = std::make_shared<Socket>(std::move(accepted));
        Socket& sock = *shared;
        std::weak_ptr<Socket> weak = shared;
        const unsigned id = next_id++;
        open[id] = [weak] {
            std::error_code ignored;
            if (auto s = weak.lock()) s->close(ignored);
        };
        struct forget {
            impl* p;
            unsigned id;
            ~forget() { p->open.erase(id); }
        } forget_on_exit{this, id};
        // One deadline for the whole exchange: the head, and the drain after a 431.
        asio::steady_timer deadline(ex, opt.read_timeout);
        deadline.async_wait([weak](std::error_code ec) {
            std::error_code ignored;
            if (auto s = weak.lock(); s && !ec) s->cancel(ignored);  // the pending read ends: operation_aborted
        });
        std::optional<head_read> r = co_await read_head(sock);
        if (!r) co_return;  // silence, a closed or failed client: dropped without an answer
        const std::string text = answer_for(r);
        (void)co_await asio::async_write(sock, asio::buffer(text), use_tuple);
        if (r->too_large) co_await drain(sock);
        deadline.cancel();
    }

    template <typename Acceptor>
    asio::awaitable<void> accept_loop(Acceptor& acceptor) {
        accepting.max_connections = opt.max_connections;
        return detail::accept_bounded(shared_from_this(), ex, acceptor, room, accepting,
                                      [this](typename Acceptor::protocol_type::socket sock) { return serve(std::move(sock)); });
    }

    void listen_tcp() {
        const std::string name = "metrics address " + describe(where.port);
        try {
            tcp::endpoint ep(asio::ip::make_address(where.host), where.port);
            tcp_acceptor.emplace(ex);
            tcp_acceptor->open(ep.protocol());  // Asio opens with SOCK_CLOEXEC
            tcp_acceptor->set_option(tcp::acceptor::reuse_address(true));
            tcp_acceptor->bind(ep);
            tcp_acceptor->listen();
        } catch (const std::system_error& e) {
            throw std::system_error(e.code(), name);
        }
    }

    void listen_unix() {
        const std::string& p = where.path;
        clear_stale_socket(p);
        try {
            unix_acceptor.emplace(ex);
            unix_acceptor->open();
            unix_acceptor->bind(stream_protocol::endpoint(p));
        } catch (const std::system_error& e) {
            throw std::system_error(e.code(), "metrics socket " + p);
        }
        // Owner only, set before listen(): until then nobody can connect, so no one slips in.
        struct stat st {};
        if (::chmod(p.c_str(), 0600) != 0 || ::lstat(p.c_str(), &st) != 0) {
            auto ec = sys::last_error();
            ::unlink(p.c_str());
            throw std::system_error(ec, "metrics socket " + p + ": setting mode 0600");
        }
        socket_dev = st.st_dev;
        socket_ino = st.st_ino;
        try {
            unix_acceptor->listen();
        } catch (const std::system_error& e) {
            ::unlink(p.c_str());
            throw std::system_error(e.code(), "metrics socket " + p);
        }
    }

    std::string describe(std::uint16_t port) const {
        if (where.type == metrics_address::kind::unix_socket) return "unix:" + where.path;
        bool v6 = where.host.find(':') != std::string::npos;
        return (v6 ? "[" + where.host + "]" : where.host) + ":" + std::to_string(port);
    }

    void remove_socket() const {
        struct stat st {};
        if (where.type == metrics_address::kind::unix_socket && ::lstat(where.path.c_str(), &st) == 0 &&
            S_ISSOCK(st.st_mode) && st.st_dev == socket_dev && st.st_ino == socket_ino)
            ::unlink(where.path.c_str());
    }
};

metrics_server::metrics_server(asio::any_io_executor ex, supervisor& sup, metrics_address where,
                               metrics_server_options options)
    : p_(std::make_shared<impl>(ex, sup, std::move(where), options)) {
    auto report = [addr = local_address(), on_failure = options.on_failure](const std::string& what) {
        if (on_failure) on_failure("metrics " + addr + ": no longer accepting: " + what);
    };
    if (p_->where.type == metrics_address::kind::unix_socket) {
        p_->listen_unix();
        asio::co_spawn(ex, p_->accept_loop(*p_->unix_acceptor), on_escape(report));
    } else {
        p_->listen_tcp();
        asio::co_spawn(ex, p_->accept_loop(*p_->tcp_acceptor), on_escape(report));
    }
}

metrics_server::~metrics_server() {
    p_->accepting.closed = true;
    std::error_code ec;
    if (p_->tcp_acceptor) p_->tcp_acceptor->close(ec);
    if (p_->unix_acceptor) p_->unix_acceptor->close(ec);
    p_->room.cancel();
    // Copied first: closing wakes coroutines that erase their own entries later, not now.
    auto open = p_->open;
    for (auto& [id, close] : open) close();
    p_->remove_socket();
}

std::string metrics_server::local_address() const { return p_->describe(port()); }

std::uint16_t metrics_server::port() const {
    std::error_code ec;
    if (!p_->tcp_acceptor) return p_->where.port;
    auto ep = p_->tcp_acceptor->local_endpoint(ec);
    return ec ? p_->where.port : ep.port();
}

}  // namespace drover::supervise
