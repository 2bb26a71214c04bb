// Static files compiled into jobwired: the dashboard (server/http/dashboard/).
//
// cmake/embed_files.cmake turns each file listed in server/http/CMakeLists.txt
// into a StaticFile with its bytes, URL path (`/ui/NAME`), content type and a
// strong ETag (a prefix of its SHA-256), so the server needs no files on disk
// and no network. `/` serves `/ui/index.html`.
//
// Every answer carries a strict Content-Security-Policy (scripts, styles and
// connections from this origin only; no frames, no forms, no base), nosniff
// and no-referrer, and `Cache-Control: no-cache` with the ETag: a browser
// revalidates each load and gets 304 for what it has.
//
// Thread-safety: the table is immutable; every function is safe from any
// thread.
#ifndef JOBWIRE_SERVER_HTTP_STATIC_FILES_H_
#define JOBWIRE_SERVER_HTTP_STATIC_FILES_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace jobwire {

struct StaticFile {
  absl::string_view path;          // "/ui/app.js"
  absl::string_view content_type;  // "text/javascript; charset=utf-8"
  absl::string_view etag;          // "\"0123...\"" (quoted, strong)
  absl::string_view body;
};

// The embedded files (generated: dashboard_files.cc).
absl::Span<const StaticFile> EmbeddedFiles();

// The file served at `path`, or nullptr. `/` is `/ui/index.html`.
const StaticFile* FindStaticFile(absl::string_view path);

// An answer to a GET of `file`: 200 with the body, or 304 with no body when
// `if_none_match` (the request's If-None-Match, possibly a list or `*`)
// names its ETag.
struct StaticReply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  absl::string_view body;  // points into the embedded table
};
StaticReply ServeStaticFile(const StaticFile& file,
                            absl::string_view if_none_match);

// The Content-Security-Policy of every static answer.
inline constexpr absl::string_view kDashboardCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'";

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_HTTP_STATIC_FILES_H_
