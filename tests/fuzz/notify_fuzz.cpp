// notify_fuzz: what a supervised service sends on its notify socket or pipe ("READY=1\nSTATUS=…"),
// as the supervisor parses it: at most 64 assignments, each with a non-empty name and neither
// part holding a newline.
#include "../../src/supervise/notify.hpp"
#include "fuzz.hpp"

using drover::fuzz::expect;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto items = drover::supervise::detail::parse_notify(drover::fuzz::text(data, size));
    expect(items.size() <= 64, "parse_notify: at most 64 assignments");
    for (const auto& [k, v] : items) {
        expect(!k.empty(), "parse_notify: a name");
        expect(k.find('\n') == std::string::npos && v.find('\n') == std::string::npos, "parse_notify: one line each");
        expect(k.find('=') == std::string::npos, "parse_notify: the name ends at the first '='");
    }
    return 0;
}
