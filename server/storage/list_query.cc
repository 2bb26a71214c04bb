#include "server/storage/list_query.h"

#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/common/errors.h"
#include "server/common/status_macros.h"

namespace jobwire {
namespace {

const char* OpSql(CompareOp op) {
  switch (op) {
    case CompareOp::kEq:
      return "=";
    case CompareOp::kNe:
      return "!=";
    case CompareOp::kLt:
      return "<";
    case CompareOp::kGt:
      return ">";
    case CompareOp::kLe:
      return "<=";
    case CompareOp::kGe:
      return ">=";
  }
  return "=";
}

void AppendCompareSql(const FilterExpr& f, std::string* sql,
                      std::vector<SqlValue>* params, SqlDialect dialect) {
  const char* op = OpSql(f.op);
  auto simple = [&](const char* column, SqlValue value) {
    absl::StrAppend(sql, column, " ", op, " ?");
    params->push_back(std::move(value));
  };
  // Unset times are NULL: the comparison is false (and NOT of it true).
  auto nullable_time = [&](const char* column) {
    absl::StrAppend(
        sql, dialect == SqlDialect::kPostgres ? "COALESCE(" : "IFNULL(", column,
        " ", op, " ?, ", dialect == SqlDialect::kPostgres ? "FALSE)" : "0)");
    params->push_back(TimeValue(f.value.time));
  };
  switch (f.field) {
    case FilterField::kState:
      return simple("state", SqlValue::Int(static_cast<int>(f.value.state)));
    case FilterField::kQueue:
      return simple("queue", SqlValue::Text(f.value.text));
    case FilterField::kKind:
      return simple("kind", SqlValue::Text(f.value.text));
    case FilterField::kId:
      return simple("id", SqlValue::Text(f.value.text));
    case FilterField::kPriority:
      return simple("priority", SqlValue::Int(f.value.integer));
    case FilterField::kAttempt:
      return simple("attempt", SqlValue::Int(f.value.integer));
    case FilterField::kCreateTime:
      return simple("create_time", TimeValue(f.value.time));
    case FilterField::kUpdateTime:
      return simple("update_time", TimeValue(f.value.time));
    case FilterField::kScheduleTime:
      return nullable_time("schedule_time");
    case FilterField::kFinishTime:
      return nullable_time("finish_time");
    case FilterField::kLabel:
      absl::StrAppend(
          sql,
          "EXISTS (SELECT 1 FROM job_labels l WHERE l.job_id = jobs.id AND "
          "l.key = ? AND l.value ",
          op, " ?)");
      params->push_back(SqlValue::Text(f.label_key));
      params->push_back(SqlValue::Text(f.value.text));
      return;
  }
}

uint64_t Fnv1a(absl::string_view text, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

absl::StatusOr<ListOrder> ParseOrder(absl::string_view text) {
  std::vector<absl::string_view> words =
      absl::StrSplit(text, ' ', absl::SkipWhitespace());
  std::string norm = absl::AsciiStrToLower(absl::StrJoin(words, " "));
  if (norm.empty() || norm == "create_time" || norm == "create_time asc") {
    return ListOrder::kCreateAsc;
  }
  if (norm == "create_time desc") return ListOrder::kCreateDesc;
  if (norm == "priority desc") return ListOrder::kPriorityDesc;
  if (norm == "update_time desc") return ListOrder::kUpdateDesc;
  return InvalidArgumentError(
      "order_by",
      "must be one of \"create_time\", \"create_time desc\", "
      "\"priority desc\", \"update_time desc\"");
}

struct PageCursor {
  int64_t key = 0;
  std::string id;
};

absl::StatusOr<PageCursor> ParseToken(absl::string_view token,
                                      const ListPlan& plan) {
  auto bad = [] {
    return InvalidArgumentError(
        "page_token",
        "is not a token of this listing (filter and order_by must "
        "stay the same between pages)");
  };
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return bad();
  std::vector<std::string> parts = absl::StrSplit(raw, '|');
  int order = 0;
  uint64_t hash = 0;
  PageCursor cursor;
  if (parts.size() != 5 || parts[0] != "v1" ||
      !absl::SimpleAtoi(parts[1], &order) ||
      order != static_cast<int>(plan.order) ||
      !absl::SimpleAtoi(parts[2], &cursor.key) || parts[3].empty() ||
      !absl::SimpleHexAtoi(parts[4], &hash) || hash != plan.query_hash) {
    return bad();
  }
  cursor.id = parts[3];
  return cursor;
}

int64_t SortKey(ListOrder order, const Job& job) {
  switch (order) {
    case ListOrder::kPriorityDesc:
      return job.priority;
    case ListOrder::kUpdateDesc:
      return absl::ToUnixMicros(job.update_time);
    default:
      return 0;
  }
}

// Bit s set: a job in state s may match. Stored jobs are in states 1..7.
using StateSet = uint32_t;
constexpr StateSet kAllStates = 0xFE;
constexpr StateSet kTerminalSet = (1u << 5) | (1u << 6) | (1u << 7);

// The states of the jobs that may match `filter`: exactly those when *exact
// comes back true, else a superset.
StateSet MatchingStates(const FilterExpr& filter, bool* exact) {
  switch (filter.kind) {
    case FilterExpr::Kind::kTrue:
      *exact = true;
      return kAllStates;
    case FilterExpr::Kind::kAnd:
    case FilterExpr::Kind::kOr: {
      const bool is_and = filter.kind == FilterExpr::Kind::kAnd;
      StateSet set = is_and ? kAllStates : 0;
      *exact = true;
      for (const FilterExpr& child : filter.children) {
        bool child_exact = false;
        const StateSet s = MatchingStates(child, &child_exact);
        set = is_and ? (set & s) : (set | s);
        *exact = *exact && child_exact;
      }
      return set;
    }
    case FilterExpr::Kind::kNot: {
      bool child_exact = false;
      const StateSet s = MatchingStates(filter.children.front(), &child_exact);
      *exact = child_exact;
      return child_exact ? (kAllStates & ~s) : kAllStates;
    }
    case FilterExpr::Kind::kCompare:
      break;
  }
  if (filter.field != FilterField::kState) {
    *exact = false;
    return kAllStates;
  }
  *exact = true;
  const int value = static_cast<int>(filter.value.state);
  StateSet set = 0;
  for (int s = 1; s <= 7; ++s) {
    if (ApplyCompareOp(filter.op, s < value ? -1 : (s > value ? 1 : 0))) {
      set |= 1u << s;
    }
  }
  return set;
}

}  // namespace

const char* ImpliedFinishTimeSql(const FilterExpr& filter) {
  bool exact = false;
  const StateSet states = MatchingStates(filter, &exact);
  if (states == 0 || states == kAllStates) return nullptr;
  if ((states & ~kTerminalSet) == 0) return "finish_time IS NOT NULL";
  if ((states & kTerminalSet) == 0) return "finish_time IS NULL";
  return nullptr;
}

void AppendFilterSql(const FilterExpr& filter, std::string* sql,
                     std::vector<SqlValue>* params, SqlDialect dialect) {
  switch (filter.kind) {
    case FilterExpr::Kind::kTrue:
      sql->append(dialect == SqlDialect::kPostgres ? "TRUE" : "1");
      return;
    case FilterExpr::Kind::kAnd:
    case FilterExpr::Kind::kOr: {
      const char* join =
          filter.kind == FilterExpr::Kind::kAnd ? " AND " : " OR ";
      sql->append("(");
      for (size_t i = 0; i < filter.children.size(); ++i) {
        if (i > 0) sql->append(join);
        AppendFilterSql(filter.children[i], sql, params, dialect);
      }
      sql->append(")");
      return;
    }
    case FilterExpr::Kind::kNot:
      sql->append("NOT (");
      AppendFilterSql(filter.children.front(), sql, params, dialect);
      sql->append(")");
      return;
    case FilterExpr::Kind::kCompare:
      AppendCompareSql(filter, sql, params, dialect);
      return;
  }
}

absl::StatusOr<ListPlan> PlanListJobs(const ListJobsQuery& query,
                                      SqlDialect dialect) {
  ListPlan plan;
  if (query.page_size < 0)
    return InvalidArgumentError("page_size", "must not be negative");
  plan.page_size = query.page_size == 0
                       ? kDefaultPageSize
                       : std::min<int32_t>(query.page_size, kMaxPageSize);
  JW_ASSIGN_OR_RETURN(plan.order, ParseOrder(query.order_by));
  JW_ASSIGN_OR_RETURN(FilterExpr filter, ParseFilter(query.filter));
  plan.query_hash =
      Fnv1a(absl::StrCat(static_cast<int>(plan.order)), Fnv1a(query.filter));

  plan.sql = absl::StrCat("SELECT ", JobColumnList(false), " FROM jobs WHERE ");
  AppendFilterSql(filter, &plan.sql, &plan.params, dialect);
  if (const char* implied = ImpliedFinishTimeSql(filter); implied != nullptr) {
    absl::StrAppend(&plan.sql, " AND ", implied);
  }
  if (!query.page_token.empty()) {
    JW_ASSIGN_OR_RETURN(PageCursor cursor, ParseToken(query.page_token, plan));
    switch (plan.order) {
      case ListOrder::kCreateAsc:
        plan.sql.append(" AND id > ?");
        break;
      case ListOrder::kCreateDesc:
        plan.sql.append(" AND id < ?");
        break;
      case ListOrder::kPriorityDesc:
        plan.sql.append(" AND (priority < ? OR (priority = ? AND id > ?))");
        plan.params.push_back(SqlValue::Int(cursor.key));
        plan.params.push_back(SqlValue::Int(cursor.key));
        break;
      case ListOrder::kUpdateDesc:
        plan.sql.append(" AND (update_time, id) < (?, ?)");
        plan.params.push_back(SqlValue::Int(cursor.key));
        break;
    }
    plan.params.push_back(SqlValue::Text(cursor.id));
  }
  switch (plan.order) {
    case ListOrder::kCreateAsc:
      plan.sql.append(" ORDER BY id");
      break;
    case ListOrder::kCreateDesc:
      plan.sql.append(" ORDER BY id DESC");
      break;
    case ListOrder::kPriorityDesc:
      plan.sql.append(" ORDER BY priority DESC, id");
      break;
    case ListOrder::kUpdateDesc:
      plan.sql.append(" ORDER BY update_time DESC, id DESC");
      break;
  }
  plan.sql.append(" LIMIT ?");
  plan.params.push_back(SqlValue::Int(plan.page_size + 1));
  return plan;
}

std::string MakePageToken(const ListPlan& plan, const Job& last) {
  return absl::WebSafeBase64Escape(absl::StrCat(
      "v1|", static_cast<int>(plan.order), "|", SortKey(plan.order, last), "|",
      last.id, "|", absl::Hex(plan.query_hash)));
}

}  // namespace jobwire
