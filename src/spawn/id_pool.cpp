// id_pool: host id ranges for jobs, each guarded by an flock'd file so that several drover
// processes never hand out the same one.
#include "drover/spawn/id_pool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <optional>
#include <string_view>

namespace drover {

namespace {

// "user:START:COUNT" for `user` in a subordinate-id file.
std::optional<std::pair<std::uint32_t, std::uint32_t>> subid_line(const std::string& path, const std::string& user) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line) && line.size() < 4096) {
        std::string_view l = line;
        auto c1 = l.find(':');
        auto c2 = l.find(':', c1 + 1);
        if (c1 == std::string_view::npos || c2 == std::string_view::npos || l.substr(0, c1) != user) continue;
        std::uint32_t start = 0, count = 0;
        auto s = l.substr(c1 + 1, c2 - c1 - 1);
        auto n = l.substr(c2 + 1);
        auto [p1, e1] = std::from_chars(s.data(), s.data() + s.size(), start);
        auto [p2, e2] = std::from_chars(n.data(), n.data() + n.size(), count);
        if (e1 != std::errc{} || e2 != std::errc{} || p1 != s.data() + s.size() || p2 != n.data() + n.size()) continue;
        if (std::uint64_t(start) + count > 0xFFFFFFFFULL) continue;
        return std::pair{start, count};
    }
    return std::nullopt;
}

std::error_code make_dirs(const std::string& path) {
    std::string cur;
    std::size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        cur = path.substr(0, pos);
        if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) return sys::last_error();
    }
    return {};
}

}  // namespace

std::optional<id_pool_options> id_pool_options::from_subid_files(const std::string& subuid, const std::string& subgid,
                                                                 const std::string& user) {
    auto u = subid_line(subuid, user);
    auto g = subid_line(subgid, user);
    if (!u || !g || *u != *g) return std::nullopt;
    id_pool_options o;
    o.first = u->first;
    o.ranges = u->second / o.range_size;
    if (o.ranges == 0) return std::nullopt;
    return o;
}

id_lease::id_lease(id_lease&& o) noexcept
    : pool_(std::exchange(o.pool_, nullptr)), index_(o.index_), first_(o.first_), size_(o.size_),
      lock_(std::move(o.lock_)) {}

id_lease& id_lease::operator=(id_lease&& o) noexcept {
    if (this != &o) {
        id_lease old(std::move(*this));
        pool_ = std::exchange(o.pool_, nullptr);
        index_ = o.index_;
        first_ = o.first_;
        size_ = o.size_;
        lock_ = std::move(o.lock_);
    }
    return *this;
}

id_lease::~id_lease() {
    if (pool_) pool_->release(index_, std::move(lock_));
}

id_pool::id_pool(id_pool_options options) : opt_(std::move(options)), used_(opt_.ranges, false) {}

namespace {
std::mutex global_mu;
std::unique_ptr<id_pool> global_pool;
}  // namespace

id_pool& id_pool::global() {
    std::lock_guard lock(global_mu);
    if (!global_pool) global_pool = std::make_unique<id_pool>(id_pool_options::from_subid_files().value_or(id_pool_options{}));
    return *global_pool;
}

std::error_code id_pool::set_global_options(id_pool_options options) {
    std::lock_guard lock(global_mu);
    if (global_pool) {
        std::lock_guard inner(global_pool->mu_);
        if (global_pool->ever_leased_) return sys::errno_code(EBUSY);
    }
    global_pool = std::make_unique<id_pool>(std::move(options));
    return {};
}

sys::result<id_lease> id_pool::acquire() {
    std::lock_guard lock(mu_);
    if (opt_.range_size == 0 || opt_.ranges == 0 ||
        std::uint64_t(opt_.first) + std::uint64_t(opt_.ranges) * opt_.range_size > 0xFFFFFFFFULL)
        return sys::errno_code(EINVAL);
    if (!idle_.empty()) {
        auto [i, fd] = std::move(idle_.back());
        idle_.pop_back();
        used_[i] = true;
        ++leased_;
        id_lease l;
        l.pool_ = this;
        l.index_ = i;
        l.first_ = opt_.first + i * opt_.range_size;
        l.size_ = opt_.range_size;
        l.lock_ = std::move(fd);
        return l;
    }
    if (!opt_.lock_dir.empty() && !dir_ready_) {
        if (auto ec = make_dirs(opt_.lock_dir)) return ec;
        dir_ready_ = true;
    }
    for (std::uint32_t tried = 0; tried < opt_.ranges; ++tried) {
        std::uint32_t i = next_;
        next_ = (next_ + 1) % opt_.ranges;
        if (used_[i]) continue;
        sys::unique_fd fd;
        if (!opt_.lock_dir.empty()) {
            std::string path = opt_.lock_dir + "/" + std::to_string(opt_.first + std::uint64_t(i) * opt_.range_size);
            fd.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
            if (!fd) return sys::last_error();
            if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
                if (errno == EWOULDBLOCK) continue;  // another drover process has it
                return sys::last_error();
            }
        }
        used_[i] = true;
        ++leased_;
        ever_leased_ = true;
        id_lease l;
        l.pool_ = this;
        l.index_ = i;
        l.first_ = opt_.first + i * opt_.range_size;
        l.size_ = opt_.range_size;
        l.lock_ = std::move(fd);
        return l;
    }
    return sys::errno_code(EAGAIN);
}

void id_pool::release(std::uint32_t index, sys::unique_fd lock) {
    std::lock_guard guard(mu_);
    if (index < used_.size() && used_[index]) {
        used_[index] = false;
        --leased_;
        if (lock || opt_.lock_dir.empty()) idle_.emplace_back(index, std::move(lock));
    }
}

std::size_t id_pool::leased() const {
    std::lock_guard lock(mu_);
    return leased_;
}

}  // namespace drover
