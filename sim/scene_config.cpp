#include "sim/scene_config.hpp"

#include <cmath>
#include <cstdio>
#include <string_view>

#include "core/error.hpp"
#include "core/lines.hpp"

namespace slitstep {

namespace {

void get_opt(const Section& s, const std::string& key, std::optional<double>& out) {
  double v = 0.0;
  if (s.get(key, v)) out = v;
}

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text + ",") {
    if (c == ',') {
      const auto b = cur.find_first_not_of(" \t"), e = cur.find_last_not_of(" \t");
      if (b != std::string::npos) out.push_back(cur.substr(b, e - b + 1));
      else out.push_back("");
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  return out;
}

// Message part of an InvalidOptions thrown by RenderOptions::validate():
// "RenderOptions.<field> = <value>: <rule>"  ->  (field, rule).
std::pair<std::string, std::string> split_options_message(const std::string& m) {
  const std::string prefix = "RenderOptions.";
  if (m.rfind(prefix, 0) != 0) return {"", m};
  const auto eq = m.find(" = ");
  const auto colon = m.find(": ", eq == std::string::npos ? 0 : eq);
  if (eq == std::string::npos || colon == std::string::npos) return {"", m};
  return {m.substr(prefix.size(), eq - prefix.size()), m.substr(colon + 2)};
}

}  // namespace

SceneConfig read_scene_config(const Config& config) {
  SceneConfig sc;
  const Section root = config.root();
  root.get("seed", sc.seed);

  // ---- [galaxy] ----
  const Section g = root.table("galaxy");
  GalaxyParams& p = sc.galaxy;
  g.get("redshift", p.redshift);
  g.get("log_mstar", p.log_mstar);
  g.get("center_x_arcsec", p.center_x_arcsec);
  g.get("center_y_arcsec", p.center_y_arcsec);
  g.get("pa_deg", p.pa_deg);
  get_opt(g, "inclination_deg", p.inclination_deg);
  get_opt(g, "axis_ratio", p.axis_ratio);
  g.get("thickness_q0", p.thickness_q0);
  g.get("light_profile", p.light_profile);
  g.get("sersic_n", p.sersic_n);
  g.get("re_arcsec", p.re_arcsec);
  g.get("halpha_flux_cgs", p.halpha_flux_cgs);
  g.get("rotation_curve", p.rotation_curve);
  g.get("vc_kms", p.vc_kms);
  g.get("rt_arcsec", p.rt_arcsec);
  g.get("v0_kms", p.v0_kms);
  g.get("sigma0_kms", p.sigma0_kms);
  g.get("sigma_slope_kms_per_kpc", p.sigma_slope_kms_per_kpc);
  g.get("z0_12logoh", p.z0_12logoh);
  g.get("gradient_dex_per_kpc", p.gradient_dex_per_kpc);
  get_opt(g, "break_radius_kpc", p.break_radius_kpc);
  get_opt(g, "gradient_outer_dex_per_kpc", p.gradient_outer_dex_per_kpc);
  g.get("calibration", p.calibration);
  g.get("sii_ratio_6717_6731", p.sii_ratio_6717_6731);
  g.get("ebv_mag", p.ebv_mag);
  g.get("extinction_curve", p.extinction_curve);
  g.get("ew_halpha_rest_A", p.ew_halpha_rest_A);
  get_opt(g, "continuum_re_arcsec", p.continuum_re_arcsec);
  g.get("continuum_beta", p.continuum_beta);
  const std::vector<Section> clumps = g.table_array("clumps");
  for (const auto& c : clumps) {
    ClumpParams k;
    c.get("x_arcsec", k.x_arcsec);
    c.get("y_arcsec", k.y_arcsec);
    c.get("sigma_arcsec", k.sigma_arcsec);
    c.get("halpha_flux_cgs", k.halpha_flux_cgs);
    c.get("dz_dex", k.dz_dex);
    p.clumps.push_back(k);
  }
  const Section agn = g.table("agn");
  agn.get("enabled", p.agn.enabled);
  agn.get("sigma_arcsec", p.agn.sigma_arcsec);
  agn.get("halpha_flux_cgs", p.agn.halpha_flux_cgs);
  agn.get("sigma_kms", p.agn.sigma_kms);
  agn.get("log_nii_halpha", p.agn.log_nii_halpha);
  agn.get("log_oiii_hbeta", p.agn.log_oiii_hbeta);
  agn.get("log_sii_halpha", p.agn.log_sii_halpha);
  {
    const auto issues = check_params(p);
    if (!issues.empty()) {
      const auto& e = issues.front();
      if (e.group == "clumps") clumps.at(static_cast<std::size_t>(e.index)).fail(e.key, e.rule);
      if (e.group == "agn") agn.fail(e.key, e.rule);
      g.fail(e.key, e.rule);
    }
  }

  // ---- [render] ----
  const Section r = root.table("render");
  RenderOptions& o = sc.render;
  r.get("pixel_arcsec", o.pixel_arcsec);
  r.get("fov_x_arcsec", o.fov_x_arcsec);
  r.get("fov_y_arcsec", o.fov_y_arcsec);
  r.get("channel_kms", o.channel_kms);
  r.get("n_sigma", o.n_sigma);
  r.get("window_padding_kms", o.window_padding_kms);
  get_opt(r, "window_half_width_kms", o.window_half_width_kms);
  std::string lines;
  if (r.get("lines", lines) && lines != "all") {
    for (const auto& name : split_names(lines)) {
      const auto id = line_from_name(name);
      if (!id) {
        std::string known;
        for (const auto& l : emission_lines()) known += (known.empty() ? "" : ", ") + std::string(l.name);
        r.fail("lines", "unknown line \"" + name + "\" (known: all, " + known + ")");
      }
      o.lines.push_back(*id);
    }
  }
  r.get("continuum_windows", o.continuum_windows);
  r.get("continuum_window_half_A", o.continuum_window_half_A);
  r.get("threads", o.threads);
  try {
    o.validate();
  } catch (const InvalidOptions& e) {
    const auto [field, rule] = split_options_message(e.what());
    r.fail(field.empty() ? "pixel_arcsec" : field, rule);
  }

  // ---- [sky] ----
  const Section s = root.table("sky");
  s.get("ra_deg", sc.sky.ra_deg);
  s.get("dec_deg", sc.sky.dec_deg);
  s.get("aperture_pa_deg", sc.sky.aperture_pa_deg);
  if (!(sc.sky.ra_deg >= 0.0 && sc.sky.ra_deg < 360.0)) s.fail("ra_deg", "must be in [0, 360)");
  if (!(sc.sky.dec_deg >= -90.0 && sc.sky.dec_deg <= 90.0)) s.fail("dec_deg", "must be in [-90, 90]");
  if (!std::isfinite(sc.sky.aperture_pa_deg) || std::fabs(sc.sky.aperture_pa_deg) > 720.0)
    s.fail("aperture_pa_deg", "must be finite, |PA| <= 720");

  // ---- [cosmology] ----
  const Section c = root.table("cosmology");
  c.get("h0_kms_mpc", sc.cosmology.h0_kms_mpc);
  c.get("omega_m", sc.cosmology.omega_m);
  if (!(sc.cosmology.h0_kms_mpc > 0.0 && sc.cosmology.h0_kms_mpc < 1000.0))
    c.fail("h0_kms_mpc", "must be in (0, 1000)");
  if (!(sc.cosmology.omega_m > 0.0 && sc.cosmology.omega_m <= 1.0)) c.fail("omega_m", "must be in (0, 1]");
  return sc;
}

// ------------------------------------------------------------------------------------------

JsonValue truth_json(const SceneConfig& scene, const GalaxyModel& model) {
  const GalaxyParams& p = model.params();
  JsonValue t = JsonValue::object();
  t.set("redshift", p.redshift);
  t.set("log_mstar", p.log_mstar);
  t.set("center_x_arcsec", p.center_x_arcsec);
  t.set("center_y_arcsec", p.center_y_arcsec);
  t.set("pa_deg", p.pa_deg);
  t.set("inclination_deg", model.inclination_deg());
  t.set("axis_ratio", model.axis_ratio());
  t.set("thickness_q0", p.thickness_q0);
  t.set("light_profile", p.light_profile);
  t.set("sersic_n", model.sersic_n());
  t.set("re_arcsec", p.re_arcsec);
  t.set("halpha_flux_cgs", p.halpha_flux_cgs);
  t.set("rotation_curve", p.rotation_curve);
  t.set("vc_kms", p.vc_kms);
  t.set("rt_arcsec", p.rt_arcsec);
  t.set("v0_kms", p.v0_kms);
  t.set("sigma0_kms", p.sigma0_kms);
  t.set("sigma_slope_kms_per_kpc", p.sigma_slope_kms_per_kpc);
  t.set("z0_12logoh", p.z0_12logoh);
  t.set("gradient_dex_per_kpc", p.gradient_dex_per_kpc);
  t.set("break_radius_kpc", p.break_radius_kpc ? JsonValue(*p.break_radius_kpc) : JsonValue());
  t.set("gradient_outer_dex_per_kpc",
        p.gradient_outer_dex_per_kpc ? JsonValue(*p.gradient_outer_dex_per_kpc) : JsonValue());
  t.set("calibration", p.calibration);
  t.set("sii_ratio_6717_6731", p.sii_ratio_6717_6731);
  t.set("ebv_mag", p.ebv_mag);
  t.set("extinction_curve", p.extinction_curve);
  t.set("ew_halpha_rest_A", p.ew_halpha_rest_A);
  t.set("continuum_re_arcsec", model.continuum_re_arcsec());
  t.set("continuum_beta", p.continuum_beta);
  t.set("seed", static_cast<unsigned long long>(scene.seed));

  JsonValue clumps = JsonValue::array();
  for (std::size_t k = 0; k < p.clumps.size(); ++k) {
    const auto& c = p.clumps[k];
    const auto& d = model.clump_derived()[k];
    JsonValue o = JsonValue::object();
    o.set("x_arcsec", c.x_arcsec).set("y_arcsec", c.y_arcsec).set("sigma_arcsec", c.sigma_arcsec);
    o.set("halpha_flux_cgs", c.halpha_flux_cgs).set("dz_dex", c.dz_dex);
    o.set("vlos_kms", d.vlos_kms).set("sigma_kms", d.sigma_kms).set("z_12logoh", d.z_12logoh);
    clumps.push(std::move(o));
  }
  t.set("clumps", std::move(clumps));
  JsonValue agn = JsonValue::object();
  agn.set("enabled", p.agn.enabled).set("sigma_arcsec", p.agn.sigma_arcsec);
  agn.set("halpha_flux_cgs", p.agn.halpha_flux_cgs).set("sigma_kms", p.agn.sigma_kms);
  agn.set("log_nii_halpha", p.agn.log_nii_halpha).set("log_oiii_hbeta", p.agn.log_oiii_hbeta);
  agn.set("log_sii_halpha", p.agn.log_sii_halpha);
  t.set("agn", std::move(agn));

  JsonValue sky = JsonValue::object();
  sky.set("ra_deg", scene.sky.ra_deg).set("dec_deg", scene.sky.dec_deg);
  sky.set("aperture_pa_deg", scene.sky.aperture_pa_deg);
  sky.set("sky_pa_deg", scene.sky.aperture_pa_deg + p.pa_deg);  // PA of the receding major axis
  t.set("sky", std::move(sky));
  JsonValue cos = JsonValue::object();
  cos.set("h0_kms_mpc", scene.cosmology.h0_kms_mpc).set("omega_m", scene.cosmology.omega_m);
  t.set("cosmology", std::move(cos));
  JsonValue ren = JsonValue::object();
  const auto& o = scene.render;
  ren.set("pixel_arcsec", o.pixel_arcsec).set("fov_x_arcsec", o.fov_x_arcsec).set("fov_y_arcsec", o.fov_y_arcsec);
  ren.set("channel_kms", o.channel_kms).set("n_sigma", o.n_sigma).set("window_padding_kms", o.window_padding_kms);
  ren.set("window_half_width_kms", o.window_half_width_kms ? JsonValue(*o.window_half_width_kms) : JsonValue());
  JsonValue lines = JsonValue::array();
  if (o.lines.empty())
    for (const auto& l : emission_lines()) lines.push(std::string(l.name));
  else
    for (LineId id : o.lines) lines.push(std::string(line(id).name));
  ren.set("lines", std::move(lines));
  ren.set("continuum_windows", o.continuum_windows).set("continuum_window_half_A", o.continuum_window_half_A);
  t.set("render", std::move(ren));

  JsonValue d = JsonValue::object();
  const double k = model.kpc_per_arcsec();
  d.set("kpc_per_arcsec", k);
  d.set("re_kpc", model.re_kpc());
  d.set("gradient_dex_per_re", p.gradient_dex_per_kpc * model.re_kpc());
  d.set("sersic_bn", model.sersic_bn());
  d.set("rt_kpc", p.rt_arcsec * k);
  d.set("vc_over_sigma0", p.vc_kms / p.sigma0_kms);
  d.set("metallicity_at_re", model.metallicity(p.re_arcsec));
  JsonValue fluxes = JsonValue::object();
  for (const auto& l : emission_lines())
    fluxes.set(std::string(l.name), model.line_flux_total_cgs()[static_cast<std::size_t>(l.id)]);
  d.set("line_flux_total_cgs", std::move(fluxes));
  d.set("continuum_flux_density_halpha_cgs_per_um",
        model.continuum_flux_density(model.observed_wavelength_um(LineId::kHalpha)));
  d.set("halpha_observed_um", model.observed_wavelength_um(LineId::kHalpha));
  t.set("derived", std::move(d));
  return t;
}

std::string describe_model(const GalaxyModel& model) {
  const GalaxyParams& p = model.params();
  std::string out;
  char buf[256];
  auto row = [&](const char* name, const std::string& value, const char* unit) {
    std::snprintf(buf, sizeof buf, "  %-26s %14s  %s", name, value.c_str(), unit);
    std::string line(buf);
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  };
  auto f = [](double v, const char* fmt = "%.4g") {
    char b[64];
    std::snprintf(b, sizeof b, fmt, v);
    return std::string(b);
  };
  const double k = model.kpc_per_arcsec();
  out += "galaxy model\n";
  row("redshift", f(p.redshift), "");
  row("scale", f(k, "%.4f"), "kpc/arcsec");
  row("log M*", f(p.log_mstar), "Msun");
  row("centre (x, y)", f(p.center_x_arcsec, "%.3f") + ", " + f(p.center_y_arcsec, "%.3f"), "arcsec (aperture frame)");
  row("PA (receding, from +y)", f(p.pa_deg), "deg");
  row("inclination", f(model.inclination_deg(), "%.2f"), "deg");
  row("projected b/a", f(model.axis_ratio(), "%.3f"), p.thickness_q0 > 0 ? "(thick disk)" : "(thin disk)");
  row("light profile", p.light_profile + (p.light_profile == "sersic" ? " n=" + f(model.sersic_n()) : ""), "");
  row("R_e", f(p.re_arcsec, "%.3f") + " = " + f(model.re_kpc(), "%.2f"), "arcsec = kpc");
  row("Halpha flux (disk)", f(p.halpha_flux_cgs, "%.3e"), "erg/s/cm^2");
  row("rotation curve", p.rotation_curve, "");
  row("v_c, R_t", f(p.vc_kms) + ", " + f(p.rt_arcsec, "%.3f"), "km/s, arcsec");
  row("v0 (systemic offset)", f(p.v0_kms), "km/s");
  row("sigma0 (+ slope)", f(p.sigma0_kms) + " + " + f(p.sigma_slope_kms_per_kpc), "km/s (+ km/s/kpc)");
  row("v_c / sigma0", f(p.vc_kms / p.sigma0_kms, "%.2f"), "");
  row("12+log(O/H) centre", f(p.z0_12logoh, "%.3f"), "");
  row("gradient", f(p.gradient_dex_per_kpc, "%.4f") + " = " + f(p.gradient_dex_per_kpc * model.re_kpc(), "%.4f"),
      "dex/kpc = dex/R_e");
  if (p.break_radius_kpc)
    row("break, outer gradient", f(*p.break_radius_kpc) + ", " + f(p.gradient_outer_dex_per_kpc.value_or(0.0), "%.4f"),
        "kpc, dex/kpc");
  row("calibration", p.calibration, "");
  row("E(B-V)", f(p.ebv_mag, "%.3f"), p.extinction_curve.c_str());
  row("EW(Halpha) rest", f(p.ew_halpha_rest_A), "A");
  row("clumps", std::to_string(p.clumps.size()), "");
  row("AGN core", p.agn.enabled ? "yes" : "no", "");
  for (const auto& l : emission_lines()) {
    const std::string name = "F(" + std::string(l.label) + ")";
    row(name.c_str(), f(model.line_flux_total_cgs()[static_cast<std::size_t>(l.id)], "%.3e"), "erg/s/cm^2");
  }
  return out;
}

}  // namespace slitstep
