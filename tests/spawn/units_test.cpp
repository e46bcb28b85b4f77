// The parsers for numbers people type: exact where they must be, nullopt (never a clamp, a
// wrap or an exception) for everything else.
#include <gtest/gtest.h>
#include <signal.h>

#include "drover/spawn/units.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;

TEST(Units, Sizes) {
    EXPECT_EQ(parse_size("4096"), 4096u);
    EXPECT_EQ(parse_size("64K"), 64u << 10);
    EXPECT_EQ(parse_size("64KiB"), 64u << 10);
    EXPECT_EQ(parse_size("256M"), 256u << 20);
    EXPECT_EQ(parse_size("1G"), 1ULL << 30);
    EXPECT_EQ(parse_size("16777215T"), 16777215ULL << 40);
    for (const char* bad : {"", "-1", "1.5G", "12Q", "M", "16777216T", "99999999999999999999", " 1", "1 ", "0x10"})
        EXPECT_FALSE(parse_size(bad)) << bad;
}

TEST(Units, Durations) {
    EXPECT_EQ(parse_duration("2"), 2s);
    EXPECT_EQ(parse_duration("1.5s"), 1500ms);
    EXPECT_EQ(parse_duration("500ms"), 500ms);
    EXPECT_EQ(parse_duration("250us"), 250us);
    EXPECT_EQ(parse_duration("3m"), 180s);
    EXPECT_EQ(parse_duration("1h"), 3600s);
    EXPECT_EQ(parse_duration("0"), 0s);
    for (const char* bad : {"", "-1", "nan", "inf", "1e3", "1e999", "1.2.3", ".", "5d", "2 s", "+1", "9999999999"})
        EXPECT_FALSE(parse_duration(bad)) << bad;
    EXPECT_FALSE(parse_duration("2s", 1s));
}

// Found by tests/fuzz/units_fuzz: with the largest max, 2^63 ns passed the range check (max
// as a double rounds up to 2^63) and came back negative from llround.
TEST(Units, DurationsAtTheLimitOfNanoseconds) {
    constexpr auto max = std::chrono::nanoseconds::max();
    EXPECT_FALSE(parse_duration("9223372036854775807ns", max));
    EXPECT_FALSE(parse_duration("9223372036854775808ns", max));
    EXPECT_FALSE(parse_duration("2562048h", max));
    EXPECT_EQ(parse_duration("2562047h", max), std::chrono::hours(2562047));
    EXPECT_EQ(parse_duration("1s", 1s), 1s);
}

TEST(Units, Integers) {
    EXPECT_EQ(parse_integer("0", 0, 5), 0);
    EXPECT_EQ(parse_integer("-3", -5, 5), -3);
    for (const char* bad : {"", "6", "-6", "1.0", "1x", "99999999999999999999", "+1"})
        EXPECT_FALSE(parse_integer(bad, -5, 5)) << bad;
}

TEST(Units, Signals) {
    EXPECT_EQ(parse_signal("TERM"), SIGTERM);
    EXPECT_EQ(parse_signal("SIGKILL"), SIGKILL);
    EXPECT_EQ(parse_signal("sigusr1"), SIGUSR1);
    EXPECT_EQ(parse_signal("9"), 9);
    for (const char* bad : {"", "0", "65", "99999999999", "4294967305", "SIG", "SIGNOPE", "-9"})
        EXPECT_FALSE(parse_signal(bad)) << bad;
}

TEST(Units, CpuShares) {
    EXPECT_EQ(parse_cpu_share("50%"), 0.5);
    EXPECT_EQ(parse_cpu_share("0.25"), 0.25);
    EXPECT_EQ(parse_cpu_share("2"), 2.0);
    for (const char* bad : {"", "0", "0%", "-1", "inf%", "1e308%", "nan", "%", "2000", "50 %"})
        EXPECT_FALSE(parse_cpu_share(bad)) << bad;
}

}  // namespace
}  // namespace drover
