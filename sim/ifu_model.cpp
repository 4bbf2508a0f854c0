#include "sim/ifu_model.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/normal_cdf.hpp"
#include "core/units.hpp"

namespace slitstep {
namespace {

std::size_t li(LineId id) { return static_cast<std::size_t>(id); }

using CdfTable = NormalCdfTable;
const CdfTable& cdf_table() { return normal_cdf_table(); }

constexpr double kGl3x[3] = {-0.7745966692414834, 0.0, 0.7745966692414834};
constexpr double kGl3w[3] = {5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0};

// Pixel integration of the disk light, light x line ratios, and (optionally separate) continuum
// light, from GalaxyModel's profiles: tables away from the centre, direct calls near it.
struct LightIntegrator {
  const GalaxyModel& m;
  const double* rad_light;  // disk_profile at k*dr
  const double* rad_cont;   // continuum_profile at k*dr (null when the same as the disk)
  const double* rad_ratio;  // nlines values per ratio node
  int nrad, nratio, nlines;
  double inv_dr, inv_drr, r_direct;
  double n, bn, q, re_min;
  std::size_t stride;  // 1 + nlines + 1

  void node(double dx, double dy, double w, double* acc) const {
    const double r = m.disk_coords_offset(dx, dy).r;
    double I, C = 0.0;
    if (r < r_direct) {
      I = m.disk_profile(r);
      if (rad_cont) C = m.continuum_profile(r);
    } else {
      double u = r * inv_dr;
      int k = static_cast<int>(u);
      if (k > nrad - 2) { k = nrad - 2; u = nrad - 1; }
      const double f = u - k;
      I = rad_light[k] + f * (rad_light[k + 1] - rad_light[k]);
      if (rad_cont) C = rad_cont[k] + f * (rad_cont[k + 1] - rad_cont[k]);
    }
    const double wi = w * I;
    acc[0] += wi;
    if (nlines > 0) {
      double u = r * inv_drr;
      int k = static_cast<int>(u);
      if (k > nratio - 2) { k = nratio - 2; u = nratio - 1; }
      const double f = u - k;
      const double* a = rad_ratio + static_cast<std::size_t>(k) * nlines;
      const double* b = a + nlines;
      for (int l = 0; l < nlines; ++l) acc[1 + l] += wi * (a[l] + f * (b[l] - a[l]));
    }
    if (rad_cont) acc[1 + nlines] += w * C;
  }
  void gl3(double x0, double x1, double y0, double y1, double* acc) const {
    const double hx = 0.5 * (x1 - x0), mx = 0.5 * (x1 + x0), hy = 0.5 * (y1 - y0), my = 0.5 * (y1 + y0);
    const double area = hx * hy;
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) node(mx + hx * kGl3x[a], my + hy * kGl3x[b], kGl3w[a] * kGl3w[b] * area, acc);
  }
  double scale(double r) const {
    if (n == 1.0) return re_min / bn;
    if (!(r > 0.0)) return n < 1.0 ? 1e300 : 0.0;
    return n * re_min * std::pow(r / re_min, 1.0 - 1.0 / n) / bn;
  }
  void cell(double x0, double x1, double y0, double y1, double* acc) const {
    const double dxn = std::max({x0, -x1, 0.0}), dyn = std::max({y0, -y1, 0.0});
    const double dxf = std::max(std::fabs(x0), std::fabs(x1)), dyf = std::max(std::fabs(y0), std::fabs(y1));
    const double ell = n >= 1.0 ? scale(std::sqrt(dxn * dxn + dyn * dyn)) : scale(std::sqrt(dxf * dxf + dyf * dyf) / q);
    const double need = std::max(x1 - x0, y1 - y0) / (q * ell);
    int s = 1;
    if (need > 1.0) s = need > 32.0 ? 32 : static_cast<int>(std::ceil(need));
    if (s == 1) return gl3(x0, x1, y0, y1, acc);
    const double hx = (x1 - x0) / s, hy = (y1 - y0) / s;
    for (int a = 0; a < s; ++a)
      for (int b = 0; b < s; ++b) gl3(x0 + a * hx, x0 + (a + 1) * hx, y0 + b * hy, y0 + (b + 1) * hy, acc);
  }
  // Rectangle with the centre (the cusp) at a corner: geometric refinement toward it.
  void corner(double x0, double x1, double y0, double y1, int depth, double* acc) const {
    if (depth > 40 || std::max(x1 - x0, y1 - y0) < 1e-7 * re_min) return gl3(x0, x1, y0, y1, acc);
    const double xm = 0.5 * (x0 + x1), ym = 0.5 * (y0 + y1);
    const double xa[2][2] = {{x0, xm}, {xm, x1}}, ya[2][2] = {{y0, ym}, {ym, y1}};
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const double ax = xa[a][0], bx = xa[a][1], ay = ya[b][0], by = ya[b][1];
        if ((ax == 0.0 || bx == 0.0) && (ay == 0.0 || by == 0.0)) corner(ax, bx, ay, by, depth + 1, acc);
        else cell(ax, bx, ay, by, acc);
      }
  }
  void pixel(double x0, double x1, double y0, double y1, double* acc) const {
    if (!(x0 <= 0.0 && x1 >= 0.0 && y0 <= 0.0 && y1 >= 0.0)) return cell(x0, x1, y0, y1, acc);
    const double xs[3] = {x0, 0.0, x1}, ys[3] = {y0, 0.0, y1};
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b)
        if (xs[a + 1] > xs[a] && ys[b + 1] > ys[b]) corner(xs[a], xs[a + 1], ys[b], ys[b + 1], 0, acc);
  }
};

// floor() as an integer, for |x| < 2^62 (std::floor is a libm call at the baseline x86-64 ISA).
inline long floor_long(double x) {
  const long i = static_cast<long>(x);
  return i - (x < static_cast<double>(i) ? 1 : 0);
}

// Adds a Gaussian line (centre lc, sigma sig, um; surface brightness amp per arcsec^2) integrated
// over the linear output channels [0, nl), renormalised to its ±nsig channel range.
inline void add_line(double* spec, long nl, double e0, double step, double inv_step, double lc, double sig,
                     double amp, double nsig, const CdfTable& cdf, long& kmin, long& kmax) {
  const long k0 = floor_long((lc - nsig * sig - e0) * inv_step);
  const long k1 = floor_long((lc + nsig * sig - e0) * inv_step);
  if (k1 < 0 || k0 >= nl) return;
  const double inv_sig = 1.0 / sig;
  const double t0 = (e0 + k0 * step - lc) * inv_sig, dt = step * inv_sig;
  const double c_lo = cdf(t0), c_hi = cdf(t0 + (k1 - k0 + 1) * dt);  // the range's ends (reused below)
  const double norm = c_hi - c_lo;
  if (!(norm > 0.0)) return;
  const double scale = amp / (norm * step);
  const long ka = std::max(k0, 0L), kb = std::min(k1, nl - 1);
  double prev = ka == k0 ? c_lo : cdf(t0 + (ka - k0) * dt);
  const long kl = kb == k1 ? kb - 1 : kb;  // the last edge of an uncut range is c_hi
  for (long k = ka; k <= kl; ++k) {
    const double p = cdf(t0 + (k - k0 + 1) * dt);
    spec[k] += (p - prev) * scale;
    prev = p;
  }
  if (kb == k1 && kb >= ka) spec[kb] += (c_hi - prev) * scale;
  kmin = std::min(kmin, ka);
  kmax = std::max(kmax, kb);
}

double gauss_interval(double a, double b, double c, double s) {
  const double k = 1.0 / (std::sqrt(2.0) * s);
  return 0.5 * (std::erf((b - c) * k) - std::erf((a - c) * k));
}

}  // namespace

void IfuModelOptions::validate() const {
  auto bad = [](const std::string& f, double v, const std::string& rule) {
    throw InvalidOptions("IfuModelOptions." + f + " = " + format_value(v) + ": " + rule);
  };
  if (!(n_sigma >= 3.0 && n_sigma <= 8.0)) bad("n_sigma", n_sigma, "must be in [3, 8]");
  if (radial_nodes < 64 || radial_nodes > 65536) bad("radial_nodes", radial_nodes, "must be in [64, 65536]");
  if (ratio_nodes < 16 || ratio_nodes > 65536) bad("ratio_nodes", ratio_nodes, "must be in [16, 65536]");
}

IfuModel::IfuModel(const GenericIfu& ifu, const IfuModelOptions& options) : ifu_(ifu), options_(options) {
  options_.validate();
  lines_ = options_.lines;
  if (lines_.empty())
    for (const auto& l : emission_lines()) lines_.push_back(l.id);
  std::sort(lines_.begin(), lines_.end());
  lines_.erase(std::unique(lines_.begin(), lines_.end()), lines_.end());
}

Cube IfuModel::model_cube(const GalaxyModel& model, IfuModelSummary* summary) const {
  Workspace ws = make_workspace();
  Cube c = Cube::zeros(ifu_.spatial(), ifu_.spectral(), ifu_.config().sky, false);
  c.bunit = kSurfaceBrightnessBunit;
  const IfuModelSummary s = model_cube(model, c.sci, ws);
  if (summary) *summary = s;
  return c;
}

IfuModelSummary IfuModel::model_cube(const GalaxyModel& model, std::vector<double>& out, Workspace& ws) const {
  out.resize(ifu_.spatial().size() * ifu_.nl());
  return model_cube(model, out.data(), ws);
}

IfuModelSummary IfuModel::model_cube(const GalaxyModel& model, double* out, Workspace& ws) const {
  IfuModelSummary sum;
  const auto& p = model.params();
  const SpatialGrid& wg = ifu_.work_grid();
  const WavelengthGrid& spec = ifu_.spectral();
  const long nl = static_cast<long>(spec.size());
  const std::size_t nlw = ws.ifu.channels();
  const double e0 = spec.min_um(), step = spec.width_um(0), inv_step = 1.0 / step;
  const double nsig = options_.n_sigma;
  const CdfTable& cdf = cdf_table();
  ws.ifu.clear();

  // Relevant lines: those whose profiles can reach the output range.
  double smax = model.sigma_kms(0.0), vb = std::fabs(p.v0_kms) + model.max_rotation_kms() * model.sin_i();
  double r_max = 0.0;
  for (double sx : {wg.x_arcsec(-0.5), wg.x_arcsec(wg.nx - 0.5)})
    for (double sy : {wg.y_arcsec(-0.5), wg.y_arcsec(wg.ny - 0.5)}) r_max = std::max(r_max, model.disk_coords(sx, sy).r);
  r_max = 1.001 * r_max + 1e-9;
  smax = std::max(smax, model.sigma_kms(r_max));
  for (const auto& c : model.clump_derived()) smax = std::max(smax, c.sigma_kms), vb = std::max(vb, std::fabs(c.vlos_kms));
  if (p.agn.enabled) smax = std::max(smax, p.agn.sigma_kms);
  const double z1 = 1.0 + p.redshift;
  std::vector<LineId> ids;
  std::vector<double> lsys;
  for (LineId id : lines_) {
    const double l = line(id).rest_A * z1 / kAngstromPerUm;
    const double pad = nsig * std::hypot(l * smax / kSpeedOfLight_kms, ifu_.lsf_sigma_um(l)) * 1.1;
    if (l * doppler_factor(vb) + pad < spec.min_um() || l * doppler_factor(-vb) - pad > spec.max_um()) continue;
    ids.push_back(id);
    lsys.push_back(l);
  }
  const int nlines = static_cast<int>(ids.size());
  const bool want_cont = options_.continuum && model.has_continuum();
  const bool sep_cont = want_cont && model.continuum_re_arcsec() != p.re_arcsec;

  // Radial tables from GalaxyModel's functions.
  const int nr = options_.radial_nodes, nq = options_.ratio_nodes;
  const double dr = r_max / (nr - 1), drr = r_max / (nq - 1);
  ws.rad_light.resize(nr);
  ws.rad_rot.resize(nr);
  ws.rad_sig.resize(nr);
  if (sep_cont) ws.rad_cont.resize(nr);
  const bool sig_const = p.sigma_slope_kms_per_kpc == 0.0;
  for (int k = 0; k < nr; ++k) {
    const double r = k * dr;
    ws.rad_light[k] = model.disk_profile(r);
    ws.rad_rot[k] = model.rotation_kms(r) * model.sin_i();
    ws.rad_sig[k] = sig_const ? model.sigma_kms(0.0) : model.sigma_kms(r);
    if (sep_cont) ws.rad_cont[k] = model.continuum_profile(r);
  }
  ws.rad_ratio.resize(static_cast<std::size_t>(nq) * std::max(nlines, 1));
  unsigned clamp_mask = 0;
  if (nlines > 0)
    for (int k = 0; k < nq; ++k) {
      const ChemistryRatios cr = model.ratios_for_metallicity(model.metallicity(k * drr));
      clamp_mask |= cr.clamped_mask;
      for (int l = 0; l < nlines; ++l) ws.rad_ratio[static_cast<std::size_t>(k) * nlines + l] = cr.ratio[li(ids[l])];
    }

  // Pixel-integrated light on the work grid.
  const int nxw = wg.nx, nyw = wg.ny;
  const double pix = wg.pixel_arcsec, area = pix * pix, inv_area = 1.0 / area;
  const std::size_t stride = static_cast<std::size_t>(nlines) + 2;
  ws.light.assign(static_cast<std::size_t>(nxw) * nyw * stride, 0.0);
  const LightIntegrator integ{model, ws.rad_light.data(), sep_cont ? ws.rad_cont.data() : nullptr,
                              ws.rad_ratio.data(), nr, nq, nlines, 1.0 / dr, 1.0 / drr, 8.0 * dr,
                              model.sersic_n(), model.sersic_bn(), model.axis_ratio(),
                              std::min(p.re_arcsec, model.continuum_re_arcsec()), stride};
  const double ex0 = wg.x0_arcsec - p.center_x_arcsec, ey0 = wg.y0_arcsec - p.center_y_arcsec;
  for (int j = 0; j < nyw; ++j) {
    const double y0 = ey0 + (j - 0.5) * pix, y1 = ey0 + (j + 0.5) * pix;
    for (int i = 0; i < nxw; ++i) {
      const double x0 = ex0 + (i - 0.5) * pix, x1 = ex0 + (i + 0.5) * pix;
      integ.pixel(x0, x1, y0, y1, ws.light.data() + (static_cast<std::size_t>(j) * nxw + i) * stride);
    }
  }

  // Spectra of the disk.
  long kmin[kNumLines], kmax[kNumLines];
  std::fill(kmin, kmin + kNumLines, nl);
  std::fill(kmax, kmax + kNumLines, -1L);
  const double f_disk = p.halpha_flux_cgs, v0 = p.v0_kms, inv_dr = 1.0 / dr;
  double* work = ws.ifu.data();
  const std::size_t rowp = ws.ifu.row_pixels();
  for (int j = 0; j < nyw; ++j) {
    const double y = wg.y_arcsec(j);
    for (int i = 0; i < nxw; ++i) {
      const double* acc = ws.light.data() + (static_cast<std::size_t>(j) * nxw + i) * stride;
      double* sp = work + (static_cast<std::size_t>(j) * rowp + i) * nlw;
      sum.disk_light_work_fraction += acc[0];
      if (want_cont) sp[nl] = (sep_cont ? acc[1 + nlines] : acc[0]) * inv_area;
      if (!(acc[0] > 0.0) || nlines == 0) continue;
      const auto dc = model.disk_coords(wg.x_arcsec(i), y);
      double u = dc.r * inv_dr;
      int k = static_cast<int>(u);
      if (k > nr - 2) { k = nr - 2; u = nr - 1; }
      const double f = u - k;
      const double vrot = ws.rad_rot[k] + f * (ws.rad_rot[k + 1] - ws.rad_rot[k]);
      const double v = dc.r > 0.0 ? v0 + vrot * (dc.a / dc.r) : v0;
      const double sig_rel = (ws.rad_sig[k] + f * (ws.rad_sig[k + 1] - ws.rad_sig[k])) / kSpeedOfLight_kms;
      const double dop = doppler_factor(v);
      for (int l = 0; l < nlines; ++l) {
        const double amp = f_disk * acc[1 + l] * inv_area;
        if (!(amp > 0.0)) continue;
        const double lc = lsys[l] * dop, sl = lc * sig_rel, sL = ifu_.lsf_sigma_um(lc);
        add_line(sp, nl, e0, step, inv_step, lc, std::sqrt(sl * sl + sL * sL), amp, nsig, cdf, kmin[l], kmax[l]);
        sum.line_flux_work_cgs[li(ids[l])] += amp * area;
      }
    }
  }

  // Clumps and the AGN core: separable pixel-integrated Gaussians.
  auto gauss_comp = [&](double xc, double yc, double sg, double flux, double v, double sk, const LineRatios& ratios) {
    if (!(flux > 0.0) || nlines == 0) return;
    ws.gx.resize(nxw);
    ws.gy.resize(nyw);
    for (int i = 0; i < nxw; ++i) ws.gx[i] = gauss_interval(wg.x_arcsec(i - 0.5), wg.x_arcsec(i + 0.5), xc, sg);
    for (int j = 0; j < nyw; ++j) ws.gy[j] = gauss_interval(wg.y_arcsec(j - 0.5), wg.y_arcsec(j + 0.5), yc, sg);
    const double dop = doppler_factor(v), sig_rel = sk / kSpeedOfLight_kms;
    for (int j = 0; j < nyw; ++j) {
      if (!(ws.gy[j] > 0.0)) continue;
      for (int i = 0; i < nxw; ++i) {
        const double frac = ws.gx[i] * ws.gy[j];
        if (!(frac > 0.0)) continue;
        double* sp = work + (static_cast<std::size_t>(j) * rowp + i) * nlw;
        for (int l = 0; l < nlines; ++l) {
          const double amp = flux * frac * inv_area * ratios[li(ids[l])];
          if (!(amp > 0.0)) continue;
          const double lc = lsys[l] * dop, sl = lc * sig_rel, sL = ifu_.lsf_sigma_um(lc);
          add_line(sp, nl, e0, step, inv_step, lc, std::sqrt(sl * sl + sL * sL), amp, nsig, cdf, kmin[l], kmax[l]);
          sum.line_flux_work_cgs[li(ids[l])] += amp * area;
        }
      }
    }
  };
  for (std::size_t c = 0; c < p.clumps.size(); ++c) {
    const auto& k = p.clumps[c];
    const auto& d = model.clump_derived()[c];
    gauss_comp(p.center_x_arcsec + k.x_arcsec, p.center_y_arcsec + k.y_arcsec, k.sigma_arcsec, k.halpha_flux_cgs,
               d.vlos_kms, d.sigma_kms, d.ratios.ratio);
  }
  if (p.agn.enabled)
    gauss_comp(p.center_x_arcsec, p.center_y_arcsec, p.agn.sigma_arcsec, p.agn.halpha_flux_cgs, p.v0_kms,
               p.agn.sigma_kms, model.agn_ratios());

  // Which channels hold light: each line's channel range.
  for (int l = 0; l < nlines; ++l)
    if (kmax[l] >= kmin[l]) ws.ifu.mark_active(static_cast<std::size_t>(kmin[l]), static_cast<std::size_t>(kmax[l]) + 1);
  const double* cont_spec = nullptr;
  if (want_cont) {
    ws.ifu.mark_active(static_cast<std::size_t>(nl), static_cast<std::size_t>(nl) + 1);
    ws.cont_spec.resize(nl);
    for (long k = 0; k < nl; ++k) ws.cont_spec[k] = model.continuum_flux_density(spec.wavelength_um(k));
    cont_spec = ws.cont_spec.data();
  }
  ifu_.convolve_and_bin(ws.ifu, out, cont_spec);
  sum.transformed_channels = ws.ifu.transformed_channels();
  if (clamp_mask) {
    std::string msg;
    for (unsigned c = 0; c < 6; ++c)
      if (clamp_mask & (1u << c)) {
        if (!msg.empty()) msg += "; ";
        msg += std::string("metallicity outside the validity of ") + std::string(calibration_name(static_cast<Calibration>(c))) +
               " somewhere in the work grid (index clamped)";
      }
    sum.status = Status::Error(StatusCode::kOutOfRange, msg);
  }
  return sum;
}

}  // namespace slitstep
