// libFuzzer's initialisation for the targets that parse protobuf messages
// (linked into them as an object, fuzz_quiet_protobuf in CMakeLists.txt):
// protobuf logs each string field with invalid UTF-8 it refuses to parse;
// at thousands of inputs a second that is most of the run.
#include <google/protobuf/stubs/logging.h>

#include <string>

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}
