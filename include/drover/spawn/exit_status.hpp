// exit_status: how a child ended (exit code, signal, core dump), printable.
#pragma once

#include <signal.h>

#include <string>

namespace drover {

/// The outcome of a reaped child. A value type.
struct exit_status {
    enum class kind : unsigned char { exited, signaled, dumped };
    kind how = kind::exited;
    int value = 0;  ///< exit code for exited; signal number otherwise

    static exit_status from_siginfo(const siginfo_t& info) noexcept;
    static exit_status exited_with(int code) noexcept { return {kind::exited, code}; }
    static exit_status killed_by(int sig, bool core = false) noexcept {
        return {core ? kind::dumped : kind::signaled, sig};
    }

    [[nodiscard]] bool success() const noexcept { return how == kind::exited && value == 0; }
    [[nodiscard]] bool exited() const noexcept { return how == kind::exited; }
    [[nodiscard]] bool signaled() const noexcept { return how != kind::exited; }
    [[nodiscard]] int code() const noexcept { return how == kind::exited ? value : -1; }
    [[nodiscard]] int signal() const noexcept { return how == kind::exited ? 0 : value; }
    [[nodiscard]] bool core_dumped() const noexcept { return how == kind::dumped; }
    /// The shell's convention: the code, or 128 + signal.
    [[nodiscard]] int shell_code() const noexcept { return exited() ? value : 128 + value; }
    /// "exited with code 3", "killed by SIGKILL", "killed by SIGSEGV (core dumped)".
    [[nodiscard]] std::string str() const;

    friend bool operator==(const exit_status&, const exit_status&) = default;
};

/// "SIGTERM" for 15; "signal 42" for one without a name.
std::string signal_name(int sig);

}  // namespace drover
