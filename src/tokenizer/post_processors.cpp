#include "tokenizer/post_processors.h"

#include <string>

#include "tokenizer/json_util.h"

namespace tsp {

namespace {

using tokjson::json;

class TemplatePostProcessor : public PostProcessor {
 public:
  explicit TemplatePostProcessor(const json& j) {
    const json& special = j.value("special_tokens", json::object());
    for (const auto& piece : tokjson::get<json>(j, "single")) {
      if (piece.contains("Sequence")) {
        TSP_REQUIRE(tokjson::get_or<std::string>(piece["Sequence"], "id", "A") == "A",
                    "tokenizer.json: TemplateProcessing's single template may only hold sequence A, got {}",
                    piece.dump());
        parts_.push_back({true, {}});
      } else if (piece.contains("SpecialToken")) {
        const std::string name = tokjson::get<std::string>(piece["SpecialToken"], "id");
        TSP_REQUIRE(special.contains(name),
                    "tokenizer.json: TemplateProcessing uses special token '{}', which its "
                    "\"special_tokens\" does not define",
                    name);
        parts_.push_back({false, tokjson::get<std::vector<int32_t>>(special[name], "ids")});
      } else {
        throw UsageError(fmt::format("tokenizer.json: unknown TemplateProcessing piece {}", piece.dump()));
      }
    }
  }
  void process(std::vector<int32_t>& ids) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const auto& p : parts_) {
      if (p.sequence)
        out.insert(out.end(), ids.begin(), ids.end());
      else
        out.insert(out.end(), p.ids.begin(), p.ids.end());
    }
    ids.swap(out);
  }

 private:
  struct Part {
    bool sequence;
    std::vector<int32_t> ids;
  };
  std::vector<Part> parts_;
};

// cls + sequence + sep (RoBERTa and BERT for single sequences).
class WrapPostProcessor : public PostProcessor {
 public:
  explicit WrapPostProcessor(const json& j) {
    const json cls = tokjson::get<json>(j, "cls"), sep = tokjson::get<json>(j, "sep");
    TSP_REQUIRE(cls.is_array() && cls.size() == 2 && sep.is_array() && sep.size() == 2,
                "tokenizer.json: {} needs \"cls\" and \"sep\" as [token, id]",
                tokjson::type_of(j, "post_processor"));
    cls_ = tokjson::integer_of<int32_t>(cls[1], "cls");
    sep_ = tokjson::integer_of<int32_t>(sep[1], "sep");
  }
  void process(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), cls_);
    ids.push_back(sep_);
  }

 private:
  int32_t cls_, sep_;
};

class NoChangePostProcessor : public PostProcessor {
 public:
  void process(std::vector<int32_t>&) const override {}
};

class SequencePostProcessor : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> parts)
      : parts_(std::move(parts)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& p : parts_) p->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = tokjson::type_of(j, "post_processor");
  if (type == "TemplateProcessing") return std::make_unique<TemplatePostProcessor>(j);
  if (type == "ByteLevel") return std::make_unique<NoChangePostProcessor>();
  if (type == "RobertaProcessing" || type == "BertProcessing") return std::make_unique<WrapPostProcessor>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (const auto& p : tokjson::get<json>(j, "processors"))
      if (auto q = make_post_processor(p)) parts.push_back(std::move(q));
    return std::make_unique<SequencePostProcessor>(std::move(parts));
  }
  throw UsageError(fmt::format(
      "tokenizer.json: post_processor type '{}' is not supported (supported: TemplateProcessing, ByteLevel, "
      "RobertaProcessing, BertProcessing, Sequence)",
      type));
}

}  // namespace tsp
