#include "fit/start_guess.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <numeric>

#include "core/cosmology.hpp"
#include "core/error.hpp"
#include "core/lines.hpp"
#include "fit/params.hpp"

namespace slitstep {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kDeg = kPi / 180.0;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const double x = p * static_cast<double>(v.size() - 1);
  const std::size_t i = static_cast<std::size_t>(std::floor(x));
  const std::size_t j = std::min(i + 1, v.size() - 1);
  return v[i] + (x - static_cast<double>(i)) * (v[j] - v[i]);
}

std::string fmt(const char* name, double v, const std::string& source) {
  char b[160];
  std::snprintf(b, sizeof b, "%s = %.6g (%s)", name, v, source.c_str());
  return b;
}

}  // namespace

StartGuess start_guess(const LineMaps& maps, const GalaxyParams& base, const AnalysisGuess& a,
                       const StartGuessOptions& o) {
  StartGuess g;
  g.params = base;
  GalaxyParams& p = g.params;
  const std::size_t n = maps.size();
  const LineMap& ha = maps.line(LineId::kHalpha);
  const LineMap& nii = maps.line(LineId::kNII6584);
  const SpatialGrid& grid = maps.spatial;
  auto note = [&](std::string s) { g.notes.push_back(std::move(s)); };
  auto clamp_to = [&](const char* name, double v, double lo, double hi) {
    if (!std::isfinite(v)) return v;
    if (v < lo || v > hi) {
      const double c = std::clamp(v, lo, hi);
      char b[200];
      std::snprintf(b, sizeof b, "%s start %.6g clamped to %.6g", name, v, c);
      note(b);
      return c;
    }
    return v;
  };

  // ---- selection
  std::vector<std::size_t> sel;
  const bool have_ha = ha.measured && ha.flux_cgs.size() == n && ha.flux_err_cgs.size() == n;
  if (have_ha)
    for (std::size_t k = 0; k < n; ++k)
      if (k < maps.fit_ok.size() && maps.fit_ok[k] && std::isfinite(ha.flux_cgs[k]) && ha.flux_err_cgs[k] > 0.0 &&
          ha.flux_cgs[k] / ha.flux_err_cgs[k] > o.min_halpha_snr && std::isfinite(maps.velocity_kms[k]))
        sel.push_back(k);
  g.n_selected = static_cast<int>(sel.size());
  const bool maps_ok = static_cast<int>(sel.size()) >= o.min_spaxels;
  if (!maps_ok)
    note("only " + std::to_string(sel.size()) + " spaxels with S/N(Halpha) > " + format_value(o.min_halpha_snr) +
         ": the map-based guesses keep the base galaxy's values");
  auto xs = [&](std::size_t k) { return grid.x_arcsec(static_cast<double>(k % grid.nx)); };
  auto ys = [&](std::size_t k) { return grid.y_arcsec(static_cast<double>(k / grid.nx)); };

  // ---- flux (every finite spaxel)
  if (have_ha) {
    double f = 0.0;
    for (std::size_t k = 0; k < n; ++k)
      if (std::isfinite(ha.flux_cgs[k])) f += ha.flux_cgs[k];
    if (f > 0.0) {
      p.halpha_flux_cgs = f * o.flux_scale;
      g.sources.push_back(fmt("halpha_flux_cgs", p.halpha_flux_cgs, "sum of the Halpha map"));
    } else {
      note("the summed Halpha flux is not positive: halpha_flux_cgs keeps the base value");
    }
  }

  // ---- centre
  double cx = p.center_x_arcsec, cy = p.center_y_arcsec;
  if (a.center_x_arcsec && a.center_y_arcsec) {
    cx = *a.center_x_arcsec, cy = *a.center_y_arcsec;
    g.sources.push_back(fmt("center", cx, "analysis") + ", " + fmt("y", cy, "analysis"));
  } else if (maps_ok) {
    double sw = 0.0, sx = 0.0, sy = 0.0;
    for (std::size_t k : sel) {
      const double w = std::max(ha.flux_cgs[k], 0.0);
      sw += w, sx += w * xs(k), sy += w * ys(k);
    }
    if (sw > 0.0) {
      cx = sx / sw, cy = sy / sw;
      g.sources.push_back(fmt("center_x_arcsec", cx, "Halpha centroid") + ", " + fmt("y", cy, "Halpha centroid"));
    }
  }
  p.center_x_arcsec = cx;  // bounds: the caller's (the data's field)
  p.center_y_arcsec = cy;

  // ---- light moments: axis ratio and major-axis angle
  double q_light = std::numeric_limits<double>::quiet_NaN(), pa_light = std::numeric_limits<double>::quiet_NaN();
  if (maps_ok) {
    double sw = 0.0, sxx = 0.0, syy = 0.0, sxy = 0.0;
    for (std::size_t k : sel) {
      const double w = std::max(ha.flux_cgs[k], 0.0);
      const double dx = xs(k) - cx, dy = ys(k) - cy;
      sw += w, sxx += w * dx * dx, syy += w * dy * dy, sxy += w * dx * dy;
    }
    if (sw > 0.0) {
      sxx /= sw, syy /= sw, sxy /= sw;
      const double tr = 0.5 * (sxx + syy), det = std::sqrt(0.25 * (sxx - syy) * (sxx - syy) + sxy * sxy);
      const double s2 = o.psf_sigma_arcsec * o.psf_sigma_arcsec;
      const double l1 = tr + det - s2, l2 = tr - det - s2;
      if (l1 > 0.0) q_light = std::sqrt(std::max(l2, 0.0) / l1);
      // Major-axis direction (ex, ey) of the covariance; PA measured from +y toward -x.
      const double th = 0.5 * std::atan2(2.0 * sxy, sxx - syy);  // angle of the major axis from +x
      pa_light = std::remainder(std::atan2(-std::cos(th), std::sin(th)) / kDeg, 360.0);
    }
  }

  // ---- inclination
  double incl = get_galaxy_param(base, "inclination_deg");
  if (a.inclination_deg) {
    incl = *a.inclination_deg;
    g.sources.push_back(fmt("inclination_deg", incl, "analysis"));
  } else if (std::isfinite(q_light)) {
    incl = std::acos(std::clamp(q_light, 0.0, 1.0)) / kDeg;
    g.sources.push_back(fmt("inclination_deg", incl, "Halpha light moments, PSF removed"));
  } else {
    note("no inclination from the analysis or the light: the base value is used");
  }
  incl = clamp_to("inclination_deg", incl, 15.0, 80.0);
  p.inclination_deg = incl;
  p.axis_ratio.reset();
  const double sin_i = std::sin(incl * kDeg);

  // ---- velocity plane: PA, v0
  double pa = p.pa_deg, v0 = p.v0_kms;
  bool have_plane = false;
  if (maps_ok) {
    double s[3][3] = {}, r[3] = {};
    for (std::size_t k : sel) {
      const double e = maps.velocity_err_kms[k];
      const double w = (std::isfinite(e) && e > 0.0) ? 1.0 / (e * e) : 1.0;
      const double b[3] = {1.0, xs(k) - cx, ys(k) - cy};
      for (int i = 0; i < 3; ++i) {
        r[i] += w * b[i] * maps.velocity_kms[k];
        for (int j = 0; j < 3; ++j) s[i][j] += w * b[i] * b[j];
      }
    }
    auto det3 = [](const double m[3][3]) {
      return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
             m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    };
    const double d = det3(s);
    if (std::abs(d) > 0.0 && std::isfinite(d)) {
      double c[3];
      for (int col = 0; col < 3; ++col) {
        double m[3][3];
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) m[i][j] = (j == col) ? r[i] : s[i][j];
        c[col] = det3(m) / d;
      }
      // Significance of the gradient: |grad| vs its error from the normal matrix (rough: the
      // diagonal of the inverse ~ 1/s[i][i]).
      const double gnorm = std::hypot(c[1], c[2]);
      const double gerr = std::sqrt(1.0 / std::max(s[1][1], 1e-300) + 1.0 / std::max(s[2][2], 1e-300));
      v0 = c[0];
      if (gnorm > 3.0 * gerr) {
        pa = std::atan2(-c[1], c[2]) / kDeg;
        have_plane = true;
      }
    }
  }
  if (a.v0_kms) v0 = *a.v0_kms;
  if (a.pa_deg) {
    pa = *a.pa_deg;
    g.sources.push_back(fmt("pa_deg", pa, "analysis"));
  } else if (have_plane) {
    g.sources.push_back(fmt("pa_deg", pa, "velocity plane"));
  } else if (std::isfinite(pa_light)) {
    pa = pa_light;
    g.sources.push_back(fmt("pa_deg", pa, "light major axis"));
    note("no significant velocity gradient: PA from the light's major axis (receding side ambiguous by 180 deg)");
  }
  p.pa_deg = std::remainder(pa, 360.0);
  p.v0_kms = clamp_to("v0_kms", v0, -900.0, 900.0);
  g.sources.push_back(fmt("v0_kms", p.v0_kms, a.v0_kms ? "analysis" : "velocity plane at the centre"));

  // ---- v_c
  if (a.vc_kms) {
    p.vc_kms = *a.vc_kms;
    g.sources.push_back(fmt("vc_kms", p.vc_kms, "analysis"));
  } else if (maps_ok) {
    std::vector<double> v;
    for (std::size_t k : sel) v.push_back(maps.velocity_kms[k]);
    p.vc_kms = 0.5 * (percentile(v, 0.95) - percentile(v, 0.05)) / std::max(sin_i, 0.1);
    g.sources.push_back(fmt("vc_kms", p.vc_kms, "velocity range / sin i"));
  }
  p.vc_kms = clamp_to("vc_kms", p.vc_kms, 20.0, 800.0);

  // ---- sigma0
  if (a.sigma0_kms) {
    p.sigma0_kms = *a.sigma0_kms;
    g.sources.push_back(fmt("sigma0_kms", p.sigma0_kms, "analysis"));
  } else if (maps_ok) {
    std::vector<double> s;
    for (std::size_t k : sel)
      if (std::isfinite(maps.sigma_kms[k])) s.push_back(maps.sigma_kms[k]);
    if (!s.empty()) {
      p.sigma0_kms = percentile(s, 0.5);
      g.sources.push_back(fmt("sigma0_kms", p.sigma0_kms, "median per-spaxel dispersion"));
    }
  }
  p.sigma0_kms = clamp_to("sigma0_kms", p.sigma0_kms, 5.0, 300.0);

  // ---- R_e: half of the selected flux inside the ellipse (centre, PA, q)
  if (maps_ok) {
    const double q = std::cos(incl * kDeg);
    const double sp = std::sin(p.pa_deg * kDeg), cp = std::cos(p.pa_deg * kDeg);
    std::vector<std::pair<double, double>> rf;
    double tot = 0.0;
    for (std::size_t k : sel) {
      const double dx = xs(k) - cx, dy = ys(k) - cy;
      const double am = -dx * sp + dy * cp, bm = dx * cp + dy * sp;
      const double f = std::max(ha.flux_cgs[k], 0.0);
      rf.emplace_back(std::hypot(am, bm / std::max(q, 0.2)), f);
      tot += f;
    }
    std::sort(rf.begin(), rf.end());
    double cum = 0.0, r_half = std::numeric_limits<double>::quiet_NaN();
    for (const auto& [r, f] : rf) {
      cum += f;
      if (cum >= 0.5 * tot) {
        r_half = r;
        break;
      }
    }
    if (std::isfinite(r_half)) {
      const double psf_half = 1.1774 * o.psf_sigma_arcsec;
      const double re = std::sqrt(std::max(r_half * r_half - psf_half * psf_half, 0.0));
      p.re_arcsec = std::max(re, 0.5 * grid.pixel_arcsec);
      g.sources.push_back(fmt("re_arcsec", p.re_arcsec, "half-light ellipse, PSF removed"));
    }
  }
  p.re_arcsec = clamp_to("re_arcsec", p.re_arcsec, 0.02, 4.0);

  // ---- R_t
  if (a.rt_arcsec) {
    p.rt_arcsec = *a.rt_arcsec;
    g.sources.push_back(fmt("rt_arcsec", p.rt_arcsec, "analysis"));
  } else if (maps_ok) {
    p.rt_arcsec = std::max(0.3 * p.re_arcsec, 0.5 * grid.pixel_arcsec);
    g.sources.push_back(fmt("rt_arcsec", p.rt_arcsec, "0.3 R_e"));
  }
  p.rt_arcsec = clamp_to("rt_arcsec", p.rt_arcsec, 0.01, 2.5);

  // ---- metallicity: integrated N2
  if (a.gradient_dex_per_kpc) {
    p.gradient_dex_per_kpc = clamp_to("gradient_dex_per_kpc", *a.gradient_dex_per_kpc, -0.4, 0.4);
    g.sources.push_back(fmt("gradient_dex_per_kpc", p.gradient_dex_per_kpc, "analysis"));
  } else {
    p.gradient_dex_per_kpc = 0.0;
    g.sources.push_back(fmt("gradient_dex_per_kpc", 0.0, "flat start"));
  }
  if (have_ha && nii.measured && nii.flux_cgs.size() == n) {
    double fh = 0.0, fn = 0.0;
    for (std::size_t k : sel)
      if (std::isfinite(nii.flux_cgs[k])) fh += ha.flux_cgs[k], fn += nii.flux_cgs[k];
    const double ratio = fh > 0.0 ? fn / fh : std::numeric_limits<double>::quiet_NaN();
    if (std::isfinite(ratio) && ratio > 0.0) {
      try {
        GalaxyParams b = p;
        const GalaxyModel m(b, Cosmology(CosmologyParams{}));
        auto r_of = [&](double z) {
          const auto cr = m.ratios_for_metallicity(z);
          return cr.ratio[static_cast<int>(LineId::kNII6584)];
        };
        double lo = 7.0, hi = 9.5;
        const double rlo = r_of(lo), rhi = r_of(hi);
        const bool inc = rhi > rlo;
        if ((ratio - rlo) * (ratio - rhi) > 0.0) {
          p.z0_12logoh = (std::abs(ratio - rlo) < std::abs(ratio - rhi)) ? lo + 0.05 : hi - 0.05;
          note("integrated [NII]/Halpha = " + format_value(ratio) + " is outside the calibration's range: z0 starts at " +
               format_value(p.z0_12logoh));
        } else {
          for (int it = 0; it < 60; ++it) {
            const double mid = 0.5 * (lo + hi);
            if ((r_of(mid) < ratio) == inc) lo = mid;
            else hi = mid;
          }
          p.z0_12logoh = std::clamp(0.5 * (lo + hi), 7.05, 9.45);
        }
        g.sources.push_back(fmt("z0_12logoh", p.z0_12logoh, "integrated [NII]6584/Halpha"));
      } catch (const std::exception& e) {
        note(std::string("z0 keeps the base value: ") + e.what());
      }
    }
  }

  // ---- EW (nuisance): the model's continuum level, the start of its fit
  if (have_ha && ha.ew_rest_A.size() == n && ha.ew_err_rest_A.size() == n) {
    double f = 0.0, c = 0.0;
    int n_ew = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const double ew = ha.ew_rest_A[k], ee = ha.ew_err_rest_A[k];
      if (std::isfinite(ew) && ew > 0.0 && std::isfinite(ee) && ee > 0.0 && ew / ee > o.min_ew_snr &&
          std::isfinite(ha.flux_cgs[k]) && ha.flux_cgs[k] > 0.0)
        f += ha.flux_cgs[k], c += ha.flux_cgs[k] / ew, ++n_ew;
    }
    if (n_ew < o.min_spaxels) {
      p.ew_halpha_rest_A = 0.0;
      g.sources.push_back(fmt("ew_halpha_rest_A", 0.0, "no spaxel with a significant EW: no continuum (fixed)"));
    } else if (c > 0.0 && f / c > 2000.0) {
      p.ew_halpha_rest_A = 0.0;
      g.sources.push_back(fmt("ew_halpha_rest_A", 0.0, "integrated EW > 2000 A: no continuum (fixed)"));
    } else if (c > 0.0) {
      p.ew_halpha_rest_A = f / c;
      g.sources.push_back(fmt("ew_halpha_rest_A", p.ew_halpha_rest_A, "integrated EW (start; fitted as the continuum nuisance)"));
    }
  }
  return g;
}

}  // namespace slitstep
