#include "server/http/route_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "jobwire/v1/admin_service.pb.h"
#include "jobwire/v1/job_service.pb.h"
#include "server/common/errors.h"

namespace jobwire::test {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

const RouteTable& Routes() {
  static const RouteTable* table = [] {
    (void)v1::SubmitJobRequest::descriptor();
    (void)v1::GetServerInfoRequest::descriptor();
    auto* pool = google::protobuf::DescriptorPool::generated_pool();
    auto t = RouteTable::FromServices(
        {pool->FindServiceByName("jobwire.v1.JobService"),
         pool->FindServiceByName("jobwire.v1.AdminService")});
    EXPECT_TRUE(t.ok()) << t.status();
    return new RouteTable(*std::move(t));
  }();
  return *table;
}

absl::StatusOr<RouteTable::Match> Find(absl::string_view method,
                                       std::vector<std::string> segments) {
  std::vector<std::string> allowed;
  return Routes().Find(method, segments, &allowed);
}

TEST(RouteTableTest, ReadsEveryAnnotatedMethod) {
  std::vector<std::string> patterns;
  for (const Route& r : Routes().routes()) {
    patterns.push_back(r.http_method + " " + r.pattern);
  }
  EXPECT_THAT(
      patterns,
      ::testing::IsSupersetOf(
          {"POST /v1/jobs", "GET /v1/jobs/{id}", "GET /v1/jobs",
           "PATCH /v1/jobs/{job.id}", "POST /v1/jobs/{id}:cancel",
           "GET /v1/jobs/{id}/events", "GET /v1/events", "GET /v1/queues",
           "PATCH /v1/queues/{queue.name}", "POST /v1/dispatch:pause",
           "GET /v1/server", "GET /v1/webhookDeliveries",
           "POST /v1/webhookDeliveries/{id}:redeliver"}));
}

TEST(RouteTableTest, MatchesVariablesAndCustomVerbs) {
  auto get = Find("GET", {"v1", "jobs", "01J"});
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->route->method->name(), "GetJob");
  EXPECT_THAT(get->bindings, ElementsAre(Pair("id", "01J")));

  auto cancel = Find("POST", {"v1", "jobs", "01J:cancel"});
  ASSERT_TRUE(cancel.ok()) << cancel.status();
  EXPECT_EQ(cancel->route->method->name(), "CancelJob");
  EXPECT_THAT(cancel->bindings, ElementsAre(Pair("id", "01J")));

  auto patch = Find("PATCH", {"v1", "queues", "emails"});
  ASSERT_TRUE(patch.ok()) << patch.status();
  EXPECT_THAT(patch->bindings, ElementsAre(Pair("queue.name", "emails")));

  auto pause = Find("POST", {"v1", "dispatch:pause"});
  ASSERT_TRUE(pause.ok()) << pause.status();
  EXPECT_EQ(pause->route->method->name(), "PauseDispatch");
}

TEST(RouteTableTest, UnknownVerbIsNotFoundAndWrongMethodListsAllowed) {
  EXPECT_EQ(Find("POST", {"v1", "jobs", "01J:explode"}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Find("GET", {"v2", "jobs"}).status().code(),
            absl::StatusCode::kNotFound);
  std::vector<std::string> allowed;
  auto wrong = Routes().Find("DELETE", {"v1", "jobs", "01J"}, &allowed);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(allowed, ElementsAre("GET", "PATCH"));
}

TEST(RouteTableTest, BuildsFromBodyQueryAndPath) {
  auto m = Find("PATCH", {"v1", "jobs", "01J"});
  ASSERT_TRUE(m.ok());
  v1::UpdateJobRequest request;
  absl::Status s =
      BuildRequest(*m->route, m->bindings,
                   {{"update_mask", "priority,labels"}, {"etag", "e1"}},
                   R"({"priority": 5, "id": "ignored"})", &request);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(request.job().id(), "01J");
  EXPECT_EQ(request.job().priority(), 5);
  EXPECT_THAT(request.update_mask().paths(), ElementsAre("priority", "labels"));
  EXPECT_EQ(request.etag(), "e1");
}

TEST(RouteTableTest, QueryAcceptsCamelCaseEnumsAndOptionalInts) {
  v1::WatchJobRequest watch;
  auto m = Find("GET", {"v1", "jobs", "01J", "events"});
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(
      BuildRequest(*m->route, m->bindings, {{"afterSeq", "7"}}, "", &watch)
          .ok());
  EXPECT_TRUE(watch.has_after_seq());
  EXPECT_EQ(watch.after_seq(), 7);

  v1::ListJobsRequest list;
  ASSERT_TRUE(SetFieldFromText(&list, "page_size", "20", "page_size").ok());
  EXPECT_EQ(list.page_size(), 20);
}

TEST(RouteTableTest, BadInputIsInvalidArgumentNamingTheParameter) {
  auto m = Find("GET", {"v1", "jobs"});
  ASSERT_TRUE(m.ok());
  v1::ListJobsRequest list;
  absl::Status s =
      BuildRequest(*m->route, m->bindings, {{"page_size", "many"}}, "", &list);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(GetFieldViolations(s).size(), 1u);
  EXPECT_EQ(GetFieldViolations(s)[0].field, "page_size");

  s = BuildRequest(*m->route, m->bindings, {{"nope", "1"}}, "", &list);
  EXPECT_EQ(GetFieldViolations(s)[0].field, "nope");

  s = BuildRequest(*m->route, m->bindings, {}, "{}", &list);
  EXPECT_EQ(GetFieldViolations(s)[0].field, "body");

  auto post = Find("POST", {"v1", "jobs"});
  ASSERT_TRUE(post.ok());
  v1::SubmitJobRequest submit;
  s = BuildRequest(*post->route, post->bindings, {}, "{not json", &submit);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GetFieldViolations(s)[0].field, "body");
  s = BuildRequest(*post->route, post->bindings, {}, R"({"jb": {}})", &submit);
  EXPECT_EQ(GetFieldViolations(s)[0].field, "body");
}

// Found by http_request_fuzz: a percent-decoded path segment or query value
// that is not UTF-8 went into a proto string, which the service then could
// not parse (INTERNAL instead of a BadRequest).
TEST(RouteTableTest, StringParametersMustBeValidUtf8) {
  auto m = Find("PATCH", {"v1", "queues", "e\xD7l"});
  ASSERT_TRUE(m.ok()) << m.status();
  v1::UpdateQueueRequest request;
  absl::Status s = BuildRequest(*m->route, m->bindings, {}, "{}", &request);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(GetFieldViolations(s).size(), 1u);
  EXPECT_EQ(GetFieldViolations(s)[0].field, "queue.name");
  EXPECT_EQ(GetFieldViolations(s)[0].description, "is not valid UTF-8");

  v1::ListJobsRequest list;
  s = SetFieldFromText(&list, "filter", "queue = \xC0\xAF", "filter");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      SetFieldFromText(&list, "filter", "queue = \xC3\xA9", "filter").ok());
}

}  // namespace
}  // namespace jobwire::test
