// slitstep/core: CSV tables (see table_io.hpp).
#include "core/table_io.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "core/text_io.hpp"

namespace slitstep {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

// Splits one CSV line into trimmed fields. Returns false (with `why`) for an unterminated quote.
bool split_line(const std::string& line, std::vector<std::string>& out, std::string& why) {
  out.clear();
  std::string field;
  bool quoted = false, was_quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
    } else if (c == '"' && trim(field).empty()) {
      quoted = true;
      was_quoted = true;
      field.clear();
    } else if (c == ',') {
      out.push_back(was_quoted ? field : trim(field));
      field.clear();
      was_quoted = false;
    } else if (!(was_quoted && (c == ' ' || c == '\t' || c == '\r'))) {
      field += c;
    }
  }
  if (quoted) {
    why = "unterminated quoted field";
    return false;
  }
  out.push_back(was_quoted ? field : trim(field));
  return true;
}

std::string quote_if_needed(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos && trim(s) == s) return s;
  std::string q = "\"";
  for (char c : s) q += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

std::size_t CsvTable::column(const std::string& name) const {
  for (std::size_t c = 0; c < header.size(); ++c)
    if (header[c] == name) return c;
  throw InputError(path + ": missing column '" + name + "' (columns: " + join(header) + ")");
}

bool CsvTable::has_column(const std::string& name) const {
  for (const auto& h : header)
    if (h == name) return true;
  return false;
}

const std::string& CsvTable::text(std::size_t row, const std::string& column_name) const {
  return rows.at(row)[column(column_name)];
}

double CsvTable::number(std::size_t row, const std::string& column_name, bool allow_nonfinite) const {
  const std::string& s = text(row, column_name);
  const std::string where = path + ":" + std::to_string(line_numbers.at(row)) + ": column '" + column_name + "'";
  if (s.empty()) throw InputError(where + " is empty: a number is required");
  // strtod accepts what C accepts (decimal, exponent, nan, inf); the whole field must be used.
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) throw InputError(where + " = '" + s + "': not a number");
  if (!std::isfinite(v) && !allow_nonfinite) throw InputError(where + " = '" + s + "': not finite");
  return v;
}

CsvTable parse_csv(const std::string& text, const std::string& source_name) {
  CsvTable t;
  t.path = source_name;
  std::istringstream in(text);
  std::string line, why;
  int lineno = 0;
  bool have_header = false;
  std::vector<std::string> fields;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string tl = trim(line);
    if (tl.empty() || tl[0] == '#') continue;
    if (!split_line(line, fields, why))
      throw InputError(source_name + ":" + std::to_string(lineno) + ": " + why);
    if (!have_header) {
      for (std::size_t c = 0; c < fields.size(); ++c) {
        if (fields[c].empty())
          throw InputError(source_name + ":" + std::to_string(lineno) + ": header column " + std::to_string(c + 1) +
                           " has no name");
        for (std::size_t d = 0; d < c; ++d)
          if (fields[d] == fields[c])
            throw InputError(source_name + ":" + std::to_string(lineno) + ": header names column '" + fields[c] +
                             "' twice");
      }
      t.header = fields;
      have_header = true;
      continue;
    }
    if (fields.size() != t.header.size())
      throw InputError(source_name + ":" + std::to_string(lineno) + ": " + std::to_string(fields.size()) +
                       " fields, the header has " + std::to_string(t.header.size()));
    t.rows.push_back(fields);
    t.line_numbers.push_back(lineno);
  }
  if (!have_header) throw InputError(source_name + ": empty: no header line");
  return t;
}

CsvTable read_csv(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot read (missing or unreadable)");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw InputError(path + ": read error");
  return parse_csv(ss.str(), path);
}

std::string format_csv_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string format_csv(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string out;
  // (appended piecewise: GCC 12 warns falsely (-Wrestrict) on const char* + std::string here)
  for (std::size_t c = 0; c < header.size(); ++c) {
    if (c) out += ',';
    out += quote_if_needed(header[c]);
  }
  out += '\n';
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() != header.size())
      throw InvalidOptions("format_csv: row " + std::to_string(r) + " has " + std::to_string(rows[r].size()) +
                           " fields, the header has " + std::to_string(header.size()));
    for (std::size_t c = 0; c < rows[r].size(); ++c) {
      if (c) out += ',';
      out += quote_if_needed(rows[r][c]);
    }
    out += '\n';
  }
  return out;
}

void write_csv(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows) {
  write_text_atomic(path, format_csv(header, rows));
}

}  // namespace slitstep
