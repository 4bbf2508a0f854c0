#pragma once
// slitstep/sim: detector noise for simulated exposures (docs/reconstruction.md, "Noise").
//
// Per detector pixel of each exposure, given the EXPECTED electrons of the source (S) and of
// the background plus dark current (B), the read noise sigma_R (e- per pixel for the
// exposure's effective readout) and the calibration factor to_sb (electrons -> the exposure's
// surface-brightness unit; the observe operator's uniform-shutter calibration), apply_noise
// draws
//     N = Poisson(S + B)            (the Poisson terms switched on; an off term enters as its
//                                    expected value)
//     R = Normal(0, sigma_R)        (if read noise is on)
// and stores, as after the pipeline's background subtraction (the expected background B is
// subtracted exactly, i.e. a noiseless background model; a nodded or master background that
// adds its own noise is not modelled):
//     SCI         = (N + R - B) * to_sb
//     VAR_POISSON = (S + B) * to_sb^2   (only the Poisson terms switched on)
//     VAR_RNOISE  = sigma_R^2 * to_sb^2
//     ERR         = sqrt(VAR_POISSON + VAR_RNOISE)
// The variances are the MODEL variances from the expected counts, not from the drawn counts
// (the JWST pipeline uses the measured ramp slope; model variances keep inverse-variance
// weights unbiased and make SCI/ERR exactly unit-variance in blank sky).
// `noiseless` leaves SCI at its noise-free value S * to_sb and fills ERR / VAR_* with the noise
// that would have been drawn. Pixels with to_sb == 0 (no light reaches them) get SCI = 0 and
// zero variance.
// Randomness: exposure q uses rng.substream(pointing.index) and its pixels in row-major order,
// so the result depends only on (seed, pointing index), never on thread count or order; the
// master seed is written into Exposure::seed (0 for noiseless).
// Failure: size mismatches and negative inputs are returned as a Status (nothing is thrown for
// data; NoiseModel::validate() throws InvalidOptions).
#include <cstdint>
#include <vector>

#include "core/cube.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "instruments/exposure.hpp"

namespace slitstep {

/// Expected counts of one exposure (row-major nv*nu like Exposure). Until the observe operator
/// provides its own counts type, this is the interface; observe fills it.
struct ExposureCounts {
  std::vector<double> source_e;      // expected source electrons per pixel (>= 0)
  std::vector<double> background_e;  // expected background + dark electrons per pixel (>= 0)
  std::vector<double> to_sb;         // electrons -> surface brightness per pixel (>= 0)
  double read_noise_e = 0.0;         // read noise sigma, electrons per pixel, whole exposure
};

struct NoiseModel {
  bool source_poisson = true;      // Poisson noise of the source electrons
  bool background_poisson = true;  // Poisson noise of background + dark electrons
  bool read_noise = true;          // Gaussian read noise
  bool noiseless = false;          // SCI stays noise-free; ERR/VAR_* say what would be drawn
  int threads = 0;                 // OpenMP threads over exposures (0 = default)
  void validate() const;           // threads >= 0
};

struct NoiseSummary {
  Status status;
  std::size_t n_pixels = 0;        // pixels processed
};

/// Adds noise to every exposure in place; counts[q] belongs to exposures[q]. When
/// `model.noiseless` is false the exposures' SCI is rebuilt from the counts (SCI = drawn
/// electrons minus expected background, times to_sb), so the counts must describe them.
NoiseSummary apply_noise(std::vector<Exposure>& exposures, const std::vector<ExposureCounts>& counts,
                         const NoiseModel& model, const Rng& rng);

/// Counts for an exposure whose noise-free SCI is known: source_e = sci / to_sb with a uniform
/// to_sb, background_e given per pixel. For tests and for the counts-free callers.
ExposureCounts counts_from_sb(const Exposure& exposure, double to_sb, double background_e, double read_noise_e);

/// Uniform per-voxel sigma that gives an integrated line S/N of `snr` in the brightest spaxel of
/// a noiseless cube (mock IFU data at a stated depth): a spaxel's line flux is
/// sum_k sci_k * width_k over its channels above 1 % of its peak, its error
/// sigma * sqrt(sum_k width_k^2) over the same channels. Returns 0 for a cube without signal.
double uniform_sigma_for_spaxel_snr(const Cube& noiseless, double snr);

}  // namespace slitstep
