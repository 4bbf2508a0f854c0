#pragma once
// slitstep/instruments: the telescope PSF at the MSA and its application to a sky cube.
//
// Models (PsfConfig::model):
//  * "gaussian": circular Gaussian, FWHM = fwhm_arcsec * (lambda / ref_wavelength_um). Default
//    0.075" at 1.4 um (L: between the diffraction core 1.03 lambda/D = 0.046" and the
//    ~0.078" FWHM of the Gaussian fitted to the MOS path-loss model, nirspec.md §6).
//  * "airy": centrally obscured Airy pattern, D = 6.5 m (H), obscuration ratio 0.12 (L);
//    I(v) ~ [2 J1(v)/v - e^2 2 J1(e v)/(e v)]^2, v = pi D theta / lambda; truncated at
//    radius_arcsec and renormalised (the wings beyond ~0.6" hold ~1-2 % of the light; stated
//    as a loss of the model, not of the instrument).
//  * "file": a 2-D FITS image (primary HDU or first image HDU) with pixel scale
//    file_pixel_arcsec; scaled in size by lambda / file_ref_wavelength_um when that is > 0.
//  * "none": no convolution.
// Kernels are integrated over the cube's pixels (Gaussian exactly with erf, others with 5x5
// sub-samples), truncated to a square of half-size radius_arcsec (Gaussian: min(radius, 4 FWHM))
// and normalised to unit sum (flux conserving).
// Wavelength dependence: a kernel is held constant over runs of channels (within one window of
// the cube's WavelengthGrid) whose FWHM varies by at most 2 * max_fwhm_rel_change, evaluated at
// the run's mid wavelength: the FWHM error of any channel is <= max_fwhm_rel_change (default
// 0.5 %, i.e. a 0.021 um run at 1.3 um). Plans and kernel transforms are then reused.
// FFT: zero-padded linear convolution (sky outside the cube is zero); FFTW r2c/c2r plans are
// created once per PsfConvolver (FFTW_ESTIMATE: deterministic), under a global planner mutex;
// apply() is const and thread-safe, parallel over channels with OpenMP, deterministic.
// Failure: PsfConfig::validate() -> InvalidOptions naming the field; unreadable file ->
// InputError naming it.
#include <memory>
#include <string>
#include <vector>

#include "core/cube.hpp"
#include "core/grid.hpp"

namespace slitstep {

struct PsfConfig {
  std::string model = "gaussian";      // "gaussian" | "airy" | "file" | "none"
  double fwhm_arcsec = 0.075;          // gaussian FWHM at ref_wavelength_um (L)
  double ref_wavelength_um = 1.4;      // FWHM is proportional to lambda / ref_wavelength_um
  double diameter_m = 6.5;             // airy: telescope diameter (H)
  double obscuration = 0.12;           // airy: linear central obscuration ratio (L)
  std::string file;                    // file: FITS image
  double file_pixel_arcsec = 0.0;      // file: pixel scale of the image (> 0 required)
  double file_ref_wavelength_um = 0.0; // file: > 0 scales the image size by lambda / this
  double radius_arcsec = 0.6;          // kernel truncation half-size
  double max_fwhm_rel_change = 0.005;  // kernel held constant while its FWHM changes less than this
  void validate() const;
};

/// Nominal FWHM (arcsec) of the PSF at lambda: gaussian as configured; airy 1.029 lambda/D
/// (unobscured core); file: 2 file pixels (use PsfConvolver::fwhm_arcsec for the image's
/// second-moment estimate); none: 0.
double psf_fwhm_arcsec(const PsfConfig& c, double wavelength_um);

/// A normalised PSF kernel sampled on square pixels of `pixel_arcsec`: (2*half+1)^2 values,
/// row-major (dy outer, dx inner), centre at (half, half).
struct PsfKernel {
  int half = 0;
  double pixel_arcsec = 0.0;
  std::vector<double> values;
  double at(int dx, int dy) const { return values[static_cast<std::size_t>(dy + half) * (2 * half + 1) + dx + half]; }
};

/// Tabulated PSF image (model "file"), loaded once.
struct PsfImage {
  int nx = 0, ny = 0;             // FITS NAXIS1, NAXIS2
  std::vector<double> values;     // row-major (y outer), unit sum
};
/// Reads a 2-D PSF image through core/fits (first HDU with NAXIS = 2). InputError naming the file.
PsfImage read_psf_image(const std::string& path);
/// Equivalent Gaussian FWHM (pixels) of a tabulated PSF image from its second moments.
double psf_image_fwhm_pixels(const PsfImage& image);

/// The kernel at `wavelength_um` on pixels of `pixel_arcsec`. `image` is required for "file".
PsfKernel make_psf_kernel(const PsfConfig& c, double wavelength_um, double pixel_arcsec,
                          const PsfImage* image = nullptr);

/// Convolves every channel plane of cubes on fixed grids with the PSF (see header comment).
class PsfConvolver {
 public:
  /// Builds chunks, kernels, their transforms and the FFTW plans. Reads the PSF file if needed.
  PsfConvolver(const PsfConfig& c, const SpatialGrid& spatial, const WavelengthGrid& spectral);
  ~PsfConvolver();
  PsfConvolver(const PsfConvolver&) = delete;
  PsfConvolver& operator=(const PsfConvolver&) = delete;

  bool enabled() const { return enabled_; }
  /// out (resized to in.size()) = PSF (x) in, channel by channel; `in` in Cube layout
  /// (spectrum-contiguous). Uses FFTs. in.size() must equal nx*ny*nl of the grids. `threads`:
  /// OpenMP threads over channels (0 = OpenMP default); the result does not depend on it.
  void apply(const std::vector<double>& in, std::vector<double>& out, int threads = 0) const;
  /// Gaussian model only: the same convolution as two 1-D direct passes (x, then y) with the 1-D
  /// factor of each chunk's kernel (the 2-D Gaussian kernel is exactly the outer product of its
  /// erf-integrated 1-D factor, normalised), on the spectrum-contiguous layout (vectorised over
  /// channels), skipping the all-zero ends of every spectrum (and so all-zero channels).
  ///  * truncate_sigma = 0 (default): the FFT path's kernel, taps to min(radius, 4 FWHM) =
  ///    9.4 sigma: equals apply() to rounding (test: < 1e-12 of the peak).
  ///  * truncate_sigma > 0: the 1-D factor cut at ceil(truncate_sigma * sigma / pixel) taps
  ///    (never more than the full kernel) and renormalised to unit sum: an APPROXIMATION (flux
  ///    conserving) for fitters; the error is the Gaussian tail beyond the cut (4 sigma: ~1e-4 of
  ///    the peak; 6 sigma: ~1e-8; tests/test_psf.cpp measures it). The simulator never uses it.
  /// `scratch` (resized as needed) holds the x-pass result; keep it between calls to avoid
  /// allocations. Thread count does not change the result (each value is summed by one thread
  /// in a fixed order). Throws InvalidOptions for a non-Gaussian model or a wrong input size.
  /// `columns_needed` / `rows_needed` (nx / ny flags; empty = all): only the outputs at
  /// (needed column, needed row) are computed, bit for bit as without the masks; the other
  /// outputs are LEFT UNCHANGED (out keeps its previous content when it has the right size).
  /// For operators that read only part of the cube (observe reads the pixels the shutters see).
  /// `y_pass` = false: only the x factor is applied, straight into `out` (scratch untouched), at
  /// the needed (column, row) outputs — for observe with the y factor folded into its row
  /// responses (instruments/observe.hpp fold_psf_rows).
  /// `ranges` (optional): resized to 2 nx ny; for every output pixel q, [2q] = first and [2q+1] =
  /// last channel of a conservative nonzero range (every channel outside it is exactly 0 in
  /// `out`); first > last: all zero, or not computed (masked out).
  void apply_separable(const std::vector<double>& in, std::vector<double>& out, std::vector<double>& scratch,
                       int threads = 0, double truncate_sigma = 0.0, const std::vector<char>& columns_needed = {},
                       const std::vector<char>& rows_needed = {}, bool y_pass = true,
                       std::vector<int>* ranges = nullptr) const;
  /// True when apply_separable is available (model "gaussian", enabled).
  bool separable() const { return enabled_ && config_.model == "gaussian"; }
  /// The normalised 1-D factor (2*half+1 taps) apply_separable uses for chunk c.
  std::vector<double> separable_factor(std::size_t chunk, double truncate_sigma = 0.0) const;

  /// Same result by direct summation (slow; the reference path for tests).
  void apply_direct(const std::vector<double>& in, std::vector<double>& out) const;

  /// Runs of channels sharing one kernel (empty when disabled).
  std::size_t num_chunks() const { return chunk_first_.size(); }
  std::size_t chunk_of_channel(std::size_t k) const { return chunk_of_[k]; }
  std::size_t chunk_first(std::size_t c) const { return chunk_first_[c]; }
  std::size_t chunk_end(std::size_t c) const { return chunk_end_[c]; }
  /// Largest relative FWHM error made by holding kernels constant over chunks.
  double max_fwhm_rel_error() const { return max_rel_err_; }
  /// FWHM (arcsec) of the PSF model at lambda (file: from the image's second moment). 0 for none.
  double fwhm_arcsec(double wavelength_um) const;
  /// Kernel used for channel k.
  const PsfKernel& kernel_for_channel(std::size_t k) const { return kernels_[chunk_of_[k]]; }

 private:
  // Checks the input size (throws InvalidOptions naming `who`); with the PSF disabled copies in to
  // out and returns true (nothing left to do).
  bool pass_through(const char* who, const std::vector<double>& in, std::vector<double>& out) const;
  struct Fft;
  bool enabled_ = false;
  PsfConfig config_;
  double file_fwhm_arcsec_ = 0.0;
  int nx_ = 0, ny_ = 0;
  std::size_t nl_ = 0;
  std::vector<std::size_t> chunk_first_, chunk_end_, chunk_of_;
  std::vector<PsfKernel> kernels_;
  std::vector<std::vector<double>> factors_;  // Gaussian: normalised 1-D factor per chunk (cached)
  std::vector<double> chunk_sigma_px_;        // Gaussian: sigma (cube pixels) per chunk
  double max_rel_err_ = 0.0;
  std::unique_ptr<Fft> fft_;
};

}  // namespace slitstep
