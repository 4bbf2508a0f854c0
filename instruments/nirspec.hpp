#pragma once
// slitstep/instruments: the NIRSpec MSA slit-stepping instrument — configuration and the
// immutable, precomputed instrument model that observe() (instruments/observe.hpp) runs.
//
// NirspecConfig aggregates every knob with a commented default (confidence from the shared
// nirspec.md: H official, M derived/peer tool, L figure/third-party default; docs/instruments.md).
// read_nirspec_config() reads the TOML tables [slitlet], [pattern] and [instrument]; every bad
// value is an InputError "FILE:LINE: section.key = VALUE: rule" (through core/config Section::fail).
// It does not call Config::check_all_used(): the application does.
//
// NirspecInstrument is built once from (NirspecConfig, the sky cube's SpatialGrid and
// WavelengthGrid). It precomputes, per distinct step (x offset) and dither (y offset) of the
// pattern, the exact overlap of every sky pixel with the open area of every shutter, the in-shutter
// x range of each overlap turned into a wavelength (u) shift, the detector-row response of each
// overlap (box (x) cross-dispersion kernel (x) row, per PSF chunk), the spectral response of each
// (sky column, channel) on detector columns (box (x) optical kernel K (x) pixel), the per-column
// calibration and the DQ template (gap, red limit, bars, no coverage). It is immutable and
// thread-safe to use from many threads.
// Model (slit_stepping_model.md §2): the sky cube is in the aperture (MSA) frame of the reference
// pointing, piecewise constant over its pixels and channels; pointing p sees the sky at
// (x + offset_x, y + offset_y); the shutter centre is x = 0; a point at in-shutter offset x lands
// at u = u(lambda) + x / pixel_x (REDDER for x > 0) and row v = (y - y0) / pixel_y.
// Failure: invalid config -> InvalidOptions naming field/value/rule; unreadable tables ->
// InputError naming the file.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/grid.hpp"
#include "instruments/detector.hpp"
#include "instruments/disperser.hpp"
#include "instruments/geometry.hpp"
#include "instruments/psf.hpp"

namespace slitstep {

struct NirspecConfig {
  SlitletConfig slitlet;          // 3 shutters, Q3, i = 183, j = 86; 0.20" x 0.46" on 0.268" x 0.530" (H)
  PatternConfig pattern;          // MSA-3D: 9 x 0.2" steps, 7 x 0.075" dithers, serpentine, 1166 s (H/L)
  DisperserOptions disperser;     // G140H/F100LP, built-in JDox table unless dispersion_table is set (H)
  PsfConfig psf;                  // Gaussian 0.075" at 1.4 um, FWHM proportional to lambda (L)
  DetectorConfig detector;        // rows, gap, throughput, dark, read noise, zodi (H/M/L, see detector.hpp)
  bool pathloss = false;          // multiply the electrons by the uniform-source diffraction transmission
                                  // below and divide it out in the calibration (as MSA-3D did): changes
                                  // the S/N, not the calibrated SCI
  double pathloss_uniform = 0.85; // uniform-source diffraction transmission (L; the official curve is
                                  // not tabulated here)
  void validate() const;          // every member's validate(); throws InvalidOptions
};

/// Reads [slitlet], [pattern], [instrument] of `root` (absent tables/keys keep the defaults).
/// Every bad value: InputError "FILE:LINE: section.key = VALUE: rule". A dispersion_table or
/// psf_file that does not exist is refused here (naming the key); its content is read when the
/// instrument is built (errors then name the file).
NirspecConfig read_nirspec_config(const Section& root);

/// Geometry of one sky column (x) seen through the shutters at one step offset.
struct ColumnOverlap {
  int i = 0;            // sky-cube column index
  double frac_x = 0.0;  // fraction of the pixel's x width inside the open x range
  double u_lo = 0.0;    // in-shutter x range of the overlap, in u pixels (x / pixel_x)
  double u_hi = 0.0;
};
/// Geometry of one sky row (y) through one shutter at one dither offset.
struct RowOverlap {
  int j = 0;            // sky-cube row index
  int shutter = 0;      // open shutter k = 0..n-1
  double frac_y = 0.0;  // fraction of the pixel's y height inside the shutter's open y range
  double v_lo = 0.0;    // y range of the overlap in detector-row units ((y - y0) / pixel_y)
  double v_hi = 0.0;
};

/// Numerical settings of the instrument model (not physics; not in the TOML configuration).
struct NirspecNumerics {
  // Gaussian support (in sigma, each side) kept in the precomputed spectral (LSF) and
  // cross-dispersion row profiles. 10 (default, the simulator) drops tails < 1e-23 of a profile;
  // 6 drops < 1e-9 and makes observe ~1.5x faster (the fitter's choice, docs/fit.md). [5, 12]
  double support_sigma = 10.0;
  // Second-moment (Sheppard) matching of the sky's channel sampling. Channel k of the sky holds
  // the flux integral over its width and is modelled as a box of flux: its response is the LSF
  // (sigma K) widened in second moment by the box, du^2/12 (du = the channel width in detector
  // columns). Placing each channel's flux at its centre adds another du^2/12 for a line smooth on
  // the channel scale (Sheppard's correction), so with its own box the model's effective line
  // variance is K^2 + du^2/6, broader than the continuous spectrum's K^2 (1.1 % in variance for
  // 15 km/s channels at R ~ 2700). With a reference fraction f the box term is
  // du^2 (2 f^2 - 1) / 12, so the effective variance is K^2 + (f du)^2 / 6: that of channels f
  // times as wide. 0 (default) = the continuous spectrum: the box term is -du^2/12 and the model's
  // lines have the LSF's width to second order whatever the channel width (the residual is a
  // fourth-moment term; tests/test_nirspec_numerics.cpp). 1 = the channel's own box. [0, 2]; a
  // channel whose K^2 + box would not be positive is refused at construction (InvalidOptions
  // naming this field).
  double channel_reference_fraction = 0.0;
  void validate() const;  // throws InvalidOptions naming field, value and rule
};

class NirspecInstrument {
 public:
  /// Builds the model; throws InvalidOptions / InputError (tables, PSF file).
  NirspecInstrument(const NirspecConfig& config, const SpatialGrid& sky_spatial, const WavelengthGrid& sky_spectral,
                    const NirspecNumerics& numerics = {});
  ~NirspecInstrument();
  NirspecInstrument(const NirspecInstrument&) = delete;
  NirspecInstrument& operator=(const NirspecInstrument&) = delete;

  const NirspecConfig& config() const { return config_; }
  const NirspecNumerics& numerics() const { return numerics_; }
  const SpatialGrid& sky_spatial() const { return spatial_; }
  const WavelengthGrid& sky_spectral() const { return spectral_; }
  const Disperser& disperser() const { return *disperser_; }
  const PsfConvolver& psf() const { return *psf_; }
  const std::vector<Pointing>& pointings() const { return pointings_; }

  // ---- exposure frame ------------------------------------------------------------------------
  int nu() const { return disperser_->num_columns(); }
  int nv() const { return nv_; }
  double row_y0_arcsec() const { return row_y0_; }  // aperture-frame y of the centre of row 0
  double pixel_y_arcsec() const { return config_.detector.pixel_y_arcsec; }
  const std::vector<double>& column_wavelengths_um() const { return disperser_->column_wavelengths_um(); }
  /// DQ of every pixel of an exposure (identical for all pointings: gap, red limit, bars, no coverage).
  const std::vector<std::uint32_t>& dq_template() const { return dq_template_; }
  /// True for columns that receive light (not in the gap, not beyond the red limit).
  bool column_live(int u) const { return column_live_[u] != 0; }
  ChipGap chip_gap() const { return gap_; }
  double red_limit_um() const { return red_limit_; }

  // ---- calibration ---------------------------------------------------------------------------
  /// Electrons per second per (erg s^-1 cm^-2) at the telescope, at lambda (throughput incl.).
  double electrons_per_erg_cm2(double wavelength_um) const;
  /// Electrons per unit surface brightness in pixel (v, u) of a uniformly illuminated, unvignetted
  /// shutter, for exposure time t: E(lambda_u) t DLDS(lambda_u) open_x pixel_y [x pathloss].
  /// SCI = electrons / this (slit_stepping_model.md §3).
  double electrons_per_sb(int u, double exptime_s) const;
  /// Row illumination of a uniform source (1 in fully open rows, 0 far from the slitlet; the
  /// cross-dispersion kernel at 1.4 um spreads the shutter edges).
  const std::vector<double>& uniform_row_profile() const { return uniform_rows_; }

  // ---- kernels -------------------------------------------------------------------------------
  /// Gaussian sigma (rows) of the cross-dispersion kernel used for channel k (held constant
  /// over the PSF chunk that contains k).
  double cross_sigma_px_for_channel(std::size_t k) const { return chunk_sigma_v_[chunk_of_[k]]; }
  /// Gaussian sigma (px) of the optical kernel K used for channel k.
  double kernel_sigma_px_for_channel(std::size_t k) const { return sigma_u_[k]; }
  /// Continuous u of channel k's centre for a source at the shutter centre.
  double channel_u(std::size_t k) const { return u_of_channel_[k]; }
  std::size_t num_chunks() const { return chunk_sigma_v_.size(); }
  std::size_t chunk_of_channel(std::size_t k) const { return chunk_of_[k]; }

  // ---- precomputed geometry (used by observe; exposed for tests and the reference path) ------
  /// Distinct step / dither offsets and the pointing -> (step slot, dither slot) maps.
  int step_slot(int pointing_index) const { return step_slot_[pointing_index]; }
  int dither_slot(int pointing_index) const { return dither_slot_[pointing_index]; }
  const std::vector<ColumnOverlap>& columns(int step_slot) const { return step_cols_[step_slot]; }
  const std::vector<RowOverlap>& rows(int dither_slot) const { return dither_rows_[dither_slot]; }

  // Internal precomputed responses (observe.cpp).
  struct SpectralProfile {    // response of (column overlap c, channel k) on detector columns
    int m0 = 0;               // first detector column
    int len = 0;              // number of columns
    std::size_t offset = 0;   // into spectral_values(step)
  };
  struct RowProfile {         // response of sky row j (all shutters summed) on detector rows
    int j = 0;
    int r0 = 0;
    int len = 0;
    std::size_t offset = 0;   // into row_values(dither, chunk)
  };
  /// Per step slot: profiles indexed [c * nl + k]; values already include frac_x, the sky pixel
  /// area, the channel width, E(lambda_k) and 1 / (E(lambda_m) DLDS(lambda_m) open_x pixel_y).
  const std::vector<SpectralProfile>& spectral_profiles(int step_slot) const { return spec_prof_[step_slot]; }
  const std::vector<double>& spectral_values(int step_slot) const { return spec_vals_[step_slot]; }
  /// Per (dither slot, chunk): row profiles (sorted by j), values include frac_y.
  const std::vector<RowProfile>& row_profiles(int dither_slot, std::size_t chunk) const {
    return row_prof_[static_cast<std::size_t>(dither_slot) * num_chunks() + chunk];
  }
  const std::vector<double>& row_values(int dither_slot, std::size_t chunk) const {
    return row_vals_[static_cast<std::size_t>(dither_slot) * num_chunks() + chunk];
  }
  /// Channels [first, end) of chunk c.
  std::size_t chunk_first(std::size_t c) const { return chunk_first_[c]; }
  std::size_t chunk_end(std::size_t c) const { return chunk_end_[c]; }

 private:
  void build_frame();
  void build_chunks();
  void build_geometry();
  void build_profiles();

  NirspecNumerics numerics_;
  NirspecConfig config_;
  SpatialGrid spatial_;
  WavelengthGrid spectral_;
  std::unique_ptr<Disperser> disperser_;
  std::unique_ptr<PsfConvolver> psf_;
  std::vector<Pointing> pointings_;
  int nv_ = 0;
  double row_y0_ = 0.0;
  ChipGap gap_;
  double red_limit_ = 0.0;
  std::vector<char> column_live_;
  std::vector<std::uint32_t> dq_template_;
  std::vector<double> inv_calib_;   // per column: 1 / (E DLDS open_x pixel_y)
  std::vector<double> uniform_rows_;
  std::vector<double> u_of_channel_, sigma_u_;
  std::vector<std::size_t> chunk_of_, chunk_first_, chunk_end_;
  std::vector<double> chunk_sigma_v_;
  std::vector<double> step_offsets_, dither_offsets_;
  std::vector<int> step_slot_, dither_slot_;
  std::vector<std::vector<ColumnOverlap>> step_cols_;
  std::vector<std::vector<RowOverlap>> dither_rows_;
  std::vector<std::vector<SpectralProfile>> spec_prof_;
  std::vector<std::vector<double>> spec_vals_;
  std::vector<std::vector<RowProfile>> row_prof_;
  std::vector<std::vector<double>> row_vals_;
};

}  // namespace slitstep
