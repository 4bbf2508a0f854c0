#include "core/config.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include "core/error.hpp"

namespace slitstep {

struct Config::State {
  std::string source;
  std::string text;
  toml::table doc;
  std::set<const toml::node*> used;
  std::map<std::string, std::set<std::string>> requested;  // section path -> keys asked for
};

namespace {

std::string node_text(const toml::node& n) {
  std::ostringstream os;
  if (n.is_table()) return "<table>";
  if (n.is_array()) {
    os << toml::toml_formatter(*n.as_array(), toml::format_flags::none);
    return os.str();
  }
  if (n.is_floating_point()) {
    // shortest text that reads back to the same double (-0.1, not -0.10000000000000001)
    const double v = n.as_floating_point()->get();
    char buf[40];
    for (int p = 1; p <= 17; ++p) {
      std::snprintf(buf, sizeof buf, "%.*g", p, v);
      if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
  }
  n.visit([&](auto&& v) { os << v; });
  return os.str();
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string strip_indices(std::string s) {
  for (auto pos = s.find('['); pos != std::string::npos; pos = s.find('['))
    s.erase(pos, s.find(']', pos) - pos + 1);
  return s;
}

}  // namespace

Config Config::parse(std::string text, const std::string& source) {
  Config c;
  auto st = std::make_shared<Config::State>();
  st->source = source;
  st->text = std::move(text);
  try {
    st->doc = toml::parse(st->text, source);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw InputError(source + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) +
                     ": TOML syntax error: " + std::string(e.description()));
  }
  c.state_ = std::move(st);
  return c;
}

Config Config::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open the configuration file (missing or unreadable)");
  std::ostringstream os;
  os << in.rdbuf();
  std::string text = os.str();
  if (text.find('\0') != std::string::npos)
    throw InputError(path + ": not a TOML text file (contains binary data)");
  return parse(std::move(text), path);
}

Config Config::from_string(const std::string& text, const std::string& source_name) {
  return parse(text, source_name);
}

Config Config::empty(const std::string& source_name) { return parse("", source_name); }

Section Config::root() const { return Section(state_, &state_->doc, ""); }
const std::string& Config::source_name() const { return state_->source; }
const std::string& Config::text() const { return state_->text; }

void Config::check_all_used() const {
  // Walk the document; report the first node (lowest line) that was never read.
  struct Unused {
    std::string path;
    const toml::node* node;
    std::vector<std::string> siblings;
  };
  std::vector<Unused> unused;
  std::function<void(const toml::table&, const std::string&)> walk = [&](const toml::table& t,
                                                                       const std::string& prefix) {
    std::vector<std::string> read_keys;
    // Keys the program knows in this section: every key it asked for (present or not);
    // sections inside arrays of tables are compared without their [index].
    const std::string sp = strip_indices(prefix);
    for (const auto& [p, keys] : state_->requested)
      if (strip_indices(p) == sp) read_keys.insert(read_keys.end(), keys.begin(), keys.end());
    for (auto&& [k, v] : t) {
      const std::string p = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      if (!state_->used.count(&v)) {
        unused.push_back({p, &v, read_keys});
        continue;
      }
      if (auto* sub = v.as_table()) walk(*sub, p);
      if (auto* arr = v.as_array()) {
        std::size_t i = 0;
        for (auto& el : *arr) {
          if (auto* st = el.as_table()) walk(*st, p + "[" + std::to_string(i) + "]");
          ++i;
        }
      }
    }
  };
  walk(state_->doc, "");
  if (unused.empty()) return;
  auto first = std::min_element(unused.begin(), unused.end(), [](const Unused& a, const Unused& b) {
    return a.node->source().begin.line < b.node->source().begin.line;
  });
  std::string msg = state_->source + ":" + std::to_string(first->node->source().begin.line) +
                    ": unknown key '" + first->path + "'";
  const std::string leaf = first->path.substr(first->path.find_last_of('.') + 1);
  std::string best;
  std::size_t best_d = 4;
  for (const auto& s : first->siblings) {
    const std::size_t d = edit_distance(leaf, s);
    if (d < best_d) { best_d = d; best = s; }
  }
  if (!best.empty()) msg += " (did you mean '" + best + "'?)";
  else msg += " (see docs/configuration.md for the accepted keys)";
  throw InputError(msg);
}

const toml::node* Section::lookup(const std::string& key) const {
  state_->requested[path_].insert(key);
  if (!table_) return nullptr;
  const toml::node* n = table_->get(key);
  if (n) state_->used.insert(n);
  return n;
}

std::string Section::where(const toml::node* n) const {
  return state_->source + ":" + std::to_string(n ? n->source().begin.line : 0);
}

void Section::fail(const std::string& key, const std::string& message) const {
  const toml::node* n = table_ ? table_->get(key) : nullptr;
  if (!n) throw InputError(state_->source + ": " + full(key) + ": " + message);
  throw InputError(where(n) + ": " + full(key) + " = " + node_text(*n) + ": " + message);
}

bool Section::has(const std::string& key) const { return table_ && table_->contains(key); }

std::vector<std::string> Section::keys() const {
  std::vector<std::string> out;
  if (table_)
    for (auto&& [k, v] : *table_) out.emplace_back(k.str());
  return out;
}

bool Section::get(const std::string& key, double& out) const {
  const toml::node* n = lookup(key);
  if (!n) return false;
  double v;
  if (n->is_floating_point()) v = n->as_floating_point()->get();
  else if (n->is_integer()) v = static_cast<double>(n->as_integer()->get());
  else fail(key, "expected a number");
  if (!std::isfinite(v)) fail(key, "must be a finite number");
  out = v;
  return true;
}

bool Section::get(const std::string& key, int& out) const {
  const toml::node* n = lookup(key);
  if (!n) return false;
  if (!n->is_integer()) fail(key, "expected an integer");
  const auto v = n->as_integer()->get();
  if (v < -2147483647LL || v > 2147483647LL) fail(key, "integer out of range");
  out = static_cast<int>(v);
  return true;
}

bool Section::get(const std::string& key, std::uint64_t& out) const {
  const toml::node* n = lookup(key);
  if (!n) return false;
  if (!n->is_integer()) fail(key, "expected a non-negative integer");
  const auto v = n->as_integer()->get();
  if (v < 0) fail(key, "must be >= 0");
  out = static_cast<std::uint64_t>(v);
  return true;
}

bool Section::get(const std::string& key, bool& out) const {
  const toml::node* n = lookup(key);
  if (!n) return false;
  if (!n->is_boolean()) fail(key, "expected true or false");
  out = n->as_boolean()->get();
  return true;
}

bool Section::get(const std::string& key, std::string& out) const {
  const toml::node* n = lookup(key);
  if (!n) return false;
  if (!n->is_string()) fail(key, "expected a string");
  out = n->as_string()->get();
  return true;
}

bool Section::get(const std::string& key, std::vector<double>& out) const {
  const toml::node* n = lookup(key);
  if (!n) return false;
  if (!n->is_array()) fail(key, "expected an array of numbers");
  std::vector<double> v;
  for (auto& el : *n->as_array()) {
    if (el.is_floating_point()) v.push_back(el.as_floating_point()->get());
    else if (el.is_integer()) v.push_back(static_cast<double>(el.as_integer()->get()));
    else fail(key, "expected an array of numbers");
    if (!std::isfinite(v.back())) fail(key, "every element must be finite");
  }
  out = std::move(v);
  return true;
}

bool Section::get(const std::string& key, std::vector<std::string>& out) const {
  const toml::node* n = lookup(key);
  if (!n) return false;
  if (!n->is_array()) fail(key, "expected an array of strings");
  std::vector<std::string> v;
  for (auto& el : *n->as_array()) {
    if (!el.is_string()) fail(key, "expected an array of strings");
    v.push_back(el.as_string()->get());
  }
  out = std::move(v);
  return true;
}

bool Section::get(const std::string& key, std::vector<int>& out) const {
  const toml::node* n = lookup(key);
  if (!n) return false;
  if (!n->is_array()) fail(key, "expected an array of integers");
  std::vector<int> v;
  for (auto& el : *n->as_array()) {
    if (!el.is_integer()) fail(key, "expected an array of integers");
    v.push_back(static_cast<int>(el.as_integer()->get()));
  }
  out = std::move(v);
  return true;
}

Section Section::table(const std::string& key) const {
  const toml::node* n = lookup(key);
  if (!n) return Section(state_, nullptr, full(key));
  if (!n->is_table()) fail(key, "expected a table [" + full(key) + "]");
  return Section(state_, n->as_table(), full(key));
}

std::vector<Section> Section::table_array(const std::string& key) const {
  std::vector<Section> out;
  const toml::node* n = lookup(key);
  if (!n) return out;
  if (!n->is_array_of_tables()) fail(key, "expected an array of tables [[" + full(key) + "]]");
  std::size_t i = 0;
  for (auto& el : *n->as_array()) {
    state_->used.insert(&el);
    out.push_back(Section(state_, el.as_table(), full(key) + "[" + std::to_string(i++) + "]"));
  }
  return out;
}

}  // namespace slitstep
