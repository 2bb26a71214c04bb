#include "server/transport/http2_frame_scanner.h"

#include <algorithm>
#include <cstring>

namespace jobwire {

Http2FrameScanner::Http2FrameScanner(Start start)
    : preface_left_(start == Start::kClientPreface ? kHttp2ClientPreface.size()
                                                   : 0) {}

size_t Http2FrameScanner::Scan(
    absl::string_view bytes,
    absl::FunctionRef<bool(const Http2FrameHeader&)> on_frame) {
  if (stopped_) return 0;
  if (not_http2_) return bytes.size();
  size_t i = 0;
  size_t header_start = 0;  // where the header being read began in `bytes`
  while (i < bytes.size()) {
    if (preface_left_ > 0) {
      const size_t matched = kHttp2ClientPreface.size() - preface_left_;
      const size_t n = std::min(preface_left_, bytes.size() - i);
      if (bytes.substr(i, n) != kHttp2ClientPreface.substr(matched, n)) {
        not_http2_ = true;
        return bytes.size();
      }
      preface_left_ -= n;
      i += n;
      continue;
    }
    if (payload_left_ > 0) {
      const size_t n = std::min<size_t>(payload_left_, bytes.size() - i);
      payload_left_ -= static_cast<uint32_t>(n);
      i += n;
      continue;
    }
    if (header_have_ == 0) header_start = i;
    const size_t n =
        std::min(kHttp2FrameHeaderSize - header_have_, bytes.size() - i);
    std::memcpy(header_ + header_have_, bytes.data() + i, n);
    header_have_ += n;
    i += n;
    if (header_have_ < kHttp2FrameHeaderSize) break;
    header_have_ = 0;
    Http2FrameHeader frame;
    frame.length = (uint32_t{header_[0]} << 16) | (uint32_t{header_[1]} << 8) |
                   uint32_t{header_[2]};
    frame.type = header_[3];
    frame.flags = header_[4];
    frame.stream_id = ((uint32_t{header_[5]} & 0x7f) << 24) |
                      (uint32_t{header_[6]} << 16) |
                      (uint32_t{header_[7]} << 8) | uint32_t{header_[8]};
    payload_left_ = frame.length;
    if (!on_frame(frame)) {
      stopped_ = true;
      return header_start;
    }
  }
  return bytes.size();
}

bool ResetBudget::Take(absl::Time now) {
  if (now > refilled_) {
    const double per_second = max_ / absl::ToDoubleSeconds(window_);
    tokens_ = std::min<double>(
        max_, tokens_ + per_second * absl::ToDoubleSeconds(now - refilled_));
    refilled_ = now;
  }
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

Http2ClientGuard::Http2ClientGuard(Limits limits, absl::Time now)
    : budget_(limits.max_resets, limits.window, now) {}

size_t Http2ClientGuard::Check(absl::string_view bytes, absl::Time now,
                               ResetBudget* shared) {
  return scanner_.Scan(bytes, [&](const Http2FrameHeader& frame) {
    if (frame.type == kHttp2Headers && frame.stream_id > last_stream_id_) {
      last_stream_id_ = frame.stream_id;
      ++streams_opened_;
    } else if (frame.type == kHttp2RstStream) {
      if (!budget_.Take(now)) return false;
      if (shared != nullptr && !shared->Take(now)) return false;
      ++streams_reset_;
    }
    return true;
  });
}

std::string Http2GoAwayFrame(uint32_t last_stream_id, uint32_t error_code,
                             absl::string_view debug_data) {
  const uint32_t length = 8 + static_cast<uint32_t>(debug_data.size());
  std::string frame;
  frame.reserve(kHttp2FrameHeaderSize + length);
  auto put32 = [&frame](uint32_t v) {
    frame.push_back(static_cast<char>(v >> 24));
    frame.push_back(static_cast<char>(v >> 16));
    frame.push_back(static_cast<char>(v >> 8));
    frame.push_back(static_cast<char>(v));
  };
  frame.push_back(static_cast<char>(length >> 16));
  frame.push_back(static_cast<char>(length >> 8));
  frame.push_back(static_cast<char>(length));
  frame.push_back(static_cast<char>(kHttp2GoAway));
  frame.push_back(0);  // flags
  put32(0);            // stream 0
  put32(last_stream_id & 0x7fffffff);
  put32(error_code);
  frame.append(debug_data.data(), debug_data.size());
  return frame;
}

}  // namespace jobwire
