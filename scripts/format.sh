#!/usr/bin/env bash
# clang-format over every tracked C++ file (.clang-format holds the style).
#   scripts/format.sh           rewrite the files in place
#   scripts/format.sh --check   list the files that differ and fail (what CI runs)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mapfile -t files < <(git ls-files '*.cpp' '*.h' 2> /dev/null || find modules datasets apps tests bench examples fuzz -name '*.cpp' -o -name '*.h')
if [[ "${1:-}" == "--check" ]]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" > /dev/null 2>&1 || bad+=("$f")
  done
  if ((${#bad[@]})); then
    echo "format: ${#bad[@]} file(s) differ from .clang-format (run scripts/format.sh): ${bad[*]}" >&2
    exit 1
  fi
  echo "format: ${#files[@]} files clean" >&2
else
  clang-format -i "${files[@]}"
fi
