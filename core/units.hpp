#pragma once
// slitstep/core: physical constants, unit conversions and strong types.
//
// Internal unit system (see docs/conventions.md):
//  * observed wavelengths in micrometres (vacuum), rest-frame line centres in Angstrom (vacuum);
//  * angles on the sky in arcsec; position angles in degrees (east of north) at interfaces,
//    carried as `Angle` inside the code;
//  * velocities in km/s; line-of-sight velocity v maps to wavelength with the relativistic
//    Doppler formula lambda_obs = lambda_rest (1+z) sqrt((1+v/c)/(1-v/c)) (z is the systemic
//    redshift; v is measured in the galaxy rest frame);
//  * fluxes in erg s^-1 cm^-2 (`_cgs`); surface brightness in erg s^-1 cm^-2 um^-1 arcsec^-2.
#include <cmath>

namespace slitstep {

inline constexpr double kPi = 3.14159265358979323846;
inline constexpr double kSpeedOfLight_kms = 299792.458;
inline constexpr double kArcsecPerRad = 206264.80624709636;
inline constexpr double kDegPerRad = 57.29577951308232;
inline constexpr double kAngstromPerUm = 1.0e4;

/// Surface-brightness unit of every slitstep cube (FITS BUNIT string).
inline constexpr const char* kSurfaceBrightnessBunit = "erg s-1 cm-2 um-1 arcsec-2";

/// Strong angle type: construct from a named unit, read out in a named unit.
class Angle {
 public:
  constexpr Angle() = default;
  static constexpr Angle from_rad(double r) { return Angle(r); }
  static constexpr Angle from_deg(double d) { return Angle(d / kDegPerRad); }
  static constexpr Angle from_arcsec(double a) { return Angle(a / kArcsecPerRad); }
  constexpr double rad() const { return rad_; }
  constexpr double deg() const { return rad_ * kDegPerRad; }
  constexpr double arcsec() const { return rad_ * kArcsecPerRad; }
  double sin() const { return std::sin(rad_); }
  double cos() const { return std::cos(rad_); }
  constexpr Angle operator+(Angle o) const { return Angle(rad_ + o.rad_); }
  constexpr Angle operator-(Angle o) const { return Angle(rad_ - o.rad_); }
  constexpr Angle operator-() const { return Angle(-rad_); }
  constexpr Angle operator*(double f) const { return Angle(rad_ * f); }
  constexpr bool operator==(const Angle&) const = default;

 private:
  constexpr explicit Angle(double r) : rad_(r) {}
  double rad_ = 0.0;
};

/// Tangent-plane offset on the sky from a reference position: xi toward east, eta toward north.
struct SkyOffset {
  double xi_arcsec = 0.0;
  double eta_arcsec = 0.0;
};

/// Offset in the aperture (MSA) frame: x along the dispersion direction, y along the slitlet.
struct MsaOffset {
  double x_arcsec = 0.0;
  double y_arcsec = 0.0;
};

/// Rotation between the aperture frame and the sky frame. `aperture_pa` is the position angle
/// (east of north) of the aperture's +y axis (along the slit). The +x axis (dispersion) points at
/// PA + 90 deg + 180 deg, i.e. x = west for PA = 0, so that (x right, y up) is a non-flipped sky
/// image with east to the left:
///   xi  = -x cos(PA) + y sin(PA),   eta = x sin(PA) + y cos(PA).
inline SkyOffset msa_to_sky(MsaOffset m, Angle aperture_pa) {
  const double c = aperture_pa.cos(), s = aperture_pa.sin();
  return {-m.x_arcsec * c + m.y_arcsec * s, m.x_arcsec * s + m.y_arcsec * c};
}
inline MsaOffset sky_to_msa(SkyOffset o, Angle aperture_pa) {
  const double c = aperture_pa.cos(), s = aperture_pa.sin();
  return {-o.xi_arcsec * c + o.eta_arcsec * s, o.xi_arcsec * s + o.eta_arcsec * c};
}

/// Relativistic Doppler factor (1+v/c)/(1-v/c) under a square root, v in km/s.
inline double doppler_factor(double velocity_kms) {
  const double b = velocity_kms / kSpeedOfLight_kms;
  return std::sqrt((1.0 + b) / (1.0 - b));
}
/// Inverse of doppler_factor: velocity (km/s) for a wavelength ratio lambda/lambda_systemic.
inline double velocity_from_ratio_kms(double ratio) {
  const double r2 = ratio * ratio;
  return kSpeedOfLight_kms * (r2 - 1.0) / (r2 + 1.0);
}

}  // namespace slitstep
