// Standalone check of the warpgroup-MMA vocabulary (common/cuda_wgmma.cuh) on one 64x64x64 tile,
// against a double-precision host reference: S = Q·Kᵀ (B K-major, as the attention band reads K)
// and O = Q·V (B MN-major, as it reads V for P·V), fp16, K and V in the 128-byte swizzled layout.
// Each descriptor variant (leading / stride byte offsets) is run and its max error printed, so a
// layout mistake shows which field is wrong. Build: nvcc -gencode arch=compute_90a,code=sm_90a
// -I ort_ops/csrc tests/gpu/wgmma_probe.cu -o wgmma_probe. Exit status 0 only if the descriptors
// that cuda_wgmma.cuh builds give correct products.
#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common/cuda_ptx.cuh"
#include "common/cuda_wgmma.cuh"

using namespace ortops::cuda;

#define CHECK(x)                                                                    \
  do {                                                                              \
    cudaError_t e_ = (x);                                                           \
    if (e_ != cudaSuccess) {                                                        \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(2);                                                                 \
    }                                                                               \
  } while (0)

__device__ uint64_t make_desc(uint32_t addr, int lbo, int sbo) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(lbo >> 4) << 16) |
         (static_cast<uint64_t>(sbo >> 4) << 32) | (static_cast<uint64_t>(1) << 62);
}

// mode 0: S = Q Kᵀ (Q from registers); mode 1: O = Q V (Q from registers); mode 2: S = Q Kᵀ with
// both operands from shared memory; modes 3 / 4: O = Q V[:, :N] with both from shared memory and
// V MN-major, N = 16 / 32 (TSVD's stage 1 reads its rank-wide U this way: the first N columns of a
// 64-wide swizzle atom). lbo/sbo < 0: the library's sw128_desc.
__global__ void probe(const __half* q, const __half* kv, float* out, int mode, int lbo, int sbo) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t a = ptx::smem_u32(smem_raw);
  __half* sB = reinterpret_cast<__half*>(smem_raw + (((a + 1023u) & ~1023u) - a));
  __half* sQsw = sB + 64 * 64;  // Q, swizzled like B
  __half* sQ = sQsw + 64 * 64;  // Q, padded rows of 72
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  for (int i = tid; i < 64 * 8; i += 128) {
    const int r = i / 8, c = i % 8;
    *reinterpret_cast<uint4*>(sB + wgmma::sw128_offset(r, c)) = *reinterpret_cast<const uint4*>(kv + r * 64 + c * 8);
    *reinterpret_cast<uint4*>(sQ + r * 72 + c * 8) = *reinterpret_cast<const uint4*>(q + r * 64 + c * 8);
    *reinterpret_cast<uint4*>(sQsw + wgmma::sw128_offset(r, c)) = *reinterpret_cast<const uint4*>(q + r * 64 + c * 8);
  }
  wgmma::fence_proxy_async();
  __syncthreads();
  uint32_t qf[4][4];
  for (int ks = 0; ks < 4; ++ks) {
    const int r = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = ks * 16 + (lane >> 4) * 8;
    ptx::ldsm_x4(qf[ks], sQ + r * 72 + c);
  }
  float d[32];
  const uint32_t b_addr = ptx::smem_u32(sB);
  wgmma::fence();
  for (int ks = 0; ks < 4; ++ks) {
    if (mode >= 3) {
      const uint64_t da = wgmma::sw128_desc(ptx::smem_u32(sQsw) + ks * 32);
      const uint64_t desc = lbo < 0 ? wgmma::sw128_desc(b_addr + ks * 2048) : make_desc(b_addr + ks * 2048, lbo, sbo);
      if (mode == 3)
        wgmma::mma_m64nNk16_ss<__half, 16, 1>(*reinterpret_cast<float(*)[8]>(d), da, desc, ks > 0);
      else
        wgmma::mma_m64nNk16_ss<__half, 32, 1>(*reinterpret_cast<float(*)[16]>(d), da, desc, ks > 0);
    } else if (mode == 2) {
      const uint64_t desc = lbo < 0 ? wgmma::sw128_desc(b_addr + ks * 32) : make_desc(b_addr + ks * 32, lbo, sbo);
      wgmma::mma_m64nNk16_ss<__half, 64, 0>(d, wgmma::sw128_desc(ptx::smem_u32(sQsw) + ks * 32), desc, ks > 0);
    } else if (mode == 0) {
      const uint64_t desc = lbo < 0 ? wgmma::sw128_desc(b_addr + ks * 32) : make_desc(b_addr + ks * 32, lbo, sbo);
      wgmma::mma_m64n64k16_rs<__half, 0>(d, qf[ks], desc, ks > 0);
    } else {
      const uint64_t desc = lbo < 0 ? wgmma::sw128_desc(b_addr + ks * 2048) : make_desc(b_addr + ks * 2048, lbo, sbo);
      wgmma::mma_m64n64k16_rs<__half, 1>(d, qf[ks], desc, ks > 0);
    }
  }
  wgmma::commit();
  wgmma::wait<0>();
  wgmma::fence_operands(d);
  const int n8_tiles = mode == 3 ? 2 : mode == 4 ? 4 : 8;
  for (int j = 0; j < n8_tiles; ++j)
    for (int e = 0; e < 4; ++e) {
      const int row = warp * 16 + g + (e >> 1) * 8, col = j * 8 + 2 * t4 + (e & 1);
      out[row * 64 + col] = d[4 * j + e];
    }
}

// Usage: wgmma_probe [mode lbo sbo] (one variant; a bad descriptor can fault and end the process).
int main(int argc, char** argv) {
  std::vector<__half> hq(64 * 64), hkv(64 * 64);
  std::vector<float> fq(64 * 64), fkv(64 * 64);
  srand(7);
  for (int i = 0; i < 64 * 64; ++i) {
    fq[i] = __half2float(hq[i] = __float2half(rand() / float(RAND_MAX) - 0.5f));
    fkv[i] = __half2float(hkv[i] = __float2half(rand() / float(RAND_MAX) - 0.5f));
  }
  __half *dq, *dkv;
  float* dout;
  CHECK(cudaMalloc(&dq, 8192));
  CHECK(cudaMalloc(&dkv, 8192));
  CHECK(cudaMalloc(&dout, 64 * 64 * 4));
  CHECK(cudaMemcpy(dq, hq.data(), 8192, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dkv, hkv.data(), 8192, cudaMemcpyHostToDevice));
  const int smem = 1024 + 2 * 8192 + 64 * 72 * 2;
  CHECK(cudaFuncSetAttribute(probe, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  struct Variant { int lbo, sbo; };
  const Variant variants[] = {{-1, -1}, {16, 1024}, {1024, 16}, {1024, 1024}, {8192, 1024}, {1024, 8192}, {128, 1024}};
  bool library_ok = true;
  const bool one = argc == 4;
  for (int mode = 0; mode < 5; ++mode)
    for (Variant v : variants) {
      if (!one && v.lbo >= 0) continue;  // other descriptors only one at a time: they may fault
      if (one) {
        if (mode != std::atoi(argv[1])) continue;
        v = {std::atoi(argv[2]), std::atoi(argv[3])};
      }
      CHECK(cudaMemset(dout, 0xFF, 64 * 64 * 4));  // NaN poison
      const int ncols = mode == 3 ? 16 : mode == 4 ? 32 : 64;
      probe<<<1, 128, smem, stream>>>(dq, dkv, dout, mode, v.lbo, v.sbo);
      CHECK(cudaGetLastError());
      CHECK(cudaStreamSynchronize(stream));
      std::vector<float> out(64 * 64);
      CHECK(cudaMemcpy(out.data(), dout, 64 * 64 * 4, cudaMemcpyDeviceToHost));
      double worst = 0;
      for (int i = 0; i < 64; ++i)
        for (int j = 0; j < ncols; ++j) {
          const bool mn_major = mode == 1 || mode >= 3;
          double ref = 0;
          for (int k = 0; k < 64; ++k) ref += double(fq[i * 64 + k]) * (mn_major ? fkv[k * 64 + j] : fkv[j * 64 + k]);
          const double e = std::fabs(out[i * 64 + j] - ref);
          worst = std::isnan(e) ? INFINITY : std::fmax(worst, e);
        }
      const char* what[] = {"S=Q.K^T (A regs, B K-major)", "O=Q.V (A regs, B MN-major)", "S=Q.K^T (A, B smem)",
                            "O=Q.V[:, :16] (A, B smem, B MN-major)", "O=Q.V[:, :32] (A, B smem, B MN-major)"};
      std::printf("%s lbo=%d sbo=%d: max abs err %.3g\n", what[mode], v.lbo,
                  v.sbo, worst);
      if (v.lbo < 0 && !(worst < 1e-3)) library_ok = false;
      if (one) return worst < 1e-3 ? 0 : 1;
    }
  std::printf("library descriptors: %s\n", library_ok ? "OK" : "WRONG");
  return library_ok ? 0 : 1;
}
