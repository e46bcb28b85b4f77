// `drover parallel` as the node-local executor of a Slurm job array, against a real private
// single-node Slurm (tests/cluster/slurm.sh): shards, a resumed rerun, and scancel.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "drover/process/asio.hpp"
#include "support.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string harness = std::string(DROVER_TEST_SOURCE_DIR) + "/cluster/slurm.sh";

std::string read_file(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// Every record of drover parallel --json in `files`.
std::vector<nlohmann::json> records_of(const std::vector<fs::path>& files) {
    std::vector<nlohmann::json> r;
    for (const fs::path& f : files) {
        std::istringstream in(read_file(f));
        for (std::string line; std::getline(in, line);)
            if (!line.empty()) r.push_back(nlohmann::json::parse(line));
    }
    return r;
}

// Processes whose command line contains `marker` (looked at, never signalled).
std::vector<pid_t> processes_with(const std::string& marker) {
    std::vector<pid_t> found;
    for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string cmd = read_file(e.path() / "cmdline");
        std::replace(cmd.begin(), cmd.end(), '\0', ' ');
        if (cmd.find(marker) != std::string::npos && !cmd.starts_with("/bin/sh -c ")) found.push_back(std::stoi(name));
    }
    return found;
}

// A private Slurm for the whole suite, stopped (by pid) at the end, also after a failure.
class SlurmArray : public ::testing::Test {
protected:
    static inline fs::path dir;
    static inline std::string skip_reason;

    static run_result sh(const std::string& script) {
        spawn_spec s = test::piped({"/bin/sh", "-c", script});
        s.env.set("SLURM_CONF", (dir / "slurm.conf").string());
        s.env.set("DROVER_SLURM_CPUS", "4");  // all four array tasks at once on a 2-CPU machine
        return test::run_spec(s);
    }

    static void SetUpTestSuite() {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
        skip_reason = "drives the Slurm scheduler; drover's own code in it is covered under sanitizers by the "
                      "parallel shard tests";
        return;
#endif
        if (::geteuid() != 0) {
            skip_reason = "a private Slurm needs root (SlurmUser=root)";
            return;
        }
        std::string tmpl = (fs::temp_directory_path() / "drover-slurm-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) {
            skip_reason = "mkdtemp failed";
            return;
        }
        dir = tmpl;
        ::chmod(dir.c_str(), 0755);
        auto r = sh("bash '" + harness + "' start '" + dir.string() + "'");
        if (r.status.code() == 77) skip_reason = "Slurm is not installed (apt-get install slurm-wlm munge)";
        else if (!r.status.success()) skip_reason = "Slurm did not start: " + r.err;
    }

    static void TearDownTestSuite() {
        if (dir.empty()) return;
        auto r = sh("bash '" + harness + "' stop '" + dir.string() + "'");
        if (!r.status.success()) std::fprintf(stderr, "stopping the private Slurm: %s\n", r.err.c_str());
        std::error_code ec;
        fs::remove_all(dir, ec);
    }

    void SetUp() override {
        if (!skip_reason.empty()) GTEST_SKIP() << skip_reason;
    }

    // Writes the array's batch script: each task runs drover parallel on its shard of `inputs`,
    // writing its results to NAME.<task>.jsonl (and its pid to NAME.<task>.pid).
    static fs::path batch_script(const std::string& name, const std::string& parallel_args, const std::string& job) {
        fs::path p = dir / (name + ".sh");
        std::ofstream(p) << "#!/bin/sh\n"
                         << "echo $$ > '" << dir.string() << "/" << name << ".'$SLURM_ARRAY_TASK_ID.pid\n"
                         << "exec '" << test::cli << "' parallel --no-progress --json --shard auto " << parallel_args
                         << " -- /bin/sh -c '" << job << "' < '" << (dir / "inputs").string() << "' > '"
                         << dir.string() << "/" << name << ".'$SLURM_ARRAY_TASK_ID.jsonl\n";
        return p;
    }

    // Submits the array and returns its job id.
    static std::string submit(const fs::path& script, const std::string& array) {
        auto r = sh("sbatch --parsable --array=" + array + " -D '" + dir.string() + "' -o '" + dir.string() +
                    "/slurm-%A_%a.out' '" + script.string() + "'");
        EXPECT_TRUE(r.status.success()) << r.err;
        std::string id = r.out.substr(0, r.out.find_first_of(";\n"));
        return id;
    }

    // Waits (bounded) until the job has left the queue.
    static bool wait_gone(const std::string& id, std::chrono::seconds limit = 300s) {
        for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
            auto r = sh("squeue -h -j " + id + " -o %i");
            if (r.status.success() && r.out.find_first_not_of(" \n") == std::string::npos) return true;
            std::this_thread::sleep_for(200ms);
        }
        return false;
    }

    static std::string slurm_logs() {
        std::string all;
        for (const auto& e : fs::directory_iterator(dir))
            if (e.path().filename().string().starts_with("slurm-")) all += e.path().filename().string() + ": " + read_file(e.path());
        return all;
    }

    static void write_inputs(int n) {
        std::ofstream f(dir / "inputs");
        for (int i = 1; i <= n; ++i) f << i << "\n";
    }
};

// 1,000 inputs over a 4-task array, each job sandboxed: every input ran exactly once, as PID 1
// of its sandbox, with its own exit status; `drover results` sees the whole array.
TEST_F(SlurmArray, FourTasksRunEveryInputOnceSandboxed) {
    write_inputs(1000);
    auto script = batch_script("all", "--sandbox -j 4", "echo $$ {}; exit $(( {} % 7 == 0 ? 3 : 0 ))");
    std::string id = submit(script, "0-3");
    ASSERT_FALSE(id.empty());
    ASSERT_TRUE(wait_gone(id)) << slurm_logs();
    std::vector<fs::path> files;
    for (int k = 0; k < 4; ++k) files.push_back(dir / ("all." + std::to_string(k) + ".jsonl"));
    std::map<std::uint64_t, int> runs;
    for (const auto& j : records_of(files)) {
        std::uint64_t line = j["line"];
        ++runs[line];
        EXPECT_EQ(j["input"], std::to_string(line));
        EXPECT_EQ(j["stdout"], "1 " + std::to_string(line) + "\n") << "not PID 1 of a sandbox: " << j.dump();
        EXPECT_EQ(j["exit_code"], line % 7 == 0 ? 3 : 0) << j.dump();
        EXPECT_EQ(j["shards"], 4);
        EXPECT_EQ(j["shard"], (line - 1) % 4);
    }
    ASSERT_EQ(runs.size(), 1000u) << slurm_logs();
    for (const auto& [line, n] : runs) EXPECT_EQ(n, 1) << "line " << line;
    std::string list;
    for (const auto& f : files) list += " '" + f.string() + "'";
    auto summary = sh("'" + std::string(test::cli) + "' results summary --json --expect 1000" + list);
    auto s = nlohmann::json::parse(summary.out, nullptr, false);
    ASSERT_TRUE(s.is_object()) << summary.out << summary.err;
    EXPECT_EQ(s["missing"], nlohmann::json::array());
    EXPECT_EQ(s["not_done"], nlohmann::json::array());
    EXPECT_EQ(s["failed"].size(), 1000u / 7);  // the multiples of 7 exit 3
    EXPECT_EQ(s["done_twice"], nlohmann::json::array());
}

// One task cancelled mid-run; the array submitted again with --resume of every result file
// runs exactly the inputs the cancelled task had not finished.
TEST_F(SlurmArray, AResumedArrayRunsOnlyWhatTheCancelledTaskLeft) {
    write_inputs(400);
    auto first = batch_script("one", "-j 2 --stop-grace 2s", "sleep 0.1; echo {}");
    std::string id = submit(first, "0-3");
    ASSERT_FALSE(id.empty());
    // Cancel task 2 once it has finished some inputs (and long before its 100).
    const fs::path out2 = dir / "one.2.jsonl";
    bool some = false;
    for (auto end = std::chrono::steady_clock::now() + 120s; !some && std::chrono::steady_clock::now() < end;) {
        some = records_of({out2}).size() >= 10;
        if (!some) std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(some) << slurm_logs();
    EXPECT_TRUE(sh("scancel " + id + "_2").status.success());
    ASSERT_TRUE(wait_gone(id)) << slurm_logs();

    std::vector<fs::path> firsts;
    for (int k = 0; k < 4; ++k) firsts.push_back(dir / ("one." + std::to_string(k) + ".jsonl"));
    std::set<std::uint64_t> done;
    for (const auto& j : records_of(firsts))
        if (!j.value("interrupted", false)) done.insert(j["line"].get<std::uint64_t>());
    ASSERT_LT(done.size(), 400u) << "the cancel came too late to leave anything undone";
    ASSERT_GE(done.size(), 300u + 10u) << slurm_logs();

    std::string resume;
    for (const auto& f : firsts) resume += " --resume '" + f.string() + "'";
    auto again = batch_script("two", "-j 2" + resume, "echo {}");
    std::string id2 = submit(again, "0-3");
    ASSERT_FALSE(id2.empty());
    ASSERT_TRUE(wait_gone(id2)) << slurm_logs();
    std::set<std::uint64_t> rerun;
    for (int k = 0; k < 4; ++k)
        for (const auto& j : records_of({dir / ("two." + std::to_string(k) + ".jsonl")})) {
            EXPECT_TRUE(j["ok"].get<bool>()) << j.dump();
            EXPECT_TRUE(rerun.insert(j["line"].get<std::uint64_t>()).second) << "ran twice: " << j.dump();
        }
    std::set<std::uint64_t> expected;
    for (std::uint64_t line = 1; line <= 400; ++line)
        if (!done.count(line)) expected.insert(line);
    EXPECT_EQ(rerun, expected);
    for (std::uint64_t line : rerun) EXPECT_EQ((line - 1) % 4, 2u) << "only task 2 had inputs left";
}

// scancel of a running array: drover gets SIGTERM, gives its jobs --stop-grace, kills them;
// nothing of the array is left on the node.
TEST_F(SlurmArray, ScancelLeavesNothingBehind) {
    write_inputs(6);
    std::mt19937_64 rng{std::random_device{}()};
    const std::string marker = "599." + std::to_string(rng() % 1000000000 + 1000000000);  // a sleep nobody else runs
    auto script = batch_script("cancel", "-j 3 -p -U -r --stop-grace 2s", "exec sleep " + marker);
    std::string id = submit(script, "0-1");
    ASSERT_FALSE(id.empty());
    bool running = false;
    for (auto end = std::chrono::steady_clock::now() + 120s; !running && std::chrono::steady_clock::now() < end;) {
        running = processes_with("sleep " + marker).size() >= 6;
        if (!running) std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(running) << slurm_logs();
    std::vector<pid_t> drovers;
    for (int k = 0; k < 2; ++k) drovers.push_back(std::stoi(read_file(dir / ("cancel." + std::to_string(k) + ".pid"))));
    // Where each drover keeps its jobs: drover.PID below its own cgroup, in each hierarchy.
    std::vector<fs::path> subtrees;
    for (pid_t p : drovers) {
        std::istringstream lines(read_file("/proc/" + std::to_string(p) + "/cgroup"));
        for (std::string l; std::getline(lines, l);) {
            auto c1 = l.find(':'), c2 = l.find(':', c1 + 1);
            if (c1 == std::string::npos || c2 == std::string::npos) continue;
            std::string ctrl = l.substr(c1 + 1, c2 - c1 - 1), path = l.substr(c2 + 1);
            std::vector<fs::path> mounts;
            if (ctrl.empty()) mounts = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
            else mounts = {fs::path("/sys/fs/cgroup") / ctrl.substr(0, ctrl.find(','))};
            for (const fs::path& m : mounts) {
                fs::path d = fs::path(m.string() + path) / ("drover." + std::to_string(p));
                if (fs::exists(d)) subtrees.push_back(d);
            }
        }
    }
    EXPECT_FALSE(subtrees.empty()) << "no drover.PID cgroup found while the array ran";
    EXPECT_TRUE(sh("scancel " + id).status.success());
    ASSERT_TRUE(wait_gone(id, 120s)) << slurm_logs();
    // Reaping and the kernel's teardown of the namespaces take a moment after the queue empties.
    std::vector<pid_t> left = processes_with("sleep " + marker);
    for (auto end = std::chrono::steady_clock::now() + 30s; !left.empty() && std::chrono::steady_clock::now() < end;) {
        std::this_thread::sleep_for(100ms);
        left = processes_with("sleep " + marker);
    }
    EXPECT_TRUE(left.empty()) << left.size() << " jobs outlived the scancel";
    for (pid_t p : drovers) {
        std::string cmd = read_file("/proc/" + std::to_string(p) + "/cmdline");
        EXPECT_EQ(cmd.find("parallel"), std::string::npos) << "drover " << p << " outlived the scancel";
    }
    // Each drover's cgroup subtree went with it (its guardian removes what a killed drover left).
    for (const fs::path& d : subtrees) {
        for (auto end = std::chrono::steady_clock::now() + 10s; fs::exists(d) && std::chrono::steady_clock::now() < end;)
            std::this_thread::sleep_for(100ms);
        EXPECT_FALSE(fs::exists(d)) << d;
    }
}

}  // namespace
}  // namespace drover
