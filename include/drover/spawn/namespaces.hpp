// namespace_set: a bit set over the eight Linux namespace types, printable as "user+pid+net".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace drover {

/// One Linux namespace type. The order is the canonical print order.
enum class ns : std::uint8_t { user, pid, mnt, uts, ipc, net, cgroup, time };

inline constexpr int ns_count = 8;

/// Short name as /proc/self/ns spells it ("user", "pid", "mnt", …).
std::string_view ns_name(ns n) noexcept;

/// Parses "user", "pid", "mnt" (also "mount"), "uts", "ipc", "net", "cgroup", "time".
std::optional<ns> parse_ns(std::string_view name) noexcept;

/// The CLONE_NEW* flag for a namespace type.
std::uint64_t ns_clone_flag(ns n) noexcept;

/// A subset of the eight namespace types. A value type; 256 possible values.
class namespace_set {
public:
    constexpr namespace_set() noexcept = default;
    constexpr namespace_set(std::initializer_list<ns> list) noexcept {
        for (ns n : list) bits_ |= bit(n);
    }
    static constexpr namespace_set from_bits(std::uint8_t bits) noexcept {
        namespace_set s;
        s.bits_ = bits;
        return s;
    }
    static constexpr namespace_set all() noexcept { return from_bits(0xff); }

    [[nodiscard]] constexpr bool has(ns n) const noexcept { return (bits_ & bit(n)) != 0; }
    [[nodiscard]] constexpr bool empty() const noexcept { return bits_ == 0; }
    [[nodiscard]] constexpr std::uint8_t bits() const noexcept { return bits_; }
    [[nodiscard]] int size() const noexcept { return __builtin_popcount(bits_); }
    constexpr namespace_set& add(ns n) noexcept { bits_ |= bit(n); return *this; }
    constexpr namespace_set& remove(ns n) noexcept { bits_ &= static_cast<std::uint8_t>(~bit(n)); return *this; }
    [[nodiscard]] constexpr namespace_set with(ns n) const noexcept { return namespace_set(*this).add(n); }
    [[nodiscard]] constexpr namespace_set without(ns n) const noexcept { return namespace_set(*this).remove(n); }

    /// The CLONE_NEW* flags of all members.
    [[nodiscard]] std::uint64_t clone_flags() const noexcept;

    /// "user+pid+net" in canonical order; "none" for the empty set.
    [[nodiscard]] std::string str() const;

    /// Parses "user,pid", "user+pid", "none", "all"; nullopt if malformed, and then, if `why`
    /// is given, the bad part in it (the detail out-parameter of docs/errors.md).
    static std::optional<namespace_set> parse(std::string_view text, std::string* why = nullptr);

    friend constexpr bool operator==(namespace_set, namespace_set) noexcept = default;

private:
    static constexpr std::uint8_t bit(ns n) noexcept {
        return static_cast<std::uint8_t>(1u << static_cast<unsigned>(n));
    }
    std::uint8_t bits_ = 0;
};

}  // namespace drover
