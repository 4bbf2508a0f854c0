#include "core/json.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace slitstep {

JsonValue& JsonValue::set(const std::string& key, JsonValue value) {
  for (auto& m : members_) {
    if (m.first == key) {
      m.second = std::move(value);
      return *this;
    }
  }
  members_.emplace_back(key, std::move(value));
  return *this;
}

JsonValue& JsonValue::push(JsonValue value) {
  elements_.push_back(std::move(value));
  return *this;
}

std::string json_escape(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

void JsonValue::write(std::string& out, int indent, int depth) const {
  auto newline = [&](int d) {
    if (indent > 0) {
      out += '\n';
      out.append(static_cast<std::size_t>(indent * d), ' ');
    }
  };
  switch (kind_) {
    case Kind::kNull: out += "null"; break;
    case Kind::kBool: out += bool_ ? "true" : "false"; break;
    case Kind::kInteger: out += is_unsigned_ ? std::to_string(uint_) : std::to_string(int_); break;
    case Kind::kNumber: {
      if (!std::isfinite(num_)) { out += "null"; break; }
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", num_);
      // shortest representation that round-trips
      for (int p = 6; p <= 17; ++p) {
        char b2[40];
        std::snprintf(b2, sizeof b2, "%.*g", p, num_);
        if (std::strtod(b2, nullptr) == num_) { std::snprintf(buf, sizeof buf, "%s", b2); break; }
      }
      out += buf;
      break;
    }
    case Kind::kString: out += json_escape(str_); break;
    case Kind::kObject: {
      out += '{';
      for (std::size_t i = 0; i < members_.size(); ++i) {
        newline(depth + 1);
        out += json_escape(members_[i].first);
        out += indent > 0 ? ": " : ":";
        members_[i].second.write(out, indent, depth + 1);
        if (i + 1 < members_.size()) out += ',';
      }
      if (!members_.empty()) newline(depth);
      out += '}';
      break;
    }
    case Kind::kArray: {
      out += '[';
      for (std::size_t i = 0; i < elements_.size(); ++i) {
        if (i) out += indent > 0 ? ", " : ",";
        elements_[i].write(out, indent, depth + 1);
      }
      out += ']';
      break;
    }
  }
}

std::string JsonValue::dump(int indent) const {
  std::string out;
  write(out, indent, 0);
  out += '\n';
  return out;
}

}  // namespace slitstep
