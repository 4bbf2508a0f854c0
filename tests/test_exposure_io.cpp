// Tests of instruments/exposure_io: round trip, fitsverify, real msaexp (JWST) slit products,
// bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/cube.hpp"
#include "core/error.hpp"
#include "helpers/paths.hpp"
#include "instruments/exposure_io.hpp"

namespace slitstep {
namespace {

Exposure sample_exposure() {
  Exposure e;
  e.pointing = {17, 3, 2, -0.2, -0.075, 1166.0};
  e.resize(17, 120);
  e.y0_arcsec = -0.8;
  e.pixel_y_arcsec = 0.1;
  e.seed = 18446744073709551557ull;  // > 2^63: must survive as an unsigned decimal string
  for (int u = 0; u < e.nu; ++u) e.wavelength_um[u] = 1.2 + 2.38e-4 * u - 1e-9 * u * u;
  for (int v = 0; v < e.nv; ++v)
    for (int u = 0; u < e.nu; ++u) {
      const std::size_t p = e.index(v, u);
      e.sci[p] = 1.3e-18 * std::sin(0.1 * u + v) + 2e-19;
      e.var_poisson[p] = 4.1e-40 * (1 + 0.01 * u);
      e.var_rnoise[p] = 9.3e-41;
      e.err[p] = std::sqrt(e.var_poisson[p] + e.var_rnoise[p]);
      if (u >= 50 && u < 55) e.dq[p] = kDqChipGap | kDqDoNotUse;
      if (v == 5) e.dq[p] |= kDqBarShadow;
    }
  return e;
}

TEST(ExposureIo, RoundTripAndFitsverify) {
  test::TempDir dir("exposure_io");
  const Exposure e = sample_exposure();
  ExposureFileMeta meta;
  meta.slitlet.quadrant = 1;
  meta.slitlet.shutter_i = 200;
  meta.date = "2025-01-01T00:00:00";
  const std::string path = dir.file(exposure_file_name(e.pointing));
  EXPECT_EQ(exposure_file_name(e.pointing), "exp_p017_s03_d02.fits");
  write_exposure(path, e, meta);
  const ExposureFile r = read_exposure(path);
  const Exposure& b = r.exposure;
  EXPECT_TRUE(r.meta.slitstep_product);
  EXPECT_EQ(r.meta.grating, "G140H");
  EXPECT_EQ(r.meta.filter, "F100LP");
  EXPECT_EQ(r.meta.slitlet.quadrant, 1);
  EXPECT_EQ(r.meta.slitlet.shutter_i, 200);
  EXPECT_EQ(b.seed, e.seed);
  EXPECT_EQ(b.pointing.index, 17);
  EXPECT_EQ(b.pointing.step, 3);
  EXPECT_EQ(b.pointing.dither, 2);
  EXPECT_EQ(b.pointing.offset_x_arcsec, -0.2);
  EXPECT_EQ(b.pointing.offset_y_arcsec, -0.075);
  EXPECT_EQ(b.pointing.exptime_s, 1166.0);
  EXPECT_EQ(b.y0_arcsec, e.y0_arcsec);
  EXPECT_EQ(b.pixel_y_arcsec, e.pixel_y_arcsec);
  ASSERT_EQ(b.nu, e.nu);
  ASSERT_EQ(b.nv, e.nv);
  EXPECT_TRUE(b.wavelength2d_um.empty());
  EXPECT_EQ(b.wavelength_um, e.wavelength_um);  // float64: exact
  EXPECT_EQ(b.dq, e.dq);
  EXPECT_EQ(b.var_poisson, e.var_poisson);
  EXPECT_EQ(b.var_rnoise, e.var_rnoise);
  double worst = 0.0;
  for (std::size_t p = 0; p < e.size(); ++p) {
    worst = std::max(worst, std::abs(b.sci[p] - e.sci[p]) / std::abs(e.sci[p]));
    worst = std::max(worst, std::abs(b.err[p] - e.err[p]) / e.err[p]);
  }
  EXPECT_LE(worst, 6e-8);  // float32 rounding
  const auto fv = test::run_command("fitsverify -q '" + path + "'");
  EXPECT_EQ(fv.exit_code, 0) << fv.output;
  EXPECT_NE(fv.output.find("verification OK"), std::string::npos) << fv.output;
  EXPECT_EQ(fv.output.find("warning"), std::string::npos) << fv.output;
  std::printf("[ info ] round trip: max relative SCI/ERR error %.2g; fitsverify: %s", worst, fv.output.c_str());
}

TEST(ExposureIo, RealMsaexpPhotFilesRead) {
  for (int k = 1; k <= 3; ++k) {
    const std::string path =
        test::shared_data("nirspec_msaexp/jw01345062001_03101_0000" + std::to_string(k) + "_nrs2_phot.138.1345_933.fits");
    const ExposureFile r = read_exposure(path);
    const Exposure& e = r.exposure;
    EXPECT_FALSE(r.meta.slitstep_product);
    EXPECT_EQ(r.meta.sci_bunit_in, "MJy/sr");
    EXPECT_EQ(r.meta.grating, "PRISM");
    EXPECT_EQ(e.nu, 341);
    EXPECT_EQ(e.nv, 25);
    EXPECT_EQ(e.pointing.index, k - 1);
    EXPECT_NEAR(e.pointing.exptime_s, 1021.222, 1e-3);
    ASSERT_EQ(e.wavelength2d_um.size(), e.size());  // un-rectified: rows differ
    std::size_t nonfinite = 0, good = 0;
    double maxabs = 0.0;
    for (std::size_t p = 0; p < e.size(); ++p) {
      EXPECT_TRUE(std::isfinite(e.sci[p]) && std::isfinite(e.err[p]));
      if (e.dq[p] & kDqNonFinite) {
        ++nonfinite;
        EXPECT_TRUE(e.dq[p] & kDqDoNotUse);
      } else if (!(e.dq[p] & kDqDoNotUse)) {
        ++good;
        maxabs = std::max(maxabs, std::abs(e.sci[p]));
      }
    }
    // The file has 2294 NaN SCI pixels in exposure 1 (astropy count).
    if (k == 1) {
      EXPECT_GE(nonfinite, 2294u);
    }
    EXPECT_GT(good, 1000u);
    // 1 MJy/sr at 3 um = 1e-17 * 3e14 / 9 / 4.25e10 = 7.8e-15 in erg s-1 cm-2 um-1 arcsec-2:
    // the source's few-MJy/sr-or-less pixels must come out far below 1e-12 and nonzero.
    EXPECT_GT(maxabs, 0.0);
    EXPECT_LT(maxabs, 1e-12);
    for (int u = 1; u < e.nu; ++u) EXPECT_GT(e.wavelength_um[u], e.wavelength_um[u - 1]);
    if (k == 1)
      std::printf("[ info ] %s: %zu good, %zu non-finite pixels, lambda %.3f-%.3f um, max |SCI| %.3g\n",
                  path.substr(path.rfind('/') + 1).c_str(), good, nonfinite, e.wavelength_um.front(),
                  e.wavelength_um.back(), maxabs);
  }
}

TEST(ExposureIo, BadFilesThrowOneLineNamingTheFile) {
  test::TempDir dir("exposure_io_bad");
  const std::string missing = dir.file("missing.fits");
  auto expect_named = [](const std::string& p) {
    try {
      read_exposure(p);
      ADD_FAILURE() << "no throw for " << p;
    } catch (const InputError& ex) {
      const std::string m = ex.what();
      EXPECT_NE(m.find(p), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  };
  expect_named(missing);
  const std::string junk = dir.file("junk.fits");
  test::write_text(junk, "this is not a FITS file\n");
  expect_named(junk);
  // Truncated copy of a good file.
  const std::string good = dir.file("good.fits");
  write_exposure(good, sample_exposure());
  {
    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(dir.file("trunc.fits"), std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  expect_named(dir.file("trunc.fits"));
  // An image-only FITS file (a PATHLOSS reference file has no SCI extension).
  expect_named(test::shared_data("nirspec_pathloss/jwst_nirspec_pathloss_0002.fits"));
  // Invalid exposure: refused at write time, and nothing is left behind.
  Exposure e = sample_exposure();
  e.sci.pop_back();
  EXPECT_THROW(write_exposure(dir.file("bad.fits"), e), InputError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.fits")));
}

}  // namespace
}  // namespace slitstep
