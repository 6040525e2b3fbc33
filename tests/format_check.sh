#!/usr/bin/env bash
# Every tracked C++ file is as clang-format leaves it (.clang-format). Fix with:
#   clang-format-14 -i $(git ls-files '*.cpp' '*.h')
set -uo pipefail
cd "$(dirname "$0")/.."
fmt=$(command -v clang-format-14 || true)
if [[ -z "$fmt" ]]; then echo "clang-format-14 is not installed (scripts/setup installs it)"; exit 1; fi
files=$(git ls-files '*.cpp' '*.h' 2>/dev/null)
if [[ -z "$files" ]]; then echo "not a git checkout: nothing to check"; exit 0; fi
bad=()
for f in $files; do
  "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  echo "not clang-formatted (run clang-format-14 -i on them):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "all $(wc -w <<<"$files") files formatted"
