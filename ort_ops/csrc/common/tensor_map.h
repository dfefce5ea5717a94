// Host side of TMA: encoding a tiled tensor map (cuTensorMapEncodeTiled, reached through the
// runtime's driver entry point, so the library links no driver library of its own).
#pragma once
#include <cuda.h>

#include <cstdint>

namespace ortops::cuda {

// A row-major tensor of 16-bit elements: dims[0] innermost (elements), strides[d] in bytes for
// d = 1 .. rank - 1, box[d] elements per load; out-of-bounds elements load as zero. swizzle_bytes:
// 0 (none), 32, 64 or 128 (box[0] * 2 must not exceed it). Returns false when the driver has no
// TMA or rejects the description (alignment, strides): the caller then takes another path.
bool encode_tensor_map_16bit(CUtensorMap* map, const void* base, int rank, const uint64_t* dims,
                             const uint64_t* strides, const uint32_t* box, int swizzle_bytes);

}  // namespace ortops::cuda
