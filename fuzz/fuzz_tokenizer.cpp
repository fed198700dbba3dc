// A model directory's tokenizer files on hostile input: tokenizer.json (and tokenizer_config.json) loaded as
// HF's `tokenizers` format (normalizers, pre-tokenizers with PCRE2 regexes, BPE, added tokens,
// post-processors, decoders), then used: encode and decode must also end in a result or a clear error.
// Input layout: tokenizer.json's bytes, then optionally a NUL byte and tokenizer_config.json's (JSON text
// never holds a NUL, so the split is unambiguous).
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/check.h"
#include "fuzz/fuzz_input.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  static const fs::path dir =
      fs::temp_directory_path() / ("tsp-fuzz-tokenizer-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  // (size 0 may come with a null pointer, which memchr must not see)
  const uint8_t* nul = size ? static_cast<const uint8_t*>(std::memchr(data, 0, size)) : nullptr;
  const size_t json_size = nul ? size_t(nul - data) : size;
  tsp::fuzz::write_file((dir / "tokenizer.json").string(), data, json_size);
  if (nul)
    tsp::fuzz::write_file((dir / "tokenizer_config.json").string(), nul + 1, size - json_size - 1);
  else
    fs::remove(dir / "tokenizer_config.json");
  try {
    const auto tok = tsp::load_tokenizer(dir.string());
    // Text a tokenizer meets: words and spaces, digits, multi-byte and 4-byte UTF-8, invalid UTF-8, a special
    // token's text, whitespace runs.
    static const char* texts[] = {"Hello world",
                                  " 12345 ",
                                  "d\xC3\xA9j\xC3\xA0 vu \xF0\x9F\x98\x80",
                                  "bad \xFF\xC3 utf8",
                                  "<|endoftext|><s></s>",
                                  "  \t\n\n  x",
                                  ""};
    for (const char* t : texts) {
      const std::vector<int32_t> ids = tok->encode(t, /*add_special_tokens=*/true);
      (void)tok->decode(ids, /*skip_special_tokens=*/false);
      (void)tok->encode(t, false, /*split_special_tokens=*/true);
    }
    const int64_t v = tok->vocab_size();
    std::vector<int32_t> ids;
    for (int64_t i = 0; i < 64 && i < v; ++i) ids.push_back(int32_t(i));
    ids.push_back(-1);
    ids.push_back(int32_t(v));  // outside the vocabulary: dropped
    (void)tok->decode(ids, true);
    (void)tok->eos_id();
    (void)tok->describe();
  } catch (const tsp::Error&) {
  }
  return 0;
}
