// args: whole numbers from a bench program's command line, range-checked (header-only, so
// the programs that do not link drover_bench can use it too).
#pragma once

#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace drover::bench {

/// `text` as a whole number in [lo, hi]; otherwise nullopt, after one line on stderr:
/// "PROGRAM: FLAG: 'TEXT' is not a whole number from LO to HI".
template <class T>
std::optional<T> whole_arg(const char* program, const char* flag, std::string_view text, T lo, T hi) {
    T v{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) {
        std::fprintf(stderr, "%s: %s: '%.*s' is not a whole number from %s to %s\n", program, flag,
                     static_cast<int>(text.size()), text.data(), std::to_string(lo).c_str(),
                     std::to_string(hi).c_str());
        return std::nullopt;
    }
    return v;
}

}  // namespace drover::bench
