// The step timeline's summary (lowbit bench --timeline): per-op averages over launches from per-op stamps,
// on hand-made stamps whose waits, stagings and bodies are known (the stamps themselves are written by the
// CUDA kernels and checked on the GPU machine by the bench's output).
#include <gtest/gtest.h>

#include "bench/survey.h"

using namespace lowbit;

namespace {

StepOpTimes op(const std::string& name, double start, double released, double staged, double end, int blocks = 128,
               double arrived = 0, double reduced = 0) {
  StepOpTimes o;
  o.name = name;
  o.stamped = true;
  o.blocks = blocks;
  o.start = start;
  o.released = released;
  o.staged = staged;
  o.end = end;
  o.arrived = arrived;
  o.reduced = reduced;
  return o;
}

StepOpTimes unstamped(const std::string& name) {
  StepOpTimes o;
  o.name = name;
  return o;
}

}  // namespace

TEST(StepTimeline, AveragesPerOpOverLaunches) {
  // embed (no stamps), then two layers of gemv (inner stamps) and attn, then sample (no stamps)
  const std::vector<StepOpTimes> ops = {
      unstamped("embed"),
      op("gemv", 0.0, 2.0, 5.0, 10.0, 128, 3.0, 4.0),  // first stamped op: its span counts from its own start
      op("attn", 8.0, 11.0, 12.0, 15.0, 8),             // wait 1 after gemv's end (10), stage 1, body 3
      op("gemv", 12.0, 16.0, 20.0, 30.0, 130, 18.0, 19.0),  // wait 1, stage 4, body 10; inner 2 / 1
      op("attn", 29.0, 32.0, 34.0, 38.0, 8),            // wait 2, stage 2, body 4
      unstamped("sample"),
  };
  const StepTimeline t = summarize_step_timeline(ops);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].name, "gemv");
  EXPECT_EQ(t.rows[1].name, "attn");
  EXPECT_EQ(t.unstamped, (std::vector<std::string>{"embed", "sample"}));
  EXPECT_DOUBLE_EQ(t.stamped_span, 38.0);

  const StepTimelineRow& g = t.rows[0];
  EXPECT_EQ(g.launches, 2);
  EXPECT_EQ(g.blocks, 129);
  EXPECT_DOUBLE_EQ(g.resident, (2.0 + 4.0) / 2);
  EXPECT_DOUBLE_EQ(g.wait, (2.0 + 1.0) / 2);   // from its own start, then from attn's end (15)
  EXPECT_DOUBLE_EQ(g.stage, (3.0 + 4.0) / 2);
  EXPECT_DOUBLE_EQ(g.body, (5.0 + 10.0) / 2);
  EXPECT_DOUBLE_EQ(g.span, 10.0 + 15.0);       // the total over launches
  EXPECT_EQ(g.inner, 2);
  EXPECT_DOUBLE_EQ(g.arrived, (1.0 + 2.0) / 2);
  EXPECT_DOUBLE_EQ(g.reduced, (1.0 + 1.0) / 2);

  const StepTimelineRow& a = t.rows[1];
  EXPECT_EQ(a.launches, 2);
  EXPECT_EQ(a.blocks, 8);
  EXPECT_DOUBLE_EQ(a.wait, (1.0 + 2.0) / 2);
  EXPECT_DOUBLE_EQ(a.stage, (1.0 + 2.0) / 2);
  EXPECT_DOUBLE_EQ(a.body, (3.0 + 4.0) / 2);
  EXPECT_DOUBLE_EQ(a.span, 5.0 + 8.0);
  EXPECT_EQ(a.inner, 0);
  // the spans of the stamped ops add up to the stamped span
  EXPECT_DOUBLE_EQ(g.span + a.span, t.stamped_span);

  const std::string md = step_timeline_markdown(ops, "int4, position 9");
  EXPECT_NE(md.find("step timeline (int4, position 9;"), std::string::npos) << md;
  EXPECT_NE(md.find("| gemv | 2 | 129 | 3.00 | 1.50 | 3.50 (1.50, +1.00) | 7.50 (7.50) | 12.50 | 25.0 |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| attn | 2 | 8 |"), std::string::npos) << md;
  // multiprocessors that ran two of a launch's blocks: averaged per launch, shown beside the blocks
  std::vector<StepOpTimes> shared = ops;
  shared[1].doubled = 3;
  shared[3].doubled = 0;
  const StepTimeline ts = summarize_step_timeline(shared);
  EXPECT_DOUBLE_EQ(ts.rows[0].doubled, 1.5);
  EXPECT_DOUBLE_EQ(ts.rows[1].doubled, 0.0);
  const std::string mds = step_timeline_markdown(shared, "int4, position 9");
  EXPECT_NE(mds.find("| gemv | 2 | 129 (1.5 SMs x2) | 3.00 |"), std::string::npos) << mds;
  EXPECT_NE(mds.find("| attn | 2 | 8 | "), std::string::npos) << mds;
  EXPECT_NE(md.find("| stamped span | | | | | | | | 38.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("(not stamped, inside the next op's wait: embed, sample)"), std::string::npos) << md;
}

TEST(StepTimeline, LastWarpStamps) {
  // per-warp stamps (the stream GEMVs): the blocks' last warp past pdl_wait and with its x in, after the release
  std::vector<StepOpTimes> ops = {op("gemv", 0.0, 2.0, 6.0, 10.0, 128, 3.0, 5.0),
                                  op("gemv", 10.0, 11.0, 15.0, 20.0, 128, 12.0, 14.0)};
  ops[0].last_released = 2.5;
  ops[0].last_arrived = 4.5;
  ops[1].last_released = 11.5;
  ops[1].last_arrived = 14.5;
  ops[0].end_median = 8.0;  // the median block left 2 us before the last one; ops[1] has no median (its end)
  const StepTimeline t = summarize_step_timeline(ops);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].warps, 2);
  EXPECT_DOUBLE_EQ(t.rows[0].last_released, 0.5);
  EXPECT_DOUBLE_EQ(t.rows[0].last_arrived, (2.5 + 3.5) / 2);
  const std::string md = step_timeline_markdown(ops, "int4");
  EXPECT_DOUBLE_EQ(t.rows[0].body_median, (2.0 + 5.0) / 2);
  EXPECT_EQ(md.find("latest-exiting tenth"), std::string::npos) << md;  // none given: no straggler table
  ops[0].late_entry = 1.0;  // the first launch's stragglers entered 1 us late ...
  ops[0].late_release = 0.0;
  ops[0].late_staged = 0.5;
  ops[0].late_end = 2.0;
  ops[0].late_blocks = {0, 32};  // of 128 blocks: mean index 16 = 0.125 of them
  ops[0].late_sms = {7, 40};
  const StepTimeline tl = summarize_step_timeline(ops);
  EXPECT_EQ(tl.rows[0].late, 1);  // ... the second launch has no figures (fewer than 8 blocks, say)
  EXPECT_DOUBLE_EQ(tl.rows[0].late_end, 2.0);
  EXPECT_DOUBLE_EQ(tl.rows[0].late_index, 0.125);
  EXPECT_EQ(tl.rows[0].late_sms.at(7), 1);
  const std::string mdl = step_timeline_markdown(ops, "int4");
  EXPECT_NE(mdl.find("| gemv | +1.00 | +0.00 | +0.50 | +2.00 | 0.12 | 7: 1/1, 40: 1/1 |"), std::string::npos) << mdl;
  ops[1].late_end = 1.0;  // a second launch with stragglers on multiprocessor 40 again: it comes first
  ops[1].late_blocks = {64};
  ops[1].late_sms = {40};
  const std::string md2 = step_timeline_markdown(ops, "int4");
  EXPECT_NE(md2.find("| 40: 2/2, 7: 1/2 |"), std::string::npos) << md2;
  EXPECT_NE(md.find("| gemv | 2 | 128 | 1.50 | 1.50 | 4.00 (1.00; 0.50, 3.00; +2.00) | 4.50 (3.50) |"), std::string::npos)
      << md;
}

TEST(StepTimeline, NothingStamped) {
  const StepTimeline t = summarize_step_timeline({unstamped("embed"), unstamped("sample")});
  EXPECT_TRUE(t.rows.empty());
  EXPECT_DOUBLE_EQ(t.stamped_span, 0.0);
  EXPECT_EQ(t.unstamped.size(), 2u);
}
