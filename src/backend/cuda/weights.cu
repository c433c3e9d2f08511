// Upload of repacked weights and the bf16 dequantization used by prefill (M > 8: dequantize + cuBLAS).
#include "backend/cuda/weights.cuh"

#include "backend/cuda/launch.cuh"

#include <cstdint>

namespace lowbit::cuda {

GpuWeight upload(const GpuWeightHost& w, cudaStream_t s) {
  GpuWeight g;
  g.name = w.name;
  g.fmt = w.fmt;
  g.view = w.view();
  g.codes.alloc(w.codes.size());
  LB_CUDA_CHECK(cudaMemcpyAsync(g.codes.get(), w.codes.data(), w.codes.size(), cudaMemcpyHostToDevice, s));
  g.view.codes = g.codes.get<uint8_t>();
  g.view.scales = nullptr;
  g.view.row_scale = nullptr;
  if (!w.scales.empty()) {
    g.scales.alloc(w.scales.size());
    LB_CUDA_CHECK(cudaMemcpyAsync(g.scales.get(), w.scales.data(), w.scales.size(), cudaMemcpyHostToDevice, s));
    g.view.scales = g.scales.get<uint8_t>();
  }
  if (!w.row_scale.empty()) {
    g.row_scale.alloc(w.row_scale.size() * 4);
    LB_CUDA_CHECK(
        cudaMemcpyAsync(g.row_scale.get(), w.row_scale.data(), w.row_scale.size() * 4, cudaMemcpyHostToDevice, s));
    g.view.row_scale = g.row_scale.get<float>();
  }
  // the host vectors may be freed as soon as we return
  LB_CUDA_CHECK(cudaStreamSynchronize(s));
  g.bytes = w.bytes();
  return g;
}

namespace {

constexpr int kDequantCols = 8;  // columns per thread

// One thread: 8 consecutive columns of one logical row, each decoded as dequantize_row() decodes it.
__global__ void __launch_bounds__(256) dequantize_bf16_kernel(GpuWeightView v, __nv_bfloat16* out, int64_t rows) {
  pdl_wait();  // out may still be read by the previous kernel (launch.cuh)
  pdl_trigger();
  const int64_t chunks = (v.cols + kDequantCols - 1) / kDequantCols;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * chunks) return;
  const int64_t r = idx / chunks, k0 = (idx % chunks) * kDequantCols;
  const int64_t pr = physical_row(v, r);
  uint16_t* o = reinterpret_cast<uint16_t*>(out) + r * v.cols;
#pragma unroll
  for (int j = 0; j < kDequantCols; ++j) {
    const int64_t k = k0 + j;
    if (k < v.cols) o[k] = f32_to_bf16(gpu_decode_element(v, pr, k));  // the CPU's rounding, NaN included
  }
}

}  // namespace

void dequantize_to_bf16(const GpuWeight& w, __nv_bfloat16* out, cudaStream_t s) {
  const int64_t rows = w.logical_rows();
  const int64_t total = rows * ((w.view.cols + kDequantCols - 1) / kDequantCols);
  if (total == 0) return;
  const int64_t blocks = (total + 255) / 256;
  LB_CHECK(blocks < (int64_t(1) << 31), "dequantize_to_bf16('", w.name, "'): ", rows, " x ", w.view.cols,
           " is too large for one launch");
  launch(dequantize_bf16_kernel, unsigned(blocks), 256, 0, s, w.view, out, rows);
}

}  // namespace lowbit::cuda
