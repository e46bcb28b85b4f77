// progress: the one status line on stderr that the long-running commands (parallel, bench) keep.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>

namespace drover::cli {

/// How progress shows.
enum class progress_style {
    off,     ///< not at all
    redraw,  ///< one line rewritten in place ("\r" and erase-line): for a terminal
    lines,   ///< a line per report, left standing: for a log
};

/// redraw when stderr is a terminal, `otherwise` when it is not.
progress_style progress_style_for_stderr(progress_style otherwise);

/// The status line. One thread reports (parallel's event loop, bench's runner); nothing else
/// may write to `out` while a line is drawn: erase() first.
class progress_display {
public:
    static constexpr std::chrono::milliseconds default_interval{100};

    explicit progress_display(progress_style style, std::FILE* out = stderr,
                              std::chrono::milliseconds interval = default_interval);
    ~progress_display() { erase(); }
    progress_display(const progress_display&) = delete;
    progress_display& operator=(const progress_display&) = delete;

    progress_style style() const noexcept { return style_; }
    bool on() const noexcept { return style_ != progress_style::off; }

    /// redraw: `text` replaces the line; within `interval` of the last draw it is held back
    /// for flush() or a later update (a terminal cannot show more, and each draw costs a
    /// write). lines: `text` and a newline. off: nothing.
    void update(std::string text);
    /// Draws the text update() held back, if any.
    void flush();
    /// Takes the line off the screen (before other output, and at the end); the next update
    /// draws at once.
    void erase();

private:
    void draw(const std::string& text);

    progress_style style_;
    std::FILE* out_;
    std::chrono::steady_clock::duration interval_;
    std::chrono::steady_clock::time_point last_draw_{};
    bool drawn_ = false;
    bool held_ = false;
    std::string held_text_;
};

/// "#######......": `width` characters, the share `done` of `total` as '#' (none while
/// `total` is 0).
std::string progress_bar(std::size_t done, std::size_t total, std::size_t width = 30);

}  // namespace drover::cli
