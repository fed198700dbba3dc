// Decoders of tokenizer.json ("decoder"): token strings -> text, chosen by "type", each a step of HF's
// decode_chain over the list of token strings. Supported: Sequence, ByteLevel, Metaspace, Replace,
// ByteFallback, Fuse, Strip.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tsp {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// nullptr for a JSON null (no decoder: tokens are joined with spaces, as HF does).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j);

}  // namespace tsp
