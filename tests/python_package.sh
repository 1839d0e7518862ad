#!/usr/bin/env bash
# rnnkit as Python users install it (docs/python.md, "Install"), offline, from a copy of the
# tree as a clean clone has it: `pip install --no-build-isolation .` into a venv made with
# --system-site-packages, then the import from another folder; `python3 -m build --wheel
# --no-isolation`, whose wheel carries librnnkit and installs into a second venv; `pip install
# -e .` in a third; mypy --strict on examples/python/typed_rnn.py against the installed package;
# and the import-time torch check, on an installed package told it was built for another torch.
# The three builds share one CMake build folder in the copy (setup.py), so only the first
# compiles everything.
# usage: python_package.sh SOURCE_DIR WORK_DIR PYTHON
set -euo pipefail
src=$1 work=$2 python=$3
rm -rf "$work" && mkdir -p "$work/elsewhere"
source "$src/tests/lib.sh"
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}

# The tree as a clone has it: tracked files and new ones git does not ignore (no build folders).
mkdir -p "$work/src"
if git -C "$src" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  (cd "$src" && git ls-files -z --cached --others --exclude-standard \
     | tar --null -T - --ignore-failed-read -cf - 2> /dev/null) | tar -C "$work/src" -xf -
else
  tar -C "$src" --exclude='./build*' --exclude='./install*' -cf - . | tar -C "$work/src" -xf -
fi
[[ -f $work/src/pyproject.toml ]] || fail "the copy of the tree has no pyproject.toml"

check_import() {  # check_import VENV WHERE: imports from another folder, runs a step, reads a file
  (cd "$work/elsewhere" && "$1/bin/python" - "$2" <<'PY'
import sys, pathlib, torch, rnnkit
where = pathlib.Path(sys.argv[1]).resolve()
got = pathlib.Path(rnnkit.__file__).resolve()
assert where in got.parents, f"rnnkit imported from {got}, expected under {where}"
rnn = rnnkit.RNN("lstm", 3, 4, bidirectional=True).double()
out, states = rnn(torch.randn(5, 2, 3, dtype=torch.float64))
assert out.shape == (5, 2, 8) and len(states) == 2, out.shape
bad = pathlib.Path("not_a_checkpoint.pt"); bad.write_bytes(b"no")
try:
    rnnkit.load_checkpoint(bad)
    raise SystemExit("a damaged checkpoint was read")
except rnnkit.CheckpointError as e:
    assert "not_a_checkpoint.pt" in str(e), e
try:  # the apps are in the package: rnnkit.load reads the file, not "built without the apps"
    rnnkit.load(bad)
    raise SystemExit("rnnkit.load read a damaged checkpoint")
except rnnkit.CheckpointError as e:
    assert "not_a_checkpoint.pt" in str(e), e
print("imported", got, "version", rnnkit.__version__)
PY
  ) || fail "$1: the installed rnnkit does not import and run"
}

echo "== pip install ."
"$python" -m venv --system-site-packages "$work/v1"
(cd "$work/src" && "$work/v1/bin/pip" install -q --no-build-isolation .) || fail "pip install . failed"
site1=$("$work/v1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
check_import "$work/v1" "$site1"
ls "$site1/rnnkit/" | grep -q '^librnnkit\.so\.' || fail "librnnkit is not beside the extension"
[[ -f $site1/rnnkit/py.typed && -f $site1/rnnkit/_rnnkit.pyi ]] || fail "py.typed or the stubs are not installed"

echo "== mypy --strict on the typed example"
if "$work/v1/bin/python" -c 'import mypy' 2> /dev/null; then
  (cd "$work/elsewhere" && "$work/v1/bin/python" -m mypy --strict --no-incremental \
     --follow-imports=silent "$work/src/examples/python/typed_rnn.py") || fail "mypy --strict failed"
  # A wrong keyword is caught by the types alone.
  printf 'import rnnkit\nrnnkit.RNN("lstm", 3, 4, num_layer=2)\n' > "$work/elsewhere/wrong.py"
  if (cd "$work/elsewhere" && "$work/v1/bin/python" -m mypy --strict --follow-imports=silent wrong.py \
        > "$work/wrong.txt"); then
    fail "mypy accepted RNN(num_layer=2)"
  fi
  grep -q 'num_layer' "$work/wrong.txt" || fail "mypy's error does not name the keyword: $(cat "$work/wrong.txt")"
else
  fail "mypy is missing (python3-mypy, scripts/setup.sh)"
fi
(cd "$work/elsewhere" && "$work/v1/bin/python" "$work/src/examples/python/typed_rnn.py") > /dev/null \
  || fail "the typed example does not run"

echo "== another torch is an ImportError naming both"
sed -i 's/^TORCH_VERSION = .*/TORCH_VERSION = "0.1.0"/' "$site1/rnnkit/_build_info.py"
if (cd "$work/elsewhere" && "$work/v1/bin/python" -c 'import rnnkit' 2> "$work/torch_check.txt"); then
  fail "rnnkit imported though it was built for torch 0.1.0"
fi
grep -q 'ImportError: rnnkit was built against torch 0.1.0, but this Python has torch' "$work/torch_check.txt" \
  || fail "unexpected error: $(tail -3 "$work/torch_check.txt")"

echo "== python3 -m build --wheel --no-isolation"
(cd "$work/src" && "$python" -m build --wheel --no-isolation --outdir "$work/dist" > "$work/build.log" 2>&1) \
  || { tail -30 "$work/build.log" >&2; fail "python3 -m build --wheel failed"; }
wheel=$(ls "$work"/dist/rnnkit-*.whl)
"$python" - "$wheel" <<'PY' || fail "the wheel lacks a file"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for want in ("rnnkit/__init__.py", "rnnkit/_build_info.py", "rnnkit/py.typed", "rnnkit/_rnnkit.pyi"):
    assert want in names, (want, names)
assert any(n.startswith("rnnkit/_rnnkit.") and n.endswith(".so") for n in names), names
assert any(n.startswith("rnnkit/librnnkit.so.") for n in names), names
PY
"$python" -m venv --system-site-packages "$work/v2"
"$work/v2/bin/pip" install -q "$wheel" || fail "the wheel does not install"
check_import "$work/v2" "$("$work/v2/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"

echo "== pip install -e ."
"$python" -m venv --system-site-packages "$work/v3"
(cd "$work/src" && "$work/v3/bin/pip" install -q --no-build-isolation -e .) || fail "pip install -e . failed"
check_import "$work/v3" "$work/src/python"
echo "python_package: all checks passed"
