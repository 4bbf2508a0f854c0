#include "analysis/geometry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <Eigen/Dense>

#include "core/units.hpp"

namespace slitstep {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// NaN-aware Gaussian smoothing (normalised over the finite neighbours only).
std::vector<double> smooth(const SpatialGrid& g, const std::vector<double>& m, double sigma) {
  if (!(sigma > 0.0)) return m;
  const int h = static_cast<int>(std::ceil(3.0 * sigma));
  std::vector<double> w(2 * h + 1);
  for (int d = -h; d <= h; ++d) w[d + h] = std::exp(-0.5 * d * d / (sigma * sigma));
  std::vector<double> out(m.size(), kNaN);
  for (int j = 0; j < g.ny; ++j) {
    for (int i = 0; i < g.nx; ++i) {
      if (!std::isfinite(m[static_cast<std::size_t>(j) * g.nx + i])) continue;
      double s = 0.0, sw = 0.0;
      for (int dj = -h; dj <= h; ++dj) {
        const int jj = j + dj;
        if (jj < 0 || jj >= g.ny) continue;
        for (int di = -h; di <= h; ++di) {
          const int ii = i + di;
          if (ii < 0 || ii >= g.nx) continue;
          const double v = m[static_cast<std::size_t>(jj) * g.nx + ii];
          if (!std::isfinite(v)) continue;
          const double ww = w[di + h] * w[dj + h];
          s += ww * v;
          sw += ww;
        }
      }
      out[static_cast<std::size_t>(j) * g.nx + i] = s / sw;
    }
  }
  return out;
}

bool any_finite(const std::vector<double>& v) {
  return std::any_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

}  // namespace

void CenterOptions::validate() const {
  if (!std::isfinite(smoothing_sigma_pix) || smoothing_sigma_pix < 0.0 || smoothing_sigma_pix > 10.0) {
    throw InvalidOptions("CenterOptions.smoothing_sigma_pix = " + format_value(smoothing_sigma_pix) +
                         ": must be in [0, 10] spaxels");
  }
}

void MomentsOptions::validate() const {
  if (!(threshold_frac >= 0.0 && threshold_frac < 1.0)) {
    throw InvalidOptions("MomentsOptions.threshold_frac = " + format_value(threshold_frac) +
                         ": must be in [0, 1)");
  }
}

CenterResult find_peak_center(const SpatialGrid& g, const std::vector<double>& map, const CenterOptions& o) {
  CenterResult r;
  if (map.size() != g.size() || g.size() == 0) {
    r.status = Status::Error(StatusCode::kInvalidInput, "map size does not match the grid");
    return r;
  }
  const std::vector<double> s = smooth(g, map, o.smoothing_sigma_pix);
  std::size_t best = s.size();
  for (std::size_t k = 0; k < s.size(); ++k) {
    if (std::isfinite(s[k]) && (best == s.size() || s[k] > s[best])) best = k;
  }
  if (best == s.size() || !(s[best] > 0.0)) {
    r.status = Status::Error(StatusCode::kInvalidInput, "map has no finite positive value");
    return r;
  }
  const int i0 = static_cast<int>(best % g.nx), j0 = static_cast<int>(best / g.nx);
  r.x_arcsec = g.x_arcsec(i0);
  r.y_arcsec = g.y_arcsec(j0);
  // Quadratic in ln(s) on the 3x3 neighbourhood: c0 + c1 u + c2 v + c3 u^2 + c4 v^2 + c5 u v.
  Eigen::MatrixXd A(9, 6);
  Eigen::VectorXd b(9);
  int n = 0;
  for (int dv = -1; dv <= 1; ++dv) {
    for (int du = -1; du <= 1; ++du) {
      const int ii = i0 + du, jj = j0 + dv;
      if (ii < 0 || jj < 0 || ii >= g.nx || jj >= g.ny) continue;
      const double v = s[static_cast<std::size_t>(jj) * g.nx + ii];
      if (!(std::isfinite(v) && v > 0.0)) continue;
      A.row(n) << 1.0, du, dv, du * du, dv * dv, du * dv;
      b(n) = std::log(v);
      ++n;
    }
  }
  if (n < 9) {
    r.status = Status::Error(StatusCode::kOutOfRange,
                             "peak at the map edge or beside empty spaxels: centre is the peak spaxel");
    return r;
  }
  const Eigen::VectorXd c = A.colPivHouseholderQr().solve(b);
  Eigen::Matrix2d H;
  H << 2 * c(3), c(5), c(5), 2 * c(4);
  Eigen::Vector2d grad(c(1), c(2));
  if (!(H.determinant() > 0.0 && H(0, 0) < 0.0)) {
    r.status = Status::Error(StatusCode::kNotConverged, "peak is not a local maximum: centre is the peak spaxel");
    return r;
  }
  Eigen::Vector2d d = -H.inverse() * grad;
  d = d.cwiseMax(-1.0).cwiseMin(1.0);
  r.x_arcsec = g.x_arcsec(i0 + d(0));
  r.y_arcsec = g.y_arcsec(j0 + d(1));
  return r;
}

CenterResult find_continuum_center(const LineMaps& m, const CenterOptions& o) {
  const std::vector<double>* map = nullptr;
  std::string src;
  if (any_finite(m.continuum_line_free_sb)) {
    map = &m.continuum_line_free_sb;
    src = "continuum_line_free_sb";
  } else if (any_finite(m.continuum_sb)) {
    map = &m.continuum_sb;
    src = "continuum_sb";
  } else {
    map = &m.line(LineId::kHalpha).flux_cgs;
    src = "halpha_flux";
  }
  CenterResult r = find_peak_center(m.spatial, *map, o);
  r.source = src;
  if (r.status.ok() && src != "continuum_line_free_sb") {
    r.status = Status::Error(StatusCode::kOk, "line-free continuum map empty: centre from " + src);
  }
  return r;
}

MomentsResult light_moments(const SpatialGrid& g, const std::vector<double>& map, double cx, double cy,
                            const MomentsOptions& o) {
  MomentsResult r;
  if (map.size() != g.size()) {
    r.status = Status::Error(StatusCode::kInvalidInput, "map size does not match the grid");
    return r;
  }
  double peak = 0.0;
  for (double v : map) {
    if (std::isfinite(v)) peak = std::max(peak, v);
  }
  if (!(peak > 0.0)) {
    r.status = Status::Error(StatusCode::kInvalidInput, "map has no positive value");
    return r;
  }
  double sw = 0, sxx = 0, syy = 0, sxy = 0;
  for (int j = 0; j < g.ny; ++j) {
    for (int i = 0; i < g.nx; ++i) {
      const double v = map[static_cast<std::size_t>(j) * g.nx + i];
      if (!(std::isfinite(v) && v > o.threshold_frac * peak && v > 0.0)) continue;
      const double dx = g.x_arcsec(i) - cx, dy = g.y_arcsec(j) - cy;
      sw += v;
      sxx += v * dx * dx;
      syy += v * dy * dy;
      sxy += v * dx * dy;
      ++r.n_spaxels;
    }
  }
  if (r.n_spaxels < 3) {
    r.status = Status::Error(StatusCode::kFailed, "fewer than 3 spaxels above the moments threshold");
    return r;
  }
  Eigen::Matrix2d M;
  M << sxx / sw, sxy / sw, sxy / sw, syy / sw;
  Eigen::SelfAdjointEigenSolver<Eigen::Matrix2d> es(M);
  const double lmin = std::max(es.eigenvalues()(0), 0.0), lmax = es.eigenvalues()(1);
  const Eigen::Vector2d e = es.eigenvectors().col(1);  // major axis (x, y)
  // Major axis direction (-sin pa, cos pa) = +-e  =>  pa = atan2(-ex, ey), folded to (-90, 90].
  double pa = std::atan2(-e(0), e(1)) * kDegPerRad;
  while (pa > 90.0) pa -= 180.0;
  while (pa <= -90.0) pa += 180.0;
  r.pa_deg = pa;
  r.axis_ratio = lmax > 0.0 ? std::sqrt(lmin / lmax) : 1.0;
  return r;
}

double inclination_from_axis_ratio_deg(double q, double q0) {
  if (!(q > q0)) return 90.0;
  const double c2 = q0 > 0.0 ? (q * q - q0 * q0) / (1.0 - q0 * q0) : q * q;
  return std::acos(std::sqrt(std::min(1.0, c2))) * kDegPerRad;
}

DiskCoords disk_coords(const DiskGeometry& g, double x, double y) {
  const double pa = g.pa_deg / kDegPerRad;
  const double dx = x - g.center_x_arcsec, dy = y - g.center_y_arcsec;
  DiskCoords c;
  c.a_arcsec = -dx * std::sin(pa) + dy * std::cos(pa);
  c.b_arcsec = dx * std::cos(pa) + dy * std::sin(pa);
  const double ci = std::cos(g.inclination_deg / kDegPerRad);
  const double bd = c.b_arcsec / ci;
  c.r_arcsec = std::sqrt(c.a_arcsec * c.a_arcsec + bd * bd);
  c.r_kpc = c.r_arcsec * g.kpc_per_arcsec;
  c.cos_theta = c.r_arcsec > 0.0 ? c.a_arcsec / c.r_arcsec : 0.0;
  return c;
}

}  // namespace slitstep
