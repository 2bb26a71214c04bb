// Http2FrameScanner and Http2ClientGuard: what jobwired reads of the HTTP/2
// bytes it relays to gRPC (http2_relay.h), to bound the HTTP/2 rapid-reset
// attack (CVE-2023-44487) that Debian's gRPC 1.51 does not.
//
// The scanner finds the frame headers in one direction of a connection: the
// client's 24-byte preface first (when told to expect it), then 9-byte frame
// headers, each followed by as many payload bytes as it says, which are
// skipped unread (no HPACK, no frame is decoded). It never allocates and
// holds at most one partial frame header, so a connection costs a few dozen
// bytes however the bytes are split.
//
// The guard scans the client's direction and counts the streams it opens
// (HEADERS on a new stream id) and the streams it resets (RST_STREAM); a
// connection may reset `max_resets` streams at once and `max_resets` per
// `window` after that (a token bucket). The frame that goes past the budget
// and every byte after it are refused: the relay then answers GOAWAY
// ENHANCE_YOUR_CALM and closes the connection.
//
// Bytes that do not start with the client preface are not HTTP/2: the guard
// lets them through unread, and gRPC refuses them as it always has.
//
// Thread-compatible: one per connection direction, used by one thread.
#ifndef JOBWIRE_SERVER_TRANSPORT_HTTP2_FRAME_SCANNER_H_
#define JOBWIRE_SERVER_TRANSPORT_HTTP2_FRAME_SCANNER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace jobwire {

inline constexpr absl::string_view kHttp2ClientPreface =
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr size_t kHttp2FrameHeaderSize = 9;
inline constexpr uint8_t kHttp2Headers = 0x1;
inline constexpr uint8_t kHttp2RstStream = 0x3;
inline constexpr uint8_t kHttp2GoAway = 0x7;
inline constexpr uint32_t kHttp2EnhanceYourCalm = 0xb;

struct Http2FrameHeader {
  uint32_t length = 0;  // payload bytes (up to 2^24 - 1)
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream_id = 0;  // the reserved bit cleared
};

class Http2FrameScanner {
 public:
  enum class Start {
    kClientPreface,  // the client's direction: the preface, then frames
    kFrames,         // the server's direction: frames from the first byte
  };
  explicit Http2FrameScanner(Start start);

  // Reads `bytes`, the next bytes of the direction, calling `on_frame` for
  // each frame header they complete, in order. When `on_frame` returns
  // false, scanning stops there for good: Scan returns how many bytes of
  // `bytes` came before that frame's header (0 when it began in an earlier
  // call), and later calls return 0. Otherwise it returns bytes.size().
  size_t Scan(absl::string_view bytes,
              absl::FunctionRef<bool(const Http2FrameHeader&)> on_frame);

  // The bytes did not begin with the client preface: nothing is parsed.
  bool not_http2() const { return not_http2_; }
  // on_frame refused a frame.
  bool stopped() const { return stopped_; }
  // The bytes scanned so far end where a frame (or the preface) ends, so a
  // frame of one's own may follow them.
  bool at_frame_boundary() const {
    return !not_http2_ && preface_left_ == 0 && header_have_ == 0 &&
           payload_left_ == 0;
  }

 private:
  size_t preface_left_;
  bool not_http2_ = false;
  bool stopped_ = false;
  uint8_t header_[kHttp2FrameHeaderSize] = {};
  size_t header_have_ = 0;
  uint32_t payload_left_ = 0;
};

// A token bucket of stream resets: `max` at once, refilled at `max` per
// `window`.
class ResetBudget {
 public:
  ResetBudget(int max, absl::Duration window, absl::Time now)
      : max_(max), window_(window), tokens_(max), refilled_(now) {}
  // Whether one reset at `now` is within the budget (it is then spent).
  bool Take(absl::Time now);

 private:
  int max_;
  absl::Duration window_;
  double tokens_;
  absl::Time refilled_;
};

class Http2ClientGuard {
 public:
  struct Limits {
    // Streams a connection may reset at once, and per `window` after that.
    int max_resets = 1000;
    absl::Duration window = absl::Seconds(10);
  };
  Http2ClientGuard(Limits limits, absl::Time now);

  // Reads the client's next `bytes` at `now`; returns how many of them may
  // go on to the server: all of them, unless a RST_STREAM among them goes
  // past the budget (the connection's, or `shared` when given: a budget
  // this connection shares with others, not owned), then those before that
  // frame (over_budget() is true from then on, and later calls return 0).
  size_t Check(absl::string_view bytes, absl::Time now,
               ResetBudget* shared = nullptr);

  bool over_budget() const { return scanner_.stopped(); }
  int64_t streams_opened() const { return streams_opened_; }
  int64_t streams_reset() const { return streams_reset_; }
  // The highest client stream id seen in a HEADERS frame (0: none): the
  // last stream id of a GOAWAY.
  uint32_t last_stream_id() const { return last_stream_id_; }

 private:
  Http2FrameScanner scanner_{Http2FrameScanner::Start::kClientPreface};
  ResetBudget budget_;
  int64_t streams_opened_ = 0;
  int64_t streams_reset_ = 0;
  uint32_t last_stream_id_ = 0;
};

// A GOAWAY frame (stream 0) with `last_stream_id`, `error_code` and
// `debug_data`, ready to send.
std::string Http2GoAwayFrame(uint32_t last_stream_id, uint32_t error_code,
                             absl::string_view debug_data);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_HTTP2_FRAME_SCANNER_H_
