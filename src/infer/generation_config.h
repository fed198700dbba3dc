// The stop tokens of a model directory, as Hugging Face's generate() finds them: `eos_token_id` of
// generation_config.json when that file has one, else of config.json; an integer, a list of integers, or
// absent/null (no stop token).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tsp {

// Throws UsageError naming the file and the field when eos_token_id is neither an id, a list of ids nor null.
std::vector<int32_t> eos_token_ids(const std::string& model_dir);

}  // namespace tsp
