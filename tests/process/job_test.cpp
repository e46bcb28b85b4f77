// human_seconds and human_bytes, the units a verdict's detail is written in: exact text at the
// boundaries where the unit or the precision changes, so that a change of formatter shows.
#include <gtest/gtest.h>

#include <cstdint>

#include "drover/process/job.hpp"

namespace drover {
namespace {

constexpr std::int64_t ms = 1'000'000;  // in ns
constexpr std::int64_t s = 1'000 * ms;

TEST(HumanSeconds, ZeroIsSecondsNotMicroseconds) { EXPECT_EQ(human_seconds(0), "0.000 s"); }

TEST(HumanSeconds, BelowAMillisecondIsWholeMicroseconds) {
    EXPECT_EQ(human_seconds(1), "0 us");
    EXPECT_EQ(human_seconds(ms / 2), "500 us");
    // Rounded to whole microseconds, not promoted to the next unit.
    EXPECT_EQ(human_seconds(ms - 1), "1000 us");
}

TEST(HumanSeconds, FromAMillisecondToTenSecondsHasThreeDecimals) {
    EXPECT_EQ(human_seconds(ms), "0.001 s");
    EXPECT_EQ(human_seconds(3 * s / 2), "1.500 s");
    EXPECT_EQ(human_seconds(9'999'499'999), "9.999 s");
    // 9.9996 s is still below ten: three decimals, rounded up to 10.000.
    EXPECT_EQ(human_seconds(9'999'600'000), "10.000 s");
}

TEST(HumanSeconds, FromTenSecondsHasOneDecimal) {
    EXPECT_EQ(human_seconds(10 * s), "10.0 s");
    EXPECT_EQ(human_seconds(10'050'000'000), "10.1 s");
    EXPECT_EQ(human_seconds(3600 * s), "3600.0 s");
}

TEST(HumanBytes, BelowAKibibyteIsWholeBytes) {
    EXPECT_EQ(human_bytes(0), "0 B");
    EXPECT_EQ(human_bytes(1023), "1023 B");
}

TEST(HumanBytes, BinaryUnitsWithOneDecimal) {
    EXPECT_EQ(human_bytes(1024), "1.0 KiB");
    EXPECT_EQ(human_bytes(1536), "1.5 KiB");
    EXPECT_EQ(human_bytes((1ULL << 20) - 1), "1024.0 KiB");  // rounded, still KiB
    EXPECT_EQ(human_bytes(1ULL << 20), "1.0 MiB");
    EXPECT_EQ(human_bytes(256ULL << 20), "256.0 MiB");
    EXPECT_EQ(human_bytes(1ULL << 30), "1.0 GiB");
    EXPECT_EQ(human_bytes(~0ULL), "17179869184.0 GiB");  // GiB is the largest unit
}

}  // namespace
}  // namespace drover
