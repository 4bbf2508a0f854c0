#include "analysis/pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "core/rng.hpp"
#include "core/units.hpp"

namespace slitstep {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double at(const std::vector<double>& v, std::size_t k) { return k < v.size() ? v[k] : kNaN; }

double snr(double f, double e) { return (std::isfinite(f) && std::isfinite(e) && e > 0) ? f / e : kNaN; }

[[noreturn]] void fail(const std::string& f, double v, const std::string& rule) {
  throw InvalidOptions("AnalysisOptions." + f + " = " + format_value(v) + ": " + rule);
}

}  // namespace

void AnalysisOptions::validate() const {
  if (!std::isfinite(min_halpha_snr) || min_halpha_snr < 0) fail("min_halpha_snr", min_halpha_snr, "must be finite and >= 0");
  if (!std::isfinite(min_ew_snr) || min_ew_snr < 0) fail("min_ew_snr", min_ew_snr, "must be finite and >= 0");
  if (!std::isfinite(min_bpt_line_snr) || min_bpt_line_snr < 0) {
    fail("min_bpt_line_snr", min_bpt_line_snr, "must be finite and >= 0");
  }
  classify.validate();
  metallicity.validate();
  if (min_sf_spaxels < 3) fail("min_sf_spaxels", min_sf_spaxels, "must be >= 3 (a line with an error needs 3 points)");
  cosmology.validate();
  center.validate();
  moments.validate();
  kinematics.validate();
  if (center_arcsec && !(std::isfinite((*center_arcsec)[0]) && std::isfinite((*center_arcsec)[1]))) {
    fail("center_arcsec", std::isfinite((*center_arcsec)[0]) ? (*center_arcsec)[1] : (*center_arcsec)[0], "must be finite");
  }
  if (pa_deg && !std::isfinite(*pa_deg)) fail("pa_deg", *pa_deg, "must be finite");
  if (axis_ratio && inclination_deg) {
    fail("inclination_deg", *inclination_deg, "give either axis_ratio or inclination_deg, not both");
  }
  if (axis_ratio && !(*axis_ratio > 0.0 && *axis_ratio <= 1.0)) fail("axis_ratio", *axis_ratio, "must be in (0, 1]");
  if (inclination_deg && !(*inclination_deg >= 0.0 && *inclination_deg <= 85.0)) {
    fail("inclination_deg", *inclination_deg, "must be in [0, 85] (de-projection diverges toward 90)");
  }
  if (!(disk_thickness_q0 >= 0.0 && disk_thickness_q0 < 1.0)) fail("disk_thickness_q0", disk_thickness_q0, "must be in [0, 1)");
  if (axis_ratio && !(*axis_ratio > disk_thickness_q0)) {
    fail("axis_ratio", *axis_ratio, "must exceed disk_thickness_q0 = " + format_value(disk_thickness_q0));
  }
  if (re_kpc && !(*re_kpc > 0.0 && std::isfinite(*re_kpc))) fail("re_kpc", *re_kpc, "must be finite and > 0");
  if (!std::isfinite(gradient_r_min_kpc) || gradient_r_min_kpc < 0) fail("gradient_r_min_kpc", gradient_r_min_kpc, "must be finite and >= 0");
  if (!(gradient_r_max_kpc > gradient_r_min_kpc)) {
    fail("gradient_r_max_kpc", gradient_r_max_kpc, "must be > gradient_r_min_kpc = " + format_value(gradient_r_min_kpc));
  }
  if (!std::isfinite(gradient_re_min) || gradient_re_min < 0) fail("gradient_re_min", gradient_re_min, "must be finite and >= 0");
  if (!(gradient_re_max > gradient_re_min)) {
    fail("gradient_re_max", gradient_re_max, "must be > gradient_re_min = " + format_value(gradient_re_min));
  }
  if (gradient_bootstrap < 0) fail("gradient_bootstrap", gradient_bootstrap, "must be >= 0");
  if (!(profile_bin_kpc > 0 && std::isfinite(profile_bin_kpc))) fail("profile_bin_kpc", profile_bin_kpc, "must be finite and > 0");
}

namespace {

void check_maps(const LineMaps& m) {
  m.spatial.validate();
  const std::size_t n = m.size();
  auto check = [&](const std::vector<double>& v, const char* name) {
    if (v.size() != n) {
      throw InvalidOptions(std::string("LineMaps.") + name + " has " + std::to_string(v.size()) +
                           " entries: must equal nx*ny = " + std::to_string(n));
    }
  };
  const LineMap& ha = m.line(LineId::kHalpha);
  check(ha.flux_cgs, "halpha.flux_cgs");
  check(ha.flux_err_cgs, "halpha.flux_err_cgs");
  check(ha.ew_rest_A, "halpha.ew_rest_A");
  check(ha.ew_err_rest_A, "halpha.ew_err_rest_A");
  check(m.velocity_kms, "velocity_kms");
  check(m.sigma_kms, "sigma_kms");
  if (m.fit_ok.size() != n) throw InvalidOptions("LineMaps.fit_ok size differs from nx*ny = " + std::to_string(n));
  for (const auto& l : m.lines) {
    if (l.measured && (l.flux_cgs.size() != n || l.flux_err_cgs.size() != n)) {
      throw InvalidOptions("LineMaps: a measured line's flux maps have the wrong size (must be nx*ny)");
    }
  }
}

// The paper's chain on maps already checked (check_maps) with options already validated.
AnalysisResult analyze_checked(const LineMaps& m, const AnalysisOptions& o) {
  const std::size_t n = m.size();
  const LineMap& ha = m.line(LineId::kHalpha);
  AnalysisResult res;
  AnalysisSummary& s = res.summary;
  res.spaxels.resize(n);
  const Cosmology cosmo(o.cosmology);
  const double kpa = cosmo.kpc_per_arcsec(m.redshift);
  s.kpc_per_arcsec = kpa;
  const bool bpt_lines = m.line(LineId::kHbeta).measured && m.line(LineId::kOIII5007).measured &&
                         ha.measured && m.line(LineId::kNII6584).measured;

  // 1. Selection, classification, metallicity.
  int n_bpt = 0, n_whan = 0;
  std::vector<SpaxelMetallicity> met(n);
  for (std::size_t k = 0; k < n; ++k) {
    SpaxelRow& row = res.spaxels[k];
    row.i = static_cast<int>(k % m.spatial.nx);
    row.j = static_cast<int>(k / m.spatial.nx);
    row.x_arcsec = m.spatial.x_arcsec(row.i);
    row.y_arcsec = m.spatial.y_arcsec(row.j);
    row.halpha_flux = ha.flux_cgs[k];
    row.halpha_snr = snr(ha.flux_cgs[k], ha.flux_err_cgs[k]);
    row.ew_snr = snr(ha.ew_rest_A[k], ha.ew_err_rest_A[k]);
    row.velocity_kms = m.velocity_kms[k];
    row.sigma_kms = m.sigma_kms[k];
    row.z_12logoh = row.z_err = row.z_err_stat = row.n2 = kNaN;
    const LineFluxSet f = line_fluxes_at(m, k);
    row.n2 = log_ratio(f.nii6584, f.nii6584_err, f.halpha, f.halpha_err).value;
    row.o3n2 = log_ratio(f.oiii5007, f.oiii5007_err, f.hbeta, f.hbeta_err).value - row.n2;
    if (!m.fit_ok[k]) {
      row.reason = "line fit failed";
    } else if (!(row.halpha_snr > o.min_halpha_snr)) {
      row.reason = "S/N(Halpha) " + format_value(row.halpha_snr) + " <= " + format_value(o.min_halpha_snr);
    } else if (!(row.ew_snr > o.min_ew_snr)) {
      row.reason = "S/N(EW Halpha) " + format_value(row.ew_snr) + " <= " + format_value(o.min_ew_snr);
    } else {
      row.selected = true;
    }
    // Classification.
    auto line_ok = [&](double fl, double e) { return fl > 0 && snr(fl, e) >= o.min_bpt_line_snr; };
    const bool bpt_ok = bpt_lines && line_ok(f.hbeta, f.hbeta_err) && line_ok(f.oiii5007, f.oiii5007_err) &&
                        line_ok(f.halpha, f.halpha_err) && line_ok(f.nii6584, f.nii6584_err);
    SpaxelClass cls = SpaxelClass::kUnclassified;
    const bool use_bpt = o.diagram == DiagramChoice::kBPT || (o.diagram == DiagramChoice::kAuto && bpt_ok);
    if (use_bpt) {
      if (bpt_ok) {
        cls = classify_bpt_nii(row.n2, std::log10(f.oiii5007 / f.hbeta), o.classify);
        row.diagram = "BPT";
      }
    } else {
      const double ew_ha = ha.ew_rest_A[k];
      const LineMap& nii = m.line(LineId::kNII6584);
      double ew_nii = nii.measured ? at(nii.ew_rest_A, k) : kNaN;
      if (!std::isfinite(ew_nii)) ew_nii = ew_ha * std::pow(10.0, row.n2);
      cls = classify_whan(row.n2, ew_ha, ew_nii, o.classify);
      if (cls != SpaxelClass::kUnclassified) row.diagram = "WHAN";
    }
    row.class_name = std::string(spaxel_class_name(cls));
    if (row.selected) {
      if (row.diagram == "BPT") ++n_bpt;
      if (row.diagram == "WHAN") ++n_whan;
      met[k] = spaxel_metallicity(f, o.metallicity);
      row.z_12logoh = met[k].z_12logoh;
      row.z_err = met[k].z_err;
      row.z_err_stat = met[k].z_err_stat;
      if (cls != SpaxelClass::kStarForming) {
        row.reason = "classified " + row.class_name + (row.diagram.empty() ? "" : " (" + row.diagram + ")");
      } else if (!met[k].ok) {
        row.reason = met[k].reason;
      } else {
        row.in_gradient = true;
        ++s.n_spaxels_sf;
      }
      ++s.n_spaxels_selected;
    }
  }
  if (n_bpt + n_whan > 0) {
    s.classification = n_bpt > n_whan ? "BPT" : "WHAN";
  } else {
    s.classification = (bpt_lines && o.diagram != DiagramChoice::kWHAN) ? "BPT" : "WHAN";
  }

  // 2. Geometry: centre, inclination, PA.
  if (o.center_arcsec) {
    res.center.x_arcsec = (*o.center_arcsec)[0];
    res.center.y_arcsec = (*o.center_arcsec)[1];
    res.center.source = "given";
  } else {
    res.center = find_continuum_center(m, o.center);
    if (!res.center.status.message.empty()) res.notes.push_back("centre: " + res.center.status.message);
    if (!res.center.status.ok()) s.geometry_status = res.center.status;
  }
  s.center_arcsec = {res.center.x_arcsec, res.center.y_arcsec};
  const std::vector<double>& light = [&]() -> const std::vector<double>& {
    for (double v : m.continuum_line_free_sb) {
      if (std::isfinite(v)) return m.continuum_line_free_sb;
    }
    return ha.flux_cgs;
  }();
  MomentsResult mom;
  bool have_moments = false;
  auto moments = [&]() -> const MomentsResult& {
    if (!have_moments) {
      mom = light_moments(m.spatial, light, res.center.x_arcsec, res.center.y_arcsec, o.moments);
      have_moments = true;
    }
    return mom;
  };
  if (o.inclination_deg) {
    s.inclination_deg = *o.inclination_deg;
    s.inclination_source = "given_inclination";
  } else if (o.axis_ratio) {
    s.inclination_deg = inclination_from_axis_ratio_deg(*o.axis_ratio, o.disk_thickness_q0);
    s.inclination_source = "given_axis_ratio";
  } else {
    const MomentsResult& mr = moments();
    s.inclination_source = "light_moments";
    if (mr.status.ok()) {
      s.inclination_deg = std::min(inclination_from_axis_ratio_deg(mr.axis_ratio, o.disk_thickness_q0), 85.0);
    } else {
      s.inclination_deg = 0.0;
      res.notes.push_back("inclination: light moments failed (" + mr.status.message + "); face-on assumed");
      if (s.geometry_status.ok()) s.geometry_status = mr.status;
    }
  }
  DiskGeometry geom{res.center.x_arcsec, res.center.y_arcsec, 0.0, s.inclination_deg, kpa};

  // Kinematic inputs (selected spaxels).
  KinematicsInput kin;
  for (std::size_t k = 0; k < n; ++k) {
    const SpaxelRow& row = res.spaxels[k];
    if (!row.selected) continue;
    if (o.kinematics_sf_only && row.class_name != "SF") continue;
    kin.x_arcsec.push_back(row.x_arcsec);
    kin.y_arcsec.push_back(row.y_arcsec);
    kin.velocity_kms.push_back(m.velocity_kms[k]);
    kin.velocity_err_kms.push_back(at(m.velocity_err_kms, k));
    kin.sigma_kms.push_back(m.sigma_kms[k]);
  }
  kin.re_kpc = o.re_kpc ? *o.re_kpc : kNaN;
  KinematicsOptions ko = o.kinematics;
  ko.seed = Rng::splitmix64(o.seed + 1);
  bool pa_from_kinematics = false;
  if (o.pa_deg) {
    geom.pa_deg = *o.pa_deg;
    s.pa_source = "given";
    ko.fit_pa = false;
  } else if (o.pa_source == PaSource::kKinematic) {
    geom.pa_deg = 0.0;  // start value replaced by the velocity-plane direction
    ko.fit_pa = true;
    pa_from_kinematics = true;
    s.pa_source = "kinematic";
  } else {
    const MomentsResult& mr = moments();
    geom.pa_deg = mr.status.ok() ? mr.pa_deg : 0.0;
    s.pa_source = "light_moments";
    ko.fit_pa = false;
    if (!mr.status.ok()) res.notes.push_back("PA: light moments failed; PA = 0 assumed");
  }
  kin.geometry = geom;
  res.kinematics = analyze_kinematics(kin, ko);
  const ArctanFit& af = res.kinematics.fit;
  if (pa_from_kinematics) {
    if (std::isfinite(af.pa_deg.value) && af.status.ok()) {
      geom.pa_deg = af.pa_deg.value;
    } else {
      const MomentsResult& mr = moments();
      geom.pa_deg = mr.status.ok() ? mr.pa_deg : 0.0;
      s.pa_source = "light_moments";
      res.notes.push_back("PA: kinematic fit failed (" + af.status.message + "); light-moments PA used");
    }
  } else if (af.status.ok() && std::isfinite(af.pa_deg.value) &&
             std::abs(std::remainder(af.pa_deg.value - geom.pa_deg, 360.0)) > 90.0) {
    res.notes.push_back("PA: the given PA points at the approaching side; receding PA = " +
                        format_value(af.pa_deg.value) + " deg reported");
    geom.pa_deg = af.pa_deg.value;  // same axis, receding half (radii are unchanged)
  }
  s.pa_deg = geom.pa_deg;
  if (!af.status.message.empty() && af.status.ok()) res.notes.push_back("kinematics: " + af.status.message);

  // 3. Radii and gradients.
  std::vector<double> rk, zk, ek, rre;
  for (std::size_t k = 0; k < n; ++k) {
    SpaxelRow& row = res.spaxels[k];
    row.radius_kpc = disk_coords(geom, row.x_arcsec, row.y_arcsec).r_kpc;
    if (!row.in_gradient) continue;
    rk.push_back(row.radius_kpc);
    zk.push_back(row.z_12logoh);
    ek.push_back(row.z_err);
    if (o.re_kpc) rre.push_back(row.radius_kpc / *o.re_kpc);
  }
  LineFitOptions lo;
  lo.min_points = 3;
  lo.error_model = o.gradient_error_model;
  lo.n_bootstrap = o.gradient_bootstrap;
  lo.seed = o.seed;
  if (s.n_spaxels_sf < o.min_sf_spaxels) {
    s.gradient_status = Status::Error(StatusCode::kFailed, "only " + std::to_string(s.n_spaxels_sf) +
                                                               " star-forming spaxels with a metallicity (< " +
                                                               std::to_string(o.min_sf_spaxels) + " required)");
    res.gradient_kpc.status = res.gradient_re.status = s.gradient_status;
  } else {
    lo.r_min = o.gradient_r_min_kpc;
    lo.r_max = o.gradient_r_max_kpc;
    res.gradient_kpc = fit_line(rk, zk, ek, lo);
    s.gradient_status = res.gradient_kpc.status;
    if (o.re_kpc) {
      lo.r_min = o.gradient_re_min;
      lo.r_max = o.gradient_re_max;
      res.gradient_re = fit_line(rre, zk, ek, lo);
    } else {
      res.gradient_re.status = Status::Error(StatusCode::kInvalidInput, "re_kpc not given: no dex/R_e gradient");
    }
  }
  for (std::size_t k = 0; k < n; ++k) {
    SpaxelRow& row = res.spaxels[k];
    if (row.in_gradient && !(row.radius_kpc >= o.gradient_r_min_kpc && row.radius_kpc <= o.gradient_r_max_kpc)) {
      row.reason = "outside the gradient's radial range (used in the profile only)";
    }
  }
  res.profile_kpc = binned_profile(rk, zk, o.profile_bin_kpc, 0.0);
  s.gradient_dex_per_kpc = res.gradient_kpc.slope;  // covariance error (bootstrap in gradient_kpc)
  s.gradient_dex_per_re = res.gradient_re.slope;
  s.rmse_dex = res.gradient_kpc.rmse;

  // 4. Kinematics summary.
  s.vc_kms = af.vc_kms;
  s.rt_arcsec = af.rt_arcsec;
  s.sigma0_kms = res.kinematics.sigma0_kms;
  s.v_over_sigma = res.kinematics.v_over_sigma;
  s.rotation_class = std::string(rotation_class_name(res.kinematics.rotation_class));
  s.mdyn_msun = res.kinematics.mdyn_msun;
  s.kinematics_status = res.kinematics.status;

  for (const Status* st : {&s.geometry_status, &s.gradient_status, &s.kinematics_status}) {
    if (!st->ok()) {
      const char* stage = st == &s.geometry_status ? "geometry: " : st == &s.gradient_status ? "gradient: " : "kinematics: ";
      s.status = Status::Error(st->code, stage + st->message);
      break;
    }
  }
  return res;
}

// The continuum-subtracted path's kinematics, PA, radii and summary (header comment), on the
// result of analyze_checked() run on maps whose continuum maps were ignored.
void redo_kinematics_without_continuum(const LineMaps& m, const AnalysisOptions& o, AnalysisResult& res,
                                       std::vector<std::string>& notes) {
  AnalysisSummary& s = res.summary;
  // The chain's PA notes refer to its (empty) kinematic sample; the PA is decided here.
  std::erase_if(res.notes, [](const std::string& n) { return n.rfind("PA:", 0) == 0; });
  // Kinematics from the spaxels that pass the Halpha S/N cut (the only cut that applies).
  KinematicsInput kin;
  for (std::size_t k = 0; k < m.size(); ++k) {
    const SpaxelRow& r = res.spaxels[k];
    if (!m.fit_ok[k] || !(r.halpha_snr > o.min_halpha_snr) || !std::isfinite(m.velocity_kms[k])) continue;
    kin.x_arcsec.push_back(r.x_arcsec);
    kin.y_arcsec.push_back(r.y_arcsec);
    kin.velocity_kms.push_back(m.velocity_kms[k]);
    kin.velocity_err_kms.push_back(at(m.velocity_err_kms, k));
    kin.sigma_kms.push_back(m.sigma_kms[k]);
  }
  kin.geometry = {res.center.x_arcsec, res.center.y_arcsec, o.pa_deg.value_or(0.0), s.inclination_deg,
                  s.kpc_per_arcsec};
  kin.re_kpc = o.re_kpc.value_or(kNaN);
  KinematicsOptions ko = o.kinematics;
  ko.seed = Rng::splitmix64(o.seed + 1);
  ko.fit_pa = !o.pa_deg.has_value();
  res.kinematics = analyze_kinematics(kin, ko);
  const ArctanFit& af = res.kinematics.fit;
  DiskGeometry g = kin.geometry;
  if (af.status.ok() && std::isfinite(af.pa_deg.value)) g.pa_deg = af.pa_deg.value;
  s.pa_deg = g.pa_deg;
  s.pa_source = o.pa_deg ? "given" : "kinematic";
  for (auto& r : res.spaxels) r.radius_kpc = disk_coords(g, r.x_arcsec, r.y_arcsec).r_kpc;
  s.vc_kms = af.vc_kms;
  s.rt_arcsec = af.rt_arcsec;
  s.sigma0_kms = res.kinematics.sigma0_kms;
  s.v_over_sigma = res.kinematics.v_over_sigma;
  s.rotation_class = std::string(rotation_class_name(res.kinematics.rotation_class));
  s.mdyn_msun = res.kinematics.mdyn_msun;
  s.kinematics_status = res.kinematics.status;
  s.gradient_status = Status::Error(StatusCode::kFailed,
                                    "no spaxel has an EW(Halpha) (continuum-subtracted cube), so none passes the "
                                    "paper's selection: no metallicity gradient");
  s.status = Status::Error(StatusCode::kFailed, "gradient: " + s.gradient_status.message);
  notes.push_back("kinematics from " + std::to_string(kin.x_arcsec.size()) + " spaxels with S/N(Halpha) > " +
                  format_value(o.min_halpha_snr));
}

}  // namespace

AnalysisResult analyze_maps(const LineMaps& m, const AnalysisOptions& o) {
  o.validate();
  check_maps(m);
  // Continuum-subtracted maps: Halpha detected but no EW anywhere (header comment).
  const LineMap& ha = m.line(LineId::kHalpha);
  std::size_t n_det = 0, n_ew = 0;
  for (std::size_t k = 0; k < m.size(); ++k) {
    if (!m.fit_ok[k] || !(ha.flux_cgs[k] / ha.flux_err_cgs[k] > o.min_halpha_snr)) continue;
    ++n_det;
    if (std::isfinite(ha.ew_rest_A[k]) && std::isfinite(ha.ew_err_rest_A[k]) && ha.ew_err_rest_A[k] > 0) ++n_ew;
  }
  const bool detected_subtracted =
      o.continuum == ContinuumMode::kAuto && ha.measured && n_det > 0 && n_ew == 0;
  AnalysisResult res;
  if (detected_subtracted || o.continuum == ContinuumMode::kSubtracted) {
    std::vector<std::string> notes;
    if (detected_subtracted) {
      notes.push_back("no EW(Halpha) in any of the " + std::to_string(n_det) +
                      " Halpha-detected spaxels: a continuum-subtracted cube; the EW cut and WHAN classes cannot "
                      "be applied, the centre comes from the Halpha flux, kinematics from the S/N(Halpha)-selected "
                      "spaxels");
    } else {
      notes.push_back("continuum = subtracted (given): the continuum and EW maps are ignored; the EW cut and WHAN "
                      "classes cannot be applied, the centre comes from the Halpha flux, kinematics from the "
                      "S/N(Halpha)-selected spaxels");
    }
    LineMaps cm = m;
    std::fill(cm.continuum_sb.begin(), cm.continuum_sb.end(), kNaN);
    std::fill(cm.continuum_line_free_sb.begin(), cm.continuum_line_free_sb.end(), kNaN);
    if (!detected_subtracted) {  // given: no EW is trusted anywhere (a detected case has none in use)
      for (auto& l : cm.lines) {
        std::fill(l.ew_rest_A.begin(), l.ew_rest_A.end(), kNaN);
        std::fill(l.ew_err_rest_A.begin(), l.ew_err_rest_A.end(), kNaN);
      }
    }
    res = analyze_checked(cm, o);
    redo_kinematics_without_continuum(m, o, res, notes);
    res.notes.insert(res.notes.begin(), notes.begin(), notes.end());
  } else {
    res = analyze_checked(m, o);
  }
  AnalysisSummary& s = res.summary;
  if (!o.halpha_outside_reason.empty()) {
    s.status = Status::Error(StatusCode::kOutOfRange, o.halpha_outside_reason +
                                                          ": no spaxel selection, N2 metallicity, gradient or "
                                                          "Halpha kinematics can be measured");
  } else if (n_det == 0 && !s.status.ok()) {
    s.status = Status::Error(s.status.code, "no spaxel with S/N(Halpha) > " + format_value(o.min_halpha_snr) +
                                                " (a faint field?): " + s.status.message);
  }
  return res;
}

std::string halpha_outside_range(double redshift, double min_um, double max_um) {
  const double ha_um = observed_wavelength_um(LineId::kHalpha, redshift);
  if (ha_um > min_um && ha_um < max_um) return {};
  char b[256];
  std::snprintf(b, sizeof b, "Halpha at %.4f um (z = %.6g) is outside the cube's wavelength range %.4f-%.4f um",
                ha_um, redshift, min_um, max_um);
  return b;
}

}  // namespace slitstep
