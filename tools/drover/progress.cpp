// The status line of parallel and bench (progress.hpp).
#include "progress.hpp"

#include <unistd.h>

#include <algorithm>

namespace drover::cli {

namespace {

// Carriage return, then ANSI "erase in line": the cursor is at column 0 of an empty line.
constexpr const char* erase_line = "\r\033[K";

}  // namespace

progress_style progress_style_for_stderr(progress_style otherwise) {
    return ::isatty(STDERR_FILENO) ? progress_style::redraw : otherwise;
}

progress_display::progress_display(progress_style style, std::FILE* out, std::chrono::milliseconds interval)
    : style_(style), out_(out), interval_(interval) {}

void progress_display::update(std::string text) {
    if (style_ == progress_style::off) return;
    if (style_ == progress_style::lines) {
        std::fputs(text.c_str(), out_);
        std::fputc('\n', out_);
        std::fflush(out_);
        return;
    }
    if (drawn_ && std::chrono::steady_clock::now() - last_draw_ < interval_) {
        held_text_ = std::move(text);
        held_ = true;
        return;
    }
    draw(text);
}

void progress_display::flush() {
    if (held_) draw(held_text_);
}

void progress_display::erase() {
    // A held text belongs to the line being erased: what comes next reports afresh.
    held_ = false;
    if (!drawn_) return;
    std::fputs(erase_line, out_);
    std::fflush(out_);
    drawn_ = false;
}

void progress_display::draw(const std::string& text) {
    std::fputs(erase_line, out_);
    std::fputs(text.c_str(), out_);
    std::fflush(out_);
    drawn_ = true;
    held_ = false;
    last_draw_ = std::chrono::steady_clock::now();
}

std::string progress_bar(std::size_t done, std::size_t total, std::size_t width) {
    std::size_t filled = total ? width * std::min(done, total) / total : 0;
    std::string bar(filled, '#');
    bar.resize(width, '.');
    return bar;
}

}  // namespace drover::cli
