#pragma once
// slitstep/core: the emission-line list. Rest-frame VACUUM wavelengths in Angstrom from the SDSS
// reference list (see shared reference calibrations.md §3.4), fixed doublet ratios and the case-B
// Balmer decrement. Observed wavelength (um) of a line at redshift z:
//   lambda_obs_um = rest_A * (1 + z) / 1e4.
#include <array>
#include <optional>
#include <string_view>

namespace slitstep {

enum class LineId { kHbeta, kOIII4959, kOIII5007, kNII6548, kHalpha, kNII6584, kSII6717, kSII6731 };
inline constexpr int kNumLines = 8;

struct EmissionLine {
  LineId id;
  std::string_view name;  // short machine name used in configs, maps and CSV: "halpha", "nii6584", ...
  std::string_view label; // human label: "Halpha", "[NII]6584", ...
  double rest_A;          // vacuum rest wavelength, Angstrom
};

/// All lines, ordered by wavelength.
const std::array<EmissionLine, kNumLines>& emission_lines();
const EmissionLine& line(LineId id);
/// Line by machine name; std::nullopt if unknown.
std::optional<LineId> line_from_name(std::string_view name);
double observed_wavelength_um(LineId id, double redshift);
/// Air -> vacuum wavelength (Angstrom) with the Morton (1991) refractive index used by SDSS:
/// n = 1 + 2.735182e-4 + 131.4182/lambda^2 + 2.76249e8/lambda^4 (lambda in Angstrom, the air
/// value is used in n; this is the SDSS convention, accurate to ~1e-3 A in the optical).
/// Returns NaN for non-finite or non-positive input.
double air_to_vacuum_A(double air_A);

inline constexpr double kOIIIDoubletRatio = 2.98;  // [OIII]5007 / [OIII]4959
inline constexpr double kNIIDoubletRatio = 3.0;    // [NII]6584 / [NII]6548
inline constexpr double kCaseBHalphaHbeta = 2.86;  // intrinsic Halpha / Hbeta (T = 1e4 K)

}  // namespace slitstep
