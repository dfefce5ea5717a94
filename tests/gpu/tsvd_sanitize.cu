// Standalone check of the TSVDMatMul launcher for compute-sanitizer (no PyTorch: fast under the
// tool). Small cases over every path (fp32, small/medium/large M, split sums, 16-byte and element
// loads, shared factors, the Hopper and decode kernels); outputs poisoned with NaN; compared with a float64 host reference.
// Exit 0 only if every case is within tolerance. Built by build_shims.sh.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "tsvd/tsvd_cuda.h"
#include "tsvd/tsvd_cuda_internal.h"

using ortops::DType;

#define CK(x)                                                                              \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      return false;                                                                        \
    }                                                                                      \
  } while (0)

struct Case { int64_t M, K, N, tk, tn, r; bool su, sv, bias; DType dt; int path = 0; int64_t cap = -1; int cfg = -1; };

static float round_to(float x, DType dt) {
  if (dt == DType::kFloat16) return __half2float(__float2half(x));
  if (dt == DType::kBFloat16) return __bfloat162float(__float2bfloat16(x));
  return x;
}
static std::vector<unsigned char> pack(const std::vector<float>& v, DType dt) {
  const size_t es = dt == DType::kFloat32 ? 4 : 2;
  std::vector<unsigned char> out(v.size() * es);
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::kFloat32) std::memcpy(&out[i * 4], &v[i], 4);
    else if (dt == DType::kFloat16) { __half h = __float2half(v[i]); std::memcpy(&out[i * 2], &h, 2); }
    else { __nv_bfloat16 h = __float2bfloat16(v[i]); std::memcpy(&out[i * 2], &h, 2); }
  }
  return out;
}
static float unpack(const unsigned char* p, DType dt) {
  if (dt == DType::kFloat32) { float f; std::memcpy(&f, p, 4); return f; }
  if (dt == DType::kFloat16) { __half h; std::memcpy(&h, p, 2); return __half2float(h); }
  __nv_bfloat16 h; std::memcpy(&h, p, 2); return __bfloat162float(h);
}

static bool run_case(const Case& c, std::mt19937& gen) {
  ortops::TsvdProblem p;
  p.M = c.M, p.K = c.K, p.N = c.N, p.tk = c.tk, p.tn = c.tn, p.rank = c.r;
  p.Tk = (c.K + c.tk - 1) / c.tk, p.Tn = (c.N + c.tn - 1) / c.tn;
  p.shared_u = c.su, p.shared_v = c.sv, p.has_bias = c.bias;
  const int64_t nu = (c.su ? 1 : p.Tk * p.Tn) * c.tk * c.r, nv = (c.sv ? 1 : p.Tk * p.Tn) * c.r * c.tn;
  std::normal_distribution<float> nd;
  auto fill = [&](int64_t n, float s) { std::vector<float> v(n); for (auto& x : v) x = round_to(s * nd(gen), c.dt); return v; };
  auto A = fill(c.M * c.K, 1.f), U = fill(nu, 1.f / std::sqrt(float(c.tk))), V = fill(nv, 1.f / std::sqrt(float(c.r)));
  auto B = fill(c.N, 1.f);
  // float64 reference
  std::vector<double> ref(c.M * c.N, 0.0);
  for (int64_t i = 0; i < p.Tk; ++i)
    for (int64_t j = 0; j < p.Tn; ++j) {
      const float* u = U.data() + (c.su ? 0 : (i * p.Tn + j) * c.tk * c.r);
      const float* v = V.data() + (c.sv ? 0 : (i * p.Tn + j) * c.r * c.tn);
      for (int64_t m = 0; m < c.M; ++m) {
        std::vector<double> t(c.r, 0.0);
        for (int64_t k = 0; k < c.tk && i * c.tk + k < c.K; ++k)
          for (int64_t q = 0; q < c.r; ++q) t[q] += double(A[m * c.K + i * c.tk + k]) * u[k * c.r + q];
        for (int64_t n = 0; n < c.tn && j * c.tn + n < c.N; ++n) {
          double s = 0;
          for (int64_t q = 0; q < c.r; ++q) s += t[q] * v[q * c.tn + n];
          ref[m * c.N + j * c.tn + n] += s;
        }
      }
    }
  if (c.bias) for (int64_t m = 0; m < c.M; ++m) for (int64_t n = 0; n < c.N; ++n) ref[m * c.N + n] += B[n];

  const size_t es = c.dt == DType::kFloat32 ? 4 : 2;
  auto hA = pack(A, c.dt), hU = pack(U, c.dt), hV = pack(V, c.dt), hB = pack(B, c.dt);
  void *dA, *dU, *dV, *dB, *dY, *ws = nullptr;
  CK(cudaMalloc(&dA, hA.size())); CK(cudaMalloc(&dU, hU.size())); CK(cudaMalloc(&dV, hV.size()));
  CK(cudaMalloc(&dB, hB.size())); CK(cudaMalloc(&dY, c.M * c.N * es));
  CK(cudaMemcpy(dA, hA.data(), hA.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dU, hU.data(), hU.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dV, hV.data(), hV.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dB, hB.data(), hB.size(), cudaMemcpyHostToDevice));
  CK(cudaMemset(dY, 0xff, c.M * c.N * es));  // NaN in every dtype
  ortops::cuda::tsvd::TsvdOptions opt;
  opt.path = c.path, opt.t_cap_bytes = c.cap, opt.gemm_cfg = c.cfg;
  const size_t wsb = ortops::cuda::tsvd_matmul_workspace_bytes_ex(p, c.dt, opt);
  if (wsb) CK(cudaMalloc(&ws, wsb));
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  CK(ortops::cuda::tsvd_matmul_ex(p, c.dt, dA, dU, dV, c.bias ? dB : nullptr, dY, ws, st, opt));
  CK(cudaStreamSynchronize(st));
  std::vector<unsigned char> hY(c.M * c.N * es);
  CK(cudaMemcpy(hY.data(), dY, hY.size(), cudaMemcpyDeviceToHost));
  double num = 0, den = 0;
  int64_t bad = -1;
  for (int64_t e = 0; e < c.M * c.N; ++e) {
    const double y = unpack(&hY[e * es], c.dt);
    if (!std::isfinite(y) && bad < 0) bad = e;
    num += (y - ref[e]) * (y - ref[e]);
    den += ref[e] * ref[e];
  }
  const double rel = std::sqrt(num / std::max(den, 1e-30));
  const double tol = c.dt == DType::kFloat32 ? 1e-5 : c.dt == DType::kFloat16 ? 3e-3 : 2e-2;
  const bool ok = bad < 0 && rel <= tol;
  std::printf("%s path %d M=%lld K=%lld N=%lld tile %lldx%lld r=%lld su=%d sv=%d bias=%d ws=%zu: rel err %.2e%s\n",
              ortops::dtype_name(c.dt), c.path, (long long)c.M, (long long)c.K, (long long)c.N, (long long)c.tk,
              (long long)c.tn, (long long)c.r, c.su, c.sv, c.bias, wsb, rel,
              ok ? "" : (bad >= 0 ? "  FAIL (non-finite output)" : "  FAIL"));
  cudaFree(dA); cudaFree(dU); cudaFree(dV); cudaFree(dB); cudaFree(dY);
  if (ws) cudaFree(ws);
  cudaStreamDestroy(st);
  return ok;
}

int main() {
  std::mt19937 gen(std::random_device{}());
  const Case cases[] = {
      {3, 100, 70, 32, 24, 5, false, false, true, DType::kFloat16},      // element loads, partial tiles, split
      {5, 256, 256, 64, 64, 16, false, false, false, DType::kBFloat16},  // 16-byte loads, split
      {16, 200, 136, 64, 64, 24, true, false, true, DType::kFloat16},    // shared U
      {40, 192, 160, 64, 80, 72, false, true, true, DType::kBFloat16},   // shared V, two rank chunks
      {300, 160, 144, 64, 64, 32, true, true, false, DType::kFloat16, 1},  // fused large config, both shared
      {33, 99, 50, 40, 20, 7, false, false, true, DType::kFloat32},      // fp32 path
      // two-stage path (forced): element loads + odd rank + partial tiles; 16-byte loads with
      // row chunks (cap 1 byte: 128 rows a chunk, the last partial); shared U; shared V; both.
      {130, 100, 70, 32, 24, 5, false, false, true, DType::kFloat16, 2, -1, 0},
      {300, 256, 200, 64, 64, 16, false, false, true, DType::kBFloat16, 2, 1, 0},
      {140, 200, 136, 64, 64, 24, true, false, true, DType::kFloat16, 2, -1, 0},
      {150, 192, 160, 64, 80, 72, false, true, true, DType::kBFloat16, 2, -1, 0},
      {129, 160, 144, 64, 64, 32, true, true, false, DType::kFloat16, 2, -1, 0},
      {200, 200, 136, 64, 72, 24, false, false, true, DType::kBFloat16, 2, 1, 1},  // k 64 ring, row chunks
      {140, 99, 50, 40, 20, 7, false, true, true, DType::kFloat16, 2, -1, 1},      // k 64 ring, element loads
      {140, 99, 50, 40, 20, 7, false, false, true, DType::kFloat16, 2, -1, 0},     // k 32 ring, element loads
      // fused Hopper kernel (forced; the fused kernel where it cannot run): a short last k chunk,
      // partial tiles, a CTA with one tile past N, rank padding, shared U, tile 256
      {130, 200, 300, 96, 128, 24, false, false, true, DType::kFloat16, 3},
      {70, 264, 300, 128, 256, 40, true, false, true, DType::kBFloat16, 3},
      // decode kernel (forced; the fused kernel where it cannot run): a partial last tile row
      // (U rows past K zeroed in shared memory), partial tile columns, rank padding, a cluster of
      // several CTAs; tile 256 x 192 with shared U and 16 rows.
      {3, 712, 200, 128, 128, 24, false, false, true, DType::kFloat16, 4},
      {16, 600, 400, 256, 192, 40, true, false, true, DType::kBFloat16, 4},
      // two-stage Hopper GEMMs (forced; the fused kernel where they cannot run): a partial last
      // tile row whose chunks cross rows (tk 96), partial tile columns, rank padding, row chunks
      // (cap 1 byte: 128 rows a chunk, the last partial), tile 256.
      {300, 600, 300, 96, 128, 24, false, false, true, DType::kFloat16, 5, 1},
      {130, 264, 520, 128, 256, 40, false, false, true, DType::kBFloat16, 5},
  };
  int fails = 0;
  for (const auto& c : cases) fails += !run_case(c, gen);
  std::printf("%s: %d of %zu cases failed\n", fails ? "FAIL" : "OK", fails, sizeof(cases) / sizeof(cases[0]));
  return fails ? 1 : 0;
}
