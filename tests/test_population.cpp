// analysis/population: gradient - stellar mass relation with bootstrap errors, Pearson r and p.
#include "analysis/population.hpp"

#include <cmath>
#include <gtest/gtest.h>

#include "core/rng.hpp"
#include "core/units.hpp"

using namespace slitstep;

namespace {

// The paper's Eq. 2 as a truth: slope -0.0140 per dex, intercept -0.0097 dex/kpc at log M* = 10.
constexpr double kSlope = -0.0140, kIntercept = -0.0097;

std::vector<GalaxyGradientRow> sample(Rng& rng, int n = 25, double scatter = 0.012) {
  std::vector<GalaxyGradientRow> rows;
  for (int k = 0; k < n; ++k) {
    GalaxyGradientRow r;
    r.id = std::to_string(k);
    r.id.insert(0, 1, 'G');
    r.log_mstar = 9.0 + 2.2 * rng.uniform();
    r.gradient = kSlope * (r.log_mstar - 10.0) + kIntercept + rng.normal(0, scatter);
    r.gradient_err = scatter;
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

TEST(Pearson, HandComputedExample) {
  // x = 1..5, y = (2, 4, 5, 4, 5): sxy = 6, sxx = 10, syy = 6 -> r = 6/sqrt(60).
  const PearsonResult p = pearson({1, 2, 3, 4, 5}, {2, 4, 5, 4, 5});
  EXPECT_EQ(p.n, 5);
  EXPECT_NEAR(p.r, 6.0 / std::sqrt(60.0), 1e-14);
  EXPECT_NEAR(p.t, p.r * std::sqrt(3.0 / (1.0 - 0.6)), 1e-12);
  // Student's t with 3 dof has a closed form: p = 1 - (2/pi) [u/(1+u^2) + atan u], u = t/sqrt 3.
  const double u = p.t / std::sqrt(3.0);
  EXPECT_NEAR(p.p_two_sided, 1.0 - (2.0 / kPi) * (u / (1 + u * u) + std::atan(u)), 1e-12);
  EXPECT_NEAR(p.p_two_sided, 0.124027, 1e-6);
}

TEST(Pearson, PaperValueAndEdgeCases) {
  // r = -0.36 with n = 25 (the paper's sample): t = -1.8506, p = 0.0771 (numerical integration of
  // the t density); the paper rounds to 0.07.
  EXPECT_NEAR(pearson_p_value(-0.36, 25), 0.077118, 2e-6);
  EXPECT_NEAR(pearson_p_value(0.36, 25), pearson_p_value(-0.36, 25), 1e-15);
  EXPECT_DOUBLE_EQ(pearson_p_value(0.0, 10), 1.0);
  EXPECT_DOUBLE_EQ(pearson_p_value(1.0, 10), 0.0);
  EXPECT_TRUE(std::isnan(pearson_p_value(0.5, 2)));
  EXPECT_TRUE(std::isnan(pearson_p_value(1.5, 10)));
  // perfect anti-correlation
  const PearsonResult q = pearson({1, 2, 3}, {3, 2, 1});
  EXPECT_NEAR(q.r, -1.0, 1e-15);
  EXPECT_DOUBLE_EQ(q.p_two_sided, 0.0);
  // constant y: undefined
  EXPECT_TRUE(std::isnan(pearson({1, 2, 3}, {1, 1, 1}).r));
  // NaN pairs are dropped
  EXPECT_EQ(pearson({1, 2, std::nan(""), 4}, {1, 3, 2, 5}).n, 3);
}

TEST(Population, RecoversInjectedRelationWithinItsErrors) {
  Rng rng(2024);
  const auto rows = sample(rng);
  PopulationOptions o;  // 1000 resamples, pivot 10
  const PopulationResult r = gradient_mass_relation(rows, o);
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  EXPECT_EQ(r.n_galaxies, 25);
  EXPECT_EQ(r.n_bootstrap_used, 1000);
  std::printf("slope %.4f +- %.4f, intercept %.4f +- %.4f, r %.3f p %.3f, rms %.4f rmse %.4f\n", r.slope.value,
              r.slope.err, r.intercept.value, r.intercept.err, r.pearson.r, r.pearson.p_two_sided, r.rms_gradient,
              r.rmse_about_relation);
  EXPECT_LT(std::abs(r.slope.value - kSlope), 2.5 * r.slope.err);
  EXPECT_LT(std::abs(r.intercept.value - kIntercept), 2.5 * r.intercept.err);
  EXPECT_LT(r.pearson.r, 0.0);
  EXPECT_NEAR(r.rmse_about_relation, 0.012, 0.005);
  // deterministic in the seed
  const PopulationResult r2 = gradient_mass_relation(rows, o);
  EXPECT_EQ(r.slope.err, r2.slope.err);
  o.seed = 99;
  EXPECT_NE(gradient_mass_relation(rows, o).slope.err, r.slope.err);
}

TEST(Population, BootstrapErrorMatchesRealisationScatter) {
  Rng rng(77);
  const int nr = 300;
  PopulationOptions o;
  o.n_bootstrap = 400;
  double s = 0, s2 = 0, e = 0, si = 0, si2 = 0, ei = 0;
  for (int t = 0; t < nr; ++t) {
    o.seed = 1000 + t;
    const PopulationResult r = gradient_mass_relation(sample(rng), o);
    s += r.slope.value;
    s2 += r.slope.value * r.slope.value;
    e += r.slope.err;
    si += r.intercept.value;
    si2 += r.intercept.value * r.intercept.value;
    ei += r.intercept.err;
  }
  const double sd = std::sqrt(s2 / nr - (s / nr) * (s / nr));
  const double sdi = std::sqrt(si2 / nr - (si / nr) * (si / nr));
  std::printf("slope: scatter %.5f mean bootstrap err %.5f; intercept: scatter %.5f err %.5f\n", sd, e / nr, sdi,
              ei / nr);
  EXPECT_NEAR(s / nr, kSlope, 3 * sd / std::sqrt(nr));
  EXPECT_NEAR(e / nr / sd, 1.0, 0.2);
  EXPECT_NEAR(ei / nr / sdi, 1.0, 0.2);
}

TEST(Population, ScatterStatisticsWeightedFitAndFailures) {
  std::vector<GalaxyGradientRow> rows{{"a", 9.0, -0.01, 0.01}, {"b", 10.0, 0.0, 0.01}, {"c", 11.0, 0.03, 0.01},
                                      {"d", 10.5, std::nan(""), 0.01}};
  PopulationOptions o;
  o.n_bootstrap = 50;
  PopulationResult r = gradient_mass_relation(rows, o);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.n_galaxies, 3);  // the NaN row is skipped
  EXPECT_NEAR(r.slope.value, 0.02, 1e-14);
  EXPECT_NEAR(r.intercept.value, 0.02 / 3.0 - 0.0, 1e-14);  // mean y at mean x = 10
  EXPECT_NEAR(r.rms_gradient, std::sqrt((1e-4 + 0 + 9e-4) / 3.0), 1e-15);
  // residuals: -0.01 - (0.00667 - 0.02) = 0.00333, 0 - 0.00667, 0.03 - 0.02667 -> rmse
  EXPECT_NEAR(r.rmse_about_relation, std::sqrt((std::pow(1.0 / 300, 2) * 2 + std::pow(2.0 / 300, 2)) / 3.0), 1e-14);
  // weighted: a galaxy with a tiny error pins the line
  rows[1].gradient_err = 1e-6;
  o.weighted = true;
  r = gradient_mass_relation(rows, o);
  EXPECT_NEAR(r.intercept.value, 0.0, 1e-6);
  // failures
  EXPECT_EQ(gradient_mass_relation({rows[0], rows[1]}, o).status.code, StatusCode::kFailed);
  std::vector<GalaxyGradientRow> same{{"a", 10, 1, 1}, {"b", 10, 2, 1}, {"c", 10, 3, 1}};
  EXPECT_EQ(gradient_mass_relation(same, {}).status.code, StatusCode::kFailed);
  PopulationOptions bad;
  bad.n_bootstrap = 1;
  try {
    bad.validate();
    FAIL();
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("n_bootstrap = 1"), std::string::npos);
  }
}
