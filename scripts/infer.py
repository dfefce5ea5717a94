"""Runs an exported model in ONNX Runtime with the ort-ops library on a sample batch and prints
what ran where: the main job's inference step (scripts/demo.sh).

    python scripts/infer.py MODEL.onnx [--batch 2] [--seq-len 300] [--runs 10]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import onnx

import ort_ops


def sample_feeds(sess, batch, seq_len, rng):
    """input_ids (small ids, valid for any vocabulary of the built-in models), attention_mask with
    padding at the end of the last row, global_attention_mask with the first token global,
    token_type_ids (when the graph takes them) all zero: one segment, a single-sentence batch."""
    feeds = {}
    for inp in sess.get_inputs():
        if inp.name == "input_ids":
            feeds[inp.name] = rng.integers(3, 100, size=(batch, seq_len), dtype=np.int64)
        elif inp.name == "attention_mask":
            mask = np.ones((batch, seq_len), np.int64)
            mask[-1, seq_len - seq_len // 5:] = 0
            feeds[inp.name] = mask
        elif inp.name == "global_attention_mask":
            glob = np.zeros((batch, seq_len), np.int64)
            glob[:, 0] = 1
            feeds[inp.name] = glob
        elif inp.name in ("token_type_ids", "position_ids"):
            feeds[inp.name] = (np.zeros((batch, seq_len), np.int64) if inp.name == "token_type_ids"
                               else np.tile(np.arange(seq_len, dtype=np.int64), (batch, 1)))
        else:
            raise SystemExit(f"infer.py: don't know how to fill input '{inp.name}'")
    return feeds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=300)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    model = onnx.load(args.model)
    ops = {}
    for node in model.graph.node:
        if node.domain == ort_ops.DOMAIN:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
    sess = ort_ops.InferenceSession(args.model)
    rng = np.random.default_rng(0)
    feeds = sample_feeds(sess, args.batch, args.seq_len, rng)
    outputs = sess.run(None, feeds)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "model": args.model,
        "custom_nodes": ops,
        "providers": sess.get_providers(),
        "library": ort_ops.build_info()["library"],
        "inputs": {k: list(v.shape) for k, v in feeds.items()},
        "outputs": {o.name: {"shape": list(v.shape), "finite": bool(np.isfinite(v).all()),
                             "mean_abs": float(np.abs(v).mean())} for o, v in zip(sess.get_outputs(), outputs)},
        "median_run_ms": round(1e3 * float(np.median(times)), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
