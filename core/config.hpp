#pragma once
// slitstep/core: strict TOML configuration reading (toml++).
//
// Every error is an InputError whose one-line message names the file, the line, the full key
// and the offending value:  "galaxy.toml:4: galaxy.inclination_deg = 95: must be in [0, 90]".
// Keys are read through Section::get(); after the consumer has read everything it knows,
// Config::check_all_used() refuses any key nobody read (a typo), with a "did you mean" hint.
// Values must be finite (nan/inf are refused); integers are accepted where a float is expected.
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace toml {
inline namespace v3 {
class table;
class node;
}  // namespace v3
}  // namespace toml

namespace slitstep {

class Section;

class Config {
 public:
  /// Parses a file; throws InputError "PATH: cannot read ..." or "PATH:LINE:COL: TOML syntax error: ...".
  static Config from_file(const std::string& path);
  /// Parses text; `source_name` is used in messages.
  static Config from_string(const std::string& text, const std::string& source_name);
  /// An empty configuration (all defaults).
  static Config empty(const std::string& source_name = "<defaults>");

  Section root() const;
  /// Throws InputError for the first key (in file order) that no Section::get/table call read.
  void check_all_used() const;
  const std::string& source_name() const;
  /// The document's text as given (for echoing into product headers).
  const std::string& text() const;

 private:
  struct State;
  static Config parse(std::string text, const std::string& source);
  std::shared_ptr<State> state_;
  friend class Section;
};

class Section {
 public:
  /// Full dotted path of this section ("" for the root).
  const std::string& path() const { return path_; }
  bool has(const std::string& key) const;
  /// If `key` is present, stores it in `out` and returns true; otherwise leaves `out` alone.
  /// Throws InputError on a wrong type or a non-finite number.
  bool get(const std::string& key, double& out) const;
  bool get(const std::string& key, int& out) const;
  bool get(const std::string& key, std::uint64_t& out) const;
  bool get(const std::string& key, bool& out) const;
  bool get(const std::string& key, std::string& out) const;
  bool get(const std::string& key, std::vector<double>& out) const;
  bool get(const std::string& key, std::vector<int>& out) const;
  bool get(const std::string& key, std::vector<std::string>& out) const;
  /// Sub-table `key` (an empty section if absent). Throws if `key` exists and is not a table.
  Section table(const std::string& key) const;
  /// Array of tables `[[key]]` (empty if absent).
  std::vector<Section> table_array(const std::string& key) const;
  /// Throws InputError "FILE:LINE: PATH.KEY = VALUE: message" for a value that breaks a rule.
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  /// Keys present in this section, in file order.
  std::vector<std::string> keys() const;

 private:
  friend class Config;
  Section(std::shared_ptr<Config::State> st, const toml::table* tbl, std::string path)
      : state_(std::move(st)), table_(tbl), path_(std::move(path)) {}
  const toml::node* lookup(const std::string& key) const;
  std::string where(const toml::node* n) const;
  std::string full(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  std::shared_ptr<Config::State> state_;
  const toml::table* table_;
  std::string path_;
};

}  // namespace slitstep
