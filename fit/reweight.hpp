#pragma once
// slitstep/fit: the posterior of an exact (expensive) model from a sampler run on a cheaper
// surrogate of it, by importance reweighting (docs/fit.md "Posterior through a surrogate").
//
// A long ensemble run (fit/sampler.hpp) on a surrogate problem q — e.g. the slit-stepping operator
// on a 0.04" sky (SlitstepOperatorOptions::render_pixel_arcsec), ~3x cheaper per evaluation than
// the simulator's 0.02" sky — explores the posterior; reweight_posterior() then evaluates the
// EXACT problem p only on about independent samples of that run (the kept chain thinned by its
// integrated autocorrelation time, at most max_samples of them) and weights each by
// w = p(x) / q(x) = exp(log posterior_exact - log posterior_surrogate) (self-normalised importance
// sampling; e.g. Robert & Casella 2004, ch. 3.3). The weighted summaries are those of the exact
// posterior, whatever the surrogate's bias, as long as the surrogate covers it: the effective
// sample size ESS = (sum w)^2 / sum w^2 says how well (reported; `reliable` needs
// ESS >= min_ess and ESS >= min_ess_fraction x samples).
// Requirements: both problems have the same free parameters (names, order) and priors — the
// surrogate run's log-probabilities are log prior + log likelihood of the surrogate problem, as
// sample_posterior() stores them.
// Threads: the exact evaluations run in parallel over `threads` workspaces (one thread each);
// the result does not depend on the thread count.
// Failure: ReweightOptions::validate() throws InvalidOptions; everything else is in `status`
// (different parameters, an empty chain, no sample with a finite exact posterior).
#include <string>
#include <vector>

#include <Eigen/Core>

#include "core/error.hpp"
#include "fit/forward.hpp"
#include "fit/sampler.hpp"

namespace slitstep {

struct ReweightOptions {
  int max_samples = 2000;          // exact-model evaluations at most (but always one whole step
                                   // of the ensemble), >= 10
  int thin = 0;                    // kept steps between reweighted samples; 0 = ceil(max tau)
  int threads = 0;                 // parallel exact evaluations (0 = OpenMP default)
  double min_ess = 100.0;          // `reliable` needs ESS >= this ...
  double min_ess_fraction = 0.1;   // ... and ESS >= this x samples
  void validate() const;           // throws InvalidOptions naming field, value and rule
};

struct WeightedSummary {
  std::string name;
  double mean = 0.0, std = 0.0;
  double median = 0.0, p16 = 0.0, p84 = 0.0;
};

struct ReweightResult {
  Status status;                       // not ok: why nothing could be reweighted
  std::vector<std::string> notes;
  int dim = 0;
  int thin = 0;                        // kept steps between samples (as used)
  int n_samples = 0;                   // reweighted samples (exact evaluations)
  int n_zero_weight = 0;               // samples whose exact posterior is -inf / not finite
  std::vector<double> samples;         // [n_samples][dim]
  std::vector<double> log_weight;      // [n_samples], log p - log q (unnormalised; -inf = 0)
  std::vector<double> weight;          // [n_samples], normalised to sum 1
  double ess = 0.0;                    // (sum w)^2 / sum w^2
  double max_weight = 0.0;             // largest normalised weight
  bool reliable = false;               // ESS above both limits of the options
  std::vector<WeightedSummary> params;
  Eigen::VectorXd mean;                // weighted mean
  Eigen::MatrixXd covariance;          // weighted covariance
  long n_evaluations = 0;              // exact-model evaluations
  double wall_s = 0.0;
};

/// Reweights a sampler run on a surrogate problem to the exact problem (see the header comment).
ReweightResult reweight_posterior(const SampleResult& surrogate_run, const FitProblem& exact,
                                  const ReweightOptions& options = {});

}  // namespace slitstep
