#!/usr/bin/python3
"""An independent reference for the model's semantics: Hugging Face LlamaForCausalLM's forward pass written
out in numpy (float64) from its definition — RMSNorm, rotate-half RoPE with rope_theta, grouped-query
attention via repeat_kv, causal softmax, SwiGLU MLP, tied or untied LM head — reading the checkpoint's
config.json and model.safetensors directly.

usage: hf_llama_reference.py CHECKPOINT_DIR TOKENS_FILE LOGITS_BIN [TOLERANCE]
Compares with the raw float32 logits written by `tsp eval --logits-out` and exits non-zero above TOLERANCE
(relative Frobenius error, default 1e-5).
"""
import json
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


def forward(cfg, W, tokens):
    h = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    d = cfg.get("head_dim") or h // nh
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta", 10000.0)
    S = len(tokens)
    x = W["model.embed_tokens.weight"][tokens]
    inv_freq = 1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    freqs = np.outer(np.arange(S, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    mask = np.triu(np.full((S, S), -np.inf), k=1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        u = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = (u @ W[p + "self_attn.q_proj.weight"].T).reshape(S, nh, d)
        k = (u @ W[p + "self_attn.k_proj.weight"].T).reshape(S, nkv, d)
        v = (u @ W[p + "self_attn.v_proj.weight"].T).reshape(S, nkv, d)
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
    print(f"HF Llama reference vs tsp: relative error {err:.3e} over {ref.shape[0]} tokens x {ref.shape[1]} vocab")
    if not err <= tol:
        raise SystemExit(f"relative error {err:.3e} above tolerance {tol:.1e}")


if __name__ == "__main__":
    main()
