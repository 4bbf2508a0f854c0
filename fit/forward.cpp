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

// H = J^T J and (if r) g = J^T r of a column-major m x n Jacobian, by vectorised dot products over
// cache-sized row blocks (Eigen's matrix product is very slow for this m >> n shape). The blocks
// run on `threads` threads; their partial sums are added in block order, so the result does not
// depend on the thread count.
void normal_equations(const double* jcol, std::size_t m, std::size_t n, const double* r, Eigen::MatrixXd& H,
                      Eigen::VectorXd* g, int threads = 1) {
  using Vec = Eigen::Map<const Eigen::VectorXd>;
  const auto ni = static_cast<Eigen::Index>(n);
  H.setZero(ni, ni);
  if (g) g->setZero(ni);
  constexpr std::size_t kRows = 2048;
  const std::size_t nblk = (m + kRows - 1) / kRows, npair = n * (n + 1) / 2 + (r ? n : 0);
  std::vector<double> part(nblk * npair);
  const int nt = nblk >= 32 ? std::max(1, threads) : 1;  // small problems: not worth a parallel region
#pragma omp parallel for num_threads(nt) schedule(static)
  for (std::size_t blk = 0; blk < nblk; ++blk) {
    const std::size_t q0 = blk * kRows;
    const auto len = static_cast<Eigen::Index>(std::min(kRows, m - q0));
    double* out = part.data() + blk * npair;
    for (std::size_t i = 0; i < n; ++i) {
      const Vec ci(jcol + i * m + q0, len);
      for (std::size_t j = 0; j <= i; ++j) *out++ = ci.dot(Vec(jcol + j * m + q0, len));
      if (r) *out++ = ci.dot(Vec(r + q0, len));
    }
  }
  for (std::size_t blk = 0; blk < nblk; ++blk) {
    const double* in = part.data() + blk * npair;
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j <= i; ++j) H(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) += *in++;
      if (r) (*g)[static_cast<Eigen::Index>(i)] += *in++;
    }
  }
  for (Eigen::Index i = 0; i < ni; ++i)
    for (Eigen::Index j = 0; j < i; ++j) H(j, i) = H(i, j);
}

// The (n + 1)-row equivalent of a least-squares problem at one point: from H = J^T J, g = J^T r
// and rr = r^T r, a J' ((n + 1) x n, row-major) and r' (n + 1) with J'^T J' = H, J'^T r' = g and
// |r'|^2 = rr (to rounding). Through the correlation-form eigen-decomposition H = D V L V^T D:
// J' = L^1/2 V^T D, r' = L^-1/2 V^T D^-1 g, the last row of r' carries the rest of rr. Directions
// with a (numerically) zero eigenvalue get zero rows (g has no component there).
void reduce_least_squares(const Eigen::MatrixXd& H, const Eigen::VectorXd& g, double rr, double* jr, double* rv) {
  const Eigen::Index n = H.rows();
  Eigen::VectorXd d(n);
  for (Eigen::Index i = 0; i < n; ++i) d[i] = H(i, i) > 0.0 ? std::sqrt(H(i, i)) : 1.0;
  Eigen::MatrixXd C(n, n);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j) C(i, j) = H(i, j) / (d[i] * d[j]);
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(C);
  const Eigen::VectorXd& lam = es.eigenvalues();
  const Eigen::MatrixXd& V = es.eigenvectors();
  const double lmax = lam[n - 1];
  std::fill(jr, jr + (n + 1) * n, 0.0);
  std::fill(rv, rv + n + 1, 0.0);
  double explained = 0.0;
  for (Eigen::Index e = 0; e < n; ++e) {
    if (!(lam[e] > 1e-13 * lmax) || !(lam[e] > 0.0)) continue;
    const double sl = std::sqrt(lam[e]);
    double u = 0.0;
    for (Eigen::Index j = 0; j < n; ++j) {
      jr[e * n + j] = sl * V(j, e) * d[j];
      u += V(j, e) * g[j] / d[j];
    }
    rv[e] = u / sl;
    explained += rv[e] * rv[e];
  }
  rv[n] = std::sqrt(std::max(0.0, rr - explained));
}

// Our own Ceres cost: residuals through the operator; Jacobian by parallel finite differences
// (FitOptions::fd_iterations, analytic columns for proportional parameters), cached with the
// residuals of the last point (Ceres asks for the residuals of a candidate, then for the Jacobian
// of the same point when it accepts it). With FitOptions::reduce_residuals it hands Ceres the
// (n + 1)-row equivalent (reduce_least_squares): at a point without Jacobian, r' = (|r|, 0, ...).
class ForwardCost final : public ceres::CostFunction {
 public:
  ForwardCost(ProblemEvaluator& ev, const std::vector<double>& scale, const FitOptions& o, int threads)
      : ev_(ev), scale_(scale), step_(o.fd_step), scheme_(o.fd_iterations), linear_(o.linear_columns),
        reduce_(o.reduce_residuals), threads_(threads), m_(ev.num_residuals()) {
    const std::size_t n = scale.size();
    set_num_residuals(static_cast<int>(reduce_ ? n + 1 : m_));
    mutable_parameter_block_sizes()->push_back(static_cast<int>(n));
  }
  /// Hands over the residuals and (column-major) Jacobian already computed at theta.
  void seed(const std::vector<double>& theta, const std::vector<double>& r, const std::vector<double>& jcol) {
    last_theta_ = theta;
    last_r_ = r;
    jcol_ = jcol;
    have_r_ = have_j_ = true;
  }
  bool Evaluate(double const* const* parameters, double* residuals, double** jacobians) const override {
    const std::size_t n = scale_.size();
    std::vector<double> theta(n);
    for (std::size_t i = 0; i < n; ++i) theta[i] = parameters[0][i] * scale_[i];
    const bool same = have_r_ && std::equal(theta.begin(), theta.end(), last_theta_.begin());
    const bool want_j = jacobians && jacobians[0];
    if (!same) {
      have_r_ = have_j_ = false;
      last_r_.resize(m_);
      Status st;
      if (want_j) {
        jcol_.resize(m_ * n);
        st = ev_.jacobian(theta.data(), step_, scheme_, linear_, jcol_.data(), last_r_.data(), false, true);
        have_j_ = st.ok();
      } else {
        st = ev_.residuals(theta.data(), last_r_.data(), 0, threads_);
      }
      if (!st.ok()) {
        last_error_ = st.message;
        return false;
      }
      last_theta_ = theta;
      have_r_ = true;
    } else if (want_j && !have_j_) {
      jcol_.resize(m_ * n);
      const Status st = ev_.jacobian(theta.data(), step_, scheme_, linear_, jcol_.data(), last_r_.data(), true, true);
      if (!st.ok()) {
        last_error_ = st.message;
        return false;
      }
      have_j_ = true;
    }
    const Eigen::Map<const Eigen::VectorXd> r(last_r_.data(), static_cast<Eigen::Index>(m_));
    if (!reduce_) {
      if (residuals) std::copy(last_r_.begin(), last_r_.end(), residuals);
      if (want_j)
        for (std::size_t q = 0; q < m_; ++q)
          for (std::size_t i = 0; i < n; ++i) jacobians[0][q * n + i] = jcol_[i * m_ + q];
      return true;
    }
    const double rr = r.squaredNorm();
    if (!want_j) {
      if (residuals) {
        std::fill(residuals, residuals + n + 1, 0.0);
        residuals[0] = std::sqrt(rr);
      }
      return true;
    }
    Eigen::MatrixXd H;
    Eigen::VectorXd g;
    normal_equations(jcol_.data(), m_, n, last_r_.data(), H, &g, threads_);
    std::vector<double> rv(n + 1);
    reduce_least_squares(H, g, rr, jacobians[0], rv.data());
    if (residuals) std::copy(rv.begin(), rv.end(), residuals);
    return true;
  }
  const std::string& last_error() const { return last_error_; }

 private:
  ProblemEvaluator& ev_;
  std::vector<double> scale_;
  double step_;
  FiniteDifferences scheme_;
  bool linear_, reduce_;
  int threads_;
  std::size_t m_;
  mutable bool have_r_ = false, have_j_ = false;
  mutable std::vector<double> last_theta_, last_r_, jcol_;
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

const char* finite_differences_name(FiniteDifferences d) {
  return d == FiniteDifferences::kForward ? "forward" : "central";
}

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
  wd_.resize(used_.size());
  for (std::size_t q = 0; q < used_.size(); ++q) wd_[q] = problem.data[used_[q]] * problem.inv_sigma[used_[q]];
  const auto& specs = problem.param.specs();
  const std::vector<int> fidx = problem.param.free_indices();
  for (int k : prior_) prior_sigma_.push_back(specs[static_cast<std::size_t>(fidx[static_cast<std::size_t>(k)])].prior.sigma);
  // Parameters the operator is proportional to (judged at the start: the structure - clumps, AGN,
  // ... - does not change during a fit).
  const std::vector<double> start = problem.param.start();
  GalaxyParams at;
  try {
    at = problem.param.to_params(start.data());
  } catch (const std::exception&) {
    return;  // a bad start is reported by the fitter
  }
  const std::vector<std::string> names = problem.param.free_names();
  for (std::size_t i = 0; i < names.size(); ++i)
    if (problem.op->proportional_to(names[i], at)) linear_.push_back(static_cast<int>(i));
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
  return jacobian(theta, step, FiniteDifferences::kCentral, false, jac, r0, r0_valid, false);
}

Status ProblemEvaluator::jacobian(const double* theta, double step, FiniteDifferences scheme, bool linear_columns,
                                  double* jac, double* r0, bool r0_valid, bool column_major) {
  const std::size_t n = scale_.size(), m = num_residuals(), nu = used_.size();
  std::vector<char> analytic(n, 0);
  if (linear_columns)
    for (int i : linear_)
      if (theta[i] != 0.0 && std::isfinite(theta[i])) analytic[static_cast<std::size_t>(i)] = 1;
  // Two abscissae per finite-difference column (internal units) and the buffer holding the
  // residuals at each (-1: the centre theta itself). Evaluations at the same theta as the previous
  // call are reused (e.g. the forward-difference points of the last Ceres iteration for the
  // central-difference covariance at the solution).
  const bool same_theta = fd_valid_ && fd_theta_.size() == n && std::equal(theta, theta + n, fd_theta_.begin());
  if (!same_theta) {
    fd_keys_.assign(fd_keys_.size(), {n, 0.0});  // every buffer stale
    centre_valid_ = false;
  }
  fd_valid_ = false;
  std::vector<double> xa(n, 0.0), xb(n, 0.0);
  std::vector<int> buf_a(n, -1), buf_b(n, -1);
  struct Task {
    std::size_t param;
    double value;  // physical
    std::size_t buffer;
  };
  std::vector<Task> tasks;
  std::vector<char> taken(fd_keys_.size(), 0);
  auto find_buffer = [&](std::size_t i, double v) -> int {
    for (std::size_t b = 0; b < fd_keys_.size(); ++b)
      if (fd_keys_[b].first == i && fd_keys_[b].second == v) return static_cast<int>(b);
    return -1;
  };
  bool need_centre = r0 != nullptr && !r0_valid;
  for (std::size_t i = 0; i < n; ++i) {
    if (analytic[i]) {
      need_centre = true;
      continue;
    }
    const double x = theta[i] / scale_[i];
    const double lo = lower_[i] / scale_[i], hi = upper_[i] / scale_[i];
    if (scheme == FiniteDifferences::kForward && x + step <= hi) {
      xa[i] = x + step, xb[i] = x;
    } else if (scheme == FiniteDifferences::kForward && x - step >= lo) {
      xa[i] = x, xb[i] = x - step;
    } else {
      xa[i] = std::min(x + step, hi);
      xb[i] = std::max(x - step, lo);
    }
    if (!(xa[i] > xb[i]))
      return Status::Error(StatusCode::kFailed, "finite differences: no room between the bounds of parameter " +
                                                    std::to_string(i));
    for (int side = 0; side < 2; ++side) {
      const double xv = side == 0 ? xa[i] : xb[i];
      if (xv == x) {
        need_centre = true;
        continue;
      }
      const double v = xv * scale_[i];
      int b = find_buffer(i, v);
      if (b < 0) {
        tasks.push_back({i, v, 0});
      } else {
        taken[static_cast<std::size_t>(b)] = 1;
      }
      (side == 0 ? buf_a : buf_b)[i] = b;  // new tasks: filled below
    }
  }
  // Buffers for the new evaluations: those not reused.
  {
    std::size_t b = 0;
    for (auto& t : tasks) {
      while (b < taken.size() && taken[b]) ++b;
      if (b == fd_.size()) {
        fd_.emplace_back();
        fd_keys_.push_back({n, 0.0});
        taken.push_back(0);
      }
      fd_[b].resize(m);
      fd_keys_[b] = {n, 0.0};  // invalid until evaluated
      taken[b] = 1;
      t.buffer = b;
      int& slot_ref = (t.value == xa[t.param] * scale_[t.param]) ? buf_a[t.param] : buf_b[t.param];
      slot_ref = static_cast<int>(b);
    }
  }
  double* centre = r0;
  if (need_centre && !r0) {
    centre_.resize(m);
    centre = centre_.data();
  }
  bool eval_centre = need_centre && !(r0 && r0_valid);
  if (eval_centre && same_theta && centre_valid_) {
    if (centre != centre_.data()) std::copy(centre_.begin(), centre_.end(), centre);
    eval_centre = false;
  }
  const int ntask = static_cast<int>(tasks.size()) + (eval_centre ? 1 : 0);
  std::vector<Status> st(static_cast<std::size_t>(ntask));
  const int nthreads = std::min(slots(), std::max(1, ntask));
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (int t = 0; t < ntask; ++t) {
    const int slot = omp_get_thread_num();
    const int inner = nthreads == 1 ? slots() : 1;
    const auto ts = static_cast<std::size_t>(t);
    if (eval_centre && t == ntask - 1) {
      st[ts] = residuals(theta, centre, slot, inner);
    } else {
      std::vector<double> th(theta, theta + n);
      th[tasks[ts].param] = tasks[ts].value;
      st[ts] = residuals(th.data(), fd_[tasks[ts].buffer].data(), slot, inner);
    }
  }
  for (const auto& s : st)
    if (!s.ok()) return s;  // fd_valid_ stays false: nothing is reused after a failure
  for (const auto& t : tasks) fd_keys_[t.buffer] = {t.param, t.value};
  fd_theta_.assign(theta, theta + n);
  fd_valid_ = true;
  if (need_centre) {
    if (centre != centre_.data()) centre_.assign(centre, centre + m);
    centre_valid_ = true;
  }
  // Columns: (r(xa) - r(xb)) / (xa - xb), or analytic: d r_q / d x_i = scale_i (r_q + w_q d_q) / theta_i
  // on the data rows, d(prior residual)/d x_i = scale_i / sigma on its own prior row.
  std::vector<const double*> pa(n, nullptr), pb(n, nullptr);
  std::vector<double> inv(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    if (analytic[i]) {
      inv[i] = scale_[i] / theta[i];
      continue;
    }
    pa[i] = buf_a[i] >= 0 ? fd_[static_cast<std::size_t>(buf_a[i])].data() : centre;
    pb[i] = buf_b[i] >= 0 ? fd_[static_cast<std::size_t>(buf_b[i])].data() : centre;
    inv[i] = 1.0 / (xa[i] - xb[i]);
  }
  auto prior_entry = [&](std::size_t q, std::size_t i) {
    const std::size_t k = q - nu;
    return prior_[k] == static_cast<int>(i) ? scale_[i] / prior_sigma_[k] : 0.0;
  };
  if (column_major) {
#pragma omp parallel for num_threads(std::min(nthreads, static_cast<int>(std::max<std::size_t>(n, 1)))) schedule(static)
    for (std::size_t i = 0; i < n; ++i) {
      double* c = jac + i * m;
      const double f = inv[i];
      if (analytic[i]) {
        for (std::size_t q = 0; q < nu; ++q) c[q] = f * (centre[q] + wd_[q]);
        for (std::size_t q = nu; q < m; ++q) c[q] = prior_entry(q, i);
      } else {
        const double* a = pa[i];
        const double* b = pb[i];
        for (std::size_t q = 0; q < m; ++q) c[q] = (a[q] - b[q]) * f;
      }
    }
  } else {
    for (std::size_t q = 0; q < m; ++q) {
      double* row = jac + q * n;
      for (std::size_t i = 0; i < n; ++i) {
        if (!analytic[i]) row[i] = (pa[i][q] - pb[i][q]) * inv[i];
        else row[i] = q < nu ? inv[i] * (centre[q] + wd_[q]) : prior_entry(q, i);
      }
    }
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
  // The start as Ceres will see it (x = start / scale, theta = x * scale: equal to the last bit or
  // one off), so that its Jacobian can be handed to Ceres' iteration 0.
  std::vector<double> x(n), start_x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = start[i] / scale[i], start_x[i] = x[i] * scale[i];
  {
    const Status st = ev.jacobian(start_x.data(), options.fd_step, options.fd_iterations, options.linear_columns,
                                  J.data(), r.data(), false, /*column_major=*/true);
    if (!st.ok()) {
      res.n_model_evaluations = ev.evaluations();
      return finish(FitStatus::kFailed, "bad start: the model cannot be evaluated there: " + st.message);
    }
  }
  for (double x : r) res.chi2_start += x * x;
  {
    const Eigen::Map<const Eigen::MatrixXd> Jm(J.data(), static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(n));
    const Eigen::VectorXd cn = Jm.topRows(res.n_used).colwise().squaredNorm().transpose();
    if (cn.maxCoeff() <= 0.0) {
      res.chi2 = res.chi2_start;
      res.n_model_evaluations = ev.evaluations();
      return finish(FitStatus::kFailed,
                    "chi2 is flat in every free parameter at the start (the used data do not depend on them)");
    }
  }

  // ---- Ceres ----------------------------------------------------------------------------------
  auto* cost = new ForwardCost(ev, scale, options, threads);
  cost->seed(start_x, r, J);  // Ceres' iteration 0 asks for exactly this point
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
  // With bounds Ceres runs a projected Armijo line search on every step; its default cubic
  // interpolation asks for the gradient (a whole finite-difference Jacobian) at the candidate
  // before knowing whether the step is taken. Quadratic interpolation needs the cost only.
  so.line_search_interpolation_type = ceres::QUADRATIC;
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
  const Status jst = ev.jacobian(theta.data(), options.fd_step, options.fd_covariance, options.linear_columns, J.data(),
                                 r.data(), false, /*column_major=*/true);
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

  Eigen::MatrixXd H;
  normal_equations(J.data(), m, n, nullptr, H, nullptr, threads);
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
  const Status st = ev.jacobian(theta.data(), options.fd_step, options.fd_covariance, options.linear_columns, J.data(),
                                nullptr, false, /*column_major=*/true);
  fr.n_model_evaluations = ev.evaluations();
  if (!st.ok()) {
    fr.status = st;
    return fr;
  }
  Eigen::MatrixXd Fint;  // data rows only (the first nu of each column), no priors
  {
    std::vector<double> Jd(nu * n);
    for (std::size_t i = 0; i < n; ++i) std::copy(J.begin() + i * m, J.begin() + i * m + nu, Jd.begin() + i * nu);
    normal_equations(Jd.data(), nu, n, nullptr, Fint, nullptr, resolve_threads(options.threads));
  }
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
