#pragma once
// slitstep/instruments: a generic integral-field unit (DESIGN.md §4.4; docs/generic_ifu.md).
//
// A regular cube instrument: square spaxels on a SpatialGrid (aperture frame of the IFU, x right,
// y up, arcsec), one linear vacuum wavelength grid (um), a wavelength-independent PSF
// ("gaussian", "multi_gaussian", "moffat", tabulated "file", or "none") and a Gaussian LSF
// (sigma in km/s or FWHM in Angstrom, constant or tabulated against wavelength). It lets the
// same forward fitter fit MUSE, SAMI, KMOS, GMOS or NIRSpec-IFU cubes.
//
// The operator (reference path, observe()):
//   sky cube (any SpatialGrid in the same frame; windowed or linear WavelengthGrid, channels read
//   as boxes: piecewise-constant surface brightness)
//   -> LSF: every sky channel box is convolved with a unit Gaussian of variance LSF(lambda_k)^2 -
//      width^2/6 and integrated exactly over the output channels (flux conserving; light outside
//      the output range is lost, as in a real instrument). The width^2/6 removes the excess of a
//      binned spectrum read as boxes (Sheppard's width^2/12 for the flux placed at the channel
//      centre plus the box's width^2/12), so lines keep the continuous spectrum's width to second
//      order; a sky channel wider than sqrt(6) LSF sigma is refused (InvalidOptions).
//   -> area-weighted (flux conserving) resampling onto the WORK grid: fine pixels of
//      spaxel/oversample covering the field plus a margin of >= the PSF radius
//   -> PSF: zero-padded linear convolution with the pixel-integrated, unit-sum kernel (separable
//      1-D passes for Gaussian / multi-Gaussian kernels, else FFT)
//   -> binning of oversample x oversample fine pixels into each spaxel (mean surface brightness).
// The PSF does not depend on wavelength, so doing the LSF before the PSF is the same operator as
// "PSF per channel, then LSF" (they act on different axes) and much cheaper.
//
// The fast path for fitting (sim/ifu_model.hpp) renders a galaxy straight onto the work grid with
// the LSF folded into the line profile and then calls convolve_and_bin() on a Workspace: the
// same plans, kernel transform and binning as observe().
//
// Units: surface brightness erg s^-1 cm^-2 um^-1 arcsec^-2 in and out (kSurfaceBrightnessBunit).
// Threads: GenericIfu is immutable after construction; every const member is thread-safe. All
// mutable scratch lives in a Workspace (one per thread). FFTW plans are made once, under the
// planner mutex, with FFTW_ESTIMATE (deterministic results); the FFTW calls made per call are the
// thread-safe new-array execute functions.
// Failure: GenericIfuConfig::validate() -> InvalidOptions "GenericIfuConfig.<field> = v: rule";
// read_generic_ifu_config() -> InputError "FILE:LINE: ifu.<key> = v: rule"; an unreadable PSF file
// -> InputError naming it. Kernels never print.
#include <memory>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/cube.hpp"
#include "core/grid.hpp"
#include "core/wcs.hpp"
#include "instruments/psf.hpp"

namespace slitstep {

struct GenericIfuConfig {
  // --- output spaxel grid (IFU aperture frame; the field is centred on (center_x, center_y)) ---
  int nx = 24;                      // spaxels along x, [1, 2000]
  int ny = 46;                      // spaxels along y, [1, 2000]
  double spaxel_arcsec = 0.05;      // square spaxel size, (0, 10]
  double center_x_arcsec = 0.0;     // field centre in the frame (|.| <= 600)
  double center_y_arcsec = 0.0;
  SkyFrame sky;                     // reference position and PA of +y (for the FITS WCS)
  // --- wavelength grid: linear, vacuum, observed frame ---
  // Default: 150 channels of 54.0 km/s centred on Halpha at z = 1 (1.31292 um).
  double wave_start_um = 1.2953023;  // centre of the first channel, (0, 100)
  double wave_step_um = 2.364893e-4; // channel width, > 0
  int n_wave = 150;                  // number of channels, [1, 100000]
  // --- PSF (constant over the wavelength range) ---
  std::string psf_model = "gaussian";  // "gaussian" | "multi_gaussian" | "moffat" | "file" | "none"
  double psf_fwhm_arcsec = 0.12;       // gaussian and moffat FWHM, (0, 20]
  std::vector<double> psf_weights;     // multi_gaussian: component weights (> 0, normalised to sum 1)
  std::vector<double> psf_fwhms_arcsec;  // multi_gaussian: component FWHMs (> 0), same length
  double psf_moffat_beta = 2.5;        // moffat: I ~ (1 + (r/alpha)^2)^-beta, beta in (1, 50]
  std::string psf_file;                // file: FITS image (first 2-D image HDU), any normalisation
  double psf_file_pixel_arcsec = 0.0;  // file: its pixel scale (> 0)
  // Kernel truncation radius (the kernel is renormalised to unit sum inside it); 0 = automatic:
  // gaussian / multi_gaussian 2 x (largest) FWHM (light outside < 2e-5); moffat: the radius
  // holding 99.5 % of the light (capped at 10 FWHM); file: half the image's smaller side.
  double psf_radius_arcsec = 0.0;
  // --- LSF: Gaussian ---
  std::string lsf_kind = "sigma_kms";  // "sigma_kms": values are sigma in km/s; "fwhm_A": FWHM in Angstrom (observed)
  std::vector<double> lsf_values = {50.0};  // one value (constant) or one per lsf_wavelength_um node
  std::vector<double> lsf_wavelength_um;    // empty (constant) or increasing nodes; linear interpolation, clamped
  // --- rendering ---
  int oversample = 1;                  // fine pixels per spaxel side for rendering and the PSF, [1, 16]

  /// Throws InvalidOptions naming the first broken rule.
  void validate() const;
  /// The output spaxel grid and wavelength grid.
  SpatialGrid spatial_grid() const;
  WavelengthGrid wavelength_grid() const;
};

/// One broken rule of a GenericIfuConfig: `key` is the config key (= field name).
struct IfuConfigIssue {
  std::string key;
  std::string value;
  std::string rule;
};
/// Every broken rule, in field order (empty if valid).
std::vector<IfuConfigIssue> check_generic_ifu_config(const GenericIfuConfig& c);

/// Reads a TOML table [ifu] (keys = the field names above; "sky_ra_deg", "sky_dec_deg",
/// "sky_pa_deg" for the frame; the LSF as ONE of lsf_sigma_kms / lsf_fwhm_A, a number or, with
/// lsf_wavelength_um, an array). Bad values -> InputError "FILE:LINE: ifu.KEY = VALUE: rule".
/// Unknown keys are left for Config::check_all_used().
GenericIfuConfig read_generic_ifu_config(const Section& ifu);

/// Nominal FWHM (arcsec) of the PSF model: gaussian/moffat as configured; multi_gaussian: of the
/// summed radial profile (solved numerically); file: from the image's second moment (needs the
/// image); none: 0.
double generic_ifu_psf_fwhm_arcsec(const GenericIfuConfig& c, const PsfImage* image = nullptr);
/// Radius (arcsec) actually used for the kernel (psf_radius_arcsec or the automatic rule).
double generic_ifu_psf_radius_arcsec(const GenericIfuConfig& c, const PsfImage* image = nullptr);
/// The PSF integrated over square pixels of `pixel_arcsec`, truncated at the radius and
/// normalised to unit sum. Gaussians exactly (erf), Moffat with 6x6 Gauss-Legendre nodes per
/// pixel, file by bilinear interpolation with 5x5 sub-samples. `image` is required for "file".
PsfKernel make_generic_ifu_psf_kernel(const GenericIfuConfig& c, double pixel_arcsec,
                                      const PsfImage* image = nullptr);

class GenericIfu {
 public:
  /// Validates, reads the PSF file if any, builds the kernel on the work grid, the FFTW plans and
  /// the kernel's transform.
  explicit GenericIfu(const GenericIfuConfig& config);
  ~GenericIfu();
  GenericIfu(const GenericIfu&) = delete;
  GenericIfu& operator=(const GenericIfu&) = delete;

  /// Per-thread scratch for observe() and convolve_and_bin(): the work cube (spectrum-contiguous on
  /// the FFT grid, nl+1 channels per pixel: the output channels plus one "continuum image" slot),
  /// its transform and block flags. Allocated once; nothing is allocated per call.
  class Workspace {
   public:
    explicit Workspace(const GenericIfu& ifu);
    ~Workspace();
    Workspace(Workspace&&) noexcept;
    Workspace& operator=(Workspace&&) noexcept;
    Workspace(const Workspace&) = delete;
    Workspace& operator=(const Workspace&) = delete;

    /// The work cube: value of fine pixel (I, J), channel k at data()[(J * row_pixels() + I) *
    /// channels() + k], I < work_grid().nx, J < work_grid().ny. Channel nl() is the continuum slot.
    double* data() { return real_; }
    std::size_t row_pixels() const { return nxf_; }
    std::size_t channels() const { return nlw_; }
    /// Zeroes every channel written since the last clear (cheap: tracks the dirty range) and
    /// resets the active flags. Call before writing a new model.
    void clear();
    /// Declares channels [k0, k1) as holding light (so their FFTs are not skipped). k1 <= nl()+1.
    void mark_active(std::size_t k0, std::size_t k1);
    /// Number of channels (of nl()+1) the last convolve_and_bin() convolved with the PSF.
    std::size_t transformed_channels() const { return transformed_; }

   private:
    friend class GenericIfu;
    std::size_t nxf_ = 0, nyf_ = 0, nlw_ = 0, ncplx_ = 0, block_ = 1;
    double* real_ = nullptr;
    void* cplx_ = nullptr;  // fftw_complex*
    std::vector<unsigned char> active_;  // per block
    std::size_t dirty_lo_ = 0, dirty_hi_ = 0;  // channel range possibly non-zero
    std::size_t transformed_ = 0;
    std::vector<double> sep_;            // separable PSF: the x-convolved rows of each component
  };
  Workspace make_workspace() const { return Workspace(*this); }

  const GenericIfuConfig& config() const { return config_; }
  const SpatialGrid& spatial() const { return spatial_; }
  const WavelengthGrid& spectral() const { return spectral_; }
  std::size_t nl() const { return spectral_.size(); }
  int oversample() const { return config_.oversample; }
  /// Fine pixels (spaxel / oversample) covering the field plus margin_spaxels() on every side.
  const SpatialGrid& work_grid() const { return work_; }
  int margin_spaxels() const { return margin_; }
  int fft_nx() const { return nxf_; }
  int fft_ny() const { return nyf_; }
  /// The PSF kernel on the work grid's pixels (unit sum).
  const PsfKernel& psf_kernel() const { return kernel_; }
  /// True when the kernel is a sum of separable terms (Gaussian, multi-Gaussian): then the PSF is
  /// applied as 1-D convolutions along x and y of the output region only (no FFT).
  bool psf_separable() const { return !sep_x_.empty(); }
  double psf_fwhm_arcsec() const { return psf_fwhm_; }
  double psf_radius_arcsec() const { return psf_radius_; }
  /// Fraction of the analytic PSF's light beyond the truncation radius (before renormalisation);
  /// 0 for "file" and "none".
  double psf_truncated_fraction() const { return psf_lost_; }
  /// LSF sigma (um) at an observed wavelength.
  double lsf_sigma_um(double wavelength_um) const;

  /// Reference path: out = instrument(sky). `sky` in slitstep's surface-brightness unit, on any
  /// spatial grid in the same frame (same SkyFrame) and any wavelength grid. `out` becomes a cube
  /// on spatial() x spectral() (noiseless: no quality planes). `direct` = PSF by direct summation
  /// instead of FFT (slow; for tests).
  void observe(const Cube& sky, Cube& out, bool direct = false) const;
  void observe(const Cube& sky, Cube& out, Workspace& ws, bool direct = false) const;

  /// Convolves the active channels of the work cube with the PSF and bins them into `out_sci`
  /// (resized to nx*ny*nl, Cube layout): out channel k = binned channel k for k < nl, plus (if
  /// the continuum slot is active) binned slot nl times continuum_spectrum[k]. `continuum_spectrum`
  /// may be null. Channels never marked active come out as exactly 0 (plus continuum).
  void convolve_and_bin(Workspace& ws, std::vector<double>& out_sci,
                        const double* continuum_spectrum = nullptr, bool direct = false) const;
  /// The same into out_sci[0 .. nx*ny*nl) (every value written).
  void convolve_and_bin(Workspace& ws, double* out_sci, const double* continuum_spectrum = nullptr,
                        bool direct = false) const;

 private:
  struct Fft;
  GenericIfuConfig config_;
  SpatialGrid spatial_, work_;
  WavelengthGrid spectral_;
  int margin_ = 0, nxf_ = 0, nyf_ = 0;
  PsfKernel kernel_;
  double psf_fwhm_ = 0.0, psf_radius_ = 0.0, psf_lost_ = 0.0;
  bool psf_enabled_ = true;
  // Separable kernel: kernel(dx, dy) = sum_c sep_x_[c][dx + half] * sep_y_[c][dy + half].
  std::vector<std::vector<double>> sep_x_, sep_y_;
  void convolve_separable(Workspace& ws) const;
  bool lsf_kms_ = true;             // lsf_kind == "sigma_kms"
  std::vector<double> lsf_table_;  // uniform table of sigma_um when the LSF is tabulated
  double lsf_t0_ = 0.0, lsf_inv_dt_ = 0.0;
  std::unique_ptr<Fft> fft_;
};

}  // namespace slitstep
