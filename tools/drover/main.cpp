// drover: entry point of the command-line tool; dispatches to one subcommand.
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "command.hpp"
#include "drover/sys/kernel.hpp"

namespace {

// The subcommands whose last positional is a command to run (`drover run [OPTIONS] -- CMD`).
bool takes_command(const std::string& sub) {
    return sub == "run" || sub == "parallel" || sub == "init";
}

// CLI11's "The following arguments were not expected: -- --bogus": the `--` is not what was
// wrong, and an unknown option is better called one.
std::string unexpected_arguments(const std::string& what, const std::string& sub) {
    auto colon = what.find(": ");
    if (colon == std::string::npos) return what;
    std::vector<std::string> options, others;
    std::istringstream words(what.substr(colon + 2));
    for (std::string w; words >> w;) {
        if (w == "--") continue;
        (w.size() > 1 && w[0] == '-' ? options : others).push_back(w);
    }
    auto join = [](const std::vector<std::string>& v) {
        std::string out;
        for (const auto& w : v) out += (out.empty() ? "" : " ") + w;
        return out;
    };
    std::string help = sub.empty() ? "drover --help" : "drover help " + sub;
    if (!options.empty())
        return std::string(options.size() == 1 ? "unknown option " : "unknown options ") + join(options) + " (" + help +
               " lists them)";
    if (others.empty()) return what;
    // Only a subcommand that runs a command can have been given one without its `--`; to
    // `drover bench foo` the hint would suggest a command that bench does not take.
    if (takes_command(sub)) return "unexpected arguments: " + join(others) + " (a command goes after --: " + help + ")";
    return "unexpected arguments: " + join(others) + " (" + help + " says what it takes)";
}

}  // namespace

int main(int argc, char** argv) {
    using namespace drover::cli;
    // Named, not from argv[0]: usage lines say `drover run`, as the man pages do.
    CLI::App app{"drover: spawn and supervise processes in Linux namespaces", "drover"};
    // One style in help: descriptions are lower-case fragments, CLI11's own two included
    // (set here, before the subcommands, which take the help flag from their parent).
    app.set_help_flag("-h,--help", "print this help and exit");
    app.set_version_flag("--version", "drover " DROVER_VERSION, "print the version and exit");
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
    name_option_values(app);
    commands["generate-docs"] = docs;
    // "drover foo": CLI11 would only say that a subcommand is required.
    if (argc > 1 && argv[1][0] != '-' && !commands.count(argv[1])) {
        std::string names;
        for (const CLI::App* sub : app.get_subcommands({}))
            if (!sub->get_group().empty()) names += (names.empty() ? "" : ", ") + sub->get_name();
        std::string hint = std::string_view(argv[1]) == "version" ? "; the version: drover --version" : "";
        print_error("unknown command '" + std::string(argv[1]) + "' (commands: " + names + hint +
                    "; drover --help tells more)");
        return usage_exit;
    }
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
        std::string sub = app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name();
        std::string what = e.what();
        if (dynamic_cast<const CLI::ExtrasError*>(&e)) what = unexpected_arguments(what, sub);
        print_error((sub.empty() ? "" : sub + ": ") + what);
        return usage_exit_of(sub);
    }
    // The library reads it at the first spawn and cannot say what is wrong with it.
    std::string problem = spawn_threads_env_problem();
    if (problem.empty()) problem = spawn_table_env_problem();
    if (!problem.empty()) {
        std::string sub = app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name();
        print_error(problem);
        return usage_exit_of(sub);
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
