// Which kernel features drover needs, probed once: clone3, pidfds and CLOSE_RANGE_CLOEXEC.
#pragma once

#include <string>

namespace drover::sys {

/// What the running kernel lacks of what drover needs (clone3 and pidfd_open from Linux 5.3,
/// waitid(P_PIDFD) from 5.4, close_range's CLOSE_RANGE_CLOEXEC from 5.11), probed with harmless
/// calls rather than read from the version (distribution kernels backport). Empty if
/// everything is there; else one line naming what is missing and the kernel that has it.
/// Probed once per process; thread-safe.
[[nodiscard]] const std::string& missing_kernel_features();

}  // namespace drover::sys
