// seccomp: drover's default policy, policy files (TOML, JSON), and compiling with libseccomp.
#include "drover/spawn/seccomp.hpp"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "drover/spawn/spawn_error.hpp"
#include "drover/sys/unique_fd.hpp"

#ifndef CLONE_NEWUSER
#define CLONE_NEWUSER 0x10000000
#endif

namespace drover {

namespace {

constexpr std::size_t max_policy_bytes = 1 << 20;
constexpr std::size_t max_instructions = 4096;  // BPF_MAXINSNS

struct errno_name {
    int value;
    const char* name;
};
constexpr errno_name errno_names[] = {
    {EPERM, "EPERM"},   {ENOENT, "ENOENT"}, {EIO, "EIO"},       {E2BIG, "E2BIG"},
    {EBADF, "EBADF"},   {EAGAIN, "EAGAIN"}, {ENOMEM, "ENOMEM"}, {EACCES, "EACCES"},
    {EFAULT, "EFAULT"}, {EBUSY, "EBUSY"},   {EEXIST, "EEXIST"}, {EINVAL, "EINVAL"},
    {ENOSPC, "ENOSPC"}, {EROFS, "EROFS"},   {ENOSYS, "ENOSYS"}, {ENOTSUP, "ENOTSUP"},
    {ENOTTY, "ENOTTY"}, {ESRCH, "ESRCH"},   {ECHILD, "ECHILD"}, {EAFNOSUPPORT, "EAFNOSUPPORT"},
};

std::optional<int> parse_errno(std::string_view t) {
    for (const auto& e : errno_names)
        if (t == e.name) return e.value;
    int v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec == std::errc{} && p == t.data() + t.size() && v > 0 && v < 4096) return v;
    return std::nullopt;
}

std::string errno_text(int e) {
    for (const auto& n : errno_names)
        if (n.value == e) return n.name;
    return std::to_string(e);
}

std::optional<std::uint64_t> parse_u64(std::string_view t) {
    int base = 10;
    if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
        base = 16;
        t.remove_prefix(2);
    }
    std::uint64_t v = 0;
    if (t.empty()) return std::nullopt;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v, base);
    if (ec != std::errc{} || p != t.data() + t.size()) return std::nullopt;
    return v;
}

std::optional<seccomp_arg::op> parse_op(std::string_view t) {
    using o = seccomp_arg::op;
    if (t == "eq" || t == "==") return o::eq;
    if (t == "ne" || t == "!=") return o::ne;
    if (t == "lt" || t == "<") return o::lt;
    if (t == "le" || t == "<=") return o::le;
    if (t == "gt" || t == ">") return o::gt;
    if (t == "ge" || t == ">=") return o::ge;
    if (t == "masked_eq" || t == "masked-eq") return o::masked_eq;
    return std::nullopt;
}

// One place reads both formats: a small view over a TOML node or a JSON value, with where it
// is for errors.
[[noreturn]] void fail_at(std::string_view name, const std::string& where, const std::string& field,
                          const std::string& problem) {
    std::string s(name);
    s += ':';
    s += where;
    s += ": ";
    if (!field.empty()) s += field + ": ";
    throw spec_error(s + problem);
}

std::string toml_where(const toml::node& n) {
    auto b = n.source().begin;
    return std::to_string(b.line) + ":" + std::to_string(b.column);
}

struct policy_reader {
    std::string_view name;
    seccomp_policy out;

    void base(const std::string& where, const std::string& value) {
        if (value == "default") out.rules = seccomp_policy::builtin_default().rules;
        else if (value != "none") fail_at(name, where, "base", "expected \"default\" or \"none\", not \"" + value + "\"");
    }
    void abis(const std::string& where, const std::string& value) {
        if (value == "all") out.all_abis = true;
        else if (value == "native") out.all_abis = false;
        else fail_at(name, where, "abis", "expected \"all\" or \"native\", not \"" + value + "\"");
    }
    seccomp_action action(const std::string& where, const std::string& field, const std::string& value) {
        auto a = seccomp_action::parse(value);
        if (!a)
            fail_at(name, where, field,
                    "expected allow, errno[:NAME], kill, kill-thread, log or trap, not \"" + value + "\"");
        return *a;
    }
};

seccomp_policy parse_toml(std::string_view text, std::string_view name) {
    toml::table root;
    try {
        root = toml::parse(text, std::string(name));
    } catch (const toml::parse_error& e) {
        auto b = e.source().begin;
        fail_at(name, std::to_string(b.line) + ":" + std::to_string(b.column), "", std::string(e.description()));
    }
    policy_reader r{name, {}};
    auto str = [&](const toml::node& n, const std::string& field) {
        if (!n.is_string()) fail_at(name, toml_where(n), field, "expected a string");
        return *n.value<std::string>();
    };
    // "base" first, so that rules given in the file come after the default ones.
    if (const toml::node* b = root.get("base")) r.base(toml_where(*b), str(*b, "base"));
    for (const auto& [k, v] : root) {
        std::string key(k.str());
        if (key == "base") continue;
        if (key == "default") r.out.default_action = r.action(toml_where(v), key, str(v, key));
        else if (key == "abis") r.abis(toml_where(v), str(v, key));
        else if (key != "rule") fail_at(name, toml_where(v), key, "unknown field (default, base, abis, [[rule]])");
    }
    const toml::node* rules = root.get("rule");
    if (!rules) return r.out;
    const toml::array* arr = rules->as_array();
    if (!arr) fail_at(name, toml_where(*rules), "rule", "expected [[rule]] tables");
    std::size_t index = 0;
    for (const toml::node& rn : *arr) {
        std::string field = "rule[" + std::to_string(++index) + "]";
        const toml::table* t = rn.as_table();
        if (!t) fail_at(name, toml_where(rn), field, "expected a table");
        seccomp_rule rule;
        bool have_action = false;
        for (const auto& [k, v] : *t) {
            std::string key(k.str());
            std::string f = field + "." + key;
            if (key == "action") {
                rule.action = r.action(toml_where(v), f, str(v, f));
                have_action = true;
            } else if (key == "syscalls" || key == "names") {
                if (v.is_string()) rule.syscalls.push_back(*v.value<std::string>());
                else if (const toml::array* a = v.as_array()) {
                    for (const toml::node& s : *a) rule.syscalls.push_back(str(s, f));
                } else {
                    fail_at(name, toml_where(v), f, "expected an array of syscall names");
                }
            } else if (key == "args") {
                const toml::array* a = v.as_array();
                if (!a) fail_at(name, toml_where(v), f, "expected an array of {index, op, value, mask}");
                for (const toml::node& an : *a) {
                    const toml::table* at = an.as_table();
                    if (!at) fail_at(name, toml_where(an), f, "expected a table {index, op, value, mask}");
                    seccomp_arg arg;
                    // Named references, not a structured binding: the lambda below captures
                    // `av`, which clang 14 (the fuzz build) refuses for a binding.
                    for (const auto& entry : *at) {
                        const toml::key& ak = entry.first;
                        const toml::node& av = entry.second;
                        std::string af = f + "." + std::string(ak.str());
                        auto number = [&]() -> std::uint64_t {
                            if (auto i = av.value<std::int64_t>(); i && av.is_integer()) {
                                if (*i < 0) fail_at(name, toml_where(av), af, "must not be negative (write large values as a string, \"0xffffffffffffffff\")");
                                return static_cast<std::uint64_t>(*i);
                            }
                            if (av.is_string()) {
                                if (auto u = parse_u64(*av.value<std::string>())) return *u;
                            }
                            fail_at(name, toml_where(av), af, "expected an integer or a string such as \"0x5412\"");
                        };
                        if (ak.str() == "index") {
                            arg.index = static_cast<unsigned>(number());
                            if (arg.index > 5) fail_at(name, toml_where(av), af, "expected 0..5");
                        } else if (ak.str() == "op") {
                            auto o = parse_op(str(av, af));
                            if (!o) fail_at(name, toml_where(av), af, "expected eq, ne, lt, le, gt, ge or masked_eq");
                            arg.compare = *o;
                        } else if (ak.str() == "value") {
                            arg.value = number();
                        } else if (ak.str() == "mask") {
                            arg.mask = number();
                        } else {
                            fail_at(name, toml_where(av), af, "unknown field (index, op, value, mask)");
                        }
                    }
                    rule.args.push_back(arg);
                }
            } else {
                fail_at(name, toml_where(v), f, "unknown field (action, syscalls, args)");
            }
        }
        if (!have_action) fail_at(name, toml_where(rn), field, "missing field 'action'");
        if (rule.syscalls.empty()) fail_at(name, toml_where(rn), field, "names no syscall");
        r.out.rules.push_back(std::move(rule));
    }
    return r.out;
}

seccomp_policy parse_json(std::string_view text, std::string_view name) {
    nlohmann::json root;
    try {
        root = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        fail_at(name, "byte " + std::to_string(e.byte), "", "not valid JSON");
    } catch (const nlohmann::json::out_of_range&) {
        // A number beyond a double (1e400) is nlohmann's out_of_range, which has no position.
        fail_at(name, "number", "", "out of range (beyond a double, such as 1e400)");
    }
    if (!root.is_object()) fail_at(name, "1", "", "expected a JSON object");
    policy_reader r{name, {}};
    auto str = [&](const nlohmann::json& v, const std::string& field) {
        if (!v.is_string()) fail_at(name, field, "", "expected a string");
        return v.get<std::string>();
    };
    if (root.contains("base")) r.base("base", str(root["base"], "base"));
    for (const auto& [key, v] : root.items()) {
        if (key == "base" || key == "rules") continue;
        if (key == "default") r.out.default_action = r.action(key, "", str(v, key));
        else if (key == "abis") r.abis(key, str(v, key));
        else fail_at(name, key, "", "unknown field (default, base, abis, rules)");
    }
    if (!root.contains("rules")) return r.out;
    const nlohmann::json& rules = root["rules"];
    if (!rules.is_array()) fail_at(name, "rules", "", "expected an array of rules");
    for (std::size_t i = 0; i < rules.size(); ++i) {
        std::string field = "rules[" + std::to_string(i) + "]";
        const nlohmann::json& rj = rules[i];
        if (!rj.is_object()) fail_at(name, field, "", "expected an object");
        seccomp_rule rule;
        bool have_action = false;
        for (const auto& [key, v] : rj.items()) {
            std::string f = field + "." + key;
            if (key == "action") {
                rule.action = r.action(f, "", str(v, f));
                have_action = true;
            } else if (key == "syscalls" || key == "names") {
                if (v.is_string()) rule.syscalls.push_back(v.get<std::string>());
                else if (v.is_array()) {
                    for (std::size_t j = 0; j < v.size(); ++j) rule.syscalls.push_back(str(v[j], f + "[" + std::to_string(j) + "]"));
                } else {
                    fail_at(name, f, "", "expected an array of syscall names");
                }
            } else if (key == "args") {
                if (!v.is_array()) fail_at(name, f, "", "expected an array of {index, op, value, mask}");
                for (std::size_t j = 0; j < v.size(); ++j) {
                    std::string af = f + "[" + std::to_string(j) + "]";
                    if (!v[j].is_object()) fail_at(name, af, "", "expected an object {index, op, value, mask}");
                    seccomp_arg arg;
                    for (const auto& entry : v[j].items()) {  // not a binding: see parse_toml
                        const std::string& ak = entry.key();
                        const nlohmann::json& av = entry.value();
                        std::string kf = af + "." + ak;
                        auto number = [&]() -> std::uint64_t {
                            if (av.is_number_unsigned()) return av.get<std::uint64_t>();
                            if (av.is_string()) {
                                if (auto u = parse_u64(av.get<std::string>())) return *u;
                            }
                            fail_at(name, kf, "", "expected a non-negative integer or a string such as \"0x5412\"");
                        };
                        if (ak == "index") {
                            arg.index = static_cast<unsigned>(std::min<std::uint64_t>(number(), 99));
                            if (arg.index > 5) fail_at(name, kf, "", "expected 0..5");
                        } else if (ak == "op") {
                            auto o = parse_op(str(av, kf));
                            if (!o) fail_at(name, kf, "", "expected eq, ne, lt, le, gt, ge or masked_eq");
                            arg.compare = *o;
                        } else if (ak == "value") {
                            arg.value = number();
                        } else if (ak == "mask") {
                            arg.mask = number();
                        } else {
                            fail_at(name, kf, "", "unknown field (index, op, value, mask)");
                        }
                    }
                    rule.args.push_back(arg);
                }
            } else {
                fail_at(name, f, "", "unknown field (action, syscalls, args)");
            }
        }
        if (!have_action) fail_at(name, field, "", "missing field 'action'");
        if (rule.syscalls.empty()) fail_at(name, field, "", "names no syscall");
        r.out.rules.push_back(std::move(rule));
    }
    return r.out;
}

std::uint32_t libseccomp_action(const seccomp_action& a) {
    switch (a.what) {
        case seccomp_action::kind::allow: return SCMP_ACT_ALLOW;
        case seccomp_action::kind::errno_code: return SCMP_ACT_ERRNO(static_cast<std::uint32_t>(a.err));
        case seccomp_action::kind::kill_process: return SCMP_ACT_KILL_PROCESS;
        case seccomp_action::kind::kill_thread: return SCMP_ACT_KILL_THREAD;
        case seccomp_action::kind::log: return SCMP_ACT_LOG;
        case seccomp_action::kind::trap: return SCMP_ACT_TRAP;
    }
    return SCMP_ACT_KILL_PROCESS;
}

scmp_compare libseccomp_op(seccomp_arg::op o) {
    switch (o) {
        case seccomp_arg::op::eq: return SCMP_CMP_EQ;
        case seccomp_arg::op::ne: return SCMP_CMP_NE;
        case seccomp_arg::op::lt: return SCMP_CMP_LT;
        case seccomp_arg::op::le: return SCMP_CMP_LE;
        case seccomp_arg::op::gt: return SCMP_CMP_GT;
        case seccomp_arg::op::ge: return SCMP_CMP_GE;
        case seccomp_arg::op::masked_eq: return SCMP_CMP_MASKED_EQ;
    }
    return SCMP_CMP_EQ;
}

struct filter_ctx {
    scmp_filter_ctx ctx;
    explicit filter_ctx(std::uint32_t def) : ctx(seccomp_init(def)) {}
    ~filter_ctx() {
        if (ctx) seccomp_release(ctx);
    }
    filter_ctx(const filter_ctx&) = delete;
    filter_ctx& operator=(const filter_ctx&) = delete;
};

std::string libseccomp_error(int rc) { return std::strerror(-rc); }

}  // namespace

std::optional<seccomp_action> seccomp_action::parse(std::string_view t) {
    if (t == "allow") return allow();
    if (t == "kill" || t == "kill-process" || t == "kill_process") return kill();
    if (t == "kill-thread" || t == "kill_thread") return seccomp_action{kind::kill_thread, 0};
    if (t == "log") return seccomp_action{kind::log, 0};
    if (t == "trap") return seccomp_action{kind::trap, 0};
    if (t == "errno") return fail(EPERM);
    if (t.starts_with("errno:")) {
        if (auto e = parse_errno(t.substr(6))) return fail(*e);
    }
    return std::nullopt;
}

std::string seccomp_action::str() const {
    switch (what) {
        case kind::allow: return "allow";
        case kind::errno_code: return "errno:" + errno_text(err);
        case kind::kill_process: return "kill";
        case kind::kill_thread: return "kill-thread";
        case kind::log: return "log";
        case kind::trap: return "trap";
    }
    return "?";
}

seccomp_policy seccomp_policy::builtin_default() {
    seccomp_policy p;
    // Kernel interfaces a job has no business with, or that have been a steady source of
    // privilege escalations from unprivileged code (the same list Docker and Podman block).
    p.rules.push_back({{"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
                        "delete_module", "finit_module", "fanotify_init", "fsconfig", "fsmount", "fsopen",
                        "fspick", "get_kernel_syms", "init_module", "io_uring_enter", "io_uring_register",
                        "io_uring_setup", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
                        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
                        "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root",
                        "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
                        "quotactl_fd", "reboot", "request_key", "setns", "settimeofday", "stime", "swapoff",
                        "swapon", "_sysctl", "sysfs", "syslog", "umount", "umount2", "uselib", "userfaultfd",
                        "ustat", "vhangup", "vm86", "vm86old"},
                       seccomp_action::fail(EPERM),
                       {}});
    // New user namespaces (the way to every other namespace without privilege): refused
    // through unshare and clone. clone3 hides its flags from a filter: ENOSYS makes libc fall
    // back to clone.
    p.rules.push_back({{"unshare"}, seccomp_action::fail(EPERM),
                       {{0, seccomp_arg::op::masked_eq, CLONE_NEWUSER, CLONE_NEWUSER}}});
    p.rules.push_back({{"clone"}, seccomp_action::fail(EPERM),
                       {{0, seccomp_arg::op::masked_eq, CLONE_NEWUSER, CLONE_NEWUSER}}});
    p.rules.push_back({{"clone3"}, seccomp_action::fail(ENOSYS), {}});
    // Pushing input into a terminal the job shares (TIOCSTI), console tricks (TIOCLINUX).
    // The request is an int: compare its low 32 bits only.
    p.rules.push_back({{"ioctl"}, seccomp_action::fail(EPERM),
                       {{1, seccomp_arg::op::masked_eq, TIOCSTI, 0xffffffffULL}}});
    p.rules.push_back({{"ioctl"}, seccomp_action::fail(EPERM),
                       {{1, seccomp_arg::op::masked_eq, TIOCLINUX, 0xffffffffULL}}});
    return p;
}

seccomp_policy seccomp_policy::parse(std::string_view text, std::string_view name) {
    std::size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && text[first] == '{') return parse_json(text, name);
    return parse_toml(text, name);
}

seccomp_policy seccomp_policy::load(const std::string& path) {
    sys::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw spec_error(path + ": cannot read the seccomp policy: " + std::strerror(errno));
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw spec_error(path + ": cannot read the seccomp policy: " + std::strerror(errno));
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > max_policy_bytes) throw spec_error(path + ": larger than 1 MiB: not a seccomp policy");
    }
    return parse(text, path);
}

bool seccomp_program::allows(int nr, std::uint64_t arg) const noexcept {
#if defined(__x86_64__)
    constexpr std::uint32_t native = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    constexpr std::uint32_t native = AUDIT_ARCH_AARCH64;
#else
    return false;
#endif
    struct seccomp_data in{};
    in.nr = nr;
    in.arch = native;
    for (auto& a : in.args) a = arg;
    unsigned char data[sizeof in];
    std::memcpy(data, &in, sizeof in);
    std::uint32_t acc = 0, x = 0, mem[BPF_MEMWORDS] = {};
    const std::size_t n = insns_.size();
    for (std::size_t pc = 0, steps = 0; pc < n && steps <= n; ++steps) {
        struct sock_filter f;
        std::memcpy(&f, &insns_[pc], sizeof f);
        ++pc;
        switch (f.code) {
            case BPF_LD | BPF_W | BPF_ABS:
                if (f.k % 4 != 0 || f.k + 4 > sizeof data) return false;
                std::memcpy(&acc, data + f.k, 4);
                break;
            case BPF_LD | BPF_IMM: acc = f.k; break;
            case BPF_LDX | BPF_IMM: x = f.k; break;
            case BPF_LD | BPF_MEM:
                if (f.k >= BPF_MEMWORDS) return false;
                acc = mem[f.k];
                break;
            case BPF_LDX | BPF_MEM:
                if (f.k >= BPF_MEMWORDS) return false;
                x = mem[f.k];
                break;
            case BPF_ST:
                if (f.k >= BPF_MEMWORDS) return false;
                mem[f.k] = acc;
                break;
            case BPF_STX:
                if (f.k >= BPF_MEMWORDS) return false;
                mem[f.k] = x;
                break;
            case BPF_ALU | BPF_AND | BPF_K: acc &= f.k; break;
            case BPF_ALU | BPF_OR | BPF_K: acc |= f.k; break;
            case BPF_ALU | BPF_AND | BPF_X: acc &= x; break;
            case BPF_MISC | BPF_TAX: x = acc; break;
            case BPF_MISC | BPF_TXA: acc = x; break;
            case BPF_JMP | BPF_JA: pc += f.k; break;
            case BPF_JMP | BPF_JEQ | BPF_K: pc += acc == f.k ? f.jt : f.jf; break;
            case BPF_JMP | BPF_JGT | BPF_K: pc += acc > f.k ? f.jt : f.jf; break;
            case BPF_JMP | BPF_JGE | BPF_K: pc += acc >= f.k ? f.jt : f.jf; break;
            case BPF_JMP | BPF_JSET | BPF_K: pc += (acc & f.k) ? f.jt : f.jf; break;
            case BPF_JMP | BPF_JEQ | BPF_X: pc += acc == x ? f.jt : f.jf; break;
            case BPF_JMP | BPF_JGT | BPF_X: pc += acc > x ? f.jt : f.jf; break;
            case BPF_JMP | BPF_JGE | BPF_X: pc += acc >= x ? f.jt : f.jf; break;
            case BPF_RET | BPF_K: return (f.k & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ALLOW;
            case BPF_RET | BPF_A: return (acc & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ALLOW;
            default: return false;
        }
    }
    return false;
}

seccomp_program::seccomp_program(std::vector<std::uint64_t> insns) : insns_(std::move(insns)) {
    prog_.len = static_cast<unsigned short>(insns_.size());
    prog_.filter = insns_.data();
}

std::shared_ptr<const seccomp_program> seccomp_program::compile(const seccomp_policy& policy) {
    filter_ctx f(libseccomp_action(policy.default_action));
    if (!f.ctx) throw spec_error("seccomp: libseccomp could not start a filter");
    // drover sets no_new_privs itself, before the filter, in the child.
    seccomp_attr_set(f.ctx, SCMP_FLTATR_CTL_NNP, 0);
    // A binary tree of syscall numbers instead of a list: the kernel walks the filter once per
    // syscall number when it installs it (to cache always-allowed calls), so its length is
    // paid at every spawn.
    seccomp_attr_set(f.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
#if defined(__x86_64__)
    if (policy.all_abis) {
        for (std::uint32_t arch : {SCMP_ARCH_X86, SCMP_ARCH_X32}) {
            int rc = seccomp_arch_add(f.ctx, arch);
            if (rc < 0 && rc != -EEXIST) throw spec_error("seccomp: adding the i386/x32 ABIs: " + libseccomp_error(rc));
        }
    }
#endif
    std::size_t index = 0;
    for (const seccomp_rule& r : policy.rules) {
        ++index;
        if (r.action == policy.default_action) continue;  // libseccomp refuses such a rule; it changes nothing
        if (r.args.size() > 6) throw spec_error("seccomp: rule " + std::to_string(index) + ": more than 6 argument conditions");
        scmp_arg_cmp cmps[6];
        for (std::size_t i = 0; i < r.args.size(); ++i) {
            const seccomp_arg& a = r.args[i];
            if (a.index > 5) throw spec_error("seccomp: rule " + std::to_string(index) + ": argument index above 5");
            if (a.compare == seccomp_arg::op::masked_eq) cmps[i] = {a.index, SCMP_CMP_MASKED_EQ, a.mask, a.value};
            else cmps[i] = {a.index, libseccomp_op(a.compare), a.value, 0};
        }
        for (const std::string& name : r.syscalls) {
            int nr = seccomp_syscall_resolve_name(name.c_str());
            if (nr == __NR_SCMP_ERROR)
                throw spec_error("seccomp: rule " + std::to_string(index) + ": unknown syscall '" + name + "'");
            int rc = seccomp_rule_add_array(f.ctx, libseccomp_action(r.action), nr,
                                            static_cast<unsigned>(r.args.size()), cmps);
            // -EOPNOTSUPP: the syscall does not exist on one of the ABIs; nothing to filter there.
            if (rc < 0 && rc != -EOPNOTSUPP && rc != -EEXIST)
                throw spec_error("seccomp: rule " + std::to_string(index) + " (" + name + "): " + libseccomp_error(rc));
        }
    }
    // libseccomp 2.5 exports only to a descriptor: an anonymous memory file, read back.
    sys::unique_fd mem(::memfd_create("drover-seccomp", MFD_CLOEXEC));
    if (!mem) throw spec_error(std::string("seccomp: memfd_create: ") + std::strerror(errno));
    if (int rc = seccomp_export_bpf(f.ctx, mem.get()); rc < 0)
        throw spec_error("seccomp: exporting the filter: " + libseccomp_error(rc));
    off_t size = ::lseek(mem.get(), 0, SEEK_END);
    if (size <= 0 || size % 8 != 0 || static_cast<std::size_t>(size) > max_instructions * 8)
        throw spec_error("seccomp: the compiled filter has " + std::to_string(size / 8) +
                         " instructions (1..4096 allowed)");
    std::vector<std::uint64_t> insns(static_cast<std::size_t>(size) / 8);
    if (::pread(mem.get(), insns.data(), static_cast<std::size_t>(size), 0) != size)
        throw spec_error(std::string("seccomp: reading the compiled filter: ") + std::strerror(errno));
    return std::shared_ptr<const seccomp_program>(new seccomp_program(std::move(insns)));
}

std::shared_ptr<const seccomp_program> seccomp_program::from_bytes(std::string_view bytes) {
    if (bytes.empty() || bytes.size() % 8 != 0 || bytes.size() > max_instructions * 8)
        throw spec_error("seccomp program: " + std::to_string(bytes.size()) +
                         " bytes is not 1..4096 BPF instructions of 8 bytes");
    std::vector<std::uint64_t> insns(bytes.size() / 8);
    std::memcpy(insns.data(), bytes.data(), bytes.size());
    return std::shared_ptr<const seccomp_program>(new seccomp_program(std::move(insns)));
}

std::shared_ptr<const seccomp_program> seccomp_program::read_fd(int fd) {
    std::string bytes;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw spec_error("seccomp program: reading fd " + std::to_string(fd) + ": " + std::strerror(errno));
        if (n == 0) break;
        bytes.append(buf, static_cast<std::size_t>(n));
        if (bytes.size() > max_instructions * 8)
            throw spec_error("seccomp program: fd " + std::to_string(fd) + " holds more than 4096 instructions");
    }
    return from_bytes(bytes);
}

}  // namespace drover
