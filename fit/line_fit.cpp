#include "fit/line_fit.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include <Eigen/Dense>
#include <ceres/ceres.h>

#include "core/error.hpp"
#include "core/units.hpp"

namespace slitstep {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kTail = 9.0;  // channels further than this many sigma from a line get nothing (Phi(-9) ~ 1e-19)
constexpr int kNumWindows = 2;

int window_of(LineId id) {
  switch (id) {
    case LineId::kHbeta:
    case LineId::kOIII4959:
    case LineId::kOIII5007: return 0;
    default: return 1;
  }
}

// One Gaussian of the model: its flux is `factor` times flux parameter `param`.
struct Component {
  int param = 0;
  int window = 0;
  double rest_um = 0.0;  // rest wavelength * (1 + z), i.e. the observed centre at v = 0
  double factor = 1.0;
};

// Everything a fit needs, on the usable channels only. Data are divided by the scale S; flux
// parameters are in units of S * wbar (wbar: median channel width, um).
struct Setup {
  double z = 0.0;
  const LsfModel* lsf = nullptr;
  std::vector<double> lo, hi, wrel, x, d, ie;  // edges (um), width/wbar, continuum coordinate, data/S, S/err
  std::array<int, kNumWindows + 1> wbegin{};   // channel ranges per window (usable channels sorted)
  std::array<double, kNumWindows> ref_um{}, half_um{};
  std::array<int, kNumWindows> cont_param{};   // index of the level parameter (-1 unused); slope follows
  std::vector<Component> comps;
  std::array<int, kNumLines> line_param{};     // parameter of each line (-1 not fitted)
  std::array<double, kNumLines> line_factor{};
  std::vector<int> flux_params;                // indices of the flux parameters
  int num_params = 2;                          // 0: v (km/s), 1: s2 = sigma_int^2 (km^2/s^2)
  double S = 1.0, wbar = 1.0;
  bool unit_weights = false;
  int n() const { return static_cast<int>(d.size()); }
};

struct LineGeometry {
  double mu = 0.0, dmu_dv = 0.0, sig_kms = 0.0, sig_um = 0.0, dsig_dv = 0.0, dsig_ds2 = 0.0, sinst = 0.0;
};

inline LineGeometry geometry(const Setup& s, const Component& c, double v, double s2) {
  LineGeometry g;
  const double beta = v / kSpeedOfLight_kms;
  g.mu = c.rest_um * doppler_factor(v);
  g.dmu_dv = g.mu / (kSpeedOfLight_kms * (1.0 - beta * beta));
  g.sinst = s.lsf->sigma_kms(g.mu);
  const double dsinst = s.lsf->dsigma_kms_dum(g.mu);
  const double var = std::max(s2 + g.sinst * g.sinst, 1e-6 * g.sinst * g.sinst);
  g.sig_kms = std::sqrt(var);
  g.sig_um = g.mu * g.sig_kms / kSpeedOfLight_kms;
  g.dsig_ds2 = g.mu / (2.0 * kSpeedOfLight_kms * g.sig_kms);
  const double dsig_dmu = g.sig_kms / kSpeedOfLight_kms + g.mu * g.sinst * dsinst / (kSpeedOfLight_kms * g.sig_kms);
  g.dsig_dv = dsig_dmu * g.dmu_dv;
  return g;
}

// Residuals r_k = (d_k - m_k) ie_k and (optionally) the row-major n x P Jacobian dr/dp.
void evaluate(const Setup& s, const double* p, double* r, double* jac) {
  const int n = s.n(), P = s.num_params;
  std::vector<double> m(static_cast<std::size_t>(n), 0.0);
  if (jac) std::fill(jac, jac + static_cast<std::size_t>(n) * P, 0.0);
  for (int w = 0; w < kNumWindows; ++w) {
    const int cp = s.cont_param[w];
    if (cp < 0) continue;
    for (int k = s.wbegin[w]; k < s.wbegin[w + 1]; ++k) {
      m[k] = p[cp] + p[cp + 1] * s.x[k];
      if (jac) {
        jac[static_cast<std::size_t>(k) * P + cp] = 1.0;
        jac[static_cast<std::size_t>(k) * P + cp + 1] = s.x[k];
      }
    }
  }
  const double v = p[0], s2 = p[1];
  for (const Component& c : s.comps) {
    const LineGeometry g = geometry(s, c, v, s2);
    const double amp = p[c.param] * c.factor;
    const double inv_sig = 1.0 / g.sig_um;
    const double lo_cut = g.mu - kTail * g.sig_um, hi_cut = g.mu + kTail * g.sig_um;
    // channels are sorted: skip to the first whose upper edge passes lo_cut
    const auto first = std::lower_bound(s.hi.begin() + s.wbegin[c.window], s.hi.begin() + s.wbegin[c.window + 1], lo_cut);
    // Phi and phi at each channel edge; an edge shared with the previous channel is reused
    double prev_edge = -1.0, prev_cdf = 0.0, prev_pdf = 0.0;
    for (int k = static_cast<int>(first - s.hi.begin()); k < s.wbegin[c.window + 1]; ++k) {
      if (s.lo[k] > hi_cut) break;
      const double zl = (s.lo[k] - g.mu) * inv_sig, zh = (s.hi[k] - g.mu) * inv_sig;
      double cdfl, phil;
      if (s.lo[k] == prev_edge) {
        cdfl = prev_cdf;
        phil = prev_pdf;
      } else {
        cdfl = 0.5 * std::erfc(-zl * kInvSqrt2);
        phil = kInvSqrt2Pi * std::exp(-0.5 * zl * zl);
      }
      const double cdfh = 0.5 * std::erfc(-zh * kInvSqrt2);
      const double phih = kInvSqrt2Pi * std::exp(-0.5 * zh * zh);
      prev_edge = s.hi[k];
      prev_cdf = cdfh;
      prev_pdf = phih;
      const double prob = cdfh - cdfl;
      const double iw = 1.0 / s.wrel[k];
      m[k] += amp * prob * iw;
      if (jac) {
        double* row = jac + static_cast<std::size_t>(k) * P;
        const double dI_dmu = -(phih - phil) * inv_sig;
        const double dI_dsig = -(phih * zh - phil * zl) * inv_sig;
        row[c.param] += c.factor * prob * iw;
        row[0] += amp * iw * (dI_dmu * g.dmu_dv + dI_dsig * g.dsig_dv);
        row[1] += amp * iw * dI_dsig * g.dsig_ds2;
      }
    }
  }
  for (int k = 0; k < n; ++k) {
    r[k] = (s.d[k] - m[k]) * s.ie[k];
    if (jac) {
      double* row = jac + static_cast<std::size_t>(k) * P;
      for (int j = 0; j < P; ++j) row[j] *= -s.ie[k];
    }
  }
}

class LineCost final : public ceres::CostFunction {
 public:
  explicit LineCost(const Setup& s) : s_(s) {
    set_num_residuals(s.n());
    mutable_parameter_block_sizes()->push_back(s.num_params);
  }
  bool Evaluate(double const* const* parameters, double* residuals, double** jacobians) const override {
    evaluate(s_, parameters[0], residuals, jacobians ? jacobians[0] : nullptr);
    for (int k = 0; k < s_.n(); ++k)
      if (!std::isfinite(residuals[k])) return false;
    return true;
  }

 private:
  const Setup& s_;
};

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Solves the linear parameters (continua, fluxes) at fixed p[0], p[1]; returns chi^2.
double solve_linear(const Setup& s, std::vector<double>& p, bool allow_negative) {
  const int n = s.n(), P = s.num_params;
  std::vector<int> lin;
  for (int w = 0; w < kNumWindows; ++w)
    if (s.cont_param[w] >= 0) {
      lin.push_back(s.cont_param[w]);
      lin.push_back(s.cont_param[w] + 1);
    }
  for (int fp : s.flux_params) lin.push_back(fp);
  for (int j : lin) p[j] = 0.0;
  std::vector<double> r(static_cast<std::size_t>(n)), jac(static_cast<std::size_t>(n) * P);
  evaluate(s, p.data(), r.data(), jac.data());
  const Eigen::Map<const RowMatrix> J(jac.data(), n, P);
  const Eigen::Map<const Eigen::VectorXd> r0(r.data(), n);
  const int L = static_cast<int>(lin.size());
  Eigen::MatrixXd A(n, L);
  for (int j = 0; j < L; ++j) A.col(j) = J.col(lin[j]);
  Eigen::MatrixXd H = A.transpose() * A;
  Eigen::VectorXd g = -A.transpose() * r0;
  for (int j = 0; j < L; ++j) H(j, j) = H(j, j) * (1.0 + 1e-12) + 1e-30;
  Eigen::VectorXd beta = H.ldlt().solve(g);
  for (int j = 0; j < L; ++j) {
    double b = std::isfinite(beta(j)) ? beta(j) : 0.0;
    p[lin[j]] = b;
  }
  if (!allow_negative)
    for (int fp : s.flux_params) p[fp] = std::max(p[fp], 0.0);
  evaluate(s, p.data(), r.data(), nullptr);
  double chi2 = 0.0;
  for (double x : r) chi2 += x * x;
  return chi2;
}

struct Bounds {
  double v_lo, v_hi, s2_lo, s2_hi;
};

// Covariance of the parameters `keep` from J (n x P). Returns false if singular.
bool covariance(const std::vector<double>& jac, int n, int P, const std::vector<int>& keep, Eigen::MatrixXd& cov) {
  const Eigen::Map<const RowMatrix> J(jac.data(), n, P);
  const int K = static_cast<int>(keep.size());
  Eigen::MatrixXd A(n, K);
  for (int j = 0; j < K; ++j) A.col(j) = J.col(keep[j]);
  Eigen::MatrixXd H = A.transpose() * A;
  Eigen::VectorXd d(K);
  for (int j = 0; j < K; ++j) {
    if (!(H(j, j) > 0.0) || !std::isfinite(H(j, j))) return false;
    d(j) = 1.0 / std::sqrt(H(j, j));
  }
  const Eigen::MatrixXd Hn = d.asDiagonal() * H * d.asDiagonal();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(Hn);
  if (es.info() != Eigen::Success) return false;
  const Eigen::VectorXd ev = es.eigenvalues();
  if (!(ev.minCoeff() > 1e-12 * ev.maxCoeff())) return false;
  const Eigen::MatrixXd inv = es.eigenvectors() * ev.cwiseInverse().asDiagonal() * es.eigenvectors().transpose();
  cov = d.asDiagonal() * inv * d.asDiagonal();
  return true;
}

int find_param_index(const std::vector<int>& keep, int p) {
  for (std::size_t i = 0; i < keep.size(); ++i)
    if (keep[i] == p) return static_cast<int>(i);
  return -1;
}

SpectrumFit fail(LineFitStatus st, std::string msg) {
  SpectrumFit f;
  f.status = st;
  f.message = std::move(msg);
  return f;
}

bool usable(const double* flux, const double* err, const std::uint32_t* dq, std::size_t k, std::uint32_t mask) {
  if (!std::isfinite(flux[k])) return false;
  if (err && (!std::isfinite(err[k]) || !(err[k] > 0.0))) return false;
  if (dq && (dq[k] & mask)) return false;
  return true;
}

double median_of(std::vector<double> v) {
  if (v.empty()) return kNaN;
  const std::size_t h = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(h), v.end());
  double m = v[h];
  if (v.size() % 2 == 0) m = 0.5 * (m + *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(h)));
  return m;
}

SpectrumFit fit_impl(const double* wl, const double* flux, const double* err, const std::uint32_t* dq,
                     std::size_t n, double z, const LsfModel& lsf, const EmissionLineFitOptions& o,
                     const SpectrumFit* start, const double* width_um) {
  if (!std::isfinite(z) || !(z > -1.0)) return fail(LineFitStatus::kFailed, "redshift = " + format_value(z) + ": must be finite and > -1");
  if (n < 2 || !wl || !flux) return fail(LineFitStatus::kNoData, "fewer than 2 channels");
  for (std::size_t k = 0; k < n; ++k) {
    if (!std::isfinite(wl[k]) || !(wl[k] > 0.0) || (k > 0 && !(wl[k] > wl[k - 1])))
      return fail(LineFitStatus::kFailed, "wavelength_um[" + std::to_string(k) + "] = " + format_value(wl[k]) +
                                              ": must be finite, > 0 and increasing");
    if (width_um && (!std::isfinite(width_um[k]) || !(width_um[k] > 0.0)))
      return fail(LineFitStatus::kFailed, "width_um[" + std::to_string(k) + "] = " + format_value(width_um[k]) + ": must be > 0");
  }
  Setup s;
  s.z = z;
  s.lsf = &lsf;
  s.unit_weights = (err == nullptr);
  const double opz = 1.0 + z;
  const std::array<double, kNumWindows> wlo = {o.hb_window_lo_A * opz / kAngstromPerUm, o.ha_window_lo_A * opz / kAngstromPerUm};
  const std::array<double, kNumWindows> whi = {o.hb_window_hi_A * opz / kAngstromPerUm, o.ha_window_hi_A * opz / kAngstromPerUm};
  std::array<bool, kNumLines> wanted{};
  for (LineId id : o.lines) wanted[static_cast<int>(id)] = true;
  std::array<bool, kNumWindows> window_has_line{};
  for (int l = 0; l < kNumLines; ++l)
    if (wanted[l]) window_has_line[window_of(static_cast<LineId>(l))] = true;

  // usable channels per window (windows are disjoint and ordered)
  std::vector<double> raw_d, raw_e;
  std::array<int, kNumWindows> counts{};
  for (int w = 0; w < kNumWindows; ++w) {
    s.wbegin[w] = static_cast<int>(raw_d.size());
    if (!window_has_line[w]) continue;
    for (std::size_t k = 0; k < n; ++k) {
      if (wl[k] < wlo[w] || wl[k] > whi[w]) continue;
      if (!usable(flux, err, dq, k, o.dq_mask)) continue;
      double wk;
      if (width_um) wk = width_um[k];
      else if (k == 0) wk = wl[1] - wl[0];
      else if (k == n - 1) wk = wl[n - 1] - wl[n - 2];
      else wk = 0.5 * (wl[k + 1] - wl[k - 1]);
      s.lo.push_back(wl[k] - 0.5 * wk);
      s.hi.push_back(wl[k] + 0.5 * wk);
      s.wrel.push_back(wk);
      s.x.push_back(wl[k]);
      raw_d.push_back(flux[k]);
      raw_e.push_back(err ? err[k] : 1.0);
    }
    counts[w] = static_cast<int>(raw_d.size()) - s.wbegin[w];
    if (counts[w] < o.min_channels_per_window) {  // drop the window
      const auto b = static_cast<std::size_t>(s.wbegin[w]);
      for (auto* v : {&s.lo, &s.hi, &s.wrel, &s.x, &raw_d, &raw_e}) v->resize(b);
    }
  }
  s.wbegin[kNumWindows] = static_cast<int>(raw_d.size());
  // fix begin of windows after drops
  {
    int pos = 0;
    std::array<int, kNumWindows> kept{};
    for (int w = 0; w < kNumWindows; ++w) kept[w] = counts[w] >= o.min_channels_per_window ? counts[w] : 0;
    for (int w = 0; w < kNumWindows; ++w) {
      s.wbegin[w] = pos;
      pos += kept[w];
    }
    s.wbegin[kNumWindows] = pos;
  }
  // channels that touch (to rounding) share one edge value, so evaluate() computes it once
  for (std::size_t k = 1; k < s.lo.size(); ++k)
    if (s.lo[k] != s.hi[k - 1] && std::fabs(s.lo[k] - s.hi[k - 1]) <= 1e-9 * s.wrel[k]) s.lo[k] = s.hi[k - 1];
  if (raw_d.empty())
    return fail(LineFitStatus::kNoData, "no fitting window has " + std::to_string(o.min_channels_per_window) +
                                            " usable channels (masked, non-finite or outside the spectrum)");

  // scales
  {
    std::vector<double> w = s.wrel;
    s.wbar = median_of(w);
    if (!s.unit_weights) {
      s.S = median_of(raw_e);
    } else {
      std::vector<double> a(raw_d.size());
      for (std::size_t k = 0; k < a.size(); ++k) a[k] = std::fabs(raw_d[k]);
      s.S = median_of(a);
    }
    if (!std::isfinite(s.S) || !(s.S > 0.0)) s.S = 1.0;
    s.d.resize(raw_d.size());
    s.ie.resize(raw_d.size());
    for (std::size_t k = 0; k < raw_d.size(); ++k) {
      s.d[k] = raw_d[k] / s.S;
      s.ie[k] = s.unit_weights ? 1.0 : s.S / raw_e[k];  // residuals O(1) either way
      s.wrel[k] /= s.wbar;
    }
  }

  // continuum parameters
  for (int w = 0; w < kNumWindows; ++w) {
    s.cont_param[w] = -1;
    if (s.wbegin[w + 1] - s.wbegin[w] == 0) continue;
    s.ref_um[w] = 0.5 * (wlo[w] + whi[w]);
    s.half_um[w] = 0.5 * (whi[w] - wlo[w]);
    for (int k = s.wbegin[w]; k < s.wbegin[w + 1]; ++k) s.x[k] = (s.x[k] - s.ref_um[w]) / s.half_um[w];
    s.cont_param[w] = s.num_params;
    s.num_params += 2;
  }

  // line parameters: measurable if the line (or its tied partner) has coverage near its centre
  const double v_exp = (start && std::isfinite(start->velocity_kms)) ? start->velocity_kms : 0.0;
  auto coverage = [&](LineId id) {
    const int w = window_of(id);
    const double mu = line(id).rest_A * opz / kAngstromPerUm * doppler_factor(v_exp);
    if (!lsf.covers(mu)) return 0;
    const double sig_um = mu * std::hypot(o.sigma_start_kms, lsf.sigma_kms(mu)) / kSpeedOfLight_kms;
    const double half = std::max(2.5 * sig_um, s.wbar);
    int c = 0;
    for (int k = s.wbegin[w]; k < s.wbegin[w + 1]; ++k) {
      const double centre = 0.5 * (s.lo[k] + s.hi[k]);
      if (std::fabs(centre - mu) <= half) ++c;
    }
    return c;
  };
  struct Tie {
    LineId weak, strong;
    double ratio;
  };
  const std::array<Tie, 2> ties = {Tie{LineId::kNII6548, LineId::kNII6584, o.nii_ratio},
                                   Tie{LineId::kOIII4959, LineId::kOIII5007, o.oiii_ratio}};
  s.line_param.fill(-1);
  s.line_factor.fill(1.0);
  std::array<bool, kNumLines> done{};
  auto add_components = [&](std::initializer_list<std::pair<LineId, double>> members) {
    int cov = 0;
    bool in_window = false;
    for (auto [id, f] : members) {
      const int w = window_of(id);
      if (s.cont_param[w] < 0) continue;
      const double mu = line(id).rest_A * opz / kAngstromPerUm;
      if (mu < wlo[w] || mu > whi[w] || !lsf.covers(mu)) continue;
      in_window = true;
      cov += coverage(id);
    }
    if (!in_window || cov < o.min_channels_per_line) return;
    const int p = s.num_params++;
    s.flux_params.push_back(p);
    for (auto [id, f] : members) {
      const int w = window_of(id);
      if (s.cont_param[w] < 0) continue;
      const double mu = line(id).rest_A * opz / kAngstromPerUm;
      if (!lsf.covers(mu)) continue;
      s.comps.push_back(Component{p, w, mu, f});
      s.line_param[static_cast<int>(id)] = p;
      s.line_factor[static_cast<int>(id)] = f;
    }
  };
  if (o.tie_doublets) {
    for (const Tie& t : ties) {
      if (!wanted[static_cast<int>(t.strong)]) continue;
      if (wanted[static_cast<int>(t.weak)]) add_components({{t.strong, 1.0}, {t.weak, 1.0 / t.ratio}});
      else add_components({{t.strong, 1.0}});
      done[static_cast<int>(t.strong)] = done[static_cast<int>(t.weak)] = true;
    }
  }
  for (int l = 0; l < kNumLines; ++l)
    if (wanted[l] && !done[l]) add_components({{static_cast<LineId>(l), 1.0}});
  if (s.flux_params.empty())
    return fail(LineFitStatus::kNoData, "no requested line has " + std::to_string(o.min_channels_per_line) +
                                            " usable channels near its expected wavelength");

  // bounds
  double sinst_min = 1e300;
  for (const Component& c : s.comps) sinst_min = std::min(sinst_min, lsf.sigma_kms(c.rest_um));
  const double vb = o.velocity_bound_kms;
  const Bounds b{-vb, vb, -(1.0 - o.min_sigma_obs_fraction * o.min_sigma_obs_fraction) * sinst_min * sinst_min,
                 o.sigma_max_kms * o.sigma_max_kms};

  // starting point
  const int N = s.n(), P = s.num_params;
  if (N <= P) return fail(LineFitStatus::kNoData, std::to_string(N) + " usable channels for " + std::to_string(P) + " parameters");
  std::vector<double> p(static_cast<std::size_t>(P), 0.0);
  const double s2_default = o.sigma_start_kms * o.sigma_start_kms;
  p[1] = (start && std::isfinite(start->sigma2_kms2)) ? std::clamp(start->sigma2_kms2, b.s2_lo, b.s2_hi) : s2_default;
  if (start && std::isfinite(start->velocity_kms)) {
    p[0] = std::clamp(start->velocity_kms, b.v_lo, b.v_hi);
  } else {
    // scan the velocity on a grid of ~ one channel, solving the linear parameters at each step
    double best = 1e300, best_v = 0.0;
    double ch_kms = 1e300;
    for (const Component& c : s.comps) ch_kms = std::min(ch_kms, s.wbar / c.rest_um * kSpeedOfLight_kms);
    const int steps = std::clamp(static_cast<int>(std::ceil(2.0 * vb / ch_kms)), 2, 400);
    for (int i = 0; i <= steps; ++i) {
      p[0] = b.v_lo + (b.v_hi - b.v_lo) * i / steps;
      const double c2 = solve_linear(s, p, o.allow_negative_flux);
      if (c2 < best) {
        best = c2;
        best_v = p[0];
      }
    }
    p[0] = best_v;
  }
  solve_linear(s, p, o.allow_negative_flux);

  // solve
  LineCost cost(s);
  ceres::Problem::Options popts;
  popts.cost_function_ownership = ceres::DO_NOT_TAKE_OWNERSHIP;
  ceres::Problem problem(popts);
  problem.AddResidualBlock(&cost, nullptr, p.data());
  problem.SetParameterLowerBound(p.data(), 0, b.v_lo);
  problem.SetParameterUpperBound(p.data(), 0, b.v_hi);
  problem.SetParameterLowerBound(p.data(), 1, b.s2_lo);
  problem.SetParameterUpperBound(p.data(), 1, b.s2_hi);
  if (!o.allow_negative_flux)
    for (int fp : s.flux_params) problem.SetParameterLowerBound(p.data(), fp, 0.0);
  ceres::Solver::Options sopts;
  sopts.linear_solver_type = ceres::DENSE_QR;
  sopts.max_num_iterations = o.max_iterations;
  sopts.function_tolerance = o.function_tolerance;
  sopts.parameter_tolerance = o.parameter_tolerance;
  sopts.gradient_tolerance = o.gradient_tolerance;
  sopts.num_threads = 1;
  sopts.logging_type = ceres::SILENT;
  sopts.minimizer_progress_to_stdout = false;
  ceres::Solver::Summary summary;
  ceres::Solve(sopts, &problem, &summary);

  SpectrumFit f;
  f.iterations = static_cast<int>(summary.iterations.size());
  f.channels = N;
  f.dof = N - P;
  if (summary.termination_type == ceres::FAILURE || summary.termination_type == ceres::USER_FAILURE)
    return fail(LineFitStatus::kFailed, "solver failed: " + summary.message);
  const bool converged = summary.termination_type != ceres::NO_CONVERGENCE;
  std::vector<double> r(static_cast<std::size_t>(N)), jac(static_cast<std::size_t>(N) * P);
  evaluate(s, p.data(), r.data(), jac.data());
  double chi2 = 0.0;
  for (double x : r) chi2 += x * x;
  bool finite = std::isfinite(chi2);
  for (double x : p) finite = finite && std::isfinite(x);
  if (!finite) return fail(LineFitStatus::kFailed, "non-finite solution or chi^2");
  f.chi2 = chi2;
  f.chi2_per_dof = chi2 / f.dof;
  const bool scale = s.unit_weights || o.scale_errors_by_reduced_chi2;
  f.errors_scaled = scale;
  const double cscale = scale ? f.chi2_per_dof : 1.0;

  // continua (in data units)
  for (int w = 0; w < kNumWindows; ++w) {
    WindowContinuum& wc = f.continuum[w];
    wc.channels = s.wbegin[w + 1] - s.wbegin[w];
    if (s.cont_param[w] < 0) continue;
    wc.used = true;
    wc.ref_um = s.ref_um[w];
    wc.level_sb = p[s.cont_param[w]] * s.S;
    wc.slope_sb_per_um = p[s.cont_param[w] + 1] * s.S / s.half_um[w];
  }

  // which parameters are free in the covariance
  const double vtol = 1e-6 * (b.v_hi - b.v_lo), stol = 1e-6 * (b.s2_hi - b.s2_lo);
  const bool v_at = p[0] <= b.v_lo + vtol || p[0] >= b.v_hi - vtol;
  const bool s_at = p[1] <= b.s2_lo + stol || p[1] >= b.s2_hi - stol;
  std::vector<int> linear_keep;
  for (int j = 2; j < P; ++j) linear_keep.push_back(j);
  Eigen::MatrixXd cov;
  std::vector<int> keep;
  bool full = false;
  {
    std::vector<int> all(static_cast<std::size_t>(P));
    std::iota(all.begin(), all.end(), 0);
    if (!v_at && !s_at && covariance(jac, N, P, all, cov)) {
      keep = all;
      full = true;
    } else if (covariance(jac, N, P, linear_keep, cov)) {
      keep = linear_keep;
    } else {
      return fail(LineFitStatus::kFailed, "singular covariance: a flux or continuum parameter is unconstrained");
    }
  }
  cov *= cscale;

  // lines
  const double ew_k = s.wbar * kAngstromPerUm / opz;  // flux parameter / continuum parameter -> rest A
  double best_snr = 0.0;
  for (int l = 0; l < kNumLines; ++l) {
    const int fp = s.line_param[l];
    if (fp < 0) continue;
    LineMeasurement& m = f.lines[l];
    const LineId id = static_cast<LineId>(l);
    const int w = window_of(id);
    const double fac = s.line_factor[l];
    m.measured = true;
    m.tied = fac != 1.0;
    const int ia = find_param_index(keep, fp);
    m.flux_sb = p[fp] * fac * s.S * s.wbar;
    m.flux_err_sb = std::sqrt(cov(ia, ia)) * fac * s.S * s.wbar;
    if (!m.tied) best_snr = std::max(best_snr, std::fabs(m.flux_sb) / m.flux_err_sb);
    m.centre_um = line(id).rest_A * opz / kAngstromPerUm * doppler_factor(p[0]);
    m.sigma_inst_kms = lsf.sigma_kms(m.centre_um);
    const int cp = s.cont_param[w];
    const double xl = (m.centre_um - s.ref_um[w]) / s.half_um[w];
    const double c = p[cp] + p[cp + 1] * xl;
    m.continuum_sb = c * s.S;
    if (c > 0.0) {
      m.ew_rest_A = ew_k * p[fp] * fac / c;
      Eigen::Vector3d gvec(ew_k * fac / c, -m.ew_rest_A / c, -m.ew_rest_A * xl / c);
      const std::array<int, 3> idx = {ia, find_param_index(keep, cp), find_param_index(keep, cp + 1)};
      double var = 0.0;
      for (int a = 0; a < 3; ++a)
        for (int bb = 0; bb < 3; ++bb) var += gvec(a) * gvec(bb) * cov(idx[a], idx[bb]);
      m.ew_err_rest_A = std::sqrt(std::max(var, 0.0));
    }
  }
  int ref = static_cast<int>(LineId::kHalpha);
  if (!f.lines[ref].measured) ref = static_cast<int>(LineId::kOIII5007);
  if (!f.lines[ref].measured)
    for (int l = 0; l < kNumLines; ++l)
      if (f.lines[l].measured) {
        ref = l;
        break;
      }
  f.sigma_inst_kms = f.lines[ref].sigma_inst_kms;

  if (o.detection_snr > 0.0 && !(best_snr >= o.detection_snr)) {
    f.status = LineFitStatus::kNoSignal;
    f.message = "no line above S/N " + format_value(o.detection_snr) + " (best " + format_value(best_snr) +
                "): kinematics not measured" + (converged ? "" : " (solver did not converge on the flat chi^2)");
    return f;
  }
  if (!converged) {
    SpectrumFit nc = fail(LineFitStatus::kNotConverged, "no convergence after " + std::to_string(f.iterations) + " iterations");
    nc.iterations = f.iterations;
    nc.channels = f.channels;
    nc.dof = f.dof;
    return nc;
  }
  if (!full) {
    f.status = v_at || s_at ? LineFitStatus::kAtBound : LineFitStatus::kFailed;
    f.message = v_at ? "velocity at its bound (" + format_value(p[0]) + " km/s)"
                : s_at ? "sigma^2 at its bound (" + format_value(p[1]) + " km^2/s^2)"
                       : "singular covariance of the kinematic parameters";
    return f;
  }
  f.velocity_kms = p[0];
  f.velocity_err_kms = std::sqrt(cov(0, 0));
  f.sigma2_kms2 = p[1];
  f.sigma2_err_kms2 = std::sqrt(cov(1, 1));
  f.sigma_kms = std::sqrt(std::max(p[1], 0.0));
  f.sigma_err_kms = f.sigma2_err_kms2 / (2.0 * std::sqrt(std::max(p[1], 0.25 * f.sigma2_err_kms2)));
  f.sigma_resolved = p[1] > 2.0 * f.sigma2_err_kms2;
  f.status = LineFitStatus::kConverged;
  return f;
}

}  // namespace

const char* to_string(LineFitStatus s) {
  switch (s) {
    case LineFitStatus::kConverged: return "converged";
    case LineFitStatus::kNoSignal: return "no_signal";
    case LineFitStatus::kAtBound: return "at_bound";
    case LineFitStatus::kNotConverged: return "not_converged";
    case LineFitStatus::kNoData: return "no_data";
    case LineFitStatus::kFailed: return "failed";
  }
  return "unknown";
}

void EmissionLineFitOptions::validate() const {
  auto bad = [](const std::string& field, double v, const std::string& rule) {
    throw InvalidOptions("EmissionLineFitOptions." + field + " = " + format_value(v) + ": " + rule);
  };
  auto pos = [&](const char* field, double v) {
    if (!std::isfinite(v) || !(v > 0.0)) bad(field, v, "must be finite and > 0");
  };
  pos("hb_window_lo_A", hb_window_lo_A);
  pos("ha_window_lo_A", ha_window_lo_A);
  if (!(hb_window_hi_A > hb_window_lo_A) || !std::isfinite(hb_window_hi_A)) bad("hb_window_hi_A", hb_window_hi_A, "must be finite and > hb_window_lo_A");
  if (!(ha_window_hi_A > ha_window_lo_A) || !std::isfinite(ha_window_hi_A)) bad("ha_window_hi_A", ha_window_hi_A, "must be finite and > ha_window_lo_A");
  if (!(ha_window_lo_A >= hb_window_hi_A)) bad("ha_window_lo_A", ha_window_lo_A, "must be >= hb_window_hi_A (windows may not overlap)");
  if (lines.empty()) throw InvalidOptions("EmissionLineFitOptions.lines: empty: list at least one line");
  for (LineId id : lines) {
    const double r = line(id).rest_A;
    const bool in = window_of(id) == 0 ? (r > hb_window_lo_A && r < hb_window_hi_A) : (r > ha_window_lo_A && r < ha_window_hi_A);
    if (!in)
      throw InvalidOptions("EmissionLineFitOptions.lines: " + std::string(line(id).name) + " (rest " + format_value(r) +
                           " A) lies outside its fitting window");
  }
  if (tie_doublets) {
    auto has = [&](LineId id) { return std::find(lines.begin(), lines.end(), id) != lines.end(); };
    if (has(LineId::kNII6548) && !has(LineId::kNII6584))
      throw InvalidOptions("EmissionLineFitOptions.lines: nii6548 is tied to nii6584 (tie_doublets = true): list both");
    if (has(LineId::kOIII4959) && !has(LineId::kOIII5007))
      throw InvalidOptions("EmissionLineFitOptions.lines: oiii4959 is tied to oiii5007 (tie_doublets = true): list both");
  }
  pos("nii_ratio", nii_ratio);
  pos("oiii_ratio", oiii_ratio);
  pos("velocity_bound_kms", velocity_bound_kms);
  if (!(velocity_bound_kms < 0.5 * kSpeedOfLight_kms)) bad("velocity_bound_kms", velocity_bound_kms, "must be < c/2");
  pos("sigma_max_kms", sigma_max_kms);
  if (!(min_sigma_obs_fraction > 0.0 && min_sigma_obs_fraction <= 1.0))
    bad("min_sigma_obs_fraction", min_sigma_obs_fraction, "must be in (0, 1]");
  if (!std::isfinite(sigma_start_kms) || !(sigma_start_kms >= 0.0) || !(sigma_start_kms <= sigma_max_kms))
    bad("sigma_start_kms", sigma_start_kms, "must be in [0, sigma_max_kms]");
  if (min_channels_per_window < 3) bad("min_channels_per_window", min_channels_per_window, "must be >= 3");
  if (min_channels_per_line < 1) bad("min_channels_per_line", min_channels_per_line, "must be >= 1");
  if (!std::isfinite(detection_snr) || detection_snr < 0.0) bad("detection_snr", detection_snr, "must be finite and >= 0");
  if (max_iterations < 1) bad("max_iterations", max_iterations, "must be >= 1");
  pos("function_tolerance", function_tolerance);
  pos("parameter_tolerance", parameter_tolerance);
  pos("gradient_tolerance", gradient_tolerance);
  pos("line_free_centre_A", line_free_centre_A);
  pos("line_free_fallback_centre_A", line_free_fallback_centre_A);
  pos("line_free_half_width_A", line_free_half_width_A);
  if (threads < 0) bad("threads", threads, "must be >= 0 (0 = OpenMP default)");
}

SpectrumFit fit_spectrum(const double* wavelength_um, const double* flux_sb, const double* err_sb,
                         const std::uint32_t* dq, std::size_t n, double redshift, const LsfModel& lsf,
                         const EmissionLineFitOptions& options, const SpectrumFit* start, const double* width_um) {
  options.validate();
  try {
    return fit_impl(wavelength_um, flux_sb, err_sb, dq, n, redshift, lsf, options, start, width_um);
  } catch (const std::exception& e) {
    return fail(LineFitStatus::kFailed, std::string("exception: ") + e.what());
  }
}

double line_free_continuum_sb(const double* wl, const double* flux, const double* err, const std::uint32_t* dq,
                              std::size_t n, double z, const EmissionLineFitOptions& o) {
  for (double c : {o.line_free_centre_A, o.line_free_fallback_centre_A}) {
    const double lo = (c - o.line_free_half_width_A) * (1.0 + z) / kAngstromPerUm;
    const double hi = (c + o.line_free_half_width_A) * (1.0 + z) / kAngstromPerUm;
    std::vector<double> v;
    for (std::size_t k = 0; k < n; ++k)
      if (wl[k] >= lo && wl[k] <= hi && usable(flux, err, dq, k, o.dq_mask)) v.push_back(flux[k]);
    if (v.size() >= 3) return median_of(std::move(v));
  }
  return kNaN;
}

LineMaps fit_cube(const Cube& cube, double redshift, const LsfModel& lsf, const EmissionLineFitOptions& options,
                  LineFitSummary* summary) {
  const auto t0 = std::chrono::steady_clock::now();
  options.validate();
  cube.validate();
  LineMaps maps;
  maps.allocate(cube.spatial, cube.sky, redshift);
  const int nx = cube.nx(), ny = cube.ny();
  const std::size_t nl = cube.nl(), ns = cube.spatial.size();
  const double* wl = cube.spectral.centres_um().data();
  const double* wid = cube.spectral.widths_um().data();
  const bool q = cube.has_quality();
  auto err_of = [&](std::size_t s) { return q ? cube.err.data() + s * nl : nullptr; };
  auto dq_of = [&](std::size_t s) { return q ? cube.dq.data() + s * nl : nullptr; };
  const double area = cube.spatial.pixel_area_arcsec2();
  for (LineId id : options.lines) {
    const double mu = observed_wavelength_um(id, redshift);
    if (mu >= cube.spectral.min_um() && mu <= cube.spectral.max_um() && lsf.covers(mu)) maps.line(id).measured = true;
  }
  LineFitSummary sum;
  sum.spaxels = ns;
  const int nthreads = options.threads > 0 ? options.threads : omp_get_max_threads();
  sum.threads = nthreads;

  // brightest spaxel: largest summed usable signal in the Halpha window (else everywhere)
  const double opz = 1.0 + redshift;
  double blo = options.ha_window_lo_A * opz / kAngstromPerUm, bhi = options.ha_window_hi_A * opz / kAngstromPerUm;
  if (bhi < cube.spectral.min_um() || blo > cube.spectral.max_um()) {
    blo = 0.0;
    bhi = 1e300;
  }
  std::vector<double> bright(ns, 0.0);
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (std::ptrdiff_t si = 0; si < static_cast<std::ptrdiff_t>(ns); ++si) {
    const std::size_t s = static_cast<std::size_t>(si);
    const double* f = cube.sci.data() + s * nl;
    double acc = 0.0;
    for (std::size_t k = 0; k < nl; ++k)
      if (wl[k] >= blo && wl[k] <= bhi && usable(f, err_of(s), dq_of(s), k, options.dq_mask)) acc += f[k] * wid[k];
    bright[s] = acc;
  }
  std::size_t bs = 0;
  for (std::size_t s = 1; s < ns; ++s)
    if (bright[s] > bright[bs]) bs = s;
  const int bi = static_cast<int>(bs % static_cast<std::size_t>(nx)), bj = static_cast<int>(bs / static_cast<std::size_t>(nx));
  sum.brightest_i = bi;
  sum.brightest_j = bj;
  auto ring = [&](int i, int j) { return std::max(std::abs(i - bi), std::abs(j - bj)); };
  const int nwaves = std::max({bi + 1, nx - bi, bj + 1, ny - bj});
  std::vector<std::vector<std::size_t>> waves(static_cast<std::size_t>(nwaves));
  for (int j = 0; j < ny; ++j)
    for (int i = 0; i < nx; ++i) waves[static_cast<std::size_t>(ring(i, j))].push_back(maps.index(i, j));
  sum.waves = nwaves;

  std::vector<SpectrumFit> fits(ns);
  std::vector<std::uint8_t> warm(ns, 0), refit(ns, 0);
  auto snr_of = [](const SpectrumFit& f) {
    for (LineId id : {LineId::kHalpha, LineId::kOIII5007})
      if (f.lines[static_cast<int>(id)].measured)
        return std::fabs(f.lines[static_cast<int>(id)].flux_sb) / f.lines[static_cast<int>(id)].flux_err_sb;
    return 0.0;
  };
  auto better = [](const SpectrumFit& a, const SpectrumFit& b) {  // is a better than b?
    if (a.ok() != b.ok()) return a.ok();
    const bool af = std::isfinite(a.chi2), bf = std::isfinite(b.chi2);
    if (af != bf) return af;
    return af && a.chi2 < b.chi2;
  };
  for (const auto& wave : waves) {
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 4)
    for (std::ptrdiff_t wi = 0; wi < static_cast<std::ptrdiff_t>(wave.size()); ++wi) {
      const std::size_t s = wave[static_cast<std::size_t>(wi)];
      const int i = static_cast<int>(s % static_cast<std::size_t>(nx)), j = static_cast<int>(s / static_cast<std::size_t>(nx));
      const int r = ring(i, j);
      const SpectrumFit* start = nullptr;
      if (options.warm_start && r > 0) {
        double best = -1.0;
        for (int dj = -1; dj <= 1; ++dj)
          for (int di = -1; di <= 1; ++di) {
            const int ii = i + di, jj = j + dj;
            if (ii < 0 || jj < 0 || ii >= nx || jj >= ny || ring(ii, jj) != r - 1) continue;
            const SpectrumFit& nf = fits[maps.index(ii, jj)];
            if (!nf.ok()) continue;
            const double snr = snr_of(nf);
            if (snr > best) {
              best = snr;
              start = &nf;
            }
          }
      }
      const double* f = cube.sci.data() + s * nl;
      SpectrumFit res;
      try {
        res = fit_impl(wl, f, err_of(s), dq_of(s), nl, redshift, lsf, options, start, wid);
        if (start) {
          warm[s] = 1;
          // a warm start that ends on a bound, without convergence or failed gets a second chance
          // from the velocity scan (a kNoSignal/kNoData spaxel would not gain from it)
          if (res.status == LineFitStatus::kAtBound || res.status == LineFitStatus::kNotConverged ||
              res.status == LineFitStatus::kFailed) {
            refit[s] = 1;
            SpectrumFit cold = fit_impl(wl, f, err_of(s), dq_of(s), nl, redshift, lsf, options, nullptr, wid);
            if (better(cold, res)) res = std::move(cold);
          }
        }
      } catch (const std::exception& e) {
        res = fail(LineFitStatus::kFailed, std::string("exception: ") + e.what());
      }
      fits[s] = std::move(res);
    }
  }

  // fill the maps
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (std::ptrdiff_t si = 0; si < static_cast<std::ptrdiff_t>(ns); ++si) {
    const std::size_t s = static_cast<std::size_t>(si);
    const SpectrumFit& f = fits[s];
    maps.continuum_line_free_sb[s] =
        line_free_continuum_sb(wl, cube.sci.data() + s * nl, err_of(s), dq_of(s), nl, redshift, options);
    const bool fluxes = f.status == LineFitStatus::kConverged || f.status == LineFitStatus::kNoSignal ||
                        f.status == LineFitStatus::kAtBound;
    if (!fluxes) continue;
    for (int l = 0; l < kNumLines; ++l) {
      const LineMeasurement& m = f.lines[l];
      if (!m.measured) continue;
      LineMap& lm = maps.lines[l];
      lm.flux_cgs[s] = m.flux_sb * area;
      lm.flux_err_cgs[s] = m.flux_err_sb * area;
      lm.ew_rest_A[s] = m.ew_rest_A;
      lm.ew_err_rest_A[s] = m.ew_err_rest_A;
    }
    maps.sigma_inst_kms[s] = f.sigma_inst_kms;
    const LineMeasurement& ha = f.lines[static_cast<int>(LineId::kHalpha)];
    maps.continuum_sb[s] = ha.measured ? ha.continuum_sb : kNaN;
    maps.chi2_per_dof[s] = f.chi2_per_dof;
    if (f.ok()) {
      maps.velocity_kms[s] = f.velocity_kms;
      maps.velocity_err_kms[s] = f.velocity_err_kms;
      maps.sigma_kms[s] = f.sigma_kms;
      maps.sigma_err_kms[s] = f.sigma_err_kms;
      maps.fit_ok[s] = 1;
    }
  }
  for (std::size_t s = 0; s < ns; ++s) {
    ++sum.count_by_status[static_cast<std::size_t>(fits[s].status)];
    sum.warm_started += warm[s];
    sum.refits_from_moments += refit[s];
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (summary) *summary = sum;
  return maps;
}

}  // namespace slitstep
