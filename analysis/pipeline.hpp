#pragma once
// slitstep/analysis: the MSA-3D analysis chain in one call (paper Sects. 2.2-4.2; DESIGN §6):
// LineMaps -> spaxel selection -> BPT/WHAN -> metallicity -> centre, PA, inclination ->
// de-projected radii -> gradients (kpc and R_e) + radial profile -> kinematics (arctan
// rotation curve, sigma_0, v_c/sigma_0, M_dyn). Never prints and never throws for numerical
// trouble (only validate() throws InvalidOptions); each stage reports a Status with its reason.
//
// Selection (paper Sect. 2.2): fit_ok, S/N(F_Halpha) = F/err > min_halpha_snr (10) and
// S/N(EW_Halpha) = EW/err > min_ew_snr (5), both strict.
// Classification (analysis/classify.hpp), per spaxel, diagram `kAuto` (default):
//  * [NII] BPT when Hbeta, [OIII]5007, Halpha and [NII]6584 are all `measured` with a positive
//    flux of S/N >= min_bpt_line_snr (3) each (upper limits are not used);
//  * otherwise WHAN with EW(Halpha) and EW([NII]6584) (if the [NII] EW map is NaN, EW([NII]) =
//    EW(Halpha) * 10^N2: both lines sit on the same continuum).
//  kBPT forces the BPT (spaxels without the four lines are unclassified); kWHAN forces WHAN.
//  The galaxy's `classification` is "BPT" if the BPT classified a strict majority of the
//  selected spaxels, else "WHAN"; with no selected spaxel it is "BPT" if all four lines are
//  measured in the maps (availability), else "WHAN".
// Metallicity (analysis/metallicity.hpp) for selected spaxels; a spaxel enters the gradient only
// if it is selected, classified SF and its metallicity is ok (in range, error below the cut).
// The gradient needs >= min_sf_spaxels (20) such spaxels, else gradient status kFailed.
// Geometry: centre given or the continuum peak (analysis/geometry.hpp); inclination given,
// else from the given b/a (cos i = b/a, thin disk unless disk_thickness_q0 > 0), else from the
// light moments of the line-free continuum map; PA given (receding major axis, from +y toward
// -x; a catalogue PA is mod 180 and is flipped by 180 if the velocity field says so), else
// kinematic (free PA in a full-field arctan fit; default) or from the light moments.
// Radii: R_kpc = de-projected R (arcsec) * kpc_per_arcsec(z) of `cosmology`.
// Gradients: dex/kpc over [gradient_r_min_kpc, gradient_r_max_kpc] (0.5 kpc to the field edge)
// and dex/R_e over [gradient_re_min, gradient_re_max] R_e (0.5-2.5) when re_kpc is given.
// Seeds: `seed` drives every bootstrap (gradient: seed; sigma_0: Rng::splitmix64(seed + 1)).
// Continuum-subtracted maps (`continuum`; e.g. SAMI cubes): Halpha detected (fit_ok and
// S/N(Halpha) > min_halpha_snr) in at least one spaxel but an EW(Halpha) (finite, error > 0) in
// none of them. Their continuum maps are noise about zero, so the continuum maps are ignored (the
// centre comes from the Halpha flux, the light moments from the Halpha map), the EW cut cannot be
// passed (gradient status kFailed), and the kinematics come from every spaxel with fit_ok,
// S/N(Halpha) > min_halpha_snr and a finite velocity, with the PA given or else fitted
// (kinematic); radii are recomputed with that PA. Two notes say so (first in `notes`).
// Overall status rewrites: halpha_outside_reason non-empty -> kOutOfRange "<reason>: no spaxel
// selection, ..."; else no Halpha-detected spaxel and a failed status -> "no spaxel with
// S/N(Halpha) > X (a faint field?): <status>".
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/classify.hpp"
#include "analysis/geometry.hpp"
#include "analysis/gradient.hpp"
#include "analysis/kinematics.hpp"
#include "analysis/metallicity.hpp"
#include "core/cosmology.hpp"
#include "core/line_maps.hpp"

namespace slitstep {

enum class DiagramChoice { kAuto, kBPT, kWHAN };
enum class PaSource { kKinematic, kLightMoments };
// kPresent: the maps' continuum is real (the paper's chain as is). kSubtracted: the cube was
// continuum-subtracted (continuum and EW maps are ignored). kAuto: kSubtracted when Halpha is
// detected but no detected spaxel has an EW (see the header comment), else kPresent.
enum class ContinuumMode { kAuto, kPresent, kSubtracted };

struct AnalysisOptions {
  // Selection (paper Sect. 2.2).
  double min_halpha_snr = 10.0;  // S/N(Halpha flux) > 10
  double min_ew_snr = 5.0;       // S/N(EW(Halpha)) > 5
  // Classification.
  ClassifyOptions classify;
  DiagramChoice diagram = DiagramChoice::kAuto;
  double min_bpt_line_snr = 3.0;  // each of the four BPT lines needs S/N >= this
  // Metallicity (PP04 N2 cubic, 0.18 dex in quadrature, 0.25 dex cut).
  MetallicityOptions metallicity;
  int min_sf_spaxels = 20;        // paper: >= 20 star-forming spaxels
  // Cosmology (paper's flat LCDM).
  CosmologyParams cosmology;
  // Geometry.
  CenterOptions center;
  std::optional<std::array<double, 2>> center_arcsec;  // given centre (x, y), aperture frame
  std::optional<double> pa_deg;           // given (catalogue) PA; else fitted (pa_source)
  std::optional<double> axis_ratio;       // given b/a in (0, 1]
  std::optional<double> inclination_deg;  // given i in [0, 90) (alternative to axis_ratio)
  double disk_thickness_q0 = 0.0;         // paper: thin disk (cos i = b/a)
  PaSource pa_source = PaSource::kKinematic;
  MomentsOptions moments;
  std::optional<double> re_kpc;           // effective radius (catalogue), for dex/R_e and M_dyn
  // Gradients.
  double gradient_r_min_kpc = 0.5;                                      // paper: 0.5 kpc
  double gradient_r_max_kpc = std::numeric_limits<double>::infinity();  // paper: field edge
  double gradient_re_min = 0.5;                                         // paper: 0.5 R_e
  double gradient_re_max = 2.5;                                         // paper: 2.5 R_e
  FitErrorModel gradient_error_model = FitErrorModel::kAbsolute;
  int gradient_bootstrap = 0;     // resamples for a bootstrap slope error (0 = none)
  double profile_bin_kpc = 0.5;   // binned radial profile
  // Kinematics.
  KinematicsOptions kinematics;
  bool kinematics_sf_only = false;  // false: every selected spaxel traces the velocity field
  std::uint64_t seed = 1;
  // Continuum of the maps. Default kPresent (the library's historical behaviour); `slitstep
  // analyze` uses kAuto.
  ContinuumMode continuum = ContinuumMode::kPresent;
  // Set by a caller that found Halpha outside the data's wavelength range: the reason (e.g.
  // halpha_outside_range()'s text). Non-empty -> overall status kOutOfRange naming it.
  std::string halpha_outside_reason;
  /// Validates this struct and every nested options struct; throws InvalidOptions naming the
  /// field, the value and the rule.
  void validate() const;
};

struct SpaxelRow {
  int i = 0, j = 0;  // 0-based map indices
  double x_arcsec = 0, y_arcsec = 0;
  double radius_kpc = 0;
  double halpha_flux = 0, halpha_snr = 0, ew_snr = 0;
  double velocity_kms = 0, sigma_kms = 0;
  double n2 = 0;
  double o3n2 = 0;  // log10([OIII]5007 / Hbeta) - n2 (NaN where either ratio is undefined, log_ratio)
  double z_12logoh = 0, z_err = 0, z_err_stat = 0;
  std::string class_name;  // spaxel_class_name()
  std::string diagram;     // "BPT", "WHAN" or "" (not classified)
  bool selected = false;   // passed the S/N selection
  bool in_gradient = false;
  std::string reason;      // why not selected / not in the gradient (empty if in the gradient)
};

struct AnalysisSummary {
  ValueError gradient_dex_per_kpc;
  ValueError gradient_dex_per_re;
  double rmse_dex = std::numeric_limits<double>::quiet_NaN();  // about the dex/kpc fit
  int n_spaxels_selected = 0;
  int n_spaxels_sf = 0;     // selected, SF and metallicity ok
  std::string classification;  // "BPT" or "WHAN"
  std::array<double, 2> center_arcsec{std::numeric_limits<double>::quiet_NaN(),
                                      std::numeric_limits<double>::quiet_NaN()};
  ValueError vc_kms;
  ValueError rt_arcsec;
  ValueError sigma0_kms;
  ValueError v_over_sigma;
  std::string rotation_class;
  double inclination_deg = std::numeric_limits<double>::quiet_NaN();
  double pa_deg = std::numeric_limits<double>::quiet_NaN();
  std::string pa_source;           // "given", "kinematic", "light_moments"
  std::string inclination_source;  // "given_inclination", "given_axis_ratio", "light_moments"
  double kpc_per_arcsec = std::numeric_limits<double>::quiet_NaN();
  double mdyn_msun = std::numeric_limits<double>::quiet_NaN();
  Status status;              // ok only if every stage is ok; else the first failure
  Status gradient_status;
  Status kinematics_status;
  Status geometry_status;
};

struct AnalysisResult {
  std::vector<SpaxelRow> spaxels;  // every spaxel of the maps, index j*nx + i
  AnalysisSummary summary;
  LineFit gradient_kpc;            // radius in kpc
  LineFit gradient_re;             // radius in R_e
  std::vector<ProfileBin> profile_kpc;  // metallicity in radial bins (gradient spaxels)
  KinematicsResult kinematics;
  CenterResult center;
  std::vector<std::string> notes;  // non-fatal remarks (fallbacks, flips)
};

/// Runs the whole chain. Throws InvalidOptions only if o.validate() fails or the maps are
/// inconsistent (array sizes), never for numerical trouble.
AnalysisResult analyze_maps(const LineMaps& maps, const AnalysisOptions& o);

/// Empty if Halpha at `redshift` falls strictly inside (min_um, max_um) (observed frame, um);
/// else the reason, "Halpha at L um (z = Z) is outside the cube's wavelength range A-B um", for
/// AnalysisOptions::halpha_outside_reason and the caller's notes.
std::string halpha_outside_range(double redshift, double min_um, double max_um);

}  // namespace slitstep
