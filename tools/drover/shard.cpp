// Input slices for scheduler arrays, and reading `drover parallel --json` results back.
#include "shard.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "drover/spawn/units.hpp"
#include "drover/sys/unique_fd.hpp"

namespace drover::cli {

namespace {

// FNV-1a, 64 bits, then a final mix (FNV's low bits follow the last byte's: lines "1".."9"
// would split by parity): the same line lands in the same shard on every machine and run.
std::uint64_t stable_hash(std::string_view s) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

std::optional<std::uint64_t> number(std::string_view t, std::uint64_t lo, std::uint64_t hi) {
    auto v = parse_integer(t, static_cast<std::int64_t>(lo), static_cast<std::int64_t>(hi));
    if (!v) return std::nullopt;
    return static_cast<std::uint64_t>(*v);
}

std::string shard_range_text() { return "a number from 1 to " + std::to_string(max_shards); }

// The slice a Slurm array task is: ids from _MIN in steps of _STEP, _COUNT of them.
shard_parse from_slurm(const env_lookup& env, std::optional<std::uint64_t> given_count) {
    auto var = [&](const char* name) -> std::optional<std::string_view> {
        const char* v = env(name);
        if (!v) return std::nullopt;
        return std::string_view(v);
    };
    auto id_text = var("SLURM_ARRAY_TASK_ID");
    const std::string ids = "SLURM_ARRAY_TASK_ID=" + printable(id_text.value_or(""));
    auto read = [&](const char* name, std::uint64_t lo, std::uint64_t hi) -> shard_parse {
        auto t = var(name);
        if (!t) return {std::nullopt, std::string("--shard auto: ") + ids + " but " + name + " is not set"};
        if (!number(*t, lo, hi))
            return {std::nullopt, std::string("--shard auto: ") + name + "='" + printable(*t) +
                                      "' is not a number from " + std::to_string(lo) + " to " + std::to_string(hi)};
        return {};
    };
    constexpr std::uint64_t max_id = 1ULL << 32;
    if (!number(*id_text, 0, max_id))
        return {std::nullopt, "--shard auto: " + ids + " is not a number from 0 to " + std::to_string(max_id)};
    for (auto [name, lo, hi] : {std::tuple{"SLURM_ARRAY_TASK_MIN", std::uint64_t{0}, max_id},
                                std::tuple{"SLURM_ARRAY_TASK_COUNT", std::uint64_t{1}, max_shards}})
        if (shard_parse p = read(name, lo, hi); !p.error.empty()) return p;
    std::uint64_t id = *number(*id_text, 0, max_id);
    std::uint64_t min = *number(*var("SLURM_ARRAY_TASK_MIN"), 0, max_id);
    std::uint64_t count = *number(*var("SLURM_ARRAY_TASK_COUNT"), 1, max_shards);
    std::uint64_t step = 1;
    if (var("SLURM_ARRAY_TASK_STEP")) {
        if (shard_parse p = read("SLURM_ARRAY_TASK_STEP", 1, max_id); !p.error.empty()) return p;
        step = *number(*var("SLURM_ARRAY_TASK_STEP"), 1, max_id);
    }
    // An array given as a list (--array=1,5,7) has no step that spaces its ids: the
    // index of this task cannot be known from its id.
    if (id < min || (id - min) % step != 0 || (id - min) / step >= count)
        return {std::nullopt, "--shard auto: " + ids + " is not MIN + k*STEP for k below COUNT (SLURM_ARRAY_TASK_MIN=" +
                                  std::to_string(min) + ", _STEP=" + std::to_string(step) + ", _COUNT=" +
                                  std::to_string(count) + "): for an array given as a list use --shard K/N"};
    if (given_count && *given_count != count)
        return {std::nullopt, "--shard auto/" + std::to_string(*given_count) + ": the Slurm array has " +
                                  std::to_string(count) + " tasks (SLURM_ARRAY_TASK_COUNT)"};
    shard_spec s;
    s.index = (id - min) / step;
    s.count = count;
    s.source = ids + " of SLURM_ARRAY_TASK_COUNT=" + std::to_string(count);
    return {s, {}};
}

// How deeply arrays and objects nest in a JSON text (brackets inside strings do not count).
// A record nested 100,000 levels deep would overflow the stack of the recursive dump that
// `drover results merge` prints it with.
std::size_t nesting(std::string_view text) noexcept {
    std::size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

constexpr std::size_t max_nesting = 64;

}  // namespace

std::string printable(std::string_view text) {
    constexpr std::size_t max = 120;
    std::string out;
    for (std::size_t i = 0; i < text.size() && i < max; ++i) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else out += static_cast<char>(c);
    }
    if (text.size() > max) out += "…";
    return out;
}

bool shard_spec::takes(std::uint64_t line, std::string_view text) const noexcept {
    if (count <= 1) return true;
    std::uint64_t key = by_hash ? stable_hash(text) : line - 1;
    return key % count == index;
}

shard_parse parse_shard(std::string_view text, const env_lookup& env) {
    const std::string quoted = "--shard '" + printable(text) + "'";
    auto slash = text.find('/');
    std::string_view left = text.substr(0, slash);
    std::optional<std::uint64_t> count;
    if (slash != std::string_view::npos) {
        count = number(text.substr(slash + 1), 1, max_shards);
        if (!count) return {std::nullopt, quoted + ": N (after the '/') must be " + shard_range_text()};
    }
    if (left == "auto") {
        if (env("SLURM_ARRAY_TASK_ID")) return from_slurm(env, count);
        if (const char* k8s = env("JOB_COMPLETION_INDEX")) {
            if (!count)
                return {std::nullopt, "--shard auto: JOB_COMPLETION_INDEX is set but the number of shards is not: "
                                      "use --shard auto/N with the Job's completions"};
            auto index = number(k8s, 0, *count - 1);
            if (!index)
                return {std::nullopt, "--shard auto/" + std::to_string(*count) + ": JOB_COMPLETION_INDEX='" + printable(k8s) +
                                          "' is not a number from 0 to " + std::to_string(*count - 1)};
            shard_spec s;
            s.index = *index;
            s.count = *count;
            s.source = "JOB_COMPLETION_INDEX=" + printable(k8s) + " of " + std::to_string(*count);
            return {s, {}};
        }
        return {std::nullopt, "--shard auto: neither a Slurm array task (SLURM_ARRAY_TASK_ID) nor a Kubernetes "
                              "Indexed Job (JOB_COMPLETION_INDEX): use --shard K/N"};
    }
    if (!count) return {std::nullopt, quoted + ": expected K/N (shard K of N, K from 0), auto or auto/N"};
    auto index = number(left, 0, *count - 1);
    if (!index)
        return {std::nullopt, quoted + ": K (before the '/') must be a number from 0 to " + std::to_string(*count - 1)};
    shard_spec s;
    s.index = *index;
    s.count = *count;
    s.source = "--shard " + printable(text);
    return {s, {}};
}

bool result_record::done(bool failed_too) const {
    if (interrupted || verdict == "cancelled") return false;
    return ok || !failed_too;
}

std::string read_records(const std::string& file, const std::function<void(result_record&&)>& each) {
    sys::unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    const std::string path = printable(file);  // as named in messages
    if (!fd) return path + ": " + std::strerror(errno);
    std::string buf;
    std::uint64_t line_no = 0;
    bool eof = false;
    std::size_t start = 0;  // of the current line in buf
    auto one = [&](std::string_view text) -> std::string {
        ++line_no;
        const std::string where = path + ":" + std::to_string(line_no);
        if (text.find_first_not_of(" \t\r") == std::string_view::npos) return {};
        if (nesting(text) > max_nesting)
            return where + ": nested more than " + std::to_string(max_nesting) + " levels deep (not a result record)";
        nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
        if (j.is_discarded() || !j.is_object()) return where + ": not a JSON object (a line of drover parallel --json)";
        result_record r;
        auto field = [&](const char* name, auto check) { return j.contains(name) && check(j[name]); };
        if (!field("line", [](const nlohmann::json& v) { return v.is_number_unsigned() && v.get<std::uint64_t>() > 0; }))
            return where + ": no \"line\" number from 1 (results of drover parallel --json before 0.x, or not results)";
        if (!field("input", [](const nlohmann::json& v) { return v.is_string(); }))
            return where + ": no \"input\" string";
        if (!field("verdict", [](const nlohmann::json& v) { return v.is_string(); }))
            return where + ": no \"verdict\" string";
        if (!field("ok", [](const nlohmann::json& v) { return v.is_boolean(); })) return where + ": no \"ok\" true or false";
        r.line = j["line"].get<std::uint64_t>();
        r.input = j["input"].get<std::string>();
        r.verdict = j["verdict"].get<std::string>();
        r.ok = j["ok"].get<bool>();
        if (j.contains("interrupted")) {
            if (!j["interrupted"].is_boolean()) return where + ": \"interrupted\" is not true or false";
            r.interrupted = j["interrupted"].get<bool>();
        }
        for (auto [name, slot] : {std::pair{"shard", &r.shard}, std::pair{"shards", &r.shards}})
            if (j.contains(name)) {
                if (!j[name].is_number_unsigned()) return where + ": \"" + name + "\" is not a number";
                *slot = j[name].get<std::uint64_t>();
            }
        r.where = where;
        r.raw = std::move(j);
        each(std::move(r));
        return {};
    };
    for (;;) {
        std::size_t nl = buf.find('\n', start);
        if (nl != std::string::npos) {
            if (std::string e = one(std::string_view(buf).substr(start, nl - start)); !e.empty()) return e;
            start = nl + 1;
            continue;
        }
        if (eof) {
            if (start < buf.size())
                if (std::string e = one(std::string_view(buf).substr(start)); !e.empty()) return e;
            return {};
        }
        buf.erase(0, start);
        start = 0;
        if (buf.size() > max_record_bytes)
            return path + ":" + std::to_string(line_no + 1) + ": a line longer than " +
                   std::to_string(max_record_bytes >> 20) + " MiB";
        char chunk[1 << 16];
        ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return path + ": reading: " + std::strerror(errno);
        if (n == 0) eof = true;
        buf.append(chunk, static_cast<std::size_t>(n));
    }
}

std::string merge_records(const std::vector<std::string>& paths, merged_results& out) {
    std::string problem_seen;
    for (const std::string& path : paths) {
        std::string problem = read_records(path, [&](result_record&& r) {
            auto [it, fresh] = out.by_line.try_emplace(r.line);
            if (!fresh && it->second.input != r.input && problem_seen.empty())
                problem_seen = r.where + ": input line " + std::to_string(r.line) + " is '" + printable(r.input) + "' here but '" +
                               printable(it->second.input) + "' at " + it->second.where + ": results of different inputs";
            if (!fresh && it->second.done() && it->second.ok && r.done()) out.done_twice.push_back(r.line);
            // A later record wins unless it would replace a done input by an undone one.
            if (fresh || r.done() || !it->second.done()) it->second = std::move(r);
        });
        if (!problem.empty()) return problem;
        if (!problem_seen.empty()) return problem_seen;
    }
    std::sort(out.done_twice.begin(), out.done_twice.end());
    out.done_twice.erase(std::unique(out.done_twice.begin(), out.done_twice.end()), out.done_twice.end());
    return {};
}

}  // namespace drover::cli
