// lowbit: low-bit inference for the Llama family. `lowbit --help` lists the subcommands.
#include <cstdio>
#include <exception>
#include <map>

#include "command.h"
#include "util/error.h"

namespace lowbit::cli {
std::vector<CommandDef>& command_registry() {
  static std::vector<CommandDef> r;
  return r;
}
}  // namespace lowbit::cli

int main(int argc, char** argv) {
  using namespace lowbit::cli;
  CLI::App app{"lowbit: low-bit inference and a survey of number formats for Llama models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("lowbit ") + LOWBIT_GIT_COMMIT);
  std::map<CLI::App*, std::function<int()>> runs;
  for (auto& def : command_registry()) {
    CLI::App* sub = app.add_subcommand(def.name, def.help);
    runs[sub] = def.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : runs)
      if (sub->parsed()) return run();
  } catch (const lowbit::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fprintf(stderr, "lowbit: error: out of host memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
