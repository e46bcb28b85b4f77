// id_pool: ranges of host uids and gids leased to jobs one each, so that no two live jobs
// share an id outside their user namespaces (they cannot signal, ptrace or share files with
// each other even where their namespaces would allow it) — also across drover processes.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "drover/sys/result.hpp"
#include "drover/sys/unique_fd.hpp"

namespace drover {

/// Where the ranges come from. The default is systemd's unused block 0x70000000..0x7FFDFFFF
/// (between the container ranges of systemd-nspawn and the foreign-uid range): 4094 ranges
/// of 65536 ids. `/etc/subuid` and `/etc/subgid` lines for the user "drover" replace it
/// (from_subid_files); both files must give the same start and count.
struct id_pool_options {
    std::uint32_t first = 0x70000000;
    std::uint32_t range_size = 65536;  ///< ids per job: 0..range_size-1 inside
    std::uint32_t ranges = 4094;
    /// One lock file per range here; a range is taken by whoever holds its flock, so drover
    /// processes on one host never hand out the same range. Empty: this process only.
    std::string lock_dir = "/run/drover/ids";

    /// Reads "drover:START:COUNT" from the two files; nullopt if either lacks such a line or
    /// they differ. COUNT is split into ranges of `range_size`.
    static std::optional<id_pool_options> from_subid_files(const std::string& subuid = "/etc/subuid",
                                                           const std::string& subgid = "/etc/subgid",
                                                           const std::string& user = "drover");
};

class id_pool;

/// One leased range: host ids first..first+size-1. The range returns to the pool when the
/// lease is destroyed (keep it until every process that ran with those ids is gone); the
/// process keeps its lock on it for the next job until the pool goes away.
class id_lease {
public:
    id_lease() = default;
    id_lease(id_lease&&) noexcept;
    id_lease& operator=(id_lease&&) noexcept;
    ~id_lease();
    [[nodiscard]] std::uint32_t first() const noexcept { return first_; }
    [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
    [[nodiscard]] explicit operator bool() const noexcept { return pool_ != nullptr; }

private:
    friend class id_pool;
    id_pool* pool_ = nullptr;
    std::uint32_t index_ = 0;
    std::uint32_t first_ = 0;
    std::uint32_t size_ = 0;
    sys::unique_fd lock_;
};

/// The ranges of one process. Thread-safe.
class id_pool {
public:
    explicit id_pool(id_pool_options options = {});
    id_pool(const id_pool&) = delete;
    id_pool& operator=(const id_pool&) = delete;

    /// The process-wide pool the spawn path uses for userns_ids::automatic. Its options are
    /// the /etc/subuid lines for "drover" if present, else the defaults; set_global_options()
    /// replaces them before the first lease.
    static id_pool& global();
    /// Replaces the global pool's options; EBUSY once a lease has been taken from it.
    static std::error_code set_global_options(id_pool_options options);

    /// A free range, or EAGAIN when every range is leased (here or by another process),
    /// or the error that stopped the lock directory from being made.
    sys::result<id_lease> acquire();
    [[nodiscard]] const id_pool_options& options() const noexcept { return opt_; }
    /// Ranges this process holds now.
    [[nodiscard]] std::size_t leased() const;

private:
    friend class id_lease;
    void release(std::uint32_t index, sys::unique_fd lock);
    id_pool_options opt_;
    mutable std::mutex mu_;
    std::vector<bool> used_;
    // Ranges this process has locked before and no job uses now: their flocks are kept, so
    // the next job takes one without a syscall (other processes still cannot have them).
    std::vector<std::pair<std::uint32_t, sys::unique_fd>> idle_;
    std::uint32_t next_ = 0;
    std::size_t leased_ = 0;
    bool dir_ready_ = false;
    bool ever_leased_ = false;
};

}  // namespace drover
