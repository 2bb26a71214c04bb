// Test-only: LoadWebhookVectors() reads tests/vectors/webhook_signatures.json,
// the webhook verification cases every SDK and the CLI run, as a
// google::protobuf::Struct (see the file's "description" for its fields).
// The CMake target jobwire::webhook_vectors passes the file's path.
#ifndef JOBWIRE_CLIENTS_CPP_WEBHOOK_VECTORS_H_
#define JOBWIRE_CLIENTS_CPP_WEBHOOK_VECTORS_H_

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <sstream>

namespace jobwire::sdk {

// The vectors; an empty Struct when the file cannot be read or parsed.
inline google::protobuf::Struct LoadWebhookVectors() {
  std::ifstream in(JOBWIRE_WEBHOOK_VECTORS);
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::Struct vectors;
  if (!google::protobuf::util::JsonStringToMessage(text.str(), &vectors).ok())
    vectors.Clear();
  return vectors;
}

}  // namespace jobwire::sdk

#endif  // JOBWIRE_CLIENTS_CPP_WEBHOOK_VECTORS_H_
