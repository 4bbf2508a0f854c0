#pragma once
// slitstep/instruments: cube reconstruction from slit-stepping exposures, as MSA-3D did it
// (shared reference nirspec.md §2, slit_stepping_model.md §4; docs/reconstruction.md).
//
// For each step s of the pattern:
//  1. the dithers' rectified frames are put on a common wavelength grid (the exposures' own
//     grid when all agree; otherwise each row is resampled, flux-conserving, onto a linear grid
//     with the smallest native step) and on a fine along-slit grid (pixel_y / fine_factor), in
//     sky coordinates after removing the dither offset (the slitlet at offset (dx, dy) sees sky
//     (x + dx, y + dy)). fine_grid = "drop" (default, drizzle-like: each row's value goes to the
//     fine pixels covered by a drop of drop_fraction x the row height centred on the row centre,
//     as the overlap-weighted average of the good drops; a fine pixel no drop of a dither covers
//     gets no sample from that dither), "interpolate" (MSA-3D: scipy RegularGridInterpolator,
//     linear between row centres; a fine pixel whose neighbouring row is unusable takes its own
//     row's value when its centre lies in that row) or "replicate" (the value of the row that
//     contains the fine pixel's centre);
//  2. per fine pixel and wavelength the good samples are combined: "median" (MSA-3D) or "mean"
//     (inverse-variance weighted mean with iterative sigma clipping; with "drop" the weights are
//     also multiplied by the covered fraction of the fine pixel). Samples are ignored when
//     their DQ has kDqDoNotUse, kDqNoCoverage, kDqChipGap, kDqBarShadow or kDqNonFinite, and
//     when their detector row is less than `min_row_open_fraction` inside an open shutter
//     (geometric bar shadow, computed from the SlitletConfig);
//  3. the step becomes one column of width shutter.open_x_arcsec centred at sky x = offset_x.
// The columns x fine rows are resampled onto square spaxels aligned with the aperture frame:
// spaxel_resample = "overlap" (default: exact-overlap surface-brightness average of the good
// area, flux conserving) or "interpolate" (MSA-3D "interpolated onto a new grid" of 0.08": linear
// in y between fine-pixel centres and in x between the centres of adjacent columns, the column's
// own value within the outer half-column). Both renormalise over the usable inputs.
//
// Variance: for the mean, the exact linear propagation from the detector samples to every
// spaxel (including the covariance between fine pixels that share a detector row, which the
// interpolating fine grid creates between neighbouring fine pixels too). For the
// median, the same propagation with equal weights, times the finite-n efficiency factor
// median_variance_factor(n) (Var(median of n Gaussians) = c_n sigma^2 / n).
//
// Output: Cube with SpatialGrid in arcsec (aperture frame, origin = slitlet centre at zero
// offset), the given SkyFrame, and the exposures' wavelength grid written as contiguous linear
// windows (see ReconstructOptions::wavelength_tolerance_px). SCI/ERR in the exposures' unit;
// voxels with no good data have SCI = ERR = NaN, WMAP = 0 and kDqDoNotUse plus the reason
// (kDqNoCoverage, kDqChipGap, kDqBarShadow). WMAP = the area-averaged number of exposures
// combined in the voxel.
//
// Determinism: the work is split over wavelength channels (OpenMP); every channel is computed
// by the same sequential code, so the output is bit-identical for any thread count.
// Speed ("median" only): all weights, sample lists, coverage and flags of a channel depend on the
// geometry and on which detector rows are usable at that channel (bar shadow, DQ, finite SCI/ERR
// >= 0) and the reasons why not, never on the values. The first channel a thread computes, and
// every channel whose rows' usability differs from the previous channel's, is computed in full and
// recorded; the following channels replay the record (the same floating-point operations in the
// same order on their own SCI/ERR, so the same bits as a full computation). The record lives for
// one call (no state between calls). Exposures with bitwise-equal (offset_y, y0, nv) share their
// row geometry (computed once).
// Failure: ReconstructOptions::validate() throws InvalidOptions; inconsistent exposures are
// reported through ReconstructResult::status (the kernel never throws for data problems,
// never prints).
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/cube.hpp"
#include "core/error.hpp"
#include "core/wcs.hpp"
#include "instruments/exposure.hpp"
#include "instruments/geometry.hpp"

namespace slitstep {

struct ReconstructOptions {
  std::string combine = "median";     // "median" (MSA-3D) or "mean" (inverse-variance, clipped)
  double clip_sigma = 3.0;            // mean only: reject |x - centre| > clip_sigma * sigma_i
  int clip_iterations = 3;            // mean only: clipping passes (0 = no rejection); the
                                      // first centre is the median, later ones the clipped mean
  int fine_factor = 4;                // fine along-slit grid = pixel_y / fine_factor (~0.025")
  std::string fine_grid = "drop";      // "drop" (default: drizzle, each row's value on the fine
                                      // pixels under a drop of drop_fraction x the row, exact
                                      // overlaps), "interpolate" (MSA-3D, linear between row
                                      // centres) or "replicate" (row value copied onto its fine pixels)
  double drop_fraction = 0.5;         // "drop" only: drop height / row height (pixfrac), (0, 1]
  std::string spaxel_resample = "overlap";  // "overlap" (default: exact area, flux conserving) or
                                            // "interpolate" (MSA-3D, bilinear between column and
                                            // fine-pixel centres)
  double spaxel_arcsec = 0.08;        // output spaxel size (square)
  int min_dithers = 1;                // fine pixels with fewer good samples are not used
  int low_coverage_dithers = 4;       // kDqLowCoverage where WMAP < this (MSA-3D: ~6 of 7 nominal);
                                      // "drop": where WMAP < this x drop_fraction (nominal 7 x 0.5)
  double min_row_open_fraction = 0.999;  // rows less open than this count as bar-shadowed
                                         // (0 = keep every row with any open area, as MSA-3D)
  double wavelength_tolerance_px = 0.01;  // max error of the cube's channel centres w.r.t. the
                                          // exposures' (non-linear) grid, in channels
  int threads = 0;                    // OpenMP threads (0 = the OpenMP default)
  std::optional<SpatialGrid> output_grid;  // default: the smallest grid of spaxel_arcsec pixels
                                           // covering every column and fine row, centred on them
  void validate() const;              // throws InvalidOptions naming field, value and rule
};

struct ReconstructResult {
  Cube cube;
  Status status;                      // not ok: cube is empty, message says why
  int n_exposures = 0;                // exposures used
  int n_steps = 0;                    // columns
  double fine_pixel_arcsec = 0.0;     // along-slit fine sampling used
  bool wavelength_resampled = false;  // true when the exposures' grids differed
  double max_wavelength_error_um = 0.0;  // max |cube channel centre - exposure column wavelength|
  std::size_t n_outliers_rejected = 0;   // samples rejected by clipping (mean)
  std::size_t n_voxels_no_data = 0;      // voxels flagged kDqDoNotUse
  std::size_t n_voxels_low_coverage = 0; // voxels flagged kDqLowCoverage
};

/// Rebuilds the cube from the exposures of one slitlet (any order; grouped by pointing.step).
ReconstructResult reconstruct(const std::vector<Exposure>& exposures, const SlitletConfig& slitlet,
                              const PatternConfig& pattern, const SkyFrame& sky,
                              const ReconstructOptions& options = {});

/// c_n such that Var(median of n iid Gaussians of variance s^2) = c_n s^2 / n (even n: mean of
/// the two middle values). Exact values (numerical integration of the order-statistic
/// densities) for n <= 25, the large-n expansion pi/2 - a/n beyond; 1 for n <= 2.
double median_variance_factor(int n);

/// The linear-window representation of a sorted, possibly non-linear list of channel centres:
/// contiguous windows (edges touching, each channel's edges midway between centres) whose
/// centres reproduce `centres_um` within tolerance_px * local step. `max_error_um` receives the
/// largest centre error.
WavelengthGrid windowed_grid_from_centres(const std::vector<double>& centres_um, double tolerance_px,
                                          double* max_error_um = nullptr);

}  // namespace slitstep
