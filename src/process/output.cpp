// Reading a child's output: to the end, both streams at once, line by line, and run().
#include "drover/process/asio.hpp"
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <memory>

#include "drover/process/process.hpp"
#include "ring_pipe.hpp"

namespace drover {

using asio::posix::stream_descriptor;

asio::awaitable<void> detail::read_to_end_coro(stream_descriptor& stream, std::string& into) {
    constexpr std::size_t chunk = 64 * 1024;
    for (;;) {
        std::size_t old = into.size();
        into.resize(old + chunk);
        auto [ec, n] = co_await stream.async_read_some(asio::buffer(into.data() + old, chunk),
                                                       use_tuple);
        into.resize(old + n);
        if (ec == asio::error::eof) co_return;
        if (ec) throw std::system_error(ec, "reading child output");
    }
}

namespace {

// One read from a ring end, appended to `into`; completes with the read's error (eof at the
// end) on the caller's executor.
auto ring_read_some(detail::ring_pipe& pipe, std::string& into) {
    return asio::async_initiate<decltype(use_tuple), void(std::error_code)>(
        [&pipe, &into](auto handler) {
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            pipe.read([h, &into](std::error_code ec, std::string_view data) {
                into.append(data);
                // Posted, not called: the ring is in the middle of its completions.
                auto ex = asio::get_associated_executor(*h);
                asio::post(ex, [h, ec]() mutable { std::move (*h)(ec); });
            });
        },
        use_tuple);
}

asio::awaitable<void> ring_read_to_end(detail::ring_pipe& pipe, std::string& into) {
    for (;;) {
        auto [ec] = co_await ring_read_some(pipe, into);
        if (ec == asio::error::eof) co_return;
        if (ec) throw std::system_error(ec, "reading child output");
    }
}

}  // namespace

asio::awaitable<output> process::read_all_coro() {
    using namespace asio::experimental::awaitable_operators;
    output o;
    detail::ring_pipe* rout = detail::ring_output(*this, 1);
    detail::ring_pipe* rerr = detail::ring_output(*this, 2);
    if (rout || rerr) {
        stream_descriptor* tout = stdout_pipe();
        stream_descriptor* terr = stderr_pipe();
        auto one = [](detail::ring_pipe* r, stream_descriptor* t, std::string& into) -> asio::awaitable<void> {
            if (r) co_await ring_read_to_end(*r, into);
            else if (t) co_await read_to_end(*t, into);
        };
        co_await (one(rout, tout, o.out) && one(rerr, terr, o.err));
        co_return o;
    }
    stream_descriptor* out = stdout_pipe();
    stream_descriptor* err = stderr_pipe();
    if (out && err)
        co_await (read_to_end(*out, o.out) && read_to_end(*err, o.err));
    else if (out)
        co_await read_to_end(*out, o.out);
    else if (err)
        co_await read_to_end(*err, o.err);
    co_return o;
}

asio::awaitable<run_result> detail::run_coro(asio::any_io_executor ex, spawn_spec spec, std::string input) {
    using namespace asio::experimental::awaitable_operators;
    process p = co_await spawn(ex, std::move(spec));
    auto feed = [&]() -> asio::awaitable<void> {
        if (!p.stdin_pipe()) co_return;
        if (!input.empty()) {
            try {
                co_await p.write_stdin(input);
            } catch (const std::system_error& e) {
                // A child that exits without reading all of its input is not an error here.
                if (e.code() != std::errc::broken_pipe) throw;
            }
        }
        p.close_stdin();
    };
    output o = co_await (feed() && p.read_all());
    run_result r;
    r.status = co_await p.wait();
    r.out = std::move(o.out);
    r.err = std::move(o.err);
    r.timings = p.timings();
    co_return r;
}

asio::awaitable<std::optional<std::string>> line_reader::next_coro() {
    constexpr std::size_t chunk = 16 * 1024;
    for (;;) {
        auto nl = buf_.find('\n');
        if (nl != std::string::npos && nl <= max_line_) {
            std::string line = buf_.substr(0, nl);
            buf_.erase(0, nl + 1);
            truncated_ = false;
            co_return line;
        }
        if (buf_.size() >= max_line_) {  // too long: hand out a piece, keep memory bounded
            std::string piece = buf_.substr(0, max_line_);
            buf_.erase(0, max_line_);
            truncated_ = true;
            co_return piece;
        }
        if (eof_) {
            if (buf_.empty()) co_return std::nullopt;
            truncated_ = false;
            co_return std::exchange(buf_, {});
        }
        std::size_t old = buf_.size();
        std::size_t want = std::min(chunk, max_line_ + 1 - old);
        buf_.resize(old + want);
        auto [ec, n] = co_await stream_.async_read_some(asio::buffer(buf_.data() + old, want),
                                                        use_tuple);
        buf_.resize(old + n);
        if (ec == asio::error::eof) eof_ = true;
        else if (ec) throw std::system_error(ec, "reading child output");
    }
}

}  // namespace drover
