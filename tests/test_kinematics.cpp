// analysis/kinematics and analysis/geometry: arctan rotation-curve fit, sigma_0, v/sigma
// classes, dynamical mass; centre finder, light moments, de-projection.
#include "analysis/kinematics.hpp"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>

#include "analysis/geometry.hpp"
#include "core/rng.hpp"
#include "core/units.hpp"

using namespace slitstep;

namespace {

struct Truth {
  double v0 = 15.0, vc = 180.0, rt = 0.12;  // km/s, km/s, arcsec
  double pa = 37.0, incl = 60.0;
  double cx = 0.021, cy = -0.033;
  double kpa = 8.0;
  double sigma0 = 45.0;
};

double model_v(const Truth& t, double x, double y) {
  const double pa = t.pa / kDegPerRad, i = t.incl / kDegPerRad;
  const double dx = x - t.cx, dy = y - t.cy;
  const double a = -dx * std::sin(pa) + dy * std::cos(pa), b = (dx * std::cos(pa) + dy * std::sin(pa)) / std::cos(i);
  const double r = std::hypot(a, b);
  return t.v0 + (2 / kPi) * t.vc * std::sin(i) * std::atan(r / t.rt) * (r > 0 ? a / r : 0.0);
}

KinematicsInput make_input(const Truth& t, int nx = 23, int ny = 31, double pix = 0.08, Rng* rng = nullptr,
                           double verr = 5.0) {
  KinematicsInput in;
  const SpatialGrid g = SpatialGrid::centred(nx, ny, pix);
  for (int j = 0; j < ny; ++j) {
    for (int i = 0; i < nx; ++i) {
      const double x = g.x_arcsec(i), y = g.y_arcsec(j);
      in.x_arcsec.push_back(x);
      in.y_arcsec.push_back(y);
      in.velocity_kms.push_back(model_v(t, x, y) + (rng ? rng->normal(0, verr) : 0.0));
      in.velocity_err_kms.push_back(verr);
      // sigma: 100 km/s inside 3 kpc, sigma0 + small spread outside
      const double pa = t.pa / kDegPerRad;
      const double dx = x - t.cx, dy = y - t.cy;
      const double a = -dx * std::sin(pa) + dy * std::cos(pa);
      const double b = (dx * std::cos(pa) + dy * std::sin(pa)) / std::cos(t.incl / kDegPerRad);
      const double rk = std::hypot(a, b) * t.kpa;
      in.sigma_kms.push_back(rk > 3.0 ? t.sigma0 + 4.0 * std::sin(1.7 * i + 0.9 * j) : 100.0);
    }
  }
  in.geometry = {t.cx, t.cy, t.pa, t.incl, t.kpa};
  return in;
}

}  // namespace

TEST(Geometry, DiskCoordsFollowTheSimConvention) {
  DiskGeometry g{0.0, 0.0, 90.0, 60.0, 8.0};  // receding axis along -x
  DiskCoords c = disk_coords(g, -0.5, 0.0);
  EXPECT_NEAR(c.a_arcsec, 0.5, 1e-15);
  EXPECT_NEAR(c.cos_theta, 1.0, 1e-15);
  EXPECT_NEAR(c.r_kpc, 4.0, 1e-14);
  c = disk_coords(g, 0.0, 0.25);  // minor axis: de-projected by 1/cos 60 = 2
  EXPECT_NEAR(c.r_arcsec, 0.5, 1e-14);
  EXPECT_NEAR(c.cos_theta, 0.0, 1e-15);
  g.pa_deg = 0.0;
  EXPECT_NEAR(disk_coords(g, 0.0, 0.3).a_arcsec, 0.3, 1e-15);  // PA 0: receding toward +y
  EXPECT_NEAR(inclination_from_axis_ratio_deg(0.48), 61.31, 0.01);  // ID9960: b/a 0.48 -> 61 deg
  EXPECT_NEAR(inclination_from_axis_ratio_deg(0.5), 60.0, 1e-12);
  EXPECT_NEAR(inclination_from_axis_ratio_deg(0.5, 0.2), std::acos(std::sqrt((0.25 - 0.04) / 0.96)) * kDegPerRad, 1e-12);
  EXPECT_DOUBLE_EQ(inclination_from_axis_ratio_deg(0.1, 0.2), 90.0);
}

TEST(Geometry, PeakCentreOfAGaussianIsExactToSubSpaxel) {
  const SpatialGrid g = SpatialGrid::centred(25, 31, 0.08);
  const double cx = 0.0271, cy = -0.0533;
  std::vector<double> m(g.size());
  for (int j = 0; j < g.ny; ++j) {
    for (int i = 0; i < g.nx; ++i) {
      const double dx = g.x_arcsec(i) - cx, dy = g.y_arcsec(j) - cy;
      // rotated elliptical Gaussian
      const double u = 0.8 * dx + 0.6 * dy, v = -0.6 * dx + 0.8 * dy;
      m[static_cast<std::size_t>(j) * g.nx + i] = std::exp(-0.5 * (u * u / 0.04 + v * v / 0.01));
    }
  }
  CenterOptions o;
  o.smoothing_sigma_pix = 0.0;
  CenterResult c = find_peak_center(g, m, o);
  ASSERT_TRUE(c.status.ok()) << c.status.message;
  EXPECT_NEAR(c.x_arcsec, cx, 1e-10);
  EXPECT_NEAR(c.y_arcsec, cy, 1e-10);
  o.smoothing_sigma_pix = 1.0;  // the default light smoothing keeps it within 1% of a spaxel
  c = find_peak_center(g, m, o);
  EXPECT_NEAR(c.x_arcsec, cx, 0.0008);
  EXPECT_NEAR(c.y_arcsec, cy, 0.0008);
  // NaN-tolerant and edge-aware
  m[0] = std::nan("");
  EXPECT_TRUE(find_peak_center(g, m, o).status.ok());
  std::vector<double> empty(g.size(), std::nan(""));
  EXPECT_EQ(find_peak_center(g, empty, o).status.code, StatusCode::kInvalidInput);
  std::vector<double> edge(g.size(), 0.1);
  edge[3] = 5.0;  // peak on the first row
  o.smoothing_sigma_pix = 0.0;
  EXPECT_EQ(find_peak_center(g, edge, o).status.code, StatusCode::kOutOfRange);
}

TEST(Geometry, LightMomentsRecoverAxisRatioAndPa) {
  const SpatialGrid g = SpatialGrid::centred(61, 61, 0.04);
  const double pa = 25.0 / kDegPerRad, q = 0.5;
  std::vector<double> m(g.size());
  for (int j = 0; j < g.ny; ++j) {
    for (int i = 0; i < g.nx; ++i) {
      const double dx = g.x_arcsec(i), dy = g.y_arcsec(j);
      const double a = -dx * std::sin(pa) + dy * std::cos(pa), b = dx * std::cos(pa) + dy * std::sin(pa);
      m[static_cast<std::size_t>(j) * g.nx + i] = std::exp(-0.5 * (a * a + b * b / (q * q)) / 0.09);
    }
  }
  const MomentsResult r = light_moments(g, m, 0.0, 0.0, {});
  ASSERT_TRUE(r.status.ok());
  EXPECT_NEAR(r.axis_ratio, q, 0.01);
  EXPECT_NEAR(r.pa_deg, 25.0, 0.5);
}

TEST(Kinematics, ArctanFitRecoversNoiselessParametersFullField) {
  const Truth t;
  KinematicsOptions o;
  o.mode = RotationCurveMode::kFullField;
  const ArctanFit f = fit_arctan_rotation(make_input(t), o);
  ASSERT_TRUE(f.status.ok()) << f.status.message;
  EXPECT_NEAR(f.vc_kms.value / t.vc, 1.0, 1e-4);
  EXPECT_NEAR(f.rt_arcsec.value / t.rt, 1.0, 1e-4);
  EXPECT_NEAR(f.v0_kms.value / t.v0, 1.0, 1e-4);
  EXPECT_NEAR(f.rmse_kms, 0.0, 1e-6);
  std::printf("full field: vc %.8f rt %.8f v0 %.8f (%d it)\n", f.vc_kms.value, f.rt_arcsec.value, f.v0_kms.value,
              f.iterations);
}

TEST(Kinematics, ArctanFitRecoversNoiselessParametersMajorAxisSlit) {
  const Truth t;
  KinematicsOptions o;  // kMajorAxisSlit, 0.24" wide
  const ArctanFit f = fit_arctan_rotation(make_input(t), o);
  ASSERT_TRUE(f.status.ok()) << f.status.message;
  EXPECT_LT(f.n_points, 23 * 31 / 3);
  EXPECT_GT(f.n_points, 20);
  EXPECT_NEAR(f.vc_kms.value / t.vc, 1.0, 1e-4);
  EXPECT_NEAR(f.rt_arcsec.value / t.rt, 1.0, 1e-4);
  EXPECT_NEAR(f.v0_kms.value / t.v0, 1.0, 1e-4);
  EXPECT_NEAR(f.vc_obs_kms.value, t.vc * std::sin(t.incl / kDegPerRad), 1e-4 * t.vc);
}

TEST(Kinematics, FreePaAndFlippedPa) {
  const Truth t;
  KinematicsOptions o;
  o.fit_pa = true;
  KinematicsInput in = make_input(t);
  in.geometry.pa_deg = 0.0;  // ignored as a value: start from the velocity plane
  const ArctanFit f = fit_arctan_rotation(in, o);
  ASSERT_TRUE(f.status.ok()) << f.status.message;
  EXPECT_NEAR(f.pa_deg.value, t.pa, 1e-4);
  EXPECT_NEAR(f.vc_kms.value / t.vc, 1.0, 1e-4);
  // A catalogue PA pointing at the approaching side: v_c positive, PA + 180 reported.
  in = make_input(t);
  in.geometry.pa_deg = t.pa + 180.0;
  KinematicsOptions o2;
  const ArctanFit g = fit_arctan_rotation(in, o2);
  ASSERT_TRUE(g.status.ok());
  EXPECT_NEAR(g.vc_kms.value / t.vc, 1.0, 1e-4);
  EXPECT_NEAR(std::remainder(g.pa_deg.value - t.pa, 360.0), 0.0, 1e-9);
}

TEST(Kinematics, NoisyFitErrorsAreHonest) {
  Truth t;
  KinematicsOptions o;
  o.mode = RotationCurveMode::kFullField;
  o.error_model = FitErrorModel::kAbsolute;
  Rng rng(5);
  const int nr = 150;
  double sp = 0, sp2 = 0;
  for (int k = 0; k < nr; ++k) {
    const ArctanFit f = fit_arctan_rotation(make_input(t, 15, 19, 0.08, &rng, 15.0), o);
    ASSERT_TRUE(f.status.ok());
    const double p = (f.vc_kms.value - t.vc) / f.vc_kms.err;
    sp += p;
    sp2 += p * p;
  }
  const double mean = sp / nr, sd = std::sqrt(sp2 / nr - mean * mean);
  std::printf("v_c pulls: mean %.3f std %.3f\n", mean, sd);
  EXPECT_NEAR(mean, 0.0, 0.25);
  EXPECT_NEAR(sd, 1.0, 0.15);
}

TEST(Kinematics, Sigma0VOverSigmaAndDynamicalMass) {
  Truth t;
  KinematicsInput in = make_input(t);
  in.re_kpc = 6.0;
  KinematicsOptions o;
  KinematicsResult r = analyze_kinematics(in, o);
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  std::vector<double> outer;  // median beyond 3 kpc (the inner 100 km/s are ignored)
  for (std::size_t k = 0; k < in.sigma_kms.size(); ++k) {
    if (in.sigma_kms[k] < 99.0) outer.push_back(in.sigma_kms[k]);
  }
  std::sort(outer.begin(), outer.end());
  const double med = outer.size() % 2 ? outer[outer.size() / 2]
                                      : 0.5 * (outer[outer.size() / 2 - 1] + outer[outer.size() / 2]);
  EXPECT_EQ(r.n_sigma0, static_cast<int>(outer.size()));
  EXPECT_DOUBLE_EQ(r.sigma0_kms.value, med);
  EXPECT_NEAR(med, t.sigma0, 1.0);
  EXPECT_GT(r.sigma0_kms.err, 0.0);
  EXPECT_LT(r.sigma0_kms.err, 2.0);
  EXPECT_GT(r.n_sigma0, 100);
  EXPECT_NEAR(r.v_over_sigma.value, t.vc / med, 1e-3);
  EXPECT_NEAR(r.v_over_sigma.err, r.v_over_sigma.value * r.sigma0_kms.err / med, 1e-3);
  EXPECT_EQ(r.rotation_class, RotationClass::kRegular);
  const double vre = (2 / kPi) * t.vc * std::atan(6.0 / t.kpa / t.rt);
  EXPECT_NEAR(r.v_re_kms / vre, 1.0, 1e-4);
  EXPECT_NEAR(r.mdyn_msun / (vre * vre * 6.0 / 4.300917e-6), 1.0, 2e-4);
  // The paper's ID9960 order of magnitude: v = 250 km/s at R_e = 6 kpc -> ~1e11 Msun.
  EXPECT_NEAR(250.0 * 250.0 * 6.0 / kGravitationalConstant_kpc_kms2_msun, 8.72e10, 0.01e10);
  o.mdyn_pressure_support = true;
  KinematicsResult rp = analyze_kinematics(in, o);
  EXPECT_NEAR(rp.v_re_kms * rp.v_re_kms, vre * vre + 3.36 * med * med, 0.1);
  // standard error variant
  o.sigma0_error = Sigma0ErrorModel::kStandardError;
  rp = analyze_kinematics(in, o);
  EXPECT_GT(rp.sigma0_kms.err, 0.0);
  // major-axis curve: bins on both sides, antisymmetric about v0
  ASSERT_GE(r.major_axis_curve.size(), 4u);
  EXPECT_LT(r.major_axis_curve.front().median, t.v0);
  EXPECT_GT(r.major_axis_curve.back().median, t.v0);
  // too few spaxels beyond 3 kpc
  o = {};
  o.sigma0_min_radius_kpc = 100.0;
  r = analyze_kinematics(in, o);
  EXPECT_EQ(r.status.code, StatusCode::kFailed);
  EXPECT_NE(r.status.message.find("sigma_0"), std::string::npos);
  EXPECT_TRUE(std::isnan(r.v_over_sigma.value));
  EXPECT_EQ(r.rotation_class, RotationClass::kUndetermined);
}

TEST(Kinematics, MedianErrorModels) {
  const ValueError a = median_with_error({1, 2, 3, 4, 100}, Sigma0ErrorModel::kStandardError, 0, 1);
  EXPECT_DOUBLE_EQ(a.value, 3.0);
  double m = 22.0, s = 0;
  for (double x : {1.0, 2.0, 3.0, 4.0, 100.0}) s += (x - m) * (x - m);
  EXPECT_NEAR(a.err, std::sqrt(s / 4) / std::sqrt(5.0), 1e-12);
  const ValueError b = median_with_error({1, 2, 3, 4}, Sigma0ErrorModel::kBootstrap, 500, 3);
  EXPECT_DOUBLE_EQ(b.value, 2.5);
  EXPECT_GT(b.err, 0.0);
  const ValueError b2 = median_with_error({1, 2, 3, 4}, Sigma0ErrorModel::kBootstrap, 500, 3);
  EXPECT_EQ(b.err, b2.err);  // same seed, same number
  EXPECT_TRUE(std::isnan(median_with_error({}, Sigma0ErrorModel::kBootstrap, 10, 1).value));
}

TEST(Kinematics, VOverSigmaClassBoundaries) {
  KinematicsOptions o;
  EXPECT_EQ(classify_v_over_sigma(5.13, o), RotationClass::kRegular);    // ID9960
  EXPECT_EQ(classify_v_over_sigma(3.0, o), RotationClass::kRegular);     // >= 3
  EXPECT_EQ(classify_v_over_sigma(2.9999, o), RotationClass::kDisturbed);
  EXPECT_EQ(classify_v_over_sigma(1.91, o), RotationClass::kDisturbed);  // ID4391
  EXPECT_EQ(classify_v_over_sigma(1.0, o), RotationClass::kDisturbed);   // 1-3
  EXPECT_EQ(classify_v_over_sigma(0.9999, o), RotationClass::kDispersionDominated);
  EXPECT_EQ(classify_v_over_sigma(std::nan(""), o), RotationClass::kUndetermined);
  EXPECT_EQ(rotation_class_name(RotationClass::kRegular), "regular rotation");
  EXPECT_EQ(rotation_class_name(RotationClass::kDispersionDominated), "dispersion-dominated");
}

TEST(Kinematics, SolidBodyFieldIsReportedNotExtrapolated) {
  // v proportional to the major-axis coordinate: R_t runs to its bound, v_c is unconstrained.
  Truth t;
  KinematicsInput in = make_input(t);
  for (std::size_t k = 0; k < in.x_arcsec.size(); ++k) {
    const DiskCoords c = disk_coords(in.geometry, in.x_arcsec[k], in.y_arcsec[k]);
    in.velocity_kms[k] = t.v0 + 200.0 * c.a_arcsec;
  }
  const ArctanFit f = fit_arctan_rotation(in, {});
  EXPECT_EQ(f.status.code, StatusCode::kOutOfRange);
  EXPECT_NE(f.status.message.find("solid-body"), std::string::npos);
  EXPECT_LT(f.rmse_kms, 0.01);  // the data are still described (to the arctan curvature at the bound)
}

TEST(Kinematics, FailuresAndValidation) {
  KinematicsInput in;
  in.x_arcsec = {0, 1};
  in.y_arcsec = {0, 1};
  in.velocity_kms = {0, 1};
  in.geometry = {0, 0, 0, 45, 8};
  EXPECT_EQ(fit_arctan_rotation(in, {}).status.code, StatusCode::kFailed);
  in.velocity_kms = {0};
  EXPECT_EQ(fit_arctan_rotation(in, {}).status.code, StatusCode::kInvalidInput);
  KinematicsOptions o;
  o.regular_min_v_over_sigma = 0.5;
  try {
    o.validate();
    FAIL();
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("regular_min_v_over_sigma = 0.5"), std::string::npos);
  }
  o = {};
  o.slit_width_arcsec = 0.0;
  EXPECT_THROW(o.validate(), InvalidOptions);
  // face-on disk: v_c undefined
  Truth t;
  KinematicsInput f = make_input(t);
  f.geometry.inclination_deg = 0.0;
  EXPECT_EQ(fit_arctan_rotation(f, {}).status.code, StatusCode::kInvalidInput);
}
