// cgroup: detection of the host's layout, drover's subtree, per-service cgroups and limits.
#include "drover/process/cgroup.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <new>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "drover/sys/fault.hpp"
#include "drover/sys/syscalls.hpp"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace drover {

namespace {

constexpr const char* cgroup_mount = "/sys/fs/cgroup";

bool is_cgroup2(const std::string& path) {
    struct statfs st {};
    return ::statfs(path.c_str(), &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

bool is_dir(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::error_code write_file(const std::string& path, const std::string& text) {
    if (int e = sys::injected_fault(sys::fault_site::cgroup_write)) return sys::errno_code(e);
    return sys::write_file(path.c_str(), text.data(), text.size());
}

void write_or_throw(const std::string& path, const std::string& text) {
    if (std::error_code ec = write_file(path, text))
        throw std::system_error(ec, "writing '" + text + "' to " + path);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// The value after "KEY " in a flat-keyed file such as cgroup.events or memory.events.
std::optional<std::uint64_t> keyed_value(const std::string& text, std::string_view key) {
    std::istringstream in(text);
    std::string k;
    std::uint64_t v = 0;
    while (in >> k >> v)
        if (k == key) return v;
    return std::nullopt;
}

std::error_code make_dir(const std::string& path) {
    if (::mkdir(path.c_str(), 0755) == 0) return {};
    return sys::last_error();
}

/// Removes `path`, retrying briefly while the kernel still counts exiting processes.
std::error_code remove_dir(const std::string& path) {
    for (int i = 0; i < 100; ++i) {
        if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return {};
        if (errno != EBUSY) return sys::last_error();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return sys::errno_code(EBUSY);
}

}  // namespace

std::string_view cgroup_mode_name(cgroup_mode m) noexcept {
    switch (m) {
        case cgroup_mode::none: return "none";
        case cgroup_mode::v2: return "v2";
        case cgroup_mode::hybrid: return "hybrid";
    }
    return "?";
}

cgroup_layout cgroup_layout::detect() {
    cgroup_layout l;
    // /proc/self/cgroup: "0::/path" for v2, "N:ctrl1,ctrl2:/path" for each v1 hierarchy.
    std::ifstream in("/proc/self/cgroup");
    std::string line, v2_path;
    std::vector<std::pair<std::string, std::string>> v1;  // controllers, path
    bool have_v2_line = false;
    while (std::getline(in, line)) {
        auto a = line.find(':');
        auto b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        std::string ctrls = line.substr(a + 1, b - a - 1);
        std::string path = line.substr(b + 1);
        if (line.compare(0, a, "0") == 0 && ctrls.empty()) {
            v2_path = path;
            have_v2_line = true;
        } else {
            v1.emplace_back(ctrls, path);
        }
    }
    auto v1_dir = [&](std::string_view ctrl) -> std::string {
        for (const auto& [ctrls, path] : v1) {
            std::stringstream ss(ctrls);
            std::string c;
            while (std::getline(ss, c, ','))
                if (c == ctrl) {
                    for (const std::string& mount : {std::string(ctrl), ctrls}) {
                        std::string dir = std::string(cgroup_mount) + "/" + mount;
                        if (is_dir(dir) && !is_cgroup2(dir)) return dir + (path == "/" ? "" : path);
                    }
                }
        }
        return {};
    };
    if (!have_v2_line) {
        l.warning = "no cgroup v2 hierarchy in /proc/self/cgroup: services run without cgroups";
        return l;
    }
    std::string rel = v2_path == "/" ? "" : v2_path;
    if (is_cgroup2(cgroup_mount)) {
        l.mode = cgroup_mode::v2;
        l.v2_own = cgroup_mount + rel;
    } else if (is_cgroup2(std::string(cgroup_mount) + "/unified")) {
        l.mode = cgroup_mode::hybrid;
        l.v2_own = std::string(cgroup_mount) + "/unified" + rel;
        l.v1_pids_own = v1_dir("pids");
        l.v1_memory_own = v1_dir("memory");
        l.v1_cpu_own = v1_dir("cpu");
    } else {
        l.warning = "no cgroup v2 tree at /sys/fs/cgroup or /sys/fs/cgroup/unified: services run "
                    "without cgroups (no limits; only the main process is signalled on stop)";
    }
    return l;
}

// ---- service_cgroup ---------------------------------------------------------------------

service_cgroup::~service_cgroup() {
    if (!v2_.empty() || !v1_.empty()) (void)remove();
}

launch_extras service_cgroup::extras() const noexcept {
    launch_extras e;
    e.cgroup_fd = dir_ ? dir_.get() : -1;
    e.join_fds = v1_proc_fds_.empty() ? nullptr : v1_proc_fds_.data();
    e.join_count = static_cast<int>(v1_proc_fds_.size());
    return e;
}

cgroup_stats service_cgroup::stats() const {
    cgroup_stats s;
    if (!v2_.empty()) {
        std::string cpu = read_file(v2_ + "/cpu.stat");
        if (auto u = keyed_value(cpu, "user_usec")) s.user_ns = static_cast<std::int64_t>(*u) * 1000;
        if (auto u = keyed_value(cpu, "system_usec")) s.system_ns = static_cast<std::int64_t>(*u) * 1000;
        if (memory_v1_.empty()) {
            std::string peak = read_file(v2_ + "/memory.peak");
            std::uint64_t v = 0;
            if (std::istringstream(peak) >> v) s.memory_peak = v;
        }
        if (pids_v1_.empty()) s.pids_limit_hits = keyed_value(read_file(v2_ + "/pids.events"), "max").value_or(0);
    }
    if (!memory_v1_.empty()) {
        std::uint64_t v = 0;
        if (std::istringstream(read_file(memory_v1_ + "/memory.max_usage_in_bytes")) >> v) s.memory_peak = v;
    }
    if (!pids_v1_.empty()) s.pids_limit_hits = keyed_value(read_file(pids_v1_ + "/pids.events"), "max").value_or(0);
    s.oom_kills = oom_kills();
    return s;
}

void service_cgroup::apply_to(spawn_spec& spec) const {
    if (dir_) spec.cgroup_fd = dir_.get();
    for (const auto& d : v1_) spec.join_cgroups.push_back(d + "/cgroup.procs");
}

std::vector<pid_t> service_cgroup::pids() const {
    std::vector<pid_t> out;
    std::istringstream in(read_file(v2_.empty() ? (v1_.empty() ? "" : v1_.front()) + "/cgroup.procs"
                                                : v2_ + "/cgroup.procs"));
    pid_t p = 0;
    while (in >> p) out.push_back(p);
    return out;
}

std::error_code service_cgroup::kill_all() const {
    if (v2_.empty() && v1_.empty()) return {};
    if (!v2_.empty()) {
        std::error_code ec = write_file(v2_ + "/cgroup.kill", "1");
        if (!ec || ec.value() != ENOENT) return ec;
        // cgroup.kill needs Linux 5.14. Freeze first so that nothing forks while we kill.
        (void)write_file(v2_ + "/cgroup.freeze", "1");
    }
    for (int round = 0; round < 50; ++round) {
        auto list = pids();
        if (list.empty()) break;
        // Rounds without waiting (this may run on an event loop): each catches what forked
        // since the last; killed processes still listed are killed again, harmlessly.
        for (pid_t p : list) {
            auto fd = sys::pidfd_open(p);
            if (fd) (void)sys::pidfd_send_signal(fd->get(), SIGKILL);
        }
    }
    if (!v2_.empty()) (void)write_file(v2_ + "/cgroup.freeze", "0");
    return {};
}

bool service_cgroup::populated() const {
    if (!v2_.empty()) return keyed_value(read_file(v2_ + "/cgroup.events"), "populated").value_or(0) != 0;
    return !pids().empty();
}

std::uint64_t service_cgroup::oom_kills() const {
    if (!memory_v1_.empty())
        return keyed_value(read_file(memory_v1_ + "/memory.oom_control"), "oom_kill").value_or(0);
    if (!v2_.empty()) return keyed_value(read_file(v2_ + "/memory.events"), "oom_kill").value_or(0);
    return 0;
}

template <class Remove>
std::error_code service_cgroup::remove_with(Remove remove_one) {
    std::error_code first;
    dir_.reset();
    if (!v2_.empty()) {
        if (auto ec = remove_one(v2_)) first = ec;
        else v2_.clear();
    }
    for (auto it = v1_.begin(); it != v1_.end();) {
        if (auto ec = remove_one(*it)) {
            if (!first) first = ec;
            ++it;
        } else {
            it = v1_.erase(it);
        }
    }
    return first;
}

std::error_code service_cgroup::remove() { return remove_with(remove_dir); }

std::error_code service_cgroup::try_remove() {
    return remove_with([](const std::string& path) -> std::error_code {
        if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return {};
        return sys::last_error();
    });
}

// ---- cgroup_tree ------------------------------------------------------------------------

cgroup_tree::cgroup_tree(std::string name, cgroup_layout layout) {
    warning_ = layout.warning;
    if (layout.mode == cgroup_mode::none) return;
    std::string root = layout.v2_own + "/" + name;
    if (std::error_code ec = make_dir(root); ec && ec.value() != EEXIST) {
        warning_ = "cannot create cgroup " + root + ": " + ec.message() +
                   " (run as root, or under a delegated cgroup): services run without cgroups";
        return;
    }
    mode_ = layout.mode;
    v2_root_ = root;
    std::vector<std::string> missing;
    if (mode_ == cgroup_mode::v2) {
        // Limits need the controllers enabled from our own cgroup down. The kernel refuses
        // (EBUSY) where our own cgroup holds processes and is not the root: then say so.
        std::string want;
        std::string have = read_file(layout.v2_own + "/cgroup.controllers");
        for (const char* c : {"memory", "pids", "cpu"})
            if (have.find(c) != std::string::npos) want += std::string(want.empty() ? "+" : " +") + c;
            else missing.emplace_back(c);
        if (!want.empty()) {
            std::error_code ec = write_file(layout.v2_own + "/cgroup.subtree_control", want);
            if (!ec) ec = write_file(root + "/cgroup.subtree_control", want);
            if (ec) warning_ = "cannot enable cgroup controllers (" + want + ") under " + layout.v2_own +
                               ": " + ec.message() + ": limits unavailable";
        }
    } else {
        auto make_v1 = [&](const std::string& own, const char* ctrl, std::string& out) {
            if (own.empty()) {
                missing.emplace_back(ctrl);
                return;
            }
            std::string d = own + "/" + name;
            if (auto ec = make_dir(d); ec && ec.value() != EEXIST) {
                missing.emplace_back(std::string(ctrl) + " (" + ec.message() + ")");
                return;
            }
            out = d;
        };
        make_v1(layout.v1_pids_own, "pids", pids_root_);
        make_v1(layout.v1_memory_own, "memory", memory_root_);
        make_v1(layout.v1_cpu_own, "cpu", cpu_root_);
    }
    if (!missing.empty() && warning_.empty()) {
        std::string m;
        for (const auto& s : missing) m += (m.empty() ? "" : ", ") + s;
        warning_ = "cgroup controllers unavailable: " + m + ": those limits cannot be set";
    }
}

cgroup_tree::~cgroup_tree() { destroy(); }

std::vector<std::string> cgroup_tree::roots() const {
    std::vector<std::string> r;
    for (const auto* s : {&v2_root_, &pids_root_, &memory_root_, &cpu_root_})
        if (!s->empty()) r.push_back(*s);
    return r;
}

service_cgroup cgroup_tree::create(const std::string& service, const resource_limits& limits, bool account_memory) {
    service_cgroup cg;
    if (mode_ == cgroup_mode::none) {
        if (!limits.empty()) throw std::system_error(sys::errno_code(ENOTSUP), "limits need cgroups: " + warning_);
        return cg;
    }
    // A fresh name per run: the previous run's directory may still be going away.
    std::string leaf = service + "." + std::to_string(++serial_);
    cg.v2_ = v2_root_ + "/" + leaf;
    if (auto ec = make_dir(cg.v2_)) {
        cg.v2_.clear();
        throw std::system_error(ec, "creating cgroup " + v2_root_ + "/" + leaf);
    }
    int fd = ::open(cg.v2_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(sys::last_error(), "opening cgroup " + cg.v2_);
    cg.dir_.reset(fd);
    if (mode_ == cgroup_mode::v2) {
        if (limits.memory_max) {
            write_or_throw(cg.v2_ + "/memory.max", std::to_string(*limits.memory_max));
            (void)write_file(cg.v2_ + "/memory.swap.max", "0");  // a limit that swaps is no limit
        }
        if (limits.tasks_max) write_or_throw(cg.v2_ + "/pids.max", std::to_string(*limits.tasks_max));
        if (limits.cpu_quota) {
            auto quota = static_cast<long long>(std::llround(*limits.cpu_quota * 100000.0));
            write_or_throw(cg.v2_ + "/cpu.max", std::to_string(std::max(quota, 1000LL)) + " 100000");
        }
        return cg;
    }
    // Hybrid: v1 directories only for the limits asked for.
    auto v1 = [&](const std::string& root, const char* ctrl) -> std::string {
        if (root.empty())
            throw std::system_error(sys::errno_code(ENOTSUP),
                                    std::string("limit needs the cgroup v1 ") + ctrl + " controller: " + warning_);
        std::string d = root + "/" + leaf;
        if (auto ec = make_dir(d)) throw std::system_error(ec, "creating cgroup " + d);
        cg.v1_.push_back(d);
        int procs = ::open((d + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
        if (procs < 0) throw std::system_error(sys::last_error(), "opening " + d + "/cgroup.procs");
        cg.v1_procs_.emplace_back(procs);
        cg.v1_proc_fds_.push_back(procs);
        return d;
    };
    if (limits.tasks_max) {
        cg.pids_v1_ = v1(pids_root_, "pids");
        write_or_throw(cg.pids_v1_ + "/pids.max", std::to_string(*limits.tasks_max));
    }
    if (limits.memory_max) {
        std::string d = v1(memory_root_, "memory");
        cg.memory_v1_ = d;
        write_or_throw(d + "/memory.limit_in_bytes", std::to_string(*limits.memory_max));
        (void)write_file(d + "/memory.memsw.limit_in_bytes", std::to_string(*limits.memory_max));
    } else if (account_memory && !memory_root_.empty()) {
        cg.memory_v1_ = v1(memory_root_, "memory");
    }
    if (limits.cpu_quota) {
        std::string d = v1(cpu_root_, "cpu");
        auto quota = static_cast<long long>(std::llround(*limits.cpu_quota * 100000.0));
        write_or_throw(d + "/cpu.cfs_period_us", "100000");
        write_or_throw(d + "/cpu.cfs_quota_us", std::to_string(std::max(quota, 1000LL)));
    }
    return cg;
}

service_cgroup cgroup_tree::create(const std::string& service, const resource_limits& limits, bool account_memory,
                                   std::error_code& ec, std::string* what) noexcept {
    ec.clear();
    try {
        return create(service, limits, account_memory);
    } catch (const std::system_error& e) {
        ec = e.code();
        try {
            if (what) *what = e.what();
        } catch (...) {  // no room for the text: the code alone
        }
    } catch (const std::bad_alloc&) {
        ec = sys::errno_code(ENOMEM);
    }
    return {};
}

void cgroup_tree::destroy() {
    if (v2_root_.empty() && pids_root_.empty() && memory_root_.empty() && cpu_root_.empty()) return;
    namespace fs = std::filesystem;
    if (!v2_root_.empty()) {
        // cgroup.kill on the top kills every service's tree at once.
        if (write_file(v2_root_ + "/cgroup.kill", "1")) {
            std::error_code ec;
            for (const auto& e : fs::directory_iterator(v2_root_, ec)) {
                if (!e.is_directory()) continue;
                service_cgroup c;
                c.v2_ = e.path().string();
                (void)c.kill_all();
                c.v2_.clear();
            }
        }
        for (int i = 0; i < 500; ++i) {
            if (keyed_value(read_file(v2_root_ + "/cgroup.events"), "populated").value_or(0) == 0) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    for (std::string* root : {&v2_root_, &pids_root_, &memory_root_, &cpu_root_}) {
        if (root->empty()) continue;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(*root, ec))
            if (e.is_directory()) (void)remove_dir(e.path().string());
        (void)remove_dir(*root);
        root->clear();
    }
}

}  // namespace drover
