// Checked CUDA / cuBLAS calls for the weight kernels: every failure becomes a lowbit::Error naming the
// call and file:line (LB_CUDA_CHECK, LB_CUDA_LAUNCH_CHECK come from cuda_util.cuh).
#pragma once
#include <cublas_v2.h>

#include "backend/cuda/cuda_util.cuh"

#define LB_CUBLAS_CHECK(expr)                                                                        \
  do {                                                                                               \
    cublasStatus_t lb_st_ = (expr);                                                                  \
    if (lb_st_ != CUBLAS_STATUS_SUCCESS)                                                             \
      ::lowbit::fail("cuBLAS error ", cublasGetStatusName(lb_st_), " (", cublasGetStatusString(lb_st_), \
                     ") at ", __FILE__, ":", __LINE__, ": ", #expr);                                 \
  } while (0)
