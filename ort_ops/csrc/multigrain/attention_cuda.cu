// MultigrainAttention launcher: mask compaction, dispatch by dtype / head dim to the tensor-core
// flash kernel (attention_cuda_flash.cuh, instances in attention_cuda_hdim*.cu), the combine of
// the split global rows, and a simple CUDA-core float32 kernel. Design: docs/attention_cuda.md.
//
// Stream order on `stream` (no host sync, no allocation, graph-capturable):
//   1. compact_mask   one CTA per batch row: int8 mask, compacted global positions, count, bad flag
//   2. flash_kernel   one launch: global-row CTAs (split over keys; the last split of a head merges
//                     them by log-sum-exp) + band CTAs, side by side; on sm_90 a programmatic
//                     dependent of 1, so its CTAs start and prefetch queries while 1 finishes
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "multigrain/attention_cuda.h"
#include "multigrain/attention_cuda_impl.h"
#include "multigrain/attention_cuda_traits.h"

namespace ortops::cuda {
namespace multigrain {

namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// One CTA per batch row. Each thread takes kCompactItems consecutive mask entries per pass; a
// block-wide exclusive scan of the per-thread global counts places the positions in order.
template <typename MaskT>
__global__ void __launch_bounds__(kCompactThreads)
    compact_mask(const MaskT* mask, int S, int H, int8_t* mask8, int32_t* gidx, int32_t* gcount, int32_t* bad,
                 int32_t* done) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");  // the flash kernel may start
#endif
  __shared__ int warp_totals[kCompactThreads / 32];
  __shared__ int pass_total;
  const int b = blockIdx.x, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const MaskT* m = mask + static_cast<int64_t>(b) * S;
  int8_t* m8 = mask8 + static_cast<int64_t>(b) * S;
  int32_t* gi = gidx + static_cast<int64_t>(b) * S;
  int base = 0;
  bool any_bad = false;
  for (int start = 0; start < S; start += kCompactThreads * kCompactItems) {
    const int first = start + tid * kCompactItems;
    uint32_t flags = 0;
    int count = 0;
#pragma unroll
    for (int k = 0; k < kCompactItems; ++k) {
      const int j = first + k;
      if (j < S) {
        const MaskT v = m[j];
        const bool ok = v == 0 || v == 1 || v == 2;
        any_bad |= !ok;
        m8[j] = ok ? static_cast<int8_t>(v) : int8_t{3};
        if (v == 2) {
          flags |= 1u << k;
          ++count;
        }
      }
    }
    int incl = count;  // warp inclusive scan
#pragma unroll
    for (int o = 1; o < 32; o *= 2) {
      const int x = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += x;
    }
    if (lane == 31) warp_totals[warp] = incl;
    __syncthreads();
    if (warp == 0) {
      int x = warp_totals[lane], xi = x;
#pragma unroll
      for (int o = 1; o < 32; o *= 2) {
        const int y = __shfl_up_sync(0xffffffffu, xi, o);
        if (lane >= o) xi += y;
      }
      warp_totals[lane] = xi - x;  // exclusive over warps
    }
    __syncthreads();
    int pos = base + warp_totals[warp] + incl - count;
#pragma unroll
    for (int k = 0; k < kCompactItems; ++k)
      if (flags & (1u << k)) gi[pos++] = first + k;
    if (tid == kCompactThreads - 1) pass_total = pos - base;  // last thread ends the pass
    __syncthreads();
    base += pass_total;
    __syncthreads();
  }
  any_bad = __syncthreads_or(any_bad);
  if (tid == 0) {
    gcount[b] = base;
    bad[b] = any_bad ? 1 : 0;
  }
  if (done)
    for (int h = tid; h < H; h += kCompactThreads) done[static_cast<int64_t>(b) * H + h] = 0;
}

// float32: one warp per (b, h, query). Lanes score 32 keys at a time (each lane one key), then
// accumulate P V with lanes over the head dim. Simple and exact in fp32; not tuned.
constexpr int kF32Warps = 4;
__global__ void __launch_bounds__(kF32Warps * 32) attend_fp32(FlashParams fp) {
  __shared__ float s_q[kF32Warps][128];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kF32Warps + warp;  // (b, h, i), i fastest
  const int S = fp.S, D = fp.D, H = fp.H;
  if (item >= static_cast<int64_t>(fp.B) * H * S) return;
  const int i = static_cast<int>(item % S), bh = static_cast<int>(item / S), b = bh / H, h = bh % H;
  const int64_t head_off = static_cast<int64_t>(b) * S * fp.ld + static_cast<int64_t>(h) * D;
  float* o = static_cast<float*>(fp.out) + head_off + i * fp.ld;
  const int8_t* mk = fp.mask + static_cast<int64_t>(b) * S;
  const int8_t mv = mk[i];
  if (fp.bad[b] || mv == kPadding) {
    const float fill = fp.bad[b] ? __int_as_float(0x7fc00000) : 0.f;
    for (int d = lane; d < D; d += 32) o[d] = fill;
    return;
  }
  const bool glob = mv == kGlobal;
  const float* q = static_cast<const float*>(glob ? fp.gq : fp.q) + head_off + i * fp.ld;
  const float* K = static_cast<const float*>(glob ? fp.gk : fp.k) + head_off;
  const float* V = static_cast<const float*>(glob ? fp.gv : fp.v) + head_off;
  for (int d = lane; d < D; d += 32) s_q[warp][d] = q[d] * fp.scale_log2;
  __syncwarp();
  float m = -INFINITY, l = 0.f, acc[4] = {0.f, 0.f, 0.f, 0.f};
  // One batch of up to 32 candidate keys (lane's key j, valid or not).
  auto batch = [&](int j, bool valid) {
    float s = -INFINITY;
    if (valid) {
      const float4* kr = reinterpret_cast<const float4*>(K + j * fp.ld);
      float dot = 0.f;
      for (int d4 = 0; d4 < D / 4; ++d4) {
        const float4 kv = kr[d4];
        dot += s_q[warp][4 * d4] * kv.x + s_q[warp][4 * d4 + 1] * kv.y + s_q[warp][4 * d4 + 2] * kv.z +
               s_q[warp][4 * d4 + 3] * kv.w;
      }
      s = dot;
    }
    float mx = s;
    for (int off = 16; off; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    const float m_new = fmaxf(m, mx);
    if (m_new == -INFINITY) return;  // nothing valid yet
    const float corr = exp2f(m - m_new);
    const float p = valid ? exp2f(s - m_new) : 0.f;
    float ps = p;
    for (int off = 16; off; off /= 2) ps += __shfl_xor_sync(0xffffffffu, ps, off);
    l = l * corr + ps;
    m = m_new;
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[c] *= corr;
    for (int src = 0; src < 32; ++src) {
      const float pj = __shfl_sync(0xffffffffu, p, src);
      const int jj = __shfl_sync(0xffffffffu, j, src);
      if (pj == 0.f) continue;  // warp-uniform
      const float* vr = V + jj * fp.ld;
#pragma unroll
      for (int c = 0; c < 4; ++c)
        if (lane + 32 * c < D) acc[c] += pj * vr[lane + 32 * c];
    }
  };
  if (glob) {
    for (int j0 = 0; j0 < S; j0 += 32) {
      const int j = j0 + lane;
      batch(j, j < S && mk[j] != kPadding);
    }
  } else {
    const int lo = max(0, i - fp.w), hi = static_cast<int>(min(static_cast<long long>(S - 1), static_cast<long long>(i) + fp.w));
    for (int j0 = lo; j0 <= hi; j0 += 32) {
      const int j = j0 + lane;
      batch(j, j <= hi && mk[j] == kLocal);
    }
    const int G = fp.gcount[b];
    const int32_t* gi = fp.gidx + static_cast<int64_t>(b) * S;
    for (int g0 = 0; g0 < G; g0 += 32) {
      const int gslot = g0 + lane;
      batch(gslot < G ? gi[gslot] : 0, gslot < G);
    }
  }
  const float inv = 1.f / l;
#pragma unroll
  for (int c = 0; c < 4; ++c)
    if (lane + 32 * c < D) o[lane + 32 * c] = acc[c] * inv;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <DType kType>
cudaError_t dispatch_head_dim(const FlashParams& fp, bool pdl, cudaStream_t stream) {
  // Head dims round up to the instance set {32, 64, 128}; the padded columns are zero-filled.
  if (fp.D <= 32) return launch_flash<kType, 32>(fp, pdl, stream);
  if (fp.D <= 64) return launch_flash<kType, 64>(fp, pdl, stream);
  return launch_flash<kType, 128>(fp, pdl, stream);
}

}  // namespace

SplitPlan split_plan(int64_t seq_len) {
  // 512-key splits up to S = 8192, then S / 16: enough global-row CTAs to run beside the band
  // without a partial buffer that grows past splits x B x H x 64 x D floats.
  SplitPlan sp;
  int64_t chunk = (seq_len + kMaxSplits - 1) / kMaxSplits;
  chunk = (chunk + 63) / 64 * 64;
  if (chunk < kMinChunk) chunk = kMinChunk;
  sp.chunk = static_cast<int>(chunk);
  sp.splits = static_cast<int>((seq_len + chunk - 1) / chunk);
  return sp;
}

Workspace carve_workspace(const AttentionProblem& p, DType dtype, void* base) {
  Workspace ws;
  const size_t BS = static_cast<size_t>(p.batch * p.seq_len);
  size_t off = 0;
  auto take = [&](size_t bytes) -> char* {
    char* ptr = base ? static_cast<char*>(base) + off : nullptr;
    off += align_up(bytes);
    return ptr;
  };
  ws.mask = reinterpret_cast<int8_t*>(take(BS));
  ws.gidx = reinterpret_cast<int32_t*>(take(BS * sizeof(int32_t)));
  ws.gcount = reinterpret_cast<int32_t*>(take(static_cast<size_t>(p.batch) * sizeof(int32_t)));
  ws.bad = reinterpret_cast<int32_t*>(take(static_cast<size_t>(p.batch) * sizeof(int32_t)));
  if (dtype != DType::kFloat32) {
    const size_t rows = static_cast<size_t>(p.batch * p.num_heads) * split_plan(p.seq_len).splits * 64;
    ws.part_o = reinterpret_cast<float*>(take(rows * static_cast<size_t>(p.head_dim) * sizeof(float)));
    ws.part_lse = reinterpret_cast<float*>(take(rows * sizeof(float)));
    ws.done = reinterpret_cast<int32_t*>(take(static_cast<size_t>(p.batch * p.num_heads) * sizeof(int32_t)));
  }
  ws.bytes = off;
  return ws;
}

cudaError_t run_parts(const AttentionProblem& p, DType dtype, const void* query, const void* key, const void* value,
                      const void* global_query, const void* global_key, const void* global_value, const void* mask,
                      bool mask_is_int64, void* out, void* workspace, cudaStream_t stream, int parts) {
  if (p.batch == 0 || p.seq_len == 0) return cudaSuccess;
  // Head sizes 8..128 in steps of 8 (16-byte rows for the 16-bit types); anything else is
  // rejected here with cudaErrorInvalidValue, as are S or B·H past 32-bit indices and arrays
  // that are not 16-byte aligned (16-byte vector loads).
  if (!multigrain_attention_head_dim_supported(p.head_dim)) return cudaErrorInvalidValue;
  if (p.seq_len > INT32_MAX || p.batch * p.num_heads > INT32_MAX) return cudaErrorInvalidValue;  // int indices
  for (const void* ptr : {query, key, value, global_query, global_key, global_value, static_cast<const void*>(out)})
    if (!ptr || !aligned16(ptr)) return cudaErrorInvalidValue;
  if (!mask || !workspace) return cudaErrorInvalidValue;

  const Workspace ws = carve_workspace(p, dtype, workspace);
  const int B = static_cast<int>(p.batch), S = static_cast<int>(p.seq_len), H = static_cast<int>(p.num_heads);
  if (mask_is_int64)
    compact_mask<int64_t><<<B, kCompactThreads, 0, stream>>>(static_cast<const int64_t*>(mask), S, H, ws.mask, ws.gidx,
                                                             ws.gcount, ws.bad, ws.done);
  else
    compact_mask<int32_t><<<B, kCompactThreads, 0, stream>>>(static_cast<const int32_t*>(mask), S, H, ws.mask, ws.gidx,
                                                             ws.gcount, ws.bad, ws.done);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;

  FlashParams fp{};
  fp.q = query, fp.k = key, fp.v = value, fp.gq = global_query, fp.gk = global_key, fp.gv = global_value;
  fp.out = out;
  fp.mask = ws.mask, fp.gidx = ws.gidx, fp.gcount = ws.gcount, fp.bad = ws.bad;
  fp.part_o = ws.part_o, fp.part_lse = ws.part_lse, fp.done = ws.done;
  fp.ld = p.hidden();
  fp.B = B, fp.S = S, fp.H = static_cast<int>(p.num_heads), fp.D = static_cast<int>(p.head_dim);
  fp.w = static_cast<int>(p.window < S ? p.window : S);  // w >= S sees every key anyway
  fp.scale_log2 = p.scale * 1.4426950408889634f;

  if (dtype == DType::kFloat32) {
    const int64_t warps = p.batch * p.num_heads * p.seq_len;
    attend_fp32<<<static_cast<unsigned>((warps + kF32Warps - 1) / kF32Warps), kF32Warps * 32, 0, stream>>>(fp);
    return cudaGetLastError();
  }

  const SplitPlan sp = split_plan(p.seq_len);
  fp.chunk = sp.chunk, fp.splits = sp.splits;
  fp.q_tiles = (S + 63) / 64;
  const int BH = B * fp.H;
  fp.global_ctas = (parts & kGlobalRows) ? (sp.splits + kExtraCtas) * BH : 0;
  fp.band_ctas = (parts & kBand) ? fp.q_tiles * BH : 0;
  // Programmatic dependent launch needs sm_90; the attribute query is a host call (no sync).
  int device = 0, major = 0;
  if ((err = cudaGetDevice(&device)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device)) != cudaSuccess) return err;
  return dtype == DType::kFloat16 ? dispatch_head_dim<DType::kFloat16>(fp, major >= 9, stream)
                                  : dispatch_head_dim<DType::kBFloat16>(fp, major >= 9, stream);
}

}  // namespace multigrain

size_t multigrain_attention_workspace_bytes(const AttentionProblem& p, DType dtype) {
  if (p.batch == 0 || p.seq_len == 0) return 0;
  return multigrain::carve_workspace(p, dtype, nullptr).bytes;
}

cudaError_t multigrain_attention(const AttentionProblem& p, DType dtype, const void* query, const void* key,
                                 const void* value, const void* global_query, const void* global_key,
                                 const void* global_value, const void* mask, bool mask_is_int64, void* out,
                                 void* workspace, cudaStream_t stream) {
  return multigrain::run_parts(p, dtype, query, key, value, global_query, global_key, global_value, mask,
                               mask_is_int64, out, workspace, stream, multigrain::kAllParts);
}

}  // namespace ortops::cuda
