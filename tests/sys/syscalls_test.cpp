// The syscall layer: unique_fd ownership, close-on-exec pipes, clone3 + pidfd + waitid.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "drover/sys/syscalls.hpp"

namespace drover::sys {
namespace {

TEST(UniqueFd, ClosesOnDestructionAndMoves) {
    int raw;
    {
        auto p = pipe();
        ASSERT_TRUE(p.ok());
        raw = p->read.get();
        unique_fd moved = std::move(p->read);
        EXPECT_FALSE(p->read.valid());
        EXPECT_EQ(moved.get(), raw);
        EXPECT_NE(::fcntl(raw, F_GETFD), -1);
    }
    EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
    EXPECT_EQ(errno, EBADF);
}

TEST(Pipe, IsCloseOnExec) {
    auto p = pipe();
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(::fcntl(p->read.get(), F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(::fcntl(p->write.get(), F_GETFD) & FD_CLOEXEC);
}

TEST(Clone3, GivesAPidfdThatWaitidReaps) {
    std::error_code ec;
    clone3_result r = clone3({}, ec);
    if (r.pid == 0) ::_exit(42);
    ASSERT_FALSE(ec) << ec.message();
    unique_fd pidfd(r.pidfd);
    EXPECT_TRUE(::fcntl(pidfd.get(), F_GETFD) & FD_CLOEXEC);
    siginfo_t info;
    ASSERT_FALSE(waitid_pidfd(pidfd.get(), info, WEXITED));
    EXPECT_EQ(info.si_pid, r.pid);
    EXPECT_EQ(info.si_code, CLD_EXITED);
    EXPECT_EQ(info.si_status, 42);
}

TEST(PidfdSendSignal, ReachesTheChildAndFailsAfterReap) {
    std::error_code ec;
    clone3_result r = clone3({}, ec);
    if (r.pid == 0) {
        ::pause();
        ::_exit(0);
    }
    ASSERT_FALSE(ec);
    unique_fd pidfd(r.pidfd);
    EXPECT_FALSE(pidfd_send_signal(pidfd.get(), SIGUSR1));
    siginfo_t info;
    ASSERT_FALSE(waitid_pidfd(pidfd.get(), info, WEXITED));
    EXPECT_EQ(info.si_code, CLD_KILLED);
    EXPECT_EQ(info.si_status, SIGUSR1);
    EXPECT_EQ(pidfd_send_signal(pidfd.get(), SIGUSR1).value(), ESRCH);
}

TEST(PidfdOpen, OpensOwnProcessAndRejectsBadPid) {
    auto fd = pidfd_open(::getpid());
    ASSERT_TRUE(fd.ok()) << fd.error().message();
    EXPECT_TRUE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC);
    EXPECT_EQ(pidfd_open(-5).error().value(), EINVAL);
}

TEST(Syscalls, ErrorsCarryErrno) {
    EXPECT_EQ(umount2("/definitely/not/mounted", 0).value(), ENOENT);
    EXPECT_EQ(setns(-1, 0).value(), EBADF);
    EXPECT_EQ(close_range(10, 5, 0).value(), EINVAL);
}

// monotonic_ns() is CLOCK_MONOTONIC in nanoseconds (stage timings are compared with other
// processes' readings of that clock): it falls between two readings taken around it.
TEST(Monotonic, IsClockMonotonicInNanoseconds) {
    auto read = [] {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
    };
    std::int64_t before = read();
    std::int64_t m = static_cast<std::int64_t>(monotonic_ns());
    std::int64_t after = read();
    EXPECT_LE(before, m);
    EXPECT_LE(m, after);
}

}  // namespace
}  // namespace drover::sys
