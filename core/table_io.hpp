#pragma once
// slitstep/core: small CSV tables (read with file/line/column errors; write atomically).
//
// Reading (read_csv): comma-separated text; the first non-blank, non-comment line is the header
// (column names, trimmed); lines starting with '#' and blank lines are skipped; fields are
// trimmed of blanks; a field may be double-quoted ("a, b"; "" inside quotes is one quote).
// Every row must have exactly as many fields as the header. Line numbers are 1-based file lines.
// Every failure throws InputError with ONE line naming the file, the line and the column:
//   "pop.csv:7: column 'log_mstar' = 'abc': not a number"
//   "pop.csv: missing column 'gradient_err' (columns: id, log_mstar, ...)"
// Writing (write_csv / format_csv): a header line then one line per row; fields containing a
// comma, a quote or a newline are quoted. The file appears atomically (core/text_io.hpp).
// Numbers are formatted by format_csv_number: shortest round-trip form, NaN as "nan", +-inf as
// "inf"/"-inf" (pandas and numpy read these).
#include <cstddef>
#include <string>
#include <vector>

namespace slitstep {

struct CsvTable {
  std::string path;                              // for messages
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;    // rows[r][c], trimmed
  std::vector<int> line_numbers;                 // 1-based file line of each row

  std::size_t num_rows() const { return rows.size(); }
  /// Index of a column (exact, case-sensitive match); InputError naming the file when missing.
  std::size_t column(const std::string& name) const;
  bool has_column(const std::string& name) const;
  /// The text of a cell.
  const std::string& text(std::size_t row, const std::string& column_name) const;
  /// A cell as a finite double: InputError "FILE:LINE: column 'C' = 'V': not a number" (or "is
  /// not finite" for nan/inf, unless allow_nonfinite).
  double number(std::size_t row, const std::string& column_name, bool allow_nonfinite = false) const;
};

/// Reads a CSV file (see the header comment). Missing/unreadable file, empty file, ragged rows:
/// InputError.
CsvTable read_csv(const std::string& path);
/// Parses CSV text; `source_name` is used in messages.
CsvTable parse_csv(const std::string& text, const std::string& source_name);

/// Shortest round-trip decimal form of v; "nan", "inf", "-inf" for non-finite values.
std::string format_csv_number(double v);
/// CSV text of a table (header + rows). Each row must have header.size() fields (else
/// InvalidOptions).
std::string format_csv(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
/// Writes format_csv(...) to `path` atomically (InputError naming the path on failure).
void write_csv(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows);

}  // namespace slitstep
