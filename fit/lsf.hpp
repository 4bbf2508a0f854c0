#pragma once
// slitstep/fit: LsfModel, the instrumental line-spread function used to remove the instrumental
// width from fitted emission lines.
//
// The LSF is a Gaussian whose standard deviation sigma_inst (km/s) depends on the OBSERVED vacuum
// wavelength (um). A fitted line of intrinsic dispersion sigma_int has the observed width
//   sigma_obs(lambda)^2 = sigma_int^2 + sigma_inst(lambda)^2      (km/s; sigma_lambda = lambda sigma / c)
// Sources of sigma_inst:
//  * a NIRSpec Disperser: sigma_inst = c / (R(lambda) * 2.3548), with R the NOMINAL resolving
//    power of the JDox table, i.e. the width of a shutter-filling (uniformly illuminated) source.
//    A point source centred in a shutter has a narrower line (instruments/disperser.hpp); this is
//    the convention of the MSA-3D paper (FWHM ~ 5.2 A, sigma ~ 50 km/s) and of reconstructed cubes;
//  * a constant resolving power R (sigma_inst = c / (2.3548 R), constant in km/s);
//  * a constant FWHM in Angstrom (observed frame; e.g. SAMI 1.61 A, GMOS from its header):
//    sigma_inst(lambda) = c * FWHM_A / (2.3548 * lambda_A);
//  * a constant sigma in km/s;
//  * a table (wavelength_um strictly increasing, sigma_kms > 0), linearly interpolated.
// Outside the wavelength range of a Disperser/table the model is NOT extrapolated: covers()
// returns false and sigma_kms() returns the nearest end value (callers check covers()).
// Immutable value; construction throws InvalidOptions naming the argument and the value.
#include <string>
#include <vector>

namespace slitstep {

class Disperser;

inline constexpr double kFwhmPerSigma = 2.3548200450309493;  // 2 sqrt(2 ln 2)

class LsfModel {
 public:
  enum class Kind { kConstantSigma, kConstantResolvingPower, kConstantFwhmA, kTabulated };

  /// Nominal slit-filling LSF of a NIRSpec disperser, sampled every `step_um` over its band.
  static LsfModel from_disperser(const Disperser& disperser, double step_um = 5.0e-4);
  static LsfModel constant_resolving_power(double resolving_power);
  /// Constant FWHM in observed-frame Angstrom.
  static LsfModel constant_fwhm_A(double fwhm_A);
  static LsfModel constant_sigma_kms(double sigma_kms);
  /// sigma_kms tabulated against wavelength_um (>= 2 rows, strictly increasing, sigma > 0).
  static LsfModel tabulated(std::vector<double> wavelength_um, std::vector<double> sigma_kms,
                            std::string source = "table");

  Kind kind() const { return kind_; }
  /// Instrumental sigma (km/s) at an observed wavelength (um).
  double sigma_kms(double wavelength_um) const;
  /// d sigma_kms / d lambda (km/s per um) at an observed wavelength (0 where constant/clamped).
  double dsigma_kms_dum(double wavelength_um) const;
  /// True where the model is defined (always for the constant kinds).
  bool covers(double wavelength_um) const;
  /// One line, e.g. "NIRSpec G140H nominal R (slit-filling)" or "constant FWHM 1.61 A".
  const std::string& description() const { return description_; }

 private:
  LsfModel() = default;
  Kind kind_ = Kind::kConstantSigma;
  double value_ = 0.0;  // sigma_kms, R or FWHM_A depending on kind
  std::vector<double> wl_um_, sigma_kms_;
  std::string description_;
};

}  // namespace slitstep
