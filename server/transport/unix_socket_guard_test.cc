#include "server/transport/unix_socket_guard.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace jobwire::test {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Binds a Unix socket at `path` and closes it without unlinking: what a
// crashed server leaves behind.
void MakeStaleSocket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
}

class UnixSocketGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/jobwire-guard-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(UnixSocketGuardTest, AcquireCreatesParentDirectoryAndLockFile) {
  std::string path = dir_ + "/a/b/j.sock";
  auto guard = UnixSocketGuard::Acquire(path);
  ASSERT_TRUE(guard.ok()) << guard.status();
  EXPECT_TRUE(Exists(path + ".lock"));
  EXPECT_EQ((*guard)->lock_path(), path + ".lock");
}

TEST_F(UnixSocketGuardTest, SecondAcquireOnALivePathFailsAndKeepsTheSocket) {
  std::string path = dir_ + "/j.sock";
  auto first = UnixSocketGuard::Acquire(path);
  ASSERT_TRUE(first.ok());
  MakeStaleSocket(path);  // stands in for the first owner's bound socket

  auto second = UnixSocketGuard::Acquire(path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("another jobwired"),
            absl::string_view::npos);
  EXPECT_TRUE(Exists(path));
  EXPECT_TRUE(Exists(path + ".lock"));
}

TEST_F(UnixSocketGuardTest, StaleSocketIsRemoved) {
  std::string path = dir_ + "/j.sock";
  MakeStaleSocket(path);
  ASSERT_TRUE(Exists(path));
  auto guard = UnixSocketGuard::Acquire(path);
  ASSERT_TRUE(guard.ok()) << guard.status();
  EXPECT_FALSE(Exists(path));
}

TEST_F(UnixSocketGuardTest, RefusesToReplaceARegularFile) {
  std::string path = dir_ + "/j.sock";
  std::ofstream(path) << "precious";
  auto guard = UnixSocketGuard::Acquire(path);
  EXPECT_EQ(guard.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Exists(path));
  EXPECT_FALSE(Exists(path + ".lock"));
}

TEST_F(UnixSocketGuardTest, DestructorRemovesSocketAndLockAndFreesThePath) {
  std::string path = dir_ + "/j.sock";
  {
    auto guard = UnixSocketGuard::Acquire(path);
    ASSERT_TRUE(guard.ok());
    MakeStaleSocket(path);
  }
  EXPECT_FALSE(Exists(path));
  EXPECT_FALSE(Exists(path + ".lock"));
  EXPECT_TRUE(UnixSocketGuard::Acquire(path).ok());
}

TEST_F(UnixSocketGuardTest, SetModeChangesSocketPermissions) {
  std::string path = dir_ + "/j.sock";
  auto guard = UnixSocketGuard::Acquire(path);
  ASSERT_TRUE(guard.ok());
  MakeStaleSocket(path);
  ASSERT_TRUE((*guard)->SetMode(0660).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(UnixSocketGuardTest, SetModeOnAMissingSocketFails) {
  auto guard = UnixSocketGuard::Acquire(dir_ + "/j.sock");
  ASSERT_TRUE(guard.ok());
  EXPECT_FALSE((*guard)->SetMode(0600).ok());
}

// The default socket folder in the shared /tmp must be this user's own.
TEST(CheckSharedTmpFolderTest, RefusesAFolderOthersCanWrite) {
  const std::string own = "/tmp/jobwire-" + std::to_string(::geteuid());
  if (::access(own.c_str(), F_OK) == 0) {
    GTEST_SKIP() << own << " exists (in use?); not touching it";
  }
  ASSERT_EQ(::mkdir(own.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(own.c_str(), 0777), 0);  // as another user could make it
  absl::Status open = CheckSharedTmpFolder(own + "/jobwire.sock");
  EXPECT_EQ(open.code(), absl::StatusCode::kFailedPrecondition) << open;
  ASSERT_EQ(::chmod(own.c_str(), 0700), 0);
  EXPECT_TRUE(CheckSharedTmpFolder(own + "/jobwire.sock").ok());
  ::rmdir(own.c_str());
  // Created when missing, mode 0700; other paths are left alone.
  EXPECT_TRUE(CheckSharedTmpFolder(own + "/jobwire.sock").ok());
  struct stat st;
  ASSERT_EQ(::stat(own.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ::rmdir(own.c_str());
  EXPECT_TRUE(CheckSharedTmpFolder("/nonexistent/jobwire.sock").ok());
}

}  // namespace
}  // namespace jobwire::test
