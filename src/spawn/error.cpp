// error: drover's error category, and spawn failures packed into error codes.
#include "drover/spawn/error.hpp"

#include <string>

namespace drover {

namespace {

// A packed spawn failure has a stage in the high bits: errc values stay below.
constexpr int stage_shift = 16;
constexpr int errno_mask = (1 << stage_shift) - 1;

bool is_packed(int value) noexcept { return value >> stage_shift != 0; }

class drover_category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "drover"; }

    [[nodiscard]] std::string message(int value) const override {
        if (is_packed(value)) {
            auto stage = static_cast<child_stage>(value >> stage_shift);
            std::string out(stage_action(stage));
            if (stage == child_stage::clone) out += " with namespaces";  // as spawn_failure says it
            return out + ": " + std::generic_category().message(value & errno_mask);
        }
        switch (static_cast<errc>(value)) {
            case errc::invalid_spec: return "invalid spawn spec";
            case errc::unexpected_exception: return "an operation ended with an unexpected exception";
        }
        return "drover error " + std::to_string(value);
    }

    // A packed failure is its errno as far as conditions go, so callers test it with
    // std::errc as they would test the bare errno.
    [[nodiscard]] std::error_condition default_error_condition(int value) const noexcept override {
        if (is_packed(value)) return {value & errno_mask, std::generic_category()};
        if (static_cast<errc>(value) == errc::invalid_spec) return std::errc::invalid_argument;
        return {value, *this};
    }
};

}  // namespace

const std::error_category& error_category() noexcept {
    static const drover_category category;
    return category;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }
std::error_condition make_error_condition(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

std::error_code spawn_error_code(child_stage stage, std::error_code code) noexcept {
    bool is_errno = code.category() == std::generic_category() || code.category() == std::system_category();
    if (stage == child_stage::none || !code || !is_errno || code.value() < 0 || code.value() > errno_mask)
        return code;
    return {static_cast<int>(stage) << stage_shift | code.value(), error_category()};
}

child_stage spawn_stage(std::error_code ec) noexcept {
    if (ec.category() != error_category() || !is_packed(ec.value())) return child_stage::none;
    return static_cast<child_stage>(ec.value() >> stage_shift);
}

std::error_code spawn_errno(std::error_code ec) noexcept {
    if (spawn_stage(ec) == child_stage::none) return ec;
    return {ec.value() & errno_mask, std::generic_category()};
}

}  // namespace drover
