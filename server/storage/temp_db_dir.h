// A fresh temporary directory for a test's database. Test-only.
#ifndef JOBWIRE_SERVER_STORAGE_TEMP_DB_DIR_H_
#define JOBWIRE_SERVER_STORAGE_TEMP_DB_DIR_H_

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace jobwire::test {

// Made by the constructor; the destructor removes db() with its -wal and
// -shm files, then the (then empty) directory.
class TempDbDir {
 public:
  TempDbDir() {
    std::string tmpl = "/tmp/jobwire-test-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDbDir() {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::remove((db() + suffix).c_str());
    }
    rmdir(path_.c_str());
  }
  TempDbDir(const TempDbDir&) = delete;
  TempDbDir& operator=(const TempDbDir&) = delete;

  std::string db() const { return path_ + "/jobs.db"; }

 private:
  std::string path_;
};

}  // namespace jobwire::test

#endif  // JOBWIRE_SERVER_STORAGE_TEMP_DB_DIR_H_
