#include "fit/slitstep_operator.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <optional>

#include "core/cosmology.hpp"
#include "instruments/observe.hpp"
#include "instruments/reconstruct.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {
namespace {

// Stage timer: the calling thread's CPU time when the evaluation runs on one thread (robust to a
// loaded machine), wall time otherwise.
struct Clock {
  using time_point = double;
  static inline thread_local bool cpu = false;
  static double now() {
    if (cpu) {
      timespec ts{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
};
double since(Clock::time_point t) { return Clock::now() - t; }

bool same_grid(const SpatialGrid& a, const SpatialGrid& b) {
  const double tol = 1e-9;
  return a.nx == b.nx && a.ny == b.ny && std::abs(a.pixel_arcsec - b.pixel_arcsec) <= tol &&
         std::abs(a.x0_arcsec - b.x0_arcsec) <= tol && std::abs(a.y0_arcsec - b.y0_arcsec) <= tol;
}

std::string grid_text(const SpatialGrid& g) {
  return std::to_string(g.nx) + " x " + std::to_string(g.ny) + " of " + format_value(g.pixel_arcsec) + "\" from (" +
         format_value(g.x0_arcsec) + ", " + format_value(g.y0_arcsec) + ")";
}

}  // namespace

struct SlitstepOperator::Ws : ModelOperator::Workspace {
  Cube sky, conv;
  RenderWorkspace render_ws;  // light maps / line-ratio table reused while their inputs are unchanged
  std::vector<double> psf_scratch;  // x pass of the separable PSF
  std::vector<int> sky_ranges;      // nonzero channel range of every convolved sky pixel (from the PSF)
  std::vector<Exposure> narrow;  // compact exposures (the modelled columns) written by observe
  StageTimes times;
};

void SlitstepOperatorOptions::validate() const {
  if (window_half_width_kms && !(*window_half_width_kms > 0.0 && *window_half_width_kms <= 30000.0))
    throw InvalidOptions("SlitstepOperatorOptions.window_half_width_kms = " + format_value(*window_half_width_kms) +
                         ": must be in (0, 30000]");
  if (!(window_extra_kms >= 0.0 && window_extra_kms <= 20000.0))
    throw InvalidOptions("SlitstepOperatorOptions.window_extra_kms = " + format_value(window_extra_kms) +
                         ": must be in [0, 20000]");
  if (!(psf_truncate_sigma == 0.0 || (psf_truncate_sigma >= 3.0 && psf_truncate_sigma <= 12.0)))
    throw InvalidOptions("SlitstepOperatorOptions.psf_truncate_sigma = " + format_value(psf_truncate_sigma) +
                         ": must be 0 (exact kernel) or in [3, 12]");
  if (!(fold_drop_relative >= 0.0 && fold_drop_relative <= 1e-4))
    throw InvalidOptions("SlitstepOperatorOptions.fold_drop_relative = " + format_value(fold_drop_relative) +
                         ": must be in [0, 1e-4]");
  if (!(support_sigma >= 5.0 && support_sigma <= 12.0))
    throw InvalidOptions("SlitstepOperatorOptions.support_sigma = " + format_value(support_sigma) +
                         ": must be in [5, 12]");
  if (render_pixel_arcsec && !(*render_pixel_arcsec > 0.0 && *render_pixel_arcsec <= 0.1))
    throw InvalidOptions("SlitstepOperatorOptions.render_pixel_arcsec = " + format_value(*render_pixel_arcsec) +
                         ": must be in (0, 0.1] arcsec");
  if (!(render_channel_kms == 0.0 || (render_channel_kms >= 1.0 && render_channel_kms <= 100.0)))
    throw InvalidOptions("SlitstepOperatorOptions.render_channel_kms = " + format_value(render_channel_kms) +
                         ": must be 0 (the configuration's channels) or in [1, 100] km/s");
  if (edge_margin_columns < 0 || edge_margin_columns > 200)
    throw InvalidOptions("SlitstepOperatorOptions.edge_margin_columns = " + std::to_string(edge_margin_columns) +
                         ": must be in [0, 200]");
}

SlitstepOperator::SlitstepOperator(const SimulationConfig& config, const SlitstepOperatorOptions& options)
    : config_(config), options_(options) {
  config_.validate();
  options_.validate();
  render_ = config_.scene.render;
  if (!options_.lines.empty()) render_.lines = options_.lines;
  if (render_.lines.empty()) render_.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  render_.continuum_windows = options_.continuum_windows;
  if (options_.render_pixel_arcsec) {
    // the same field, on the coarser pixels (at least what the pointing pattern needs)
    render_.pixel_arcsec = *options_.render_pixel_arcsec;
    const FieldOfView f = required_field_of_view(config_.instrument, render_.pixel_arcsec);
    render_.fov_x_arcsec = std::max(render_.fov_x_arcsec, f.x_arcsec);
    render_.fov_y_arcsec = std::max(render_.fov_y_arcsec, f.y_arcsec);
  }
  render_.channel_kms = std::max(render_.channel_kms, options_.render_channel_kms);
  const GalaxyModel base(config_.scene.galaxy, Cosmology(config_.scene.cosmology));
  if (options_.window_half_width_kms) {
    render_.window_half_width_kms = *options_.window_half_width_kms;
  } else {
    // the render's own half-width rule for the base galaxy (one cheap render of one line)
    RenderOptions tmp = render_;
    tmp.window_half_width_kms.reset();
    tmp.lines = {LineId::kHalpha};
    tmp.continuum_windows = false;
    const RenderResult rr = render(base, tmp, config_.scene.sky);
    render_.window_half_width_kms = rr.window_half_width_kms + options_.window_extra_kms;
  }
  render_.validate();
  sky_spatial_ = render_spatial_grid(render_);
  sky_spectral_ = render_wavelength_grid(base, render_);
  NirspecNumerics numerics;
  numerics.support_sigma = options_.support_sigma;
  if (!options_.match_channel_moments) numerics.channel_reference_fraction = 1.0;  // each channel's own box
  instrument_ = std::make_unique<NirspecInstrument>(config_.instrument, sky_spatial_, sky_spectral_, numerics);

  // Detector columns: live, and +- edge_margin_columns inside one render window.
  const auto& lam = instrument_->column_wavelengths_um();
  const int nu = instrument_->nu(), m = options_.edge_margin_columns;
  for (int u = m; u + m < nu; ++u) {
    if (!instrument_->column_live(u)) continue;
    bool inside = false;
    for (const auto& w : sky_spectral_.windows())
      if (lam[static_cast<std::size_t>(u - m)] >= w.lower_edge_um() && lam[static_cast<std::size_t>(u + m)] <= w.upper_edge_um())
        inside = true;
    if (inside) {
      columns_.push_back(u);
      column_um_.push_back(lam[static_cast<std::size_t>(u)]);
    }
  }
  if (columns_.empty())
    throw InvalidOptions("SlitstepOperator: no live detector column lies inside the render windows (" +
                         format_value(sky_spectral_.min_um()) + "-" + format_value(sky_spectral_.max_um()) +
                         " um): the lines fall outside the band or in the chip gap");
  const int nv = instrument_->nv();
  const std::size_t nc = columns_.size();
  column_dq_.resize(static_cast<std::size_t>(nv) * nc);
  for (int v = 0; v < nv; ++v)
    for (std::size_t c = 0; c < nc; ++c)
      column_dq_[static_cast<std::size_t>(v) * nc + c] =
          instrument_->dq_template()[static_cast<std::size_t>(v) * nu + static_cast<std::size_t>(columns_[c])];

  // The y factor of a separable PSF folded into the detector-row responses: the PSF is then one
  // x pass, and observe sums the x-convolved sky with the folded rows.
  const bool separable = instrument_->psf().enabled() && options_.separable_psf && instrument_->psf().separable();
  if (separable && options_.fold_psf_rows) {
    std::vector<std::vector<double>> taps;
    for (std::size_t ch = 0; ch < instrument_->num_chunks(); ++ch)
      taps.push_back(instrument_->psf().separable_factor(ch, options_.psf_truncate_sigma));
    folded_rows_ = std::make_unique<RowResponses>(fold_psf_rows(*instrument_, taps, options_.fold_drop_relative));
  }
  // Sky columns / rows observe reads (the PSF output is needed there only).
  psf_columns_.assign(static_cast<std::size_t>(sky_spatial_.nx), 0);
  psf_rows_.assign(static_cast<std::size_t>(sky_spatial_.ny), 0);
  for (int p = 0; p < static_cast<int>(instrument_->pointings().size()); ++p) {
    for (const auto& co : instrument_->columns(instrument_->step_slot(p))) psf_columns_[static_cast<std::size_t>(co.i)] = 1;
    const int d = instrument_->dither_slot(p);
    for (std::size_t ch = 0; ch < instrument_->num_chunks(); ++ch)
      for (const auto& rp : folded_rows_ ? folded_rows_->profiles[static_cast<std::size_t>(d) * instrument_->num_chunks() + ch]
                                         : instrument_->row_profiles(d, ch))
        psf_rows_[static_cast<std::size_t>(rp.j)] = 1;
  }

  // Folded rows: the PSF's x factor fused into the render (the same taps, chunks and masks as
  // apply_separable's x pass, the same bits).
  if (folded_rows_) {
    const PsfConvolver& psf = instrument_->psf();
    row_filter_ = std::make_unique<RowFilter>();
    for (std::size_t ch = 0; ch < psf.num_chunks(); ++ch) {
      row_filter_->taps.push_back(psf.separable_factor(ch, options_.psf_truncate_sigma));
      row_filter_->chunk_first.push_back(psf.chunk_first(ch));
      row_filter_->chunk_end.push_back(psf.chunk_end(ch));
    }
    row_filter_->columns_needed = psf_columns_;
    row_filter_->rows_needed = psf_rows_;
  }

  // observe's bookkeeping for these columns and rows, once (read-only, shared by the workspaces)
  {
    ObserveOptions po;
    po.columns = columns_;
    po.rows = folded_rows_.get();
    observe_plan_ = std::make_unique<ObservePlan>(*instrument_, po);
  }

  // One evaluation of the base galaxy fixes the output grid and what the chain can predict.
  auto ws = make_workspace();
  Ws& w = static_cast<Ws&>(*ws);
  if (options_.space == SlitstepOperatorOptions::Space::kCube) {
    Cube cube;
    const Status st = run(config_.scene.galaxy, w, nullptr, &cube);
    if (!st.ok()) throw InvalidOptions("SlitstepOperator: the base galaxy cannot be evaluated: " + st.message);
    cube_spatial_ = cube.spatial;
    size_ = cube_spatial_.size() * nc;
    predictable_.assign(size_, 0);
    for (int j = 0; j < cube_spatial_.ny; ++j)
      for (int i = 0; i < cube_spatial_.nx; ++i)
        for (std::size_t c = 0; c < nc; ++c)
          predictable_[(static_cast<std::size_t>(j) * cube_spatial_.nx + i) * nc + c] =
              std::isfinite(cube.sci[cube.index(i, j, c)]) ? 1 : 0;
  } else {
    const std::size_t np = instrument_->pointings().size();
    size_ = np * static_cast<std::size_t>(nv) * nc;
    predictable_.assign(size_, 0);
    for (std::size_t q = 0; q < np; ++q)
      for (std::size_t k = 0; k < static_cast<std::size_t>(nv) * nc; ++k)
        predictable_[q * static_cast<std::size_t>(nv) * nc + k] = (column_dq_[k] & kDqDoNotUse) ? 0 : 1;
  }
}

SlitstepOperator::~SlitstepOperator() = default;

RenderOptions SlitstepOperator::data_render_options() const {
  RenderOptions r = config_.scene.render;
  r.window_half_width_kms = render_.window_half_width_kms;
  r.lines = render_.lines;
  r.continuum_windows = render_.continuum_windows;
  return r;
}

std::unique_ptr<ModelOperator::Workspace> SlitstepOperator::make_workspace() const {
  auto w = std::make_unique<Ws>();
  w->sky = Cube::zeros(sky_spatial_, sky_spectral_, config_.scene.sky, /*quality_planes=*/false);
  w->sky.bunit = kSurfaceBrightnessBunit;
  if (instrument_->psf().enabled()) w->conv = w->sky;
  if (row_filter_) {  // the render writes the x-filtered sky straight into conv: no unfiltered cube
    w->sky.sci.clear();
    w->sky.sci.shrink_to_fit();
  }
  const auto& pts = instrument_->pointings();
  const int nv = instrument_->nv();
  const int nc = static_cast<int>(columns_.size());
  w->narrow.resize(pts.size());
  for (std::size_t q = 0; q < pts.size(); ++q) {
    Exposure& e = w->narrow[q];
    e.resize(nv, nc);
    e.pointing = pts[q];
    e.y0_arcsec = instrument_->row_y0_arcsec();
    e.pixel_y_arcsec = instrument_->pixel_y_arcsec();
    e.wavelength_um = column_um_;
    e.dq = column_dq_;
    e.seed = 0;
  }
  return w;
}

Status SlitstepOperator::run(const GalaxyParams& params, Ws& w, double* out, Cube* cube_out) const {
  Clock::cpu = w.threads == 1;
  const auto t_all = Clock::now();
  auto t = Clock::now();
  std::optional<GalaxyModel> model;
  try {
    model.emplace(params, Cosmology(config_.scene.cosmology));
  } catch (const std::exception& e) {
    return Status::Error(StatusCode::kInvalidInput, e.what());
  }
  w.times.model_s += since(t);

  t = Clock::now();
  RenderOptions ro = render_;
  ro.threads = w.threads;
  try {
    // folded rows: render and the PSF's x pass fused row by row into w.conv (with its ranges)
    const RenderSummary rs = row_filter_ ? render_into(*model, ro, w.conv, w.render_ws, *row_filter_, &w.sky_ranges)
                                         : render_into(*model, ro, w.sky, w.render_ws);
    if (rs.truncated_profiles > 0)
      return Status::Error(StatusCode::kOutOfRange,
                           std::to_string(rs.truncated_profiles) + " line profiles are cut by the fixed render windows (" +
                               "half-width " + format_value(*render_.window_half_width_kms) +
                               " km/s): widen SlitstepOperatorOptions::window_half_width_kms");
  } catch (const std::exception& e) {
    return Status::Error(StatusCode::kInvalidInput, std::string("render: ") + e.what());
  }
  w.times.render_s += since(t);

  t = Clock::now();
  const bool psf = instrument_->psf().enabled();
  if (psf && !row_filter_) {
    if (options_.separable_psf && instrument_->psf().separable()) {  // = apply() to < 1e-12 of the peak (tests/test_psf.cpp)
      // only the sky pixels observe reads (columns / rows some shutter sees); the rest of w.conv
      // is never read
      instrument_->psf().apply_separable(w.sky.sci, w.conv.sci, w.psf_scratch, w.threads, options_.psf_truncate_sigma,
                                         psf_columns_, psf_rows_, /*y_pass=*/!folded_rows_, &w.sky_ranges);
    } else {
      instrument_->psf().apply(w.sky.sci, w.conv.sci, w.threads);
    }
  }
  w.times.psf_s += since(t);

  t = Clock::now();
  ObserveOptions oo;
  oo.threads = w.threads;
  oo.columns = columns_;  // compact exposures: only the modelled columns (bit-identical values)
  oo.rows = folded_rows_.get();  // the PSF's y factor, when folded (w.conv is then convolved along x only)
  oo.plan = observe_plan_.get();  // built for these columns and rows (the same results, less bookkeeping)
  if (psf && options_.separable_psf && instrument_->psf().separable()) oo.sky_ranges = &w.sky_ranges;
  try {
    if (psf) {
      observe_convolved_into(*instrument_, w.conv.sci, oo, w.narrow);  // convolved above, read in place
    } else {
      oo.apply_psf = false;
      observe_into(*instrument_, w.sky, oo, w.narrow);
    }
  } catch (const std::exception& e) {
    return Status::Error(StatusCode::kFailed, std::string("observe: ") + e.what());
  }
  w.times.observe_s += since(t);
  const std::size_t nc = columns_.size();
  const int nv = instrument_->nv();

  if (options_.space == SlitstepOperatorOptions::Space::kExposure) {
    t = Clock::now();
    if (out) {
      const std::size_t per = static_cast<std::size_t>(nv) * nc;
      for (std::size_t q = 0; q < w.narrow.size(); ++q)
        for (std::size_t k = 0; k < per; ++k) out[q * per + k] = predictable_[q * per + k] ? w.narrow[q].sci[k] : 0.0;
    }
    w.times.copy_s += since(t);
  } else {
    t = Clock::now();
    ReconstructOptions rec = config_.reconstruct;
    rec.threads = w.threads;
    ReconstructResult rr =
        reconstruct(w.narrow, config_.instrument.slitlet, config_.instrument.pattern, config_.scene.sky, rec);
    w.times.reconstruct_s += since(t);
    if (!rr.status.ok()) return Status::Error(rr.status.code, "reconstruct: " + rr.status.message);
    if (rr.cube.nl() != nc)
      return Status::Error(StatusCode::kFailed, "reconstruct returned " + std::to_string(rr.cube.nl()) +
                                                    " channels for " + std::to_string(nc) + " columns");
    t = Clock::now();
    if (out) {
      if (!same_grid(rr.cube.spatial, cube_spatial_))
        return Status::Error(StatusCode::kFailed, "reconstruct returned the grid " + grid_text(rr.cube.spatial) +
                                                      ", expected " + grid_text(cube_spatial_));
      // cube layout (j*nx + i)*nl + k equals the operator's layout with nl = n_columns
      const std::size_t n = size_;
      for (std::size_t k = 0; k < n; ++k) {
        const double v = rr.cube.sci[k];
        out[k] = (predictable_[k] && std::isfinite(v)) ? v : 0.0;
      }
    }
    if (cube_out) *cube_out = std::move(rr.cube);
    w.times.copy_s += since(t);
  }
  ++w.times.evaluations;
  w.times.total_s += since(t_all);
  return Status::Ok();
}

Status SlitstepOperator::evaluate(const GalaxyParams& params, double* out, Workspace& ws) const {
  Ws* w = dynamic_cast<Ws*>(&ws);
  if (!w) return Status::Error(StatusCode::kInvalidInput, "SlitstepOperator::evaluate: a workspace of another operator");
  try {
    return run(params, *w, out, nullptr);
  } catch (const std::exception& e) {
    return Status::Error(StatusCode::kFailed, e.what());
  }
}

bool SlitstepOperator::proportional_to(const std::string& name, const GalaxyParams& params) const {
  if (name != "halpha_flux_cgs") return false;
  for (const auto& c : params.clumps)
    if (c.halpha_flux_cgs != 0.0) return false;
  return !(params.agn.enabled && params.agn.halpha_flux_cgs != 0.0);
}

SlitstepOperator::StageTimes SlitstepOperator::stage_times(const Workspace& ws) {
  const Ws* w = dynamic_cast<const Ws*>(&ws);
  return w ? w->times : StageTimes{};
}

void SlitstepOperator::reset_stage_times(Workspace& ws) {
  if (Ws* w = dynamic_cast<Ws*>(&ws)) w->times = StageTimes{};
}

SlitstepOperator::Selection SlitstepOperator::select_cube(const Cube& cube, std::optional<double> uniform_sigma) const {
  Selection s;
  if (options_.space != SlitstepOperatorOptions::Space::kCube) {
    s.status = Status::Error(StatusCode::kInvalidInput, "select_cube: the operator works in exposure space");
    return s;
  }
  if (!same_grid(cube.spatial, cube_spatial_)) {
    s.status = Status::Error(StatusCode::kInvalidInput, "select_cube: the cube's spatial grid " + grid_text(cube.spatial) +
                                                            " differs from the model's " + grid_text(cube_spatial_));
    return s;
  }
  if (uniform_sigma && !(*uniform_sigma > 0.0 && std::isfinite(*uniform_sigma))) {
    s.status = Status::Error(StatusCode::kInvalidInput, "select_cube: uniform_sigma = " + format_value(*uniform_sigma) +
                                                            ": must be finite and > 0");
    return s;
  }
  const std::size_t nc = columns_.size();
  const auto& cw = cube.spectral.centres_um();
  std::vector<std::size_t> chan(nc);
  for (std::size_t c = 0; c < nc; ++c) {
    const double l = column_um_[c];
    const auto it = std::lower_bound(cw.begin(), cw.end(), l);
    std::size_t best = cw.size();
    double bd = 1e300;
    for (auto jt : {it, it == cw.begin() ? it : it - 1})
      if (jt != cw.end() && std::abs(*jt - l) < bd) {
        bd = std::abs(*jt - l);
        best = static_cast<std::size_t>(jt - cw.begin());
      }
    if (best == cw.size() || bd > 0.25 * cube.spectral.width_um(best)) {
      s.status = Status::Error(StatusCode::kInvalidInput, "select_cube: the cube has no channel at the model column " +
                                                              std::to_string(columns_[c]) + " (" + format_value(l) + " um)");
      return s;
    }
    chan[c] = best;
  }
  const bool q = cube.has_quality();
  s.data.assign(size_, 0.0);
  s.inv_sigma.assign(size_, 0.0);
  for (int j = 0; j < cube_spatial_.ny; ++j)
    for (int i = 0; i < cube_spatial_.nx; ++i)
      for (std::size_t c = 0; c < nc; ++c) {
        const std::size_t o = (static_cast<std::size_t>(j) * cube_spatial_.nx + i) * nc + c;
        const std::size_t p = cube.index(i, j, chan[c]);
        const double x = cube.sci[p];
        if (!std::isfinite(x) || !predictable_[o]) continue;
        if (q && (cube.dq[p] & kDqDoNotUse)) continue;
        double w = 0.0;
        if (uniform_sigma) {
          w = 1.0 / *uniform_sigma;
        } else if (q && std::isfinite(cube.err[p]) && cube.err[p] > 0.0) {
          w = 1.0 / cube.err[p];
        }
        if (w > 0.0) {
          s.data[o] = x;
          s.inv_sigma[o] = w;
          ++s.n_used;
        }
      }
  return s;
}

SlitstepOperator::Selection SlitstepOperator::select_exposures(const std::vector<Exposure>& exposures,
                                                               std::optional<double> uniform_sigma) const {
  Selection s;
  if (options_.space != SlitstepOperatorOptions::Space::kExposure) {
    s.status = Status::Error(StatusCode::kInvalidInput, "select_exposures: the operator works in cube space");
    return s;
  }
  if (uniform_sigma && !(*uniform_sigma > 0.0 && std::isfinite(*uniform_sigma))) {
    s.status = Status::Error(StatusCode::kInvalidInput, "select_exposures: uniform_sigma = " +
                                                            format_value(*uniform_sigma) + ": must be finite and > 0");
    return s;
  }
  const auto& pts = instrument_->pointings();
  const int nv = instrument_->nv(), nu = instrument_->nu();
  const std::size_t nc = columns_.size(), per = static_cast<std::size_t>(nv) * nc;
  s.data.assign(size_, 0.0);
  s.inv_sigma.assign(size_, 0.0);
  for (std::size_t q = 0; q < pts.size(); ++q) {
    const Exposure* e = nullptr;
    for (const auto& x : exposures)
      if (x.pointing.index == pts[q].index) e = &x;
    if (!e) {
      s.status = Status::Error(StatusCode::kInvalidInput,
                               "select_exposures: no exposure of pointing " + std::to_string(pts[q].index));
      return s;
    }
    if (e->nu != nu || e->nv != nv || e->sci.size() != e->size()) {
      s.status = Status::Error(StatusCode::kInvalidInput, "select_exposures: pointing " + std::to_string(pts[q].index) +
                                                              " is " + std::to_string(e->nv) + " x " + std::to_string(e->nu) +
                                                              ", the instrument's frame is " + std::to_string(nv) +
                                                              " x " + std::to_string(nu));
      return s;
    }
    for (std::size_t c = 0; c < nc; ++c)
      if (!(std::abs(e->wavelength_um[static_cast<std::size_t>(columns_[c])] - column_um_[c]) <= 1e-9 * column_um_[c])) {
        s.status = Status::Error(StatusCode::kInvalidInput, "select_exposures: pointing " + std::to_string(pts[q].index) +
                                                                ": column " + std::to_string(columns_[c]) +
                                                                " has another wavelength than the model's");
        return s;
      }
    const bool have_err = e->err.size() == e->size();
    const bool have_dq = e->dq.size() == e->size();
    for (int v = 0; v < nv; ++v)
      for (std::size_t c = 0; c < nc; ++c) {
        const std::size_t o = q * per + static_cast<std::size_t>(v) * nc + c;
        const std::size_t p = e->index(v, columns_[c]);
        const double x = e->sci[p];
        if (!std::isfinite(x) || !predictable_[o]) continue;
        if (have_dq && (e->dq[p] & kDqDoNotUse)) continue;
        double w = 0.0;
        if (uniform_sigma) {
          w = 1.0 / *uniform_sigma;
        } else if (have_err && std::isfinite(e->err[p]) && e->err[p] > 0.0) {
          w = 1.0 / e->err[p];
        }
        if (w > 0.0) {
          s.data[o] = x;
          s.inv_sigma[o] = w;
          ++s.n_used;
        }
      }
  }
  return s;
}

FitProblem SlitstepOperator::make_problem(const Selection& selection, const GalaxyParameterization& param) const {
  FitProblem p;
  p.op = this;
  p.data = selection.data;
  p.inv_sigma = selection.inv_sigma;
  p.param = param;
  return p;
}

}  // namespace slitstep
