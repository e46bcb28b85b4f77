// `drover ctl [--socket PATH] status [--json] | metrics | start|stop|restart NAME`: talk to a running
// `drover supervise` over its unix socket.
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "command.hpp"
#include "drover/supervise/control.hpp"

namespace drover::cli {

namespace {

struct ctl_options {
    std::string socket;
    bool json = false;
    std::vector<std::string> args;
};

// The answer's fields, each checked for its type: a malformed answer (another program on the
// socket, a different version) is reported, never a crash.
std::string str_of(const nlohmann::json& j, const char* key, const char* fallback = "-") {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

long long int_of(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_number_integer() ? it->get<long long>() : 0;
}

// printf's "%-Ns" and "%Ns" for text of any length and bytes.
std::string left(std::string s, std::size_t width) {
    if (s.size() < width) s.append(width - s.size(), ' ');
    return s;
}

std::string right(std::string s, std::size_t width) {
    if (s.size() < width) s.insert(0, width - s.size(), ' ');
    return s;
}

// The status table, or nullopt if `status` has no list of service objects.
std::optional<std::string> status_table(const nlohmann::json& status) {
    auto services = status.find("services");
    if (!status.is_object() || services == status.end() || !services->is_array()) return std::nullopt;
    std::string out = left("NAME", 20) + " " + left("STATE", 9) + " " + right("PID", 8) + " " + right("RESTARTS", 8) +
                      " " + right("UPTIME", 10) + "  LAST EXIT\n";
    for (const auto& s : *services) {
        if (!s.is_object()) return std::nullopt;
        auto up = s.find("uptime_sec");
        std::string uptime = up != s.end() && up->is_number() && std::isfinite(up->get<double>()) && up->get<double>() >= 0 &&
                                     up->get<double>() < 1e15
                                 ? std::to_string(static_cast<long long>(up->get<double>())) + "s"
                                 : "-";
        auto le = s.find("last_exit");
        std::string last = le != s.end() && le->is_object() ? str_of(*le, "text") : "-";
        std::string error = str_of(s, "error", "");
        if (!error.empty()) last += " (" + error + ")";
        out += left(str_of(s, "name"), 20) + " " + left(str_of(s, "state"), 9) + " " +
               right(std::to_string(int_of(s, "pid")), 8) + " " + right(std::to_string(int_of(s, "restarts")), 8) +
               " " + right(uptime, 10) + "  " + last + "\n";
    }
    return out;
}

int ctl_main(const ctl_options& o) {
    const auto& a = o.args;
    bool is_status = a.size() == 1 && a[0] == "status";
    bool is_metrics = a.size() == 1 && a[0] == "metrics";
    bool is_action = a.size() == 2 && (a[0] == "start" || a[0] == "stop" || a[0] == "restart");
    if (!is_status && !is_metrics && !is_action) {
        print_error("ctl: expected `status`, `metrics`, `start NAME`, `stop NAME` or `restart NAME`");
        return usage_exit;
    }
    std::string path = o.socket.empty() ? supervise::default_control_socket() : o.socket;
    std::string answer;
    try {
        answer = supervise::control_request(path, is_action ? a[0] + " " + a[1] : a[0]);
    } catch (const std::system_error& e) {
        print_error(std::string("ctl: ") + e.what());
        return 1;
    }
    ctl_reading r = is_metrics ? read_ctl_metrics(answer, path) : read_ctl_answer(answer, path, is_status, o.json);
    if (!r.error.empty()) print_error("ctl: " + r.error);
    std::fputs(r.out.c_str(), stdout);
    return r.error.empty() ? 0 : 1;
}

}  // namespace

namespace {

// The answer as JSON once it says ok, or the problem in `error`.
nlohmann::json accepted_answer(std::string_view answer, const std::string& path, std::string& error) {
    // A status is four levels deep. Printing JSON recurses once per level, so an answer nested
    // deeper than this (up to the 16 MiB read) is refused instead of overflowing the stack.
    constexpr int max_depth = 64;
    bool too_deep = false;
    auto depth_check = [&too_deep](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
        too_deep = too_deep || depth > max_depth;
        return !too_deep;  // what is past the limit is not even built
    };
    nlohmann::json j = nlohmann::json::parse(answer, depth_check, false);
    if (too_deep) {
        error = "unreadable answer from " + path + " (nested more than 64 levels deep)";
        return {};
    }
    auto ok = j.is_object() ? j.find("ok") : j.end();
    if (j.is_discarded() || !j.is_object() || ok == j.end() || !ok->is_boolean()) {
        error = "unreadable answer from " + path;
        return {};
    }
    if (!ok->get<bool>()) error = str_of(j, "error", "the supervisor refused without saying why");
    return j;
}

}  // namespace

ctl_reading read_ctl_metrics(std::string_view answer, const std::string& path) {
    std::string error;
    nlohmann::json j = accepted_answer(answer, path, error);
    if (!error.empty()) return {{}, std::move(error)};
    auto m = j.find("metrics");
    if (m == j.end() || !m->is_string()) return {{}, "unreadable answer from " + path + " (no metrics text)"};
    return {m->get<std::string>(), {}};
}

ctl_reading read_ctl_answer(std::string_view answer, const std::string& path, bool status, bool json) {
    std::string error;
    nlohmann::json j = accepted_answer(answer, path, error);
    if (!error.empty()) return {{}, std::move(error)};
    if (!status) return {};
    auto st = j.find("status");
    if (st == j.end() || !st->is_object()) return {{}, "unreadable answer from " + path + " (no status)"};
    if (json) return {st->dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", {}};
    if (auto table = status_table(*st)) return {std::move(*table), {}};
    return {{}, "unreadable answer from " + path + " (status has no services list)"};
}

command_main add_ctl_command(CLI::App& app) {
    auto o = std::make_shared<ctl_options>();
    CLI::App* sub =
        app.add_subcommand("ctl", "ask a running `drover supervise`: status, metrics, start, stop, restart");
    sub->add_option("--socket", o->socket, "the supervisor's control socket");
    sub->add_flag("--json", o->json, "status as JSON");
    sub->add_option("request", o->args, "status | metrics (Prometheus text) | start NAME | stop NAME | restart NAME")->required();
    return [o] { return ctl_main(*o); };
}

}  // namespace drover::cli
