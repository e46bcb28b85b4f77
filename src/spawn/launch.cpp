// The parent's side of a spawn: prepare a spec, clone3 the child, write its id maps,
// read its report, reap it.
#include "drover/spawn/launch.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "drover/spawn/id_pool.hpp"
#include "drover/spawn/warm.hpp"
#include "drover/sys/path.hpp"
#include "drover/sys/syscalls.hpp"
#include "child_memory.hpp"
#include "plan.hpp"

extern char** environ;

namespace drover {

using detail::prepared_data;

namespace {

constexpr const char* default_path = "/usr/local/bin:/usr/bin:/bin";

std::string map_text(const std::vector<id_range>& ranges, unsigned own_id) {
    if (ranges.empty()) return "0 " + std::to_string(own_id) + " 1\n";
    std::string out;
    for (const id_range& r : ranges)
        out += std::to_string(r.inner) + ' ' + std::to_string(r.outer) + ' ' +
               std::to_string(r.count) + '\n';
    return out;
}

// /proc/PID/timens_offsets wants whole seconds and 0 <= nanoseconds < 1e9, also for
// negative offsets (-1.5 s is "-2 500000000").
std::string offset_line(const char* clock, std::chrono::nanoseconds off) {
    long long ns = off.count();
    long long secs = ns / 1'000'000'000;
    long long rem = ns % 1'000'000'000;
    if (rem < 0) {
        rem += 1'000'000'000;
        --secs;
    }
    return std::string(clock) + ' ' + std::to_string(secs) + ' ' + std::to_string(rem) + '\n';
}

void prepare_exec(prepared_data& d) {
    const spawn_spec& s = d.spec;
    if (!s.exec) return;
    std::vector<std::string> argv = s.argv;
    if (!s.init_program.empty()) {
        argv.insert(argv.begin(), {s.init_program, "init", "--"});
    }
    // $PATH is looked up (a scan of the environment) only for a bare name.
    const std::string& name = argv.front();
    if (name.find('/') != std::string::npos) d.candidates.push_back(name);
    else d.candidates = sys::path_candidates(s.env.lookup("PATH", environ).value_or(default_path), name);
    for (const std::string& c : d.candidates) d.candidate_ptrs.push_back(c.c_str());
    d.argv_storage = std::move(argv);
    for (std::string& a : d.argv_storage) d.argv_ptrs.push_back(a.data());
    d.argv_ptrs.push_back(nullptr);
    d.env_inherit = s.env.unchanged();
    if (!d.env_inherit) {
        d.env_storage = s.env.materialize(environ);
        for (std::string& e : d.env_storage) d.env_ptrs.push_back(e.data());
        d.env_ptrs.push_back(nullptr);
    }
}

std::shared_ptr<const prepared_data> prepare(spawn_spec spec) {
    if (std::string problem = validate(spec); !problem.empty()) throw spec_error(problem);
    auto d = std::make_shared<prepared_data>();
    d->spec = std::move(spec);
    const spawn_spec& s = d->spec;
    const namespace_set& n = s.namespaces;
    d->clone_flags = n.clone_flags();
    d->user = n.has(ns::user);
    // Default maps (own ids as 0) the child may write itself; other maps need the parent's
    // privilege in its namespace, written while the child waits.
    d->self_map = d->user && s.ids == userns_ids::own && s.uid_map.empty() && s.gid_map.empty() &&
                  ::getuid() == ::geteuid() && ::getgid() == ::getegid();
    d->hold = (d->user && !d->self_map) || !s.join_cgroups.empty();
    d->new_pid = n.has(ns::pid);
    if (d->user && s.ids == userns_ids::own) {
        d->uid_map_text = map_text(s.uid_map, ::getuid());
        d->gid_map_text = map_text(s.gid_map, ::getgid());
    }
    if (n.has(ns::time) && (s.monotonic_offset.count() != 0 || s.boottime_offset.count() != 0)) {
        d->unshare_time = true;
        d->clone_flags &= ~static_cast<std::uint64_t>(CLONE_NEWTIME);
        if (s.monotonic_offset.count() != 0)
            d->time_offsets_text += offset_line("monotonic", s.monotonic_offset);
        if (s.boottime_offset.count() != 0)
            d->time_offsets_text += offset_line("boottime", s.boottime_offset);
    }
    d->make_private = n.has(ns::mnt);
    d->mount_proc = s.wants_proc();
    if (d->mount_proc) d->proc_targets.push_back("/proc");
    d->loopback = n.has(ns::net) && s.loopback_up;
    if (!s.fs.enabled) {
        for (const bind_mount& b : s.binds)
            d->mounts.push_back({detail::mount_op::kind::bind, b.source, b.target, {}, b.read_only});
        for (const tmpfs_mount& t : s.tmpfs)
            d->mounts.push_back({detail::mount_op::kind::tmpfs, {}, t.target, t.options, false});
    }
    detail::prepare_walls(*d);
    // clone3's CLONE_CLEAR_SIGHAND resets caught signals but keeps ignored ones ignored (a
    // server ignoring SIGPIPE would pass that on): note them once here, per prepared spec.
    for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction sa{};
        if (::sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler == SIG_IGN)
            d->ignored_signals.push_back(sig);
    }
    prepare_exec(*d);
    return d;
}

// getpid() without a syscall per launch; refreshed in a forked child. Atomic because any
// thread may launch.
std::atomic<pid_t> cached_pid{0};
pid_t own_pid() {
    static const bool registered = [] {
        ::pthread_atfork(nullptr, nullptr, [] { cached_pid.store(::getpid()); });
        return true;
    }();
    (void)registered;
    pid_t pid = cached_pid.load(std::memory_order_relaxed);
    if (pid == 0) cached_pid.store(pid = ::getpid(), std::memory_order_relaxed);
    return pid;
}

// A process-wide /dev/null for stdio::null(), opened once.
int dev_null() {
    static const int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    return fd;
}

spawn_failure parent_failure(child_stage stage, std::error_code ec, std::string detail,
                             namespace_set requested) {
    spawn_failure f{stage, ec, std::move(detail), {}};
    f.advice = kernel_advice(stage, ec.value(), requested);
    return f;
}

std::error_code write_file(const char* path, const std::string& text) {
    return sys::write_file(path, text.data(), text.size());
}

// Writes uid_map, setgroups=deny (needed before an unprivileged gid_map; a privileged parent
// leaves setgroups allowed so that the child can drop the groups it inherited) and gid_map.
bool write_id_maps(const prepared_data& d, pid_t pid, const std::string& uid_text, const std::string& gid_text,
                   spawn_failure& failure) {
    char path[64];
    struct step {
        child_stage stage;
        const char* file;
        const std::string* text;
    };
    static const std::string deny = "deny";
    const step all[] = {{child_stage::uid_map, "uid_map", &uid_text},
                        {child_stage::setgroups, "setgroups", &deny},
                        {child_stage::gid_map, "gid_map", &gid_text}};
    for (const step& s : all) {
        if (s.stage == child_stage::setgroups && d.set_groups) continue;
        std::snprintf(path, sizeof path, "/proc/%d/%s", static_cast<int>(pid), s.file);
        if (std::error_code ec = write_file(path, *s.text)) {
            failure = parent_failure(s.stage, ec, path, d.spec.namespaces);
            return false;
        }
    }
    return true;
}

// Writes the child's pid into each cgroup.procs named by the spec (v1 hierarchies have no
// CLONE_INTO_CGROUP); the child is still waiting, so it runs nothing outside them.
bool join_cgroups(const prepared_data& d, pid_t pid, spawn_failure& failure) {
    std::string text = std::to_string(pid);
    for (const std::string& procs : d.spec.join_cgroups) {
        if (std::error_code ec = write_file(procs.c_str(), text)) {
            failure = parent_failure(child_stage::cgroup_join, ec, procs, d.spec.namespaces);
            return false;
        }
    }
    return true;
}

void kill_and_reap(int pidfd) {
    sys::pidfd_send_signal(pidfd, SIGKILL);
    siginfo_t info;
    sys::waitid_pidfd(pidfd, info, WEXITED);
}

// A thread of drover's that does the parent's part (id maps, v1 cgroup joins) for a child
// spawned posix_spawn-style, while the launching thread is held in clone3(CLONE_VFORK). The
// kernel stores the child's pid (CLONE_PARENT_SETTID) before the child runs; the child says
// on `ready` that it is up and waits on `sync`. Without this, such a child would need the
// fork path, which copies the parent's page tables (0.3 ms and more per spawn).
class map_writer {
public:
    struct request {
        pid_t pid_slot = 0;  // the kernel writes the child's pid here
        int ready_read = -1;
        int sync_write = -1;
        std::function<bool(pid_t, spawn_failure&)> work;
        bool ok = false;
        bool done = false;
        spawn_failure failure;
        std::int64_t written_ns = 0;
    };

    // The calling thread's own writer (a spawner with a descriptor table of its own, whose
    // pipes the process-wide writer cannot see), else the process-wide one; nullptr if its
    // thread cannot be started.
    static map_writer* instance() noexcept {
        if (own) return own;
        static map_writer* w = [] () -> map_writer* {
            try {
                return new map_writer;  // never destroyed: it outlives every launch
            } catch (...) {
                return nullptr;
            }
        }();
        return w;
    }

    void submit(request* r) {
        {
            std::lock_guard lock(mu_);
            queue_.push_back(r);
        }
        work_.notify_one();
    }

    void wait(request* r) {
        std::unique_lock lock(mu_);
        done_.wait(lock, [r] { return r->done; });
    }

    static inline thread_local map_writer* own = nullptr;

    // Starts a writer for the calling thread (one per thread, never destroyed: the thread
    // lives as long as the process).
    static bool make_own() noexcept {
        if (own) return true;
        try {
            own = new map_writer;
        } catch (...) {
            return false;
        }
        return true;
    }

private:
    map_writer() { std::thread([this] { loop(); }).detach(); }

    void loop() {
        // Its signals are the process's business, not this thread's.
        sigset_t all;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
        for (;;) {
            request* r;
            {
                std::unique_lock lock(mu_);
                work_.wait(lock, [this] { return !queue_.empty(); });
                r = queue_.front();
                queue_.pop_front();
            }
            serve(*r);
            {
                std::lock_guard lock(mu_);
                r->done = true;
            }
            done_.notify_all();
        }
    }

    static void serve(request& r) {
        char byte = 0;
        ssize_t n;
        do n = ::read(r.ready_read, &byte, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1 || byte != '1') {  // no child (clone3 failed), or it died before it was up
            r.failure = spawn_failure{child_stage::report, sys::errno_code(ECHILD), "the child ended before its maps", {}};
            return;
        }
        pid_t pid = std::atomic_ref<pid_t>(r.pid_slot).load(std::memory_order_acquire);
        r.ok = r.work(pid, r.failure);
        r.written_ns = sys::monotonic_ns();
        char go = r.ok ? 1 : 0;
        (void)!::write(r.sync_write, &go, 1);  // the launching thread keeps the read end open
    }

    std::mutex mu_;
    std::condition_variable work_, done_;
    std::deque<request*> queue_;
};

// Builds the fd moves of one launch; returns the parent's ends of the pipes in `child`.
bool plan_descriptors(const spawn_spec& s, const launch_extras& extras, detail::launch_frame& f,
                      launched_child& child, sys::unique_fd (&child_ends)[3], spawn_failure& failure) {
    const stdio* streams[3] = {&s.in, &s.out, &s.err};
    sys::unique_fd* parent_ends[3] = {&child.stdin_pipe, &child.stdout_pipe, &child.stderr_pipe};
    for (int i = 0; i < 3; ++i) {
        int source = -1;
        switch (streams[i]->how) {
            case stdio::kind::inherit: continue;
            case stdio::kind::null: source = extras.own_fd(dev_null()); break;
            case stdio::kind::fd: source = extras.own_fd(streams[i]->fd); break;
            case stdio::kind::pipe: {
                auto p = sys::pipe();
                if (!p) {
                    failure = parent_failure(child_stage::pipes, p.error(), "stdio pipe",
                                             s.namespaces);
                    return false;
                }
                // stdin: the child reads; stdout/stderr: the child writes.
                if (i == 0) {
                    child_ends[i] = std::move(p->read);
                    *parent_ends[i] = std::move(p->write);
                } else {
                    child_ends[i] = std::move(p->write);
                    *parent_ends[i] = std::move(p->read);
                }
                source = child_ends[i].get();
                break;
            }
        }
        f.moves[f.move_count++] = {i, source};
    }
    for (const fd_pass& pf : s.pass_fds) {
        f.moves[f.move_count++] = {pf.child_fd, extras.own_fd(pf.parent_fd)};
        if (pf.child_fd > f.max_target) f.max_target = pf.child_fd;
    }
    for (int i = 0; i < f.move_count; ++i)
        for (int j = 0; j < f.move_count; ++j)
            if (i != j && f.moves[i].source == f.moves[j].target) f.moves_conflict = true;
    return true;
}

}  // namespace

prepared_spawn::prepared_spawn(spawn_spec spec) : d_(prepare(std::move(spec))) {}

const spawn_spec& prepared_spawn::spec() const noexcept { return d_->spec; }

namespace {

// -1: automatic; otherwise a forced clone_method.
std::atomic<int> forced_clone{-1};
// Set when the kernel refused a CLONE_VM clone3 with EINVAL or ENOSYS: fork from then on.
std::atomic<bool> vfork_refused{false};

bool vfork_allowed_by_build() noexcept {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // Sanitizers track stacks and shadow memory per thread; a child borrowing our memory on
    // a stack of its own would confuse them.
    return false;
#else
    return sys::clone3_vm_supported();
#endif
}

// DROVER_CLONE as a clone_method, or -1 (unset or unknown: the default).
int clone_from_env() noexcept {
    static const int m = [] {
        const char* v = std::getenv("DROVER_CLONE");
        std::string_view s = v ? v : "";
        if (s == "fork") return static_cast<int>(clone_method::fork);
        if (s == "vfork") return static_cast<int>(clone_method::vfork);
        if (s == "vm") return static_cast<int>(clone_method::vm);
        return -1;
    }();
    return m;
}

// What the caller asked for: force_clone_method, else DROVER_CLONE, else -1.
int chosen_clone() noexcept {
    int forced = forced_clone.load(std::memory_order_relaxed);
    return forced >= 0 ? forced : clone_from_env();
}

// Whether this spec can take the vfork path. A time namespace may: a CLONE_VM child does not
// enter one at clone3 (copy_namespaces skips timens_on_fork for CLONE_VM) nor at unshare
// (that only sets time_for_children); it enters at execve, after the new memory is in
// place (exec_task_namespaces after exec_mmap), so the vDSO page remapped is the job's, not
// ours. What the parent must do before execve (explicit id maps, v1 cgroup joins) the map
// writer thread does.
bool use_vfork(const prepared_data& d) noexcept {
    if (chosen_clone() == static_cast<int>(clone_method::fork)) return false;
    return !d.setup_may_block && vfork_allowed_by_build() && !vfork_refused.load(std::memory_order_relaxed);
}

// Whether a spec that may take the vfork path takes the vm path instead: when asked for, and
// when nothing needs the parent between clone3 and execve (the map writer would have to wait
// for the child on some thread, which is what the vm path avoids). Not with a time namespace:
// before Linux 5.18 only a vfork child (vfork_done set) entered it at execve, and a CLONE_VM
// child without CLONE_VFORK would run the job in ours.
bool use_vm(const prepared_data& d) noexcept {
    return !d.hold && chosen_clone() == static_cast<int>(clone_method::vm) && !d.spec.namespaces.has(ns::time);
}

// The stack a vfork child runs on until its execve: one per thread (the thread is suspended
// while its child uses it), mapped on first use, with a guard page below.
class child_stack {
public:
    static constexpr std::size_t size = 256 * 1024;
    static constexpr std::size_t guard = 4096;
    ~child_stack() {
        if (base_) ::munmap(base_, size + guard);
    }
    // The top of the stack (16-byte aligned), or nullptr if it could not be mapped.
    void* get() noexcept {
        if (!base_) {
            void* m = ::mmap(nullptr, size + guard, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
            if (m == MAP_FAILED) return nullptr;
            // Without its guard page an overflow would run into whatever is mapped below.
            if (::mprotect(m, guard, PROT_NONE) != 0) {
                ::munmap(m, size + guard);
                return nullptr;
            }
            base_ = m;
        }
        return static_cast<char*>(base_) + guard;
    }

private:
    void* base_ = nullptr;
};

thread_local child_stack vfork_stack;


}  // namespace

std::string_view clone_method_name(clone_method m) noexcept {
    switch (m) {
        case clone_method::vfork: return "vfork";
        case clone_method::vm: return "vm";
        case clone_method::fork: break;
    }
    return "fork";
}

void force_clone_method(std::optional<clone_method> m) noexcept {
    forced_clone.store(m ? static_cast<int>(*m) : -1, std::memory_order_relaxed);
}

namespace {

bool launch_child(const prepared_spawn& p, launched_child& child, spawn_failure& failure,
                  const launch_extras& extras, int hold_read, int go_fd = -1, int stub_fd = -1);

thread_local child_stack warm_job_stack;

// This process's PID namespace, opened once: the way back after entering a set's.
int own_pid_ns() {
    static const int fd = ::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    return fd;
}

// Whether this process may go back into its own PID namespace after entering a set's: that
// takes CAP_SYS_ADMIN over it, which a drover inside a user namespace of its own lacks. Then
// a job's PID namespace is made beside the holder's, not below it. Probed once, harmlessly:
// entering the namespace one is in changes nothing.
bool can_nest_pid_ns() {
    static const bool ok = own_pid_ns() >= 0 && !sys::setns(own_pid_ns(), CLONE_NEWPID);
    return ok;
}

// The namespaces a warm set holds: the spec's, less the ones each job makes for itself (PID:
// the holder has its own, the job one below it; cgroup: rooted at the job's own cgroup).
std::uint64_t set_flags(const prepared_data& d) {
    return d.clone_flags & ~static_cast<std::uint64_t>(CLONE_NEWPID | CLONE_NEWCGROUP | CLONE_NEWTIME);
}

// Whether a job spec can use a set made for the pool's spec: the same namespaces and the
// same setup the holder did.
std::string set_mismatch(const prepared_data& job, const prepared_data& pool) {
    if (job.clone_flags != pool.clone_flags) return "the job's namespaces differ from the warm pool's";
    if (!job.spec.join_cgroups.empty())
        return "v1 cgroup joins by path (join_cgroups) cannot be warm: give them per job (launch_extras::join_fds)";
    const spawn_spec& a = job.spec;
    const spawn_spec& b = pool.spec;
    if (a.hostname != b.hostname || a.domainname != b.domainname || job.loopback != pool.loopback ||
        job.proc_targets != pool.proc_targets || job.fs_steps.size() != pool.fs_steps.size() ||
        job.mounts.size() != pool.mounts.size() || a.ids != b.ids || job.uid_map_text != pool.uid_map_text ||
        job.gid_map_text != pool.gid_map_text)
        return "the job's setup (hostname, mounts, root or id maps) differs from the warm pool's";
    return {};
}

// Whether a job can be started as a pre-started job of the pool's spec: everything but argv,
// env and descriptors must be the pool's.
std::string ready_mismatch(const prepared_data& job, const prepared_data& pool) {
    if (std::string why = set_mismatch(job, pool); !why.empty()) return why;
    const spawn_spec& a = job.spec;
    const spawn_spec& b = pool.spec;
    auto same_seccomp = [&] {
        if (a.seccomp == b.seccomp) return true;
        return a.seccomp && b.seccomp && a.seccomp->bytes() == b.seccomp->bytes();
    };
    auto same_rlimits = [&] {
        if (a.rlimits.size() != b.rlimits.size()) return false;
        for (std::size_t i = 0; i < a.rlimits.size(); ++i)
            if (a.rlimits[i].resource != b.rlimits[i].resource || a.rlimits[i].soft != b.rlimits[i].soft ||
                a.rlimits[i].hard != b.rlimits[i].hard)
                return false;
        return true;
    };
    if (a.cwd != b.cwd || job.root_cwd != pool.root_cwd || job.uid != pool.uid || job.gid != pool.gid ||
        job.groups != pool.groups || job.drop_caps != pool.drop_caps || job.keep_caps != pool.keep_caps ||
        job.no_new_privs != pool.no_new_privs || !same_seccomp() || !same_rlimits() ||
        a.new_session != b.new_session || a.die_with_parent != b.die_with_parent || a.foreground ||
        a.exec != b.exec || a.init_program != b.init_program || a.cgroup_fd != b.cgroup_fd)
        return "a pre-started job may change only its program, argv, env and descriptors; this one differs "
               "from the warm pool's spec in its walls, ids, limits, cwd or process attributes";
    return {};
}

// Starts a pre-started job: its program, argv, env and descriptors go over its go socket,
// and it execs. Into the job's own cgroup first, if it has one (written by pid: it was made
// before the job was known).
bool launch_ready(const prepared_spawn& p, std::unique_ptr<warm_set> set, launched_child& child,
                  spawn_failure& failure, const launch_extras& extras) {
    const prepared_data& d = p.data();
    detail::launch_frame f;
    sys::unique_fd child_ends[3];
    if (!plan_descriptors(d.spec, extras, f, child, child_ends, failure)) return false;
    std::string pid_text = std::to_string(set->holder_pid());
    if (extras.cgroup_fd >= 0) {
        sys::unique_fd procs(::openat(extras.cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC));
        if (!procs || ::write(procs.get(), pid_text.data(), pid_text.size()) != static_cast<ssize_t>(pid_text.size())) {
            failure = parent_failure(child_stage::cgroup_join, sys::errno_code(errno), "the job's cgroup", d.spec.namespaces);
            return false;
        }
    }
    for (int i = 0; i < extras.join_count; ++i) {
        if (::write(extras.join_fds[i], pid_text.data(), pid_text.size()) != static_cast<ssize_t>(pid_text.size())) {
            failure = parent_failure(child_stage::cgroup_join, sys::errno_code(errno), "a v1 cgroup", d.spec.namespaces);
            return false;
        }
    }
    detail::go_header h;
    std::string blob;
    for (const std::string& c : d.candidates) blob.append(c).push_back('\0');
    for (const std::string& a : d.argv_storage) blob.append(a).push_back('\0');
    h.env_count = detail::go_header::env_inherit;
    if (!d.env_inherit) {
        for (const std::string& e : d.env_storage) blob.append(e).push_back('\0');
        h.env_count = static_cast<std::uint16_t>(std::min<std::size_t>(d.env_storage.size(), 0xfffe));
    }
    if (blob.size() > detail::go_blob_max || d.candidates.size() > 0xffff || d.argv_storage.size() > 0xffff ||
        d.env_storage.size() > 0xfffe) {
        failure = spawn_failure{child_stage::prepare, sys::errno_code(E2BIG),
                                "argv and env of a pre-started job: at most 8 MiB and 65534 strings each", {}};
        return false;
    }
    h.blob = static_cast<std::uint32_t>(blob.size());
    h.candidates = static_cast<std::uint16_t>(d.candidates.size());
    h.argc = static_cast<std::uint16_t>(d.argv_storage.size());
    h.fd_count = static_cast<std::uint16_t>(f.move_count);
    int sources[sizeof h.targets / sizeof h.targets[0]];
    for (int i = 0; i < f.move_count; ++i) {
        h.targets[i] = f.moves[i].target;
        sources[i] = f.moves[i].source;
    }
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof sources)] = {};
    struct iovec iov{&h, sizeof h};
    struct msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (f.move_count > 0) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<std::size_t>(f.move_count));
        struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<std::size_t>(f.move_count));
        std::memcpy(CMSG_DATA(cm), sources, sizeof(int) * static_cast<std::size_t>(f.move_count));
    }
    warm_set::ready_parts job = set->take_ready();
    child.timings.clone_start = sys::monotonic_ns();
    ssize_t n;
    do n = ::sendmsg(job.go.get(), &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    bool sent = n == static_cast<ssize_t>(sizeof h);
    for (std::size_t off = 0; sent && off < blob.size();) {
        n = ::send(job.go.get(), blob.data() + off, blob.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            sent = false;
            break;
        }
        off += static_cast<std::size_t>(n);
    }
    if (!sent) {
        // It died while it waited: the caller goes cold.
        kill_and_reap(job.pidfd.get());
        child = launched_child{};
        failure = spawn_failure{child_stage::enter_set, sys::errno_code(ESRCH), "pre-started job " + std::to_string(job.pid), {}};
        return false;
    }
    child.timings.clone_end = child.timings.maps_written = sys::monotonic_ns();
    for (auto& end : child_ends) end.reset();
    child.pid = job.pid;
    child.pidfd = std::move(job.pidfd);
    child.report = std::move(job.report);
    child.ids = std::move(job.ids);
    child.method = clone_method::fork;
    child.report_complete = false;
    child.set = std::shared_ptr<warm_set>(std::move(set));  // now only its namespaces, until the reap
    return true;
}

// A job in a warm set: an entry process (CLONE_VM | CLONE_FILES, on this thread's vfork
// stack) enters the set and clone3s the job, which runs on a second stack; see warm.hpp.
bool launch_warm(const prepared_spawn& p, std::unique_ptr<warm_set> set, launched_child& child,
                 spawn_failure& failure, const launch_extras& extras) {
    const prepared_data& d = p.data();
    detail::launch_frame f;
    f.plan = &d;
    f.envp = d.env_inherit ? environ : const_cast<char* const*>(d.env_ptrs.data());
    f.parent_pid = own_pid();
    f.role = detail::child_role::warm_job;
    auto report = sys::pipe();
    if (!report) {
        failure = parent_failure(child_stage::pipes, report.error(), "report pipe", d.spec.namespaces);
        return false;
    }
    sys::unique_fd child_ends[3];
    if (!plan_descriptors(d.spec, extras, f, child, child_ends, failure)) return false;
    f.report_write = report->write.get();
    f.join_fds = extras.join_fds;
    f.join_count = extras.join_count;

    detail::launch_frame e;
    e.plan = &d;
    e.role = detail::child_role::entry;
    e.set_pidfd = set->holder_pidfd();
    e.set_flags = set_flags(d);
    e.job_clone_flags = CLONE_PARENT | CLONE_CLEAR_SIGHAND | (d.new_pid ? CLONE_NEWPID : 0);
    e.job_cgroup_fd = extras.cgroup_fd >= 0 ? extras.cgroup_fd : d.spec.cgroup_fd;
    e.job_frame = &f;
    // posix_spawn-style where the cold path would be; else fork-style (sanitizer builds,
    // DROVER_CLONE=fork), the entry reporting through a pipe.
    bool vm = use_vfork(d);
    void* stack = nullptr;
    sys::pipe_fds result;
    if (vm) {
        e.job_stack = warm_job_stack.get();
        e.job_stack_size = child_stack::size;
        stack = vfork_stack.get();
    } else {
        auto rp = sys::pipe();
        if (!rp) {
            failure = parent_failure(child_stage::pipes, rp.error(), "entry pipe", d.spec.namespaces);
            return false;
        }
        result = std::move(*rp);
        e.entry_result = result.write.get();
    }
    if (vm && (!stack || !e.job_stack)) {
        failure = parent_failure(child_stage::clone, sys::errno_code(ENOMEM), "a stack for the entry process",
                                 d.spec.namespaces);
        return false;
    }
    sys::clone3_args args;
    args.flags = CLONE_FILES | CLONE_CLEAR_SIGHAND;
    std::error_code ec;
    child.timings.clone_start = sys::monotonic_ns();
    sigset_t all, old;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &old);
    // The job's PID namespace is made below the holder's, so that the holder's end ends the
    // job too. Only a process whose own PID namespace is the holder's can make one there
    // (the kernel refuses CLONE_NEWPID after a setns into another): so the entry is created
    // in it. setns(CLONE_NEWPID) changes where this thread's children go, nothing else, and
    // is undone at once.
    int own_ns = d.new_pid && can_nest_pid_ns() ? own_pid_ns() : -1;
    if (own_ns >= 0) ec = sys::setns(set->holder_pidfd(), CLONE_NEWPID);
    sys::clone3_result r;
    if (!ec && vm) {
        r = sys::clone3_vm(args, stack, child_stack::size, detail::child_entry, &e, ec);
    } else if (!ec) {
        r = sys::clone3(args, ec);
        if (!ec && r.pid == 0) detail::run_child(e);
    }
    if (own_ns >= 0 && sys::setns(own_ns, CLONE_NEWPID)) {
        // Cannot happen (can_nest_pid_ns() entered it before); if it did, this thread's later
        // children would land in a dead set's namespace. Better to stop here.
        std::abort();
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    child.timings.clone_end = sys::monotonic_ns();
    if (ec) {
        child = launched_child{};
        if (ec == std::errc::no_such_process) {  // the holder is gone: the caller goes cold
            failure = spawn_failure{child_stage::enter_set, ec, "holder " + std::to_string(set->holder_pid()), {}};
            return false;
        }
        failure = parent_failure(child_stage::clone, ec, "the entry into a warm set", d.spec.namespaces);
        return false;
    }
    {
        // The entry has exited (on the vfork path: once the job exec'd or failed) or is about
        // to (fork-style: right after its clone3): reap it.
        sys::unique_fd entry(r.pidfd);
        siginfo_t info;
        (void)sys::waitid_pidfd(entry.get(), info, WEXITED);
    }
    if (!vm) {
        // Its results are in the pipe, unless it died first. Not closed before: the entry
        // shares our descriptor table (CLONE_FILES), our close would be its too.
        int msg[3] = {ECHILD, -1, -1};
        pollfd pfd{result.read.get(), POLLIN, 0};
        if (::poll(&pfd, 1, 0) == 1 && ::read(result.read.get(), msg, sizeof msg) != static_cast<ssize_t>(sizeof msg))
            msg[0] = ECHILD;
        e.entry_err = msg[0];
        e.job_pid = msg[1];
        e.job_pidfd = msg[2];
    }
    if (e.entry_err != 0 || e.job_pid <= 0) {
        child = launched_child{};
        int err = e.entry_err ? e.entry_err : ECHILD;
        std::string detail = "holder " + std::to_string(set->holder_pid());
        failure = spawn_failure{child_stage::enter_set, sys::errno_code(err), detail, {}};
        if (err == ESRCH) failure.advice = "the set's holder is gone (killed from outside?)";
        return false;
    }
    child.pid = e.job_pid;
    child.pidfd.reset(e.job_pidfd);
    child.method = vm ? clone_method::vfork : clone_method::fork;
    report->write.reset();
    for (auto& end : child_ends) end.reset();
    child.timings.maps_written = child.timings.clone_end;
    child.report = std::move(report->read);
    child.report_complete = vm;
    child.ids = set->ids();
    child.set = std::shared_ptr<warm_set>(std::move(set));
    return true;
}

}  // namespace

namespace {

bool launch_any(const prepared_spawn& p, launched_child& child, spawn_failure& failure, const launch_extras& extras) {
    child = launched_child{};
    if (extras.warm) {
        const prepared_data& pool = extras.warm->spec().data();
        std::string why = extras.warm->prestarted() ? ready_mismatch(p.data(), pool) : set_mismatch(p.data(), pool);
        if (!why.empty()) {
            failure = spawn_failure{child_stage::prepare, sys::errno_code(EINVAL), why, {}};
            return false;
        }
        if (auto set = extras.warm->take()) {
            bool ok = set->what() == warm_set::kind::ready_job ? launch_ready(p, std::move(set), child, failure, extras)
                                                              : launch_warm(p, std::move(set), child, failure, extras);
            if (ok) return true;
            // The holder died between the pool's look and the entry's setns: go cold.
            if (failure.stage != child_stage::enter_set || failure.code != std::errc::no_such_process) return false;
        }
    }
    return launch_child(p, child, failure, extras, -1);
}

}  // namespace

bool detail::needs_id_lease(const prepared_spawn& p) noexcept {
    return p.data().user && p.data().spec.ids == userns_ids::automatic;
}

bool detail::own_map_writer() noexcept { return map_writer::make_own(); }

std::optional<std::vector<int>> detail::caller_fds(const prepared_spawn& p, const launch_extras& extras) {
    const prepared_data& d = p.data();
    if (extras.warm) return std::nullopt;
    for (const auto& step : d.fs_steps)
        if (step.what == detail::fs_step::kind::copy_fd) return std::nullopt;
    std::vector<int> fds;
    auto add = [&fds](int fd) {
        if (fd >= 0 && std::find(fds.begin(), fds.end(), fd) == fds.end()) fds.push_back(fd);
    };
    for (const stdio* s : {&d.spec.in, &d.spec.out, &d.spec.err}) {
        if (s->how == stdio::kind::null) add(dev_null());
        if (s->how == stdio::kind::fd) add(s->fd);
    }
    for (const fd_pass& pf : d.spec.pass_fds) add(pf.parent_fd);
    add(extras.cgroup_fd >= 0 ? extras.cgroup_fd : d.spec.cgroup_fd);
    for (int i = 0; i < extras.join_count; ++i) add(extras.join_fds[i]);
    return fds;
}

bool launch(const prepared_spawn& p, launched_child& child, spawn_failure& failure, const launch_extras& extras) {
    // The "prepare" stage: what drover does before clone3 (pipes, the launch frame, a warm
    // set's checks) is drover's own cost, timed like the kernel's stages.
    const std::int64_t start = sys::monotonic_ns();
    bool ok = launch_any(p, child, failure, extras);
    if (ok) child.timings.launch_start = start;
    return ok;
}

namespace {

// Fills a vm child's memory from the frame built on our stack: the frame itself, and what it
// points to that our caller owns (the join descriptors, the environment's pointers), so the
// child reads nothing that can change or go away before it has exec'd.
void launch_in(detail::child_memory& mem, const prepared_spawn& p, const detail::launch_frame& f,
               sys::clone3_args& args) {
    mem.frame = f;
    mem.plan = p.shared_data();
    if (f.join_count > 0) {
        mem.joins.assign(f.join_fds, f.join_fds + f.join_count);
        mem.frame.join_fds = mem.joins.data();
    }
    if (p.data().env_inherit) {
        for (char* const* e = environ; *e; ++e) mem.env.push_back(*e);
        mem.env.push_back(nullptr);
        mem.frame.envp = mem.env.data();
    }
    mem.tid_word = 1;
    args.wait_for_exec = false;
    args.tls = mem.tls;
    args.child_tid = &mem.tid_word;
}

// hold_read >= 0: the child is a warm set's holder (no cgroup of the job's), which waits on
// that descriptor once its namespaces are set up. go_fd >= 0: a pre-started job, which waits
// there for its program once all of its setup is done. Either waits in the program stub_fd
// names (posix_spawn-style) or, without one, in our child code (fork path).
bool launch_child(const prepared_spawn& p, launched_child& child, spawn_failure& failure,
                  const launch_extras& extras, int hold_read, int go_fd, int stub_fd) {
    const prepared_data& d = p.data();
    child = launched_child{};

    detail::launch_frame f;
    f.plan = &d;
    f.envp = d.env_inherit ? environ : const_cast<char* const*>(d.env_ptrs.data());
    f.parent_pid = own_pid();
    bool holder = hold_read >= 0;
    if (holder) {
        f.role = detail::child_role::holder;
        f.hold_read = hold_read;
        f.stub_fd = stub_fd;  // a holder execs the stub's hold mode once set up
    }
    if (go_fd >= 0) {
        f.role = detail::child_role::ready;
        f.go_fd = go_fd;
        f.stub_fd = stub_fd;
    }

    // A ready job or a holder that waits in drover's own child needs memory of its own (fork
    // path). One that execs a stub once set up (drover_holder, drover_ready_stub) shares ours
    // until then, as a cold job does: no copy of our page tables per set.
    const bool waits_in_child = (holder || go_fd >= 0) && stub_fd < 0;
    void* stack = !waits_in_child && use_vfork(d) ? vfork_stack.get() : nullptr;
    // The vm path: memory of the child's own instead of this thread's vfork stack (none: vfork).
    std::shared_ptr<detail::child_memory> mem = stack && use_vm(d) ? detail::child_memory::make() : nullptr;
    // The report: on the vfork path straight into child.report_bytes (the child shares our
    // memory until execve), else a pipe; a ready job's stub writes its records after its
    // execve, so it always has the pipe.
    sys::pipe_fds report;
    auto report_pipe = [&](std::error_code& ec) {
        if (report.read) return;  // a ready job's, made up front
        auto rp = sys::pipe();
        if (!rp) return void(ec = rp.error());
        report = std::move(*rp);
        f.report_write = report.write.get();
        f.report_mem = nullptr;
        f.report_len = nullptr;
    };
    if (stack && !mem && go_fd < 0) {
        f.report_mem = child.report_bytes.data();
        f.report_len = &child.report_size;
    } else if (std::error_code ec; report_pipe(ec), ec) {
        failure = parent_failure(child_stage::pipes, ec, "report pipe", d.spec.namespaces);
        return false;
    }
    sys::pipe_fds sync;
    if (d.hold) {
        auto s = sys::pipe();
        if (!s) {
            failure = parent_failure(child_stage::pipes, s.error(), "sync pipe", d.spec.namespaces);
            return false;
        }
        sync = std::move(*s);
    }
    sys::unique_fd child_ends[3];
    if (!plan_descriptors(d.spec, extras, f, child, child_ends, failure)) return false;
    // Host ids of the child's own: a range leased for as long as the process lives.
    std::string auto_map;
    if (detail::needs_id_lease(p)) {
        child.ids = extras.ids;
        if (!child.ids) {
            auto lease = id_pool::global().acquire();
            if (!lease) {
                failure = parent_failure(child_stage::id_lease, lease.error(), id_pool::global().options().lock_dir,
                                         d.spec.namespaces);
                return false;
            }
            child.ids = std::make_shared<id_lease>(std::move(*lease));
        }
        auto_map = "0 " + std::to_string(child.ids->first()) + " " + std::to_string(child.ids->size()) + "\n";
    }
    f.sync_read = sync.read.get();
    // The v1 cgroup.procs files, as this thread numbers them (renumbered only on a spawner
    // with a table of its own).
    std::vector<int> joins;
    f.join_fds = extras.join_fds;
    if (extras.rename_count > 0 && extras.join_count > 0) {
        joins.assign(extras.join_fds, extras.join_fds + extras.join_count);
        for (int& j : joins) j = extras.own_fd(j);
        f.join_fds = joins.data();
    }
    f.join_count = extras.join_count;

    // The parent's part of a held child: id maps (the leased range, or explicit ones) and v1
    // cgroup joins by path.
    bool automatic = d.spec.ids == userns_ids::automatic;
    auto parents_part = [&](pid_t pid, spawn_failure& fail) {
        return (!d.user || d.self_map ||
                write_id_maps(d, pid, automatic ? auto_map : d.uid_map_text, automatic ? auto_map : d.gid_map_text,
                              fail)) &&
               join_cgroups(d, pid, fail);
    };

    // CLONE_CLEAR_SIGHAND resets the parent's signal handlers in the child as it is created,
    // so no handler of the parent's can ever run there (without a loop of 64 sigaction calls).
    std::error_code ec;
    sys::clone3_args args;
    args.flags = (holder ? set_flags(d) | (d.new_pid ? CLONE_NEWPID : 0) : d.clone_flags) | CLONE_CLEAR_SIGHAND;
    args.cgroup_fd = holder ? -1 : extras.own_fd(extras.cgroup_fd >= 0 ? extras.cgroup_fd : d.spec.cgroup_fd);
    // A held child on the posix_spawn path: the map writer does the parent's part.
    map_writer::request mapping;
    sys::pipe_fds ready;
    bool report_failed = false;
    if (stack && !mem && d.hold) {
        map_writer* writer = map_writer::instance();
        auto rp = writer ? sys::pipe() : sys::result<sys::pipe_fds>(sys::errno_code(EAGAIN));
        if (!rp) {
            stack = nullptr;  // no writer thread or no descriptors for it: the fork path will do
            std::error_code pipe_ec;
            report_pipe(pipe_ec);
            if (pipe_ec) {
                failure = parent_failure(child_stage::pipes, pipe_ec, "report pipe", d.spec.namespaces);
                return false;
            }
        } else {
            ready = std::move(*rp);
            mapping.ready_read = ready.read.get();
            mapping.sync_write = sync.write.get();
            mapping.work = parents_part;
            f.ready_write = ready.write.get();
            args.parent_tid = &mapping.pid_slot;
            writer->submit(&mapping);
        }
    }
    if (mem) launch_in(*mem, p, f, args);
    child.timings.clone_start = sys::monotonic_ns();
    sys::clone3_result r;
    if (stack) {
        // Returns once the child has called execve or exited; `f` stays valid until then.
        // Every signal is blocked around it, as glibc's posix_spawn does: a ^Z or SIGSTOP-able
        // signal taken by the child before execve would otherwise keep this thread (the event
        // loop's) frozen, and a handler of ours must not run on the child's stack. The child
        // clears its mask before execve (signals stage).
        sigset_t all, old;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, &old);
        if (mem) {
            r = sys::clone3_vm(args, mem->stack, mem->stack_size, detail::child_entry, &mem->frame, ec);
            mem->launched = !ec;
        } else {
            r = sys::clone3_vm(args, stack, child_stack::size, detail::child_entry, &f, ec);
        }
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
        if (ec == std::errc::invalid_argument || ec == std::errc::function_not_supported) {
            vfork_refused.store(true, std::memory_order_relaxed);
            stack = nullptr;
            ec.clear();
            if (!mem) {
                report_pipe(ec);  // the fork path reports through a pipe
                report_failed = bool(ec);
            }
            mem.reset();
        }
    }
    if (!stack && !ec) {
        r = sys::clone3(args, ec);
        if (!ec && r.pid == 0) detail::run_child(f);
    }
    child.method = mem ? clone_method::vm : stack ? clone_method::vfork : clone_method::fork;
    child.timings.clone_end = sys::monotonic_ns();
    if (mapping.work) {
        // clone3 failed: say so. EOF alone is not enough: a child another thread cloned
        // meanwhile has a copy of this write end until its execve, and if it waits for the
        // writer too (its own maps), the two wait for each other (a warm pool's refill
        // thread and the loop, under a lowered user.max_net_namespaces, hung so).
        if (ec) (void)!::write(ready.write.get(), "0", 1);
        // Our copy of the child's end: closing it lets the writer see EOF if no child ever
        // said it was up (the child died first).
        ready.write.reset();
        map_writer::instance()->wait(&mapping);
        if (!ec && !mapping.ok && mapping.ready_read >= 0 && mapping.failure.stage != child_stage::report) {
            // The maps could not be written: say why, not that the child gave up waiting.
            kill_and_reap(r.pidfd);
            ::close(r.pidfd);
            child = launched_child{};
            failure = mapping.failure;
            return false;
        }
    }

    if (ec) {
        child = launched_child{};
        failure = report_failed ? parent_failure(child_stage::pipes, ec, "report pipe", d.spec.namespaces)
                                : parent_failure(child_stage::clone, ec, d.spec.namespaces.str(), d.spec.namespaces);
        return false;
    }
    child.pid = r.pid;
    child.pidfd.reset(r.pidfd);
    child.memory = std::move(mem);
    report.write.reset();
    for (auto& e : child_ends) e.reset();
    // sync.read stays open until the byte is written: a child that died before reading it
    // must not turn our write into SIGPIPE for the host process.

    if (d.hold && !mapping.work) {
        if (!parents_part(r.pid, failure)) {
            kill_and_reap(child.pidfd.get());
            child = launched_child{};
            return false;
        }
        char go = 1;
        (void)!::write(sync.write.get(), &go, 1);
    }
    sync.write.reset();
    sync.read.reset();
    // With nothing to write (no explicit maps, no cgroup joins) the stage has no length.
    child.timings.maps_written = mapping.work && mapping.written_ns ? mapping.written_ns
                                 : d.hold                          ? sys::monotonic_ns()
                                                                   : child.timings.clone_end;
    child.report = std::move(report.read);
    child.report_complete = child.method == clone_method::vfork && !child.report;
    return true;
}

}  // namespace

namespace {

// A pre-started job: role ready (posix_spawn-style where it execs the stub, else the fork
// path); it is ready once it has written its
// first report record (setup done), and waits for its program on the go socket. `silent`:
// it died without a word.
std::unique_ptr<warm_set> try_ready_job(const prepared_spawn& p, spawn_failure& failure, int stub_fd, bool& silent) {
    silent = false;
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        failure = parent_failure(child_stage::pipes, sys::errno_code(errno), "go socket", p.spec().namespaces);
        return nullptr;
    }
    sys::unique_fd ours(sv[0]), theirs(sv[1]);
    launched_child job;
    std::int64_t start = sys::monotonic_ns();
    bool ok = launch_child(p, job, failure, {}, -1, theirs.get(), stub_fd);
    theirs.reset();
    if (!ok) return nullptr;
    std::byte buf[report_max_size];
    std::size_t got = 0;
    while (got < report_record_size) {
        ssize_t n = ::read(job.report.get(), buf + got, report_record_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    detail::child_report r{};
    if (got == report_record_size) std::memcpy(&r, buf, sizeof r);
    if (got != report_record_size || r.stage != 0) {
        // A failure record (then EOF), or it died: conclude() names the stage and reaps it.
        silent = got == 0;
        while (got < sizeof buf) {
            ssize_t n = ::read(job.report.get(), buf + got, sizeof buf - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        if (conclude(p, job, std::span<const std::byte>(buf, got), sys::monotonic_ns(), failure)) {
            failure = spawn_failure{child_stage::report, sys::errno_code(EPROTO), "a pre-started job exec'd early", {}};
        }
        return nullptr;
    }
    auto set = std::make_unique<warm_set>(job.pid, std::move(job.pidfd), std::move(ours), std::move(job.report),
                                          std::move(job.ids), sys::monotonic_ns() - start);
    // Its namespaces, held until the job is reaped (warm_set::hold_namespaces). A name that
    // cannot be opened is only not held: the job is not worse off than a cold one.
    std::vector<sys::unique_fd> held;
    const std::string dir = "/proc/" + std::to_string(set->holder_pid()) + "/ns/";
    for (auto [n, name] : {std::pair{ns::mnt, "mnt"}, {ns::net, "net"}, {ns::ipc, "ipc"}, {ns::uts, "uts"},
                           {ns::cgroup, "cgroup"}, {ns::user, "user"}})
        if (p.spec().namespaces.has(n))
            if (sys::unique_fd fd(::open((dir + name).c_str(), O_RDONLY | O_CLOEXEC)); fd) held.push_back(std::move(fd));
    set->hold_namespaces(std::move(held));
    return set;
}

// In the stub if it can; where the stub itself fails (its execveat refused: an LSM, a noexec
// mount, a broken file; or the job died without a word after its setup, which writes a
// record for every failure of its own) the job is made again waiting in drover's child, and
// `stub_error` says why, so that the pool stops trying.
std::unique_ptr<warm_set> make_ready_job(const prepared_spawn& p, spawn_failure& failure, bool stub,
                                         std::string* stub_error) {
    const int stub_fd = stub && ready_stub_unusable(p).empty() ? detail::ready_stub_fd() : -1;
    bool silent = false;
    auto set = try_ready_job(p, failure, stub_fd, silent);
    if (set || stub_fd < 0 || !(failure.stage == child_stage::ready_stub || silent)) return set;
    std::string why = failure.message();
    failure = spawn_failure{};
    set = try_ready_job(p, failure, -1, silent);
    if (set && stub_error) *stub_error = std::move(why);
    return set;
}

}  // namespace

std::unique_ptr<warm_set> make_warm_set(const prepared_spawn& p, spawn_failure& failure, bool prestart,
                                        bool stub, std::string* stub_error) {
    if (std::string why = warm_unsupported(p, prestart); !why.empty()) {
        failure = spawn_failure{child_stage::prepare, sys::errno_code(EINVAL), why, {}};
        return nullptr;
    }
    if (prestart) return make_ready_job(p, failure, stub, stub_error);
    auto make_holder = [&](int stub_fd) -> std::unique_ptr<warm_set> {
        auto hold = sys::pipe();
        if (!hold) {
            failure = parent_failure(child_stage::pipes, hold.error(), "hold pipe", p.spec().namespaces);
            return nullptr;
        }
        launched_child holder;
        std::int64_t start = sys::monotonic_ns();
        bool ok = launch_child(p, holder, failure, {}, hold->read.get(), -1, stub_fd);
        hold->read.reset();
        if (!ok || !await_exec(p, holder, failure)) return nullptr;
        return std::make_unique<warm_set>(holder.pid, std::move(holder.pidfd), std::move(hold->write),
                                          std::move(holder.ids), sys::monotonic_ns() - start);
    };
    // The holder waits in the stub where it can: made posix_spawn-style, it copies none of
    // our page tables (a fork-style holder per set made the refill thread stall the loop's
    // page faults and flush its TLB).
    const int stub_fd = !stub ? -1 : detail::holder_fd() >= 0 ? detail::holder_fd() : detail::ready_stub_fd();
    auto set = make_holder(stub_fd);
    if (set || stub_fd < 0 || !(failure.stage == child_stage::ready_stub || failure.stage == child_stage::report))
        return set;
    std::string why = failure.message();
    failure = spawn_failure{};
    set = make_holder(-1);
    if (set && stub_error) *stub_error = std::move(why);
    return set;
}

namespace {

std::string failure_detail(const prepared_data& d, child_stage stage, unsigned index) {
    const spawn_spec& s = d.spec;
    switch (stage) {
        case child_stage::bind_mount:
        case child_stage::remount_ro:
        case child_stage::tmpfs:
            if (index < d.mounts.size()) {
                const auto& m = d.mounts[index];
                return m.what == detail::mount_op::kind::bind ? m.source + " on " + m.target
                                                              : m.target;
            }
            return {};
        case child_stage::rlimit:
            return index < s.rlimits.size() ? rlimit_name(s.rlimits[index].resource) : std::string{};
        case child_stage::fds:
        case child_stage::close_fds:
            return "fd " + std::to_string(index);
        case child_stage::chdir:
            return d.fs_steps.empty() ? s.cwd : d.root_cwd;
        case child_stage::filesystem: {
            const auto& list = (index & detail::capture_index_bit) ? d.fs_captures : d.fs_steps;
            unsigned i = index & ~detail::capture_index_bit;
            return i < list.size() ? list[i].what_for : std::string{};
        }
        case child_stage::set_ids: {
            const char* what[] = {"(keepcaps)", "(setgroups)", "(setresgid)", "(setresuid)"};
            return "uid " + std::to_string(d.uid) + " gid " + std::to_string(d.gid) + " " + what[std::min(index, 3u)];
        }
        case child_stage::capabilities:
        case child_stage::cap_bounding:
            return "keeping " + capability_set::from_bits(d.keep_caps).str();
        case child_stage::hostname:
            return s.hostname;
        case child_stage::exec:
            if (d.candidates.size() > 1) return s.argv.front() + " (searched PATH)";
            return index < d.candidates.size() ? d.candidates[index] : std::string{};
        default:
            return {};
    }
}

}  // namespace

bool conclude(const prepared_spawn& p, launched_child& child, std::span<const std::byte> bytes,
              std::int64_t eof_ns, spawn_failure& failure) {
    const prepared_data& d = p.data();
    std::optional<detail::child_report> bad;
    bool saw_any = false;
    for (std::size_t off = 0; off + sizeof(detail::child_report) <= bytes.size();
         off += sizeof(detail::child_report)) {
        detail::child_report r;
        std::memcpy(&r, bytes.data() + off, sizeof r);
        saw_any = true;
        child.timings.child_start = r.child_start;
        child.timings.setup_done = r.setup_done;
        if (r.stage != 0) {
            bad = r;
            break;
        }
    }
    child.report.reset();
    // EOF came after the child left our memory (the kernel releases it before closing the
    // descriptors, at execve as at exit): this does not wait.
    child.memory.reset();
    if (child.method == clone_method::vfork && child.timings.child_start > 0) {
        // clone3 returned only after the child's setup: on the stage timeline the clone ends
        // where the child started; its maps were written (by the map writer) before it went
        // on, or it was never held.
        bool held = child.timings.maps_written != child.timings.clone_end;
        child.timings.clone_end = std::min(child.timings.clone_end, child.timings.child_start);
        if (!held) child.timings.maps_written = child.timings.clone_end;
    }
    if (saw_any && !bad) {
        child.timings.exec_done = eof_ns;
        return true;
    }
    // The child is exiting (it reported) or died before it could; reap it either way.
    siginfo_t info;
    sys::waitid_pidfd(child.pidfd.get(), info, WEXITED);
    if (bad) {
        auto stage = static_cast<child_stage>(bad->stage);
        failure = spawn_failure{stage, sys::errno_code(bad->err),
                                failure_detail(d, stage, bad->index), {}};
        if (stage == child_stage::filesystem) {
            const auto& list = (bad->index & detail::capture_index_bit) ? d.fs_captures : d.fs_steps;
            unsigned i = bad->index & ~detail::capture_index_bit;
            failure.advice = i < list.size() ? detail::fs_advice(list[i], bad->err) : std::string{};
        } else {
            failure.advice = kernel_advice(stage, bad->err, d.spec.namespaces);
        }
        // execve says EACCES for a directory too: say which it is. (Looked at from here, not
        // from the child's root: a new root makes this a guess, so only a sure "directory".)
        struct stat st{};
        if (stage == child_stage::exec && bad->err == EACCES && bad->index < d.candidates.size() &&
            !d.spec.fs.enabled && ::stat(d.candidates[bad->index].c_str(), &st) == 0 && S_ISDIR(st.st_mode))
            failure.advice = "it is a directory, not a program";
    } else {
        failure = spawn_failure{child_stage::report, sys::errno_code(ECHILD),
                                "the child died during setup: " +
                                    exit_status::from_siginfo(info).str(),
                                {}};
    }
    child = launched_child{};
    return false;
}

std::size_t read_report(launched_child& child, std::span<std::byte, report_max_size> buf) {
    if (!child.report) {  // written into our memory (vfork path)
        std::size_t n = std::exchange(child.report_size, 0);
        std::memcpy(buf.data(), child.report_bytes.data(), n);
        return n;
    }
    // The writers are gone or past execve: one read takes every record there is (each is
    // written whole, well under PIPE_BUF), and it cannot block.
    ssize_t n;
    do n = ::read(child.report.get(), buf.data(), buf.size());
    while (n < 0 && errno == EINTR);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

bool await_exec(const prepared_spawn& p, launched_child& child, spawn_failure& failure) {
    std::byte buf[report_max_size];
    if (child.report_complete) {
        std::size_t got = read_report(child, buf);
        return conclude(p, child, std::span<const std::byte>(buf, got), sys::monotonic_ns(), failure);
    }
    std::size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = ::read(child.report.get(), buf + got, sizeof buf - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    return conclude(p, child, std::span<const std::byte>(buf, got), sys::monotonic_ns(), failure);
}

exit_status wait_blocking(launched_child& child) {
    pollfd pfd{child.pidfd.get(), POLLIN, 0};
    while (::poll(&pfd, 1, -1) < 0 && errno == EINTR) {
    }
    child.timings.exit_observed = sys::monotonic_ns();
    siginfo_t info;
    if (std::error_code ec = sys::waitid_pidfd(child.pidfd.get(), info, WEXITED))
        throw std::system_error(ec, "waitid(P_PIDFD)");
    child.timings.reaped = sys::monotonic_ns();
    child.pidfd.reset();
    child.set.reset();
    return exit_status::from_siginfo(info);
}

launched_child launch_sync(const prepared_spawn& p) {
    launched_child child;
    spawn_failure failure;
    if (!launch(p, child, failure) || !await_exec(p, child, failure)) throw spawn_error(failure);
    return child;
}

}  // namespace drover
