// MultigrainAttention launcher: mask compaction, dispatch by dtype / head dim to the tensor-core
// flash kernel (attention_cuda_flash.cuh, instances in attention_cuda_hdim*.cu), the combine of
// the split global rows, and a simple CUDA-core float32 kernel. Design: docs/attention_cuda.md.
//
// Stream order on `stream` (no host sync, no allocation, graph-capturable):
//   1. compact_mask   a few CTAs per batch row: int8 mask, compacted global positions, count,
//                     bad flag
//   2. flash_kernel   one launch: global-row CTAs (split over keys; the last split of a head merges
//                     them by log-sum-exp) + band CTAs, side by side; on sm_90 a programmatic
//                     dependent of 1: band CTAs run their band before waiting for 1 (they need it
//                     only for the gathered global keys and the invalid-row flag)
// Schedule::kTwoStream instead launches the global-row CTAs on a side stream (fork after 1, join
// back before returning) and the band CTAs on `stream`; see side_stream_for(). There, on Hopper
// (sm_90a build, head dims 40..64), the band runs in its own kernel (attention_cuda_band_sm90.cu),
// and that schedule is then the default.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "common/cuda_ptx.cuh"
#include "multigrain/attention_cuda.h"
#include "multigrain/attention_cuda_impl.h"
#include "multigrain/attention_cuda_traits.h"

namespace ortops::cuda {
namespace multigrain {

namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Mask value as the kernels read it: 0, 1, 2, or 3 for anything else (invalid).
template <typename MaskT>
__device__ __forceinline__ int mask_code(MaskT v) {
  return v >= 0 && v <= 2 ? static_cast<int>(v) : 3;
}

// Globals (and invalid values) among m[0, end), this thread's share: coalesced 16-byte loads
// when the row is 16-byte aligned (8 in flight per thread), else one entry per load.
template <typename MaskT>
__device__ __forceinline__ void count_prefix(const MaskT* __restrict__ m, int end, int& count, bool& any_bad) {
  constexpr int kPer = 16 / sizeof(MaskT);  // entries per 16-byte load
  constexpr int kUnroll = 8;
  const int tid = threadIdx.x;
  int j0 = 0;
  if ((reinterpret_cast<uintptr_t>(m) & 15u) == 0) {
    const int4* vec = reinterpret_cast<const int4*>(m);
    const int nvec = end / kPer;
    for (int i0 = 0; i0 < nvec; i0 += kCompactThreads * kUnroll) {
      int4 x[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = i0 + u * kCompactThreads + tid;
        x[u] = i < nvec ? __ldg(vec + i) : make_int4(0, 0, 0, 0);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        MaskT e[kPer];
        memcpy(e, &x[u], 16);
#pragma unroll
        for (int k = 0; k < kPer; ++k) {
          const int c = mask_code(e[k]);
          count += c == kGlobal;
          any_bad |= c == 3;
        }
      }
    }
    j0 = nvec * kPer;
  }
  for (int j = j0 + tid; j < end; j += kCompactThreads) {
    const int c = mask_code(m[j]);
    count += c == kGlobal;
    any_bad |= c == 3;
  }
}

// Grid: `chunks` CTAs per batch row, CTA c compacting entries [c * chunk, (c + 1) * chunk).
// It counts the globals before its chunk itself (a re-read of at most S - chunk entries, from
// L2), so CTAs never wait for each other. Per pass: the mask is loaded coalesced, written as
// int8 and staged in smem; each thread then takes kCompactItems consecutive entries from smem,
// and a block-wide exclusive scan of the per-thread global counts places the positions in order.
// The last chunk's CTA has seen the whole row: it writes the count and the invalid-value flag.
template <typename MaskT>
__global__ void __launch_bounds__(kCompactThreads)
    compact_mask(const MaskT* __restrict__ mask, int S, int H, int chunk, int chunks, int8_t* __restrict__ mask8,
                 int32_t* __restrict__ gidx, int32_t* __restrict__ gcount, int32_t* __restrict__ bad,
                 int32_t* __restrict__ done) {
  ptx::griddep_launch_dependents();  // the flash kernel may start
  constexpr int kWarpsC = kCompactThreads / 32;
  __shared__ int warp_totals[kWarpsC];
  __shared__ int pass_total, s_before;
  __shared__ __align__(16) int8_t s_code[kCompactChunk];
  const int b = blockIdx.x / chunks, c = blockIdx.x % chunks;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const MaskT* m = mask + static_cast<int64_t>(b) * S;
  int8_t* m8 = mask8 + static_cast<int64_t>(b) * S;
  int32_t* gi = gidx + static_cast<int64_t>(b) * S;
  const int begin = c * chunk, end = min(S, begin + chunk);
  if (tid == 0) s_before = 0;
  int before = 0;
  bool any_bad = false;
  count_prefix(m, begin, before, any_bad);
  __syncthreads();
  before = __reduce_add_sync(0xffffffffu, before);
  if (lane == 0 && before) atomicAdd(&s_before, before);
  __syncthreads();
  int base = s_before;
  for (int start = begin; start < end; start += kCompactChunk) {
    MaskT v[kCompactItems];
#pragma unroll
    for (int k = 0; k < kCompactItems; ++k) {  // every load issued before any store
      const int j = start + k * kCompactThreads + tid;
      v[k] = j < end ? m[j] : MaskT(0);
    }
#pragma unroll
    for (int k = 0; k < kCompactItems; ++k) {
      const int j = start + k * kCompactThreads + tid;
      const int code = mask_code(v[k]);
      any_bad |= code == 3;
      if (j < end) m8[j] = static_cast<int8_t>(code);
      s_code[k * kCompactThreads + tid] = static_cast<int8_t>(code);
    }
    __syncthreads();
    const int first = start + tid * kCompactItems;
    int8_t mine[kCompactItems];
    memcpy(mine, s_code + tid * kCompactItems, kCompactItems);
    uint32_t flags = 0;
    int count = 0;
#pragma unroll
    for (int k = 0; k < kCompactItems; ++k)
      if (first + k < end && mine[k] == kGlobal) {
        flags |= 1u << k;
        ++count;
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
      const int x = lane < kWarpsC ? warp_totals[lane] : 0;
      int xi = x;
#pragma unroll
      for (int o = 1; o < 32; o *= 2) {
        const int y = __shfl_up_sync(0xffffffffu, xi, o);
        if (lane >= o) xi += y;
      }
      if (lane < kWarpsC) warp_totals[lane] = xi - x;  // exclusive over warps
      if (lane == kWarpsC - 1) pass_total = xi;
    }
    __syncthreads();
    int pos = base + warp_totals[warp] + incl - count;
#pragma unroll
    for (int k = 0; k < kCompactItems; ++k)
      if (flags & (1u << k)) gi[pos++] = first + k;
    base += pass_total;
    __syncthreads();  // warp_totals, pass_total and s_code are reused by the next pass
  }
  any_bad = __syncthreads_or(any_bad);
  if (c == chunks - 1 && tid == 0) {
    gcount[b] = base;
    bad[b] = any_bad ? 1 : 0;
  }
  if (c == 0 && done)
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

cudaError_t dispatch(DType dtype, const FlashParams& fp, bool pdl, cudaStream_t stream) {
  return dtype == DType::kFloat16 ? dispatch_head_dim<DType::kFloat16>(fp, pdl, stream)
                                  : dispatch_head_dim<DType::kBFloat16>(fp, pdl, stream);
}

// Whether the Hopper kernel runs (band_sm90_runs and the options), and its ring depth option.
struct BandKernel {
  bool sm90 = false;
  int ring_slots = 0;  // RunOptions::ring_slots
};

// The CTAs of `fp` (band, global rows or both) in one grid on `stream`: the Hopper kernel where it
// runs, else (or when the driver rejects its tensor maps) the fused kernel.
cudaError_t launch_grid(DType dtype, const FlashParams& fp, BandKernel bk, bool pdl, cudaStream_t stream) {
  if (bk.sm90) {
    const cudaError_t err = dtype == DType::kFloat16 ? launch_band_sm90<DType::kFloat16>(fp, bk.ring_slots, pdl, stream)
                                                     : launch_band_sm90<DType::kBFloat16>(fp, bk.ring_slots, pdl, stream);
    if (err != cudaErrorNotSupported) return err;
  }
  return dispatch(dtype, fp, pdl, stream);
}

// The Hopper band kernel needs its sm_90a machine code in this build (CMake defines
// ORTOPS_CUDA_SM90A when the architecture list has 90a), a compute capability 9.0 device, a head
// dim served by the 64 instance, and mask coordinates (b * S + key) within int32 for its TMA.
bool band_sm90_runs(int cc_major, int cc_minor, const FlashParams& fp) {
#if defined(ORTOPS_CUDA_SM90A)
  return cc_major == 9 && cc_minor == 0 && fp.D > 32 && fp.D <= 64 &&
         static_cast<int64_t>(fp.B) * fp.S <= INT32_MAX;
#else
  (void)cc_major, (void)cc_minor, (void)fp;
  return false;
#endif
}

// Side stream of the two-stream schedule, one per (device, caller stream), created on first use
// and kept for the process (never destroyed: destruction at exit could run after the CUDA
// context is gone). Its mutex makes the fork / launch / join sequence atomic against other host
// threads enqueueing on the same caller stream, so the events are never re-recorded between a
// record and its wait. One side stream per caller stream (not one shared) keeps a capture on one
// stream from pulling another stream's work into its graph: a side stream is only ever joined to
// its own caller stream. The side stream has the highest priority, so its CTAs are dispatched
// before the band CTAs queued at the same time (as the one-grid order does).
struct SideStream {
  std::mutex mu;
  cudaStream_t stream = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;
};

constexpr size_t kMaxSideStreams = 256;  // past this, new caller streams get the one-grid schedule

// nullptr with cudaSuccess: no side stream for this caller stream (the table is full).
cudaError_t side_stream_for(cudaStream_t caller, SideStream** out) {
  static std::mutex table_mu;
  static std::map<std::pair<int, cudaStream_t>, std::unique_ptr<SideStream>> table;
  *out = nullptr;
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  std::lock_guard<std::mutex> lock(table_mu);
  auto it = table.find({device, caller});
  if (it != table.end()) {
    *out = it->second.get();
    return cudaSuccess;
  }
  if (table.size() >= kMaxSideStreams) return cudaSuccess;
  auto side = std::make_unique<SideStream>();
  int least = 0, greatest = 0;
  if ((err = cudaDeviceGetStreamPriorityRange(&least, &greatest)) != cudaSuccess) return err;
  if ((err = cudaStreamCreateWithPriority(&side->stream, cudaStreamNonBlocking, greatest)) != cudaSuccess) return err;
  if ((err = cudaEventCreateWithFlags(&side->fork, cudaEventDisableTiming)) != cudaSuccess ||
      (err = cudaEventCreateWithFlags(&side->join, cudaEventDisableTiming)) != cudaSuccess) {
    if (side->fork) cudaEventDestroy(side->fork);
    cudaStreamDestroy(side->stream);
    return err;
  }
  *out = side.get();
  table.emplace(std::make_pair(device, caller), std::move(side));
  return cudaSuccess;
}

// Band CTAs on `stream`, global-row CTAs on the side stream: fork after the compaction (already
// on `stream`), join back before returning.
cudaError_t launch_two_stream(DType dtype, FlashParams fp, BandKernel bk, bool pdl, cudaStream_t stream,
                              SideStream* side) {
  FlashParams band = fp, glob = fp;
  band.global_ctas = 0;
  glob.band_ctas = 0;
  std::lock_guard<std::mutex> lock(side->mu);
  cudaError_t err;
  if ((err = cudaEventRecord(side->fork, stream)) != cudaSuccess) return err;
  if ((err = cudaStreamWaitEvent(side->stream, side->fork, 0)) != cudaSuccess) return err;
  const cudaError_t err_glob = dispatch(dtype, glob, false, side->stream);
  // Join even when the launch failed, so that a capture on `stream` stays well-formed.
  if ((err = cudaEventRecord(side->join, side->stream)) != cudaSuccess) return err;
  const cudaError_t err_band = launch_grid(dtype, band, bk, pdl, stream);
  if ((err = cudaStreamWaitEvent(stream, side->join, 0)) != cudaSuccess) return err;
  return err_glob != cudaSuccess ? err_glob : err_band;
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
                      bool mask_is_int64, void* out, void* workspace, cudaStream_t stream, const RunOptions& opt) {
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
  // Compaction chunks: kCompactChunk entries, more when S needs more than kCompactMaxChunks.
  int64_t chunk = (p.seq_len + kCompactMaxChunks - 1) / kCompactMaxChunks;
  chunk = (chunk + kCompactChunk - 1) / kCompactChunk * kCompactChunk;
  if (chunk < kCompactChunk) chunk = kCompactChunk;
  const int chunks = static_cast<int>((p.seq_len + chunk - 1) / chunk);
  const int64_t compact_ctas = p.batch * chunks;
  if (compact_ctas > INT32_MAX) return cudaErrorInvalidValue;
  const unsigned grid_c = static_cast<unsigned>(compact_ctas);
  if (mask_is_int64)
    compact_mask<int64_t><<<grid_c, kCompactThreads, 0, stream>>>(static_cast<const int64_t*>(mask), S, H,
                                                                  static_cast<int>(chunk), chunks, ws.mask, ws.gidx,
                                                                  ws.gcount, ws.bad, ws.done);
  else
    compact_mask<int32_t><<<grid_c, kCompactThreads, 0, stream>>>(static_cast<const int32_t*>(mask), S, H,
                                                                  static_cast<int>(chunk), chunks, ws.mask, ws.gidx,
                                                                  ws.gcount, ws.bad, ws.done);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;

  FlashParams fp{};
  fp.q = query, fp.k = key, fp.v = value, fp.gq = global_query, fp.gk = global_key, fp.gv = global_value;
  fp.out = out;
  fp.mask = ws.mask, fp.gidx = ws.gidx, fp.gcount = ws.gcount, fp.bad = ws.bad;
  fp.mask_in = mask, fp.mask64 = mask_is_int64 ? 1 : 0;
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
  fp.global_ctas = (opt.parts & kGlobalRows) ? (sp.splits + kExtraCtas) * BH : 0;
  fp.band_ctas = (opt.parts & kBand) ? fp.q_tiles * BH : 0;
  fp.band_wgmma = opt.band_wgmma ? 1 : 0;  // takes effect only in the sm_90a build, head dim 64
  // Programmatic dependent launch needs sm_90; the attribute queries are host calls (no sync).
  int device = 0, major = 0, minor = 0;
  BandKernel bk;
  if ((err = cudaGetDevice(&device)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device)) != cudaSuccess) return err;
  const bool pdl = major >= 9;
  bk.sm90 = opt.band_kernel && opt.band_wgmma && band_sm90_runs(major, minor, fp);
  bk.ring_slots = opt.ring_slots;
  Schedule schedule = opt.schedule;
  if (schedule == Schedule::kDefault) schedule = bk.sm90 ? Schedule::kOneGrid : default_schedule(p.batch, p.seq_len);
  if (fp.global_ctas == 0) return launch_grid(dtype, fp, bk, pdl, stream);
  if (schedule == Schedule::kTwoStream && fp.band_ctas > 0) {
    SideStream* side = nullptr;
    if ((err = side_stream_for(stream, &side)) != cudaSuccess) return err;
    if (side) return launch_two_stream(dtype, fp, bk, pdl && opt.band_pdl, stream, side);
  }
  return launch_grid(dtype, fp, bk, pdl, stream);  // one grid: both kinds
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
                               mask_is_int64, out, workspace, stream, multigrain::RunOptions{});
}

}  // namespace ortops::cuda
