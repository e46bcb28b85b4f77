#!/bin/sh
# The zsh and fish completions written by `drover generate-docs` (bash's is driven by
# docs_test): zsh's parses, fish's parses and completes a command and an option. Skips (77)
# when neither shell is installed.
set -eu
dir=$1
ran=0
if command -v zsh >/dev/null 2>&1; then
  zsh -n "$dir/_drover"
  ran=1
fi
if command -v fish >/dev/null 2>&1; then
  fish --no-execute "$dir/drover.fish"
  complete_in_fish() { fish -c "source '$dir/drover.fish'; complete -C '$1'"; }
  out=$(complete_in_fish 'drover ru')
  printf '%s\n' "$out" | grep -q '^run	' || { echo "fish: 'drover ru' did not complete to run: $out"; exit 1; }
  out=$(complete_in_fish 'drover run --hostn')
  printf '%s\n' "$out" | grep -q '^--hostname	' || { echo "fish: 'drover run --hostn' gave: $out"; exit 1; }
  out=$(complete_in_fish 'drover parallel --keep')
  printf '%s\n' "$out" | grep -q '^--keep-order' || { echo "fish: 'drover parallel --keep' gave: $out"; exit 1; }
  ran=1
fi
[ "$ran" = 1 ] || { echo "neither zsh nor fish is installed"; exit 77; }
echo "completions: ok"
