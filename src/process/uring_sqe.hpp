// uring_sqe: the next submission entry of a ring that drover's own io_uring services share.
#pragma once

#include <liburing.h>

namespace drover::detail {

/// A free SQE; when the queue is full, what it holds is submitted first. nullptr only if the
/// kernel took none of it.
inline io_uring_sqe* next_sqe(io_uring& ring) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (!sqe) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

}  // namespace drover::detail
