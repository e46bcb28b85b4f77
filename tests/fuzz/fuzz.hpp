// fuzz: what the libFuzzer targets share — the input as text or as arguments, and properties
// that end the run as a crash (so libFuzzer keeps the input) when they do not hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace drover::fuzz {

inline std::string_view text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

/// A property every input must keep. An exception would do as well, but it could be caught by
/// the code under test; abort() cannot.
inline void expect(bool holds, const char* what) {
    if (holds) return;
    std::fprintf(stderr, "fuzz: property does not hold: %s\n", what);
    std::abort();
}

/// Whether `s` is one line (an error message printed after "drover: ").
inline bool one_line(std::string_view s) {
    return s.find('\n') == std::string_view::npos;
}

/// The input as arguments: one per line, NUL also ending one (a corpus file reads as a
/// command line written one word per line).
inline std::vector<std::string> split_args(std::string_view t) {
    std::vector<std::string> out;
    std::size_t begin = 0;
    for (std::size_t i = 0; i <= t.size(); ++i) {
        if (i == t.size() || t[i] == '\n' || t[i] == '\0') {
            if (i < t.size() || i > begin) out.emplace_back(t.substr(begin, i - begin));
            begin = i + 1;
        }
    }
    return out;
}

}  // namespace drover::fuzz
