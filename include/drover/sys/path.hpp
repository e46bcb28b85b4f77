// path: $PATH search as execvp(3) does it, for the spawn plan and for finding tools.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace drover::sys {

/// Where execvp(3) would look for `name` along the colon-separated `path_list`, in order
/// (an empty entry is the current directory, "."). A name with a '/' is itself the one place.
std::vector<std::string> path_candidates(std::string_view path_list, std::string_view name);

/// The first candidate along `path_list` (default: $PATH, or the usual directories when it is
/// unset) that is an executable file, or "" if none is. Empty entries are skipped: a tool is
/// not looked for in the current directory.
std::string find_in_path(std::string_view name, const char* path_list = nullptr);

}  // namespace drover::sys
