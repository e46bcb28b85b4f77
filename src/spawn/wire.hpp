// What crosses between drover and its children as bytes: the report's records, a pre-started
// job's go message and the descriptor moves it carries. Plain structs, shared with
// drover_ready_stub (a separate static program), so nothing here may need drover's library.
#pragma once

#include <cstdint>

namespace drover::detail {

/// A record on the report pipe.
struct child_report {
    std::uint16_t stage;  // child_stage; none = setup done, about to execve
    std::uint16_t index;  // which mount, rlimit or fd
    std::int32_t err;
    std::int64_t child_start;
    std::int64_t setup_done;
};

/// A descriptor to put in place in the child: `source` becomes `target`.
struct fd_move {
    int target;
    int source;
};

/// What drover sends a ready job on its go socket: this header (with the job's descriptors as
/// SCM_RIGHTS), then `blob` bytes of NUL-terminated strings: the execve candidates, argv,
/// and env (env_count == env_inherit: the environment the job was started with).
struct go_header {
    static constexpr std::uint32_t magic_value = 0x64726f76;  // "drov"
    static constexpr std::uint16_t env_inherit = 0xffff;
    std::uint32_t magic = magic_value;
    std::uint32_t blob = 0;
    std::uint16_t candidates = 0;
    std::uint16_t argc = 0;
    std::uint16_t env_count = 0;
    std::uint16_t fd_count = 0;   // descriptors attached, in the order of targets
    std::int32_t targets[3 + 16] = {};
};
/// Most bytes of strings a ready job takes (argv and env together).
inline constexpr std::uint32_t go_blob_max = 8u << 20;

}  // namespace drover::detail
