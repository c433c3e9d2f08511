// GEMV entry point: argument checks, block shape, shared-memory plan, dispatch to the codec's kernel.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cuda/gemv_stream.cuh"

namespace lowbit::cuda {

// Explicit instantiations live in gemv_<family>.cu.
#define LB_DECLARE_CODEC(c)                                                                           \
  extern template void launch_gemv_codec<GpuCodec::c>(const GemvArgs&, unsigned, int, cudaStream_t); \
  extern template bool launch_gemv_stream<GpuCodec::c>(GemvArgs, int, cudaStream_t);
LB_FOR_EACH_GPU_CODEC(LB_DECLARE_CODEC)
#undef LB_DECLARE_CODEC

const char* gemv_variant_name(GemvVariant v) {
  switch (v) {
    case GemvVariant::Auto: return "auto";
    case GemvVariant::Split8: return "split8";
    case GemvVariant::Split4: return "split4";
    case GemvVariant::Tiles2x4: return "tiles2x4";
    case GemvVariant::Tiles4x2: return "tiles4x2";
    case GemvVariant::Tiles8x1: return "tiles8x1";
    case GemvVariant::Persist2x4: return "persist2x4";
    case GemvVariant::Persist8x1: return "persist8x1";
    case GemvVariant::Stream: return "stream";
    case GemvVariant::Reference: return "reference";
  }
  return "?";
}

namespace {

unsigned long long* g_timeline = nullptr;
bool g_after_narrow = false;  // gemv_set_after_narrow()
unsigned* g_progress = nullptr;  // gemv_set_progress()
int g_reserved_sms = 0;          // gemv_set_reserved_sms()

int sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    LB_CUDA_CHECK(cudaGetDevice(&dev));
    LB_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return n;
}
// The multiprocessors the stream kernels size their grids for (all but those reserved for the prefetcher)
int stream_sms() { return std::max(1, sm_count() - g_reserved_sms); }

struct BlockShape {
  int rt, ks;        // tiles per block, warps per tile
  bool persistent;   // at most two blocks per SM, looping over tile groups
};
BlockShape block_shape(GemvVariant v) {
  switch (v) {
    case GemvVariant::Split4: return {1, 4, false};
    case GemvVariant::Tiles2x4: return {2, 4, false};
    case GemvVariant::Tiles4x2: return {4, 2, false};
    case GemvVariant::Tiles8x1: return {8, 1, false};
    case GemvVariant::Persist2x4: return {2, 4, true};
    case GemvVariant::Persist8x1: return {8, 1, true};
    default: return {1, 8, false};
  }
}

constexpr int kXBudgetBytes = 96 * 1024;  // staged x per block: two blocks per multiprocessor fit

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Fills the K-tile size, strides and shared-memory offsets; returns the bytes of dynamic shared memory.
int plan_smem(GemvArgs& a) {
  const GpuCodec c = a.w.codec;
  const int M = a.M;
  int off = 0;
  if (c == GpuCodec::T5) off = kT5LutBytes;
  a.off_stats = off;
  off += kStatsBytes;
  if (is_plain(c)) {
    const int epc = 16 / codec_info(c).esize;
    const int64_t cols = a.w.row_stride / 16 * epc;           // padded row, in elements
    int64_t kt = cols;
    if (4 * M * cols > kXBudgetBytes)  // K-tiles of whole lane rounds of chunks
      kt = std::max<int64_t>(32 * epc, kXBudgetBytes / (4 * M) / (32 * epc) * (32 * epc));
    a.kt = int(kt);
    a.xstride = int((kt + 3) / 4 * 4);
    a.gstride = 0;
    a.off_gsum = off;
    a.off_x = off;
    off += 4 * M * a.xstride;
  } else {
    const int pc = packet_cols(c);
    // bytes per K-tile column: 2 fp16 parts per token (+ unit sums for groups), a little row padding
    const int64_t per_col = 4 * M + (codec_info(c).scale == ScaleKind::Affine ? (M + 7) / 8 : 0) + 1;
    int64_t kt = std::max<int64_t>(1, kXBudgetBytes / (per_col * pc));
    kt = std::min<int64_t>(kt, a.w.n_packets);
    a.kt = int(kt);
    const int64_t half_cols = kt * pc / 2;
    a.xstride = int((half_cols + 31) / 32 * 32 + 8);  // = 8 (mod 32) words: conflict-free B loads
    a.gstride = int(kt * pc / 32);
    a.off_gsum = off;
    if (codec_info(c).scale == ScaleKind::Affine) off += 4 * M * a.gstride;
    off = (off + 15) / 16 * 16;
    a.off_x = off;
    off += 4 * 2 * M * a.xstride;
  }
  off = (off + 15) / 16 * 16;
  a.off_red = off;
  off += 4 * a.rt * a.ks * 16 * M;
  return off;
}

// LOWBIT_GEMV_SPLIT=even|balanced (GemvArgs::split_blocks): each stream block a run of ceil(tiles / SMs)
// tiles (even; some multiprocessors idle: 128 of 132 at the Llama shapes), or one block per multiprocessor
// with the first tiles % SMs of them one tile more (balanced, default since 2026-12-07: H100, bench --settings,
// 2 reps, same call: int4 397.0 / 398.5 -> 398.0 / 400.6 tok/s, int8 294.6 / 295.0 -> 296.6 / 296.6, bf16
// 182.5 / 182.6 -> 183.2 / 183.2).
static bool stream_split_balanced() {
  static EnvKnob<bool> knob([] { return env_switch("LOWBIT_GEMV_SPLIT", "even", "balanced", true); });
  return knob.get();
}

// Ring stages per warp of the stream kernel where shared memory allows: LOWBIT_GEMV_STAGES=2..7, or 0 (auto,
// the default): 3 where a block's share of the weight is under 128 KB, else 4. A launch that short is mostly
// its staging, which the ring's batches in flight slow down (its shared-memory and shuffle work waits behind
// them): H100, 2026-12-07, bench --settings, timelines at position 107, STAGES=3 against 4: int4 Q|K|V (123 KB
// per block) 10.48 -> 9.26 us per launch (staging 4.64 -> 3.28), o (82 KB) 7.83 -> 7.67; but int8 o (128 KB)
// 9.09 -> 9.33 and every longer launch slower (int4 gate/up 25.08 -> 25.85; int8 -2.2 % tok/s overall).
static int stream_stages_knob() {
  static EnvKnob<int> knob([] {
    const int v = env_int("LOWBIT_GEMV_STAGES", 0, 0, 7);
    LB_CHECK(v == 0 || v >= 2, "LOWBIT_GEMV_STAGES=", v, ": expected 0 (auto) or 2..7");
    return v;
  });
  return knob.get();
}
static int stream_max_stages(const GemvArgs& a) {
  if (stream_stages_knob() > 0) return stream_stages_knob();
  const int64_t block_bytes = int64_t(a.tiles_per_block) * a.np * packet_bytes(a.w.codec);
  return block_bytes < 128 * 1024 ? 3 : 4;
}

// K slices of the residual-add launches, LOWBIT_GEMV_KSPLIT=1..8 (1: off; default 4) for K >=
// LOWBIT_GEMV_KSPLIT_MIN_K (default 8192: down, not o): the blocks of slice s (a quarter of the
// multiprocessors with 4 slices) stage only its columns of x (down: 3,584 of 14,336 columns in every block)
// and add their partial sums to the residual with atomicAdd — the order of the slices' additions varies from
// run to run (fp32 rounding of the residual: not bit-exact between runs). H100, 2026-12-07, bench --settings,
// 2 reps, same call (h100-ab-2026-12-07-0924.txt, the split then a runtime flag of the one kernel as now):
// int4 394.3 / 394.9 -> 409.9 / 411.4 tok/s (down's staging 5.75 -> 3.01 us per launch:
// x in 1.15 us after the release instead of 2.61), int8 289.1 -> 296.8, nvfp4 363.8 -> 370.5, fp8-e4m3
// 289.6 -> 295.3; 2 slices gain a third of that; o in 4 slices too (MIN_K=0): its staging shrinks but its
// last blocks end later (int4 399.5 / 411.9, int8 295.1: no better than down alone). Where it applies: the
// tensor-core formats (not ternary-1.6, whose packets are 160 columns), one token, no norm weight, the AddF32
// epilogue, K without padding, slices of a multiple of 256 columns and of whole groups (fewer slices where K
// does not allow it), within the one-pass staging (K <= 16384, x 16-byte aligned).
static int stream_ksplit_knob() {
  static EnvKnob<int> knob([] { return env_int("LOWBIT_GEMV_KSPLIT", 4, 1, 8); });
  return knob.get();
}
static int stream_ksplit_min_k() {
  static EnvKnob<int> knob([] { return env_int("LOWBIT_GEMV_KSPLIT_MIN_K", 8192, 0, 1 << 20); });
  return knob.get();
}
static int stream_ksplit(const GemvArgs& a) {
  const GpuCodec c = a.w.codec;
  if (stream_ksplit_knob() <= 1 || is_plain(c) || c == GpuCodec::T5 || a.M != 1 || a.norm_w ||
      a.kind != GemvOut::AddF32)
    return 1;
  const int64_t K = a.w.cols;
  if (K < stream_ksplit_min_k() || K != a.w.n_packets * packet_cols(c) ||
      K > int64_t(4 * kStageChunks) * kStreamThreads ||
      (reinterpret_cast<uintptr_t>(a.x) & 15u) != 0)
    return 1;
  // slices of whole 256-column periods (the staging's store positions) and whole groups (the group folds)
  const int64_t unit = codec_info(c).scale == ScaleKind::Affine ? std::max<int64_t>(256, a.w.group) : 256;
  int S = std::min(stream_ksplit_knob(), stream_sms());
  while (S > 1 && K % (unit * S) != 0) --S;
  return S;
}

// The stream kernel's plan: token statistics, x of the whole row (and the unit sums of group-affine
// formats), then for the tensor-core formats each warp's ring of a.stages stages (stream_max_stages where they fit);
// returns the bytes of shared memory, or 0 when x does not fit.
int plan_stream_smem(GemvArgs& a) {
  static const int max_bytes = [] {
    int dev = 0, v = 0;
    LB_CUDA_CHECK(cudaGetDevice(&dev));
    LB_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    return v;
  }();
  const GpuCodec c = a.w.codec;
  const CodecInfo ci = codec_info(c);
  int64_t off = c == GpuCodec::T5 ? kT5LutBytes : 0;
  a.off_stats = int(off);
  off += kStatsBytes;
  // one block per multiprocessor, each a run of whole tiles; the partial sums of the tiles its warps split
  // (one slot per tile and per warp) and a counter per tile
  // (K slices: the multiprocessors shared out among the slices, each slice's tiles split the balanced way)
  a.ksplit = stream_ksplit(a);
  const int sms = stream_sms() / a.ksplit;
  a.tiles_per_block = int(ceil_div(a.w.rows_pad / 16, sms));
  // balanced split (default; LOWBIT_GEMV_SPLIT): every multiprocessor a block (ceil_div leaves some idle: 128
  // of 132 blocks at the Llama shapes), the blocks scheduled last (highest index) a tile less
  a.split_blocks = stream_split_balanced() || a.ksplit > 1 ? int(std::min<int64_t>(a.w.rows_pad / 16, sms)) : 0;
  a.xk = int(a.w.cols);  // x's columns staged per block (K slices: the slice's, below)
  a.off_pieces = int(off);
  off += (int64_t(a.tiles_per_block) + kStreamWarps) * 64 * 4 + int64_t(a.tiles_per_block) * 4;
  off = (off + 15) / 16 * 16;
  if (is_plain(c)) {
    a.np = int((a.w.row_stride + 255) / 256);       // 256-byte row pieces
    const int64_t cols = int64_t(a.np) * 256 / ci.esize;  // x staged over whole pieces (zeros beyond K)
    a.xstride = int(cols);
    a.off_gsum = a.off_x = int(off);
    off += 4 * int64_t(a.M) * cols;
    a.off_red = int(off);
    a.stages = 0;
  } else {
    a.np_tile = int(a.w.n_packets);
    a.np = a.np_tile / a.ksplit;  // per tile and slice (stream_ksplit: a whole number)
    if (a.ksplit > 1) a.xk = a.np * packet_cols(c);
    const int64_t half_cols = a.w.n_packets * packet_cols(c) / 2;
    a.xstride = int((half_cols + 31) / 32 * 32 + 8);  // = 8 (mod 32) words: conflict-free B loads
    a.gstride = int(a.w.n_packets * packet_cols(c) / 32);
    a.off_gsum = int(off);  // 32-column sums of x: group-affine offsets, ternary's integer path
    if (ci.scale == ScaleKind::Affine || c == GpuCodec::T2) off += 4 * int64_t(a.M) * a.gstride;
    off = (off + 15) / 16 * 16;
    a.off_x = int(off);
    off += 8 * int64_t(a.M) * a.xstride;
    off = (off + 15) / 16 * 16;
    a.off_red = int(off);
    const int64_t ring = int64_t(kStreamWarps) * stage_bytes(c);
    a.stages = stream_max_stages(a);
    while (a.stages > 2 && off + a.stages * ring > max_bytes) --a.stages;
    off += a.stages * ring;
  }
  a.kt = a.np;
  return off <= max_bytes ? int(off) : 0;
}

bool launch_stream(const GemvArgs& a, int smem, cudaStream_t s) {
  switch (a.w.codec) {
#define LB_CASE(c) \
  case GpuCodec::c: return launch_gemv_stream<GpuCodec::c>(a, smem, s);
    LB_FOR_EACH_GPU_CODEC(LB_CASE)
#undef LB_CASE
  }
  fail("gemv: unknown codec ", int(a.w.codec));
}

void launch_codec(const GemvArgs& a, unsigned grid, int smem, cudaStream_t s) {
  switch (a.w.codec) {
#define LB_CASE(c) \
  case GpuCodec::c: launch_gemv_codec<GpuCodec::c>(a, grid, smem, s); return;
    LB_FOR_EACH_GPU_CODEC(LB_CASE)
#undef LB_CASE
  }
  fail("gemv: unknown codec ", int(a.w.codec));
}

}  // namespace

// One warp per output (a row, or a gate/up pair): every element through gpu_decode_element().
__global__ void __launch_bounds__(kGemvThreads) gemv_reference_kernel(const GemvArgs a) {
  pdl_wait();  // see launch.cuh
  pdl_trigger();
  const int lane = threadIdx.x & 31;
  const int64_t o = (int64_t(blockIdx.x) * kGemvThreads + threadIdx.x) / 32;
  const int64_t n_out = a.w.glu ? a.w.ff : a.w.rows;
  if (o >= n_out) return;
  const int64_t K = a.w.cols;
  float rinv[kGemvMaxTokens];
  for (int m = 0; m < a.M; ++m) {
    float ss = 0.0f;
    for (int64_t k = lane; k < K; k += 32) ss = fmaf(a.x[m * K + k], a.x[m * K + k], ss);
    ss = warp_sum(ss);
    rinv[m] = a.norm_w ? 1.0f / sqrtf(ss / float(K) + a.eps) : 1.0f;
  }
  const int nrows = a.w.glu ? 2 : 1;
  const int64_t rows[2] = {a.w.glu ? 16 * (o / 8) + o % 8 : o, a.w.glu ? 16 * (o / 8) + 8 + o % 8 : o};
  float acc[2][kGemvMaxTokens] = {};
  for (int64_t k = lane; k < K; k += 32) {
    for (int r = 0; r < nrows; ++r) {
      const float w = gpu_decode_element(a.w, rows[r], k);
      for (int m = 0; m < a.M; ++m) {
        const float xv = a.x[m * K + k];
        acc[r][m] = fmaf(w, a.norm_w ? xv * rinv[m] * a.norm_w[k] : xv, acc[r][m]);
      }
    }
  }
  for (int m = 0; m < a.M; ++m) {
    const float y0 = warp_sum(acc[0][m]);
    const float y1 = warp_sum(acc[1][m]);
    if (lane == 0) store_out(a, m, o, a.w.glu ? silu(y0) * y1 : y0);
  }
}

void gemv_set_timeline(unsigned long long* stamps) { g_timeline = stamps; }
void gemv_set_after_narrow(bool on) { g_after_narrow = on; }
void gemv_set_progress(unsigned* counter) { g_progress = counter; }
void gemv_set_reserved_sms(int n) {
  LB_CHECK(n >= 0 && n < sm_count(), "gemv_set_reserved_sms: ", n, " of ", sm_count(), " multiprocessors");
  g_reserved_sms = n;
}
int gemv_reserved_sms() { return g_reserved_sms; }

// Weight batches the stream kernel issues before pdl_wait(), the others after x's loads (stream_rest; plain
// formats: 0 none, 1 the first packet, >= 2 both where the registers allow). Default 1: on the H200 the blocks of a
// launch mostly start after the previous kernel has ended, so that more early batches only delay x's loads
// (int4 survey 358 -> 370 tok/s against all of them, -1); LOWBIT_GEMV_EARLY=<n> for A/B measurements.
static int stream_early_batches() {
  static EnvKnob<int> knob([] { return env_int("LOWBIT_GEMV_EARLY", 1, -1, 8); });
  return knob.get();
}
// The same after a kernel of few blocks (gemv_set_after_narrow: o after the decode attention, whose few working
// blocks leave most multiprocessors idle), LOWBIT_GEMV_EARLY_NARROW=<n> (default 1, as LOWBIT_GEMV_EARLY; -1:
// every ring batch): there this launch's blocks are mostly resident long before the release, beside an idle
// memory system, so the whole ring could fill before pdl_wait() (H100 timelines with LOWBIT_GEMV_EARLY=3 for
// every launch: o 8.66 -> 7.43 us per layer). Measured on its own (H100, 2026-12-07, bench --settings, 2 reps):
// o 7.99 -> 7.29 us per layer but the attention before it 5.10 -> 5.69 (its tile round shares the memory
// system with o's early ring): int4 397.0 / 398.5 -> 397.1 / 397.4 tok/s, int8 294.6 / 295.0 -> 293.3,
// bf16 182.5 -> 182.0. Kept at 1; the knob stays for A/B.
static int stream_early_narrow() {
  static EnvKnob<int> knob([] { return env_int("LOWBIT_GEMV_EARLY_NARROW", 1, -1, 8); });
  return knob.get();
}

// The next three knobs (TRIGGER, REST, PDL_WAIT) reach the tensor-core stream kernel only in a build with
// -DLOWBIT_GEMV_AB_KNOBS=ON (gemv_stream.cuh); by default it has their defaults compiled in, and setting one
// says so on stderr (an A/B of them there would compare the tensor-core formats with themselves).
static void note_compiled_in_knob(const char* name) {
  const char* e = std::getenv(name);
  if (!LOWBIT_GEMV_AB_KNOBS && e && *e)
    std::fprintf(stderr,
                 "lowbit: warning: %s=%s acts on the plain (f32 / bf16 / fp16) stream kernels only: this build "
                 "has the tensor-core kernel's default compiled in (-DLOWBIT_GEMV_AB_KNOBS=ON reads it)\n",
                 name, e);
}
// LOWBIT_GEMV_TRIGGER=wait|arrived|staged: when a stream kernel lets the next kernel be scheduled
// (GemvArgs::trigger): right after pdl_wait(), once its x has arrived, or after staging x (default).
// H100, bench --settings, 3 reps each: bf16 177.3 (wait) -> 179.5 tok/s (staged), int4 387.1 -> 387.6,
// fp8-e4m3 282.8 -> 283.5, int8 287.9 / 287.7 (one rep); the next kernel's blocks cannot start before this
// one's leave their multiprocessor anyway; presumably launching its grid later keeps its first blocks (on the
// multiprocessors this launch leaves idle) from requesting weights while this one's x is in flight.
static int stream_trigger() {
  static_assert(kTriggerWait == 0 && kTriggerArrived == 1 && kTriggerStaged == 2, "the choices in this order");
  static EnvKnob<int> knob([] {
    note_compiled_in_knob("LOWBIT_GEMV_TRIGGER");
    return env_choice("LOWBIT_GEMV_TRIGGER", {"wait", "arrived", "staged"}, kTriggerStaged);
  });
  return knob.get();
}

// LOWBIT_GEMV_REST=auto|early|arrived|late|reduced: when the stream kernels issue their weight batches
// beyond `early` (GemvArgs::rest; plain formats: their second packet where registers allow): right after
// x's loads, once this warp's x has arrived, after staging x, or once the whole block's x has arrived
// (after the block reduction, before the conversion). With LOWBIT_GEMV_EARLY=0 and `arrived`, thread 0's x
// arrived ~0.5 us after the release on an H100 (1.1-2.5 by default) but the other warps' x queued behind
// its ring loads (the block reduction ended 2-4.4 us later); `reduced` holds every warp's ring loads until
// all of x is in (H100, bench --settings: int4 387.4 -> 382.0 tok/s, int8 289.5 -> 282.1, bf16 179.3 -> 178.0:
// the issue then stalls the conversion). auto (default): the tensor-core kernels early (H200, bench --settings:
// int4 442.9 / 439.2 / 419.3 tok/s early / arrived / late), the plain ones after the block reduction since
// 2026-12-07 (H100, same process: bf16 180.0 / 180.0 / 180.0 -> 180.9 / 180.9 / 180.9 tok/s, 180.5 / 180.5 /
// 180.4 late; fp16 180.5 / 180.7 -> 181.5 / 181.5; an hour before, another H100, bf16 180.1 -> 180.8: with
// `arrived` each warp's second packet was issued before the reduction, and the warps whose issue stalled behind
// the others' held it back: Q|K|V's last warp was in 4.39 us after the release, 1.43 with `reduced`). Until
// then `arrived` (H200, 2026-11-29: bf16 227.7 / 235.8 / 231.8 early / arrived / late; `reduced` was not
// measured there, and on an H100 at 04:30 UTC, with an earlier build, it was slower: 179.3 -> 178.0).
static int stream_rest(GpuCodec c) {
  static EnvKnob<int> knob([] {
    note_compiled_in_knob("LOWBIT_GEMV_REST");
    return env_choice("LOWBIT_GEMV_REST", {"auto", "early", "arrived", "late", "reduced"}, 0);
  });
  static_assert(kRestEarly == 0 && kRestArrived == 1 && kRestLate == 2 && kRestReduced == 3,
                "choices 1..4 in this order");
  return knob.get() > 0 ? knob.get() - 1 : is_plain(c) ? kRestReduced : kRestEarly;
}

// LOWBIT_PDL_WAIT=all|one: in the stream kernels every thread waits for the previous kernel (default) or warp
// 0 does and the other warps wait for it at a barrier (GemvArgs::wait_one): whether the warps of a block leave
// griddepcontrol.wait together.
static bool stream_wait_one() {
  static EnvKnob<bool> knob([] {
    note_compiled_in_knob("LOWBIT_PDL_WAIT");
    return env_switch("LOWBIT_PDL_WAIT", "all", "one", false);
  });
  return knob.get();
}

// Whether the stream kernels load the norm weight before pdl_wait() (stage_w_issue, gemv_stream.cuh):
// LOWBIT_GEMV_NORM_EARLY=0|1 (default 1).
static bool stream_norm_early() {
  static EnvKnob<bool> knob([] { return env_switch("LOWBIT_GEMV_NORM_EARLY", "0", "1", true); });
  return knob.get();
}

bool imma_enabled() {
  static EnvKnob<bool> knob([] { return env_switch("LOWBIT_GEMV_IMMA", "0", "1", true); });
  return knob.get();
}

GemvVariant gemv_auto_variant(const GpuWeight&, int) {
  // LOWBIT_GEMV_VARIANT=<name> replaces the default (A/B measurements, bisecting a kernel problem)
  static EnvKnob<GemvVariant> knob([] {
    const char* e = std::getenv("LOWBIT_GEMV_VARIANT");
    if (!e || !*e) return GemvVariant::Stream;
    for (int i = 0; i < kNumGemvVariants; ++i)
      if (std::string(e) == gemv_variant_name(GemvVariant(i))) return GemvVariant(i);
    fail("LOWBIT_GEMV_VARIANT='", e, "': unknown variant (split8, split4, tiles2x4, tiles4x2, tiles8x1, persist2x4, ",
         "persist8x1, stream, reference)");
  });
  return knob.get();
}

// LOWBIT_GEMV_PASSES=fit|four: a launch of more tokens than one pass of the stream kernel takes runs in passes
// of the most tokens whose x fits in shared memory (fit, default), or of 4 only, the tiled kernel where 4 do not
// fit (four: the rule before 2026-12-07, for A/B measurements). H100, bench --profile, 6-token prompt: int4's
// down 5.05 -> 3.72 ms over 32 layers (time to first token 10.55 -> 8.98 ms), int8's 4.25 -> 4.40.
static bool stream_passes_fit() {
  static EnvKnob<bool> knob([] { return env_switch("LOWBIT_GEMV_PASSES", "four", "fit", true); });
  return knob.get();
}

// The launch arguments every variant shares: the weight, x, the tokens and the epilogue.
static GemvArgs gemv_args(const GpuWeight& w, const float* x, int M, const GemvEpilogue& ep) {
  GemvArgs a;
  a.w = w.view;
  a.x = x;
  a.M = M;
  a.norm_w = ep.norm_weight;
  a.eps = ep.norm_eps;
  a.kind = ep.kind;
  a.out = ep.out;
  a.ld = ep.ld > 0 ? ep.ld : w.out_features();
  return a;
}

int gemv_stream_ksplit(const GpuWeight& w, const float* x, int M, const GemvEpilogue& ep) {
  return stream_ksplit(gemv_args(w, x, M, ep));
}

bool gemv_stream_read_order(const GpuWeight& w, const float* x, const GemvEpilogue& ep, uint32_t chunk,
                            std::vector<PrefetchChunk>& out) {
  LB_CHECK(chunk >= 16 && chunk % 16 == 0 && chunk <= (1u << 20), "gemv_stream_read_order: chunk of ", chunk,
           " bytes, expected a multiple of 16 in [16, 1 MiB]");
  GemvArgs a = gemv_args(w, x, 1, ep);
  if (plan_stream_smem(a) <= 0) return false;
  const int64_t blocks = stream_grid(a);  // the launch's blocks and their tiles, as launch_gemv_stream has them
  if (blocks == 0) return false;
  const int64_t tiles = w.view.rows_pad / 16;
  const bool plain = is_plain(w.view.codec);
  const int64_t pk = plain ? 0 : int64_t(codec_info(w.view.codec).pw) * 512;  // bytes per packet
  const int64_t tile_bytes = plain ? 16 * w.view.row_stride : w.view.n_packets * pk;
  if (tile_bytes * tiles > int64_t(w.codes.size())) return false;  // not the layout assumed here
  const int64_t tile_sc = w.scales.size() / size_t(tiles);
  const int S = a.ksplit;
  const int64_t base = a.split_base, extra = a.split_extra;
  struct Seg {
    int64_t off, n;  // bytes into the buffer
  };
  struct Share {
    std::vector<Seg> code, scale;
    int64_t code_bytes = 0, scale_bytes = 0;
  };
  std::vector<Share> shares(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t s = a.split_blocks > 0 ? b / a.split_blocks : 0, bi = a.split_blocks > 0 ? b % a.split_blocks : b;
    const int64_t t0 = a.split_blocks > 0 ? bi * base + std::min(bi, extra) : b * a.tiles_per_block;
    const int64_t n = a.split_blocks > 0 ? base + (bi < extra ? 1 : 0) : std::min<int64_t>(a.tiles_per_block, tiles - t0);
    Share& sh = shares[size_t(b)];
    if (S == 1) {
      sh.code.push_back({t0 * tile_bytes, n * tile_bytes});
      if (tile_sc) sh.scale.push_back({t0 * tile_sc, n * tile_sc});
    } else {  // the block's slice of each of its tiles
      const int64_t slice = int64_t(a.np) * pk, sc_slice = tile_sc / S;
      for (int64_t t = t0; t < t0 + n; ++t) {
        sh.code.push_back({t * tile_bytes + s * slice, slice});
        if (sc_slice) sh.scale.push_back({t * tile_sc + s * sc_slice, sc_slice});
      }
    }
    for (const Seg& g : sh.code) sh.code_bytes += g.n;
    for (const Seg& g : sh.scale) sh.scale_bytes += g.n;
  }
  // [off, off + len) of a share's concatenated segments, as 16-byte aligned pieces inside the buffer
  auto emit = [&](const uint8_t* buf, size_t buf_size, const std::vector<Seg>& segs, int64_t off, int64_t len) {
    const int64_t limit = int64_t(buf_size) / 16 * 16;
    int64_t pos = 0;
    for (const Seg& g : segs) {
      if (len <= 0) break;
      if (off < pos + g.n) {
        const int64_t from = g.off + (off - pos), take = std::min(len, pos + g.n - off);
        const int64_t lo = from / 16 * 16, hi = std::min(limit, (from + take + 15) / 16 * 16);
        if (hi > lo) out.push_back({buf + lo, uint32_t(hi - lo)});
        off += take;
        len -= take;
      }
      pos += g.n;
    }
  };
  if (w.row_scale.size())  // the per-row values first: every block reads its rows' in its epilogue
    for (size_t o = 0; o < w.row_scale.size() / 16 * 16; o += chunk)
      out.push_back({w.row_scale.get<uint8_t>() + o, uint32_t(std::min<size_t>(chunk, w.row_scale.size() / 16 * 16 - o))});
  int64_t rounds = 0;
  for (const Share& sh : shares) rounds = std::max(rounds, (sh.code_bytes + chunk - 1) / chunk);
  for (int64_t r = 0; r < rounds; ++r)
    for (const Share& sh : shares) {
      const int64_t nr = (sh.code_bytes + chunk - 1) / chunk;
      if (r >= nr) continue;
      emit(w.codes.get<uint8_t>(), w.codes.size(), sh.code, r * chunk, chunk);
      if (sh.scale_bytes) {
        const int64_t sc = (sh.scale_bytes + nr - 1) / nr;
        emit(w.scales.get<uint8_t>(), w.scales.size(), sh.scale, r * sc, sc);
      }
    }
  return true;
}

void gemv(const GpuWeight& w, const float* x, int M, const GemvEpilogue& ep, cudaStream_t s, GemvVariant v) {
  const char* fname = format_name(w.fmt);
  LB_CHECK(M >= 1 && M <= kGemvMaxTokens, "gemv('", w.name, "', ", fname, "): M = ", M, " tokens, expected 1..",
           kGemvMaxTokens, " (longer prompts: dequantize_to_bf16 + gemm_bf16)");
  LB_CHECK(x != nullptr && ep.out != nullptr, "gemv('", w.name, "'): null input or output pointer");
  LB_CHECK(w.view.codes != nullptr, "gemv('", w.name, "'): weight not uploaded");
  const bool swiglu = ep.kind == GemvOut::SwiGluF32 || ep.kind == GemvOut::SwiGluBF16;
  LB_CHECK(swiglu == w.view.glu, "gemv('", w.name, "'): the SwiGLU epilogue needs a gate/up pair (concat_glu) and ",
           "a gate/up pair needs the SwiGLU epilogue");
  if (v == GemvVariant::Auto) v = gemv_auto_variant(w, M);
  LB_CHECK(int(v) >= 0 && int(v) < kNumGemvVariants, "gemv: unknown variant ", int(v));
  GemvArgs a = gemv_args(w, x, M, ep);
  LB_CHECK(a.ld >= w.out_features(), "gemv('", w.name, "'): output row stride ", a.ld, " < ", w.out_features(),
           " outputs");
  if (v == GemvVariant::Reference) {
    const int64_t n_out = w.out_features();
    const int64_t blocks = ceil_div(n_out * 32, kGemvThreads);
    launch(gemv_reference_kernel, unsigned(blocks), kGemvThreads, 0, s, a);
    return;
  }
  if (v == GemvVariant::Stream) {
    // up to 4 tokens in one pass; more tokens of the tensor-core formats in passes of up to 4 (each pass reads
    // the weight again, at the stream kernel's speed: still well ahead of the tiled variants), and of fewer
    // where a pass's x does not fit in shared memory (down, K = 14,336: 4 tokens' x take 229 KB; 2 fit, and
    // 1 takes the K slices). The plain formats' stream kernel takes one token.
    GemvArgs sa = a;
    sa.timeline = g_timeline;
    sa.progress = g_progress;
    sa.rest = stream_rest(w.view.codec);
    sa.norm_early = stream_norm_early();
    sa.early = g_after_narrow ? stream_early_narrow() : stream_early_batches();
    sa.trigger = stream_trigger();
    sa.wait_one = stream_wait_one();
    const int max_m = is_plain(w.view.codec) ? (M == 1 ? 1 : 0) : std::min(M, kStreamMaxTokens);
    const int min_m = stream_passes_fit() ? 1 : max_m;
    int m = 0, smem = 0;  // the most tokens per pass whose x fits (0: none)
    for (int t = max_m; t >= std::max(min_m, 1) && m == 0; --t) {
      sa.M = t;
      smem = plan_stream_smem(sa);
      if (smem > 0) m = t;
    }
    if (m >= 1) {
      const size_t out_bytes = ep.kind == GemvOut::StoreBF16 || ep.kind == GemvOut::SwiGluBF16 ? 2 : 4;
      for (int t0 = 0; t0 < M; t0 += m) {
        sa.x = x + int64_t(t0) * w.view.cols;
        sa.out = static_cast<char*>(ep.out) + size_t(t0) * size_t(a.ld) * out_bytes;
        sa.M = std::min(m, M - t0);
        const int pass_smem = sa.M == m ? smem : plan_stream_smem(sa);
        const bool ok = pass_smem > 0 && launch_stream(sa, pass_smem, s);
        if (t0 == 0 && !ok) break;  // no stream kernel for this launch: the tiled variant below
        LB_CHECK(ok, "gemv('", w.name, "'): pass ", t0 / m + 1, " of the stream kernel (", sa.M,
                 " tokens) could not be launched");
        if (t0 + m >= M) return;
      }
    }
    v = GemvVariant::Persist2x4;  // x does not fit whole, or more tokens than the stream kernel takes
  }
  const BlockShape bs = block_shape(v);
  a.rt = bs.rt;
  a.ks = bs.ks;
  const int smem = plan_smem(a);
  const int64_t groups = ceil_div(w.view.rows_pad / 16, a.rt);
  int64_t grid = groups;
  // persistent blocks reuse the staged x only when it fits in one K-tile; otherwise one group per block
  const bool one_ktile = is_plain(w.view.codec) ? a.kt >= w.view.row_stride / 16 * (16 / codec_info(w.view.codec).esize)
                                                : a.kt >= w.view.n_packets;
  if (bs.persistent && one_ktile) grid = std::min<int64_t>(groups, 2 * int64_t(sm_count()));
  LB_CHECK(grid < (int64_t(1) << 31), "gemv('", w.name, "'): too many rows");
  launch_codec(a, unsigned(grid), smem, s);
}

}  // namespace lowbit::cuda
