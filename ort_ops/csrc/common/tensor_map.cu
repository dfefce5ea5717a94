#include "common/tensor_map.h"

#include <cuda_runtime_api.h>
#include <cudaTypedefs.h>

#include <atomic>

namespace ortops::cuda {
namespace {

// The driver's encoder, looked up once (the entry point of the CUDA 12.0 ABI, which every driver
// that runs this library has); null when the driver does not provide it.
PFN_cuTensorMapEncodeTiled_v12000 encoder() {
  static std::atomic<void*> fn{nullptr};
  static std::atomic<bool> looked_up{false};
  if (!looked_up.load(std::memory_order_acquire)) {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult status = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
    const cudaError_t err = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &status);
#else
    const cudaError_t err = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault, &status);
#endif
    if (err != cudaSuccess ||
        status != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      p = nullptr;
    }
    fn.store(p, std::memory_order_relaxed);
    looked_up.store(true, std::memory_order_release);
  }
  return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn.load(std::memory_order_relaxed));
}

}  // namespace

bool encode_tensor_map(CUtensorMap* map, MapElem elem, const void* base, int rank, const uint64_t* dims,
                       const uint64_t* strides, const uint32_t* box, int swizzle_bytes) {
  const auto encode = encoder();
  if (encode == nullptr || rank < 1 || rank > 5) return false;
  const CUtensorMapSwizzle swizzle = swizzle_bytes == 128 ? CU_TENSOR_MAP_SWIZZLE_128B
                                     : swizzle_bytes == 64 ? CU_TENSOR_MAP_SWIZZLE_64B
                                     : swizzle_bytes == 32 ? CU_TENSOR_MAP_SWIZZLE_32B
                                                           : CU_TENSOR_MAP_SWIZZLE_NONE;
  cuuint64_t g_dims[5], g_strides[4];
  cuuint32_t g_box[5], unit[5];
  for (int d = 0; d < rank; ++d) {
    g_dims[d] = dims[d];
    g_box[d] = box[d];
    unit[d] = 1;
    if (d > 0) g_strides[d - 1] = strides[d];
  }
  // Beyond its size, the element type only matters for NaN out-of-bounds fill, which is not
  // used: zeros are.
  const CUtensorMapDataType type = elem == MapElem::kInt32   ? CU_TENSOR_MAP_DATA_TYPE_INT32
                                   : elem == MapElem::kInt64 ? CU_TENSOR_MAP_DATA_TYPE_INT64
                                                             : CU_TENSOR_MAP_DATA_TYPE_UINT16;
  return encode(map, type, cuuint32_t(rank), const_cast<void*>(base), g_dims, g_strides,
                g_box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace ortops::cuda
