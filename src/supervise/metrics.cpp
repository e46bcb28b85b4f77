// metrics: the latency histogram and the Prometheus text rendering of a supervisor's metrics.
#include "drover/supervise/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>

namespace drover::supervise {

void latency_histogram::observe(double seconds) noexcept {
    // A bucket's bound is inclusive (le = "less or equal"); above the last bound only count grows.
    auto it = std::lower_bound(bounds.begin(), bounds.end(), seconds);
    if (it != bounds.end()) ++buckets[static_cast<std::size_t>(it - bounds.begin())];
    ++count;
    sum += seconds;
}

std::string escape_label_value(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

namespace {

// HELP text escapes backslash and newline only (the format's rule for docstrings).
std::string escape_help(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

// Builds the text one metric family at a time: its HELP and TYPE lines, then its samples.
class exposition {
public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name, type);
    }
    // `labels` is already rendered ({a="b",...}) or empty.
    void sample(std::string_view name, const std::string& labels, std::string_view value) {
        out_ += fmt::format("{}{} {}\n", name, labels, value);
    }
    void sample(std::string_view name, const std::string& labels, std::uint64_t value) {
        sample(name, labels, std::string_view(std::to_string(value)));
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

std::string label(std::string_view key, std::string_view value) {
    return fmt::format("{}=\"{}\"", key, escape_label_value(value));
}

std::string labels(std::initializer_list<std::string> parts) {
    std::string out = "{";
    for (const auto& p : parts) out += (out.size() > 1 ? "," : "") + p;
    return out + "}";
}

// Shortest text that reads back as the same double ("0.00025", "1", "1.5e-05").
std::string number(double v) { return fmt::format("{}", v); }

// One counter family with one sample per service, the value picked by `get`.
template <typename Get>
void per_service(exposition& e, const supervisor_metrics& m, std::string_view name, std::string_view help, Get get) {
    e.family(name, "counter", help);
    for (const auto& s : m.services) e.sample(name, labels({label("service", s.name)}), get(s.counters));
}

// One counter family split by a second label: `kinds` pairs a label value with its getter.
template <typename Get>
void per_service_by(exposition& e, const supervisor_metrics& m, std::string_view name, std::string_view help,
                    std::string_view key, std::initializer_list<std::pair<std::string_view, Get>> kinds) {
    e.family(name, "counter", help);
    for (const auto& s : m.services)
        for (const auto& [value, get] : kinds)
            e.sample(name, labels({label("service", s.name), label(key, value)}), get(s.counters));
}

using counter_of = std::uint64_t (*)(const service_counters&);

void render_info(exposition& e, const supervisor_metrics& m) {
    e.family("drover_build_info", "gauge", "drover's version; the value is always 1");
    e.sample("drover_build_info", labels({label("version", m.version)}), std::uint64_t{1});
    e.family("drover_start_time_seconds", "gauge", "when the supervisor started, in seconds since the Unix epoch");
    e.sample("drover_start_time_seconds", "", fmt::format("{:.3f}", m.start_time_seconds));
}

void render_states(exposition& e, const supervisor_metrics& m) {
    std::uint64_t live = 0;
    for (const auto& s : m.services) live += s.live ? 1 : 0;
    e.family("drover_children_live", "gauge", "services whose main process exists (spawned, not yet reaped)");
    e.sample("drover_children_live", "", live);
    e.family("drover_service_up", "gauge", "1 while the service is running (started and ready), else 0");
    for (const auto& s : m.services)
        e.sample("drover_service_up", labels({label("service", s.name)}),
                 std::uint64_t{s.state == service_state::running ? 1U : 0U});
    e.family("drover_service_state", "gauge", "1 for the state the service is in, 0 for the others");
    for (const auto& s : m.services)
        for (auto st : {service_state::stopped, service_state::waiting, service_state::starting, service_state::running,
                        service_state::backoff, service_state::stopping, service_state::exited, service_state::failed})
            e.sample("drover_service_state", labels({label("service", s.name), label("state", state_name(st))}),
                     std::uint64_t{s.state == st ? 1U : 0U});
}

void render_runs(exposition& e, const supervisor_metrics& m) {
    per_service(e, m, "drover_service_spawns_total", "runs started (execve succeeded)",
                [](const service_counters& c) { return c.spawns; });
    e.family("drover_service_spawn_failures_total", "counter",
             "runs that could not start, by the stage that failed (\"supervisor\": before the spawn)");
    for (const auto& s : m.services)
        for (const auto& [stage, n] : s.counters.spawn_failures)
            e.sample("drover_service_spawn_failures_total", labels({label("service", s.name), label("stage", stage)}), n);
    per_service(e, m, "drover_service_restarts_total", "automatic restarts",
                [](const service_counters& c) { return c.restarts; });
    per_service_by<counter_of>(e, m, "drover_service_exits_total", "ended runs by how they ended", "kind",
                               {{"success", [](const service_counters& c) { return c.exits_success; }},
                                {"code", [](const service_counters& c) { return c.exits_code; }},
                                {"signal", [](const service_counters& c) { return c.exits_signal; }}});
    per_service_by<counter_of>(e, m, "drover_service_kills_total", "runs ended by a limit", "reason",
                               {{"oom", [](const service_counters& c) { return c.oom_kills; }},
                                {"watchdog", [](const service_counters& c) { return c.watchdog_kills; }},
                                {"start_timeout", [](const service_counters& c) { return c.start_timeout_kills; }}});
    per_service_by<counter_of>(
        e, m, "drover_service_throttled_total", "restarts held back: a backoff delay waited, or given up at the limit",
        "reason",
        {{"backoff", [](const service_counters& c) { return c.backoffs; }},
         {"restart_limit", [](const service_counters& c) { return c.restart_limit_hits; }}});
}

void render_output(exposition& e, const supervisor_metrics& m) {
    per_service_by<counter_of>(e, m, "drover_service_output_lines_total", "lines of service output logged", "stream",
                               {{"stdout", [](const service_counters& c) { return c.stdout_lines; }},
                                {"stderr", [](const service_counters& c) { return c.stderr_lines; }}});
    per_service_by<counter_of>(e, m, "drover_service_output_bytes_total",
                               "bytes of service output logged (without newlines)", "stream",
                               {{"stdout", [](const service_counters& c) { return c.stdout_bytes; }},
                                {"stderr", [](const service_counters& c) { return c.stderr_bytes; }}});
}

void render_latency(exposition& e, const supervisor_metrics& m) {
    constexpr std::string_view name = "drover_spawn_latency_seconds";
    e.family(name, "histogram", "time from the start of a spawn (its prepare stage) to a successful execve, by namespace set");
    for (const auto& [set, h] : m.spawn_latency) {
        const std::string ns = label("namespaces", set);
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h.bounds.size(); ++i) {
            cumulative += h.buckets[i];
            e.sample("drover_spawn_latency_seconds_bucket", labels({ns, label("le", number(h.bounds[i]))}), cumulative);
        }
        e.sample("drover_spawn_latency_seconds_bucket", labels({ns, label("le", "+Inf")}), h.count);
        e.sample("drover_spawn_latency_seconds_sum", labels({ns}), number(h.sum));
        e.sample("drover_spawn_latency_seconds_count", labels({ns}), h.count);
    }
}

}  // namespace

std::string render_prometheus(const supervisor_metrics& m) {
    exposition e;
    render_info(e, m);
    render_states(e, m);
    render_runs(e, m);
    render_output(e, m);
    render_latency(e, m);
    return e.take();
}

}  // namespace drover::supervise
