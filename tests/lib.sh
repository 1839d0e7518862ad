# Sourced by the shell tests (after they set $work, their scratch folder):
#   fail MESSAGE                     prints FAIL: MESSAGE and ends the test
#   expect STATUS REGEX CMD...       CMD exits STATUS and its stderr matches the grep REGEX
#   expect_error STATUS TEXT CMD...  the same with TEXT matched as it is (not a regex)
# CMD reads $STDIN (default /dev/null); its stdout and stderr are left in $work/out.txt and
# $work/err.txt.
fail() { echo "FAIL: $*" >&2; exit 1; }

_expect() {
  local fixed=$1 want=$2 pattern=$3; shift 3
  local grep_flags=-q
  [[ $fixed == fixed ]] && grep_flags=-qF
  local status=0
  "$@" > "$work/out.txt" 2> "$work/err.txt" < "${STDIN:-/dev/null}" || status=$?
  [[ $status -eq $want ]] || fail "$* exited $status, expected $want: $(cat "$work/err.txt")"
  grep "$grep_flags" -- "$pattern" "$work/err.txt" \
    || fail "$*: stderr lacks '$pattern': $(cat "$work/err.txt")"
}
expect() { _expect regex "$@"; }
expect_error() { _expect fixed "$@"; }
