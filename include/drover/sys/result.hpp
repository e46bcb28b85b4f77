// result<T>: a value or a std::error_code, for the syscall layer (no std::expected in C++20).
#pragma once

#include <cerrno>
#include <system_error>
#include <utility>
#include <variant>

namespace drover::sys {

/// An error_code in the generic (errno) category.
inline std::error_code errno_code(int e) noexcept { return {e, std::generic_category()}; }
inline std::error_code last_error() noexcept { return errno_code(errno); }

/// Either a T or the error that prevented it. Cheap to move; never throws on access of the
/// error; value() on an error throws std::system_error with `what` as context.
template <class T>
class result {
public:
    result(T value) : v_(std::move(value)) {}                 // NOLINT: implicit by design
    result(std::error_code ec) : v_(ec) {}                    // NOLINT: implicit by design

    [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    [[nodiscard]] std::error_code error() const noexcept {
        return ok() ? std::error_code{} : std::get<1>(v_);
    }
    T& operator*() & { return std::get<0>(v_); }
    T&& operator*() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &std::get<0>(v_); }
    T& value(const char* what = "") & {
        if (!ok()) throw std::system_error(std::get<1>(v_), what);
        return std::get<0>(v_);
    }
    T&& value(const char* what = "") && {
        if (!ok()) throw std::system_error(std::get<1>(v_), what);
        return std::get<0>(std::move(v_));
    }

private:
    std::variant<T, std::error_code> v_;
};

}  // namespace drover::sys
