#pragma once
// slitstep/instruments: NIRSpec disperser (grating + filter) as data.
//
// What it models (docs/instruments.md, shared reference nirspec.md §3):
//  * a dispersion table WAVELENGTH (um), DLDS (um per detector pixel), R (resolving power), read
//    from a JDox dispersion FITS file (jwst_nirspec_g140h_disp.fits, confidence H) through
//    core/fits, or taken from a built-in copy sampled from the same files when no file is given;
//  * the band of the grating/filter pair (G140H/F100LP and G140M/F100LP: 0.97-1.89 um, H);
//  * the rectified detector wavelength grid of a source at the centre of the shutter:
//    u(lambda) = integral_{band_lo}^{lambda} dl / DLDS(l), so column u = 0 is centred on the
//    band's blue limit and column centres are at integer u (pixel u spans [u - 1/2, u + 1/2]);
//  * the optical kernel K of the spectrograph: a Gaussian in u whose width is derived so that
//        top-hat(slit width / pixel_x) (x) K (x) pixel-box(1 px)
//    has FWHM = lambda / (R(lambda) DLDS(lambda)) px, i.e. a shutter-filling source observed on
//    detector pixels reproduces the table's nominal R. (The JDox R corresponds to FWHM = 2.20 px
//    at every wavelength; the derived K has FWHM ~1.36 px for a 2-px slit image.) A point source
//    at the shutter centre then has a narrower line (K (x) pixel only, ~1.54 px before the PSF).
// Sign convention: light at in-shutter offset +dx (toward +x of the aperture frame) lands at
// u = u(lambda) + dx / pixel_x, i.e. it appears REDDER (at a larger wavelength column).
// Failure: bad options -> InvalidOptions naming the field; unreadable/invalid tables ->
// InputError naming the file (from core/fits) or the column and row.
#include <string>
#include <vector>

namespace slitstep {

struct DispersionTable {
  std::vector<double> wavelength_um;      // strictly increasing
  std::vector<double> dlds_um_per_px;     // > 0
  std::vector<double> resolving_power;    // > 0
  std::string source;                     // file path or "built-in <grating>"
  /// Sizes equal (>= 2), finite, wavelength strictly increasing, DLDS and R > 0. Throws
  /// InputError naming `source`, the column and the row.
  void validate() const;
};

/// The built-in copy of the JDox dispersion table of "G140H" or "G140M" (sampled every ~0.07 um
/// from the msaexp copies of jwst_nirspec_g140{h,m}_disp.fits; H). Unknown grating: InvalidOptions.
DispersionTable builtin_dispersion_table(const std::string& grating);
/// Reads a JDox-style dispersion table (first binary-table HDU with columns WAVELENGTH, DLDS, R)
/// through core/fits. InputError naming the file for a missing file / column or invalid values.
DispersionTable read_dispersion_table(const std::string& fits_path);

/// Wavelength band (um) of a grating/filter pair: G140H/F100LP and G140M/F100LP -> [0.97, 1.89]
/// (pipeline WAVELENGTHRANGE, H). Unknown pair: InvalidOptions.
struct Band {
  double lo_um = 0.0;
  double hi_um = 0.0;
};
Band grating_filter_band(const std::string& grating, const std::string& filter);

struct DisperserOptions {
  std::string grating = "G140H";        // "G140H" or "G140M"
  std::string filter = "F100LP";        // only "F100LP" is tabulated
  std::string dispersion_table;         // FITS path; "" = built-in copy of the JDox table
  double pixel_x_arcsec = 0.1;          // in-shutter x offset per detector pixel along u (H/M: 0.10-0.104")
  double slit_width_arcsec = 0.2;       // open shutter width that defines the nominal R (H)
  double optical_kernel_fwhm_px = 0.0;  // > 0: use this constant Gaussian K FWHM (px) instead of deriving it
  void validate() const;                // throws InvalidOptions naming the field
};

/// Probability that a uniform source spread over [a, b] (any units), blurred by a Gaussian of
/// standard deviation sigma (> 0), lands in [p, q]. Closed form with
/// Psi(t) = t Phi(t/sigma) + sigma phi(t/sigma); exact for any a <= b (a == b: a point source).
double box_gauss_fraction(double a, double b, double sigma, double p, double q);

/// Immutable disperser model. Construction reads the table (InputError) and derives K.
class Disperser {
 public:
  explicit Disperser(const DisperserOptions& options);
  Disperser(DispersionTable table, const DisperserOptions& options);

  const DisperserOptions& options() const { return options_; }
  const DispersionTable& table() const { return table_; }
  Band band() const { return band_; }

  /// Number of rectified columns covering the band; column centres at u = 0 .. nu-1.
  int num_columns() const { return static_cast<int>(column_wavelength_um_.size()); }
  /// Wavelength of column centres (a source at the shutter centre), size num_columns().
  const std::vector<double>& column_wavelengths_um() const { return column_wavelength_um_; }
  /// Continuous u of a wavelength for a source at the shutter centre (may lie outside [0, nu)).
  double u_of_lambda(double lambda_um) const;
  /// Inverse of u_of_lambda.
  double lambda_of_u(double u) const;
  /// Table interpolation (linear; clamped at the table ends).
  double dlds_um_per_px(double lambda_um) const;
  double resolving_power(double lambda_um) const;
  /// Nominal line FWHM in pixels for a shutter-filling source: lambda / (R DLDS).
  double nominal_fwhm_px(double lambda_um) const;
  /// Gaussian sigma / FWHM (px) of the optical kernel K at lambda.
  double kernel_sigma_px(double lambda_um) const;
  double kernel_fwhm_px(double lambda_um) const { return 2.3548200450309493 * kernel_sigma_px(lambda_um); }
  /// True when the requested nominal FWHM was narrower than the slit image plus pixel allows and
  /// K was clamped to its minimum (0.05 px sigma) somewhere in the band.
  bool kernel_clamped() const { return kernel_clamped_; }
  /// FWHM (px) of top-hat(width_px) (x) Gaussian(sigma) (x) pixel box; exposed for tests.
  static double profile_fwhm_px(double width_px, double sigma_px);

 private:
  void build();
  DisperserOptions options_;
  DispersionTable table_;
  Band band_;
  // fine tabulation of u(lambda)
  double fine_lo_um_ = 0.0, fine_step_um_ = 0.0;
  std::vector<double> fine_u_;
  std::vector<double> column_wavelength_um_;
  // K sigma sampled on a wavelength grid
  double ksig_lo_um_ = 0.0, ksig_step_um_ = 0.0;
  std::vector<double> ksig_px_;
  bool kernel_clamped_ = false;
};

}  // namespace slitstep
