#!/usr/bin/env bash
# Cell plugins in the shipped apps: rnnkit-lm trains the example's MGU from libmgu.so, the
# checkpoint records the plugin so eval and sample need no --plugin, a moved plugin is named in
# the error and can be given again, and a plugin of another rnnkit version is refused.
# usage: cli_plugin.sh BUILD_DIR SOURCE_DIR LIBMGU.so BAD_ABI.so WORK_DIR
set -euo pipefail
build=$1 src=$2 plugin=$3 bad=$4 work=$5
lm=$build/apps/rnnkit-lm
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

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

# eval and sample load it from the checkpoint.
"$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 --json > "$work/eval.json"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["perplexity"] > 1, m' "$work/eval.json" \
  || fail "eval: $(cat "$work/eval.json")"
out=$("$lm" sample --checkpoint "$work/run/best.pt" --length 40 --seed 3 --threads 1)
[[ ${#out} -ge 20 ]] || fail "sample: '$out'"

# Moved: the error names the plugin the checkpoint needs; --plugin with the new path works.
mkdir -p "$work/moved" && mv "$work/libmgu.so" "$work/moved/libmgu.so"
if "$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 2> "$work/err.txt"; then
  fail "eval without the moved plugin succeeded"
fi
grep -q "$work/libmgu.so: cannot load the plugin: no such file (cell 'mgu' comes from it; if the plugin moved, give --plugin PATH)" \
  "$work/err.txt" || fail "moved-plugin message: $(cat "$work/err.txt")"
grep -q "unknown cell" "$work/err.txt" && fail "says 'unknown cell' for a missing plugin"
"$lm" eval --checkpoint "$work/run/best.pt" --file "$work/valid.txt" --threads 1 \
  --plugin "$work/moved/libmgu.so" --json > "$work/eval2.json"
cmp -s "$work/eval.json" "$work/eval2.json" || fail "eval with the moved plugin differs"

# [model] plugins in a config, relative to the config's folder.
# With the cell's own option from [model.cell_options], which the checkpoint keeps too.
sed 's|^cell = "lstm"|cell = "mgu"\nplugins = ["moved/libmgu.so"]|' "$work/lm.toml" > "$work/lm_plugins.toml"
printf '[model.cell_options]\nslim = 1\n' >> "$work/lm_plugins.toml"
"$lm" train --config "$work/lm_plugins.toml" --run-dir "$work/run2" --threads 1 --quiet
grep -q "$work/moved/libmgu.so" "$work/run2/config.toml" || fail "config plugins not resolved"
"$lm" eval --checkpoint "$work/run2/best.pt" --file "$work/valid.txt" --threads 1 > /dev/null
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
