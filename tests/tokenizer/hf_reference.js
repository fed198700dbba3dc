// Expected ids and texts from @lenml/tokenizers (a JS port of HF tokenizers / transformers.js) for the parity
// test: node hf_reference.js NODE_MODULES_DIR CORPUS_JSON EXTRA_TEXT_FILE > expected.json
const path = require("path");
const fs = require("fs");
const modules = process.argv[2];
const { TokenizerLoader } = require(path.join(modules, "@lenml/tokenizers"));
const corpus = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
for (const f of process.argv.slice(4)) corpus.push(fs.readFileSync(f, "utf8"));

// A small deterministic generator (the ids must not depend on Math.random).
let state = 12345;
const rand = (n) => {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return (state >>> 8) % n;
};

const decode = (tok, ids, opts) => (ids.length ? tok.decode(ids, opts) : "");
const out = {};
for (const name of ["llama3", "qwen3", "llama2"]) {
  const dir = path.join(modules, "@lenml", "tokenizer-" + name, "models");
  const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
  const cases = corpus.map((text) => {
    const ids = tok.encode(text);
    return {
      text,
      ids,
      ids_no_special: tok.encode(text, { add_special_tokens: false }),
      decoded: decode(tok, ids),
      decoded_skip_special: decode(tok, ids, { skip_special_tokens: true }),
    };
  });
  // Random id sequences, to decode. Byte-fallback tokens (<0xXX>) are left out: on an invalid UTF-8 run HF
  // tokenizers writes one U+FFFD per byte where the JS port writes one per maximal subpart (unit-tested).
  const vocab = Object.keys(tokenizerJSON.model.vocab).length + tokenizerJSON.added_tokens.length;
  const byteToken = /^<0x[0-9A-F]{2}>$/;
  const random = [];
  for (let k = 0; k < 200; ++k) {
    const ids = [];
    const n = 1 + rand(24);
    while (ids.length < n) {
      const id = rand(vocab);
      const t = tok.model.convert_ids_to_tokens([id])[0];
      if (t !== undefined && !byteToken.test(t)) ids.push(id);
    }
    random.push({ ids, decoded: decode(tok, ids), decoded_skip_special: decode(tok, ids, { skip_special_tokens: true }) });
  }
  out[name] = { dir, cases, random };
}
process.stdout.write(JSON.stringify(out));
