// error: drover's one error category — its own conditions, and spawn failures as codes that
// carry the failed stage beside the errno.
#pragma once

#include <system_error>
#include <type_traits>

#include "drover/spawn/stages.hpp"

namespace drover {

/// drover's own error conditions (kernel refusals stay errnos in the generic category).
enum class errc : int {
    /// A spawn_spec was rejected before anything started (what spec_error is thrown for).
    invalid_spec = 1,
    /// An asynchronous operation ended with an exception that is neither a system_error nor
    /// a spec_error (one thrown by a caller's callback, say); it is not rethrown.
    unexpected_exception = 2,
};

/// The category of every error_code drover makes itself: errc values, and spawn failures from
/// spawn_error_code(). Its name is "drover".
const std::error_category& error_category() noexcept;

std::error_code make_error_code(errc e) noexcept;
std::error_condition make_error_condition(errc e) noexcept;

/// A spawn failure as one error_code, for completion handlers (which get an error_code, not
/// a spawn_error): the stage and the errno packed in error_category() (value = stage << 16 |
/// errno). Its message() names the stage ("setting hostname: Operation not permitted") and it
/// compares equal to the errno's condition (ec == std::errc::operation_not_permitted); compare
/// with that, not with value(). A code without a stage (child_stage::none) or that is not an
/// errno is returned unchanged. spawn_failure::as_error_code() calls this.
std::error_code spawn_error_code(child_stage stage, std::error_code code) noexcept;

/// The stage packed in a code from spawn_error_code(); child_stage::none for any other code.
child_stage spawn_stage(std::error_code ec) noexcept;

/// The errno packed in a code from spawn_error_code(), as a generic-category code; any other
/// code unchanged.
std::error_code spawn_errno(std::error_code ec) noexcept;

}  // namespace drover

template <>
struct std::is_error_code_enum<drover::errc> : std::true_type {};
