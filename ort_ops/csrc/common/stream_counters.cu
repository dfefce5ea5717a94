#include "common/stream_counters.h"

#include <map>
#include <mutex>
#include <utility>

namespace ortops::cuda {

namespace {
// Past this many (device, stream) pairs new streams get nullptr (the callers' other path): bounds
// the memory (16 KB each) for processes that keep creating streams.
constexpr size_t kMaxStreams = 1024;

// cudaMalloc and the first memset in relaxed capture mode: another thread's capture in global
// mode would otherwise be invalidated by this thread's cudaMalloc.
unsigned int* create_counters(cudaStream_t stream) {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  if (cudaThreadExchangeStreamCaptureMode(&mode) != cudaSuccess) return nullptr;
  void* p = nullptr;
  const size_t bytes = sizeof(unsigned int) * kStreamCounters;
  cudaError_t err = cudaMalloc(&p, bytes);
  // Stream-ordered zeroing: ordered before every later launch on `stream`, whatever its flags.
  if (err == cudaSuccess) err = cudaMemsetAsync(p, 0, bytes, stream);
  if (err != cudaSuccess && p != nullptr) {
    cudaFree(p);
    p = nullptr;
  }
  cudaThreadExchangeStreamCaptureMode(&mode);
  if (err != cudaSuccess) cudaGetLastError();  // leave no error pending for the caller's launch checks
  return static_cast<unsigned int*>(p);
}
}  // namespace

bool stream_is_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) {
    cudaGetLastError();
    return true;
  }
  return capture != cudaStreamCaptureStatusNone;
}

unsigned int* stream_counters(cudaStream_t stream) {
  static std::mutex mu;
  static std::map<std::pair<int, cudaStream_t>, unsigned int*> table;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return nullptr;
  std::lock_guard<std::mutex> lock(mu);
  auto it = table.find({device, stream});
  if (it != table.end()) return it->second;
  if (stream_is_capturing(stream) || table.size() >= kMaxStreams) return nullptr;
  unsigned int* counters = create_counters(stream);
  if (counters != nullptr) table.emplace(std::make_pair(device, stream), counters);
  return counters;
}

}  // namespace ortops::cuda
