"""A few band-only calls of MultigrainAttention through the test shim, for Nsight Compute:
B = 1, S = $NCU_S (default 16384), 12 heads x 64, w = 256, 8 globals first."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "gpu"))
from attention_gpu_util import make_inputs, make_mask, run_op, workspace_bytes  # noqa: E402

B, S, H, D, w = 1, int(os.environ.get("NCU_S", "16384")), 12, 64, 256
gen = torch.Generator().manual_seed(0)
mask = make_mask(S, 8, "first", S, gen)[None].cuda()
x = make_inputs(B, S, H, D, torch.float16, True, gen)
ws = torch.empty(workspace_bytes(B, S, H, D, w, torch.float16), dtype=torch.uint8, device="cuda")
for _ in range(2):
    assert run_op(*x, mask, H, w, workspace=ws, parts=1)[0] == 0
torch.cuda.synchronize()
