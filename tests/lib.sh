# Sourced by the shell tests (after they set $work, their scratch folder):
#   fail MESSAGE                     prints FAIL: MESSAGE and ends the test
#   expect STATUS REGEX CMD...       CMD exits STATUS and its stderr matches the grep REGEX
#   expect_error STATUS TEXT CMD...  the same with TEXT matched as it is (not a regex)
#   port=$(serve_port LOG PID)      waits for rnnkit-serve's "listening on" line in LOG (60 s
#                                    at most) and prints its port; fails naming LOG (and kills
#                                    PID) when it does not come
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

serve_port() {
  local log=$1 pid=$2 port
  for _ in $(seq 600); do grep -qs "listening on" "$log" && break; sleep 0.1; done
  port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log")
  [[ -n $port ]] || { kill "$pid" 2> /dev/null; fail "the server did not start: $(cat "$log")"; }
  echo "$port"
}
