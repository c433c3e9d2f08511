// `lowbit quant-tensor` through the built CLI: its output equals the library's dequantize(quantize(x)),
// --codes writes codes + scales (+ offsets, + the fp32 tensor scale), and bad input gets a clear error.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/qtensor.h"
#include "formats_test_util.h"
#include "../test_util.h"
#include "util/mapped_file.h"

namespace lowbit {
namespace {

class QuantTensorCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lowbit_qt_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const auto& f : files_) unlink(f.c_str());
    rmdir(dir_.c_str());
  }
  std::string path(const std::string& name) {
    files_.push_back(dir_ + "/" + name);
    return files_.back();
  }
  static void write_bytes(const std::string& p, const void* data, size_t n) {
    FILE* f = std::fopen(p.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    if (n) {
      ASSERT_EQ(std::fwrite(data, 1, n, f), n);
    }
    std::fclose(f);
  }
  static std::string read_bytes(const std::string& p) { return read_text_file(p); }

  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(QuantTensorCli, OutputEqualsLibraryForEveryFormat) {
  const std::vector<float> x = test::gaussian(300, 42);  // 300: partial last groups/blocks
  const std::string in = path("x.f32"), out = path("y.f32"), codes = path("c.bin");
  write_bytes(in, x.data(), x.size() * 4);
  for (const FormatInfo& fi : all_formats()) {
    const test::CmdResult r = test::run_cli(std::string("quant-tensor --format ") + fi.name + " --input " + in +
                                            " --output " + out + " --codes " + codes);
    ASSERT_EQ(r.status, 0) << fi.name << ": " << r.err;
    EXPECT_NE(r.out.find(fi.name), std::string::npos) << r.out;
    const QTensor t = quantize(x.data(), 1, int64_t(x.size()), fi.id);
    const std::vector<float> want = dequantize(t);
    const std::string got = read_bytes(out);
    ASSERT_EQ(got.size(), want.size() * 4) << fi.name;
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size()), 0) << fi.name;
    std::string expect_codes(reinterpret_cast<const char*>(t.codes.data), t.codes.size);
    expect_codes.append(reinterpret_cast<const char*>(t.scales.data), t.scales.size);
    expect_codes.append(reinterpret_cast<const char*>(t.offsets.data), t.offsets.size);
    if (fi.scheme == ScaleScheme::TensorF32 || fi.scheme == ScaleScheme::BlockE4M3F32)
      expect_codes.append(reinterpret_cast<const char*>(&t.tensor_scale), 4);
    EXPECT_EQ(read_bytes(codes), expect_codes) << fi.name;
  }
}

TEST_F(QuantTensorCli, GroupAndScaleRuleOptions) {
  std::vector<float> x(64, 0.0f);
  x[0] = 7.0f;  // MXFP4 amax-7 block: rceil decodes 7 as 8
  const std::string in = path("x.f32"), out = path("y.f32");
  write_bytes(in, x.data(), x.size() * 4);
  test::CmdResult r = test::run_cli("quant-tensor --format mxfp4 --scale-rule rceil --input " + in + " --output " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  float y0;
  std::memcpy(&y0, read_bytes(out).data(), 4);
  EXPECT_EQ(y0, 8.0f);
  r = test::run_cli("quant-tensor --format int4 --group 32 --input " + in + " --output " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::vector<float> want = dequantize(quantize(x.data(), 1, 64, Format::INT4, QuantOptions{.group = 32}));
  EXPECT_EQ(std::memcmp(read_bytes(out).data(), want.data(), 64 * 4), 0);
  r = test::run_cli("quant-tensor --format mxfp4 --group 32 --input " + in + " --output " + out);
  EXPECT_EQ(r.status, 0) << r.err;  // the fixed block size is accepted
}

TEST_F(QuantTensorCli, ClearErrors) {
  const std::string in = path("x.f32"), odd = path("odd.f32"), empty = path("empty.f32"), out = path("y.f32");
  const float x[4] = {1, 2, 3, 4};
  write_bytes(in, x, sizeof x);
  write_bytes(odd, x, 7);
  write_bytes(empty, x, 0);
  struct Case {
    std::string args, message;
  };
  const Case cases[] = {
      {"--format int5 --input " + in + " --output " + out, "unknown format 'int5'"},
      {"--format int5 --input " + in + " --output " + out, "mxfp4"},  // the known names are listed
      {"--format int4 --input " + odd + " --output " + out, "not a whole number of float32"},
      {"--format int4 --input " + empty + " --output " + out, "empty input"},
      {"--format int4 --group 48 --input " + in + " --output " + out, "multiple of 32"},
      {"--format int4 --group 0 --input " + in + " --output " + out, "multiple of 32"},
      {"--format mxfp4 --group 64 --input " + in + " --output " + out, "fixed block of 32"},
      {"--format fp8-e4m3 --group 64 --input " + in + " --output " + out, "has no groups"},
      {"--format int8 --scale-rule rceil --input " + in + " --output " + out, "MX formats only"},
      {"--format mxfp4 --scale-rule ceil --input " + in + " --output " + out, "floor or rceil"},
      {"--format int4 --input " + dir_ + "/missing.f32 --output " + out, "cannot open"},
      {"--format int4 --input " + in + " --output " + dir_ + "/no/such/dir/y.f32", "cannot open for writing"},
  };
  for (const Case& c : cases) {
    const test::CmdResult r = test::run_cli("quant-tensor " + c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\nstderr: " << r.err;
  }
}

}  // namespace
}  // namespace lowbit
