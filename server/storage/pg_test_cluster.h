// PgTestCluster: a private PostgreSQL server for tests. Test-only.
//
// Starts Debian's PostgreSQL 15 (/usr/lib/postgresql/15/bin, or
// $JOBWIRE_PG_BIN) in a fresh temporary folder: `initdb` into DIR/data,
// then `pg_ctl start` listening only on a Unix socket in DIR
// (listen_addresses='', unix_socket_directories=DIR), with fsync=on and
// synchronous_commit=on, trust authentication for the superuser `postgres`.
// PostgreSQL refuses to run as root: when the test runs as root, every
// command runs as the `postgres` user (`runuser -u postgres --`) and DIR
// belongs to it. The destructor stops the server (`pg_ctl stop -m fast`) and
// removes DIR.
//
// NewSchema() gives each test a fresh, empty schema and the libpq connection
// string whose search_path selects it, so tests share one server (startup
// takes a second or two) and never see each other's tables.
//
// Not thread-safe. Aborts (with the server's log on stderr) when the server
// cannot be started: a test that needs PostgreSQL cannot run without it.
#ifndef JOBWIRE_SERVER_STORAGE_PG_TEST_CLUSTER_H_
#define JOBWIRE_SERVER_STORAGE_PG_TEST_CLUSTER_H_

#include <libpq-fe.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace jobwire::test {

class PgTestCluster {
 public:
  PgTestCluster() {
    const char* bin = getenv("JOBWIRE_PG_BIN");
    bin_ = bin != nullptr && *bin != '\0' ? bin : "/usr/lib/postgresql/15/bin";
    std::string tmpl = "/tmp/jobwire-pg-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp failed");
    dir_ = tmpl;
    as_postgres_ = geteuid() == 0;
    if (as_postgres_) {
      const passwd* pw = getpwnam("postgres");
      if (pw == nullptr) Die("no `postgres` user (install postgresql)");
      if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0)
        Die("chown of the cluster folder failed");
    }
    chmod(dir_.c_str(), 0700);
    Run(Quote(bin_ + "/initdb") + " --no-sync -A trust -U postgres -E UTF8 " +
            "--locale=C -D " + Quote(data()) + " >" +
            Quote(dir_ + "/initdb.log") + " 2>&1",
        "initdb");
    Start();
    conninfo_ = "host=" + dir_ + " port=5432 user=postgres dbname=postgres";
  }

  ~PgTestCluster() {
    Stop();
    std::string cmd = "rm -rf " + Quote(dir_);
    if (std::system(cmd.c_str()) != 0) std::cerr << "cannot remove " << dir_;
  }
  PgTestCluster(const PgTestCluster&) = delete;
  PgTestCluster& operator=(const PgTestCluster&) = delete;

  // (Re)starts the server, waiting until it accepts connections.
  void Start() {
    Run(Quote(bin_ + "/pg_ctl") + " -D " + Quote(data()) + " -w -t 60 -l " +
            Quote(dir_ + "/server.log") +
            " -o \"-c listen_addresses='' -c unix_socket_directories='" + dir_ +
            "' -c fsync=on -c synchronous_commit=on -c max_connections=200 "
            "-c shared_buffers=64MB\" start >/dev/null",
        "pg_ctl start");
  }

  // Stops the server (fast: open sessions are ended). Idempotent.
  void Stop() {
    std::string cmd = Command(Quote(bin_ + "/pg_ctl") + " -D " + Quote(data()) +
                              " -w -m fast stop >/dev/null 2>&1");
    (void)std::system(cmd.c_str());
  }

  // libpq connection string of database `postgres` as the superuser.
  const std::string& conninfo() const { return conninfo_; }
  // The socket folder (also the cluster's root folder).
  const std::string& dir() const { return dir_; }

  // Creates schema `name` (dropping an older one of that name) and returns
  // the connection string that works in it.
  std::string NewSchema(const std::string& name) {
    Exec("SET client_min_messages = warning; DROP SCHEMA IF EXISTS " + name +
         " CASCADE; CREATE SCHEMA " + name);
    return conninfo_ + " options='-c search_path=" + name + "'";
  }
  // A fresh schema with a generated name (s1, s2, ...).
  std::string NewSchema() {
    return NewSchema("s" + std::to_string(++schemas_));
  }

  // Runs `sql` as the superuser; aborts on error.
  void Exec(const std::string& sql) {
    PGconn* conn = PQconnectdb(conninfo_.c_str());
    if (PQstatus(conn) != CONNECTION_OK) Die(PQerrorMessage(conn));
    PGresult* r = PQexec(conn, sql.c_str());
    const ExecStatusType status = PQresultStatus(r);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
      Die(PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(conn);
  }

 private:
  std::string data() const { return dir_ + "/data"; }

  static std::string Quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    return out + "'";
  }

  std::string Command(const std::string& cmd) const {
    if (!as_postgres_) return cmd;
    return "runuser -u postgres -- sh -c " + Quote(cmd);
  }

  void Run(const std::string& cmd, const char* what) const {
    std::string full = Command(cmd);
    if (std::system(full.c_str()) != 0) {
      for (const char* log : {"/initdb.log", "/server.log"}) {
        std::ifstream in(dir_ + log);
        std::stringstream s;
        s << in.rdbuf();
        std::cerr << dir_ << log << ":\n" << s.str() << "\n";
      }
      Die(std::string(what) + " failed: " + full);
    }
  }

  [[noreturn]] static void Die(const std::string& why) {
    std::cerr << "PgTestCluster: " << why << std::endl;
    std::abort();
  }

  std::string bin_;
  std::string dir_;
  std::string conninfo_;
  bool as_postgres_ = false;
  int schemas_ = 0;
};

// One server for the whole test binary: started on first use, stopped and
// its folder removed when the binary's tests end (a gtest Environment).
inline PgTestCluster& SharedPgTestCluster() {
  static PgTestCluster* cluster = nullptr;
  if (cluster == nullptr) {
    class Stopper : public ::testing::Environment {
     public:
      explicit Stopper(PgTestCluster** c) : c_(c) {}
      void TearDown() override {
        delete *c_;
        *c_ = nullptr;
      }

     private:
      PgTestCluster** c_;
    };
    cluster = new PgTestCluster();
    ::testing::AddGlobalTestEnvironment(new Stopper(&cluster));
  }
  return *cluster;
}

}  // namespace jobwire::test

#endif  // JOBWIRE_SERVER_STORAGE_PG_TEST_CLUSTER_H_
