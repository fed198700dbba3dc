// Post-processors of tokenizer.json ("post_processor"): the special tokens around an encoded sequence when
// add_special_tokens is on, chosen by "type". Supported: TemplateProcessing (single sequences), ByteLevel
// (offsets only, so no change to ids), RobertaProcessing, BertProcessing, Sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

namespace tsp {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids) const = 0;
};

// nullptr for a JSON null (no post-processor).
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j);

}  // namespace tsp
