#pragma once
// Shared test helpers: where the shared data and the CLI are, temporary folders, running the CLI.
#include <filesystem>
#include <string>

namespace slitstep::test {

inline std::string shared_data(const std::string& rel) { return std::string(SLITSTEP_SHARED_DATA) + "/" + rel; }
inline std::string shared_reference(const std::string& rel) {
  return std::string(SLITSTEP_SHARED_REFERENCE) + "/" + rel;
}
inline std::string cli_path() { return SLITSTEP_CLI; }
inline std::string python() { return SLITSTEP_PYTHON; }

/// A fresh, empty temporary directory unique to this test (removed at destruction).
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;     // the process's exit status; 128+N if killed by signal N
  std::string output;     // stdout and stderr together
};

/// Runs a shell command, capturing stdout+stderr.
CommandResult run_command(const std::string& command);
/// Runs the slitstep CLI with the given arguments (already shell-quoted as needed).
CommandResult run_cli(const std::string& args);
/// The whole content of a file (empty if it cannot be read).
std::string read_text(const std::string& path);
/// Writes text to a file.
void write_text(const std::string& path, const std::string& text);

}  // namespace slitstep::test
