// The status line parallel and bench share (tools/drover/progress.hpp): what reaches the
// stream in each style, the throttle holding a redraw back, and erasing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "progress.hpp"

namespace drover::cli {
namespace {

using namespace std::chrono_literals;

// A temporary file standing in for stderr; text() is everything written so far.
struct capture {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f{std::tmpfile(), &std::fclose};
    std::string text() const {
        std::fflush(f.get());
        std::rewind(f.get());
        std::string s;
        for (int c; (c = std::fgetc(f.get())) != EOF;) s += static_cast<char>(c);
        return s;
    }
};

const std::string erase = "\r\033[K";

TEST(ProgressDisplay, RedrawReplacesTheLineAndHoldsBackWhatComesWithinTheInterval) {
    capture c;
    ASSERT_TRUE(c.f);
    progress_display d(progress_style::redraw, c.f.get(), std::chrono::milliseconds(1h));
    d.update("one");
    EXPECT_EQ(c.text(), erase + "one");
    d.update("two");
    d.update("three");
    EXPECT_EQ(c.text(), erase + "one") << "drawn within the interval";
    d.flush();  // only the newest held text
    EXPECT_EQ(c.text(), erase + "one" + erase + "three");
    d.flush();  // nothing held any more
    EXPECT_EQ(c.text(), erase + "one" + erase + "three");
}

TEST(ProgressDisplay, EraseTakesTheLineOffOnceAndTheNextUpdateDrawsAtOnce) {
    capture c;
    ASSERT_TRUE(c.f);
    {
        progress_display d(progress_style::redraw, c.f.get(), std::chrono::milliseconds(1h));
        d.update("a");
        d.update("held");
        d.erase();
        d.erase();
        d.flush();  // the held text went with the erased line
        EXPECT_EQ(c.text(), erase + "a" + erase);
        d.update("b");  // within the interval, but nothing is on the screen
        EXPECT_EQ(c.text(), erase + "a" + erase + erase + "b");
    }
    // The destructor erases what is left drawn.
    EXPECT_EQ(c.text(), erase + "a" + erase + erase + "b" + erase);
}

TEST(ProgressDisplay, WithoutAnIntervalEveryUpdateIsDrawn) {
    capture c;
    ASSERT_TRUE(c.f);
    progress_display d(progress_style::redraw, c.f.get(), 0ms);
    d.update("1");
    d.update("2");
    EXPECT_EQ(c.text(), erase + "1" + erase + "2");
}

TEST(ProgressDisplay, LinesAreWrittenWholeUnthrottledAndLeftStanding) {
    capture c;
    ASSERT_TRUE(c.f);
    {
        progress_display d(progress_style::lines, c.f.get(), std::chrono::milliseconds(1h));
        d.update("first 10%");
        d.update("then 20%");
        d.erase();
    }
    EXPECT_EQ(c.text(), "first 10%\nthen 20%\n");
}

TEST(ProgressDisplay, OffWritesNothing) {
    capture c;
    ASSERT_TRUE(c.f);
    {
        progress_display d(progress_style::off, c.f.get());
        EXPECT_FALSE(d.on());
        d.update("x");
        d.flush();
        d.erase();
    }
    EXPECT_EQ(c.text(), "");
}

TEST(ProgressBar, FillsTheShareDoneAndNoMore) {
    EXPECT_EQ(progress_bar(0, 0), std::string(30, '.'));
    EXPECT_EQ(progress_bar(1, 3), std::string(10, '#') + std::string(20, '.'));
    EXPECT_EQ(progress_bar(3, 3), std::string(30, '#'));
    EXPECT_EQ(progress_bar(5, 3), std::string(30, '#'));  // more done than known: full, not past
    EXPECT_EQ(progress_bar(1, 2, 4), "##..");
}

}  // namespace
}  // namespace drover::cli
