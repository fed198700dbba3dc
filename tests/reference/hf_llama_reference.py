#!/usr/bin/python3
"""An independent reference for the model's semantics: the forward pass of Hugging Face's LlamaForCausalLM,
MistralForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM written out in numpy (float64) from transformers'
source — RMSNorm, rotate-half RoPE with HF's rope_scaling rules (modeling_rope_utils.py: default, linear,
dynamic, llama3, yarn and its attention factor), Qwen2's q/k/v biases, Qwen3's per-head q_norm/k_norm before
RoPE, grouped-query attention via repeat_kv, causal (and Mistral sliding-window) softmax, SwiGLU MLP, tied or
untied LM head — reading the checkpoint's config.json and model.safetensors directly. It shares no code with
the C++ runtime.

usage: hf_llama_reference.py CHECKPOINT_DIR TOKENS_FILE LOGITS_BIN [TOLERANCE]
Compares with the raw float32 logits written by `tsp eval --logits-out` and exits non-zero above TOLERANCE
(relative Frobenius error, default 1e-5).
"""
import json
import math
import os
import struct
import sys

import numpy as np


def load_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = body[b:e]
        dt = info["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dt == "F64":
            a = np.frombuffer(raw, dtype="<f8").copy()
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dt == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"unsupported dtype {dt} for {name}")
        out[name] = a.reshape(info["shape"])
    return out


def rms_norm(x, w, eps):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return w * (x / np.sqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


# HF's defaults for fields a config may omit, per model_type (configuration_*.py).
KV_HEADS_DEFAULT = {"mistral": 8, "qwen2": 32, "qwen3": 32}
HEAD_DIM_DEFAULT = {"qwen3": 128}


def rope_parameters(cfg):
    """(rope_type, params, theta): rope_scaling (legacy "type" or "rope_type") or transformers 5's
    rope_parameters."""
    theta = cfg.get("rope_theta", 10000.0)
    rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    theta = rs.get("rope_theta") or theta
    kind = rs.get("rope_type", rs.get("type", "default"))
    return kind, rs, theta


def rope_frequencies(cfg, d, seq_len):
    """inv_freq [d/2] and attention_scaling for a forward whose positions are < seq_len."""
    kind, rs, base = rope_parameters(cfg)
    max_pos = cfg["max_position_embeddings"]
    exponents = np.arange(0, d, 2, dtype=np.float64) / d
    inv_freq = 1.0 / (base**exponents)
    if kind == "default":
        return inv_freq, 1.0
    factor = rs["factor"]
    if kind == "linear":
        return inv_freq / factor, 1.0
    if kind == "dynamic":
        # dynamic_rope_update: recomputed for max(position_ids) + 1 once it exceeds max_position_embeddings.
        L = max(seq_len, max_pos)
        base = base * ((factor * L / max_pos) - (factor - 1)) ** (d / (d - 2))
        return 1.0 / (base**exponents), 1.0
    if kind == "llama3":
        old = rs["original_max_position_embeddings"]
        low, high = rs["low_freq_factor"], rs["high_freq_factor"]
        wavelen = 2 * math.pi / inv_freq
        scaled = np.where(wavelen > old / low, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        return np.where(medium, smoothed, scaled), 1.0
    if kind == "yarn":
        orig = rs.get("original_max_position_embeddings") or max_pos

        def mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        attention = rs.get("attention_factor")
        if attention is None:
            if rs.get("mscale") and rs.get("mscale_all_dim"):
                attention = mscale(factor, rs["mscale"]) / mscale(factor, rs["mscale_all_dim"])
            else:
                attention = mscale(factor)
        beta_fast = rs.get("beta_fast") or 32
        beta_slow = rs.get("beta_slow") or 1

        def correction_dim(rotations):
            return (d * math.log(orig / (rotations * 2 * math.pi))) / (2 * math.log(base))

        lo, hi = correction_dim(beta_fast), correction_dim(beta_slow)
        if rs.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, d - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((np.arange(d // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
        extrapolation = 1 - ramp
        return (inv_freq / factor) * (1 - extrapolation) + inv_freq * extrapolation, attention
    raise SystemExit(f"rope type {kind} is not in this reference")


def forward(cfg, W, tokens):
    model_type = cfg.get("model_type", "llama")
    h = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or KV_HEADS_DEFAULT.get(model_type, nh)
    d = cfg.get("head_dim") or HEAD_DIM_DEFAULT.get(model_type) or h // nh
    eps = cfg["rms_norm_eps"]
    S = len(tokens)
    x = W["model.embed_tokens.weight"][tokens]
    inv_freq, attention_scaling = rope_frequencies(cfg, d, S)
    freqs = np.outer(np.arange(S, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos = (np.cos(emb) * attention_scaling)[:, None, :]
    sin = (np.sin(emb) * attention_scaling)[:, None, :]
    mask = np.triu(np.full((S, S), -np.inf), k=1)
    window = cfg.get("sliding_window") if model_type == "mistral" else None
    if window:  # Mistral: key j visible to query i iff i - window < j <= i
        mask = mask + np.tril(np.full((S, S), -np.inf), k=-window)

    def proj(u, p, name, heads):
        y = u @ W[p + f"self_attn.{name}_proj.weight"].T
        if model_type == "qwen2":  # bias on q, k and v (not o)
            y = y + W[p + f"self_attn.{name}_proj.bias"]
        return y.reshape(S, heads, d)

    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        u = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q, k, v = proj(u, p, "q", nh), proj(u, p, "k", nkv), proj(u, p, "v", nkv)
        if model_type == "qwen3":  # RMSNorm over head_dim of every head, before RoPE
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = np.repeat(k, nh // nkv, axis=1)  # repeat_kv
        v = np.repeat(v, nh // nkv, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d) + mask
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", probs, v).reshape(S, nh * d)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        u = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = u @ W[p + "mlp.gate_proj.weight"].T
        up = u @ W[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1.0 + np.exp(-g))) * up) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else W["lm_head.weight"]
    return x @ head.T


def main():
    ckpt, tokens_file, logits_bin = sys.argv[1:4]
    tol = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-5
    if not os.path.exists(f"{ckpt}/config.json"):  # a --checkpoint-dir: follow its 'latest'
        ckpt = f"{ckpt}/{open(f'{ckpt}/latest').read().strip()}"
    cfg = json.load(open(f"{ckpt}/config.json"))
    W = load_safetensors(f"{ckpt}/model.safetensors")
    seqs = [[int(t) for t in line.split()] for line in open(tokens_file) if line.split()]
    ref = np.concatenate([forward(cfg, W, np.array(s)) for s in seqs])
    got = np.fromfile(logits_bin, dtype="<f4").astype(np.float64)
    if got.size != ref.size:
        raise SystemExit(f"logits file has {got.size} values, the reference {ref.size}")
    err = np.linalg.norm(got - ref.ravel()) / np.linalg.norm(ref)
    kind = rope_parameters(cfg)[0]
    print(
        f"HF {cfg.get('model_type', 'llama')} (rope {kind}) reference vs tsp: relative error {err:.3e} over "
        f"{ref.shape[0]} tokens x {ref.shape[1]} vocab"
    )
    if not err <= tol:
        raise SystemExit(f"relative error {err:.3e} above tolerance {tol:.1e}")


if __name__ == "__main__":
    main()
