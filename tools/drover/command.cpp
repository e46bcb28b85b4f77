// command: what the subcommands share (their registration is in one file each).
#include "command.hpp"

#include <cstdio>

namespace drover::cli {

void print_error(const std::string& what) {
    std::fprintf(stderr, "drover: %s\n", what.c_str());
}

}  // namespace drover::cli
