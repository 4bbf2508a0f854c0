#pragma once
// slitstep/analysis: metallicity gradients — weighted straight-line fit of 12+log(O/H) against
// de-projected radius, its errors, the RMSE about the line and a binned radial profile (paper
// Sect. 3.2). Pure functions on arrays; never prints.
//
// Fit: weighted least squares of z_k = intercept + slope * r_k with weights w_k = 1/err_k^2
// over the points with r_min <= r <= r_max. The parameters are solved about the weighted mean
// radius (numerically stable) and transformed back. Errors:
//  * kAbsolute (default, the paper's): covariance (X^T W X)^-1 — the per-spaxel errors (which
//    include the 0.18 dex calibration scatter) are taken at face value; the paper notes its
//    gradient errors are "dominated by the scatter of 0.18 dex".
//  * kScaledByChi2: the same covariance multiplied by chi^2 / (n - 2) (as scipy curve_fit's
//    absolute_sigma=False): honest when the errors are right only up to a common factor.
//  * bootstrap (n_bootstrap > 0): also resample the points with replacement and report the
//    standard deviation of the refitted slope and intercept (seeded Rng; reported alongside).
// RMSE = sqrt(mean((z_k - line(r_k))^2)) over the fitted points, unweighted (paper Sect. 3.2).
// Failure: fewer than `min_points` points (paper: 20 star-forming spaxels), all radii equal, or
// non-finite input give a status with the reason; the numbers are then NaN.
#include <cstdint>
#include <limits>
#include <vector>

#include "core/error.hpp"

namespace slitstep {

struct ValueError {
  double value = std::numeric_limits<double>::quiet_NaN();
  double err = std::numeric_limits<double>::quiet_NaN();
};

enum class FitErrorModel { kAbsolute, kScaledByChi2 };

struct LineFitOptions {
  double r_min = 0.5;                                       // paper: 0.5 kpc (or 0.5 R_e)
  double r_max = std::numeric_limits<double>::infinity();   // paper: field edge (or 2.5 R_e)
  int min_points = 20;               // paper: >= 20 star-forming spaxels
  FitErrorModel error_model = FitErrorModel::kAbsolute;
  int n_bootstrap = 0;               // 0 = no bootstrap
  std::uint64_t seed = 1;            // bootstrap generator seed
  void validate() const;
};

struct LineFit {
  ValueError slope;       // dex per radius unit (covariance error, per error_model)
  ValueError intercept;   // dex at r = 0
  double cov_slope_intercept = std::numeric_limits<double>::quiet_NaN();
  double slope_err_bootstrap = std::numeric_limits<double>::quiet_NaN();
  double intercept_err_bootstrap = std::numeric_limits<double>::quiet_NaN();
  double rmse = std::numeric_limits<double>::quiet_NaN();  // unweighted, about the line
  double chi2 = std::numeric_limits<double>::quiet_NaN();
  int n_points = 0;
  double r_lo = std::numeric_limits<double>::quiet_NaN();  // radius range actually used
  double r_hi = std::numeric_limits<double>::quiet_NaN();
  Status status;
};

/// Weighted linear fit of z vs r with 1-sigma errors err (all three the same length).
LineFit fit_line(const std::vector<double>& r, const std::vector<double>& z, const std::vector<double>& err,
                 const LineFitOptions& o);

struct ProfileBin {
  double r_lo, r_hi;   // bin edges
  double r_mean;       // mean radius of the points in the bin
  double mean;         // mean value in the bin
  double std;          // sample standard deviation (NaN for n < 2)
  double err_mean;     // std / sqrt(n) (NaN for n < 2)
  double median;
  int n;
};

/// Bins of width `bin_width` from `r_start` upward; empty bins are omitted. Unweighted means
/// (the paper's "average values in radial bins").
std::vector<ProfileBin> binned_profile(const std::vector<double>& r, const std::vector<double>& v,
                                       double bin_width, double r_start = 0.0);

}  // namespace slitstep
