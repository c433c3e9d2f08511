// `lowbit eval` and `lowbit calibrate` end to end on stories260K (small enough to run in a second): the
// markdown columns, the JSON keys, static and dynamic activation rows, --row specs, and the errors.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../test_util.h"

namespace lowbit {
namespace {

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    LOWBIT_REQUIRE_FILE(test::stories260k());
    LOWBIT_REQUIRE_FILE(test::tok512());
    dir_ = ::testing::TempDir() + "/lowbit_eval_cli_" + std::to_string(::getpid());
    std::system(("mkdir -p " + dir_).c_str());
    std::ofstream t(text());
    for (int i = 0; i < 6; ++i)
      t << "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
           "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n";
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string text() const { return dir_ + "/text.txt"; }
  std::string path(const std::string& n) const { return dir_ + "/" + n; }
  std::string model_args() const {
    return " --model " + test::stories260k() + " --tokenizer " + test::tok512() + " --device cpu";
  }
  test::CmdResult calibrate(const std::string& out) {
    return test::run_cli("calibrate --model " + test::stories260k() + " --tokenizer " + test::tok512() +
                         " --text " + text() + " --ctx 64 --out " + out + " -q");
  }
  static std::string read(const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // table rows of the markdown (lines starting with "| " after the separator)
  static std::vector<std::string> table_rows(const std::string& md) {
    std::vector<std::string> rows;
    std::istringstream in(md);
    std::string line;
    bool body = false;
    while (std::getline(in, line)) {
      if (line.rfind("|---", 0) == 0) {
        body = true;
        continue;
      }
      if (body && line.rfind("| ", 0) == 0) rows.push_back(line);
    }
    return rows;
  }
  std::string dir_;
};

TEST_F(EvalCli, TableColumnsJsonKeysAndStaticVersusDynamicRows) {
  const std::string cal = path("cal.json");
  const test::CmdResult c = calibrate(cal);
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_NE(c.out.find("calibration: 36 linear inputs"), std::string::npos) << c.out;  // 5 layers x 7 + output

  const std::string json = path("eval.json");
  const test::CmdResult r = test::run_cli("eval" + model_args() + " --text " + text() +
                                          " --weights int8,int4 --acts none,int8,int8-static --calibration " + cal +
                                          " --ctx 64 --windows 2 -q --json " + json);
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("| weights | acts | kv | lm_head | embeddings | bits/w linear | bits/w model | perplexity | "
                       "Δppl | mean KL | top-1 |"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("2 windows of 64 positions (BOS + 63 text tokens), non-overlapping"), std::string::npos) << r.out;
  const std::vector<std::string> rows = table_rows(r.out);
  ASSERT_EQ(rows.size(), 7u) << r.out;  // the reference + 2 weights x 3 activation formats
  EXPECT_EQ(rows[0].rfind("| f32 (reference) | none | none |", 0), 0u) << rows[0];
  EXPECT_EQ(rows[1].rfind("| int8 | none | none |", 0), 0u) << rows[1];
  EXPECT_EQ(rows[2].rfind("| int8 | int8 | none |", 0), 0u) << rows[2];
  EXPECT_EQ(rows[3].rfind("| int8 | int8-static | none |", 0), 0u) << rows[3];
  EXPECT_EQ(rows[4].rfind("| int4 g128 | none | none |", 0), 0u) << rows[4];
  for (const auto& row : rows) EXPECT_EQ(row.find("error"), std::string::npos) << row;

  const nlohmann::json j = nlohmann::json::parse(read(json));
  for (const char* k : {"date", "commit", "command", "device", "model", "text", "reference", "text_tokens",
                        "scored_positions", "ctx", "stride", "windows", "bos", "kl_units"})
    EXPECT_TRUE(j["meta"].contains(k)) << k;
  EXPECT_EQ(j["meta"]["ctx"], 64);
  EXPECT_EQ(j["meta"]["windows"], 2);
  EXPECT_EQ(j["meta"]["scored_positions"], 126);
  ASSERT_EQ(j["rows"].size(), 7u);
  for (const auto& row : j["rows"]) {
    for (const char* k : {"reference", "weights", "group", "acts", "kv", "lm_head", "embeddings",
                          "bits_per_weight_linear", "bits_per_weight_model", "positions", "perplexity", "kl_mean",
                          "kl_max", "top1", "error"})
      EXPECT_TRUE(row.contains(k)) << k;
    EXPECT_EQ(row["positions"], 126);
    EXPECT_GE(row["kl_mean"].get<double>(), 0.0);
  }
  EXPECT_EQ(j["rows"][0]["kl_mean"], 0.0);
  EXPECT_EQ(j["rows"][3]["acts"], "int8-static");
  // int8: 8 bits a weight plus one fp32 scale a row. stories260K: dim 64, hidden 172, kv_dim 32; per layer
  // wq, wo [64, 64], wk, wv [32, 64], w1, w3 [172, 64], w2 [64, 172]
  const double numel = 2 * 64 * 64 + 2 * 32 * 64 + 2 * 172 * 64 + 64 * 172, nrows = 64 + 64 + 32 + 32 + 172 + 172 + 64;
  EXPECT_DOUBLE_EQ(j["rows"][1]["bits_per_weight_linear"].get<double>(), 8.0 + 32.0 * nrows / numel);
  EXPECT_DOUBLE_EQ(j["rows"][0]["bits_per_weight_linear"].get<double>(), 32.0);
}

TEST_F(EvalCli, RowSpecsSetEveryKnob) {
  const std::string json = path("rows.json");
  const test::CmdResult r = test::run_cli(
      "eval" + model_args() + " --text " + text() + " --ctx 64 --windows 1 -q --json " + json +
      " --row 'w=int4-hqq g=32 kv=int8 head=int8 emb=fp8-e4m3' --row mxfp4+search --row 'kv=nvfp4' --row f32 --row head=int8 --row emb=int8");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(read(json));
  ASSERT_EQ(j["rows"].size(), 7u);
  const auto& a = j["rows"][1];
  EXPECT_EQ(a["weights"], "int4-hqq");
  EXPECT_EQ(a["group"], 32);
  EXPECT_EQ(a["kv"], "int8");
  EXPECT_EQ(a["lm_head"], "int8");
  EXPECT_EQ(a["embeddings"], "fp8-e4m3");
  EXPECT_LT(a["bits_per_weight_model"].get<double>(), j["rows"][0]["bits_per_weight_model"].get<double>());
  EXPECT_EQ(j["rows"][2]["weights"], "mxfp4+search");
  EXPECT_EQ(j["rows"][3]["weights"], "f32");  // KV only: the weights stay as loaded
  EXPECT_EQ(j["rows"][3]["kv"], "nvfp4");
  EXPECT_GT(j["rows"][3]["kl_mean"].get<double>(), 0.0);
  // f32 weights are the loaded weights: a second runner on a copy of the model gives the same logits
  EXPECT_EQ(j["rows"][4]["kl_mean"].get<double>(), 0.0);
  EXPECT_EQ(j["rows"][4]["perplexity"].get<double>(), j["rows"][0]["perplexity"].get<double>());
  // the classifier alone (stories260K ties it to the embeddings: it gets its own int8 copy) ...
  EXPECT_EQ(j["rows"][5]["lm_head"], "int8");
  EXPECT_EQ(j["rows"][5]["embeddings"], "-");
  EXPECT_GT(j["rows"][5]["kl_mean"].get<double>(), 0.0);
  EXPECT_EQ(j["rows"][5]["bits_per_weight_linear"].get<double>(), 32.0);
  // ... and the embedding table alone (tied: the classifier reads the same int8 table)
  EXPECT_EQ(j["rows"][6]["embeddings"], "int8");
  EXPECT_GT(j["rows"][6]["kl_mean"].get<double>(), 0.0);
  EXPECT_LT(j["rows"][6]["bits_per_weight_model"].get<double>(), j["rows"][0]["bits_per_weight_model"].get<double>());
}

TEST_F(EvalCli, PassesOfFewerRowsGiveTheSameTable) {
  const std::string rows = " --row int8 --row 'w=int4 kv=int8' --row 'a=fp8-e4m3' --ctx 64 --windows 2 -q";
  const test::CmdResult one = test::run_cli("eval" + model_args() + " --text " + text() + rows);
  const test::CmdResult three = test::run_cli("eval" + model_args() + " --text " + text() + rows + " --rows-per-pass 1");
  ASSERT_EQ(one.status, 0) << one.err;
  ASSERT_EQ(three.status, 0) << three.err;
  EXPECT_EQ(table_rows(one.out), table_rows(three.out));
  EXPECT_EQ(table_rows(one.out).size(), 4u);
}

TEST_F(EvalCli, StridedWindowsScoreEveryTokenOnce) {
  const std::string json = path("stride.json");
  const test::CmdResult r = test::run_cli("eval" + model_args() + " --text " + text() +
                                          " --weights int8 --ctx 64 --stride 32 -q --json " + json);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("stride 32 (positions already scored are warm-up context)"), std::string::npos) << r.out;
  const nlohmann::json j = nlohmann::json::parse(read(json));
  // with a BOS every text token has a predictor, and each is scored once
  EXPECT_EQ(j["meta"]["scored_positions"], j["meta"]["text_tokens"]);
  EXPECT_EQ(j["meta"]["stride"], 32);
  EXPECT_EQ(j["rows"][1]["positions"], j["meta"]["text_tokens"]);
}

TEST_F(EvalCli, Errors) {
  // nothing to evaluate
  test::CmdResult r = test::run_cli("eval" + model_args() + " --text " + text() + " -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("nothing to evaluate"), std::string::npos) << r.err;
  // a bad row key
  r = test::run_cli("eval" + model_args() + " --text " + text() + " --row 'w=int4 colour=red' -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("unknown key 'colour'"), std::string::npos) << r.err;
  // static activations without a calibration: that row fails with the reason, the others are measured
  r = test::run_cli("eval" + model_args() + " --text " + text() + " --acts int8,int8-static --ctx 64 --windows 1 -q");
  EXPECT_EQ(r.status, 1);
  const std::vector<std::string> rows = table_rows(r.out);
  ASSERT_EQ(rows.size(), 3u) << r.out;
  EXPECT_EQ(rows[1].find("error"), std::string::npos) << rows[1];
  EXPECT_NE(rows[2].find("error: --acts int8-static: static activation quantization needs"), std::string::npos)
      << rows[2];
  // a calibration file of another model shape
  const std::string cal = path("cal.json");
  ASSERT_EQ(calibrate(cal).status, 0);
  nlohmann::json j = nlohmann::json::parse(read(cal));
  j["shape"]["n_layers"] = 7;
  std::ofstream(path("bad.json")) << j.dump();
  r = test::run_cli("eval" + model_args() + " --text " + text() + " --acts int8-static --calibration " +
                    path("bad.json") + " --ctx 64 --windows 1 -q");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find(path("bad.json") + ": recorded for a model with n_layers 7"), std::string::npos) << r.out;
  // calibrate needs --out
  r = test::run_cli("calibrate --model " + test::stories260k() + " --text " + text());
  EXPECT_NE(r.status, 0);
}

}  // namespace
}  // namespace lowbit
