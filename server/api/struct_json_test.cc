#include "server/api/struct_json.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"

namespace jobwire::test {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using google::protobuf::util::MessageDifferencer;

std::string Write(const Struct& s) {
  std::string out;
  const absl::Status status = AppendStructJson(s, "args", &out);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

Struct Parse(const std::string& json) {
  Struct s;
  const absl::Status status = ParseStructJson(json, "args", &s);
  EXPECT_TRUE(status.ok()) << status << " for " << json;
  return s;
}

// The one field violation's description; fails the test unless the status
// is INVALID_ARGUMENT at "args".
std::string ParseError(const std::string& json) {
  Struct s;
  (*s.mutable_fields())["stale"].set_bool_value(true);
  const absl::Status status = ParseStructJson(json, "args", &s);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << json;
  EXPECT_TRUE(s.fields().empty()) << json;
  const std::vector<FieldViolation> v = GetFieldViolations(status);
  if (v.size() != 1) {
    ADD_FAILURE() << "expected one violation for " << json << ": " << status;
    return "";
  }
  EXPECT_EQ(v[0].field, "args");
  return v[0].description;
}

std::string WriteError(const Struct& s) {
  std::string out = "kept";
  const absl::Status status = AppendStructJson(s, "job.args", &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out, "kept");
  const std::vector<FieldViolation> v = GetFieldViolations(status);
  if (v.size() != 1) {
    ADD_FAILURE() << "expected one violation: " << status;
    return "";
  }
  EXPECT_EQ(v[0].field, "job.args");
  return v[0].description;
}

Value Number(double d) {
  Value v;
  v.set_number_value(d);
  return v;
}

std::string WriteNumber(double d) {
  Struct s;
  (*s.mutable_fields())["n"] = Number(d);
  const std::string json = Write(s);
  // {"n":...}
  return json.substr(5, json.size() - 6);
}

TEST(StructJsonTest, WritesCompactJsonWithSortedKeys) {
  Struct s;
  auto& f = *s.mutable_fields();
  f["b"].set_string_value("x");
  f["a"].set_number_value(640);
  f["c"].set_bool_value(true);
  f["d"].set_null_value(google::protobuf::NULL_VALUE);
  f["e"].mutable_list_value()->add_values()->set_number_value(1.5);
  f["e"].mutable_list_value()->add_values()->set_bool_value(false);
  (*f["f"].mutable_struct_value()->mutable_fields())["g"].set_string_value("");
  f["h"];  // no kind set
  f["i"].mutable_list_value();
  f["j"].mutable_struct_value();
  EXPECT_EQ(Write(s),
            "{\"a\":640,\"b\":\"x\",\"c\":true,\"d\":null,\"e\":[1.5,false],"
            "\"f\":{\"g\":\"\"},\"h\":null,\"i\":[],\"j\":{}}");
  EXPECT_EQ(Write(Struct()), "{}");
}

TEST(StructJsonTest, AppendsToWhatTheStringHolds) {
  Struct s;
  (*s.mutable_fields())["a"].set_number_value(1);
  std::string out = "prefix:";
  ASSERT_TRUE(AppendStructJson(s, "args", &out).ok());
  EXPECT_EQ(out, "prefix:{\"a\":1}");
}

TEST(StructJsonTest, WritesIntegersWithoutFractionUpToTwoToThe53) {
  EXPECT_EQ(WriteNumber(0), "0");
  EXPECT_EQ(WriteNumber(-0.0), "-0");
  EXPECT_EQ(WriteNumber(-17), "-17");
  EXPECT_EQ(WriteNumber(9007199254740992.0), "9007199254740992");
  EXPECT_EQ(WriteNumber(-9007199254740992.0), "-9007199254740992");
  // Beyond 2^53 the shortest round-trip form is used, whichever of plain
  // and exponent notation is shorter.
  EXPECT_EQ(WriteNumber(9007199254740994.0), "9007199254740994");
  EXPECT_EQ(WriteNumber(1e17), "1e+17");
  EXPECT_EQ(WriteNumber(1e21), "1e+21");
}

TEST(StructJsonTest, WritesOtherNumbersInTheShortestRoundTripForm) {
  EXPECT_EQ(WriteNumber(0.1), "0.1");
  EXPECT_EQ(WriteNumber(-2.5), "-2.5");
  EXPECT_EQ(WriteNumber(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(WriteNumber(5e-324), "5e-324");
  EXPECT_EQ(WriteNumber(std::numeric_limits<double>::max()),
            "1.7976931348623157e+308");
  for (double d : {0.1, 1.0 / 3, 5e-324, 1e300, 123456.789, -1e-7}) {
    EXPECT_EQ(Parse(Write([&] {
                Struct s;
                (*s.mutable_fields())["n"] = Number(d);
                return s;
              }()))
                  .fields()
                  .at("n")
                  .number_value(),
              d);
  }
}

TEST(StructJsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  Struct s;
  (*s.mutable_fields())["k\"\\"].set_string_value(
      std::string("a\"b\\c/d\b\f\n\r\t\x01\x1f\x7f", 15) +
      std::string(1, '\0'));
  EXPECT_EQ(Write(s),
            "{\"k\\\"\\\\\":\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0001\\u001f\x7f"
            "\\u0000\"}");
}

TEST(StructJsonTest, PassesNonAsciiThroughAsUtf8) {
  Struct s;
  (*s.mutable_fields())["\xc3\xa9"].set_string_value(
      "\xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 \xf4\x8f\xbf\xbf");
  EXPECT_EQ(Write(s),
            "{\"\xc3\xa9\":\"\xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 "
            "\xf4\x8f\xbf\xbf\"}");
}

TEST(StructJsonTest, NanAndInfinityAreInvalidArgumentNamingThePath) {
  Struct s;
  auto& inner = *(*s.mutable_fields())["a"].mutable_struct_value();
  auto* list = (*inner.mutable_fields())["b"].mutable_list_value();
  list->add_values()->set_number_value(1);
  list->add_values()->set_number_value(2);
  list->add_values()->set_number_value(std::nan(""));
  EXPECT_EQ(WriteError(s),
            "not representable as JSON: number is NaN at a.b[2]");
  list->mutable_values(2)->set_number_value(
      -std::numeric_limits<double>::infinity());
  EXPECT_EQ(WriteError(s),
            "not representable as JSON: number is infinite at a.b[2]");
}

TEST(StructJsonTest, InvalidUtf8IsRefusedByTheWriter) {
  Struct s;
  (*s.mutable_fields())["a"].set_string_value("ok\xc0\x80");
  EXPECT_EQ(WriteError(s),
            "not representable as JSON: string is not valid UTF-8 at a");
  Struct k;
  (*k.mutable_fields())["b\xff"].set_string_value("x");
  EXPECT_EQ(WriteError(k),
            "not representable as JSON: key is not valid UTF-8 at b\\xff");
}

// {"a":{"a":...{}...}} with `depth` objects in all.
std::string NestedObjects(int depth) {
  std::string json;
  for (int i = 1; i < depth; ++i) json += "{\"a\":";
  json += "{}";
  for (int i = 1; i < depth; ++i) json += "}";
  return json;
}

TEST(StructJsonTest, NestingIsLimitedBothWays) {
  const std::string deepest = NestedObjects(kMaxStructJsonDepth);
  const Struct s = Parse(deepest);
  EXPECT_EQ(Write(s), deepest);
  EXPECT_EQ(ParseError(NestedObjects(kMaxStructJsonDepth + 1)),
            absl::StrCat("not a JSON object: at byte ", 5 * kMaxStructJsonDepth,
                         ": nesting deeper than ", kMaxStructJsonDepth));
  // Arrays count too: {"a":[[...]]}.
  std::string arrays = "{\"a\":";
  arrays += std::string(kMaxStructJsonDepth, '[');
  arrays += std::string(kMaxStructJsonDepth, ']') + "}";
  EXPECT_NE(ParseError(arrays).find("nesting deeper than"), std::string::npos);

  Struct too_deep;
  Struct* at = &too_deep;
  for (int i = 1; i < kMaxStructJsonDepth + 1; ++i) {
    at = (*at->mutable_fields())["a"].mutable_struct_value();
  }
  EXPECT_NE(WriteError(too_deep).find("nesting is too deep at a.a.a"),
            std::string::npos);
}

TEST(StructJsonTest, ParsesEveryKindAndWhitespace) {
  const Struct s = Parse(
      " \t\r\n{ \"s\" : \"x\" , \"n\":-1.5e2,\"t\":true,\"f\":false,"
      "\"z\":null,\"l\":[ 1 , {\"k\":[]} ],\"o\":{}}\n");
  EXPECT_EQ(s.fields().at("s").string_value(), "x");
  EXPECT_EQ(s.fields().at("n").number_value(), -150);
  EXPECT_TRUE(s.fields().at("t").bool_value());
  EXPECT_EQ(s.fields().at("f").kind_case(), Value::kBoolValue);
  EXPECT_FALSE(s.fields().at("f").bool_value());
  EXPECT_EQ(s.fields().at("z").kind_case(), Value::kNullValue);
  const auto& l = s.fields().at("l").list_value();
  ASSERT_EQ(l.values_size(), 2);
  EXPECT_EQ(l.values(0).number_value(), 1);
  EXPECT_EQ(l.values(1).struct_value().fields().at("k").kind_case(),
            Value::kListValue);
  EXPECT_EQ(s.fields().at("o").kind_case(), Value::kStructValue);
}

TEST(StructJsonTest, ParsesEscapesIncludingSurrogatePairs) {
  const Struct s = Parse(
      "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC"
      "\\ud83d\\ude00\\u0000\"}");
  EXPECT_EQ(
      s.fields().at("s").string_value(),
      std::string("\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 18) +
          std::string(1, '\0'));
}

TEST(StructJsonTest, ParsesNumbersAtTheEdgesOfTheDoubleRange) {
  EXPECT_EQ(Parse("{\"n\":1e-400}").fields().at("n").number_value(), 0);
  EXPECT_EQ(Parse("{\"n\":4.9e-324}").fields().at("n").number_value(), 5e-324);
  EXPECT_EQ(Parse("{\"n\":-0}").fields().at("n").number_value(), 0);
  EXPECT_TRUE(
      std::signbit(Parse("{\"n\":-0.0}").fields().at("n").number_value()));
  EXPECT_EQ(
      Parse("{\"n\":1.7976931348623157e308}").fields().at("n").number_value(),
      std::numeric_limits<double>::max());
  EXPECT_EQ(
      Parse("{\"n\":12345678901234567890}").fields().at("n").number_value(),
      12345678901234567890.0);
  EXPECT_EQ(ParseError("{\"n\":1e309}"),
            "not a JSON object: at byte 5: number is out of the range of a "
            "double");
  EXPECT_EQ(ParseError("{\"n\":-1e400}"),
            "not a JSON object: at byte 5: number is out of the range of a "
            "double");
}

TEST(StructJsonTest, RepeatedKeyKeepsTheLastValue) {
  const Struct s = Parse("{\"a\":{\"x\":1},\"a\":[2],\"b\":[1],\"b\":{}}");
  EXPECT_EQ(Write(s), "{\"a\":[2],\"b\":{}}");
}

TEST(StructJsonTest, RejectsMalformedTextWithTheByteOffset) {
  struct Case {
    std::string json;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"", "at byte 0: expected a JSON object, found the end"},
      {"   ", "at byte 3: expected a JSON object, found the end"},
      {"[1,2]", "at byte 0: expected a JSON object ('{')"},
      {"\"s\"", "at byte 0: expected a JSON object ('{')"},
      {"{} x", "at byte 3: unexpected data after the JSON object"},
      {"{}{}", "at byte 2: unexpected data after the JSON object"},
      {"{", "at byte 1: expected an object key"},
      {"{\"a\"}", "at byte 4: expected ':' after an object key"},
      {"{\"a\":}", "at byte 5: expected a value"},
      {"{\"a\":1,}", "at byte 7: expected an object key"},
      {"{\"a\":1 \"b\":2}", "at byte 7: expected ',' or '}' in an object"},
      {"{a:1}", "at byte 1: expected an object key"},
      {"{'a':1}", "at byte 1: expected an object key"},
      {"{\"a\":[1,]}", "at byte 8: expected a value"},
      {"{\"a\":[1 2]}", "at byte 8: expected ',' or ']' in an array"},
      {"{\"a\":[1", "at byte 7: expected ',' or ']' in an array"},
      {"{\"a\":tru}", "at byte 5: expected a value"},
      {"{\"a\":True}", "at byte 5: expected a value"},
      {"{\"a\":nul", "at byte 5: expected a value"},
      {"{\"a\":NaN}", "at byte 5: expected a value"},
      {"{\"a\":Infinity}", "at byte 5: expected a value"},
      {"{\"a\":-Infinity}", "at byte 5: expected a value"},
      {"{\"a\":+1}", "at byte 5: expected a value"},
      {"{\"a\":.5}", "at byte 5: expected a value"},
      {"{\"a\":-}", "at byte 5: expected a value"},
      {"{\"a\":01}", "at byte 6: expected ',' or '}' in an object"},
      {"{\"a\":1.}", "at byte 7: expected a digit after the decimal point"},
      {"{\"a\":1e}", "at byte 7: expected a digit in the exponent"},
      {"{\"a\":1e+}", "at byte 8: expected a digit in the exponent"},
      {"{\"a\":0x10}", "at byte 6: expected ',' or '}' in an object"},
      {"{\"a\":\"x", "at byte 7: unterminated string"},
      {"{\"a\":\"x\\", "at byte 7: unterminated string"},
      {"{\"a\":\"\\x\"}", "at byte 6: invalid escape in a string"},
      {"{\"a\":\"\\u12\"}", "at byte 6: invalid \\u escape"},
      {"{\"a\":\"\\u12g4\"}", "at byte 6: invalid \\u escape"},
      {"{\"a\":\"\\ud800\"}",
       "at byte 6: unpaired UTF-16 surrogate in \\u escape"},
      {"{\"a\":\"\\ud800\\u0041\"}",
       "at byte 6: unpaired UTF-16 surrogate in \\u escape"},
      {"{\"a\":\"\\udc00\\ud800\"}",
       "at byte 6: unpaired UTF-16 surrogate in \\u escape"},
      {"{\"a\":\"a\tb\"}", "at byte 7: control character in a string"},
      {"{\"a\":\"a\nb\"}", "at byte 7: control character in a string"},
      {std::string("{\"a\":\"\0\"}", 9),
       "at byte 6: control character in a string"},
      {"{\"a\":\"\xff\"}", "at byte 6: invalid UTF-8 in a string"},
      {"{\"a\":\"\xc0\x80\"}", "at byte 6: invalid UTF-8 in a string"},
      {"{\"a\":\"\xe0\x80\x80\"}", "at byte 6: invalid UTF-8 in a string"},
      {"{\"a\":\"\xed\xa0\x80\"}", "at byte 6: invalid UTF-8 in a string"},
      {"{\"a\":\"\xf4\x90\x80\x80\"}", "at byte 6: invalid UTF-8 in a string"},
      {"{\"a\":\"\xe2\x82\"}", "at byte 6: invalid UTF-8 in a string"},
      {"{\"\xc3\"", "at byte 2: invalid UTF-8 in a string"},
      {"{\"a\":1}\xef\xbb\xbf",
       "at byte 7: unexpected data after the JSON object"},
      {"\xef\xbb\xbf{}", "at byte 0: expected a JSON object ('{')"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ParseError(c.json), "not a JSON object: " + c.error)
        << "input: " << c.json;
  }
}

// ------------------------------------------------- differential testing

// Random Structs with the values that are easy to get wrong: escapes,
// control characters, multi-byte UTF-8, integers at 2^53, subnormals.
class RandomStructs {
 public:
  explicit RandomStructs(uint32_t seed) : rng_(seed) {}

  Struct Next() {
    Struct s;
    FillStruct(&s, 1);
    return s;
  }

 private:
  int Uniform(int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng_);
  }

  std::string String() {
    static const char* const kPieces[] = {"a",
                                          "Z",
                                          "0",
                                          " ",
                                          "\"",
                                          "\\",
                                          "/",
                                          "\b",
                                          "\f",
                                          "\n",
                                          "\r",
                                          "\t",
                                          "\x01",
                                          "\x1f",
                                          "\x7f",
                                          "\xc3\xa9",
                                          "\xe2\x82\xac",
                                          "\xf0\x9f\x98\x80",
                                          "\xe2\x80\xa8",
                                          "\xef\xbf\xbf",
                                          "\xf4\x8f\xbf\xbf",
                                          "<",
                                          ">",
                                          "&",
                                          "'",
                                          "key"};
    std::string s;
    const int n = Uniform(0, 8);
    for (int i = 0; i < n; ++i) {
      if (Uniform(0, 20) == 0) {
        s.push_back('\0');
      } else {
        s += kPieces[Uniform(0, std::size(kPieces) - 1)];
      }
    }
    return s;
  }

  double Double() {
    switch (Uniform(0, 9)) {
      case 0:
        return Uniform(-1000, 1000);
      case 1:
        return 9007199254740992.0 + Uniform(-3, 3) * 2.0;
      case 2:
        return -9007199254740992.0 - Uniform(-3, 3) * 2.0;
      case 3:
        return -0.0;
      case 4:
        return 5e-324 * Uniform(1, 1000);
      case 5:
        return Uniform(1, 100000) / 1000.0;
      case 6:
        return std::numeric_limits<double>::max() / Uniform(1, 1000);
      default: {
        // Any finite double, from random bits.
        while (true) {
          const uint64_t bits = std::uniform_int_distribution<uint64_t>()(rng_);
          double d;
          std::memcpy(&d, &bits, sizeof(d));
          if (std::isfinite(d)) return d;
        }
      }
    }
  }

  void FillValue(Value* v, int depth) {
    const int kind = Uniform(0, depth < 5 ? 6 : 3);
    switch (kind) {
      case 0:
        v->set_null_value(google::protobuf::NULL_VALUE);
        break;
      case 1:
        v->set_bool_value(Uniform(0, 1) == 1);
        break;
      case 2:
        v->set_number_value(Double());
        break;
      case 3:
        v->set_string_value(String());
        break;
      case 4:
      case 5: {
        auto* list = v->mutable_list_value();
        const int n = Uniform(0, 4);
        for (int i = 0; i < n; ++i) FillValue(list->add_values(), depth + 1);
        break;
      }
      default:
        FillStruct(v->mutable_struct_value(), depth + 1);
    }
  }

  void FillStruct(Struct* s, int depth) {
    const int n = Uniform(0, 5);
    for (int i = 0; i < n; ++i) {
      FillValue(&(*s->mutable_fields())[String()], depth);
    }
  }

  std::mt19937 rng_;
};

TEST(StructJsonTest, AgreesWithProtobufJsonUtilOnRandomStructs) {
  RandomStructs random(20261127);
  MessageDifferencer differencer;
  for (int i = 0; i < 2000; ++i) {
    const Struct s = random.Next();
    std::string ours;
    ASSERT_TRUE(AppendStructJson(s, "args", &ours).ok());
    std::string theirs;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(s, &theirs).ok());

    // Protobuf reads what we write.
    Struct read_by_protobuf;
    ASSERT_TRUE(
        google::protobuf::util::JsonStringToMessage(ours, &read_by_protobuf)
            .ok())
        << ours;
    EXPECT_TRUE(differencer.Equals(s, read_by_protobuf)) << ours;
    // We read what protobuf writes (existing databases hold its text).
    Struct read_by_us;
    ASSERT_TRUE(ParseStructJson(theirs, "args", &read_by_us).ok()) << theirs;
    EXPECT_TRUE(differencer.Equals(s, read_by_us)) << theirs;
    // And our own text round-trips to the same text.
    Struct round_trip;
    ASSERT_TRUE(ParseStructJson(ours, "args", &round_trip).ok()) << ours;
    EXPECT_TRUE(differencer.Equals(s, round_trip)) << ours;
    EXPECT_EQ(Write(round_trip), ours);
  }
}

TEST(StructJsonTest, ParsesLikeProtobufWhereBothAcceptMutatedText) {
  // Damage valid text at random; whenever both parsers accept the result
  // they must agree on the value.
  RandomStructs random(7);
  std::mt19937 rng(11);
  static const char kBytes[] = "{}[]\":,\\u0123456789eE+-.tfn \x01\xc3\xa9";
  MessageDifferencer differencer;
  int both_accepted = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string json = Write(random.Next());
    const int edits = std::uniform_int_distribution<int>(1, 3)(rng);
    for (int e = 0; e < edits && !json.empty(); ++e) {
      const size_t at =
          std::uniform_int_distribution<size_t>(0, json.size() - 1)(rng);
      const char c = kBytes[std::uniform_int_distribution<size_t>(
          0, sizeof(kBytes) - 2)(rng)];
      switch (std::uniform_int_distribution<int>(0, 2)(rng)) {
        case 0:
          json[at] = c;
          break;
        case 1:
          json.insert(at, 1, c);
          break;
        default:
          json.erase(at, 1);
      }
    }
    Struct ours;
    Struct theirs;
    if (!ParseStructJson(json, "args", &ours).ok()) continue;
    if (!google::protobuf::util::JsonStringToMessage(json, &theirs).ok()) {
      continue;
    }
    ++both_accepted;
    EXPECT_TRUE(differencer.Equals(ours, theirs)) << json;
  }
  EXPECT_GT(both_accepted, 100);
}

// The differences from protobuf's parser that struct_json.h lists (found by
// struct_json_fuzz, whose oracle allows exactly these): protobuf is lenient
// beyond RFC 8259, and refuses a repeated key.
TEST(StructJsonTest, DiffersFromProtobufOnlyWhereTheHeaderSays) {
  const std::vector<std::string> lenient = {
      "{}\f",        "{\v\"a\":1}",    "{a:1}",           "{'a':1}",
      "{\"a\":'x'}", "{\"a\":\"\t\"}", "{\"a\":\"\\x\"}", "{\"a\":1.}",
      "{\"a\":-.5}", "{\"a\":09.5}",   "{\"a\":1,}",      "{\"a\":[1,]}",
  };
  for (const std::string& json : lenient) {
    Struct ours;
    EXPECT_FALSE(ParseStructJson(json, "args", &ours).ok()) << json;
    Struct theirs;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &theirs).ok())
        << json;
  }
  Struct theirs;
  EXPECT_FALSE(
      google::protobuf::util::JsonStringToMessage("{\"a\":1,\"a\":2}", &theirs)
          .ok());
  EXPECT_EQ(Parse("{\"a\":1,\"a\":2}").fields().at("a").number_value(), 2);
}

}  // namespace
}  // namespace jobwire::test
