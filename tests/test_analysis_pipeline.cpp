// analysis/pipeline: analyze_maps on synthetic LineMaps of a rotating disk with a known
// metallicity gradient, v_c, R_t, sigma_0, inclination, PA, an AGN core, and (optionally) the
// four BPT lines.
#include "analysis/pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <string>

#include "core/calibrations.hpp"
#include "core/cosmology.hpp"
#include "core/rng.hpp"
#include "core/units.hpp"

using namespace slitstep;

namespace {

struct Disk {
  double cx = 0.031, cy = -0.027;
  double pa_deg = 30.0, incl_deg = 55.0;
  double z = 1.0;
  double z0 = 8.6, grad = -0.03;               // dex, dex/kpc
  double v0 = 12.0, vc = 200.0, rt = 0.15;     // km/s, km/s, arcsec
  double sigma0 = 50.0, sigma_agn = 160.0;
  double ha_peak = 3e-18, rd = 0.3, snr_peak = 300.0;
  double agn_radius = 0.12;                    // arcsec: AGN-like ratios inside
  double cont_sigma = 0.25;                    // arcsec: Gaussian line-free continuum (de-projected)
  bool bpt_lines = false;
  int nx = 23, ny = 33;
};

struct Coords {
  double a, r, cos_t;
};

Coords coords(const Disk& d, double x, double y) {
  const double pa = d.pa_deg / kDegPerRad, ci = std::cos(d.incl_deg / kDegPerRad);
  const double dx = x - d.cx, dy = y - d.cy;
  const double a = -dx * std::sin(pa) + dy * std::cos(pa), b = (dx * std::cos(pa) + dy * std::sin(pa)) / ci;
  const double r = std::hypot(a, b);
  return {a, r, r > 0 ? a / r : 0.0};
}

LineMaps make_maps(const Disk& d, Rng* rng = nullptr) {
  LineMaps m;
  m.allocate(SpatialGrid::centred(d.nx, d.ny, 0.08), {}, d.z);
  const double kpa = Cosmology().kpc_per_arcsec(d.z);
  LineMap& ha = m.line(LineId::kHalpha);
  LineMap& nii = m.line(LineId::kNII6584);
  LineMap& hb = m.line(LineId::kHbeta);
  LineMap& o3 = m.line(LineId::kOIII5007);
  ha.measured = nii.measured = true;
  hb.measured = o3.measured = d.bpt_lines;
  const double sin_i = std::sin(d.incl_deg / kDegPerRad);
  auto noisy = [&](double f, double e) { return rng ? f + rng->normal(0, e) : f; };
  for (int j = 0; j < d.ny; ++j) {
    for (int i = 0; i < d.nx; ++i) {
      const std::size_t k = m.index(i, j);
      const Coords c = coords(d, m.spatial.x_arcsec(i), m.spatial.y_arcsec(j));
      const bool agn = c.r < d.agn_radius;
      const double n2 = agn ? -0.15 : index_from_metallicity(Calibration::kPP04N2Cubic, d.z0 + d.grad * c.r * kpa).value;
      const double fha = d.ha_peak * std::exp(-c.r / d.rd);
      const double err = d.ha_peak / d.snr_peak;
      ha.flux_cgs[k] = noisy(fha, err);
      ha.flux_err_cgs[k] = err;
      nii.flux_cgs[k] = noisy(fha * std::pow(10.0, n2), err);
      nii.flux_err_cgs[k] = err;
      ha.ew_rest_A[k] = noisy(60.0, 3.0);
      ha.ew_err_rest_A[k] = 3.0;
      if (d.bpt_lines) {
        const double fhb = fha / 2.86;
        hb.flux_cgs[k] = noisy(fhb, err / 3);
        hb.flux_err_cgs[k] = err / 3;
        o3.flux_cgs[k] = noisy(fhb * std::pow(10.0, agn ? 0.8 : -0.3), err / 3);
        o3.flux_err_cgs[k] = err / 3;
      }
      m.velocity_kms[k] = noisy(d.v0 + (2 / kPi) * d.vc * sin_i * std::atan(c.r / d.rt) * c.cos_t, 5.0);
      m.velocity_err_kms[k] = 5.0;
      m.sigma_kms[k] = agn ? d.sigma_agn : d.sigma0;
      m.sigma_err_kms[k] = 3.0;
      m.continuum_line_free_sb[k] = 1e-19 * std::exp(-0.5 * c.r * c.r / (d.cont_sigma * d.cont_sigma));
      m.continuum_sb[k] = m.continuum_line_free_sb[k];
      m.fit_ok[k] = 1;
    }
  }
  return m;
}

AnalysisOptions given(const Disk& d) {
  AnalysisOptions o;
  o.center_arcsec = std::array<double, 2>{d.cx, d.cy};
  o.pa_deg = d.pa_deg;
  o.axis_ratio = std::cos(d.incl_deg / kDegPerRad);
  o.re_kpc = 4.0;
  return o;
}

}  // namespace

TEST(AnalysisPipeline, NoiselessDiskWithGivenGeometryReturnsTheTruth) {
  const Disk d;
  const LineMaps m = make_maps(d);
  const AnalysisResult r = analyze_maps(m, given(d));
  const AnalysisSummary& s = r.summary;
  ASSERT_TRUE(s.status.ok()) << s.status.message;
  EXPECT_EQ(s.classification, "WHAN");
  EXPECT_NEAR(s.gradient_dex_per_kpc.value, d.grad, 1e-10);
  EXPECT_NEAR(r.gradient_kpc.intercept.value, d.z0, 1e-10);
  EXPECT_NEAR(s.gradient_dex_per_re.value, d.grad * 4.0, 1e-10);
  EXPECT_NEAR(s.rmse_dex, 0.0, 1e-10);
  EXPECT_NEAR(s.vc_kms.value / d.vc, 1.0, 1e-4);
  EXPECT_NEAR(s.rt_arcsec.value / d.rt, 1.0, 1e-4);
  EXPECT_NEAR(r.kinematics.fit.v0_kms.value / d.v0, 1.0, 1e-4);
  EXPECT_DOUBLE_EQ(s.sigma0_kms.value, d.sigma0);  // beyond 3 kpc; the AGN core's 160 ignored
  EXPECT_NEAR(s.v_over_sigma.value, d.vc / d.sigma0, 1e-3);
  EXPECT_EQ(s.rotation_class, "regular rotation");
  EXPECT_NEAR(s.inclination_deg, d.incl_deg, 1e-9);
  EXPECT_NEAR(s.pa_deg, d.pa_deg, 1e-12);
  EXPECT_EQ(s.pa_source, "given");
  EXPECT_NEAR(s.center_arcsec[0], d.cx, 1e-15);
  const double kpa = Cosmology().kpc_per_arcsec(d.z);
  EXPECT_NEAR(s.kpc_per_arcsec, 8.1531, 1e-3);
  const double vre = (2 / kPi) * d.vc * std::atan(4.0 / kpa / d.rt);
  EXPECT_NEAR(s.mdyn_msun / (vre * vre * 4.0 / kGravitationalConstant_kpc_kms2_msun), 1.0, 3e-4);
  // AGN core: classified AGN by WHAN, rejected from the gradient, with a reason
  int n_agn = 0;
  for (const auto& row : r.spaxels) {
    const Coords c = coords(d, row.x_arcsec, row.y_arcsec);
    ASSERT_NEAR(row.radius_kpc, c.r * kpa, 1e-12);
    if (c.r < d.agn_radius) {
      ++n_agn;
      EXPECT_TRUE(row.selected);
      EXPECT_EQ(row.class_name, "AGN");
      EXPECT_EQ(row.diagram, "WHAN");
      EXPECT_FALSE(row.in_gradient);
      EXPECT_NE(row.reason.find("AGN"), std::string::npos) << row.reason;
    } else if (row.selected) {
      EXPECT_EQ(row.class_name, "SF");
      EXPECT_TRUE(row.in_gradient) << row.reason;
    }
  }
  EXPECT_GT(n_agn, 0);
  EXPECT_GT(s.n_spaxels_sf, 200);
  EXPECT_EQ(s.n_spaxels_selected, s.n_spaxels_sf + n_agn);
  // unselected spaxels carry their reason
  bool saw_snr = false;
  for (const auto& row : r.spaxels) saw_snr |= (!row.selected && row.reason.find("S/N(Halpha)") != std::string::npos);
  EXPECT_TRUE(saw_snr);
  // the AGN spaxels, had they been kept, would have moved the gradient: they are high-N2
  EXPECT_FALSE(r.profile_kpc.empty());
}

TEST(AnalysisPipeline, BptGalaxyRejectsTheAgnCoreThroughTheBpt) {
  Disk d;
  d.bpt_lines = true;
  const AnalysisResult r = analyze_maps(make_maps(d), given(d));
  ASSERT_TRUE(r.summary.status.ok()) << r.summary.status.message;
  EXPECT_EQ(r.summary.classification, "BPT");
  EXPECT_NEAR(r.summary.gradient_dex_per_kpc.value, d.grad, 1e-10);
  int n_bpt_agn = 0;
  for (const auto& row : r.spaxels) {
    if (!row.selected) continue;
    if (row.diagram == "BPT" && row.class_name == "AGN") {
      ++n_bpt_agn;
      EXPECT_FALSE(row.in_gradient);
    }
  }
  EXPECT_GT(n_bpt_agn, 0);
  // faint outer spaxels whose Hbeta/[OIII] S/N < 3 fall back to WHAN, but the majority is BPT
  AnalysisOptions o = given(d);
  o.min_bpt_line_snr = 1e9;  // no spaxel qualifies for the BPT
  EXPECT_EQ(analyze_maps(make_maps(d), o).summary.classification, "WHAN");
  o = given(d);
  o.diagram = DiagramChoice::kWHAN;
  EXPECT_EQ(analyze_maps(make_maps(d), o).summary.classification, "WHAN");
}

TEST(AnalysisPipeline, FittedGeometryFromContinuumAndVelocityField) {
  const Disk d;
  AnalysisOptions o;  // nothing given but R_e
  o.re_kpc = 4.0;
  const AnalysisResult r = analyze_maps(make_maps(d), o);
  const AnalysisSummary& s = r.summary;
  ASSERT_TRUE(s.status.ok()) << s.status.message;
  std::printf("fitted: centre (%.4f, %.4f) PA %.3f i %.3f grad %.5f vc %.2f rt %.4f sigma0 %.2f\n", s.center_arcsec[0],
              s.center_arcsec[1], s.pa_deg, s.inclination_deg, s.gradient_dex_per_kpc.value, s.vc_kms.value,
              s.rt_arcsec.value, s.sigma0_kms.value);
  EXPECT_EQ(r.center.source, "continuum_line_free_sb");
  EXPECT_NEAR(s.center_arcsec[0], d.cx, 0.004);  // 5% of a spaxel
  EXPECT_NEAR(s.center_arcsec[1], d.cy, 0.004);
  EXPECT_EQ(s.pa_source, "kinematic");
  EXPECT_NEAR(s.pa_deg, d.pa_deg, 1.0);
  EXPECT_EQ(s.inclination_source, "light_moments");
  EXPECT_NEAR(s.inclination_deg, d.incl_deg, 3.0);
  EXPECT_NEAR(s.gradient_dex_per_kpc.value / d.grad, 1.0, 0.05);
  EXPECT_NEAR(s.vc_kms.value / d.vc, 1.0, 0.05);
  EXPECT_NEAR(s.sigma0_kms.value, d.sigma0, 1e-9);
  EXPECT_EQ(s.rotation_class, "regular rotation");
  // PA from the light moments instead (mod 180; the velocity field then picks the receding half)
  o.pa_source = PaSource::kLightMoments;
  const AnalysisResult r2 = analyze_maps(make_maps(d), o);
  EXPECT_EQ(r2.summary.pa_source, "light_moments");
  EXPECT_NEAR(std::remainder(r2.summary.pa_deg - d.pa_deg, 360.0), 0.0, 2.0);
  EXPECT_NEAR(r2.summary.vc_kms.value / d.vc, 1.0, 0.05);
}

TEST(AnalysisPipeline, NoisyDiskIsWithinItsErrors) {
  Disk d;
  d.snr_peak = 100.0;
  Rng rng(8);
  AnalysisOptions o = given(d);
  const AnalysisResult r = analyze_maps(make_maps(d, &rng), o);
  ASSERT_TRUE(r.summary.gradient_status.ok()) << r.summary.gradient_status.message;
  const auto& g = r.summary.gradient_dex_per_kpc;
  std::printf("noisy: grad %.4f +- %.4f (%d spaxels), vc %.1f +- %.1f, sigma0 %.2f +- %.2f, v/sigma %.2f +- %.2f\n",
              g.value, g.err, r.summary.n_spaxels_sf, r.summary.vc_kms.value, r.summary.vc_kms.err,
              r.summary.sigma0_kms.value, r.summary.sigma0_kms.err, r.summary.v_over_sigma.value,
              r.summary.v_over_sigma.err);
  EXPECT_LT(std::abs(g.value - d.grad), 3 * g.err);
  EXPECT_LT(std::abs(r.summary.vc_kms.value - d.vc), 3 * r.summary.vc_kms.err + 1.0);
}

TEST(AnalysisPipeline, FallbacksStatusesAndValidation) {
  Disk d;
  LineMaps m = make_maps(d);
  for (auto& v : m.continuum_line_free_sb) v = std::nan("");
  AnalysisOptions o = given(d);
  o.center_arcsec.reset();
  AnalysisResult r = analyze_maps(m, o);
  EXPECT_EQ(r.center.source, "continuum_sb");
  ASSERT_FALSE(r.notes.empty());
  EXPECT_NE(r.notes[0].find("continuum_sb"), std::string::npos);
  // too few star-forming spaxels: status says why, kinematics still reported
  d.nx = d.ny = 4;  // 16 spaxels < 20
  d.agn_radius = 0.0;
  r = analyze_maps(make_maps(d), given(d));
  EXPECT_EQ(r.summary.gradient_status.code, StatusCode::kFailed);
  EXPECT_NE(r.summary.status.message.find("gradient: only"), std::string::npos) << r.summary.status.message;
  // no R_e: no dex/R_e gradient, no M_dyn, but the rest works
  Disk d2;
  o = given(d2);
  o.re_kpc.reset();
  r = analyze_maps(make_maps(d2), o);
  EXPECT_TRUE(r.summary.gradient_status.ok());
  EXPECT_TRUE(std::isnan(r.summary.gradient_dex_per_re.value));
  EXPECT_TRUE(std::isnan(r.summary.mdyn_msun));
  // options validation names field, value, rule
  o = given(d2);
  o.axis_ratio = 1.5;
  try {
    analyze_maps(make_maps(d2), o);
    FAIL();
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("axis_ratio = 1.5"), std::string::npos) << e.what();
  }
  o = given(d2);
  o.inclination_deg = 40.0;  // both b/a and i
  EXPECT_THROW(o.validate(), InvalidOptions);
  o = given(d2);
  o.min_halpha_snr = -1;
  EXPECT_THROW(o.validate(), InvalidOptions);
  o = given(d2);
  o.metallicity.max_error_dex = 0;
  EXPECT_THROW(o.validate(), InvalidOptions);
  // inconsistent maps
  LineMaps bad = make_maps(d2);
  bad.velocity_kms.pop_back();
  EXPECT_THROW(analyze_maps(bad, given(d2)), InvalidOptions);
}

// A continuum-subtracted cube (SAMI-like): Halpha detected, no EW anywhere, continuum maps noise
// about zero (here with a spurious bright spot in a corner). continuum = kAuto recognises it:
// the continuum maps are ignored (centre from the Halpha flux), nothing passes the EW cut (no
// gradient), kinematics and the PA come from the S/N(Halpha)-selected spaxels.
TEST(AnalysisPipeline, ContinuumSubtractedMapsTakeTheHalphaPath) {
  const Disk d;
  LineMaps m = make_maps(d);
  LineMap& ha = m.line(LineId::kHalpha);
  std::fill(ha.ew_rest_A.begin(), ha.ew_rest_A.end(), std::nan(""));
  std::fill(ha.ew_err_rest_A.begin(), ha.ew_err_rest_A.end(), std::nan(""));
  std::fill(m.continuum_sb.begin(), m.continuum_sb.end(), 0.0);
  std::fill(m.continuum_line_free_sb.begin(), m.continuum_line_free_sb.end(), 0.0);
  m.continuum_sb[m.index(1, 1)] = m.continuum_line_free_sb[m.index(1, 1)] = 1e-18;
  std::size_t n_det = 0, n_kin = 0;
  for (std::size_t k = 0; k < m.size(); ++k) {
    if (ha.flux_cgs[k] / ha.flux_err_cgs[k] > 10.0) ++n_det, n_kin += std::isfinite(m.velocity_kms[k]) ? 1 : 0;
  }
  ASSERT_GT(n_det, 50u);

  AnalysisOptions o;
  o.re_kpc = 4.0;
  o.continuum = ContinuumMode::kAuto;
  const AnalysisResult r = analyze_maps(m, o);
  const AnalysisSummary& s = r.summary;
  std::printf("continuum-subtracted: centre (%.4f, %.4f) [%s] PA %.3f i %.3f vc %.2f sigma0 %.2f\n", s.center_arcsec[0],
              s.center_arcsec[1], r.center.source.c_str(), s.pa_deg, s.inclination_deg, s.vc_kms.value,
              s.sigma0_kms.value);
  ASSERT_GE(r.notes.size(), 2u);
  EXPECT_EQ(r.notes[0].rfind("no EW(Halpha) in any of the " + std::to_string(n_det) + " Halpha-detected spaxels: a "
                             "continuum-subtracted cube",
                             0),
            0u)
      << r.notes[0];
  EXPECT_EQ(r.notes[1], "kinematics from " + std::to_string(n_kin) + " spaxels with S/N(Halpha) > 10");
  for (const auto& n : r.notes) EXPECT_NE(n.rfind("PA:", 0), 0u) << n;
  // no spaxel passes the paper's selection: no gradient, the overall status says why
  EXPECT_EQ(s.n_spaxels_selected, 0);
  EXPECT_EQ(s.gradient_status.code, StatusCode::kFailed);
  EXPECT_EQ(s.status.code, StatusCode::kFailed);
  EXPECT_EQ(s.status.message.rfind("gradient: no spaxel has an EW(Halpha) (continuum-subtracted cube)", 0), 0u)
      << s.status.message;
  // centre from the Halpha flux, not the continuum's spurious spot
  EXPECT_NEAR(s.center_arcsec[0], d.cx, 0.02);
  EXPECT_NEAR(s.center_arcsec[1], d.cy, 0.02);
  // kinematics from the S/N(Halpha) spaxels; kinematic PA; radii with that PA
  ASSERT_TRUE(s.kinematics_status.ok()) << s.kinematics_status.message;
  EXPECT_EQ(s.pa_source, "kinematic");
  EXPECT_NEAR(s.pa_deg, d.pa_deg, 1.0);
  EXPECT_NEAR(s.vc_kms.value / d.vc, 1.0, 0.15);
  EXPECT_NEAR(s.sigma0_kms.value, d.sigma0, 1e-9);
  const DiskGeometry g{r.center.x_arcsec, r.center.y_arcsec, s.pa_deg, s.inclination_deg, s.kpc_per_arcsec};
  for (const auto& row : r.spaxels) ASSERT_DOUBLE_EQ(row.radius_kpc, disk_coords(g, row.x_arcsec, row.y_arcsec).r_kpc);
  // a given PA is kept
  AnalysisOptions og = o;
  og.pa_deg = d.pa_deg;
  const AnalysisResult rg = analyze_maps(m, og);
  EXPECT_EQ(rg.summary.pa_source, "given");
  EXPECT_NEAR(rg.summary.pa_deg, d.pa_deg, 1e-12);

  // the default (kPresent) runs the paper's chain as is: nothing selected, no kinematics
  AnalysisOptions op = o;
  op.continuum = ContinuumMode::kPresent;
  const AnalysisResult rp = analyze_maps(m, op);
  EXPECT_FALSE(rp.summary.kinematics_status.ok());
  EXPECT_TRUE(rp.notes.empty() || rp.notes[0].rfind("no EW(Halpha)", 0) != 0u);
  EXPECT_EQ(AnalysisOptions{}.continuum, ContinuumMode::kPresent);

  // maps with a continuum are not affected by kAuto
  const LineMaps mc = make_maps(d);
  const AnalysisResult ra = analyze_maps(mc, o);
  AnalysisOptions o2 = o;
  o2.continuum = ContinuumMode::kPresent;
  const AnalysisResult rb = analyze_maps(mc, o2);
  EXPECT_TRUE(ra.summary.status.ok()) << ra.summary.status.message;
  EXPECT_EQ(ra.summary.gradient_dex_per_kpc.value, rb.summary.gradient_dex_per_kpc.value);
  EXPECT_EQ(ra.summary.pa_deg, rb.summary.pa_deg);
  EXPECT_EQ(ra.notes, rb.notes);

  // kSubtracted given: the continuum and EW maps of any cube are ignored
  AnalysisOptions os = o;
  os.continuum = ContinuumMode::kSubtracted;
  const AnalysisResult rs = analyze_maps(mc, os);
  ASSERT_FALSE(rs.notes.empty());
  EXPECT_EQ(rs.notes[0].rfind("continuum = subtracted (given)", 0), 0u) << rs.notes[0];
  EXPECT_EQ(rs.summary.n_spaxels_selected, 0);
  EXPECT_EQ(rs.summary.gradient_status.code, StatusCode::kFailed);
  EXPECT_TRUE(rs.summary.kinematics_status.ok()) << rs.summary.kinematics_status.message;
}

TEST(AnalysisPipeline, StatusRewritesForHalphaOutsideTheDataAndAFaintField) {
  const Disk d;
  // Halpha outside the data: the caller's reason names it, status kOutOfRange
  EXPECT_EQ(halpha_outside_range(1.0, 1.0, 1.5), "");  // Halpha at 1.3126 um
  const std::string why = halpha_outside_range(1.0, 0.97, 1.2);
  EXPECT_EQ(why.rfind("Halpha at 1.3", 0), 0u) << why;
  EXPECT_NE(why.find("(z = 1) is outside the cube's wavelength range 0.9700-1.2000 um"), std::string::npos) << why;
  AnalysisOptions o = given(d);
  o.halpha_outside_reason = why;
  AnalysisResult r = analyze_maps(make_maps(d), o);
  EXPECT_EQ(r.summary.status.code, StatusCode::kOutOfRange);
  EXPECT_EQ(r.summary.status.message, why + ": no spaxel selection, N2 metallicity, gradient or Halpha kinematics "
                                            "can be measured");
  // a faint field: no spaxel passes S/N(Halpha); the failed status says so first
  Disk f;
  f.snr_peak = 5.0;
  r = analyze_maps(make_maps(f), given(f));
  ASSERT_FALSE(r.summary.status.ok());
  EXPECT_EQ(r.summary.status.message.rfind("no spaxel with S/N(Halpha) > 10 (a faint field?): gradient: ", 0), 0u)
      << r.summary.status.message;
}

TEST(AnalysisPipeline, O3n2PerSpaxel) {
  Disk d;
  d.bpt_lines = true;
  const LineMaps m = make_maps(d);
  const AnalysisResult r = analyze_maps(m, given(d));
  const LineMap& hb = m.line(LineId::kHbeta);
  const LineMap& o3 = m.line(LineId::kOIII5007);
  for (std::size_t k = 0; k < m.size(); ++k) {
    const double want = std::log10(o3.flux_cgs[k] / hb.flux_cgs[k]) - r.spaxels[k].n2;
    ASSERT_NEAR(r.spaxels[k].o3n2, want, 1e-12) << k;
  }
  d.bpt_lines = false;  // no Hbeta / [OIII]: NaN
  const AnalysisResult r2 = analyze_maps(make_maps(d), given(d));
  for (const auto& row : r2.spaxels) ASSERT_TRUE(std::isnan(row.o3n2));
}
