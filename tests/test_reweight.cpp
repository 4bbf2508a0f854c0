// Tests of fit/reweight: the exact posterior from a sampler run on a biased surrogate, on a toy
// line problem (a Gaussian line of amplitude F, velocity v0 and width sigma0 on 60 channels).
// The surrogate's velocity axis is off by `shift_kms` (a systematic model error, like the coarse
// sky of the slit-stepping operator), so its posterior of v0 is displaced by about shift_kms.
// Reweighting that run to the exact model must give the exact posterior: compared with a direct
// long run on the exact model, within Monte Carlo errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "core/rng.hpp"
#include "fit/forward.hpp"
#include "fit/reweight.hpp"
#include "fit/sampler.hpp"

namespace slitstep {
namespace {

class ShiftedLineOperator final : public ModelOperator {
 public:
  explicit ShiftedLineOperator(double shift_kms) : shift_(shift_kms) {}
  std::size_t data_size() const override { return 60; }
  std::unique_ptr<Workspace> make_workspace() const override { return std::make_unique<Workspace>(); }
  Status evaluate(const GalaxyParams& p, double* out, Workspace&) const override {
    for (int k = 0; k < 60; ++k) {
      const double v = -600.0 + 20.0 * (k + 0.5) + shift_;
      const double t = (v - p.v0_kms) / p.sigma0_kms;
      out[k] = p.halpha_flux_cgs / 1e-17 * std::exp(-0.5 * t * t);
    }
    return Status::Ok();
  }

 private:
  double shift_;
};

struct ToySetup {
  ShiftedLineOperator exact_op{0.0}, surrogate_op{-2.0};
  FitProblem exact, surrogate;
  FitResult ml;
};

void make(ToySetup& s) {
  GalaxyParams truth;
  truth.v0_kms = 30.0;
  truth.sigma0_kms = 60.0;
  truth.halpha_flux_cgs = 2e-17;
  s.exact.op = &s.exact_op;
  s.exact.data.resize(60);
  auto ws = s.exact_op.make_workspace();
  ASSERT_TRUE(s.exact_op.evaluate(truth, s.exact.data.data(), *ws).ok());
  Rng rng(9);
  for (double& d : s.exact.data) d += rng.normal(0.0, 0.1);
  s.exact.inv_sigma.assign(60, 10.0);
  s.exact.param = GalaxyParameterization(truth, {"v0_kms", "sigma0_kms", "halpha_flux_cgs"});
  s.surrogate = s.exact;
  s.surrogate.op = &s.surrogate_op;
  s.ml = fit_maximum_likelihood(s.exact);
  ASSERT_EQ(s.ml.status, FitStatus::kConverged) << s.ml.reason;
}

SampleResult run(const FitProblem& p, const FitResult& ml, int steps, std::uint64_t seed) {
  SamplerOptions o;
  o.walkers = 16;
  o.burn_in = 300;
  o.steps = steps;
  o.threads = 2;
  o.seed = seed;
  std::vector<double> s0;
  for (const auto& n : ml.free_names) s0.push_back(0.1 * ml.err(n));
  return sample_posterior(p, ml.theta, s0, o);
}

TEST(Reweight, SurrogateRunReweightedToTheExactPosterior) {
  ToySetup s;
  make(s);
  const SampleResult direct = run(s.exact, s.ml, 3000, 3);
  const SampleResult sur = run(s.surrogate, s.ml, 3000, 4);
  ASSERT_EQ(direct.status, SamplerStatus::kOk) << direct.reason;
  ASSERT_EQ(sur.status, SamplerStatus::kOk) << sur.reason;
  ReweightOptions ro;
  ro.threads = 2;
  const ReweightResult rw = reweight_posterior(sur, s.exact, ro);
  ASSERT_TRUE(rw.status.ok()) << rw.status.message;
  std::printf("[ info ] %d samples (thin %d), ESS %.0f, max weight %.4f, %ld exact evaluations\n", rw.n_samples, rw.thin,
              rw.ess, rw.max_weight, rw.n_evaluations);
  EXPECT_TRUE(rw.reliable);
  EXPECT_EQ(rw.n_evaluations, rw.n_samples);
  EXPECT_LE(rw.n_samples, ro.max_samples);
  for (int d = 0; d < rw.dim; ++d) {
    const auto& e = direct.params[static_cast<std::size_t>(d)];
    const auto& q = sur.params[static_cast<std::size_t>(d)];
    const auto& r = rw.params[static_cast<std::size_t>(d)];
    // Monte Carlo error of the reweighted mean ~ std / sqrt(ESS); of the direct one std / sqrt(ESS_direct)
    const double mc = e.std * std::sqrt(1.0 / rw.ess + 1.0 / std::max(1.0, e.ess));
    std::printf("[ info ] %-16s exact %.5g +- %.3g | surrogate %.5g +- %.3g | reweighted %.5g +- %.3g  (MC err %.2g)\n",
                r.name.c_str(), e.mean, e.std, q.mean, q.std, r.mean, r.std, mc);
    EXPECT_NEAR(r.mean, e.mean, 4.0 * mc) << r.name;
    EXPECT_NEAR(r.std / e.std, 1.0, 0.15) << r.name;
    EXPECT_LE(r.p16, r.median);
    EXPECT_LE(r.median, r.p84);
  }
  // The surrogate alone is biased in v0 by many Monte Carlo errors (what reweighting corrects).
  const double mc_v0 = direct.params[0].std * std::sqrt(1.0 / sur.params[0].ess + 1.0 / direct.params[0].ess);
  EXPECT_GT(std::abs(sur.params[0].mean - direct.params[0].mean), 4.0 * mc_v0);
}

TEST(Reweight, RefusesMismatchAndReportsFailure) {
  ToySetup s;
  make(s);
  const SampleResult sur = run(s.surrogate, s.ml, 200, 5);
  FitProblem other = s.exact;
  other.param = GalaxyParameterization(other.param.base(), {"v0_kms", "sigma0_kms"});
  const ReweightResult bad = reweight_posterior(sur, other);
  EXPECT_FALSE(bad.status.ok());
  EXPECT_NE(bad.status.message.find("parameters"), std::string::npos) << bad.status.message;
  SampleResult empty = sur;
  empty.kept = 0;
  empty.chain.clear();
  EXPECT_FALSE(reweight_posterior(empty, s.exact).status.ok());
  ReweightOptions ro;
  ro.max_samples = 3;
  EXPECT_THROW(ro.validate(), InvalidOptions);
  // a surrogate that misses the exact posterior entirely: weights collapse, flagged unreliable
  ShiftedLineOperator far(-200.0);
  FitProblem far_p = s.surrogate;
  far_p.op = &far;
  const FitResult far_ml = fit_maximum_likelihood(far_p);
  ASSERT_EQ(far_ml.status, FitStatus::kConverged);
  const SampleResult far_run = run(far_p, far_ml, 400, 6);
  const ReweightResult fr = reweight_posterior(far_run, s.exact);
  if (fr.status.ok()) {
    EXPECT_FALSE(fr.reliable);
    EXPECT_FALSE(fr.notes.empty());
  }
}

}  // namespace
}  // namespace slitstep
