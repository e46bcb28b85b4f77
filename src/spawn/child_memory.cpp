// Stacks and thread pointers for children on the clone_method::vm path (child_memory.hpp).
#include "child_memory.hpp"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace drover::detail {

namespace {

constexpr std::size_t map_size = 256 * 1024;
constexpr std::size_t guard_size = 4096;
// What is copied above the thread pointer: glibc's tcbhead_t (self pointers at 0 and 0x10,
// the stack guard at 0x28, the pointer guard at 0x30) and the start of struct pthread, which
// is over 2 KiB on x86-64, so the source is always mapped.
constexpr std::size_t tcb_copy = 1024;
// At most this much static TLS below the thread pointer (down to errno) is copied.
constexpr std::size_t tls_below_max = 64 * 1024;
// Mappings kept for reuse: mapping and unmapping per spawn costs two calls and the faults of
// the touched pages again.
constexpr std::size_t pool_max = 64;

std::mutex pool_mu;
std::vector<void*> pool;

void* take_mapping() noexcept {
    {
        std::lock_guard lock(pool_mu);
        if (!pool.empty()) {
            void* m = pool.back();
            pool.pop_back();
            return m;
        }
    }
    void* m = ::mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE,
                     -1, 0);
    if (m == MAP_FAILED) return nullptr;
    // Without its guard page an overflow would run into whatever is mapped below.
    if (::mprotect(m, guard_size, PROT_NONE) != 0) {
        ::munmap(m, map_size);
        return nullptr;
    }
    return m;
}

void give_mapping(void* m) noexcept {
    if (!m) return;
    {
        std::lock_guard lock(pool_mu);
        if (pool.size() < pool_max) {
            try {
                pool.push_back(m);
                return;
            } catch (...) {
            }
        }
    }
    ::munmap(m, map_size);
}

#if defined(__x86_64__)
char* thread_pointer() noexcept {
    char* tp;
    asm("mov %%fs:0, %0" : "=r"(tp));
    return tp;
}
#endif

}  // namespace

std::shared_ptr<child_memory> child_memory::make() noexcept {
#if !defined(__x86_64__)
    return nullptr;
#else
    char* tp = thread_pointer();
    char* err = reinterpret_cast<char*>(&errno);
    // Variant II TLS: static blocks (errno's among them) lie below the thread pointer.
    if (err >= tp || static_cast<std::size_t>(tp - err) > tls_below_max) return nullptr;
    const std::size_t below = static_cast<std::size_t>(tp - err);
    std::shared_ptr<child_memory> m;
    try {
        m = std::make_shared<child_memory>();
    } catch (...) {
        return nullptr;
    }
    m->map = take_mapping();
    if (!m->map) return nullptr;
    char* base = static_cast<char*>(m->map);
    char* top = base + map_size;
    // The copy keeps the thread pointer's offset within its page, so every TLS variable keeps
    // its alignment.
    const auto page_off = reinterpret_cast<std::uintptr_t>(tp) & 4095;
    char* new_tp = top - 2 * 4096 - tcb_copy + page_off;
    new_tp -= reinterpret_cast<std::uintptr_t>(new_tp) & 4095;
    new_tp += page_off;
    std::memcpy(new_tp - below, err, below + tcb_copy);
    // The self pointers: %fs:0 (the TLS ABI's, which __errno_location reads) and glibc's
    // header.self at 0x10.
    const auto self = reinterpret_cast<std::uintptr_t>(new_tp);
    std::memcpy(new_tp, &self, sizeof self);
    std::memcpy(new_tp + 16, &self, sizeof self);
    m->tls = new_tp;
    char* stack_top = new_tp - below - 256;
    stack_top -= reinterpret_cast<std::uintptr_t>(stack_top) & 15;
    m->stack = base + guard_size;
    m->stack_size = static_cast<std::size_t>(stack_top - (base + guard_size));
    return m;
#endif
}

void child_memory::wait_gone() noexcept {
    if (!launched) return;
    // The kernel's wake is a shared-futex wake on this word (as for a thread's join).
    const int saved = errno;  // EAGAIN or EINTR from the wait is nobody's business
    std::atomic_ref<pid_t> word(tid_word);
    for (pid_t v; (v = word.load(std::memory_order_acquire)) != 0;)
        ::syscall(SYS_futex, &tid_word, FUTEX_WAIT, v, nullptr, nullptr, 0);
    errno = saved;
    launched = false;
}

child_memory::~child_memory() {
    wait_gone();
    give_mapping(map);
}

}  // namespace drover::detail
