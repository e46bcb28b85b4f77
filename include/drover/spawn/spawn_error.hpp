// spawn_error: a failed spawn, naming the stage and the errno, with advice for kernel refusals.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

#include "drover/spawn/error.hpp"
#include "drover/spawn/stages.hpp"

namespace drover {

/// What went wrong in a spawn, as a value: stage, errno, detail (a path, a field), advice.
struct spawn_failure {
    child_stage stage = child_stage::none;
    std::error_code code;
    std::string detail;  ///< what the stage was acting on ("/no/such", "RLIMIT_NOFILE")
    std::string advice;  ///< for kernel refusals: which sysctl or limit to look at

    /// One line: "setting hostname: Operation not permitted" or
    /// "execve /no/such: No such file or directory".
    [[nodiscard]] std::string message() const;

    /// The stage and errno as one error_code in drover's category (spawn_error_code()): what
    /// a completion handler gets for this failure.
    [[nodiscard]] std::error_code as_error_code() const noexcept { return spawn_error_code(stage, code); }
};

/// Thrown by the throwing spawn calls. what() is failure().message() plus the advice.
class spawn_error : public std::system_error {
public:
    explicit spawn_error(spawn_failure f);
    [[nodiscard]] const spawn_failure& failure() const noexcept { return failure_; }
    [[nodiscard]] child_stage stage() const noexcept { return failure_.stage; }
    [[nodiscard]] const char* what() const noexcept override { return what_.c_str(); }

private:
    spawn_failure failure_;
    std::string what_;
};

/// Thrown when a spawn_spec is invalid (before anything starts); what() names the field.
class spec_error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

}  // namespace drover
