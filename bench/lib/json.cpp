// JSON for a bench_report, both ways (the round trip is tested); schema in docs/bench-schema.md.
#include <cstdint>
#include <limits>
#include <stdexcept>

#include "bench/report.hpp"

namespace drover::bench {

using nlohmann::json;

namespace {

json summary_json(const summary& s) {
    return {{"n", s.n},           {"p50", s.p50},       {"p90", s.p90},          {"p99", s.p99},
            {"max", s.max},       {"min", s.min},       {"mean", s.mean},        {"stddev", s.stddev},
            {"outliers", s.outliers}, {"bimodal", s.bimodal}};
}

json interval_json(const interval& i) { return json::array({i.low, i.high}); }

const json& field(const json& j, const char* name) {
    if (!j.is_object() || !j.contains(name))
        throw std::runtime_error(std::string("bench JSON: missing field \"") + name + "\"");
    return j.at(name);
}

// The readers check each value's type and range and say which field is wrong: nlohmann's
// get<>() would throw its own type_error, or turn -1 into a huge count and 3.7 into 3.
[[noreturn]] void wrong(const char* name, const char* expected) {
    throw std::runtime_error(std::string("bench JSON: field \"") + name + "\" is not " + expected);
}

std::string text_of(const json& v, const char* name) {
    if (!v.is_string()) wrong(name, "a string");
    return v.get<std::string>();
}

double number_of(const json& v, const char* name) {
    if (!v.is_number()) wrong(name, "a number");
    return v.get<double>();
}

bool flag_of(const json& v, const char* name) {
    if (!v.is_boolean()) wrong(name, "true or false");
    return v.get<bool>();
}

// An integer that fits in Int: exactly, with no wrap-around.
template <class Int>
Int integer_of(const json& v, const char* name) {
    using limits = std::numeric_limits<Int>;
    if (v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0)) {
        auto u = v.get<std::uint64_t>();
        if (u <= static_cast<std::uint64_t>(limits::max())) return static_cast<Int>(u);
    } else if (v.is_number_integer()) {
        auto i = v.get<std::int64_t>();
        if constexpr (limits::is_signed)
            if (i >= static_cast<std::int64_t>(limits::min())) return static_cast<Int>(i);
    }
    wrong(name, limits::is_signed ? "an integer in range" : "a non-negative integer in range");
}

// A field added after the schema's first release: null when an older report lacks it.
const json* optional_field(const json& j, const char* name) {
    return j.is_object() && j.contains(name) ? &j.at(name) : nullptr;
}

const json& array_of(const json& v, const char* name) {
    if (!v.is_array()) wrong(name, "an array");
    return v;
}

std::vector<std::string> texts_of(const json& v, const char* name) {
    std::vector<std::string> out;
    for (const json& e : array_of(v, name)) out.push_back(text_of(e, name));
    return out;
}

failure_counts failures_of(const json& v, const char* name) {
    if (!v.is_object()) wrong(name, "an object of counts");
    failure_counts out;
    for (const auto& [reason, count] : v.items()) out[reason] = integer_of<std::size_t>(count, name);
    return out;
}

summary summary_from(const json& j) {
    summary s;
    s.n = integer_of<std::size_t>(field(j, "n"), "n");
    s.p50 = number_of(field(j, "p50"), "p50");
    s.p90 = number_of(field(j, "p90"), "p90");
    s.p99 = number_of(field(j, "p99"), "p99");
    s.max = number_of(field(j, "max"), "max");
    s.min = number_of(field(j, "min"), "min");
    s.mean = number_of(field(j, "mean"), "mean");
    s.stddev = number_of(field(j, "stddev"), "stddev");
    s.outliers = integer_of<std::size_t>(field(j, "outliers"), "outliers");
    s.bimodal = flag_of(field(j, "bimodal"), "bimodal");
    return s;
}

interval interval_from(const json& j, const char* name) {
    if (!j.is_array() || j.size() != 2) wrong(name, "a [low, high] pair");
    return {number_of(j[0], name), number_of(j[1], name)};
}

namespace_set set_from(const json& j) {
    std::string text = text_of(j, "namespaces");
    auto s = namespace_set::parse(text);
    if (!s) throw std::runtime_error("bench JSON: bad namespace set \"" + text + "\"");
    return *s;
}

ns ns_from(const std::string& name) {
    auto n = parse_ns(name);
    if (!n) throw std::runtime_error("bench JSON: bad namespace \"" + name + "\"");
    return *n;
}

json marginals_json(const std::vector<marginal>& ms) {
    json out = json::array();
    for (const marginal& m : ms) {
        out.push_back({{"namespace", ns_name(m.what)},
                       {"over_none", m.over_none ? json(*m.over_none) : json(nullptr)},
                       {"pairs", m.pairs},
                       {"median", m.median},
                       {"min", m.min},
                       {"max", m.max}});
    }
    return out;
}

std::vector<marginal> marginals_from(const json& j, const char* name) {
    std::vector<marginal> out;
    for (const json& e : array_of(j, name)) {
        marginal m;
        m.what = ns_from(text_of(field(e, "namespace"), "namespace"));
        if (const json& o = field(e, "over_none"); !o.is_null()) m.over_none = number_of(o, "over_none");
        m.pairs = integer_of<std::size_t>(field(e, "pairs"), "pairs");
        m.median = number_of(field(e, "median"), "median");
        m.min = number_of(field(e, "min"), "min");
        m.max = number_of(field(e, "max"), "max");
        out.push_back(m);
    }
    return out;
}

json peer_json(const peer_result& p) {
    return {{"name", p.name},
            {"argv", p.argv},
            {"ran", p.ran},
            {"note", p.note},
            {"total", summary_json(p.total)},
            {"failures", p.failures}};
}

peer_result peer_from(const json& j) {
    peer_result p;
    p.name = text_of(field(j, "name"), "name");
    p.argv = texts_of(field(j, "argv"), "argv");
    p.ran = flag_of(field(j, "ran"), "ran");
    p.note = text_of(field(j, "note"), "note");
    p.total = summary_from(field(j, "total"));
    p.failures = failures_of(field(j, "failures"), "failures");
    return p;
}

}  // namespace

json to_json(const bench_report& r) {
    json j;
    j["schema"] = json_schema_id;
    j["machine"] = {{"date", r.machine.date},
                    {"kernel", r.machine.kernel},
                    {"cpu_model", r.machine.cpu_model},
                    {"cores", r.machine.cores},
                    {"cgroup_mode", r.machine.cgroup_mode},
                    {"drover_version", r.machine.drover_version},
                    {"drover_commit", r.machine.drover_commit},
                    {"clone_method", r.machine.clone_method},
                    {"floor_source", r.machine.floor_source},
                    {"load_before", r.machine.load_before},
                    {"load_after", r.machine.load_after},
                    {"cpu_mhz_before", r.machine.mhz_before},
                    {"cpu_mhz_after", r.machine.mhz_after}};
    const parameters& p = r.params;
    j["parameters"] = {{"sets", p.sets},
                       {"count", p.count},
                       {"warmup", p.warmup},
                       {"workload", p.workload},
                       {"workload_path", p.workload_path},
                       {"seed", p.seed},
                       {"concurrency", p.concurrency},
                       {"duration", p.duration},
                       {"spawn_threads", p.spawn_threads},
                       {"peers", p.peers}};
    j["units"] = "ns";
    json combos = json::array();
    for (const combo_result& c : r.combos) {
        json stages = json::object();
        for (std::size_t k = 0; k < stage_names.size(); ++k)
            stages[stage_names[k]] = summary_json(c.stages[k]);
        json marg = json::object();
        for (const auto& [n, v] : c.marginal) marg[std::string(ns_name(n))] = v;
        combos.push_back({{"namespaces", c.set.str()},
                          {"bits", c.set.bits()},
                          {"drover", summary_json(c.drover)},
                          {"stages", stages},
                          {"floor", summary_json(c.floor)},
                          {"bare_floor", summary_json(c.bare)},
                          {"fork_floor", summary_json(c.fork)},
                          {"floor_method", c.floor_method},
                          {"drover_method", c.drover_method},
                          {"ratio_p50", c.ratio()},
                          {"ratio_p50_ci95", interval_json(c.ratio_ci)},
                          {"drover_p50_ci95", interval_json(c.drover_p50_ci)},
                          {"bare_ratio_p50", c.bare_ratio()},
                          {"fork_ratio_p50", c.fork_ratio()},
                          {"drover_share_p50", c.drover_share()},
                          {"setup_share_p50", c.setup_share()},
                          {"drover_failures", c.drover_failures},
                          {"floor_failures", c.floor_failures},
                          {"bare_floor_failures", c.bare_failures},
                          {"fork_floor_failures", c.fork_failures},
                          {"probe", summary_json(c.probe)},
                          {"probe_failures", c.probe_failures},
                          {"marginal", marg}});
    }
    j["combinations"] = combos;
    j["marginal"] = marginals_json(r.marginals);
    j["floor_marginal"] = marginals_json(r.floor_marginals);
    j["posix_spawn"] = r.posix_spawn ? peer_json(*r.posix_spawn) : json(nullptr);
    j["peer_namespaces"] = r.peer_set;
    json peers = json::array();
    for (const peer_result& p2 : r.peers) peers.push_back(peer_json(p2));
    j["peers"] = peers;
    json tp = json::array();
    for (const throughput_result& t : r.throughput) {
        tp.push_back({{"namespaces", t.set.str()},
                      {"concurrency", t.concurrency},
                      {"seconds", t.seconds},
                      {"spawns", t.spawns},
                      {"failures", t.failures},
                      {"per_second", t.per_second},
                      {"latency", summary_json(t.latency)},
                      {"first_decile_p50", t.first_decile_p50},
                      {"last_decile_p50", t.last_decile_p50},
                      {"exit_to_callback", summary_json(t.exit_to_callback)},
                      {"floor_method", t.floor_method},
                      {"floor_processes", t.floor_processes},
                      {"floor_seconds", t.floor_seconds},
                      {"floor_spawns", t.floor_spawns},
                      {"floor_failures", t.floor_failures},
                      {"floor_per_second", t.floor_per_second},
                      {"floor_ratio", t.floor_ratio()},
                      {"floor_note", t.floor_note}});
    }
    j["throughput"] = tp;
    j["elapsed_seconds"] = r.elapsed;
    j["warnings"] = r.warnings;
    return j;
}

bench_report report_from_json(const json& j) {
    if (text_of(field(j, "schema"), "schema") != json_schema_id)
        throw std::runtime_error("bench JSON: schema is not " + std::string(json_schema_id));
    bench_report r;
    const json& m = field(j, "machine");
    r.machine.date = text_of(field(m, "date"), "date");
    r.machine.kernel = text_of(field(m, "kernel"), "kernel");
    r.machine.cpu_model = text_of(field(m, "cpu_model"), "cpu_model");
    r.machine.cores = integer_of<int>(field(m, "cores"), "cores");
    r.machine.cgroup_mode = text_of(field(m, "cgroup_mode"), "cgroup_mode");
    r.machine.drover_version = text_of(field(m, "drover_version"), "drover_version");
    r.machine.drover_commit = text_of(field(m, "drover_commit"), "drover_commit");
    r.machine.clone_method = text_of(field(m, "clone_method"), "clone_method");
    r.machine.floor_source = text_of(field(m, "floor_source"), "floor_source");
    r.machine.load_before = number_of(field(m, "load_before"), "load_before");
    r.machine.load_after = number_of(field(m, "load_after"), "load_after");
    // Reports from before 2026-12-01 have no clock.
    if (m.contains("cpu_mhz_before")) r.machine.mhz_before = number_of(m["cpu_mhz_before"], "cpu_mhz_before");
    if (m.contains("cpu_mhz_after")) r.machine.mhz_after = number_of(m["cpu_mhz_after"], "cpu_mhz_after");
    const json& p = field(j, "parameters");
    r.params.sets = texts_of(field(p, "sets"), "sets");
    r.params.count = integer_of<int>(field(p, "count"), "count");
    r.params.warmup = integer_of<int>(field(p, "warmup"), "warmup");
    r.params.workload = text_of(field(p, "workload"), "workload");
    r.params.workload_path = text_of(field(p, "workload_path"), "workload_path");
    r.params.seed = integer_of<std::uint64_t>(field(p, "seed"), "seed");
    for (const json& c : array_of(field(p, "concurrency"), "concurrency"))
        r.params.concurrency.push_back(integer_of<int>(c, "concurrency"));
    r.params.duration = number_of(field(p, "duration"), "duration");
    if (const json* v = optional_field(p, "spawn_threads"))
        r.params.spawn_threads = integer_of<unsigned>(*v, "spawn_threads");
    r.params.peers = flag_of(field(p, "peers"), "peers");
    for (const json& c : array_of(field(j, "combinations"), "combinations")) {
        combo_result cr;
        cr.set = set_from(field(c, "namespaces"));
        if (integer_of<int>(field(c, "bits"), "bits") != cr.set.bits())
            throw std::runtime_error("bench JSON: bits do not match namespaces " + cr.set.str());
        cr.drover = summary_from(field(c, "drover"));
        const json& st = field(c, "stages");
        for (std::size_t k = 0; k < stage_names.size(); ++k)
            cr.stages[k] = summary_from(field(st, stage_names[k]));
        cr.floor = summary_from(field(c, "floor"));
        cr.bare = summary_from(field(c, "bare_floor"));
        cr.fork = summary_from(field(c, "fork_floor"));
        cr.floor_method = text_of(field(c, "floor_method"), "floor_method");
        cr.drover_method = text_of(field(c, "drover_method"), "drover_method");
        cr.ratio_ci = interval_from(field(c, "ratio_p50_ci95"), "ratio_p50_ci95");
        cr.drover_p50_ci = interval_from(field(c, "drover_p50_ci95"), "drover_p50_ci95");
        cr.drover_failures = failures_of(field(c, "drover_failures"), "drover_failures");
        cr.floor_failures = failures_of(field(c, "floor_failures"), "floor_failures");
        cr.bare_failures = failures_of(field(c, "bare_floor_failures"), "bare_floor_failures");
        cr.fork_failures = failures_of(field(c, "fork_floor_failures"), "fork_floor_failures");
        // Reports written before --probe existed have neither field.
        if (c.contains("probe")) cr.probe = summary_from(field(c, "probe"));
        if (c.contains("probe_failures"))
            cr.probe_failures = failures_of(field(c, "probe_failures"), "probe_failures");
        const json& marg = field(c, "marginal");
        if (!marg.is_object()) wrong("marginal", "an object");
        for (const auto& [name, v] : marg.items()) cr.marginal[ns_from(name)] = number_of(v, "marginal");
        r.combos.push_back(std::move(cr));
    }
    r.marginals = marginals_from(field(j, "marginal"), "marginal");
    r.floor_marginals = marginals_from(field(j, "floor_marginal"), "floor_marginal");
    if (const json& ps = field(j, "posix_spawn"); !ps.is_null()) r.posix_spawn = peer_from(ps);
    r.peer_set = text_of(field(j, "peer_namespaces"), "peer_namespaces");
    for (const json& e : array_of(field(j, "peers"), "peers")) r.peers.push_back(peer_from(e));
    for (const json& t : array_of(field(j, "throughput"), "throughput")) {
        throughput_result tr;
        tr.set = set_from(field(t, "namespaces"));
        tr.concurrency = integer_of<int>(field(t, "concurrency"), "concurrency");
        tr.seconds = number_of(field(t, "seconds"), "seconds");
        tr.spawns = integer_of<std::size_t>(field(t, "spawns"), "spawns");
        tr.failures = failures_of(field(t, "failures"), "failures");
        tr.per_second = number_of(field(t, "per_second"), "per_second");
        tr.latency = summary_from(field(t, "latency"));
        tr.first_decile_p50 = number_of(field(t, "first_decile_p50"), "first_decile_p50");
        tr.last_decile_p50 = number_of(field(t, "last_decile_p50"), "last_decile_p50");
        // Came after the floor: older reports have no exit→callback latencies.
        if (const json* v = optional_field(t, "exit_to_callback")) tr.exit_to_callback = summary_from(*v);
        // The throughput floor came later: a report without it has no floor in any row.
        if (const json* v = optional_field(t, "floor_method")) {
            tr.floor_method = text_of(*v, "floor_method");
            // A count of processes: never negative (integer_of<int> would let -3 through).
            tr.floor_processes = static_cast<int>(integer_of<std::uint16_t>(field(t, "floor_processes"), "floor_processes"));
            tr.floor_seconds = number_of(field(t, "floor_seconds"), "floor_seconds");
            tr.floor_spawns = integer_of<std::size_t>(field(t, "floor_spawns"), "floor_spawns");
            tr.floor_failures = failures_of(field(t, "floor_failures"), "floor_failures");
            tr.floor_per_second = number_of(field(t, "floor_per_second"), "floor_per_second");
            tr.floor_note = text_of(field(t, "floor_note"), "floor_note");
        }
        r.throughput.push_back(std::move(tr));
    }
    r.elapsed = number_of(field(j, "elapsed_seconds"), "elapsed_seconds");
    r.warnings = texts_of(field(j, "warnings"), "warnings");
    return r;
}

}  // namespace drover::bench
