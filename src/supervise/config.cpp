// config: TOML (toml++) to service_spec, every problem located at file:line:column.
#include "drover/supervise/config.hpp"

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <toml++/toml.h>

#include "drover/spawn/units.hpp"
#include "drover/supervise/metrics_http.hpp"

namespace drover::supervise {

namespace {

std::string locate(const std::string& file, int line, int col, const std::string& field, const std::string& problem) {
    // Line 0: about the file as a whole (unreadable), not a place in it.
    std::string s = line > 0 ? file + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " : file + ": ";
    if (!field.empty()) s += field + ": ";
    return s + problem;
}

[[noreturn]] void fail(const std::string& file, const toml::node& at, const std::string& field, const std::string& problem) {
    auto b = at.source().begin;
    throw config_error(file, static_cast<int>(b.line), static_cast<int>(b.column), field, problem);
}

const char* type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a number";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        default: return "a date or time";
    }
}

/// Reads the fields of one [service.NAME] table.
class service_reader {
public:
    service_reader(const std::string& file, std::string name, const toml::table& t, const config_options& o)
        : file_(file), prefix_("service." + name + "."), t_(t), o_(o) {
        s_.name = std::move(name);
    }

    service_spec read() {
        static const std::set<std::string> known = {
            "exec", "type", "restart", "restart_sec", "restart_max_delay_sec", "restart_jitter",
            "timeout_stop_sec", "kill_signal", "after", "environment", "working_directory",
            "start_limit_burst", "start_limit_interval_sec", "failure_action", "memory_max", "tasks_max",
            "cpu_quota", "notify_access", "watchdog_sec", "timeout_start_sec", "namespaces", "hostname", "init", "sandbox", "share_net", "root", "bind", "ro_bind",
            "tmpfs", "capabilities", "seccomp", "uid", "gid", "warm"};
        for (const auto& [k, v] : t_)
            if (!known.count(std::string(k.str())))
                fail(file_, v, prefix_ + std::string(k.str()), "unknown field (see docs/supervise.md)");
        if (!t_.contains("exec")) fail(file_, t_, "service." + s_.name, "missing field 'exec'");
        read_exec();
        if (auto v = str("type")) {
            if (*v == "notify") s_.ready = readiness::notify;
            else if (*v == "exec" || *v == "simple") s_.ready = readiness::on_start;
            else fail(file_, *t_.get("type"), prefix_ + "type", "expected \"exec\", \"simple\" or \"notify\", not \"" + *v + "\"");
        }
        if (auto v = str("restart")) {
            auto p = parse_restart_policy(*v);
            if (!p) fail(file_, *t_.get("restart"), prefix_ + "restart", "expected \"no\", \"on-failure\" or \"always\", not \"" + *v + "\"");
            s_.restart = *p;
        }
        if (auto v = seconds("restart_sec")) s_.backoff.initial = *v;
        if (auto v = seconds("restart_max_delay_sec")) s_.backoff.max = *v;
        if (auto v = number("restart_jitter")) {
            if (!(*v >= 0 && *v <= 1))  // NaN too
                fail(file_, *t_.get("restart_jitter"), prefix_ + "restart_jitter", "expected a fraction within 0..1");
            s_.backoff.jitter = *v;
        }
        if (auto v = seconds("timeout_stop_sec")) s_.stop_timeout = *v;
        if (auto v = seconds("watchdog_sec")) s_.watchdog = *v;
        if (auto v = seconds("timeout_start_sec")) s_.start_timeout = *v;
        if (auto v = str("notify_access")) {
            if (*v == "all") s_.notify_access_all = true;
            else if (*v != "main") fail(file_, *t_.get("notify_access"), prefix_ + "notify_access", "expected \"main\" or \"all\"");
        }
        if (const toml::node* n = t_.get("kill_signal")) {
            std::optional<int> sig;
            if (n->is_integer()) {
                std::int64_t i = n->as_integer()->get();
                if (i > 0 && i < NSIG) sig = static_cast<int>(i);
            }
            else if (auto sv = n->value<std::string>()) sig = parse_signal(*sv);
            if (!sig || *sig <= 0 || *sig >= NSIG) fail(file_, *n, prefix_ + "kill_signal", "expected a signal such as \"SIGTERM\" or 15");
            s_.stop_signal = *sig;
        }
        if (const toml::node* n = t_.get("after")) s_.after = strings(*n, "after");
        read_environment();
        if (auto v = str("working_directory")) s_.spawn.cwd = *v;
        if (auto v = integer("start_limit_burst", 0, 1000000)) s_.intensity.burst = static_cast<unsigned>(*v);
        if (auto v = seconds("start_limit_interval_sec")) {
            if (v->count() <= 0) fail(file_, *t_.get("start_limit_interval_sec"), prefix_ + "start_limit_interval_sec", "must be positive");
            s_.intensity.interval = *v;
        }
        if (auto v = str("failure_action")) {
            if (*v == "exit") s_.shutdown_on_failure = true;
            else if (*v != "none") fail(file_, *t_.get("failure_action"), prefix_ + "failure_action", "expected \"none\" or \"exit\"");
        }
        if (const toml::node* n = t_.get("memory_max")) {
            std::optional<std::uint64_t> size;
            if (n->is_integer() && *n->value<std::int64_t>() > 0) size = static_cast<std::uint64_t>(*n->value<std::int64_t>());
            else if (n->is_string()) size = parse_size(*n->value<std::string>());
            if (!size || *size < 4096) fail(file_, *n, prefix_ + "memory_max", "expected a size of at least 4096 bytes, such as \"64M\"");
            s_.limits.memory_max = size;
        }
        if (auto v = integer("tasks_max", 1, 4194304)) s_.limits.tasks_max = static_cast<std::uint64_t>(*v);
        if (auto v = integer("warm", 0, 64)) s_.warm = static_cast<unsigned>(*v);
        if (auto v = str("cpu_quota")) {
            auto share = parse_cpu_share(*v);
            if (!share || v->back() != '%')
                fail(file_, *t_.get("cpu_quota"), prefix_ + "cpu_quota",
                     "expected a percentage of one CPU such as \"50%\" or \"200%\" (more than 0, at most 102400%)");
            s_.limits.cpu_quota = *share;
        }
        if (const toml::node* n = t_.get("namespaces")) {
            for (const auto& name : strings(*n, "namespaces")) {
                auto one = parse_ns(name);
                if (!one) fail(file_, *n, prefix_ + "namespaces", "unknown namespace \"" + name + "\" (user, pid, mnt, uts, ipc, net, cgroup, time)");
                s_.spawn.namespaces.add(*one);
            }
        }
        if (auto v = str("hostname")) s_.spawn.hostname = *v;
        read_sandbox();
        if (const toml::node* n = t_.get("init")) {
            if (!n->is_boolean()) fail(file_, *n, prefix_ + "init", std::string("expected a boolean, not ") + type_name(*n));
            if (*n->value<bool>()) {
                if (o_.init_program.empty()) fail(file_, *n, prefix_ + "init", "no init program is known to this loader");
                s_.spawn.init_program = o_.init_program;
            }
        }
        if (std::string e = validate(s_); !e.empty()) fail_in_toml_terms(e);
        std::ostringstream fp;
        fp << t_;
        s_.fingerprint = fp.str();
        return std::move(s_);
    }

private:
    std::optional<std::string> str(const char* key) {
        const toml::node* n = t_.get(key);
        if (!n) return std::nullopt;
        if (!n->is_string()) fail(file_, *n, prefix_ + key, std::string("expected a string, not ") + type_name(*n));
        return *n->value<std::string>();
    }
    std::optional<double> number(const char* key) {
        const toml::node* n = t_.get(key);
        if (!n) return std::nullopt;
        if (!n->is_number()) fail(file_, *n, prefix_ + key, std::string("expected a number, not ") + type_name(*n));
        // An integer that a double cannot hold exactly (2^63-1, 2^53+1) still has a value:
        // toml++'s value<double>() would give none.
        if (n->is_integer()) return static_cast<double>(n->as_integer()->get());
        return n->as_floating_point()->get();
    }
    std::optional<nanoseconds> seconds(const char* key) {
        auto v = number(key);
        if (!v) return std::nullopt;
        if (*v < 0 || !std::isfinite(*v) || *v > 1e7) fail(file_, *t_.get(key), prefix_ + key, "expected seconds within 0..10000000");
        return nanoseconds(static_cast<std::int64_t>(std::llround(*v * 1e9)));
    }
    std::optional<std::int64_t> integer(const char* key, std::int64_t lo, std::int64_t hi) {
        const toml::node* n = t_.get(key);
        if (!n) return std::nullopt;
        if (!n->is_integer()) fail(file_, *n, prefix_ + key, std::string("expected an integer, not ") + type_name(*n));
        auto v = *n->value<std::int64_t>();
        if (v < lo || v > hi) fail(file_, *n, prefix_ + key, "expected " + std::to_string(lo) + ".." + std::to_string(hi));
        return v;
    }
    std::vector<std::string> strings(const toml::node& n, const char* key) {
        std::vector<std::string> out;
        if (n.is_string()) {
            out.push_back(*n.value<std::string>());
            return out;
        }
        if (!n.is_array()) fail(file_, n, prefix_ + key, std::string("expected an array of strings, not ") + type_name(n));
        for (const auto& e : *n.as_array()) {
            if (!e.is_string()) fail(file_, e, prefix_ + key, std::string("expected strings, found ") + type_name(e));
            out.push_back(*e.value<std::string>());
        }
        return out;
    }
    void read_exec() {
        const toml::node& n = *t_.get("exec");
        if (n.is_string()) {
            auto argv = split_command(*n.value<std::string>());
            if (!argv) fail(file_, n, prefix_ + "exec", "a quote is not closed");
            s_.spawn.argv = std::move(*argv);
        } else {
            s_.spawn.argv = strings(n, "exec");
        }
        if (s_.spawn.argv.empty() || s_.spawn.argv[0].empty()) fail(file_, n, prefix_ + "exec", "empty command");
    }
    // The walls: sandbox = true is drover run --sandbox; the other fields add to it or stand
    // alone (binds need a mount namespace, which they then imply).
    void read_sandbox() {
        bool sandbox = false, share_net = false;
        if (const toml::node* n = t_.get("sandbox")) sandbox = boolean(*n, "sandbox");
        if (const toml::node* n = t_.get("share_net")) {
            share_net = boolean(*n, "share_net");
            if (!sandbox) fail(file_, *n, prefix_ + "share_net", "only with sandbox = true");
        }
        std::vector<fs_op> ops;
        auto pairs = [&](const char* key, fs_op::kind k) {
            const toml::node* n = t_.get(key);
            if (!n) return;
            std::size_t index = 0;
            for (const auto& v : strings(*n, key)) {
                op_origin_.emplace_back(key, index++);
                auto colon = v.find(':');
                std::string src = v.substr(0, colon);
                std::string dst = colon == std::string::npos ? src : v.substr(colon + 1);
                if (k == fs_op::kind::tmpfs) ops.push_back(fs_op::tmpfs(src, colon == std::string::npos ? "" : dst));
                else ops.push_back({k, src, dst});
                if ((k == fs_op::kind::tmpfs ? src : dst).rfind('/', 0) != 0)
                    fail(file_, *n, prefix_ + key, "expected absolute paths (\"SRC:DST\" or \"/path\")");
            }
        };
        pairs("ro_bind", fs_op::kind::ro_bind);
        pairs("bind", fs_op::kind::bind);
        pairs("tmpfs", fs_op::kind::tmpfs);
        std::string root;
        if (auto v = str("root")) root = *v;
        spawn_spec& sp = s_.spawn;
        if (sandbox) {
            sp.fs.ops = std::move(ops);
            sandbox_preset preset;
            preset.share_net = share_net;
            preset.root_dir = root;
            make_sandboxed(sp, preset);
            preset_ops_ = sp.fs.ops.size() - op_origin_.size();
        } else if (!ops.empty() || !root.empty()) {
            sp.namespaces.add(ns::mnt);
            sp.fs.enabled = true;
            sp.fs.root_dir = root;
            sp.fs.ops = std::move(ops);
        }
        if (const toml::node* n = t_.get("capabilities")) {
            capability_set keep;
            for (const auto& name : strings(*n, "capabilities")) {
                auto cap = parse_capability(name);
                if (!cap) fail(file_, *n, prefix_ + "capabilities", "unknown capability \"" + name + "\" (NET_BIND_SERVICE, CAP_NET_RAW)");
                keep.add(*cap);
            }
            sp.capabilities = keep;
        }
        if (auto v = str("seccomp")) {
            try {
                if (*v == "none") sp.seccomp.reset();
                else if (*v == "default") sp.seccomp = seccomp_program::compile(seccomp_policy::builtin_default());
                else if (o_.read_files) sp.seccomp = seccomp_program::compile(seccomp_policy::load(*v));
            } catch (const spec_error& e) {
                fail(file_, *t_.get("seccomp"), prefix_ + "seccomp", e.what());
            }
        }
        for (const char* key : {"uid", "gid"}) {
            if (auto v = integer(key, 0, 4294967294LL)) {
                if (key[0] == 'u') sp.uid = static_cast<std::uint32_t>(*v);
                else sp.gid = static_cast<std::uint32_t>(*v);
            }
        }
    }
    bool boolean(const toml::node& n, const char* key) {
        if (!n.is_boolean()) fail(file_, n, prefix_ + key, std::string("expected a boolean, not ") + type_name(n));
        return *n.value<bool>();
    }
    void read_environment() {
        const toml::node* n = t_.get("environment");
        if (!n) return;
        if (const toml::table* env = n->as_table()) {
            for (const auto& [k, v] : *env) {
                if (!v.is_string()) fail(file_, v, prefix_ + "environment." + std::string(k.str()), std::string("expected a string, not ") + type_name(v));
                s_.spawn.env.set(std::string(k.str()), *v.value<std::string>());
            }
            return;
        }
        for (const auto& kv : strings(*n, "environment")) {
            auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0) fail(file_, *n, prefix_ + "environment", "expected \"NAME=VALUE\", not \"" + kv + "\"");
            s_.spawn.env.set(kv.substr(0, eq), kv.substr(eq + 1));
        }
    }

    // A validate() message in the file's words, at the key it is about: "hostname: needs the
    // uts namespace" is service.NAME.hostname at its line, with what to add to namespaces.
    [[noreturn]] void fail_in_toml_terms(const std::string& message) {
        spec_field f = field_of(message);
        std::string key;
        std::optional<std::size_t> index;
        if (f.name == "hostname" || f.name == "uid" || f.name == "gid" || f.name == "exec" || f.name == "name" ||
            f.name == "after" || f.name == "kill_signal" || f.name == "cpu_quota" || f.name == "tasks_max" ||
            f.name == "memory_max" || f.name == "watchdog_sec" || f.name == "timeout_start_sec") {
            key = f.name;
        } else if (f.name == "argv") {
            key = "exec";
        } else if (f.name == "fs.root_dir") {
            key = "root";
        } else if (f.name == "fs.ops" && f.index && *f.index >= preset_ops_ && *f.index - preset_ops_ < op_origin_.size()) {
            std::tie(key, index) = op_origin_[*f.index - preset_ops_];
        }
        std::string text = key.empty() ? message : f.rest;
        if (auto at = text.find("needs the "); at != std::string::npos) {
            std::size_t name_at = at + 10, end = text.find(" namespace", name_at);
            if (end != std::string::npos)
                text.insert(end + 10, " (add \"" + text.substr(name_at, end - name_at) + "\" to namespaces)");
        }
        const toml::node* n = key.empty() ? nullptr : t_.get(key);
        if (!n) fail(file_, t_, "service." + s_.name, text);
        if (index && n->is_array() && *index < n->as_array()->size()) n = n->as_array()->get(*index);
        fail(file_, *n, prefix_ + key + (index ? "[" + std::to_string(*index) + "]" : ""), text);
    }

    std::vector<std::pair<std::string, std::size_t>> op_origin_;  // key and index behind each user fs op
    std::size_t preset_ops_ = 0;                                   // the sandbox preset's ops come first
    const std::string& file_;
    std::string prefix_;
    const toml::table& t_;
    const config_options& o_;
    service_spec s_;
};

void check_order(const std::string& file, const config& c, const toml::table& services) {
    std::vector<const service_spec*> specs;
    for (const auto& s : c.services) specs.push_back(&s);
    start_plan plan = plan_start(specs);
    if (plan.ok()) return;
    const service_spec& s = *specs[plan.unknown.empty() ? plan.cycle.front() : plan.unknown_in];
    const toml::node* n = services.get(s.name)->as_table()->get("after");
    if (!plan.unknown.empty()) fail(file, *n, "service." + s.name + ".after", "no service named \"" + plan.unknown + "\"");
    fail(file, *n, "service." + s.name + ".after", "dependency cycle through \"" + s.name + "\"");
}

}  // namespace

config_error::config_error(std::string file, int line, int column, std::string field, std::string problem)
    : spec_error(locate(file, line, column, field, problem)),
      file_(std::move(file)), line_(line), column_(column), field_(std::move(field)) {}

std::optional<std::uint64_t> parse_size(std::string_view t) { return drover::parse_size(t); }

std::optional<int> parse_signal(std::string_view t) { return drover::parse_signal(t); }

std::optional<std::vector<std::string>> split_command(std::string_view t) {
    std::vector<std::string> out;
    std::string cur;
    bool in_word = false;
    char quote = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        char c = t[i];
        if (quote) {
            if (c == quote) quote = 0;
            else if (c == '\\' && quote == '"' && i + 1 < t.size()) cur += t[++i];
            else cur += c;
        } else if (c == '\'' || c == '"') {
            quote = c;
            in_word = true;
        } else if (c == '\\' && i + 1 < t.size()) {
            cur += t[++i];
            in_word = true;
        } else if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) out.push_back(std::exchange(cur, {}));
            in_word = false;
        } else {
            cur += c;
            in_word = true;
        }
    }
    if (quote) return std::nullopt;
    if (in_word) out.push_back(cur);
    return out;
}

config parse_config(std::string_view text, const std::string& file, const config_options& options) {
    toml::table root;
    try {
        root = toml::parse(text, file);
    } catch (const toml::parse_error& e) {
        auto b = e.source().begin;
        throw config_error(file, static_cast<int>(b.line), static_cast<int>(b.column), "", std::string(e.description()));
    }
    config c;
    for (const auto& [k, v] : root) {
        std::string key(k.str());
        if (key == "service") {
            if (!v.is_table()) fail(file, v, "service", "expected tables [service.NAME]");
        } else if (key == "supervisor") {
            if (!v.is_table()) fail(file, v, "supervisor", "expected a table [supervisor]");
            for (const auto& [sk, sv] : *v.as_table()) {
                const std::string field = "supervisor." + std::string(sk.str());
                if (sk.str() != "control_socket" && sk.str() != "metrics_listen") fail(file, sv, field, "unknown field");
                if (!sv.is_string()) fail(file, sv, field, "expected a string");
                if (sk.str() == "control_socket") {
                    c.control_socket = *sv.value<std::string>();
                    continue;
                }
                c.metrics_listen = *sv.value<std::string>();
                // Checked here, so that a bad address is an error located in the file.
                try {
                    (void)parse_metrics_address(c.metrics_listen);
                } catch (const std::invalid_argument& e) {
                    fail(file, sv, field, e.what());
                }
            }
        } else {
            fail(file, v, key, "unknown table or field: services go in [service.NAME], settings in [supervisor]");
        }
    }
    const toml::table* services = root["service"].as_table();
    if (!services || services->empty()) throw config_error(file, 1, 1, "service", "no [service.NAME] table: nothing to run");
    for (const auto& [k, v] : *services) {
        std::string name(k.str());
        if (!v.is_table()) fail(file, v, "service." + name, "expected a table [service." + name + "]");
        c.services.push_back(service_reader(file, name, *v.as_table(), options).read());
    }
    check_order(file, c, *services);
    return c;
}

config load_config(const std::string& path, const config_options& options) {
    // Bounded: a configuration is text of a few KiB, not /dev/zero.
    constexpr std::size_t max_bytes = 1 << 20;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw config_error(path, 0, 0, "", std::string("cannot read the file: ") + std::strerror(errno));
    std::string text;
    char buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        text.append(buf, static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_bytes) throw config_error(path, 0, 0, "", "larger than 1 MiB: not a configuration");
    }
    if (in.bad()) throw config_error(path, 0, 0, "", std::string("cannot read the file: ") + std::strerror(errno));
    return parse_config(text, path, options);
}

}  // namespace drover::supervise
