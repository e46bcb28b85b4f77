// `drover results merge|summary`: the --json result files of many `drover parallel` runs
// (the shards of a scheduler's array, a run and its --resume) as one set of results.
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "command.hpp"
#include "shard.hpp"

namespace drover::cli {

namespace {

struct results_options {
    std::vector<std::string> files;
    std::uint64_t expect = 0;  // inputs there should be, 0: unknown
    bool json = false;
};

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

// "3, 7, 12-15, 20 and 4 more": a list of line numbers a person can read.
std::string line_list(const std::vector<std::uint64_t>& lines, std::size_t shown = 20) {
    std::string out;
    std::size_t runs = 0, i = 0;
    for (; i < lines.size() && runs < shown; ++runs) {
        std::size_t j = i;
        while (j + 1 < lines.size() && lines[j + 1] == lines[j] + 1) ++j;
        if (!out.empty()) out += ", ";
        out += std::to_string(lines[i]);
        if (j > i) out += "-" + std::to_string(lines[j]);
        i = j + 1;
    }
    if (i < lines.size()) out += " and " + std::to_string(lines.size() - i) + " more";
    return out;
}

int merge_main(const results_options& o) {
    merged_results m;
    if (std::string problem = merge_records(o.files, m); !problem.empty()) {
        print_error("results: " + problem);
        return usage_exit;
    }
    for (const auto& [line, r] : m.by_line) {
        std::string text = dump(r.raw) + "\n";
        std::fwrite(text.data(), 1, text.size(), stdout);
    }
    return std::fflush(stdout) == 0 ? 0 : 125;
}

int summary_main(const results_options& o) {
    merged_results m;
    if (std::string problem = merge_records(o.files, m); !problem.empty()) {
        print_error("results: " + problem);
        return usage_exit;
    }
    std::uint64_t last = o.expect ? o.expect : (m.by_line.empty() ? 0 : m.by_line.rbegin()->first);
    std::vector<std::uint64_t> missing, not_done, failed, beyond;
    std::map<std::string, std::uint64_t> verdicts;
    struct shard_count {
        std::uint64_t done = 0, ok = 0;
    };
    std::map<std::uint64_t, shard_count> shards;
    std::uint64_t next = 1;
    for (const auto& [line, r] : m.by_line) {
        for (; next < line && next <= last; ++next) missing.push_back(next);
        next = line + 1;
        if (o.expect && line > o.expect) beyond.push_back(line);
        ++verdicts[r.verdict];
        if (!r.done()) not_done.push_back(line);
        else if (!r.ok) failed.push_back(line);
        if (r.shard && r.done()) {
            ++shards[*r.shard].done;
            if (r.ok) ++shards[*r.shard].ok;
        }
    }
    for (; next <= last; ++next) missing.push_back(next);
    const bool all_ok = missing.empty() && not_done.empty() && failed.empty() && beyond.empty();
    if (o.json) {
        nlohmann::json j;
        j["inputs"] = last;
        j["with_results"] = m.by_line.size();
        j["ok"] = all_ok;
        j["verdicts"] = verdicts;
        j["missing"] = missing;
        j["not_done"] = not_done;
        j["failed"] = failed;
        j["done_twice"] = m.done_twice;
        if (!beyond.empty()) j["beyond_expected"] = beyond;
        nlohmann::json per_shard = nlohmann::json::object();
        for (const auto& [k, c] : shards) per_shard[std::to_string(k)] = {{"done", c.done}, {"ok", c.ok}};
        j["shards"] = per_shard;
        std::printf("%s\n", dump(j).c_str());
        return all_ok ? 0 : 1;
    }
    std::printf("inputs: %llu%s, %zu with results, %zu missing, %zu not done (cancelled or interrupted), %zu failed\n",
                static_cast<unsigned long long>(last), o.expect ? " expected" : " (the highest line seen)",
                m.by_line.size(), missing.size(), not_done.size(), failed.size());
    std::string v;
    for (const auto& [name, n] : verdicts) v += (v.empty() ? "" : ", ") + name + " " + std::to_string(n);
    std::printf("verdicts: %s\n", v.empty() ? "none" : v.c_str());
    if (!shards.empty()) {
        std::string s;
        for (const auto& [k, c] : shards)
            s += (s.empty() ? "" : ", ") + std::to_string(k) + ": " + std::to_string(c.ok) + "/" + std::to_string(c.done) + " ok";
        std::printf("shards: %s\n", s.c_str());
    }
    if (!missing.empty()) std::printf("missing: lines %s\n", line_list(missing).c_str());
    if (!not_done.empty()) std::printf("not done: lines %s\n", line_list(not_done).c_str());
    if (!failed.empty()) std::printf("failed: lines %s\n", line_list(failed).c_str());
    if (!beyond.empty()) std::printf("beyond --expect: lines %s\n", line_list(beyond).c_str());
    if (!m.done_twice.empty()) std::printf("done more than once: lines %s\n", line_list(m.done_twice).c_str());
    return all_ok ? 0 : 1;
}

}  // namespace

command_main add_results_command(CLI::App& app) {
    auto o = std::make_shared<results_options>();
    CLI::App* r = app.add_subcommand(
        "results", "merge or summarise the --json result files of drover parallel runs (shards, resumed runs)");
    r->require_subcommand(1);
    auto mode = std::make_shared<std::string>();
    CLI::App* merge = r->add_subcommand(
        "merge", "one record per input line, in line order, on stdout: for each line the last record that is done "
                 "(not cancelled, not cut short by a stop), else the last one");
    merge->add_option("files", o->files, "result files (drover parallel --json output)")->required();
    merge->callback([mode] { *mode = "merge"; });
    CLI::App* summary = r->add_subcommand(
        "summary", "counts by verdict and shard, and the lines missing, not done or failed. Exit status 0 only if "
                   "every input is done and ok");
    summary->add_option("--expect", o->expect, "the number of input lines (default: the highest line seen)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
    summary->add_flag("--json", o->json, "the summary as one JSON object");
    summary->add_option("files", o->files, "result files (drover parallel --json output)")->required();
    summary->callback([mode] { *mode = "summary"; });
    return [o, mode] { return *mode == "merge" ? merge_main(*o) : summary_main(*o); };
}

}  // namespace drover::cli
