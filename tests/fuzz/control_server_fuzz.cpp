// control_server_fuzz: the supervisor's end of the control protocol. A request line (as the
// server reads it: up to the first newline, at most 4096 bytes) is parsed, answered with a
// status that carries the requested name (or metrics text with it as a label value), and
// written as the answer line; `drover ctl` must then be able to read that answer, whatever
// bytes the request had.
#include "command.hpp"
#include "drover/supervise/control.hpp"
#include "drover/supervise/json.hpp"
#include "drover/supervise/metrics.hpp"
#include "fuzz.hpp"

using namespace drover;
using namespace drover::supervise;
using fuzz::expect;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view line = fuzz::text(data, std::min<std::size_t>(size, 4096));
    line = line.substr(0, line.find('\n'));
    nlohmann::json answer;
    bool status = false;
    std::string metrics_text;
    try {
        control_command c = parse_control_request(line);
        status = c.what == control_command::verb::status;
        const bool metrics = c.what == control_command::verb::metrics;
        expect((status || metrics) == c.service.empty(), "a service name exactly with start, stop, restart");
        if (metrics) {
            supervisor_metrics m;
            m.version = std::string(line);  // any bytes as a label value
            metrics_text = render_prometheus(m);
            answer = {{"ok", true}, {"metrics", metrics_text}};
            std::string sent = control_answer_line(answer);
            expect(sent.find('\n') == sent.size() - 1, "the answer is one line");
            sent.pop_back();
            cli::ctl_reading r = cli::read_ctl_metrics(sent, "fuzz.sock");
            expect(r.error.empty(), "ctl reads every metrics answer the server writes");
            return 0;
        }
        supervisor_status st;
        st.cgroup_mode = "none";
        service_status s;
        s.name = c.service;
        s.state = static_cast<service_state>(size % 8);
        s.pid = static_cast<pid_t>(size);
        s.restarts = static_cast<unsigned>(size);
        s.last_error = std::string(line);
        s.uptime = std::chrono::nanoseconds(static_cast<std::int64_t>(size) * 1'000'000'007);
        if (size % 3 == 1) s.last_exit = exit_status::exited_with(static_cast<int>(size % 256));
        if (size % 3 == 2)
            s.last_exit = exit_status::killed_by(static_cast<int>(size % 64) + 1, size % 2);
        st.services.push_back(s);
        answer = {{"ok", true}, {"status", to_json(st)}};
    } catch (const std::invalid_argument& e) {
        answer = {{"ok", false}, {"error", e.what()}};
    }
    std::string sent = control_answer_line(answer);
    expect(sent.find('\n') == sent.size() - 1, "the answer is one line");
    sent.pop_back();
    for (bool json : {false, true}) {
        cli::ctl_reading r = cli::read_ctl_answer(sent, "fuzz.sock", status, json);
        expect(!r.error.starts_with("unreadable answer"),
               "ctl reads every answer the server writes");
        expect(answer["ok"] == (r.error.empty()), "ctl sees the refusal exactly when there is one");
    }
    return 0;
}
