// Detector: gap and red limit vs quadrant/shutter, throughput, unit conversions, kernels.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.hpp"
#include "instruments/detector.hpp"

using namespace slitstep;

TEST(Detector, GapFollowsTheTableAndInterpolates) {
  // nirspec.md §4 table mid-points
  EXPECT_NEAR(chip_gap_center_um(3, 365), 1.425, 1e-12);
  EXPECT_NEAR(chip_gap_center_um(4, 180), 1.30, 1e-12);
  EXPECT_NEAR(chip_gap_center_um(3, 90), 1.245, 1e-12);
  EXPECT_NEAR(chip_gap_center_um(4, 1), 1.195, 1e-12);
  EXPECT_NEAR(chip_gap_center_um(1, 365), 1.135, 1e-12);
  EXPECT_NEAR(chip_gap_center_um(2, 270), 1.08, 1e-12);
  EXPECT_NEAR(chip_gap_center_um(1, 180), 1.015, 1e-12);
  EXPECT_LT(chip_gap_center_um(1, 80) + 0.0175, 0.97);  // below the F100LP cut-on
  // linear between nodes, monotonic in shutter_i
  EXPECT_NEAR(chip_gap_center_um(3, 135), 0.5 * (1.245 + 1.30), 1e-12);
  for (int q : {1, 3})
    for (int i = 2; i <= 365; ++i) ASSERT_GT(chip_gap_center_um(q, i), chip_gap_center_um(q, i - 1));
  DetectorConfig c;
  const ChipGap g = chip_gap(c, 3, 183);
  EXPECT_NEAR(g.hi_um - g.lo_um, 0.035, 1e-12);
  c.gap_center_um = 1.5;
  c.gap_shift_um = 0.01;
  EXPECT_NEAR(0.5 * (chip_gap(c, 3, 183).lo_um + chip_gap(c, 3, 183).hi_um), 1.51, 1e-12);
  EXPECT_NEAR(red_limit_um(1, 180), 1.60, 1e-12);
  EXPECT_NEAR(red_limit_um(3, 365), 1.81, 1e-12);
}

TEST(Detector, ThroughputAndConversions) {
  DetectorConfig c;
  // msaexp per-f_nu sensitivity (peak 1 at 1.15 um) -> photon efficiency S * lambda, peak 1 at 1.2 um
  EXPECT_DOUBLE_EQ(sensitivity_fnu_shape(1.15), 1.0);
  EXPECT_DOUBLE_EQ(sensitivity_fnu_shape(1.4), 0.72);
  EXPECT_DOUBLE_EQ(throughput_shape(1.2), 1.0);
  for (double l = 0.9; l < 2.0; l += 0.01) ASSERT_LE(throughput_shape(l), 1.0 + 1e-12) << l;
  EXPECT_NEAR(throughput_shape(1.4), 0.72 * 1.4 / (0.98 * 1.2), 1e-12);
  EXPECT_NEAR(throughput_shape(1.76), (0.43 - 0.6 * 0.06) * 1.76 / (0.98 * 1.2), 1e-12);
  EXPECT_NEAR(throughput_shape(2.5), throughput_shape(1.89), 1e-12);  // flat beyond the table
  // absolute: peak 0.60, calibrated on the MSA-3D S/N anchor (docs/instruments.md §9)
  EXPECT_DOUBLE_EQ(c.throughput_peak, 0.60);
  EXPECT_NEAR(throughput(c, 1.0), 0.393, 5e-4);
  EXPECT_NEAR(throughput(c, 1.3), 0.570, 5e-4);
  EXPECT_NEAR(throughput(c, 1.76), 0.354, 5e-4);
  // 1 erg/s/cm2 at 1 um = 5.03e11 photons/s/cm2; x 25.4e4 cm2 x eta(1.0)
  EXPECT_NEAR(electrons_per_erg_cm2(c, 1.0), 1.0 / 1.98644586e-12 * 25.4e4 * 0.6 * 0.77 / (0.98 * 1.2), 1e3);
  // 1 MJy/sr at 1 um: 1e-17 erg/s/cm2/Hz/sr * c/lambda^2 / arcsec2 per sr
  EXPECT_NEAR(mjy_sr_to_sb(1.0, 1.0), 1e-17 * 2.99792458e14 / 4.254517029615221e10, 1e-25);
  EXPECT_NEAR(mjy_sr_to_sb(1.0, 2.0), 0.25 * mjy_sr_to_sb(1.0, 1.0), 1e-25);
  // cross-dispersion kernel: 1.28 px total minus PSF and pixel box, floored
  EXPECT_NEAR(cross_dispersion_kernel_fwhm_px(c, 0.0), std::sqrt(1.28 * 1.28 - 2.3548200450309493 * 2.3548200450309493 / 12), 1e-12);
  EXPECT_DOUBLE_EQ(cross_dispersion_kernel_fwhm_px(c, 5.0), c.min_kernel_fwhm_px);
}

TEST(Detector, ValidateNamesTheField) {
  DetectorConfig c;
  EXPECT_NO_THROW(c.validate());
  c.dark_e_per_s = -1;
  try {
    c.validate();
    FAIL();
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("dark_e_per_s = -1"), std::string::npos);
  }
  c = DetectorConfig{};
  c.throughput_peak = 0;
  EXPECT_THROW(c.validate(), InvalidOptions);
  c = DetectorConfig{};
  c.gap_width_um = std::nan("");
  EXPECT_THROW(c.validate(), InvalidOptions);
}
