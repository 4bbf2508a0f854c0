// Tests of sim/render: flux conservation, kinematics, chemistry, grids, determinism.
#include <gtest/gtest.h>

#include <boost/math/special_functions/gamma.hpp>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/calibrations.hpp"
#include "core/cosmology.hpp"
#include "core/cube.hpp"
#include "core/units.hpp"
#include "sim/galaxy.hpp"
#include "sim/render.hpp"

using namespace slitstep;

namespace {
std::size_t li(LineId id) { return static_cast<std::size_t>(id); }
GalaxyModel make(const GalaxyParams& p) { return GalaxyModel(p, Cosmology()); }

// Flux-weighted mean wavelength of the channels in [lo, hi] of one spaxel (continuum-free cube).
double mean_wavelength(const Cube& c, int i, int j, double lo, double hi, double* sum_out = nullptr) {
  const double* s = c.spectrum(i, j);
  double sw = 0.0, swl = 0.0;
  for (std::size_t k = 0; k < c.nl(); ++k) {
    const double l = c.spectral.wavelength_um(k);
    if (l < lo || l > hi) continue;
    const double w = s[k] * c.spectral.width_um(k);
    sw += w;
    swl += w * l;
  }
  if (sum_out) *sum_out = sw;
  return swl / sw;
}

// Fraction of a circular profile (enclosed fraction P(R)) inside the rectangle [-X,X]x[-Y,Y]
// centred on it: (2/pi) [ int_0^atan(Y/X) P(X/cos phi) dphi + int_0^atan(X/Y) P(Y/cos phi) dphi ].
template <class F>
double rect_fraction(F enclosed, double X, double Y) {
  auto part = [&](double A, double phimax) {
    const int n = 20000;
    double s = 0.0;
    for (int k = 0; k < n; ++k) {  // midpoint rule on a smooth integrand
      const double phi = (k + 0.5) * phimax / n;
      s += enclosed(A / std::cos(phi));
    }
    return s * phimax / n;
  };
  return (2.0 / kPi) * (part(X, std::atan(Y / X)) + part(Y, std::atan(X / Y)));
}
}  // namespace

TEST(Render, GridsWindowsAndCubeMetadata) {
  const auto m = make(GalaxyParams{});
  RenderOptions o;
  const auto sg = render_spatial_grid(o);
  EXPECT_EQ(sg.nx, 130);
  EXPECT_EQ(sg.ny, 160);
  const auto wg = render_wavelength_grid(m, o);
  // Hbeta, [OIII]4959, [OIII]5007, 5500 continuum, 6500 continuum, Halpha+[NII], [SII].
  EXPECT_EQ(wg.windows().size(), 7u);
  for (const auto& w : wg.windows())
    EXPECT_NEAR(w.step_um / (w.start_um + 0.5 * (w.n - 1) * w.step_um), 15.0 / kSpeedOfLight_kms, 1e-12);
  o.lines = {LineId::kHalpha};
  o.continuum_windows = false;
  o.fov_x_arcsec = o.fov_y_arcsec = 0.4;
  const auto r = render(m, o, SkyFrame{});
  EXPECT_TRUE(r.status.ok()) << r.status.message;
  EXPECT_EQ(r.cube.bunit, std::string(kSurfaceBrightnessBunit));
  EXPECT_EQ(r.cube.spectral.windows().size(), 1u);
  for (double v : r.cube.err) ASSERT_EQ(v, 0.0);
  for (auto v : r.cube.dq) ASSERT_EQ(v, 0u);
  for (double v : r.cube.wmap) ASSERT_EQ(v, 1.0);
  EXPECT_THROW(
      [] {
        RenderOptions bad;
        bad.channel_kms = -1.0;
        bad.validate();
      }(),
      InvalidOptions);
}

// A resolved disk whose light outside the field is < 1e-6: the cube integral of every line
// equals the model's total flux (computed by the model's own radial integral) to 1e-4.
TEST(Render, FluxConservationResolvedDisk) {
  GalaxyParams p;
  p.re_arcsec = 0.15;  // scale length 0.089": field half-width 1.6" = 18 scale lengths
  p.ew_halpha_rest_A = 0.0;
  const auto m = make(p);
  RenderOptions o;
  o.fov_x_arcsec = o.fov_y_arcsec = 3.2;
  o.continuum_windows = false;
  o.channel_kms = 30.0;
  for (const auto& l : emission_lines()) {
    o.lines = {l.id};
    const auto r = render(m, o, SkyFrame{});
    // (The outskirts fall below PP04 O3N2's validity: clamped and counted, not an error here.)
    ASSERT_EQ(r.truncated_profiles, 0);
    ASSERT_EQ(r.clamped_pixels[static_cast<std::size_t>(Calibration::kPP04N2Cubic)], 0);
    const double total = m.line_flux_total_cgs()[li(l.id)];
    const double cube = integrated_flux(r.cube);
    EXPECT_NEAR(cube / total - 1.0, 0.0, 1e-4) << l.name;
    // The cube holds exactly what the summary says is inside the field.
    EXPECT_NEAR(cube / r.line_flux_fov_cgs[li(l.id)] - 1.0, 0.0, 1e-12) << l.name;
    if (l.id == LineId::kHalpha) {
      EXPECT_NEAR(r.disk_light_fov_fraction, 1.0, 1e-6);
      RecordProperty("halpha_flux_rel_error", std::to_string(cube / total - 1.0));
    }
  }
}

// Pixel integration against an independent 1-D integral of the enclosed-light function, for
// several Sérsic indices and axis ratios, with a field that cuts the profile (flux outside the
// field is reported, not lost).
TEST(Render, PixelIntegratedLightMatchesTheAnalyticFractionInsideTheField) {
  struct Case { const char* profile; double n; double incl; };
  for (const Case c : {Case{"sersic", 0.5, 0.0}, Case{"exponential", 1.0, 0.0}, Case{"exponential", 1.0, 60.0},
                       Case{"sersic", 4.0, 0.0}, Case{"sersic", 4.0, 50.0}, Case{"sersic", 2.0, 70.0}}) {
    GalaxyParams p;
    p.light_profile = c.profile;
    p.sersic_n = c.n;
    p.inclination_deg = c.incl;
    p.pa_deg = 0.0;  // major axis along y, minor along x
    p.re_arcsec = 0.3;
    p.ew_halpha_rest_A = 0.0;
    const auto m = make(p);
    RenderOptions o;
    o.fov_x_arcsec = 0.8;
    o.fov_y_arcsec = 1.2;
    o.lines = {LineId::kHalpha};
    o.continuum_windows = false;
    o.channel_kms = 40.0;
    const auto r = render(m, o, SkyFrame{});
    // Circular coordinates: x/q, y  ->  rectangle [-0.4/q, 0.4/q] x [-0.6, 0.6].
    const double q = m.axis_ratio();
    const double expect = rect_fraction([&](double R) { return m.enclosed_fraction(R, p.re_arcsec); },
                                        0.4 / q, 0.6);
    EXPECT_NEAR(r.disk_light_fov_fraction / expect - 1.0, 0.0, 2e-5) << c.profile << " n=" << c.n << " i=" << c.incl;
    EXPECT_NEAR(integrated_flux(r.cube) / (expect * p.halpha_flux_cgs) - 1.0, 0.0, 2e-5);
    EXPECT_LT(r.line_flux_fov_cgs[li(LineId::kHalpha)], r.line_flux_total_cgs[li(LineId::kHalpha)]);
  }
}

// A clump smaller than one fine pixel conserves its flux (erf-integrated pixels).
TEST(Render, FluxConservationUnresolvedClumpAndAgn) {
  GalaxyParams p;
  p.halpha_flux_cgs = 0.0;
  p.ew_halpha_rest_A = 0.0;
  p.clumps.push_back({0.013, -0.207, 0.006, 4e-18, 0.05});
  const auto m = make(p);
  RenderOptions o;
  o.fov_x_arcsec = o.fov_y_arcsec = 0.6;
  o.continuum_windows = false;
  const auto r = render(m, o, SkyFrame{});
  const double vc = m.clump_derived()[0].vlos_kms;
  for (const auto& l : emission_lines()) {
    // +-300 km/s about the clump's velocity (the closest lines are 641 km/s apart).
    const double lo = m.observed_wavelength_um(l.id, vc - 300.0), hi = m.observed_wavelength_um(l.id, vc + 300.0);
    const double f = integrated_flux(r.cube, lo, hi);
    EXPECT_NEAR(f / m.line_flux_total_cgs()[li(l.id)] - 1.0, 0.0, 1e-3) << l.name;
  }
  GalaxyParams a;
  a.halpha_flux_cgs = 0.0;
  a.ew_halpha_rest_A = 0.0;
  a.agn.enabled = true;
  a.agn.sigma_arcsec = 0.01;
  const auto ma = make(a);
  o.lines = {LineId::kHalpha};
  const auto ra = render(ma, o, SkyFrame{});
  EXPECT_NEAR(integrated_flux(ra.cube) / a.agn.halpha_flux_cgs - 1.0, 0.0, 1e-6);
}

TEST(Render, FirstMomentAlongTheMajorAxisIsTheRotationCurve) {
  GalaxyParams p;
  p.pa_deg = 0.0;  // receding major axis along +y
  p.v0_kms = 25.0;
  p.ew_halpha_rest_A = 0.0;
  const auto m = make(p);
  RenderOptions o;
  o.fov_x_arcsec = 0.42;  // 21 columns: column 10 is x = 0
  o.fov_y_arcsec = 2.42;
  o.lines = {LineId::kHalpha};
  o.continuum_windows = false;
  const auto r = render(m, o, SkyFrame{});
  const int ic = 10;
  ASSERT_NEAR(r.cube.spatial.x_arcsec(ic), 0.0, 1e-12);
  const double lsys = m.observed_wavelength_um(LineId::kHalpha);
  double worst = 0.0;
  for (int j = 0; j < r.cube.ny(); ++j) {
    const double y = r.cube.spatial.y_arcsec(j);
    if (std::fabs(y) < 0.05) continue;  // away from the centre
    const double v = velocity_from_ratio_kms(mean_wavelength(r.cube, ic, j, 0.0, 1e9) / lsys);
    const double expect = p.v0_kms + (y > 0 ? 1.0 : -1.0) * m.rotation_kms(std::fabs(y)) * m.sin_i();
    worst = std::max(worst, std::fabs(v - expect));
  }
  EXPECT_LT(worst, 2.0);
  EXPECT_LT(worst, 0.01);  // in fact exact up to the profile tables
  RecordProperty("max_moment1_residual_kms", std::to_string(worst));
}

TEST(Render, FaceOnDiskHasNoVelocityGradient) {
  GalaxyParams p;
  p.inclination_deg = 0.0;
  p.v0_kms = -40.0;
  p.ew_halpha_rest_A = 0.0;
  const auto m = make(p);
  RenderOptions o;
  o.fov_x_arcsec = o.fov_y_arcsec = 1.0;
  o.lines = {LineId::kHalpha};
  o.continuum_windows = false;
  const auto r = render(m, o, SkyFrame{});
  const double lsys = m.observed_wavelength_um(LineId::kHalpha);
  for (int j = 0; j < r.cube.ny(); j += 3)
    for (int i = 0; i < r.cube.nx(); i += 3)
      ASSERT_NEAR(velocity_from_ratio_kms(mean_wavelength(r.cube, i, j, 0.0, 1e9) / lsys), -40.0, 1e-3);
}

TEST(Render, PaPlus180MirrorsTheVelocityField) {
  GalaxyParams p;
  p.v0_kms = 30.0;
  p.ew_halpha_rest_A = 0.0;
  GalaxyParams q = p;
  q.pa_deg = p.pa_deg + 180.0;
  RenderOptions o;
  o.fov_x_arcsec = 1.0;
  o.fov_y_arcsec = 1.2;
  o.lines = {LineId::kHalpha};
  o.continuum_windows = false;
  const auto a = render(make(p), o, SkyFrame{});
  const auto b = render(make(q), o, SkyFrame{});
  ASSERT_EQ(a.cube.spectral, b.cube.spectral);
  const double lsys = make(p).observed_wavelength_um(LineId::kHalpha);
  const int nx = a.cube.nx(), ny = a.cube.ny();
  // Turning the galaxy by 180 deg negates v - v0 at every pixel and keeps the light; the disk
  // itself is point-symmetric: v(-x) - v0 = -(v(x) - v0), I(-x) = I(x).
  double worst_v = 0.0, worst_f = 0.0, worst_sym = 0.0;
  for (int j = 0; j < ny; ++j)
    for (int i = 0; i < nx; ++i) {
      double fa, fb, fm;
      const double va = velocity_from_ratio_kms(mean_wavelength(a.cube, i, j, 0, 1e9, &fa) / lsys);
      const double vb = velocity_from_ratio_kms(mean_wavelength(b.cube, i, j, 0, 1e9, &fb) / lsys);
      const double vm = velocity_from_ratio_kms(mean_wavelength(a.cube, nx - 1 - i, ny - 1 - j, 0, 1e9, &fm) / lsys);
      worst_v = std::max(worst_v, std::fabs((va - 30.0) + (vb - 30.0)));
      worst_sym = std::max(worst_sym, std::fabs((va - 30.0) + (vm - 30.0)));
      worst_f = std::max({worst_f, std::fabs(fa - fb) / fa, std::fabs(fa - fm) / fa});
    }
  EXPECT_LT(worst_v, 1e-3);
  EXPECT_LT(worst_sym, 1e-3);
  EXPECT_LT(worst_f, 1e-9);
}

// N2 measured spaxel by spaxel from the noiseless cube (with continuum, subtracted with a
// straight line through the line-free window edges) inverts to the input metallicity.
TEST(Render, N2FromTheCubeInvertsToTheInputMetallicity) {
  GalaxyParams p;
  p.gradient_dex_per_kpc = -0.05;
  const auto m = make(p);
  RenderOptions o;
  o.fov_x_arcsec = 1.6;
  o.fov_y_arcsec = 1.6;
  o.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  o.continuum_windows = false;
  const auto r = render(m, o, SkyFrame{});
  ASSERT_EQ(r.truncated_profiles, 0);
  const auto& c = r.cube;
  ASSERT_EQ(c.spectral.windows().size(), 1u);
  const std::size_t nl = c.nl();
  const auto& lam = c.spectral.centres_um();
  const double lha = m.observed_wavelength_um(LineId::kHalpha);
  const double lnii = m.observed_wavelength_um(LineId::kNII6584);
  double worst = 0.0, worst_centre = 0.0;
  int used = 0;
  for (int j = 0; j < c.ny(); ++j)
    for (int i = 0; i < c.nx(); ++i) {
      const double* s = c.spectrum(i, j);
      // Continuum: straight line through the means of the first and last 5 channels.
      double l1 = 0, c1 = 0, l2 = 0, c2 = 0;
      for (int k = 0; k < 5; ++k) {
        l1 += lam[k] / 5; c1 += s[k] / 5;
        l2 += lam[nl - 1 - k] / 5; c2 += s[nl - 1 - k] / 5;
      }
      auto line_sum = [&](double lc) {
        double acc = 0.0;
        for (std::size_t k = 0; k < nl; ++k) {
          if (std::fabs(lam[k] / lc - 1.0) > 450.0 / kSpeedOfLight_kms) continue;
          acc += s[k] - (c1 + (c2 - c1) * (lam[k] - l1) / (l2 - l1));
        }
        return acc;
      };
      const double n2 = std::log10(line_sum(lnii) / line_sum(lha));
      const auto res = metallicity_from_index(Calibration::kPP04N2Cubic, n2);
      if (!res.status.ok()) continue;
      const double rr = m.disk_coords(c.spatial.x_arcsec(i), c.spatial.y_arcsec(j)).r;
      const double d = std::fabs(res.value - m.metallicity(rr));
      // The line ratios are light-weighted over each pixel (the kinematics are not), so the
      // pixels at the cusp (R < 2 fine pixels) differ from the value at their centre.
      if (rr < 2.0 * o.pixel_arcsec) {
        worst_centre = std::max(worst_centre, d);
        continue;
      }
      worst = std::max(worst, d);
      ++used;
    }
  EXPECT_GT(used, 4000);
  EXPECT_LT(worst, 1e-3);
  EXPECT_LT(worst_centre, 1e-2);
  RecordProperty("max_metallicity_residual_centre_dex", std::to_string(worst_centre));
  RecordProperty("max_metallicity_residual_dex", std::to_string(worst));
}

TEST(Render, ResultsDoNotDependOnTheThreadCount) {
  GalaxyParams p;
  p.clumps.push_back({0.2, 0.1, 0.03, 3e-18, -0.1});
  p.agn.enabled = true;
  const auto m = make(p);
  RenderOptions o;
  o.fov_x_arcsec = 0.8;
  o.fov_y_arcsec = 0.6;
  o.threads = 1;
  const auto a = render(m, o, SkyFrame{});
  o.threads = 2;
  const auto b = render(m, o, SkyFrame{});
  EXPECT_TRUE(a.cube == b.cube);
  EXPECT_EQ(a.line_flux_fov_cgs, b.line_flux_fov_cgs);
}

TEST(Render, CalibrationClampsAreCountedInTheStatus) {
  GalaxyParams p;
  p.gradient_dex_per_kpc = -0.3;  // reaches below 7.17 (PP04 N2 cubic) inside the field
  const auto m = make(p);
  RenderOptions o;
  o.fov_x_arcsec = o.fov_y_arcsec = 1.0;
  o.pixel_arcsec = 0.05;
  o.lines = {LineId::kHalpha, LineId::kNII6584};
  o.continuum_windows = false;
  const auto r = render(m, o, SkyFrame{});
  EXPECT_EQ(r.status.code, StatusCode::kOutOfRange);
  EXPECT_GT(r.clamped_pixels[static_cast<std::size_t>(Calibration::kPP04N2Cubic)], 0);
  EXPECT_NE(r.status.message.find("PP04_N2_cubic"), std::string::npos);
}

TEST(Render, RenderIntoReusesACube) {
  const auto m = make(GalaxyParams{});
  RenderOptions o;
  o.fov_x_arcsec = o.fov_y_arcsec = 0.4;
  const auto a = render(m, o, SkyFrame{});
  Cube c = a.cube;
  std::fill(c.sci.begin(), c.sci.end(), 7.0);
  const auto s = render_into(m, o, c);
  EXPECT_TRUE(c == a.cube);
  EXPECT_EQ(s.line_flux_fov_cgs, a.line_flux_fov_cgs);
  o.pixel_arcsec = 0.04;
  EXPECT_THROW(render_into(m, o, c), InvalidOptions);
}

namespace {
// Cube and summary of two renders are the same bit for bit.
void expect_same_render(const Cube& a, const RenderSummary& sa, const Cube& b, const RenderSummary& sb,
                        const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(a.sci.size(), b.sci.size());
  std::size_t differ = 0;
  for (std::size_t k = 0; k < a.sci.size(); ++k)
    if (std::memcmp(&a.sci[k], &b.sci[k], sizeof(double)) != 0) ++differ;
  EXPECT_EQ(differ, 0u);
  EXPECT_EQ(sa.line_flux_fov_cgs, sb.line_flux_fov_cgs);
  EXPECT_EQ(sa.line_flux_total_cgs, sb.line_flux_total_cgs);
  EXPECT_EQ(sa.disk_light_fov_fraction, sb.disk_light_fov_fraction);
  EXPECT_EQ(sa.continuum_light_fov_fraction, sb.continuum_light_fov_fraction);
  EXPECT_EQ(sa.clamped_pixels, sb.clamped_pixels);
  EXPECT_EQ(sa.truncated_profiles, sb.truncated_profiles);
  EXPECT_EQ(sa.status.code, sb.status.code);
  EXPECT_EQ(sa.status.message, sb.status.message);
}

// The fitter's render options (lines [NII]+Halpha, fixed windows, no continuum windows) on a
// small field.
RenderOptions fitter_like_options(double pixel_arcsec) {
  RenderOptions o;
  o.pixel_arcsec = pixel_arcsec;
  o.fov_x_arcsec = 1.2;
  o.fov_y_arcsec = 1.0;
  o.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  o.continuum_windows = false;
  o.window_half_width_kms = 1200.0;
  o.threads = 1;
  return o;
}
}  // namespace

TEST(RenderWorkspace, SameCubeAsStatelessAcrossParameterSteps) {
  // A finite-difference Jacobian moves one parameter at a time, a line search all of them:
  // the workspace must never serve a stale map.
  const RenderOptions o = fitter_like_options(0.04);
  GalaxyParams base;
  base.clumps.push_back({0.15, -0.1, 0.03, 2e-18, 0.05});
  std::vector<std::pair<std::string, GalaxyParams>> steps;
  auto step = [&](const std::string& name, auto&& change) {
    GalaxyParams g = base;
    change(g);
    steps.emplace_back(name, g);
  };
  steps.emplace_back("base", base);
  step("vc_kms", [](GalaxyParams& g) { g.vc_kms += 1.0; });
  step("rt_arcsec", [](GalaxyParams& g) { g.rt_arcsec *= 1.01; });
  step("v0_kms", [](GalaxyParams& g) { g.v0_kms += 3.0; });
  step("sigma0_kms", [](GalaxyParams& g) { g.sigma0_kms += 0.5; });
  step("sigma_slope", [](GalaxyParams& g) { g.sigma_slope_kms_per_kpc = 2.0; });
  step("inclination_deg", [](GalaxyParams& g) { g.inclination_deg = 56.0; });
  step("pa_deg", [](GalaxyParams& g) { g.pa_deg += 1.0; });
  step("center_x", [](GalaxyParams& g) { g.center_x_arcsec += 0.003; });
  step("center_y", [](GalaxyParams& g) { g.center_y_arcsec -= 0.003; });
  step("re_arcsec", [](GalaxyParams& g) { g.re_arcsec *= 1.01; });
  step("halpha_flux", [](GalaxyParams& g) { g.halpha_flux_cgs *= 1.01; });
  step("z0", [](GalaxyParams& g) { g.z0_12logoh += 0.01; });
  step("gradient", [](GalaxyParams& g) { g.gradient_dex_per_kpc -= 0.001; });
  step("broken gradient", [](GalaxyParams& g) { g.break_radius_kpc = 3.0; g.gradient_outer_dex_per_kpc = -0.05; });
  step("ew", [](GalaxyParams& g) { g.ew_halpha_rest_A = 40.0; });
  step("no continuum", [](GalaxyParams& g) { g.ew_halpha_rest_A = 0.0; });
  step("continuum_re", [](GalaxyParams& g) { g.continuum_re_arcsec = 0.5; });
  step("sersic", [](GalaxyParams& g) { g.light_profile = "sersic"; g.sersic_n = 1.5; });
  step("calibration", [](GalaxyParams& g) { g.calibration = "M13_N2"; });
  step("dust", [](GalaxyParams& g) { g.ebv_mag = 0.3; });
  step("sii ratio", [](GalaxyParams& g) { g.sii_ratio_6717_6731 = 1.2; });
  step("axis_ratio", [](GalaxyParams& g) { g.axis_ratio = 0.6; });
  step("thickness", [](GalaxyParams& g) { g.thickness_q0 = 0.2; });
  step("redshift", [](GalaxyParams& g) { g.redshift = 1.01; });
  step("clump", [](GalaxyParams& g) { g.clumps[0].halpha_flux_cgs *= 2.0; });
  step("agn", [](GalaxyParams& g) { g.agn.enabled = true; });
  steps.emplace_back("base again", base);
  step("all at once", [](GalaxyParams& g) {
    g.vc_kms = 170.0; g.pa_deg = 33.0; g.re_arcsec = 0.3; g.z0_12logoh = 8.5; g.sigma0_kms = 50.0;
  });

  RenderWorkspace ws;
  for (const auto& [name, g] : steps) {
    const GalaxyModel m = make(g);
    Cube a = Cube::zeros(render_spatial_grid(o), render_wavelength_grid(m, o));
    Cube b = a;
    std::fill(b.sci.begin(), b.sci.end(), 3.0);  // whatever was in the cube is overwritten
    const RenderSummary sa = render_into(m, o, a);
    const RenderSummary sb = render_into(m, o, b, ws);
    expect_same_render(a, sa, b, sb, name);
  }
  const RenderWorkspace::Stats st = ws.stats();
  EXPECT_EQ(st.calls, static_cast<long long>(steps.size()));
  // Reused after the kinematic / amplitude steps at least (vc, rt, v0, sigma0, slope, flux, ew).
  EXPECT_GE(st.light_maps_reused, 7);
  EXPECT_GE(st.ratio_table_reused, st.light_maps_reused);
}

TEST(RenderWorkspace, ReuseAcrossGridsThreadsAndSequences) {
  const GalaxyModel m = make(GalaxyParams{});
  GalaxyParams g2;
  g2.vc_kms = 185.0;
  const GalaxyModel m2 = make(g2);
  RenderWorkspace ws;
  for (double pix : {0.04, 0.02, 0.04}) {
    for (int threads : {1, 2}) {
      RenderOptions o = fitter_like_options(pix);
      o.threads = threads;
      for (const GalaxyModel* model : {&m, &m2, &m}) {
        Cube a = Cube::zeros(render_spatial_grid(o), render_wavelength_grid(*model, o));
        Cube b = a;
        const RenderSummary sa = render_into(*model, o, a);
        const RenderSummary sb = render_into(*model, o, b, ws);
        expect_same_render(a, sa, b, sb, "pixel " + std::to_string(pix) + " threads " + std::to_string(threads));
      }
    }
  }
  EXPECT_GT(ws.stats().light_maps_reused, 0);
  // All lines with the continuum windows, and a cleared workspace.
  ws.clear();
  RenderOptions o;
  o.fov_x_arcsec = 0.8;
  o.fov_y_arcsec = 0.6;
  Cube a = Cube::zeros(render_spatial_grid(o), render_wavelength_grid(m, o));
  Cube b = a;
  const RenderSummary sa = render_into(m, o, a);
  const RenderSummary sb = render_into(m, o, b, ws);
  expect_same_render(a, sa, b, sb, "all lines");
  // A wrong cube throws and leaves the workspace usable.
  RenderOptions wrong = o;
  wrong.pixel_arcsec = 0.04;
  EXPECT_THROW(render_into(m, wrong, b, ws), InvalidOptions);
  const RenderSummary sc = render_into(m, o, b, ws);
  expect_same_render(a, sa, b, sc, "after a throw");
}

TEST(Render, WideProfilesOnFineChannelsMatchTheFluxBudget) {
  // Profiles longer than the kernel's stack buffer (fine channels, a broad AGN line) still land
  // exactly in the cube.
  GalaxyParams p;
  p.agn.enabled = true;
  p.agn.sigma_kms = 900.0;
  p.ew_halpha_rest_A = 0.0;  // line flux only
  const auto m = make(p);
  RenderOptions o;
  o.fov_x_arcsec = o.fov_y_arcsec = 0.2;
  o.pixel_arcsec = 0.05;
  o.channel_kms = 2.0;
  o.lines = {LineId::kHalpha};
  o.continuum_windows = false;
  const auto r = render(m, o, SkyFrame{});
  EXPECT_TRUE(r.status.ok()) << r.status.message;
  double sum = 0.0;
  const double area = r.cube.spatial.pixel_area_arcsec2();
  for (int j = 0; j < r.cube.ny(); ++j)
    for (int i = 0; i < r.cube.nx(); ++i)
      for (std::size_t k = 0; k < r.cube.nl(); ++k)
        sum += r.cube.sci[r.cube.index(i, j, k)] * r.cube.spectral.width_um(k) * area;
  const double expect = r.line_flux_fov_cgs[li(LineId::kHalpha)];
  EXPECT_NEAR(sum, expect, 1e-9 * expect);
}
