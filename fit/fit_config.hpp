#pragma once
// slitstep/fit: the MODEL.toml of `slitstep fit` (docs/configuration.md "MODEL.toml";
// docs/fit.md "The `slitstep fit` command").
//
//   [fit]            space = "cube" | "exposures"; instrument = "auto" | "slitstep" | "ifu";
//                    max_iterations, threads, fd_step; sample, walkers, steps, burn_in, thin,
//                    seed, init_ball; data_redshift (redshift of the data's wavelength axis; 0 for
//                    a de-redshifted cube); cube_noise = "whiten" | "inflate" | "independent",
//                    cube_noise_realisations, cube_noise_seed (slit-stepping cubes: the likelihood
//                    correction for the reconstruction's correlated noise, fit/cube_noise.hpp);
//                    surrogate_pixel_arcsec (sampling through a coarse-sky surrogate, reweighted
//                    to the exact model, fit/reweight.hpp)
//   [model]          the galaxy model's kind and fixed fields: redshift, light_profile, sersic_n,
//                    rotation_curve, calibration, extinction_curve, ebv_mag, thickness_q0,
//                    sigma_slope_kms_per_kpc, ew_halpha_rest_A, sii_ratio_6717_6731, lines
//   [params.NAME]    one fittable parameter (fit/params.hpp fittable_parameter_names()): value,
//                    lower, upper, fixed, prior_mean, prior_sigma. The twelve standard parameters
//                    are free by default; any other fittable name listed here is added (free
//                    unless fixed = true).
//   [ifu]            the generic IFU's PSF / LSF / oversampling (instruments/generic_ifu.hpp keys);
//                    the grid keys (nx, ny, spaxel_arcsec, center_*, wave_*) are refused: the data
//                    cube defines the grid.
// read_fit_model_config() reads and checks every value, each failure an InputError
// "FILE:LINE: table.key = VALUE: rule" (Section::fail); it does not call check_all_used() (the
// caller does, after every reader). build_parameterization() turns a start galaxy (from the
// per-spaxel analysis) plus the [params] tables into the GalaxyParameterization of the fit, with
// data-dependent bounds (centre inside the field, flux upper bound well above the start).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/lines.hpp"
#include "fit/forward.hpp"
#include "fit/params.hpp"
#include "fit/sampler.hpp"
#include "instruments/generic_ifu.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {

enum class FitSpace { kCube, kExposures };
enum class FitInstrument { kAuto, kSlitstep, kIfu };
/// Cube-space likelihood of slit-stepping cubes (fit/cube_noise.hpp): "independent" = each
/// voxel's ERR as if voxels were independent (errors too small); "inflate" = sigma sqrt(kappa),
/// kappa the per-spaxel row sum of the noise correlation measured by Monte Carlo through the
/// reconstruction; "whiten" = generalised least squares with that measured (banded, spatial)
/// covariance.
enum class CubeNoiseMode { kIndependent, kInflate, kWhiten };

struct FitRunConfig {
  std::optional<FitSpace> space;        // unset: from the data (a cube file / an exposure folder)
  FitInstrument instrument = FitInstrument::kAuto;
  FitOptions fit;                       // max_iterations, threads, fd_step
  bool sample = false;                  // run the posterior sampler after the ML fit
  SamplerOptions sampler;               // walkers (32), steps (2000), burn_in (500), thin, seed
  double init_ball = 0.1;               // walkers start at the ML point +- init_ball x its error
  std::optional<double> data_redshift;  // redshift of the data's wavelengths (0 = de-redshifted)
  CubeNoiseMode cube_noise = CubeNoiseMode::kInflate;  // slit-stepping cube space only
  int cube_noise_realisations = 32;     // K pure-noise exposure sets of the Monte Carlo, [2, 1000]
  std::uint64_t cube_noise_seed = 20240607;  // its master seed
  // With sample: run the sampler on the slit-stepping model rendered on this coarser sky pixel
  // (arcsec, (0, 0.1]; e.g. 0.04: ~4x cheaper per evaluation) and reweight its samples to the
  // exact model (fit/reweight.hpp). Unset: sample the exact model.
  std::optional<double> surrogate_pixel_arcsec;
};

struct ModelOverrides {
  std::optional<double> redshift, sersic_n, ebv_mag, thickness_q0, sigma_slope_kms_per_kpc, ew_halpha_rest_A,
      sii_ratio_6717_6731;
  std::optional<std::string> light_profile, rotation_curve, calibration, extinction_curve;
  std::vector<LineId> lines;            // lines the operator renders (empty: operator default)
};

struct ParamOverride {
  std::string name;
  std::optional<double> value, lower, upper, prior_mean, prior_sigma;
  std::optional<bool> fixed;
};

struct FitModelConfig {
  std::string source;                   // file name (messages)
  FitRunConfig run;
  ModelOverrides model;
  std::vector<ParamOverride> params;    // in file order
  std::optional<GenericIfuConfig> ifu;  // [ifu] present
};

/// Reads [fit], [model], [params.*] and [ifu] (see the header comment). InputError on bad values.
FitModelConfig read_fit_model_config(const Config& config);

/// Writes the [model] overrides into `p` (the start galaxy). Throws InputError naming the key
/// when the result breaks a GalaxyParams rule.
void apply_model_overrides(const ModelOverrides& m, GalaxyParams& p, const std::string& source = "[model]");

/// The data's extent, for data-dependent bounds.
struct FitDataContext {
  double x_lo_arcsec = -2.0, x_hi_arcsec = 2.0;  // field (centre bounds)
  double y_lo_arcsec = -2.0, y_hi_arcsec = 2.0;
};

/// The parameterization of a fit: the twelve standard parameters (free) plus any [params] name,
/// default specs with their values from `start`; centre bounds = the field; R_e, R_t upper bounds
/// at least the field's half-diagonal; F(Halpha) upper bound max(default, 1000 x start). Then the
/// [params] overrides. A free start value outside its (final) bounds is moved inside (a note
/// says so; values given in [params] were checked by the reader). Throws InputError for an
/// impossible combination (e.g. a [params] bound that excludes the given value).
GalaxyParameterization build_parameterization(const GalaxyParams& start, const FitModelConfig& config,
                                              const FitDataContext& data, std::vector<std::string>* notes = nullptr);

const char* fit_space_name(FitSpace s);
const char* cube_noise_mode_name(CubeNoiseMode m);

}  // namespace slitstep
