#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace ortops {

ParallelFor serial_for() {
  return [](size_t n, const ParallelBody& body) {
    for (size_t i = 0; i < n; ++i) body(i);
  };
}

ParallelFor thread_for(unsigned threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  return [threads](size_t n, const ParallelBody& body) {
    const size_t workers = std::min<size_t>(threads, n);
    if (workers <= 1) {
      for (size_t i = 0; i < n; ++i) body(i);
      return;
    }
    std::atomic<size_t> next{0};
    auto drain = [&] {
      for (size_t i = next++; i < n; i = next++) body(i);
    };
    std::vector<std::thread> pool;
    for (size_t w = 1; w < workers; ++w) pool.emplace_back(drain);
    drain();
    for (auto& t : pool) t.join();
  };
}

}  // namespace ortops
