// analysis/metallicity: per-spaxel metallicity and its error propagation.
#include "analysis/metallicity.hpp"

#include <cmath>
#include <gtest/gtest.h>

#include "core/rng.hpp"

using namespace slitstep;

namespace {

LineFluxSet n2_set(double n2, double ha = 1e-17, double ha_err = 1e-19, double nii_err = 1e-19) {
  LineFluxSet f;
  f.halpha = ha;
  f.halpha_err = ha_err;
  f.nii6584 = ha * std::pow(10.0, n2);
  f.nii6584_err = nii_err;
  f.hbeta = f.oiii5007 = f.sii6717 = f.sii6731 = std::nan("");
  f.hbeta_err = f.oiii5007_err = f.sii6717_err = f.sii6731_err = std::nan("");
  return f;
}

}  // namespace

TEST(Metallicity, PP04CubicValueAndPropagatedError) {
  MetallicityOptions o;
  const LineFluxSet f = n2_set(-0.5, 1e-17, 1e-19, 2e-19);
  const SpaxelMetallicity m = spaxel_metallicity(f, o);
  ASSERT_TRUE(m.ok) << m.reason;
  EXPECT_NEAR(m.index, -0.5, 1e-14);
  EXPECT_NEAR(m.z_12logoh, 8.630, 5e-4);  // calibrations.md worked value
  // sigma_N2 by hand: sqrt((2e-19/(1e-17*10^-0.5))^2 + (1e-19/1e-17)^2)/ln10
  const double fn = 1e-17 * std::pow(10.0, -0.5);
  const double sn2 = std::sqrt(std::pow(2e-19 / fn, 2) + 1e-4) / std::log(10.0);
  EXPECT_NEAR(m.index_err, sn2, 1e-12);
  const double dzdx = 2.03 + 2.52 * (-0.5) + 0.96 * 0.25;  // derivative of the cubic
  EXPECT_NEAR(m.z_err_stat, dzdx * sn2, 1e-8);
  EXPECT_NEAR(m.z_err, std::hypot(dzdx * sn2, 0.18), 1e-8);
}

TEST(Metallicity, PropagatedErrorMatchesMonteCarlo) {
  // The linear propagation equals the scatter of the calibrated value under flux noise.
  MetallicityOptions o;
  o.max_error_dex = 10;
  const LineFluxSet f = n2_set(-0.8, 1e-17, 2e-19, 1.5e-19);
  const SpaxelMetallicity m0 = spaxel_metallicity(f, o);
  ASSERT_TRUE(m0.ok);
  Rng rng(7);
  double s = 0, s2 = 0;
  const int n = 20000;
  for (int k = 0; k < n; ++k) {
    LineFluxSet g = f;
    g.halpha += rng.normal(0, f.halpha_err);
    g.nii6584 += rng.normal(0, f.nii6584_err);
    const double z = spaxel_metallicity(g, o).z_12logoh;
    s += z;
    s2 += z * z;
  }
  const double sd = std::sqrt(s2 / n - (s / n) * (s / n));
  EXPECT_NEAR(sd / m0.z_err_stat, 1.0, 0.05);
}

TEST(Metallicity, ErrorCutIsOnStatisticalErrorByDefault) {
  MetallicityOptions o;
  // statistical error ~0.2 dex: passes the 0.25 cut on the statistical error ...
  LineFluxSet f = n2_set(-0.5, 1e-17, 1e-19, 0.0);
  const double fn = f.nii6584;
  // choose the [NII] error so that z_err_stat = 0.2
  const double dzdx = 2.03 - 1.26 + 0.24;
  f.nii6584_err = 0.2 / dzdx * std::log(10.0) * fn;  // (halpha term negligible)
  SpaxelMetallicity m = spaxel_metallicity(f, o);
  EXPECT_NEAR(m.z_err_stat, 0.2, 0.005);
  EXPECT_TRUE(m.ok) << m.reason;
  // ... but not when the cut is on the total error (0.2 (+) 0.18 = 0.27 > 0.25).
  o.cut_on_total_error = true;
  m = spaxel_metallicity(f, o);
  EXPECT_FALSE(m.ok);
  EXPECT_NE(m.reason.find("total"), std::string::npos);
  // a 0.3 dex statistical error fails the default cut
  o.cut_on_total_error = false;
  f.nii6584_err *= 1.5;
  m = spaxel_metallicity(f, o);
  EXPECT_FALSE(m.ok);
  EXPECT_NE(m.reason.find("statistical"), std::string::npos);
}

TEST(Metallicity, OutOfRangeAndMissingLinesAreRejectedWithReasons) {
  MetallicityOptions o;
  SpaxelMetallicity m = spaxel_metallicity(n2_set(-0.2), o);  // N2 > -0.3: outside PP04
  EXPECT_FALSE(m.ok);
  EXPECT_NE(m.reason.find("validity"), std::string::npos);
  o.reject_out_of_range = false;
  EXPECT_TRUE(spaxel_metallicity(n2_set(-0.2), o).ok);
  LineFluxSet f = n2_set(-0.5);
  f.nii6584 = 0.0;
  m = spaxel_metallicity(f, o);
  EXPECT_FALSE(m.ok);
  EXPECT_TRUE(std::isnan(m.z_12logoh));
  f = n2_set(-0.5);
  f.halpha = std::nan("");
  EXPECT_FALSE(spaxel_metallicity(f, o).ok);
}

TEST(Metallicity, O3N2AndD16Options) {
  MetallicityOptions o;
  o.calibration = Calibration::kPP04O3N2;
  LineFluxSet f = n2_set(-0.5);
  f.hbeta = 1e-17 / 2.86;
  f.hbeta_err = 1e-19;
  f.oiii5007 = f.hbeta;  // log(O3/Hb) = 0 -> O3N2 = 0.5
  f.oiii5007_err = 1e-19;
  SpaxelMetallicity m = spaxel_metallicity(f, o);
  ASSERT_TRUE(m.ok) << m.reason;
  EXPECT_NEAR(m.index, 0.5, 1e-12);
  EXPECT_NEAR(m.z_12logoh, 8.570, 1e-9);
  const double r2 = [](double a, double b) { return (b / a) * (b / a); }(f.hbeta, 1e-19);
  const double sidx = std::sqrt(2 * r2 + 1e-4 + std::pow(1e-19 / f.nii6584, 2)) / std::log(10.0);
  EXPECT_NEAR(m.index_err, sidx, 1e-12);
  EXPECT_NEAR(m.z_err_stat, 0.32 * sidx, 1e-9);
  // D16: y = log(NII/SII) + 0.264 N2 = 0 -> 8.7711
  o.calibration = Calibration::kD16N2S2Ha;
  f = n2_set(-0.5);
  const double s_tot = f.nii6584 / std::pow(10.0, 0.264 * 0.5);  // log(NII/S) = 0.132
  f.sii6717 = 0.6 * s_tot;
  f.sii6731 = 0.4 * s_tot;
  f.sii6717_err = f.sii6731_err = 1e-20;
  m = spaxel_metallicity(f, o);
  ASSERT_TRUE(m.ok) << m.reason;
  EXPECT_NEAR(m.index, 0.0, 1e-12);
  EXPECT_NEAR(m.z_12logoh, 8.77 + 0.45 * std::pow(0.3, 5), 1e-9);
  f.sii6717 = std::nan("");
  EXPECT_FALSE(spaxel_metallicity(f, o).ok);
}

TEST(Metallicity, ValidateNamesFieldValueRule) {
  MetallicityOptions o;
  o.calibration_scatter_dex = -0.1;
  try {
    o.validate();
    FAIL();
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("calibration_scatter_dex = -0.1"), std::string::npos);
  }
  o = {};
  o.max_error_dex = 0.1;
  o.cut_on_total_error = true;
  EXPECT_THROW(o.validate(), InvalidOptions);
  o = {};
  o.max_error_dex = std::nan("");
  EXPECT_THROW(o.validate(), InvalidOptions);
}
