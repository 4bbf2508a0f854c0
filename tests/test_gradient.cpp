// analysis/gradient: weighted line fits, errors (covariance, chi^2-scaled, bootstrap), RMSE,
// binned profiles; and the gradient through analyze_maps on LineMaps built from a known Z(R)
// with the inverse of the calibration (noiseless: exact; noisy: pulls).
#include "analysis/gradient.hpp"

#include <cmath>
#include <gtest/gtest.h>

#include "analysis/pipeline.hpp"
#include "core/calibrations.hpp"
#include "core/cosmology.hpp"
#include "core/rng.hpp"
#include "core/units.hpp"

using namespace slitstep;

namespace {

struct Disk {
  double cx = 0.03, cy = -0.02;  // arcsec
  double pa_deg = 30.0, incl_deg = 50.0;
  double z = 1.2;
  double z0 = 8.55, grad = -0.025;  // 12+log(O/H) = z0 + grad R_kpc
  double ha_peak = 4e-18, rd_arcsec = 0.4;
  double ha_rel_err = 0.02, nii_rel_err = 0.03;  // noise as a fraction of the true flux
  double intrinsic_scatter_dex = 0.0;            // drawn per spaxel about Z(R)
  int nx = 21, ny = 29;
};

double radius_kpc(const Disk& d, double x, double y) {
  const double pa = d.pa_deg / kDegPerRad, ci = std::cos(d.incl_deg / kDegPerRad);
  const double dx = x - d.cx, dy = y - d.cy;
  const double a = -dx * std::sin(pa) + dy * std::cos(pa), b = (dx * std::cos(pa) + dy * std::sin(pa)) / ci;
  return std::sqrt(a * a + b * b) * Cosmology().kpc_per_arcsec(d.z);
}

// Maps with Halpha and [NII] only (WHAN galaxy), flux errors = rel_err * true flux; noise drawn
// from rng if given. Velocity / sigma are simple finite maps (not tested here).
LineMaps make_maps(const Disk& d, Rng* rng) {
  LineMaps m;
  m.allocate(SpatialGrid::centred(d.nx, d.ny, 0.08), {}, d.z);
  LineMap& ha = m.line(LineId::kHalpha);
  LineMap& nii = m.line(LineId::kNII6584);
  ha.measured = nii.measured = true;
  const double kpa = Cosmology().kpc_per_arcsec(d.z);
  for (int j = 0; j < d.ny; ++j) {
    for (int i = 0; i < d.nx; ++i) {
      const std::size_t k = m.index(i, j);
      const double x = m.spatial.x_arcsec(i), y = m.spatial.y_arcsec(j);
      const double r = radius_kpc(d, x, y);
      double zt = d.z0 + d.grad * r;
      if (rng && d.intrinsic_scatter_dex > 0) zt += rng->normal(0, d.intrinsic_scatter_dex);
      const double n2 = index_from_metallicity(Calibration::kPP04N2Cubic, zt).value;
      const double fha = d.ha_peak * std::exp(-r / kpa / d.rd_arcsec);
      const double fn = fha * std::pow(10.0, n2);
      ha.flux_cgs[k] = fha + (rng ? rng->normal(0, d.ha_rel_err * fha) : 0.0);
      ha.flux_err_cgs[k] = d.ha_rel_err * fha;
      nii.flux_cgs[k] = fn + (rng ? rng->normal(0, d.nii_rel_err * fn) : 0.0);
      nii.flux_err_cgs[k] = d.nii_rel_err * fn;
      ha.ew_rest_A[k] = 40.0;
      ha.ew_err_rest_A[k] = 2.0;
      nii.ew_rest_A[k] = 40.0 * std::pow(10.0, n2);
      {
        const double pa = d.pa_deg / kDegPerRad, dx = x - d.cx, dy = y - d.cy;
        const double a = -dx * std::sin(pa) + dy * std::cos(pa), rr = r / kpa;
        m.velocity_kms[k] = 150.0 * std::sin(d.incl_deg / kDegPerRad) * (2 / kPi) * std::atan(rr / 0.1) *
                            (rr > 0 ? a / rr : 0.0);
      }
      m.velocity_err_kms[k] = 5.0;
      m.sigma_kms[k] = 40.0;
      m.fit_ok[k] = 1;
    }
  }
  return m;
}

AnalysisOptions given_geometry(const Disk& d) {
  AnalysisOptions o;
  o.center_arcsec = std::array<double, 2>{d.cx, d.cy};
  o.pa_deg = d.pa_deg;
  o.inclination_deg = d.incl_deg;
  o.re_kpc = 3.0;
  o.min_halpha_snr = 0.0;  // every spaxel selected: the test is about the fit
  o.kinematics.n_bootstrap = 10;
  return o;
}

}  // namespace

TEST(LineFit, ExactLineAndHandComputedErrors) {
  // z = 1 + 2 r at r = 0..4, errors 1: slope var = 1/sum (r-rbar)^2 = 1/10, intercept var = 1/5 + 4/10.
  std::vector<double> r{0, 1, 2, 3, 4}, z, e(5, 1.0);
  for (double x : r) z.push_back(1 + 2 * x);
  LineFitOptions o;
  o.r_min = 0;
  o.min_points = 3;
  const LineFit f = fit_line(r, z, e, o);
  ASSERT_TRUE(f.status.ok()) << f.status.message;
  EXPECT_NEAR(f.slope.value, 2.0, 1e-14);
  EXPECT_NEAR(f.intercept.value, 1.0, 1e-14);
  EXPECT_NEAR(f.slope.err, std::sqrt(0.1), 1e-14);
  EXPECT_NEAR(f.intercept.err, std::sqrt(0.6), 1e-14);
  EXPECT_NEAR(f.cov_slope_intercept, -0.2, 1e-14);
  EXPECT_NEAR(f.rmse, 0.0, 1e-14);
  EXPECT_EQ(f.n_points, 5);
}

TEST(LineFit, RangeMinimumPointsAndDegenerateInput) {
  std::vector<double> r{0.2, 0.6, 1.0, 1.4, 9.0}, z{1, 2, 3, 4, 100}, e(5, 0.1);
  LineFitOptions o;  // r_min = 0.5
  o.min_points = 3;
  o.r_max = 5.0;
  const LineFit f = fit_line(r, z, e, o);
  ASSERT_TRUE(f.status.ok());
  EXPECT_EQ(f.n_points, 3);  // 0.2 and 9.0 excluded
  EXPECT_NEAR(f.slope.value, 2.5, 1e-12);
  EXPECT_DOUBLE_EQ(f.r_lo, 0.6);
  EXPECT_DOUBLE_EQ(f.r_hi, 1.4);
  o.min_points = 4;
  EXPECT_EQ(fit_line(r, z, e, o).status.code, StatusCode::kFailed);
  const LineFit same = fit_line({1, 1, 1}, {1, 2, 3}, {1, 1, 1}, LineFitOptions{0.0, 10.0, 3});
  EXPECT_EQ(same.status.code, StatusCode::kFailed);
  EXPECT_TRUE(std::isnan(same.slope.value));
  // NaN and non-positive errors are skipped, not propagated.
  const LineFit nan = fit_line({1, 2, 3, 4}, {1, std::nan(""), 3, 4}, {1, 1, 0, 1}, LineFitOptions{0.0, 10.0, 3});
  EXPECT_EQ(nan.n_points, 2);
  EXPECT_FALSE(nan.status.ok());
  EXPECT_EQ(fit_line({1, 2}, {1}, {1, 1}, {}).status.code, StatusCode::kInvalidInput);
  LineFitOptions bad;
  bad.r_max = 0.1;
  EXPECT_THROW(bad.validate(), InvalidOptions);
}

TEST(LineFit, ScaledErrorsAndBootstrapAgreeWithScatter) {
  // 300 realisations of 60 points with unit-less noise 0.1 but declared errors 0.05: the
  // absolute errors are too small by 2, the chi^2-scaled and bootstrap ones are right.
  Rng rng(3);
  std::vector<double> r(60);
  for (int k = 0; k < 60; ++k) r[k] = 0.5 + 0.1 * k;
  double s = 0, s2 = 0, abs_err = 0, sc_err = 0, bs_err = 0;
  const int nr = 300;
  LineFitOptions o;
  o.n_bootstrap = 200;
  for (int t = 0; t < nr; ++t) {
    std::vector<double> z, e(60, 0.05);
    for (double x : r) z.push_back(8.5 - 0.03 * x + rng.normal(0, 0.1));
    o.error_model = FitErrorModel::kAbsolute;
    o.seed = 100 + t;
    const LineFit fa = fit_line(r, z, e, o);
    o.error_model = FitErrorModel::kScaledByChi2;
    const LineFit fs = fit_line(r, z, e, o);
    s += fa.slope.value;
    s2 += fa.slope.value * fa.slope.value;
    abs_err += fa.slope.err;
    sc_err += fs.slope.err;
    bs_err += fs.slope_err_bootstrap;
  }
  const double sd = std::sqrt(s2 / nr - (s / nr) * (s / nr));
  EXPECT_NEAR(s / nr, -0.03, 3 * sd / std::sqrt(nr));
  EXPECT_NEAR(abs_err / nr / sd, 0.5, 0.06);
  EXPECT_NEAR(sc_err / nr / sd, 1.0, 0.1);
  EXPECT_NEAR(bs_err / nr / sd, 1.0, 0.12);
}

TEST(BinnedProfile, MeansMediansAndEmptyBins) {
  const auto p = binned_profile({0.1, 0.2, 0.3, 1.7, 1.9}, {1, 2, 6, 10, 12}, 0.5, 0.0);
  ASSERT_EQ(p.size(), 2u);  // the bins [0.5,1) and [1,1.5) are empty and omitted
  EXPECT_EQ(p[0].n, 3);
  EXPECT_DOUBLE_EQ(p[0].mean, 3.0);
  EXPECT_DOUBLE_EQ(p[0].median, 2.0);
  EXPECT_NEAR(p[0].std, std::sqrt(7.0), 1e-12);
  EXPECT_DOUBLE_EQ(p[1].r_lo, 1.5);
  EXPECT_DOUBLE_EQ(p[1].median, 11.0);
}

TEST(GradientChain, NoiselessLineMapsRecoverInjectedSlopeExactly) {
  const Disk d;
  const LineMaps m = make_maps(d, nullptr);
  const AnalysisResult r = analyze_maps(m, given_geometry(d));
  ASSERT_TRUE(r.summary.gradient_status.ok()) << r.summary.gradient_status.message;
  EXPECT_NEAR(r.summary.gradient_dex_per_kpc.value, d.grad, 1e-10);
  EXPECT_NEAR(r.gradient_kpc.intercept.value, d.z0, 1e-10);
  EXPECT_NEAR(r.summary.rmse_dex, 0.0, 1e-10);
  // dex/R_e over 0.5-2.5 R_e: the same line in units of R_e
  EXPECT_NEAR(r.summary.gradient_dex_per_re.value, d.grad * 3.0, 1e-10);
  EXPECT_GE(r.gradient_re.r_lo, 0.5);
  EXPECT_LE(r.gradient_re.r_hi, 2.5);
  EXPECT_GE(r.gradient_kpc.r_lo, 0.5);
  EXPECT_EQ(r.summary.classification, "WHAN");
  EXPECT_GT(r.summary.n_spaxels_sf, 200);
  // radii are the independent de-projection
  for (const auto& row : r.spaxels) {
    ASSERT_NEAR(row.radius_kpc, radius_kpc(d, row.x_arcsec, row.y_arcsec), 1e-12);
  }
  // the error of the slope is the covariance error of the weighted fit (0.18 dex dominated)
  EXPECT_GT(r.summary.gradient_dex_per_kpc.err, 0.0);
  // binned profile follows the line
  for (const auto& b : r.profile_kpc) EXPECT_NEAR(b.mean, d.z0 + d.grad * b.r_mean, 1e-10);
}

TEST(GradientChain, PullsAreUnitNormalWithCalibrationScatter) {
  // Intrinsic 0.18 dex scatter about Z(R) (what the calibration scatter stands for) plus flux
  // noise; absolute covariance errors with z_err = stat (+) 0.18.
  // z0 = 8.3 keeps the scattered values inside the PP04 validity range (N2 < -0.3 <=> Z < 8.866):
  // spaxels pushed outside it are dropped, which truncates the scatter and biases the slope.
  Disk d;
  d.z0 = 8.3;
  d.intrinsic_scatter_dex = 0.18;
  d.nx = 15;
  d.ny = 19;
  Rng rng(11);
  const int nr = 250;
  double sp = 0, sp2 = 0;
  AnalysisOptions o = given_geometry(d);
  for (int t = 0; t < nr; ++t) {
    const LineMaps m = make_maps(d, &rng);
    const AnalysisResult r = analyze_maps(m, o);
    ASSERT_TRUE(r.summary.gradient_status.ok());
    const double pull = (r.summary.gradient_dex_per_kpc.value - d.grad) / r.summary.gradient_dex_per_kpc.err;
    sp += pull;
    sp2 += pull * pull;
  }
  const double mean = sp / nr, sd = std::sqrt(sp2 / nr - mean * mean);
  RecordProperty("pull_mean", std::to_string(mean));
  RecordProperty("pull_std", std::to_string(sd));
  std::printf("calibration-scatter pulls: mean %.3f std %.3f\n", mean, sd);
  EXPECT_NEAR(mean, 0.0, 0.15);
  EXPECT_GE(sd, 0.9);
  EXPECT_LE(sd, 1.1);
}

TEST(GradientChain, PullsAreUnitNormalFromFluxNoiseAlone) {
  // No calibration scatter (scatter option 0): the propagated flux errors alone are honest.
  Disk d;
  d.ha_rel_err = 0.04;
  d.nii_rel_err = 0.08;
  d.nx = 15;
  d.ny = 19;
  Rng rng(12);
  const int nr = 250;
  AnalysisOptions o = given_geometry(d);
  o.metallicity.calibration_scatter_dex = 0.0;
  for (auto model : {FitErrorModel::kAbsolute, FitErrorModel::kScaledByChi2}) {
    o.gradient_error_model = model;
    double sp = 0, sp2 = 0;
    for (int t = 0; t < nr; ++t) {
      const AnalysisResult r = analyze_maps(make_maps(d, &rng), o);
      ASSERT_TRUE(r.summary.gradient_status.ok());
      const double pull = (r.summary.gradient_dex_per_kpc.value - d.grad) / r.summary.gradient_dex_per_kpc.err;
      sp += pull;
      sp2 += pull * pull;
    }
    const double mean = sp / nr, sd = std::sqrt(sp2 / nr - mean * mean);
    std::printf("flux-noise pulls (%s): mean %.3f std %.3f\n",
                model == FitErrorModel::kAbsolute ? "absolute" : "chi2-scaled", mean, sd);
    EXPECT_NEAR(mean, 0.0, 0.15);
    EXPECT_GE(sd, 0.9);
    EXPECT_LE(sd, 1.1);
  }
}

TEST(GradientChain, TooFewStarFormingSpaxelsGivesStatus) {
  Disk d;
  d.nx = 4;
  d.ny = 4;  // 16 spaxels < 20
  const AnalysisResult r = analyze_maps(make_maps(d, nullptr), given_geometry(d));
  EXPECT_EQ(r.summary.gradient_status.code, StatusCode::kFailed);
  EXPECT_NE(r.summary.gradient_status.message.find("< 20"), std::string::npos);
  EXPECT_FALSE(r.summary.status.ok());
  EXPECT_TRUE(std::isnan(r.summary.gradient_dex_per_kpc.value));
}
