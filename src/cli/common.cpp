#include "cli/common.h"

#include <sstream>

#include "core/check.h"

namespace tsp::cli {

ModelConfig ModelSource::load() const {
  ModelConfig c = (config_opt && config_opt->count()) ? load_config(config_path) : preset_config(preset);
  c.validate();
  return c;
}

void add_model_options(CLI::App* app, ModelSource& src) {
  src.preset_opt = app->add_option("--preset", src.preset,
                                   "built-in model: " + fmt::format("{}", fmt::join(preset_names(), ", ")))
                       ->capture_default_str();
  src.config_opt =
      app->add_option("--config", src.config_path, "model config.json (Hugging Face LlamaConfig)");
  src.preset_opt->excludes(src.config_opt);
}

std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& what) {
  std::vector<int32_t> out;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    TSP_REQUIRE(used == word.size() && v >= 0 && v <= INT32_MAX,
                "{}: '{}' is not a token id (expected a non-negative integer)", what, word);
    out.push_back(int32_t(v));
  }
  return out;
}

}  // namespace tsp::cli
