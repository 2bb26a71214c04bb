#include "server/http/static_files.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace jobwire {

const StaticFile* FindStaticFile(absl::string_view path) {
  if (path == "/") path = "/ui/index.html";
  for (const StaticFile& f : EmbeddedFiles()) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

namespace {

// Whether an If-None-Match value names `etag` (RFC 9110 13.1.2: a weak
// comparison, so W/"x" matches "x").
bool NoneMatchNames(absl::string_view if_none_match, absl::string_view etag) {
  for (absl::string_view tag :
       absl::StrSplit(if_none_match, ',', absl::SkipWhitespace())) {
    tag = absl::StripAsciiWhitespace(tag);
    if (tag == "*") return true;
    absl::ConsumePrefix(&tag, "W/");
    if (tag == etag) return true;
  }
  return false;
}

}  // namespace

StaticReply ServeStaticFile(const StaticFile& file,
                            absl::string_view if_none_match) {
  StaticReply reply;
  reply.headers = {
      {"ETag", std::string(file.etag)},
      {"Cache-Control", "no-cache"},
      {"Content-Security-Policy", std::string(kDashboardCsp)},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"X-Frame-Options", "DENY"},
  };
  if (!if_none_match.empty() && NoneMatchNames(if_none_match, file.etag)) {
    reply.status = 304;
    return reply;
  }
  reply.headers.emplace_back("Content-Type", std::string(file.content_type));
  reply.body = file.body;
  return reply;
}

}  // namespace jobwire
