#include "sim/invariants.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/quadrature.hpp"
#include "core/cosmology.hpp"
#include "core/cube.hpp"
#include "core/units.hpp"

namespace slitstep {

namespace {

constexpr const double* kGl8x = kGaussLegendre8X;
constexpr const double* kGl8w = kGaussLegendre8W;

double gauss_fraction(double lo, double hi, double c, double s) {
  const double k = 1.0 / (std::sqrt(2.0) * s);
  return 0.5 * (std::erf((hi - c) * k) - std::erf((lo - c) * k));
}

// Per-spaxel flux (sum over channels) and first-moment velocity of a single-line cube.
void moment_maps(const Cube& c, double lambda_sys_um, std::vector<double>& flux, std::vector<double>& vel) {
  const std::size_t np = c.spatial.size(), nl = c.nl();
  flux.assign(np, 0.0);
  vel.assign(np, 0.0);
  for (std::size_t p = 0; p < np; ++p) {
    const double* s = c.sci.data() + p * nl;
    double sw = 0.0, swl = 0.0;
    for (std::size_t k = 0; k < nl; ++k) {
      const double w = s[k] * c.spectral.width_um(k);
      sw += w;
      swl += w * c.spectral.wavelength_um(k);
    }
    flux[p] = sw;
    vel[p] = sw > 0.0 ? velocity_from_ratio_kms(swl / sw / lambda_sys_um) : 0.0;
  }
}

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3e", v);
  return b;
}

}  // namespace

double profile_fraction_in_rect(const GalaxyModel& model, double re_arcsec, double x0, double x1,
                                double y0, double y1) {
  const auto& p = model.params();
  const double q = model.axis_ratio();
  // Rectangle corners in the disk's circular coordinates (u, w) = (a, b/q), where the profile is
  // circular and normalised: fraction = (1/2pi) \int dphi P(rho(phi)).
  const double cx[4] = {x0, x1, x1, x0}, cy[4] = {y0, y0, y1, y1};
  double u[4], w[4];
  for (int k = 0; k < 4; ++k) {
    const auto dc = model.disk_coords_offset(cx[k] - p.center_x_arcsec, cy[k] - p.center_y_arcsec);
    u[k] = dc.a;
    w[k] = dc.b / q;
  }
  double total = 0.0;
  for (int e = 0; e < 4; ++e) {
    const int f = (e + 1) % 4;
    const double ex = u[f] - u[e], ey = w[f] - w[e];
    const double a1 = std::atan2(w[e], u[e]);
    double span = std::atan2(w[f], u[f]) - a1;
    while (span > kPi) span -= 2 * kPi;
    while (span <= -kPi) span += 2 * kPi;
    const double c0 = u[e] * ey - w[e] * ex;  // cross(P1, P2 - P1)
    const int panels = 256;
    const double h = span / panels;
    double acc = 0.0;
    for (int k = 0; k < panels; ++k)
      for (int g = 0; g < 8; ++g) {
        const double phi = a1 + (k + 0.5 + 0.5 * kGl8x[g]) * h;
        const double den = std::cos(phi) * ey - std::sin(phi) * ex;  // cross(d, P2 - P1)
        const double rho = c0 / den;
        acc += 0.5 * kGl8w[g] * model.enclosed_fraction(std::fabs(rho), re_arcsec);
      }
    total += std::fabs(acc * h);
  }
  return total / (2.0 * kPi);
}

std::string InvariantReport::table() const {
  std::string out;
  char line[512];
  for (const auto& c : checks) {
    std::snprintf(line, sizeof line, "%-22s %-4s %11s (tol %9s)  %s\n", c.name.c_str(), c.pass ? "ok" : "FAIL",
                  num(c.value).c_str(), num(c.tolerance).c_str(), c.detail.c_str());
    out += line;
  }
  return out;
}

InvariantReport check_invariants(const GalaxyParams& params, const RenderOptions& options,
                                 const SkyFrame& sky, const CosmologyParams& cosmology_params) {
  InvariantReport rep;
  const Cosmology cosmo(cosmology_params);
  auto add = [&](std::string name, double value, double tol, std::string detail) {
    rep.checks.push_back({std::move(name), value, tol, std::isfinite(value) && value <= tol, std::move(detail)});
  };
  const SpatialGrid sg = render_spatial_grid(options);
  const double fx0 = sg.x_arcsec(-0.5), fx1 = sg.x_arcsec(sg.nx - 0.5);
  const double fy0 = sg.y_arcsec(-0.5), fy1 = sg.y_arcsec(sg.ny - 0.5);
  const double pix = sg.pixel_arcsec;

  // Line-only version of the model (continuum checked separately).
  GalaxyParams lp = params;
  lp.ew_halpha_rest_A = 0.0;
  const GalaxyModel model(params, cosmo);
  const GalaxyModel lmodel(lp, cosmo);
  RenderOptions ha = options;
  ha.lines = {LineId::kHalpha};
  ha.continuum_windows = false;

  // 1. Halpha flux inside the field against the independent analytic expectation.
  const RenderResult rha = render(lmodel, ha, sky);
  {
    double expect = params.halpha_flux_cgs *
                    profile_fraction_in_rect(lmodel, params.re_arcsec, fx0, fx1, fy0, fy1);
    bool small = false;
    auto gauss = [&](double xc, double yc, double s, double f) {
      expect += f * gauss_fraction(fx0, fx1, xc, s) * gauss_fraction(fy0, fy1, yc, s);
      if (s < pix) small = true;
    };
    for (const auto& c : params.clumps)
      gauss(params.center_x_arcsec + c.x_arcsec, params.center_y_arcsec + c.y_arcsec, c.sigma_arcsec, c.halpha_flux_cgs);
    if (params.agn.enabled) gauss(params.center_x_arcsec, params.center_y_arcsec, params.agn.sigma_arcsec, params.agn.halpha_flux_cgs);
    const double got = integrated_flux(rha.cube);
    const double err = expect > 0.0 ? std::fabs(got / expect - 1.0) : std::fabs(got);
    add("flux_halpha_fov", err, small ? 1e-3 : 1e-4,
        "cube " + num(got) + " vs analytic in-field " + num(expect) + " erg/s/cm2 (model total " +
            num(model.line_flux_total_cgs()[static_cast<std::size_t>(LineId::kHalpha)]) + ")");
  }

  // 2. All lines: cube integral = sum of the reported in-field line fluxes.
  {
    RenderOptions all = options;
    all.continuum_windows = false;
    const RenderResult r = render(lmodel, all, sky);
    double sum = 0.0;
    for (std::size_t l = 0; l < kNumLines; ++l)
      if (r.rendered[l]) sum += r.line_flux_fov_cgs[l];
    const double got = integrated_flux(r.cube);
    add("flux_lines_fov", sum > 0.0 ? std::fabs(got / sum - 1.0) : std::fabs(got), 1e-9,
        "all-line cube " + num(got) + " vs reported in-field sum " + num(sum) +
            (r.truncated_profiles ? " (" + std::to_string(r.truncated_profiles) + " truncated profiles)" : ""));
    if (r.truncated_profiles > 0) rep.checks.back().pass = false;
  }

  // 3. Continuum inside the 5500 A window.
  if (model.has_continuum()) {
    RenderOptions co = options;
    co.lines = {LineId::kHbeta};
    co.continuum_windows = true;
    const RenderResult r = render(model, co, sky);
    const double z1 = 1.0 + params.redshift;
    const double lo = (5500.0 - options.continuum_window_half_A) * z1 / kAngstromPerUm;
    const double hi = (5500.0 + options.continuum_window_half_A) * z1 / kAngstromPerUm;
    double fd = 0.0;
    for (std::size_t k = 0; k < r.cube.nl(); ++k) {
      const double l = r.cube.spectral.wavelength_um(k);
      if (l >= lo - 1e-9 && l <= hi + 1e-9) fd += model.continuum_flux_density(l) * r.cube.spectral.width_um(k);
    }
    const double expect = fd * profile_fraction_in_rect(model, model.continuum_re_arcsec(), fx0, fx1, fy0, fy1);
    const double got = integrated_flux(r.cube, lo - 1e-9, hi + 1e-9);
    add("flux_continuum_fov", std::fabs(got / expect - 1.0), 1e-4,
        "5500 A window: cube " + num(got) + " vs analytic " + num(expect));
  }

  // 4. PA + 180 deg.
  {
    GalaxyParams rp = lp;
    rp.pa_deg = params.pa_deg + 180.0;
    const GalaxyModel rmodel(rp, cosmo);
    RenderOptions o = ha;
    o.window_half_width_kms = rha.window_half_width_kms;
    const RenderResult r2 = render(rmodel, o, sky);
    const double lsys = lmodel.observed_wavelength_um(LineId::kHalpha);
    std::vector<double> f1, v1, f2, v2;
    moment_maps(rha.cube, lsys, f1, v1);
    moment_maps(r2.cube, lsys, f2, v2);
    const double peak = *std::max_element(f1.begin(), f1.end());
    double df = 0.0, dv = 0.0;
    for (std::size_t p = 0; p < f1.size(); ++p) {
      df = std::max(df, std::fabs(f1[p] - f2[p]) / peak);
      if (f1[p] > 1e-6 * peak) dv = std::max(dv, std::fabs((v1[p] - params.v0_kms) + (v2[p] - params.v0_kms)));
    }
    add("pa180_flux", df, 1e-9, "max |F(pa) - F(pa+180)| / peak, per pixel");
    // Exact for a single kinematic component; where components at different velocities overlap
    // (disk + AGN/clump) the wavelength-mean moment is antisymmetric only to O(v_a v_b / c)
    // (~0.01 km/s), hence the tolerance.
    add("pa180_velocity", dv, 0.05, "max |(v(pa) - v0) + (v(pa+180) - v0)| in km/s (pixels > 1e-6 peak)");
  }

  // 5. Shift covariance: centre moved by (+3, -2) fine pixels.
  {
    const int mx = 3, my = -2;
    GalaxyParams sp = lp;
    sp.center_x_arcsec = params.center_x_arcsec + mx * pix;
    sp.center_y_arcsec = params.center_y_arcsec + my * pix;
    const GalaxyModel smodel(sp, cosmo);
    RenderOptions o = ha;
    o.window_half_width_kms = rha.window_half_width_kms;
    const RenderResult r2 = render(smodel, o, sky);
    const auto& a = rha.cube;
    const auto& b = r2.cube;
    const std::size_t nl = a.nl();
    double peak = 0.0, diff = 0.0;
    for (double v : a.sci) peak = std::max(peak, std::fabs(v));
    for (int j = std::max(0, -my); j < std::min(a.ny(), a.ny() - my); ++j)
      for (int i = std::max(0, -mx); i < std::min(a.nx(), a.nx() - mx); ++i) {
        const double* sa = a.spectrum(i, j);
        const double* sb = b.spectrum(i + mx, j + my);
        for (std::size_t k = 0; k < nl; ++k) diff = std::max(diff, std::fabs(sa[k] - sb[k]));
      }
    add("shift_covariance", peak > 0.0 ? diff / peak : diff, 1e-7,
        "centre moved by (+3, -2) fine pixels: max |difference| / peak over the interior");
  }

  std::string failed;
  for (const auto& c : rep.checks)
    if (!c.pass) failed += (failed.empty() ? "" : ", ") + c.name;
  if (!failed.empty()) rep.status = Status::Error(StatusCode::kFailed, "invariants failed: " + failed);
  return rep;
}

}  // namespace slitstep
