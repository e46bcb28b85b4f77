// sandbox: the walls of a sandbox as values — a root filesystem of the child's own, built in
// order like bubblewrap's options; the capabilities it keeps; the ids it runs as.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace drover {

/// One step of building the child's root filesystem. Steps apply in the order given, inside
/// a new root (see spawn_spec::fs); targets are absolute paths inside it, sources host paths.
/// Missing targets (and their parents) are created, directories or empty files to match the
/// source. Every mount made here is nosuid.
struct fs_op {
    enum class kind : std::uint8_t {
        bind,        ///< bind `source` on `target` with everything mounted below it; nodev
        ro_bind,     ///< the same, read-only all the way down (mount_setattr, AT_RECURSIVE)
        dev_bind,    ///< bind, device nodes usable (for a --dev-bind /dev /dev)
        dev,         ///< a minimal /dev: null zero full random urandom tty, pts, shm, fd links
        proc,        ///< a fresh procfs (needs the pid namespace); sys, sysrq-trigger, irq
                     ///< and bus in it read-only, as container runtimes do
        tmpfs,       ///< a tmpfs; `options` as for mount -o (size=64m,mode=1777)
        dir,         ///< a directory (mode `mode`)
        symlink,     ///< a symlink at `target` whose text is `source`
        file,        ///< a file at `target` holding what is read from `fd` (mode `mode`): a
                     ///< regular file from its start, else to EOF — a pipe's write ends must be
                     ///< closed in the spawning process (the child holds a copy of each until
                     ///< execve), and such a spec takes the fork path (the wait is the child's)
        remount_ro,  ///< make the mount at `target` and everything below it read-only
    };
    kind what = kind::bind;
    std::string source;
    std::string target;
    std::string options;         ///< tmpfs mount options
    int fd = -1;                 ///< file: read from it in the child (borrowed until spawn returns)
    std::uint32_t mode = 0;      ///< dir, file: permission bits (0: 0755 for dir, 0644 for file)
    bool optional = false;       ///< binds: skip if the source does not exist (bwrap's -try)

    static fs_op bind(std::string src, std::string dst) { return {kind::bind, std::move(src), std::move(dst)}; }
    static fs_op ro_bind(std::string src, std::string dst) { return {kind::ro_bind, std::move(src), std::move(dst)}; }
    static fs_op dev_bind(std::string src, std::string dst) { return {kind::dev_bind, std::move(src), std::move(dst)}; }
    static fs_op dev(std::string dst) { return {kind::dev, {}, std::move(dst)}; }
    static fs_op proc(std::string dst) { return {kind::proc, {}, std::move(dst)}; }
    static fs_op tmpfs(std::string dst, std::string opts = {}) {
        return {kind::tmpfs, {}, std::move(dst), std::move(opts)};
    }
    static fs_op dir(std::string dst) { return {kind::dir, {}, std::move(dst)}; }
    static fs_op symlink(std::string text, std::string dst) { return {kind::symlink, std::move(text), std::move(dst)}; }
    static fs_op file(int fd, std::string dst) { return {kind::file, {}, std::move(dst), {}, fd}; }
    static fs_op remount_ro(std::string dst) { return {kind::remount_ro, {}, std::move(dst)}; }
};

/// "ro-bind", "tmpfs", … (the CLI flag without dashes).
std::string_view fs_op_name(fs_op::kind k) noexcept;

/// The child's own root filesystem (needs the mount namespace). With `enabled`, the child
/// pivots into a new root: `root_dir` bound recursively (or an empty tmpfs when it is empty),
/// the `ops` applied in order, the host's root detached. As bubblewrap and runc do.
struct filesystem_spec {
    bool enabled = false;
    std::string root_dir;          ///< a prepared root filesystem (--root); empty: a fresh tmpfs
    /// Copy-on-write root: root_dir (or the host's /; its own file system only, not the mounts
    /// below it) as the read-only lower layer of an overlayfs whose upper layer is a tmpfs
    /// that goes away with the job.
    bool overlay = false;
    bool read_only = false;        ///< remount the root mount read-only at the end
    std::vector<fs_op> ops;
};

/// A set of capabilities (bit n = CAP number n), as kept by a sandboxed child.
class capability_set {
public:
    constexpr capability_set() noexcept = default;
    static constexpr capability_set from_bits(std::uint64_t b) noexcept {
        capability_set s;
        s.bits_ = b;
        return s;
    }
    /// Every capability this kernel knows (0..cap_last_cap).
    static capability_set all();
    [[nodiscard]] constexpr bool has(int cap) const noexcept { return cap >= 0 && cap < 64 && ((bits_ >> cap) & 1) != 0; }
    constexpr capability_set& add(int cap) noexcept {
        if (cap >= 0 && cap < 64) bits_ |= std::uint64_t{1} << cap;
        return *this;
    }
    constexpr capability_set& remove(int cap) noexcept {
        if (cap >= 0 && cap < 64) bits_ &= ~(std::uint64_t{1} << cap);
        return *this;
    }
    [[nodiscard]] constexpr std::uint64_t bits() const noexcept { return bits_; }
    [[nodiscard]] constexpr bool empty() const noexcept { return bits_ == 0; }
    /// "none", or names joined by ',' ("CAP_NET_RAW,CAP_SYS_PTRACE").
    [[nodiscard]] std::string str() const;
    friend constexpr bool operator==(capability_set, capability_set) noexcept = default;

private:
    std::uint64_t bits_ = 0;
};

/// "CAP_NET_RAW" for 13; "cap 45" for a number without a name.
std::string capability_name(int cap);
/// Parses "NET_RAW", "cap_net_raw", "CAP_NET_RAW" or a number up to cap_last_cap.
std::optional<int> parse_capability(std::string_view name);
/// The kernel's highest capability number (/proc/sys/kernel/cap_last_cap; 40 if unreadable).
int cap_last_cap() noexcept;

/// How a child with a user namespace gets its ids outside.
enum class userns_ids : std::uint8_t {
    own,       ///< uid_map/gid_map as given; empty maps: the caller's own ids as 0
    automatic, ///< a range of host ids of its own, leased from id_pool for the child's life
};

}  // namespace drover
