// OrtOpsBuildInfo(): a JSON string saying what was built (ORT API version of the headers, CUDA on
// or off, architectures). ort_ops.build_info() reads it through ctypes, from the library itself.
#include "build_info.h"

extern "C" __attribute__((visibility("default"))) const char* OrtOpsBuildInfo() { return ORTOPS_BUILD_INFO_JSON; }
