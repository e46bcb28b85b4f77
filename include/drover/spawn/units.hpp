// units: parsers for the numbers people type (sizes, durations, signals, CPU shares), with
// range and finiteness checks: nullopt rather than a silent clamp or an exception.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace drover {

/// "4096", "64K", "64k", "64KiB", "256M", "1G", "1T" (powers of 1024). nullopt for anything
/// else, a negative number or one that does not fit in 64 bits.
std::optional<std::uint64_t> parse_size(std::string_view text);

/// "2" or "2s", "1.5s", "500ms", "250us", "10ns", "3m", "1h": a finite, non-negative
/// duration of at most `max`. nullopt otherwise.
std::optional<std::chrono::nanoseconds> parse_duration(
    std::string_view text, std::chrono::nanoseconds max = std::chrono::hours(24 * 366));

/// A decimal integer in [lo, hi], all of `text`. nullopt otherwise.
std::optional<std::int64_t> parse_integer(std::string_view text, std::int64_t lo, std::int64_t hi);

/// "SIGTERM", "TERM", "term" or "15": a signal number in 1..NSIG-1.
std::optional<int> parse_signal(std::string_view text);

/// CPU share in CPUs: "50%" is 0.5, "1.5" is 1.5; in (0, 1024].
std::optional<double> parse_cpu_share(std::string_view text);

}  // namespace drover
