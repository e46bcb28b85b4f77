// config: the TOML file of `drover supervise` — one [service.NAME] table per service, fields
// named after systemd's where the meaning is the same. See docs/supervise.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "drover/spawn/spawn_error.hpp"
#include "drover/supervise/service.hpp"

namespace drover::supervise {

/// A config file that cannot be used. what() is "FILE:LINE:COLUMN: FIELD: problem". A
/// spec_error (invalid input, errc::invalid_spec for completion handlers) that also says
/// where in the file the problem is (docs/errors.md).
class config_error : public spec_error {
public:
    config_error(std::string file, int line, int column, std::string field, std::string problem);
    [[nodiscard]] const std::string& file() const noexcept { return file_; }
    [[nodiscard]] int line() const noexcept { return line_; }
    [[nodiscard]] int column() const noexcept { return column_; }
    [[nodiscard]] const std::string& field() const noexcept { return field_; }

private:
    std::string file_;
    int line_, column_;
    std::string field_;
};

/// What a config file holds.
struct config {
    std::vector<service_spec> services;  ///< in file order, each with its fingerprint
    std::string control_socket;          ///< [supervisor] control_socket, if set
    std::string metrics_listen;          ///< [supervisor] metrics_listen, if set (checked)
};

struct config_options {
    /// The program `init = true` runs services under (drover's own binary for the CLI).
    std::string init_program;
    /// false: `seccomp = "FILE"` is not read (the service gets no filter from it), so that a
    /// parse touches no file: for checks and fuzzing.
    bool read_files = true;
};

/// Parses TOML text; `file` names it in errors. Throws config_error on the first problem:
/// syntax, unknown table or field, wrong type or value, unknown `after` name, cycle.
config parse_config(std::string_view text, const std::string& file, const config_options& options = {});
/// Reads and parses a file (an unreadable file is a config_error at 0:0).
config load_config(const std::string& path, const config_options& options = {});

/// "1.5" seconds etc. are numbers; sizes accept "32M", "1G", "4096" and plain integers.
std::optional<std::uint64_t> parse_size(std::string_view text);
/// "SIGTERM", "TERM" or "15".
std::optional<int> parse_signal(std::string_view text);
/// Splits a command line on whitespace with '...', "..." and backslash quoting; nullopt if a
/// quote is not closed.
std::optional<std::vector<std::string>> split_command(std::string_view text);

}  // namespace drover::supervise
