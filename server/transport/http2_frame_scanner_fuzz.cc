// libFuzzer target: the HTTP/2 frame scanner and the rapid-reset guard
// (http2_frame_scanner.h), which read every byte a plaintext TCP client
// sends before gRPC does.
//
// Input: a budget byte, a piece-size byte, a flags byte, then the client's
// bytes (with the client preface put in front when flags say so, so most
// inputs reach the frames). Oracle, against a plain reference parse of the
// whole input at once: fed in pieces of the chosen size, the scanner sees
// the same frames, ends on a frame boundary exactly when the reference
// does, refuses non-HTTP/2 bytes as the reference does, and the guard lets
// through exactly the bytes before the first RST_STREAM past the budget
// (all of a piece in which that frame's header only began).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/transport/http2_frame_scanner.h"
#include "tests/fuzz/fuzz_util.h"

namespace jobwire {
namespace {

struct Reference {
  bool not_http2 = false;
  std::vector<Http2FrameHeader> frames;
  std::vector<size_t> starts;  // of each frame's header
  bool at_boundary = false;
};

Reference Parse(absl::string_view bytes) {
  Reference ref;
  const size_t preface = kHttp2ClientPreface.size();
  const size_t head = std::min(preface, bytes.size());
  if (bytes.substr(0, head) != kHttp2ClientPreface.substr(0, head)) {
    ref.not_http2 = true;
    return ref;
  }
  size_t at = preface;
  ref.at_boundary = bytes.size() == preface;
  while (at + kHttp2FrameHeaderSize <= bytes.size()) {
    const auto b = [&](size_t i) {
      return static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + i]));
    };
    Http2FrameHeader h;
    h.length = (b(0) << 16) | (b(1) << 8) | b(2);
    h.type = static_cast<uint8_t>(b(3));
    h.flags = static_cast<uint8_t>(b(4));
    h.stream_id = ((b(5) & 0x7f) << 24) | (b(6) << 16) | (b(7) << 8) | b(8);
    ref.frames.push_back(h);
    ref.starts.push_back(at);
    at += kHttp2FrameHeaderSize + h.length;
    ref.at_boundary = at == bytes.size();
  }
  return ref;
}

bool Same(const Http2FrameHeader& a, const Http2FrameHeader& b) {
  return a.length == b.length && a.type == b.type && a.flags == b.flags &&
         a.stream_id == b.stream_id;
}

}  // namespace
}  // namespace jobwire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using jobwire::Http2ClientGuard;
  using jobwire::Http2FrameHeader;
  using jobwire::Http2FrameScanner;
  jobwire::fuzz::FuzzInput in(data, size);
  const int max_resets = 1 + in.Byte() % 16;
  const size_t piece = 1 + in.Byte();
  const bool with_preface = in.Bool();
  std::string bytes = in.Rest();
  if (with_preface) {
    bytes = absl::StrCat(jobwire::kHttp2ClientPreface, bytes);
  }
  const jobwire::Reference ref = jobwire::Parse(bytes);

  // The scanner, fed in pieces, sees what the reference sees.
  Http2FrameScanner scanner(Http2FrameScanner::Start::kClientPreface);
  std::vector<Http2FrameHeader> seen;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    const absl::string_view part = absl::string_view(bytes).substr(at, piece);
    const size_t n = scanner.Scan(part, [&](const Http2FrameHeader& h) {
      seen.push_back(h);
      return true;
    });
    FUZZ_CHECK(n == part.size(), "a scan that accepts every frame stopped");
  }
  FUZZ_CHECK(scanner.not_http2() == ref.not_http2, "preface verdict differs");
  FUZZ_CHECK(
      seen.size() == ref.frames.size(),
      absl::StrCat(seen.size(), " frames, reference ", ref.frames.size()));
  for (size_t i = 0; i < seen.size(); ++i) {
    FUZZ_CHECK(jobwire::Same(seen[i], ref.frames[i]),
               absl::StrCat("frame ", i, " differs"));
  }
  if (!bytes.empty()) {
    FUZZ_CHECK(scanner.at_frame_boundary() == ref.at_boundary,
               "frame boundary differs");
  }

  // The guard stops at the first RST_STREAM past the budget.
  size_t expected = bytes.size();
  int resets = 0;
  for (size_t i = 0; i < ref.frames.size(); ++i) {
    if (ref.frames[i].type != jobwire::kHttp2RstStream) continue;
    if (++resets <= max_resets) continue;
    const size_t header_start = ref.starts[i];
    const size_t last_byte = header_start + jobwire::kHttp2FrameHeaderSize - 1;
    expected = std::max(header_start, last_byte / piece * piece);
    break;
  }
  const absl::Time now = absl::FromUnixSeconds(1000000);
  Http2ClientGuard guard({max_resets, absl::Seconds(10)}, now);
  size_t allowed = 0;
  bool stopped = false;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    const absl::string_view part = absl::string_view(bytes).substr(at, piece);
    const size_t n = guard.Check(part, now);
    FUZZ_CHECK(n <= part.size(), "allowed more than given");
    FUZZ_CHECK(!stopped || n == 0, "allowed bytes after going over budget");
    if (n < part.size()) stopped = true;
    allowed += n;
  }
  FUZZ_CHECK(allowed == expected,
             absl::StrCat("allowed ", allowed, ", expected ", expected));
  FUZZ_CHECK(guard.over_budget() == (resets > max_resets), "budget verdict");
  FUZZ_CHECK(guard.streams_reset() <= max_resets, "counted past the budget");

  // The server's direction: frames from the first byte, never a verdict.
  Http2FrameScanner server(Http2FrameScanner::Start::kFrames);
  const size_t n =
      server.Scan(bytes, [](const Http2FrameHeader&) { return true; });
  FUZZ_CHECK(n == bytes.size() && !server.not_http2(), "server scan");
  return 0;
}
