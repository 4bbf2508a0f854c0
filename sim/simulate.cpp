#include "sim/simulate.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/cosmology.hpp"
#include "core/lines.hpp"
#include "core/rng.hpp"
#include "core/text_io.hpp"
#include "core/version.hpp"
#include "instruments/detector.hpp"
#include "instruments/disperser.hpp"
#include "instruments/exposure_io.hpp"
#include "instruments/psf.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// "ReconstructOptions.<field> = <value>: <rule>" -> (field, rule)
std::pair<std::string, std::string> split_message(const std::string& m, const std::string& prefix) {
  if (m.rfind(prefix, 0) != 0) return {"", m};
  const auto eq = m.find(" = ");
  const auto colon = m.find(": ", eq == std::string::npos ? 0 : eq);
  if (eq == std::string::npos || colon == std::string::npos) return {"", m};
  return {m.substr(prefix.size(), eq - prefix.size()), m.substr(colon + 2)};
}

double red_end_um(const NirspecConfig& ins) {
  const Band band = grating_filter_band(ins.disperser.grating, ins.disperser.filter);
  double hi = band.hi_um;
  if (ins.detector.red_limit) hi = std::min(hi, red_limit_um(ins.slitlet.quadrant, ins.slitlet.shutter_i));
  return hi;
}

// Observed Halpha/[NII] centres inside the band? (the refusal rule of read_simulation_config)
bool any_nii_halpha_in_band(double redshift, const Band& band) {
  for (LineId id : {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584}) {
    const double l = line(id).rest_A * (1.0 + redshift) * 1e-4;
    if (l >= band.lo_um && l <= band.hi_um) return true;
  }
  return false;
}

std::vector<LineCoverage> line_coverage(const GalaxyModel& model, const WavelengthGrid& grid,
                                        const RenderSummary& summary, const NirspecConfig& ins) {
  std::vector<LineCoverage> out;
  const Band band = grating_filter_band(ins.disperser.grating, ins.disperser.filter);
  const double hi = red_end_um(ins);
  const ChipGap gap = chip_gap(ins.detector, ins.slitlet.quadrant, ins.slitlet.shutter_i);
  for (int k = 0; k < kNumLines; ++k) {
    if (!summary.rendered[k] || summary.line_window[k] < 0) continue;
    const auto& w = grid.windows().at(static_cast<std::size_t>(summary.line_window[k]));
    LineCoverage c;
    c.line = static_cast<LineId>(k);
    c.observed_um = model.observed_wavelength_um(c.line, 0.0);
    // the line's own window: its centre +- the render half-width (merged windows are wider)
    const double hw = summary.window_half_width_kms / 299792.458;
    c.window_lo_um = std::max(w.lower_edge_um(), c.observed_um * (1.0 - hw));
    c.window_hi_um = std::min(w.upper_edge_um(), c.observed_um * (1.0 + hw));
    const double len = c.window_hi_um - c.window_lo_um;
    const double in = std::max(0.0, std::min(c.window_hi_um, hi) - std::max(c.window_lo_um, band.lo_um));
    c.fraction_in_band = len > 0.0 ? in / len : 0.0;
    c.in_chip_gap = gap.enabled && c.observed_um >= gap.lo_um && c.observed_um <= gap.hi_um;
    out.push_back(c);
  }
  return out;
}

std::string pattern_text(const PatternConfig& p) {
  return std::to_string(p.steps_x_arcsec.size()) + "x" + std::to_string(p.dithers_y_arcsec.size()) + " " + p.order;
}

SimulationResult start_result(const SimulationConfig& config, const SimulateOptions& options) {
  SimulationResult res;
  res.config = config;
  res.seed = options.seed ? *options.seed : config.scene.seed;
  res.noiseless = options.noiseless || config.noise.noiseless;
  res.grating = config.instrument.disperser.grating;
  res.filter = config.instrument.disperser.filter;
  const Band band = grating_filter_band(res.grating, res.filter);
  res.band_lo_um = band.lo_um;
  res.band_hi_um = band.hi_um;
  res.config.scene.seed = res.seed;
  res.config.noise.noiseless = res.noiseless;
  return res;
}

// observe -> noise -> reconstruct of a sky cube, into res (res.config, seed, noiseless set).
void run_instrument_chain(const Cube& sky, const SimulateOptions& options, SimulationResult& res) {
  const int threads = options.threads;
  auto t0 = Clock::now();
  // 2. instrument + observe
  t0 = Clock::now();
  const NirspecInstrument ins(res.config.instrument, sky.spatial, sky.spectral);
  res.timings.instrument_s = seconds_since(t0);
  t0 = Clock::now();
  ObserveOptions oopt;
  oopt.threads = threads;
  oopt.pointings = options.pointings;
  res.exposures = observe(ins, sky, oopt);
  res.timings.observe_s = seconds_since(t0);

  // 3. noise, in batches (counts of all 63 exposures at once would need ~120 MB)
  t0 = Clock::now();
  NoiseModel nm = res.config.noise;
  nm.noiseless = res.noiseless;
  nm.threads = threads;
  const Rng rng(res.seed);
  const std::size_t nexp = res.exposures.size();
  const int nthr = threads > 0 ? threads : omp_get_max_threads();
  const std::size_t batch = static_cast<std::size_t>(std::max(4, 2 * nthr));
  for (std::size_t first = 0; first < nexp && res.noise.status.ok(); first += batch) {
    const std::size_t last = std::min(nexp, first + batch);
    std::vector<Exposure> part;
    part.reserve(last - first);
    for (std::size_t q = first; q < last; ++q) part.push_back(std::move(res.exposures[q]));
    std::vector<ExposureCounts> counts(part.size());
    const long np = static_cast<long>(part.size());
#pragma omp parallel for num_threads(nthr) schedule(dynamic, 1)
    for (long q = 0; q < np; ++q)
      counts[static_cast<std::size_t>(q)] = to_counts(expected_electrons(ins, part[static_cast<std::size_t>(q)]));
    const NoiseSummary ns = apply_noise(part, counts, nm, rng);
    res.noise.n_pixels += ns.n_pixels;
    if (!ns.status.ok()) res.noise.status = ns.status;
    for (std::size_t q = first; q < last; ++q) res.exposures[q] = std::move(part[q - first]);
  }
  if (res.noiseless)
    for (auto& e : res.exposures) e.seed = 0;
  res.timings.noise_s = seconds_since(t0);

  // 4. reconstruct
  t0 = Clock::now();
  ReconstructOptions rec = res.config.reconstruct;
  rec.threads = threads;
  res.reconstruct = reconstruct(res.exposures, res.config.instrument.slitlet, res.config.instrument.pattern,
                                res.config.scene.sky, rec);
  res.timings.reconstruct_s = seconds_since(t0);

  if (!res.noise.status.ok()) res.status = Status::Error(res.noise.status.code, "noise: " + res.noise.status.message);
  else if (!res.reconstruct.status.ok())
    res.status = Status::Error(res.reconstruct.status.code, "reconstruct: " + res.reconstruct.status.message);
  if (!res.noise.status.ok()) res.status = Status::Error(res.noise.status.code, "noise: " + res.noise.status.message);
  else if (!res.reconstruct.status.ok())
    res.status = Status::Error(res.reconstruct.status.code, "reconstruct: " + res.reconstruct.status.message);
  // render's kOutOfRange (calibration clamps) is a remark on the model, not a failure: it is in
  // res.render.status and in the notes.
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void SimulationConfig::validate() const {
  scene.galaxy.validate();
  scene.render.validate();
  instrument.validate();
  reconstruct.validate();
  noise.validate();
}

FieldOfView required_field_of_view(const NirspecConfig& ins, double pixel_arcsec) {
  const auto& sl = ins.slitlet;
  const auto& p = ins.pattern;
  double max_step = 0.0, max_dither = 0.0;
  for (double s : p.steps_x_arcsec) max_step = std::max(max_step, std::abs(s));
  for (double d : p.dithers_y_arcsec) max_dither = std::max(max_dither, std::abs(d));
  const double half_height = 0.5 * (sl.n_shutters - 1) * sl.shutter.pitch_y_arcsec + 0.5 * sl.shutter.open_y_arcsec;
  double margin = 0.0;
  const auto& psf = ins.psf;
  if (psf.model == "gaussian") {
    const Band band = grating_filter_band(ins.disperser.grating, ins.disperser.filter);
    margin = std::min(psf.radius_arcsec, 4.0 * psf_fwhm_arcsec(psf, band.hi_um));
  } else if (psf.model != "none") {
    margin = psf.radius_arcsec;
  }
  auto round_up = [pixel_arcsec](double half) {
    const double n = std::ceil(half / pixel_arcsec - 1e-9);  // pixels per half
    return 2.0 * n * pixel_arcsec;
  };
  FieldOfView f;
  f.x_arcsec = round_up(max_step + 0.5 * sl.shutter.open_x_arcsec + margin);
  f.y_arcsec = round_up(max_dither + half_height + margin);
  return f;
}

SimulationConfig read_simulation_config(const Config& config) {
  SimulationConfig sc;
  sc.scene = read_scene_config(config);
  const Section root = config.root();
  sc.instrument = read_nirspec_config(root);

  // [render]: derive the field of view unless the user set it
  {
    const Section r = root.table("render");
    const FieldOfView f = required_field_of_view(sc.instrument, sc.scene.render.pixel_arcsec);
    const bool user_x = r.has("fov_x_arcsec"), user_y = r.has("fov_y_arcsec");
    if (!user_x) sc.scene.render.fov_x_arcsec = f.x_arcsec;
    if (!user_y) sc.scene.render.fov_y_arcsec = f.y_arcsec;
    sc.fov_derived = !user_x && !user_y;
  }

  // [reconstruct]
  {
    const Section s = root.table("reconstruct");
    auto& o = sc.reconstruct;
    s.get("combine", o.combine);
    s.get("clip_sigma", o.clip_sigma);
    s.get("clip_iterations", o.clip_iterations);
    s.get("fine_factor", o.fine_factor);
    s.get("fine_grid", o.fine_grid);
    s.get("drop_fraction", o.drop_fraction);
    s.get("spaxel_resample", o.spaxel_resample);
    s.get("spaxel_arcsec", o.spaxel_arcsec);
    s.get("min_dithers", o.min_dithers);
    s.get("low_coverage_dithers", o.low_coverage_dithers);
    s.get("min_row_open_fraction", o.min_row_open_fraction);
    s.get("wavelength_tolerance_px", o.wavelength_tolerance_px);
    try {
      o.validate();
    } catch (const InvalidOptions& e) {
      const auto [field, rule] = split_message(e.what(), "ReconstructOptions.");
      s.fail(field.empty() ? "combine" : field, rule);
    }
  }
  // [noise]
  {
    const Section s = root.table("noise");
    auto& n = sc.noise;
    s.get("source_poisson", n.source_poisson);
    s.get("background_poisson", n.background_poisson);
    s.get("read_noise", n.read_noise);
    s.get("noiseless", n.noiseless);
  }

  // The model must put Halpha or [NII] on the detector.
  {
    const Band band = grating_filter_band(sc.instrument.disperser.grating, sc.instrument.disperser.filter);
    if (!any_nii_halpha_in_band(sc.scene.galaxy.redshift, band)) {
      const double l = line(LineId::kHalpha).rest_A * (1.0 + sc.scene.galaxy.redshift) * 1e-4;
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "puts Halpha at %.3f um and [NII] 6548/6584 at %.3f/%.3f um, all outside the %s/%s band "
                    "%.2f-%.2f um",
                    l, line(LineId::kNII6548).rest_A * (1.0 + sc.scene.galaxy.redshift) * 1e-4,
                    line(LineId::kNII6584).rest_A * (1.0 + sc.scene.galaxy.redshift) * 1e-4,
                    sc.instrument.disperser.grating.c_str(), sc.instrument.disperser.filter.c_str(), band.lo_um,
                    band.hi_um);
      root.table("galaxy").fail("redshift", buf);
    }
  }
  return sc;
}

ExposureCounts to_counts(const ExposureElectrons& el) {
  ExposureCounts c;
  const std::size_t n = el.source_e.size();
  c.source_e.resize(n);
  c.background_e.resize(n);
  for (std::size_t p = 0; p < n; ++p) {
    c.source_e[p] = std::max(0.0, el.source_e[p]);
    c.background_e[p] = std::max(0.0, el.background_e[p] + el.dark_e[p]);
  }
  c.to_sb = el.to_sb;
  c.read_noise_e = el.read_noise_e;
  return c;
}

SimulationResult simulate(const SimulationConfig& config, const SimulateOptions& options) {
  const auto t_start = Clock::now();
  config.validate();
  SimulationResult res = start_result(config, options);
  const int threads = options.threads;

  // 1. render
  auto t0 = Clock::now();
  const GalaxyModel model(config.scene.galaxy, Cosmology(config.scene.cosmology));
  RenderOptions ropt = config.scene.render;
  if (threads > 0) ropt.threads = threads;
  RenderResult rendered = render(model, ropt, config.scene.sky);
  res.timings.render_s = seconds_since(t0);
  res.render = static_cast<const RenderSummary&>(rendered);
  res.lines = line_coverage(model, rendered.cube.spectral, res.render, config.instrument);
  for (const auto& c : res.lines) {
    const char* name = line(c.line).name.data();
    char buf[256];
    if (c.fraction_in_band <= 0.0) {
      std::snprintf(buf, sizeof buf, "%s at %.4f um lies outside the observed band %.3f-%.3f um (not observed)", name,
                    c.observed_um, res.band_lo_um, red_end_um(config.instrument));
      res.notes.push_back(buf);
    } else if (c.fraction_in_band < 1.0) {
      std::snprintf(buf, sizeof buf, "%s at %.4f um: only %.0f%% of its window lies inside the observed band %.3f-%.3f um",
                    name, c.observed_um, 100.0 * c.fraction_in_band, res.band_lo_um, red_end_um(config.instrument));
      res.notes.push_back(buf);
    }
    if (c.in_chip_gap) {
      std::snprintf(buf, sizeof buf, "%s at %.4f um falls in the NRS1/NRS2 chip gap (flagged, no data)", name,
                    c.observed_um);
      res.notes.push_back(buf);
    }
  }
  if (!rendered.status.ok()) res.notes.push_back("render: " + rendered.status.message);
  run_instrument_chain(rendered.cube, options, res);
  if (options.keep_sky) res.sky = std::move(rendered.cube);
  res.timings.total_s = seconds_since(t_start);
  return res;
}

SimulationResult observe_sky(const Cube& sky, const SimulationConfig& config, const SimulateOptions& options) {
  const auto t_start = Clock::now();
  config.validate();
  SimulationResult res = start_result(config, options);
  run_instrument_chain(sky, options, res);
  if (options.keep_sky) res.sky = sky;
  res.timings.total_s = seconds_since(t_start);
  return res;
}


SpaxelLineFlux spaxel_line_flux(const Cube& c, int i, int j, double line_lo, double line_hi, double cont_lo,
                                double cont_hi) {
  SpaxelLineFlux r;
  if (i < 0 || j < 0 || i >= c.nx() || j >= c.ny()) return r;
  const bool have_err = c.err.size() == c.sci.size();
  auto good = [&](std::size_t p) {
    return (c.dq.empty() || (c.dq[p] & kDqDoNotUse) == 0) && std::isfinite(c.sci[p]) &&
           (!have_err || std::isfinite(c.err[p]));
  };
  double cs = 0.0, cv = 0.0;
  int nc = 0;
  for (std::size_t k = 0; k < c.nl(); ++k) {
    const double l = c.spectral.wavelength_um(k);
    if (l < cont_lo || l > cont_hi) continue;
    const std::size_t p = c.index(i, j, k);
    if (!good(p)) continue;
    cs += c.sci[p];
    if (have_err) cv += c.err[p] * c.err[p];
    ++nc;
  }
  if (nc == 0) return r;
  r.continuum_sb = cs / nc;
  const double cont_var = cv / (static_cast<double>(nc) * nc);
  double f = 0.0, v = 0.0, wsum = 0.0;
  for (std::size_t k = 0; k < c.nl(); ++k) {
    const double l = c.spectral.wavelength_um(k);
    if (l < line_lo || l > line_hi) continue;
    const std::size_t p = c.index(i, j, k);
    if (!good(p)) continue;
    const double w = c.spectral.width_um(k);
    f += (c.sci[p] - r.continuum_sb) * w;
    if (have_err) v += c.err[p] * c.err[p] * w * w;
    wsum += w;
    ++r.n_line_channels;
  }
  if (r.n_line_channels == 0) return r;
  v += wsum * wsum * cont_var;
  const double area = c.spatial.pixel_area_arcsec2();
  r.flux_cgs = f * area;
  r.err_cgs = std::sqrt(v) * area;
  r.ok = true;
  return r;
}

JsonValue observation_json(const SimulationResult& r) {
  const auto& ins = r.config.instrument;
  JsonValue o = JsonValue::object();
  o.set("grating", r.grating).set("filter", r.filter);
  o.set("band_lo_um", r.band_lo_um).set("band_hi_um", r.band_hi_um);
  JsonValue sl = JsonValue::object();
  sl.set("quadrant", ins.slitlet.quadrant).set("shutter_i", ins.slitlet.shutter_i);
  sl.set("shutter_j", ins.slitlet.shutter_j).set("n_shutters", ins.slitlet.n_shutters);
  sl.set("open_x_arcsec", ins.slitlet.shutter.open_x_arcsec).set("open_y_arcsec", ins.slitlet.shutter.open_y_arcsec);
  sl.set("pitch_x_arcsec", ins.slitlet.shutter.pitch_x_arcsec).set("pitch_y_arcsec", ins.slitlet.shutter.pitch_y_arcsec);
  o.set("slitlet", std::move(sl));
  JsonValue pat = JsonValue::object();
  JsonValue steps = JsonValue::array(), dith = JsonValue::array();
  for (double s : ins.pattern.steps_x_arcsec) steps.push(s);
  for (double d : ins.pattern.dithers_y_arcsec) dith.push(d);
  pat.set("steps_x_arcsec", std::move(steps)).set("dithers_y_arcsec", std::move(dith));
  pat.set("order", ins.pattern.order).set("exptime_s", ins.pattern.exptime_s);
  pat.set("n_pointings", static_cast<int>(r.exposures.size()));
  pat.set("total_exptime_s", ins.pattern.exptime_s * static_cast<double>(r.exposures.size()));
  o.set("pattern", std::move(pat));
  JsonValue det = JsonValue::object();
  det.set("throughput_peak", ins.detector.throughput_peak).set("read_noise_e", ins.detector.read_noise_e);
  det.set("dark_e_per_s", ins.detector.dark_e_per_s).set("background_mjy_sr", ins.detector.background_mjy_sr);
  det.set("psf_model", ins.psf.model).set("psf_fwhm_arcsec", ins.psf.fwhm_arcsec);
  det.set("dispersion_table", ins.disperser.dispersion_table.empty() ? std::string("built-in")
                                                                      : ins.disperser.dispersion_table);
  o.set("instrument", std::move(det));
  JsonValue noise = JsonValue::object();
  noise.set("noiseless", r.noiseless).set("seed", static_cast<unsigned long long>(r.seed));
  noise.set("source_poisson", r.config.noise.source_poisson).set("background_poisson", r.config.noise.background_poisson);
  noise.set("read_noise", r.config.noise.read_noise);
  o.set("noise", std::move(noise));
  JsonValue rec = JsonValue::object();
  rec.set("combine", r.config.reconstruct.combine).set("spaxel_arcsec", r.config.reconstruct.spaxel_arcsec);
  rec.set("fine_factor", r.config.reconstruct.fine_factor);
  o.set("reconstruct", std::move(rec));
  JsonValue render = JsonValue::object();
  render.set("fov_x_arcsec", r.config.scene.render.fov_x_arcsec).set("fov_y_arcsec", r.config.scene.render.fov_y_arcsec);
  render.set("fov_derived", r.config.fov_derived);
  o.set("render", std::move(render));
  JsonValue lines = JsonValue::array();
  for (const auto& c : r.lines) {
    JsonValue l = JsonValue::object();
    l.set("line", std::string(line(c.line).name)).set("observed_um", c.observed_um);
    l.set("fraction_in_band", c.fraction_in_band).set("in_chip_gap", c.in_chip_gap);
    lines.push(std::move(l));
  }
  o.set("lines", std::move(lines));
  JsonValue notes = JsonValue::array();
  for (const auto& n : r.notes) notes.push(n);
  o.set("notes", std::move(notes));
  return o;
}

void write_simulation_products(const SimulationResult& r, const std::string& dir, const ProductMeta& meta_in,
                               const SimulationWriteOptions& write) {
  if (r.reconstruct.cube.size() == 0)
    throw InputError("write_simulation_products: no reconstructed cube (" + r.status.message + ")");
  ensure_output_dir(dir);
  const std::filesystem::path d(dir);
  const auto& ins = r.config.instrument;
  ProductMeta meta = meta_in;
  meta.seed = r.noiseless ? 0 : r.seed;
  if (meta.software_version.empty()) meta.software_version = kVersion;

  if (write.exposures) {
    const std::string ed = (d / "exposures").string();
    ensure_output_dir(ed);
    ExposureFileMeta em;
    em.slitlet = ins.slitlet;
    em.grating = r.grating;
    em.filter = r.filter;
    em.software_version = meta.software_version;
    em.date = meta.date;
    for (const auto& e : r.exposures) write_exposure((std::filesystem::path(ed) / exposure_file_name(e.pointing)).string(), e, em);
  }

  ProductMeta cm = meta;
  cm.product_type = "CUBE";
  auto card = [&cm](const char* key, std::variant<std::string, double, long, bool> v, const char* comment) {
    cm.extra_cards.push_back(HeaderCard{key, std::move(v), comment});
  };
  card("TELESCOP", std::string("JWST"), "simulated");
  card("INSTRUME", std::string("NIRSPEC"), "simulated");
  card("GRATING", r.grating, "disperser");
  card("FILTER", r.filter, "filter");
  card("QUADRANT", static_cast<long>(ins.slitlet.quadrant), "MSA quadrant of the slitlet");
  card("SHUTTRI", static_cast<long>(ins.slitlet.shutter_i), "shutter index along dispersion (1-based)");
  card("SHUTTRJ", static_cast<long>(ins.slitlet.shutter_j), "middle shutter index along the slit (1-based)");
  card("NSHUTTER", static_cast<long>(ins.slitlet.n_shutters), "open shutters in the slitlet");
  card("PATTERN", pattern_text(ins.pattern), "steps x dithers, order");
  card("NSTEPS", static_cast<long>(ins.pattern.steps_x_arcsec.size()), "steps along dispersion");
  card("NDITHERS", static_cast<long>(ins.pattern.dithers_y_arcsec.size()), "dithers along the slit");
  card("NPOINT", static_cast<long>(r.exposures.size()), "pointings observed");
  card("EXPTIME", ins.pattern.exptime_s, "[s] exposure time per pointing");
  card("TOTEXPT", ins.pattern.exptime_s * static_cast<double>(r.exposures.size()), "[s] total exposure time");
  card("COMBINE", r.config.reconstruct.combine, "dither combination");
  card("NOISELES", r.noiseless, "T: no noise drawn; ERR = the noise that would be");
  write_cube(r.reconstruct.cube, (d / "cube.fits").string(), cm);

  if (write.sky_cube) {
    if (!r.sky) throw InputError("write_simulation_products: sky cube requested but not kept (SimulateOptions::keep_sky)");
    ProductMeta sm = meta;
    sm.product_type = "SKYCUBE";
    sm.seed = r.seed;
    write_cube(*r.sky, (d / "sky.fits").string(), sm);
  }

  const GalaxyModel model(r.config.scene.galaxy, Cosmology(r.config.scene.cosmology));
  JsonValue truth = truth_json(r.config.scene, model);
  truth.set("observation", observation_json(r));
  write_text_atomic((d / "truth.json").string(), truth.dump());
}

}  // namespace slitstep
