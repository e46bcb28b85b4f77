// Small text helpers the reporters share: padding by characters (not bytes), and escaping for
// SVG/XML text and attributes. Numbers are written with fmt::format ("{:.2f}×").
#pragma once

#include <cstddef>
#include <string>

namespace drover::bench {

/// `s` padded with spaces to `w` characters (UTF-8 lead bytes counted), right-aligned or left.
std::string pad(std::string s, std::size_t w, bool right = true);
/// `s` with <, >, & and " escaped for SVG.
std::string esc(const std::string& s);

}  // namespace drover::bench
