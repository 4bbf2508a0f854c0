// core/table_io: CSV parsing with file/line/column errors, quoting, atomic writing, round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "core/error.hpp"
#include "core/table_io.hpp"
#include "helpers/paths.hpp"

using namespace slitstep;

namespace {
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(TableIo, ParsesHeaderRowsCommentsAndQuotes) {
  const CsvTable t = parse_csv("# a comment\n id , x\n\na,1.5\n\"b, c\",-2e3\n\"q\"\"t\",7\n", "t.csv");
  ASSERT_EQ(t.header, (std::vector<std::string>{"id", "x"}));
  ASSERT_EQ(t.num_rows(), 3u);
  EXPECT_EQ(t.text(1, "id"), "b, c");
  EXPECT_EQ(t.text(2, "id"), "q\"t");
  EXPECT_DOUBLE_EQ(t.number(1, "x"), -2000.0);
  EXPECT_EQ(t.line_numbers[0], 4);
  EXPECT_EQ(t.line_numbers[1], 5);
}

TEST(TableIo, ErrorsNameFileLineAndColumn) {
  const CsvTable t = parse_csv("id,x\na,1\nb,abc\nc,nan\nd,\n", "p.csv");
  EXPECT_EQ(message_of([&] { t.number(1, "x"); }), "p.csv:3: column 'x' = 'abc': not a number");
  EXPECT_EQ(message_of([&] { t.number(2, "x"); }), "p.csv:4: column 'x' = 'nan': not finite");
  EXPECT_TRUE(std::isnan(t.number(2, "x", true)));
  EXPECT_EQ(message_of([&] { t.number(3, "x"); }), "p.csv:5: column 'x' is empty: a number is required");
  EXPECT_EQ(message_of([&] { t.column("y"); }), "p.csv: missing column 'y' (columns: id, x)");
  EXPECT_EQ(message_of([] { parse_csv("id,x\na,1,2\n", "r.csv"); }), "r.csv:2: 3 fields, the header has 2");
  EXPECT_EQ(message_of([] { parse_csv("# only\n\n", "e.csv"); }), "e.csv: empty: no header line");
  EXPECT_EQ(message_of([] { parse_csv("id,id\n", "d.csv"); }), "d.csv:1: header names column 'id' twice");
  EXPECT_EQ(message_of([] { parse_csv("id\n\"abc\n", "u.csv"); }), "u.csv:2: unterminated quoted field");
  EXPECT_NE(message_of([] { read_csv("/nonexistent/x.csv"); }).find("/nonexistent/x.csv: cannot read"),
            std::string::npos);
}

TEST(TableIo, WriteReadRoundTripAndNumberFormat) {
  slitstep::test::TempDir dir("table-io");
  const std::string p = dir.file("o.csv");
  write_csv(p, {"id", "v"},
            {{"a,b", format_csv_number(0.1)}, {"x", format_csv_number(NAN)}, {"y", format_csv_number(-INFINITY)}});
  const CsvTable t = read_csv(p);
  ASSERT_EQ(t.num_rows(), 3u);
  EXPECT_EQ(t.text(0, "id"), "a,b");
  EXPECT_EQ(t.number(0, "v"), 0.1);  // shortest round-trip form
  EXPECT_EQ(t.text(1, "v"), "nan");
  EXPECT_EQ(t.text(2, "v"), "-inf");
  EXPECT_THROW(format_csv({"a"}, {{"1", "2"}}), InvalidOptions);
  EXPECT_THROW(write_csv(dir.file("no/such/dir/x.csv"), {"a"}, {}), InputError);
}
