// seccomp_fuzz: seccomp policy files, TOML and JSON (seccomp_policy::parse), compiled with
// libseccomp when they parse; and raw BPF programs (seccomp_program::from_bytes). Bad input
// must end as one spec_error.
#include "drover/spawn/seccomp.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "fuzz.hpp"

using namespace drover;
using fuzz::expect;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view t = fuzz::text(data, size);
    try {
        seccomp_policy p = seccomp_policy::parse(t, "fuzz.toml");
        for (const seccomp_rule& r : p.rules) {
            expect(!r.syscalls.empty(), "every rule names a syscall");
            for (const seccomp_arg& a : r.args) expect(a.index <= 5, "argument index within 0..5");
            expect(seccomp_action::parse(r.action.str()) == r.action,
                   "the action's text reads back");
        }
        auto prog = seccomp_program::compile(p);
        expect(prog->instructions() >= 1 && prog->instructions() <= 4096, "1..4096 instructions");
    } catch (const spec_error&) {
    }
    try {
        auto prog = seccomp_program::from_bytes(t);
        expect(prog->bytes() == t, "a program keeps its bytes");
    } catch (const spec_error&) {
    }
    return 0;
}
