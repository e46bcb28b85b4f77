# Run at build time (cmake -P): writes OUT with the source tree's short commit as
# DROVER_BENCH_COMMIT, touching it only when the commit changed, so a report names the commit
# it was built from rather than the one the build was configured at.
execute_process(COMMAND git -C "${SRC}" rev-parse --short HEAD
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET RESULT_VARIABLE git_failed)
if(git_failed OR NOT commit)
  set(commit unknown)
endif()
file(WRITE "${OUT}.new" "#define DROVER_BENCH_COMMIT \"${commit}\"\n")
file(COPY_FILE "${OUT}.new" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.new")
