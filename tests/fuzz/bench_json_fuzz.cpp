// bench_json_fuzz: the reader of `drover bench --json` documents (bench::report_from_json).
// A bad document must end as std::runtime_error naming the field; one that reads must write
// back to the same JSON, format as a table, CSV, Markdown and SVG, and compare with itself
// (bench compare) in every format.
#include <stdexcept>

#include "bench/compare.hpp"
#include "bench/report.hpp"
#include "fuzz.hpp"

using namespace drover;
using fuzz::expect;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    nlohmann::json j = nlohmann::json::parse(fuzz::text(data, size), nullptr, false);
    if (j.is_discarded()) return 0;
    try {
        bench::bench_report r = bench::report_from_json(j);
        std::string written = bench::to_json(r).dump();
        bench::bench_report again = bench::report_from_json(nlohmann::json::parse(written));
        expect(bench::to_json(again).dump() == written, "a report read back writes the same JSON");
        (void)bench::format_table(r);
        (void)bench::format_csv(r);
        (void)bench::format_markdown(r);
        (void)bench::format_svg(r);
        bench::comparison c = bench::compare_reports({r, again}, {"a", "b"});
        for (const auto& row : c.rows)
            for (const auto& cell : row.cells) expect(cell.has_value(), "a run has every combination of itself");
        (void)bench::format_comparison_table(c);
        (void)bench::format_comparison_markdown(c);
        (void)bench::format_comparison_svg(c);
    } catch (const std::runtime_error&) {
    }
    return 0;
}
