// GEMV kernel benchmark: every weight format x the Llama-3.1-8B shapes, batch 1 (and 8), every kernel
// variant, against the device read bandwidth measured in the same run.
//
//   lowbit_gemv_bench [--json PATH] [--formats a,b,...] [--shapes qkv,o,gate_up,down,lm_head] [--reps N]
//                     [--variants a,b,...] [--timeline]
//
// Timing: CUDA events around a CUDA graph of launches that rotate over enough copies of the weight
// (>= 2 GiB in all) that L2 (60 MB on an H200) cannot serve them; median of --reps replays. Random
// packed codes (random_codes.h): decode speed does not depend on the values, and they are never zero.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/cuda/check.cuh"
#include "backend/cuda_api.h"
#include "backend/cuda/gemv.cuh"
#include "formats/random_codes.h"
#include "util/error.h"
#include "util/strings.h"
#include "util/rng.h"

using namespace lowbit;
using namespace lowbit::cuda;

namespace {

struct Shape {
  const char* name;
  int64_t n, k;
  bool glu;  // gate/up pair: n rows of each half (the fused SwiGLU epilogue)
};
const Shape kShapes[] = {{"qkv", 6144, 4096, false},
                         {"o", 4096, 4096, false},
                         {"gate_up", 14336, 4096, true},
                         {"down", 4096, 14336, false},
                         {"lm_head", 128256, 4096, false}};

constexpr size_t kRotateBytes = size_t(2) << 30;  // >= 2 GiB of weight copies per measurement

// Another device copy of an uploaded weight (device-to-device: the rotation copies cost ~1 ms per 2 GiB).
GpuWeight clone(const GpuWeight& w, cudaStream_t s) {
  GpuWeight c;
  c.name = w.name;
  c.fmt = w.fmt;
  c.view = w.view;
  c.bytes = w.bytes;
  auto copy = [&](const DeviceBuffer& from, DeviceBuffer& to) -> void* {
    if (!from.size()) return nullptr;
    to.alloc(from.size());
    LB_CUDA_CHECK(cudaMemcpyAsync(to.get(), from.get(), from.size(), cudaMemcpyDeviceToDevice, s));
    return to.get();
  };
  c.view.codes = static_cast<const uint8_t*>(copy(w.codes, c.codes));
  c.view.scales = static_cast<const uint8_t*>(copy(w.scales, c.scales));
  c.view.row_scale = static_cast<const float*>(copy(w.row_scale, c.row_scale));
  return c;
}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median time (ms) of one replay of `graph`, over `reps` replays after one warm-up replay.
float time_graph(cudaGraphExec_t graph, cudaStream_t s, int reps) {
  cudaEvent_t a, b;
  LB_CUDA_CHECK(cudaEventCreate(&a));
  LB_CUDA_CHECK(cudaEventCreate(&b));
  LB_CUDA_CHECK(cudaGraphLaunch(graph, s));
  std::vector<float> ms;
  for (int r = 0; r < reps; ++r) {
    LB_CUDA_CHECK(cudaEventRecord(a, s));
    LB_CUDA_CHECK(cudaGraphLaunch(graph, s));
    LB_CUDA_CHECK(cudaEventRecord(b, s));
    LB_CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    LB_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(ms);
}

// Two back-to-back launches of the stream variant (M = 1) with %globaltimer stamps per block
// (gemv_set_timeline): where the time of one launch goes, and the gap between launches.
void print_timeline(const std::vector<GpuWeight>& ws, const float* x, const GemvEpilogue& ep, cudaStream_t s,
                    const std::string& what) {
  constexpr int kMaxBlocks = 8192;
  constexpr int S = kTimelineStamps;
  DeviceBuffer buf(size_t(2) * kMaxBlocks * S * 8);
  LB_CUDA_CHECK(cudaMemset(buf.get(), 0, size_t(2) * kMaxBlocks * S * 8));
  auto* stamps = buf.get<unsigned long long>();
  const size_t c = ws.size() / 2;
  gemv_set_timeline(stamps);
  gemv(ws[c], x, 1, ep, s, GemvVariant::Stream);
  gemv_set_timeline(stamps + kMaxBlocks * S);
  gemv(ws[c + 1], x, 1, ep, s, GemvVariant::Stream);
  gemv_set_timeline(nullptr);
  LB_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<unsigned long long> h(size_t(2) * kMaxBlocks * S);
  LB_CUDA_CHECK(cudaMemcpy(h.data(), stamps, h.size() * 8, cudaMemcpyDeviceToHost));
  auto pct = [](std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[size_t(q * double(v.size() - 1))];
  };
  unsigned long long end0 = 0;
  for (int b = 0; b < kMaxBlocks; ++b) end0 = std::max(end0, h[size_t(b) * S + 3]);
  std::vector<double> wait, stage, loop, arrive, reduce;
  unsigned long long first = ~0ull, last = 0;
  int blocks = 0;
  for (int b = 0; b < kMaxBlocks; ++b) {
    const unsigned long long* t = &h[size_t(kMaxBlocks + b) * S];
    if (t[0] == 0) continue;
    ++blocks;
    first = std::min(first, t[0]);
    last = std::max(last, t[3]);
    wait.push_back((double(t[1]) - double(t[0])) * 1e-3);
    stage.push_back((double(t[2]) - double(t[1])) * 1e-3);
    loop.push_back((double(t[3]) - double(t[2])) * 1e-3);
    if (t[4] != 0 && t[5] != 0) {  // the one-pass staging: x's arrival and the block reduction
      arrive.push_back((double(t[4]) - double(t[1])) * 1e-3);
      reduce.push_back((double(t[5]) - double(t[4])) * 1e-3);
    }
  }
  if (blocks == 0) {
    std::printf("timeline %s: the stream kernel did not run\n", what.c_str());
    return;
  }
  std::printf("timeline %s: %d blocks; us median/max: wait %.2f/%.2f, stage x %.2f/%.2f (x arrived %.2f, reduced "
              "+%.2f), loop %.2f/%.2f; span %.2f; entry after the previous launch's end %.2f\n",
              what.c_str(), blocks, pct(wait, 0.5), pct(wait, 1.0), pct(stage, 0.5), pct(stage, 1.0), pct(arrive, 0.5),
              pct(reduce, 0.5), pct(loop, 0.5), pct(loop, 1.0), (double(last) - double(first)) * 1e-3,
              (double(first) - double(end0)) * 1e-3);
}

struct Result {
  std::string format, shape;
  int64_t n = 0, k = 0;
  size_t bytes = 0;
  std::vector<float> us;  // per fast variant, M = 1
  int best = 0;
  float us_m8 = 0;
};

int run(int argc, char** argv) {
  std::string json_path, shapes_arg;
  std::vector<Format> formats;
  int reps = 5;
  bool timeline = false;
  std::vector<std::string> variant_names;  // empty: every fast variant
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      LB_CHECK(i + 1 < argc, a, ": missing value");
      return argv[++i];
    };
    if (a == "--json") json_path = next();
    else if (a == "--formats") formats = parse_format_list(next(), "--formats");
    else if (a == "--shapes") shapes_arg = next();
    else if (a == "--reps") reps = std::max(1, std::stoi(next()));
    else if (a == "--timeline") timeline = true;
    else if (a == "--variants") variant_names = split_commas(next());
    else if (a == "--help" || a == "-h") {
      std::printf("lowbit_gemv_bench [--json PATH] [--formats a,b] [--shapes qkv,o,gate_up,down,lm_head] [--reps N] [--variants a,b] [--timeline]\n");
      return 0;
    } else {
      fail("unknown option '", a, "' (see --help)");
    }
  }
  for (const std::string& n : variant_names) {
    bool known = false;
    for (int v = 0; v < kNumFastGemvVariants; ++v) known = known || n == gemv_variant_name(GemvVariant(v));
    LB_CHECK(known, "--variants: unknown variant '", n, "' (split8, split4, tiles2x4, tiles4x2, tiles8x1, persist2x4, ",
             "persist8x1, stream)");
  }
  if (formats.empty())
    for (const FormatInfo& fi : all_formats())
      if (fi.weight_ok) formats.push_back(fi.id);
  std::vector<Shape> shapes;
  const std::vector<std::string> wanted = split_commas(shapes_arg);
  for (const Shape& sh : kShapes)
    if (wanted.empty() || std::find(wanted.begin(), wanted.end(), sh.name) != wanted.end()) shapes.push_back(sh);
  LB_CHECK(!shapes.empty(), "--shapes: no known shape in '", shapes_arg, "' (qkv, o, gate_up, down, lm_head)");

  int dev = 0;
  LB_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  LB_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  cudaStream_t s;
  LB_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const double bw = cuda_measure_read_bandwidth();  // the probe `lowbit bench` uses
  std::printf("device: %s, %d SMs, L2 %.0f MB; measured read bandwidth %.0f GB/s (4 GiB read-only kernel)\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1e6, bw);
  std::fflush(stdout);

  std::vector<Result> results;
  uint64_t seed = 1;
  for (Format f : formats) {
    for (const Shape& sh : shapes) {
      Result r;
      r.format = format_name(f);
      r.shape = sh.name;
      r.n = sh.glu ? 2 * sh.n : sh.n;
      r.k = sh.k;
      GpuWeightHost host;
      if (sh.glu) {
        host = concat_glu(repack_for_gpu(random_qtensor(f, sh.n, sh.k, 0, seed, "gate")),
                          repack_for_gpu(random_qtensor(f, sh.n, sh.k, 0, seed + 1, "up")));
      } else {
        host = repack_for_gpu(random_qtensor(f, sh.n, sh.k, 0, seed, sh.name));
      }
      seed += 2;
      r.bytes = host.bytes();
      const size_t copies = std::max<size_t>(2, (kRotateBytes + r.bytes - 1) / r.bytes);
      std::vector<GpuWeight> ws;
      ws.reserve(copies);
      ws.push_back(upload(host, s));
      for (size_t c = 1; c < copies; ++c) ws.push_back(clone(ws[0], s));
      LB_CUDA_CHECK(cudaStreamSynchronize(s));
      const int64_t out_n = ws[0].out_features();
      std::vector<float> hx(size_t(kGemvMaxTokens * sh.k));
      Rng rng(seed);
      for (float& v : hx) v = rng.normal();
      DeviceBuffer x(hx.size() * 4), y(size_t(kGemvMaxTokens * out_n) * 4), nw(size_t(sh.k) * 4);
      LB_CUDA_CHECK(cudaMemcpy(x.get(), hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
      std::vector<float> hn(size_t(sh.k), 1.0f);
      LB_CUDA_CHECK(cudaMemcpy(nw.get(), hn.data(), hn.size() * 4, cudaMemcpyHostToDevice));
      GemvEpilogue ep;
      ep.kind = sh.glu ? GemvOut::SwiGluF32 : GemvOut::StoreF32;
      ep.out = y.get();
      ep.norm_weight = (std::string(sh.name) == "qkv" || sh.glu) ? nw.get<float>() : nullptr;  // as in a decoder layer
      auto time_variant = [&](GemvVariant v, int M) {
        for (int i = 0; i < 2; ++i) gemv(ws[0], x.get<float>(), M, ep, s, v);  // attributes, first-launch costs
        LB_CUDA_CHECK(cudaStreamSynchronize(s));
        cudaGraph_t g;
        LB_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        try {
          for (const GpuWeight& w : ws) gemv(w, x.get<float>(), M, ep, s, v);
        } catch (...) {
          cudaStreamEndCapture(s, &g);
          throw;
        }
        LB_CUDA_CHECK(cudaStreamEndCapture(s, &g));
        cudaGraphExec_t ge;
        LB_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
        const float ms = time_graph(ge, s, reps);
        cudaGraphExecDestroy(ge);
        cudaGraphDestroy(g);
        return ms * 1e3f / float(ws.size());
      };
      for (int v = 0; v < kNumFastGemvVariants; ++v) {
        const bool on = variant_names.empty() || std::find(variant_names.begin(), variant_names.end(),
                                                           gemv_variant_name(GemvVariant(v))) != variant_names.end();
        r.us.push_back(on ? time_variant(GemvVariant(v), 1) : 1e30f);
      }
      r.best = int(std::min_element(r.us.begin(), r.us.end()) - r.us.begin());
      r.us_m8 = time_variant(GemvVariant(r.best), 8);
      if (timeline) print_timeline(ws, x.get<float>(), ep, s, r.format + " " + r.shape);
      const double gbs = double(r.bytes) / (r.us[size_t(r.best)] * 1e-6) / 1e9;
      std::printf("%-16s %-8s %6lldx%-6lld %9.2f MB  %-9s %8.2f us  %7.0f GB/s  %5.1f%%   M=8: %8.2f us\n",
                  r.format.c_str(), r.shape.c_str(), (long long)r.n, (long long)r.k, r.bytes / 1e6,
                  gemv_variant_name(GemvVariant(r.best)), r.us[size_t(r.best)], gbs, 100.0 * gbs / bw, r.us_m8);
      std::fflush(stdout);
      results.push_back(r);
    }
  }

  // the summary table last
  std::printf("\n%-16s %-8s %13s %10s %-9s %9s %8s %7s %10s\n", "format", "shape", "N x K", "MB", "variant", "us",
              "GB/s", "%bw", "us (M=8)");
  for (const Result& r : results) {
    const double gbs = double(r.bytes) / (r.us[size_t(r.best)] * 1e-6) / 1e9;
    std::printf("%-16s %-8s %6lldx%-6lld %10.2f %-9s %9.2f %8.0f %6.1f%% %10.2f\n", r.format.c_str(), r.shape.c_str(),
                (long long)r.n, (long long)r.k, r.bytes / 1e6, gemv_variant_name(GemvVariant(r.best)),
                r.us[size_t(r.best)], gbs, 100.0 * gbs / bw, r.us_m8);
  }
  if (!json_path.empty()) {
    nlohmann::json j;
    j["device"] = prop.name;
    j["sms"] = prop.multiProcessorCount;
    j["read_bandwidth_gbs"] = bw;
    j["reps"] = reps;
    j["commit"] = LOWBIT_GIT_COMMIT;
    for (const Result& r : results) {
      nlohmann::json row;
      row["format"] = r.format;
      row["shape"] = r.shape;
      row["n"] = r.n;
      row["k"] = r.k;
      row["bytes"] = r.bytes;
      for (int v = 0; v < kNumFastGemvVariants; ++v)
        if (r.us[size_t(v)] < 1e29f) row["us"][gemv_variant_name(GemvVariant(v))] = r.us[size_t(v)];
      row["best_variant"] = gemv_variant_name(GemvVariant(r.best));
      row["best_us"] = r.us[size_t(r.best)];
      const double gbs = double(r.bytes) / (r.us[size_t(r.best)] * 1e-6) / 1e9;
      row["gbs"] = gbs;
      row["pct_of_bandwidth"] = 100.0 * gbs / bw;
      row["us_m8"] = r.us_m8;
      j["results"].push_back(row);
    }
    std::ofstream(json_path) << j.dump(2) << "\n";
    LB_CHECK(std::ifstream(json_path).good(), "--json: could not write ", json_path);
    std::printf("wrote %s\n", json_path.c_str());
  }
  cudaStreamDestroy(s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit_gemv_bench: %s\n", e.what());
    return 1;
  }
}
