#include "analysis/kinematics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <Eigen/Dense>

#include "core/rng.hpp"
#include "core/units.hpp"

namespace slitstep {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Point {
  double x, y, v, w;
};

// Full parameters: p0 = v0, p1 = vc sin i, p2 = ln Rt, [p3 = PA in degrees]. For fixed
// (ln Rt, PA) the model v_k = v0 + (vc sin i) b_k, b_k = (2/pi) arctan(R_k/Rt) cos theta_k, is
// linear in (v0, vc sin i): the fit uses variable projection (Golub & Pereyra 1973) — LM over the
// non-linear parameters only, the linear ones solved exactly at every evaluation — which removes
// the long v_c-R_t valley of a nearly solid-body curve.
struct Model {
  const DiskGeometry* g;
  const std::vector<Point>* pts;
  double pa_fixed_deg;
  bool free_pa;
  Eigen::VectorXd basis(double ln_rt, double pa_deg) const {
    DiskGeometry gg = *g;
    gg.pa_deg = pa_deg;
    const double rt = std::exp(ln_rt);
    Eigen::VectorXd b(static_cast<Eigen::Index>(pts->size()));
    for (std::size_t k = 0; k < pts->size(); ++k) {
      const DiskCoords c = disk_coords(gg, (*pts)[k].x, (*pts)[k].y);
      b(static_cast<Eigen::Index>(k)) = (2.0 / kPi) * std::atan(c.r_arcsec / rt) * c.cos_theta;
    }
    return b;
  }
  double pa_of(const Eigen::VectorXd& p, int offset) const { return free_pa ? p(offset) : pa_fixed_deg; }
  // Model values for the full parameter vector.
  Eigen::VectorXd full(const Eigen::VectorXd& p) const {
    return Eigen::VectorXd::Constant(static_cast<Eigen::Index>(pts->size()), p(0)) + p(1) * basis(p(2), pa_of(p, 3));
  }
  // Full parameters from the non-linear ones q = (ln Rt[, PA]) by weighted linear least squares.
  Eigen::VectorXd project(const Eigen::VectorXd& q) const {
    const Eigen::VectorXd b = basis(q(0), pa_of(q, 1));
    Eigen::Matrix2d A = Eigen::Matrix2d::Zero();
    Eigen::Vector2d r = Eigen::Vector2d::Zero();
    for (std::size_t k = 0; k < pts->size(); ++k) {
      const Point& pt = (*pts)[k];
      const Eigen::Vector2d row(1.0, b(static_cast<Eigen::Index>(k)));
      A += pt.w * row * row.transpose();
      r += pt.w * pt.v * row;
    }
    const Eigen::Vector2d lin = A.ldlt().solve(r);
    Eigen::VectorXd p(q.size() + 2);
    p << lin(0), lin(1), q;
    return p;
  }
};

struct LmResult {
  Eigen::VectorXd p;
  double chi2;
  int iterations;
  bool converged;
};

// Levenberg-Marquardt (Marquardt's diagonal scaling) with a central-difference Jacobian on a
// vector model f(p) (values at all points), data y and weights w. Box bounds are enforced by
// projecting every trial step onto them.
template <class F>
LmResult levenberg_marquardt(const F& f, const Eigen::VectorXd& y, const Eigen::VectorXd& w, Eigen::VectorXd p,
                             int max_it, const Eigen::VectorXd& lo, const Eigen::VectorXd& hi) {
  const Eigen::Index np = p.size(), n = y.size();
  const Eigen::VectorXd sw = w.cwiseSqrt();
  auto chi2_of = [&](const Eigen::VectorXd& pp) { return (sw.cwiseProduct(y - f(pp))).squaredNorm(); };
  double lambda = 1e-3;
  double chi2 = chi2_of(p);
  LmResult out{p, chi2, 0, false};
  Eigen::MatrixXd J(n, np);
  int it = 0;
  for (; it < max_it; ++it) {
    const Eigen::VectorXd r = sw.cwiseProduct(y - f(p));
    for (Eigen::Index j = 0; j < np; ++j) {
      const double h = 1e-6 * std::max(1.0, std::abs(p(j)));
      Eigen::VectorXd a = p, b = p;
      a(j) += h;
      b(j) -= h;
      J.col(j) = sw.cwiseProduct(f(a) - f(b)) / (2 * h);
    }
    const Eigen::MatrixXd A = J.transpose() * J;
    const Eigen::VectorXd g = J.transpose() * r;  // r = data - model, so the step is +A^-1 g
    bool improved = false;
    while (lambda < 1e12) {
      Eigen::MatrixXd Ad = A;
      for (Eigen::Index j = 0; j < np; ++j) Ad(j, j) += lambda * std::max(A(j, j), 1e-30);
      const Eigen::VectorXd pn = (p + Ad.ldlt().solve(g)).cwiseMax(lo).cwiseMin(hi);
      const double c2 = chi2_of(pn);
      if (std::isfinite(c2) && c2 <= chi2) {
        const double rel = (chi2 - c2) / std::max(chi2, 1e-300);
        const double step_rel = (pn - p).norm() / (p.norm() + 1e-12);
        p = pn;
        chi2 = c2;
        lambda = std::max(lambda * 0.2, 1e-12);
        improved = true;
        if (rel < 1e-14 || step_rel < 1e-13 || chi2 < 1e-28) out.converged = true;
        break;
      }
      lambda *= 10.0;
    }
    if (!improved) {  // no downhill step at any damping: at the minimum to machine precision
      out.converged = true;
      break;
    }
    if (out.converged) break;
  }
  out.p = p;
  out.chi2 = chi2;
  out.iterations = it + 1;
  return out;
}

// J^T W J of the full model at p (central differences), for the covariance.
Eigen::MatrixXd normal_matrix(const Model& m, const Eigen::VectorXd& p, const Eigen::VectorXd& w) {
  const Eigen::VectorXd sw = w.cwiseSqrt();
  Eigen::MatrixXd J(w.size(), p.size());
  for (Eigen::Index j = 0; j < p.size(); ++j) {
    const double h = 1e-6 * std::max(1.0, std::abs(p(j)));
    Eigen::VectorXd a = p, b = p;
    a(j) += h;
    b(j) -= h;
    J.col(j) = sw.cwiseProduct(m.full(a) - m.full(b)) / (2 * h);
  }
  return J.transpose() * J;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

double wrap180(double a) {
  while (a > 180.0) a -= 360.0;
  while (a <= -180.0) a += 360.0;
  return a;
}

}  // namespace

std::string_view rotation_class_name(RotationClass c) {
  switch (c) {
    case RotationClass::kRegular: return "regular rotation";
    case RotationClass::kDisturbed: return "disturbed rotation";
    case RotationClass::kDispersionDominated: return "dispersion-dominated";
    case RotationClass::kUndetermined: break;
  }
  return "undetermined";
}

void KinematicsOptions::validate() const {
  auto fail = [](const std::string& f, double v, const std::string& rule) {
    throw InvalidOptions("KinematicsOptions." + f + " = " + format_value(v) + ": " + rule);
  };
  if (!(slit_width_arcsec > 0.0) || !std::isfinite(slit_width_arcsec)) {
    fail("slit_width_arcsec", slit_width_arcsec, "must be finite and > 0");
  }
  if (min_points < 4) fail("min_points", min_points, "must be >= 4 (3 or 4 free parameters and a dof)");
  if (max_iterations < 1) fail("max_iterations", max_iterations, "must be >= 1");
  if (!std::isfinite(sigma0_min_radius_kpc) || sigma0_min_radius_kpc < 0.0) {
    fail("sigma0_min_radius_kpc", sigma0_min_radius_kpc, "must be finite and >= 0");
  }
  if (sigma0_min_spaxels < 1) fail("sigma0_min_spaxels", sigma0_min_spaxels, "must be >= 1");
  if (sigma0_error == Sigma0ErrorModel::kBootstrap && n_bootstrap < 2) {
    fail("n_bootstrap", n_bootstrap, "must be >= 2 for the bootstrap error of sigma_0");
  }
  if (!(disturbed_min_v_over_sigma > 0.0)) {
    fail("disturbed_min_v_over_sigma", disturbed_min_v_over_sigma, "must be > 0");
  }
  if (!(regular_min_v_over_sigma > disturbed_min_v_over_sigma) || !std::isfinite(regular_min_v_over_sigma)) {
    fail("regular_min_v_over_sigma", regular_min_v_over_sigma,
         "must be finite and > disturbed_min_v_over_sigma = " + format_value(disturbed_min_v_over_sigma));
  }
  if (!(curve_bin_kpc > 0.0)) fail("curve_bin_kpc", curve_bin_kpc, "must be > 0");
}

RotationClass classify_v_over_sigma(double vs, const KinematicsOptions& o) {
  if (!std::isfinite(vs)) return RotationClass::kUndetermined;
  if (vs >= o.regular_min_v_over_sigma) return RotationClass::kRegular;
  if (vs >= o.disturbed_min_v_over_sigma) return RotationClass::kDisturbed;
  return RotationClass::kDispersionDominated;
}

ValueError median_with_error(const std::vector<double>& in, Sigma0ErrorModel model, int n_bootstrap,
                             std::uint64_t seed) {
  std::vector<double> v;
  for (double x : in) {
    if (std::isfinite(x)) v.push_back(x);
  }
  ValueError r;
  if (v.empty()) return r;
  r.value = median(v);
  if (v.size() < 2) return r;
  if (model == Sigma0ErrorModel::kStandardError) {
    double m = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    double s = 0;
    for (double x : v) s += (x - m) * (x - m);
    r.err = std::sqrt(s / static_cast<double>(v.size() - 1)) / std::sqrt(static_cast<double>(v.size()));
    return r;
  }
  Rng rng(seed);
  std::vector<double> meds(static_cast<std::size_t>(n_bootstrap));
  std::vector<double> s(v.size());
  for (auto& md : meds) {
    for (auto& x : s) x = v[std::min(static_cast<std::size_t>(rng.uniform() * static_cast<double>(v.size())), v.size() - 1)];
    md = median(s);
  }
  double m = 0;
  for (double x : meds) m += x;
  m /= static_cast<double>(meds.size());
  double ss = 0;
  for (double x : meds) ss += (x - m) * (x - m);
  r.err = std::sqrt(ss / static_cast<double>(meds.size() - 1));
  return r;
}

namespace {

ArctanFit fit_once(const KinematicsInput& in, const KinematicsOptions& o, double pa_deg, bool free_pa,
                   bool use_slit) {
  ArctanFit f;
  const DiskGeometry& g0 = in.geometry;
  const double sin_i = std::sin(g0.inclination_deg / kDegPerRad);
  DiskGeometry g = g0;
  g.pa_deg = pa_deg;
  // Select the points.
  std::vector<Point> pts;
  bool all_err = true;
  const std::size_t n = in.x_arcsec.size();
  for (std::size_t k = 0; k < n; ++k) {
    const double v = in.velocity_kms[k];
    if (!(std::isfinite(v) && std::isfinite(in.x_arcsec[k]) && std::isfinite(in.y_arcsec[k]))) continue;
    if (use_slit) {
      const DiskCoords c = disk_coords(g, in.x_arcsec[k], in.y_arcsec[k]);
      if (std::abs(c.b_arcsec) > 0.5 * o.slit_width_arcsec) continue;
    }
    const double e = k < in.velocity_err_kms.size() ? in.velocity_err_kms[k] : kNaN;
    if (!(std::isfinite(e) && e > 0)) all_err = false;
    pts.push_back({in.x_arcsec[k], in.y_arcsec[k], v, std::isfinite(e) && e > 0 ? 1.0 / (e * e) : 1.0});
  }
  const bool weighted = all_err;
  if (!weighted) {
    for (auto& p : pts) p.w = 1.0;
  }
  f.n_points = static_cast<int>(pts.size());
  const int np = free_pa ? 4 : 3;
  if (f.n_points < std::max(o.min_points, np + 1)) {
    f.status = Status::Error(StatusCode::kFailed, "arctan fit: only " + std::to_string(f.n_points) +
                                                      " spaxels with a velocity" +
                                                      (use_slit ? " in the major-axis slit" : "") + " (< " +
                                                      std::to_string(std::max(o.min_points, np + 1)) + ")");
    return f;
  }
  if (!(sin_i > 1e-3)) {
    f.status = Status::Error(StatusCode::kInvalidInput, "arctan fit: inclination ~0: v_c undefined");
    return f;
  }
  // Extent of the data (R_t starts and bounds); v0 and v_c sin i need no start values.
  double max_r = 0;
  for (const auto& p : pts) max_r = std::max(max_r, disk_coords(g, p.x, p.y).r_arcsec);
  Model m{&g, &pts, pa_deg, free_pa};
  Eigen::VectorXd y(f.n_points), w(f.n_points);
  for (int k = 0; k < f.n_points; ++k) {
    y(k) = pts[static_cast<std::size_t>(k)].v;
    w(k) = pts[static_cast<std::size_t>(k)].w;
  }
  // R_t bounds: 1e-4" (a step) to 100x the data extent (a solid-body curve within the data).
  const double ln_rt_lo = std::log(1e-4), ln_rt_hi = std::log(100.0 * std::max(max_r, 1e-3));
  const int nq = free_pa ? 2 : 1;
  Eigen::VectorXd lo = Eigen::VectorXd::Constant(nq, -std::numeric_limits<double>::infinity());
  Eigen::VectorXd hi = Eigen::VectorXd::Constant(nq, std::numeric_limits<double>::infinity());
  lo(0) = ln_rt_lo;
  hi(0) = ln_rt_hi;
  auto reduced = [&](const Eigen::VectorXd& q) { return m.full(m.project(q)); };
  LmResult best{};
  best.chi2 = std::numeric_limits<double>::infinity();
  for (double frac : {0.1, 0.3, 1.0}) {
    Eigen::VectorXd q(nq);
    q(0) = std::log(std::max(frac * max_r, 0.01));
    if (free_pa) q(1) = pa_deg;
    LmResult r = levenberg_marquardt(reduced, y, w, q, o.max_iterations, lo, hi);
    if (r.chi2 < best.chi2) best = r;
  }
  if (!std::isfinite(best.chi2)) {
    f.status = Status::Error(StatusCode::kFailed, "arctan fit: non-finite chi^2");
    return f;
  }
  const Eigen::VectorXd pfull = m.project(best.p);
  const int dof = f.n_points - np;
  const double scale = (o.error_model == FitErrorModel::kScaledByChi2 || !weighted) ? best.chi2 / dof : 1.0;
  Eigen::MatrixXd cov = normal_matrix(m, pfull, w).ldlt().solve(Eigen::MatrixXd::Identity(np, np)) * scale;
  Eigen::VectorXd p = pfull;
  double pa_out = free_pa ? p(3) : pa_deg;
  if (p(1) < 0) {  // the given / started PA points at the approaching side
    p(1) = -p(1);
    pa_out += 180.0;
  }
  f.v0_kms = {p(0), std::sqrt(std::max(cov(0, 0), 0.0))};
  f.vc_obs_kms = {p(1), std::sqrt(std::max(cov(1, 1), 0.0))};
  f.vc_kms = {p(1) / sin_i, f.vc_obs_kms.err / sin_i};
  const double rt = std::exp(p(2));
  f.rt_arcsec = {rt, rt * std::sqrt(std::max(cov(2, 2), 0.0))};
  f.rt_kpc = rt * g0.kpc_per_arcsec;
  f.pa_deg = {wrap180(pa_out), free_pa ? std::sqrt(std::max(cov(3, 3), 0.0)) : kNaN};
  f.chi2 = best.chi2;
  f.iterations = best.iterations;
  double ss = 0;
  const Eigen::VectorXd res = y - m.full(pfull);
  ss = res.squaredNorm();
  f.rmse_kms = std::sqrt(ss / f.n_points);
  if (!best.converged) {
    f.status = Status::Error(StatusCode::kNotConverged,
                             "arctan fit: not converged in " + std::to_string(o.max_iterations) + " iterations");
  } else if (p(2) >= ln_rt_hi - 1e-9) {
    f.status = Status::Error(StatusCode::kOutOfRange,
                             "arctan fit: R_t at its upper bound (100x the data extent): the rotation curve is "
                             "solid-body within the data and v_c is unconstrained");
  } else if (p(2) <= ln_rt_lo + 1e-9) {
    f.status = Status::Error(StatusCode::kOutOfRange, "arctan fit: R_t at its lower bound (1e-4 arcsec): a step-like curve");
  } else if (rt > 10.0 * std::max(max_r, 1e-3)) {
    f.status = Status::Error(StatusCode::kOk, "R_t beyond 10x the data extent: v_c is an extrapolation");
  }
  return f;
}

// Start value for a free PA: direction of the best-fit velocity plane v = c + gx dx + gy dy.
double plane_pa_deg(const KinematicsInput& in) {
  Eigen::Matrix3d A = Eigen::Matrix3d::Zero();
  Eigen::Vector3d b = Eigen::Vector3d::Zero();
  for (std::size_t k = 0; k < in.x_arcsec.size(); ++k) {
    if (!std::isfinite(in.velocity_kms[k])) continue;
    const Eigen::Vector3d row(1.0, in.x_arcsec[k] - in.geometry.center_x_arcsec,
                              in.y_arcsec[k] - in.geometry.center_y_arcsec);
    A += row * row.transpose();
    b += row * in.velocity_kms[k];
  }
  const Eigen::Vector3d c = A.ldlt().solve(b);
  // receding direction (-sin pa, cos pa) parallel to (gx, gy)
  return std::atan2(-c(1), c(2)) * kDegPerRad;
}

}  // namespace

ArctanFit fit_arctan_rotation(const KinematicsInput& in, const KinematicsOptions& o) {
  const std::size_t n = in.x_arcsec.size();
  if (in.y_arcsec.size() != n || in.velocity_kms.size() != n) {
    ArctanFit f;
    f.status = Status::Error(StatusCode::kInvalidInput, "kinematics input arrays have different lengths");
    return f;
  }
  const bool slit = o.mode == RotationCurveMode::kMajorAxisSlit;
  if (!o.fit_pa) return fit_once(in, o, in.geometry.pa_deg, false, slit);
  ArctanFit full = fit_once(in, o, plane_pa_deg(in), true, false);
  if (!slit || !std::isfinite(full.pa_deg.value)) return full;
  ArctanFit s = fit_once(in, o, full.pa_deg.value, false, true);
  s.pa_deg = full.pa_deg;  // the PA (and its error) come from the full-field fit
  return s;
}

KinematicsResult analyze_kinematics(const KinematicsInput& in, const KinematicsOptions& o) {
  KinematicsResult r;
  r.fit = fit_arctan_rotation(in, o);
  const std::size_t n = in.x_arcsec.size();
  DiskGeometry g = in.geometry;
  if (std::isfinite(r.fit.pa_deg.value)) g.pa_deg = r.fit.pa_deg.value;
  // sigma_0
  std::vector<double> outer;
  for (std::size_t k = 0; k < n && k < in.sigma_kms.size(); ++k) {
    if (!std::isfinite(in.sigma_kms[k])) continue;
    if (disk_coords(g, in.x_arcsec[k], in.y_arcsec[k]).r_kpc > o.sigma0_min_radius_kpc) {
      outer.push_back(in.sigma_kms[k]);
    }
  }
  r.n_sigma0 = static_cast<int>(outer.size());
  Status sigma_status;
  if (r.n_sigma0 >= o.sigma0_min_spaxels) {
    r.sigma0_kms = median_with_error(outer, o.sigma0_error, o.n_bootstrap, o.seed);
  } else {
    sigma_status = Status::Error(StatusCode::kFailed,
                                 "sigma_0: only " + std::to_string(r.n_sigma0) + " spaxels beyond " +
                                     format_value(o.sigma0_min_radius_kpc) + " kpc (< " +
                                     std::to_string(o.sigma0_min_spaxels) + ")");
  }
  const bool fit_ok = r.fit.status.ok();
  if (fit_ok && std::isfinite(r.sigma0_kms.value) && r.sigma0_kms.value > 0) {
    const double vc = r.fit.vc_kms.value, s0 = r.sigma0_kms.value;
    r.v_over_sigma.value = vc / s0;
    const double e1 = r.fit.vc_kms.err / vc, e2 = std::isfinite(r.sigma0_kms.err) ? r.sigma0_kms.err / s0 : 0.0;
    r.v_over_sigma.err = r.v_over_sigma.value * std::hypot(e1, e2);
    r.rotation_class = classify_v_over_sigma(r.v_over_sigma.value, o);
  }
  if (fit_ok && std::isfinite(in.re_kpc) && in.re_kpc > 0) {
    const double re_arcsec = in.re_kpc / in.geometry.kpc_per_arcsec;
    const double v = (2.0 / kPi) * r.fit.vc_kms.value * std::atan(re_arcsec / r.fit.rt_arcsec.value);
    double v2 = v * v;
    if (o.mdyn_pressure_support && std::isfinite(r.sigma0_kms.value)) v2 += 3.36 * r.sigma0_kms.value * r.sigma0_kms.value;
    r.v_re_kms = std::sqrt(v2);
    r.mdyn_msun = v2 * in.re_kpc / kGravitationalConstant_kpc_kms2_msun;
  }
  // 1-D curve along the major axis (display / the paper's Fig. 4f): median v in bins of signed a.
  std::vector<double> a_kpc, vv;
  for (std::size_t k = 0; k < n; ++k) {
    if (!std::isfinite(in.velocity_kms[k])) continue;
    const DiskCoords c = disk_coords(g, in.x_arcsec[k], in.y_arcsec[k]);
    if (std::abs(c.b_arcsec) > 0.5 * o.slit_width_arcsec) continue;
    a_kpc.push_back(c.a_arcsec * g.kpc_per_arcsec);
    vv.push_back(in.velocity_kms[k]);
  }
  if (!a_kpc.empty()) {
    const double amin = *std::min_element(a_kpc.begin(), a_kpc.end());
    const double start = std::floor(amin / o.curve_bin_kpc) * o.curve_bin_kpc;
    r.major_axis_curve = binned_profile(a_kpc, vv, o.curve_bin_kpc, start);
  }
  if (!fit_ok) {
    r.status = r.fit.status;
  } else if (!sigma_status.ok()) {
    r.status = sigma_status;
  }
  return r;
}

}  // namespace slitstep
