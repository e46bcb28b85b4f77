// The library's spec errors said with the flags the user typed (ns_options::in_flag_terms).
#include <string>
#include <string_view>
#include <utility>

#include "ns_options.hpp"

namespace drover::cli {
namespace {

// The flag that asks for each namespace, for "needs the uts namespace" messages.
std::string with_namespace_flag(std::string text) {
    static const std::pair<const char*, const char*> flags[] = {
        {"user", "-U"}, {"pid", "-p"}, {"mnt", "-m"}, {"uts", "-u"},
        {"ipc", "-i"},  {"net", "-n"}, {"cgroup", "-C"}, {"time", "-T"}};
    for (const auto& [name, flag] : flags) {
        std::string needs = std::string("needs the ") + name + " namespace";
        if (auto at = text.find(needs); at != std::string::npos) {
            std::size_t end = at + needs.size();
            // Into a parenthesis that follows already: "(add -p; nothing may outlive …)".
            if (text.compare(end, 2, " (") == 0) text.replace(end, 2, std::string(" (add ") + flag + "; ");
            else text.insert(end, std::string(" (add ") + flag + ")");
            break;
        }
    }
    return text;
}

// Spec field names that appear inside a message's text ("add uid_map").
std::string with_flag_words(std::string text) {
    static const std::pair<std::string_view, std::string_view> words[] = {
        {"uid_map/gid_map", "--map-user/--map-group"}, {"uid_map", "--map-user"}, {"gid_map", "--map-group"}};
    for (const auto& [from, to] : words)
        for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
            text.replace(at, from.size(), to);
    return text;
}

}  // namespace

std::string ns_options::in_flag_terms(std::string_view message) const {
    spec_field f = field_of(message);
    if (f.name.empty()) return std::string(message);
    auto nth = [&f](const std::vector<std::string>& flags, std::size_t skip = 0) -> std::string {
        if (!f.index || *f.index < skip || *f.index - skip >= flags.size()) return {};
        return flags[*f.index - skip];
    };
    std::string flag;
    if (f.name == "hostname") flag = "--hostname";
    else if (f.name == "domainname") flag = "--domainname";
    else if (f.name == "mount_proc") flag = "--mount-proc";
    else if (f.name == "monotonic_offset") flag = "--monotonic";
    else if (f.name == "boottime_offset") flag = "--boottime";
    else if (f.name == "uid") flag = "--uid";
    else if (f.name == "gid") flag = "--gid";
    else if (f.name == "fs.root_dir") flag = "--root";
    else if (f.name == "fs.overlay") flag = "--overlay-root";
    else if (f.name == "fs.ops") flag = nth(op_flags_, preset_ops_);
    else if (f.name == "binds") flag = nth(bind_flags_);
    else if (f.name == "tmpfs") flag = nth(tmpfs_flags_);
    else if (f.name == "rlimits") flag = nth(rlimit).empty() ? "" : "--rlimit " + nth(rlimit);
    else if (f.name == "argv") flag = "the command";
    else if (f.name == "uid_map" || f.name == "gid_map") {
        const auto& given = f.name == "uid_map" ? map_user : map_group;
        flag = f.name == "uid_map" ? "--map-user" : "--map-group";
        if (map_root) {
            flag = "-r";
        } else {
            if (!nth(given).empty()) flag += " " + nth(given);
            // "overlaps range 1 inside": the range as it was given.
            if (auto at = f.rest.find("overlaps range "); at != std::string::npos) {
                std::size_t k = 0, digits = at + 15;
                while (digits < f.rest.size() && f.rest[digits] >= '0' && f.rest[digits] <= '9')
                    k = k * 10 + static_cast<std::size_t>(f.rest[digits++] - '0');
                if (k >= 1 && k <= given.size())
                    f.rest.replace(at, digits - at, std::string("overlaps ") + (f.name == "uid_map" ? "--map-user " : "--map-group ") + given[k - 1]);
            }
        }
    } else if (f.name == "ids" && f.rest.starts_with("automatic ")) {
        flag = "--userns auto";
        f.rest.erase(0, 10);
    }
    if (flag.empty()) return with_flag_words(with_namespace_flag(std::string(message)));
    return flag + ": " + with_flag_words(with_namespace_flag(std::move(f.rest)));
}

}  // namespace drover::cli
