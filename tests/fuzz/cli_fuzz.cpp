// cli_fuzz: the command lines of `drover run`, `drover parallel` and `drover bench`. The input
// is the arguments after "drover", one per line; they are parsed with the real CLI11 app and,
// when that succeeds, translated as the command would before starting anything (its
// command_check). Bad usage must end as a CLI::ParseError or as the check's one-line problem.
#include <algorithm>

#include "command.hpp"
#include "fuzz.hpp"

using namespace drover;
using fuzz::expect;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> args = fuzz::split_args(fuzz::text(data, size));
    CLI::App app{"drover"};
    app.require_subcommand(1);
    // Registering the flags is most of the work (CLI11 compares each new name with all the
    // others): only the command named first is, unless the first argument names none.
    std::string first = args.empty() ? std::string() : args.front();
    bool any = first != "run" && first != "parallel" && first != "bench";
    cli::command_check run, parallel, bench;
    if (any || first == "run") cli::add_run_command(app, &run);
    if (any || first == "parallel") cli::add_parallel_command(app, &parallel);
    if (any || first == "bench") cli::add_bench_command(app, &bench);
    std::reverse(args.begin(), args.end());  // CLI11 takes the last element first
    try {
        app.parse(args);
    } catch (const CLI::ParseError&) {
        return 0;
    }
    expect(app.get_subcommands().size() == 1, "one subcommand parsed");
    const std::string& name = app.get_subcommands().front()->get_name();
    cli::command_check& check = name == "run" ? run : name == "parallel" ? parallel : bench;
    (void)check();  // a problem is a normal outcome; an exception escaping it is not
    return 0;
}
