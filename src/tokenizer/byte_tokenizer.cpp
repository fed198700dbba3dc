#include "tokenizer/byte_tokenizer.h"

namespace tsp {

std::vector<int32_t> byte_tokenize(const std::string& text) {
  std::vector<int32_t> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) out[i] = int32_t(static_cast<unsigned char>(text[i]));
  return out;
}

std::string byte_detokenize(const std::vector<int32_t>& tokens) {
  std::string out;
  out.reserve(tokens.size());
  for (int32_t t : tokens) {
    if (t >= 0 && t < 256) out.push_back(char(static_cast<unsigned char>(t)));
  }
  return out;
}

}  // namespace tsp
