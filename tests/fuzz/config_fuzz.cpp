// config_fuzz: `drover supervise`'s TOML config (parse_config). Bad input must end as one
// config_error with a location; anything else escaping is a crash. Files named in the config
// (a seccomp policy) are not read.
#include "drover/spawn/spawn_spec.hpp"
#include "drover/supervise/config.hpp"
#include "fuzz.hpp"

using namespace drover;
using fuzz::expect;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    supervise::config_options options;
    options.init_program = "/usr/libexec/drover-init";
    options.read_files = false;
    try {
        supervise::config c = supervise::parse_config(fuzz::text(data, size), "fuzz.toml", options);
        expect(!c.services.empty(), "a config runs at least one service");
        for (const auto& s : c.services) {
            expect(!s.spawn.argv.empty() && !s.spawn.argv[0].empty(),
                   "every service has a command");
            expect(validate(s.spawn).empty(), "every service's spec is valid");
            expect(s.backoff.jitter >= 0 && s.backoff.jitter <= 1, "restart_jitter within 0..1");
            expect(s.backoff.initial.count() >= 0 && s.backoff.max.count() >= 0 &&
                       s.stop_timeout.count() >= 0,
                   "no negative time");
            // The restart delays the supervisor will compute from these numbers.
            for (unsigned attempt : {0u, 1u, 2u, 10u, 63u, 64u, 1000u, ~0u})
                for (double r : {0.0, 0.5, 0.999999})
                    expect(s.backoff.delay(attempt, r).count() >= 0, "restart delay not negative");
        }
    } catch (const supervise::config_error& e) {
        expect(e.line() >= 0 && e.column() >= 0, "config_error: a location");
        expect(std::string_view(e.what()).starts_with("fuzz.toml:"),
               "config_error: names the file");
    }
    return 0;
}
