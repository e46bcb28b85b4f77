// seccomp: syscall filters. A policy is a value (drover's default, or one read from a TOML or
// JSON file); libseccomp compiles it in the parent into a classic-BPF program, which the child
// installs with a raw seccomp(2) as its last step before execve.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace drover {

/// What a filter does with a syscall.
struct seccomp_action {
    enum class kind : std::uint8_t { allow, errno_code, kill_process, kill_thread, log, trap };
    kind what = kind::allow;
    int err = EPERM;  ///< with errno_code

    static seccomp_action allow() { return {kind::allow, 0}; }
    static seccomp_action fail(int e = EPERM) { return {kind::errno_code, e}; }
    static seccomp_action kill() { return {kind::kill_process, 0}; }
    /// "allow", "errno" (EPERM), "errno:ENOSYS", "errno:38", "kill" (the process),
    /// "kill-process", "kill-thread", "log", "trap". nullopt if not one of these.
    static std::optional<seccomp_action> parse(std::string_view text);
    /// The inverse of parse ("errno:EPERM").
    [[nodiscard]] std::string str() const;
    friend bool operator==(const seccomp_action&, const seccomp_action&) = default;
};

/// A condition on one argument of a syscall, as libseccomp's scmp_arg_cmp.
struct seccomp_arg {
    enum class op : std::uint8_t { eq, ne, lt, le, gt, ge, masked_eq };
    unsigned index = 0;          ///< 0..5
    op compare = op::eq;
    std::uint64_t value = 0;
    std::uint64_t mask = ~std::uint64_t{0};  ///< with masked_eq: (arg & mask) == value
    friend bool operator==(const seccomp_arg&, const seccomp_arg&) = default;
};

/// `action` for the syscalls named, when every condition in `args` holds.
struct seccomp_rule {
    std::vector<std::string> syscalls;
    seccomp_action action;
    std::vector<seccomp_arg> args;
    friend bool operator==(const seccomp_rule&, const seccomp_rule&) = default;
};

/// A whole filter: the rules, and the action for every syscall no rule matches.
struct seccomp_policy {
    seccomp_action default_action = seccomp_action::allow();
    std::vector<seccomp_rule> rules;
    /// On x86-64, the same rules for the i386 and x32 ABIs (otherwise their syscalls kill the
    /// process: a filter that knows only one ABI must not let another one through).
    bool all_abis = true;

    /// drover's default: what container runtimes block, as EPERM (keyctl, add_key, bpf,
    /// userfaultfd, perf_event_open, kexec_*, *_module, open_by_handle_at, mount and the new
    /// mount API, pivot_root, ptrace, process_vm_*, setns, nested user namespaces through
    /// unshare and clone, io_uring, ioctl TIOCSTI/TIOCLINUX, …); clone3 gets ENOSYS so that
    /// libc falls back to clone, whose flags a filter can see.
    static seccomp_policy builtin_default();

    /// Parses a policy file's text (TOML, or JSON if it starts with '{'):
    ///   default = "allow"            # action for syscalls no rule names
    ///   base = "default"             # optional: start from builtin_default()'s rules
    ///   abis = "all"                 # or "native"
    ///   [[rule]]
    ///   action = "errno:EPERM"
    ///   syscalls = ["ptrace", "keyctl"]
    ///   args = [{index = 1, op = "masked_eq", value = 0x5412, mask = 0xffffffff}]
    /// Throws spec_error "NAME:LINE:COL: field: problem" (NAME is `name`, a file name).
    static seccomp_policy parse(std::string_view text, std::string_view name);
    /// Reads `path` (at most 1 MiB) and parses it.
    static seccomp_policy load(const std::string& path);

    friend bool operator==(const seccomp_policy&, const seccomp_policy&) = default;
};

/// A compiled classic-BPF seccomp program (struct sock_filter instructions) ready for
/// seccomp(SECCOMP_SET_MODE_FILTER). Immutable; share it between specs.
class seccomp_program {
public:
    /// Compiles with libseccomp; throws spec_error naming the rule ("rule 3: unknown syscall
    /// 'foo'") if it cannot.
    static std::shared_ptr<const seccomp_program> compile(const seccomp_policy& policy);
    /// A program already compiled (bwrap's --seccomp FD format: the raw instructions).
    /// Throws spec_error unless it is 1..4096 whole instructions.
    static std::shared_ptr<const seccomp_program> from_bytes(std::string_view bytes);
    /// Reads a program from `fd` to EOF (at most 4096 instructions) and checks it as above.
    static std::shared_ptr<const seccomp_program> read_fd(int fd);

    /// A struct sock_fprog pointing into this object.
    [[nodiscard]] const void* fprog() const noexcept { return &prog_; }
    [[nodiscard]] std::size_t instructions() const noexcept { return insns_.size(); }
    /// Whether the program lets syscall `nr` of this machine's native ABI through when every
    /// argument is `arg` (it runs the program as the kernel would, on that input). false also
    /// for a program it cannot follow: an instruction outside what seccomp filters use, a
    /// jump out of range, or no return.
    [[nodiscard]] bool allows(int nr, std::uint64_t arg = 0) const noexcept;
    [[nodiscard]] std::string_view bytes() const noexcept {
        return {reinterpret_cast<const char*>(insns_.data()), insns_.size() * sizeof(std::uint64_t)};
    }

    seccomp_program(const seccomp_program&) = delete;
    seccomp_program& operator=(const seccomp_program&) = delete;

private:
    explicit seccomp_program(std::vector<std::uint64_t> insns);
    struct fprog_t {
        unsigned short len;
        const void* filter;
    };
    std::vector<std::uint64_t> insns_;  // struct sock_filter is 8 bytes
    fprog_t prog_{};
};

}  // namespace drover
