#include "tokenizer/hf_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "tokenizer/utf8.h"

namespace tsp {

namespace {

using json = nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream f(path);
  TSP_REQUIRE(f.good(), "cannot open {}", path);
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    throw UsageError(fmt::format("{} is not valid JSON: {}", path, e.what()));
  }
}

// A token in tokenizer_config.json: a string or an AddedToken object {"content": ...}.
std::string token_text(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string())
    return j["content"].get<std::string>();
  return {};
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

}  // namespace

std::string clean_up_tokenization(std::string s) {
  for (auto [from, to] : {std::pair{" .", "."},
                          {" ?", "?"},
                          {" !", "!"},
                          {" ,", ","},
                          {" ' ", "'"},
                          {" n't", "n't"},
                          {" 'm", "'m"},
                          {" 's", "'s"},
                          {" 've", "'ve"},
                          {" 're", "'re"}})
    replace_all(s, from, to);
  return s;
}

HfTokenizer::HfTokenizer(const std::string& path, const std::string& config_path)
    : dir_(std::filesystem::path(path).parent_path().string()) {
  files_.push_back(path);
  const json j = read_json(path);
  TSP_REQUIRE(j.is_object() && j.contains("model"), "{} is not a tokenizer.json (no \"model\")", path);
  try {
    normalizer_ = make_normalizer(j.value("normalizer", json()));
    pre_tokenizer_ = make_pre_tokenizer(j.value("pre_tokenizer", json()));
    model_ = std::make_unique<BpeModel>(j["model"]);
    post_processor_ = make_post_processor(j.value("post_processor", json()));
    decoder_ = make_decoder(j.value("decoder", json()));
    added_ = AddedVocabulary(j.value("added_tokens", json::array()), normalizer_.get());
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("{}: {}", path, e.what()));
  } catch (const json::exception& e) {
    // A field of the wrong JSON type that a component reads without checking it first.
    throw UsageError(fmt::format("{}: a field has the wrong type: {}", path, e.what()));
  }
  vocab_size_ = std::max(model_->max_id(), added_.max_id()) + 1;

  if (!config_path.empty()) {
    files_.push_back(config_path);
    const json c = read_json(config_path);
    TSP_REQUIRE(c.is_object(), "{}: expected a JSON object, got {}", config_path, c.type_name());
    const json clean = c.value("clean_up_tokenization_spaces", json(false));
    TSP_REQUIRE(clean.is_boolean() || clean.is_null(),
                "{}: clean_up_tokenization_spaces must be true or false, got {}", config_path,
                clean.dump().substr(0, 100));
    clean_up_spaces_ = clean.is_boolean() && clean.get<bool>();
    if (c.contains("eos_token")) {
      const std::string eos = token_text(c["eos_token"]);
      if (!eos.empty()) {
        eos_ = token_id(eos);
        TSP_REQUIRE(eos_.has_value(), "{}: eos_token '{}' is not a token of {}", config_path, eos, path);
      }
    }
  }
  if (!eos_) {
    // Without a config, the end-of-text tokens the common families use.
    for (const char* name : {"</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"})
      if ((eos_ = token_id(name))) break;
  }
}

std::optional<int32_t> HfTokenizer::token_id(const std::string& token) const {
  if (auto id = added_.id_of(token)) return id;
  auto it = model_->vocab().find(token);
  if (it != model_->vocab().end()) return it->second;
  return std::nullopt;
}

std::vector<int32_t> HfTokenizer::encode(std::string_view input, bool add_special_tokens,
                                         bool split_special_tokens) const {
  // Text from files may hold invalid UTF-8; it is repaired as Python's decode(errors="replace") would.
  const std::string repaired =
      utf8::valid_prefix(input) == input.size() ? std::string() : utf8::repair(input);
  const std::string_view text = repaired.empty() ? input : std::string_view(repaired);

  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<Section> sections = added_.extract_and_normalize(text, normalizer_.get(), split_special_tokens);
  std::vector<PreToken> words;
  for (auto& sec : sections) {
    if (sec.token >= 0) {
      ids.push_back(sec.token);
      continue;
    }
    words.clear();
    words.push_back(std::move(sec.text));
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(words);
    for (const auto& w : words) model_->tokenize(w.text, ids);
  }
  if (add_special_tokens && post_processor_) post_processor_->process(ids);
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const std::string* added = added_.decoded_content(id)) {
      if (!(skip_special_tokens && added_.is_special(id))) tokens.push_back(*added);
      continue;
    }
    const std::string& t = model_->id_to_token(id);
    if (!t.empty()) tokens.push_back(t);
  }
  std::string text;
  if (decoder_) {
    decoder_->decode_chain(tokens);
    for (const auto& t : tokens) text += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  }
  return clean_up_spaces_ ? clean_up_tokenization(std::move(text)) : text;
}

std::string HfTokenizer::describe() const {
  return fmt::format("tokenizer.json (BPE, {} tokens) from {}", vocab_size_, dir_.empty() ? "." : dir_);
}

}  // namespace tsp
