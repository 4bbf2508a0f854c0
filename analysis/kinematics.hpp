#pragma once
// slitstep/analysis: gas kinematics as the MSA-3D paper measured them (Sect. 4.2): arctan
// rotation curve, sigma_0, v_c/sigma_0 and its class, dynamical mass within R_e. Pure functions
// on per-spaxel arrays; never prints.
//
// Model (thin disk; geometry conventions of analysis/geometry.hpp and sim/galaxy.hpp):
//   v_los(x, y) = v0 + (2/pi) v_c sin i arctan(R / R_t) cos theta,
// the paper's Eq. 3 v(R) = v0 + (2/pi) v_c arctan(R/R_t) projected with sin i cos theta, R the
// de-projected radius and theta the disk azimuth of the spaxel. Every spaxel is modelled with its
// own exact R and cos theta, so no "on the axis" approximation enters the fit. Which spaxels:
//  * kMajorAxisSlit (default; the paper's "rotation curve extracted along the major axis"): the
//    spaxels whose centre lies within slit_width_arcsec/2 of the kinematic major axis (|b|);
//  * kFullField: all spaxels given (2-D velocity field fit).
// Fit: damped Gauss-Newton (Levenberg-Marquardt, Eigen, numerical central-difference Jacobian)
// with variable projection: LM over (ln R_t[, PA]) only, v0 and v_c sin i (linear for fixed R_t
// and PA) solved exactly at every step; three R_t starts, best chi^2 kept. R_t is bounded to
// [1e-4", 100x the data extent]: at the upper bound the curve is solid-body within the data and
// the status is kOutOfRange ("v_c is unconstrained"), at the lower one a step. Weights are
// 1/velocity_err^2 when every used spaxel has a finite positive error, else uniform. Errors from
// the covariance (J^T W J)^-1, multiplied by chi^2/(n - p) under kScaledByChi2 (default: beam
// smearing and non-circular motions, not the formal velocity errors, dominate the residuals;
// always the case with uniform weights). v_c = (v_c sin i) / sin i; the inclination is taken as
// exact (a catalogue b/a carries no error here). A negative v_c means the given PA points at the
// approaching side: the sign is flipped and PA + 180 is reported (catalogue PAs are mod 180).
// With fit_pa the PA is free (full field), started from the direction of the best-fit velocity
// plane; in kMajorAxisSlit mode the slit is then placed on that PA and the fit repeated with the
// PA fixed.
// sigma_0: median intrinsic dispersion of the spaxels beyond sigma0_min_radius_kpc (paper:
// 3 kpc), error by bootstrap of the median (default) or the paper's "sample standard error"
// (std / sqrt(n)). v_c/sigma_0 error: relative errors in quadrature. Classes (paper, Girard+2020,
// Kassin+2012): >= 3 regular rotation, [1, 3) disturbed rotation, < 1 dispersion-dominated.
// Dynamical mass within R_e: M = v_circ(R_e)^2 R_e / G, with v_circ(R_e) = (2/pi) v_c
// arctan(R_e/R_t) (rotation only, the default). The paper quotes only "approximately 10^11 Msun
// within the half-light radius (6 kpc)" for v_c = 250 km/s, which is v^2 R_e / G without a
// pressure term (250^2 * 6 / G = 8.7e10). Optionally (mdyn_pressure_support) the asymmetric-drift
// term of an exponential disk at R_e (Burkert et al. 2010): v_circ^2 = v_rot^2 + 3.36 sigma_0^2.
// G = 4.300917e-6 kpc (km/s)^2 / Msun.
#include <cstdint>
#include <string_view>
#include <vector>

#include "analysis/geometry.hpp"
#include "analysis/gradient.hpp"

namespace slitstep {

inline constexpr double kGravitationalConstant_kpc_kms2_msun = 4.300917e-6;

enum class RotationCurveMode { kMajorAxisSlit, kFullField };
enum class Sigma0ErrorModel { kBootstrap, kStandardError };
enum class RotationClass { kRegular, kDisturbed, kDispersionDominated, kUndetermined };

/// "regular rotation", "disturbed rotation", "dispersion-dominated", "undetermined".
std::string_view rotation_class_name(RotationClass c);

struct KinematicsOptions {
  RotationCurveMode mode = RotationCurveMode::kMajorAxisSlit;
  double slit_width_arcsec = 0.24;       // full width of the pseudo-slit (3 spaxels of 0.08")
  bool fit_pa = false;                   // PA free (kinematic PA), else geometry.pa_deg is used
  FitErrorModel error_model = FitErrorModel::kScaledByChi2;
  int min_points = 6;                    // spaxels needed for the arctan fit
  int max_iterations = 200;
  double sigma0_min_radius_kpc = 3.0;    // paper: spaxels beyond 3 kpc
  int sigma0_min_spaxels = 3;
  Sigma0ErrorModel sigma0_error = Sigma0ErrorModel::kBootstrap;
  int n_bootstrap = 1000;
  std::uint64_t seed = 1;
  double regular_min_v_over_sigma = 3.0;    // paper: >= 3 regular (well-settled) rotation
  double disturbed_min_v_over_sigma = 1.0;  // paper: 1-3 disturbed; < 1 dispersion-dominated
  bool mdyn_pressure_support = false;       // add 3.36 sigma_0^2 (Burkert+2010) to v^2
  double curve_bin_kpc = 0.5;               // bin width of the 1-D major-axis curve
  void validate() const;
};

/// Per-spaxel inputs (same length): positions in the maps' aperture frame, observed velocity
/// (relative to systemic) and its error, intrinsic dispersion. NaN entries are skipped.
struct KinematicsInput {
  std::vector<double> x_arcsec, y_arcsec;
  std::vector<double> velocity_kms, velocity_err_kms;
  std::vector<double> sigma_kms;
  DiskGeometry geometry;        // centre, PA (start value when fit_pa), inclination, kpc/arcsec
  double re_kpc = std::numeric_limits<double>::quiet_NaN();  // for the dynamical mass
};

struct ArctanFit {
  ValueError v0_kms;
  ValueError vc_obs_kms;   // v_c sin i
  ValueError vc_kms;       // inclination corrected
  ValueError rt_arcsec;
  ValueError pa_deg;       // err NaN when the PA was fixed
  double rt_kpc = std::numeric_limits<double>::quiet_NaN();
  double rmse_kms = std::numeric_limits<double>::quiet_NaN();  // unweighted, about the model
  double chi2 = std::numeric_limits<double>::quiet_NaN();
  int n_points = 0;
  int iterations = 0;
  Status status;
};

struct KinematicsResult {
  ArctanFit fit;
  ValueError sigma0_kms;
  int n_sigma0 = 0;
  ValueError v_over_sigma;
  RotationClass rotation_class = RotationClass::kUndetermined;
  double v_re_kms = std::numeric_limits<double>::quiet_NaN();    // v_circ(R_e) used for M_dyn
  double mdyn_msun = std::numeric_limits<double>::quiet_NaN();
  std::vector<ProfileBin> major_axis_curve;  // signed distance along the receding axis (kpc), median v
  Status status;  // first failure of fit / sigma_0, with the reason
};

/// Rotation class of a v_c/sigma_0 value (NaN -> kUndetermined).
RotationClass classify_v_over_sigma(double v_over_sigma, const KinematicsOptions& o = {});

/// Arctan fit only (spaxel selection by mode; geometry as given unless fit_pa).
ArctanFit fit_arctan_rotation(const KinematicsInput& in, const KinematicsOptions& o);

/// Median of the values and its error (bootstrap of the median or std/sqrt(n)).
ValueError median_with_error(const std::vector<double>& v, Sigma0ErrorModel model, int n_bootstrap,
                             std::uint64_t seed);

/// The whole kinematic analysis.
KinematicsResult analyze_kinematics(const KinematicsInput& in, const KinematicsOptions& o);

}  // namespace slitstep
