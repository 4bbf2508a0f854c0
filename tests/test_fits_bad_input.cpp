// Bad FITS inputs: every one must give read_cube an InputError whose one-line message names the
// file, and `slitstep info FILE` exit code 2 with a one-line message naming the file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>

#include "core/cube_io.hpp"
#include "core/error.hpp"
#include "core/fits.hpp"
#include "helpers/paths.hpp"

using namespace slitstep;
using slitstep::test::TempDir;

namespace {

// A small generic cube written through FitsFile, with knobs to break it.
struct Craft {
  std::string sci_name = "SCI";
  std::vector<long> sci_dims = {4, 3, 5};
  bool with_err = true;
  std::vector<long> err_dims = {4, 3, 5};
  std::string bunit = "erg s-1 cm-2 um-1 arcsec-2";
  std::string ctype3 = "WAVE";  // "" = key absent
  std::string cunit3 = "um";    // "" = key absent
  double cdelt3 = 0.001;
  double cdelt1 = -0.1 / 3600, cdelt2 = 0.1 / 3600;
  double pc12 = 0.0;
  bool all_nan = false;
};

void write_craft(const std::string& path, const Craft& c) {
  FitsFile f = FitsFile::create(path);
  f.create_empty_primary();
  auto image = [&](const std::string& name, const std::vector<long>& dims) {
    f.create_image(FitsPixel::kFloat32, dims);
    f.write_key("EXTNAME", name);
    f.write_key("BUNIT", c.bunit);
    f.write_key("CTYPE1", "RA---TAN");
    f.write_key("CTYPE2", "DEC--TAN");
    if (!c.ctype3.empty()) f.write_key("CTYPE3", c.ctype3);
    if (!c.cunit3.empty()) f.write_key("CUNIT3", c.cunit3);
    f.write_key("CRPIX1", 1.0);
    f.write_key("CRPIX2", 1.0);
    f.write_key("CRPIX3", 1.0);
    f.write_key("CRVAL1", 150.0);
    f.write_key("CRVAL2", 2.0);
    f.write_key("CRVAL3", 1.2);
    f.write_key("CDELT1", c.cdelt1);
    f.write_key("CDELT2", c.cdelt2);
    f.write_key("CDELT3", c.cdelt3);
    f.write_key("PC1_2", c.pc12);
    f.write_key("PC2_2", std::sqrt(1.0 - c.pc12 * c.pc12));  // keeps both axes 0.1" long
    std::size_t n = 1;
    for (long d : dims) n *= static_cast<std::size_t>(d);
    std::vector<float> px(n, 1.0f);
    if (c.all_nan) px.assign(n, std::numeric_limits<float>::quiet_NaN());
    f.write_image(px);
  };
  image(c.sci_name, c.sci_dims);
  if (c.with_err) image("ERR", c.err_dims);
  f.commit();
}

struct BadCase {
  std::string name;
  std::function<std::string(const TempDir&)> make;  // returns the path to read
  std::string expect;                               // a phrase the message must contain
};

std::string crafted(const TempDir& d, const std::string& file, const std::function<void(Craft&)>& change) {
  Craft c;
  change(c);
  const std::string path = d.file(file);
  write_craft(path, c);
  return path;
}

std::vector<BadCase> bad_cases() {
  return {
      {"missing_file", [](const TempDir& d) { return d.file("does_not_exist.fits"); }, "no such file"},
      {"directory", [](const TempDir& d) {
         std::filesystem::create_directory(d.file("a_directory.fits"));
         return d.file("a_directory.fits");
       }, "directory"},
      {"empty_file", [](const TempDir& d) {
         slitstep::test::write_text(d.file("empty.fits"), "");
         return d.file("empty.fits");
       }, "empty"},
      {"text_file", [](const TempDir& d) {
         slitstep::test::write_text(d.file("notes.fits"), "SIMPLE? no: this is a text file\n");
         return d.file("notes.fits");
       }, "FITS"},
      {"truncated", [](const TempDir& d) {
         const std::string p = crafted(d, "truncated.fits", [](Craft& c) { c.sci_dims = c.err_dims = {40, 30, 50}; });
         std::filesystem::resize_file(p, std::filesystem::file_size(p) - 100000);
         return p;
       }, ""},
      {"no_sci_extension", [](const TempDir& d) { return crafted(d, "nosci.fits", [](Craft& c) { c.sci_name = "FOO"; }); },
       "no science extension"},
      {"sci_2d", [](const TempDir& d) {
         return crafted(d, "sci2d.fits", [](Craft& c) { c.sci_dims = c.err_dims = {4, 3}; });
       }, "2 axes"},
      {"err_dims_differ", [](const TempDir& d) {
         return crafted(d, "errdims.fits", [](Craft& c) { c.err_dims = {4, 3, 6}; });
       }, "differ"},
      {"all_nan", [](const TempDir& d) { return crafted(d, "allnan.fits", [](Craft& c) { c.all_nan = true; }); },
       "no finite value"},
      {"unknown_bunit", [](const TempDir& d) {
         return crafted(d, "bunit_unknown.fits", [](Craft& c) { c.bunit = "furlong/fortnight"; });
       }, "furlong/fortnight"},
      {"bunit_not_surface_brightness", [](const TempDir& d) {
         return crafted(d, "bunit_flux.fits", [](Craft& c) { c.bunit = "erg s-1 cm-2"; });
       }, "erg s-1 cm-2"},
      {"bunit_counts", [](const TempDir& d) { return crafted(d, "bunit_dn.fits", [](Craft& c) { c.bunit = "DN/s"; }); },
       "DN/s"},
      {"missing_ctype3", [](const TempDir& d) { return crafted(d, "noctype3.fits", [](Craft& c) { c.ctype3 = ""; }); },
       "CTYPE3"},
      {"frequency_axis", [](const TempDir& d) { return crafted(d, "freq.fits", [](Craft& c) { c.ctype3 = "FREQ"; }); },
       "FREQ"},
      {"unknown_spectral_unit", [](const TempDir& d) {
         return crafted(d, "cunit3.fits", [](Craft& c) { c.cunit3 = "furlong"; });
       }, "furlong"},
      {"negative_cdelt3", [](const TempDir& d) { return crafted(d, "negstep.fits", [](Craft& c) { c.cdelt3 = -0.001; }); },
       "CDELT3"},
      {"zero_cdelt3", [](const TempDir& d) { return crafted(d, "zerostep.fits", [](Craft& c) { c.cdelt3 = 0.0; }); },
       "CDELT3"},
      {"implausible_wavelengths", [](const TempDir& d) {
         return crafted(d, "nounit.fits", [](Craft& c) { c.cunit3 = "m"; });  // 1.2 m
       }, "implausible"},
      {"non_square_pixels", [](const TempDir& d) {
         return crafted(d, "rect.fits", [](Craft& c) { c.cdelt2 = 0.2 / 3600; });
       }, "not square"},
      {"skewed_pixels", [](const TempDir& d) { return crafted(d, "skew.fits", [](Craft& c) { c.pc12 = 0.2; }); },
       "skewed"},
  };
}

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadFits : public ::testing::TestWithParam<BadCase> {};

std::string trim_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

TEST_P(BadFits, ReadCubeThrowsInputErrorNamingTheFile) {
  TempDir dir("bad-" + GetParam().name);
  const std::string path = GetParam().make(dir);
  try {
    (void)read_cube(path);
    FAIL() << "read_cube accepted " << path;
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(GetParam().expect), std::string::npos) << "'" << GetParam().expect << "' not in: " << msg;
  }
}

TEST_P(BadFits, CliInfoExitsWithCode2AndOneLineNamingTheFile) {
  TempDir dir("badcli-" + GetParam().name);
  const std::string path = GetParam().make(dir);
  const auto r = slitstep::test::run_cli("info '" + path + "'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  const std::string out = trim_newlines(r.output);
  EXPECT_EQ(out.find('\n'), std::string::npos) << out;
  EXPECT_NE(out.find(path), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Cases, BadFits, ::testing::ValuesIn(bad_cases()),
                         [](const ::testing::TestParamInfo<BadCase>& p) { return p.param.name; });

TEST(BadFitsControl, TheUnbrokenCraftedCubeIsAccepted) {
  // The builder above makes a valid cube when nothing is broken: the failures come from the breakage.
  TempDir dir("bad-control");
  const std::string path = dir.file("good.fits");
  write_craft(path, Craft{});
  const Cube c = read_cube(path);
  EXPECT_EQ(c.nx(), 4);
  EXPECT_EQ(c.nl(), 5u);
  EXPECT_NEAR(c.spatial.pixel_arcsec, 0.1, 1e-12);
}
