// core/maps_io: multi-extension 2-D map products (round trip, WCS, fitsverify, stored config).
#include <gtest/gtest.h>

#include <cmath>

#include "core/cube_io.hpp"
#include "core/error.hpp"
#include "core/fits.hpp"
#include "core/maps_io.hpp"
#include "helpers/paths.hpp"

using namespace slitstep;
using namespace slitstep::test;

namespace {
MapProduct sample(bool celestial) {
  MapProduct m;
  m.spatial = SpatialGrid::centred(5, 4, 0.08, 0.1, -0.05);
  m.sky = SkyFrame{150.25, -2.5, 37.0};
  m.celestial = celestial;
  MapImage a{"HALPHA_FLUX", "erg s-1 cm-2", "Halpha flux", std::vector<double>(20), false, {}};
  for (int k = 0; k < 20; ++k) a.values[k] = k * 1e-18;
  a.values[3] = NAN;
  MapImage c{"CLASS", "", "class code", std::vector<double>(20, 2.0), true, {"0 SF, 2 AGN"}};
  m.images = {a, c};
  return m;
}
}  // namespace

TEST(MapsIo, RoundTripKeepsGridImagesAndConfig) {
  TempDir dir("maps-io");
  const std::string p = dir.file("maps.fits");
  ProductMeta meta;
  meta.product_type = "MAPS";
  meta.config_text = "[analysis]\nmin_halpha_snr = 10  \n";
  meta.seed = 7;
  meta.extra_cards = {{"REDSHIFT", 1.25, "z"}};
  write_maps(sample(true), p, meta);
  const MapProduct r = read_maps(p);
  EXPECT_EQ(r.spatial, sample(true).spatial);
  EXPECT_EQ(r.sky, sample(true).sky);
  ASSERT_EQ(r.images.size(), 2u);
  EXPECT_EQ(r.images[0].extname, "HALPHA_FLUX");
  EXPECT_EQ(r.images[0].bunit, "erg s-1 cm-2");
  EXPECT_TRUE(std::isnan(r.images[0].values[3]));
  EXPECT_EQ(r.images[0].values[7], 7e-18);
  EXPECT_TRUE(r.images[1].integer);
  EXPECT_EQ(r.images[1].values[5], 2.0);
  EXPECT_EQ(r.find("class"), 1);
  EXPECT_EQ(read_product_config(p), meta.config_text);  // the cube_io encoding
  const auto fv = run_command("fitsverify -q " + p);
  EXPECT_NE(fv.output.find("verification OK"), std::string::npos) << fv.output;
  // The 2-D WCS is the TAN mapping of core/cube_io: the FITS pixel of the aperture origin.
  FitsFile f = FitsFile::open_read(p);
  f.move_to("CLASS");
  EXPECT_EQ(f.read_string("CTYPE1"), "RA---TAN");
  EXPECT_NEAR(f.read_double("CRPIX1"), 1.0 - sample(true).spatial.x0_arcsec / 0.08, 1e-12);
  EXPECT_NEAR(f.read_double("PC1_2"), -std::sin(37.0 * M_PI / 180.0), 1e-15);
}

TEST(MapsIo, OffsetAxesWithoutSkyPositionVerify) {
  TempDir dir("maps-io-lin");
  const std::string p = dir.file("m.fits");
  write_maps(sample(false), p, ProductMeta{});
  FitsFile f = FitsFile::open_read(p);
  f.move_to(1);
  EXPECT_EQ(f.read_string("CTYPE1"), "XOFFSET");
  EXPECT_FALSE(read_maps(p).celestial);
  EXPECT_NE(run_command("fitsverify -q " + p).output.find("verification OK"), std::string::npos);
}

TEST(MapsIo, InvalidProductsAndFilesAreRefused) {
  TempDir dir("maps-io-bad");
  MapProduct m = sample(true);
  m.images[1].values[0] = 0.5;
  EXPECT_THROW(write_maps(m, dir.file("a.fits"), {}), InvalidOptions);
  m = sample(true);
  m.images[1].extname = "halpha_flux";
  EXPECT_THROW(write_maps(m, dir.file("a.fits"), {}), InvalidOptions);
  m = sample(true);
  m.images[0].values.pop_back();
  EXPECT_THROW(write_maps(m, dir.file("a.fits"), {}), InvalidOptions);
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.fits")));
  EXPECT_THROW(read_maps(dir.file("missing.fits")), InputError);
}
