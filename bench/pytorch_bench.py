#!/usr/bin/env python3
"""PyTorch/transformers side of bench/vs_pytorch.sh: the same shapes as `rlvr model bench`.

Greedy decoding with the KV cache (`generate(do_sample=False)`, no EOS stop) and one
policy-gradient train step (forward, log-softmax + gather, weighted loss, backward, AdamW),
printed as one JSON object. `--make-10m DIR` writes the random 10M-parameter Qwen2 of
../shared/notes/baselines.md as a Hugging Face directory, `--make-qwen05b DIR` a randomly
initialised model of Qwen2.5-0.5B's shape (config only: no weights are downloaded).
`--device cuda --dtype bf16` runs on the GPU (scripts/device-check.sh) and adds the peak
memory PyTorch allocated.
"""
import argparse
import json
import os
import shutil
import statistics
import time

import torch
import transformers


def make_10m(out, tokenizer_from):
    cfg = transformers.Qwen2Config(
        vocab_size=8192, hidden_size=256, intermediate_size=1024, num_hidden_layers=6,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        max_position_embeddings=2048, eos_token_id=2, pad_token_id=0, bos_token_id=None,
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(cfg).float()
    model.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        src = os.path.join(tokenizer_from, f)
        if os.path.exists(src):
            shutil.copy(src, out)


def make_qwen05b(out, tokenizer_from):
    """Qwen2.5-0.5B's shape (its config.json), random weights in bf16."""
    cfg = transformers.Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
        max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
        eos_token_id=2, pad_token_id=0, bos_token_id=None,
    )
    torch.manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(dev):
        model = transformers.Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        src = os.path.join(tokenizer_from, f)
        if os.path.exists(src):
            shutil.copy(src, out)


def sync(dev):
    if dev == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--make-10m")
    ap.add_argument("--make-qwen05b")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--tokenizer-from")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--train-seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.make_10m:
        make_10m(a.make_10m, a.tokenizer_from)
        return
    if a.make_qwen05b:
        make_qwen05b(a.make_qwen05b, a.tokenizer_from)
        return
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = a.device
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).to(dev)
    model.generation_config.eos_token_id = None
    vocab = model.config.vocab_size
    sample = {}
    for b in [int(x) for x in a.batch.split(",")]:
        ids = torch.randint(0, vocab, (b, a.prompt_len), device=dev)
        mask = torch.ones_like(ids)
        model.eval()
        with torch.no_grad():
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=False)
            rates = []
            for _ in range(a.repeats):
                sync(dev)
                t = time.perf_counter()
                out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                     max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens)
                sync(dev)
                dt = time.perf_counter() - t
                rates.append(b * (out.shape[1] - a.prompt_len) / dt)
        sample[str(b)] = statistics.median(rates)

    model.train()
    ids = torch.randint(0, vocab, (a.train_batch, a.train_seq), device=dev)
    weights = torch.rand(a.train_batch, a.train_seq - 1, device=dev) * 2 - 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    times = []
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for r in range(a.repeats + 1):
        sync(dev)
        t = time.perf_counter()
        logits = model(input_ids=ids).logits[:, :-1]
        lp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        loss = -(lp * weights).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync(dev)
        if r > 0:
            times.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "transformers": transformers.__version__,
        "model": a.model, "threads": a.threads, "device": dev, "dtype": a.dtype,
        "sample_tok_s": sample, "train_batch": a.train_batch, "train_seq": a.train_seq,
        "train_step_ms": statistics.median(times),
        "train_peak_allocated_gib": (torch.cuda.max_memory_allocated() / 2**30
                                     if dev == "cuda" else None),
    }))


if __name__ == "__main__":
    main()
