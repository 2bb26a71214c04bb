#include "server/core/filter.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"
#include "server/common/utf8.h"

namespace jobwire {
namespace {

enum class Tok { kEnd, kWord, kString, kOp, kLParen, kRParen, kMinus };

struct Token {
  Tok type = Tok::kEnd;
  std::string text;  // the word, or the unescaped string
  CompareOp op = CompareOp::kEq;
  size_t pos = 0;  // 0-based offset in the filter
  size_t end = 0;  // offset just past the token
};

bool IsWordStart(char c) { return absl::ascii_isalnum(c) || c == '_'; }
bool IsWordChar(char c) {
  return IsWordStart(c) || c == '.' || c == '-' || c == '/' || c == ':' ||
         c == '+';
}

std::string Describe(const Token& t) {
  switch (t.type) {
    case Tok::kEnd:
      return "end of filter";
    case Tok::kWord:
      return absl::StrCat("'", t.text.substr(0, 40), "'");
    case Tok::kString:
      return "a quoted string";
    case Tok::kOp:
      return "a comparison operator";
    case Tok::kLParen:
      return "'('";
    case Tok::kRParen:
      return "')'";
    case Tok::kMinus:
      return "'-'";
  }
  return "?";
}

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<FilterExpr> Parse() {
    if (text_.size() > kMaxFilterLength) {
      return InvalidArgumentError(
          "filter",
          absl::StrCat("must be at most ", kMaxFilterLength, " characters"));
    }
    if (!Lex()) return error_;
    if (tokens_.front().type == Tok::kEnd) return FilterExpr{};
    FilterExpr expr;
    if (!Expression(0, &expr)) return error_;
    if (Peek().type != Tok::kEnd) {
      Fail(Peek(), "expected AND, OR, ')' or end of filter");
      return error_;
    }
    return expr;
  }

 private:
  bool Fail(size_t pos, absl::string_view what) {
    if (error_.ok()) {
      error_ = InvalidArgumentError(
          "filter", absl::StrCat("at position ", pos + 1, ": ", what));
    }
    return false;
  }
  bool Fail(const Token& t, absl::string_view what) {
    return Fail(t.pos, absl::StrCat(what, ", found ", Describe(t)));
  }

  // The character at text_[i] as an error quotes it: whole, or "\xFF"
  // for a byte that is not valid UTF-8 or a control character.
  std::string QuoteChar(size_t i) const {
    const size_t n = Utf8SequenceLength(text_, i);
    const auto byte = static_cast<unsigned char>(text_[i]);
    // A stray byte or a control character is quoted as \xNN, so the
    // message stays valid UTF-8 and readable.
    if (n == 0 || (n == 1 && (byte < 0x20 || byte == 0x7f))) {
      return absl::StrCat("\\x", absl::Hex(byte, absl::kZeroPad2));
    }
    return std::string(text_.substr(i, n));
  }

  bool Lex() {
    size_t i = 0;
    while (true) {
      while (i < text_.size() && absl::ascii_isspace(text_[i])) ++i;
      Token t;
      t.pos = i;
      if (i == text_.size()) {
        t.end = i;
        tokens_.push_back(t);
        return true;
      }
      char c = text_[i];
      if (c == '(' || c == ')') {
        t.type = c == '(' ? Tok::kLParen : Tok::kRParen;
        ++i;
      } else if (c == '-') {
        t.type = Tok::kMinus;
        ++i;
      } else if (c == '=' || c == '<' || c == '>' || c == '!') {
        t.type = Tok::kOp;
        bool eq_next = i + 1 < text_.size() && text_[i + 1] == '=';
        if (c == '!' && !eq_next)
          return Fail(i, "expected '!=' ('!' alone is not an operator)");
        t.op = c == '='   ? CompareOp::kEq
               : c == '!' ? CompareOp::kNe
               : c == '<' ? (eq_next ? CompareOp::kLe : CompareOp::kLt)
                          : (eq_next ? CompareOp::kGe : CompareOp::kGt);
        i += (c != '=' && eq_next) ? 2 : 1;
      } else if (c == '"') {
        t.type = Tok::kString;
        ++i;
        bool closed = false;
        while (i < text_.size()) {
          char d = text_[i++];
          if (d == '"') {
            closed = true;
            break;
          }
          if (d == '\\') {
            if (i == text_.size()) break;
            d = text_[i++];
          }
          t.text.push_back(d);
        }
        if (!closed)
          return Fail(t.pos, "unterminated string: expected a closing '\"'");
      } else if (IsWordStart(c)) {
        t.type = Tok::kWord;
        while (i < text_.size() && IsWordChar(text_[i])) ++i;
        t.text = std::string(text_.substr(t.pos, i - t.pos));
      } else {
        return Fail(i,
                    absl::StrCat("unexpected character '", QuoteChar(i),
                                 "': expected a field, '(', NOT or a value"));
      }
      t.end = i;
      tokens_.push_back(std::move(t));
    }
  }

  const Token& Peek() const { return tokens_[next_]; }
  const Token& Take() {
    return tokens_[next_ < tokens_.size() - 1 ? next_++ : next_];
  }
  bool PeekKeyword(absl::string_view word) const {
    return Peek().type == Tok::kWord && Peek().text == word;
  }

  // expression := sequence { AND sequence }
  bool Expression(int depth, FilterExpr* out) {
    return Chain(depth, "AND", FilterExpr::Kind::kAnd, out,
                 [this](int d, FilterExpr* e) {
                   return Chain(d, "OR", FilterExpr::Kind::kOr, e,
                                [this](int d2, FilterExpr* e2) {
                                  return Factor(d2, e2);
                                });
                 });
  }

  template <typename Sub>
  bool Chain(int depth, absl::string_view keyword, FilterExpr::Kind kind,
             FilterExpr* out, Sub sub) {
    FilterExpr first;
    if (!sub(depth, &first)) return false;
    if (!PeekKeyword(keyword)) {
      *out = std::move(first);
      return true;
    }
    out->kind = kind;
    out->children.push_back(std::move(first));
    while (PeekKeyword(keyword)) {
      Take();
      FilterExpr next;
      if (!sub(depth, &next)) return false;
      out->children.push_back(std::move(next));
    }
    return true;
  }

  bool Factor(int depth, FilterExpr* out) {
    if (depth >= kMaxFilterDepth) {
      return Fail(Peek().pos,
                  absl::StrCat("nesting deeper than ", kMaxFilterDepth));
    }
    const Token& t = Peek();
    if (t.type == Tok::kMinus || (t.type == Tok::kWord && t.text == "NOT")) {
      Take();
      out->kind = FilterExpr::Kind::kNot;
      out->children.emplace_back();
      return Factor(depth + 1, &out->children.back());
    }
    if (t.type == Tok::kLParen) {
      Take();
      if (!Expression(depth + 1, out)) return false;
      if (Peek().type != Tok::kRParen)
        return Fail(Peek(), "expected ')' or AND/OR");
      Take();
      return true;
    }
    return Comparison(out);
  }

  bool Comparison(FilterExpr* out) {
    const Token& name = Take();
    if (name.type != Tok::kWord || name.text == "AND" || name.text == "OR") {
      return Fail(name, "expected a field name, NOT or '('");
    }
    out->kind = FilterExpr::Kind::kCompare;
    if (!ResolveField(name, out)) return false;
    const Token& op = Take();
    if (op.type != Tok::kOp) {
      return Fail(op, "expected a comparison operator (=, !=, <, >, <=, >=)");
    }
    out->op = op.op;
    return Value(out);
  }

  bool ResolveField(const Token& name, FilterExpr* out) {
    static constexpr std::pair<absl::string_view, FilterField> kFields[] = {
        {"state", FilterField::kState},
        {"queue", FilterField::kQueue},
        {"kind", FilterField::kKind},
        {"id", FilterField::kId},
        {"priority", FilterField::kPriority},
        {"attempt", FilterField::kAttempt},
        {"create_time", FilterField::kCreateTime},
        {"update_time", FilterField::kUpdateTime},
        {"schedule_time", FilterField::kScheduleTime},
        {"finish_time", FilterField::kFinishTime},
    };
    for (const auto& [text, field] : kFields) {
      if (name.text == text) {
        out->field = field;
        return true;
      }
    }
    if (absl::StartsWith(name.text, "labels.") && name.text.size() > 7) {
      out->field = FilterField::kLabel;
      out->label_key = name.text.substr(7);
      return true;
    }
    return Fail(
        name.pos,
        absl::StrCat("unknown field '", name.text.substr(0, 40),
                     "': expected state, queue, kind, id, priority, attempt, "
                     "labels.KEY, create_time, update_time, schedule_time or "
                     "finish_time"));
  }

  bool Value(FilterExpr* out) {
    Token t = Take();
    if (t.type == Tok::kMinus) {
      // A negative number: '-' directly followed by digits.
      const Token& w = Peek();
      if (w.type != Tok::kWord || w.pos != t.end)
        return Fail(w, "expected a value");
      t.text = absl::StrCat("-", w.text);
      t.type = Tok::kWord;
      Take();
    }
    if (t.type != Tok::kWord && t.type != Tok::kString)
      return Fail(t, "expected a value");
    FilterValue& v = out->value;
    switch (out->field) {
      case FilterField::kState:
        if (out->op != CompareOp::kEq && out->op != CompareOp::kNe) {
          return Fail(t.pos, "state only supports = and !=");
        }
        if (!ParseJobState(t.text, &v.state)) {
          return Fail(t,
                      "expected a state name such as QUEUED or STATE_RUNNING");
        }
        return true;
      case FilterField::kPriority:
      case FilterField::kAttempt:
        if (!absl::SimpleAtoi(t.text, &v.integer))
          return Fail(t, "expected an integer");
        return true;
      case FilterField::kCreateTime:
      case FilterField::kUpdateTime:
      case FilterField::kScheduleTime:
      case FilterField::kFinishTime: {
        std::string err;
        if (!absl::ParseTime(absl::RFC3339_full, t.text, &v.time, &err)) {
          return Fail(t,
                      "expected an RFC 3339 timestamp such as "
                      "\"2026-01-01T00:00:00Z\"");
        }
        return true;
      }
      case FilterField::kQueue:
      case FilterField::kKind:
      case FilterField::kId:
      case FilterField::kLabel:
        v.text = t.text;
        return true;
    }
    return Fail(t, "expected a value");
  }

  absl::string_view text_;
  std::vector<Token> tokens_;
  size_t next_ = 0;
  absl::Status error_;
};

template <typename T>
int Compare(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

bool MatchesCompare(const FilterExpr& f, const JobEvent& e) {
  switch (f.field) {
    case FilterField::kState: {
      JobState state = e.state;
      if (state == JobState::kUnspecified && e.type == EventType::kStateChanged)
        state = e.to;
      if (state == JobState::kUnspecified) return false;
      return ApplyCompareOp(f.op, Compare(static_cast<int>(state),
                                          static_cast<int>(f.value.state)));
    }
    case FilterField::kQueue:
      return ApplyCompareOp(f.op, e.queue.compare(f.value.text));
    case FilterField::kKind:
      return ApplyCompareOp(f.op, e.kind.compare(f.value.text));
    case FilterField::kId:
      return ApplyCompareOp(f.op, e.job_id.compare(f.value.text));
    case FilterField::kPriority:
      return ApplyCompareOp(f.op,
                            Compare<int64_t>(e.priority, f.value.integer));
    case FilterField::kLabel: {
      auto it = e.labels.find(f.label_key);
      return it != e.labels.end() &&
             ApplyCompareOp(f.op, it->second.compare(f.value.text));
    }
    case FilterField::kAttempt:
    case FilterField::kCreateTime:
    case FilterField::kUpdateTime:
    case FilterField::kScheduleTime:
    case FilterField::kFinishTime:
      return false;
  }
  return false;
}

}  // namespace

bool ApplyCompareOp(CompareOp op, int cmp) {
  switch (op) {
    case CompareOp::kEq:
      return cmp == 0;
    case CompareOp::kNe:
      return cmp != 0;
    case CompareOp::kLt:
      return cmp < 0;
    case CompareOp::kGt:
      return cmp > 0;
    case CompareOp::kLe:
      return cmp <= 0;
    case CompareOp::kGe:
      return cmp >= 0;
  }
  return false;
}

absl::StatusOr<FilterExpr> ParseFilter(absl::string_view text) {
  return Parser(text).Parse();
}

bool IsEvaluableInMemory(const FilterExpr& filter) {
  if (filter.kind == FilterExpr::Kind::kCompare) {
    switch (filter.field) {
      case FilterField::kState:
      case FilterField::kQueue:
      case FilterField::kKind:
      case FilterField::kId:
      case FilterField::kPriority:
      case FilterField::kLabel:
        return true;
      default:
        return false;
    }
  }
  for (const FilterExpr& child : filter.children) {
    if (!IsEvaluableInMemory(child)) return false;
  }
  return true;
}

bool Matches(const FilterExpr& filter, const JobEvent& event) {
  switch (filter.kind) {
    case FilterExpr::Kind::kTrue:
      return true;
    case FilterExpr::Kind::kAnd:
      for (const FilterExpr& c : filter.children) {
        if (!Matches(c, event)) return false;
      }
      return true;
    case FilterExpr::Kind::kOr:
      for (const FilterExpr& c : filter.children) {
        if (Matches(c, event)) return true;
      }
      return false;
    case FilterExpr::Kind::kNot:
      return !Matches(filter.children.front(), event);
    case FilterExpr::Kind::kCompare:
      return MatchesCompare(filter, event);
  }
  return false;
}

}  // namespace jobwire
