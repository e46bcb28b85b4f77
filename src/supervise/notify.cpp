// The supervisor's notify socket: open, receive with credentials, parse, check the sender.
#include "notify.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <system_error>

namespace drover::supervise::detail {

namespace {

std::system_error error(const std::string& what) { return {errno, std::generic_category(), what}; }

std::string random_name() {
    std::random_device rd;
    char buf[40];
    std::snprintf(buf, sizeof buf, "%d-%08x%08x", static_cast<int>(::getpid()), rd(), rd());
    return buf;
}

// A directory for path sockets: the first that exists or can be made, searchable by others
// (a service may run under other ids; the sender's credentials are what is trusted).
std::string socket_dir() {
    std::vector<std::string> candidates;
    if (::geteuid() == 0) candidates.emplace_back("/run/drover");
    if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x == '/') candidates.push_back(std::string(x) + "/drover");
    candidates.push_back("/tmp/drover-" + std::to_string(::geteuid()));
    for (const std::string& d : candidates) {
        if (::mkdir(d.c_str(), 0711) != 0 && errno != EEXIST) continue;
        struct stat st{};
        if (::lstat(d.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid()) return d;
    }
    throw std::system_error(EACCES, std::generic_category(), "no directory for the notify socket (/run/drover, $XDG_RUNTIME_DIR/drover, /tmp)");
}

}  // namespace

notify_socket::~notify_socket() {
    if (!path.empty()) ::unlink(path.c_str());
}

notify_socket open_notify_socket(bool own_net) {
    notify_socket s;
    s.fd.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s.fd) throw error("creating the notify socket");
    int on = 1;
    if (::setsockopt(s.fd.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) throw error("SO_PASSCRED on the notify socket");
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    socklen_t len = 0;
    if (!own_net) {
        std::string name = "drover/notify/" + random_name();
        std::memcpy(a.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
        len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
        s.address = "@" + name;
    } else {
        std::string path = socket_dir() + "/notify-" + random_name();
        if (path.size() >= sizeof a.sun_path) throw std::system_error(ENAMETOOLONG, std::generic_category(), "notify socket path " + path);
        std::memcpy(a.sun_path, path.data(), path.size());
        len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
        s.address = path;
    }
    if (::bind(s.fd.get(), reinterpret_cast<const sockaddr*>(&a), len) != 0) throw error("binding the notify socket " + s.address);
    if (own_net) {
        s.path = s.address;
        // Any id may send (the job may run as others); only the credentials are trusted.
        if (::chmod(s.path.c_str(), 0666) != 0) throw error("chmod of the notify socket " + s.path);
    }
    return s;
}

std::optional<notify_datagram> receive_notify(int fd) {
    char data[notify_datagram_max + 1];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * 253)];
    iovec iov{data, sizeof data};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t n;
    do n = ::recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
        throw error("reading the notify socket");
    }
    notify_datagram d;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
            ucred cred;
            std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
            d.pid = cred.pid;
        } else if (c->cmsg_type == SCM_RIGHTS) {
            // FDSTORE is not kept: the descriptors are closed so that none leaks.
            std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int passed;
                std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
                ::close(passed);
            }
        }
    }
    d.truncated = static_cast<std::size_t>(n) > notify_datagram_max || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
    if (!d.truncated) d.text.assign(data, static_cast<std::size_t>(n));
    return d;
}

std::vector<std::pair<std::string, std::string>> parse_notify(std::string_view text) {
    std::vector<std::pair<std::string, std::string>> out;
    std::size_t start = 0;
    while (start <= text.size() && out.size() < 64) {
        std::size_t nl = text.find('\n', start);
        std::string_view line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
        if (auto eq = line.find('='); eq != std::string_view::npos && eq > 0)
            out.emplace_back(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
        if (nl == std::string_view::npos) break;
        start = nl + 1;
    }
    return out;
}

bool in_tree(pid_t pid, pid_t ancestor) {
    for (int depth = 0; depth < 64 && pid > 1; ++depth) {
        if (pid == ancestor) return true;
        char path[64];
        std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
        FILE* f = std::fopen(path, "re");
        if (!f) return false;
        char buf[512];
        std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        buf[n] = '\0';
        // "PID (COMM) STATE PPID ...": COMM may hold spaces and ')', so read after the last ')'.
        const char* close = std::strrchr(buf, ')');
        int parent = 0;
        char state = 0;
        if (!close || std::sscanf(close + 1, " %c %d", &state, &parent) != 2) return false;
        pid = parent;
    }
    return pid == ancestor;
}

}  // namespace drover::supervise::detail
