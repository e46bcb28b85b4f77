// Config tests: each malformed field gives its located error (file:line:column and field),
// and `drover supervise` starts nothing when the file is invalid.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "drover/process/process.hpp"
#include "drover/supervise/config.hpp"
#include "supervise_support.hpp"

namespace drover::supervise {
namespace {

struct bad_case {
    const char* toml;
    int line, column;
    const char* field;
    const char* says;
};

// Printed by the field it is about, not as bytes.
void PrintTo(const bad_case& c, std::ostream* os) { *os << c.field; }

class ConfigError : public ::testing::TestWithParam<bad_case> {};

TEST_P(ConfigError, NamesFileLineColumnAndField) {
    const bad_case& c = GetParam();
    try {
        parse_config(c.toml, "test.toml", {"/usr/bin/drover"});
        FAIL() << "accepted: " << c.toml;
    } catch (const config_error& e) {
        EXPECT_EQ(e.file(), "test.toml");
        EXPECT_EQ(e.line(), c.line) << e.what();
        EXPECT_EQ(e.column(), c.column) << e.what();
        EXPECT_EQ(e.field(), c.field) << e.what();
        EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).rfind("test.toml:" + std::to_string(c.line) + ":" + std::to_string(c.column) + ": ", 0), 0U)
            << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(
    Fields, ConfigError,
    ::testing::Values(
        bad_case{"[service.web]\nexec = \"x\"\nrestart = \"sometimes\"\n", 3, 11, "service.web.restart", "on-failure"},
        bad_case{"[service.web]\nexec = \"x\"\nrestart_sec = \"soon\"\n", 3, 15, "service.web.restart_sec", "number"},
        bad_case{"[service.web]\nexec = \"x\"\ntimeout_stop_sec = -1\n", 3, 20, "service.web.timeout_stop_sec", "seconds"},
        bad_case{"[service.web]\nexec = \"x\"\nkill_signal = \"SIGNOPE\"\n", 3, 15, "service.web.kill_signal", "signal"},
        bad_case{"[service.web]\nexec = \"x\"\nafter = [\"db\"]\n", 3, 9, "service.web.after", "no service named \"db\""},
        bad_case{"[service.web]\nexec = \"x\"\nmemory_max = \"lots\"\n", 3, 14, "service.web.memory_max", "size"},
        bad_case{"[service.web]\nexec = \"x\"\ntasks_max = 0\n", 3, 13, "service.web.tasks_max", "1.."},
        bad_case{"[service.web]\nexec = \"x\"\nwarm = 65\n", 3, 8, "service.web.warm", "0..64"},
        bad_case{"[service.web]\nexec = \"x\"\nwarm = 1.5\n", 3, 8, "service.web.warm", "integer"},
        bad_case{"[service.web]\nexec = \"x\"\ncpu_quota = \"half\"\n", 3, 13, "service.web.cpu_quota", "50%"},
        bad_case{"[service.web]\nexec = \"x\"\nnamespaces = [\"pid\", \"nope\"]\n", 3, 14, "service.web.namespaces", "nope"},
        bad_case{"[service.web]\nexec = \"x\"\nenvironment = { A = 1 }\n", 3, 21, "service.web.environment.A", "string"},
        bad_case{"[service.web]\nexec = \"x\"\nstart_limit_burst = \"5\"\n", 3, 21, "service.web.start_limit_burst", "integer"},
        bad_case{"[service.web]\nexec = \"x\"\ntype = \"forking\"\n", 3, 8, "service.web.type", "notify"},
        bad_case{"[service.web]\nexec = \"x\"\nrestrat = \"always\"\n", 3, 11, "service.web.restrat", "unknown field"},
        bad_case{"[service.web]\nexec = \"\"\n", 2, 8, "service.web.exec", "empty"},
        bad_case{"[service.web]\nexec = \"sh -c 'oops\"\n", 2, 8, "service.web.exec", "quote"},
        bad_case{"[service.web]\nrestart = \"always\"\n", 1, 1, "service.web", "missing field 'exec'"},
        bad_case{"[service.a]\nexec = \"x\"\nafter = \"b\"\n[service.b]\nexec = \"x\"\nafter = \"a\"\n", 3, 9, "service.a.after", "cycle"},
        bad_case{"[services.web]\nexec = \"x\"\n", 1, 1, "services", "unknown table"},
        bad_case{"[supervisor]\nmetrics_listen = \"0.0.0.0:9100\"\n[service.web]\nexec = \"x\"\n", 2, 18,
                 "supervisor.metrics_listen", "not a loopback address"},
        bad_case{"[service.web]\nexec = \"x\"\nrestart = \n", 3, 11, "", ""},  // TOML syntax
        // Numbers a person (or a fuzzer) types that must not wrap, clamp or crash.
        bad_case{"[service.web]\nexec = \"x\"\nkill_signal = \"99999999999\"\n", 3, 15, "service.web.kill_signal", "signal"},
        bad_case{"[service.web]\nexec = \"x\"\nkill_signal = \"18446744073709551616\"\n", 3, 15, "service.web.kill_signal", "signal"},
        bad_case{"[service.web]\nexec = \"x\"\nkill_signal = 4294967305\n", 3, 15, "service.web.kill_signal", "signal"},
        bad_case{"[service.web]\nexec = \"x\"\ncpu_quota = \"inf%\"\n", 3, 13, "service.web.cpu_quota", "50%"},
        bad_case{"[service.web]\nexec = \"x\"\ncpu_quota = \"1e308%\"\n", 3, 13, "service.web.cpu_quota", "50%"},
        bad_case{"[service.web]\nexec = \"x\"\nrestart_jitter = nan\n", 3, 18, "service.web.restart_jitter", "fraction"},
        bad_case{"[service.web]\nexec = \"x\"\ntimeout_stop_sec = 9223372036854775807\n", 3, 20, "service.web.timeout_stop_sec", "seconds"},
        bad_case{"[service.web]\nexec = \"x\"\nrestart_sec = -9223372036854775808\n", 3, 15, "service.web.restart_sec", "seconds"},
        // What the spec's own checks find, said with the key that was written and where.
        bad_case{"[service.web]\nexec = \"x\"\nhostname = \"h\"\n", 3, 12, "service.web.hostname",
                 "needs the uts namespace (add \"uts\" to namespaces)"},
        bad_case{"[service.web]\nexec = \"x\"\nnamespaces = [\"mnt\"]\ntmpfs = [\"/ok\", \"/x/../y\"]\n", 4, 17,
                 "service.web.tmpfs[1]", "target must not contain '..'"},
        bad_case{"[service.web]\nexec = \"x\"\nsandbox = true\nbind = [\"/a:/b/../c\"]\n", 4, 9, "service.web.bind[0]",
                 "target must not contain '..'"}),
    [](const auto& param) { return "case" + std::to_string(param.index); });

TEST(ConfigNumbers, IntegersADoubleCannotHoldStillReadAsWhatTheySay) {
    // 2^53+1 seconds is out of range (not 0); 2 is 2.
    EXPECT_THROW(parse_config("[service.web]\nexec = \"x\"\nrestart_sec = 9007199254740993\n", "t.toml"), config_error);
    auto c = parse_config("[service.web]\nexec = \"x\"\nrestart_sec = 2\ntimeout_stop_sec = 3\n", "t.toml");
    EXPECT_EQ(c.services.at(0).backoff.initial, std::chrono::seconds(2));
    EXPECT_EQ(c.services.at(0).stop_timeout, std::chrono::seconds(3));
}

TEST(ConfigFile, ReadingIsBounded) {
    try {
        load_config("/dev/zero");
        FAIL() << "read /dev/zero as a configuration";
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("larger than 1 MiB"), std::string::npos) << e.what();
    }
}

TEST(Config, ReadsEveryField) {
    auto c = parse_config(R"([supervisor]
control_socket = "/tmp/x.sock"
metrics_listen = "[::1]:9100"
[service.db]
exec = ["/bin/db", "--port", "5"]
type = "notify"
[service.web]
exec = "/bin/web --name 'my web'"
restart = "always"
restart_sec = 0.25
restart_max_delay_sec = 4
restart_jitter = 0.2
timeout_stop_sec = 1.5
kill_signal = "INT"
after = ["db"]
environment = { MODE = "prod" }
working_directory = "/tmp"
start_limit_burst = 7
start_limit_interval_sec = 30
failure_action = "exit"
memory_max = "64M"
tasks_max = 50
cpu_quota = "150%"
namespaces = ["pid", "mnt"]
init = true
warm = 2
)",
                          "t.toml", {"/usr/bin/drover"});
    EXPECT_EQ(c.control_socket, "/tmp/x.sock");
    EXPECT_EQ(c.metrics_listen, "[::1]:9100");
    ASSERT_EQ(c.services.size(), 2U);
    const auto& db = c.services[0];
    EXPECT_EQ(db.ready, readiness::notify);
    EXPECT_EQ(db.spawn.argv, (std::vector<std::string>{"/bin/db", "--port", "5"}));
    const auto& w = c.services[1];
    EXPECT_EQ(w.spawn.argv, (std::vector<std::string>{"/bin/web", "--name", "my web"}));
    EXPECT_EQ(w.restart, restart_policy::always);
    EXPECT_EQ(w.backoff.initial, std::chrono::milliseconds(250));
    EXPECT_EQ(w.backoff.max, std::chrono::seconds(4));
    EXPECT_DOUBLE_EQ(w.backoff.jitter, 0.2);
    EXPECT_EQ(w.stop_timeout, std::chrono::milliseconds(1500));
    EXPECT_EQ(w.stop_signal, SIGINT);
    EXPECT_EQ(w.after, std::vector<std::string>{"db"});
    EXPECT_EQ(w.spawn.env.lookup("MODE", nullptr), "prod");
    EXPECT_EQ(w.spawn.cwd, "/tmp");
    EXPECT_EQ(w.intensity.burst, 7U);
    EXPECT_EQ(w.intensity.interval, std::chrono::seconds(30));
    EXPECT_TRUE(w.shutdown_on_failure);
    EXPECT_EQ(w.limits.memory_max, 64ULL << 20);
    EXPECT_EQ(w.limits.tasks_max, 50U);
    EXPECT_EQ(w.warm, 2U);
    EXPECT_EQ(db.warm, 0U);
    EXPECT_DOUBLE_EQ(*w.limits.cpu_quota, 1.5);
    EXPECT_TRUE(w.spawn.namespaces.has(ns::pid));
    EXPECT_EQ(w.spawn.init_program, "/usr/bin/drover");
    EXPECT_FALSE(w.fingerprint.empty());
    EXPECT_NE(w.fingerprint, db.fingerprint);
}

TEST(Config, FingerprintChangesOnlyWithTheServiceTable) {
    auto a = parse_config("[service.x]\nexec = \"a\"\n[service.y]\nexec = \"b\"\n", "t", {});
    auto b = parse_config("[service.x]\nexec = \"a\"\n[service.y]\nexec = \"c\"\n", "t", {});
    EXPECT_EQ(a.services[0].fingerprint, b.services[0].fingerprint);
    EXPECT_NE(a.services[1].fingerprint, b.services[1].fingerprint);
}

TEST(Config, SizesAndSignals) {
    EXPECT_EQ(parse_size("4096"), 4096U);
    EXPECT_EQ(parse_size("32M"), 32ULL << 20);
    EXPECT_EQ(parse_size("1G"), 1ULL << 30);
    EXPECT_FALSE(parse_size("1X").has_value());
    EXPECT_FALSE(parse_size("99999999999999999999").has_value());
    EXPECT_EQ(parse_signal("SIGTERM"), SIGTERM);
    EXPECT_EQ(parse_signal("HUP"), SIGHUP);
    EXPECT_EQ(parse_signal("9"), SIGKILL);
    EXPECT_FALSE(parse_signal("SIGNOPE").has_value());
}

TEST(Config, InvalidFileStartsNothing) {
    char tmpl[] = "/tmp/drover-config-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::filesystem::path dir(tmpl);
    std::filesystem::path marker = dir / "started";
    std::ofstream(dir / "bad.toml") << "[service.good]\nexec = [\"/bin/sh\", \"-c\", \"touch " << marker.string()
                                    << "\"]\n[service.bad]\nexec = \"x\"\ntasks_max = -3\n";
    spawn_spec spec;
    spec.argv = {drover::test::cli, "supervise", (dir / "bad.toml").string(), "--socket", (dir / "sock").string()};
    spec.out = stdio::pipe();
    spec.err = stdio::pipe();
    auto r = drover::test::run_on_loop([&](asio::any_io_executor ex) { return run(ex, spec); });
    EXPECT_EQ(r.status.code(), 2);
    EXPECT_NE(r.err.find((dir / "bad.toml").string() + ":5:13: service.bad.tasks_max: "), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one line
    EXPECT_FALSE(std::filesystem::exists(marker));
    EXPECT_FALSE(std::filesystem::exists(dir / "sock"));
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace drover::supervise
