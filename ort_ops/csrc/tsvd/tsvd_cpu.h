// CPU kernel of TSVDMatMul (float32): per tile row i, T = A_i · U_ij, then Y_j += T · V_ij, with
// the shared-factor layouts exploiting their sharing (A_i · U computed once per tile row when U is
// shared; sum_i A_i · U_ij formed before the single · V when V is shared).
#pragma once
#include "common/parallel.h"
#include "tsvd/tsvd_problem.h"

namespace ortops::cpu {

// A: [M, K], U/V: factors as in TsvdProblem, bias: [N] or null, Y: [M, N] (fully overwritten).
void tsvd_matmul(const TsvdProblem& p, const float* A, const float* U, const float* V, const float* bias, float* Y,
                 const ParallelFor& parallel_for);

}  // namespace ortops::cpu
