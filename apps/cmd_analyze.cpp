// `slitstep analyze CUBE.fits [--config C.toml] [--redshift Z] [--lsf-...] -o DIR`: the MSA-3D
// measurement chain on any cube slitstep reads: per-spaxel line fits (fit/line_fit) -> selection,
// BPT/WHAN, metallicity, geometry, gradients, kinematics (analysis/pipeline) -> DIR/maps.fits,
// DIR/spaxels.csv, DIR/summary.json and a paper-style table on stdout. This file only resolves
// the inputs (redshift, LSF, options), prints and writes; docs/cli.md "analyze".
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>

#include "analysis/pipeline.hpp"
#include "analysis/report.hpp"
#include "apps/commands.hpp"
#include "core/config.hpp"
#include "core/cube_io.hpp"
#include "core/error.hpp"
#include "core/fits.hpp"
#include "core/json.hpp"
#include "core/lines.hpp"
#include "core/maps_io.hpp"
#include "core/table_io.hpp"
#include "core/text_io.hpp"
#include "core/version.hpp"
#include "fit/line_fit.hpp"
#include "fit/lsf.hpp"
#include "instruments/disperser.hpp"
#include "sim/simulate.hpp"

namespace slitstep::app {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------- configuration tables
struct LsfChoice {
  std::optional<double> fwhm_A, resolving_power, sigma_kms;
  std::string source;  // "--lsf-fwhm-A", "[lines] lsf_fwhm_A", ...
  int count() const { return (fwhm_A ? 1 : 0) + (resolving_power ? 1 : 0) + (sigma_kms ? 1 : 0); }
};

struct AnalyzeConfig {
  AnalysisOptions analysis;
  EmissionLineFitOptions lines;
  std::optional<double> redshift;        // [analysis] redshift
  std::optional<double> scale_redshift;  // [analysis] scale_redshift
  LsfChoice lsf;                         // [lines] lsf_*
};

template <class E>
E parse_enum(const Section& s, const std::string& key, const std::vector<std::pair<const char*, E>>& names, E def) {
  std::string v;
  if (!s.get(key, v)) return def;
  std::string allowed;
  for (const auto& [n, e] : names) {
    if (v == n) return e;
    allowed += (allowed.empty() ? "" : ", ") + std::string("'") + n + "'";
  }
  s.fail(key, "must be one of " + allowed);
}

void get_opt(const Section& s, const std::string& key, std::optional<double>& out) {
  double v;
  if (s.get(key, v)) out = v;
}

AnalyzeConfig read_analyze_config(const Config& cfg) {
  AnalyzeConfig c;
  const Section a = cfg.root().table("analysis");
  AnalysisOptions& o = c.analysis;
  get_opt(a, "redshift", c.redshift);
  if (c.redshift && !(*c.redshift >= 0.0 && *c.redshift < 20.0)) a.fail("redshift", "must be in [0, 20)");
  get_opt(a, "scale_redshift", c.scale_redshift);
  if (c.scale_redshift && !(*c.scale_redshift > 0.0 && *c.scale_redshift < 20.0))
    a.fail("scale_redshift", "must be in (0, 20)");
  a.get("min_halpha_snr", o.min_halpha_snr);
  a.get("min_ew_snr", o.min_ew_snr);
  a.get("min_bpt_line_snr", o.min_bpt_line_snr);
  a.get("min_sf_spaxels", o.min_sf_spaxels);
  o.diagram = parse_enum<DiagramChoice>(
      a, "diagram", {{"auto", DiagramChoice::kAuto}, {"BPT", DiagramChoice::kBPT}, {"WHAN", DiagramChoice::kWHAN}},
      o.diagram);
  a.get("split_seyfert_liner", o.classify.split_seyfert_liner);
  std::string cal;
  if (a.get("calibration", cal) && !calibration_from_name(cal, o.metallicity.calibration))
    a.fail("calibration", "unknown calibration (PP04_N2_linear, PP04_N2_cubic, PP04_O3N2, M13_N2, M13_O3N2, D16_N2S2Ha)");
  a.get("calibration_scatter_dex", o.metallicity.calibration_scatter_dex);
  a.get("max_error_dex", o.metallicity.max_error_dex);
  a.get("cut_on_total_error", o.metallicity.cut_on_total_error);
  a.get("reject_out_of_range", o.metallicity.reject_out_of_range);
  std::vector<double> centre;
  if (a.get("center_arcsec", centre)) {
    if (centre.size() != 2) a.fail("center_arcsec", "must be [x, y] (two numbers, arcsec)");
    o.center_arcsec = std::array<double, 2>{centre[0], centre[1]};
  }
  get_opt(a, "pa_deg", o.pa_deg);
  get_opt(a, "axis_ratio", o.axis_ratio);
  get_opt(a, "inclination_deg", o.inclination_deg);
  if (o.axis_ratio && o.inclination_deg) a.fail("axis_ratio", "give axis_ratio or inclination_deg, not both");
  a.get("disk_thickness_q0", o.disk_thickness_q0);
  o.pa_source = parse_enum<PaSource>(
      a, "pa_source", {{"kinematic", PaSource::kKinematic}, {"light_moments", PaSource::kLightMoments}}, o.pa_source);
  get_opt(a, "re_kpc", o.re_kpc);
  a.get("gradient_r_min_kpc", o.gradient_r_min_kpc);
  a.get("gradient_r_max_kpc", o.gradient_r_max_kpc);
  a.get("gradient_re_min", o.gradient_re_min);
  a.get("gradient_re_max", o.gradient_re_max);
  o.gradient_error_model = parse_enum<FitErrorModel>(
      a, "gradient_error_model",
      {{"absolute", FitErrorModel::kAbsolute}, {"scaled_by_chi2", FitErrorModel::kScaledByChi2}},
      o.gradient_error_model);
  a.get("gradient_bootstrap", o.gradient_bootstrap);
  a.get("profile_bin_kpc", o.profile_bin_kpc);
  KinematicsOptions& k = o.kinematics;
  k.mode = parse_enum<RotationCurveMode>(
      a, "rotation_curve",
      {{"major_axis", RotationCurveMode::kMajorAxisSlit}, {"full_field", RotationCurveMode::kFullField}}, k.mode);
  a.get("slit_width_arcsec", k.slit_width_arcsec);
  a.get("rotation_min_points", k.min_points);
  a.get("sigma0_min_radius_kpc", k.sigma0_min_radius_kpc);
  k.sigma0_error = parse_enum<Sigma0ErrorModel>(
      a, "sigma0_error",
      {{"bootstrap", Sigma0ErrorModel::kBootstrap}, {"standard_error", Sigma0ErrorModel::kStandardError}},
      k.sigma0_error);
  a.get("mdyn_pressure_support", k.mdyn_pressure_support);
  a.get("kinematics_sf_only", o.kinematics_sf_only);
  a.get("seed", o.seed);
  o.continuum = ContinuumMode::kAuto;  // a continuum-subtracted cube is recognised (analysis/pipeline.hpp)
  a.get("h0_kms_mpc", o.cosmology.h0_kms_mpc);
  a.get("omega_m", o.cosmology.omega_m);
  try {
    o.validate();
  } catch (const InvalidOptions& e) {
    throw InputError(cfg.source_name() + ": [analysis]: " + e.what());
  }

  const Section l = cfg.root().table("lines");
  EmissionLineFitOptions& f = c.lines;
  get_opt(l, "lsf_fwhm_A", c.lsf.fwhm_A);
  get_opt(l, "lsf_resolving_power", c.lsf.resolving_power);
  get_opt(l, "lsf_sigma_kms", c.lsf.sigma_kms);
  if (c.lsf.count() > 1) l.fail("lsf_fwhm_A", "give only one of lsf_fwhm_A, lsf_resolving_power, lsf_sigma_kms");
  if (c.lsf.fwhm_A) c.lsf.source = "[lines] lsf_fwhm_A";
  if (c.lsf.resolving_power) c.lsf.source = "[lines] lsf_resolving_power";
  if (c.lsf.sigma_kms) c.lsf.source = "[lines] lsf_sigma_kms";
  l.get("hb_window_lo_A", f.hb_window_lo_A);
  l.get("hb_window_hi_A", f.hb_window_hi_A);
  l.get("ha_window_lo_A", f.ha_window_lo_A);
  l.get("ha_window_hi_A", f.ha_window_hi_A);
  std::vector<std::string> names;
  if (l.get("lines", names)) {
    f.lines.clear();
    for (const auto& n : names) {
      const auto id = line_from_name(n);
      if (!id) l.fail("lines", "unknown line '" + n + "' (hbeta, oiii4959, oiii5007, nii6548, halpha, nii6584, sii6717, sii6731)");
      f.lines.push_back(*id);
    }
  }
  l.get("tie_doublets", f.tie_doublets);
  l.get("nii_ratio", f.nii_ratio);
  l.get("oiii_ratio", f.oiii_ratio);
  l.get("velocity_bound_kms", f.velocity_bound_kms);
  l.get("sigma_max_kms", f.sigma_max_kms);
  l.get("sigma_start_kms", f.sigma_start_kms);
  l.get("min_channels_per_window", f.min_channels_per_window);
  l.get("min_channels_per_line", f.min_channels_per_line);
  l.get("detection_snr", f.detection_snr);
  l.get("scale_errors_by_reduced_chi2", f.scale_errors_by_reduced_chi2);
  l.get("warm_start", f.warm_start);
  l.get("line_free_centre_A", f.line_free_centre_A);
  l.get("line_free_fallback_centre_A", f.line_free_fallback_centre_A);
  l.get("line_free_half_width_A", f.line_free_half_width_A);
  try {
    f.validate();
  } catch (const InvalidOptions& e) {
    throw InputError(cfg.source_name() + ": [lines]: " + e.what());
  }
  return c;
}

// ---------------------------------------------------------------- redshift and LSF
struct Resolved {
  double redshift = kNaN;
  std::string redshift_source;
  std::optional<LsfModel> lsf;
  std::string lsf_source;
};

// The stored configuration of a slitstep cube product, or nullopt (with the reason) when the file
// is not a slitstep product or the stored text is not a simulation configuration.
std::optional<SimulationConfig> stored_simulation_config(const std::string& path, const CubeReadReport& rep,
                                                          std::string& product_type, std::string& why) {
  if (!rep.slitstep_product) {
    why = "not a slitstep product";
    return std::nullopt;
  }
  try {
    const ProductMeta meta = read_product_meta(path);
    product_type = meta.product_type;
    // Only simulator products store a simulation configuration (an empty text = every default, as
    // `slitstep demo` writes); any other slitstep product (e.g. a converted cube) does not.
    if (product_type != "CUBE" && product_type != "SKYCUBE") {
      why = "PRODTYPE '" + product_type + "' is not a simulator product";
      return std::nullopt;
    }
    const Config stored = Config::from_string(meta.config_text, path + " (stored configuration)");
    return read_simulation_config(stored);
  } catch (const InputError& e) {
    why = e.what();
    return std::nullopt;
  }
}

std::optional<double> redshift_card(const std::string& path, const CubeReadReport& rep) {
  FitsFile f = FitsFile::open_read(path);
  std::vector<std::string> hdus = {""};
  if (!rep.sci_hdu.empty()) hdus.push_back(rep.sci_hdu);
  for (const auto& h : hdus) {
    if (h.empty()) f.move_to(0);
    else if (!f.try_move_to(h)) continue;
    for (const char* key : {"REDSHIFT", "Z"}) {
      if (!f.has_key(key)) continue;
      const auto v = f.read_double_opt(key);
      if (v && std::isfinite(*v) && *v >= 0.0 && *v < 20.0) return v;
      throw InputError(path + ": HDU " + (h.empty() ? std::string("0") : h) + ": " + key +
                       " card is not a redshift in [0, 20)");
    }
  }
  return std::nullopt;
}

Resolved resolve_redshift_and_lsf(const AnalyzeArgs& args, const AnalyzeConfig& ac, const std::string& config_name,
                                  const CubeReadReport& rep) {
  Resolved r;
  std::string product_type, why;
  const auto stored = stored_simulation_config(args.cube_path, rep, product_type, why);
  // Redshift: --redshift > [analysis] redshift > the stored configuration > a REDSHIFT/Z card.
  if (std::isfinite(args.redshift)) {
    if (!(args.redshift >= 0.0 && args.redshift < 20.0))
      throw InputError("--redshift = " + format_value(args.redshift) + ": must be in [0, 20)");
    r.redshift = args.redshift;
    r.redshift_source = "--redshift";
  } else if (ac.redshift) {
    r.redshift = *ac.redshift;
    r.redshift_source = config_name + " [analysis] redshift";
  } else if (stored) {
    r.redshift = stored->scene.galaxy.redshift;
    r.redshift_source = "stored configuration (galaxy.redshift)";
  } else if (const auto card = redshift_card(args.cube_path, rep)) {
    r.redshift = *card;
    r.redshift_source = "REDSHIFT card";
  } else {
    throw InputError(args.cube_path + ": no redshift: the header has no REDSHIFT card and the file is not a "
                     "slitstep product; give --redshift Z (or [analysis] redshift)");
  }
  // LSF: command line > [lines] lsf_* > a slitstep NIRSpec cube's disperser. Never guessed.
  LsfChoice cl;
  if (std::isfinite(args.lsf_fwhm_A)) cl.fwhm_A = args.lsf_fwhm_A, cl.source = "--lsf-fwhm-A";
  if (std::isfinite(args.lsf_resolving_power)) cl.resolving_power = args.lsf_resolving_power, cl.source = "--lsf-R";
  if (std::isfinite(args.lsf_sigma_kms)) cl.sigma_kms = args.lsf_sigma_kms, cl.source = "--lsf-sigma-kms";
  if (cl.count() > 1) throw InputError("give only one of --lsf-fwhm-A, --lsf-R, --lsf-sigma-kms");
  const LsfChoice& use = cl.count() ? cl : ac.lsf;
  try {
    if (use.fwhm_A) r.lsf = LsfModel::constant_fwhm_A(*use.fwhm_A);
    else if (use.resolving_power) r.lsf = LsfModel::constant_resolving_power(*use.resolving_power);
    else if (use.sigma_kms) r.lsf = LsfModel::constant_sigma_kms(*use.sigma_kms);
  } catch (const InvalidOptions& e) {
    throw InputError(use.source + ": " + e.what());
  }
  if (r.lsf) {
    r.lsf_source = use.source;
  } else if (stored && product_type == "CUBE") {
    r.lsf = LsfModel::from_disperser(Disperser(stored->instrument.disperser));
    r.lsf_source = "stored configuration (instrument grating " + stored->instrument.disperser.grating + ")";
  } else {
    std::string extra;
    if (stored) extra = " (a " + product_type + " product has no instrumental line-spread function)";
    throw InputError(args.cube_path + ": the instrumental line-spread function is unknown" + extra +
                     ": give --lsf-fwhm-A A, --lsf-R R or --lsf-sigma-kms S (or [lines] lsf_fwhm_A, "
                     "lsf_resolving_power, lsf_sigma_kms)");
  }
  return r;
}

// ---------------------------------------------------------------- products
JsonValue ve_json(const ValueError& v) { return JsonValue::object().set("value", v.value).set("err", v.err); }
JsonValue status_json(const Status& s) {
  return s.ok() ? JsonValue("ok") : JsonValue(s.message.empty() ? std::string("failed") : s.message);
}

std::string upper_name(std::string_view n) {
  std::string s(n);
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

enum MaskBit : int {
  kMaskNoFit = 1,         // the line fit did not converge
  kMaskNotSelected = 2,   // failed the S/N(Halpha) / S/N(EW) selection
  kMaskNotSF = 4,         // selected but not classified star-forming
  kMaskNoMetal = 8,       // star-forming but its metallicity is not usable
  kMaskOutOfRange = 16,   // in the metallicity sample but outside the gradient's radial range
};

MapProduct build_maps(const LineMaps& m, const AnalysisResult& res, const CubeReadReport& rep) {
  MapProduct p;
  p.spatial = m.spatial;
  p.sky = m.sky;
  p.celestial = rep.celestial_wcs || rep.slitstep_product;
  const std::size_t n = m.size();
  auto add = [&](const std::string& name, const std::string& bunit, const std::string& desc,
                 std::vector<double> v, bool integer = false) {
    MapImage im;
    im.extname = name;
    im.bunit = bunit;
    im.description = desc;
    im.values = std::move(v);
    im.integer = integer;
    p.images.push_back(std::move(im));
    return &p.images.back();
  };
  for (const auto& el : emission_lines()) {
    const LineMap& lm = m.line(el.id);
    if (!lm.measured) continue;
    const std::string u = upper_name(el.name);
    const std::string lab(el.label);
    add(u + "_FLUX", "erg s-1 cm-2", lab + " flux per spaxel", lm.flux_cgs);
    add(u + "_FLUX_ERR", "erg s-1 cm-2", lab + " flux 1-sigma error", lm.flux_err_cgs);
    add(u + "_EW", "Angstrom", lab + " rest-frame equivalent width (emission > 0)", lm.ew_rest_A);
    add(u + "_EW_ERR", "Angstrom", lab + " rest-frame EW 1-sigma error", lm.ew_err_rest_A);
  }
  add("VEL", "km s-1", "line-of-sight velocity relative to the systemic redshift", m.velocity_kms);
  add("VEL_ERR", "km s-1", "velocity 1-sigma error", m.velocity_err_kms);
  add("SIGMA", "km s-1", "intrinsic dispersion (instrumental removed in quadrature)", m.sigma_kms);
  add("SIGMA_ERR", "km s-1", "intrinsic dispersion 1-sigma error", m.sigma_err_kms);
  add("SIGMA_INST", "km s-1", "instrumental sigma removed at Halpha", m.sigma_inst_kms);
  add("CONT", "erg s-1 cm-2 um-1 arcsec-2", "continuum under Halpha", m.continuum_sb);
  add("CONT_LINEFREE", "erg s-1 cm-2 um-1 arcsec-2", "line-free continuum (centre finder)", m.continuum_line_free_sb);
  add("CHI2_DOF", "", "reduced chi^2 of the line fit", m.chi2_per_dof);
  std::vector<double> n2(n), o3n2(n), z(n), ze(n), zs(n), cls(n), rad(n), mask(n), snr(n);
  for (std::size_t k = 0; k < n; ++k) {
    const SpaxelRow& r = res.spaxels[k];
    n2[k] = r.n2;
    o3n2[k] = r.o3n2;
    const bool has_z = r.selected && r.class_name == "SF" && std::isfinite(r.z_12logoh);
    z[k] = has_z ? r.z_12logoh : kNaN;
    ze[k] = has_z ? r.z_err : kNaN;
    zs[k] = has_z ? r.z_err_stat : kNaN;
    SpaxelClass c = SpaxelClass::kUnclassified;
    spaxel_class_from_name(r.class_name, c);
    cls[k] = static_cast<double>(static_cast<int>(c));
    rad[k] = r.radius_kpc;
    snr[k] = r.halpha_snr;
    int mk = 0;
    if (!m.fit_ok[k]) mk |= kMaskNoFit;
    if (!r.selected) mk |= kMaskNotSelected;
    else if (r.class_name != "SF") mk |= kMaskNotSF;
    else if (!r.in_gradient) mk |= kMaskNoMetal;
    else if (!r.reason.empty()) mk |= kMaskOutOfRange;
    mask[k] = mk;
  }
  add("HALPHA_SNR", "", "S/N of the Halpha flux", snr);
  add("N2", "dex", "log10([NII]6584 / Halpha)", n2);
  add("O3N2", "dex", "log10([OIII]5007 / Hbeta) - N2", o3n2);
  add("METAL", "dex", "12 + log(O/H) of selected star-forming spaxels (calibration in the primary header)", z);
  add("METAL_ERR", "dex", "12 + log(O/H) 1-sigma error incl. calibration scatter", ze);
  add("METAL_ERR_STAT", "dex", "12 + log(O/H) statistical 1-sigma error", zs);
  add("CLASS", "", "ionisation class code (BPT or WHAN)", cls, true)->comments = {
      "0 SF, 1 composite, 2 AGN (Seyfert / strong AGN), 3 LINER (weak AGN),",
      "4 retired, 5 passive, 6 unclassified (docs/formats.md)"};
  add("RADIUS", "kpc", "de-projected galactocentric radius", rad);
  add("MASK", "", "bit mask: why a spaxel is not in the gradient", mask, true)->comments = {
      "1 line fit failed, 2 not selected (S/N Halpha / EW), 4 not star-forming,",
      "8 metallicity unusable, 16 outside the gradient radial range; 0 = in the gradient"};
  return p;
}

std::string num(double v) { return format_csv_number(v); }

}  // namespace

int run_analyze(const AnalyzeArgs& args) {
  const auto t0 = std::chrono::steady_clock::now();
  const Config cfg = args.config_path.empty() ? Config::empty("<defaults>") : Config::from_file(args.config_path);
  AnalyzeConfig ac = read_analyze_config(cfg);
  cfg.check_all_used();
  if (args.threads < 0) throw InputError("--threads = " + std::to_string(args.threads) + ": must be >= 0");
  ac.lines.threads = args.threads;

  ensure_output_is_not_an_input((std::filesystem::path(args.out_dir) / "maps.fits").string(), {args.cube_path});
  CubeReadReport rep;
  const Cube cube = read_cube(args.cube_path, {}, &rep);
  const Resolved rz = resolve_redshift_and_lsf(args, ac, cfg.source_name(), rep);
  const std::string name = std::filesystem::path(args.cube_path).filename().string();

  std::printf("slitstep %s analyze %s: %d x %d spaxels of %.3f\" x %zu channels (%.4f-%.4f um)\n", kVersion,
              args.cube_path.c_str(), cube.nx(), cube.ny(), cube.spatial.pixel_arcsec, cube.nl(),
              cube.spectral.min_um(), cube.spectral.max_um());
  std::printf("redshift %.6g (%s); LSF %s (%s)\n", rz.redshift, rz.redshift_source.c_str(),
              rz.lsf->description().c_str(), rz.lsf_source.c_str());
  for (const auto& n : rep.notes) std::printf("note: %s\n", n.c_str());
  std::vector<std::string> notes;
  ac.analysis.halpha_outside_reason =
      halpha_outside_range(rz.redshift, cube.spectral.min_um(), cube.spectral.max_um());
  if (!ac.analysis.halpha_outside_reason.empty()) notes.push_back(ac.analysis.halpha_outside_reason);
  std::printf("fitting %zu spaxels ...\n", cube.spatial.size());
  std::fflush(stdout);

  LineFitSummary fs;
  LineMaps maps = fit_cube(cube, rz.redshift, *rz.lsf, ac.lines, &fs);
  if (ac.scale_redshift) {
    maps.redshift = *ac.scale_redshift;  // only the angular scale (kpc/arcsec) uses it
    notes.push_back("angular scale from scale_redshift = " + format_value(*ac.scale_redshift) +
                    " (wavelengths fitted at z = " + format_value(rz.redshift) + ")");
  }
  std::printf("line fits: %zu converged, %zu no signal, %zu at a bound, %zu not converged, %zu no data, %zu failed "
              "(%.1f s)\n",
              fs.count(LineFitStatus::kConverged), fs.count(LineFitStatus::kNoSignal),
              fs.count(LineFitStatus::kAtBound), fs.count(LineFitStatus::kNotConverged),
              fs.count(LineFitStatus::kNoData), fs.count(LineFitStatus::kFailed), fs.seconds);

  // A continuum-subtracted cube (SAMI-like) is detected and handled by the pipeline (continuum = auto).
  const AnalysisResult res = analyze_maps(maps, ac.analysis);
  const AnalysisSummary& s = res.summary;
  for (const auto& n : res.notes) notes.push_back(n);

  // ---- products
  ensure_output_dir(args.out_dir);
  const std::filesystem::path d(args.out_dir);
  ProductMeta meta;
  meta.product_type = "MAPS";
  meta.software_version = kVersion;
  meta.config_text = cfg.text();
  meta.seed = ac.analysis.seed;
  std::string input = name.size() > 60 ? name.substr(name.size() - 60) : name;
  for (char& c : input)
    if (c < 0x20 || c > 0x7E || c == '\'') c = '_';
  meta.extra_cards = {
      {"INPUT", input, "analysed cube (file name)"},
      {"REDSHIFT", rz.redshift, "systemic redshift of the line fits"},
      {"REDSRC", rz.redshift_source.substr(0, 60), "where the redshift came from"},
      {"LSF", rz.lsf->description().substr(0, 60), "instrumental line-spread function"},
      {"CALIB", std::string(calibration_name(ac.analysis.metallicity.calibration)), "metallicity calibration"},
      {"DIAGRAM", s.classification, "BPT or WHAN (majority of selected spaxels)"},
  };
  write_maps(build_maps(maps, res, rep), (d / "maps.fits").string(), meta);

  const std::vector<std::string> header = {
      "i", "j", "x_arcsec", "y_arcsec", "radius_kpc", "halpha_flux", "halpha_flux_err", "halpha_snr", "halpha_ew",
      "ew_snr", "nii6584_flux", "velocity_kms", "velocity_err_kms", "sigma_kms", "sigma_err_kms", "n2", "o3n2",
      "z_12logoh", "z_err", "z_err_stat", "class", "diagram", "selected", "in_gradient", "fit_status", "reason"};
  std::vector<std::vector<std::string>> rows;
  rows.reserve(maps.size());
  const LineMap& ha = maps.line(LineId::kHalpha);
  const LineMap& nii = maps.line(LineId::kNII6584);
  for (std::size_t k = 0; k < maps.size(); ++k) {
    const SpaxelRow& r = res.spaxels[k];
    const bool has_z = r.selected && r.class_name == "SF" && std::isfinite(r.z_12logoh);
    rows.push_back({std::to_string(r.i), std::to_string(r.j), num(r.x_arcsec), num(r.y_arcsec), num(r.radius_kpc),
                    num(r.halpha_flux), num(ha.flux_err_cgs[k]), num(r.halpha_snr), num(ha.ew_rest_A[k]),
                    num(r.ew_snr), num(nii.measured ? nii.flux_cgs[k] : kNaN), num(maps.velocity_kms[k]),
                    num(maps.velocity_err_kms[k]), num(maps.sigma_kms[k]), num(maps.sigma_err_kms[k]), num(r.n2),
                    num(r.o3n2), num(has_z ? r.z_12logoh : kNaN), num(has_z ? r.z_err : kNaN),
                    num(has_z ? r.z_err_stat : kNaN), r.class_name.empty() ? "unclassified" : r.class_name,
                    r.diagram, r.selected ? "1" : "0", r.in_gradient && r.reason.empty() ? "1" : "0",
                    maps.fit_ok[k] ? "ok" : "failed", r.reason});
  }
  write_csv((d / "spaxels.csv").string(), header, rows);

  JsonValue j = JsonValue::object();
  j.set("software", std::string("slitstep ") + kVersion);
  j.set("input", args.cube_path);
  j.set("redshift", JsonValue::object().set("value", rz.redshift).set("source", rz.redshift_source));
  if (ac.scale_redshift) j.set("scale_redshift", *ac.scale_redshift);
  j.set("lsf", JsonValue::object().set("model", rz.lsf->description()).set("source", rz.lsf_source));
  j.set("status", status_json(s.status));
  j.set("gradient_dex_per_kpc", ve_json(s.gradient_dex_per_kpc));
  j.set("gradient_dex_per_re", ve_json(s.gradient_dex_per_re));
  j.set("gradient_intercept", ve_json(res.gradient_kpc.intercept));
  j.set("rmse_dex", s.rmse_dex);
  j.set("n_spaxels", static_cast<long long>(maps.size()));
  j.set("n_spaxels_selected", s.n_spaxels_selected);
  j.set("n_spaxels_sf", s.n_spaxels_sf);
  j.set("classification", s.classification);
  j.set("calibration", std::string(calibration_name(ac.analysis.metallicity.calibration)));
  j.set("center_arcsec", JsonValue::array().push(s.center_arcsec[0]).push(s.center_arcsec[1]));
  j.set("vc_kms", ve_json(s.vc_kms));
  j.set("rt_arcsec", s.rt_arcsec.value);
  j.set("rt_arcsec_err", s.rt_arcsec.err);
  j.set("sigma0_kms", ve_json(s.sigma0_kms));
  j.set("v_over_sigma", ve_json(s.v_over_sigma));
  j.set("rotation_class", s.rotation_class);
  j.set("inclination_deg", s.inclination_deg);
  j.set("inclination_source", s.inclination_source);
  j.set("pa_deg", s.pa_deg);
  j.set("pa_source", s.pa_source);
  j.set("kpc_per_arcsec", s.kpc_per_arcsec);
  j.set("mdyn_msun", s.mdyn_msun);
  j.set("stages", JsonValue::object()
                      .set("geometry", status_json(s.geometry_status))
                      .set("gradient", status_json(s.gradient_status))
                      .set("kinematics", status_json(s.kinematics_status)));
  JsonValue prof = JsonValue::array();
  for (const auto& b : res.profile_kpc)
    prof.push(JsonValue::object()
                  .set("r_lo_kpc", b.r_lo)
                  .set("r_hi_kpc", b.r_hi)
                  .set("r_mean_kpc", b.r_mean)
                  .set("mean", b.mean)
                  .set("err_mean", b.err_mean)
                  .set("n", b.n));
  j.set("profile_kpc", prof);
  JsonValue lf = JsonValue::object();
  for (LineFitStatus st : {LineFitStatus::kConverged, LineFitStatus::kNoSignal, LineFitStatus::kAtBound,
                           LineFitStatus::kNotConverged, LineFitStatus::kNoData, LineFitStatus::kFailed})
    lf.set(to_string(st), static_cast<unsigned long long>(fs.count(st)));
  lf.set("seconds", fs.seconds);
  j.set("line_fits", lf);
  JsonValue nj = JsonValue::array();
  for (const auto& n : notes) nj.push(n);
  j.set("notes", nj);
  write_text_atomic((d / "summary.json").string(), j.dump() + "\n");

  std::string report = format_analysis_table(s, name, rz.redshift);
  for (const auto& n : notes) report += "note: " + n + "\n";
  write_text_atomic((d / "report.txt").string(), report);
  std::printf("\n%s", report.c_str());
  std::printf("wrote %s, %s, %s, %s\n", (d / "maps.fits").string().c_str(), (d / "spaxels.csv").string().c_str(),
              (d / "summary.json").string().c_str(), (d / "report.txt").string().c_str());
  std::printf("wall time %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

}  // namespace slitstep::app
