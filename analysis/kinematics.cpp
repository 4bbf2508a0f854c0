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

// Parameters: p0 = v0, p1 = vc sin i, p2 = ln Rt, [p3 = PA in degrees].
struct Model {
  const DiskGeometry* g;
  double pa_fixed_deg;
  bool free_pa;
  double operator()(const Eigen::VectorXd& p, double x, double y) const {
    DiskGeometry gg = *g;
    gg.pa_deg = free_pa ? p(3) : pa_fixed_deg;
    const DiskCoords c = disk_coords(gg, x, y);
    return p(0) + (2.0 / kPi) * p(1) * std::atan(c.r_arcsec / std::exp(p(2))) * c.cos_theta;
  }
};

double chi2_of(const Model& m, const std::vector<Point>& pts, const Eigen::VectorXd& p) {
  double s = 0;
  for (const auto& q : pts) {
    const double r = q.v - m(p, q.x, q.y);
    s += q.w * r * r;
  }
  return s;
}

struct LmResult {
  Eigen::VectorXd p;
  Eigen::MatrixXd jtj;
  double chi2;
  int iterations;
  bool converged;
};

// Levenberg-Marquardt (Marquardt's diagonal scaling) with a central-difference Jacobian.
LmResult levenberg_marquardt(const Model& m, const std::vector<Point>& pts, Eigen::VectorXd p, int max_it) {
  const int np = static_cast<int>(p.size());
  const int n = static_cast<int>(pts.size());
  double lambda = 1e-3;
  double chi2 = chi2_of(m, pts, p);
  LmResult out{p, Eigen::MatrixXd::Zero(np, np), chi2, 0, false};
  Eigen::MatrixXd J(n, np);
  Eigen::VectorXd r(n);
  auto jacobian = [&](const Eigen::VectorXd& pp) {
    for (int k = 0; k < n; ++k) r(k) = std::sqrt(pts[k].w) * (pts[k].v - m(pp, pts[k].x, pts[k].y));
    for (int j = 0; j < np; ++j) {
      const double h = 1e-6 * std::max(1.0, std::abs(pp(j)));
      Eigen::VectorXd a = pp, b = pp;
      a(j) += h;
      b(j) -= h;
      for (int k = 0; k < n; ++k) {
        J(k, j) = std::sqrt(pts[k].w) * (m(a, pts[k].x, pts[k].y) - m(b, pts[k].x, pts[k].y)) / (2 * h);
      }
    }
  };
  int it = 0;
  for (; it < max_it; ++it) {
    jacobian(p);
    const Eigen::MatrixXd A = J.transpose() * J;
    const Eigen::VectorXd g = J.transpose() * r;  // residual r = data - model, so step = +A^-1 g
    bool improved = false;
    while (lambda < 1e12) {
      Eigen::MatrixXd Ad = A;
      for (int j = 0; j < np; ++j) Ad(j, j) += lambda * std::max(A(j, j), 1e-30);
      const Eigen::VectorXd step = Ad.ldlt().solve(g);
      const Eigen::VectorXd pn = p + step;
      const double c2 = chi2_of(m, pts, pn);
      if (std::isfinite(c2) && c2 <= chi2) {
        const double rel = (chi2 - c2) / std::max(chi2, 1e-300);
        const double step_rel = step.norm() / (p.norm() + 1e-12);
        p = pn;
        chi2 = c2;
        lambda = std::max(lambda * 0.2, 1e-12);
        improved = true;
        if (rel < 1e-14 || step_rel < 1e-13 || chi2 < 1e-28) {
          out.converged = true;
        }
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
  jacobian(p);
  out.p = p;
  out.jtj = J.transpose() * J;
  out.chi2 = chi2;
  out.iterations = it + 1;
  return out;
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
  // Starting values.
  std::vector<double> vs, rr;
  for (const auto& p : pts) vs.push_back(p.v);
  const double v0s = median(vs);
  double max_r = 0;
  std::vector<double> proj;
  for (const auto& p : pts) {
    const DiskCoords c = disk_coords(g, p.x, p.y);
    max_r = std::max(max_r, c.r_arcsec);
    if (std::abs(c.cos_theta) > 0.5) proj.push_back((p.v - v0s) / c.cos_theta);
  }
  double vcs = proj.empty() ? 100.0 : percentile(proj, 0.9);
  if (!proj.empty() && median(proj) < 0) vcs = percentile(proj, 0.1);
  if (!(std::abs(vcs) > 1.0)) vcs = 50.0;
  Model m{&g, pa_deg, free_pa};
  LmResult best{};
  best.chi2 = std::numeric_limits<double>::infinity();
  const double rt_starts[] = {0.1, 0.3, 1.0};
  for (double frac : rt_starts) {
    Eigen::VectorXd p(np);
    p(0) = v0s;
    p(1) = vcs * 1.2;
    p(2) = std::log(std::max(frac * max_r, 0.01));
    if (free_pa) p(3) = pa_deg;
    LmResult r = levenberg_marquardt(m, pts, p, o.max_iterations);
    if (r.chi2 < best.chi2) best = r;
  }
  if (!std::isfinite(best.chi2)) {
    f.status = Status::Error(StatusCode::kFailed, "arctan fit: non-finite chi^2");
    return f;
  }
  const int dof = f.n_points - np;
  const double scale = (o.error_model == FitErrorModel::kScaledByChi2 || !weighted) ? best.chi2 / dof : 1.0;
  Eigen::MatrixXd cov = best.jtj.ldlt().solve(Eigen::MatrixXd::Identity(np, np)) * scale;
  Eigen::VectorXd p = best.p;
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
  for (const auto& q : pts) {
    const double r = q.v - m(best.p, q.x, q.y);
    ss += r * r;
  }
  f.rmse_kms = std::sqrt(ss / f.n_points);
  if (!best.converged) {
    f.status = Status::Error(StatusCode::kNotConverged,
                             "arctan fit: not converged in " + std::to_string(o.max_iterations) + " iterations");
  } else if (rt > 50.0 * std::max(max_r, 1e-3)) {
    f.status = Status::Error(StatusCode::kOk, "R_t far beyond the data: v_c is an extrapolation (solid-body curve)");
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
