// Subcommands register themselves here (one file per subcommand), so adding one touches one file.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace lowbit::cli {

// setup adds the subcommand's options to `app` and returns the function that runs it (exit code).
using CommandSetup = std::function<std::function<int()>(CLI::App& app)>;

struct CommandDef {
  std::string name, help;
  CommandSetup setup;
};

std::vector<CommandDef>& command_registry();

struct RegisterCommand {
  RegisterCommand(std::string name, std::string help, CommandSetup setup) {
    command_registry().push_back({std::move(name), std::move(help), std::move(setup)});
  }
};

}  // namespace lowbit::cli
