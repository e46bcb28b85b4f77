// drover: entry point of the command-line tool; dispatches to one subcommand.
#include <cstdio>
#include <map>

#include "command.hpp"
#include "drover/sys/kernel.hpp"

int main(int argc, char** argv) {
    using namespace drover::cli;
    // Named, not from argv[0]: usage lines say `drover run`, as the man pages do.
    CLI::App app{"drover: spawn and supervise processes in Linux namespaces", "drover"};
    app.set_version_flag("--version", "drover " DROVER_VERSION);
    app.require_subcommand(1);
    app.footer("drover help COMMAND (or drover COMMAND --help) shows a command's options; man drover-COMMAND the same "
               "as a page.");
    std::map<std::string, command_main> commands;
    commands["run"] = add_run_command(app);
    commands["parallel"] = add_parallel_command(app);
    commands["bench"] = add_bench_command(app);
    commands["supervise"] = add_supervise_command(app);
    commands["init"] = add_init_command(app);
    commands["ctl"] = add_ctl_command(app);
    commands["results"] = add_results_command(app);
    command_main docs = add_docs_commands(app, DROVER_VERSION);
    commands["help"] = docs;
    commands["generate-docs"] = docs;
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // One line that names the problem; exit 2 like other tools' usage errors.
        std::string which = app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name() + ": ";
        print_error(which + e.what());
        return usage_exit;
    }
    // Whatever a subcommand did not handle ends as one line and a failure code, never as
    // std::terminate and a core dump.
    // Said once, up front, instead of an ENOSYS from whichever stage first needs the feature
    // (`ctl` only talks to a socket, `results` only reads files).
    if (const std::string& sub = app.get_subcommands().front()->get_name(); sub != "ctl" && sub != "results" &&
                                                                                  sub != "help" && sub != "generate-docs")
        if (const std::string& missing = drover::sys::missing_kernel_features(); !missing.empty()) {
            print_error(missing);
            return 125;
        }
    try {
        for (CLI::App* sub : app.get_subcommands())
            if (auto it = commands.find(sub->get_name()); it != commands.end()) return it->second();
    } catch (const std::exception& e) {
        print_error(e.what());
        return 125;
    } catch (...) {
        print_error("unexpected error");
        return 125;
    }
    return usage_exit;
}
