#pragma once
// slitstep/fit: per-spaxel emission-line fitting (DESIGN.md §5.1; what the MSA-3D paper did,
// Section 2.2). docs/fit.md "Per-spaxel line fitting" describes the model and its conventions.
//
// Model, per spectrum: in each of two rest-frame windows (default 4820-5100 A for Hbeta and
// [OIII], 6520-6800 A for Halpha, [NII], [SII]) a straight-line continuum plus one Gaussian per
// line. All lines share ONE velocity v (relativistic, core/units.hpp: lambda = rest (1+z)
// sqrt((1+v/c)/(1-v/c))) and ONE intrinsic dispersion sigma_int (km/s). The observed width of a
// line at lambda is sqrt(sigma_int^2 + sigma_inst(lambda)^2) with sigma_inst from the LsfModel,
// evaluated at the line's fitted centre. Each Gaussian is INTEGRATED over its channel (erf
// differences) and divided by the channel width, so the model is the channel-mean flux density
// and channels wider than the line are handled exactly. Doublets are tied:
// [NII]6548 = [NII]6584 / 3.0 and [OIII]4959 = [OIII]5007 / 2.98 (core/lines.hpp).
//
// Parametrisation: the fitted width parameter is s2 = sigma_int^2 (km^2/s^2), allowed to go
// NEGATIVE down to -(1 - min_sigma_obs_fraction^2) sigma_inst^2, so that an unresolved line sits
// in the interior of the parameter space (smooth, no boundary at sigma_int = 0) and noise
// scatters s2 symmetrically. Reported: sigma_kms = sqrt(max(s2, 0)) (0 for an unresolved line)
// and sigma_err_kms = s2_err / (2 sqrt(max(s2, s2_err/4))): the delta-method error where the line
// is resolved, continuous down to sqrt(s2_err) at s2 <= s2_err/4 (a 1-sigma upper limit on
// sigma_int when s2 ~ 0); s2 and its error are reported too.
//
// Units: wavelength_um observed vacuum um (channel centres); flux_sb / err_sb in
// erg s^-1 cm^-2 um^-1 arcsec^-2 (a surface brightness: line fluxes come out per arcsec^2, the
// caller multiplies by the spaxel area; fit_cube does); EWs rest frame, Angstrom, emission > 0.
// Errors: 1 sigma from the inverse of J^T J (J = Jacobian of the err-weighted residuals at the
// solution). They are NOT scaled by the reduced chi^2 unless EmissionLineFitOptions::
// scale_errors_by_reduced_chi2 (the pull test in tests/test_line_fit.cpp validates the unscaled
// errors when err_sb is right). Without err_sb (nullptr) the fit uses unit weights and the
// errors are always scaled by the reduced chi^2.
// Failure: kernels never throw for numerical trouble, never print; every result has a status and
// a message. Bad options throw InvalidOptions (validate()).
#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/cube.hpp"
#include "core/line_maps.hpp"
#include "core/lines.hpp"
#include "fit/lsf.hpp"

namespace slitstep {

struct EmissionLineFitOptions {
  // Rest-frame fitting windows (Angstrom, vacuum). Window 0: Hbeta + [OIII]; window 1: Halpha +
  // [NII] + [SII]. Each window has its own straight-line continuum.
  double hb_window_lo_A = 4820.0;
  double hb_window_hi_A = 5100.0;
  double ha_window_lo_A = 6520.0;
  double ha_window_hi_A = 6800.0;
  // Lines to fit (any subset of the 8). A tied doublet member ([NII]6548, [OIII]4959) needs its
  // strong partner in the list when tie_doublets is true.
  std::vector<LineId> lines = {LineId::kHbeta,  LineId::kOIII4959, LineId::kOIII5007, LineId::kNII6548,
                               LineId::kHalpha, LineId::kNII6584,  LineId::kSII6717,  LineId::kSII6731};
  bool tie_doublets = true;
  double nii_ratio = kNIIDoubletRatio;    // [NII]6584 / [NII]6548
  double oiii_ratio = kOIIIDoubletRatio;  // [OIII]5007 / [OIII]4959
  // Kinematics bounds: |v| <= velocity_bound_kms about the systemic redshift; sigma_int <=
  // sigma_max_kms; the observed width may shrink to min_sigma_obs_fraction * sigma_inst (s2 < 0).
  double velocity_bound_kms = 1000.0;
  double sigma_max_kms = 500.0;
  double min_sigma_obs_fraction = 0.5;
  // Starting intrinsic dispersion when no start is given (km/s).
  double sigma_start_kms = 50.0;
  // Usable channels: at least this many in a window for it to be fitted, and at least
  // min_channels_per_line within +-2.5 sigma_obs (>= 1 channel) of a line's expected centre for
  // its flux to be a free parameter (a tied doublet counts the coverage of both members).
  int min_channels_per_window = 8;
  int min_channels_per_line = 2;
  // Channels whose DQ has any of these bits are ignored (as are non-finite sci/err and err <= 0).
  std::uint32_t dq_mask = kDqDoNotUse | kDqChipGap | kDqNoCoverage | kDqNonFinite;
  // Fluxes may be negative (unbiased, Gaussian errors for weak lines; selection happens later).
  bool allow_negative_flux = true;
  // Multiply the covariance by chi^2/dof (the paper's "errors from the residuals"). Default off:
  // the errors follow the ERR plane.
  bool scale_errors_by_reduced_chi2 = false;
  // Below this S/N of every fitted line flux the kinematics are meaningless: status kNoSignal
  // (fluxes and errors still reported, e.g. as upper limits). 0 disables.
  double detection_snr = 3.0;
  // Solver (Ceres Levenberg-Marquardt, analytic derivatives).
  int max_iterations = 100;
  double function_tolerance = 1e-10;
  double parameter_tolerance = 1e-10;
  double gradient_tolerance = 1e-14;
  // Line-free continuum for the centre finder (rest A): median over centre +- half width of the
  // first window with >= 3 usable channels.
  double line_free_centre_A = 5500.0;
  double line_free_fallback_centre_A = 6500.0;
  double line_free_half_width_A = 25.0;
  // fit_cube: OpenMP threads (0 = the OpenMP default). Results do not depend on it.
  int threads = 0;
  // fit_cube: warm starts from fitted neighbours; if such a fit ends at a bound, does not converge
  // or fails, refit from the cold-start guess (velocity scan) and keep the better result.
  bool warm_start = true;

  /// Throws InvalidOptions naming the field, the value and the rule.
  void validate() const;
};

enum class LineFitStatus {
  kConverged = 0,  // converged, finite results, kinematics inside the bounds
  kNoSignal,       // converged but no line reaches detection_snr: fluxes valid, v/sigma NaN
  kAtBound,        // velocity or width ended on a bound: fluxes (at fixed kinematics) valid, v/sigma NaN
  kNotConverged,   // iteration limit: everything NaN except the message
  kNoData,         // too few usable channels / no line inside the coverage
  kFailed,         // solver failure or singular covariance
};
const char* to_string(LineFitStatus s);

struct LineMeasurement {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  bool measured = false;        // the line's flux was fitted (free or tied)
  bool tied = false;            // flux = partner / ratio
  double flux_sb = kNaN;        // erg s^-1 cm^-2 arcsec^-2 (integral of the SB over wavelength)
  double flux_err_sb = kNaN;
  double ew_rest_A = kNaN;      // rest frame; NaN when the continuum under the line is <= 0
  double ew_err_rest_A = kNaN;
  double centre_um = kNaN;      // fitted observed centre
  double sigma_inst_kms = kNaN; // instrumental sigma at the centre
  double continuum_sb = kNaN;   // continuum level at the centre
};

struct WindowContinuum {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  bool used = false;
  double ref_um = kNaN;            // straight line: level_sb + slope (lambda - ref_um)
  double level_sb = kNaN;
  double slope_sb_per_um = kNaN;
  int channels = 0;                // usable channels in the window
};

struct SpectrumFit {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  LineFitStatus status = LineFitStatus::kFailed;
  std::string message;             // empty when converged, otherwise why
  bool ok() const { return status == LineFitStatus::kConverged; }

  std::array<LineMeasurement, kNumLines> lines;  // indexed by static_cast<int>(LineId)
  double velocity_kms = kNaN, velocity_err_kms = kNaN;
  double sigma_kms = kNaN, sigma_err_kms = kNaN;    // intrinsic (see header comment)
  double sigma2_kms2 = kNaN, sigma2_err_kms2 = kNaN; // the raw parameter s2 = sigma_int^2
  bool sigma_resolved = false;                       // s2 > 2 s2_err
  double sigma_inst_kms = kNaN;  // at the reference line (Halpha, else [OIII]5007, else the first)
  std::array<WindowContinuum, 2> continuum;          // 0: Hbeta/[OIII], 1: Halpha window
  double chi2 = kNaN, chi2_per_dof = kNaN;
  int dof = 0, channels = 0, iterations = 0;
  bool errors_scaled = false;
};

/// Fits one spectrum of n channels. wavelength_um: channel centres (increasing); width_um: channel
/// widths (nullptr: from the spacing of neighbouring centres); err_sb and dq may be nullptr.
/// `start` (may be nullptr): a previous fit whose velocity and sigma2 start this one (fluxes and
/// continua are then solved linearly); otherwise a moment/cross-correlation guess.
SpectrumFit fit_spectrum(const double* wavelength_um, const double* flux_sb, const double* err_sb,
                         const std::uint32_t* dq, std::size_t n, double redshift, const LsfModel& lsf,
                         const EmissionLineFitOptions& options, const SpectrumFit* start = nullptr,
                         const double* width_um = nullptr);

struct LineFitSummary {
  std::size_t spaxels = 0;
  std::array<std::size_t, 6> count_by_status{};  // indexed by LineFitStatus
  std::size_t warm_started = 0, refits_from_moments = 0;
  int brightest_i = -1, brightest_j = -1;        // the spaxel the rings start from
  int waves = 0, threads = 0;
  double seconds = 0.0;
  std::size_t count(LineFitStatus s) const { return count_by_status[static_cast<std::size_t>(s)]; }
};

/// Fits every spaxel of a cube (the per-spaxel path of the paper) and fills LineMaps (fluxes
/// per spaxel = per-arcsec^2 flux * pixel area). Spaxels are processed in rings (Chebyshev
/// distance) around the brightest spaxel; each ring is one parallel wave that starts from the
/// converged fits of the previous ring, so the maps do not depend on the thread count.
/// fit_ok = 1 only for kConverged; kNoSignal/kAtBound spaxels keep fluxes and EWs but NaN
/// kinematics. continuum_line_free_sb is filled for every spaxel that has data there.
LineMaps fit_cube(const Cube& cube, double redshift, const LsfModel& lsf, const EmissionLineFitOptions& options,
                  LineFitSummary* summary = nullptr);

/// Median of the usable channels with rest wavelength in centre +- half width (both in A); NaN
/// if fewer than 3. Exposed for tests; fit_cube fills continuum_line_free_sb with it.
double line_free_continuum_sb(const double* wavelength_um, const double* flux_sb, const double* err_sb,
                              const std::uint32_t* dq, std::size_t n, double redshift,
                              const EmissionLineFitOptions& options);

}  // namespace slitstep
