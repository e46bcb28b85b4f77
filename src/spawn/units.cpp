// units: size, duration, signal and CPU-share parsers on std::from_chars.
#include "drover/spawn/units.hpp"

#include <signal.h>
#include <string.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

namespace drover {

namespace {

// The leading number of `text` as a double (digits and one '.', no sign, no exponent: a
// person's number), and what follows it.
std::optional<std::pair<double, std::string_view>> leading_number(std::string_view text) {
    std::size_t end = 0;
    bool dot = false;
    while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) || (text[end] == '.' && !dot))) {
        dot = dot || text[end] == '.';
        ++end;
    }
    if (end == 0 || (end == 1 && dot)) return std::nullopt;
    double v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + end, v);
    if (ec != std::errc{} || p != text.data() + end || !std::isfinite(v)) return std::nullopt;
    return std::pair{v, text.substr(end)};
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view t) {
    std::size_t digits = 0;
    while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
    if (digits == 0) return std::nullopt;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + digits, v);
    if (ec != std::errc{} || p != t.data() + digits) return std::nullopt;
    std::string_view unit = t.substr(digits);
    int shift;
    if (unit.empty() || unit == "B") shift = 0;
    else if (unit == "K" || unit == "k" || unit == "KiB") shift = 10;
    else if (unit == "M" || unit == "MiB") shift = 20;
    else if (unit == "G" || unit == "GiB") shift = 30;
    else if (unit == "T" || unit == "TiB") shift = 40;
    else return std::nullopt;
    if (shift && v > (UINT64_MAX >> shift)) return std::nullopt;
    return v << shift;
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text, std::chrono::nanoseconds max) {
    auto n = leading_number(text);
    if (!n) return std::nullopt;
    auto [v, unit] = *n;
    double scale;
    if (unit.empty() || unit == "s") scale = 1e9;
    else if (unit == "ms") scale = 1e6;
    else if (unit == "us") scale = 1e3;
    else if (unit == "ns") scale = 1;
    else if (unit == "m" || unit == "min") scale = 60e9;
    else if (unit == "h") scale = 3600e9;
    else return std::nullopt;
    double ns = v * scale;
    // Compared as an integer after rounding: max.count() as a double may round up (to 2^63
    // for nanoseconds::max()), letting through a value llround cannot return.
    if (!std::isfinite(ns) || ns < 0 || ns >= 0x1p63) return std::nullopt;
    long long rounded = std::llround(ns);
    if (rounded > max.count()) return std::nullopt;
    return std::chrono::nanoseconds(rounded);
}

std::optional<std::int64_t> parse_integer(std::string_view t, std::int64_t lo, std::int64_t hi) {
    std::int64_t v = 0;
    if (t.empty()) return std::nullopt;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc{} || p != t.data() + t.size() || v < lo || v > hi) return std::nullopt;
    return v;
}

std::optional<int> parse_signal(std::string_view t) {
    if (auto n = parse_integer(t, 1, NSIG - 1)) return static_cast<int>(*n);
    std::string name;
    for (char c : t) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
    if (name.empty()) return std::nullopt;
    for (int s = 1; s < NSIG; ++s)
        if (const char* abbrev = ::sigabbrev_np(s); abbrev && name == abbrev) return s;
    return std::nullopt;
}

std::optional<double> parse_cpu_share(std::string_view t) {
    bool percent = !t.empty() && t.back() == '%';
    if (percent) t.remove_suffix(1);
    auto n = leading_number(t);
    if (!n || !n->second.empty()) return std::nullopt;
    double v = percent ? n->first / 100.0 : n->first;
    if (!(v > 0) || v > 1024) return std::nullopt;
    return v;
}

}  // namespace drover
