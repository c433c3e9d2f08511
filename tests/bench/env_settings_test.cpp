// lowbit bench --settings: parsing the A/B settings and switching the environment between them.
#include <gtest/gtest.h>

#include <cstdlib>

#include "bench/survey.h"
#include "util/error.h"

using namespace lowbit;

TEST(EnvSettings, ParsesSettingsAndDefaults) {
  const auto s = parse_env_settings("LOWBIT_GEMV_REST=late LOWBIT_GEMV_EARLY=2;;  LOWBIT_PDL=0 ");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].label, "LOWBIT_GEMV_REST=late LOWBIT_GEMV_EARLY=2");
  ASSERT_EQ(s[0].vars.size(), 2u);
  EXPECT_EQ(s[0].vars[1].first, "LOWBIT_GEMV_EARLY");
  EXPECT_EQ(s[0].vars[1].second, "2");
  EXPECT_EQ(s[1].label, "defaults");
  EXPECT_TRUE(s[1].vars.empty());
  EXPECT_EQ(s[2].label, "LOWBIT_PDL=0");
  // absent --settings: one setting, the defaults
  const auto none = parse_env_settings("");
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].label, "defaults");
}

TEST(EnvSettings, RejectsBadWords) {
  EXPECT_THROW(parse_env_settings("LOWBIT_GEMV_REST"), Error);               // no '='
  EXPECT_THROW(parse_env_settings("=late"), Error);                          // no name
  EXPECT_THROW(parse_env_settings("PATH=/tmp"), Error);                      // not a knob
  EXPECT_THROW(parse_env_settings("LOWBIT_PDL=0 LOWBIT_PDL=1"), Error);      // twice
  try {
    parse_env_settings("LOWBIT_X=1;HOME=/");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'HOME'"), std::string::npos) << e.what();
  }
}

TEST(EnvSettings, AppliesOneSettingAndRestores) {
  setenv("LOWBIT_TEST_A", "orig", 1);
  unsetenv("LOWBIT_TEST_B");
  const auto all = parse_env_settings("LOWBIT_TEST_A=1 LOWBIT_TEST_B=x;LOWBIT_TEST_B=y;");
  const auto saved = save_env(all);
  ASSERT_EQ(saved.size(), 2u);
  apply_env_setting(all[0], saved);
  EXPECT_STREQ(std::getenv("LOWBIT_TEST_A"), "1");
  EXPECT_STREQ(std::getenv("LOWBIT_TEST_B"), "x");
  apply_env_setting(all[1], saved);  // A back to its value, B changed
  EXPECT_STREQ(std::getenv("LOWBIT_TEST_A"), "orig");
  EXPECT_STREQ(std::getenv("LOWBIT_TEST_B"), "y");
  apply_env_setting(all[2], saved);  // the defaults: as before
  EXPECT_STREQ(std::getenv("LOWBIT_TEST_A"), "orig");
  EXPECT_EQ(std::getenv("LOWBIT_TEST_B"), nullptr);
  unsetenv("LOWBIT_TEST_A");
}
