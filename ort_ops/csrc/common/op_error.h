// Errors raised by shape/attribute/input checks. The ORT glue turns them into a failed OrtStatus
// (never an exception across the C ABI); the pybind11 module turns them into ValueError.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ortops {

class OpError : public std::runtime_error {
 public:
  explicit OpError(const std::string& what) : std::runtime_error(what) {}
};

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

// Builds a message from any streamable pieces: fail("input 'U' has rank ", r).
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  throw OpError(s.str());
}

}  // namespace ortops
