#pragma once
// slitstep/validation: injection-recovery campaigns (DESIGN.md §7; docs/validation.md).
//
// run_injection_campaign(truth_config, options) repeats, for realisations i = 0 .. n-1:
//   1. simulate the truth with noise (sim/simulate.hpp), seed = Rng(options.seed).substream(i)'s
//      first draw; the simulation renders on the forward operator's render options (the same
//      fixed line windows, so the modelled detector columns carry the simulated lines; the
//      config's continuum windows are kept for the per-spaxel path);
//   2. fit the free parameters with the forward fitter (fit/forward.hpp, fit/slitstep_operator.hpp;
//      exposure space by default — cube-space errors are ~0.55x too small, docs/fit.md) from a
//      start perturbed by +-start_perturbation (sign per parameter from the same substream; a
//      parameter whose truth is 0 moves by start_perturbation x its scale); record value, error
//      and pull (fit - truth) / err per free parameter;
//   3. optionally (per_spaxel) run the per-spaxel path of the paper on the same reconstructed
//      cube: fit_cube (fit/line_fit.hpp) + analyze_maps (analysis/pipeline.hpp) with the TRUE PA
//      and inclination given (the paper used catalogue values) and R_e given; record its
//      gradient (dex/kpc), v_c and sigma_0 with their errors.
// The Cramer-Rao bounds come once from fisher_matrix() at the truth (same operator, the noise of
// realisation 0's ERR/DQ; the bounds depend on the data only through the inverse sigma).
// Summary per free parameter over the converged realisations: mean pull, pull std, bias
// (mean fit - truth), scatter (std of the fits), mean err, CRB, scatter / CRB; per-spaxel bias and
// scatter of gradient, v_c, sigma_0 side by side with the forward fit's.
// Determinism: a realisation depends only on (truth_config, options, i) — every stage runs on one
// thread inside a realisation, realisations run in parallel on `threads` std::threads — so the
// results are bit-identical for any thread count and order.
// Failure: a realisation that fails (a fit status other than kConverged, a simulation error, an
// exception) is recorded with its status and reason and left out of the statistics; never fatal.
// Only invalid options throw (InvalidOptions), and a resume CSV that does not belong to this
// campaign (InputError naming the file).
// Resume: with csv_path set, every finished realisation is written to the CSV (the whole table,
// atomically, core/table_io.hpp, after each realisation); on restart rows already present
// (matched by index and seed) are read back and skipped.
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "fit/forward.hpp"
#include "fit/slitstep_operator.hpp"
#include "sim/simulate.hpp"

namespace slitstep {

struct CampaignOptions {
  int n_realisations = 50;
  std::uint64_t seed = 1;
  int threads = 0;  // realisations in parallel (0 = std::thread::hardware_concurrency)
  // Free parameters of the forward fit (fittable names); the rest fixed at the truth.
  std::vector<std::string> free_parameters = {"vc_kms", "sigma0_kms", "inclination_deg", "pa_deg",
                                              "gradient_dex_per_kpc"};
  double start_perturbation = 0.2;  // relative start offset, in (0, 1)
  SlitstepOperatorOptions op;       // space (default here: exposure), PSF options, ...
  FitOptions fit;                   // threads is forced to 1 inside a realisation
  bool per_spaxel = true;           // also run fit_cube + analyze_maps on the reconstructed cube
  std::string csv_path;             // resume file; empty = none
  CampaignOptions() { op.space = SlitstepOperatorOptions::Space::kExposure; }
  void validate() const;            // throws InvalidOptions naming field, value, rule
};

/// One realisation.
struct RealisationResult {
  int index = 0;
  std::uint64_t seed = 0;             // simulation seed
  FitStatus status = FitStatus::kFailed;
  std::string reason;                 // fit reason (or the simulation error / exception)
  std::vector<double> value, err, pull, start;  // per free parameter (CampaignResult::names)
  double chi2 = 0.0;
  long ndof = 0;
  int iterations = 0;
  long evaluations = 0;
  double simulate_s = 0.0, fit_s = 0.0, spaxel_s = 0.0;
  // Per-spaxel path (NaN when not run / failed).
  bool spaxel_ran = false;
  std::string spaxel_status;          // "ok" or the analysis' first failure
  double sp_gradient = 0.0, sp_gradient_err = 0.0;  // dex/kpc
  double sp_vc = 0.0, sp_vc_err = 0.0;              // km/s
  double sp_sigma0 = 0.0, sp_sigma0_err = 0.0;      // km/s
  bool resumed = false;               // read back from the CSV
  bool ok() const { return status == FitStatus::kConverged; }
};

struct ParameterSummary {
  std::string name;
  double truth = 0.0;
  int n = 0;                          // converged realisations
  double mean_pull = 0.0, pull_std = 0.0;
  double bias = 0.0;                  // mean(fit) - truth
  double bias_err = 0.0;              // scatter / sqrt(n)
  double scatter = 0.0;               // std of the fitted values (n - 1)
  double mean_err = 0.0;              // mean of the curvature errors
  double crb = 0.0;                   // Cramer-Rao bound at the truth
  double scatter_over_crb = 0.0;
};

/// Per-spaxel path statistics of one quantity over the realisations that measured it (finite value
/// with a finite error below max(|value|, |truth|)).
struct SpaxelSummary {
  std::string name;                   // gradient_dex_per_kpc, vc_kms, sigma0_kms
  double truth = 0.0;
  int n = 0;
  double bias = 0.0, bias_err = 0.0, scatter = 0.0, mean_err = 0.0;
};

struct CampaignResult {
  std::vector<std::string> names;     // free parameters
  std::vector<double> truth;          // their true values
  GalaxyParams galaxy;                // the true galaxy
  std::vector<RealisationResult> realisations;  // by index
  int n_converged = 0, n_failed = 0, n_resumed = 0;
  FisherResult fisher;                // at the truth
  std::vector<ParameterSummary> params;
  std::vector<SpaxelSummary> spaxel;  // empty without per_spaxel
  double wall_s = 0.0;
  std::size_t model_values = 0, used_values = 0;  // of realisation 0's problem
};

/// Runs the campaign (see the header comment). Throws only InvalidOptions (options / config) and
/// InputError (a resume CSV from another campaign).
CampaignResult run_injection_campaign(const SimulationConfig& truth_config, const CampaignOptions& options);

/// Statistics of the given realisations (used by run_injection_campaign; exposed for tests).
void summarise_campaign(CampaignResult& result);

/// Human-readable table (pulls, CRB ratio, per-spaxel side by side), one line per row.
std::string format_campaign_report(const CampaignResult& result);

}  // namespace slitstep
