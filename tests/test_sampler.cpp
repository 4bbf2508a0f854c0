// Tests of fit/sampler: the affine-invariant ensemble sampler on a 5-D correlated Gaussian (mean
// and covariance within Monte-Carlo error, split-R-hat, tau, ESS), bit-identical chains for 1 and
// 2 threads, exact resume, and the posterior of a toy forward problem against the curvature
// errors of the maximum-likelihood fit. Numbers are printed as "[ info ]" lines.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include <Eigen/Dense>

#include "core/cosmology.hpp"
#include "core/rng.hpp"
#include "fit/forward.hpp"
#include "fit/sampler.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {
namespace {

struct Gauss5 {
  Eigen::VectorXd mu;
  Eigen::MatrixXd cov, prec;
  Gauss5() : mu(5), cov(5, 5) {
    mu << 1.0, -2.0, 0.5, 3.0, 0.0;
    const Eigen::VectorXd sd = (Eigen::VectorXd(5) << 1.0, 0.5, 2.0, 0.1, 1.5).finished();
    Eigen::MatrixXd R(5, 5);
    R << 1.0, 0.6, 0.3, 0.0, -0.2,  //
        0.6, 1.0, 0.5, 0.2, 0.0,    //
        0.3, 0.5, 1.0, 0.4, 0.1,    //
        0.0, 0.2, 0.4, 1.0, -0.5,   //
        -0.2, 0.0, 0.1, -0.5, 1.0;
    cov = sd.asDiagonal() * R * sd.asDiagonal();
    prec = cov.inverse();
  }
  double operator()(const double* x) const {
    Eigen::VectorXd d(5);
    for (int i = 0; i < 5; ++i) d[i] = x[i] - mu[i];
    return -0.5 * d.dot(prec * d);
  }
};

std::vector<double> initial_ball(int walkers, int dim, double centre, double width, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<double> v(static_cast<std::size_t>(walkers) * dim);
  for (double& x : v) x = centre + width * rng.normal();
  return v;
}

TEST(Sampler, CorrelatedGaussian5D) {
  const Gauss5 g;
  const LogDensity f = [&g](const double* x, int) { return g(x); };
  SamplerOptions o;
  o.walkers = 32;
  o.burn_in = 1000;
  o.steps = 6000;
  o.threads = 2;
  o.seed = 42;
  const auto init = initial_ball(o.walkers, 5, 0.0, 0.1, 7);
  const SampleResult r = sample_ensemble(f, 5, init, o, {"a", "b", "c", "d", "e"});
  ASSERT_EQ(r.status, SamplerStatus::kOk) << r.reason;
  std::printf("[ info ] 5-D Gaussian: %d walkers x %d steps, acceptance %.3f, max R-hat %.4f, max tau %.1f, min ESS %.0f, "
              "%.2f s\n", o.walkers, o.steps, r.acceptance_fraction, r.max_rhat, r.max_tau, r.min_ess, r.wall_s);
  EXPECT_LT(r.max_rhat, 1.05);
  EXPECT_GT(r.acceptance_fraction, 0.2);
  EXPECT_LT(r.acceptance_fraction, 0.8);
  double worst_mean = 0.0, worst_cov = 0.0;
  for (int a = 0; a < 5; ++a) {
    const double ess = r.params[static_cast<std::size_t>(a)].ess;
    const double mc = std::sqrt(g.cov(a, a) / ess);
    worst_mean = std::max(worst_mean, std::abs(r.mean[a] - g.mu[a]) / mc);
    EXPECT_LT(std::abs(r.mean[a] - g.mu[a]), 4.0 * mc) << "mean " << a;
    EXPECT_NEAR(r.params[static_cast<std::size_t>(a)].median, g.mu[a], 5.0 * mc * 1.25);
    // 16/84 percentiles of a Gaussian: mu -/+ sigma
    EXPECT_NEAR(r.params[static_cast<std::size_t>(a)].p84 - r.params[static_cast<std::size_t>(a)].p16,
                2.0 * std::sqrt(g.cov(a, a)), 0.1 * std::sqrt(g.cov(a, a)));
    for (int b = 0; b <= a; ++b) {
      const double essab = std::min(ess, r.params[static_cast<std::size_t>(b)].ess);
      const double mcc = std::sqrt((g.cov(a, a) * g.cov(b, b) + g.cov(a, b) * g.cov(a, b)) / essab);
      worst_cov = std::max(worst_cov, std::abs(r.covariance(a, b) - g.cov(a, b)) / mcc);
      EXPECT_LT(std::abs(r.covariance(a, b) - g.cov(a, b)), 5.0 * mcc) << "cov " << a << "," << b;
    }
  }
  std::printf("[ info ] worst |mean - mu| = %.2f MC errors, worst |cov - C| = %.2f MC errors\n", worst_mean, worst_cov);
  for (const auto& p : r.params)
    std::printf("[ info ]   %s: mean %+.4f median %+.4f [%+.4f, %+.4f] R-hat %.4f tau %.1f ESS %.0f\n", p.name.c_str(),
                p.mean, p.median, p.p16, p.p84, p.rhat, p.tau, p.ess);
  // memory: only the kept chain
  EXPECT_EQ(r.chain.size(), static_cast<std::size_t>(o.steps) * o.walkers * 5);
}

TEST(Sampler, BitIdenticalForOneAndTwoThreadsAndResumable) {
  const Gauss5 g;
  const LogDensity f = [&g](const double* x, int) { return g(x); };
  SamplerOptions o;
  o.walkers = 12;
  o.burn_in = 50;
  o.steps = 400;
  o.thin = 2;
  o.seed = 5;
  o.min_tau_multiple = 0.0;
  const auto init = initial_ball(o.walkers, 5, 0.0, 0.5, 8);
  o.threads = 1;
  const SampleResult a = sample_ensemble(f, 5, init, o);
  o.threads = 2;
  const SampleResult b = sample_ensemble(f, 5, init, o);
  ASSERT_EQ(a.chain.size(), b.chain.size());
  EXPECT_EQ(std::memcmp(a.chain.data(), b.chain.data(), a.chain.size() * sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(a.log_prob.data(), b.log_prob.data(), a.log_prob.size() * sizeof(double)), 0);
  EXPECT_EQ(a.acceptance, b.acceptance);
  // resume: 50 burn + 200 steps, then 200 more from the final state == one run of 50 + 400
  SamplerOptions o1 = o;
  o1.steps = 200;
  const SampleResult p1 = sample_ensemble(f, 5, init, o1);
  SamplerOptions o2 = o;
  o2.burn_in = 0;
  o2.steps = 200;
  o2.start_step = p1.next_step;
  const SampleResult p2 = sample_ensemble(f, 5, p1.final_positions, o2);
  ASSERT_EQ(p2.kept, 100);
  const std::size_t half = static_cast<std::size_t>(100) * o.walkers * 5;
  EXPECT_EQ(std::memcmp(p2.chain.data(), a.chain.data() + half, half * sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(p1.chain.data(), a.chain.data(), half * sizeof(double)), 0);
}

TEST(Sampler, DiagnosticsOnKnownChains) {
  // iid normal chains: R-hat ~ 1, tau ~ 1; one walker offset: R-hat >> 1
  const int steps = 2000, walkers = 8;
  std::vector<double> c(static_cast<std::size_t>(steps) * walkers);
  Rng rng(1);
  for (double& x : c) x = rng.normal();
  EXPECT_NEAR(split_rhat(c, steps, walkers, 1, 0), 1.0, 0.01);
  EXPECT_NEAR(autocorrelation_time(c, steps, walkers, 1, 0), 1.0, 0.15);
  // AR(1) with phi = 0.9: tau = (1 + phi) / (1 - phi) = 19
  for (int w = 0; w < walkers; ++w) {
    double x = 0.0;
    for (int t = 0; t < steps; ++t) {
      x = 0.9 * x + std::sqrt(1.0 - 0.81) * rng.normal();
      c[static_cast<std::size_t>(t) * walkers + w] = x;
    }
  }
  const double tau = autocorrelation_time(c, steps, walkers, 1, 0);
  std::printf("[ info ] AR(1) phi = 0.9: tau = %.2f (exact 19)\n", tau);
  EXPECT_NEAR(tau, 19.0, 3.0);
  for (int t = 0; t < steps; ++t) c[static_cast<std::size_t>(t) * walkers] += 5.0;
  EXPECT_GT(split_rhat(c, steps, walkers, 1, 0), 1.2);
}

TEST(Sampler, FailureAndOptions) {
  const LogDensity bad = [](const double*, int) { return -std::numeric_limits<double>::infinity(); };
  SamplerOptions o;
  o.walkers = 4;
  o.steps = 10;
  o.burn_in = 0;
  const SampleResult r = sample_ensemble(bad, 2, std::vector<double>(8, 0.0), o);
  EXPECT_EQ(r.status, SamplerStatus::kFailed);
  EXPECT_FALSE(r.reason.empty());
  SamplerOptions odd = o;
  odd.walkers = 5;
  try {
    odd.validate(2);
    FAIL() << "odd walkers accepted";
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("SamplerOptions.walkers = 5"), std::string::npos) << e.what();
  }
}

// Toy forward problem: a Gaussian blob + line whose amplitude, velocity and width are GalaxyParams
// fields (halpha_flux_cgs, v0_kms, sigma0_kms).
class ToyLineOperator final : public ModelOperator {
 public:
  std::size_t data_size() const override { return 60; }
  std::unique_ptr<Workspace> make_workspace() const override { return std::make_unique<Workspace>(); }
  Status evaluate(const GalaxyParams& p, double* out, Workspace&) const override {
    for (int k = 0; k < 60; ++k) {
      const double v = -600.0 + 20.0 * (k + 0.5);
      const double t = (v - p.v0_kms) / p.sigma0_kms;
      out[k] = p.halpha_flux_cgs / 1e-17 * std::exp(-0.5 * t * t);
    }
    return Status::Ok();
  }
};

TEST(Sampler, PosteriorOfToyProblemMatchesCurvature) {
  const ToyLineOperator op;
  GalaxyParams truth;
  truth.v0_kms = 30.0;
  truth.sigma0_kms = 60.0;
  truth.halpha_flux_cgs = 2e-17;
  FitProblem p;
  p.op = &op;
  p.data.resize(60);
  auto ws = op.make_workspace();
  ASSERT_TRUE(op.evaluate(truth, p.data.data(), *ws).ok());
  Rng rng(4);
  for (double& d : p.data) d += rng.normal(0.0, 0.1);
  p.inv_sigma.assign(60, 10.0);
  p.param = GalaxyParameterization(truth, {"v0_kms", "sigma0_kms", "halpha_flux_cgs"});
  const FitResult ml = fit_maximum_likelihood(p);
  ASSERT_EQ(ml.status, FitStatus::kConverged) << ml.reason;
  SamplerOptions o;
  o.walkers = 16;
  o.burn_in = 300;
  o.steps = 3000;
  o.threads = 2;
  std::vector<double> s0;
  for (const auto& n : ml.free_names) s0.push_back(0.1 * ml.err(n));
  const SampleResult r = sample_posterior(p, ml.theta, s0, o);
  EXPECT_EQ(r.status, SamplerStatus::kOk) << r.reason;
  for (std::size_t k = 0; k < ml.free_names.size(); ++k) {
    const auto& ps = r.params[k];
    const double e = ml.err(ml.free_names[k]);
    std::printf("[ info ] %-16s ML %.5g +- %.3g   posterior median %.5g [%.5g, %.5g] std %.3g  R-hat %.4f\n",
                ps.name.c_str(), ml.theta[k], e, ps.median, ps.p16, ps.p84, ps.std, ps.rhat);
    EXPECT_NEAR(ps.median, ml.theta[k], 0.2 * e) << ps.name;
    EXPECT_NEAR(ps.std / e, 1.0, 0.1) << ps.name;
  }
  EXPECT_EQ(r.n_evaluations, static_cast<long>(o.walkers) * (1 + o.burn_in + o.steps));
}

}  // namespace
}  // namespace slitstep
