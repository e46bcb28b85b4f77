// results_fuzz: what `drover parallel --shard/--resume` and `drover results` read from users —
// --shard text with the scheduler's variables, and result files. Errors are one line;
// accepted slices are in range and split every line into exactly one shard; merged results
// hold one record per line, each from 1.
#include <sys/mman.h>
#include <unistd.h>

#include <map>

#include "fuzz.hpp"
#include "shard.hpp"

using namespace drover;
using fuzz::expect;

namespace {

// Lines of the input: the --shard text, then SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT and
// JOB_COMPLETION_INDEX; a missing line leaves the variable unset.
void shards(std::string_view t, bool by_hash) {
    std::vector<std::string> parts;
    std::size_t pos = 0;
    while (parts.size() < 6) {
        std::size_t nl = t.find('\n', pos);
        parts.emplace_back(t.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
        if (nl == std::string_view::npos) break;
        pos = nl + 1;
    }
    static const char* names[] = {"", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP",
                                  "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX"};
    std::map<std::string, std::string> env;
    for (std::size_t i = 1; i < parts.size(); ++i)
        if (!parts[i].empty()) env[names[i]] = parts[i];
    cli::env_lookup lookup = [&](const char* name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    };
    cli::shard_parse p = cli::parse_shard(parts[0], lookup);
    expect(p.spec.has_value() != !p.error.empty(), "parse_shard: a slice or an error");
    if (!p.spec) {
        expect(fuzz::one_line(p.error), "parse_shard: one-line error");
        return;
    }
    cli::shard_spec s = *p.spec;
    s.by_hash = by_hash;
    expect(s.count >= 1 && s.count <= cli::max_shards && s.index < s.count, "parse_shard: K < N <= max");
    if (s.count > 64) return;
    for (std::uint64_t line = 1; line <= 20; ++line) {
        const std::string text = std::string(parts[0]) + std::to_string(line);
        int takers = 0;
        for (std::uint64_t k = 0; k < s.count; ++k) {
            cli::shard_spec other = s;
            other.index = k;
            takers += other.takes(line, text);
        }
        expect(takers == 1, "shard_spec: each line in exactly one shard");
    }
}

void results(std::string_view t) {
    int fd = ::memfd_create("results", MFD_CLOEXEC);
    if (fd < 0) return;
    if (::write(fd, t.data(), t.size()) != static_cast<ssize_t>(t.size())) {
        ::close(fd);
        return;
    }
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    std::size_t count = 0;
    std::string e = cli::read_records(path, [&](cli::result_record&& r) {
        expect(r.line >= 1, "read_records: lines from 1");
        ++count;
    });
    expect(fuzz::one_line(e), "read_records: one-line error");
    cli::merged_results m;
    std::string me = cli::merge_records({path, path}, m);
    expect(fuzz::one_line(me), "merge_records: one-line error");
    if (e.empty() && me.empty()) {
        expect(m.by_line.size() <= count, "merge_records: at most one record per line");
        for (std::size_t i = 1; i < m.done_twice.size(); ++i)
            expect(m.done_twice[i - 1] < m.done_twice[i], "merge_records: done_twice sorted, once each");
    }
    ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    std::string_view t = fuzz::text(data + 1, size - 1);
    switch (data[0] % 3) {
        case 0: shards(t, false); break;
        case 1: shards(t, true); break;
        default: results(t); break;
    }
    return 0;
}
