// The fault injection table (see fault.hpp): per site a period, an errno and two counters.
#include "drover/sys/fault.hpp"

#ifdef DROVER_FAULT_INJECTION

#include <atomic>

namespace drover::sys {

namespace {

struct site_state {
    std::atomic<unsigned> one_in{0};
    std::atomic<int> err{0};
    std::atomic<std::uint64_t> calls{0};
    std::atomic<std::uint64_t> injected{0};
};

site_state sites[static_cast<unsigned>(fault_site::count_)];

}  // namespace

void set_fault(fault_site site, unsigned one_in, int err) noexcept {
    site_state& s = sites[static_cast<unsigned>(site)];
    s.err.store(err);
    s.one_in.store(one_in);
}

// Async-signal-safe (atomics only): clone3's site is checked in the parent before the call.
int injected_fault(fault_site site) noexcept {
    site_state& s = sites[static_cast<unsigned>(site)];
    unsigned n = s.one_in.load(std::memory_order_relaxed);
    if (n == 0) return 0;
    if ((s.calls.fetch_add(1, std::memory_order_relaxed) + 1) % n != 0) return 0;
    s.injected.fetch_add(1, std::memory_order_relaxed);
    return s.err.load(std::memory_order_relaxed);
}

std::uint64_t faults_injected(fault_site site) noexcept {
    return sites[static_cast<unsigned>(site)].injected.load();
}

}  // namespace drover::sys

#endif
