// path: $PATH search (see include/drover/sys/path.hpp).
#include "drover/sys/path.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace drover::sys {

std::vector<std::string> path_candidates(std::string_view path_list, std::string_view name) {
    if (name.find('/') != std::string_view::npos) return {std::string(name)};
    std::vector<std::string> out;
    for (std::size_t begin = 0; begin <= path_list.size();) {
        std::size_t end = path_list.find(':', begin);
        if (end == std::string_view::npos) end = path_list.size();
        std::string_view dir = path_list.substr(begin, end - begin);
        out.push_back(std::string(dir.empty() ? "." : dir) + '/' + std::string(name));
        begin = end + 1;
    }
    return out;
}

std::string find_in_path(std::string_view name, const char* path_list) {
    if (!path_list) path_list = std::getenv("PATH");
    if (!path_list || !*path_list) path_list = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const std::string& c : path_candidates(path_list, name)) {
        if (c.starts_with("./") && name.find('/') == std::string_view::npos) continue;  // an empty entry
        struct stat st {};
        if (::stat(c.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(c.c_str(), X_OK) == 0) return c;
    }
    return {};
}

}  // namespace drover::sys
