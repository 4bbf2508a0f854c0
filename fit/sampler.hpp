#pragma once
// slitstep/fit: posterior sampling with the affine-invariant ensemble sampler of Goodman & Weare
// (2010), "stretch move", as popularised by emcee (docs/fit.md "Forward-model fitting").
//
// Move: the ensemble of W walkers (W even, >= 2 dim) is split in two halves; every walker k of
// one half draws a partner j from the other half and z from g(z) ∝ 1/sqrt(z) on [1/a, a],
// proposes y = x_j + z (x_k - x_j) and accepts with probability min(1, z^(dim-1) p(y)/p(x_k));
// the first half moves with the second fixed, then the second with the updated first. Within a
// half the walkers are independent, so they are evaluated in parallel (SamplerOptions::threads).
// Randomness: walker k at global step t draws from Rng(seed).substream(t * W + k) (core/rng.hpp),
// so the chains are bit-identical for any thread count, and a run resumed from
// SampleResult::final_positions with start_step = SampleResult::next_step continues exactly as
// an uninterrupted run would.
// Memory: only the thinned post-burn-in chain is stored (steps / thin x W x dim doubles) plus the
// log-probabilities; nothing grows with the burn-in.
// Diagnostics per parameter: mean, standard deviation, median and 16/84 percentiles of the pooled
// kept samples; split-R-hat (Gelman et al., BDA3 §11.4: each walker's kept chain split in two
// halves, R = sqrt(var+/W)); integrated autocorrelation time tau (the walkers' normalised
// autocorrelation functions averaged, summed with Sokal's adaptive window M >= c tau, c = 5),
// in steps (thin included); effective sample size ESS = W * steps / tau. Acceptance fraction per
// walker.
// Status: kOk when max R-hat < rhat_limit and the kept chain is longer than min_tau_multiple
// tau; kNotConverged otherwise (reason says which); kFailed when no walker has a finite
// log-probability at the start.
// Failure: SamplerOptions::validate() throws InvalidOptions; everything else in the status.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "core/error.hpp"
#include "fit/forward.hpp"

namespace slitstep {

struct SamplerOptions {
  int walkers = 32;            // even, >= 2 * dim
  int steps = 2000;            // steps after the burn-in (per walker)
  int burn_in = 500;           // steps discarded at the start
  int thin = 1;                // keep every thin-th step
  double a = 2.0;              // stretch scale (> 1)
  int threads = 0;             // walkers evaluated in parallel (0 = OpenMP default)
  std::uint64_t seed = 1;
  long start_step = 0;         // global index of the first step (resume: previous next_step)
  double rhat_limit = 1.05;
  double min_tau_multiple = 50.0;  // kept steps per tau below this: not converged
  double sokal_c = 5.0;        // Sokal window constant
  void validate(int dim) const;  // throws InvalidOptions naming field, value and rule
};

struct ParameterSummary {
  std::string name;
  double mean = 0.0, std = 0.0;
  double median = 0.0, p16 = 0.0, p84 = 0.0;
  double rhat = 0.0;           // split-R-hat over the walkers
  double tau = 0.0;            // integrated autocorrelation time, in steps
  double ess = 0.0;            // effective sample size
};

enum class SamplerStatus { kOk, kNotConverged, kFailed };

struct SampleResult {
  SamplerStatus status = SamplerStatus::kFailed;
  std::string reason;
  std::vector<std::string> notes;
  int dim = 0, walkers = 0;
  int kept = 0;                          // kept (thinned) steps per walker
  std::vector<double> chain;             // [kept][walker][dim]
  std::vector<double> log_prob;          // [kept][walker]
  std::vector<ParameterSummary> params;
  Eigen::VectorXd mean;                  // pooled sample mean
  Eigen::MatrixXd covariance;            // pooled sample covariance
  std::vector<double> acceptance;        // per walker, over burn-in + steps
  double acceptance_fraction = 0.0;      // mean over walkers
  double max_rhat = 0.0, max_tau = 0.0, min_ess = 0.0;
  std::vector<double> final_positions;   // [walker][dim] after the last step (resume)
  std::vector<double> final_log_prob;    // [walker]
  long next_step = 0;                    // start_step of a continuation
  long n_evaluations = 0;
  double wall_s = 0.0;
  double at(int step, int walker, int d) const {
    return chain[(static_cast<std::size_t>(step) * walkers + walker) * dim + d];
  }
};

/// log-density of a point x (dim values); `slot` in [0, threads) identifies the calling thread's
/// scratch. Return -inf outside the support. Must be thread-safe across different slots.
using LogDensity = std::function<double(const double* x, int slot)>;

/// Runs the ensemble from `initial` (walkers x dim, row-major by walker). `names` label the
/// parameters (may be empty).
SampleResult sample_ensemble(const LogDensity& log_prob, int dim, const std::vector<double>& initial,
                             const SamplerOptions& options, const std::vector<std::string>& names = {});

/// Posterior of a FitProblem: log prior (bounds + Gaussian priors, fit/params.hpp) + log
/// likelihood (-chi2/2 through the operator). Walkers start at centre + init_sigma * N(0, 1)
/// per parameter (drawn from substream 2^62 + walker, redrawn until inside the bounds; up to 1000
/// tries). centre/init_sigma: free parameters (e.g. the ML solution and a fraction of its errors).
SampleResult sample_posterior(const FitProblem& problem, const std::vector<double>& centre,
                              const std::vector<double>& init_sigma, const SamplerOptions& options);

/// Diagnostics on any chain stored as [steps][walkers][dim] (exposed for tests).
double split_rhat(const std::vector<double>& chain, int steps, int walkers, int dim, int d);
/// Integrated autocorrelation time in units of stored steps (Sokal window constant c).
double autocorrelation_time(const std::vector<double>& chain, int steps, int walkers, int dim, int d, double c = 5.0);

}  // namespace slitstep
