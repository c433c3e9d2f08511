#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>

namespace lowbit::test {

CmdResult run_cli(const std::string& args) {
  CmdResult r;
  char tmpl[] = "/tmp/lowbit_test_err_XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd >= 0) close(fd);
  std::string cmd = std::string(LOWBIT_CLI_PATH) + " " + args + " 2>" + tmpl;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = read_text_file(tmpl);
  unlink(tmpl);
  return r;
}

}  // namespace lowbit::test
