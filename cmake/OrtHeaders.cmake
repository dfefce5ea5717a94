# Finds the ONNX Runtime C/C++ API headers. The op library never links libonnxruntime: ORT hands
# its API table to RegisterCustomOps at load time, so only headers are needed.
# Order: ONNXRUNTIME_ROOT (CMake or environment variable), find_package(onnxruntime), then a
# cached copy of Debian's libonnxruntime-dev headers fetched by fetch_ort_headers.sh.
# Sets ORTOPS_ORT_INCLUDE_DIR, ORTOPS_ORT_API_VERSION and ORTOPS_ORT_HEADERS_FROM.

function(_ortops_include_dir_under root out)
  foreach(candidate "${root}/include/onnxruntime" "${root}/include" "${root}/include/onnxruntime/core/session" "${root}")
    if(EXISTS "${candidate}/onnxruntime_c_api.h")
      set(${out} "${candidate}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out} "" PARENT_SCOPE)
endfunction()

set(ORTOPS_ORT_INCLUDE_DIR "")
if(NOT ONNXRUNTIME_ROOT AND DEFINED ENV{ONNXRUNTIME_ROOT})
  set(ONNXRUNTIME_ROOT "$ENV{ONNXRUNTIME_ROOT}")
endif()

if(ONNXRUNTIME_ROOT)
  _ortops_include_dir_under("${ONNXRUNTIME_ROOT}" ORTOPS_ORT_INCLUDE_DIR)
  if(NOT ORTOPS_ORT_INCLUDE_DIR)
    message(FATAL_ERROR "ONNXRUNTIME_ROOT=${ONNXRUNTIME_ROOT} holds no onnxruntime_c_api.h "
                        "(looked in include/onnxruntime, include and the root itself)")
  endif()
  set(ORTOPS_ORT_HEADERS_FROM "ONNXRUNTIME_ROOT")
endif()

if(NOT ORTOPS_ORT_INCLUDE_DIR)
  find_package(onnxruntime CONFIG QUIET)
  if(onnxruntime_FOUND AND TARGET onnxruntime::onnxruntime)
    get_target_property(_ort_incs onnxruntime::onnxruntime INTERFACE_INCLUDE_DIRECTORIES)
    foreach(_inc IN LISTS _ort_incs)
      foreach(candidate "${_inc}" "${_inc}/onnxruntime")
        if(NOT ORTOPS_ORT_INCLUDE_DIR AND EXISTS "${candidate}/onnxruntime_c_api.h")
          set(ORTOPS_ORT_INCLUDE_DIR "${candidate}")
        endif()
      endforeach()
    endforeach()
    if(ORTOPS_ORT_INCLUDE_DIR)
      set(ORTOPS_ORT_HEADERS_FROM "find_package(onnxruntime)")
    endif()
  endif()
endif()

if(NOT ORTOPS_ORT_INCLUDE_DIR)
  if(DEFINED ENV{ORTOPS_HEADER_CACHE})
    set(_cache "$ENV{ORTOPS_HEADER_CACHE}")
  elseif(DEFINED ENV{XDG_CACHE_HOME})
    set(_cache "$ENV{XDG_CACHE_HOME}/ort-ops/onnxruntime-headers")
  else()
    set(_cache "$ENV{HOME}/.cache/ort-ops/onnxruntime-headers")
  endif()
  if(NOT EXISTS "${_cache}/include/onnxruntime/onnxruntime_c_api.h")
    message(STATUS "ort-ops: no ONNX Runtime headers found; fetching Debian's libonnxruntime-dev into ${_cache}")
    execute_process(COMMAND bash "${CMAKE_CURRENT_LIST_DIR}/fetch_ort_headers.sh" "${_cache}"
                    RESULT_VARIABLE _fetch_rc)
    if(NOT _fetch_rc EQUAL 0)
      message(FATAL_ERROR "ort-ops: could not find ONNX Runtime headers. Set ONNXRUNTIME_ROOT to an ONNX "
                          "Runtime release (with include/), or make find_package(onnxruntime) work.")
    endif()
  endif()
  set(ORTOPS_ORT_INCLUDE_DIR "${_cache}/include/onnxruntime")
  set(ORTOPS_ORT_HEADERS_FROM "debian-libonnxruntime-dev-cache")
endif()

file(STRINGS "${ORTOPS_ORT_INCLUDE_DIR}/onnxruntime_c_api.h" _api_line REGEX "^#define ORT_API_VERSION [0-9]+")
string(REGEX REPLACE "^#define ORT_API_VERSION ([0-9]+).*" "\\1" ORTOPS_ORT_API_VERSION "${_api_line}")
if(ORTOPS_ORT_API_VERSION LESS 17)
  message(FATAL_ERROR "ort-ops needs ONNX Runtime headers with ORT_API_VERSION >= 17 (ORT 1.17); "
                      "${ORTOPS_ORT_INCLUDE_DIR} has ${ORTOPS_ORT_API_VERSION}")
endif()
message(STATUS "ort-ops: ONNX Runtime headers ${ORTOPS_ORT_INCLUDE_DIR} (API ${ORTOPS_ORT_API_VERSION}, from ${ORTOPS_ORT_HEADERS_FROM})")
