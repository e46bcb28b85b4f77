// The child's side of a new root: walks the prepared fs steps between clone3 and execve.
//
// ============================================================================================
//  ASYNC-SIGNAL-SAFE ZONE (see child.cpp): raw syscalls and reads of the prepared plan only.
//  Paths were completed in the parent; nothing here allocates, locks or throws.
// ============================================================================================
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "drover/sys/syscalls.hpp"
#include "child_sys.hpp"
#include "plan.hpp"

namespace drover::detail {

namespace {

int err_of(std::error_code ec) noexcept { return ec ? ec.value() : 0; }

int mkdir_ok(const char* path, unsigned mode) noexcept {
    if (::mkdir(path, static_cast<mode_t>(mode)) == 0 || errno == EEXIST) return 0;
    return errno;
}

int make_file(const char* path, unsigned mode) noexcept {
    int fd = raw_open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, static_cast<mode_t>(mode));
    if (fd < 0) return errno == EISDIR ? 0 : errno;  // the mount decides whether a directory will do
    raw_close(fd);
    return 0;
}

int make_target(const fs_step& s, int captured) noexcept {
    struct stat st{};
    if ((captured >= 0 ? ::fstat(captured, &st) : ::stat(s.a.c_str(), &st)) != 0) return errno;
    if (S_ISDIR(st.st_mode)) return mkdir_ok(s.b.c_str(), 0755);
    return make_file(s.b.c_str(), 0644);
}

// The new mount API as raw syscalls (glibc 2.36 has no wrappers for them).
constexpr long nr_open_tree = 428;
constexpr long nr_move_mount = 429;
constexpr unsigned open_tree_clone = 1;
constexpr unsigned move_mount_f_empty_path = 0x00000004;
#ifndef AT_RECURSIVE
constexpr unsigned AT_RECURSIVE = 0x8000;
#endif

// Copies what `fd` holds into a new file: from offset 0 where it can seek (so that every
// launch of a prepared spec gets the whole content), else what is left to read.
int copy_fd(const fs_step& s) noexcept {
    int out = raw_open(s.b.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW,
                     static_cast<mode_t>(s.mode));
    if (out < 0) return errno;
    char buf[4096];
    off_t off = 0;
    bool seekable = true;
    for (;;) {
        ssize_t n = seekable ? raw_pread(s.fd, buf, sizeof buf, off) : raw_read(s.fd, buf, sizeof buf);
        if (n < 0 && errno == ESPIPE && seekable) {
            seekable = false;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            raw_close(out);
            return e;
        }
        if (n == 0) break;
        off += n;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = raw_write(out, buf + done, static_cast<std::size_t>(n - done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                int e = w < 0 ? errno : EIO;
                raw_close(out);
                return e;
            }
            done += w;
        }
    }
    raw_close(out);
    return 0;
}

int step(const fs_step& s, int* slots) noexcept {
    using k = fs_step::kind;
    int captured = s.slot >= 0 ? slots[s.slot] : -1;
    switch (s.what) {
        case k::mount:
            return err_of(sys::mount(s.a.empty() ? s.fstype.c_str() : s.a.c_str(), s.b.c_str(), s.fstype.c_str(),
                                     s.flags, s.data.empty() ? nullptr : s.data.c_str()));
        case k::bind:
            return err_of(sys::mount(s.a.c_str(), s.b.c_str(), nullptr, MS_BIND | s.flags, nullptr));
        case k::setattr: {
            if (captured >= 0)  // a detached tree: set its flags before it is attached
                return err_of(sys::mount_setattr(captured, "", s.attr_flags | AT_EMPTY_PATH, s.attr_set, 0));
            int e = err_of(sys::mount_setattr(AT_FDCWD, s.b.c_str(), s.attr_flags, s.attr_set, 0));
            if (e != ENOSYS) return e;
            // Linux < 5.12: the top mount only, keeping the flags the kernel locked on it.
            return err_of(sys::mount(nullptr, s.b.c_str(), nullptr, MS_BIND | MS_REMOUNT | s.flags, nullptr));
        }
        case k::mkdir:
            return mkdir_ok(s.b.c_str(), s.mode);
        case k::make_target:
            return make_target(s, captured);
        case k::make_file:
            return make_file(s.b.c_str(), s.mode);
        case k::symlink:
            return ::symlink(s.a.c_str(), s.b.c_str()) == 0 ? 0 : errno;
        case k::copy_fd:
            return copy_fd(s);
        case k::pivot_self:
            // pivot_root(2)'s own recipe: with new and old root the same directory, the old
            // root ends up mounted on top of the new one, and is detached at once.
            if (::chdir(s.b.c_str()) != 0) return errno;
            if (int e = err_of(sys::pivot_root(".", "."))) return e;
            if (int e = err_of(sys::umount2(".", MNT_DETACH))) return e;
            return ::chdir("/") == 0 ? 0 : errno;
        case k::umount:
            return err_of(sys::umount2(s.b.c_str(), MNT_DETACH));
        case k::capture: {
            long fd = ::syscall(nr_open_tree, AT_FDCWD, s.a.c_str(), open_tree_clone | AT_RECURSIVE | O_CLOEXEC);
            if (fd < 0) return errno;
            slots[s.slot] = static_cast<int>(fd);
            return 0;
        }
        case k::attach:
            if (::syscall(nr_move_mount, captured, "", AT_FDCWD, s.b.c_str(), move_mount_f_empty_path) != 0)
                return errno;
            return 0;
    }
    return EINVAL;
}

}  // namespace

int run_fs_captures(const prepared_data& p, int* slots, unsigned& failed) noexcept {
    for (unsigned i = 0; i < max_fs_slots; ++i) slots[i] = -1;
    const auto& caps = p.fs_captures;
    for (std::size_t i = 0; i < caps.size(); ++i) {
        const fs_step& s = caps[i];
        if (int e = step(s, slots)) {
            if (e == ENOENT && s.optional) continue;  // a -try source that is not there
            failed = static_cast<unsigned>(i);
            return e;
        }
    }
    return 0;
}

int run_fs_steps(const prepared_data& p, int* slots, unsigned& failed) noexcept {
    // Modes in the plan are meant as written (a /dev/shm of 1777): no umask while building.
    mode_t old_mask = ::umask(0);
    int result = 0;
    const auto& steps = p.fs_steps;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const fs_step& s = steps[i];
        // A step on a captured source that was missing (a -try bind) has nothing to act on.
        if (s.slot >= 0 && slots[s.slot] < 0) continue;
        if (s.optional) {
            struct stat st{};
            if (::lstat(s.a.c_str(), &st) != 0) {
                if (errno == ENOENT) {
                    i += s.skip;
                    continue;
                }
                failed = static_cast<unsigned>(i);
                result = errno;
                break;
            }
        }
        if (int e = step(s, slots)) {
            failed = static_cast<unsigned>(i);
            result = e;
            break;
        }
    }
    for (unsigned i = 0; i < max_fs_slots; ++i)
        if (slots[i] >= 0) raw_close(slots[i]);
    ::umask(old_mask);
    return result;
}

}  // namespace drover::detail
