// A tiny leveled logger writing one line per message to stderr.
//
// Usage: JW_LOG(INFO) << "listening on " << addr;
// Every line carries a UTC timestamp and the level; in json format every line
// is one JSON object {"time":..,"level":..,"msg":..}. Messages below the
// configured level are skipped without formatting their arguments. Lines are
// written with one write(2) each, so concurrent threads do not interleave.
// Thread-safe. Abseil 20220623 has no absl/log; a later Abseil can replace
// this file without touching callers beyond the macro name.
#ifndef JOBWIRE_SERVER_COMMON_LOGGING_H_
#define JOBWIRE_SERVER_COMMON_LOGGING_H_

#include <sstream>
#include <string>

#include "absl/strings/string_view.h"

namespace jobwire {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
enum class LogFormat { kText, kJson };

// Parses "debug", "info", "warning"/"warn", "error". Returns false otherwise.
bool ParseLogLevel(absl::string_view text, LogLevel* level);
// Parses "text" or "json". Returns false otherwise.
bool ParseLogFormat(absl::string_view text, LogFormat* format);

// Sets the process-wide minimum level and format. Thread-safe.
void SetLogLevel(LogLevel level);
void SetLogFormat(LogFormat format);
bool LogLevelEnabled(LogLevel level);

namespace internal {

// One log line; emits it on destruction.
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  const char* file_;
  int line_;
  std::ostringstream stream_;
};

// Swallows the stream expression so the macro is a single statement.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace internal
}  // namespace jobwire

#define JW_LOG_LEVEL_DEBUG ::jobwire::LogLevel::kDebug
#define JW_LOG_LEVEL_INFO ::jobwire::LogLevel::kInfo
#define JW_LOG_LEVEL_WARNING ::jobwire::LogLevel::kWarning
#define JW_LOG_LEVEL_ERROR ::jobwire::LogLevel::kError

#define JW_LOG(severity)                                                       \
  !::jobwire::LogLevelEnabled(JW_LOG_LEVEL_##severity)                         \
      ? (void)0                                                                \
      : ::jobwire::internal::LogVoidify() &                                    \
            ::jobwire::internal::LogMessage(JW_LOG_LEVEL_##severity, __FILE__, \
                                            __LINE__)                          \
                .stream()

#endif  // JOBWIRE_SERVER_COMMON_LOGGING_H_
