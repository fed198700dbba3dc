#include "tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "tokenizer/utf8.h"

namespace tsp {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& path, const std::string& config_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(path) {
  files_.push_back(path);
  const auto status = sp_->Load(path);
  TSP_REQUIRE(status.ok(), "cannot load SentencePiece model {}: {}", path, status.ToString());
  add_bos_ = sp_->bos_id() >= 0;
  if (!config_path.empty()) {
    files_.push_back(config_path);
    std::ifstream f(config_path);
    TSP_REQUIRE(f.good(), "cannot open {}", config_path);
    nlohmann::json c;
    try {
      c = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(fmt::format("{} is not valid JSON: {}", config_path, e.what()));
    }
    add_bos_ = c.value("add_bos_token", add_bos_) && sp_->bos_id() >= 0;
    add_eos_ = c.value("add_eos_token", false) && sp_->eos_id() >= 0;
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view input, bool add_special_tokens,
                                                    bool /*split_special_tokens*/) const {
  // SentencePiece never matches control symbols (<s>, </s>) in text, so there is nothing to split.
  const std::string text = utf8::repair(input);
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  TSP_CHECK(status.ok(), "SentencePiece encode failed: {}", status.ToString());
  std::vector<int32_t> out;
  out.reserve(ids.size() + 2);
  if (add_special_tokens && add_bos_) out.push_back(sp_->bos_id());
  out.insert(out.end(), ids.begin(), ids.end());
  if (add_special_tokens && add_eos_) out.push_back(sp_->eos_id());
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  // Runs of ordinary pieces decode through SentencePiece; control pieces show as their text unless skipped
  // (as HF's LlamaTokenizer does), and ids outside the vocabulary are dropped.
  std::string out;
  std::vector<int> run;
  auto flush = [&] {
    if (run.empty()) return;
    std::string piece;
    const auto status = sp_->Decode(run, &piece);
    TSP_CHECK(status.ok(), "SentencePiece decode failed: {}", status.ToString());
    out += piece;
    run.clear();
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= sp_->GetPieceSize()) continue;
    if (sp_->IsControl(id)) {
      flush();
      if (!skip_special_tokens) out += sp_->IdToPiece(id);
    } else {
      run.push_back(id);
    }
  }
  flush();
  return out;
}

int64_t SentencePieceTokenizer::vocab_size() const {
  return sp_->GetPieceSize();
}

std::optional<int32_t> SentencePieceTokenizer::eos_id() const {
  return sp_->eos_id() >= 0 ? std::optional<int32_t>(sp_->eos_id()) : std::nullopt;
}

std::optional<int32_t> SentencePieceTokenizer::token_id(const std::string& token) const {
  const int id = sp_->PieceToId(token);
  // PieceToId answers unk_id for anything unknown; only the unknown piece itself maps there.
  if (id == sp_->unk_id() && token != sp_->IdToPiece(id)) return std::nullopt;
  return id;
}

std::string SentencePieceTokenizer::describe() const {
  return fmt::format("SentencePiece tokenizer.model ({} tokens) {}", sp_->GetPieceSize(), path_);
}

}  // namespace tsp
