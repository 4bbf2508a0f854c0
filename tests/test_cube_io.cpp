// Tests of core/cube_io and core/fits_info: round trips, fitsverify, astropy WCS agreement, and
// reading the real MUSE and GMOS cubes of shared/data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "core/cube_io.hpp"
#include "core/error.hpp"
#include "core/fits.hpp"
#include "core/fits_info.hpp"
#include "core/units.hpp"
#include "core/wcs.hpp"
#include "helpers/paths.hpp"

using namespace slitstep;
using slitstep::test::TempDir;

namespace {

Cube make_cube(const WavelengthGrid& spectral, const SpatialGrid& grid, const SkyFrame& sky) {
  Cube c = Cube::zeros(grid, spectral, sky);
  for (int j = 0; j < c.ny(); ++j)
    for (int i = 0; i < c.nx(); ++i)
      for (std::size_t k = 0; k < c.nl(); ++k) {
        const std::size_t n = c.index(i, j, k);
        c.sci[n] = 1e-17 * (1.0 + 0.1 * i - 0.07 * j + std::sin(0.3 * static_cast<double>(k)));
        c.err[n] = 1e-18 * (1.0 + 0.01 * static_cast<double>(n % 17));
        c.dq[n] = (n % 11 == 0) ? (kDqDoNotUse | kDqChipGap) : (n % 13 == 0 ? kDqLowCoverage : kDqGood);
        c.wmap[n] = 0.5 * static_cast<double>((i + j + k) % 7);
      }
  return c;
}

SkyFrame test_sky() {
  SkyFrame s;
  s.ra_deg = 215.05;
  s.dec_deg = 52.93;
  s.aperture_pa_deg = 37.0;
  return s;
}

WavelengthGrid windowed_grid() {
  return WavelengthGrid::from_windows({{1.6, 0.000235, 9}, {1.2, 0.00023, 7}, {1.25, 0.00024, 1}, {1.2512, 0.00024, 5}});
}

ProductMeta test_meta(const std::string& config) {
  ProductMeta m;
  m.product_type = "SKYCUBE";
  m.software_version = "9.8.7-test";
  m.config_text = config;
  m.seed = std::numeric_limits<std::uint64_t>::max() - 12;
  m.date = "2025-01-01T00:00:00";
  m.extra_cards = {{"REDSHIFT", 1.234, "test double"}, {"NSTEPS", 9L, "test long"}, {"NOISE", true, "test bool"},
                   {"PATTERN", std::string("MSA3D-9x7"), "test string"}};
  return m;
}

void expect_cubes_equal(const Cube& a, const Cube& b) {
  EXPECT_EQ(a.spatial, b.spatial);
  EXPECT_EQ(a.spectral, b.spectral);
  EXPECT_EQ(a.sky, b.sky);
  EXPECT_EQ(a.bunit, b.bunit);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t n = 0; n < a.size(); ++n) {
    // float32 storage: relative 2^-24 ~ 6e-8
    ASSERT_NEAR(a.sci[n], b.sci[n], 1.2e-7 * std::abs(a.sci[n])) << n;
    ASSERT_NEAR(a.err[n], b.err[n], 1.2e-7 * std::abs(a.err[n])) << n;
    ASSERT_EQ(a.dq[n], b.dq[n]) << n;
    ASSERT_NEAR(a.wmap[n], b.wmap[n], 1.2e-7 * std::abs(a.wmap[n])) << n;
  }
}

std::string shell_quote(const std::string& s) { return "'" + s + "'"; }

struct Corner {
  int i, j, k;
  double ra, dec, lam;
};

std::vector<Corner> astropy_corners(const std::string& path, const std::string& ext = "SCI") {
  const std::string script = std::string(SLITSTEP_SOURCE_DIR) + "/tests/scripts/astropy_wcs_corners.py";
  const auto r = slitstep::test::run_command(slitstep::test::python() + " " + shell_quote(script) + " " +
                                             shell_quote(path) + " " + ext);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<Corner> out;
  std::istringstream in(r.output);
  Corner c{};
  while (in >> c.i >> c.j >> c.k >> c.ra >> c.dec >> c.lam) out.push_back(c);
  EXPECT_EQ(out.size(), 8u) << r.output;
  return out;
}

// Angular distance (deg) between two nearby sky positions.
double sky_sep_deg(double ra1, double dec1, double ra2, double dec2) {
  double dra = std::remainder(ra1 - ra2, 360.0);
  return std::hypot(dra * std::cos(dec1 / kDegPerRad), dec1 - dec2);
}

void check_against_astropy(const Cube& c, const std::string& path) {
  const auto corners = astropy_corners(path);
  for (const auto& a : corners) {
    const WorldCoord w = pixel_to_world(c.spatial, c.sky, c.spectral, a.i, a.j, static_cast<std::size_t>(a.k));
    EXPECT_LT(sky_sep_deg(w.ra_deg, w.dec_deg, a.ra, a.dec), 1e-9) << "corner " << a.i << "," << a.j << "," << a.k;
    EXPECT_NEAR(w.wavelength_um, a.lam, 1e-9) << "corner " << a.i << "," << a.j << "," << a.k;
  }
}

void check_fitsverify(const std::string& path) {
  const auto r = slitstep::test::run_command("/usr/bin/fitsverify -q " + shell_quote(path));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("verification OK"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;  // -q prints only a summary
}

}  // namespace

// ------------------------------------------------------------------------------------------
TEST(CubeIo, LinearGridRoundTrip) {
  TempDir dir("cubeio-linear");
  const std::string path = dir.file("linear.fits");
  const Cube c = make_cube(WavelengthGrid::linear(1.3, 0.000235, 23), SpatialGrid::centred(7, 9, 0.08, 0.31, -0.17),
                           test_sky());
  write_cube(c, path, test_meta("a = 1\n"));
  CubeReadReport rep;
  const Cube r = read_cube(path, {}, &rep);
  expect_cubes_equal(c, r);
  EXPECT_TRUE(rep.slitstep_product);
  EXPECT_TRUE(rep.celestial_wcs);
  EXPECT_FALSE(rep.x_reversed);
  EXPECT_EQ(rep.nonfinite_voxels, 0u);
  check_fitsverify(path);
}

TEST(CubeIo, WindowedGridRoundTripUsesWaveTab) {
  TempDir dir("cubeio-tab");
  const std::string path = dir.file("windows.fits");
  const Cube c = make_cube(windowed_grid(), SpatialGrid::centred(5, 6, 0.1, -0.4, 0.25), test_sky());
  write_cube(c, path, test_meta(""));
  {
    FitsFile f = FitsFile::open_read(path);
    f.move_to("SCI");
    EXPECT_EQ(f.read_string("CTYPE3"), "WAVE-TAB");
    f.move_to("WCS-TABLE");
    EXPECT_EQ(f.read_column("wavelength"), c.spectral.centres_um());
  }
  const Cube r = read_cube(path);
  expect_cubes_equal(c, r);
  ASSERT_EQ(r.spectral.windows().size(), 4u);
  check_fitsverify(path);
}

TEST(CubeIo, WaveTabWindowsAreRebuiltFromCentresAlone) {
  // A foreign WAVE-TAB cube (no slitstep window keys): windows come from runs of constant step.
  TempDir dir("cubeio-tab-foreign");
  const std::string path = dir.file("foreign.fits");
  const auto grid = WavelengthGrid::from_windows({{1.2, 0.0002, 6}, {1.3, 0.00025, 4}, {1.5, 0.0003, 8}});
  const Cube c = make_cube(grid, SpatialGrid::centred(3, 4, 0.1), test_sky());
  write_cube(c, path, test_meta(""));
  // Rewrite ORIGIN so the reader treats it as a foreign file.
  const std::string path2 = dir.file("foreign2.fits");
  {
    FitsFile in = FitsFile::open_read(path);
    FitsFile out = FitsFile::create(path2);
    out.create_empty_primary();
    out.write_key("ORIGIN", "elsewhere");
    in.move_to("SCI");
    out.create_image(FitsPixel::kFloat32, in.image_dims());
    for (const char* k : {"CTYPE1", "CTYPE2", "CTYPE3", "CUNIT1", "CUNIT2", "CUNIT3", "PS3_0", "PS3_1", "BUNIT", "EXTNAME"})
      out.write_key(k, in.read_string(k));
    for (const char* k : {"CRPIX1", "CRPIX2", "CRPIX3", "CRVAL1", "CRVAL2", "CRVAL3", "CDELT1", "CDELT2", "CDELT3",
                          "PC1_1", "PC1_2", "PC2_1", "PC2_2", "PV3_3"})
      out.write_key(k, in.read_double(k));
    out.write_image(in.read_image_float());
    in.move_to("WCS-TABLE");
    const auto col = in.read_column("wavelength");
    out.create_binary_table("WCS-TABLE", {{"wavelength", std::to_string(col.size()) + "D", "um", ""}}, 1);
    out.write_column("wavelength", col);
    out.commit();
  }
  const Cube r = read_cube(path2);
  ASSERT_EQ(r.spectral.windows().size(), 3u);
  for (std::size_t w = 0; w < 3; ++w) {
    EXPECT_NEAR(r.spectral.windows()[w].start_um, grid.windows()[w].start_um, 1e-12);
    EXPECT_NEAR(r.spectral.windows()[w].step_um, grid.windows()[w].step_um, 1e-12);
    EXPECT_EQ(r.spectral.windows()[w].n, grid.windows()[w].n);
  }
  EXPECT_NEAR(r.sky.aperture_pa_deg, 37.0, 1e-10);
  EXPECT_NEAR(r.spatial.pixel_arcsec, 0.1, 1e-12);
  EXPECT_NEAR(r.sci[5], c.sci[5], 1e-7 * std::abs(c.sci[5]));
}

TEST(CubeIo, ProductMetadataAndConfigurationAreStoredExactly) {
  TempDir dir("cubeio-meta");
  const std::string path = dir.file("meta.fits");
  std::string cfg =
      "# slitstep configuration\n[galaxy]\nredshift = 1.5   \n\nname = \"caf\xC3\xA9 \\\\ tab\there\"\r\n" +
      std::string(300, 'L') + "\n" + std::string(70, ' ') + "x\n   \n" + "last line without newline  ";
  const Cube c = make_cube(WavelengthGrid::linear(1.0, 0.001, 3), SpatialGrid::centred(2, 2, 0.1), test_sky());
  const ProductMeta meta = test_meta(cfg);
  write_cube(c, path, meta);
  EXPECT_EQ(read_product_config(path), cfg);
  const ProductMeta back = read_product_meta(path);
  EXPECT_EQ(back.product_type, "SKYCUBE");
  EXPECT_EQ(back.software_version, "9.8.7-test");
  EXPECT_EQ(back.seed, meta.seed);
  EXPECT_EQ(back.date, "2025-01-01T00:00:00");
  EXPECT_EQ(back.config_text, cfg);
  FitsFile f = FitsFile::open_read(path);
  EXPECT_EQ(f.read_string("ORIGIN"), "slitstep");
  EXPECT_EQ(f.read_double("REDSHIFT"), 1.234);
  EXPECT_EQ(f.read_long("NSTEPS"), 9);
  EXPECT_TRUE(f.read_bool("NOISE"));
  EXPECT_EQ(f.read_string("PATTERN"), "MSA3D-9x7");
  for (const char* ext : {"SCI", "ERR", "DQ", "WMAP"}) {
    f.move_to(ext);
    EXPECT_TRUE(f.has_key("BUNIT")) << ext;
    EXPECT_EQ(f.read_string("CTYPE1"), "RA---TAN");
    EXPECT_EQ(f.read_string("RADESYS"), "ICRS");
  }
  f.move_to("SCI");
  EXPECT_EQ(f.read_string("BUNIT"), kSurfaceBrightnessBunit);
  EXPECT_EQ(f.image_bitpix(), -32);
  f.move_to("DQ");
  EXPECT_EQ(f.image_bitpix(), 32);
  check_fitsverify(path);
  // Same inputs, same fixed DATE: byte-identical files.
  const std::string path2 = dir.file("meta2.fits");
  write_cube(c, path2, meta);
  const auto same = slitstep::test::run_command("cmp " + shell_quote(path) + " " + shell_quote(path2));
  EXPECT_EQ(same.exit_code, 0) << same.output;
}

TEST(CubeIo, WcsAgreesWithAstropyForLinearGrid) {
  TempDir dir("cubeio-astropy-lin");
  const std::string path = dir.file("lin.fits");
  const Cube c = make_cube(WavelengthGrid::linear(1.3, 0.000235, 23), SpatialGrid::centred(7, 9, 0.08, 0.31, -0.17),
                           test_sky());
  write_cube(c, path, test_meta(""));
  check_against_astropy(read_cube(path), path);
  check_against_astropy(c, path);
}

TEST(CubeIo, WcsAgreesWithAstropyForWaveTab) {
  TempDir dir("cubeio-astropy-tab");
  const std::string path = dir.file("tab.fits");
  const Cube c = make_cube(windowed_grid(), SpatialGrid::centred(5, 6, 0.1, -0.4, 0.25), test_sky());
  write_cube(c, path, test_meta(""));
  check_against_astropy(read_cube(path), path);
}

TEST(CubeIo, WriteRefusesInvalidCubesAndOverwritingItsInput) {
  TempDir dir("cubeio-refuse");
  Cube c = make_cube(WavelengthGrid::linear(1.0, 0.001, 3), SpatialGrid::centred(2, 2, 0.1), test_sky());
  c.sci.pop_back();
  EXPECT_THROW(write_cube(c, dir.file("bad.fits"), {}), InvalidOptions);
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.fits")));
  c.sci.push_back(0.0);
  const std::string path = dir.file("in.fits");
  write_cube(c, path, {});
  FitsFile held = FitsFile::open_read(path);  // e.g. an app still reading it
  EXPECT_THROW(write_cube(c, path, {}), InputError);
}

TEST(CubeIo, NonFiniteVoxelsAreFlaggedAndZeroed) {
  TempDir dir("cubeio-nan");
  Cube c = make_cube(WavelengthGrid::linear(1.0, 0.001, 4), SpatialGrid::centred(3, 2, 0.1), test_sky());
  c.sci[c.index(1, 1, 2)] = std::numeric_limits<double>::quiet_NaN();
  c.err[c.index(2, 0, 3)] = std::numeric_limits<double>::infinity();
  c.dq[c.index(1, 1, 2)] = 0;
  const std::string path = dir.file("nan.fits");
  write_cube(c, path, {});
  CubeReadReport rep;
  const Cube r = read_cube(path, {}, &rep);
  EXPECT_EQ(rep.nonfinite_voxels, 2u);
  EXPECT_EQ(r.sci[r.index(1, 1, 2)], 0.0);
  EXPECT_EQ(r.dq[r.index(1, 1, 2)], kDqNonFinite | kDqDoNotUse);
  EXPECT_EQ(r.err[r.index(2, 0, 3)], 0.0);
  EXPECT_TRUE(r.dq[r.index(2, 0, 3)] & kDqNonFinite);
  for (double v : r.sci) EXPECT_TRUE(std::isfinite(v));
}

// ------------------------------------------------------------------------------------------
// JWST-like s3d: MJy/sr, WAVE in um, flipped axes.
TEST(CubeIo, ReadsJwstLikeS3dInMJyPerSr) {
  TempDir dir("cubeio-s3d");
  const std::string path = dir.file("s3d.fits");
  const long nx = 4, ny = 3, nl = 5;
  std::vector<float> sci(nx * ny * nl), err(sci.size());
  for (std::size_t n = 0; n < sci.size(); ++n) {
    sci[n] = static_cast<float>(1.0 + n);
    err[n] = 0.5f;
  }
  {
    FitsFile f = FitsFile::create(path);
    f.create_empty_primary();
    f.write_key("TELESCOP", "JWST");
    for (const char* name : {"SCI", "ERR"}) {
      f.create_image(FitsPixel::kFloat32, {nx, ny, nl});
      f.write_key("EXTNAME", name);
      f.write_key("BUNIT", "MJy/sr");
      f.write_key("CTYPE1", "RA---TAN");
      f.write_key("CTYPE2", "DEC--TAN");
      f.write_key("CTYPE3", "WAVE");
      f.write_key("CUNIT1", "deg");
      f.write_key("CUNIT2", "deg");
      f.write_key("CUNIT3", "um");
      f.write_key("CRPIX1", 2.0);
      f.write_key("CRPIX2", 2.0);
      f.write_key("CRPIX3", 1.0);
      f.write_key("CRVAL1", 53.1);
      f.write_key("CRVAL2", -27.8);
      f.write_key("CRVAL3", 1.5);
      f.write_key("CDELT1", 0.1 / 3600);  // positive: x flipped relative to slitstep
      f.write_key("CDELT2", 0.1 / 3600);
      f.write_key("CDELT3", 0.001);
      f.write_image(std::string(name) == "SCI" ? sci : err);
    }
    f.commit();
  }
  CubeReadReport rep;
  const Cube c = read_cube(path, {}, &rep);
  EXPECT_TRUE(rep.x_reversed);
  EXPECT_FALSE(rep.err_was_variance);
  EXPECT_NEAR(c.spatial.pixel_arcsec, 0.1, 1e-12);
  EXPECT_NEAR(c.sky.aperture_pa_deg, 0.0, 1e-12);  // file: east to the right; x reversed: north up, east left = PA 0
  // 1 MJy/sr = 1e-17 erg s-1 cm-2 Hz-1 sr-1; f_lambda = f_nu c / lambda^2.
  const double lam = 1.502;  // channel k = 2
  const double factor = 1e-17 / (kArcsecPerRad * kArcsecPerRad) * 2.99792458e14 / (lam * lam);
  // cube (i=0, j=1, k=2) is FITS pixel (nx, 2, 3) after the x reversal.
  const std::size_t src = (2 * ny + 1) * nx + (nx - 1);
  EXPECT_NEAR(c.sci[c.index(0, 1, 2)], sci[src] * factor, 1e-12 * sci[src] * factor);
  EXPECT_NEAR(c.err[c.index(0, 1, 2)], 0.5 * factor, 1e-12 * factor);
  // The world position of cube pixel (0, 1) equals the file's FITS pixel (nx, 2).
  const WorldCoord w = pixel_to_world(c.spatial, c.sky, c.spectral, 0, 1, 2);
  // FITS (p1, p2) = (nx, 2): xi = +CDELT1 (p1 - CRPIX1) = 0.2" (east), eta = 0.
  const auto rd = tan_deproject_deg({0.1 * static_cast<double>(nx - 2), 0.0}, 53.1, -27.8);
  EXPECT_LT(sky_sep_deg(w.ra_deg, w.dec_deg, rd[0], rd[1]), 1e-10);
  EXPECT_NEAR(w.wavelength_um, 1.502, 1e-12);
}

// ------------------------------------------------------------------------------------------
// Real data.
TEST(CubeIo, ReadsTheMuseCube) {
  const std::string path = slitstep::test::shared_data("muse_udf_subcube/subcub_mosaic.fits");
  CubeReadReport rep;
  const Cube c = read_cube(path, {}, &rep);
  EXPECT_EQ(c.nx(), 30);
  EXPECT_EQ(c.ny(), 30);
  EXPECT_EQ(c.nl(), 500u);
  EXPECT_TRUE(rep.err_was_variance);
  EXPECT_TRUE(rep.air_wavelengths);
  EXPECT_TRUE(rep.celestial_wcs);
  EXPECT_FALSE(rep.x_reversed);
  // Wavelengths: 4750 A + 1.25 A steps in air -> vacuum (Morton): ~ +1.33 A.
  EXPECT_NEAR(c.spectral.wavelength_um(0), air_to_vacuum_angstrom(4750.0) * 1e-4, 1e-12);
  EXPECT_NEAR(c.spectral.wavelength_um(499), air_to_vacuum_angstrom(5373.75) * 1e-4, 1e-12);
  EXPECT_NEAR(c.spectral.wavelength_um(0), 0.475133, 2e-6);  // 0.02 A
  EXPECT_LT(rep.air_nonlinearity_channels, 1e-3);
  // 0.2"/spaxel and the ~42 deg rotation of the CD matrix.
  const double cd11 = -4.12858236376E-05, cd12 = 3.71739225755E-05;
  EXPECT_NEAR(c.spatial.pixel_arcsec, std::hypot(cd11, cd12) * 3600.0, 1e-12);
  EXPECT_NEAR(c.spatial.pixel_arcsec, 0.2, 1e-4);
  EXPECT_NEAR(c.sky.aperture_pa_deg, std::atan2(cd12, -cd11) * kDegPerRad, 1e-9);
  EXPECT_NEAR(c.sky.aperture_pa_deg, 42.0, 0.05);
  // Units: 1e-20 erg/s/cm2/A per 0.2" spaxel -> x 1e-20 * 1e4 / 0.04 arcsec2.
  FitsFile f = FitsFile::open_read(path);
  f.move_to("DATA");
  const auto raw = f.read_image_double();
  f.move_to("STAT");
  const auto var = f.read_image_double();
  const double factor = 1e-20 * 1e4 / c.spatial.pixel_area_arcsec2();
  for (const auto& [i, j, k] : {std::tuple{0, 0, 0}, std::tuple{17, 5, 250}, std::tuple{29, 29, 499}}) {
    const std::size_t src = (static_cast<std::size_t>(k) * 30 + j) * 30 + i;
    EXPECT_NEAR(c.sci[c.index(i, j, k)], raw[src] * factor, 1e-12 * std::abs(raw[src] * factor) + 1e-40);
    EXPECT_NEAR(c.err[c.index(i, j, k)], std::sqrt(var[src]) * factor, 1e-12 * std::sqrt(var[src]) * factor);
  }
  // The sky position of every corner agrees with astropy (MUSE uses a CD matrix, FK5->ICRS ignored).
  const auto corners = astropy_corners(path, "DATA");
  for (const auto& a : corners) {
    const WorldCoord w = pixel_to_world(c.spatial, c.sky, c.spectral, a.i, a.j, static_cast<std::size_t>(a.k));
    EXPECT_LT(sky_sep_deg(w.ra_deg, w.dec_deg, a.ra, a.dec), 1e-9);
  }
}

TEST(CubeIo, ReadsTheGmosCube) {
  const std::string path = slitstep::test::shared_data("gmos_ngc3081/ngc3081_cube.fits");
  CubeReadReport rep;
  const Cube c = read_cube(path, {}, &rep);
  EXPECT_EQ(c.nx(), 6);
  EXPECT_EQ(c.ny(), 8);
  EXPECT_EQ(c.nl(), 1800u);
  EXPECT_FALSE(rep.celestial_wcs);  // CTYPE 'LINEAR'
  EXPECT_TRUE(rep.x_reversed);      // CD1_1 and CD2_2 both negative
  EXPECT_FALSE(rep.air_wavelengths);  // 'LAMBDA' taken as given (ambiguous_wavelength default)
  // 5627.89 A + 0.678294 A/channel
  EXPECT_NEAR(c.spectral.wavelength_um(0), 0.562789, 1e-12);
  EXPECT_NEAR(c.spectral.width_um(0), 0.0000678294, 1e-15);
  EXPECT_NEAR(c.spectral.wavelength_um(1799), 0.562789 + 1799 * 0.0000678294, 1e-12);
  EXPECT_NEAR(c.spatial.pixel_arcsec, std::sqrt(1.01428571428571 * 1.02222222222222), 1e-12);
  // Units: erg/cm2/s/A/arcsec2 -> x 1e4 per um. ERR holds variances (values ~ SCI^2).
  EXPECT_TRUE(rep.err_was_variance);
  FitsFile f = FitsFile::open_read(path);
  f.move_to("SCI");
  const auto raw = f.read_image_double();
  f.move_to("ERR");
  const auto rawe = f.read_image_double();
  for (const auto& [i, j, k] : {std::tuple{0, 0, 0}, std::tuple{2, 5, 1000}, std::tuple{5, 7, 1799}}) {
    const std::size_t src = (static_cast<std::size_t>(k) * 8 + j) * 6 + (5 - i);  // x reversed
    EXPECT_NEAR(c.sci[c.index(i, j, k)], raw[src] * 1e4, 1e-12 * std::abs(raw[src] * 1e4));
    EXPECT_NEAR(c.err[c.index(i, j, k)], std::sqrt(rawe[src]) * 1e4, 1e-12 * std::sqrt(rawe[src]) * 1e4);
  }
  // Sensible numbers: Halpha+[NII] peaks ~ 1e-14 erg/s/cm2/A/arcsec2 = 1e-10 per um; median S/N
  // between 1 and 1000.
  const double peak = *std::max_element(c.sci.begin(), c.sci.end());
  EXPECT_GT(peak, 1e-11);
  EXPECT_LT(peak, 1e-8);
  std::vector<double> snr;
  for (std::size_t n = 0; n < c.size(); ++n)
    if (c.err[n] > 0) snr.push_back(std::abs(c.sci[n]) / c.err[n]);
  std::nth_element(snr.begin(), snr.begin() + snr.size() / 2, snr.end());
  EXPECT_GT(snr[snr.size() / 2], 1.0);
  EXPECT_LT(snr[snr.size() / 2], 1000.0);
}

TEST(CubeIo, AirToVacuumMatchesTheCalibrationTable) {
  // reference/calibrations.md section 3.4: NIST air -> vacuum check column.
  EXPECT_NEAR(air_to_vacuum_angstrom(4861.333), 4862.692, 5e-4);
  EXPECT_NEAR(air_to_vacuum_angstrom(6562.819), 6564.635, 5e-4);
  EXPECT_NEAR(air_to_vacuum_angstrom(6583.460), 6585.282, 5e-4);
  EXPECT_NEAR(air_to_vacuum_angstrom(6730.810), 6732.671, 5e-4);
}

TEST(CubeIo, OptionsAreValidated) {
  ReadCubeOptions o;
  EXPECT_NO_THROW(o.validate());
  o.linear_spatial_unit = "parsec";
  EXPECT_THROW(o.validate(), InvalidOptions);
  o = {};
  o.bunit_override = "counts";
  EXPECT_THROW(o.validate(), InvalidOptions);
  o = {};
  o.bunit_override = "1e-20 erg/s/cm2/Angstrom/arcsec2";
  EXPECT_NO_THROW(o.validate());
  o.sci_extnames.clear();
  EXPECT_THROW(o.validate(), InvalidOptions);
}

// ------------------------------------------------------------------------------------------
TEST(FitsInfo, DescribesOwnAndForeignCubes) {
  TempDir dir("fitsinfo");
  const std::string path = dir.file("cube.fits");
  const Cube c = make_cube(windowed_grid(), SpatialGrid::centred(5, 6, 0.1, -0.4, 0.25), test_sky());
  write_cube(c, path, test_meta("x = 1\n"));
  const std::string s = describe_fits(path);
  for (const char* needle : {"SCI", "ERR", "DQ", "WMAP", "WCS-TABLE", "PRODTYPE=SKYCUBE", "SOFTVER=9.8.7-test",
                             "5 x 6 spaxels x 22 channels", "4 windows", "0.1 arcsec", "37.0000", "flagged voxels"})
    EXPECT_NE(s.find(needle), std::string::npos) << needle << " not in:\n" << s;
  const std::string muse = describe_fits(slitstep::test::shared_data("muse_udf_subcube/subcub_mosaic.fits"));
  for (const char* needle : {"DATA", "STAT", "FIELDMAP", "30 x 30 spaxels x 500 channels", "variance", "air", "42.0"})
    EXPECT_NE(muse.find(needle), std::string::npos) << needle << " not in:\n" << muse;
  const std::string gmos = describe_fits(slitstep::test::shared_data("gmos_ngc3081/ngc3081_cube.fits"));
  EXPECT_NE(gmos.find("6 x 8 spaxels x 1800 channels"), std::string::npos) << gmos;
  EXPECT_NE(gmos.find("0.562789"), std::string::npos) << gmos;
  // An exposure and a table-only file are summarised without reading a cube.
  const std::string expo = describe_fits(
      slitstep::test::shared_data("nirspec_msaexp/jw01345062001_03101_00001_nrs2_phot.138.1345_933.fits"));
  EXPECT_NE(expo.find("2-D spectrum / exposure"), std::string::npos) << expo;
  const std::string ref = describe_fits(slitstep::test::shared_data("nirspec_pathloss/jwst_nirspec_pathloss_0002.fits"));
  EXPECT_NE(ref.find("REFTYPE = PATHLOSS"), std::string::npos) << ref;
  const std::string table = describe_fits(slitstep::test::shared_data("nirspec_msaexp/jwst_nirspec_g140h_disp.fits"));
  EXPECT_NE(table.find("tables only"), std::string::npos) << table;
}
