// JSON for a bench_report, both ways (the round trip is tested); schema in docs/bench-schema.md.
#include <stdexcept>

#include "bench/report.hpp"

namespace drover::bench {

using nlohmann::json;

namespace {

json summary_json(const summary& s) {
    return {{"n", s.n},     {"p50", s.p50}, {"p90", s.p90},   {"p99", s.p99},
            {"max", s.max}, {"min", s.min}, {"mean", s.mean}, {"stddev", s.stddev}};
}

const json& field(const json& j, const char* name) {
    if (!j.is_object() || !j.contains(name))
        throw std::runtime_error(std::string("bench JSON: missing field \"") + name + "\"");
    return j.at(name);
}

summary summary_from(const json& j) {
    summary s;
    s.n = field(j, "n").get<std::size_t>();
    s.p50 = field(j, "p50").get<double>();
    s.p90 = field(j, "p90").get<double>();
    s.p99 = field(j, "p99").get<double>();
    s.max = field(j, "max").get<double>();
    s.min = field(j, "min").get<double>();
    s.mean = field(j, "mean").get<double>();
    s.stddev = field(j, "stddev").get<double>();
    return s;
}

namespace_set set_from(const json& j) {
    std::string text = j.get<std::string>();
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

std::vector<marginal> marginals_from(const json& j) {
    std::vector<marginal> out;
    for (const json& e : j) {
        marginal m;
        m.what = ns_from(field(e, "namespace").get<std::string>());
        if (!field(e, "over_none").is_null()) m.over_none = e.at("over_none").get<double>();
        m.pairs = field(e, "pairs").get<std::size_t>();
        m.median = field(e, "median").get<double>();
        m.min = field(e, "min").get<double>();
        m.max = field(e, "max").get<double>();
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
    p.name = field(j, "name").get<std::string>();
    p.argv = field(j, "argv").get<std::vector<std::string>>();
    p.ran = field(j, "ran").get<bool>();
    p.note = field(j, "note").get<std::string>();
    p.total = summary_from(field(j, "total"));
    p.failures = field(j, "failures").get<failure_counts>();
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
                    {"drover_commit", r.machine.drover_commit}};
    const parameters& p = r.params;
    j["parameters"] = {{"sets", p.sets},
                       {"count", p.count},
                       {"warmup", p.warmup},
                       {"workload", p.workload},
                       {"workload_path", p.workload_path},
                       {"seed", p.seed},
                       {"concurrency", p.concurrency},
                       {"duration", p.duration},
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
                          {"ratio_p50", c.ratio()},
                          {"drover_failures", c.drover_failures},
                          {"floor_failures", c.floor_failures},
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
                      {"last_decile_p50", t.last_decile_p50}});
    }
    j["throughput"] = tp;
    j["elapsed_seconds"] = r.elapsed;
    return j;
}

bench_report report_from_json(const json& j) {
    if (field(j, "schema").get<std::string>() != json_schema_id)
        throw std::runtime_error("bench JSON: schema is not " + std::string(json_schema_id));
    bench_report r;
    const json& m = field(j, "machine");
    r.machine.date = field(m, "date").get<std::string>();
    r.machine.kernel = field(m, "kernel").get<std::string>();
    r.machine.cpu_model = field(m, "cpu_model").get<std::string>();
    r.machine.cores = field(m, "cores").get<int>();
    r.machine.cgroup_mode = field(m, "cgroup_mode").get<std::string>();
    r.machine.drover_version = field(m, "drover_version").get<std::string>();
    r.machine.drover_commit = field(m, "drover_commit").get<std::string>();
    const json& p = field(j, "parameters");
    r.params.sets = field(p, "sets").get<std::vector<std::string>>();
    r.params.count = field(p, "count").get<int>();
    r.params.warmup = field(p, "warmup").get<int>();
    r.params.workload = field(p, "workload").get<std::string>();
    r.params.workload_path = field(p, "workload_path").get<std::string>();
    r.params.seed = field(p, "seed").get<std::uint64_t>();
    r.params.concurrency = field(p, "concurrency").get<std::vector<int>>();
    r.params.duration = field(p, "duration").get<double>();
    r.params.peers = field(p, "peers").get<bool>();
    for (const json& c : field(j, "combinations")) {
        combo_result cr;
        cr.set = set_from(field(c, "namespaces"));
        if (field(c, "bits").get<int>() != cr.set.bits())
            throw std::runtime_error("bench JSON: bits do not match namespaces " + cr.set.str());
        cr.drover = summary_from(field(c, "drover"));
        const json& st = field(c, "stages");
        for (std::size_t k = 0; k < stage_names.size(); ++k)
            cr.stages[k] = summary_from(field(st, stage_names[k]));
        cr.floor = summary_from(field(c, "floor"));
        cr.drover_failures = field(c, "drover_failures").get<failure_counts>();
        cr.floor_failures = field(c, "floor_failures").get<failure_counts>();
        for (const auto& [name, v] : field(c, "marginal").items())
            cr.marginal[ns_from(name)] = v.get<double>();
        r.combos.push_back(std::move(cr));
    }
    r.marginals = marginals_from(field(j, "marginal"));
    r.floor_marginals = marginals_from(field(j, "floor_marginal"));
    if (!field(j, "posix_spawn").is_null()) r.posix_spawn = peer_from(j.at("posix_spawn"));
    r.peer_set = field(j, "peer_namespaces").get<std::string>();
    for (const json& e : field(j, "peers")) r.peers.push_back(peer_from(e));
    for (const json& t : field(j, "throughput")) {
        throughput_result tr;
        tr.set = set_from(field(t, "namespaces"));
        tr.concurrency = field(t, "concurrency").get<int>();
        tr.seconds = field(t, "seconds").get<double>();
        tr.spawns = field(t, "spawns").get<std::size_t>();
        tr.failures = field(t, "failures").get<failure_counts>();
        tr.per_second = field(t, "per_second").get<double>();
        tr.latency = summary_from(field(t, "latency"));
        tr.first_decile_p50 = field(t, "first_decile_p50").get<double>();
        tr.last_decile_p50 = field(t, "last_decile_p50").get<double>();
        r.throughput.push_back(std::move(tr));
    }
    r.elapsed = field(j, "elapsed_seconds").get<double>();
    return r;
}

}  // namespace drover::bench
