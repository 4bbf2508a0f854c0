#include "core/lines.hpp"

#include <cmath>
#include <limits>

#include "core/units.hpp"

namespace slitstep {

namespace {

// SDSS reference line list (vacuum, Angstrom), shared reference calibrations.md §3.4.
constexpr std::array<EmissionLine, kNumLines> kLines = {{
    {LineId::kHbeta, "hbeta", "Hbeta", 4862.68},
    {LineId::kOIII4959, "oiii4959", "[OIII]4959", 4960.295},
    {LineId::kOIII5007, "oiii5007", "[OIII]5007", 5008.240},
    {LineId::kNII6548, "nii6548", "[NII]6548", 6549.86},
    {LineId::kHalpha, "halpha", "Halpha", 6564.61},
    {LineId::kNII6584, "nii6584", "[NII]6584", 6585.27},
    {LineId::kSII6717, "sii6717", "[SII]6717", 6718.29},
    {LineId::kSII6731, "sii6731", "[SII]6731", 6732.67},
}};

// The table is indexed by the enum value: check the order at compile time.
constexpr bool table_is_in_enum_order() {
  for (int i = 0; i < kNumLines; ++i) {
    if (static_cast<int>(kLines[static_cast<std::size_t>(i)].id) != i) return false;
    if (i > 0 && !(kLines[static_cast<std::size_t>(i)].rest_A >
                   kLines[static_cast<std::size_t>(i - 1)].rest_A)) {
      return false;
    }
  }
  return true;
}
static_assert(table_is_in_enum_order(), "kLines must follow LineId order and increase in wavelength");

}  // namespace

const std::array<EmissionLine, kNumLines>& emission_lines() { return kLines; }

const EmissionLine& line(LineId id) { return kLines[static_cast<std::size_t>(id)]; }

std::optional<LineId> line_from_name(std::string_view name) {
  for (const auto& l : kLines) {
    if (l.name == name) return l.id;
  }
  return std::nullopt;
}

double observed_wavelength_um(LineId id, double redshift) {
  return line(id).rest_A * (1.0 + redshift) / kAngstromPerUm;
}

double air_to_vacuum_A(double air_A) {
  if (!std::isfinite(air_A) || air_A <= 0.0) return std::numeric_limits<double>::quiet_NaN();
  const double l2 = air_A * air_A;
  const double n = 1.0 + 2.735182e-4 + 131.4182 / l2 + 2.76249e8 / (l2 * l2);
  return air_A * n;
}

}  // namespace slitstep
