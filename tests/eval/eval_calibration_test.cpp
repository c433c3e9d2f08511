// Static activation ranges: recording them on a real model (stories260K), the JSON file round trip,
// errors on a file that does not belong to the model, and the runner's use of them.
#include <cmath>
#include <cstdio>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/calibration.h"
#include "engine/runner.h"
#include "eval/calibrate.h"
#include "eval/quality.h"
#include "io/loader.h"
#include "../test_util.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace lowbit {
namespace {

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/lowbit_cal_" + name; }

std::vector<int> story_tokens(int n) {
  auto tok = load_tokenizer(test::tok512());
  std::string text;
  for (int i = 0; i < 8; ++i)
    text += "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ";
  std::vector<int> ids = tok->encode(text, /*bos=*/false);
  ids.resize(std::min<size_t>(ids.size(), size_t(n)));
  return ids;
}

Model load_stories() {
  LoadOptions lo;
  lo.progress = false;
  return load_model(test::stories260k(), lo);
}

TEST(EvalCalibration, RecordsEveryLinearInputOfARealModel) {
  LOWBIT_REQUIRE_FILE(test::stories260k());
  Model m = load_stories();
  CalibrateOptions co;
  co.ctx = 64;
  co.bos_id = 1;
  const std::vector<int> toks = story_tokens(150);
  const ActCalibration cal = calibrate_activations(m, toks, co);
  const std::vector<std::string> names = calibration_names(m.config.n_layers);
  EXPECT_EQ(names.size(), size_t(m.config.n_layers * kLinearsPerLayer + 1));
  EXPECT_EQ(cal.absmax.size(), names.size());
  for (const auto& n : names) {
    EXPECT_GT(cal.range_of(n), 0.0f) << n;
  }
  // wq, wk and wv read the same normed input
  EXPECT_EQ(cal.range_of("layers.2.attention.wq"), cal.range_of("layers.2.attention.wk"));
  EXPECT_EQ(cal.range_of("layers.2.attention.wq"), cal.range_of("layers.2.attention.wv"));
  EXPECT_EQ(cal.tokens, int64_t(toks.size() + 3));  // 3 windows of 63 text tokens at most, each with a BOS
  EXPECT_NO_THROW(cal.check_model(m.config));
}

TEST(EvalCalibration, FileRoundTrip) {
  LlamaConfig c = preset_config("tiny");
  ActCalibration cal = ActCalibration::for_model(c);
  float v = 0.37f;
  for (auto& [name, x] : cal.absmax) x = (v *= 1.37f);  // distinct values, none representable in few digits
  cal.model = "synthetic:tiny";
  cal.text = "some text.txt";
  cal.tokens = 1234;
  cal.weights = "int4";
  const std::string path = temp_path("roundtrip.json");
  cal.save(path);
  const ActCalibration back = ActCalibration::load(path);
  EXPECT_EQ(back.absmax, cal.absmax);  // floats survive the JSON text exactly
  EXPECT_EQ(back.model, cal.model);
  EXPECT_EQ(back.text, cal.text);
  EXPECT_EQ(back.tokens, cal.tokens);
  EXPECT_EQ(back.weights, cal.weights);
  EXPECT_EQ(back.n_layers, c.n_layers);
  EXPECT_EQ(back.source, path);
  EXPECT_NO_THROW(back.check_model(c));
  std::remove(path.c_str());
}

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream(path) << j.dump();
}

void expect_error_naming(const std::function<void()>& f, const std::string& what, const std::string& also) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one naming " << what;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_NE(msg.find(also), std::string::npos) << msg;
  }
}

TEST(EvalCalibration, MismatchedOrBrokenFilesAreErrorsNamingTheFile) {
  const LlamaConfig tiny = preset_config("tiny"), small = preset_config("small");
  ActCalibration cal = ActCalibration::for_model(tiny);
  for (auto& [name, x] : cal.absmax) x = 2.0f;
  const std::string path = temp_path("tiny.json");
  cal.save(path);
  const ActCalibration loaded = ActCalibration::load(path);
  // another model's shape
  expect_error_naming([&] { loaded.check_model(small); }, path, "n_layers");
  // a missing range
  nlohmann::json j = cal.to_json();
  j["absmax"].erase("layers.1.feed_forward.w2");
  const std::string missing = temp_path("missing.json");
  write_json(missing, j);
  expect_error_naming([&] { ActCalibration::load(missing).check_model(tiny); }, missing, "layers.1.feed_forward.w2");
  // an extra range (a file for a deeper model with the shape edited)
  j = cal.to_json();
  j["absmax"]["layers.9.attention.wq"] = 1.0;
  write_json(missing, j);
  expect_error_naming([&] { ActCalibration::load(missing).check_model(tiny); }, missing, "activation ranges");
  // a zero range cannot give a scale
  j = cal.to_json();
  j["absmax"]["output"] = 0.0;
  write_json(missing, j);
  expect_error_naming([&] { ActCalibration::load(missing).check_model(tiny); }, missing, "output");
  // not a calibration file / not JSON
  write_json(missing, nlohmann::json{{"format", "something-else"}});
  expect_error_naming([&] { ActCalibration::load(missing); }, missing, "not a lowbit activation calibration");
  write_json(missing, nlohmann::json{{"format", 5}});
  expect_error_naming([&] { ActCalibration::load(missing); }, missing, "malformed");
  j = cal.to_json();
  j["shape"].erase("dim");
  write_json(missing, j);
  expect_error_naming([&] { ActCalibration::load(missing); }, missing, "malformed");
  std::ofstream(missing) << "{ not json";
  expect_error_naming([&] { ActCalibration::load(missing); }, missing, "JSON");
  expect_error_naming([&] { ActCalibration::load(temp_path("absent.json")); }, "absent.json", "cannot read");
  std::remove(path.c_str());
  std::remove(missing.c_str());
}

TEST(EvalCalibration, RunnerNeedsAMatchingCalibrationForStaticActs) {
  LOWBIT_REQUIRE_FILE(test::stories260k());
  Model m = load_stories();
  RunnerOptions ro;
  ro.max_seq_len = 64;
  ro.acts = Format::INT8_STATIC;
  EXPECT_THROW(make_cpu_runner(m, ro), Error);  // no calibration
  ActCalibration other = ActCalibration::for_model(preset_config("tiny"));
  for (auto& [name, x] : other.absmax) x = 1.0f;
  other.source = "tiny.json";
  ro.calibration = std::make_shared<ActCalibration>(other);
  expect_error_naming([&] { make_cpu_runner(m, ro); }, "tiny.json", "n_layers");
}

TEST(EvalCalibration, StaticActsUseTheCalibratedRanges) {
  // int8-static / fp8-static with ranges recorded on the same text, against per-token int8, all against
  // fp32 activations. Recorded on the same text nothing saturates, and a tensor's scale is never finer
  // than a token's: static int8 is coarser than per-token int8. Ranges 1000x too wide make the grid 1000x
  // coarser; 1000x too narrow saturate almost everything: both must be far worse than the true ranges,
  // which shows the runner uses the file's values layer by layer.
  LOWBIT_REQUIRE_FILE(test::stories260k());
  Model m = load_stories();
  const std::vector<int> toks = story_tokens(120);
  CalibrateOptions co;
  co.ctx = 128;
  co.bos_id = 1;
  auto cal = std::make_shared<ActCalibration>(calibrate_activations(m, toks, co));
  auto scaled = [&](float f) {
    auto c = std::make_shared<ActCalibration>(*cal);
    for (auto& [name, x] : c->absmax) x *= f;
    return c;
  };
  RunnerOptions base;
  base.max_seq_len = 128;
  auto with = [&](Format acts, std::shared_ptr<const ActCalibration> c) {
    RunnerOptions o = base;
    o.acts = acts;
    o.calibration = std::move(c);
    return make_cpu_runner(m, o);
  };
  auto ref = make_cpu_runner(m, base);
  auto dyn = with(Format::INT8, nullptr), stat = with(Format::INT8_STATIC, cal), fp8s = with(Format::FP8_STATIC, cal);
  auto wide = with(Format::INT8_STATIC, scaled(1000.0f)), narrow = with(Format::INT8_STATIC, scaled(0.001f));
  QualityOptions qo;
  qo.ctx = 128;
  qo.bos_id = 1;
  const QualityResult r =
      evaluate_quality(*ref, {dyn.get(), stat.get(), fp8s.get(), wide.get(), narrow.get()}, toks, qo);
  for (size_t i = 0; i < r.errors.size(); ++i) {
    EXPECT_TRUE(r.errors[i].empty()) << r.errors[i];
    EXPECT_GT(r.configs[i].mean_kl(), 0.0) << i;  // quantization changed something
  }
  EXPECT_LT(r.configs[0].mean_kl(), r.configs[1].mean_kl());
  for (size_t good : {1, 2})
    for (size_t bad : {3, 4}) EXPECT_LT(10.0 * r.configs[good].mean_kl(), r.configs[bad].mean_kl()) << good << " " << bad;
}

}  // namespace
}  // namespace lowbit
