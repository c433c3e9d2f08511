// DevLinear (linear.cuh), the runner's view of a linear layer, on top of the repacked GpuWeight and the
// GEMV / dequantization kernels.
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/linear.cuh"
#include "formats/qtensor.h"

namespace lowbit::cuda {

namespace {

class GemvLinear final : public DevLinear {
 public:
  GemvLinear(GpuWeight w) : w_(std::move(w)) {}
  int out_features() const override { return int(w_.out_features()); }
  int rows() const override { return int(w_.logical_rows()); }
  int in_features() const override { return int(w_.view.cols); }
  Format format() const override { return w_.fmt; }
  size_t bytes() const override { return w_.bytes; }
  void gemv(const float* x, int M, const float* norm_w, float eps, LinearEpilogue epi, float* y, cudaStream_t s,
            int variant) const override {
    const int v = variant >= 0 ? variant : default_variant_;
    lowbit::cuda::gemv(w_, x, M, epilogue(norm_w, eps, epi, y), s, v >= 0 ? GemvVariant(v) : GemvVariant::Auto);
  }
  bool gemm_parts(cublasHandle_t h, const float* x, int M, const float* norm_w, float eps, LinearEpilogue epi, float* y,
                  void* xs, size_t xs_bytes, float* cs, size_t cs_bytes, cudaStream_t s) const override {
    if (xs_bytes < gemm_parts_scratch_x(w_, M) || cs_bytes < gemm_parts_scratch_c(w_, M)) return false;
    return lowbit::cuda::gemm_parts(h, w_, x, M, epilogue(norm_w, eps, epi, y), xs, cs, s);
  }
  bool read_order(const float* x, const float* norm_w, float eps, LinearEpilogue epi, float* y, uint32_t chunk,
                  std::vector<PrefetchChunk>& out) const override {
    if (default_variant_ >= 0 && GemvVariant(default_variant_) != GemvVariant::Stream) return false;
    if (gemv_auto_variant(w_, 1) != GemvVariant::Stream) return false;
    return gemv_stream_read_order(w_, x, epilogue(norm_w, eps, epi, y), chunk, out);
  }
  int num_variants() const override { return kNumFastGemvVariants; }
  const char* variant_name(int v) const override { return gemv_variant_name(GemvVariant(v)); }
  void set_default_variant(int v) override {
    LB_CHECK(v >= -1 && v < kNumGemvVariants, "set_default_variant: unknown variant ", v);
    default_variant_ = v;
  }
  void dequant_bf16(__nv_bfloat16* out, cudaStream_t s) const override { dequantize_to_bf16(w_, out, s); }

 private:
  static GemvEpilogue epilogue(const float* norm_w, float eps, LinearEpilogue epi, float* y) {
    GemvEpilogue ep;
    ep.kind = epi == LinearEpilogue::Store ? GemvOut::StoreF32
              : epi == LinearEpilogue::AddTo ? GemvOut::AddF32 : GemvOut::SwiGluF32;
    ep.out = y;
    ep.norm_weight = norm_w;
    ep.norm_eps = eps;
    return ep;
  }
  GpuWeight w_;
  int default_variant_ = -1;
};

}  // namespace

std::unique_ptr<DevLinear> DevLinear::create(const std::vector<const QTensor*>& parts, bool swiglu_pair,
                                             cudaStream_t s) {
  LB_CHECK(!parts.empty(), "DevLinear::create: no tensors");
  LB_CHECK(!swiglu_pair || parts.size() == 2, "DevLinear::create: a gate/up pair needs 2 tensors, got ", parts.size());
  std::vector<GpuWeightHost> host;
  host.reserve(parts.size());
  for (const QTensor* t : parts) host.push_back(repack_for_gpu(*t));
  GpuWeightHost joined;
  if (swiglu_pair) {
    joined = concat_glu(host[0], host[1]);
  } else if (host.size() == 1) {
    joined = std::move(host[0]);
  } else {
    std::vector<const GpuWeightHost*> ptrs;
    for (const auto& h : host) ptrs.push_back(&h);
    joined = concat_rows(ptrs);
  }
  return std::make_unique<GemvLinear>(upload(joined, s));
}

}  // namespace lowbit::cuda
