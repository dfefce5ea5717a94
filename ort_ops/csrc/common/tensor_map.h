// Host side of TMA: encoding a tiled tensor map (cuTensorMapEncodeTiled, reached through the
// runtime's driver entry point, so the library links no driver library of its own).
#pragma once
#include <cuda.h>

#include <cstdint>

namespace ortops::cuda {

// Element types a map can describe (the size is what matters: out-of-bounds elements load as
// zero, never as NaN).
enum class MapElem { k16bit, kInt32, kInt64 };

// A row-major tensor: dims[0] innermost (elements), strides[d] in bytes for d = 1 .. rank - 1
// (multiples of 16), box[d] elements per load; out-of-bounds elements load as zero.
// swizzle_bytes: 0 (none), 32, 64 or 128 (box[0] * element size must not exceed it). Returns
// false when the driver has no TMA or rejects the description (alignment, strides): the caller
// then takes another path.
bool encode_tensor_map(CUtensorMap* map, MapElem elem, const void* base, int rank, const uint64_t* dims,
                       const uint64_t* strides, const uint32_t* box, int swizzle_bytes);
inline bool encode_tensor_map_16bit(CUtensorMap* map, const void* base, int rank, const uint64_t* dims,
                                    const uint64_t* strides, const uint32_t* box, int swizzle_bytes) {
  return encode_tensor_map(map, MapElem::k16bit, base, rank, dims, strides, box, swizzle_bytes);
}

}  // namespace ortops::cuda
