# Sourced by the bench programs' command-line tests: `refused FLAG VALUE...` runs "$bench"
# with those arguments and fails the test unless it exits 2 with one line that names FLAG.
fail() { echo "FAIL: $*"; exit 1; }
refused() {
  msg=$("$bench" "$@" 2>&1)
  rc=$?
  [ "$rc" -eq 2 ] || fail "$* exited $rc, not 2: $msg"
  [ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] || fail "$*: not one line: $msg"
  printf '%s\n' "$msg" | grep -q -- "$1: '" || fail "$*: the error does not name $1: $msg"
  echo "refused: $* -> $msg"
}
