#pragma once
// slitstep/analysis: population statistics of metallicity gradients (paper Sect. 4.1, Eq. 2):
// the linear gradient - stellar mass relation
//   gradient = slope * (log M* - pivot) + intercept        (pivot = 10)
// with bootstrap errors, Pearson r and its two-sided p value, and the scatter of the slopes.
// Pure functions; never prints.
//
// Fit: ordinary least squares (unweighted, default; the paper does not say it weighted) or
// inverse-variance weighted with the per-galaxy gradient errors (`weighted`). The quoted values
// are the fit to the full sample; their errors are the standard deviations of the slope and
// intercept over n_bootstrap resamples of the galaxies with replacement (paper: 1000), drawn from
// a seeded slitstep::Rng (same seed -> same numbers). Resamples in which every mass is equal are
// skipped (counted in n_bootstrap_used).
// Pearson r of (log M*, gradient); p from Student's t with n - 2 degrees of freedom,
// t = r sqrt((n - 2) / (1 - r^2)), p = 2 (1 - T_{n-2}(|t|)) (Boost.Math students_t, headers
// only). Paper: r = -0.36, p = 0.07 for n = 25 (t distribution gives 0.077).
// Scatter: rms_gradient = sqrt(mean g^2) (the paper's "RMS of the slopes", 0.02 dex/kpc),
// std_gradient (sample standard deviation) and rmse_about_relation = sqrt(mean residual^2)
// (the paper's "RMSE of 0.01 dex/kpc for the slopes concerning this correlation").
#include <cstdint>
#include <string>
#include <vector>

#include "analysis/gradient.hpp"

namespace slitstep {

struct GalaxyGradientRow {
  std::string id;
  double log_mstar = 0.0;     // log10(M*/Msun)
  double gradient = 0.0;      // dex/kpc (or dex/R_e: the relation is unit-agnostic)
  double gradient_err = 0.0;  // 1 sigma (used only when weighted)
};

struct PopulationOptions {
  double pivot_log_mstar = 10.0;  // paper: intercept at log M* = 10
  int n_bootstrap = 1000;         // paper: 1000 resamples
  std::uint64_t seed = 1;
  bool weighted = false;          // inverse-variance weights from gradient_err
  void validate() const;
};

struct PearsonResult {
  double r = std::numeric_limits<double>::quiet_NaN();
  double t = std::numeric_limits<double>::quiet_NaN();
  double p_two_sided = std::numeric_limits<double>::quiet_NaN();
  int n = 0;
};

/// Pearson correlation coefficient and its two-sided p value (t distribution, n - 2 dof).
PearsonResult pearson(const std::vector<double>& x, const std::vector<double>& y);
/// Two-sided p value of a Pearson r for n pairs (n >= 3); |r| = 1 gives 0.
double pearson_p_value(double r, int n);

struct PopulationResult {
  ValueError slope;       // dex/kpc per dex in M* (err: bootstrap std)
  ValueError intercept;   // dex/kpc at the pivot mass (err: bootstrap std)
  double slope_bootstrap_median = std::numeric_limits<double>::quiet_NaN();
  double intercept_bootstrap_median = std::numeric_limits<double>::quiet_NaN();
  int n_bootstrap_used = 0;
  PearsonResult pearson;
  double rms_gradient = std::numeric_limits<double>::quiet_NaN();
  double std_gradient = std::numeric_limits<double>::quiet_NaN();
  double rmse_about_relation = std::numeric_limits<double>::quiet_NaN();
  int n_galaxies = 0;
  Status status;
};

/// Rows with a non-finite mass or gradient (or error, when weighted) are skipped.
PopulationResult gradient_mass_relation(const std::vector<GalaxyGradientRow>& rows, const PopulationOptions& o);

}  // namespace slitstep
