#include "infer/generator.h"

#include <algorithm>
#include <chrono>
#include <type_traits>

#include "core/check.h"
#include "core/trace.h"
#include "kernels/blocked_weights.h"
#include "kernels/frozen_weights.h"
#include "kernels/matmul_precision.h"
#include "kernels/rmsnorm.h"

namespace tsp {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The transformer's layer loop on rows [n, h] of the residual stream x (u, y: scratch of the same size,
// rstd: [n]); attention(l, u, y) and mlp(l, u, y) are the layout's blocks. Leaves the final norm's output in
// u. Written once for the prefill and the decode.
template <class T, class Attention, class Mlp>
void layers_forward(ModelParams<T>& p, T* x, T* u, T* y, T* rstd, int64_t n, Attention&& attention,
                    Mlp&& mlp) {
  const ModelConfig& c = p.config();
  const int64_t h = c.hidden_size, nh = n * h;
  for (int l = 0; l < int(c.num_hidden_layers); ++l) {
    LayerWeights<T> w = p.layer(l);
    kernels::rmsnorm_forward(u, rstd, x, w.attn_norm, n, h, c.rms_norm_eps);
    attention(l, u, y);
    for (int64_t i = 0; i < nh; ++i) x[i] += y[i];
    kernels::rmsnorm_forward(u, rstd, x, w.mlp_norm, n, h, c.rms_norm_eps);
    mlp(l, u, y);
    for (int64_t i = 0; i < nh; ++i) x[i] += y[i];
  }
  kernels::rmsnorm_forward(u, rstd, x, p.final_norm(), n, h, c.rms_norm_eps);
}

}  // namespace

void validate_requests(const ModelConfig& c, const std::vector<std::vector<int32_t>>& prompts,
                       const GenerateOptions& o) {
  o.sampling.validate();
  TSP_REQUIRE(o.max_new_tokens >= 1, "--max-new-tokens must be >= 1, got {}", o.max_new_tokens);
  TSP_REQUIRE(!prompts.empty(), "there is no prompt to continue");
  for (size_t b = 0; b < prompts.size(); ++b) {
    const auto& pr = prompts[b];
    TSP_REQUIRE(!pr.empty(), "prompt {} is empty", b);
    // max_sequence_length(): max_position_embeddings, extended by a context-extending rope_scaling.
    TSP_REQUIRE(int64_t(pr.size()) < c.max_sequence_length(),
                "prompt {} has {} tokens: it leaves no room for a new token below the model's {}-token limit "
                "(max_position_embeddings {})",
                b, pr.size(), c.max_sequence_length(), c.max_position_embeddings);
    for (size_t i = 0; i < pr.size(); ++i)
      TSP_REQUIRE(pr[i] >= 0 && pr[i] < c.vocab_size,
                  "token {} (at index {} of prompt {}) is outside the vocabulary [0, {})", pr[i], i, b,
                  c.vocab_size);
  }
}

bool finished(GeneratedSequence& g, const GenerateOptions& o, int64_t max_position_embeddings) {
  if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), g.tokens.back()) != o.stop_tokens.end())
    g.finish_reason = "eos";
  else if (int64_t(g.tokens.size()) == o.max_new_tokens)
    g.finish_reason = "length";
  else if (int64_t(g.prompt.size() + g.tokens.size()) >= max_position_embeddings)
    g.finish_reason = "length_limit";
  return !g.finish_reason.empty();
}

template <class T>
Generator<T>::Generator(ModelParams<T>& params, Strategy<T>& strategy, const DecodeOptions& opts)
    : p_(params), s_(strategy), decoder_(strategy.make_decoder(params, opts)) {}

template <class T>
void Generator<T>::pick(const DecodeBatch& batch, const T* u, const GenerateOptions& o,
                        const std::vector<GeneratedSequence>& out, T* logits, int32_t* next) {
  const VocabShard shard = decoder_->vocab_shard();
  const int64_t n = batch.size();
  decoder_->decode_logits(u, logits);
  if (on_logits) on_logits(batch, logits, shard);
  std::vector<Draw> draws(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = batch.seq[size_t(i)];
    draws[size_t(i)] = {uint64_t(b), uint64_t(out[size_t(b)].tokens.size())};
  }
  pick_tokens(logits, n, shard, o.sampling, draws, next);
}

template <class T>
std::vector<GeneratedSequence> Generator<T>::generate(const std::vector<std::vector<int32_t>>& prompts,
                                                      const GenerateOptions& o) {
  const ModelConfig& c = p_.config();
  validate_requests(c, prompts, o);
  const int64_t B = int64_t(prompts.size()), h = c.hidden_size, max_pos = c.max_sequence_length();
  int64_t longest = 0, needed = 0;
  for (const auto& pr : prompts) {
    longest = std::max(longest, int64_t(pr.size()));
    // The last new token is never fed back: the cache holds positions < prompt + new - 1.
    needed = std::max(needed, std::min(int64_t(pr.size()) + o.max_new_tokens - 1, max_pos));
  }
  const int64_t m = decoder_->prompt_multiple(), S = (longest + m - 1) / m * m;
  stats_ = GenerateStats{};
  std::vector<GeneratedSequence> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) out[size_t(b)].prompt = prompts[size_t(b)];

  auto finish = [&](int64_t b) { return finished(out[size_t(b)], o, max_pos); };

  const double t0 = now_seconds();
  // Under bf16 products the weights, at rest for the whole generation, are rounded to bf16 once here instead
  // of in every product of every step (kernels/frozen_weights.h; the same bits). Counted in TTFT, as a
  // server that rounds them at load would pay it once.
  // Under the bf16 policy the parameters hold that copy already (refreshed here from the master).
  kernels::FrozenBf16Weights frozen;
  p_.sync_bf16();
  if constexpr (std::is_same_v<T, float>)
    if (kernels::matmul_precision() == kernels::MatmulPrecision::bf16 && freeze_bf16_weights &&
        !p_.holds_bf16())
      for (int b = 0; b < p_.num_blocks(); ++b) frozen.add(p_.value(b).data(), p_.value(b).size());
  stats_.frozen_bf16_bytes = p_.holds_bf16() ? p_.bf16_bytes() : frozen.bytes();
  kernels::BlockedBf16Weights blocked;
  if constexpr (std::is_same_v<T, float>)
    if (blocked_weights && kernels::matmul_precision() == kernels::MatmulPrecision::bf16)
      for (int b = 0; b < p_.num_blocks(); ++b)
        for (const TensorView& v : p_.blocks()[size_t(b)].views) {
          // The linear layers' matrices (an untied embedding table is only looked up, never multiplied by).
          if (!v.is_matrix() ||
              (v.name.starts_with("model.embed_tokens") && !p_.config().tie_word_embeddings))
            continue;
          if (const uint16_t* w16 = kernels::frozen_bf16(p_.value(b).data() + v.offset, v.numel()))
            blocked.add(w16, v.rows, v.cols);
        }
  stats_.blocked_bf16_bytes = blocked.bytes();
  stats_.blocked_bf16_weights = blocked.count();
  decoder_->allocate(ServeShape{B, S, needed});
  stats_.kv_cache_bytes = decoder_->kv_cache_bytes();
  stats_.context = decoder_->context();
  DecodeBatch batch;
  Buffer<T> x(B * h, Mem::workspace), u(B * h, Mem::workspace), y(B * h, Mem::workspace),
      rstd(B, Mem::workspace), logits(B * decoder_->vocab_shard().rows, Mem::workspace);
  std::vector<int32_t> next(static_cast<size_t>(B));
  {
    // Prefill: every prompt padded at the end to S; each rank runs the layout's forward on its tokens.
    s_.set_phase("prefill");
    TraceSpan span("prefill", "phase");
    const std::vector<int64_t> pos = decoder_->prefill_positions();
    const int64_t per = int64_t(pos.size()), n = B * per;
    std::vector<int32_t> tokens(static_cast<size_t>(n), 0);
    std::vector<int64_t> last(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
      const auto& pr = prompts[size_t(b)];
      last[size_t(b)] = int64_t(pr.size()) - 1;
      for (int64_t j = 0; j < per; ++j)
        if (pos[size_t(j)] < int64_t(pr.size())) tokens[size_t(b * per + j)] = pr[size_t(pos[size_t(j)])];
    }
    Buffer<T> px(n * h, Mem::workspace), pu(n * h, Mem::workspace), py(n * h, Mem::workspace),
        prstd(n, Mem::workspace);
    decoder_->prefill_embed(tokens.data(), px.data());
    layers_forward(
        p_, px.data(), pu.data(), py.data(), prstd.data(), n,
        [&](int l, const T* uu, T* yy) { decoder_->prefill_attention(l, uu, yy); },
        [&](int l, const T* uu, T* yy) { decoder_->prefill_mlp(l, uu, yy); });
    decoder_->prefill_rows(pu.data(), last.data(), u.data());
    // The first new token of every sequence, from its last prompt position (part of the prefill's time and
    // communication: the time to first token).
    for (int64_t b = 0; b < B; ++b) {
      batch.seq.push_back(b);
      batch.pos.push_back(last[size_t(b)]);
    }
    decoder_->begin_step(batch);
    pick(batch, u.data(), o, out, logits.data(), next.data());
  }
  std::vector<int64_t> active;
  for (int64_t b = 0; b < B; ++b) {
    out[size_t(b)].tokens.push_back(next[size_t(b)]);
    if (!finish(b)) active.push_back(b);
  }
  const double t1 = now_seconds();
  stats_.prefill_seconds = t1 - t0;

  // Decode: the latest token of every unfinished sequence, at the position after its last one.
  s_.set_phase("decode");
  while (!active.empty()) {
    TraceSpan span("decode.step", "phase");
    const double ts = now_seconds();
    const int64_t n = int64_t(active.size());
    batch.seq = active;
    batch.pos.resize(size_t(n));
    std::vector<int32_t> fed(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const GeneratedSequence& g = out[size_t(active[size_t(i)])];
      batch.pos[size_t(i)] = int64_t(g.prompt.size() + g.tokens.size()) - 1;
      fed[size_t(i)] = g.tokens.back();
    }
    decoder_->begin_step(batch);
    decoder_->decode_embed(fed.data(), x.data());
    layers_forward(
        p_, x.data(), u.data(), y.data(), rstd.data(), n,
        [&](int l, const T* uu, T* yy) { decoder_->decode_attention(l, uu, yy); },
        [&](int l, const T* uu, T* yy) { decoder_->decode_mlp(l, uu, yy); });
    pick(batch, u.data(), o, out, logits.data(), next.data());
    std::vector<int64_t> still;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t b = active[size_t(i)];
      out[size_t(b)].tokens.push_back(next[size_t(i)]);
      if (!finish(b)) still.push_back(b);
    }
    active = std::move(still);
    stats_.step_seconds.push_back(now_seconds() - ts);
    ++stats_.decode_steps;
  }
  stats_.decode_seconds = now_seconds() - t1;
  for (const GeneratedSequence& g : out) stats_.output_tokens += int64_t(g.tokens.size());
  return out;
}

template class Generator<float>;
template class Generator<double>;

}  // namespace tsp
