// sandbox: capability names and numbers, fs op names.
#include "drover/spawn/sandbox.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <charconv>

namespace drover {

namespace {

constexpr std::string_view cap_names[] = {
    "CHOWN",          "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER",          "FSETID",
    "KILL",           "SETGID",       "SETUID",          "SETPCAP",         "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",    "NET_RAW",         "IPC_LOCK",
    "IPC_OWNER",      "SYS_MODULE",   "SYS_RAWIO",       "SYS_CHROOT",      "SYS_PTRACE",
    "SYS_PACCT",      "SYS_ADMIN",    "SYS_BOOT",        "SYS_NICE",        "SYS_RESOURCE",
    "SYS_TIME",       "SYS_TTY_CONFIG", "MKNOD",         "LEASE",           "AUDIT_WRITE",
    "AUDIT_CONTROL",  "SETFCAP",      "MAC_OVERRIDE",    "MAC_ADMIN",       "SYSLOG",
    "WAKE_ALARM",     "BLOCK_SUSPEND", "AUDIT_READ",     "PERFMON",         "BPF",
    "CHECKPOINT_RESTORE",
};
constexpr int named_caps = static_cast<int>(std::size(cap_names));

int read_last_cap() noexcept {
    int fd = ::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return named_caps - 1;
    char buf[16] = {};
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    int v = 0;
    auto [p, ec] = std::from_chars(buf, buf + (n > 0 ? n : 0), v);
    (void)p;
    return ec == std::errc{} && v > 0 && v < 64 ? v : named_caps - 1;
}

}  // namespace

int cap_last_cap() noexcept {
    static const int last = read_last_cap();
    return last;
}

capability_set capability_set::all() {
    int last = cap_last_cap();
    return from_bits(last >= 63 ? ~std::uint64_t{0} : (std::uint64_t{1} << (last + 1)) - 1);
}

std::string capability_name(int cap) {
    if (cap >= 0 && cap < named_caps) return "CAP_" + std::string(cap_names[cap]);
    return "cap " + std::to_string(cap);
}

std::optional<int> parse_capability(std::string_view name) {
    std::string upper;
    for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::string_view u = upper;
    if (u.starts_with("CAP_")) u.remove_prefix(4);
    for (int i = 0; i < named_caps; ++i)
        if (u == cap_names[i]) return i;
    int v = -1;
    auto [p, ec] = std::from_chars(u.data(), u.data() + u.size(), v);
    if (ec == std::errc{} && p == u.data() + u.size() && v >= 0 && v <= cap_last_cap()) return v;
    return std::nullopt;
}

std::string capability_set::str() const {
    if (bits_ == 0) return "none";
    std::string out;
    for (int i = 0; i < 64; ++i)
        if (has(i)) {
            if (!out.empty()) out += ',';
            out += capability_name(i);
        }
    return out;
}

std::string_view fs_op_name(fs_op::kind k) noexcept {
    switch (k) {
        case fs_op::kind::bind: return "bind";
        case fs_op::kind::ro_bind: return "ro-bind";
        case fs_op::kind::dev_bind: return "dev-bind";
        case fs_op::kind::dev: return "dev";
        case fs_op::kind::proc: return "proc";
        case fs_op::kind::tmpfs: return "tmpfs";
        case fs_op::kind::dir: return "dir";
        case fs_op::kind::symlink: return "symlink";
        case fs_op::kind::file: return "file";
        case fs_op::kind::remount_ro: return "remount-ro";
    }
    return "?";
}

}  // namespace drover
