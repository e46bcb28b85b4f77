// `drover init -- CMD`: a PID 1 that reaps orphans and forwards signals (see supervise/init.hpp).
#include <memory>
#include <vector>

#include "command.hpp"
#include "drover/supervise/init.hpp"

namespace drover::cli {

command_main add_init_command(CLI::App& app) {
    auto argv = std::make_shared<std::vector<std::string>>();
    CLI::App* init = app.add_subcommand("init", "run a command as its init (PID 1): reap orphans, forward signals");
    init->add_option("command", *argv, "the command and its arguments")->required();
    init->positionals_at_end();
    return [argv] { return supervise::run_init(*argv); };
}

}  // namespace drover::cli
