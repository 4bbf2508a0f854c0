// Tests of core/fits: the CFITSIO wrapper (keys, images, tables, errors, atomic writes).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.hpp"
#include "core/fits.hpp"
#include "helpers/paths.hpp"

using namespace slitstep;
using slitstep::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string tmp_name(const std::string& path) { return path + ".tmp-" + std::to_string(static_cast<long>(getpid())); }

// Runs `f`, expects an InputError whose one-line message contains every string in `needles`.
template <class F>
void expect_input_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no InputError thrown";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

void write_simple(const std::string& path, long value) {
  FitsFile f = FitsFile::create(path);
  f.create_empty_primary();
  f.write_key("VALUE", value, "test value");
  f.commit();
}

long read_value(const std::string& path) { return FitsFile::open_read(path).read_long("VALUE"); }

}  // namespace

TEST(FitsFile, HeaderKeysRoundTrip) {
  TempDir dir("fits-keys");
  const std::string path = dir.file("keys.fits");
  const std::string long_text(150, 'x');
  const double values[] = {0.1 + 0.2, 1.0 / 3.0, -1.2345678901234567e-300, 6.02214076e23, -0.0,
                           std::nextafter(1.0, 2.0)};
  {
    FitsFile f = FitsFile::create(path);
    f.create_empty_primary();
    f.write_key("STR", "hello world", "a string");
    f.write_key("LONGSTR", long_text, "a long string (CONTINUE cards)");
    for (int i = 0; i < 6; ++i) f.write_key("DBL" + std::to_string(i), values[i], "a double");
    f.write_key("LNG", 1234567890123L, "a long");
    f.write_key("INT", -42, "an int");
    f.write_key("FLAG", true, "a logical");
    f.write_key("NOFLAG", false);
    f.write_comment("first comment");
    f.write_history("first history");
    f.write_date("2024-01-02T03:04:05");
    f.commit();
  }
  FitsFile f = FitsFile::open_read(path);
  EXPECT_EQ(f.read_string("STR"), "hello world");
  EXPECT_EQ(f.read_string("LONGSTR"), long_text);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f.read_double("DBL" + std::to_string(i)), values[i]) << i;  // exact
  EXPECT_EQ(f.read_long("LNG"), 1234567890123L);
  EXPECT_EQ(f.read_long("INT"), -42);
  EXPECT_TRUE(f.read_bool("FLAG"));
  EXPECT_FALSE(f.read_bool("NOFLAG"));
  EXPECT_EQ(f.read_string("DATE"), "2024-01-02T03:04:05");
  EXPECT_EQ(f.read_comments().back(), "first comment");
  EXPECT_EQ(f.read_history().back(), "first history");
  EXPECT_FALSE(f.read_double_opt("NOSUCH").has_value());
  EXPECT_FALSE(f.has_key("NOSUCH"));
  expect_input_error([&] { f.read_double("NOSUCH"); }, {path, "NOSUCH", "HDU 0"});
  expect_input_error([&] { f.read_double("STR"); }, {path, "STR"});
}

TEST(FitsFile, RefusesNonFiniteAndNonAsciiValues) {
  TempDir dir("fits-bad-keys");
  FitsFile f = FitsFile::create(dir.file("x.fits"));
  f.create_empty_primary();
  expect_input_error([&] { f.write_key("NAN", std::numeric_limits<double>::quiet_NaN()); }, {"NAN"});
  expect_input_error([&] { f.write_key("TXT", std::string("caf\xC3\xA9")); }, {"TXT", "ASCII"});
}

TEST(FitsFile, ImagesRoundTripInEveryPixelType) {
  TempDir dir("fits-img");
  const std::string path = dir.file("img.fits");
  const std::vector<long> dims = {3, 4, 5};
  std::vector<double> d(60);
  std::vector<float> fl(60);
  std::vector<std::int32_t> in(60);
  for (int n = 0; n < 60; ++n) {
    d[n] = 1.0 / (n + 1) - 0.3;
    fl[n] = static_cast<float>(n * 0.25 - 3.0);
    in[n] = n * 1000003 - 7;
  }
  d[7] = std::numeric_limits<double>::quiet_NaN();
  {
    FitsFile f = FitsFile::create(path);
    f.create_empty_primary();
    f.create_image(FitsPixel::kFloat64, dims);
    f.write_key("EXTNAME", "D64");
    f.write_image(d);
    f.create_image(FitsPixel::kFloat32, dims);
    f.write_key("EXTNAME", "F32");
    f.write_image(fl);
    f.create_image(FitsPixel::kInt32, dims);
    f.write_key("EXTNAME", "I32");
    f.write_image(in);
    expect_input_error([&] { f.write_image(std::vector<std::int32_t>(59)); }, {path, "59"});
    f.commit();
  }
  FitsFile f = FitsFile::open_read(path);
  EXPECT_EQ(f.num_hdus(), 4);
  f.move_to("d64");  // EXTNAME matches case-insensitively
  EXPECT_EQ(f.current_hdu(), 1);
  EXPECT_EQ(f.image_dims(), dims);
  EXPECT_EQ(f.image_bitpix(), -64);
  const auto d2 = f.read_image_double(dims);
  for (int n = 0; n < 60; ++n) {
    if (n == 7) EXPECT_TRUE(std::isnan(d2[n]));
    else EXPECT_EQ(d2[n], d[n]);
  }
  f.move_to("F32");
  EXPECT_EQ(f.read_image_float(), fl);
  const auto fl_as_d = f.read_image_double();
  EXPECT_EQ(fl_as_d[5], static_cast<double>(fl[5]));
  f.move_to(3);
  EXPECT_EQ(f.extname(), "I32");
  EXPECT_EQ(f.read_image_int32(dims), in);
  expect_input_error([&] { f.read_image_int32({3, 4, 6}); }, {path, "HDU 3 (I32)", "3x4x5", "3x4x6"});
  f.move_to(0);
  EXPECT_TRUE(f.image_dims().empty());
  expect_input_error([&] { f.read_image_double(); }, {path, "NAXIS = 0"});
}

TEST(FitsFile, BinaryTablesRoundTrip) {
  TempDir dir("fits-tbl");
  const std::string path = dir.file("tbl.fits");
  {
    FitsFile f = FitsFile::create(path);
    f.create_empty_primary();
    f.create_binary_table("TAB", {{"wave", "1D", "um", ""}, {"vec", "4E", "", "(2,2)"}, {"n", "1J", "", ""}}, 3);
    f.write_column("wave", {1.1, 1.2, 1.3});
    f.write_column("VEC", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    f.write_column("n", {7, 8, 9});
    f.commit();
  }
  FitsFile f = FitsFile::open_read(path);
  f.move_to("TAB");
  EXPECT_EQ(f.hdu_type(), HduType::kBinaryTable);
  EXPECT_EQ(f.table_rows(), 3);
  EXPECT_EQ(f.column_names(), (std::vector<std::string>{"wave", "vec", "n"}));
  EXPECT_TRUE(f.has_column("WAVE"));
  EXPECT_EQ(f.read_column("wave"), (std::vector<double>{1.1, 1.2, 1.3}));
  EXPECT_EQ(f.read_column("vec").size(), 12u);
  EXPECT_EQ(f.read_column("vec")[11], 12.0);
  EXPECT_EQ(f.read_column("n"), (std::vector<double>{7, 8, 9}));
  EXPECT_EQ(f.read_string("TDIM2"), "(2,2)");
  EXPECT_EQ(f.read_string("TUNIT1"), "um");
  expect_input_error([&] { f.read_column("flux"); }, {path, "HDU 1 (TAB)", "flux"});
}

TEST(FitsFile, MissingFileAndMissingExtensionNameTheFile) {
  TempDir dir("fits-missing");
  const std::string missing = dir.file("nope.fits");
  expect_input_error([&] { FitsFile::open_read(missing); }, {missing, "no such file"});
  const std::string path = dir.file("one.fits");
  write_simple(path, 1);
  FitsFile f = FitsFile::open_read(path);
  expect_input_error([&] { f.move_to("SCI"); }, {path, "EXTNAME = 'SCI'"});
  EXPECT_FALSE(f.has_extension("SCI"));
  EXPECT_FALSE(f.try_move_to("SCI"));
  EXPECT_EQ(f.current_hdu(), 0);
  expect_input_error([&] { f.move_to(5); }, {path, "HDU 5"});
  expect_input_error([&] { f.write_key("X", 1L); }, {path, "read-only"});
}

TEST(FitsFile, WritesGoToATemporaryFileRenamedOnCommit) {
  TempDir dir("fits-atomic");
  const std::string path = dir.file("product.fits");
  {
    FitsFile f = FitsFile::create(path);
    f.create_empty_primary();
    EXPECT_TRUE(fs::exists(tmp_name(path)));
    EXPECT_FALSE(fs::exists(path));
    f.commit();
  }
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(tmp_name(path)));
}

TEST(FitsFile, AbandonedWriteLeavesNothingAndKeepsTheOldFile) {
  TempDir dir("fits-abandon");
  const std::string fresh = dir.file("fresh.fits");
  try {
    FitsFile f = FitsFile::create(fresh);
    f.create_empty_primary();
    f.write_key("VALUE", 1L);
    throw std::runtime_error("simulated failure mid-write");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_FALSE(fs::exists(tmp_name(fresh)));

  const std::string existing = dir.file("existing.fits");
  write_simple(existing, 1);
  {
    FitsFile f = FitsFile::create(existing);
    f.create_empty_primary();
    f.write_key("VALUE", 2L);
    EXPECT_EQ(read_value(existing), 1);  // untouched until commit
    // destroyed without commit
  }
  EXPECT_EQ(read_value(existing), 1);
  EXPECT_FALSE(fs::exists(tmp_name(existing)));
  {
    FitsFile f = FitsFile::create(existing);
    f.create_empty_primary();
    f.write_key("VALUE", 3L);
    EXPECT_EQ(read_value(existing), 1);
    f.commit();
  }
  EXPECT_EQ(read_value(existing), 3);
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);  // only existing.fits: fresh.fits never appeared, no temporaries left
}

TEST(FitsFile, RefusesToOverwriteAFileOpenAsInput) {
  TempDir dir("fits-input");
  const std::string path = dir.file("input.fits");
  write_simple(path, 1);
  {
    FitsFile in = FitsFile::open_read(path);
    expect_input_error([&] { FitsFile::create(path); }, {path, "open as an input"});
    // another spelling of the same file
    const std::string other = (dir.path() / "." / "input.fits").string();
    expect_input_error([&] { FitsFile::create(other); }, {"open as an input"});
  }
  EXPECT_EQ(read_value(path), 1);
  write_simple(path, 2);  // allowed once the input is closed
  EXPECT_EQ(read_value(path), 2);
  expect_input_error([&] { ensure_output_is_not_an_input(path, {dir.file("a.fits"), (dir.path() / "./input.fits").string()}); },
                     {path});
  EXPECT_NO_THROW(ensure_output_is_not_an_input(dir.file("new.fits"), {path}));
}

TEST(FitsFile, NotFitsInputsGiveOneLineErrorsNamingTheFile) {
  TempDir dir("fits-notfits");
  const std::string text = dir.file("notes.txt");
  slitstep::test::write_text(text, "this is not a FITS file\n");
  expect_input_error([&] { FitsFile::open_read(text); }, {text});
  const std::string empty = dir.file("empty.fits");
  slitstep::test::write_text(empty, "");
  expect_input_error([&] { FitsFile::open_read(empty); }, {empty, "empty"});
  expect_input_error([&] { FitsFile::open_read(dir.path().string()); }, {dir.path().string(), "directory"});
}

TEST(FitsFile, MoveTransfersOwnership) {
  TempDir dir("fits-move");
  const std::string path = dir.file("m.fits");
  FitsFile a = FitsFile::create(path);
  a.create_empty_primary();
  FitsFile b = std::move(a);
  b.write_key("VALUE", 5L);
  b.commit();
  EXPECT_EQ(read_value(path), 5);
}
