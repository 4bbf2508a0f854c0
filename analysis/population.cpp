#include "analysis/population.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <boost/math/distributions/students_t.hpp>

#include "core/rng.hpp"

namespace slitstep {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Fit2 {
  double slope, intercept;
  bool ok;
};

Fit2 linfit(const std::vector<double>& x, const std::vector<double>& y, const std::vector<double>& w,
            const std::vector<std::size_t>& idx) {
  double sw = 0, sx = 0, sy = 0;
  for (auto k : idx) {
    sw += w[k];
    sx += w[k] * x[k];
    sy += w[k] * y[k];
  }
  const double xb = sx / sw, yb = sy / sw;
  double sxx = 0, sxy = 0;
  for (auto k : idx) {
    sxx += w[k] * (x[k] - xb) * (x[k] - xb);
    sxy += w[k] * (x[k] - xb) * (y[k] - yb);
  }
  if (!(sxx > 0)) return {kNaN, kNaN, false};
  const double b = sxy / sxx;
  return {b, yb - b * xb, true};
}

double sd(const std::vector<double>& v) {
  if (v.size() < 2) return kNaN;
  double m = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

double med(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

void PopulationOptions::validate() const {
  if (!std::isfinite(pivot_log_mstar)) {
    throw InvalidOptions("PopulationOptions.pivot_log_mstar = " + format_value(pivot_log_mstar) + ": must be finite");
  }
  if (n_bootstrap < 2) {
    throw InvalidOptions("PopulationOptions.n_bootstrap = " + format_value(n_bootstrap) +
                         ": must be >= 2 (errors are bootstrap standard deviations)");
  }
}

double pearson_p_value(double r, int n) {
  if (!(n >= 3) || !std::isfinite(r) || std::abs(r) > 1.0) return kNaN;
  if (std::abs(r) == 1.0) return 0.0;
  const double dof = n - 2;
  const double t = r * std::sqrt(dof / (1.0 - r * r));
  boost::math::students_t dist(dof);
  return 2.0 * boost::math::cdf(boost::math::complement(dist, std::abs(t)));
}

PearsonResult pearson(const std::vector<double>& x, const std::vector<double>& y) {
  PearsonResult p;
  if (x.size() != y.size()) return p;
  std::vector<double> xs, ys;
  for (std::size_t k = 0; k < x.size(); ++k) {
    if (std::isfinite(x[k]) && std::isfinite(y[k])) {
      xs.push_back(x[k]);
      ys.push_back(y[k]);
    }
  }
  p.n = static_cast<int>(xs.size());
  if (p.n < 3) return p;
  double mx = 0, my = 0;
  for (int k = 0; k < p.n; ++k) {
    mx += xs[k];
    my += ys[k];
  }
  mx /= p.n;
  my /= p.n;
  double sxx = 0, syy = 0, sxy = 0;
  for (int k = 0; k < p.n; ++k) {
    sxx += (xs[k] - mx) * (xs[k] - mx);
    syy += (ys[k] - my) * (ys[k] - my);
    sxy += (xs[k] - mx) * (ys[k] - my);
  }
  if (!(sxx > 0 && syy > 0)) return p;
  p.r = std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
  p.t = std::abs(p.r) < 1.0 ? p.r * std::sqrt((p.n - 2) / (1.0 - p.r * p.r))
                            : std::copysign(std::numeric_limits<double>::infinity(), p.r);
  p.p_two_sided = pearson_p_value(p.r, p.n);
  return p;
}

PopulationResult gradient_mass_relation(const std::vector<GalaxyGradientRow>& rows, const PopulationOptions& o) {
  PopulationResult res;
  std::vector<double> x, y, w;
  for (const auto& r : rows) {
    if (!(std::isfinite(r.log_mstar) && std::isfinite(r.gradient))) continue;
    if (o.weighted && !(std::isfinite(r.gradient_err) && r.gradient_err > 0)) continue;
    x.push_back(r.log_mstar - o.pivot_log_mstar);
    y.push_back(r.gradient);
    w.push_back(o.weighted ? 1.0 / (r.gradient_err * r.gradient_err) : 1.0);
  }
  res.n_galaxies = static_cast<int>(x.size());
  if (res.n_galaxies < 3) {
    res.status = Status::Error(StatusCode::kFailed, "only " + std::to_string(res.n_galaxies) +
                                                        " galaxies with finite mass and gradient (< 3)");
    return res;
  }
  std::vector<std::size_t> all(x.size());
  for (std::size_t k = 0; k < all.size(); ++k) all[k] = k;
  const Fit2 f = linfit(x, y, w, all);
  if (!f.ok) {
    res.status = Status::Error(StatusCode::kFailed, "all stellar masses equal: slope undefined");
    return res;
  }
  res.slope.value = f.slope;
  res.intercept.value = f.intercept;
  double ss = 0, sg = 0;
  for (std::size_t k = 0; k < x.size(); ++k) {
    const double d = y[k] - (f.intercept + f.slope * x[k]);
    ss += d * d;
    sg += y[k] * y[k];
  }
  res.rmse_about_relation = std::sqrt(ss / res.n_galaxies);
  res.rms_gradient = std::sqrt(sg / res.n_galaxies);
  res.std_gradient = sd(y);
  res.pearson = pearson(x, y);

  Rng rng(o.seed);
  std::vector<double> bs, bi;
  std::vector<std::size_t> sample(x.size());
  for (int b = 0; b < o.n_bootstrap; ++b) {
    for (auto& s : sample) {
      s = std::min(static_cast<std::size_t>(rng.uniform() * static_cast<double>(x.size())), x.size() - 1);
    }
    const Fit2 fb = linfit(x, y, w, sample);
    if (!fb.ok) continue;
    bs.push_back(fb.slope);
    bi.push_back(fb.intercept);
  }
  res.n_bootstrap_used = static_cast<int>(bs.size());
  res.slope.err = sd(bs);
  res.intercept.err = sd(bi);
  res.slope_bootstrap_median = med(bs);
  res.intercept_bootstrap_median = med(bi);
  return res;
}

}  // namespace slitstep
