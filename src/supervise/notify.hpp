// sd_notify(3)'s side of the supervisor: the datagram socket a notify-type service finds in
// $NOTIFY_SOCKET, what it sends there, and who may send it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "drover/sys/unique_fd.hpp"

namespace drover::supervise::detail {

/// A bound AF_UNIX datagram socket with SO_PASSCRED set (nonblocking, close-on-exec).
struct notify_socket {
    sys::unique_fd fd;
    std::string address;  ///< as in $NOTIFY_SOCKET: "@name" (abstract) or a path
    std::string path;     ///< the file to unlink afterwards (path sockets), else empty

    notify_socket() = default;
    notify_socket(notify_socket&&) noexcept = default;
    notify_socket& operator=(notify_socket&&) noexcept = default;
    ~notify_socket();
};

/// Opens a socket the service can reach: in the abstract namespace of drover's network
/// namespace, or (`own_net`: the service has a network namespace of its own, where abstract
/// names are not shared) as a file under /run/drover, $XDG_RUNTIME_DIR/drover or /tmp.
/// Throws std::system_error naming what failed.
notify_socket open_notify_socket(bool own_net);

/// One datagram: the sender's pid (from SCM_CREDENTIALS, in drover's PID namespace) and its
/// text. Descriptors passed along (sd_pid_notify_with_fds) are closed, never kept.
struct notify_datagram {
    pid_t pid = 0;
    std::string text;
    bool truncated = false;  ///< longer than notify_datagram_max: ignored by the caller
};
inline constexpr std::size_t notify_datagram_max = 4096;

/// The next datagram waiting on `fd`, or nullopt when none is (EAGAIN).
std::optional<notify_datagram> receive_notify(int fd);

/// "READY=1\nSTATUS=ok\n" as assignments in order; lines without '=' are skipped, as systemd
/// does. At most 64 assignments.
std::vector<std::pair<std::string, std::string>> parse_notify(std::string_view text);

/// Whether `pid` is `ancestor` or one of its descendants (parents read from /proc; bounded).
bool in_tree(pid_t pid, pid_t ancestor);

}  // namespace drover::supervise::detail
