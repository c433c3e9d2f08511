#include "backend/cpu/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "formats/qtensor.h"
#include "util/error.h"

namespace lowbit {

KvCache::KvCache(int n_layers, int max_seq, int kv_dim, std::optional<Format> fmt, int head_dim)
    : max_seq_(max_seq), kv_dim_(kv_dim), head_dim_(head_dim > 0 ? head_dim : kv_dim),
      fmt_(fmt) {
  if (fmt_ && *fmt_ == Format::F32) fmt_.reset();
  LB_CHECK(!fmt_ || !is_static_act(*fmt_), "--kv ", format_name(*fmt_),
           ": static formats need a calibrated range and are for linear-layer inputs; use int8 or fp8-e4m3 "
           "(per-head scales)");
  if (fmt_ && format_info(*fmt_).scheme == ScaleScheme::GroupAffine)
    LB_CHECK(head_dim_ % 32 == 0, "--kv ", format_name(*fmt_), ": group-wise formats quantize each head in groups of "
             "a multiple of 32, but this model's head_dim is ", head_dim_, "; use int8, fp8-e4m3, mxfp4 or nvfp4");
  LB_CHECK(kv_dim % head_dim_ == 0, "KV cache: kv_dim ", kv_dim, " is not a multiple of head_dim ", head_dim_);
  const size_t n = size_t(n_layers) * max_seq * kv_dim;
  k_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
}

void KvCache::store(std::vector<float>& c, int layer, int pos, const float* x) {
  float* dst = c.data() + (size_t(layer) * max_seq_ + pos) * kv_dim_;
  if (!fmt_) {
    std::memcpy(dst, x, size_t(kv_dim_) * 4);
    return;
  }
  // one quantization row per head: per-head scales for int8/fp8, groups/blocks within the head otherwise
  const int heads = kv_dim_ / head_dim_;
  QuantOptions qo;
  qo.group = std::min(head_dim_, 128);
  const QTensor q = quantize(x, heads, head_dim_, *fmt_, qo, "kv_cache");
  dequantize(q, dst);
}

void KvCache::write(int layer, int pos, const float* k, const float* v) {
  store(k_, layer, pos, k);
  store(v_, layer, pos, v);
}

}  // namespace lowbit
