// `slitstep fit DATA [--model MODEL.toml] -o DIR`: forward-model fit of a parametric galaxy
// through the instrument model (fit/forward + fit/slitstep_operator or fit/ifu_operator),
// started from the per-spaxel analysis (fit/line_fit fit_cube + analysis/pipeline analyze_maps ->
// fit/start_guess). Products: DIR/fit.json (fit/fit_report), DIR/model.fits, DIR/residual.fits,
// with --sample DIR/chain.fits. This file resolves inputs, prints and writes; docs/cli.md "fit".
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>

#include "analysis/pipeline.hpp"
#include "apps/commands.hpp"
#include "core/config.hpp"
#include "core/cube_io.hpp"
#include "core/error.hpp"
#include "core/fits.hpp"
#include "core/json.hpp"
#include "core/text_io.hpp"
#include "core/version.hpp"
#include "fit/cube_noise.hpp"
#include "fit/fit_config.hpp"
#include "fit/fit_report.hpp"
#include "fit/forward.hpp"
#include "fit/ifu_operator.hpp"
#include "fit/line_fit.hpp"
#include "fit/lsf.hpp"
#include "fit/reweight.hpp"
#include "fit/sampler.hpp"
#include "fit/slitstep_operator.hpp"
#include "fit/start_guess.hpp"
#include "instruments/disperser.hpp"
#include "instruments/exposure_io.hpp"
#include "sim/simulate.hpp"

namespace slitstep::app {
namespace {

namespace fs = std::filesystem;
constexpr double kC = 299792.458;

struct DataInputs {
  std::string cube_path;                 // the cube (DATA, or DATA/cube.fits for a folder)
  std::vector<std::string> exposure_paths;  // exposure space
};

DataInputs locate_data(const std::string& data) {
  DataInputs d;
  if (!fs::exists(data)) throw InputError(data + ": no such file or folder");
  if (!fs::is_directory(data)) {
    d.cube_path = data;
    return d;
  }
  // A simulate output folder (DATA/exposures/*.fits + DATA/cube.fits) or an exposure folder whose
  // parent holds cube.fits.
  fs::path dir = data;
  fs::path exp_dir = fs::is_directory(dir / "exposures") ? dir / "exposures" : dir;
  for (const auto& e : fs::directory_iterator(exp_dir))
    if (e.is_regular_file() && e.path().extension() == ".fits" && e.path().filename() != "cube.fits")
      d.exposure_paths.push_back(e.path().string());
  std::sort(d.exposure_paths.begin(), d.exposure_paths.end());
  if (d.exposure_paths.empty()) throw InputError(data + ": no exposure files (*.fits) in " + exp_dir.string());
  for (const fs::path& c : {dir / "cube.fits", exp_dir.parent_path() / "cube.fits"})
    if (fs::is_regular_file(c)) {
      d.cube_path = c.string();
      break;
    }
  if (d.cube_path.empty())
    throw InputError(data + ": no cube.fits beside the exposures: the fit needs the simulator's cube product for "
                     "the observation configuration and the starting guesses");
  return d;
}

std::optional<SimulationConfig> stored_config(const std::string& path, const CubeReadReport& rep, std::string& why) {
  if (!rep.slitstep_product) {
    why = "not a slitstep product";
    return std::nullopt;
  }
  const ProductMeta meta = read_product_meta(path);
  if (meta.product_type != "CUBE") {
    why = "PRODTYPE '" + meta.product_type + "' is not a simulated cube";
    return std::nullopt;
  }
  const Config stored = Config::from_string(meta.config_text, path + " (stored configuration)");
  return read_simulation_config(stored);
}

LsfModel lsf_of_ifu(const GenericIfuConfig& c) {
  if (c.lsf_wavelength_um.empty()) {
    if (c.lsf_kind == "fwhm_A") return LsfModel::constant_fwhm_A(c.lsf_values.at(0));
    return LsfModel::constant_sigma_kms(c.lsf_values.at(0));
  }
  std::vector<double> s(c.lsf_values.size());
  for (std::size_t k = 0; k < s.size(); ++k)
    s[k] = c.lsf_kind == "fwhm_A" ? kC * c.lsf_values[k] / (kFwhmPerSigma * c.lsf_wavelength_um[k] * 1e4)
                                  : c.lsf_values[k];
  return LsfModel::tabulated(c.lsf_wavelength_um, s, "[ifu] table");
}

// Model values in the operator's cube-space layout ((j nx + i) n_columns + c) placed on the data
// cube's grid; voxels the operator does not model are flagged DoNotUse | NoCoverage.
void slitstep_cube_products(const SlitstepOperator& op, const std::vector<double>& model,
                            const std::vector<double>& inv_sigma, const Cube& data, Cube& mcube, Cube& rcube) {
  mcube = data;
  mcube.ensure_quality();
  std::fill(mcube.sci.begin(), mcube.sci.end(), 0.0);
  for (auto& q : mcube.dq) q |= kDqDoNotUse | kDqNoCoverage;
  rcube = mcube;
  const std::size_t nc = op.n_columns();
  std::vector<long> chan(nc, -1);
  for (std::size_t c = 0; c < nc; ++c) {
    const double w = op.column_wavelengths_um()[c];
    for (std::size_t k = 0; k < data.nl(); ++k)
      if (std::abs(data.spectral.wavelength_um(k) - w) <= 0.25 * data.spectral.width_um(k)) chan[c] = static_cast<long>(k);
  }
  for (int j = 0; j < data.ny(); ++j)
    for (int i = 0; i < data.nx(); ++i)
      for (std::size_t c = 0; c < nc; ++c) {
        if (chan[c] < 0) continue;
        const std::size_t m = (static_cast<std::size_t>(j) * data.nx() + i) * nc + c;
        const std::size_t v = data.index(i, j, static_cast<std::size_t>(chan[c]));
        if (!op.predictable()[m]) continue;
        mcube.sci[v] = model[m];
        const std::uint32_t dq = data.has_quality() ? data.dq[v] : 0u;
        mcube.dq[v] = dq;
        rcube.dq[v] = inv_sigma[m] > 0.0 ? dq : (dq | kDqDoNotUse);
        rcube.sci[v] = data.sci[v] - model[m];
      }
}

// Exposure space: one 3-D image (NAXIS1 = modelled detector columns, NAXIS2 = rows, NAXIS3 =
// pointings in the instrument's order) plus a COLUMNS table (detector column, wavelength).
void write_exposure_stack(const std::string& path, const std::string& extname, const std::vector<double>& values,
                          const SlitstepOperator& op, const std::string& config_text) {
  const long nc = static_cast<long>(op.n_columns());
  const long nq = op.n_pointings();
  const long nv = static_cast<long>(values.size()) / (nc * nq);
  FitsFile f = FitsFile::create(path);
  f.create_empty_primary();
  f.write_key("ORIGIN", "slitstep", "software that wrote this file");
  f.write_key("SOFTVER", kVersion, "slitstep version");
  f.write_key("PRODTYPE", extname == "MODEL" ? "FITMODEL-EXPOSURES" : "FITRESID-EXPOSURES", "product type");
  f.write_date();
  if (!config_text.empty()) f.write_comment("model configuration: see fit.json (MODEL.toml given)");
  f.create_image(FitsPixel::kFloat64, {nc, nv, nq});
  f.write_key("EXTNAME", extname, "");
  f.write_key("BUNIT", "erg s-1 cm-2 um-1 arcsec-2", "surface brightness");
  f.write_comment("axis 1: modelled detector column (see COLUMNS), axis 2: row, axis 3: pointing");
  f.write_image(values);
  f.create_binary_table("COLUMNS", {{"DETCOL", "1D", "", ""}, {"WAVELENGTH", "1D", "um", ""}}, nc);
  std::vector<double> cols(op.columns().begin(), op.columns().end());
  f.write_column("DETCOL", cols);
  f.write_column("WAVELENGTH", op.column_wavelengths_um());
  f.commit();
}

void write_chain(const std::string& path, const SampleResult& s, const std::vector<std::string>& names,
                 std::uint64_t seed) {
  const long rows = static_cast<long>(s.kept) * s.walkers;
  std::vector<FitsColumnSpec> cols = {{"WALKER", "1J", "", ""}, {"STEP", "1J", "", ""}};
  for (const auto& n : names) cols.push_back({n, "1D", "", ""});
  cols.push_back({"LOG_PROB", "1D", "", ""});
  FitsFile f = FitsFile::create(path);
  f.create_empty_primary();
  f.write_key("ORIGIN", "slitstep", "software that wrote this file");
  f.write_key("SOFTVER", kVersion, "slitstep version");
  f.write_key("PRODTYPE", "CHAIN", "posterior samples of slitstep fit");
  f.write_key("SEED", std::to_string(seed), "sampler seed");
  f.write_date();
  f.create_binary_table("CHAIN", cols, rows);
  std::vector<double> w(rows), st(rows), lp(rows);
  std::vector<std::vector<double>> p(names.size(), std::vector<double>(rows));
  for (int t = 0; t < s.kept; ++t)
    for (int k = 0; k < s.walkers; ++k) {
      const std::size_t r = static_cast<std::size_t>(t) * s.walkers + k;
      w[r] = k;
      st[r] = t;
      lp[r] = s.log_prob[r];
      for (std::size_t d = 0; d < names.size(); ++d) p[d][r] = s.at(t, k, static_cast<int>(d));
    }
  f.write_column("WALKER", w);
  f.write_column("STEP", st);
  for (std::size_t d = 0; d < names.size(); ++d) f.write_column(names[d], p[d]);
  f.write_column("LOG_PROB", lp);
  f.commit();
}

}  // namespace

int run_fit(const FitArgs& args) {
  const auto t0 = std::chrono::steady_clock::now();
  const Config cfg = args.model_path.empty() ? Config::empty("<defaults>") : Config::from_file(args.model_path);
  FitModelConfig mc = read_fit_model_config(cfg);
  cfg.check_all_used();
  FitRunConfig& run = mc.run;
  // Command line over the file.
  if (args.threads >= 0) run.fit.threads = args.threads, run.sampler.threads = args.threads;
  else run.sampler.threads = run.fit.threads;
  if (args.max_iterations > 0) run.fit.max_iterations = args.max_iterations;
  if (args.sample) run.sample = true;
  if (args.walkers > 0) run.sampler.walkers = args.walkers;
  if (args.steps > 0) run.sampler.steps = args.steps;
  if (args.burn_in >= 0) run.sampler.burn_in = args.burn_in;
  if (args.seed >= 0) run.sampler.seed = static_cast<std::uint64_t>(args.seed);
  if (!args.instrument.empty()) {
    if (args.instrument == "slitstep") run.instrument = FitInstrument::kSlitstep;
    else if (args.instrument == "ifu") run.instrument = FitInstrument::kIfu;
    else if (args.instrument == "auto") run.instrument = FitInstrument::kAuto;
    else throw InputError("--instrument = " + args.instrument + ": must be auto, slitstep or ifu");
  }
  if (std::isfinite(args.redshift)) {
    if (!(args.redshift >= 0.0 && args.redshift < 20.0))
      throw InputError("--redshift = " + format_value(args.redshift) + ": must be in [0, 20)");
    run.data_redshift = args.redshift;
  }
  if (std::isfinite(args.model_redshift)) {
    if (!(args.model_redshift > 0.0 && args.model_redshift < 20.0))
      throw InputError("--model-redshift = " + format_value(args.model_redshift) + ": must be in (0, 20)");
    mc.model.redshift = args.model_redshift;
  }
  // PSF / LSF options build (or amend) the [ifu] instrument.
  const bool ifu_flags = std::isfinite(args.psf_fwhm_arcsec) || std::isfinite(args.lsf_fwhm_A) ||
                         std::isfinite(args.lsf_sigma_kms);
  if (ifu_flags) {
    if (!mc.ifu) mc.ifu = GenericIfuConfig{};
    if (std::isfinite(args.psf_fwhm_arcsec)) {
      mc.ifu->psf_model = "gaussian";
      mc.ifu->psf_fwhm_arcsec = args.psf_fwhm_arcsec;
    }
    if (std::isfinite(args.lsf_fwhm_A) && std::isfinite(args.lsf_sigma_kms))
      throw InputError("give only one of --lsf-fwhm-A, --lsf-sigma-kms");
    if (std::isfinite(args.lsf_fwhm_A)) mc.ifu->lsf_kind = "fwhm_A", mc.ifu->lsf_values = {args.lsf_fwhm_A};
    if (std::isfinite(args.lsf_sigma_kms)) mc.ifu->lsf_kind = "sigma_kms", mc.ifu->lsf_values = {args.lsf_sigma_kms};
    mc.ifu->lsf_wavelength_um.clear();
    try {
      mc.ifu->validate();
    } catch (const InvalidOptions& e) {
      throw InputError(std::string("PSF/LSF options: ") + e.what());
    }
  }

  const DataInputs din = locate_data(args.data_path);
  const bool exposures = !din.exposure_paths.empty();
  FitSpace space = exposures ? FitSpace::kExposures : FitSpace::kCube;
  if (run.space && *run.space != space)
    throw InputError(std::string(cfg.source_name()) + ": fit.space = \"" + fit_space_name(*run.space) + "\" but " +
                     args.data_path + " is " + (exposures ? "a folder of exposures" : "a cube file") +
                     " (give a simulate output folder for exposure space, a cube for cube space)");
  std::vector<std::string> run_notes;
  ensure_output_dir(args.out_dir);
  for (const char* name : {"fit.json", "model.fits", "residual.fits", "chain.fits"})
    ensure_output_is_not_an_input((fs::path(args.out_dir) / name).string(), {din.cube_path});

  CubeReadReport rep;
  const Cube cube = read_cube(din.cube_path, {}, &rep);
  std::string why;
  const std::optional<SimulationConfig> stored = stored_config(din.cube_path, rep, why);
  bool use_ifu = false;
  if (run.instrument == FitInstrument::kSlitstep) {
    if (!stored) throw InputError(din.cube_path + ": --instrument slitstep needs a simulated slitstep cube (" + why + ")");
  } else if (run.instrument == FitInstrument::kIfu) {
    use_ifu = true;
  } else {
    use_ifu = !stored;
    if (use_ifu && !mc.ifu)
      throw InputError(din.cube_path + ": not a slitstep simulator product (" + why +
                       "): fit it as a generic IFU cube with --instrument ifu and its PSF/LSF "
                       "(--psf-fwhm-arcsec, --lsf-fwhm-A / --lsf-sigma-kms, or an [ifu] table in --model)");
  }
  if (use_ifu && exposures) throw InputError(args.data_path + ": exposure space exists only for slitstep data");
  if (use_ifu && !mc.ifu) mc.ifu = GenericIfuConfig{};

  // ---- redshifts and LSF of the per-spaxel path
  double z_data = 0.0, z_model = 0.0;
  CosmologyParams cosmo;
  std::optional<LsfModel> lsf;
  if (!use_ifu) {
    z_data = stored->scene.galaxy.redshift;
    if (run.data_redshift && std::abs(*run.data_redshift - z_data) > 1e-12)
      throw InputError("data redshift " + format_value(*run.data_redshift) + " differs from the product's stored "
                       "galaxy.redshift = " + format_value(z_data));
    z_model = mc.model.redshift.value_or(z_data);
    cosmo = stored->scene.cosmology;
    lsf = LsfModel::from_disperser(Disperser(stored->instrument.disperser));
  } else {
    if (!run.data_redshift)
      throw InputError(din.cube_path + ": the redshift of the cube's wavelengths is unknown: give --redshift Z (0 for "
                       "a de-redshifted cube) or [fit] data_redshift");
    z_data = *run.data_redshift;
    if (mc.model.redshift) z_model = *mc.model.redshift;
    else if (z_data > 0.0) z_model = z_data;
    else
      throw InputError("a de-redshifted cube (redshift 0) needs the model's redshift for the angular scale: give "
                       "--model-redshift Z or [model] redshift");
    lsf = lsf_of_ifu(*mc.ifu);
  }
  const double stretch = (1.0 + z_model) / (1.0 + z_data);

  std::printf("slitstep %s fit %s: %d x %d spaxels of %.3f\" x %zu channels; %s instrument, %s space\n", kVersion,
              args.data_path.c_str(), cube.nx(), cube.ny(), cube.spatial.pixel_arcsec, cube.nl(),
              use_ifu ? "generic IFU" : "slit-stepping (stored configuration)", fit_space_name(space));
  std::printf("redshift of the data %.6g, of the model %.6g; LSF %s\n", z_data, z_model, lsf->description().c_str());
  std::fflush(stdout);

  // ---- starting guesses: per-spaxel fits + the MSA-3D analysis
  EmissionLineFitOptions lo;
  lo.threads = run.fit.threads;
  if (!mc.model.lines.empty()) lo.lines = mc.model.lines;
  LineFitSummary lfs;
  LineMaps maps = fit_cube(cube, z_data, *lsf, lo, &lfs);
  LineMaps amaps = maps;
  amaps.redshift = z_model;  // angular scale only
  // A continuum-subtracted cube (no EW anywhere): its continuum maps are noise, so the analysis'
  // continuum-based centre and light-moment inclination are not used (as `slitstep analyze`).
  bool has_continuum = false;
  {
    const LineMap& ha = maps.line(LineId::kHalpha);
    for (std::size_t k = 0; k < maps.size() && ha.measured; ++k)
      if (maps.fit_ok[k] && std::isfinite(ha.ew_rest_A[k]) && ha.ew_err_rest_A[k] > 0.0 &&
          ha.ew_rest_A[k] / ha.ew_err_rest_A[k] > 5.0) {
        has_continuum = true;
        break;
      }
  }
  if (!has_continuum) run_notes.push_back("no significant EW(Halpha) anywhere (a continuum-free cube): centre, "
                                          "inclination and PA start from the Halpha map");
  AnalysisOptions ao;
  ao.cosmology = cosmo;
  AnalysisGuess ag;
  try {
    const AnalysisResult ar = analyze_maps(amaps, ao);
    const AnalysisSummary& s = ar.summary;
    auto fin = [](double v) { return std::isfinite(v) ? std::optional<double>(v) : std::nullopt; };
    if (s.geometry_status.ok() && has_continuum) {
      if (std::isfinite(s.center_arcsec[0]) && std::isfinite(s.center_arcsec[1]))
        ag.center_x_arcsec = s.center_arcsec[0], ag.center_y_arcsec = s.center_arcsec[1];
      ag.inclination_deg = fin(s.inclination_deg);
    }
    if (s.kinematics_status.ok() && has_continuum) {
      ag.pa_deg = fin(s.pa_deg);
      ag.vc_kms = fin(s.vc_kms.value);
      ag.rt_arcsec = fin(s.rt_arcsec.value);
      ag.sigma0_kms = fin(s.sigma0_kms.value);
    } else {
      run_notes.push_back("analysis kinematics: " + s.kinematics_status.message + " (start from the maps)");
    }
    if (s.gradient_status.ok()) ag.gradient_dex_per_kpc = fin(s.gradient_dex_per_kpc.value);
  } catch (const InvalidOptions& e) {
    run_notes.push_back(std::string("analysis skipped: ") + e.what());
  }
  GalaxyParams base;
  base.redshift = z_model;
  apply_model_overrides(mc.model, base, cfg.source_name());
  StartGuessOptions so;
  so.flux_scale = 1.0;
  if (use_ifu) {
    so.psf_sigma_arcsec = generic_ifu_psf_fwhm_arcsec(*mc.ifu) / kFwhmPerSigma;
  } else {
    so.psf_sigma_arcsec = 0.0;
  }
  const StartGuess sg = start_guess(maps, base, ag, so);
  run_notes.insert(run_notes.end(), sg.notes.begin(), sg.notes.end());
  GalaxyParams start = sg.params;
  if (mc.model.ew_halpha_rest_A) start.ew_halpha_rest_A = *mc.model.ew_halpha_rest_A;
  FitDataContext ctx;
  const SpatialGrid& g = cube.spatial;
  ctx.x_lo_arcsec = std::min(g.x_arcsec(-0.5), g.x_arcsec(g.nx - 0.5));
  ctx.x_hi_arcsec = std::max(g.x_arcsec(-0.5), g.x_arcsec(g.nx - 0.5));
  ctx.y_lo_arcsec = std::min(g.y_arcsec(-0.5), g.y_arcsec(g.ny - 0.5));
  ctx.y_hi_arcsec = std::max(g.y_arcsec(-0.5), g.y_arcsec(g.ny - 0.5));
  const GalaxyParameterization param = build_parameterization(start, mc, ctx, &run_notes);
  std::printf("per-spaxel start: %zu of %zu spaxels converged, %d used for the start (%.1f s)\n",
              lfs.count(LineFitStatus::kConverged), lfs.spaxels, sg.n_selected, lfs.seconds);
  for (const auto& s : sg.sources) std::printf("  start %s\n", s.c_str());
  std::fflush(stdout);

  // ---- operator, problem
  std::unique_ptr<ModelOperator> op;
  std::optional<JsonValue> cube_noise_report;  // fit.json "cube_noise" (slit-stepping cube space)
  std::optional<JsonValue> surrogate_report;   // fit.json "surrogate" (sampling through a surrogate)
  std::unique_ptr<WhitenedCubeOperator> whitened_op;  // cube_noise = "whiten": the problem's operator
  const IfuOperator* ifu_op = nullptr;
  const SlitstepOperator* ss_op = nullptr;
  FitProblem problem;
  std::unique_ptr<SlitstepOperator> surrogate_op;  // [fit] surrogate_pixel_arcsec with sampling
  FitProblem surrogate_problem;
  if (use_ifu) {
    GenericIfuConfig icfg;
    try {
      icfg = ifu_config_for_cube(cube, *mc.ifu, stretch);
    } catch (const InvalidOptions& e) {
      throw InputError(din.cube_path + ": " + e.what());
    }
    IfuOperatorOptions io;
    io.value_scale = stretch;
    io.cosmology = cosmo;
    io.model.lines = mc.model.lines;
    auto p = std::make_unique<IfuOperator>(icfg, io);
    const auto sel = p->select_cube(cube);
    if (!sel.status.ok()) throw InputError(din.cube_path + ": " + sel.status.message);
    problem = p->make_problem(sel, param);
    cube_noise_report = JsonValue::object()
                            .set("likelihood", "independent")
                            .set("reason", "generic IFU: the cube's own reconstruction is not modelled, voxels are "
                                           "taken as independent");
    ifu_op = p.get();
    op = std::move(p);
    if (run.sample && run.surrogate_pixel_arcsec)
      run_notes.push_back("surrogate_pixel_arcsec ignored: the generic IFU's model is sampled directly");
  } else {
    SimulationConfig sc = *stored;
    sc.scene.galaxy = param.to_params(param.start());
    SlitstepOperatorOptions so2;
    so2.space = exposures ? SlitstepOperatorOptions::Space::kExposure : SlitstepOperatorOptions::Space::kCube;
    so2.lines = mc.model.lines;
    if (so2.lines.empty() && sc.scene.render.lines.empty()) {
      // The product holds every line the simulator renders: fit them all, so that kinematics and
      // chemistry come jointly from [NII]/Halpha, [OIII]/Hbeta and [SII]/Halpha (lines outside
      // the band or in the chip gap give no detector columns and cost only render time).
      for (int l = 0; l < kNumLines; ++l) so2.lines.push_back(static_cast<LineId>(l));
    }
    auto p = std::make_unique<SlitstepOperator>(sc, so2);
    run_notes.push_back("model sky: " + format_value(p->render_options().pixel_arcsec) + "\" pixels, " +
                        format_value(p->render_options().channel_kms) + " km/s channels (the data's: " +
                        format_value(sc.scene.render.channel_kms) +
                        " km/s), channel boxes Sheppard-corrected: the line widths agree to second order");
    SlitstepOperator::Selection sel;
    if (exposures) {
      std::vector<Exposure> ex;
      for (const auto& path : din.exposure_paths) ex.push_back(read_exposure(path).exposure);
      sel = p->select_exposures(ex);
    } else {
      sel = p->select_cube(cube);
    }
    if (!sel.status.ok()) throw InputError(args.data_path + ": " + sel.status.message);
    bool whitened = false;
    if (!exposures && run.cube_noise != CubeNoiseMode::kIndependent) {
      // The reconstruction correlates neighbouring voxels: measure the correlation by Monte Carlo
      // through the same reconstruction (fit/cube_noise), then sigma -> sigma sqrt(kappa)
      // ("inflate") or generalised least squares with the measured covariance ("whiten").
      CubeNoiseOptions cno;
      cno.realisations = run.cube_noise_realisations;
      cno.seed = run.cube_noise_seed;
      cno.threads = run.fit.threads;
      const CubeNoiseResult cn = measure_cube_noise(*p, cno);
      if (!cn.status.ok()) throw InputError(args.data_path + ": " + cn.status.message);
      std::printf("cube noise: %d pure-noise realisations through the reconstruction (%.1f s): kappa median %.3f, "
                  "mean %.3f (range %.3f-%.3f), var_ratio %.3f; likelihood \"%s\"\n",
                  cn.realisations, cn.wall_s, cn.kappa_median, cn.kappa_mean, cn.kappa_min, cn.kappa_max, cn.var_ratio,
                  cube_noise_mode_name(run.cube_noise));
      std::fflush(stdout);
      cube_noise_report = cube_noise_json(cn);
      cube_noise_report->set("likelihood", cube_noise_mode_name(run.cube_noise));
      if (run.cube_noise == CubeNoiseMode::kInflate) {
        const Status st = apply_cube_noise(cn, *p, sel);
        if (!st.ok()) throw InputError(args.data_path + ": " + st.message);
      } else {
        whitened_op = std::make_unique<WhitenedCubeOperator>(*p, cn, sel);
        if (!whitened_op->status().ok()) throw InputError(args.data_path + ": " + whitened_op->status().message);
        cube_noise_report->set("whitening_factorisations", static_cast<unsigned long long>(whitened_op->n_factorisations()));
        cube_noise_report->set("whitening_shrink", whitened_op->shrink());
        if (whitened_op->shrink() < 1.0)
          run_notes.push_back("cube noise: the measured covariance's off-diagonal part was shrunk by " +
                              format_value(whitened_op->shrink()) + " to make it positive definite");
        whitened = true;
      }
    } else if (!exposures) {
      cube_noise_report = JsonValue::object().set("likelihood", "independent");
    }
    problem = whitened ? whitened_op->make_problem(param) : p->make_problem(sel, param);
    if (run.sample && run.surrogate_pixel_arcsec) {
      if (whitened) {
        run_notes.push_back("surrogate_pixel_arcsec ignored: the whitened cube likelihood samples the exact model");
      } else {
        SlitstepOperatorOptions so3 = so2;
        so3.render_pixel_arcsec = *run.surrogate_pixel_arcsec;
        so3.window_half_width_kms = p->render_options().window_half_width_kms;  // the same columns
        surrogate_op = std::make_unique<SlitstepOperator>(sc, so3);
        if (surrogate_op->data_size() != p->data_size() || surrogate_op->columns() != p->columns())
          throw InputError("[fit] surrogate_pixel_arcsec = " + format_value(*run.surrogate_pixel_arcsec) +
                           ": the surrogate models other values than the exact operator");
        surrogate_problem = surrogate_op->make_problem(sel, param);  // the same data and weights
      }
    }
    ss_op = p.get();
    op = std::move(p);
  }
  std::printf("fitting %zu free parameters to %zu values ...\n", param.num_free(), problem.num_used());
  std::fflush(stdout);

  // ---- maximum likelihood, Cramer-Rao bounds, sampling
  FitResult fit = fit_maximum_likelihood(problem, run.fit);
  // The PA is periodic: report it in (-180, 180] (the model is the same).
  {
    const auto names = param.free_names();
    for (auto& p : fit.params)
      if (p.name == "pa_deg" && std::isfinite(p.value) && !p.fixed) {
        const double w = std::remainder(p.value, 360.0);
        const double shift = w - p.value;
        p.value = w;
        fit.best.pa_deg = w;
        for (std::size_t k = 0; k < names.size() && k < fit.theta.size(); ++k)
          if (names[k] == "pa_deg") fit.theta[k] += shift;
      }
  }
  std::optional<FisherResult> fisher;
  if (fit.status != FitStatus::kFailed && !fit.theta.empty()) fisher = fisher_matrix(problem, fit.best, run.fit);
  std::optional<SampleResult> sample;
  if (run.sample) {
    if (fit.status == FitStatus::kFailed) {
      run_notes.push_back("sampling skipped: the maximum-likelihood fit failed");
    } else {
      const auto names = param.free_names();
      std::vector<double> centre = fit.theta, sig(centre.size());
      const auto scales = param.free_scales();
      for (std::size_t k = 0; k < centre.size(); ++k) {
        const double e = fit.err(names[k]);
        sig[k] = (std::isfinite(e) && e > 0.0) ? run.init_ball * e : 1e-3 * scales[k];
      }
      SamplerOptions sopt = run.sampler;
      if (sopt.walkers < 2 * static_cast<int>(names.size())) {
        sopt.walkers = 2 * static_cast<int>(names.size()) + (static_cast<int>(names.size()) % 2);
        if (sopt.walkers % 2) ++sopt.walkers;
        run_notes.push_back("walkers raised to " + std::to_string(sopt.walkers) + " (at least twice the free parameters)");
      }
      run.sampler = sopt;
      std::printf("sampling: %d walkers x (%d burn-in + %d) steps ...\n", sopt.walkers, sopt.burn_in, sopt.steps);
      std::fflush(stdout);
      try {
        sample = sample_posterior(surrogate_op ? surrogate_problem : problem, centre, sig, sopt);
      } catch (const InvalidOptions& e) {
        throw InputError(std::string("sampler options: ") + e.what());
      }
      if (surrogate_op && sample->status != SamplerStatus::kFailed) {
        // The surrogate's samples, reweighted to the exact model: the posterior summaries below
        // are the exact model's; the chain diagnostics (R-hat, tau, ESS) are the surrogate run's.
        ReweightOptions ro;
        ro.threads = run.sampler.threads;
        const ReweightResult rw = reweight_posterior(*sample, problem, ro);
        surrogate_report = surrogate_json(rw, *sample, *run.surrogate_pixel_arcsec);
        if (!rw.status.ok()) {
          run_notes.push_back("surrogate reweighting failed: " + rw.status.message +
                              "; the sampler summaries are the surrogate's");
        } else {
          for (std::size_t k = 0; k < rw.params.size() && k < sample->params.size(); ++k) {
            const auto& w = rw.params[k];
            auto& q = sample->params[k];
            q.median = w.median, q.p16 = w.p16, q.p84 = w.p84, q.mean = w.mean, q.std = w.std;
          }
          sample->notes.push_back("posterior summaries reweighted from a " + format_value(*run.surrogate_pixel_arcsec) +
                                  "\" sky surrogate to the exact model (ESS " + format_value(rw.ess) + " of " +
                                  std::to_string(rw.n_samples) + " samples)");
          for (const auto& n : rw.notes) run_notes.push_back("surrogate: " + n);
          std::printf("surrogate: %d samples reweighted to the exact model, ESS %.0f%s\n", rw.n_samples, rw.ess,
                      rw.reliable ? "" : " (NOT reliable: see notes)");
        }
      }
    }
  }

  // ---- products
  const fs::path out(args.out_dir);
  std::vector<std::pair<std::string, std::string>> products;
  ProductMeta meta;
  meta.config_text = cfg.text();
  meta.seed = run.sampler.seed;
  std::vector<double> model(op->data_size(), 0.0);
  {
    auto ws = op->make_workspace();
    const GalaxyParams best = fit.status == FitStatus::kFailed && fit.theta.empty() ? param.to_params(param.start())
                                                                                    : fit.best;
    const Status st = op->evaluate(best, model.data(), *ws);
    if (!st.ok()) run_notes.push_back("model at the solution: " + st.message);
  }
  if (ifu_op) {
    Cube mcube = cube, rcube = cube;
    mcube.ensure_quality();
    rcube.ensure_quality();
    for (std::size_t n = 0; n < model.size(); ++n) {
      mcube.sci[n] = model[n];
      rcube.sci[n] = cube.sci[n] - model[n];
      if (!(problem.inv_sigma[n] > 0.0)) rcube.dq[n] |= kDqDoNotUse, rcube.sci[n] = 0.0;
    }
    meta.product_type = "FITMODEL";
    write_cube(mcube, (out / "model.fits").string(), meta);
    meta.product_type = "FITRESID";
    write_cube(rcube, (out / "residual.fits").string(), meta);
  } else if (!exposures) {
    Cube mcube, rcube;
    slitstep_cube_products(*ss_op, model, problem.inv_sigma, cube, mcube, rcube);
    meta.product_type = "FITMODEL";
    write_cube(mcube, (out / "model.fits").string(), meta);
    meta.product_type = "FITRESID";
    write_cube(rcube, (out / "residual.fits").string(), meta);
  } else {
    std::vector<double> resid(model.size());
    for (std::size_t n = 0; n < model.size(); ++n)
      resid[n] = problem.inv_sigma[n] > 0.0 ? problem.data[n] - model[n] : std::nan("");
    write_exposure_stack((out / "model.fits").string(), "MODEL", model, *ss_op, cfg.text());
    write_exposure_stack((out / "residual.fits").string(), "RESIDUAL", resid, *ss_op, cfg.text());
  }
  products.emplace_back("model", "model.fits");
  products.emplace_back("residual", "residual.fits");
  if (sample && !sample->chain.empty()) {
    write_chain((out / "chain.fits").string(), *sample, param.free_names(), run.sampler.seed);
    products.emplace_back("chain", "chain.fits");
  }
  products.emplace_back("report", "fit.json");

  FitReportInput ri;
  ri.fit = &fit;
  ri.fisher = fisher ? &*fisher : nullptr;
  ri.sample = sample ? &*sample : nullptr;
  ri.sampler_options = &run.sampler;
  ri.data_path = args.data_path;
  ri.instrument = use_ifu ? "ifu" : "slitstep";
  ri.space = fit_space_name(space);
  ri.data_redshift = z_data;
  ri.model_redshift = z_model;
  ri.start_sources = sg.sources;
  ri.notes = run_notes;
  ri.products = products;
  ri.cube_noise = cube_noise_report;
  ri.surrogate = surrogate_report;
  if (ss_op)
    for (LineId l : ss_op->render_options().lines)
      ri.lines.emplace_back(emission_lines()[static_cast<std::size_t>(l)].name);
  JsonValue report = fit_report_json(ri);
  report.set("total_wall_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  write_text_atomic((out / "fit.json").string(), report.dump() + "\n");

  // ---- summary
  std::printf("fit: %s (%s)\n", fit_status_name(fit.status), fit.reason.c_str());
  std::printf("chi2 = %.6g, ndof = %ld, %ld model evaluations, %.2f s\n", fit.chi2, fit.ndof, fit.n_model_evaluations,
              fit.wall_s);
  for (const auto& p : fit.params) {
    if (p.fixed) continue;
    std::printf("  %-22s %14.6g +- %-10.3g (start %.6g)\n", p.name.c_str(), p.value, p.err, p.start);
  }
  for (const auto& d : fit.derived) std::printf("  %-22s %14.6g +- %-10.3g\n", d.name.c_str(), d.value, d.err);
  if (sample)
    std::printf("sampler: %s (%s); max R-hat %.3f, min ESS %.0f\n",
                sample->status == SamplerStatus::kOk ? "ok" : sample->status == SamplerStatus::kNotConverged
                                                                   ? "not converged"
                                                                   : "failed",
                sample->reason.c_str(), sample->max_rhat, sample->min_ess);
  for (const auto& n : run_notes) std::printf("note: %s\n", n.c_str());
  for (const auto& n : fit.notes) std::printf("note: %s\n", n.c_str());
  std::printf("wrote %s/fit.json, model.fits, residual.fits%s\n", args.out_dir.c_str(),
              sample && !sample->chain.empty() ? ", chain.fits" : "");
  return 0;
}

}  // namespace slitstep::app
