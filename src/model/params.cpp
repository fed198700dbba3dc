#include "model/params.h"

#include <cmath>

#include "core/check.h"
#include "core/precision.h"
#include "kernels/bf16.h"

namespace tsp {

ShardSpec ShardSpec::full(const ModelConfig& c) {
  ShardSpec s;
  s.q_heads = {0, c.num_attention_heads};
  s.kv_heads = {0, c.num_key_value_heads};
  s.intermediate = {0, c.intermediate_size};
  s.vocab = {0, c.vocab_size};
  s.vocab_padded = c.vocab_size;
  return s;
}

int ShardSpec::kv_replicas_for(const ModelConfig& c, int D) {
  const int64_t nkv = c.num_key_value_heads;
  return nkv < D && D % nkv == 0 ? int(D / nkv) : 1;
}

ShardSpec ShardSpec::folded(const ModelConfig& c, int D, int p, const std::string& strategy) {
  TSP_REQUIRE(c.num_attention_heads % D == 0,
              "--strategy {} on {} ranks needs num_attention_heads divisible by {}, but it is {}", strategy,
              D, D, c.num_attention_heads);
  TSP_REQUIRE(
      c.num_key_value_heads % D == 0 || D % c.num_key_value_heads == 0,
      "--strategy {} on {} ranks needs num_key_value_heads divisible by {}, but it is {} (nor is {} a "
      "multiple of it, which would replicate each KV head on {} / num_key_value_heads ranks)",
      strategy, D, D, c.num_key_value_heads, D, D);
  TSP_REQUIRE(c.intermediate_size % D == 0,
              "--strategy {} on {} ranks needs intermediate_size divisible by {}, but it is {}", strategy, D,
              D, c.intermediate_size);
  ShardSpec s;
  s.q_heads = shard_range(c.num_attention_heads, D, p);
  s.kv_replicas = kv_replicas_for(c, D);
  // With replication, shard p's query heads all read KV head p / replicas (n_h/D <= n_h/n_kv: one group).
  s.kv_heads = s.kv_replicas > 1 ? Range{p / s.kv_replicas, 1} : shard_range(c.num_key_value_heads, D, p);
  s.kv_primary = p % s.kv_replicas == 0;
  s.intermediate = shard_range(c.intermediate_size, D, p);
  s.vocab_padded = (c.vocab_size + D - 1) / D * D;
  s.vocab = shard_range(s.vocab_padded, D, p);
  return s;
}

template <class T>
ModelParams<T>::ModelParams(const ModelConfig& c, const ShardSpec& spec, bool with_grads)
    : cfg_(c), spec_(spec) {
  const int64_t h = c.hidden_size, d = c.head_dim, L = c.num_hidden_layers;
  const int64_t qd = spec.q_heads.size * d, kd = spec.kv_heads.size * d, I = spec.intermediate.size;
  const bool bias = c.attention_qkv_bias;
  AttnOffsets& a = attn_off_;
  a.q = 0;
  a.o = qd * h;
  a.bq = bias ? a.o + h * qd : -1;
  a.k = a.o + h * qd + (bias ? qd : 0);
  a.v = a.k + kd * h;
  a.bk = bias ? a.v + kd * h : -1;
  a.bv = bias ? a.bk + kd : -1;
  const int64_t attn_numel = a.v + kd * h + (bias ? 2 * kd : 0);
  mlp_off_ = {0, I * h, 2 * I * h};

  auto row_view = [](std::string name, int64_t off, int64_t rows, int64_t cols, int64_t full_rows,
                     int64_t row_begin) {
    return TensorView{std::move(name), off, rows, cols, {full_rows, cols}, row_begin, 0, rows};
  };
  auto col_view = [](std::string name, int64_t off, int64_t rows, int64_t cols, int64_t full_cols,
                     int64_t col_begin) {
    return TensorView{std::move(name), off, rows, cols, {rows, full_cols}, 0, col_begin, rows};
  };
  auto vector_view = [](std::string name, int64_t off, int64_t n, int64_t full, int64_t begin) {
    return TensorView{std::move(name), off, 1, n, {full}, 0, begin, 1};
  };
  for (int64_t l = 0; l < L; ++l) {
    std::string p = fmt::format("model.layers.{}.", l);
    ParamBlock attn{fmt::format("layers.{}.attn", l), Placement::sharded, {}, attn_numel};
    const int64_t q0 = spec.q_heads.begin * d, k0 = spec.kv_heads.begin * d;
    attn.views.push_back(row_view(p + "self_attn.q_proj.weight", a.q, qd, h, c.q_dim(), q0));
    attn.views.push_back(row_view(p + "self_attn.k_proj.weight", a.k, kd, h, c.kv_dim(), k0));
    attn.views.push_back(row_view(p + "self_attn.v_proj.weight", a.v, kd, h, c.kv_dim(), k0));
    attn.views.push_back(col_view(p + "self_attn.o_proj.weight", a.o, h, qd, c.q_dim(), q0));
    if (bias) {
      attn.views.push_back(vector_view(p + "self_attn.q_proj.bias", a.bq, qd, c.q_dim(), q0));
      attn.views.push_back(vector_view(p + "self_attn.k_proj.bias", a.bk, kd, c.kv_dim(), k0));
      attn.views.push_back(vector_view(p + "self_attn.v_proj.bias", a.bv, kd, c.kv_dim(), k0));
    }
    for (TensorView& v : attn.views)
      if (v.offset >= a.k) v.primary = spec.kv_primary;
    blocks_.push_back(std::move(attn));
    ParamBlock mlp{fmt::format("layers.{}.mlp", l), Placement::sharded, {}, 3 * I * h};
    int64_t full_i = c.intermediate_size, i0 = spec.intermediate.begin;
    mlp.views.push_back(row_view(p + "mlp.gate_proj.weight", mlp_off_.gate, I, h, full_i, i0));
    mlp.views.push_back(row_view(p + "mlp.up_proj.weight", mlp_off_.up, I, h, full_i, i0));
    mlp.views.push_back(col_view(p + "mlp.down_proj.weight", mlp_off_.down, h, I, full_i, i0));
    blocks_.push_back(std::move(mlp));
  }
  {
    const int64_t vs = spec.vocab.size,
                  valid = std::max<int64_t>(0, std::min(c.vocab_size, spec.vocab.end()) - spec.vocab.begin);
    ParamBlock vocab{"vocab", Placement::sharded, {}, (c.tie_word_embeddings ? 1 : 2) * vs * h};
    TensorView e{"model.embed_tokens.weight", 0, vs, h, {c.vocab_size, h}, spec.vocab.begin, 0, valid};
    vocab.views.push_back(e);
    if (!c.tie_word_embeddings) {
      e.name = "lm_head.weight";
      e.offset = vs * h;
      vocab.views.push_back(e);
    }
    blocks_.push_back(std::move(vocab));
  }
  {
    const int64_t qk0 = (2 * L + 1) * h;
    ParamBlock norms{"norms", Placement::replicated, {}, qk0 + (c.qk_norm ? 2 * L * d : 0)};
    for (int64_t l = 0; l < L; ++l) {
      std::string p = fmt::format("model.layers.{}.", l);
      norms.views.push_back(vector_view(p + "input_layernorm.weight", 2 * l * h, h, h, 0));
      norms.views.push_back(vector_view(p + "post_attention_layernorm.weight", (2 * l + 1) * h, h, h, 0));
    }
    norms.views.push_back(vector_view("model.norm.weight", 2 * L * h, h, h, 0));
    if (c.qk_norm) {
      for (int64_t l = 0; l < L; ++l) {
        std::string p = fmt::format("model.layers.{}.self_attn.", l);
        norms.views.push_back(vector_view(p + "q_norm.weight", qk0 + 2 * l * d, d, d, 0));
        norms.views.push_back(vector_view(p + "k_norm.weight", qk0 + (2 * l + 1) * d, d, d, 0));
      }
    }
    blocks_.push_back(std::move(norms));
  }
  const bool bf16 = bf16_storage<T>();
  for (const auto& b : blocks_) {
    // Serving under the bf16 policy holds the bf16 copy alone: the values are only addresses for it.
    values_.push_back(bf16 && !with_grads ? Buffer<T>::address_only(b.numel)
                                          : Buffer<T>(b.numel, bf16 ? Mem::optimizer : Mem::parameters));
    grads_.emplace_back(with_grads ? b.numel : 0, Mem::gradients);
  }
  if constexpr (std::is_same_v<T, float>)
    if (bf16) {
      held_ = std::make_unique<kernels::FrozenBf16Weights>(/*every_read=*/true);
      for (const auto& v : values_) {
        if (with_grads)
          held_->add(v.data(), v.size());
        else
          bf16_blocks_.push_back(held_->add_unread(v.data(), v.size()));
      }
    }
}

template <class T>
void ModelParams<T>::sync_bf16() {
  if (held_ && !bf16_only()) held_->refresh();
}

template <class T>
LayerWeights<T> ModelParams<T>::layer_of(std::vector<Buffer<T>>& blocks, int l) {
  T* a = blocks[size_t(attn_block(l))].data();
  T* m = blocks[size_t(mlp_block(l))].data();
  T* n = blocks[size_t(norm_block())].data();
  const int64_t h = cfg_.hidden_size;
  const AttnOffsets& o = attn_off_;
  LayerWeights<T> w{n + 2 * l * h,       a + o.q,           a + o.k,         a + o.v,          a + o.o,
                    n + (2 * l + 1) * h, m + mlp_off_.gate, m + mlp_off_.up, m + mlp_off_.down};
  if (cfg_.attention_qkv_bias) {
    w.bq = a + o.bq;
    w.bk = a + o.bk;
    w.bv = a + o.bv;
  }
  if (cfg_.qk_norm) {
    w.q_norm = n + qk_norm_offset() + 2 * l * cfg_.head_dim;
    w.k_norm = w.q_norm + cfg_.head_dim;
  }
  return w;
}

uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

double counter_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t a = splitmix64(seed ^ splitmix64(stream ^ splitmix64(2 * index)));
  uint64_t b = splitmix64(a ^ 0x5851f42d4c957f2dull);
  double u1 = (double(a >> 11) + 0.5) * 0x1.0p-53;  // (0, 1)
  double u2 = double(b >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

template <class T>
void ModelParams<T>::init(uint64_t seed, double init_std) {
  std::vector<T> staged;  // a bf16-only block is formed in T, then rounded into its copy
  for (size_t b = 0; b < blocks_.size(); ++b) {
    if (bf16_only()) staged.assign(size_t(blocks_[b].numel), T(0));
    T* base = bf16_only() ? staged.data() : values_[b].data();
    for (const auto& v : blocks_[b].views) {
      // 1-D tensors are norm weights (one) or biases (zero).
      const bool is_norm = !v.is_matrix() && !v.name.ends_with(".bias");
      const int64_t full_cols = v.full_shape.back();
      const uint64_t stream = name_hash(v.name);
      for (int64_t r = 0; r < v.rows; ++r)
        for (int64_t col = 0; col < v.cols; ++col) {
          T val = T(0);
          if (is_norm) {
            val = T(1);
          } else if (!v.is_matrix()) {
            val = T(0);
          } else if (r < v.valid_rows) {
            uint64_t gi = uint64_t((v.row_begin + r) * full_cols + (v.col_begin + col));
            val = T(init_std * counter_normal(seed, stream, gi));
          }
          base[v.offset + r * v.cols + col] = val;
        }
    }
    if constexpr (std::is_same_v<T, float>)
      if (bf16_only()) kernels::to_bf16(staged.data(), blocks_[b].numel, bf16_blocks_[b]);
  }
}

template <class T>
void ModelParams<T>::zero_grads() {
  for (auto& g : grads_) g.zero();
}

template <class T>
int64_t ModelParams<T>::local_numel() const {
  int64_t n = 0;
  for (const auto& b : blocks_) n += b.numel;
  return n;
}

template class ModelParams<float>;
template class ModelParams<double>;

}  // namespace tsp
