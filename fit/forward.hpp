#pragma once
// slitstep/fit: forward-model fitting — the problem, maximum likelihood, covariance, Fisher
// matrix (DESIGN.md §5.2, §7; docs/fit.md "Forward-model fitting").
//
// A ModelOperator maps GalaxyParams to a model vector of data_size() values in the layout of the
// data it is compared with (a reconstructed cube's voxels, concatenated exposure pixels, or any
// toy layout). It is immutable; every evaluation uses a caller-owned Workspace (make_workspace),
// so one operator serves many threads. evaluate() never throws and never prints: a parameter set
// the model refuses (GalaxyParams::validate, a line profile cut by a fixed render window, ...)
// comes back as a Status.
//
// FitProblem = operator + data + inverse sigma per value (0 = masked; inverse_sigma() builds it
// from ERR and DQ) + a GalaxyParameterization (fit/params.hpp). The likelihood is Gaussian:
//     chi2(theta) = sum_n w_n^2 (model_n(theta) - data_n)^2  (+ sum over Gaussian priors),
// w_n = inv_sigma_n; the maximum-likelihood (with priors: maximum a-posteriori) solution comes
// from Ceres (trust region, Levenberg-Marquardt, bounds) on the internal coordinates x = theta /
// scale. Derivatives: finite differences with step fd_step * scale per parameter, computed by our
// own CostFunction that evaluates the operator IN PARALLEL (FitOptions::threads; each evaluation
// single-threaded in its own workspace, so the result is bit-identical for any thread count):
// forward differences during the iterations (n_free evaluations per Jacobian; FitOptions::
// fd_iterations, central = 2 n_free available), central differences for the covariance
// (fd_covariance); one-sided next to a bound. A parameter the operator declares the model exactly
// proportional to (ModelOperator::proportional_to, e.g. halpha_flux_cgs of the generic IFU) gets
// its column as model / value, without evaluations. Ceres is given the (n_free + 1)-row
// equivalent of the weighted residuals (FitOptions::reduce_residuals: same J^T J, J^T r and
// cost, so the same Levenberg-Marquardt steps, with n_free^3 instead of m n_free^2 linear
// algebra per iteration).
// Covariance: (J^T W J)^-1 of the weighted residuals at the solution (not scaled by the reduced
// chi2), in physical units. Diagnostics, never a silent NaN:
//  * a start outside the bounds / not finite / refused by the model    -> kFailed + reason
//  * every value masked, or a chi2 flat in every free parameter        -> kFailed + reason
//  * no signal: the best model improves chi2 over an empty model by less than
//    min_signal_delta_chi2                                              -> kFailed + reason
//  * a free parameter with no effect on the model, or an ill-conditioned direction of the
//    curvature (e.g. a face-on disk: its PA and the rotation speed are undefined)
//                                -> kDegenerate; the reason names the parameters; their errors are
//                                   +inf, the rest come from the pseudo-inverse on the determined
//                                   subspace
//  * Ceres' iteration limit                                             -> kNotConverged
//  * a parameter at a bound: FittedParameter::at_bound and a note (its error is the curvature
//    error, one-sided in reality).
// fisher_matrix(): F = J^T W J at the truth from the same operator and the same derivatives;
// Cramer-Rao bounds sqrt(diag F^-1) (data values are not used, priors not included).
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "core/cosmology.hpp"
#include "core/cube.hpp"
#include "core/error.hpp"
#include "fit/params.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {

class ModelOperator {
 public:
  /// Per-caller scratch memory of one evaluation. `threads` is the number of OpenMP threads one
  /// evaluation may use (0 = OpenMP default); the fitter sets it.
  struct Workspace {
    virtual ~Workspace() = default;
    int threads = 0;
  };
  virtual ~ModelOperator() = default;
  /// Number of model values.
  virtual std::size_t data_size() const = 0;
  virtual std::unique_ptr<Workspace> make_workspace() const = 0;
  /// model_out[0 .. data_size()) = model of `params`. Thread-safe (const) given distinct
  /// workspaces. Must give bit-identical output for the same params whatever ws.threads is.
  virtual Status evaluate(const GalaxyParams& params, double* model_out, Workspace& ws) const = 0;
  /// Cosmology of the model (kpc per arcsec of derived quantities).
  virtual CosmologyParams cosmology() const { return {}; }
  /// True when the model is exactly proportional to the fittable parameter `name` around `params`:
  /// model(params with name = a * value) = a * model(params) for every a > 0 (e.g. a total flux
  /// that scales every component of the model). The fitter then takes that parameter's Jacobian
  /// column as model / value, with no evaluations. Default: false (no such parameter).
  virtual bool proportional_to(const std::string& /*name*/, const GalaxyParams& /*params*/) const { return false; }
};

struct FitProblem {
  const ModelOperator* op = nullptr;
  std::vector<double> data;       // data_size() values (any value where inv_sigma == 0)
  std::vector<double> inv_sigma;  // 1 / sigma per value; 0 = masked
  GalaxyParameterization param;
  /// Throws InvalidOptions: no operator, sizes differ, inv_sigma negative / not finite, or the
  /// parameterization's validate_structure() (a bad start VALUE is a fit status, not an error).
  void validate() const;
  std::size_t num_used() const;   // values with inv_sigma > 0 and finite data
};

/// 1/err where the value is usable: finite data, finite err > 0, (dq & dq_mask) == 0 (dq may be
/// empty); 0 elsewhere.
std::vector<double> inverse_sigma(const std::vector<double>& data, const std::vector<double>& err,
                                  const std::vector<std::uint32_t>& dq,
                                  std::uint32_t dq_mask = kDqDoNotUse | kDqNoCoverage | kDqChipGap | kDqNonFinite);

/// Finite-difference scheme of a Jacobian: forward (one evaluation per parameter, error O(step))
/// or central (two, error O(step^2)); both one-sided next to a bound.
enum class FiniteDifferences { kForward, kCentral };
const char* finite_differences_name(FiniteDifferences d);

struct FitOptions {
  int max_iterations = 100;          // Ceres trust-region iterations
  double function_tolerance = 1e-10; // Ceres: relative change of the cost
  double gradient_tolerance = 1e-12; // Ceres: max-norm of the projected gradient
  double parameter_tolerance = 1e-9; // Ceres: relative step size
  double fd_step = 1e-3;             // finite-difference step in internal units (x = theta / scale)
  // Jacobians of the Ceres iterations: forward differences (half the evaluations; the step error
  // only changes the path, the solution is where the gradient vanishes). The covariance at the
  // solution (and fisher_matrix) use fd_covariance.
  FiniteDifferences fd_iterations = FiniteDifferences::kForward;
  FiniteDifferences fd_covariance = FiniteDifferences::kCentral;
  bool linear_columns = true;        // columns of parameters the operator is proportional to
                                     // (ModelOperator::proportional_to) as model / value
  bool reduce_residuals = true;      // Ceres sees the (n_free + 1)-row equivalent of the residuals
                                     // (identical steps; false: all m weighted residuals)
  int threads = 0;                   // parallel model evaluations of the Jacobian (0 = OpenMP default)
  bool compute_covariance = true;
  double min_signal_delta_chi2 = 25.0;  // chi2(empty model) - chi2(best) below this: "no signal"
  double min_relative_curvature = 1e-14; // J^T W J diagonal below this x max: "no effect"
  double condition_limit = 1e-10;    // smallest / largest eigenvalue of the correlation-form
                                     // curvature below this: ill-conditioned direction
  void validate() const;             // throws InvalidOptions naming field, value and rule
};

enum class FitStatus { kConverged, kDegenerate, kNotConverged, kFailed };
const char* fit_status_name(FitStatus s);

enum class BoundState { kInside, kAtLower, kAtUpper };

struct FittedParameter {
  std::string name;
  double value = 0.0;      // best fit (fixed: the fixed value)
  double err = 0.0;        // 1 sigma from the curvature; 0 for fixed; +inf if undetermined
  double start = 0.0;
  double lower = 0.0, upper = 0.0;
  bool fixed = false;
  BoundState bound = BoundState::kInside;  // within 1e-6 scale of a bound
};

struct FitResult {
  FitStatus status = FitStatus::kFailed;
  std::string reason;                 // one line: why (also for kConverged: Ceres' message)
  std::vector<std::string> notes;     // remarks: parameters at bounds, ...
  double chi2 = 0.0;                  // at the best fit (including prior terms)
  double chi2_start = 0.0;
  double chi2_empty = 0.0;            // of an all-zero model
  long ndof = 0;                      // used values - free parameters
  long n_used = 0;                    // used values
  long n_model_evaluations = 0;
  int iterations = 0;
  double wall_s = 0.0;
  std::vector<FittedParameter> params;  // every spec, in specs() order
  std::vector<std::string> free_names;
  Eigen::MatrixXd covariance;         // free x free, physical units (+inf rows/cols: undetermined)
  std::vector<std::string> undetermined;  // free parameters the data do not constrain
  std::vector<DerivedQuantity> derived;
  GalaxyParams best;                  // the full best-fit galaxy
  std::vector<double> theta;          // free parameters at the best fit
  const FittedParameter* find(const std::string& name) const;
  double value(const std::string& name) const;  // throws InvalidOptions for unknown names
  double err(const std::string& name) const;
  Status as_status() const;           // kOk for kConverged, else an error with the reason
};

/// Maximum likelihood (MAP with Gaussian priors) from problem.param's start. Throws only for
/// invalid options / an invalid problem (validate()); everything numerical is in the status.
FitResult fit_maximum_likelihood(const FitProblem& problem, const FitOptions& options = {});

struct FisherResult {
  Status status;                      // not ok: singular / undetermined (reason), or eval failure
  std::vector<std::string> names;     // free parameters
  Eigen::MatrixXd fisher;             // physical units
  Eigen::MatrixXd covariance;         // F^-1 (pseudo-inverse; +inf for undetermined)
  std::vector<double> crb;            // Cramer-Rao bounds sqrt(diag F^-1)
  std::vector<std::string> undetermined;
  long n_model_evaluations = 0;
};
/// Fisher matrix of the free parameters of problem.param at `truth` (problem.data unused).
FisherResult fisher_matrix(const FitProblem& problem, const GalaxyParams& truth, const FitOptions& options = {});

/// Evaluates residuals / chi2 / finite-difference Jacobians of a problem, with one workspace per
/// thread slot. Used by the fitter and the sampler; exposed for tests and tools.
class ProblemEvaluator {
 public:
  /// `threads`: slots (0 = OpenMP default).
  ProblemEvaluator(const FitProblem& problem, int threads);
  ~ProblemEvaluator();
  int slots() const { return static_cast<int>(ws_.size()); }
  std::size_t num_residuals() const;  // used values + Gaussian priors
  /// Weighted residuals at theta (physical, free) using slot `slot` with `inner_threads`.
  Status residuals(const double* theta, double* r, int slot, int inner_threads);
  /// -chi2/2 (likelihood only; -inf on failure).
  double log_likelihood(const double* theta, int slot, int inner_threads);
  /// Row-major Jacobian (num_residuals x n_free) of the residuals w.r.t. INTERNAL x = theta/scale,
  /// central differences (one-sided at bounds), evaluations in parallel over the slots.
  /// r0 (optional) receives the residuals at theta; with r0_valid it already holds them. Points
  /// the previous call evaluated at the same theta (and the residuals there) are reused.
  Status jacobian(const double* theta, double step, double* jac, double* r0 = nullptr, bool r0_valid = false);
  /// The same with a choice of scheme and of analytic columns for the parameters the operator is
  /// proportional to (linear_columns; those need the residuals at theta, evaluated if not given),
  /// and of the layout: column_major = true gives num_residuals x n_free with contiguous columns.
  Status jacobian(const double* theta, double step, FiniteDifferences scheme, bool linear_columns, double* jac,
                  double* r0, bool r0_valid, bool column_major = false);
  /// Free indices the operator is proportional to (ModelOperator::proportional_to at the problem's
  /// start); their columns are analytic whenever linear_columns is set and the value is not 0.
  const std::vector<int>& proportional_parameters() const { return linear_; }
  long evaluations() const { return n_eval_.load(); }

 private:
  const FitProblem& p_;
  std::vector<std::size_t> used_;                 // indices of the used values
  std::vector<int> prior_;                        // free index of each Gaussian prior
  std::vector<std::unique_ptr<ModelOperator::Workspace>> ws_;
  std::vector<std::vector<double>> model_;        // per slot: data_size()
  std::vector<double> scale_, lower_, upper_;
  std::vector<int> linear_;                       // free indices with analytic columns
  std::vector<double> wd_;                        // data * inv_sigma of the used values
  std::vector<double> prior_sigma_;               // sigma of each Gaussian prior
  // Finite-difference outputs of the last jacobian() call, reused by the next call at the same
  // theta: fd_keys_[b] = (free index, physical value) of the point in fd_[b] (index n_free: none).
  std::vector<std::vector<double>> fd_;
  std::vector<std::pair<std::size_t, double>> fd_keys_;
  std::vector<double> fd_theta_;
  bool fd_valid_ = false;
  std::vector<double> centre_;                    // residuals at fd_theta_ (centre_valid_)
  bool centre_valid_ = false;
  std::atomic<long> n_eval_{0};
};

}  // namespace slitstep
