// Tests of sim/galaxy: parameter validation, geometry, kinematics, chemistry, dust, totals.
#include <gtest/gtest.h>

#include <cmath>

#include "core/calibrations.hpp"
#include "core/cosmology.hpp"
#include "core/error.hpp"
#include "core/lines.hpp"
#include "core/units.hpp"
#include "sim/galaxy.hpp"

using namespace slitstep;

namespace {
std::size_t li(LineId id) { return static_cast<std::size_t>(id); }
GalaxyModel make(const GalaxyParams& p) { return GalaxyModel(p, Cosmology()); }
std::string message_of(const GalaxyParams& p) {
  try {
    p.validate();
  } catch (const InvalidOptions& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(GalaxyParams, DefaultsAreTheDemoGalaxyAndValid) {
  GalaxyParams p;
  EXPECT_NO_THROW(p.validate());
  const auto m = make(p);
  EXPECT_DOUBLE_EQ(m.inclination_deg(), 55.0);
  EXPECT_NEAR(m.axis_ratio(), std::cos(55.0 / kDegPerRad), 1e-15);
  EXPECT_NEAR(m.kpc_per_arcsec(), 8.1531, 2e-3);
  EXPECT_EQ(m.calibration(), Calibration::kPP04N2Cubic);
}

TEST(GalaxyParams, ValidationNamesFieldValueAndRule) {
  GalaxyParams p;
  p.inclination_deg = 95.0;
  EXPECT_NE(message_of(p).find("GalaxyParams.inclination_deg = 95"), std::string::npos) << message_of(p);
  p = {};
  p.axis_ratio = 1.2;
  EXPECT_NE(message_of(p).find("axis_ratio = 1.2"), std::string::npos);
  p = {};
  p.redshift = 0.0;
  EXPECT_NE(message_of(p).find("redshift = 0"), std::string::npos);
  p = {};
  p.light_profile = "king";
  EXPECT_NE(message_of(p).find("light_profile = \"king\""), std::string::npos);
  p = {};
  p.calibration = "KK04";
  EXPECT_NE(message_of(p).find("calibration"), std::string::npos);
  p = {};
  p.re_arcsec = -0.1;
  EXPECT_NE(message_of(p).find("re_arcsec"), std::string::npos);
  p = {};
  p.inclination_deg = 50.0;
  p.axis_ratio = 0.6;
  EXPECT_NE(message_of(p).find("not both"), std::string::npos);
  p = {};
  p.sersic_n = 4.0;  // with the exponential profile: ambiguous
  EXPECT_NE(message_of(p).find("sersic_n"), std::string::npos);
  p = {};
  p.inclination_deg = 90.0;  // edge-on, infinitely thin
  EXPECT_NE(message_of(p).find("thickness_q0"), std::string::npos);
  p.thickness_q0 = 0.2;
  EXPECT_EQ(message_of(p), "");
  p = {};
  p.break_radius_kpc = 3.0;  // needs the outer slope
  EXPECT_NE(message_of(p).find("gradient_outer_dex_per_kpc"), std::string::npos);
  p = {};
  p.clumps.push_back({0.1, 0.1, -0.05, 1e-18, 0.0});
  EXPECT_NE(message_of(p).find("GalaxyParams.clumps[0].sigma_arcsec"), std::string::npos);
  p = {};
  p.agn.sigma_kms = 0.0;
  EXPECT_NE(message_of(p).find("GalaxyParams.agn.sigma_kms"), std::string::npos);
  EXPECT_THROW(make(p), InvalidOptions);
}

TEST(GalaxyModel, AxisRatioWithThicknessGivesInclination) {
  GalaxyParams p;
  p.axis_ratio = 0.5;
  p.thickness_q0 = 0.2;
  const auto m = make(p);
  const double c2 = (0.25 - 0.04) / (1.0 - 0.04);
  EXPECT_NEAR(std::cos(m.inclination_deg() / kDegPerRad), std::sqrt(c2), 1e-12);
  EXPECT_DOUBLE_EQ(m.axis_ratio(), 0.5);
  // And back: the inclination with q0 gives the same projected axis ratio.
  GalaxyParams p2;
  p2.inclination_deg = m.inclination_deg();
  p2.thickness_q0 = 0.2;
  EXPECT_NEAR(make(p2).axis_ratio(), 0.5, 1e-12);
  p.axis_ratio = 0.1;  // b/a < q0 is impossible
  EXPECT_THROW(p.validate(), InvalidOptions);
}

TEST(GalaxyModel, SersicBnAndNormalisation) {
  EXPECT_NEAR(sersic_bn(1.0), 1.678347, 1e-6);
  EXPECT_NEAR(sersic_bn(4.0), 7.669249, 1e-6);
  EXPECT_NEAR(sersic_bn(0.5), 0.693147, 1e-6);
  for (double n : {0.5, 1.0, 2.5, 4.0}) {
    GalaxyParams p;
    p.light_profile = n == 1.0 ? "exponential" : "sersic";
    p.sersic_n = n;
    const auto m = make(p);
    EXPECT_NEAR(m.enclosed_fraction(p.re_arcsec, p.re_arcsec), 0.5, 1e-12);
    // Radial integral of the normalised profile: 2 pi q \int I(R) R dR = 1 (in ln R).
    double s = 0.0;
    const double lo = std::log(1e-12), hi = std::log(200.0);
    const int nstep = 200000;
    const double h = (hi - lo) / nstep;
    for (int k = 0; k <= nstep; ++k) {
      const double r = std::exp(lo + k * h);
      const double w = (k == 0 || k == nstep) ? 0.5 : 1.0;
      s += w * m.disk_profile(r) * r * r * h;
    }
    EXPECT_NEAR(2.0 * kPi * m.axis_ratio() * s, 1.0, 1e-6) << "n = " << n;
  }
}

TEST(GalaxyModel, ExtinctionCurvesMatchPublishedValues) {
  // CCM89 R_V = 3.1: the commonly quoted k(Halpha) = 2.53, k(Hbeta) = 3.61.
  EXPECT_NEAR(extinction_k(ExtinctionCurve::kCardelli1989, 6564.61), 2.53, 5e-3);
  // Hbeta: k = 3.61 (the original CCM89 optical coefficients; O'Donnell 1994's give 3.66).
  EXPECT_NEAR(extinction_k(ExtinctionCurve::kCardelli1989, 4862.68), 3.61, 5e-3);
  // Calzetti 2000: k(Halpha) = 3.33, k(Hbeta) = 4.60.
  EXPECT_NEAR(extinction_k(ExtinctionCurve::kCalzetti2000, 6564.61), 3.325, 5e-3);
  EXPECT_NEAR(extinction_k(ExtinctionCurve::kCalzetti2000, 4862.68), 4.596, 5e-3);
}

TEST(GalaxyModel, RotationCurvesAndLineOfSightVelocity) {
  GalaxyParams p;
  p.v0_kms = 20.0;
  const auto m = make(p);
  EXPECT_NEAR(m.rotation_kms(p.rt_arcsec), 0.5 * p.vc_kms, 1e-12);  // arctan(1) = pi/4
  // Receding major axis at PA 30 deg from +y toward -x.
  const double pa = p.pa_deg / kDegPerRad, r = 0.4;
  const double x = -r * std::sin(pa), y = r * std::cos(pa);
  EXPECT_NEAR(m.vlos_kms(x, y), 20.0 + m.rotation_kms(r) * m.sin_i(), 1e-9);
  EXPECT_NEAR(m.vlos_kms(-x, -y), 20.0 - m.rotation_kms(r) * m.sin_i(), 1e-9);
  // Minor axis: systemic.
  EXPECT_NEAR(m.vlos_kms(0.3 * std::cos(pa), 0.3 * std::sin(pa)), 20.0, 1e-9);
  EXPECT_DOUBLE_EQ(m.vlos_kms(0.0, 0.0), 20.0);

  p.rotation_curve = "tanh";
  EXPECT_NEAR(make(p).rotation_kms(1e3), p.vc_kms, 1e-9);
  p.rotation_curve = "freeman";
  const auto f = make(p);
  EXPECT_NEAR(f.rotation_kms(2.1574 * p.rt_arcsec), p.vc_kms, 1e-3);
  EXPECT_LT(f.rotation_kms(1.5 * p.rt_arcsec), p.vc_kms);
  EXPECT_LT(f.rotation_kms(3.0 * p.rt_arcsec), p.vc_kms);
  // Continuous at the switch to the asymptotic series (R = 100 h).
  EXPECT_NEAR(f.rotation_kms(99.999 * p.rt_arcsec), f.rotation_kms(100.001 * p.rt_arcsec), 1e-3);
}

TEST(GalaxyModel, DispersionWithRadialTerm) {
  GalaxyParams p;
  p.sigma_slope_kms_per_kpc = -5.0;
  const auto m = make(p);
  EXPECT_NEAR(m.sigma_kms(1.0 / m.kpc_per_arcsec()), 40.0, 1e-9);
  EXPECT_DOUBLE_EQ(m.sigma_kms(100.0), 1.0);  // floored
}

TEST(GalaxyModel, MetallicityProfileLinearAndBroken) {
  GalaxyParams p;
  p.break_radius_kpc = 3.0;
  p.gradient_outer_dex_per_kpc = 0.01;
  const auto m = make(p);
  const double k = m.kpc_per_arcsec();
  EXPECT_NEAR(m.metallicity(2.0 / k), 8.60 - 0.06, 1e-12);
  EXPECT_NEAR(m.metallicity(5.0 / k), 8.60 - 0.09 + 0.02, 1e-12);
}

TEST(GalaxyModel, ChosenCalibrationIsExact) {
  for (const char* name : {"PP04_N2_cubic", "PP04_O3N2", "D16_N2S2Ha", "M13_N2", "PP04_N2_linear"}) {
    GalaxyParams p;
    p.calibration = name;
    const auto m = make(p);
    for (double z : {8.2, 8.45, 8.6, 8.8}) {
      // above the top of the linear N2 calibrations' validity (N2 < -0.3 / -0.2)
      if ((std::string(name) == "M13_N2" || std::string(name) == "PP04_N2_linear") && z > 8.65) continue;
      const auto cr = m.ratios_for_metallicity(z);
      ASSERT_EQ(cr.clamped_mask, 0u) << name << " " << z;
      const auto& r = cr.ratio;
      const double n2 = std::log10(r[li(LineId::kNII6584)] / r[li(LineId::kHalpha)]);
      const double o3n2 = std::log10(r[li(LineId::kOIII5007)] / r[li(LineId::kHbeta)]) - n2;
      const double y = std::log10(r[li(LineId::kNII6584)] /
                                  (r[li(LineId::kSII6717)] + r[li(LineId::kSII6731)])) + 0.264 * n2;
      Calibration c;
      ASSERT_TRUE(calibration_from_name(name, c));
      const double idx = (c == Calibration::kPP04O3N2) ? o3n2 : (c == Calibration::kD16N2S2Ha) ? y : n2;
      EXPECT_NEAR(metallicity_from_index(c, idx).value, z, 1e-9) << name;
      // Fixed ratios.
      EXPECT_NEAR(r[li(LineId::kNII6584)] / r[li(LineId::kNII6548)], kNIIDoubletRatio, 1e-12);
      EXPECT_NEAR(r[li(LineId::kOIII5007)] / r[li(LineId::kOIII4959)], kOIIIDoubletRatio, 1e-12);
      EXPECT_NEAR(r[li(LineId::kSII6717)] / r[li(LineId::kSII6731)], 1.35, 1e-12);
      EXPECT_NEAR(r[li(LineId::kHalpha)] / r[li(LineId::kHbeta)], kCaseBHalphaHbeta, 1e-12);
    }
  }
}

TEST(GalaxyModel, OutOfRangeMetallicityIsClampedAndFlagged) {
  const auto m = make(GalaxyParams{});
  const auto cr = m.ratios_for_metallicity(7.0);  // below PP04 N2 cubic (7.17 at N2 = -2.5)
  EXPECT_NE(cr.clamped_mask & (1u << static_cast<unsigned>(Calibration::kPP04N2Cubic)), 0u);
  EXPECT_NEAR(std::log10(cr.ratio[li(LineId::kNII6584)]), -2.5, 1e-12);
}

TEST(GalaxyModel, DustSetsTheBalmerDecrement) {
  GalaxyParams p;
  p.ebv_mag = 0.3;
  const auto m = make(p);
  const auto r = m.ratios_for_metallicity(8.5).ratio;
  const double dk = extinction_k(ExtinctionCurve::kCardelli1989, line(LineId::kHbeta).rest_A) -
                    extinction_k(ExtinctionCurve::kCardelli1989, line(LineId::kHalpha).rest_A);
  EXPECT_NEAR(r[li(LineId::kHalpha)] / r[li(LineId::kHbeta)], 2.86 * std::pow(10.0, 0.4 * 0.3 * dk), 1e-10);
  EXPECT_DOUBLE_EQ(r[li(LineId::kHalpha)], 1.0);  // Halpha flux is the observed one
}

TEST(GalaxyModel, LineTotalsAddDiskClumpsAndAgn) {
  GalaxyParams p;
  p.gradient_dex_per_kpc = 0.0;  // uniform ratios: totals are exact
  p.clumps.push_back({0.2, -0.1, 0.04, 3e-18, 0.1});
  p.agn.enabled = true;
  const auto m = make(p);
  const auto disk = m.ratios_for_metallicity(8.60).ratio;
  const auto clump = m.ratios_for_metallicity(8.70).ratio;
  for (std::size_t l = 0; l < kNumLines; ++l) {
    const double expect = 2e-17 * disk[l] + 3e-18 * clump[l] + 5e-18 * m.agn_ratios()[l];
    EXPECT_NEAR(m.line_flux_total_cgs()[l] / expect, 1.0, 1e-9) << l;
  }
  EXPECT_NEAR(std::log10(m.agn_ratios()[li(LineId::kNII6584)]), 0.1, 1e-12);
  // Continuum: galaxy-integrated rest EW(Halpha) = 50 A.
  const double lam = m.observed_wavelength_um(LineId::kHalpha);
  const double ew_obs_um = m.line_flux_total_cgs()[li(LineId::kHalpha)] / m.continuum_flux_density(lam);
  EXPECT_NEAR(ew_obs_um * 1e4 / (1.0 + p.redshift), 50.0, 1e-9);
}

TEST(GalaxyModel, DiskTotalsWithGradientMatchABruteForceSum) {
  GalaxyParams p;
  p.gradient_dex_per_kpc = -0.08;
  const auto m = make(p);
  // Brute force on a polar grid (independent of the ln-R quadrature in the model).
  double acc = 0.0, wsum = 0.0;
  const int nr = 400000;
  const double rmax = 12.0;
  for (int k = 0; k < nr; ++k) {
    const double r = (k + 0.5) * rmax / nr;
    const double w = m.disk_profile(r) * r;
    acc += w * m.ratios_for_metallicity(m.metallicity(r)).ratio[li(LineId::kNII6584)];
    wsum += w;
  }
  EXPECT_NEAR(m.line_flux_total_cgs()[li(LineId::kNII6584)] / (2e-17 * acc / wsum), 1.0, 1e-6);
}
