#include "analysis/gradient.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "core/rng.hpp"

namespace slitstep {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Core {
  double slope, intercept, var_slope, var_intercept, cov, chi2;
  bool ok;
};

// Weighted LS on the selected indices (repeats allowed: bootstrap).
Core solve(const std::vector<double>& r, const std::vector<double>& z, const std::vector<double>& w,
           const std::vector<std::size_t>& idx) {
  Core c{kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, false};
  double sw = 0, swr = 0;
  for (auto k : idx) {
    sw += w[k];
    swr += w[k] * r[k];
  }
  if (!(sw > 0)) return c;
  const double rbar = swr / sw;
  double swz = 0, sdd = 0, sdz = 0;
  for (auto k : idx) {
    const double d = r[k] - rbar;
    swz += w[k] * z[k];
    sdd += w[k] * d * d;
    sdz += w[k] * d * z[k];
  }
  if (!(sdd > 0)) return c;
  const double b = sdz / sdd;        // slope
  const double a0 = swz / sw;        // value at rbar
  c.slope = b;
  c.intercept = a0 - b * rbar;
  c.var_slope = 1.0 / sdd;
  c.var_intercept = 1.0 / sw + rbar * rbar / sdd;
  c.cov = -rbar / sdd;
  double chi2 = 0;
  for (auto k : idx) {
    const double res = z[k] - (c.intercept + b * r[k]);
    chi2 += w[k] * res * res;
  }
  c.chi2 = chi2;
  c.ok = true;
  return c;
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return kNaN;
  double m = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

}  // namespace

void LineFitOptions::validate() const {
  auto fail = [](const std::string& f, double v, const std::string& rule) {
    throw InvalidOptions("LineFitOptions." + f + " = " + format_value(v) + ": " + rule);
  };
  if (!std::isfinite(r_min) || r_min < 0.0) fail("r_min", r_min, "must be finite and >= 0");
  if (!(r_max > r_min)) fail("r_max", r_max, "must be > r_min = " + format_value(r_min));
  if (min_points < 3) fail("min_points", min_points, "must be >= 3 (a line with an error needs 3 points)");
  if (n_bootstrap < 0) fail("n_bootstrap", n_bootstrap, "must be >= 0");
}

LineFit fit_line(const std::vector<double>& r, const std::vector<double>& z, const std::vector<double>& err,
                 const LineFitOptions& o) {
  LineFit f;
  if (r.size() != z.size() || r.size() != err.size()) {
    f.status = Status::Error(StatusCode::kInvalidInput, "r, z and err have different lengths");
    return f;
  }
  std::vector<double> w(r.size(), 0.0);
  std::vector<std::size_t> idx;
  for (std::size_t k = 0; k < r.size(); ++k) {
    if (!(std::isfinite(r[k]) && std::isfinite(z[k]) && std::isfinite(err[k]) && err[k] > 0)) continue;
    if (r[k] < o.r_min || r[k] > o.r_max) continue;
    w[k] = 1.0 / (err[k] * err[k]);
    idx.push_back(k);
  }
  f.n_points = static_cast<int>(idx.size());
  if (f.n_points < o.min_points) {
    f.status = Status::Error(StatusCode::kFailed, "only " + std::to_string(f.n_points) +
                                                      " points in the radial range [" + format_value(o.r_min) +
                                                      ", " + format_value(o.r_max) + "] (< " +
                                                      std::to_string(o.min_points) + " required)");
    return f;
  }
  const Core c = solve(r, z, w, idx);
  if (!c.ok) {
    f.status = Status::Error(StatusCode::kFailed, "all radii equal: slope undefined");
    return f;
  }
  f.r_lo = f.r_hi = r[idx[0]];
  double ss = 0;
  for (auto k : idx) {
    f.r_lo = std::min(f.r_lo, r[k]);
    f.r_hi = std::max(f.r_hi, r[k]);
    const double res = z[k] - (c.intercept + c.slope * r[k]);
    ss += res * res;
  }
  f.rmse = std::sqrt(ss / f.n_points);
  f.chi2 = c.chi2;
  const double scale = o.error_model == FitErrorModel::kScaledByChi2 ? c.chi2 / (f.n_points - 2) : 1.0;
  f.slope = {c.slope, std::sqrt(c.var_slope * scale)};
  f.intercept = {c.intercept, std::sqrt(c.var_intercept * scale)};
  f.cov_slope_intercept = c.cov * scale;
  if (o.n_bootstrap > 0) {
    Rng rng(o.seed);
    std::vector<double> bs, bi;
    std::vector<std::size_t> sample(idx.size());
    for (int b = 0; b < o.n_bootstrap; ++b) {
      for (auto& s : sample) {
        auto u = static_cast<std::size_t>(rng.uniform() * static_cast<double>(idx.size()));
        s = idx[std::min(u, idx.size() - 1)];
      }
      const Core cb = solve(r, z, w, sample);
      if (!cb.ok) continue;  // a degenerate resample (all one radius) carries no slope
      bs.push_back(cb.slope);
      bi.push_back(cb.intercept);
    }
    f.slope_err_bootstrap = stddev(bs);
    f.intercept_err_bootstrap = stddev(bi);
  }
  return f;
}

std::vector<ProfileBin> binned_profile(const std::vector<double>& r, const std::vector<double>& v,
                                       double bin_width, double r_start) {
  std::vector<ProfileBin> out;
  if (!(bin_width > 0) || r.size() != v.size()) return out;
  std::map<long, std::vector<std::pair<double, double>>> bins;
  for (std::size_t k = 0; k < r.size(); ++k) {
    if (!(std::isfinite(r[k]) && std::isfinite(v[k])) || r[k] < r_start) continue;
    bins[static_cast<long>(std::floor((r[k] - r_start) / bin_width))].push_back({r[k], v[k]});
  }
  for (auto& [b, pts] : bins) {
    ProfileBin p{};
    p.r_lo = r_start + b * bin_width;
    p.r_hi = p.r_lo + bin_width;
    p.n = static_cast<int>(pts.size());
    std::vector<double> vals;
    double sr = 0, sv = 0;
    for (auto& [rr, vv] : pts) {
      sr += rr;
      sv += vv;
      vals.push_back(vv);
    }
    p.r_mean = sr / p.n;
    p.mean = sv / p.n;
    p.std = stddev(vals);
    p.err_mean = p.n >= 2 ? p.std / std::sqrt(static_cast<double>(p.n)) : kNaN;
    std::sort(vals.begin(), vals.end());
    p.median = (p.n % 2) ? vals[p.n / 2] : 0.5 * (vals[p.n / 2 - 1] + vals[p.n / 2]);
    out.push_back(p);
  }
  return out;
}

}  // namespace slitstep
