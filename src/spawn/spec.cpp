// spawn_spec helpers: id-range parsing, the environment, and validation before any spawn.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstring>
#include <string>

#include "drover/spawn/spawn_spec.hpp"

namespace drover {

namespace {

bool parse_u32(std::string_view text, std::uint32_t& out) {
    if (text.empty()) return false;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && ptr == text.data() + text.size();
}

// Ranges must not overlap inside or outside (the kernel refuses it with EINVAL).
std::string check_map(const char* field, const std::vector<id_range>& ranges) {
    if (ranges.size() > 340) return std::string(field) + ": more than 340 ranges";
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        const id_range& a = ranges[i];
        std::string where = std::string(field) + " range " + std::to_string(i + 1) + " (" +
                            std::to_string(a.inner) + ':' + std::to_string(a.outer) + ':' +
                            std::to_string(a.count) + ")";
        if (a.count == 0) return where + ": count is 0";
        if (std::uint64_t(a.inner) + a.count > 0x100000000ULL ||
            std::uint64_t(a.outer) + a.count > 0x100000000ULL)
            return where + ": runs past 4294967295";
        for (std::size_t j = 0; j < i; ++j) {
            const id_range& b = ranges[j];
            auto overlap = [](std::uint64_t s1, std::uint64_t n1, std::uint64_t s2,
                              std::uint64_t n2) { return s1 < s2 + n2 && s2 < s1 + n1; };
            if (overlap(a.inner, a.count, b.inner, b.count))
                return where + ": overlaps range " + std::to_string(j + 1) + " inside";
            if (overlap(a.outer, a.count, b.outer, b.count))
                return where + ": overlaps range " + std::to_string(j + 1) + " outside";
        }
    }
    return {};
}

std::string_view env_name(std::string_view entry) {
    return entry.substr(0, entry.find('='));
}

}  // namespace

std::optional<id_range> parse_id_range(std::string_view text) {
    id_range r;
    auto c1 = text.find(':');
    if (c1 == std::string_view::npos) return std::nullopt;
    auto c2 = text.find(':', c1 + 1);
    std::string_view count = c2 == std::string_view::npos ? "1" : text.substr(c2 + 1);
    std::string_view outer = text.substr(c1 + 1, c2 == std::string_view::npos ? c2 : c2 - c1 - 1);
    if (!parse_u32(text.substr(0, c1), r.inner) || !parse_u32(outer, r.outer) ||
        !parse_u32(count, r.count))
        return std::nullopt;
    return r;
}

environment& environment::set(std::string name, std::string value) {
    std::erase(unset_, name);
    for (auto& [n, v] : set_)
        if (n == name) {
            v = std::move(value);
            return *this;
        }
    set_.emplace_back(std::move(name), std::move(value));
    return *this;
}

environment& environment::unset(std::string_view name) {
    std::erase_if(set_, [&](const auto& kv) { return kv.first == name; });
    unset_.emplace_back(name);
    return *this;
}

std::vector<std::string> environment::materialize(char** caller_environ) const {
    std::vector<std::string> out;
    auto overridden = [&](std::string_view name) {
        return std::find(unset_.begin(), unset_.end(), name) != unset_.end() ||
               std::any_of(set_.begin(), set_.end(), [&](auto& kv) { return kv.first == name; });
    };
    if (!clear_ && caller_environ)
        for (char** e = caller_environ; *e; ++e)
            if (!overridden(env_name(*e))) out.emplace_back(*e);
    for (const auto& [n, v] : set_) out.push_back(n + '=' + v);
    return out;
}

std::optional<std::string> environment::lookup(std::string_view name, char** caller_environ) const {
    for (const auto& [n, v] : set_)
        if (n == name) return v;
    if (clear_ || std::find(unset_.begin(), unset_.end(), name) != unset_.end())
        return std::nullopt;
    if (caller_environ)
        for (char** e = caller_environ; *e; ++e)
            if (env_name(*e) == name) return std::string(*e + name.size() + 1);
    return std::nullopt;
}

spec_field field_of(std::string_view m) {
    spec_field f;
    std::size_t i = 0;
    while (i < m.size() && (std::islower(static_cast<unsigned char>(m[i])) || m[i] == '_' || m[i] == '.')) ++i;
    if (i == 0 || i == m.size()) return {{}, {}, std::string(m)};
    std::string_view name = m.substr(0, i);
    std::string_view tail = m.substr(i);
    auto number = [](std::string_view& t) -> std::optional<std::size_t> {
        std::size_t v = 0;
        auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (ec != std::errc() || end == t.data()) return std::nullopt;
        t.remove_prefix(static_cast<std::size_t>(end - t.data()));
        return v;
    };
    if (tail.starts_with("[")) {
        tail.remove_prefix(1);
        f.index = number(tail);
        if (!f.index || !tail.starts_with("]")) return {{}, {}, std::string(m)};
        tail.remove_prefix(1);
    } else if (tail.starts_with(" range ")) {
        tail.remove_prefix(7);
        auto n = number(tail);
        if (!n || *n == 0) return {{}, {}, std::string(m)};
        f.index = *n - 1;
    }
    // A qualifier our messages add after the field: "(tmpfs)", "(0:1000:1)".
    if (tail.starts_with(" (")) {
        std::size_t close = tail.find(')');
        if (close == std::string_view::npos) return {{}, {}, std::string(m)};
        tail.remove_prefix(close + 1);
    }
    if (!tail.starts_with(": ")) return {{}, {}, std::string(m)};
    f.name = std::string(name);
    f.rest = std::string(tail.substr(2));
    return f;
}

std::string validate(const spawn_spec& s) {
    const namespace_set& n = s.namespaces;
    auto needs = [](const char* field, const char* what) {
        return std::string(field) + ": needs the " + what + " namespace";
    };
    if (s.exec && s.argv.empty()) return "argv: empty, nothing to run";
    if (s.exec && s.argv.front().empty()) return "argv[0]: empty program name";
    if (!n.has(ns::user) && (!s.uid_map.empty() || !s.gid_map.empty()))
        return needs(s.uid_map.empty() ? "gid_map" : "uid_map", "user");
    if (auto e = check_map("uid_map", s.uid_map); !e.empty()) return e;
    if (auto e = check_map("gid_map", s.gid_map); !e.empty()) return e;
    if (!s.hostname.empty() && !n.has(ns::uts)) return needs("hostname", "uts");
    if (!s.domainname.empty() && !n.has(ns::uts)) return needs("domainname", "uts");
    if (s.hostname.size() > 64) return "hostname: longer than 64 bytes";
    if (s.domainname.size() > 64) return "domainname: longer than 64 bytes";
    if (s.mount_proc.value_or(false)) {
        if (!n.has(ns::pid)) return needs("mount_proc", "pid");
        if (!n.has(ns::mnt)) return needs("mount_proc", "mnt");
    }
    for (std::size_t i = 0; i < s.binds.size(); ++i) {
        std::string field = "binds[" + std::to_string(i) + "]";
        if (!n.has(ns::mnt)) return needs(field.c_str(), "mnt");
        if (s.binds[i].source.empty()) return field + ": empty source";
        if (s.binds[i].target.empty() || s.binds[i].target[0] != '/')
            return field + ": target must be an absolute path";
    }
    for (std::size_t i = 0; i < s.tmpfs.size(); ++i) {
        std::string field = "tmpfs[" + std::to_string(i) + "]";
        if (!n.has(ns::mnt)) return needs(field.c_str(), "mnt");
        if (s.tmpfs[i].target.empty() || s.tmpfs[i].target[0] != '/')
            return field + ": target must be an absolute path";
    }
    if (s.fs.enabled && !n.has(ns::mnt)) return needs("fs", "mnt");
    if (!s.fs.enabled && (!s.fs.ops.empty() || !s.fs.root_dir.empty() || s.fs.overlay || s.fs.read_only))
        return "fs: ops, root_dir, overlay and read_only need fs.enabled";
    for (std::size_t i = 0; i < s.fs.ops.size(); ++i) {
        const fs_op& op = s.fs.ops[i];
        std::string field = "fs.ops[" + std::to_string(i) + "] (" + std::string(fs_op_name(op.what)) + ")";
        if (op.target.empty() || op.target[0] != '/') return field + ": target must be an absolute path";
        // A procfs shows the PID namespace of the one who mounts it: without a PID namespace
        // of its own the job would see (and could signal) every host process through it.
        if (op.what == fs_op::kind::proc && !n.has(ns::pid)) return field + ": needs the pid namespace";
        if (op.target.find('\0') != std::string::npos || op.source.find('\0') != std::string::npos)
            return field + ": a path contains a NUL byte";
        if (op.target.size() > 4000 || op.source.size() > 4000) return field + ": path longer than 4000 bytes";
        // A ".." could climb out of the new root while it is being built.
        std::string_view t = op.target;
        for (std::size_t pos = 0; pos <= t.size();) {
            std::size_t end = t.find('/', pos);
            if (end == std::string_view::npos) end = t.size();
            if (t.substr(pos, end - pos) == "..") return field + ": target must not contain '..'";
            pos = end + 1;
        }
    }
    if (s.fs.ops.size() > 1000) return "fs.ops: more than 1000";
    if (s.ids == userns_ids::automatic) {
        if (!n.has(ns::user)) return "ids: automatic needs the user namespace";
        if (!n.has(ns::pid))
            return "ids: automatic needs the pid namespace (nothing may outlive the lease of its host ids)";
        if (!s.uid_map.empty() || !s.gid_map.empty()) return "ids: automatic conflicts with uid_map/gid_map";
    }
    if (s.monotonic_offset.count() != 0 && !n.has(ns::time)) return needs("monotonic_offset", "time");
    if (s.boottime_offset.count() != 0 && !n.has(ns::time)) return needs("boottime_offset", "time");
    const char* stream_names[] = {"stdin", "stdout", "stderr"};
    const stdio* streams[] = {&s.in, &s.out, &s.err};
    for (int i = 0; i < 3; ++i)
        if (streams[i]->how == stdio::kind::fd && streams[i]->fd < 0)
            return std::string(stream_names[i]) + ": fd " + std::to_string(streams[i]->fd) +
                   " is not a descriptor";
    if (s.pass_fds.size() > 16) return "pass_fds: more than 16 descriptors";
    for (std::size_t i = 0; i < s.pass_fds.size(); ++i) {
        const fd_pass& p = s.pass_fds[i];
        std::string field = "pass_fds[" + std::to_string(i) + "]";
        if (p.child_fd < 3) return field + ": child_fd " + std::to_string(p.child_fd) + " is a stdio fd";
        if (p.child_fd > 1023) return field + ": child_fd above 1023";
        if (p.parent_fd < 0) return field + ": parent_fd is not a descriptor";
        for (std::size_t j = 0; j < i; ++j)
            if (s.pass_fds[j].child_fd == p.child_fd)
                return field + ": child_fd " + std::to_string(p.child_fd) + " given twice";
    }
    if (s.foreground && s.new_session) return "foreground: conflicts with new_session (no terminal)";
    for (std::size_t i = 0; i < s.rlimits.size(); ++i)
        if (s.rlimits[i].soft > s.rlimits[i].hard)
            return "rlimits[" + std::to_string(i) + "]: soft limit above hard limit";
    return {};
}

}  // namespace drover
