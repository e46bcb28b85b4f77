// control_client_fuzz: `drover ctl`'s end of the control protocol — whatever answer comes
// back on the socket (another program, another version), ctl prints a table or JSON, or
// reports one problem; nothing escapes. The first byte chooses the request (status, metrics
// or an action) and --json; the rest is the answer line.
#include "command.hpp"
#include "fuzz.hpp"

using namespace drover;
using fuzz::expect;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    bool status = data[0] & 1, json = data[0] & 2;
    if (data[0] & 4) {
        cli::ctl_reading m = cli::read_ctl_metrics(fuzz::text(data + 1, size - 1), "fuzz.sock");
        expect(m.out.empty() || m.error.empty(), "metrics: either printed or refused, not both");
        return 0;
    }
    cli::ctl_reading r =
        cli::read_ctl_answer(fuzz::text(data + 1, size - 1), "fuzz.sock", status, json);
    expect(r.out.empty() || r.error.empty(), "either printed or refused, not both");
    if (!status) expect(r.out.empty(), "an action prints nothing");
    return 0;
}
