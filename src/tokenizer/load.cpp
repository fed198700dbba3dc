// Which tokenizer a directory holds, and copying one into another directory.
#include <filesystem>

#include "core/check.h"
#include "tokenizer/byte_tokenizer.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace tsp {

namespace fs = std::filesystem;

bool has_tokenizer(const std::string& dir) {
  return fs::is_regular_file(fs::path(dir) / "tokenizer.json") ||
         fs::is_regular_file(fs::path(dir) / "tokenizer.model");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  const fs::path d(dir);
  TSP_REQUIRE(fs::is_directory(d),
              "--tokenizer {}: not a directory (expected one holding tokenizer.json or "
              "tokenizer.model, as a Hugging Face model directory does)",
              dir);
  const fs::path config = d / "tokenizer_config.json";
  const std::string config_path = fs::is_regular_file(config) ? config.string() : std::string();
  if (fs::is_regular_file(d / "tokenizer.json"))
    return std::make_unique<HfTokenizer>((d / "tokenizer.json").string(), config_path);
  if (fs::is_regular_file(d / "tokenizer.model"))
    return std::make_unique<SentencePieceTokenizer>((d / "tokenizer.model").string(), config_path);
  throw UsageError(fmt::format("{} holds no tokenizer.json or tokenizer.model", dir));
}

std::unique_ptr<Tokenizer> load_tokenizer_for(const std::string& dir) {
  if (!dir.empty() && has_tokenizer(dir)) return load_tokenizer(dir);
  return std::make_unique<ByteTokenizer>();
}

void copy_tokenizer_files(const Tokenizer& tokenizer, const std::string& dir) {
  for (const auto& f : tokenizer.files()) {
    const fs::path to = fs::path(dir) / fs::path(f).filename();
    if (fs::exists(to) && fs::equivalent(f, to)) continue;
    const fs::path tmp = fs::path(dir) / fmt::format(".{}.tmp", fs::path(f).filename().string());
    fs::copy_file(f, tmp, fs::copy_options::overwrite_existing);
    fs::rename(tmp, to);
  }
}

}  // namespace tsp
