// Normalizers of tokenizer.json ("normalizer"): text -> text before pre-tokenization, chosen by "type".
// Supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace tsp {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// nullptr for a JSON null (no normalizer).
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j);

}  // namespace tsp
