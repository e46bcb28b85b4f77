// The sandbox walls, parent side: a spec's new root turned into the child's fs steps (paths
// completed, parents to create listed), the ids to switch to, the capabilities to keep, and
// the --sandbox preset.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/spawn_spec.hpp"
#include "plan.hpp"

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

namespace drover {

namespace detail {

namespace {

// MOUNT_ATTR_* (linux/mount.h, 5.12); that header clashes with glibc 2.36's sys/mount.h.
constexpr std::uint64_t attr_rdonly = 0x00000001;
constexpr std::uint64_t attr_nosuid = 0x00000002;
constexpr std::uint64_t attr_nodev = 0x00000004;
constexpr std::uint64_t attr_noexec = 0x00000008;


// "/a//b/./c/" -> "/a/b/c"; "" for a path with a ".." component (it could climb out of the
// new root while it is being built).
std::string normalize(std::string_view p) {
    std::string out;
    std::size_t i = 0;
    while (i < p.size()) {
        while (i < p.size() && p[i] == '/') ++i;
        std::size_t j = p.find('/', i);
        if (j == std::string_view::npos) j = p.size();
        std::string_view part = p.substr(i, j - i);
        if (part == "..") return {};
        if (!part.empty() && part != ".") {
            out += '/';
            out += part;
        }
        i = j;
    }
    return out.empty() ? "/" : out;
}

bool is_dir(const std::string& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A host directory to build the new root on: the job's own mount namespace gets a mount over
// it, the host sees nothing. Not one that holds the prepared root (an overlay names its lower
// layer by path).
std::string staging_dir(const std::string& avoid) {
    for (const char* d : {"/tmp", "/mnt", "/run", "/var/tmp", "/media", "/srv", "/opt", "/home"}) {
        std::string dir = d;
        bool holds = !avoid.empty() && (avoid == dir || avoid.rfind(dir + "/", 0) == 0);
        if (!holds && is_dir(dir)) return dir;
    }
    throw spec_error("fs: no directory to build the new root on (tried /tmp, /mnt, /run, /var/tmp, …)");
}

// Where the steps put things. Every bind source (and /dev's nodes, and a prepared root) is
// captured with open_tree before the job's ids are taken and before anything is mounted: the
// caller's own access decides what may be bound (root may bind its 0700 directories), and
// no mount of the setup can hide a source. Then:
// - in-place mode (the ops start with a bind of the host's / on /, as a sandbox's do): the
//   host's tree in the job's own mount namespace is the root; ops mount over its paths. No
//   staging, no pivot, no unmount of a tree (each unmount waits for an RCU grace period).
// - stage mode (a prepared root, an overlay, an empty tmpfs): the new root is built on a
//   mount at a host directory of the job's mount namespace (the stage), then pivoted into.
class step_builder {
public:
    step_builder(std::vector<fs_step>& out, std::vector<fs_step>& captures, bool in_place, std::string stage)
        : out_(out), captures_(captures), in_place_(in_place), stage_(std::move(stage)) {}

    [[nodiscard]] bool in_place() const noexcept { return in_place_; }
    /// Whether the job could run as host uid 0, for which /proc's tunables need read-only binds:
    /// the kernel lets host root write them whatever its capabilities (sysctl permissions go by
    /// uid alone). A job with host ids of its own, or a caller's who is not root, meets root's
    /// 0644/0200 there as "other", and the binds would only cost four mounts.
    bool guard_proc = true;
    /// A file op reads from something that is not a regular file (see prepared_data).
    bool setup_may_block = false;
    [[nodiscard]] unsigned slots() const noexcept { return slots_; }

    // A path inside the new root as the steps see it.
    [[nodiscard]] std::string target(const std::string& inside) const {
        if (in_place_) return inside;
        return inside == "/" ? stage_ : stage_ + inside;
    }

    fs_step& add(fs_step::kind k, std::string a, std::string b, std::string what_for) {
        fs_step s;
        s.what = k;
        s.a = std::move(a);
        s.b = std::move(b);
        s.what_for = std::move(what_for);
        out_.push_back(std::move(s));
        return out_.back();
    }
    fs_step& mount(std::string fstype, std::string target, unsigned long flags, std::string data,
                   std::string what_for) {
        fs_step& s = add(fs_step::kind::mount, {}, std::move(target), std::move(what_for));
        s.fstype = std::move(fstype);
        s.flags = flags;
        s.data = std::move(data);
        return s;
    }
    // Makes `target` (and everything in the attr set) read-only etc. below it too.
    fs_step& setattr(std::string target, std::uint64_t set, bool recursive, std::string what_for) {
        fs_step& s = add(fs_step::kind::setattr, {}, std::move(target), std::move(what_for));
        s.attr_set = set;
        s.attr_flags = recursive ? AT_RECURSIVE : 0;
        // The fallback without mount_setattr: a remount of the top mount.
        s.flags = ((set & attr_rdonly) ? MS_RDONLY : 0) | ((set & attr_nosuid) ? MS_NOSUID : 0) |
                  ((set & attr_nodev) ? MS_NODEV : 0) | ((set & attr_noexec) ? MS_NOEXEC : 0);
        return s;
    }
    // mkdir for every directory above `inside` (a normalized path inside the new root).
    void parents(const std::string& inside, const std::string& what_for) {
        for (std::size_t pos = inside.find('/', 1); pos != std::string::npos; pos = inside.find('/', pos + 1))
            add(fs_step::kind::mkdir, {}, target(inside.substr(0, pos)), what_for + ": creating a parent directory");
    }
    // A host source, captured before the ids change; returns its slot.
    int capture(const std::string& host, bool optional, const std::string& what_for) {
        if (slots_ >= max_fs_slots)
            throw spec_error("fs.ops: more than " + std::to_string(max_fs_slots) + " sources to bind");
        fs_step s;
        s.what = fs_step::kind::capture;
        s.a = host;
        s.slot = static_cast<int>(slots_++);
        s.optional = optional;
        s.what_for = what_for + ": taking the source";
        captures_.push_back(std::move(s));
        return static_cast<int>(slots_ - 1);
    }
    // Binds host `src` on `dst` (as the steps see it), with `attrs` set below it first.
    void bind(const std::string& host, const std::string& dst, bool optional, bool recursive, std::uint64_t attrs,
              bool make_file, const std::string& what_for) {
        int slot = capture(host, optional, what_for);
        fs_step& mk = add(make_file ? fs_step::kind::make_file : fs_step::kind::make_target, host, dst,
                          what_for + ": creating the mount point");
        mk.slot = slot;
        mk.mode = 0666;
        if (attrs) setattr({}, attrs, recursive, what_for + ": setting its flags").slot = slot;
        add(fs_step::kind::attach, {}, dst, what_for + ": mounting it").slot = slot;
    }

private:
    std::vector<fs_step>& out_;
    std::vector<fs_step>& captures_;
    bool in_place_;
    std::string stage_;
    unsigned slots_ = 0;
};

void add_op(step_builder& b, const fs_op& op, std::size_t index) {
    std::string field = "fs.ops[" + std::to_string(index) + "] (" + std::string(fs_op_name(op.what)) + ")";
    std::string target = normalize(op.target);
    if (op.target.empty() || op.target[0] != '/') throw spec_error(field + ": target must be an absolute path");
    if (target.empty()) throw spec_error(field + ": target must not contain '..'");
    std::string label = std::string(fs_op_name(op.what)) + " " +
                        (op.source.empty() ? std::string() : op.source + " ") + op.target;
    std::string t = b.target(target);
    using k = fs_op::kind;
    switch (op.what) {
        case k::bind:
        case k::ro_bind:
        case k::dev_bind: {
            if (op.source.empty()) throw spec_error(field + ": empty source");
            std::string source = normalize(op.source);
            if (op.source[0] != '/' || source.empty())
                throw spec_error(field + ": source must be an absolute path without '..'");
            b.parents(target, label);
            std::uint64_t set = attr_nosuid | (op.what == k::dev_bind ? 0 : attr_nodev) |
                                (op.what == k::ro_bind ? attr_rdonly : 0);
            b.bind(source, t, op.optional, true, set, false, label);
            break;
        }
        case k::dev: {
            b.parents(target, label);
            b.add(fs_step::kind::mkdir, {}, t, label + ": creating the directory");
            // The host's nodes are taken before the tmpfs can cover them; a host without one:
            // the job goes without it too.
            const char* nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
            int slots[6];
            for (int i = 0; i < 6; ++i) slots[i] = b.capture(std::string("/dev/") + nodes[i], true, label + ": /dev/" + nodes[i]);
            b.mount("tmpfs", t, MS_NOSUID | MS_NODEV, "mode=0755", label + ": mounting its tmpfs");
            for (int i = 0; i < 6; ++i) {
                std::string mine = t + "/" + nodes[i];
                fs_step& mk = b.add(fs_step::kind::make_file, {}, mine, label + ": creating " + nodes[i]);
                mk.slot = slots[i];
                mk.mode = 0666;
                b.add(fs_step::kind::attach, {}, mine, label + ": binding /dev/" + nodes[i]).slot = slots[i];
            }
            b.add(fs_step::kind::mkdir, {}, t + "/shm", label + ": creating shm").mode = 01777;
            b.add(fs_step::kind::mkdir, {}, t + "/pts", label + ": creating pts");
            b.mount("devpts", t + "/pts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620",
                    label + ": mounting a new devpts instance");
            b.add(fs_step::kind::symlink, "pts/ptmx", t + "/ptmx", label + ": linking ptmx");
            b.add(fs_step::kind::symlink, "/proc/self/fd", t + "/fd", label + ": linking fd");
            b.add(fs_step::kind::symlink, "/proc/self/fd/0", t + "/stdin", label + ": linking stdin");
            b.add(fs_step::kind::symlink, "/proc/self/fd/1", t + "/stdout", label + ": linking stdout");
            b.add(fs_step::kind::symlink, "/proc/self/fd/2", t + "/stderr", label + ": linking stderr");
            break;
        }
        case k::proc: {
            b.parents(target, label);
            b.add(fs_step::kind::mkdir, {}, t, label + ": creating the directory");
            b.mount("proc", t, MS_NOSUID | MS_NODEV | MS_NOEXEC, {}, label + ": mounting procfs");
            // What container runtimes keep read-only: kernel tunables, the SysRq trigger,
            // interrupt affinity, bus devices.
            if (!b.guard_proc) break;
            for (const char* sub : {"sys", "sysrq-trigger", "irq", "bus"}) {
                std::string p = t + "/" + sub;
                fs_step& bs = b.add(fs_step::kind::bind, p, p, label + ": binding /" + sub + " on itself");
                bs.flags = MS_REC;
                bs.optional = true;
                bs.skip = 1;
                b.setattr(p, attr_rdonly | attr_nosuid | attr_nodev | attr_noexec, true,
                          label + ": making /" + sub + " read-only");
            }
            break;
        }
        case k::tmpfs:
            b.parents(target, label);
            b.add(fs_step::kind::mkdir, {}, t, label + ": creating the directory");
            b.mount("tmpfs", t, MS_NOSUID | MS_NODEV, op.options, label + ": mounting");
            break;
        case k::dir:
            b.parents(target, label);
            b.add(fs_step::kind::mkdir, {}, t, label + ": creating it").mode = op.mode ? op.mode : 0755;
            break;
        case k::symlink:
            if (op.source.empty()) throw spec_error(field + ": empty link text");
            b.parents(target, label);
            b.add(fs_step::kind::symlink, op.source, t, label + ": creating the link");
            break;
        case k::file: {
            if (op.fd < 0) throw spec_error(field + ": fd " + std::to_string(op.fd) + " is not a descriptor");
            struct stat st{};
            if (::fstat(op.fd, &st) != 0) throw spec_error(field + ": fd " + std::to_string(op.fd) + " is not open");
            // A pipe or a socket is read until its writer closes it: maybe never, maybe only
            // after the spawn returns. That wait must not hold the launching thread.
            if (!S_ISREG(st.st_mode)) b.setup_may_block = true;
            b.parents(target, label);
            fs_step& s = b.add(fs_step::kind::copy_fd, {}, t, label + ": writing the file");
            s.fd = op.fd;
            s.mode = op.mode ? op.mode : 0644;
            break;
        }
        case k::remount_ro:
            b.setattr(t, attr_rdonly, true, label + ": making it read-only");
            break;
    }
}

bool binds_root(const fs_op& op) {
    return (op.what == fs_op::kind::bind || op.what == fs_op::kind::ro_bind || op.what == fs_op::kind::dev_bind) &&
           !op.optional && normalize(op.target) == "/" && normalize(op.source) == "/";
}

void prepare_root(prepared_data& d) {
    const spawn_spec& s = d.spec;
    const filesystem_spec& fs = s.fs;
    std::vector<fs_op> ops = fs.ops;
    // Without a new root the spec's binds, tmpfs and /proc go over the host's paths; with
    // one they are ops in it, after the ones given.
    for (const bind_mount& bm : s.binds)
        ops.push_back(bm.read_only ? fs_op::ro_bind(bm.source, bm.target) : fs_op::bind(bm.source, bm.target));
    for (const tmpfs_mount& t : s.tmpfs) ops.push_back(fs_op::tmpfs(t.target, t.options));
    if (s.mount_proc.value_or(false) &&
        std::none_of(ops.begin(), ops.end(), [](const fs_op& o) { return o.what == fs_op::kind::proc; }))
        ops.push_back(fs_op::proc("/proc"));
    for (const fs_op& o : ops)
        if (o.what == fs_op::kind::proc && !normalize(o.target).empty()) d.proc_targets.push_back(normalize(o.target));

    std::string root_dir;
    if (!fs.root_dir.empty()) {
        root_dir = normalize(fs.root_dir);
        if (fs.root_dir[0] != '/' || root_dir.empty())
            throw spec_error("fs.root_dir: must be an absolute path without '..'");
        if (!is_dir(root_dir)) throw spec_error("fs.root_dir: " + fs.root_dir + " is not a directory");
    }
    if (fs.overlay && (root_dir.find_first_of(",:") != std::string::npos))
        throw spec_error("fs.root_dir: an overlay lower directory may not contain ',' or ':'");
    bool userns = s.namespaces.has(ns::user);
    if (fs.overlay && root_dir.empty() && userns)
        throw spec_error("fs.overlay: the host's / has mounts below it, which overlayfs cannot take as its lower "
                         "layer inside a user namespace: give a root_dir (--root) that is one file system");

    bool in_place = root_dir.empty() && !fs.overlay && !ops.empty() && binds_root(ops.front());
    std::string stage = in_place ? std::string() : staging_dir(root_dir);
    step_builder b(d.fs_steps, d.fs_captures, in_place, stage);
    b.guard_proc = ::geteuid() == 0 && !(userns && s.ids == userns_ids::automatic);
    if (in_place) {
        // The host's tree is the root: the first op only sets its flags, all the way down.
        const fs_op& first = ops.front();
        std::uint64_t set = attr_nosuid | (first.what == fs_op::kind::dev_bind ? 0 : attr_nodev) |
                            (first.what == fs_op::kind::ro_bind ? attr_rdonly : 0);
        std::string label = std::string(fs_op_name(first.what)) + " " + first.source + " " + first.target;
        b.setattr("/", set, true, label + ": setting the flags of every mount");
        for (std::size_t i = 1; i < ops.size(); ++i) add_op(b, ops[i], i);
        if (fs.read_only) b.setattr("/", attr_rdonly, false, "making the root read-only");
    } else {
        if (fs.overlay) {
            // The layers live on a tmpfs of their own, mounted at the stage and then covered by
            // the overlay (which keeps them reachable). In a user namespace overlayfs keeps its
            // own metadata in user.* xattrs (trusted.* are the host's); tmpfs has them since
            // Linux 6.6.
            std::string label = "the overlay root";
            b.mount("tmpfs", stage, MS_NOSUID | MS_NODEV, "mode=0755", label + ": mounting the upper tmpfs");
            b.add(fs_step::kind::mkdir, {}, stage + "/upper", label + ": creating its layers");
            b.add(fs_step::kind::mkdir, {}, stage + "/work", label + ": creating its layers");
            b.mount("overlay", stage, MS_NOSUID,
                    "lowerdir=" + (root_dir.empty() ? std::string("/") : root_dir) + ",upperdir=" + stage +
                        "/upper,workdir=" + stage + "/work" + (userns ? ",userxattr" : ""),
                    label + ": mounting overlayfs");
        } else if (!root_dir.empty()) {
            b.bind(root_dir, stage, false, true, attr_nosuid | attr_nodev, false, "binding " + fs.root_dir + " as the root");
        } else if (ops.empty() || !binds_root(ops.front())) {
            b.mount("tmpfs", stage, MS_NOSUID | MS_NODEV, "mode=0755", "mounting the root tmpfs");
        }
        for (std::size_t i = 0; i < ops.size(); ++i) add_op(b, ops[i], i);
        if (fs.read_only) b.setattr(stage, attr_rdonly, false, "making the root read-only");
        b.add(fs_step::kind::pivot_self, {}, stage, "entering the new root (pivot_root)");
    }
    d.fs_slots = b.slots();
    d.setup_may_block = b.setup_may_block;

    if (!s.cwd.empty()) {
        d.root_cwd = s.cwd;
    } else {
        char buf[4096];
        if (::getcwd(buf, sizeof buf)) d.root_cwd = buf;
        d.root_cwd_optional = true;
    }
}

// The inner id a process runs as by default: the one its own outer id maps to, else 0 if
// mapped, else the first mapped.
std::uint32_t default_inner(const std::vector<id_range>& map, std::uint32_t own) {
    for (const id_range& r : map)
        if (own >= r.outer && own - r.outer < r.count) return r.inner + (own - r.outer);
    for (const id_range& r : map)
        if (r.inner == 0) return 0;
    return map.empty() ? 0 : map.front().inner;
}

bool mapped(const std::vector<id_range>& map, std::uint32_t inner) {
    return std::any_of(map.begin(), map.end(),
                       [&](const id_range& r) { return inner >= r.inner && inner - r.inner < r.count; });
}

void prepare_ids(prepared_data& d) {
    const spawn_spec& s = d.spec;
    bool root = ::geteuid() == 0;
    if (d.user) {
        if (s.ids == userns_ids::automatic) {
            // The parent (root) writes the maps: setgroups stays allowed, so the child can
            // drop the supplementary groups it inherited from root.
            d.set_groups = true;
            d.uid = s.uid.value_or(0);
            d.gid = s.gid.value_or(0);
            d.switch_ids = true;
        } else if (d.self_map) {
            d.set_groups = false;  // the child denied setgroups to write its gid map
            d.uid = s.uid.value_or(0);
            d.gid = s.gid.value_or(0);
            if (d.uid != 0) throw spec_error("uid: " + std::to_string(d.uid) + " is not mapped inside (only 0 is: add uid_map)");
            if (d.gid != 0) throw spec_error("gid: " + std::to_string(d.gid) + " is not mapped inside (only 0 is: add gid_map)");
            // The child is already inner 0 (its own ids are what 0 maps to).
            d.switch_ids = !s.groups.empty();
        } else {
            d.set_groups = root;
            std::vector<id_range> umap = s.uid_map, gmap = s.gid_map;
            if (umap.empty()) umap = {{0, static_cast<std::uint32_t>(::getuid()), 1}};
            if (gmap.empty()) gmap = {{0, static_cast<std::uint32_t>(::getgid()), 1}};
            d.uid = s.uid.value_or(default_inner(umap, static_cast<std::uint32_t>(::getuid())));
            d.gid = s.gid.value_or(default_inner(gmap, static_cast<std::uint32_t>(::getgid())));
            if (!mapped(umap, d.uid)) throw spec_error("uid: " + std::to_string(d.uid) + " is not mapped inside by uid_map");
            if (!mapped(gmap, d.gid)) throw spec_error("gid: " + std::to_string(d.gid) + " is not mapped inside by gid_map");
            d.switch_ids = true;
        }
    } else {
        d.set_groups = root;
        d.switch_ids = s.uid.has_value() || s.gid.has_value() || !s.groups.empty();
        d.uid = s.uid.value_or(static_cast<std::uint32_t>(::getuid()));
        d.gid = s.gid.value_or(static_cast<std::uint32_t>(::getgid()));
    }
    if (!s.groups.empty() && !d.set_groups)
        throw spec_error("groups: setgroups is denied here (a user namespace whose maps the child wrote for "
                         "itself, or not root): supplementary groups cannot be set");
    if (s.groups.size() > 64) throw spec_error("groups: more than 64");
    for (std::uint32_t g : s.groups) {
        if (d.user && s.ids == userns_ids::own && !d.self_map && !s.gid_map.empty() && !mapped(s.gid_map, g))
            throw spec_error("groups: " + std::to_string(g) + " is not mapped inside by gid_map");
        d.groups.push_back(g);
    }
}

}  // namespace

std::string fs_advice(const fs_step& step, int err) {
    using k = fs_step::kind;
    bool mounting = step.what == k::mount || step.what == k::bind || step.what == k::setattr ||
                    step.what == k::pivot_self || step.what == k::umount || step.what == k::capture ||
                    step.what == k::attach;
    switch (err) {
        case EPERM:
        case EACCES:
            if (step.what == k::capture)
                return "drover's own ids may not reach the source (sources are taken with the caller's "
                       "access, before the job's ids)";
            if (step.fstype == "proc")
                return "a fresh /proc needs the pid namespace, created together with the user namespace, "
                       "and a fully visible /proc on the host (nothing mounted over /proc/*)";
            if (step.fstype == "overlay")
                return "overlayfs in a user namespace needs Linux >= 5.11, and a lower layer the job's "
                       "ids may read";
            if (mounting)
                return "mounting needs CAP_SYS_ADMIN over the mount namespace: give the job a user namespace "
                       "(-U) or run as root";
            if (step.what == k::mkdir || step.what == k::make_target || step.what == k::make_file)
                return "the mount point does not exist and the job's ids may not create it: create it in the "
                       "prepared root (or in the source of the mount above it)";
            return "the job's ids may not write there";
        case ENOENT:
            if (step.what == k::capture || step.what == k::make_target || step.what == k::bind)
                return "the source does not exist (the -try forms skip a missing source)";
            return {};
        case EROFS:
            return "the mount point does not exist and the file system above it is read-only: create it "
                   "there, or mount a tmpfs on its parent first";
        case ENOSYS:
            return "mount_setattr needs Linux >= 5.12";
        case EINVAL:
            if (step.fstype == "overlay")
                return "overlayfs refused the layers: the lower layer must be a directory on one file "
                       "system and the kernel must support overlayfs in user namespaces (>= 5.11)";
            if (step.what == k::pivot_self)
                return "pivot_root needs the root and the new root on different mounts, none of them shared";
            return {};
        case ENOTDIR:
            return "a directory is bound on a file or a file on a directory";
        default:
            return {};
    }
}

void prepare_walls(prepared_data& d) {
    const spawn_spec& s = d.spec;
    if (s.fs.enabled) prepare_root(d);
    prepare_ids(d);
    d.last_cap = cap_last_cap();
    if (s.capabilities) {
        d.drop_caps = true;
        d.keep_caps = s.capabilities->bits() & capability_set::all().bits();
    }
    if (s.seccomp) d.seccomp_prog = s.seccomp->fprog();
    d.no_new_privs = s.no_new_privs || d.drop_caps || d.seccomp_prog != nullptr;
}

}  // namespace detail

void make_sandboxed(spawn_spec& spec, const sandbox_preset& preset) {
    spec.namespaces = namespace_set{ns::user, ns::pid, ns::mnt, ns::uts, ns::ipc, ns::cgroup};
    if (!preset.share_net) spec.namespaces.add(ns::net);
    spec.loopback_up = true;
    if (spec.hostname.empty()) spec.hostname = "sandbox";
    bool automatic = preset.automatic_ids.value_or(::geteuid() == 0);
    spec.ids = automatic ? userns_ids::automatic : userns_ids::own;
    spec.fs.enabled = true;
    spec.fs.root_dir = preset.root_dir;
    spec.fs.overlay = preset.overlay;
    spec.fs.read_only = !preset.overlay;
    std::vector<fs_op> ops;
    if (preset.root_dir.empty() && !preset.overlay) ops.push_back(fs_op::ro_bind("/", "/"));
    ops.push_back(fs_op::dev("/dev"));
    ops.push_back(fs_op::proc("/proc"));
    ops.push_back(fs_op::tmpfs("/tmp", "mode=1777"));
    ops.insert(ops.end(), spec.fs.ops.begin(), spec.fs.ops.end());
    spec.fs.ops = std::move(ops);
    spec.mount_proc.reset();
    spec.capabilities = capability_set{};
    static const std::shared_ptr<const seccomp_program> default_filter =
        seccomp_program::compile(seccomp_policy::builtin_default());
    spec.seccomp = default_filter;
    spec.no_new_privs = true;
    spec.die_with_parent = true;
    if (!spec.foreground) spec.new_session = true;
}

}  // namespace drover
