// Private: the decode kernel of TSVDMatMul (M <= 16, sm_90), 16-bit types, included once per dtype
// (tsvd_cuda_fp16.cu, tsvd_cuda_bf16.cu) after tsvd_cuda_tc.cuh.
//
// At M <= 16 the product is a stream of factor bytes: each tile (i, j) brings U_ij [tk][r] and
// V_ij [r][tn] (contiguous in the factor tensors) and does 2·16·r·(tk + tn) FLOPs with them. The
// mma.sync kernel moved them with per-thread cp.async copies and paid ~440 instructions per warp
// per step in address work, a CTA-wide barrier per step, and a second kernel for the split sums
// (docs/tsvd_cuda.md, Nsight Compute). Here:
// - one producer thread issues TMA box loads into a ring of slots, each tracked by a full and an
//   empty mbarrier, so no thread computes a copy address and no barrier spans the CTA:
//     A_i   tk/64 boxes of [M rows][64], 128-byte swizzle; rows M..15 zeroed once, columns past K
//           zero-filled by the hardware;
//     U_ij  one box of its tk·r elements as [tk·r/64][64] (128-byte lines: a box row is one TMA
//           request, and the swizzle keeps ldmatrix conflict-free for r = 8, 16, 32, 64);
//     V_ij  tn/64 boxes of [kR rows][64], 128-byte swizzle, rows r..kR-1 zero-filled (rank padding);
// - each consumer warp takes whole tiles (t = warp, warp + consumers, ...): Z = A_i·U_ij and
//   Y_j += Z·V_ij with mma.sync, Z rounded in registers (the fragments of tsvd_cuda_tc.cuh);
// - the CTAs of a cluster (grid.x) take every splits-th tile row of one tile column (grid.y); each
//   adds its warps' Y_j in shared memory, then each sums a slice of the columns over the cluster
//   through distributed shared memory, adds the bias and rounds once: one launch, no workspace.
// Slot layout (byte offsets, each part 1024-aligned): A at 0 (box b at b·2048), U at a_bytes, V at
// a_bytes + u_bytes (box h at h·kR·128).
#pragma once
#include "common/cuda_tma.cuh"
#include "tsvd/tsvd_cuda_tc.cuh"

namespace ortops::cuda::tsvd {

template <typename T, class C>
__global__ void __launch_bounds__(C::kThreads, C::kMinCtasPerSm) tsvd_decode_kernel(const __grid_constant__ CUtensorMap mapA,
                                                                  const __grid_constant__ CUtensorMap mapU,
                                                                  const __grid_constant__ CUtensorMap mapV,
                                                                  const DecodeArgs a) {
  if constexpr (!tma::kHasTma) {
    __trap();  // the host (decode_kernel_loads) launches this only where the sm_90 code loaded
  } else {
    using Op = Mma<T>;
    constexpr int kR = C::kR, kW = C::kConsumerWarps, kNT8 = C::kTN / 8;
    __shared__ __align__(8) uint64_t full_bar[C::kMaxStages], empty_bar[C::kMaxStages];
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t raw = ptx::smem_u32(smem_raw);
    const uint32_t ring = (raw + 1023u) & ~1023u;  // swizzled boxes need 1024-byte alignment
    const uint32_t full0 = ptx::smem_u32(full_bar), empty0 = ptx::smem_u32(empty_bar);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int q = blockIdx.x, S = a.splits, j = blockIdx.y;  // cluster rank q (the cluster spans grid.x)
    const int n_t = (a.used_rows - q + S - 1) / S;            // tile rows i = q + S·t, t < n_t (S <= used_rows)

    if (threadIdx.x == 0) {
      for (int s = 0; s < a.stages; ++s) {
        tma::mbar_init(full0 + 8 * s, 1);    // the producer's arrive.expect_tx
        tma::mbar_init(empty0 + 8 * s, 32);  // every lane of the slot's consumer warp
      }
      tma::fence_mbar_init();
    }
    // A's rows M..15 are never loaded: zero them in every slot once (whole 128-byte rows).
    for (int e = threadIdx.x; e < a.stages * (a.a_bytes / 2048) * (16 - a.M) * 8; e += C::kThreads) {
      const int chunk = e % 8, row = a.M + (e / 8) % (16 - a.M), box = e / 8 / (16 - a.M);
      const uint32_t p = ring + (box / (a.a_bytes / 2048)) * a.slot_bytes + (box % (a.a_bytes / 2048)) * 2048 +
                         row * 128 + chunk * 16;
      asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(p), "r"(0) : "memory");
    }
    __syncthreads();
    // A may come from the previous kernel, which may also still read Y's memory. The producer
    // waits later when the factors are constant: the first ring's U and V loads go out before,
    // overlapping the previous kernel's tail.
    if (warp != kW || !a.factors_early) griddep_wait();

    float acc[1][kNT8][4];  // this warp's Y_j (16 x kTN), fp32
    zero_acc(acc);
    if (warp == kW) {
      // Producer: one thread walks this CTA's tiles in order, a slot each, ring of a.stages.
      if (lane == 0 && (a.stage_mask & 1)) {
        tma::prefetch_map(&mapA), tma::prefetch_map(&mapU), tma::prefetch_map(&mapV);
        const int u_lines = a.tk * a.r / 64;
        auto load_factors = [&](int t, uint32_t slot, uint32_t full) {
          const int tile = (q + S * t) * a.Tn + j;
          tma::load_2d(slot + a.a_bytes, &mapU, 0, (a.shared_u ? 0 : tile) * u_lines, full);
          for (int h = 0; h < a.tn / 64; ++h)
            tma::load_3d(slot + a.a_bytes + a.u_bytes + h * kR * 128, &mapV, h * 64, 0, tile, full);
        };
        const int early = a.factors_early ? min(n_t, a.stages) : 0;  // tiles whose factors go out first
        for (int t = 0; t < early; ++t) {
          tma::mbar_arrive_expect_tx(full0 + 8 * t, a.tx_bytes);
          load_factors(t, ring + t * a.slot_bytes, full0 + 8 * t);
        }
        if (a.factors_early) griddep_wait();
        for (int t = 0; t < n_t; ++t) {
          const int s = t % a.stages, round = t / a.stages;
          const uint32_t full = full0 + 8 * s, slot = ring + s * a.slot_bytes;
          if (t >= early) {
            if (round > 0) tma::mbar_wait(empty0 + 8 * s, (round - 1) & 1);
            tma::mbar_arrive_expect_tx(full, a.tx_bytes);
            load_factors(t, slot, full);
          }
          for (int b = 0; b < a.tk / 64; ++b)
            tma::load_2d(slot + b * 2048, &mapA, (q + S * t) * a.tk + b * 64, 0, full);
        }
      }
    } else if (warp < a.consumers) {
      // ldmatrix.x4 lanes: row lrow of a 16 x 16 block, 16-byte column half lhalf.
      const int lrow = (lane & 7) + ((lane >> 3) & 1) * 8, lhalf = lane >> 4;
      const int k_last = a.K - (a.used_rows - 1) * a.tk;  // rows of the last tile row inside K
      const int r_tiles = a.r / 8;                         // n8 tiles of Z that hold rank columns
      for (int t = warp; t < n_t; t += a.consumers) {
        const int s = t % a.stages, round = t / a.stages;
        const uint32_t sA = ring + s * a.slot_bytes, sU = sA + a.a_bytes, sV = sU + a.u_bytes;
        if (a.stage_mask & 1) tma::mbar_wait(full0 + 8 * s, round & 1);
        const bool partial = q + S * t == a.used_rows - 1 && k_last < a.tk;
        if (partial) {
          // The contract ignores U's rows past K, so they may hold anything, and A's zeros there
          // would turn an Inf into NaN: zero them (16-byte chunks through the swizzle).
          for (int ch = k_last * a.r / 8 + lane; ch < a.tk * a.r / 8; ch += 32)
            asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(sU + tma::swizzle<128>(ch * 16)),
                         "r"(0)
                         : "memory");
          __syncwarp();
        }
        // Stage 1: Z (16 x kR) = A_i · U_ij over the k16 steps inside K, even and odd steps in two
        // accumulators (two independent mma chains; one warp per scheduler has nothing else to
        // hide their latency: run 7 timed the products alone at 1.5-2x the loads alone). The step
        // count is rounded up to even: the extra step reads A's zero columns and U's zeroed rows.
        // No branches inside (they kept ptxas from hoisting the ldmatrix of the next step): rank
        // columns past r (r % 16 == 8, or r < kR - 8) read the next U rows into Z's padding
        // columns, which stage 2 drops.
        float z[2][kR / 8][4];
        zero_acc(z);
        const int ksteps = (a.stage_mask & 2) ? ((partial ? k_last : a.tk) + 31) / 32 * 2 : 0;
        auto k_step = [&](float(&zk)[kR / 8][4], int ks) {
          uint32_t af[4];
          const int chunk = ks * 2 + lhalf;  // 16-byte chunk of A's k: box chunk / 8, column chunk % 8
          ldsm_x4(af, sA + (chunk >> 3) * 2048 + lrow * 128 + (((chunk & 7) ^ (lrow & 7)) << 4));
          const int u_row = (ks * 16 + lrow) * a.r;  // element offset of U's row k
#pragma unroll
          for (int np = 0; np < kR / 16; ++np) {
            uint32_t bf[4];
            ldsm_x4_t(bf, sU + tma::swizzle<128>((u_row + np * 16 + lhalf * 8) * 2));
            Op::run(zk[2 * np], af, bf[0], bf[1]);
            Op::run(zk[2 * np + 1], af, bf[2], bf[3]);
          }
        };
#pragma unroll 2
        for (int ks = 0; ks < ksteps; ks += 2) {
          k_step(z[0], ks);
          k_step(z[1], ks + 1);
        }
        // Stage 2: Y_j += Z (rounded to T, the A operand straight from registers) · V_ij. Column
        // tiles past tn (tn < kTN) read V's last box and fill accumulators that are never stored.
#pragma unroll
        for (int qk = 0; qk < kR / 16; ++qk) {
          if (2 * qk >= r_tiles || !(a.stage_mask & 2)) break;
          const bool hi = 2 * qk + 1 < r_tiles;  // the second n8 tile of Z holds rank columns
          const uint32_t zf[4] = {Op::pack(z[0][2 * qk][0] + z[1][2 * qk][0], z[0][2 * qk][1] + z[1][2 * qk][1]),
                                  Op::pack(z[0][2 * qk][2] + z[1][2 * qk][2], z[0][2 * qk][3] + z[1][2 * qk][3]),
                                  hi ? Op::pack(z[0][2 * qk + 1][0] + z[1][2 * qk + 1][0],
                                                z[0][2 * qk + 1][1] + z[1][2 * qk + 1][1])
                                     : 0u,
                                  hi ? Op::pack(z[0][2 * qk + 1][2] + z[1][2 * qk + 1][2],
                                                z[0][2 * qk + 1][3] + z[1][2 * qk + 1][3])
                                     : 0u};
          const int row = qk * 16 + lrow;
#pragma unroll
          for (int np = 0; np < kNT8 / 2; ++np) {
            const int col = min(np * 16, a.tn - 16) + lhalf * 8;
            uint32_t bf[4];
            ldsm_x4_t(bf, sV + (col >> 6) * (kR * 128) + row * 128 + ((((col >> 3) & 7) ^ (row & 7)) << 4));
            Op::run(acc[0][2 * np], zf, bf[0], bf[1]);
            Op::run(acc[0][2 * np + 1], zf, bf[2], bf[3]);
          }
        }
        if (partial) tma::fence_proxy_async_smem();  // the zeroed rows before the slot's next TMA write
        __syncwarp();
        if (a.stage_mask & 1) tma::mbar_arrive(empty0 + 8 * s);
      }
    }
    griddep_launch_dependents();

    // Every tile is consumed (each TMA was waited for by its warp): the ring becomes the
    // reduction buffer, [warp][16 rows][kRedPitch] fp32. The warps' Y_j are added into warp 0's.
    __syncthreads();
    float* red = reinterpret_cast<float*>(smem_raw + (ring - raw));
    if (warp < a.consumers) {
      const int g = lane >> 2, t2 = (lane & 3) * 2;
      float* w_red = red + warp * 16 * C::kRedPitch;
#pragma unroll
      for (int n8 = 0; n8 < kNT8; ++n8) {
        *reinterpret_cast<float2*>(w_red + g * C::kRedPitch + n8 * 8 + t2) = make_float2(acc[0][n8][0], acc[0][n8][1]);
        *reinterpret_cast<float2*>(w_red + (g + 8) * C::kRedPitch + n8 * 8 + t2) =
            make_float2(acc[0][n8][2], acc[0][n8][3]);
      }
    }
    __syncthreads();
    const int groups = a.tn / 4;  // float4 column groups per row
    for (int item = threadIdx.x; item < a.M * groups; item += C::kThreads) {
      float4* dst = reinterpret_cast<float4*>(red + (item / groups) * C::kRedPitch) + item % groups;
      float4 sum = *dst;
      for (int w = 1; w < a.consumers; ++w) {
        const float4 v = *reinterpret_cast<const float4*>(reinterpret_cast<const float*>(dst) + w * 16 * C::kRedPitch);
        sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
      }
      *dst = sum;
    }
    tma::cluster_sync();

    // CTA q sums its slice of Y_j's column groups over the cluster's CTAs, in rank order
    // (deterministic), adds the bias and rounds once.
    const int g0 = q * groups / S, per_row = (q + 1) * groups / S - g0;
    uint32_t peer[C::kMaxSplits];
#pragma unroll
    for (int c = 0; c < C::kMaxSplits; ++c) peer[c] = c < S ? tma::map_to_rank(ring, uint32_t(c)) : 0u;
    const T* bias = static_cast<const T*>(a.bias);
    T* Y = static_cast<T*>(a.Y);
    for (int item = threadIdx.x; item < a.M * per_row; item += C::kThreads) {
      const int m = item / per_row, col = (g0 + item - m * per_row) * 4;
      const uint32_t off = uint32_t((m * C::kRedPitch + col) * 4);
      float4 v[C::kMaxSplits];
#pragma unroll
      for (int c = 0; c < C::kMaxSplits; ++c)  // all loads in flight before the adds
        if (c < S) v[c] = tma::ld_cluster_f4(peer[c] + off);
      float y[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int c = 0; c < C::kMaxSplits; ++c)
        if (c < S) y[0] += v[c].x, y[1] += v[c].y, y[2] += v[c].z, y[3] += v[c].w;
      const int64_t n = int64_t(j) * a.tn + col;
      T* out = Y + int64_t(m) * a.N + n;
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (n + e < a.N) out[e] = Op::from_float(y[e] + (bias ? Op::to_float(bias[n + e]) : 0.f));
    }
    tma::cluster_sync();  // the peers read this CTA's buffer: keep it alive until they are done
  }
}

template <typename T, class C>
cudaError_t launch_decode_cfg(const DecodePlan& plan, const DecodeArgs& a, const CUtensorMap& mapA,
                              const CUtensorMap& mapU, const CUtensorMap& mapV, int used_cols, bool pdl,
                              cudaStream_t stream) {
  constexpr auto kKernel = tsvd_decode_kernel<T, C>;
  cudaError_t err = ptx::allow_dynamic_smem<kKernel>(plan.smem);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return err;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(plan.splits), unsigned(used_cols), 1);
  cfg.blockDim = dim3(C::kThreads);
  cfg.dynamicSmemBytes = plan.smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = unsigned(plan.splits);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[1].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 2 : 1;
  err = cudaLaunchKernelEx(&cfg, kKernel, mapA, mapU, mapV, a);
  if (err != cudaSuccess) {
    cudaGetLastError();  // returned here, not left pending for a later call to find
    return err;
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_decode(const DecodePlan& plan, const DecodeArgs& a, const CUtensorMap& mapA,
                          const CUtensorMap& mapU, const CUtensorMap& mapV, int used_cols, bool pdl,
                          cudaStream_t stream) {
  const bool wide = a.tn > 128;
#define ORTOPS_DECODE_CASE(TN, R) return launch_decode_cfg<T, DecodeCfg<TN, R>>(plan, a, mapA, mapU, mapV, used_cols, pdl, stream)
  switch (plan.kr) {
    case 16: if (wide) ORTOPS_DECODE_CASE(256, 16); ORTOPS_DECODE_CASE(128, 16);
    case 32: if (wide) ORTOPS_DECODE_CASE(256, 32); ORTOPS_DECODE_CASE(128, 32);
    case 64: if (wide) ORTOPS_DECODE_CASE(256, 64); ORTOPS_DECODE_CASE(128, 64);
    default: return cudaErrorInvalidValue;
  }
#undef ORTOPS_DECODE_CASE
}

}  // namespace ortops::cuda::tsvd
