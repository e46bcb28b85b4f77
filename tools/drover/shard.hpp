// Slices of `drover parallel`'s input for a scheduler's array (--shard), and the JSON result
// records that `--resume` and `drover results` read back.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace drover::cli {

/// `text` as it may appear inside a one-line message: control characters escaped (\n, \xHH),
/// at most 120 bytes of it, "…" when cut.
std::string printable(std::string_view text);

/// This run's slice: input line n (from 1) is its own when `takes(n, text)`.
struct shard_spec {
    std::uint64_t index = 0;  ///< from 0
    std::uint64_t count = 1;
    bool by_hash = false;     ///< by a hash of the line's text instead of its number
    std::string source;       ///< where index and count came from, for messages ("--shard 2/4", "SLURM_ARRAY_TASK_ID=…")

    [[nodiscard]] bool takes(std::uint64_t line, std::string_view text) const noexcept;
};

/// The environment as --shard auto reads it (a parameter, so tests need not set variables).
using env_lookup = std::function<const char*(const char*)>;

/// Most shards an input can be split into.
inline constexpr std::uint64_t max_shards = 1'000'000;

/// "K/N" (0 <= K < N), "auto" (a Slurm job array: SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT)
/// or "auto/N" (a Slurm array, or a Kubernetes Indexed Job's JOB_COMPLETION_INDEX, in N
/// shards). The spec, or the problem as one line.
struct shard_parse {
    std::optional<shard_spec> spec;
    std::string error;
};
shard_parse parse_shard(std::string_view text, const env_lookup& env);

/// One result line of `drover parallel --json`, as far as resuming and merging need it.
struct result_record {
    std::uint64_t line = 0;  ///< input line number, from 1
    std::string input;
    std::string verdict;
    bool ok = false;
    bool interrupted = false;  ///< ended after the run was stopped (it ran only in part)
    std::optional<std::uint64_t> shard, shards;
    std::string where;  ///< "FILE:LINE"
    nlohmann::json raw;

    /// Whether the input was done: it ran to an end of its own (not cancelled, not cut
    /// short by stopping the run). `failed_too`: a failed job counts as not done.
    [[nodiscard]] bool done(bool failed_too = false) const;
};

/// Longest result line read back (a job's two streams of --max-output each, escaped).
inline constexpr std::size_t max_record_bytes = std::size_t{256} << 20;

/// Reads a file of result lines (blank lines skipped) and calls `each` for every record.
/// Returns "" or the problem as one line naming the file and line.
std::string read_records(const std::string& path, const std::function<void(result_record&&)>& each);

/// The records of `paths` merged: one per input line, in line order. For each line the
/// last record that counts as done wins, else the last one. `done_twice` gets the lines
/// that were done again after an ok record (a rerun of a failed one is not a duplicate).
struct merged_results {
    std::map<std::uint64_t, result_record> by_line;
    std::vector<std::uint64_t> done_twice;
};
std::string merge_records(const std::vector<std::string>& paths, merged_results& out);

}  // namespace drover::cli
