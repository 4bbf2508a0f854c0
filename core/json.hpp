#pragma once
// slitstep/core: a small ordered JSON writer for machine-readable summaries (truth.json,
// summary.json, fit.json). Keys keep insertion order; doubles are written with 17 significant
// digits (round-trip exact); non-finite doubles are written as null.
#include <string>
#include <utility>
#include <vector>

namespace slitstep {

class JsonValue {
 public:
  JsonValue() : kind_(Kind::kNull) {}
  JsonValue(double v) : kind_(Kind::kNumber), num_(v) {}
  JsonValue(int v) : kind_(Kind::kInteger), int_(v) {}
  JsonValue(long long v) : kind_(Kind::kInteger), int_(v) {}
  JsonValue(unsigned long long v) : kind_(Kind::kInteger), int_(static_cast<long long>(v)), uint_(v), is_unsigned_(true) {}
  JsonValue(unsigned long v) : JsonValue(static_cast<unsigned long long>(v)) {}
  JsonValue(bool v) : kind_(Kind::kBool), bool_(v) {}
  JsonValue(const char* s) : kind_(Kind::kString), str_(s) {}
  JsonValue(std::string s) : kind_(Kind::kString), str_(std::move(s)) {}
  static JsonValue object() { JsonValue v; v.kind_ = Kind::kObject; return v; }
  static JsonValue array() { JsonValue v; v.kind_ = Kind::kArray; return v; }

  /// Object: append (or replace) a member; returns *this for chaining.
  JsonValue& set(const std::string& key, JsonValue value);
  /// Array: append an element.
  JsonValue& push(JsonValue value);
  std::string dump(int indent = 2) const;

 private:
  enum class Kind { kNull, kNumber, kInteger, kBool, kString, kObject, kArray };
  void write(std::string& out, int indent, int depth) const;
  Kind kind_;
  double num_ = 0.0;
  long long int_ = 0;
  unsigned long long uint_ = 0;
  bool is_unsigned_ = false;
  bool bool_ = false;
  std::string str_;
  std::vector<std::pair<std::string, JsonValue>> members_;
  std::vector<JsonValue> elements_;
};

std::string json_escape(const std::string& s);

}  // namespace slitstep
