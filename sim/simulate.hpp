#pragma once
// slitstep/sim: the simulate orchestration — galaxy model -> sky cube -> 63 exposures -> noise
// -> reconstructed cube (DESIGN.md §1; docs/cli.md "simulate"; docs/configuration.md).
//
//   render (sim/render)            the model on a fine sky grid whose field of view covers the
//                                  whole stepped/dithered slitlet footprint plus the PSF kernel
//                                  (derived here unless [render] fov_x/fov_y_arcsec are given)
//   observe (instruments/observe)  noiseless, calibrated exposures, one per pointing
//   noise (sim/noise)              Poisson source + background + dark, Gaussian read noise, from
//                                  instruments' expected electrons (to_counts below)
//   reconstruct                    MSA-3D cube on 0.08" spaxels (instruments/reconstruct)
//
// One TOML file describes everything: seed, [galaxy], [render], [sky], [cosmology] (sim/
// scene_config), [slitlet], [pattern], [instrument] (instruments/nirspec), [reconstruct] and
// [noise] (here). read_simulation_config() does NOT call Config::check_all_used(): the
// application does after every module has read its tables.
// Randomness: exposure q draws from Rng(seed).substream(pointing index) (sim/noise.hpp), so the
// products are bit-identical for any thread count.
// Failure: bad config values -> InputError "FILE:LINE: section.key = VALUE: rule"; a model whose
// Halpha/[NII] windows all fall outside the grating/filter band -> InputError naming
// galaxy.redshift, its value and the band. Numerical trouble inside the kernels comes back in the
// statuses of SimulationResult (never printed, never thrown).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/cube.hpp"
#include "core/cube_io.hpp"
#include "core/error.hpp"
#include "instruments/exposure.hpp"
#include "instruments/nirspec.hpp"
#include "instruments/observe.hpp"
#include "instruments/reconstruct.hpp"
#include "sim/noise.hpp"
#include "sim/render.hpp"
#include "sim/scene_config.hpp"

namespace slitstep {

struct SimulationConfig {
  SceneConfig scene;               // seed, galaxy, render, sky, cosmology
  NirspecConfig instrument;        // slitlet, pattern, instrument
  ReconstructOptions reconstruct;  // [reconstruct]
  NoiseModel noise;                // [noise]
  bool fov_derived = true;         // render field of view derived from the footprint (not user-set)
  /// Every member's validate(); throws InvalidOptions naming the field.
  void validate() const;
};

/// The render field of view (arcsec, x and y, centred on the aperture origin) that covers every
/// sky position any open shutter sees in any pointing, plus the PSF kernel half-size at the red
/// end of the band on each side, rounded up to an even number of `pixel_arcsec` pixels:
///   x: 2 (max|step| + open_x/2 + margin),  y: 2 (max|dither| + slitlet half-height + margin),
///   margin = min(psf_radius, 4 FWHM(band_hi)) for "gaussian", psf_radius otherwise, 0 for "none".
struct FieldOfView {
  double x_arcsec = 0.0;
  double y_arcsec = 0.0;
};
FieldOfView required_field_of_view(const NirspecConfig& instrument, double pixel_arcsec);

/// Reads every table (see the header comment). Derives the render field of view when the user
/// did not set it. Refuses a model with no Halpha/[NII] line window inside the band.
SimulationConfig read_simulation_config(const Config& config);

struct SimulateOptions {
  bool noiseless = false;                // no noise drawn; ERR holds the noise that would be
  int threads = 0;                       // OpenMP threads for every stage (0 = OpenMP default)
  std::optional<std::uint64_t> seed;     // overrides SimulationConfig::scene.seed
  bool keep_sky = false;                 // keep the rendered sky cube in the result
  std::vector<int> pointings;            // subset of pointings to observe (empty = all)
};

/// How one rendered line lands on the detector.
struct LineCoverage {
  LineId line{};
  double observed_um = 0.0;              // at the systemic redshift (v = 0)
  double window_lo_um = 0.0, window_hi_um = 0.0;  // its render window
  double fraction_in_band = 0.0;         // fraction of the window inside [band lo, min(band hi, red limit)]
  bool in_chip_gap = false;              // the line centre falls in the NRS1/NRS2 gap
};

struct SimulationTimings {
  double render_s = 0.0, instrument_s = 0.0, observe_s = 0.0, noise_s = 0.0, reconstruct_s = 0.0, total_s = 0.0;
};

struct SimulationResult {
  Status status;                         // worst of the stages; message says which
  RenderSummary render;                  // what render reported (the sky cube's flux, windows, ...)
  std::optional<Cube> sky;               // the rendered sky cube (SimulateOptions::keep_sky)
  std::vector<Exposure> exposures;       // observing order
  NoiseSummary noise;
  ReconstructResult reconstruct;         // .cube is the product
  std::vector<LineCoverage> lines;       // every rendered line
  std::vector<std::string> notes;        // one-line remarks (lines partly outside the band, ...)
  std::uint64_t seed = 0;                // effective seed
  bool noiseless = false;
  std::string grating, filter;
  double band_lo_um = 0.0, band_hi_um = 0.0;
  SimulationConfig config;               // the effective configuration
  SimulationTimings timings;
};

/// Runs the whole chain. Throws only for invalid options / unreadable instrument tables.
SimulationResult simulate(const SimulationConfig& config, const SimulateOptions& options = {});

/// The instrument half of the chain (observe -> noise -> reconstruct) for a given sky cube (any
/// grids; e.g. a uniform or blank test scene). `config.scene` supplies only the seed and the sky
/// frame; render fields of the result stay empty.
SimulationResult observe_sky(const Cube& sky, const SimulationConfig& config, const SimulateOptions& options = {});

/// instruments' expected electrons -> sim/noise's counts (background_e = background + dark;
/// source electrons clamped at 0 against rounding).
ExposureCounts to_counts(const ExposureElectrons& electrons);

struct SimulationWriteOptions {
  bool sky_cube = false;                 // also write DIR/sky.fits (needs SimulationResult::sky)
  bool exposures = true;                 // DIR/exposures/exp_*.fits
};

/// Writes DIR/exposures/<exposure_file_name>.fits, DIR/cube.fits (PRODTYPE "CUBE" plus cards
/// describing the observation: GRATING, FILTER, QUADRANT, SHUTTRI, SHUTTRJ, NSHUTTER, PATTERN,
/// NSTEPS, NDITHERS, NPOINT, EXPTIME, TOTEXPT, COMBINE, NOISELES), DIR/truth.json (truth_json +
/// "observation"), optionally DIR/sky.fits. `meta` supplies version, date, config text; its
/// seed and product type are set here. Every file is written under a temporary name and renamed.
void write_simulation_products(const SimulationResult& result, const std::string& dir, const ProductMeta& meta,
                               const SimulationWriteOptions& write = {});

/// Line flux of one spaxel measured the simple way (used by the demo summary and the tests): the
/// continuum is the mean SCI of the good channels in [cont_lo_um, cont_hi_um]; the line flux is
/// sum over good channels with centres in [line_lo_um, line_hi_um] of (SCI - continuum) * width,
/// times the spaxel area (erg s^-1 cm^-2 per spaxel); the error propagates ERR of those channels
/// (independent detector columns) and of the continuum mean. ok = false if a range has no good
/// channel.
struct SpaxelLineFlux {
  bool ok = false;
  double flux_cgs = 0.0;
  double err_cgs = 0.0;
  double continuum_sb = 0.0;             // per um (cube unit)
  int n_line_channels = 0;
};
SpaxelLineFlux spaxel_line_flux(const Cube& cube, int i, int j, double line_lo_um, double line_hi_um,
                                double cont_lo_um, double cont_hi_um);

/// The spaxel with the largest Halpha flux and its S/N measured by spaxel_line_flux (the demo
/// summary): a box of +-(3 sigma_obs + vc/2) around the systemic Halpha (sigma_obs = sigma0 (+)
/// the nominal R = 2700 instrumental sigma; vc/2 for the rotation seen inside one spaxel), the
/// continuum in a 300 km/s window starting 250 km/s beyond that half-width red-ward of
/// [NII]6584, all from result.config.scene.galaxy. Only spaxels with ok and err > 0 compete;
/// i = j = -1 if none. Defined in sim/simulate_report.cpp.
struct BrightestSpaxel {
  int i = -1, j = -1;  // 0-based spaxel indices of result.reconstruct.cube
  SpaxelLineFlux flux;
};
BrightestSpaxel brightest_halpha_spaxel(const SimulationResult& result);

/// The "observation" object of truth.json (pattern, slitlet, instrument, noise, products).
JsonValue observation_json(const SimulationResult& result);

}  // namespace slitstep
