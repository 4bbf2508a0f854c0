#pragma once
// slitstep/fit: fit.json, the machine-readable result of `slitstep fit` (docs/formats.md
// "fit.json"). Builds a JsonValue; never prints, never writes files.
//
// Members: software, data, instrument, space, status ("converged", "degenerate",
// "not converged", "failed"), reason, notes, chi2, chi2_start, chi2_empty, ndof, n_used,
// n_model_evaluations, iterations, wall_s, params {NAME: {value, err, start, lower, upper,
// fixed, at_bound, crb}}, derived {v_over_sigma, gradient_dex_per_re: {value, err, note}},
// undetermined, covariance {names, matrix}, cramer_rao {status, reason, bounds {NAME: crb},
// undetermined}, start {sources, notes}, and with sampling a `sampler` object {status, reason,
// walkers, steps, burn_in, thin, seed, kept, acceptance_fraction, max_rhat, max_tau, min_ess,
// n_evaluations, wall_s, params {NAME: {median, p16, p84, mean, std, rhat, tau, ess}}}.
// When given (FitReportInput::cube_noise), a `cube_noise` object: the cube-space likelihood
// ("correlated" / "independent") and, when measured, the Monte Carlo summary (fit/cube_noise:
// realisations, seed, kappa_mean, kappa_median, kappa_min, kappa_max, kappa_stationary,
// var_ratio, kernel_dl0 5 x 5 rho(dx, dy) at dl = 0, wall_s).
// When the sampler ran on a coarse-sky surrogate (FitReportInput::surrogate), a `surrogate`
// object {render_pixel_arcsec, samples, thin, ess, max_weight, reliable, exact_evaluations,
// wall_s, notes, params {NAME: {median, p16, p84, mean, std, surrogate_median}}}; the sampler's
// median / p16 / p84 / mean / std are then the reweighted (exact-model) ones.
// Non-finite numbers are written as null (core/json); an undetermined parameter has err null and
// is listed in `undetermined`.
#include <optional>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "fit/forward.hpp"
#include "fit/reweight.hpp"
#include "fit/sampler.hpp"

namespace slitstep {

struct FitReportInput {
  const FitResult* fit = nullptr;          // required
  const FisherResult* fisher = nullptr;    // Cramer-Rao bounds at the solution (may be null)
  const SampleResult* sample = nullptr;    // posterior sampling (may be null)
  const SamplerOptions* sampler_options = nullptr;
  std::string data_path;
  std::string instrument;                  // "slitstep" | "ifu"
  std::string space;                       // "cube" | "exposures"
  double data_redshift = 0.0;              // of the data's wavelengths
  double model_redshift = 0.0;
  std::vector<std::string> start_sources;  // how each start value was found
  std::vector<std::string> notes;          // run-level remarks (start notes, skipped steps, ...)
  std::vector<std::pair<std::string, std::string>> products;  // name -> file
  std::optional<JsonValue> cube_noise;     // the cube-space likelihood object (see above), if any
  std::optional<JsonValue> surrogate;      // sampling through a surrogate (written as "surrogate")
  std::vector<std::string> lines;          // lines the model renders (written as "lines" if any)
};

JsonValue fit_report_json(const FitReportInput& in);

/// The "surrogate" object (see above) of a surrogate run (the SampleResult as the sampler
/// returned it) reweighted to the exact model; on failure {render_pixel_arcsec, status
/// "failed", reason}.
JsonValue surrogate_json(const ReweightResult& rw, const SampleResult& surrogate_run, double render_pixel_arcsec);

}  // namespace slitstep
