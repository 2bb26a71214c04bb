// ListJobs planning: the filter AST compiled to parameterised SQL, order_by,
// page size and keyset page tokens. Internal to storage/. Pure functions.
//
// Values never enter the SQL text: every value is a `?` parameter.
// A page token is base64url("v1|<order>|<sort key>|<last id>|<hash>") where
// hash covers the filter text and the order, so a token is refused with a
// different filter or order_by. Tokens stay valid across restarts.
#ifndef JOBWIRE_SERVER_STORAGE_LIST_QUERY_H_
#define JOBWIRE_SERVER_STORAGE_LIST_QUERY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/filter.h"
#include "server/core/job.h"
#include "server/storage/job_store.h"
#include "server/storage/sqlite_rows.h"

namespace jobwire {

inline constexpr int32_t kDefaultPageSize = 100;
inline constexpr int32_t kMaxPageSize = 1000;

// The SQL the plan is written in. Both take `?` placeholders (the
// PostgreSQL store numbers them $1, $2... before preparing); they differ in
// booleans: SQLite's are integers, PostgreSQL's a type of their own.
enum class SqlDialect { kSqlite, kPostgres };

// Appends a boolean SQL expression over table `jobs` equivalent to `filter`,
// binding values through `params` in order.
void AppendFilterSql(const FilterExpr& filter, std::string* sql,
                     std::vector<SqlValue>* params,
                     SqlDialect dialect = SqlDialect::kSqlite);

// A term implied by `filter` that lets SQLite use a partial index of active
// or finished jobs (migration 3): "finish_time IS NULL" when every job the
// filter can match is in a non-terminal state, "finish_time IS NOT NULL" when
// every one is terminal, else nullptr. It holds because finish_time is set
// exactly on terminal jobs, so ANDing it to the filter selects the same jobs.
// NOT, OR and != are followed exactly (`NOT state = QUEUED` implies nothing).
const char* ImpliedFinishTimeSql(const FilterExpr& filter);

enum class ListOrder {
  kCreateAsc = 0,
  kCreateDesc = 1,
  kPriorityDesc = 2,
  kUpdateDesc = 3
};

struct ListPlan {
  // SELECT of every job column, fetching page_size + 1 rows.
  std::string sql;
  std::vector<SqlValue> params;
  int32_t page_size = kDefaultPageSize;
  ListOrder order = ListOrder::kCreateAsc;
  uint64_t query_hash = 0;
};

// INVALID_ARGUMENT with field "filter", "order_by", "page_size" or
// "page_token".
absl::StatusOr<ListPlan> PlanListJobs(const ListJobsQuery& query,
                                      SqlDialect dialect = SqlDialect::kSqlite);

// The token that continues after `last` (the last job of a full page).
std::string MakePageToken(const ListPlan& plan, const Job& last);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_LIST_QUERY_H_
