#include "server/transport/http2_frame_scanner.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace jobwire::test {
namespace {

std::string Frame(uint8_t type, uint32_t stream, const std::string& payload) {
  std::string out;
  const uint32_t len = static_cast<uint32_t>(payload.size());
  out.push_back(static_cast<char>(len >> 16));
  out.push_back(static_cast<char>(len >> 8));
  out.push_back(static_cast<char>(len));
  out.push_back(static_cast<char>(type));
  out.push_back(0);
  out.push_back(static_cast<char>(stream >> 24));
  out.push_back(static_cast<char>(stream >> 16));
  out.push_back(static_cast<char>(stream >> 8));
  out.push_back(static_cast<char>(stream));
  return out + payload;
}

std::string Attack(uint32_t first_stream, int pairs) {
  std::string out;
  for (int i = 0; i < pairs; ++i) {
    const uint32_t id = first_stream + 2 * i;
    out += Frame(kHttp2Headers, id, "headers block");
    out += Frame(kHttp2RstStream, id, std::string("\0\0\0\x08", 4));
  }
  return out;
}

const absl::Time kStart = absl::FromUnixSeconds(1000000);

TEST(Http2FrameScannerTest, FindsTheSameFramesHoweverTheBytesAreSplit) {
  const std::string bytes = std::string(kHttp2ClientPreface) +
                            Frame(0x4, 0, "") +
                            Frame(kHttp2Headers, 1, std::string(300, 'h')) +
                            Frame(0x0, 1, std::string(70000 % 16384, 'd')) +
                            Frame(kHttp2RstStream, 1, std::string(4, '\0'));
  for (size_t piece : {bytes.size(), size_t{1}, size_t{7}, size_t{9}}) {
    Http2FrameScanner scanner(Http2FrameScanner::Start::kClientPreface);
    std::vector<Http2FrameHeader> seen;
    for (size_t at = 0; at < bytes.size(); at += piece) {
      const std::string part = bytes.substr(at, piece);
      EXPECT_EQ(scanner.Scan(part,
                             [&](const Http2FrameHeader& h) {
                               seen.push_back(h);
                               return true;
                             }),
                part.size());
    }
    ASSERT_EQ(seen.size(), 4u) << "pieces of " << piece;
    EXPECT_EQ(seen[0].type, 0x4);
    EXPECT_EQ(seen[1].type, kHttp2Headers);
    EXPECT_EQ(seen[1].length, 300u);
    EXPECT_EQ(seen[1].stream_id, 1u);
    EXPECT_EQ(seen[2].length, 70000u % 16384);
    EXPECT_EQ(seen[3].type, kHttp2RstStream);
    EXPECT_TRUE(scanner.at_frame_boundary());
    EXPECT_FALSE(scanner.not_http2());
  }
}

TEST(Http2FrameScannerTest, KnowsWhenItIsInsideAFrame) {
  Http2FrameScanner scanner(Http2FrameScanner::Start::kFrames);
  const std::string frame = Frame(0x0, 3, "payload");
  auto all = [](const Http2FrameHeader&) { return true; };
  EXPECT_TRUE(scanner.at_frame_boundary());
  scanner.Scan(frame.substr(0, 4), all);
  EXPECT_FALSE(scanner.at_frame_boundary());
  scanner.Scan(frame.substr(4, 8), all);
  EXPECT_FALSE(scanner.at_frame_boundary());
  scanner.Scan(frame.substr(12), all);
  EXPECT_TRUE(scanner.at_frame_boundary());
}

TEST(Http2FrameScannerTest, BytesWithoutThePrefaceAreNotParsed) {
  Http2FrameScanner scanner(Http2FrameScanner::Start::kClientPreface);
  int frames = 0;
  const std::string bytes = "GET / HTTP/1.1\r\n\r\n" + Attack(1, 10);
  EXPECT_EQ(scanner.Scan(bytes,
                         [&](const Http2FrameHeader&) {
                           ++frames;
                           return false;
                         }),
            bytes.size());
  EXPECT_TRUE(scanner.not_http2());
  EXPECT_EQ(frames, 0);
}

TEST(Http2ClientGuardTest, RefusesTheFrameThatGoesPastTheBudget) {
  Http2ClientGuard guard({/*max_resets=*/100, absl::Seconds(10)}, kStart);
  const std::string start =
      std::string(kHttp2ClientPreface) + Frame(0x4, 0, "");
  const std::string allowed = start + Attack(1, 100);
  const std::string over = Attack(201, 5);
  EXPECT_EQ(guard.Check(allowed + over, kStart),
            allowed.size() + Frame(kHttp2Headers, 201, "headers block").size());
  EXPECT_TRUE(guard.over_budget());
  EXPECT_EQ(guard.streams_reset(), 100);
  EXPECT_EQ(guard.streams_opened(), 101);  // the last one's HEADERS passed
  EXPECT_EQ(guard.last_stream_id(), 201u);
  EXPECT_EQ(guard.Check(Attack(301, 1), kStart), 0u);
}

TEST(Http2ClientGuardTest, FrameOverTheBudgetSplitAcrossReadsIsRefused) {
  Http2ClientGuard guard({/*max_resets=*/1, absl::Seconds(10)}, kStart);
  const std::string bytes = std::string(kHttp2ClientPreface) + Attack(1, 2);
  const size_t second_reset = bytes.size() - 13;
  // The over-budget RST_STREAM header begins in this read and ends in the
  // next: this read passes whole (4 bytes of a header are no frame yet),
  // the next read's bytes none.
  EXPECT_EQ(guard.Check(bytes.substr(0, second_reset + 4), kStart),
            second_reset + 4);
  EXPECT_FALSE(guard.over_budget());
  EXPECT_EQ(guard.Check(bytes.substr(second_reset + 4), kStart), 0u);
  EXPECT_TRUE(guard.over_budget());
}

TEST(Http2ClientGuardTest, BudgetComesBackOverTheWindow) {
  Http2ClientGuard guard({/*max_resets=*/10, absl::Seconds(10)}, kStart);
  std::string bytes = std::string(kHttp2ClientPreface) + Attack(1, 10);
  EXPECT_EQ(guard.Check(bytes, kStart), bytes.size());
  // Half a window later, half the budget is back.
  bytes = Attack(21, 5);
  EXPECT_EQ(guard.Check(bytes, kStart + absl::Seconds(5)), bytes.size());
  EXPECT_FALSE(guard.over_budget());
  bytes = Attack(31, 1);
  EXPECT_LT(guard.Check(bytes, kStart + absl::Seconds(5)), bytes.size());
  EXPECT_TRUE(guard.over_budget());
}

TEST(Http2ClientGuardTest, ManyStreamsWithoutResetsAreNotLimited) {
  Http2ClientGuard guard({/*max_resets=*/1, absl::Seconds(10)}, kStart);
  std::string bytes(kHttp2ClientPreface);
  for (uint32_t id = 1; id < 20000; id += 2) {
    bytes += Frame(kHttp2Headers, id, "h") + Frame(0x0, id, "data");
  }
  EXPECT_EQ(guard.Check(bytes, kStart), bytes.size());
  EXPECT_FALSE(guard.over_budget());
  EXPECT_EQ(guard.streams_opened(), 10000);
}

TEST(Http2GoAwayFrameTest, IsOneFrameOnStreamZero) {
  const std::string frame =
      Http2GoAwayFrame(201, kHttp2EnhanceYourCalm, "calm");
  Http2FrameScanner scanner(Http2FrameScanner::Start::kFrames);
  std::vector<Http2FrameHeader> seen;
  EXPECT_EQ(scanner.Scan(frame,
                         [&](const Http2FrameHeader& h) {
                           seen.push_back(h);
                           return true;
                         }),
            frame.size());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, kHttp2GoAway);
  EXPECT_EQ(seen[0].stream_id, 0u);
  EXPECT_EQ(seen[0].length, 12u);
  EXPECT_TRUE(scanner.at_frame_boundary());
  EXPECT_EQ(frame.substr(9, 8), std::string("\0\0\0\xc9\0\0\0\x0b", 8));
  EXPECT_EQ(frame.substr(17), "calm");
}

}  // namespace
}  // namespace jobwire::test
