#pragma once
// slitstep/fit: the noise correlation the cube reconstruction introduces, measured by Monte Carlo
// through the SAME reconstruct code, and the cube-space likelihood correction derived from it
// (DESIGN.md §5.2 "optionally its correlated-noise structure"; docs/fit.md "Cube-space likelihood
// and correlated noise").
//
// Why: the reconstruction (drizzle drop on a fine along-slit grid, median of dithers, resampling
// of the stepped columns onto 0.08" spaxels) spreads one detector pixel over several spaxels, so
// neighbouring voxels of a reconstructed cube are correlated. A cube-space fit that uses each
// voxel's ERR as if the voxels were independent underestimates its parameter errors.
//
// measure_cube_noise(op, options):
//  1. observes a BLANK sky with the operator's instrument (full frame, one pointing at a time, no
//     PSF), takes each exposure's expected electrons (instruments/observe expected_electrons:
//     background + dark, read noise) and keeps the operator's detector columns (compact
//     exposures, as the operator's own evaluations use);
//  2. for realisation k = 0..K-1 draws the detector noise with sim/noise apply_noise (the
//     config's NoiseModel, Rng(seed).substream(k)) and reconstructs the compact exposures with the
//     config's ReconstructOptions (the operator's reconstruct call), giving a pure-noise cube on
//     the operator's cube grid whose layout is the cube-space Selection's layout;
//  3. accumulates z = SCI / ERR (voxels that are finite, have ERR > 0 and no kDqDoNotUse) into
//     CubeNoiseEstimator: for every offset d = (dx, dy, dl) in the box |dx|, |dy| <= radius_spatial,
//     |dl| <= radius_spectral the sums of z(v) z(v + d), per spaxel (pooled over channels and
//     realisations) and pooled over the whole cube (the stationary kernel). Spectral neighbours
//     count only where the detector columns are adjacent (the operator's columns may have gaps).
// The noise has zero mean by construction, so no mean is subtracted: rho(d) = <z(v) z(v+d)>.
// rho(0) = <z^2> (the "variance ratio": 1 when ERR is right).
// Likelihood correction ("variance inflation", as MaNGA/CALIFA-style fitters do): per spaxel
//     kappa = sum over the used offsets d of <z(v) z(v+d)>   (the row sum of the z covariance)
//     sigma_eff = sigma * sqrt(kappa)
// For a parameter whose estimate is a weighted sum of voxels with weights smooth over the
// correlation length, Var(estimate) = sum_ab w_a w_b C_ab ~ kappa sum_a w_a^2 sigma_a^2, which is
// what the inflated independent likelihood gives. "Used offsets": d = 0 and every d whose
// stationary |rho| (averaged with -d) exceeds max(min_rho, 5 / sqrt(pairs)); offsets with no
// measurable correlation only add estimation noise to the per-spaxel sums. kappa is floored at
// kappa_floor. Source Poisson noise is not simulated (a blank sky): the correlation is a property
// of the geometry and the per-dither weights, not of the level.
// apply_cube_noise() divides a cube-space Selection's inv_sigma by sqrt(kappa) of its spaxel
// (spaxels the Monte Carlo did not cover take the median kappa).
// Two further uses of the same measurement: WhitenedCubeOperator (generalised least squares with
// the measured banded covariance) and sandwich_errors() (robust errors of an independent-voxel
// fit); see their comments. Measured performance of all three: docs/fit.md.
// Randomness: realisation k draws from Rng(seed).substream(k) (and apply_noise's per-pointing
// substreams below it); every stage is bit-identical for any thread count and the estimator
// adds in a fixed order, so the result depends only on (config, columns, options).
// Failure: CubeNoiseOptions::validate() throws InvalidOptions; everything else (an operator in
// exposure space, a reconstruction that fails, no usable voxel) is returned in the Status.
// Never prints.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "core/cube.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "fit/forward.hpp"
#include "fit/slitstep_operator.hpp"

namespace slitstep {

struct CubeNoiseOptions {
  int realisations = 8;              // K pure-noise exposure sets, [1, 10000]
  std::uint64_t seed = 20240607;     // master seed; realisation k uses Rng(seed).substream(k)
  int radius_spatial = 2;            // kernel half-size in spaxels (x and y), [0, 6]
  int radius_spectral = 2;           // kernel half-size in channels, [0, 6]
  double min_rho = 0.01;             // smallest stationary |rho| an offset needs to enter kappa, [0, 1)
  double kappa_floor = 0.25;         // per-spaxel kappa is at least this, (0, 1]
  int threads = 0;                   // OpenMP threads for noise, reconstruct, estimator (0 = default)
  void validate() const;             // throws InvalidOptions naming field, value and rule
};

struct CubeNoiseResult {
  Status status;                     // not ok: the rest is empty, message says why
  int realisations = 0;
  std::uint64_t seed = 0;
  int nx = 0, ny = 0;                // the cube grid (the operator's cube_spatial())
  int radius_spatial = 0, radius_spectral = 0;
  // Stationary kernel rho(dx, dy, dl) = <z(v) z(v+d)> pooled over the cube, at index
  // kernel_index(dx, dy, dl); kernel_pairs = the number of pairs behind each value; kernel_used =
  // whether the offset enters kappa.
  std::vector<double> kernel;
  std::vector<std::size_t> kernel_pairs;
  std::vector<char> kernel_used;
  double var_ratio = 0.0;            // rho(0, 0, 0) = <z^2>
  double kappa_stationary = 0.0;     // sum of the stationary kernel over the used offsets
  double kappa_all_offsets = 0.0;    // sum over every offset of the box (diagnostic)
  std::vector<double> kappa;         // per spaxel (j * nx + i); NaN where no voxel was usable
  // <z(s) z(s + d)> per spaxel s and offset d, pooled over channels and realisations, at
  // s * n_offsets() + kernel_index(d); NaN where no pair was seen (the whitening's covariance).
  std::vector<double> pair_cov;
  double kappa_mean = 0.0, kappa_median = 0.0, kappa_min = 0.0, kappa_max = 0.0;  // over spaxels with data
  std::size_t n_spaxels = 0;         // spaxels with a kappa
  std::size_t n_samples = 0;         // usable voxels summed over realisations
  double wall_s = 0.0;
  std::size_t kernel_index(int dx, int dy, int dl) const {
    const int sx = 2 * radius_spatial + 1;
    return (static_cast<std::size_t>(dl + radius_spectral) * sx + static_cast<std::size_t>(dy + radius_spatial)) * sx +
           static_cast<std::size_t>(dx + radius_spatial);
  }
  double rho(int dx, int dy, int dl) const { return kernel[kernel_index(dx, dy, dl)]; }
  std::size_t n_offsets() const {
    return static_cast<std::size_t>(2 * radius_spatial + 1) * (2 * radius_spatial + 1) * (2 * radius_spectral + 1);
  }
};

/// Accumulates <z(v) z(v+d)> from pure-noise cubes (z = SCI / ERR). Public so the estimator can be
/// checked on synthetic fields of known correlation (tests/test_cube_noise.cpp).
class CubeNoiseEstimator {
 public:
  /// `column_adjacent[k]` (size nl - 1, optional): channels k and k + 1 are neighbours; empty =
  /// all channels are contiguous.
  CubeNoiseEstimator(int nx, int ny, std::size_t nl, int radius_spatial, int radius_spectral,
                     std::vector<char> column_adjacent = {});
  /// Adds one realisation. Status not ok when the cube's shape differs.
  Status add(const Cube& noise_cube, int threads = 0);
  /// The kernel, kappa per spaxel and the summary (status, wall_s, seed, realisations left for the
  /// caller to fill where it knows them).
  CubeNoiseResult finish(double min_rho = 0.01, double kappa_floor = 0.25) const;
  int realisations() const { return n_added_; }

 private:
  int nx_, ny_;
  std::size_t nl_;
  int rs_, rl_;
  std::size_t n_off_;
  std::vector<int> adj_run_;          // adj_run_[k]: number of consecutive adjacent channels after k
  std::vector<double> sum_;           // per spaxel x offset
  std::vector<std::size_t> count_;    // per spaxel x offset
  int n_added_ = 0;
};

/// Measures the reconstruction's noise correlation for a cube-space operator (see the header
/// comment). Throws InvalidOptions only for invalid options.
CubeNoiseResult measure_cube_noise(const SlitstepOperator& op, const CubeNoiseOptions& options = {});

/// sigma -> sigma sqrt(kappa) on a cube-space Selection of `op` (inv_sigma /= sqrt(kappa) of its
/// spaxel; spaxels without a kappa take kappa_median). Status not ok when the sizes differ.
Status apply_cube_noise(const CubeNoiseResult& noise, const SlitstepOperator& op, SlitstepOperator::Selection& sel);

/// Generalised least squares in cube space ("whiten"): wraps a cube-space SlitstepOperator and a
/// Selection; per channel c, with U_c the spaxels used in that channel, the spatial covariance of
/// z = value / sigma, C_c(s, t) = <z(s) z(t)> (pair_cov, symmetrised, offsets kernel_used at
/// dl = 0: the reconstruction works channel by channel, so spectral correlation is not modelled),
/// is factorised C = P^T L L^T P (sparse Cholesky, one factorisation per distinct U_c) and both
/// data and model become y = L^-1 P (x / sigma). chi2 = sum y^2 = r^T D^-1 C^-1 D^-1 r: the
/// likelihood of correlated Gaussian noise. A covariance that is not positive definite (estimation
/// noise) has its off-diagonal elements shrunk by 0.9 until it is (shrink() reports the factor).
/// evaluate() gives the WHITENED model (use the wrapped operator for model cubes).
class WhitenedCubeOperator final : public ModelOperator {
 public:
  WhitenedCubeOperator(const SlitstepOperator& op, const CubeNoiseResult& noise,
                       const SlitstepOperator::Selection& selection);
  ~WhitenedCubeOperator() override;
  const Status& status() const { return status_; }  // not ok: sizes differ / factorisation failed
  /// Whitened data, inv_sigma = 1 where used (0 elsewhere), n_used as the input selection.
  const SlitstepOperator::Selection& selection() const { return whitened_; }
  FitProblem make_problem(const GalaxyParameterization& param) const;
  double shrink() const { return shrink_; }
  std::size_t n_factorisations() const { return n_factors_; }

  std::size_t data_size() const override { return op_->data_size(); }
  std::unique_ptr<Workspace> make_workspace() const override;
  Status evaluate(const GalaxyParams& params, double* model_out, Workspace& ws) const override;
  CosmologyParams cosmology() const override { return op_->cosmology(); }

 private:
  struct Factor;
  struct Ws;
  void whiten(const double* in, double* out) const;
  const SlitstepOperator* op_;
  Status status_;
  std::vector<double> inv_sigma_;           // the input selection's
  std::vector<int> channel_factor_;         // per channel: index into factors_ (-1: no value used)
  std::vector<std::unique_ptr<Factor>> factors_;
  std::size_t n_factors_ = 0;
  double shrink_ = 1.0;
  SlitstepOperator::Selection whitened_;
};

/// Sandwich ("robust") errors of a fit made with the INDEPENDENT cube-space likelihood: with J the
/// Jacobian of the weighted residuals at the solution (internal units) and R the measured
/// covariance of z = value / sigma (pair_cov over the used offsets, symmetrised; priors
/// uncorrelated), Cov = H^-1 (J^T R J) H^-1, H = J^T J. The point estimate is unchanged; the
/// errors are what its scatter over noise realisations is, whatever the shape of each
/// parameter's information (no inversion of the nearly singular R).
struct SandwichErrors {
  Status status;                      // not ok: Jacobian failed / sizes differ / singular H
  std::vector<std::string> names;     // free parameters
  std::vector<double> err;            // sandwich errors (physical units)
  std::vector<double> err_independent;  // sqrt(diag H^-1): the independent-likelihood errors
  Eigen::MatrixXd covariance;         // physical units
};
/// `problem` must be the cube-space problem of `op` with the Selection's independent inv_sigma;
/// `theta` the free parameters (physical) at the solution (FitResult::theta).
SandwichErrors sandwich_errors(const FitProblem& problem, const SlitstepOperator& op, const CubeNoiseResult& noise,
                               const std::vector<double>& theta, const FitOptions& options = {});

/// The summary for fit.json: realisations, seed, n_spaxels, n_samples, var_ratio, kappa_mean,
/// kappa_median, kappa_min, kappa_max, kappa_stationary, kappa_all_offsets, kernel_dl0 (rows
/// dy = -r..r of rho(dx = -r..r, dy, 0)), kernel_spectral (rho(0, 0, dl), dl = -r..r), wall_s.
JsonValue cube_noise_json(const CubeNoiseResult& noise);

}  // namespace slitstep
