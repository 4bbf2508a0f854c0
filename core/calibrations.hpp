#pragma once
// slitstep/core: strong-line metallicity calibrations, forward (line ratio -> 12+log(O/H)) and
// inverse (12+log(O/H) -> line ratio), with their validity ranges. Shared by the simulator (which
// inverts a calibration to set line ratios) and by analysis/ (which applies it to measurements).
// All logarithms base 10. Formulas and validity ranges: shared reference calibrations.md §3.1.
//   PP04 N2 linear:  12+log(O/H) = 8.90 + 0.57 N2,                    -2.5 < N2 < -0.3
//   PP04 N2 cubic:   9.37 + 2.03 N2 + 1.26 N2^2 + 0.32 N2^3,          -2.5 < N2 < -0.3
//   PP04 O3N2:       8.73 - 0.32 O3N2,                                 -1 < O3N2 < 1.9
//   M13 N2:          8.743 + 0.462 N2,                                 -1.6 < N2 < -0.2
//   M13 O3N2:        8.533 - 0.214 O3N2,                               -1.1 < O3N2 < 1.7
//   D16 N2S2Ha:      y = log([NII]6584/[SII]6717+6731) + 0.264 N2,
//                    8.77 + y + 0.45 (y + 0.3)^5,                      -1.1 < y < 0.5
// where N2 = log([NII]6584/Halpha), O3N2 = log(([OIII]5007/Hbeta)/([NII]6584/Halpha)).
// Failure: every function returns a CalibrationResult whose status is kOutOfRange (value still
// computed, flagged) outside the validity range and kInvalidInput for non-finite input; the
// inverse of a non-monotonic or out-of-range metallicity reports kOutOfRange. Never silent.
#include <string_view>

#include "core/error.hpp"

namespace slitstep {

enum class Calibration { kPP04N2Linear, kPP04N2Cubic, kPP04O3N2, kM13N2, kM13O3N2, kD16N2S2Ha };

struct CalibrationResult {
  double value = 0.0;  // 12+log(O/H) (forward) or the ratio index (inverse)
  Status status;
};

struct CalibrationRange {
  double index_min;  // validity of the ratio index (N2, O3N2 or y)
  double index_max;
};

std::string_view calibration_name(Calibration c);  // "PP04_N2_cubic", ...
/// Parses the name above (case-sensitive); returns false if unknown.
bool calibration_from_name(std::string_view name, Calibration& out);
CalibrationRange calibration_range(Calibration c);
/// Name of the ratio index the calibration takes: "N2", "O3N2" or "y" (D16).
std::string_view calibration_index_name(Calibration c);

/// Image of the validity range in 12+log(O/H) (all six calibrations are monotonic on the
/// whole real line, so this is the open interval between the values at the range ends).
struct MetallicityRange {
  double z_min;
  double z_max;
};
MetallicityRange calibration_metallicity_range(Calibration c);

/// D16 index y = log([NII]6584 / ([SII]6717+6731)) + 0.264 N2, from the two logarithms.
double d16_index(double log_nii6584_over_sii, double n2);

/// index (N2, O3N2 or y, depending on the calibration) -> 12+log(O/H).
CalibrationResult metallicity_from_index(Calibration c, double index);
/// 12+log(O/H) -> index; exact inverse of metallicity_from_index inside the validity range
/// (closed form for the linear ones, safeguarded Newton/bisection for the cubic and D16).
CalibrationResult index_from_metallicity(Calibration c, double z_12logoh);

}  // namespace slitstep
