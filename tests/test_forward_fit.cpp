// Tests of fit/forward: maximum likelihood through a ModelOperator on cheap analytic toy
// operators — recovery from a 20%-perturbed start, pulls over noise realisations, covariance =
// inverse Fisher matrix for a linear model, determinism over threads, the failure statuses
// (bad start, face-on degeneracy, no signal, no data), and the Jacobian options (forward /
// central differences, analytic columns of proportional parameters, reduced residuals for Ceres)
// against the plain central-difference fit. Numbers are printed as "[ info ]" lines.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "core/cosmology.hpp"
#include "core/rng.hpp"
#include "fit/forward.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {
namespace {

// A velocity cube of the Halpha line of a GalaxyModel: n x n spaxels of `pix` arcsec, nl channels
// of dv km/s centred on 0; value = F * disk_profile(R) * pix^2 * channel fraction of a Gaussian
// line at v_los(x, y) with sigma(R). Point-sampled in space (smooth in every parameter).
class ToyDiskOperator final : public ModelOperator {
 public:
  ToyDiskOperator(int n = 15, double pix = 0.1, int nl = 40, double dv = 25.0) : n_(n), nl_(nl), pix_(pix), dv_(dv) {}
  std::size_t data_size() const override { return static_cast<std::size_t>(n_) * n_ * nl_; }
  std::unique_ptr<Workspace> make_workspace() const override { return std::make_unique<Workspace>(); }
  Status evaluate(const GalaxyParams& p, double* out, Workspace&) const override {
    try {
      const GalaxyModel m(p, Cosmology());
      const double v_lo = -0.5 * nl_ * dv_;
      for (int j = 0; j < n_; ++j)
        for (int i = 0; i < n_; ++i) {
          const double x = (i - 0.5 * (n_ - 1)) * pix_, y = (j - 0.5 * (n_ - 1)) * pix_;
          const auto dc = m.disk_coords(x, y);
          const double I = p.halpha_flux_cgs * m.disk_profile(dc.r) * pix_ * pix_;
          const double v = m.vlos_kms(x, y), s = m.sigma_kms(dc.r) * std::sqrt(2.0);
          double* o = out + (static_cast<std::size_t>(j) * n_ + i) * nl_;
          double prev = std::erf((v_lo - v) / s);
          for (int k = 0; k < nl_; ++k) {
            const double next = std::erf((v_lo + (k + 1) * dv_ - v) / s);
            o[k] = I * 0.5 * (next - prev);
            prev = next;
          }
        }
    } catch (const InvalidOptions& e) {
      return Status::Error(StatusCode::kInvalidInput, e.what());
    }
    return Status::Ok();
  }

 private:
  int n_, nl_;
  double pix_, dv_;
};

// The toy disk declaring what it is: exactly proportional to halpha_flux_cgs.
class ProportionalToyDiskOperator final : public ModelOperator {
 public:
  std::size_t data_size() const override { return toy_.data_size(); }
  std::unique_ptr<Workspace> make_workspace() const override { return toy_.make_workspace(); }
  Status evaluate(const GalaxyParams& p, double* out, Workspace& ws) const override { return toy_.evaluate(p, out, ws); }
  bool proportional_to(const std::string& name, const GalaxyParams&) const override { return name == "halpha_flux_cgs"; }

 private:
  ToyDiskOperator toy_;
};

// A linear model: out = B * c(params) with c = (v0/50, flux/1e-17, z0, center_x) and a fixed
// random basis B.
class LinearOperator final : public ModelOperator {
 public:
  explicit LinearOperator(std::size_t n) : n_(n), B_(n * 4) {
    Rng rng(99);
    for (double& b : B_) b = rng.normal();
  }
  std::size_t data_size() const override { return n_; }
  std::unique_ptr<Workspace> make_workspace() const override { return std::make_unique<Workspace>(); }
  static std::array<double, 4> coeff(const GalaxyParams& p) {
    return {p.v0_kms / 50.0, p.halpha_flux_cgs / 1e-17, p.z0_12logoh, p.center_x_arcsec};
  }
  Status evaluate(const GalaxyParams& p, double* out, Workspace&) const override {
    const auto c = coeff(p);
    for (std::size_t k = 0; k < n_; ++k)
      out[k] = B_[4 * k] * c[0] + B_[4 * k + 1] * c[1] + B_[4 * k + 2] * c[2] + B_[4 * k + 3] * c[3];
    return Status::Ok();
  }
  const std::vector<double>& basis() const { return B_; }

 private:
  std::size_t n_;
  std::vector<double> B_;
};

GalaxyParams toy_truth() {
  GalaxyParams g;
  g.inclination_deg = 55.0;
  g.pa_deg = 30.0;
  g.vc_kms = 180.0;
  g.sigma0_kms = 45.0;
  g.rt_arcsec = 0.1;
  g.re_arcsec = 0.35;
  g.halpha_flux_cgs = 2e-17;
  g.ew_halpha_rest_A = 0.0;
  return g;
}

const std::vector<std::string> kToyFree = {"vc_kms", "sigma0_kms", "inclination_deg", "pa_deg", "halpha_flux_cgs"};

// Problem with noise sigma = frac * F (per voxel), data = model(truth) + noise(seed) (seed 0: none).
FitProblem toy_problem(const ModelOperator& op, const GalaxyParams& truth, double sigma, std::uint64_t seed,
                       const std::vector<std::string>& free, double perturb) {
  FitProblem p;
  p.op = &op;
  p.data.resize(op.data_size());
  auto ws = op.make_workspace();
  EXPECT_TRUE(op.evaluate(truth, p.data.data(), *ws).ok());
  if (seed) {
    Rng rng(seed);
    for (double& d : p.data) d += rng.normal(0.0, sigma);
  }
  p.inv_sigma.assign(p.data.size(), 1.0 / sigma);
  p.param = GalaxyParameterization(truth);
  p.param.set_free(free);
  int k = 0;
  for (auto& s : p.param.specs()) {
    if (s.fixed) continue;
    s.value *= (k++ % 2 == 0) ? 1.0 + perturb : 1.0 - perturb;
  }
  return p;
}

TEST(ForwardFit, RecoversTruthFromPerturbedStartNoiseless) {
  const ToyDiskOperator op;
  const GalaxyParams truth = toy_truth();
  const double sigma = 0.0005 * truth.halpha_flux_cgs;
  const FitProblem p = toy_problem(op, truth, sigma, 0, kToyFree, 0.2);
  FitOptions o;
  o.threads = 2;
  const FitResult r = fit_maximum_likelihood(p, o);
  ASSERT_EQ(r.status, FitStatus::kConverged) << r.reason;
  for (const auto& n : kToyFree) {
    const double t = get_galaxy_param(truth, n);
    EXPECT_NEAR(r.value(n), t, 1e-6 * std::max(1.0, std::abs(t)) + 1e-6 * r.err(n)) << n;
    EXPECT_GT(r.err(n), 0.0) << n;
    EXPECT_TRUE(std::isfinite(r.err(n))) << n;
  }
  EXPECT_LT(r.chi2, 1e-8);
  std::printf("[ info ] noiseless toy fit: %d iterations, %ld model evaluations, %.3f s, chi2 %.2e\n", r.iterations,
              r.n_model_evaluations, r.wall_s, r.chi2);
  ASSERT_EQ(r.derived.size(), 2u);
  EXPECT_NEAR(r.derived[0].value, 4.0, 1e-6);
  EXPECT_GT(r.derived[0].err, 0.0);
}

TEST(ForwardFit, DeterministicForOneAndTwoThreads) {
  const ToyDiskOperator op;
  const GalaxyParams truth = toy_truth();
  const double sigma = 0.0005 * truth.halpha_flux_cgs;
  const FitProblem p = toy_problem(op, truth, sigma, 5, kToyFree, 0.2);
  FitOptions o1, o2;
  o1.threads = 1;
  o2.threads = 2;
  const FitResult a = fit_maximum_likelihood(p, o1), b = fit_maximum_likelihood(p, o2);
  ASSERT_EQ(a.theta.size(), b.theta.size());
  EXPECT_EQ(std::memcmp(a.theta.data(), b.theta.data(), a.theta.size() * sizeof(double)), 0);
  EXPECT_EQ(a.chi2, b.chi2);
  EXPECT_EQ(a.n_model_evaluations, b.n_model_evaluations);
  std::printf("[ info ] 1 thread %.3f s, 2 threads %.3f s (%ld evaluations)\n", a.wall_s, b.wall_s, a.n_model_evaluations);
}

TEST(ForwardFit, PullsOverNoiseRealisations) {
  const ToyDiskOperator op;
  const GalaxyParams truth = toy_truth();
  const double sigma = 0.0005 * truth.halpha_flux_cgs;
  const int nreal = 120;
  const std::size_t np = kToyFree.size();
  std::vector<double> sum(np, 0.0), sum2(np, 0.0);
  int n_ok = 0;
  FitOptions o;
  o.threads = 2;
  double wall = 0.0;
  for (int r = 0; r < nreal; ++r) {
    const FitProblem p = toy_problem(op, truth, sigma, 1000 + static_cast<std::uint64_t>(r), kToyFree, 0.2);
    const FitResult f = fit_maximum_likelihood(p, o);
    wall += f.wall_s;
    ASSERT_EQ(f.status, FitStatus::kConverged) << "realisation " << r << ": " << f.reason;
    ++n_ok;
    for (std::size_t k = 0; k < np; ++k) {
      const double pull = (f.value(kToyFree[k]) - get_galaxy_param(truth, kToyFree[k])) / f.err(kToyFree[k]);
      sum[k] += pull;
      sum2[k] += pull * pull;
    }
  }
  for (std::size_t k = 0; k < np; ++k) {
    const double mean = sum[k] / n_ok;
    const double sd = std::sqrt(std::max(0.0, sum2[k] / n_ok - mean * mean) * n_ok / (n_ok - 1.0));
    std::printf("[ info ] pulls %-16s mean %+.3f  std %.3f  (%d realisations)\n", kToyFree[k].c_str(), mean, sd, n_ok);
    EXPECT_LT(std::abs(mean), 0.2) << kToyFree[k];
    EXPECT_GT(sd, 0.8) << kToyFree[k];
    EXPECT_LT(sd, 1.2) << kToyFree[k];
  }
  std::printf("[ info ] %d fits in %.2f s\n", n_ok, wall);
}

TEST(ForwardFit, LinearModelCovarianceEqualsInverseFisher) {
  const LinearOperator op(400);
  GalaxyParams truth;
  truth.v0_kms = 20.0;
  truth.halpha_flux_cgs = 3e-17;
  truth.z0_12logoh = 8.4;
  truth.center_x_arcsec = 0.1;
  FitProblem p;
  p.op = &op;
  p.data.resize(op.data_size());
  auto ws = op.make_workspace();
  ASSERT_TRUE(op.evaluate(truth, p.data.data(), *ws).ok());
  Rng rng(3);
  p.inv_sigma.resize(p.data.size());
  for (std::size_t k = 0; k < p.data.size(); ++k) {
    const double s = 0.5 + rng.uniform();
    p.inv_sigma[k] = 1.0 / s;
    p.data[k] += rng.normal(0.0, s);
  }
  p.inv_sigma[7] = 0.0;  // a masked value
  p.param = GalaxyParameterization(truth, {"v0_kms", "halpha_flux_cgs", "z0_12logoh", "center_x_arcsec"});
  p.param.spec("v0_kms").value = 0.0;
  p.param.spec("halpha_flux_cgs").value = 2e-17;
  p.param.spec("z0_12logoh").value = 8.0;
  p.param.spec("center_x_arcsec").value = 0.0;
  const FitResult r = fit_maximum_likelihood(p);
  ASSERT_EQ(r.status, FitStatus::kConverged) << r.reason;
  const FisherResult f = fisher_matrix(p, truth);
  ASSERT_TRUE(f.status.ok()) << f.status.message;
  // exact: (B^T W B)^-1 mapped to physical units by the coefficient scales
  Eigen::MatrixXd A = Eigen::MatrixXd::Zero(4, 4);
  for (std::size_t k = 0; k < p.data.size(); ++k) {
    Eigen::Vector4d b(op.basis()[4 * k], op.basis()[4 * k + 1], op.basis()[4 * k + 2], op.basis()[4 * k + 3]);
    A += p.inv_sigma[k] * p.inv_sigma[k] * b * b.transpose();
  }
  const Eigen::Vector4d dc(1.0 / 50.0, 1.0 / 1e-17, 1.0, 1.0);
  const Eigen::MatrixXd F = dc.asDiagonal() * A * dc.asDiagonal();
  const Eigen::MatrixXd C = F.inverse();
  double max_fit_vs_fisher = 0.0, max_fisher_vs_exact = 0.0;
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) {
      const double norm = std::sqrt(C(a, a) * C(b, b));
      max_fit_vs_fisher = std::max(max_fit_vs_fisher, std::abs(r.covariance(a, b) - f.covariance(a, b)) / norm);
      max_fisher_vs_exact = std::max(max_fisher_vs_exact, std::abs(f.covariance(a, b) - C(a, b)) / norm);
    }
  std::printf("[ info ] linear model: |cov_fit - F^-1| / sigma sigma = %.2e, |F^-1 - exact| = %.2e\n",
              max_fit_vs_fisher, max_fisher_vs_exact);
  EXPECT_LT(max_fit_vs_fisher, 1e-9);
  EXPECT_LT(max_fisher_vs_exact, 1e-9);
  for (int a = 0; a < 4; ++a) EXPECT_NEAR(f.crb[static_cast<std::size_t>(a)], std::sqrt(C(a, a)), 1e-9 * std::sqrt(C(a, a)));
}

TEST(ForwardFit, JacobianSchemesAndAnalyticProportionalColumn) {
  const ProportionalToyDiskOperator op;
  const GalaxyParams truth = toy_truth();
  const double sigma = 0.0005 * truth.halpha_flux_cgs;
  FitProblem p = toy_problem(op, truth, sigma, 21, kToyFree, 0.1);
  p.param.spec("halpha_flux_cgs").prior = Prior::gaussian(2e-17, 1e-18);  // a prior row too
  p.param.spec("sigma0_kms").prior = Prior::gaussian(45.0, 5.0);
  const std::vector<double> theta = p.param.start();
  const std::size_t n = theta.size();
  ProblemEvaluator ev(p, 2);
  ASSERT_EQ(ev.proportional_parameters(), std::vector<int>{4});
  const std::size_t m = ev.num_residuals();
  std::vector<double> jc(m * n), jl(m * n), jf(m * n), r(m);
  long e0 = ev.evaluations();
  ASSERT_TRUE(ev.jacobian(theta.data(), 1e-3, jc.data()).ok());  // central, no analytic column, row-major
  const long n_central = ev.evaluations() - e0;
  e0 = ev.evaluations();
  ASSERT_TRUE(ev.jacobian(theta.data(), 1e-3, FiniteDifferences::kCentral, true, jl.data(), r.data(), false).ok());
  const long n_central_lin = ev.evaluations() - e0;  // only the centre: the other points are reused
  e0 = ev.evaluations();
  std::vector<double> theta2 = theta;
  theta2[0] *= 1.01;  // a new point: nothing to reuse
  ASSERT_TRUE(ev.jacobian(theta2.data(), 1e-3, FiniteDifferences::kForward, true, jf.data(), r.data(), false).ok());
  const long n_forward_lin = ev.evaluations() - e0;
  EXPECT_EQ(n_central, 2 * static_cast<long>(n));
  EXPECT_EQ(n_central_lin, 1);
  EXPECT_EQ(n_forward_lin, static_cast<long>(n));  // n - 1 points + the centre
  double dflux = 0.0, nflux = 0.0, dother = 0.0, nother = 0.0;
  for (std::size_t q = 0; q < m; ++q)
    for (std::size_t i = 0; i < n; ++i) {
      const double a = jc[q * n + i], b = jl[q * n + i];
      (i == 4 ? dflux : dother) = std::max(i == 4 ? dflux : dother, std::abs(a - b));
      (i == 4 ? nflux : nother) = std::max(i == 4 ? nflux : nother, std::abs(a));
    }
  std::printf("[ info ] analytic flux column vs central differences: max |diff| / max |column| = %.2e; other "
              "columns identical: %.1e\n",
              dflux / nflux, dother / nother);
  EXPECT_LT(dflux / nflux, 1e-8);
  EXPECT_EQ(dother, 0.0);
  // Forward differences at theta2 vs central ones there: O(step) relative agreement.
  std::vector<double> jc2(m * n);
  ASSERT_TRUE(ev.jacobian(theta2.data(), 1e-3, FiniteDifferences::kCentral, true, jc2.data(), nullptr, false).ok());
  for (std::size_t i = 0; i < n; ++i) {
    double d = 0.0, c = 0.0;
    for (std::size_t q = 0; q < m; ++q) d += std::pow(jf[q * n + i] - jc2[q * n + i], 2), c += std::pow(jc2[q * n + i], 2);
    std::printf("[ info ]   %-16s |forward - central| / |central| = %.2e\n", kToyFree[i].c_str(), std::sqrt(d / c));
    EXPECT_LT(std::sqrt(d / c), 5e-3) << kToyFree[i];
  }
  // Column-major layout = the transpose.
  std::vector<double> jcm(m * n);
  ASSERT_TRUE(ev.jacobian(theta2.data(), 1e-3, FiniteDifferences::kCentral, true, jcm.data(), nullptr, false, true).ok());
  for (std::size_t q = 0; q < m; ++q)
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(jcm[i * m + q], jc2[q * n + i]);
}

TEST(ForwardFit, FastJacobianOptionsGiveThePlainCentralDifferenceFit) {
  const ProportionalToyDiskOperator op;
  const GalaxyParams truth = toy_truth();
  const double sigma = 0.0005 * truth.halpha_flux_cgs;
  FitOptions plain, fast;
  plain.threads = fast.threads = 2;
  plain.fd_iterations = FiniteDifferences::kCentral;
  plain.linear_columns = false;
  plain.reduce_residuals = false;
  long ev_plain = 0, ev_fast = 0;
  double worst_value = 0.0, worst_err = 0.0;
  for (std::uint64_t seed : {31u, 32u, 33u}) {
    const FitProblem p = toy_problem(op, truth, sigma, seed, kToyFree, 0.2);
    const FitResult a = fit_maximum_likelihood(p, plain), b = fit_maximum_likelihood(p, fast);
    ASSERT_EQ(a.status, FitStatus::kConverged) << a.reason;
    ASSERT_EQ(b.status, FitStatus::kConverged) << b.reason;
    ev_plain += a.n_model_evaluations;
    ev_fast += b.n_model_evaluations;
    for (const auto& nm : kToyFree) {
      worst_value = std::max(worst_value, std::abs(a.value(nm) - b.value(nm)) / a.err(nm));
      worst_err = std::max(worst_err, std::abs(a.err(nm) / b.err(nm) - 1.0));
    }
    EXPECT_NEAR(a.chi2, b.chi2, 1e-6 * a.chi2);
  }
  std::printf("[ info ] fast vs plain fits (3 noisy toy cubes): max |value difference| %.1e sigma, max relative error "
              "difference %.1e; evaluations %ld vs %ld\n",
              worst_value, worst_err, ev_fast, ev_plain);
  // Both stop where Ceres' tolerances say: the solutions agree far inside the statistical error.
  EXPECT_LT(worst_value, 0.01);
  EXPECT_LT(worst_err, 1e-4);
  EXPECT_LT(ev_fast, 0.6 * ev_plain);
}

TEST(ForwardFit, BadStartGivesReason) {
  const ToyDiskOperator op(9, 0.1, 20, 50.0);
  const GalaxyParams truth = toy_truth();
  FitProblem p = toy_problem(op, truth, 1e-20, 0, kToyFree, 0.0);
  p.param.spec("inclination_deg").value = 95.0;
  FitResult r = fit_maximum_likelihood(p);
  EXPECT_EQ(r.status, FitStatus::kFailed);
  EXPECT_NE(r.reason.find("bad start"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("inclination_deg = 95"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("[5, 85]"), std::string::npos) << r.reason;
  for (const auto& fp : r.params) EXPECT_FALSE(std::isnan(fp.value) || std::isnan(fp.err)) << fp.name;

  p.param.spec("inclination_deg").value = 55.0;
  p.param.spec("vc_kms").value = std::nan("");
  r = fit_maximum_likelihood(p);
  EXPECT_EQ(r.status, FitStatus::kFailed);
  EXPECT_NE(r.reason.find("vc_kms"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("not finite"), std::string::npos) << r.reason;

  // all masked
  p.param.spec("vc_kms").value = 180.0;
  std::fill(p.inv_sigma.begin(), p.inv_sigma.end(), 0.0);
  r = fit_maximum_likelihood(p);
  EXPECT_EQ(r.status, FitStatus::kFailed);
  EXPECT_NE(r.reason.find("no data"), std::string::npos) << r.reason;
  std::printf("[ info ] bad start: '%s'\n", r.reason.c_str());
}

TEST(ForwardFit, FaceOnDiskIsDegenerate) {
  const ToyDiskOperator op;
  GalaxyParams truth = toy_truth();
  truth.inclination_deg = 0.0;
  const double sigma = 0.0005 * truth.halpha_flux_cgs;
  FitProblem p = toy_problem(op, truth, sigma, 11, {"vc_kms", "pa_deg", "sigma0_kms", "halpha_flux_cgs"}, 0.2);
  p.param.spec("inclination_deg").lower = 0.0;
  p.param.fix("inclination_deg", 0.0);
  FitOptions o;
  o.threads = 2;
  const FitResult r = fit_maximum_likelihood(p, o);
  std::printf("[ info ] face-on: %s: %s\n", fit_status_name(r.status), r.reason.c_str());
  EXPECT_EQ(r.status, FitStatus::kDegenerate);
  EXPECT_NE(r.reason.find("pa_deg"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("vc_kms"), std::string::npos) << r.reason;
  EXPECT_TRUE(std::isinf(r.err("pa_deg")));
  EXPECT_TRUE(std::isinf(r.err("vc_kms")));
  EXPECT_TRUE(std::isfinite(r.err("sigma0_kms")));
  EXPECT_TRUE(std::isfinite(r.err("halpha_flux_cgs")));
  EXPECT_NEAR(r.value("sigma0_kms"), 45.0, 5.0 * r.err("sigma0_kms"));
  for (const auto& fp : r.params) EXPECT_FALSE(std::isnan(fp.value) || std::isnan(fp.err)) << fp.name;
  // The Fisher matrix at the face-on truth says the same.
  const FisherResult f = fisher_matrix(p, truth);
  EXPECT_FALSE(f.status.ok());
  EXPECT_NE(f.status.message.find("pa_deg"), std::string::npos) << f.status.message;
}

TEST(ForwardFit, NoSignalGivesReason) {
  const ToyDiskOperator op;
  const GalaxyParams truth = toy_truth();
  const double sigma = 0.0005 * truth.halpha_flux_cgs;
  FitProblem p = toy_problem(op, truth, sigma, 0, kToyFree, 0.2);
  Rng rng(17);
  for (double& d : p.data) d = rng.normal(0.0, sigma);  // noise only
  FitOptions o;
  o.threads = 2;
  const FitResult r = fit_maximum_likelihood(p, o);
  std::printf("[ info ] no signal: %s: %s\n", fit_status_name(r.status), r.reason.c_str());
  EXPECT_EQ(r.status, FitStatus::kFailed);
  EXPECT_NE(r.reason.find("no signal"), std::string::npos) << r.reason;
  for (const auto& fp : r.params) EXPECT_FALSE(std::isnan(fp.value) || std::isnan(fp.err)) << fp.name;
}

}  // namespace
}  // namespace slitstep
