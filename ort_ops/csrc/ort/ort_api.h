// The one place that includes ONNX Runtime's C++ API. The library never links libonnxruntime:
// RegisterCustomOps receives the API table (ORT_API_MANUAL_INIT) and stores it for the wrappers.
#pragma once
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT
