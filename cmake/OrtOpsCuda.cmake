# Optional CUDA: on when ORTOPS_USE_CUDA is ON and a CUDA compiler is found. Architectures are
# pinned (never "native": build machines have no GPU). Sets ORTOPS_WITH_CUDA.
include(CheckLanguage)
set(ORTOPS_WITH_CUDA OFF)
if(ORTOPS_USE_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    # sm_80 machine code, sm_90a (Hopper, with wgmma/TMA; runs on sm_90 cards only) and
    # compute_90 PTX for newer cards. Hopper-only code is guarded by __CUDA_ARCH_FEAT_SM90_ALL
    # and falls back to sm_80-style paths in the PTX build.
    set(CMAKE_CUDA_ARCHITECTURES "80-real;90a-real;90-virtual")
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(ORTOPS_WITH_CUDA ON)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    message(STATUS "ort-ops: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
  else()
    message(STATUS "ort-ops: no CUDA compiler found; building the CPU kernels only")
  endif()
else()
  message(STATUS "ort-ops: CUDA switched off (ORTOPS_USE_CUDA=OFF)")
endif()
