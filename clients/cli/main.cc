// jobwire: the command-line client of jobwired. See `jobwire --help`.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "clients/cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return jobwire::cli::RunCli(
      args, jobwire::cli::AllCommands(),
      [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        if (v == nullptr) return std::nullopt;
        return std::string(v);
      },
      std::cout, std::cerr, &std::cin);
}
