// Tests of fit/params: the GalaxyParameterization (names, mapping theta <-> GalaxyParams, bounds,
// priors, validate messages) and the derived quantities with linear error propagation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "core/cosmology.hpp"
#include "core/error.hpp"
#include "fit/params.hpp"

namespace slitstep {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InvalidOptions& e) {
    return e.what();
  }
  return "";
}

TEST(FitParams, DefaultListAndDefaults) {
  const auto& names = default_parameter_names();
  ASSERT_EQ(names.size(), 12u);
  for (const char* n : {"vc_kms", "rt_arcsec", "v0_kms", "sigma0_kms", "inclination_deg", "pa_deg", "center_x_arcsec",
                        "center_y_arcsec", "re_arcsec", "halpha_flux_cgs", "z0_12logoh", "gradient_dex_per_kpc"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  GalaxyParameterization par;
  par.validate();
  EXPECT_EQ(par.num_free(), 12u);
  const ParamSpec& inc = par.spec("inclination_deg");
  EXPECT_EQ(inc.lower, 5.0);
  EXPECT_EQ(inc.upper, 85.0);
  EXPECT_EQ(inc.value, 55.0);  // resolved default inclination
  EXPECT_GT(par.spec("halpha_flux_cgs").scale, 0.0);
  EXPECT_NEAR(par.spec("halpha_flux_cgs").value / par.spec("halpha_flux_cgs").scale, 1.0, 1e-12);  // O(1) internally
  for (const auto& s : par.specs()) {
    EXPECT_GT(s.scale, 0.0) << s.name;
    EXPECT_LE(std::abs(s.value / s.scale), 100.0) << s.name;  // internal coordinates are O(1)-ish
  }
}

TEST(FitParams, RoundTripThetaParams) {
  GalaxyParams g;
  g.vc_kms = 210.0;
  g.axis_ratio = 0.5;  // inclination given as b/a: the parameterization resolves it
  g.pa_deg = -20.0;
  GalaxyParameterization par(g);
  EXPECT_NEAR(par.spec("inclination_deg").value, 60.0, 1e-9);
  par.set_free({"vc_kms", "inclination_deg", "gradient_dex_per_kpc"});
  EXPECT_EQ(par.num_free(), 3u);
  const std::vector<double> th = {150.0, 40.0, -0.05};
  const GalaxyParams p = par.to_params(th);
  EXPECT_EQ(p.vc_kms, 150.0);
  ASSERT_TRUE(p.inclination_deg.has_value());
  EXPECT_EQ(*p.inclination_deg, 40.0);
  EXPECT_FALSE(p.axis_ratio.has_value());
  EXPECT_EQ(p.gradient_dex_per_kpc, -0.05);
  EXPECT_EQ(p.pa_deg, -20.0);  // fixed, from base
  EXPECT_NO_THROW(p.validate());
  EXPECT_EQ(par.from_params(p), th);
  // fixing with a value writes it
  par.fix("pa_deg", 12.0);
  EXPECT_EQ(par.to_params(th).pa_deg, 12.0);
}

TEST(FitParams, BoundsAndPriors) {
  GalaxyParameterization par;
  par.set_free({"vc_kms", "sigma0_kms"});
  par.spec("sigma0_kms").prior = Prior::gaussian(40.0, 10.0);
  const double in[2] = {180.0, 50.0};
  EXPECT_TRUE(par.in_bounds(in));
  EXPECT_NEAR(par.log_prior(in), -0.5, 1e-12);
  const double out[2] = {-5.0, 50.0};
  std::string why;
  EXPECT_FALSE(par.in_bounds(out, &why));
  EXPECT_NE(why.find("vc_kms"), std::string::npos) << why;
  EXPECT_EQ(par.log_prior(out), -std::numeric_limits<double>::infinity());
  const double nan[2] = {std::nan(""), 50.0};
  EXPECT_FALSE(par.in_bounds(nan, &why));
  EXPECT_NE(why.find("not finite"), std::string::npos) << why;
}

TEST(FitParams, ValidateNamesFieldValueRule) {
  GalaxyParameterization par;
  par.spec("inclination_deg").lower = -3.0;
  std::string m = message_of([&] { par.validate(); });
  EXPECT_NE(m.find("GalaxyParameterization.inclination_deg.lower = -3"), std::string::npos) << m;
  EXPECT_NE(m.find("[0, 90]"), std::string::npos) << m;

  GalaxyParameterization p2;
  p2.spec("vc_kms").value = 2000.0;
  m = message_of([&] { p2.validate(); });
  EXPECT_NE(m.find("GalaxyParameterization.vc_kms.value = 2000"), std::string::npos) << m;
  EXPECT_NO_THROW(p2.validate_structure());  // the fitter reports a bad start as a status

  GalaxyParameterization p3;
  p3.spec("sigma0_kms").prior = Prior::gaussian(40.0, 0.0);
  m = message_of([&] { p3.validate(); });
  EXPECT_NE(m.find("sigma0_kms.prior.sigma = 0"), std::string::npos) << m;

  GalaxyParameterization p4;
  p4.spec("re_arcsec").scale = 0.0;
  m = message_of([&] { p4.validate(); });
  EXPECT_NE(m.find("re_arcsec.scale = 0"), std::string::npos) << m;

  m = message_of([&] { GalaxyParameterization p5(GalaxyParams{}, {"not_a_field"}); });
  EXPECT_NE(m.find("unknown parameter 'not_a_field'"), std::string::npos) << m;
}

TEST(FitParams, DerivedQuantitiesLinearPropagation) {
  GalaxyParams g;
  g.vc_kms = 200.0;
  g.sigma0_kms = 50.0;
  g.gradient_dex_per_kpc = -0.04;
  g.re_arcsec = 0.4;
  GalaxyParameterization par(g);
  par.set_free({"vc_kms", "sigma0_kms", "gradient_dex_per_kpc", "re_arcsec"});
  const std::vector<double> th = par.start();
  Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(4, 4);
  cov(0, 0) = 10.0 * 10.0;
  cov(1, 1) = 5.0 * 5.0;
  cov(0, 1) = cov(1, 0) = 0.5 * 10.0 * 5.0;  // correlation 0.5
  // free order = specs() order: vc_kms, sigma0_kms, re_arcsec, gradient_dex_per_kpc
  ASSERT_EQ(par.free_names()[2], "re_arcsec");
  cov(2, 2) = 0.02 * 0.02;
  cov(3, 3) = 0.01 * 0.01;
  const double kpa = Cosmology().kpc_per_arcsec(g.redshift);
  const auto d = derived_quantities(par, th, cov, kpa);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].name, "v_over_sigma");
  EXPECT_NEAR(d[0].value, 4.0, 1e-12);
  // var = (1/s)^2 var_v + (v/s^2)^2 var_s - 2 (1/s)(v/s^2) cov
  const double gv = 1.0 / 50.0, gs = -200.0 / 2500.0;
  const double var = gv * gv * 100.0 + gs * gs * 25.0 + 2.0 * gv * gs * 25.0;
  EXPECT_NEAR(d[0].err, std::sqrt(var), 1e-12);
  EXPECT_EQ(d[1].name, "gradient_dex_per_re");
  EXPECT_NEAR(d[1].value, -0.04 * 0.4 * kpa, 1e-12);
  const double e2 = std::pow(0.4 * kpa * 0.01, 2) + std::pow(-0.04 * kpa * 0.02, 2);
  EXPECT_NEAR(d[1].err, std::sqrt(e2), 1e-12);
  // fixed inputs: no error, said so
  GalaxyParameterization fixed(g);
  fixed.set_free({"pa_deg"});
  const auto d2 = derived_quantities(fixed, fixed.start(), Eigen::MatrixXd::Identity(1, 1), kpa);
  EXPECT_EQ(d2[0].err, 0.0);
  EXPECT_FALSE(d2[0].note.empty());
}

}  // namespace
}  // namespace slitstep
