#include "fit/fit_config.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace slitstep {
namespace {

void get_opt(const Section& s, const std::string& key, std::optional<double>& out) {
  double v;
  if (s.get(key, v)) out = v;
}
void get_opt(const Section& s, const std::string& key, std::optional<std::string>& out) {
  std::string v;
  if (s.get(key, v)) out = v;
}

bool is_fittable(const std::string& n) {
  const auto& f = fittable_parameter_names();
  return std::find(f.begin(), f.end(), n) != f.end();
}

void write_overrides(const ModelOverrides& m, GalaxyParams& p);

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

const char* fit_space_name(FitSpace s) { return s == FitSpace::kCube ? "cube" : "exposures"; }
const char* cube_noise_mode_name(CubeNoiseMode m) {
  return m == CubeNoiseMode::kWhiten ? "whiten" : m == CubeNoiseMode::kInflate ? "inflate" : "independent";
}

FitModelConfig read_fit_model_config(const Config& cfg) {
  FitModelConfig c;
  c.source = cfg.source_name();
  // ---- [fit]
  const Section f = cfg.root().table("fit");
  FitRunConfig& r = c.run;
  std::string s;
  if (f.get("space", s)) {
    if (s == "cube") r.space = FitSpace::kCube;
    else if (s == "exposures") r.space = FitSpace::kExposures;
    else f.fail("space", "must be \"cube\" or \"exposures\"");
  }
  if (f.get("instrument", s)) {
    if (s == "auto") r.instrument = FitInstrument::kAuto;
    else if (s == "slitstep") r.instrument = FitInstrument::kSlitstep;
    else if (s == "ifu") r.instrument = FitInstrument::kIfu;
    else f.fail("instrument", "must be \"auto\", \"slitstep\" or \"ifu\"");
  }
  if (f.get("max_iterations", r.fit.max_iterations) && !(r.fit.max_iterations >= 1 && r.fit.max_iterations <= 100000))
    f.fail("max_iterations", "must be in [1, 100000]");
  if (f.get("threads", r.fit.threads) && !(r.fit.threads >= 0 && r.fit.threads <= 1024))
    f.fail("threads", "must be in [0, 1024] (0 = OpenMP default)");
  if (f.get("fd_step", r.fit.fd_step) && !(r.fit.fd_step > 0.0 && r.fit.fd_step <= 0.1))
    f.fail("fd_step", "must be in (0, 0.1]");
  f.get("sample", r.sample);
  if (f.get("walkers", r.sampler.walkers) && !(r.sampler.walkers >= 4 && r.sampler.walkers <= 100000 &&
                                                r.sampler.walkers % 2 == 0))
    f.fail("walkers", "must be even, in [4, 100000] (and at least twice the free parameters)");
  if (f.get("steps", r.sampler.steps) && !(r.sampler.steps >= 1 && r.sampler.steps <= 10000000))
    f.fail("steps", "must be in [1, 1e7]");
  if (f.get("burn_in", r.sampler.burn_in) && !(r.sampler.burn_in >= 0 && r.sampler.burn_in <= 10000000))
    f.fail("burn_in", "must be in [0, 1e7]");
  if (f.get("thin", r.sampler.thin) && !(r.sampler.thin >= 1 && r.sampler.thin <= r.sampler.steps))
    f.fail("thin", "must be in [1, steps]");
  f.get("seed", r.sampler.seed);
  if (f.get("init_ball", r.init_ball) && !(r.init_ball > 0.0 && r.init_ball <= 10.0))
    f.fail("init_ball", "must be in (0, 10] (walkers start at the ML point +- init_ball x its error)");
  get_opt(f, "data_redshift", r.data_redshift);
  if (r.data_redshift && !(*r.data_redshift >= 0.0 && *r.data_redshift < 20.0))
    f.fail("data_redshift", "must be in [0, 20)");
  if (f.get("cube_noise", s)) {
    if (s == "whiten") r.cube_noise = CubeNoiseMode::kWhiten;
    else if (s == "inflate") r.cube_noise = CubeNoiseMode::kInflate;
    else if (s == "independent") r.cube_noise = CubeNoiseMode::kIndependent;
    else f.fail("cube_noise", "must be \"whiten\", \"inflate\" or \"independent\"");
  }
  if (f.get("cube_noise_realisations", r.cube_noise_realisations) &&
      !(r.cube_noise_realisations >= 2 && r.cube_noise_realisations <= 1000))
    f.fail("cube_noise_realisations", "must be in [2, 1000]");
  f.get("cube_noise_seed", r.cube_noise_seed);
  get_opt(f, "surrogate_pixel_arcsec", r.surrogate_pixel_arcsec);
  if (r.surrogate_pixel_arcsec && !(*r.surrogate_pixel_arcsec > 0.0 && *r.surrogate_pixel_arcsec <= 0.1))
    f.fail("surrogate_pixel_arcsec", "must be in (0, 0.1] arcsec (the surrogate's render pixel)");

  // ---- [model]
  const Section m = cfg.root().table("model");
  ModelOverrides& mo = c.model;
  get_opt(m, "redshift", mo.redshift);
  get_opt(m, "sersic_n", mo.sersic_n);
  get_opt(m, "ebv_mag", mo.ebv_mag);
  get_opt(m, "thickness_q0", mo.thickness_q0);
  get_opt(m, "sigma_slope_kms_per_kpc", mo.sigma_slope_kms_per_kpc);
  get_opt(m, "ew_halpha_rest_A", mo.ew_halpha_rest_A);
  get_opt(m, "sii_ratio_6717_6731", mo.sii_ratio_6717_6731);
  get_opt(m, "light_profile", mo.light_profile);
  get_opt(m, "rotation_curve", mo.rotation_curve);
  get_opt(m, "calibration", mo.calibration);
  get_opt(m, "extinction_curve", mo.extinction_curve);
  std::vector<std::string> names;
  if (m.get("lines", names)) {
    for (const auto& n : names) {
      const auto id = line_from_name(n);
      if (!id)
        m.fail("lines", "unknown line '" + n +
                            "' (hbeta, oiii4959, oiii5007, nii6548, halpha, nii6584, sii6717, sii6731)");
      mo.lines.push_back(*id);
    }
    if (mo.lines.empty()) m.fail("lines", "must name at least one line");
  }
  // Check the overrides on the default galaxy, so the message points at the key.
  {
    GalaxyParams probe;
    write_overrides(mo, probe);
    const auto issues = check_params(probe);
    for (const auto& is : issues)
      if (is.group.empty() && m.has(is.key)) m.fail(is.key, is.rule);
    if (!issues.empty()) {
      const auto keys = m.keys();
      m.fail(keys.empty() ? "redshift" : keys.front(), issues.front().key + ": " + issues.front().rule);
    }
  }

  // ---- [params.NAME]
  const Section ps = cfg.root().table("params");
  for (const auto& name : ps.keys()) {
    if (!is_fittable(name))
      ps.fail(name, "not a fittable parameter (" + join(fittable_parameter_names()) + ")");
    const Section t = ps.table(name);
    ParamOverride o;
    o.name = name;
    get_opt(t, "value", o.value);
    get_opt(t, "lower", o.lower);
    get_opt(t, "upper", o.upper);
    get_opt(t, "prior_mean", o.prior_mean);
    get_opt(t, "prior_sigma", o.prior_sigma);
    bool fx;
    if (t.get("fixed", fx)) o.fixed = fx;
    if (o.lower && o.upper && !(*o.lower < *o.upper)) t.fail("upper", "must be > lower (" + format_value(*o.lower) + ")");
    if (o.value && o.lower && *o.value < *o.lower) t.fail("value", "is below lower = " + format_value(*o.lower));
    if (o.value && o.upper && *o.value > *o.upper) t.fail("value", "is above upper = " + format_value(*o.upper));
    if (o.prior_sigma && !(*o.prior_sigma > 0.0)) t.fail("prior_sigma", "must be > 0");
    if (o.prior_mean.has_value() != o.prior_sigma.has_value())
      t.fail(o.prior_mean ? "prior_mean" : "prior_sigma", "a Gaussian prior needs both prior_mean and prior_sigma");
    if (o.fixed && *o.fixed && (o.lower || o.upper || o.prior_mean))
      t.fail("fixed", "a fixed parameter takes only a value (no bounds or prior)");
    // Bounds against the parameter's physical limits: checked on a probe parameterization.
    try {
      GalaxyParameterization probe(GalaxyParams{}, {name});
      ParamSpec& sp = probe.spec(name);
      if (o.lower) sp.lower = *o.lower;
      if (o.upper) sp.upper = *o.upper;
      if (o.value) sp.value = *o.value;
      if (o.prior_mean) sp.prior = Prior::gaussian(*o.prior_mean, *o.prior_sigma);
      const bool fixed = o.fixed && *o.fixed;
      if (!fixed && o.value && sp.value < sp.lower) t.fail("value", "is below the lower bound " + format_value(sp.lower));
      if (!fixed && o.value && sp.value > sp.upper) t.fail("value", "is above the upper bound " + format_value(sp.upper));
      if (fixed && o.value && !std::isfinite(*o.value)) t.fail("value", "must be finite");
      probe.validate_structure();
    } catch (const InvalidOptions& e) {
      const std::string key = o.lower ? "lower" : o.upper ? "upper" : o.prior_mean ? "prior_mean" : "value";
      t.fail(t.has(key) ? key : (t.keys().empty() ? "value" : t.keys().front()), e.what());
    }
    c.params.push_back(std::move(o));
  }

  // ---- [ifu]
  if (cfg.root().has("ifu")) {
    const Section i = cfg.root().table("ifu");
    for (const char* k : {"nx", "ny", "spaxel_arcsec", "center_x_arcsec", "center_y_arcsec", "wave_start_um",
                          "wave_step_um", "n_wave", "sky_ra_deg", "sky_dec_deg", "sky_pa_deg"})
      if (i.has(k)) i.fail(k, "the data cube defines the grid and the sky frame of a fit: remove this key");
    c.ifu = read_generic_ifu_config(i);
  }
  return c;
}

void apply_model_overrides(const ModelOverrides& m, GalaxyParams& p, const std::string& source) {
  write_overrides(m, p);
  const auto issues = check_params(p);
  if (!issues.empty())
    throw InputError(source + ": model." + issues.front().key + " = " + issues.front().value + ": " +
                     issues.front().rule);
}

namespace {
void write_overrides(const ModelOverrides& m, GalaxyParams& p) {
  if (m.redshift) p.redshift = *m.redshift;
  if (m.sersic_n) p.sersic_n = *m.sersic_n;
  if (m.ebv_mag) p.ebv_mag = *m.ebv_mag;
  if (m.thickness_q0) p.thickness_q0 = *m.thickness_q0;
  if (m.sigma_slope_kms_per_kpc) p.sigma_slope_kms_per_kpc = *m.sigma_slope_kms_per_kpc;
  if (m.ew_halpha_rest_A) p.ew_halpha_rest_A = *m.ew_halpha_rest_A;
  if (m.sii_ratio_6717_6731) p.sii_ratio_6717_6731 = *m.sii_ratio_6717_6731;
  if (m.light_profile) p.light_profile = *m.light_profile;
  if (m.rotation_curve) p.rotation_curve = *m.rotation_curve;
  if (m.calibration) p.calibration = *m.calibration;
  if (m.extinction_curve) p.extinction_curve = *m.extinction_curve;
}
}  // namespace

GalaxyParameterization build_parameterization(const GalaxyParams& start, const FitModelConfig& config,
                                              const FitDataContext& data, std::vector<std::string>* notes) {
  std::vector<std::string> names = default_parameter_names();
  // The continuum is a nuisance fitted with the rest whenever the start has one (DESIGN.md §5.2):
  // a fixed continuum level that is off biases sigma0 and the line flux.
  if (start.ew_halpha_rest_A > 0.0) names.push_back("ew_halpha_rest_A");
  for (const auto& o : config.params)
    if (std::find(names.begin(), names.end(), o.name) == names.end()) names.push_back(o.name);
  GalaxyParameterization param(start, names);
  // Data-dependent bounds.
  auto widen = [&](const std::string& n, double lo, double hi) {
    ParamSpec& sp = param.spec(n);
    sp.lower = lo;
    sp.upper = hi;
  };
  widen("center_x_arcsec", data.x_lo_arcsec, data.x_hi_arcsec);
  widen("center_y_arcsec", data.y_lo_arcsec, data.y_hi_arcsec);
  const double half_diag = 0.5 * std::hypot(data.x_hi_arcsec - data.x_lo_arcsec, data.y_hi_arcsec - data.y_lo_arcsec);
  {
    ParamSpec& re = param.spec("re_arcsec");
    re.upper = std::max(re.upper, half_diag);
    ParamSpec& rt = param.spec("rt_arcsec");
    rt.upper = std::max(rt.upper, half_diag);
    ParamSpec& f = param.spec("halpha_flux_cgs");
    if (std::isfinite(f.value) && f.value > 0.0) {
      f.upper = std::max(f.upper, 1000.0 * f.value);
      f.scale = f.value;
    }
  }
  // Overrides.
  for (const auto& o : config.params) {
    ParamSpec& sp = param.spec(o.name);
    if (o.lower) sp.lower = *o.lower;
    if (o.upper) sp.upper = *o.upper;
    if (o.value) sp.value = *o.value;
    if (o.fixed) sp.fixed = *o.fixed;
    if (o.prior_mean) sp.prior = Prior::gaussian(*o.prior_mean, *o.prior_sigma);
    if (!(sp.lower < sp.upper))
      throw InputError(config.source + ": params." + o.name + ": bounds [" + format_value(sp.lower) + ", " +
                       format_value(sp.upper) + "] are empty");
  }
  // Start values inside the bounds.
  for (auto& sp : param.specs()) {
    if (sp.fixed) continue;
    const double lo = sp.lower, hi = sp.upper;
    if (!(sp.value >= lo && sp.value <= hi)) {
      const double span = std::isfinite(hi - lo) ? hi - lo : 1.0;
      const double v = std::isfinite(sp.value) ? std::clamp(sp.value, lo + 1e-3 * span, hi - 1e-3 * span)
                                                 : 0.5 * (lo + hi);
      if (notes)
        notes->push_back("start " + sp.name + " = " + format_value(sp.value) + " moved inside its bounds to " +
                         format_value(v));
      sp.value = v;
    }
  }
  try {
    param.validate_structure();
  } catch (const InvalidOptions& e) {
    throw InputError(config.source + ": " + e.what());
  }
  return param;
}

}  // namespace slitstep
