"""Small MultigrainAttention run for compute-sanitizer (memcheck / racecheck / initcheck):
  compute-sanitizer --tool memcheck python3 tests/gpu/sanitize_attention.py
Every dtype and the three head-dim instances, padding, scattered globals (G <= 16: the narrow
global tiles), G > 64, an invalid mask row; both schedules (one grid, two streams); at head dim 64
the band in the Hopper band kernel (sm_90a default), in the fused kernel on warpgroup MMAs, and
on mma.sync. Prints the relative error per run."""
import sys

import torch

from attention_gpu_util import (BAND_FUSED, BAND_MMA_SYNC, PARTS_ALL, SCHED_ONE_GRID, SCHED_TWO_STREAM, make_inputs, make_mask, rel_err, run_op,
                                torch_reference)

gen = torch.Generator().manual_seed(5)
B, S, H, w = 3, 203, 2, 9
mask = torch.stack([make_mask(S, 4, "scattered", 190, gen), make_mask(S, 70, "scattered", S, gen),
                    make_mask(S, 2, "first", S, gen)])
mask[2, 100] = 7  # invalid value: that row becomes NaN
mask = mask.cuda()
worst = 0.0
runs = [(dtype, D, 0) for dtype in (torch.float32, torch.float16, torch.bfloat16) for D in (32, 64, 128)]
runs += [(torch.float16, 64, SCHED_ONE_GRID), (torch.float16, 64, SCHED_TWO_STREAM)]  # both schedules
runs += [(torch.float16, 64, SCHED_TWO_STREAM | BAND_FUSED), (torch.bfloat16, 48, 0)]  # fused band; band kernel, D 48
runs += [(torch.bfloat16, 64, SCHED_ONE_GRID | BAND_MMA_SYNC)]  # the mma.sync band at head dim 64
for dtype, D, sched in runs:
    x = make_inputs(B, S, H, D, dtype, True, gen)
    rc, out = run_op(*x, mask, H, w, parts=PARTS_ALL | sched)
    torch.cuda.synchronize()
    if rc != 0:
        sys.exit(f"launcher error {rc}")
    err = rel_err(out[:2], torch_reference(*x, mask, H, w)[:2])
    worst = max(worst, err)
    print(f"{dtype} D={D} sched={sched}: rel={err:.2e} nan_row_ok={bool(torch.isnan(out[2]).all())}")
# The band kernel's 2-slot ring (>= 16 CTAs per SM of band work: 132 x 16 here), with --large
# only: memcheck takes it in seconds, racecheck did not finish it in 120 s (H200, 2026-12-03).
if "--large" not in sys.argv:
    print(f"sanitize case done, worst rel {worst:.2e}")
    sys.exit(0)
mask = torch.stack([make_mask(1024, b % 9, "scattered", 1024 - b, gen) for b in range(132)]).cuda()
x = make_inputs(132, 1024, 1, 64, torch.float16, True, gen)
rc, out = run_op(*x, mask, 1, 100)
torch.cuda.synchronize()
if rc != 0:
    sys.exit(f"launcher error {rc}")
err = rel_err(out, torch_reference(*x, mask, 1, 100))
worst = max(worst, err)
print(f"2-slot ring B=132 S=1024: rel={err:.2e}")
print(f"sanitize case done, worst rel {worst:.2e}")
