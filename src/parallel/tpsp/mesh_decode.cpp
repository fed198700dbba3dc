#include "parallel/tpsp/mesh_decode.h"

#include "core/check.h"

namespace tsp {

template <class T>
MeshDecode<T>::MeshDecode(ModelParams<T>& p, DecodeMesh mesh) : p_(p), m_(mesh) {}

template <class T>
std::string MeshDecode<T>::kv_placement() const {
  const ModelConfig& c = p_.config();
  const ShardSpec& s = p_.spec();
  const std::string heads = m_.tp_size > 1 ? fmt::format("KV heads [{}, {}) of {}", s.kv_heads.begin,
                                                         s.kv_heads.end(), c.num_key_value_heads)
                                           : "every KV head";
  const std::string positions =
      m_.sp_size > 1 ? fmt::format(
                           "1/{} of the positions (zigzag prompt chunks {} and {}, new positions in "
                           "round-robin blocks of {})",
                           m_.sp_size, m_.sp_rank, 2 * m_.sp_size - 1 - m_.sp_rank, kKvBlock)
                     : "every position";
  return heads + ", " + positions;
}

template <class T>
int64_t MeshDecode<T>::prompt_multiple() const {
  // As MeshStrategy::seq_len_multiple: 2Σ zigzag chunks, each SP group's positions cut in T under
  // Megatron-SP.
  const int64_t zigzag = m_.sp_size > 1 ? 2 * int64_t(m_.sp_size) : 1;
  return m_.seq_parallel && m_.tp_size > 1 ? zigzag * m_.tp_size : zigzag;
}

template <class T>
void MeshDecode<T>::allocate(const ServeShape& s) {
  const ModelConfig& c = p_.config();
  TSP_CHECK(s.batch > 0 && s.prompt > 0 && s.prompt % prompt_multiple() == 0,
            "MeshDecode: prompt length {} must be a positive multiple of {}", s.prompt, prompt_multiple());
  tokens_ = TpTokens<T>();
  attn_ = MeshAttention<T>();
  mlp_ = MeshMlp<T>();
  vocab_ = MeshVocab<T>();
  cache_ = KvCache<T>();
  dmlp_ = DecodeMlp<T>();
  dattn_ = DecodeAttention<T>();

  layout_ = MeshLayout::make(m_.mesh, m_.tp, m_.sp, m_.tp_size, m_.tp_rank, m_.sp_size, m_.sp_rank,
                             m_.seq_parallel && m_.tp_size > 1, s.batch, s.prompt);
  slots_ = KvSlots{m_.sp_size, m_.sp_rank, s.prompt, kv_context(s.prompt, s.needed, m_.sp_size)};
  cache_ = KvCache<T>(c.num_hidden_layers, s.batch, slots_.slots(), p_.spec().kv_heads.size * c.head_dim);
  tokens_.prepare(layout_, c.hidden_size, /*training=*/false);
  attn_.prepare(layout_, tokens_, p_, false);
  attn_.set_cache(&cache_);
  mlp_.prepare(layout_, tokens_, p_, false);
  vocab_.prepare(layout_, tokens_, p_, false);
  dvocab_.prepare(p_, m_.tp, s.batch);
  dmlp_.prepare(p_, m_.tp, s.batch);
  dattn_.prepare(p_, m_.tp, m_.sp, slots_, &cache_, s.batch);
}

template <class T>
std::vector<int64_t> MeshDecode<T>::prefill_positions() const {
  return MeshLayout::local_positions_of(layout_.seq_len, m_.sp_size, m_.sp_rank, m_.tp_size, m_.tp_rank,
                                        layout_.seq_parallel);
}

template <class T>
void MeshDecode<T>::prefill_rows(const T* u, const int64_t* last, T* rows) {
  // Without Megatron-SP the ranks of a TP group hold the same tokens: TP rank 0 speaks for them.
  prefill_last_rows(u, prefill_positions(), last, layout_.batch, p_.config().hidden_size,
                    layout_.seq_parallel || m_.tp_rank == 0, m_.mesh, rows);
}

template class MeshDecode<float>;
template class MeshDecode<double>;

}  // namespace tsp
