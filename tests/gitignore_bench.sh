#!/bin/sh
# What `drover bench` writes at the top of a checkout (the README's main command, and the
# --csv it documents beside) is ignored by git, so a run leaves `git status` clean.
# $1: the source tree. Skips (exit 77) where it is not a git checkout or git is missing.
src=$1
if ! command -v git >/dev/null 2>&1 || ! git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1; then
  echo "not a git checkout (or no git): nothing to check"
  exit 77
fi
top=$(git -C "$src" rev-parse --show-toplevel)
# A tarball unpacked inside some other repository is not a checkout of drover.
if [ "$(cd "$top" && pwd -P)" != "$(cd "$src" && pwd -P)" ]; then
  echo "$src is inside the git checkout $top, not one itself: nothing to check"
  exit 77
fi
# The names the README's bench command writes, and the same for its other outputs (--csv).
names=$(grep -o -- '--\(json\|svg\|markdown\|csv\) bench\.[a-z]*' "$top/README.md" | awk '{print $2}')
status=0
for f in $(printf "%s\n" $names bench.json bench.svg bench.md bench.csv | sort -u); do
  # --no-index: the rules alone decide, even if such a file was committed by mistake.
  if git -C "$top" check-ignore -q --no-index -- "$f"; then
    echo "ignored: $f"
  else
    echo "not ignored by .gitignore: $f (drover bench writes it at the top of the checkout)"
    status=1
  fi
done
exit $status
