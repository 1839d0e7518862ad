#!/usr/bin/env bash
# Cell plugins in the shipped apps: rnnkit-lm trains the example's MGU from libmgu.so, the
# checkpoint records the plugin and its sha256 but never loads it by itself (eval and sample
# take --plugin, or --trust-checkpoint-plugins), a moved plugin is named in the error and can be
# given again, another file is refused by its sha256 before any of its code runs, and a plugin of
# another rnnkit version is refused.
# usage: cli_plugin.sh BUILD_DIR SOURCE_DIR LIBMGU.so BAD_ABI.so WORK_DIR PLUGIN_DIR
set -euo pipefail
build=$1 src=$2 plugin=$3 bad=$4 work=$5 plugins=$6
lm=$build/apps/rnnkit-lm
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/lib.sh"

head -c 8000 "$src/datasets/tinyshakespeare/train.txt" > "$work/train.txt"
head -c 1500 "$src/datasets/tinyshakespeare/valid.txt" > "$work/valid.txt"
cat > "$work/lm.toml" <<EOF2
[data]
level = "char"
train = "train.txt"
valid = "valid.txt"
bptt = 20
[model]
cell = "lstm"
embedding_size = 8
hidden_size = 16
[train]
epochs = 1
batch_size = 4
log_every = 1000
EOF2

# Without the plugin the cell is unknown, and the message says how to get it.
if "$lm" train --config "$work/lm.toml" --run-dir "$work/none" --set model.cell=mgu --threads 1 \
  2> "$work/err.txt"; then fail "mgu trained without its plugin"; fi
grep -q "unknown cell 'mgu'.*--plugin PATH" "$work/err.txt" || fail "no-plugin message: $(cat "$work/err.txt")"

# Train with --plugin; the checkpoint's config records the plugin's absolute path.
cp "$plugin" "$work/libmgu.so"
( cd "$work" && "$lm" train --config lm.toml --run-dir run --plugin ./libmgu.so --set model.cell=mgu \
  --threads 1 --quiet )
grep -q "^cell = 'mgu'" "$work/run/config.toml" || grep -q '^cell = "mgu"' "$work/run/config.toml" \
  || fail "config.toml: $(cat "$work/run/config.toml")"
grep -q "plugins = \[ '$work/libmgu.so' \]" "$work/run/config.toml" \
  || grep -q "plugins = \[ \"$work/libmgu.so\" \]" "$work/run/config.toml" \
  || fail "the plugin is not recorded: $(grep plugins "$work/run/config.toml")"

grep -q "plugins_sha256 = \[ '$(sha256sum "$work/libmgu.so" | cut -d' ' -f1)' \]" "$work/run/config.toml" \
  || fail "the plugin's sha256 is not recorded: $(grep plugins "$work/run/config.toml")"

# The checkpoint alone loads no code: the message names the recorded plugin and both ways in.
if "$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 2> "$work/err.txt"; then
  fail "eval loaded the checkpoint's plugin without consent"
fi
grep -q "cell 'mgu' comes from a plugin, and the checkpoint records $work/libmgu.so (sha256 [0-9a-f]*); a checkpoint never loads code by itself: give --plugin PATH.*--trust-checkpoint-plugins" \
  "$work/err.txt" || fail "no-consent message: $(cat "$work/err.txt")"
# eval and sample with --plugin, or with --trust-checkpoint-plugins.
"$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 --json \
  --plugin "$work/libmgu.so" > "$work/eval.json"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["perplexity"] > 1, m' "$work/eval.json" \
  || fail "eval: $(cat "$work/eval.json")"
"$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 --json \
  --trust-checkpoint-plugins > "$work/eval_trust.json"
cmp -s "$work/eval.json" "$work/eval_trust.json" || fail "eval with --trust-checkpoint-plugins differs"
out=$("$lm" sample --checkpoint "$work/run/best.pt" --length 40 --seed 3 --threads 1 --trust-checkpoint-plugins)
[[ ${#out} -ge 20 ]] || fail "sample: '$out'"

# Moved: the error names the plugin the checkpoint needs; --plugin with the new path works.
mkdir -p "$work/moved" && mv "$work/libmgu.so" "$work/moved/libmgu.so"
if "$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 \
  --trust-checkpoint-plugins 2> "$work/err.txt"; then
  fail "eval without the moved plugin succeeded"
fi
grep -q "$work/libmgu.so: cannot load the plugin: no such file (cell 'mgu' comes from it; if the plugin moved, give --plugin PATH)" \
  "$work/err.txt" || fail "moved-plugin message: $(cat "$work/err.txt")"
grep -q "unknown cell" "$work/err.txt" && fail "says 'unknown cell' for a missing plugin"
"$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 \
  --plugin "$work/moved/libmgu.so" --json > "$work/eval2.json"
cmp -s "$work/eval.json" "$work/eval2.json" || fail "eval with the moved plugin differs"
# Moved and given again, with --trust-checkpoint-plugins as well: the same bytes, loaded once.
"$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 \
  --plugin "$work/moved/libmgu.so" --trust-checkpoint-plugins --json > "$work/eval3.json"
cmp -s "$work/eval.json" "$work/eval3.json" || fail "eval with the moved plugin and trust differs"

# Another file at the recorded path (or given with --plugin) is refused by its sha256, naming
# both hashes, and with --trust-checkpoint-plugins before any of its code runs.
marker_so=$plugins/librnnkit_test_plugin_marker.so dup_so=$plugins/librnnkit_test_plugin_duplicate.so
export RNNKIT_TEST_MARKER=$work/marker.txt
rm -f "$RNNKIT_TEST_MARKER"
cp "$marker_so" "$work/libmgu.so"
if "$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 \
  --trust-checkpoint-plugins 2> "$work/err.txt"; then fail "a swapped plugin was loaded"; fi
grep -q "$work/libmgu.so: the plugin is not the file the model was trained with: its sha256 is [0-9a-f]\{64\}, the checkpoint records [0-9a-f]\{64\}" \
  "$work/err.txt" || fail "swapped-plugin message: $(cat "$work/err.txt")"
[[ ! -e "$RNNKIT_TEST_MARKER" ]] || fail "the swapped plugin's code ran"
cp "$plugin" "$work/other_mgu.so" && printf 'x' >> "$work/other_mgu.so"  # another file, same cell
if "$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 \
  --plugin "$work/other_mgu.so" 2> "$work/err.txt"; then fail "another mgu plugin was used"; fi
grep -q "cell 'mgu' comes from the plugin $work/other_mgu.so (sha256 [0-9a-f]*), but the model was trained with $work/libmgu.so (sha256 " \
  "$work/err.txt" || fail "other-plugin message: $(cat "$work/err.txt")"
rm -f "$work/libmgu.so"

# A plugin recorded by a checkpoint never runs without consent: not even its static constructors.
"$lm" train --config "$work/lm.toml" --run-dir "$work/mrun" --plugin "$marker_so" \
  --set model.cell=marker_gru --threads 1 --quiet
[[ -e "$RNNKIT_TEST_MARKER" ]] || fail "the marker plugin did not mark its load (the test is broken)"
rm -f "$RNNKIT_TEST_MARKER"
for cmd in "eval --file $work/valid.txt" "sample --length 5"; do
  # shellcheck disable=SC2086
  if "$lm" $cmd --checkpoint "$work/mrun/best.pt" --threads 1 2> "$work/err.txt" > /dev/null; then
    fail "$cmd ran a checkpoint's plugin cell without consent"
  fi
  [[ ! -e "$RNNKIT_TEST_MARKER" ]] || fail "$cmd: the checkpoint's plugin ran without consent"
done
"$lm" eval --checkpoint "$work/mrun/best.pt" --file "$work/valid.txt" --threads 1 --trust-checkpoint-plugins > /dev/null
[[ -e "$RNNKIT_TEST_MARKER" ]] || fail "--trust-checkpoint-plugins did not load the plugin"
# Two plugins registering one cell: refused, naming both files.
if "$lm" eval --checkpoint "$work/mrun/best.pt" --file "$work/valid.txt" --threads 1 \
  --plugin "$marker_so" --plugin "$dup_so" 2> "$work/err.txt"; then fail "a duplicate cell was accepted"; fi
grep -q "$dup_so: the plugin registers cell 'marker_gru', which the plugin $marker_so registered already" \
  "$work/err.txt" || fail "duplicate message: $(cat "$work/err.txt")"
unset RNNKIT_TEST_MARKER

# plugin check: a plugin that aborts is reported by its signal from a child process.
"$lm" plugin check "$plugin" > "$work/check.txt" || fail "plugin check of a good plugin failed"
grep -q "plugin 'mgu', cells mgu, sha256 $(sha256sum "$plugin" | cut -d' ' -f1)" "$work/check.txt" \
  || fail "plugin check: $(cat "$work/check.txt")"
if "$lm" plugin check "$plugins/librnnkit_test_plugin_aborts.so" 2> "$work/err.txt"; then
  fail "plugin check passed an aborting plugin"
fi
grep -q "librnnkit_test_plugin_aborts.so: the plugin killed the process that loaded it (Aborted, signal 6); do not load it" \
  "$work/err.txt" || fail "aborting plugin: $(cat "$work/err.txt")"

# A plugin that calls exit(0) while it loads: an error naming it, in train and in plugin check
# (both once exited 0 with nothing done).
exits_so="$plugins/librnnkit_test_plugin_exits.so"
for cmd in "train --config $work/lm.toml --run-dir $work/exits --threads 1 --plugin $exits_so" \
           "plugin check $exits_so"; do
  status=0; $lm $cmd > /dev/null 2> "$work/err.txt" || status=$?
  [[ $status -ne 0 ]] || fail "$cmd: a plugin calling exit(0) gave status 0"
  grep -q "librnnkit_test_plugin_exits.so: the plugin called exit() while it loaded" "$work/err.txt" ||
    fail "$cmd: $(cat "$work/err.txt")"
done
[[ ! -e "$work/exits/best.pt" ]] || fail "a run with an exiting plugin trained"

# [model] plugins in a config, relative to the config's folder.
# With the cell's own option from [model.cell_options], which the checkpoint keeps too.
sed 's|^cell = "lstm"|cell = "mgu"\nplugins = ["moved/libmgu.so"]|' "$work/lm.toml" > "$work/lm_plugins.toml"
printf '[model.cell_options]\nslim = 1\n' >> "$work/lm_plugins.toml"
"$lm" train --config "$work/lm_plugins.toml" --run-dir "$work/run2" --threads 1 --quiet
grep -q "$work/moved/libmgu.so" "$work/run2/config.toml" || fail "config plugins not resolved"
"$lm" eval --checkpoint "$work/run2/best.pt" --file "$work/valid.txt" --threads 1 \
  --trust-checkpoint-plugins > /dev/null
# A config's plugin that is not there is an error, as it is with --plugin.
for missing in '"does-not-exist.so"' '""'; do
  sed "s|^plugins = .*|plugins = [$missing]|" "$work/lm_plugins.toml" > "$work/lm_missing.toml"
  if "$lm" train --config "$work/lm_missing.toml" --run-dir "$work/run4" --plugin "$work/moved/libmgu.so" \
    --threads 1 2> "$work/err.txt"; then fail "plugins = [$missing] was accepted"; fi
  grep -q "lm_missing.toml.*: key model.plugins: .*\(cannot load the plugin\|expected the path of a plugin\)" \
    "$work/err.txt" || fail "plugins = [$missing]: $(cat "$work/err.txt")"
done
if "$lm" train --config "$work/lm_plugins.toml" --run-dir "$work/run3" --set model.cell_options.slim=5 \
  --threads 1 2> "$work/err.txt"; then fail "slim = 5 accepted"; fi
grep -q "\-\-set model.cell_options.slim: option 'slim' of cell 'mgu': expected a value in \[0, 2\], got 5" \
  "$work/err.txt" || fail "cell option message: $(cat "$work/err.txt")"

# A plugin of another rnnkit version is refused, naming the file and both versions.
if "$lm" train --config "$work/lm.toml" --run-dir "$work/bad" --plugin "$bad" --threads 1 2> "$work/err.txt"; then
  fail "a plugin of another version loaded"
fi
grep -q "$bad: the plugin was built against 'rnnkit 0.0.1.*but this rnnkit is 'rnnkit " "$work/err.txt" \
  || fail "ABI message: $(cat "$work/err.txt")"
# A file that is not there.
if "$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --plugin "$work/nope.so" 2> "$work/err.txt"; then
  fail "a missing --plugin was ignored"
fi
grep -q "$work/nope.so: cannot load the plugin: no such file" "$work/err.txt" || fail "missing: $(cat "$work/err.txt")"
echo "plugin_cli: ok"
