// namespace_set names, parsing and clone flags.
#include "drover/spawn/namespaces.hpp"

#include <sched.h>

#include <array>

#include "drover/sys/syscalls.hpp"

namespace drover {

namespace {
constexpr std::array<std::string_view, ns_count> names = {"user", "pid", "mnt",    "uts",
                                                          "ipc",  "net", "cgroup", "time"};
constexpr std::array<std::uint64_t, ns_count> flags = {
    CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNS,     CLONE_NEWUTS,
    CLONE_NEWIPC,  CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME};
}  // namespace

std::string_view ns_name(ns n) noexcept { return names[static_cast<std::size_t>(n)]; }

std::optional<ns> parse_ns(std::string_view name) noexcept {
    if (name == "mount") return ns::mnt;
    if (name == "network") return ns::net;
    for (int i = 0; i < ns_count; ++i)
        if (names[static_cast<std::size_t>(i)] == name) return static_cast<ns>(i);
    return std::nullopt;
}

std::uint64_t ns_clone_flag(ns n) noexcept { return flags[static_cast<std::size_t>(n)]; }

std::uint64_t namespace_set::clone_flags() const noexcept {
    std::uint64_t f = 0;
    for (int i = 0; i < ns_count; ++i)
        if (has(static_cast<ns>(i))) f |= flags[static_cast<std::size_t>(i)];
    return f;
}

std::string namespace_set::str() const {
    if (empty()) return "none";
    std::string out;
    for (int i = 0; i < ns_count; ++i) {
        if (!has(static_cast<ns>(i))) continue;
        if (!out.empty()) out += '+';
        out += names[static_cast<std::size_t>(i)];
    }
    return out;
}

std::optional<namespace_set> namespace_set::parse(std::string_view text, std::string* why) {
    if (text == "all") return all();
    if (text == "none" || text.empty()) return namespace_set{};
    namespace_set s;
    while (!text.empty()) {
        auto cut = text.find_first_of(",+");
        auto part = text.substr(0, cut);
        auto n = parse_ns(part);
        if (!n) {
            if (why) *why = std::string(part);
            return std::nullopt;
        }
        s.add(*n);
        text = cut == std::string_view::npos ? std::string_view{} : text.substr(cut + 1);
    }
    return s;
}

}  // namespace drover
