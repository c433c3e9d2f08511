// lowbit bench on the CPU with a tiny real model: the table's shape and files (speed is measured on the
// GPU machine, never asserted here).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "bench/survey.h"

using namespace lowbit;
using namespace lowbit::test;

TEST(BenchCli, WritesMarkdownJsonCsv) {
  LOWBIT_REQUIRE_FILE(stories260k());
  const std::string dir = std::filesystem::temp_directory_path() / "lowbit_bench_test";
  std::filesystem::create_directories(dir);
  CmdResult r = run_cli("bench --model " + stories260k() + " --formats bf16,int8,nvfp4 --reps 2 --new-tokens 6 " +
                        "--device cpu --json " + dir + "/t.json --csv " + dir + "/t.csv --md " + dir + "/t.md");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("| acts | weights | mode | TPS tok/s | TTFT ms | TPOT ms | prefill tok/s | decode tok/s |"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| bf16 | nvfp4 | cpu |"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_text_file(dir + "/t.json"));
  ASSERT_EQ(j["rows"].size(), 3u);
  for (const auto& row : j["rows"]) {
    EXPECT_FALSE(row.contains("error")) << row.dump();
    EXPECT_EQ(row["reps"].size(), 2u);
    EXPECT_GT(row["tps"]["median"].get<double>(), 0.0);
    EXPECT_LE(row["tps"]["min"].get<double>(), row["tps"]["max"].get<double>());
    EXPECT_GT(row["weight_bytes_per_token"].get<double>(), 0.0);
  }
  EXPECT_EQ(j["new_tokens"], 6);
  EXPECT_FALSE(j["commit"].get<std::string>().empty());
  const std::string csv = read_text_file(dir + "/t.csv");
  EXPECT_EQ(csv.rfind("acts,weights,group,mode,tps,", 0), 0u) << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  EXPECT_EQ(read_text_file(dir + "/t.md"), r.out.substr(1));
  std::filesystem::remove_all(dir);
}

TEST(BenchCli, UnknownFormatOrModeIsAnError) {
  CmdResult r = run_cli("bench --formats int5 --device cpu");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("int5"), std::string::npos) << r.err;
  r = run_cli("bench --modes turbo --device cpu");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("turbo"), std::string::npos) << r.err;
}

TEST(BenchCli, UnwritableTablePathFailsBeforeTheRun) {
  // the tables are written after every row; a path that cannot be written fails before the first one
  LOWBIT_REQUIRE_FILE(stories260k());
  const CmdResult r = run_cli("bench --model " + stories260k() +
                              " --formats bf16 --reps 1 --new-tokens 4 --device cpu --json /nonexistent-dir/t.json");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("/nonexistent-dir/t.json"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("bench [1/1]"), std::string::npos) << "a row ran before the check: " << r.err;
}

TEST(Survey, StatisticsAndBandwidth) {
  const Stat s = stat_of({3.0, 1.0, 2.0, 10.0});
  EXPECT_DOUBLE_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 10.0);
  SurveyRow row;
  row.weight_bytes_per_token = 1e9;
  row.kv_bytes_per_position = 1e3;
  GenerationStats g;
  g.prompt_tokens = 6;
  g.new_tokens = 201;
  g.prefill_s = 0.01;
  g.decode_s = 0.4;  // 200 decode tokens: TPOT 2 ms
  row.reps = {g};
  // mean context 6 + 100.5 positions: 1e9 + 1e3 * 106.5 bytes per step over 2 ms
  EXPECT_NEAR(achieved_gbps(row), (1e9 + 1e3 * 106.5) / 2e-3 / 1e9, 1e-9);
}

TEST(BenchCli, TimelineAndProfileSayTheyNeedCuda) {
  LOWBIT_REQUIRE_FILE(stories260k());
  CmdResult r = run_cli("bench --model " + stories260k() + " --formats bf16 --reps 1 --new-tokens 2 --device cpu --timeline");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("--timeline times CUDA's kernels"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("step timeline"), std::string::npos) << r.out;
}

TEST(BenchCli, SettingsNeedCudaAndKnobNames) {
  LOWBIT_REQUIRE_FILE(stories260k());
  CmdResult r = run_cli("bench --model " + stories260k() +
                        " --formats bf16 --reps 1 --new-tokens 2 --device cpu --settings 'LOWBIT_GEMV_REST=late;'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("nothing to compare on the CPU"), std::string::npos) << r.err;
  r = run_cli("bench --model " + stories260k() + " --formats bf16 --device cpu --settings 'REST=late'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("'REST' is not a LOWBIT_* variable"), std::string::npos) << r.err;
}
