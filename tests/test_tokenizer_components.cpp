// Each tokenizer.json component on its own (normalizers, pre-tokenizers, BPE, added tokens, post-processors,
// decoders), with the expected values worked out from HF tokenizers' semantics; plus UTF-8 repair and PCRE2.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/check.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoders.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processors.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"
#include "usage_error.h"

namespace tsp {
namespace {

using json = nlohmann::json;

std::string normalized(const json& j, std::string s) {
  make_normalizer(j)->normalize(s);
  return s;
}

std::vector<std::string> pre_tokenized(const json& j, const std::string& s, bool at_origin = true) {
  std::vector<PreToken> p{{s, at_origin}};
  make_pre_tokenizer(j)->pre_tokenize(p);
  std::vector<std::string> out;
  for (auto& t : p) out.push_back(t.text);
  return out;
}

std::string decoded(const json& j, std::vector<std::string> tokens) {
  make_decoder(j)->decode_chain(tokens);
  std::string s;
  for (auto& t : tokens) s += t;
  return s;
}

using testing::usage_error;

TEST(Utf8, RepairReplacesMaximalSubparts) {
  EXPECT_EQ(utf8::repair("ok \xC3\xA9"), "ok \xC3\xA9");
  EXPECT_EQ(utf8::repair("a\xE2\x82"), "a\xEF\xBF\xBD");            // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(utf8::repair("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: two
  EXPECT_EQ(utf8::repair("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
  EXPECT_EQ(utf8::repair("\xF0\x9F\x98"), "\xEF\xBF\xBD");                          // truncated emoji
  int64_t n = 0;
  utf8::repair("\xFF x \xFE", &n);
  EXPECT_EQ(n, 2);
}

TEST(Regex, UnicodePropertiesAndEmptyMatches) {
  Regex letters(R"(\p{L}+)");
  auto m = letters.find_all("ab 日本 1é");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[1], std::make_pair(size_t(3), size_t(9)));
  // An empty-matching pattern yields no empty ranges and terminates.
  EXPECT_EQ(Regex("x*").find_all("abxxc").size(), 1u);
  EXPECT_NE(usage_error([] { Regex bad("(unclosed"); }).find("(unclosed"), std::string::npos);
  EXPECT_EQ(Regex(Regex::escape("a.b*(c)")).find_all("xa.b*(c)y").size(), 1u);
}

TEST(Normalizers, EachType) {
  EXPECT_EQ(normalized({{"type", "NFC"}}, "e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(normalized({{"type", "NFD"}}, "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(normalized({{"type", "NFKC"}}, "\xEF\xAC\x81"), "fi");  // the ligature fi
  EXPECT_EQ(normalized({{"type", "Lowercase"}}, "HeLLo ÀÉ"), "hello àé");
  EXPECT_EQ(normalized({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, " \t a b \n"),
            "a b \n");
  EXPECT_EQ(normalized({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, "   "), "");
  EXPECT_EQ(normalized({{"type", "StripAccents"}}, "café"), "cafe");
  EXPECT_EQ(normalized({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}, "a b  c"),
            "a▁b▁▁c");
  EXPECT_EQ(normalized({{"type", "Replace"}, {"pattern", {{"Regex", "[0-9]+"}}}, {"content", "#"}}, "a1b22"),
            "a#b#");
  EXPECT_EQ(normalized({{"type", "Prepend"}, {"prepend", "▁"}}, "x"), "▁x");
  EXPECT_EQ(normalized({{"type", "Prepend"}, {"prepend", "▁"}}, ""), "");  // only non-empty strings
  EXPECT_EQ(normalized({{"type", "Sequence"},
                        {"normalizers",
                         {{{"type", "Prepend"}, {"prepend", "▁"}},
                          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}},
                       "a b"),
            "▁a▁b");
  EXPECT_NE(usage_error([] {
              make_normalizer({{"type", "Precompiled"}});
            }).find("'Precompiled' is not supported"),
            std::string::npos);
}

TEST(PreTokenizers, SplitBehaviorsAsHfDocuments) {
  auto split = [](const char* behavior) {
    return pre_tokenized(
        {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}},
        "the-final--countdown");
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split("Removed"), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split("Isolated"), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithPrevious"), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithNext"), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split("Contiguous"), (V{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(
      pre_tokenized(
          {{"type", "Split"}, {"pattern", {{"Regex", "\\d+"}}}, {"behavior", "Removed"}, {"invert", true}},
          "ab12cd345"),
      (V{"12", "345"}));
  EXPECT_NE(usage_error([&] { split("Sideways"); }).find("'Sideways' is unknown"), std::string::npos);
}

TEST(PreTokenizers, ByteLevelMetaspaceAndFriends) {
  using V = std::vector<std::string>;
  // GPT-2 regex, then bytes -> printable stand-ins (space is Ġ, newline Ċ).
  EXPECT_EQ(
      pre_tokenized({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}, "Hi there\n"),
      (V{"Hi", "Ġthere", "Ċ"}));
  EXPECT_EQ(pre_tokenized({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}}, "é"),
            (V{"ĠÃ©"}));
  const json first = {
      {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", true}};
  EXPECT_EQ(pre_tokenized(first, "Hey friend"), (V{"▁Hey", "▁friend"}));
  EXPECT_EQ(pre_tokenized(first, "Hey friend", /*at_origin=*/false), (V{"Hey", "▁friend"}));
  const json always = {
      {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", false}};
  EXPECT_EQ(pre_tokenized(always, "a b", false), (V{"▁a▁b"}));
  EXPECT_EQ(pre_tokenized({{"type", "Whitespace"}}, "Hey, you!  ok"), (V{"Hey", ",", "you", "!", "ok"}));
  EXPECT_EQ(pre_tokenized({{"type", "WhitespaceSplit"}}, "a  b\tc"), (V{"a", "b", "c"}));
  EXPECT_EQ(pre_tokenized({{"type", "Digits"}, {"individual_digits", true}}, "a123"),
            (V{"a", "1", "2", "3"}));
  EXPECT_EQ(pre_tokenized({{"type", "Digits"}, {"individual_digits", false}}, "a123b"), (V{"a", "123", "b"}));
  EXPECT_EQ(pre_tokenized({{"type", "Punctuation"}, {"behavior", "Isolated"}}, "a,b!"),
            (V{"a", ",", "b", "!"}));
  EXPECT_EQ(byte_level_char(' '), "Ġ");
  EXPECT_EQ(byte_level_byte(U'Ġ'), ' ');
  for (int b = 0; b < 256; ++b) {
    size_t i = 0;
    EXPECT_EQ(byte_level_byte(utf8::next(byte_level_char(static_cast<unsigned char>(b)), i)), b);
  }
}

json toy_bpe() {
  // a b c, merges a+b -> ab (rank 0), ab+c -> abc (rank 1), b+c -> bc (rank 2).
  return {{"type", "BPE"},
          {"vocab",
           {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"c", 3}, {"ab", 4}, {"abc", 5}, {"bc", 6}, {"<0x78>", 7}}},
          {"merges", {"a b", "ab c", "b c"}},
          {"unk_token", "<unk>"}};
}

std::vector<int32_t> bpe(const json& m, const std::string& word) {
  std::vector<int32_t> out;
  BpeModel(m).tokenize(word, out);
  return out;
}

TEST(Bpe, MergesByRankThenPosition) {
  using V = std::vector<int32_t>;
  EXPECT_EQ(bpe(toy_bpe(), "abc"), (V{5}));      // a b -> ab first (rank 0), then ab c
  EXPECT_EQ(bpe(toy_bpe(), "bcab"), (V{6, 4}));  // b c (rank 2) and a b (rank 0): both happen
  EXPECT_EQ(bpe(toy_bpe(), "abab"), (V{4, 4}));
  json pairs = toy_bpe();
  pairs["merges"] = json::array({json::array({"a", "b"}), json::array({"ab", "c"}), json::array({"b", "c"})});
  EXPECT_EQ(bpe(pairs, "abc"), (V{5}));
}

TEST(Bpe, UnknownsByteFallbackAndIgnoreMerges) {
  using V = std::vector<int32_t>;
  EXPECT_EQ(bpe(toy_bpe(), "axxb"), (V{1, 0, 0, 2}));  // unfused unknowns, one per character
  json fused = toy_bpe();
  fused["fuse_unk"] = true;
  EXPECT_EQ(bpe(fused, "axxb"), (V{1, 0, 2}));
  json fallback = toy_bpe();
  fallback["byte_fallback"] = true;
  EXPECT_EQ(bpe(fallback, "axb"), (V{1, 7, 2}));  // x -> <0x78>
  EXPECT_EQ(bpe(fallback, "ayb"), (V{1, 0, 2}));  // no <0x79>: the unknown token
  json ignore = toy_bpe();
  ignore["vocab"]["bcab"] = 8;
  EXPECT_EQ(bpe(toy_bpe(), "bcab").size(), 2u);
  ignore["ignore_merges"] = true;
  EXPECT_EQ(bpe(ignore, "bcab"), (V{8}));
  json bad = toy_bpe();
  bad["merges"] = {"a q"};
  EXPECT_NE(usage_error([&] { BpeModel m(bad); }).find("'q' is not in the vocabulary"), std::string::npos);
}

TEST(AddedTokens, LongestMatchStripAndSingleWord) {
  const json added = {
      {{"id", 10}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
      {{"id", 11}, {"content", "<s>x"}, {"special", true}, {"normalized", false}},
      {{"id", 12},
       {"content", "[M]"},
       {"special", true},
       {"normalized", false},
       {"lstrip", true},
       {"rstrip", true}},
      {{"id", 13}, {"content", "cat"}, {"special", false}, {"normalized", false}, {"single_word", true}}};
  AddedVocabulary v(added, nullptr);
  auto sections = [&](const std::string& s, bool split_special = false) {
    std::vector<std::string> out;
    for (auto& sec : v.extract_and_normalize(s, nullptr, split_special))
      out.push_back(sec.token >= 0 ? fmt::format("#{}", sec.token) : sec.text.text);
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(sections("a<s>xb<s>"), (V{"a", "#11", "b", "#10"}));  // leftmost-longest
  EXPECT_EQ(sections("a  [M]  b"), (V{"a", "#12", "b"}));         // spaces on both sides absorbed
  EXPECT_EQ(sections("cat concat cat."), (V{"#13", " concat ", "#13", "."}));
  EXPECT_EQ(sections("a<s>b", true), (V{"a<s>b"}));  // special tokens as plain text
  EXPECT_TRUE(v.is_special(10));
  EXPECT_FALSE(v.is_special(13));
  EXPECT_EQ(v.id_of("[M]"), 12);
}

TEST(PostProcessors, TemplateAndFriends) {
  const json tpl = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  std::vector<int32_t> ids{5, 6};
  make_post_processor(tpl)->process(ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 5, 6}));
  ids = {5};
  make_post_processor({{"type", "RobertaProcessing"}, {"cls", {"<s>", 0}}, {"sep", {"</s>", 2}}})
      ->process(ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 5, 2}));
  ids = {5};
  make_post_processor({{"type", "ByteLevel"}})->process(ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{5}));
}

TEST(Decoders, EachType) {
  EXPECT_EQ(decoded({{"type", "ByteLevel"}}, {"Hi", "Ġthere", "Ċ"}), "Hi there\n");
  EXPECT_EQ(decoded({{"type", "ByteLevel"}}, {"Ã"}), "\xEF\xBF\xBD");  // a lone 0xC3 byte
  EXPECT_EQ(decoded({{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}},
                    {"▁Hey", "▁friend"}),
            "Hey friend");
  // HF writes one U+FFFD per byte of an invalid byte-fallback run (the JS port differs here).
  EXPECT_EQ(decoded({{"type", "ByteFallback"}}, {"a", "<0xE2>", "<0x82>", "b"}),
            "a\xEF\xBF\xBD\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(decoded({{"type", "ByteFallback"}}, {"<0xE2>", "<0x82>", "<0xAC>"}), "€");
  EXPECT_EQ(decoded({{"type", "Sequence"},
                     {"decoders",
                      {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                       {{"type", "ByteFallback"}},
                       {{"type", "Fuse"}},
                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}},
                    {"▁Hello", "▁", "<0x21>"}),
            "Hello !");
  EXPECT_EQ(decoded({{"type", "Strip"}, {"content", "x"}, {"start", 2}, {"stop", 5}}, {"xxxaxx", "x"}), "xa");
  EXPECT_NE(usage_error([] {
              make_decoder({{"type", "CTC"}});
            }).find("'CTC' is not supported"),
            std::string::npos);
  // Counts outside their integer type are refused, not cast (fuzz/regressions/fuzz_tokenizer: start 1.4e31
  // was undefined behaviour in nlohmann's get<size_t>()).
  for (const json& start : {json(1.4e31), json(-1), json(1.5), json("1")})
    EXPECT_NE(usage_error([&] {
                make_decoder({{"type", "Strip"}, {"content", " "}, {"start", start}, {"stop", 0}});
              }).find("\"start\" must be an integer"),
              std::string::npos)
        << start.dump();
}

TEST(HfTokenizer, WholePipelineAndConfig) {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("tsp_tok_{}", std::random_device()());
  std::filesystem::create_directories(dir);
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  vocab["▁"] = 259;
  vocab["h"] = 260;
  vocab["i"] = 261;
  vocab["▁h"] = 262;
  vocab["▁hi"] = 263;
  const json tj = {{"added_tokens",
                    {{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                     {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}}},
                   {"normalizer",
                    {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Prepend"}, {"prepend", "▁"}},
                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
                   {"pre_tokenizer", nullptr},
                   {"model",
                    {{"type", "BPE"},
                     {"vocab", vocab},
                     {"merges", {"▁ h", "▁h i"}},
                     {"unk_token", "<unk>"},
                     {"byte_fallback", true},
                     {"fuse_unk", true}}},
                   {"post_processor",
                    {{"type", "TemplateProcessing"},
                     {"single",
                      {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                       {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                     {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
                   {"decoder",
                    {{"type", "Sequence"},
                     {"decoders",
                      {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                       {{"type", "ByteFallback"}},
                       {{"type", "Fuse"}},
                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}}};
  std::ofstream(dir / "tokenizer.json") << tj.dump();
  std::ofstream(dir / "tokenizer_config.json") << json({{"eos_token", "</s>"}}).dump();
  HfTokenizer tok((dir / "tokenizer.json").string(), (dir / "tokenizer_config.json").string());
  using V = std::vector<int32_t>;
  EXPECT_EQ(tok.encode("hi hi!"), (V{1, 263, 263, 3 + '!'}));
  EXPECT_EQ(tok.encode("hi</s>", false), (V{263, 2}));
  EXPECT_EQ(tok.decode({1, 263, 263, 3 + '!', 2}), "<s> hi hi!</s>");
  EXPECT_EQ(tok.decode({1, 263, 263, 3 + '!', 2}, true), "hi hi!");
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.vocab_size(), 264);
  // Invalid UTF-8 in the input is repaired (U+FFFD, three bytes through byte fallback).
  EXPECT_EQ(tok.encode("\xFF", false), (V{259, 3 + 0xEF, 3 + 0xBF, 3 + 0xBD}));
  EXPECT_EQ(clean_up_tokenization("a , b . c 's"), "a, b. c's");
  // A tokenizer_config.json field of the wrong JSON type is a message naming it, not a json exception.
  std::ofstream(dir / "tokenizer_config.json") << json({{"clean_up_tokenization_spaces", "yes"}}).dump();
  EXPECT_NE(usage_error([&] {
              HfTokenizer t((dir / "tokenizer.json").string(), (dir / "tokenizer_config.json").string());
            }).find("clean_up_tokenization_spaces must be true or false"),
            std::string::npos);
  std::ofstream(dir / "tokenizer_config.json") << "[1, 2]";
  EXPECT_NE(usage_error([&] {
              HfTokenizer t((dir / "tokenizer.json").string(), (dir / "tokenizer_config.json").string());
            }).find("expected a JSON object"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tsp
