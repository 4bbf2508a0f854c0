#include "fit/forward.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include <Eigen/Dense>
#include <ceres/ceres.h>

#include "core/cosmology.hpp"

namespace slitstep {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
using Clock = std::chrono::steady_clock;
using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::string fmt(double v) { return format_value(v); }
std::string fmt_short(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

int resolve_threads(int t) { return t > 0 ? t : std::max(1, omp_get_max_threads()); }

// Inverse of a curvature matrix H (n x n, internal units) with degeneracy diagnostics.
struct CurvatureInverse {
  Eigen::MatrixXd cov;                  // internal units; undetermined: +inf diagonal, 0 off-diagonal
  std::vector<int> undetermined;        // free indices
  std::string reason;                   // empty when well determined
};

CurvatureInverse invert_curvature(const Eigen::MatrixXd& H, const std::vector<std::string>& names,
                                  double min_rel_curv, double cond_limit) {
  const int n = static_cast<int>(H.rows());
  CurvatureInverse out;
  out.cov = Eigen::MatrixXd::Zero(n, n);
  if (n == 0) return out;
  double dmax = 0.0;
  for (int i = 0; i < n; ++i) dmax = std::max(dmax, H(i, i));
  std::vector<char> flag(n, 0);
  std::vector<int> det;
  std::string no_effect;
  for (int i = 0; i < n; ++i) {
    if (!(H(i, i) > min_rel_curv * dmax) || !(dmax > 0.0)) {
      flag[i] = 1;
      no_effect += (no_effect.empty() ? "" : ", ") + names[i];
    } else {
      det.push_back(i);
    }
  }
  std::string ill;
  const int m = static_cast<int>(det.size());
  if (m > 0) {
    Eigen::VectorXd s(m);
    for (int a = 0; a < m; ++a) s[a] = 1.0 / std::sqrt(H(det[a], det[a]));
    Eigen::MatrixXd R(m, m);
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < m; ++b) R(a, b) = H(det[a], det[b]) * s[a] * s[b];
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(R);
    const Eigen::VectorXd lam = es.eigenvalues();  // ascending
    const Eigen::MatrixXd V = es.eigenvectors();
    const double lmax = lam[m - 1];
    Eigen::MatrixXd Rp = Eigen::MatrixXd::Zero(m, m);
    for (int e = 0; e < m; ++e) {
      if (lam[e] > cond_limit * lmax && lam[e] > 0.0) {
        Rp += V.col(e) * V.col(e).transpose() / lam[e];
        continue;
      }
      // ill-conditioned direction: name the parameters that carry it
      std::string dir;
      for (int a = 0; a < m; ++a) {
        if (std::abs(V(a, e)) < 0.2) continue;
        flag[det[a]] = 1;
        char b[96];
        std::snprintf(b, sizeof b, "%s%+.2f %s", dir.empty() ? "" : " ", V(a, e), names[det[a]].c_str());
        dir += b;
      }
      ill += (ill.empty() ? "" : "; ") + dir + " (eigenvalue ratio " + fmt_short(std::max(0.0, lam[e]) / lmax) + ")";
    }
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < m; ++b) out.cov(det[a], det[b]) = Rp(a, b) * s[a] * s[b];
  }
  for (int i = 0; i < n; ++i) {
    if (!flag[i]) continue;
    out.undetermined.push_back(i);
    for (int k = 0; k < n; ++k) out.cov(i, k) = out.cov(k, i) = 0.0;
    out.cov(i, i) = kInf;
  }
  if (!no_effect.empty())
    out.reason = no_effect + (std::count(no_effect.begin(), no_effect.end(), ',') ? " have" : " has") +
                 " no effect on the model (zero derivative; e.g. a face-on disk has no PA and no rotation signal)";
  if (!ill.empty()) out.reason += (out.reason.empty() ? "" : "; ") + std::string("ill-conditioned direction ") + ill;
  return out;
}

// Our own Ceres cost: residuals through the operator; Jacobian by parallel finite differences.
class ForwardCost final : public ceres::CostFunction {
 public:
  ForwardCost(ProblemEvaluator& ev, const std::vector<double>& scale, double step, int threads)
      : ev_(ev), scale_(scale), step_(step), threads_(threads) {
    set_num_residuals(static_cast<int>(ev.num_residuals()));
    mutable_parameter_block_sizes()->push_back(static_cast<int>(scale.size()));
  }
  bool Evaluate(double const* const* parameters, double* residuals, double** jacobians) const override {
    const std::size_t n = scale_.size(), m = ev_.num_residuals();
    std::vector<double> theta(n);
    for (std::size_t i = 0; i < n; ++i) theta[i] = parameters[0][i] * scale_[i];
    const bool same = have_last_ && std::equal(theta.begin(), theta.end(), last_theta_.begin());
    if (jacobians && jacobians[0]) {
      if (same) std::copy(last_r_.begin(), last_r_.end(), residuals);
      const Status st = ev_.jacobian(theta.data(), step_, jacobians[0], residuals, same);
      if (!st.ok()) {
        last_error_ = st.message;
        return false;
      }
    } else if (same) {
      std::copy(last_r_.begin(), last_r_.end(), residuals);
      return true;
    } else {
      const Status st = ev_.residuals(theta.data(), residuals, 0, threads_);
      if (!st.ok()) {
        last_error_ = st.message;
        return false;
      }
    }
    last_theta_ = theta;
    last_r_.assign(residuals, residuals + m);
    have_last_ = true;
    return true;
  }
  const std::string& last_error() const { return last_error_; }

 private:
  ProblemEvaluator& ev_;
  std::vector<double> scale_;
  double step_;
  int threads_;
  mutable bool have_last_ = false;
  mutable std::vector<double> last_theta_, last_r_;
  mutable std::string last_error_;
};

BoundState bound_state(double v, double lo, double hi, double scale) {
  const double tol = 1e-6 * scale;
  if (std::isfinite(lo) && v <= lo + tol) return BoundState::kAtLower;
  if (std::isfinite(hi) && v >= hi - tol) return BoundState::kAtUpper;
  return BoundState::kInside;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

const char* fit_status_name(FitStatus s) {
  switch (s) {
    case FitStatus::kConverged: return "converged";
    case FitStatus::kDegenerate: return "degenerate";
    case FitStatus::kNotConverged: return "not converged";
    case FitStatus::kFailed: return "failed";
  }
  return "?";
}

void FitProblem::validate() const {
  if (!op) throw InvalidOptions("FitProblem.op = null: a model operator is required");
  const std::size_t n = op->data_size();
  if (data.size() != n)
    throw InvalidOptions("FitProblem.data has " + std::to_string(data.size()) + " values: the operator makes " +
                         std::to_string(n));
  if (inv_sigma.size() != n)
    throw InvalidOptions("FitProblem.inv_sigma has " + std::to_string(inv_sigma.size()) + " values: the operator makes " +
                         std::to_string(n));
  for (std::size_t k = 0; k < n; ++k)
    if (!(inv_sigma[k] >= 0.0) || !std::isfinite(inv_sigma[k]))
      throw InvalidOptions("FitProblem.inv_sigma[" + std::to_string(k) + "] = " + fmt(inv_sigma[k]) +
                           ": must be finite and >= 0 (0 = masked)");
  param.validate_structure();
}

std::size_t FitProblem::num_used() const {
  std::size_t c = 0;
  for (std::size_t k = 0; k < data.size() && k < inv_sigma.size(); ++k)
    if (inv_sigma[k] > 0.0 && std::isfinite(data[k])) ++c;
  return c;
}

std::vector<double> inverse_sigma(const std::vector<double>& data, const std::vector<double>& err,
                                  const std::vector<std::uint32_t>& dq, std::uint32_t dq_mask) {
  if (err.size() != data.size() || (!dq.empty() && dq.size() != data.size()))
    throw InvalidOptions("inverse_sigma: data has " + std::to_string(data.size()) + " values, err " +
                         std::to_string(err.size()) + ", dq " + std::to_string(dq.size()));
  std::vector<double> w(data.size(), 0.0);
  for (std::size_t k = 0; k < data.size(); ++k) {
    if (!dq.empty() && (dq[k] & dq_mask)) continue;
    if (!std::isfinite(data[k]) || !std::isfinite(err[k]) || !(err[k] > 0.0)) continue;
    w[k] = 1.0 / err[k];
  }
  return w;
}

void FitOptions::validate() const {
  auto bad = [](const std::string& f, double v, const std::string& rule) {
    throw InvalidOptions("FitOptions." + f + " = " + fmt(v) + ": " + rule);
  };
  if (max_iterations < 0 || max_iterations > 100000) bad("max_iterations", max_iterations, "must be in [0, 100000]");
  if (!(function_tolerance >= 0.0)) bad("function_tolerance", function_tolerance, "must be >= 0");
  if (!(gradient_tolerance >= 0.0)) bad("gradient_tolerance", gradient_tolerance, "must be >= 0");
  if (!(parameter_tolerance >= 0.0)) bad("parameter_tolerance", parameter_tolerance, "must be >= 0");
  if (!(fd_step > 0.0 && fd_step <= 0.5)) bad("fd_step", fd_step, "must be in (0, 0.5] (internal units)");
  if (threads < 0 || threads > 1024) bad("threads", threads, "must be in [0, 1024] (0 = OpenMP default)");
  if (!(min_signal_delta_chi2 >= 0.0)) bad("min_signal_delta_chi2", min_signal_delta_chi2, "must be >= 0");
  if (!(min_relative_curvature >= 0.0 && min_relative_curvature < 1.0))
    bad("min_relative_curvature", min_relative_curvature, "must be in [0, 1)");
  if (!(condition_limit >= 0.0 && condition_limit < 1.0)) bad("condition_limit", condition_limit, "must be in [0, 1)");
}

const FittedParameter* FitResult::find(const std::string& name) const {
  for (const auto& p : params)
    if (p.name == name) return &p;
  return nullptr;
}
double FitResult::value(const std::string& name) const {
  const auto* p = find(name);
  if (!p) throw InvalidOptions("FitResult: no parameter '" + name + "'");
  return p->value;
}
double FitResult::err(const std::string& name) const {
  const auto* p = find(name);
  if (!p) throw InvalidOptions("FitResult: no parameter '" + name + "'");
  return p->err;
}
Status FitResult::as_status() const {
  switch (status) {
    case FitStatus::kConverged: return Status::Ok();
    case FitStatus::kDegenerate: return Status::Error(StatusCode::kFailed, "degenerate: " + reason);
    case FitStatus::kNotConverged: return Status::Error(StatusCode::kNotConverged, reason);
    case FitStatus::kFailed: return Status::Error(StatusCode::kFailed, reason);
  }
  return Status::Error(StatusCode::kFailed, reason);
}

// ---------------------------------------------------------------------------------------------

ProblemEvaluator::ProblemEvaluator(const FitProblem& problem, int threads) : p_(problem) {
  const int t = resolve_threads(threads);
  const std::size_t n = problem.op->data_size();
  for (std::size_t k = 0; k < n; ++k)
    if (problem.inv_sigma[k] > 0.0 && std::isfinite(problem.data[k])) used_.push_back(k);
  int fi = 0;
  for (const auto& s : problem.param.specs()) {
    if (s.fixed) continue;
    if (s.prior.kind == Prior::Kind::kGaussian) prior_.push_back(fi);
    ++fi;
  }
  for (int s = 0; s < t; ++s) {
    ws_.push_back(problem.op->make_workspace());
    model_.emplace_back(n, 0.0);
  }
  scale_ = problem.param.free_scales();
  lower_ = problem.param.free_lower();
  upper_ = problem.param.free_upper();
}

ProblemEvaluator::~ProblemEvaluator() = default;

std::size_t ProblemEvaluator::num_residuals() const { return used_.size() + prior_.size(); }

Status ProblemEvaluator::residuals(const double* theta, double* r, int slot, int inner_threads) {
  Status st;
  std::vector<double>& model = model_[static_cast<std::size_t>(slot)];
  try {
    const GalaxyParams gp = p_.param.to_params(theta);
    ws_[static_cast<std::size_t>(slot)]->threads = inner_threads;
    st = p_.op->evaluate(gp, model.data(), *ws_[static_cast<std::size_t>(slot)]);
  } catch (const std::exception& e) {
    st = Status::Error(StatusCode::kFailed, std::string("model evaluation threw: ") + e.what());
  }
  n_eval_.fetch_add(1);
  if (!st.ok()) return st;
  for (std::size_t q = 0; q < used_.size(); ++q) {
    const std::size_t k = used_[q];
    r[q] = (model[k] - p_.data[k]) * p_.inv_sigma[k];
    if (!std::isfinite(r[q]))
      return Status::Error(StatusCode::kFailed, "the model is not finite at value " + std::to_string(k));
  }
  const auto& specs = p_.param.specs();
  const std::vector<int> fidx = p_.param.free_indices();
  for (std::size_t q = 0; q < prior_.size(); ++q) {
    const ParamSpec& s = specs[static_cast<std::size_t>(fidx[static_cast<std::size_t>(prior_[q])])];
    r[used_.size() + q] = (theta[prior_[q]] - s.prior.mean) / s.prior.sigma;
  }
  return st;
}

double ProblemEvaluator::log_likelihood(const double* theta, int slot, int inner_threads) {
  std::vector<double> r(num_residuals());
  if (!residuals(theta, r.data(), slot, inner_threads).ok()) return -kInf;
  double c = 0.0;
  for (std::size_t q = 0; q < used_.size(); ++q) c += r[q] * r[q];
  return -0.5 * c;
}

Status ProblemEvaluator::jacobian(const double* theta, double step, double* jac, double* r0, bool r0_valid) {
  const std::size_t n = scale_.size(), m = num_residuals();
  // points: index 0 = centre, then (plus, minus) per parameter
  struct Point {
    std::vector<double> theta;
    bool centre = false;
  };
  std::vector<double> xp(n), xm(n);
  bool need_centre = r0 != nullptr && !r0_valid;
  std::vector<int> plus_task(n, -1), minus_task(n, -1);
  std::vector<Point> tasks;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = theta[i] / scale_[i];
    const double lo = lower_[i] / scale_[i], hi = upper_[i] / scale_[i];
    xp[i] = std::min(x + step, hi);
    xm[i] = std::max(x - step, lo);
    if (!(xp[i] > xm[i]))
      return Status::Error(StatusCode::kFailed, "finite differences: no room between the bounds of parameter " +
                                                    std::to_string(i));
    for (int side = 0; side < 2; ++side) {
      const double xv = side == 0 ? xp[i] : xm[i];
      if (xv == x) {
        need_centre = true;
        continue;
      }
      Point pt;
      pt.theta.assign(theta, theta + n);
      pt.theta[i] = xv * scale_[i];
      (side == 0 ? plus_task : minus_task)[i] = static_cast<int>(tasks.size());
      tasks.push_back(std::move(pt));
    }
  }
  std::vector<double> centre_local;
  double* centre = r0;
  if (need_centre && !r0) {
    centre_local.resize(m);
    centre = centre_local.data();
  }
  const bool eval_centre = need_centre && !(r0 && r0_valid);
  const int ntask = static_cast<int>(tasks.size()) + (eval_centre ? 1 : 0);
  std::vector<std::vector<double>> out(tasks.size(), std::vector<double>(m));
  std::vector<Status> st(static_cast<std::size_t>(ntask));
  const int nthreads = std::min(slots(), std::max(1, ntask));
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (int t = 0; t < ntask; ++t) {
    const int slot = omp_get_thread_num();
    const int inner = nthreads == 1 ? slots() : 1;
    if (eval_centre && t == ntask - 1) {
      st[static_cast<std::size_t>(t)] = residuals(theta, centre, slot, inner);
    } else {
      st[static_cast<std::size_t>(t)] =
          residuals(tasks[static_cast<std::size_t>(t)].theta.data(), out[static_cast<std::size_t>(t)].data(), slot, inner);
    }
  }
  for (const auto& s : st)
    if (!s.ok()) return s;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = theta[i] / scale_[i];
    const double* a = plus_task[i] >= 0 ? out[static_cast<std::size_t>(plus_task[i])].data() : centre;
    const double* b = minus_task[i] >= 0 ? out[static_cast<std::size_t>(minus_task[i])].data() : centre;
    const double xa = plus_task[i] >= 0 ? xp[i] : x, xb = minus_task[i] >= 0 ? xm[i] : x;
    const double inv = 1.0 / (xa - xb);
    for (std::size_t q = 0; q < m; ++q) jac[q * n + i] = (a[q] - b[q]) * inv;
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------

FitResult fit_maximum_likelihood(const FitProblem& problem, const FitOptions& options) {
  const auto t0 = Clock::now();
  options.validate();
  problem.validate();
  FitResult res;
  const GalaxyParameterization& par = problem.param;
  const std::vector<double> start = par.start();
  const std::vector<double> scale = par.free_scales();
  const std::size_t n = start.size();
  res.free_names = par.free_names();
  for (const auto& s : par.specs()) {
    FittedParameter fp;
    fp.name = s.name;
    fp.value = fp.start = s.value;
    fp.lower = s.lower;
    fp.upper = s.upper;
    fp.fixed = s.fixed;
    fp.err = s.fixed ? 0.0 : kInf;
    res.params.push_back(fp);
  }
  res.theta = start;
  res.best = par.to_params(start.data());
  auto finish = [&](FitStatus s, std::string why) {
    res.status = s;
    res.reason = std::move(why);
    res.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
    return res;
  };

  // ---- the start --------------------------------------------------------------------------------
  std::string why;
  if (!par.in_bounds(start.data(), &why)) return finish(FitStatus::kFailed, "bad start: " + why);
  try {
    res.best.validate();
  } catch (const InvalidOptions& e) {
    return finish(FitStatus::kFailed, std::string("bad start: the galaxy model refuses it: ") + e.what());
  }
  res.n_used = static_cast<long>(problem.num_used());
  if (res.n_used == 0) return finish(FitStatus::kFailed, "no data: every value is masked (inv_sigma = 0 or data not finite)");
  res.ndof = res.n_used - static_cast<long>(n);
  for (std::size_t k = 0; k < problem.data.size(); ++k)
    if (problem.inv_sigma[k] > 0.0 && std::isfinite(problem.data[k])) {
      const double t = problem.data[k] * problem.inv_sigma[k];
      res.chi2_empty += t * t;
    }

  const int threads = resolve_threads(options.threads);
  ProblemEvaluator ev(problem, threads);
  const std::size_t m = ev.num_residuals();
  std::vector<double> r(m), J(m * std::max<std::size_t>(n, 1));
  if (n == 0) {
    const Status st = ev.residuals(start.data(), r.data(), 0, threads);
    res.n_model_evaluations = ev.evaluations();
    if (!st.ok()) return finish(FitStatus::kFailed, "the model cannot be evaluated: " + st.message);
    for (double x : r) res.chi2 += x * x;
    res.chi2_start = res.chi2;
    return finish(FitStatus::kConverged, "no free parameters: chi2 evaluated");
  }
  {
    const Status st = ev.jacobian(start.data(), options.fd_step, J.data(), r.data(), false);
    if (!st.ok()) {
      res.n_model_evaluations = ev.evaluations();
      return finish(FitStatus::kFailed, "bad start: the model cannot be evaluated there: " + st.message);
    }
  }
  for (double x : r) res.chi2_start += x * x;
  {
    const Eigen::Map<const RowMajor> Jm(J.data(), static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(n));
    const Eigen::VectorXd cn = Jm.topRows(res.n_used).colwise().squaredNorm().transpose();
    if (cn.maxCoeff() <= 0.0) {
      res.chi2 = res.chi2_start;
      res.n_model_evaluations = ev.evaluations();
      return finish(FitStatus::kFailed,
                    "chi2 is flat in every free parameter at the start (the used data do not depend on them)");
    }
  }

  // ---- Ceres ----------------------------------------------------------------------------------
  std::vector<double> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = start[i] / scale[i];
  auto* cost = new ForwardCost(ev, scale, options.fd_step, threads);
  ceres::Problem::Options popt;
  popt.cost_function_ownership = ceres::TAKE_OWNERSHIP;
  ceres::Problem cp(popt);
  cp.AddResidualBlock(cost, nullptr, x.data());
  const std::vector<double> lo = par.free_lower(), hi = par.free_upper();
  for (std::size_t i = 0; i < n; ++i) {
    if (std::isfinite(lo[i])) cp.SetParameterLowerBound(x.data(), static_cast<int>(i), lo[i] / scale[i]);
    if (std::isfinite(hi[i])) cp.SetParameterUpperBound(x.data(), static_cast<int>(i), hi[i] / scale[i]);
  }
  ceres::Solver::Options so;
  so.minimizer_type = ceres::TRUST_REGION;
  so.trust_region_strategy_type = ceres::LEVENBERG_MARQUARDT;
  so.linear_solver_type = ceres::DENSE_QR;
  so.max_num_iterations = options.max_iterations;
  so.function_tolerance = options.function_tolerance;
  so.gradient_tolerance = options.gradient_tolerance;
  so.parameter_tolerance = options.parameter_tolerance;
  so.num_threads = 1;
  so.logging_type = ceres::SILENT;
  so.minimizer_progress_to_stdout = false;
  ceres::Solver::Summary summary;
  ceres::Solve(so, &cp, &summary);
  res.iterations = static_cast<int>(summary.iterations.size());

  FitStatus status = FitStatus::kConverged;
  std::string reason = "Ceres: " + summary.message;
  if (summary.termination_type == ceres::NO_CONVERGENCE) {
    status = FitStatus::kNotConverged;
    reason = "not converged after " + std::to_string(summary.iterations.size()) + " iterations (Ceres: " +
             summary.message + ")";
  } else if (summary.termination_type != ceres::CONVERGENCE && summary.termination_type != ceres::USER_SUCCESS) {
    status = FitStatus::kFailed;
    reason = "Ceres failed: " + summary.message + (cost->last_error().empty() ? "" : " (last model error: " + cost->last_error() + ")");
  }
  std::vector<double> theta(n);
  for (std::size_t i = 0; i < n; ++i) theta[i] = std::clamp(x[i] * scale[i], lo[i], hi[i]);
  if (!par.in_bounds(theta.data())) theta = start;  // cannot happen with clamping; never NaN out

  // ---- curvature at the solution ------------------------------------------------------------------
  const Status jst = ev.jacobian(theta.data(), options.fd_step, J.data(), r.data(), false);
  res.n_model_evaluations = ev.evaluations();
  res.theta = theta;
  res.best = par.to_params(theta.data());
  {
    std::size_t k = 0;
    for (auto& fp : res.params)
      if (!fp.fixed) fp.value = theta[k++];
  }
  if (!jst.ok()) return finish(FitStatus::kFailed, "the model cannot be evaluated at the solution: " + jst.message);
  res.chi2 = 0.0;
  for (double v : r) res.chi2 += v * v;
  if (status == FitStatus::kFailed) return finish(status, reason);

  const Eigen::Map<const RowMajor> Jm(J.data(), static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(n));
  const Eigen::MatrixXd H = Jm.transpose() * Jm;
  const CurvatureInverse ci =
      invert_curvature(H, res.free_names, options.min_relative_curvature, options.condition_limit);
  res.covariance = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = 0; b < n; ++b) {
      const double c = ci.cov(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b));
      res.covariance(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b)) =
          std::isfinite(c) ? c * scale[a] * scale[b] : c;
    }
  for (int u : ci.undetermined) res.undetermined.push_back(res.free_names[static_cast<std::size_t>(u)]);
  {
    std::size_t k = 0;
    for (auto& fp : res.params) {
      if (fp.fixed) continue;
      const double v = res.covariance(static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(k));
      fp.err = std::isfinite(v) ? std::sqrt(std::max(0.0, v)) : kInf;
      fp.bound = bound_state(fp.value, fp.lower, fp.upper, scale[k]);
      if (fp.bound != BoundState::kInside)
        res.notes.push_back(fp.name + " = " + fmt(fp.value) + " is at its " +
                            (fp.bound == BoundState::kAtLower ? "lower" : "upper") +
                            " bound: its curvature error is one-sided in reality");
      ++k;
    }
  }
  res.derived = derived_quantities(par, theta, res.covariance, Cosmology(problem.op->cosmology()).kpc_per_arcsec(res.best.redshift));

  // ---- verdict ----------------------------------------------------------------------------------
  double chi2_data = 0.0;
  for (std::size_t q = 0; q < static_cast<std::size_t>(res.n_used); ++q) chi2_data += r[q] * r[q];
  const double gain = res.chi2_empty - chi2_data;
  if (gain < options.min_signal_delta_chi2)
    return finish(FitStatus::kFailed, "no signal: the best model lowers chi2 below that of an empty model by only " +
                                          fmt_short(gain) + " (< min_signal_delta_chi2 = " +
                                          fmt_short(options.min_signal_delta_chi2) + ")");
  if (!ci.reason.empty()) return finish(FitStatus::kDegenerate, ci.reason);
  return finish(status, reason);
}

FisherResult fisher_matrix(const FitProblem& problem, const GalaxyParams& truth, const FitOptions& options) {
  options.validate();
  problem.validate();
  FisherResult fr;
  const GalaxyParameterization& par = problem.param;
  fr.names = par.free_names();
  const std::size_t n = fr.names.size();
  std::vector<double> theta;
  try {
    theta = par.from_params(truth);
  } catch (const InvalidOptions& e) {
    fr.status = Status::Error(StatusCode::kInvalidInput, e.what());
    return fr;
  }
  std::string why;
  if (!par.in_bounds(theta.data(), &why)) {
    fr.status = Status::Error(StatusCode::kInvalidInput, "truth outside the bounds: " + why);
    return fr;
  }
  if (n == 0) {
    fr.status = Status::Error(StatusCode::kInvalidInput, "no free parameters");
    return fr;
  }
  // The truth's values for fixed parameters come from `truth`, the structure from the problem.
  FitProblem p2 = problem;
  for (auto& s : p2.param.specs())
    if (s.fixed) s.value = get_galaxy_param(truth, s.name);
  ProblemEvaluator ev(p2, resolve_threads(options.threads));
  const std::size_t m = ev.num_residuals();
  const std::size_t nu = p2.num_used();
  std::vector<double> J(m * n);
  const Status st = ev.jacobian(theta.data(), options.fd_step, J.data(), nullptr, false);
  fr.n_model_evaluations = ev.evaluations();
  if (!st.ok()) {
    fr.status = st;
    return fr;
  }
  const Eigen::Map<const RowMajor> Jall(J.data(), static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(n));
  const auto Jm = Jall.topRows(static_cast<Eigen::Index>(nu));  // data rows only, no priors
  const Eigen::MatrixXd Fint = Jm.transpose() * Jm;
  const std::vector<double> scale = par.free_scales();
  fr.fisher.resize(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = 0; b < n; ++b)
      fr.fisher(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b)) =
          Fint(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b)) / (scale[a] * scale[b]);
  const CurvatureInverse ci = invert_curvature(Fint, fr.names, options.min_relative_curvature, options.condition_limit);
  fr.covariance.resize(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
  fr.crb.resize(n);
  for (std::size_t a = 0; a < n; ++a) {
    for (std::size_t b = 0; b < n; ++b) {
      const double c = ci.cov(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b));
      fr.covariance(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b)) = std::isfinite(c) ? c * scale[a] * scale[b] : c;
    }
    const double v = fr.covariance(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(a));
    fr.crb[a] = std::isfinite(v) ? std::sqrt(std::max(0.0, v)) : kInf;
  }
  for (int u : ci.undetermined) fr.undetermined.push_back(fr.names[static_cast<std::size_t>(u)]);
  fr.status = ci.reason.empty() ? Status::Ok() : Status::Error(StatusCode::kFailed, "degenerate: " + ci.reason);
  return fr;
}

}  // namespace slitstep
