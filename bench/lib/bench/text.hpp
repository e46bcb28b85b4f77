// Small text helpers the reporters share: printf-style numbers, padding by characters (not
// bytes), and escaping for SVG/XML text and attributes.
#pragma once

#include <cstddef>
#include <string>

namespace drover::bench {

/// snprintf of one double with format `f` ("%.2f×").
std::string fmt(const char* f, double v);
/// `s` padded with spaces to `w` characters (UTF-8 lead bytes counted), right-aligned or left.
std::string pad(std::string s, std::size_t w, bool right = true);
/// `s` with <, >, & and " escaped for SVG.
std::string esc(const std::string& s);

}  // namespace drover::bench
