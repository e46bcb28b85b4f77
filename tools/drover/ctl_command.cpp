// `drover ctl [--socket PATH] status [--json] | start|stop|restart NAME`: talk to a running
// `drover supervise` over its unix socket.
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

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

bool print_table(const nlohmann::json& status) {
    auto services = status.find("services");
    if (!status.is_object() || services == status.end() || !services->is_array()) return false;
    std::printf("%-20s %-9s %8s %8s %10s  %s\n", "NAME", "STATE", "PID", "RESTARTS", "UPTIME", "LAST EXIT");
    for (const auto& s : *services) {
        if (!s.is_object()) return false;
        auto up = s.find("uptime_sec");
        std::string uptime = up != s.end() && up->is_number() && std::isfinite(up->get<double>()) && up->get<double>() >= 0 &&
                                     up->get<double>() < 1e15
                                 ? std::to_string(static_cast<long long>(up->get<double>())) + "s"
                                 : "-";
        auto le = s.find("last_exit");
        std::string last = le != s.end() && le->is_object() ? str_of(*le, "text") : "-";
        std::string error = str_of(s, "error", "");
        if (!error.empty()) last += " (" + error + ")";
        std::printf("%-20s %-9s %8lld %8lld %10s  %s\n", str_of(s, "name").c_str(), str_of(s, "state").c_str(),
                    int_of(s, "pid"), int_of(s, "restarts"), uptime.c_str(), last.c_str());
    }
    return true;
}

int ctl_main(const ctl_options& o) {
    const auto& a = o.args;
    bool is_status = a.size() == 1 && a[0] == "status";
    bool is_action = a.size() == 2 && (a[0] == "start" || a[0] == "stop" || a[0] == "restart");
    if (!is_status && !is_action) {
        print_error("ctl: expected `status`, `start NAME`, `stop NAME` or `restart NAME`");
        return usage_exit;
    }
    std::string path = o.socket.empty() ? supervise::default_control_socket() : o.socket;
    std::string answer;
    try {
        answer = supervise::control_request(path, is_status ? "status" : a[0] + " " + a[1]);
    } catch (const std::system_error& e) {
        print_error(std::string("ctl: ") + e.what());
        return 1;
    }
    nlohmann::json j = nlohmann::json::parse(answer, nullptr, false);
    auto ok = j.is_object() ? j.find("ok") : j.end();
    if (j.is_discarded() || !j.is_object() || ok == j.end() || !ok->is_boolean()) {
        print_error("ctl: unreadable answer from " + path);
        return 1;
    }
    if (!ok->get<bool>()) {
        print_error("ctl: " + str_of(j, "error", "the supervisor refused without saying why"));
        return 1;
    }
    if (is_status) {
        auto st = j.find("status");
        if (st == j.end() || !st->is_object()) {
            print_error("ctl: unreadable answer from " + path + " (no status)");
            return 1;
        }
        if (o.json) {
            std::printf("%s\n", st->dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        } else if (!print_table(*st)) {
            print_error("ctl: unreadable answer from " + path + " (status has no services list)");
            return 1;
        }
    }
    return 0;
}

}  // namespace

command_main add_ctl_command(CLI::App& app) {
    auto o = std::make_shared<ctl_options>();
    CLI::App* sub = app.add_subcommand("ctl", "Ask a running `drover supervise`: status, start, stop, restart");
    sub->add_option("--socket", o->socket, "the supervisor's control socket");
    sub->add_flag("--json", o->json, "status as JSON");
    sub->add_option("request", o->args, "status | start NAME | stop NAME | restart NAME")->required();
    return [o] { return ctl_main(*o); };
}

}  // namespace drover::cli
