#pragma once
// Reading numbers and strings out of the JSON products (fit.json, summary.json, ...) in tests,
// without a JSON parser: core/json writes one member per line, `"key": value`.
//   json_number(js, key)          the number after the first "key": (NaN for null / absent)
//   json_number(js, key, within)  the same, searching from the first "within": on — e.g.
//                                 json_number(js, "value", "vc_kms") for {"vc_kms": {"value": ..}}
//   json_string(js, key[, within]) the string after "key": "..." ("<absent>" when absent)
#include <cmath>
#include <cstdlib>
#include <string>

namespace slitstep::test {

inline double json_number(const std::string& js, const std::string& key, const std::string& within = "") {
  std::size_t p = 0;
  if (!within.empty()) {
    p = js.find("\"" + within + "\":");
    if (p == std::string::npos) return NAN;
  }
  p = js.find("\"" + key + "\":", p);
  if (p == std::string::npos) return NAN;
  p += key.size() + 3;
  while (p < js.size() && js[p] == ' ') ++p;
  if (js.compare(p, 4, "null") == 0) return NAN;
  return std::strtod(js.c_str() + p, nullptr);
}

inline std::string json_string(const std::string& js, const std::string& key, const std::string& within = "") {
  std::size_t p0 = 0;
  if (!within.empty()) {
    p0 = js.find("\"" + within + "\":");
    if (p0 == std::string::npos) return "<absent>";
  }
  auto p = js.find("\"" + key + "\": \"", p0);
  if (p == std::string::npos) return "<absent>";
  p += key.size() + 5;
  return js.substr(p, js.find('"', p) - p);
}

}  // namespace slitstep::test
