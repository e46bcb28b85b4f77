// `drover ctl [--socket PATH] status [--json] | start|stop|restart NAME`: talk to a running
// `drover supervise` over its unix socket.
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

void print_table(const nlohmann::json& status) {
    std::printf("%-20s %-9s %8s %8s %10s  %s\n", "NAME", "STATE", "PID", "RESTARTS", "UPTIME", "LAST EXIT");
    for (const auto& s : status["services"]) {
        std::string uptime = s["uptime_sec"].is_number() ? std::to_string(static_cast<long long>(s["uptime_sec"].get<double>())) + "s" : "-";
        std::string last = s["last_exit"].is_object() ? s["last_exit"]["text"].get<std::string>() : "-";
        if (!s["error"].get<std::string>().empty()) last += " (" + s["error"].get<std::string>() + ")";
        std::printf("%-20s %-9s %8d %8u %10s  %s\n", s["name"].get<std::string>().c_str(),
                    s["state"].get<std::string>().c_str(), s["pid"].get<int>(), s["restarts"].get<unsigned>(),
                    uptime.c_str(), last.c_str());
    }
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
    if (j.is_discarded() || !j.contains("ok")) {
        print_error("ctl: unreadable answer from " + path);
        return 1;
    }
    if (!j["ok"].get<bool>()) {
        print_error("ctl: " + j["error"].get<std::string>());
        return 1;
    }
    if (is_status) {
        if (o.json) std::printf("%s\n", j["status"].dump(2).c_str());
        else print_table(j["status"]);
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
