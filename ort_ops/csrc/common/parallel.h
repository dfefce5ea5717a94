// A parallel-for that kernels receive from their host: ORT's intra-op thread pool inside a session,
// a small std::thread pool in the pybind11 module. Kernels cut their work into `n` independent
// items; body(i) must be safe to run concurrently for different i.
#pragma once
#include <cstddef>
#include <functional>

namespace ortops {

using ParallelBody = std::function<void(size_t item)>;
using ParallelFor = std::function<void(size_t n, const ParallelBody& body)>;

// Runs the items one after another (tests, tiny problems).
ParallelFor serial_for();
// Runs the items on up to `threads` std::threads (0: hardware concurrency).
ParallelFor thread_for(unsigned threads = 0);

}  // namespace ortops
