#include "parallel/tsp/decode.h"

#include "core/check.h"

namespace tsp {

template <class T>
TspDecode<T>::TspDecode(ModelParams<T>& p, Communicator& comm, KvLayout kv_layout, bool bf16_wire)
    : p_(p), comm_(comm), kv_layout_(kv_layout), bf16_wire_(bf16_wire) {}

template <class T>
std::string TspDecode<T>::kv_placement() const {
  const ModelConfig& c = p_.config();
  const ShardSpec& s = p_.spec();
  if (kv_layout_ == KvLayout::heads)
    return fmt::format("heads: KV heads [{}, {}) of {} on rank {}, every position", s.kv_heads.begin,
                       s.kv_heads.end(), c.num_key_value_heads, comm_.rank());
  return fmt::format(
      "sequence: every KV head, 1/{} of the positions on rank {} (zigzag prompt chunks {} and {}, "
      "new positions in round-robin blocks of {})",
      comm_.size(), comm_.rank(), comm_.rank(), 2 * comm_.size() - 1 - comm_.rank(), kKvBlock);
}

template <class T>
void TspDecode<T>::allocate(const ServeShape& s) {
  const ModelConfig& c = p_.config();
  const int D = comm_.size();
  TSP_CHECK(s.batch > 0 && s.prompt > 0 && s.prompt % (2 * D) == 0,
            "TspDecode: prompt length {} must be a positive multiple of 2D = {}", s.prompt, 2 * D);
  // Release the previous allocation first, so that the peak never holds both.
  attn_ = TspAttention<T>();
  mlp_ = TspMlpRing<T>();
  vocab_ = TspVocabRing<T>();
  cache_ = KvCache<T>();
  dmlp_ = DecodeMlp<T>();
  dattn_ = DecodeAttention<T>();
  seq_attn_ = TspSequenceAttention<T>();

  layout_ = make_tsp_layout(comm_, s.batch, s.prompt);
  // Both layouts reach the same context, so that each holds exactly 1/D of the same cache.
  const int64_t context = kv_context(s.prompt, s.needed, D);
  const bool heads = kv_layout_ == KvLayout::heads;
  slots_ = heads ? KvSlots{1, 0, s.prompt, context} : KvSlots{D, comm_.rank(), s.prompt, context};
  cache_ = KvCache<T>(c.num_hidden_layers, s.batch, slots_.slots(),
                      heads ? p_.spec().kv_heads.size * c.head_dim : c.kv_dim());
  attn_.prepare(layout_, p_, /*keep_gathered_kv=*/false, /*training=*/false, bf16_wire_);
  attn_.set_cache(&cache_, kv_layout_);
  mlp_.prepare(layout_, p_, false, bf16_wire_);
  vocab_.prepare(layout_, p_, false, bf16_wire_);
  dvocab_.prepare(p_, &comm_, s.batch);
  dmlp_.prepare(p_, &comm_, s.batch);
  if (heads)
    dattn_.prepare(p_, &comm_, nullptr, slots_, &cache_, s.batch);
  else
    seq_attn_.prepare(p_, comm_, slots_, &cache_, s.batch);
}

template <class T>
void TspDecode<T>::prefill_rows(const T* u, const int64_t* last, T* rows) {
  prefill_last_rows(u, layout_.seq_positions, last, layout_.batch, p_.config().hidden_size, true, &comm_,
                    rows);
}

template <class T>
void TspDecode<T>::begin_step(const DecodeBatch& batch) {
  batch_ = &batch;
  if (kv_layout_ == KvLayout::heads)
    dattn_.begin_step(batch);
  else
    seq_attn_.begin_step(batch);
}

template <class T>
void TspDecode<T>::decode_attention(int layer, const T* u, T* y) {
  if (kv_layout_ == KvLayout::heads)
    dattn_.forward(p_, layer, u, y);
  else
    seq_attn_.forward(p_, layer, u, y);
}

template class TspDecode<float>;
template class TspDecode<double>;

}  // namespace tsp
