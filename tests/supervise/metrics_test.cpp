// Metrics tests: the Prometheus text of a hand-built value (exact), the exposition grammar of
// a real supervisor's text, counters of crashing and unstartable services, and the HTTP
// endpoint (TCP and unix socket; 404, 405, 431, idle clients, address parsing).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <future>
#include <regex>
#include <sstream>
#include <thread>

#include "drover/supervise/metrics.hpp"
#include "drover/supervise/metrics_http.hpp"
#include "drover/sys/unique_fd.hpp"
#include "supervise_support.hpp"

namespace drover::supervise {
namespace {

using namespace std::chrono_literals;
using drover::test::helper;

// ---- rendering ----------------------------------------------------------------------------

supervisor_metrics small_value() {
    supervisor_metrics m;
    m.version = "1.2\"3";
    m.start_time_seconds = 1700000000.25;
    service_metrics s;
    s.name = "we\"ird\\na\nme";
    s.state = service_state::backoff;
    s.live = false;
    s.counters.spawns = 3;
    s.counters.restarts = 2;
    s.counters.spawn_failures["exec"] = 1;
    s.counters.exits_code = 2;
    s.counters.exits_signal = 1;
    s.counters.backoffs = 2;
    s.counters.stdout_lines = 4;
    s.counters.stdout_bytes = 40;
    m.services.push_back(s);
    latency_histogram h;
    h.buckets[1] = 2;   // le 0.00025
    h.buckets[12] = 1;  // le 1
    h.count = 4;        // one above 1 s
    h.sum = 2.5;
    m.spawn_latency["user+pid"] = h;
    return m;
}

const char* const small_text = R"(# HELP drover_build_info drover's version; the value is always 1
# TYPE drover_build_info gauge
drover_build_info{version="1.2\"3"} 1
# HELP drover_start_time_seconds when the supervisor started, in seconds since the Unix epoch
# TYPE drover_start_time_seconds gauge
drover_start_time_seconds 1700000000.250
# HELP drover_children_live services whose main process exists (spawned, not yet reaped)
# TYPE drover_children_live gauge
drover_children_live 0
# HELP drover_service_up 1 while the service is running (started and ready), else 0
# TYPE drover_service_up gauge
drover_service_up{service="we\"ird\\na\nme"} 0
# HELP drover_service_state 1 for the state the service is in, 0 for the others
# TYPE drover_service_state gauge
drover_service_state{service="we\"ird\\na\nme",state="stopped"} 0
drover_service_state{service="we\"ird\\na\nme",state="waiting"} 0
drover_service_state{service="we\"ird\\na\nme",state="starting"} 0
drover_service_state{service="we\"ird\\na\nme",state="running"} 0
drover_service_state{service="we\"ird\\na\nme",state="backoff"} 1
drover_service_state{service="we\"ird\\na\nme",state="stopping"} 0
drover_service_state{service="we\"ird\\na\nme",state="exited"} 0
drover_service_state{service="we\"ird\\na\nme",state="failed"} 0
# HELP drover_service_spawns_total runs started (execve succeeded)
# TYPE drover_service_spawns_total counter
drover_service_spawns_total{service="we\"ird\\na\nme"} 3
# HELP drover_service_spawn_failures_total runs that could not start, by the stage that failed ("supervisor": before the spawn)
# TYPE drover_service_spawn_failures_total counter
drover_service_spawn_failures_total{service="we\"ird\\na\nme",stage="exec"} 1
# HELP drover_service_restarts_total automatic restarts
# TYPE drover_service_restarts_total counter
drover_service_restarts_total{service="we\"ird\\na\nme"} 2
# HELP drover_service_exits_total ended runs by how they ended
# TYPE drover_service_exits_total counter
drover_service_exits_total{service="we\"ird\\na\nme",kind="success"} 0
drover_service_exits_total{service="we\"ird\\na\nme",kind="code"} 2
drover_service_exits_total{service="we\"ird\\na\nme",kind="signal"} 1
# HELP drover_service_kills_total runs ended by a limit
# TYPE drover_service_kills_total counter
drover_service_kills_total{service="we\"ird\\na\nme",reason="oom"} 0
drover_service_kills_total{service="we\"ird\\na\nme",reason="watchdog"} 0
drover_service_kills_total{service="we\"ird\\na\nme",reason="start_timeout"} 0
# HELP drover_service_throttled_total restarts held back: a backoff delay waited, or given up at the limit
# TYPE drover_service_throttled_total counter
drover_service_throttled_total{service="we\"ird\\na\nme",reason="backoff"} 2
drover_service_throttled_total{service="we\"ird\\na\nme",reason="restart_limit"} 0
# HELP drover_service_output_lines_total lines of service output logged
# TYPE drover_service_output_lines_total counter
drover_service_output_lines_total{service="we\"ird\\na\nme",stream="stdout"} 4
drover_service_output_lines_total{service="we\"ird\\na\nme",stream="stderr"} 0
# HELP drover_service_output_bytes_total bytes of service output logged (without newlines)
# TYPE drover_service_output_bytes_total counter
drover_service_output_bytes_total{service="we\"ird\\na\nme",stream="stdout"} 40
drover_service_output_bytes_total{service="we\"ird\\na\nme",stream="stderr"} 0
# HELP drover_spawn_latency_seconds time from the start of a spawn (its prepare stage) to a successful execve, by namespace set
# TYPE drover_spawn_latency_seconds histogram
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.0001"} 0
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.00025"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.0005"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.001"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.0025"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.005"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.01"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.025"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.05"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.1"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.25"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="0.5"} 2
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="1"} 3
drover_spawn_latency_seconds_bucket{namespaces="user+pid",le="+Inf"} 4
drover_spawn_latency_seconds_sum{namespaces="user+pid"} 2.5
drover_spawn_latency_seconds_count{namespaces="user+pid"} 4
)";

TEST(MetricsText, AHandBuiltValueRendersExactly) {
    EXPECT_EQ(render_prometheus(small_value()), small_text);
}

TEST(MetricsText, LabelValuesEscapeBackslashQuoteAndNewline) {
    EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    EXPECT_EQ(escape_label_value("plain"), "plain");
}

TEST(MetricsText, HistogramBucketsIncludeTheirBoundAndOverflowOnlyCounts) {
    latency_histogram h;
    h.observe(0.0001);  // on the first bound: in it
    h.observe(0.00011);
    h.observe(5.0);
    EXPECT_EQ(h.buckets[0], 1U);
    EXPECT_EQ(h.buckets[1], 1U);
    EXPECT_EQ(h.count, 3U);
    EXPECT_DOUBLE_EQ(h.sum, 5.00021);
}

// Every line is a HELP, a TYPE or a sample of the family last typed (histograms: its
// _bucket, _sum and _count), with well-formed names, labels and values.
void expect_exposition_grammar(const std::string& text) {
    static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*)");
    static const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
    static const std::regex sample(
        R"re(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*\})? ([-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|\+Inf|-Inf|NaN))re");
    ASSERT_FALSE(text.empty());
    ASSERT_EQ(text.back(), '\n');
    std::istringstream in(text);
    std::string family, kind;
    std::smatch m;
    int samples = 0;
    for (std::string line; std::getline(in, line);) {
        if (std::regex_match(line, m, help)) continue;
        if (std::regex_match(line, m, type)) {
            family = m[1];
            kind = m[2];
            continue;
        }
        ASSERT_TRUE(std::regex_match(line, m, sample)) << "not a sample line: " << line;
        ++samples;
        std::string name = m[1];
        EXPECT_EQ(name.rfind("drover_", 0), 0U) << line;
        bool ok = name == family;
        if (kind == "histogram")
            ok = name == family + "_bucket" || name == family + "_sum" || name == family + "_count";
        EXPECT_TRUE(ok) << line << " (family " << family << ")";
    }
    EXPECT_GT(samples, 0);
}

TEST(MetricsText, TheHandBuiltTextFollowsTheGrammar) { expect_exposition_grammar(small_text); }

// ---- a supervisor's counters --------------------------------------------------------------

// A quick-restarting service (test::svc) that fails after three restarts in 10 s.
service_spec svc(std::string name, std::vector<std::string> argv) {
    service_spec s = test::svc(std::move(name), std::move(argv));
    s.intensity = {3, 10s};
    return s;
}

supervisor_options quiet(std::shared_ptr<spdlog::logger> log) {
    supervisor_options o;
    o.log = std::move(log);
    o.seed = 42;
    o.use_cgroups = false;
    return o;
}

const service_metrics* find(const supervisor_metrics& m, const std::string& name) {
    for (const auto& s : m.services)
        if (s.name == name) return &s;
    return nullptr;
}

TEST(SupervisorMetrics, CrashesRestartsAndStartFailuresAreCounted) {
    auto [log, sink] = drover::test::capture_logger();
    struct result {
        supervisor_metrics m;
        std::string text;
    };
    auto r = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<result> {
        supervisor sup(ex, quiet(log));
        sup.add(svc("crash", {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}));
        sup.add(svc("missing", {"/nonexistent/drover-test-program"}));
        co_await sup.start();
        const std::function<bool(const supervisor_status&)> settled = [](const supervisor_status& s) {
            return s.services[0].state == service_state::failed && s.services[1].state == service_state::failed;
        };
        co_await sup.wait_until(settled, 10s);
        result out{sup.metrics(), render_prometheus(sup.metrics())};
        co_await sup.stop();
        co_return out;
    });
    const service_metrics* crash = find(r.m, "crash");
    const service_metrics* missing = find(r.m, "missing");
    ASSERT_NE(crash, nullptr);
    ASSERT_NE(missing, nullptr);
    // Three restarts allowed, then the fourth end gives up.
    EXPECT_EQ(crash->counters.spawns, 4U);
    EXPECT_EQ(crash->counters.restarts, 3U);
    EXPECT_EQ(crash->counters.exits_code, 4U);
    EXPECT_EQ(crash->counters.backoffs, 3U);
    EXPECT_EQ(crash->counters.restart_limit_hits, 1U);
    EXPECT_EQ(crash->counters.stdout_lines, 4U);
    EXPECT_EQ(crash->counters.stdout_bytes, 12U);
    EXPECT_EQ(crash->counters.stderr_lines, 4U);
    EXPECT_TRUE(crash->counters.spawn_failures.empty());
    EXPECT_EQ(crash->state, service_state::failed);
    EXPECT_FALSE(crash->live);
    EXPECT_EQ(missing->counters.spawns, 0U);
    EXPECT_EQ(missing->counters.spawn_failures.at("exec"), 4U);
    EXPECT_EQ(missing->counters.restarts, 3U);
    // Only the successful spawns are timed: the histogram holds exactly those.
    ASSERT_EQ(r.m.spawn_latency.count("none"), 1U);
    EXPECT_EQ(r.m.spawn_latency.at("none").count, crash->counters.spawns);
    EXPECT_GT(r.m.spawn_latency.at("none").sum, 0.0);
    EXPECT_FALSE(r.m.version.empty());
    EXPECT_GT(r.m.start_time_seconds, 1.6e9);
    expect_exposition_grammar(r.text);
    EXPECT_NE(r.text.find("drover_service_spawn_failures_total{service=\"missing\",stage=\"exec\"} 4\n"),
              std::string::npos)
        << r.text;
    EXPECT_NE(r.text.find("drover_spawn_latency_seconds_count{namespaces=\"none\"} 4\n"), std::string::npos);
    EXPECT_NE(r.text.find("drover_service_restarts_total{service=\"crash\"} 3\n"), std::string::npos);
}

TEST(SupervisorMetrics, ARunningServiceIsLiveAndUp) {
    auto [log, sink] = drover::test::capture_logger();
    auto m = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<supervisor_metrics> {
        supervisor sup(ex, quiet(log));
        sup.add(svc("sleeper", {helper, "sleep", "30"}));
        co_await sup.start();
        const std::function<bool(const supervisor_status&)> running = [](const supervisor_status& s) {
            return s.services[0].state == service_state::running;
        };
        co_await sup.wait_until(running, 10s);
        auto out = sup.metrics();
        co_await sup.stop();
        co_return out;
    });
    ASSERT_EQ(m.services.size(), 1U);
    EXPECT_TRUE(m.services[0].live);
    EXPECT_EQ(m.services[0].state, service_state::running);
    EXPECT_EQ(m.services[0].counters.spawns, 1U);
    EXPECT_NE(render_prometheus(m).find("drover_children_live 1\n"), std::string::npos);
}

// ---- addresses ----------------------------------------------------------------------------

TEST(MetricsAddress, LoopbackAndUnixAddressesParse) {
    auto a = parse_metrics_address("127.0.0.1:9100");
    EXPECT_EQ(a.type, metrics_address::kind::tcp);
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, 9100);
    EXPECT_EQ(parse_metrics_address("[::1]:0").host, "::1");
    EXPECT_EQ(parse_metrics_address("[::0:1]:0").host, "::1");  // canonical (found by the fuzzer)
    EXPECT_EQ(parse_metrics_address("127.1.2.3:1").host, "127.1.2.3");
    EXPECT_EQ(parse_metrics_address("localhost:65535").host, "127.0.0.1");
    EXPECT_EQ(parse_metrics_address("localhost:65535").port, 65535);
    auto u = parse_metrics_address("unix:/run/x.sock");
    EXPECT_EQ(u.type, metrics_address::kind::unix_socket);
    EXPECT_EQ(u.path, "/run/x.sock");
}

std::string refusal(const std::string& text) {
    try {
        (void)parse_metrics_address(text);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(accepted)";
}

TEST(MetricsAddress, OtherAddressesAndBadPortsAreRefusedInOneLine) {
    const std::pair<const char*, const char*> cases[] = {
        {"0.0.0.0:9100", "not a loopback address"},  {"10.1.2.3:9100", "not a loopback address"},
        {"[::]:9100", "not a loopback address"},     {"127.0.0.1:abc", "port 'abc' is not a number"},
        {"127.0.0.1:70000", "port '70000'"},         {"127.0.0.1:", "port '' is not a number"},
        {"127.0.0.1:-1", "port '-1'"},               {"127.0.0.1:9100x", "port '9100x'"},
        {"example.com:80", "not an IP address"},     {"9100", "expected HOST:PORT"},
        {"::1:9100", "in brackets"},                 {"unix:", "needs a socket path"},
        {"[::1]9100", "expected [IPV6]:PORT"},       {"", "expected HOST:PORT"},
        {"[::1%1:4]:1", "zone index"},               {"127.0.0.1:1\n2", "port '1\\x0a2'"},
    };
    for (const auto& [text, want] : cases) {
        std::string e = refusal(text);
        EXPECT_NE(e.find(want), std::string::npos) << text << " -> " << e;
        EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    }
    EXPECT_NE(refusal("unix:" + std::string(200, 'x')).find("longer than"), std::string::npos);
}

TEST(MetricsHttp, RequestHeadsAreJudged) {
    EXPECT_EQ(judge_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    EXPECT_EQ(judge_http_request("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), 200);
    EXPECT_EQ(judge_http_request("GET / HTTP/1.1\r\n\r\n"), 404);
    EXPECT_EQ(judge_http_request("POST /metrics HTTP/1.1\r\n\r\n"), 405);
    EXPECT_EQ(judge_http_request("GET /metrics HTTP/2.0\r\n\r\n"), 505);
    EXPECT_EQ(judge_http_request("GET /metrics\r\n\r\n"), 400);
    EXPECT_EQ(judge_http_request("GET  /metrics HTTP/1.1\r\n\r\n"), 400);
    EXPECT_EQ(judge_http_request(std::string_view("G\0T /metrics HTTP/1.1\r\n\r\n", 26)), 400);
    EXPECT_EQ(judge_http_request(""), 400);
    EXPECT_EQ(http_head_end("GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), 24U);
    EXPECT_EQ(http_head_end("GET / HTTP/1.1\n\n"), 16U);
    EXPECT_EQ(http_head_end("GET / HTTP/1.1\r\n"), std::string_view::npos);
}

// ---- the HTTP server ----------------------------------------------------------------------

// A supervisor (no services) and a metrics server on a loop thread; the test is the client,
// with blocking sockets.
class MetricsServer : public ::testing::Test {
protected:
    void start(metrics_address where, metrics_server_options opt = {}) {
        auto [log, sink] = drover::test::capture_logger();
        on_loop([&, log = log] {
            sup_ = std::make_unique<supervisor>(io_.get_executor(), quiet(log));
            server_ = std::make_unique<metrics_server>(io_.get_executor(), *sup_, where, opt);
        });
    }
    void TearDown() override {
        on_loop([this] {
            server_.reset();
            sup_.reset();
        });
        work_.reset();
        thread_.join();
        if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
        if (!dir_.empty()) ::rmdir(dir_.c_str());
    }
    // Runs `f` on the loop thread and waits for it (rethrowing what it threw).
    // Runs `f` on the loop's thread; an exception it throws is thrown again here as a new
    // object with the same code and text. (Handing the exception_ptr itself across threads
    // makes ThreadSanitizer see libstdc++'s uninstrumented reference count on its message as
    // a race.)
    void on_loop(std::function<void()> f) {
        std::promise<void> done;
        std::error_code code;
        std::string what;
        bool system = false, other = false;
        asio::post(io_, [&] {
            try {
                f();
            } catch (const std::system_error& e) {
                system = true;
                code = e.code();
                what = std::string(e.what());
            } catch (const std::exception& e) {
                other = true;
                what = std::string(e.what());
            }
            done.set_value();
        });
        done.get_future().get();
        if (system) throw std::system_error(code, what);
        if (other) throw std::runtime_error(what);
    }
    std::string unix_path() {
        char tmpl[] = "/tmp/drover-metrics-XXXXXX";
        EXPECT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        socket_path_ = dir_ + "/metrics.sock";
        return socket_path_;
    }
    sys::unique_fd connect_tcp() {
        sys::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(server_->port());
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
        return fd;
    }
    sys::unique_fd connect_unix() {
        sys::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, socket_path_.c_str(), sizeof a.sun_path - 1);
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
        return fd;
    }
    // Sends `request` and reads the answer until the server closes (bounded: 10 s, 4 MiB).
    static std::string exchange(const sys::unique_fd& fd, const std::string& request) {
        timeval tv{10, 0};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (!request.empty()) (void)::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
        return drover::test::read_until_closed(fd.get());
    }

    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
    std::thread thread_{[this] { io_.run(); }};
    std::unique_ptr<supervisor> sup_;
    std::unique_ptr<metrics_server> server_;
    std::string dir_, socket_path_;
};

TEST_F(MetricsServer, GetMetricsOverLoopbackTcpOnAnyPort) {
    start(parse_metrics_address("127.0.0.1:0"));
    ASSERT_NE(server_->port(), 0);
    EXPECT_EQ(server_->local_address(), "127.0.0.1:" + std::to_string(server_->port()));
    std::string r = exchange(connect_tcp(), "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0U) << r;
    EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << r;
    EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
    auto body_at = r.find("\r\n\r\n");
    ASSERT_NE(body_at, std::string::npos);
    std::string body = r.substr(body_at + 4);
    EXPECT_NE(r.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
    expect_exposition_grammar(body);
    EXPECT_NE(body.find("drover_build_info{version="), std::string::npos);
}

TEST_F(MetricsServer, OtherPathsAre404OtherMethods405) {
    start(parse_metrics_address("127.0.0.1:0"));
    EXPECT_EQ(exchange(connect_tcp(), "GET /other HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0), 0U);
    std::string r = exchange(connect_tcp(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 405 ", 0), 0U) << r;
    EXPECT_NE(r.find("Allow: GET\r\n"), std::string::npos);
    EXPECT_EQ(exchange(connect_tcp(), "nonsense\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0U);
}

TEST_F(MetricsServer, AnOversizedRequestHeadGets431AndTheConnectionCloses) {
    metrics_server_options opt;
    opt.read_timeout = 2s;
    start(parse_metrics_address("127.0.0.1:0"), opt);
    auto fd = connect_tcp();
    std::string head = "GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(opt.max_head + 4096, 'a');
    std::string r = exchange(fd, head);  // reads to EOF: the server closed
    EXPECT_EQ(r.rfind("HTTP/1.1 431 ", 0), 0U) << r.substr(0, 200);
}

TEST_F(MetricsServer, AClientThatSendsNothingIsDropped) {
    metrics_server_options opt;
    opt.read_timeout = 200ms;
    start(parse_metrics_address("127.0.0.1:0"), opt);
    auto idle = connect_tcp();
    EXPECT_EQ(exchange(idle, ""), "");  // EOF without an answer, well before the client's 10 s
    // The server still answers others afterwards.
    EXPECT_EQ(exchange(connect_tcp(), "GET /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200 ", 0), 0U);
}

TEST_F(MetricsServer, AnIdleClientDoesNotHoldTheDestructor) {
    start(parse_metrics_address("127.0.0.1:0"));  // 5 s timeout: the destructor must not wait
    auto idle = connect_tcp();
    // The server has accepted once another request has been answered after it.
    EXPECT_EQ(exchange(connect_tcp(), "GET /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200 ", 0), 0U);
    on_loop([this] { server_.reset(); });
    EXPECT_EQ(exchange(idle, ""), "");
}

TEST_F(MetricsServer, UnixSocketIsOwnerOnlyAndRemovedOnExit) {
    std::string path = unix_path();
    start(parse_metrics_address("unix:" + path));
    EXPECT_EQ(server_->local_address(), "unix:" + path);
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600U);
    std::string r = exchange(connect_unix(), "GET /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0U) << r;
    on_loop([this] { server_.reset(); });
    EXPECT_FALSE(drover::test::exists(path));
}

TEST_F(MetricsServer, AStaleUnixSocketIsReplacedAFileIsNot) {
    std::string path = unix_path();
    {
        // Bound, never listening, closed: what a killed supervisor leaves.
        sys::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    }
    start(parse_metrics_address("unix:" + path));
    EXPECT_EQ(exchange(connect_unix(), "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 ", 0), 0U);
    // A second server on the same live socket is refused, naming it.
    try {
        on_loop([&] { metrics_server second(io_.get_executor(), *sup_, parse_metrics_address("unix:" + path)); });
        ADD_FAILURE() << "a second server was allowed";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find("another process answers there"), std::string::npos) << e.what();
    }
    on_loop([this] { server_.reset(); });
    // A regular file is never removed.
    { std::ofstream(path) << "keep"; }
    try {
        on_loop([&] { metrics_server other(io_.get_executor(), *sup_, parse_metrics_address("unix:" + path)); });
        ADD_FAILURE() << "a file was replaced";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find("not a socket"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(drover::test::exists(path));
}

TEST_F(MetricsServer, ABusyPortIsAnErrorNamingTheAddress) {
    start(parse_metrics_address("127.0.0.1:0"));
    auto taken = parse_metrics_address("127.0.0.1:" + std::to_string(server_->port()));
    try {
        on_loop([&] { metrics_server second(io_.get_executor(), *sup_, taken); });
        ADD_FAILURE() << "bound twice";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find("metrics address 127.0.0.1:"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace drover::supervise
