// Counter arrays that outlive a launch, one per (device, stream), for kernels whose CTAs elect a
// last arriver (e.g. one CTA of a column block adds up the split sums of all the others, in the
// same launch). Zeroed once when created; every kernel that uses them leaves each counter it
// touched back at zero, so the next launch on the stream finds them zeroed without a memset.
// Kernels on one stream run in order (with PDL, a dependent touches them only after
// griddepcontrol.wait), so one array per stream is never used by two launches at once. Keyed by
// the stream handle, like the attention op's side streams: a stream destroyed while one of these
// kernels still runs on it, and a new stream given the same handle at once, would share them.
#pragma once
#include <cuda_runtime_api.h>

namespace ortops::cuda {

inline constexpr int kStreamCounters = 4096;  // 16 KB of uint32 per stream

// The stream's array of kStreamCounters zeroed counters, or nullptr when none can be had now:
// the stream is being captured into a graph and has none yet (no allocation inside a capture),
// the allocation failed, or the table of streams is full. Callers then take a path that needs
// none. Thread-safe; the arrays are kept for the life of the process.
unsigned int* stream_counters(cudaStream_t stream);

// True while `stream` is being captured into a CUDA graph (or when that cannot be asked: a
// query refused during another thread's global-mode capture counts as capturing).
bool stream_is_capturing(cudaStream_t stream);

}  // namespace ortops::cuda
