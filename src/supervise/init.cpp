// init: fork the command, then wait for signals: SIGCHLD reaps, everything else is forwarded.
#include "drover/supervise/init.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "drover/sys/syscalls.hpp"

namespace drover::supervise {

namespace {

// Signals the kernel raises for a fault of init itself: never forwarded.
bool synchronous(int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP ||
           sig == SIGSYS || sig == SIGABRT;
}

}  // namespace

int run_init(const std::vector<std::string>& argv) {
    if (argv.empty()) throw std::invalid_argument("init: no command given");
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    // Every signal waits in the pending set until sigwaitinfo takes it: no handler races.
    sigset_t all, old;
    sigfillset(&all);
    for (int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(&all, s);
    ::sigprocmask(SIG_BLOCK, &all, &old);
    // Outside a PID namespace, orphans still come to us instead of to the host's init.
    if (::getpid() != 1) (void)::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    pid_t parent = ::getpid();
    pid_t child = ::fork();
    if (child < 0) {
        std::fprintf(stderr, "drover: init: fork: %s\n", std::strerror(errno));
        return 125;
    }
    if (child == 0) {
        // Outside a pid namespace nothing else ends the command with us: a SIGKILLed init
        // must not leave it running.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (::getppid() != parent) ::_exit(125);
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        ::execvp(args[0], args.data());
        int e = errno;
        std::fprintf(stderr, "drover: init: cannot run %s: %s\n", args[0], std::strerror(e));
        ::_exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
    }
    auto pidfd = sys::pidfd_open(child);  // signals go to this child, never to a reused pid

    int result = -1;
    while (result < 0) {
        siginfo_t info{};
        int sig = ::sigwaitinfo(&all, &info);
        if (sig < 0) continue;  // EINTR
        if (sig != SIGCHLD) {
            if (!synchronous(sig)) {
                if (pidfd) (void)sys::pidfd_send_signal(pidfd->get(), sig);
                else ::kill(child, sig);
            }
            continue;
        }
        // One SIGCHLD may stand for many exits: reap until nothing is left to reap.
        for (;;) {
            int status = 0;
            pid_t p = ::waitpid(-1, &status, WNOHANG);
            if (p <= 0) break;
            if (p == child) result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
    }
    // As PID 1, our exit makes the kernel kill whatever is left in the namespace. Otherwise
    // reap what has already ended so that nothing stays a zombie for long.
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {}
    return result;
}

}  // namespace drover::supervise
