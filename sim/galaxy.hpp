#pragma once
// slitstep/sim: the parametric galaxy model (DESIGN.md §3; docs/sim.md, docs/physics.md
// "Galaxy model").
//
// GalaxyParams is a plain aggregate whose field names are the [galaxy] config keys and the
// truth.json keys; its defaults are the default demo galaxy. GalaxyModel is built from the
// params and a Cosmology, precomputes everything it can and is immutable afterwards (safe to
// share between threads).
//
// Frames and conventions (see core/units.hpp):
//  * positions are offsets (x, y) in arcsec in the aperture (MSA) frame: x along the dispersion
//    direction, y along the slit; (0, 0) is the aperture origin (the SkyFrame reference);
//  * pa_deg is the position angle of the RECEDING half of the major axis, measured from the
//    +y (slit) axis toward -x, i.e. in the same sense as a sky PA; the sky PA of the receding
//    major axis is aperture_pa_deg + pa_deg. Unit vector of the receding major axis in the
//    aperture frame: (-sin pa, cos pa);
//  * a point at offset (dx, dy) from the centre has major/minor coordinates
//      a = -dx sin pa + dy cos pa,   b = dx cos pa + dy sin pa,
//    projected elliptical radius R = sqrt(a^2 + (b/q)^2) (arcsec) with q the projected axis
//    ratio, and disk azimuth theta with cos theta = a / R (theta = 0 on the receding major axis).
//    R is the de-projected galactocentric radius (exact for a thin disk, q = cos i);
//  * line-of-sight velocity (galaxy rest frame, km/s):
//      v_los = v0_kms + v_rot(R) sin i cos theta,
//    v_rot(R) = (2/pi) vc arctan(R/rt) | vc tanh(R/rt) | Freeman (peak vc at 2.15 rt);
//    v0_kms is a uniform systemic offset (the paper's Eq. 3 writes v(R) = v0 + (2/pi) vc
//    arctan(R/Rt); only the rotation part is projected with sin i cos theta);
//  * 12+log(O/H)(R) = z0 + gradient * R_kpc (optionally broken at break_radius_kpc), with
//    R_kpc = R * kpc_per_arcsec(redshift).
// Failure: GalaxyParams::validate() and the GalaxyModel constructor throw InvalidOptions whose
// message names the field, the value and the rule.
#include <array>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "core/calibrations.hpp"
#include "core/cosmology.hpp"
#include "core/lines.hpp"

namespace slitstep {

/// A compact star-forming clump: a circular Gaussian with its own Halpha flux and a metallicity
/// offset from the disk value at its centre. It moves with the disk (v_los and sigma of the
/// disk at its centre) and its flux adds to the disk's.
struct ClumpParams {
  double x_arcsec = 0.0;         // offset from the galaxy centre, aperture frame
  double y_arcsec = 0.0;
  double sigma_arcsec = 0.05;    // Gaussian sigma (> 0)
  double halpha_flux_cgs = 0.0;  // observed (after dust) Halpha flux, erg/s/cm^2 (>= 0)
  double dz_dex = 0.0;           // 12+log(O/H) offset from the disk at the clump centre
  bool operator==(const ClumpParams&) const = default;
};

/// An optional AGN core: a compact central Gaussian with AGN-like line ratios (cf. ID9960).
struct AgnParams {
  bool enabled = false;
  double sigma_arcsec = 0.03;     // spatial Gaussian sigma (> 0)
  double halpha_flux_cgs = 5e-18; // observed Halpha flux of the core (>= 0)
  double sigma_kms = 160.0;       // line-of-sight velocity dispersion (> 0); moves at v0_kms
  double log_nii_halpha = 0.1;    // log [NII]6584/Halpha
  double log_oiii_hbeta = 0.9;    // log [OIII]5007/Hbeta
  double log_sii_halpha = -0.2;   // log ([SII]6717+6731)/Halpha
  bool operator==(const AgnParams&) const = default;
};

struct GalaxyParams {
  // --- position, geometry -----------------------------------------------------------------
  double redshift = 1.0;                // systemic redshift (> 0)
  double log_mstar = 10.0;              // log10 stellar mass / Msun (carried to truth only)
  double center_x_arcsec = 0.0;         // centre in the aperture frame (x: dispersion)
  double center_y_arcsec = 0.0;         //                              (y: slit)
  double pa_deg = 30.0;                 // PA of the receding major axis from +y toward -x
  std::optional<double> inclination_deg;  // [0, 90]; default 55 if neither this nor axis_ratio
  std::optional<double> axis_ratio;       // observed b/a in (0, 1]; alternative to inclination
  double thickness_q0 = 0.0;            // intrinsic axis ratio of an oblate disk, [0, 1)
  // --- light (Halpha) -----------------------------------------------------------------------
  std::string light_profile = "exponential";  // "exponential" | "sersic"
  double sersic_n = 1.0;                // Sersic index (used by "sersic"), [0.3, 8]
  double re_arcsec = 0.35;              // half-light semi-major axis (> 0)
  double halpha_flux_cgs = 2e-17;       // total observed Halpha flux of the disk (>= 0)
  // --- kinematics ---------------------------------------------------------------------------
  std::string rotation_curve = "arctan";  // "arctan" | "tanh" | "freeman"
  double vc_kms = 180.0;                // arctan/tanh asymptote; freeman: peak velocity (>= 0)
  double rt_arcsec = 0.10;              // turnover radius; freeman: disk scale length h (> 0)
  double v0_kms = 0.0;                  // systemic velocity offset (|v0| < 3000)
  double sigma0_kms = 45.0;             // intrinsic velocity dispersion at R = 0 (> 0)
  double sigma_slope_kms_per_kpc = 0.0; // sigma(R) = max(sigma0 + slope R_kpc, 1 km/s)
  // --- chemistry ----------------------------------------------------------------------------
  double z0_12logoh = 8.60;             // central 12+log(O/H)
  double gradient_dex_per_kpc = -0.030; // inner (or only) slope
  std::optional<double> break_radius_kpc;        // broken profile: break radius (> 0)
  std::optional<double> gradient_outer_dex_per_kpc;  // slope beyond the break (needs the break)
  std::string calibration = "PP04_N2_cubic";  // core/calibrations.hpp calibration_name()
  double sii_ratio_6717_6731 = 1.35;    // [SII]6717/6731 (density indicator), [0.4, 1.5]
  // --- dust -----------------------------------------------------------------------------------
  double ebv_mag = 0.0;                 // nebular E(B-V) (>= 0)
  std::string extinction_curve = "cardelli1989";  // "cardelli1989" (R_V=3.1) | "calzetti2000"
  // --- continuum ------------------------------------------------------------------------------
  double ew_halpha_rest_A = 50.0;       // rest EW(Halpha) of the integrated galaxy (0 = none)
  std::optional<double> continuum_re_arcsec;  // continuum half-light radius (default re_arcsec)
  double continuum_beta = -1.0;         // f_lambda ∝ lambda^beta (observed frame)
  // --- extra components -----------------------------------------------------------------------
  std::vector<ClumpParams> clumps;
  AgnParams agn;

  /// Throws InvalidOptions naming the first broken rule ("GalaxyParams.<field> = <v>: rule").
  void validate() const;
  bool operator==(const GalaxyParams&) const = default;
};

/// One broken validation rule. `group` is "" for a [galaxy] key, "clumps" (with `index`) or
/// "agn"; `key` is the config key. Used by validate() and by the config reader to point at the
/// offending line of the file.
struct ParamIssue {
  std::string group;
  int index = -1;
  std::string key;
  std::string value;
  std::string rule;
};
/// All broken rules, in field order (empty if the params are valid).
std::vector<ParamIssue> check_params(const GalaxyParams& p);

enum class LightProfile { kExponential, kSersic };
enum class RotationCurve { kArctan, kTanh, kFreeman };
enum class ExtinctionCurve { kCardelli1989, kCalzetti2000 };

/// Attenuation curve k(lambda) = A_lambda / E(B-V) at a rest-frame wavelength in Angstrom.
/// Cardelli, Clayton & Mathis 1989 (R_V = 3.1, optical/NIR branches) or Calzetti et al. 2000
/// (R'_V = 4.05).
double extinction_k(ExtinctionCurve curve, double rest_A);

/// Sersic b_n: the solution of P(2n, b_n) = 1/2 (regularised lower incomplete gamma).
double sersic_bn(double n);

/// Line fluxes of one emission component relative to its observed Halpha, after dust.
using LineRatios = std::array<double, kNumLines>;

/// Result of turning a metallicity into line ratios.
struct ChemistryRatios {
  LineRatios ratio{};          // F_line / F_Halpha (observed), indexed by LineId
  unsigned clamped_mask = 0;   // bit (1 << Calibration) set if that calibration's index clamped
};

class GalaxyModel {
 public:
  GalaxyModel(const GalaxyParams& params, const Cosmology& cosmology);

  const GalaxyParams& params() const { return p_; }
  const CosmologyParams& cosmology() const { return cosmo_; }

  // ---- derived geometry ----
  double inclination_deg() const { return incl_deg_; }
  double sin_i() const { return sin_i_; }
  double axis_ratio() const { return q_; }  // projected b/a of the light
  double kpc_per_arcsec() const { return kpc_per_arcsec_; }
  double re_kpc() const { return p_.re_arcsec * kpc_per_arcsec_; }
  double sersic_n() const { return n_; }
  double sersic_bn() const { return bn_; }
  LightProfile light_profile() const { return light_; }
  RotationCurve rotation_curve() const { return rc_; }
  Calibration calibration() const { return cal_; }
  ExtinctionCurve extinction_curve() const { return ext_; }
  double continuum_re_arcsec() const { return cont_re_; }

  /// Major/minor coordinates and de-projected radius (arcsec) of an aperture-frame position.
  struct DiskCoords {
    double a = 0.0;  // along the receding major axis
    double b = 0.0;  // along the minor axis
    double r = 0.0;  // de-projected (elliptical) radius, arcsec
  };
  DiskCoords disk_coords(double x_arcsec, double y_arcsec) const {
    return disk_coords_offset(x_arcsec - p_.center_x_arcsec, y_arcsec - p_.center_y_arcsec);
  }
  /// Same for an offset (dx, dy) from the galaxy centre.
  DiskCoords disk_coords_offset(double dx, double dy) const {
    DiskCoords c;
    c.a = -dx * sin_pa_ + dy * cos_pa_;
    c.b = dx * cos_pa_ + dy * sin_pa_;
    const double bq = c.b * inv_q_;
    c.r = std::sqrt(c.a * c.a + bq * bq);
    return c;
  }

  // ---- kinematics ----
  /// Rotation speed (without v0) at de-projected radius R (arcsec), km/s.
  double rotation_kms(double r_arcsec) const;
  /// Line-of-sight velocity (km/s, galaxy rest frame) of the disk at an aperture position.
  double vlos_kms(double x_arcsec, double y_arcsec) const;
  /// Intrinsic dispersion (km/s) at de-projected radius R (arcsec).
  double sigma_kms(double r_arcsec) const;
  /// Upper bound of |v_rot(R)| over all R (km/s).
  double max_rotation_kms() const { return vmax_rot_; }

  // ---- chemistry ----
  /// Disk 12+log(O/H) at de-projected radius R (arcsec).
  double metallicity(double r_arcsec) const;
  /// Observed line fluxes relative to observed Halpha for a metallicity (dust included).
  ChemistryRatios ratios_for_metallicity(double z_12logoh) const;
  const LineRatios& agn_ratios() const { return agn_ratio_; }
  /// Dust factor 10^(-0.4 E(B-V) (k_line - k_Halpha)) per line.
  const LineRatios& dust_factors() const { return dust_; }

  // ---- light ----
  /// Normalised surface brightness of the Halpha disk (fraction of the total per arcsec^2) at
  /// elliptical radius R (arcsec); integrates to 1 over the plane.
  double disk_profile(double r_arcsec) const { return profile_value(r_arcsec, p_.re_arcsec, disk_norm_); }
  /// Same for the continuum light (radius continuum_re_arcsec()).
  double continuum_profile(double r_arcsec) const { return profile_value(r_arcsec, cont_re_, cont_norm_); }
  /// Fraction of the profile (half-light radius re) inside elliptical radius R.
  double enclosed_fraction(double r_arcsec, double re_arcsec) const;

  // ---- continuum ----
  bool has_continuum() const { return p_.ew_halpha_rest_A > 0.0; }
  /// Total continuum flux density (erg/s/cm^2/um, whole galaxy) at an observed wavelength.
  double continuum_flux_density(double wavelength_um) const;

  // ---- clumps / AGN derived ----
  struct ClumpDerived {
    double vlos_kms, sigma_kms, z_12logoh;
    ChemistryRatios ratios;
  };
  const std::vector<ClumpDerived>& clump_derived() const { return clumps_; }

  // ---- totals ----
  /// Total model flux (erg/s/cm^2) of each line: disk (radial integral of the local ratios over
  /// the light profile) + clumps + AGN. Independent of any rendering grid.
  const LineRatios& line_flux_total_cgs() const { return total_flux_; }
  /// Observed wavelength (um) of a line emitted at line-of-sight velocity v (km/s).
  double observed_wavelength_um(LineId id, double v_kms = 0.0) const;

 private:
  double profile_value(double r, double re, double norm) const;
  GalaxyParams p_;
  CosmologyParams cosmo_;
  double incl_deg_ = 55.0, sin_i_ = 0.0, q_ = 1.0, inv_q_ = 1.0;
  double sin_pa_ = 0.0, cos_pa_ = 1.0;
  double kpc_per_arcsec_ = 0.0;
  double n_ = 1.0, bn_ = 0.0, inv_n_ = 1.0;
  double disk_norm_ = 0.0, cont_norm_ = 0.0, cont_re_ = 0.0;
  LightProfile light_ = LightProfile::kExponential;
  RotationCurve rc_ = RotationCurve::kArctan;
  Calibration cal_ = Calibration::kPP04N2Cubic;
  Calibration cal_n2_ = Calibration::kPP04N2Cubic, cal_o3n2_ = Calibration::kPP04O3N2;
  ExtinctionCurve ext_ = ExtinctionCurve::kCardelli1989;
  double freeman_norm_ = 0.0, vmax_rot_ = 0.0;
  LineRatios dust_{}, agn_ratio_{}, total_flux_{};
  std::vector<ClumpDerived> clumps_;
  double cont_fd_halpha_ = 0.0, lambda_halpha_um_ = 0.0;
};

/// Name helpers (parse/format the string options).
bool light_profile_from_name(const std::string& s, LightProfile& out);
bool rotation_curve_from_name(const std::string& s, RotationCurve& out);
bool extinction_curve_from_name(const std::string& s, ExtinctionCurve& out);

}  // namespace slitstep
