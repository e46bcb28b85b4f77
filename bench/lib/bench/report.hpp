// Reporters for a bench_report: terminal table, JSON (docs/bench-schema.md), CSV, Markdown,
// SVG charts. Pure functions from a report to text.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "bench/results.hpp"

namespace drover::bench {

/// The JSON document's schema identifier; bumped on incompatible changes.
inline constexpr const char* json_schema_id = "drover-bench/2";

nlohmann::json to_json(const bench_report& r);
/// Reads a document written by to_json(); throws std::runtime_error naming the bad field.
bench_report report_from_json(const nlohmann::json& j);

/// The readable table: combinations sorted by drover's p50, with ratios, then marginal
/// costs, baselines, peers and throughput.
std::string format_table(const bench_report& r);
/// One row per combination and stage (long format), then peers and throughput rows.
std::string format_csv(const bench_report& r);
std::string format_markdown(const bench_report& r);
/// Hand-written SVG, one chart per part of the report that has data: p50 per combination
/// (drover and floor), each namespace's marginal cost, a stacked per-stage breakdown, the
/// peers, and sustained throughput beside its floor.
std::string format_svg(const bench_report& r);

/// "1.23 ms", "456 µs", "789 ns".
std::string human_ns(double ns);

}  // namespace drover::bench
