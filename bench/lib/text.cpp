// The reporters' shared text helpers (bench/text.hpp).
#include "bench/text.hpp"

namespace drover::bench {

std::string pad(std::string s, std::size_t w, bool right) {
    // Width in characters: count UTF-8 lead bytes only (µ, ±, ×, ÷ are two bytes).
    std::size_t len = 0;
    for (unsigned char c : s) len += (c & 0xC0) != 0x80;
    if (len >= w) return s;
    return right ? std::string(w - len, ' ') + s : s + std::string(w - len, ' ');
}

std::string esc(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '<') o += "&lt;";
        else if (c == '>') o += "&gt;";
        else if (c == '&') o += "&amp;";
        else if (c == '"') o += "&quot;";
        else o += c;
    }
    return o;
}

}  // namespace drover::bench
