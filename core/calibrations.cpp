#include "core/calibrations.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace slitstep {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kEps = std::numeric_limits<double>::epsilon();

struct CalibrationInfo {
  Calibration id;
  std::string_view name;
  std::string_view index_name;
  CalibrationRange range;
};

// Formulas and validity ranges: shared reference calibrations.md §3.1.
constexpr CalibrationInfo kInfo[] = {
    {Calibration::kPP04N2Linear, "PP04_N2_linear", "N2", {-2.5, -0.3}},
    {Calibration::kPP04N2Cubic, "PP04_N2_cubic", "N2", {-2.5, -0.3}},
    {Calibration::kPP04O3N2, "PP04_O3N2", "O3N2", {-1.0, 1.9}},
    {Calibration::kM13N2, "M13_N2", "N2", {-1.6, -0.2}},
    {Calibration::kM13O3N2, "M13_O3N2", "O3N2", {-1.1, 1.7}},
    {Calibration::kD16N2S2Ha, "D16_N2S2Ha", "y", {-1.1, 0.5}},
};

const CalibrationInfo& info(Calibration c) { return kInfo[static_cast<std::size_t>(c)]; }

// Forward formula without any checks. Horner form, so that huge |x| overflows to +-inf
// instead of producing inf - inf (matters only for the bracketing of far out-of-range inverses).
double forward(Calibration c, double x) {
  switch (c) {
    case Calibration::kPP04N2Linear:
      return 8.90 + 0.57 * x;
    case Calibration::kPP04N2Cubic:
      return ((0.32 * x + 1.26) * x + 2.03) * x + 9.37;
    case Calibration::kPP04O3N2:
      return 8.73 - 0.32 * x;
    case Calibration::kM13N2:
      return 8.743 + 0.462 * x;
    case Calibration::kM13O3N2:
      return 8.533 - 0.214 * x;
    case Calibration::kD16N2S2Ha: {
      const double u = x + 0.3;
      const double u2 = u * u;
      return 8.77 + x + 0.45 * u2 * u2 * u;
    }
  }
  return kNaN;
}

// d forward / dx. Both non-linear calibrations have a strictly positive derivative everywhere:
//  PP04 cubic: 2.03 + 2.52 x + 0.96 x^2, discriminant 2.52^2 - 4*0.96*2.03 = -1.4448 < 0, so the
//              minimum is 2.03 - 2.52^2/(4*0.96) = 0.37625 > 0 at x = -1.3125;
//  D16:        1 + 2.25 (x + 0.3)^4 >= 1.
double derivative(Calibration c, double x) {
  switch (c) {
    case Calibration::kPP04N2Linear:
      return 0.57;
    case Calibration::kPP04N2Cubic:
      return (0.96 * x + 2.52) * x + 2.03;
    case Calibration::kPP04O3N2:
      return -0.32;
    case Calibration::kM13N2:
      return 0.462;
    case Calibration::kM13O3N2:
      return -0.214;
    case Calibration::kD16N2S2Ha: {
      const double u = x + 0.3;
      const double u2 = u * u;
      return 1.0 + 2.25 * u2 * u2;
    }
  }
  return kNaN;
}

std::string range_text(const CalibrationInfo& ci) {
  return format_value(ci.range.index_min) + " < " + std::string(ci.index_name) + " < " +
         format_value(ci.range.index_max);
}

bool inside(double v, double lo, double hi) { return v > lo && v < hi; }

// Root of forward(c, x) = target for the increasing non-linear calibrations: Newton's method
// safeguarded by a bracket (bisection whenever the Newton step leaves it). Returns false if no
// bracket could be found (only for absurd targets such as 1e300 that overflow the polynomial).
bool solve_increasing(Calibration c, double target, double& root) {
  const CalibrationRange r = info(c).range;
  double lo = r.index_min, hi = r.index_max;
  double width = hi - lo;
  auto g = [&](double x) { return forward(c, x) - target; };
  for (int i = 0; g(lo) > 0.0; ++i) {
    if (i > 1100) return false;
    lo -= width;
    width *= 2.0;
  }
  width = hi - r.index_min;
  for (int i = 0; g(hi) < 0.0; ++i) {
    if (i > 1100) return false;
    hi += width;
    width *= 2.0;
  }
  if (!std::isfinite(lo) || !std::isfinite(hi)) return false;
  // Start from the secant through the bracket ends (exact for a linear function).
  const double glo = g(lo), ghi = g(hi);
  double x = (ghi - glo) > 0.0 ? lo - glo * (hi - lo) / (ghi - glo) : 0.5 * (lo + hi);
  if (!(x >= lo && x <= hi)) x = 0.5 * (lo + hi);
  for (int iter = 0; iter < 200; ++iter) {
    const double gx = g(x);
    if (gx == 0.0) {
      root = x;
      return true;
    }
    if (gx < 0.0) {
      lo = x;
    } else {
      hi = x;
    }
    double xn = x - gx / derivative(c, x);
    if (!(xn > lo && xn < hi)) xn = 0.5 * (lo + hi);
    const double step = std::abs(xn - x);
    x = xn;
    if (step <= 4.0 * kEps * std::max(1.0, std::abs(x)) || !(hi - lo > 0.0)) {
      // One last Newton step from the converged point; keep whichever residual is smaller.
      const double gx2 = g(x);
      const double xp = x - gx2 / derivative(c, x);
      root = std::abs(g(xp)) < std::abs(gx2) ? xp : x;
      return true;
    }
  }
  root = x;
  return std::abs(g(x)) <= 64.0 * kEps * std::abs(target);
}

}  // namespace

std::string_view calibration_name(Calibration c) { return info(c).name; }

std::string_view calibration_index_name(Calibration c) { return info(c).index_name; }

bool calibration_from_name(std::string_view name, Calibration& out) {
  for (const auto& ci : kInfo) {
    if (ci.name == name) {
      out = ci.id;
      return true;
    }
  }
  return false;
}

CalibrationRange calibration_range(Calibration c) { return info(c).range; }

MetallicityRange calibration_metallicity_range(Calibration c) {
  const CalibrationRange r = info(c).range;
  const double a = forward(c, r.index_min), b = forward(c, r.index_max);
  return {std::min(a, b), std::max(a, b)};
}

double d16_index(double log_nii6584_over_sii, double n2) {
  return log_nii6584_over_sii + 0.264 * n2;
}

CalibrationResult metallicity_from_index(Calibration c, double index) {
  const CalibrationInfo& ci = info(c);
  if (!std::isfinite(index)) {
    return {kNaN, Status::Error(StatusCode::kInvalidInput,
                                std::string(ci.name) + ": " + std::string(ci.index_name) + " = " +
                                    format_value(index) + " is not finite")};
  }
  CalibrationResult res{forward(c, index), Status::Ok()};
  if (!inside(index, ci.range.index_min, ci.range.index_max)) {
    res.status = Status::Error(
        StatusCode::kOutOfRange,
        std::string(ci.name) + ": " + std::string(ci.index_name) + " = " + format_value(index) +
            " outside the validity range " + range_text(ci) + " (value extrapolated)");
  }
  return res;
}

CalibrationResult index_from_metallicity(Calibration c, double z_12logoh) {
  const CalibrationInfo& ci = info(c);
  if (!std::isfinite(z_12logoh)) {
    return {kNaN, Status::Error(StatusCode::kInvalidInput,
                                std::string(ci.name) + " inverse: 12+log(O/H) = " +
                                    format_value(z_12logoh) + " is not finite")};
  }
  CalibrationResult res;
  switch (c) {
    case Calibration::kPP04N2Linear:
      res.value = (z_12logoh - 8.90) / 0.57;
      break;
    case Calibration::kPP04O3N2:
      res.value = (8.73 - z_12logoh) / 0.32;
      break;
    case Calibration::kM13N2:
      res.value = (z_12logoh - 8.743) / 0.462;
      break;
    case Calibration::kM13O3N2:
      res.value = (8.533 - z_12logoh) / 0.214;
      break;
    case Calibration::kPP04N2Cubic:
    case Calibration::kD16N2S2Ha: {
      double root = kNaN;
      if (!solve_increasing(c, z_12logoh, root)) {
        return {root, Status::Error(StatusCode::kNotConverged,
                                    std::string(ci.name) + " inverse: no root found for 12+log(O/H) = " +
                                        format_value(z_12logoh))};
      }
      res.value = root;
      break;
    }
  }
  const MetallicityRange img = calibration_metallicity_range(c);
  if (!inside(z_12logoh, img.z_min, img.z_max)) {
    res.status = Status::Error(
        StatusCode::kOutOfRange,
        std::string(ci.name) + " inverse: 12+log(O/H) = " + format_value(z_12logoh) +
            " outside (" + format_value(img.z_min) + ", " + format_value(img.z_max) +
            "), the image of the validity range " + range_text(ci) + " (index extrapolated)");
  }
  return res;
}

}  // namespace slitstep
