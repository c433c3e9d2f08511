// A repacked weight on the GPU (weights_layout.h describes the layout) and its upload.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "backend/cuda/cuda_util.cuh"
#include "backend/cuda/weights_layout.h"

namespace lowbit::cuda {

struct GpuWeight {
  std::string name;
  Format fmt = Format::F32;
  GpuWeightView view;     // device pointers into the buffers below
  DeviceBuffer codes;     // packet stream / padded rows
  DeviceBuffer scales;    // scale stream (Affine / Mx / Nv)
  DeviceBuffer row_scale; // [rows_pad] fp32
  size_t bytes = 0;       // bytes one GEMV reads (codes + scales + per-row values)

  int64_t logical_rows() const { return view.glu ? 2 * view.ff : view.rows; }
  // Rows of the GEMV output: N, or ff for a gate/up pair with the SwiGLU epilogue.
  int64_t out_features() const { return view.glu ? view.ff : view.rows; }
};

// Copies a repacked weight to the device (synchronous with respect to the host buffers).
GpuWeight upload(const GpuWeightHost& w, cudaStream_t s);

// out[logical_rows, K] (row-major, bf16) = the dequantized weight; bit-exact with round_bf16() of the
// CPU's dequantize_row() (a gate/up pair: gate rows then up rows).
void dequantize_to_bf16(const GpuWeight& w, __nv_bfloat16* out, cudaStream_t s);

}  // namespace lowbit::cuda
