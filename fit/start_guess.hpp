#pragma once
// slitstep/fit: starting guesses of a forward-model fit from the per-spaxel line maps (LineMaps
// of fit/line_fit fit_cube) and, where available, the MSA-3D analysis of those maps
// (analysis/pipeline analyze_maps) (docs/fit.md "The `slitstep fit` command").
//
// fit/ sits above analysis/ in the module table (DESIGN.md §1), so this file does not call
// analyze_maps: the caller (apps/cmd_fit) runs it and passes the numbers it trusts in an
// AnalysisGuess (every field optional). What the analysis does not give comes from the maps:
//  * selection: fit_ok and S/N(Halpha flux) > min_halpha_snr;
//  * centre: Halpha-flux-weighted centroid of the selected spaxels;
//  * inclination: cos i = b/a of the flux-weighted second moments about the centre, with the PSF's
//    variance (psf_sigma_arcsec^2) removed from both eigenvalues; clamped to [15, 80] deg;
//  * PA and v0: the best-fitting velocity plane v = a + b x + c y (weights 1/err^2): the receding
//    axis points along (b, c), so PA = atan2(-b, c); v0 = the plane at the centre. A plane with no
//    significant gradient falls back to the light's major axis (PA ambiguous by 180 deg: noted);
//  * v_c: (95th - 5th percentile of the selected velocities) / 2 / sin i, in [20, 800] km/s;
//  * R_t: 0.3 R_e (at least half a spaxel);
//  * sigma0: median intrinsic dispersion of the selected spaxels, in [5, 300] km/s;
//  * F(Halpha): the sum of every finite Halpha flux of the map (per spaxel -> total);
//  * R_e: the semi-major axis of the ellipse (centre, PA, b/a) holding half of the selected flux,
//    the PSF removed in quadrature (a Gaussian's half-light radius 1.1774 sigma), >= half a spaxel;
//  * z0: the metallicity whose model [NII]6584/Halpha (GalaxyModel::ratios_for_metallicity of the
//    base galaxy: calibration, dust) equals the summed [NII]6584 / summed Halpha (bisection in
//    [7, 9.5]); gradient 0 unless the analysis gives one;
//  * EW(Halpha) (a fixed nuisance: the model's continuum) = summed flux / summed (flux / EW) over
//    spaxels whose EW has S/N > min_ew_snr; 0 when fewer than min_spaxels have one (a
//    continuum-subtracted cube) or when it exceeds 2000 A.
// Everything is clamped into the default bounds; every fallback and clamp adds a note.
// Never throws for numerical trouble; never prints.
#include <optional>
#include <string>
#include <vector>

#include "core/line_maps.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {

/// Numbers from analyze_maps the caller trusts (a stage whose status is not ok gives none).
struct AnalysisGuess {
  std::optional<double> center_x_arcsec, center_y_arcsec;
  std::optional<double> pa_deg;
  std::optional<double> inclination_deg;
  std::optional<double> vc_kms, rt_arcsec, v0_kms;
  std::optional<double> sigma0_kms;
  std::optional<double> gradient_dex_per_kpc;
};

struct StartGuessOptions {
  double min_halpha_snr = 5.0;     // spaxels used for the map-based guesses
  double psf_sigma_arcsec = 0.0;   // PSF Gaussian sigma removed from the light moments and R_e
  double flux_scale = 1.0;         // multiplies the summed flux (e.g. the wavelength stretch)
  int min_spaxels = 3;             // fewer selected spaxels: map guesses fall back to the base
  double min_ew_snr = 5.0;         // spaxels whose EW(Halpha) S/N exceeds this set the continuum
};

struct StartGuess {
  GalaxyParams params;             // base with the guesses written in
  int n_selected = 0;              // spaxels used
  std::vector<std::string> sources;  // one "name = value (source)" line per guessed parameter
  std::vector<std::string> notes;  // fallbacks, clamps
};

/// Guesses for the twelve standard parameters (and ew_halpha_rest_A) on top of `base` (which
/// supplies everything else: redshift, profile, rotation-curve kind, calibration, ...).
StartGuess start_guess(const LineMaps& maps, const GalaxyParams& base, const AnalysisGuess& analysis = {},
                       const StartGuessOptions& options = {});

}  // namespace slitstep
