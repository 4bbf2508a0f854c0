#include "instruments/nirspec.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/cube.hpp"
#include "core/error.hpp"

namespace slitstep {
namespace {

constexpr double kFwhmPerSigma = 2.3548200450309493;

// ---- config reading helpers ----------------------------------------------------------------
void get_int(const Section& s, const char* key, int& out, int lo, int hi) {
  if (s.get(key, out) && (out < lo || out > hi))
    s.fail(key, "must be in " + std::to_string(lo) + ".." + std::to_string(hi));
}
void get_pos(const Section& s, const char* key, double& out, double max = 1e300) {
  if (s.get(key, out) && (!(out > 0.0) || out > max))
    s.fail(key, max < 1e300 ? "must be > 0 and <= " + format_value(max) : std::string("must be > 0"));
}
void get_nonneg(const Section& s, const char* key, double& out, double max = 1e300) {
  if (s.get(key, out) && (out < 0.0 || out > max))
    s.fail(key, max < 1e300 ? "must be >= 0 and <= " + format_value(max) : std::string("must be >= 0"));
}
void get_existing_file(const Section& s, const char* key, std::string& out) {
  if (!s.get(key, out)) return;
  if (out.empty()) return;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(out, ec)) s.fail(key, "file does not exist (or is not a regular file)");
}

double overlap(double a0, double a1, double b0, double b1) { return std::max(0.0, std::min(a1, b1) - std::max(a0, b0)); }

}  // namespace

void NirspecConfig::validate() const {
  slitlet.validate();
  pattern.validate();
  disperser.validate();
  psf.validate();
  detector.validate();
  if (!std::isfinite(pathloss_uniform) || !(pathloss_uniform > 0.0) || pathloss_uniform > 1.0)
    throw InvalidOptions("instrument.pathloss_uniform = " + format_value(pathloss_uniform) + ": must be in (0, 1]");
  if (std::abs(disperser.slit_width_arcsec - slitlet.shutter.open_x_arcsec) > 1e-12)
    throw InvalidOptions("instrument.slit_width_arcsec = " + format_value(disperser.slit_width_arcsec) +
                         ": must equal slitlet.open_x_arcsec = " + format_value(slitlet.shutter.open_x_arcsec));
}

NirspecConfig read_nirspec_config(const Section& root) {
  NirspecConfig c;
  // [slitlet]
  {
    const Section s = root.table("slitlet");
    auto& sl = c.slitlet;
    get_int(s, "n_shutters", sl.n_shutters, 1, 9);
    get_int(s, "quadrant", sl.quadrant, 1, 4);
    get_int(s, "shutter_i", sl.shutter_i, 1, 365);
    get_int(s, "shutter_j", sl.shutter_j, 1, 171);
    const int half = sl.n_shutters / 2;
    if (sl.shutter_j - half < 1 || sl.shutter_j + (sl.n_shutters - 1 - half) > 171)
      s.fail("shutter_j", "the slitlet's " + std::to_string(sl.n_shutters) + " shutters must lie in 1..171");
    auto& g = sl.shutter;
    get_pos(s, "open_x_arcsec", g.open_x_arcsec, 2.0);
    get_pos(s, "open_y_arcsec", g.open_y_arcsec, 2.0);
    get_pos(s, "pitch_x_arcsec", g.pitch_x_arcsec, 2.0);
    get_pos(s, "pitch_y_arcsec", g.pitch_y_arcsec, 2.0);
    if (g.open_x_arcsec >= g.pitch_x_arcsec)
      s.fail(s.has("open_x_arcsec") ? "open_x_arcsec" : "pitch_x_arcsec", "open_x_arcsec must be smaller than pitch_x_arcsec");
    if (g.open_y_arcsec >= g.pitch_y_arcsec)
      s.fail(s.has("open_y_arcsec") ? "open_y_arcsec" : "pitch_y_arcsec", "open_y_arcsec must be smaller than pitch_y_arcsec");
  }
  c.disperser.slit_width_arcsec = c.slitlet.shutter.open_x_arcsec;
  // [pattern]
  {
    const Section s = root.table("pattern");
    auto& p = c.pattern;
    auto offsets = [&](const char* key, std::vector<double>& v) {
      if (!s.get(key, v)) return;
      if (v.empty()) s.fail(key, "needs at least one offset");
      for (std::size_t a = 0; a < v.size(); ++a) {
        if (std::abs(v[a]) > 10.0) s.fail(key, "offsets must be within +-10 arcsec");
        for (std::size_t b = 0; b < a; ++b)
          if (v[a] == v[b]) s.fail(key, "offsets must be distinct (" + format_value(v[a]) + " repeats)");
      }
    };
    offsets("steps_x_arcsec", p.steps_x_arcsec);
    offsets("dithers_y_arcsec", p.dithers_y_arcsec);
    if (s.get("order", p.order) && p.order != "serpentine" && p.order != "raster")
      s.fail("order", "must be \"serpentine\" or \"raster\"");
    get_pos(s, "exptime_s", p.exptime_s, 1e7);
  }
  // [instrument]
  {
    const Section s = root.table("instrument");
    auto& d = c.disperser;
    if (s.get("grating", d.grating) && d.grating != "G140H" && d.grating != "G140M")
      s.fail("grating", "must be \"G140H\" or \"G140M\"");
    if (s.get("filter", d.filter) && d.filter != "F100LP") s.fail("filter", "only \"F100LP\" is tabulated");
    get_existing_file(s, "dispersion_table", d.dispersion_table);
    get_pos(s, "pixel_x_arcsec", d.pixel_x_arcsec, 1.0);
    if (s.get("optical_kernel_fwhm_px", d.optical_kernel_fwhm_px) &&
        (d.optical_kernel_fwhm_px < 0.0 || (d.optical_kernel_fwhm_px > 0.0 && d.optical_kernel_fwhm_px < 0.118) ||
         d.optical_kernel_fwhm_px > 20.0))
      s.fail("optical_kernel_fwhm_px", "must be 0 (derive from R) or in [0.118, 20] px");

    auto& p = c.psf;
    if (s.get("psf_model", p.model) && p.model != "gaussian" && p.model != "airy" && p.model != "file" &&
        p.model != "none")
      s.fail("psf_model", "must be \"gaussian\", \"airy\", \"file\" or \"none\"");
    get_pos(s, "psf_fwhm_arcsec", p.fwhm_arcsec, 2.0);
    get_pos(s, "psf_ref_wavelength_um", p.ref_wavelength_um, 100.0);
    get_pos(s, "psf_diameter_m", p.diameter_m, 100.0);
    if (s.get("psf_obscuration", p.obscuration) && (p.obscuration < 0.0 || p.obscuration >= 1.0))
      s.fail("psf_obscuration", "must be in [0, 1)");
    get_existing_file(s, "psf_file", p.file);
    get_pos(s, "psf_file_pixel_arcsec", p.file_pixel_arcsec, 10.0);
    get_nonneg(s, "psf_file_ref_wavelength_um", p.file_ref_wavelength_um, 100.0);
    get_pos(s, "psf_radius_arcsec", p.radius_arcsec, 5.0);
    get_pos(s, "psf_max_fwhm_rel_change", p.max_fwhm_rel_change, 0.2);
    if (p.model == "file" && p.file.empty()) s.fail("psf_model", "psf_model = \"file\" needs psf_file");
    if (p.model == "file" && !(p.file_pixel_arcsec > 0.0))
      s.fail("psf_file_pixel_arcsec", "must be given (> 0) when psf_model = \"file\"");

    auto& t = c.detector;
    get_pos(s, "pixel_y_arcsec", t.pixel_y_arcsec, 1.0);
    get_pos(s, "cross_dispersion_fwhm_px", t.cross_dispersion_fwhm_px, 20.0);
    get_pos(s, "min_kernel_fwhm_px", t.min_kernel_fwhm_px, 20.0);
    if (s.get("bar_edge_tolerance", t.bar_edge_tolerance) && !(t.bar_edge_tolerance >= 0.0 && t.bar_edge_tolerance <= 1.0))
      s.fail("bar_edge_tolerance", "must be in [0, 1]");
    s.get("chip_gap", t.chip_gap);
    get_pos(s, "gap_width_um", t.gap_width_um, 0.5);
    get_nonneg(s, "gap_center_um", t.gap_center_um, 10.0);
    if (s.get("gap_shift_um", t.gap_shift_um) && std::abs(t.gap_shift_um) >= 0.5)
      s.fail("gap_shift_um", "must be within +-0.5 um");
    s.get("red_limit", t.red_limit);
    get_pos(s, "throughput", t.throughput_peak, 1.0);
    get_pos(s, "telescope_area_m2", t.telescope_area_m2, 1000.0);
    get_nonneg(s, "dark_e_per_s", t.dark_e_per_s, 1e6);
    get_nonneg(s, "read_noise_e", t.read_noise_e, 1e6);
    get_nonneg(s, "background_mjy_sr", t.background_mjy_sr, 1e6);
    s.get("pathloss", c.pathloss);
    get_pos(s, "pathloss_uniform", c.pathloss_uniform, 1.0);
  }
  c.validate();  // everything was checked key by key above; this guards the cross-field rules
  return c;
}

// ---- NirspecInstrument --------------------------------------------------------------------

void NirspecNumerics::validate() const {
  if (!(support_sigma >= 5.0 && support_sigma <= 12.0))
    throw InvalidOptions("NirspecNumerics.support_sigma = " + format_value(support_sigma) + ": must be in [5, 12]");
  if (!(channel_reference_fraction >= 0.0 && channel_reference_fraction <= 2.0))
    throw InvalidOptions("NirspecNumerics.channel_reference_fraction = " + format_value(channel_reference_fraction) +
                         ": must be in [0, 2]");
}

NirspecInstrument::NirspecInstrument(const NirspecConfig& config, const SpatialGrid& sky_spatial,
                                     const WavelengthGrid& sky_spectral, const NirspecNumerics& numerics)
    : numerics_(numerics), config_(config), spatial_(sky_spatial), spectral_(sky_spectral) {
  numerics_.validate();
  config_.validate();
  spatial_.validate();
  if (spectral_.empty()) throw InvalidOptions("NirspecInstrument: the sky cube's wavelength grid is empty");
  disperser_ = std::make_unique<Disperser>(config_.disperser);
  psf_ = std::make_unique<PsfConvolver>(config_.psf, spatial_, spectral_);
  pointings_ = make_pointings(config_.pattern);
  build_frame();
  build_chunks();
  build_geometry();
  build_profiles();
}

NirspecInstrument::~NirspecInstrument() = default;

double NirspecInstrument::electrons_per_erg_cm2(double l) const {
  return slitstep::electrons_per_erg_cm2(config_.detector, l);
}

double NirspecInstrument::electrons_per_sb(int u, double exptime_s) const {
  const double pl = config_.pathloss ? config_.pathloss_uniform : 1.0;
  return exptime_s * pl / inv_calib_[u];
}

void NirspecInstrument::build_frame() {
  const auto& sl = config_.slitlet;
  const auto& det = config_.detector;
  const double sy = det.pixel_y_arcsec;
  const double half = 0.5 * (sl.n_shutters - 1) * sl.shutter.pitch_y_arcsec + 0.5 * sl.shutter.open_y_arcsec;
  const int nh = static_cast<int>(std::ceil(half / sy + 1.0 - 1e-9));
  nv_ = 2 * nh + 1;
  row_y0_ = -nh * sy;
  gap_ = slitstep::chip_gap(det, sl.quadrant, sl.shutter_i);
  red_limit_ = slitstep::red_limit_um(sl.quadrant, sl.shutter_i);
  const int nu_ = nu();
  const auto& lam = disperser_->column_wavelengths_um();
  column_live_.assign(nu_, 1);
  inv_calib_.assign(nu_, 0.0);
  for (int u = 0; u < nu_; ++u) {
    const double l = lam[u];
    if (gap_.enabled && l >= gap_.lo_um && l <= gap_.hi_um) column_live_[u] = 0;
    if (det.red_limit && l > red_limit_) column_live_[u] = 0;
    inv_calib_[u] = 1.0 / (slitstep::electrons_per_erg_cm2(det, l) * disperser_->dlds_um_per_px(l) *
                           sl.shutter.open_x_arcsec * sy);
  }
  // DQ template
  dq_template_.assign(static_cast<std::size_t>(nv_) * nu_, 0u);
  const double hy = 0.5 * sl.shutter.open_y_arcsec;
  for (int r = 0; r < nv_; ++r) {
    const double yc = row_y0_ + r * sy;
    double open = 0.0;
    for (int k = 0; k < sl.n_shutters; ++k) {
      const double c = shutter_center_y_arcsec(sl, k);
      open += overlap(yc - 0.5 * sy, yc + 0.5 * sy, c - hy, c + hy);
    }
    open /= sy;
    std::uint32_t rowflag = 0;
    if (open <= 0.0)
      rowflag = (std::abs(yc) < half ? kDqBarShadow : kDqNoCoverage) | kDqDoNotUse;
    else if (open < 1.0 - 1e-9)
      rowflag = kDqBarShadow;
    for (int u = 0; u < nu_; ++u) {
      std::uint32_t f = rowflag;
      const double l = lam[u];
      if (gap_.enabled && l >= gap_.lo_um && l <= gap_.hi_um) f |= kDqChipGap | kDqDoNotUse;
      if (det.red_limit && l > red_limit_) f |= kDqNoCoverage | kDqDoNotUse;
      dq_template_[static_cast<std::size_t>(r) * nu_ + u] = f;
    }
  }
}

void NirspecInstrument::build_chunks() {
  const std::size_t nl = spectral_.size();
  chunk_of_.assign(nl, 0);
  chunk_first_.clear();
  chunk_end_.clear();
  if (psf_->enabled()) {
    for (std::size_t c = 0; c < psf_->num_chunks(); ++c) {
      chunk_first_.push_back(psf_->chunk_first(c));
      chunk_end_.push_back(psf_->chunk_end(c));
    }
  } else {
    for (std::size_t w = 0; w < spectral_.windows().size(); ++w) {
      chunk_first_.push_back(spectral_.window_offset(w));
      chunk_end_.push_back(spectral_.window_offset(w) + static_cast<std::size_t>(spectral_.windows()[w].n));
    }
  }
  chunk_sigma_v_.clear();
  for (std::size_t c = 0; c < chunk_first_.size(); ++c) {
    for (std::size_t k = chunk_first_[c]; k < chunk_end_[c]; ++k) chunk_of_[k] = c;
    const double lmid = 0.5 * (spectral_.wavelength_um(chunk_first_[c]) + spectral_.wavelength_um(chunk_end_[c] - 1));
    const double psf_px = psf_->fwhm_arcsec(lmid) / config_.detector.pixel_y_arcsec;
    chunk_sigma_v_.push_back(cross_dispersion_kernel_fwhm_px(config_.detector, psf_px) / kFwhmPerSigma);
  }
  u_of_channel_.resize(nl);
  sigma_u_.resize(nl);
  for (std::size_t k = 0; k < nl; ++k) {
    const double l = spectral_.wavelength_um(k);
    u_of_channel_[k] = disperser_->u_of_lambda(l);
    // the channel is a box in wavelength: its u width adds (in second moment) to K, and placing
    // its flux at its centre adds as much again (Sheppard); the box term du^2 (2 f^2 - 1) / 12
    // gives the effective width of channels f times as wide, f = 0 the continuous spectrum's
    // (NirspecNumerics::channel_reference_fraction)
    const double du = spectral_.width_um(k) / disperser_->dlds_um_per_px(l);
    const double sk = disperser_->kernel_sigma_px(l);
    const double f = numerics_.channel_reference_fraction;
    const double var = sk * sk + du * du * (2.0 * f * f - 1.0) / 12.0;
    if (!(var > 0.0))
      throw InvalidOptions("sky channel " + std::to_string(k) + " (" + format_value(l) + " um) is " +
                           format_value(du) + " detector columns wide, too wide for the LSF (sigma " +
                           format_value(sk) + " columns) with NirspecNumerics.channel_reference_fraction = " +
                           format_value(f) + ": make [render] channel_kms smaller (the channel must be narrower " +
                           "than " + format_value(sk * std::sqrt(12.0 / std::max(1e-12, 1.0 - 2.0 * f * f))) +
                           " columns here)");
    sigma_u_[k] = std::sqrt(var);
  }
  // uniform-source row profile (cross-dispersion kernel at 1.4 um)
  const auto& sl = config_.slitlet;
  const double sy = config_.detector.pixel_y_arcsec;
  const double sv = cross_dispersion_kernel_fwhm_px(config_.detector, psf_->fwhm_arcsec(1.4) / sy) / kFwhmPerSigma;
  uniform_rows_.assign(nv_, 0.0);
  const double hy = 0.5 * sl.shutter.open_y_arcsec;
  for (int k = 0; k < sl.n_shutters; ++k) {
    const double c = shutter_center_y_arcsec(sl, k);
    const double a = (c - hy - row_y0_) / sy, b = (c + hy - row_y0_) / sy;
    for (int r = 0; r < nv_; ++r) uniform_rows_[r] += (b - a) * box_gauss_fraction(a, b, sv, r - 0.5, r + 0.5);
  }
  // Rows that lose (or gain) more than bar_edge_tolerance of a uniform source's light to the bars
  // through the cross-dispersion blur are bar-affected even where they are geometrically open.
  const double tol = config_.detector.bar_edge_tolerance;
  if (tol < 1.0) {
    for (int r = 0; r < nv_; ++r) {
      if (std::abs(uniform_rows_[r] - 1.0) <= tol) continue;
      for (int u = 0; u < nu(); ++u) dq_template_[static_cast<std::size_t>(r) * nu() + u] |= kDqBarShadow;
    }
  }
}

void NirspecInstrument::build_geometry() {
  const auto& sl = config_.slitlet;
  step_slot_.assign(pointings_.size(), 0);
  dither_slot_.assign(pointings_.size(), 0);
  for (std::size_t p = 0; p < pointings_.size(); ++p) {
    const double ox = pointings_[p].offset_x_arcsec, oy = pointings_[p].offset_y_arcsec;
    auto sit = std::find(step_offsets_.begin(), step_offsets_.end(), ox);
    if (sit == step_offsets_.end()) {
      step_offsets_.push_back(ox);
      sit = step_offsets_.end() - 1;
    }
    step_slot_[p] = static_cast<int>(sit - step_offsets_.begin());
    auto dit = std::find(dither_offsets_.begin(), dither_offsets_.end(), oy);
    if (dit == dither_offsets_.end()) {
      dither_offsets_.push_back(oy);
      dit = dither_offsets_.end() - 1;
    }
    dither_slot_[p] = static_cast<int>(dit - dither_offsets_.begin());
  }
  const double pix = spatial_.pixel_arcsec, h = 0.5 * pix;
  const double hx = 0.5 * sl.shutter.open_x_arcsec, hy = 0.5 * sl.shutter.open_y_arcsec;
  const double sx = config_.disperser.pixel_x_arcsec, sy = config_.detector.pixel_y_arcsec;
  step_cols_.assign(step_offsets_.size(), {});
  for (std::size_t s = 0; s < step_offsets_.size(); ++s) {
    for (int i = 0; i < spatial_.nx; ++i) {
      const double x0 = spatial_.x_arcsec(i) - h - step_offsets_[s], x1 = x0 + pix;
      const double xa = std::max(x0, -hx), xb = std::min(x1, hx);
      if (!(xb > xa)) continue;
      step_cols_[s].push_back({i, (xb - xa) / pix, xa / sx, xb / sx});
    }
  }
  dither_rows_.assign(dither_offsets_.size(), {});
  for (std::size_t d = 0; d < dither_offsets_.size(); ++d) {
    for (int j = 0; j < spatial_.ny; ++j) {
      const double y0 = spatial_.y_arcsec(j) - h - dither_offsets_[d], y1 = y0 + pix;
      for (int k = 0; k < sl.n_shutters; ++k) {
        const double c = shutter_center_y_arcsec(sl, k);
        const double ya = std::max(y0, c - hy), yb = std::min(y1, c + hy);
        if (!(yb > ya)) continue;
        dither_rows_[d].push_back({j, k, (yb - ya) / pix, (ya - row_y0_) / sy, (yb - row_y0_) / sy});
      }
    }
  }
}

void NirspecInstrument::build_profiles() {
  const std::size_t nl = spectral_.size();
  const int nu_ = nu();
  const double area = spatial_.pixel_area_arcsec2();
  std::vector<double> ek(nl);
  for (std::size_t k = 0; k < nl; ++k)
    ek[k] = area * spectral_.width_um(k) * slitstep::electrons_per_erg_cm2(config_.detector, spectral_.wavelength_um(k));
  spec_prof_.assign(step_offsets_.size(), {});
  spec_vals_.assign(step_offsets_.size(), {});
  for (std::size_t s = 0; s < step_offsets_.size(); ++s) {
    const auto& cols = step_cols_[s];
    auto& prof = spec_prof_[s];
    auto& vals = spec_vals_[s];
    prof.assign(cols.size() * nl, {});
    for (std::size_t c = 0; c < cols.size(); ++c) {
      for (std::size_t k = 0; k < nl; ++k) {
        const double a = u_of_channel_[k] + cols[c].u_lo, b = u_of_channel_[k] + cols[c].u_hi;
        const double sg = sigma_u_[k];
        const int m_lo = std::max(0, static_cast<int>(std::floor(a - numerics_.support_sigma * sg)));
        const int m_hi = std::min(nu_ - 1, static_cast<int>(std::ceil(b + numerics_.support_sigma * sg)));
        SpectralProfile& P = prof[c * nl + k];
        if (m_lo > m_hi) continue;
        P.m0 = m_lo;
        P.len = m_hi - m_lo + 1;
        P.offset = vals.size();
        const double w = cols[c].frac_x * ek[k];
        for (int m = m_lo; m <= m_hi; ++m)
          vals.push_back(column_live_[m] ? w * box_gauss_fraction(a, b, sg, m - 0.5, m + 0.5) * inv_calib_[m] : 0.0);
      }
    }
  }
  const std::size_t nch = chunk_sigma_v_.size();
  row_prof_.assign(dither_offsets_.size() * nch, {});
  row_vals_.assign(dither_offsets_.size() * nch, {});
  for (std::size_t d = 0; d < dither_offsets_.size(); ++d) {
    const auto& rows = dither_rows_[d];  // sorted by j, then shutter
    for (std::size_t ch = 0; ch < nch; ++ch) {
      const double sg = chunk_sigma_v_[ch];
      auto& prof = row_prof_[d * nch + ch];
      auto& vals = row_vals_[d * nch + ch];
      std::size_t a = 0;
      while (a < rows.size()) {
        std::size_t b = a;
        int r_lo = nv_, r_hi = -1;
        while (b < rows.size() && rows[b].j == rows[a].j) {
          r_lo = std::min(r_lo, std::max(0, static_cast<int>(std::floor(rows[b].v_lo - numerics_.support_sigma * sg))));
          r_hi = std::max(r_hi, std::min(nv_ - 1, static_cast<int>(std::ceil(rows[b].v_hi + numerics_.support_sigma * sg))));
          ++b;
        }
        if (r_lo <= r_hi) {
          RowProfile P;
          P.j = rows[a].j;
          P.r0 = r_lo;
          P.len = r_hi - r_lo + 1;
          P.offset = vals.size();
          for (int r = r_lo; r <= r_hi; ++r) {
            double v = 0.0;
            for (std::size_t q = a; q < b; ++q)
              v += rows[q].frac_y * box_gauss_fraction(rows[q].v_lo, rows[q].v_hi, sg, r - 0.5, r + 0.5);
            vals.push_back(v);
          }
          prof.push_back(P);
        }
        a = b;
      }
    }
  }
}

}  // namespace slitstep
