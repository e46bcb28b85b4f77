// metrics_http_fuzz: what a client sends to `--metrics-listen` (a request head) and what a
// user writes as its address, as the supervisor reads them: the head's end is inside the
// input after a blank line, the verdict is one of the statuses the server sends, and an
// address is loopback or a unix path, or refused in one line.
#include "drover/supervise/metrics_http.hpp"
#include "fuzz.hpp"

using drover::fuzz::expect;
namespace sv = drover::supervise;

namespace {

void check_head(std::string_view bytes) {
    std::size_t end = sv::http_head_end(bytes);
    if (end != std::string_view::npos) {
        expect(end >= 2 && end <= bytes.size(), "http_head_end: inside the input");
        expect(bytes.substr(0, end).ends_with("\n\n") || bytes.substr(0, end).ends_with("\n\r\n"),
               "http_head_end: just past a blank line");
    }
    int status = sv::judge_http_request(bytes.substr(0, end));
    expect(status == 200 || status == 400 || status == 404 || status == 405 || status == 505,
           "judge_http_request: a status the server sends");
    if (status == 200) expect(bytes.starts_with("GET /metrics"), "judge_http_request: 200 only for GET /metrics");
}

void check_address(std::string_view text) {
    try {
        sv::metrics_address a = sv::parse_metrics_address(text);
        if (a.type == sv::metrics_address::kind::unix_socket) {
            expect(!a.path.empty() && a.path.size() < 108, "parse_metrics_address: a usable socket path");
        } else {
            expect(a.host.rfind("127.", 0) == 0 || a.host == "::1", "parse_metrics_address: loopback only");
        }
    } catch (const std::invalid_argument& e) {
        expect(drover::fuzz::one_line(e.what()), "parse_metrics_address: one-line refusal");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text = drover::fuzz::text(data, size);
    check_head(text);
    check_address(text);
    return 0;
}
