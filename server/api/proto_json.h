// Proto3 JSON of a message, written by walking its reflection directly.
//
// protobuf's util::MessageToJsonString serialises the message to binary and
// renders it again through a TypeResolver, building a google.protobuf.Type
// of every message type it meets, on every call: a few allocations per
// field. The webhook outbox builds two such documents per event on the
// store's writer thread (api/webhook_body.h), where that cost held up every
// other write; this writer produces the same JSON for a fraction of it.
//
// What it writes is the canonical proto3 JSON mapping with protobuf's
// default JsonPrintOptions: compact; fields under their json_name, in
// declaration order; scalar fields with their default value, empty repeated
// fields and maps, and unset messages left out (a set oneof member is
// written whatever its value); 64-bit integers as strings; enums by value
// name (an unknown number as a number); bytes as standard base64 with
// padding; floats and doubles in the shortest form that reads back the same
// (NaN and infinities as "NaN", "Infinity", "-Infinity"); map entries in
// key order. Well-known types: Timestamp as RFC 3339 in UTC with 0, 3, 6 or
// 9 fractional digits and "Z", Duration as seconds with 0, 3, 6 or 9
// fractional digits and "s", Struct through struct_json.h; any other
// google.protobuf type is handed to MessageToJsonString. The JSON parser of
// protobuf reads the text back into an equal message (proto_json_test).
//
// Pure functions; thread-safe.
#ifndef JOBWIRE_SERVER_API_PROTO_JSON_H_
#define JOBWIRE_SERVER_API_PROTO_JSON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace jobwire {

// Reading (ParseProtoJson): protobuf's util::JsonStringToMessage (with
// unknown fields refused) is the reference; it builds a google.protobuf.Type
// of every message type it meets, on every call, and goes through binary.
// ParseProtoJsonDirect reads the common shapes of a request body straight
// into the message: the text is parsed by struct_json.h's parser, then each
// key is matched to a field by its json_name or name and set by reflection.
// It declines (returns false) whatever it is not sure to read exactly as
// protobuf does: a key that is no field, a key given twice (both names of
// one field), two members of a oneof, null, bytes, Any, Timestamp,
// Duration, FieldMask, wrapper and Empty values, a map keyed by anything
// but strings, an integer that is not exactly integral or beyond 2^53 as
// a JSON number, a quoted number that is not plain digits, a float out of
// range, an enum name or number the enum lacks, and any text struct_json.h
// refuses. ParseProtoJson then hands the text to protobuf, so its answer
// and its errors are protobuf's (proto_json_test compares the two).
// Appends `message` to `*out` as one JSON object (or, for a Timestamp or
// Duration, a JSON string). Never fails: a value with no JSON form (a
// Timestamp out of range, a Struct holding NaN) is written as protobuf's
// writer writes it, or as null.
void AppendProtoJson(const google::protobuf::Message& message,
                     std::string* out);

// Fills `*message` (which must be empty) from the JSON object `json` when it
// has only what the direct reader takes (see above); false otherwise, with
// `*message` in an unspecified state.
bool ParseProtoJsonDirect(absl::string_view json,
                          google::protobuf::Message* message);

// Fills `*message` (which must be empty) from `json` exactly as
// util::JsonStringToMessage with ignore_unknown_fields = false: directly
// when it can, else through protobuf. Fails with protobuf's status.
absl::Status ParseProtoJson(absl::string_view json,
                            google::protobuf::Message* message);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_PROTO_JSON_H_
