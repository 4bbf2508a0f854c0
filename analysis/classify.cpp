#include "analysis/classify.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "core/error.hpp"

namespace slitstep {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct NamedClass {
  SpaxelClass c;
  std::string_view name;
};
constexpr NamedClass kNames[] = {
    {SpaxelClass::kStarForming, "SF"}, {SpaxelClass::kComposite, "composite"},
    {SpaxelClass::kAGN, "AGN"},        {SpaxelClass::kLINER, "LINER"},
    {SpaxelClass::kRetired, "retired"}, {SpaxelClass::kPassive, "passive"},
    {SpaxelClass::kUnclassified, "unclassified"},
};

double hyperbola(double x, double a, double x0, double c) {
  return x < x0 ? a / (x - x0) + c : kNaN;
}

// True if (x, y) lies strictly below the left branch of y = a/(x - x0) + c. Every x >= x0 is
// above (the branch goes to -inf as x -> x0 from the left).
bool below_hyperbola(double x, double y, double a, double x0, double c) {
  return x < x0 && y < a / (x - x0) + c;
}

void require_finite(const char* field, double v) {
  if (!std::isfinite(v)) {
    throw InvalidOptions(std::string("ClassifyOptions.") + field + " = " + format_value(v) +
                         ": must be finite");
  }
}

void require_positive(const char* field, double v) {
  require_finite(field, v);
  if (!(v > 0.0)) {
    throw InvalidOptions(std::string("ClassifyOptions.") + field + " = " + format_value(v) +
                         ": must be > 0 (the demarcation hyperbola's left branch must fall toward x0)");
  }
}

}  // namespace

std::string_view spaxel_class_name(SpaxelClass c) {
  for (const auto& n : kNames) {
    if (n.c == c) return n.name;
  }
  return "unclassified";
}

bool spaxel_class_from_name(std::string_view name, SpaxelClass& out) {
  for (const auto& n : kNames) {
    if (n.name == name) {
      out = n.c;
      return true;
    }
  }
  return false;
}

void ClassifyOptions::validate() const {
  require_positive("ke01_a", ke01_a);
  require_finite("ke01_x0", ke01_x0);
  require_finite("ke01_c", ke01_c);
  require_positive("ka03_a", ka03_a);
  require_finite("ka03_x0", ka03_x0);
  require_finite("ka03_c", ka03_c);
  if (!(ka03_x0 <= ke01_x0)) {
    throw InvalidOptions("ClassifyOptions.ka03_x0 = " + format_value(ka03_x0) +
                         ": must be <= ke01_x0 = " + format_value(ke01_x0) +
                         " (the composite region lies between Ka03 and Ke01)");
  }
  require_finite("s07_slope", s07_slope);
  require_finite("s07_intercept", s07_intercept);
  require_positive("ke06_sii_a", ke06_sii_a);
  require_finite("ke06_sii_x0", ke06_sii_x0);
  require_finite("ke06_sii_c", ke06_sii_c);
  require_finite("ke06_sii_slope", ke06_sii_slope);
  require_finite("ke06_sii_intercept", ke06_sii_intercept);
  require_finite("whan_n2", whan_n2);
  require_finite("whan_ew_passive_A", whan_ew_passive_A);
  require_finite("whan_ew_retired_A", whan_ew_retired_A);
  require_finite("whan_ew_strong_agn_A", whan_ew_strong_agn_A);
  if (!(whan_ew_passive_A >= 0.0)) {
    throw InvalidOptions("ClassifyOptions.whan_ew_passive_A = " + format_value(whan_ew_passive_A) +
                         ": must be >= 0");
  }
  if (!(whan_ew_passive_A <= whan_ew_retired_A)) {
    throw InvalidOptions("ClassifyOptions.whan_ew_passive_A = " + format_value(whan_ew_passive_A) +
                         ": must be <= whan_ew_retired_A = " + format_value(whan_ew_retired_A));
  }
  if (!(whan_ew_retired_A <= whan_ew_strong_agn_A)) {
    throw InvalidOptions("ClassifyOptions.whan_ew_strong_agn_A = " +
                         format_value(whan_ew_strong_agn_A) + ": must be >= whan_ew_retired_A = " +
                         format_value(whan_ew_retired_A));
  }
}

double kewley01_y(double x, const ClassifyOptions& o) {
  return hyperbola(x, o.ke01_a, o.ke01_x0, o.ke01_c);
}
double kauffmann03_y(double x, const ClassifyOptions& o) {
  return hyperbola(x, o.ka03_a, o.ka03_x0, o.ka03_c);
}
double schawinski07_y(double x, const ClassifyOptions& o) {
  return o.s07_slope * x + o.s07_intercept;
}
double kewley06_sii_sf_y(double x, const ClassifyOptions& o) {
  return hyperbola(x, o.ke06_sii_a, o.ke06_sii_x0, o.ke06_sii_c);
}
double kewley06_sii_seyfert_liner_y(double x, const ClassifyOptions& o) {
  return o.ke06_sii_slope * x + o.ke06_sii_intercept;
}

SpaxelClass classify_bpt_nii(double x, double y, const ClassifyOptions& o) {
  if (!std::isfinite(x) || !std::isfinite(y)) return SpaxelClass::kUnclassified;
  if (below_hyperbola(x, y, o.ka03_a, o.ka03_x0, o.ka03_c)) return SpaxelClass::kStarForming;
  if (below_hyperbola(x, y, o.ke01_a, o.ke01_x0, o.ke01_c)) return SpaxelClass::kComposite;
  if (!o.split_seyfert_liner) return SpaxelClass::kAGN;
  return y > schawinski07_y(x, o) ? SpaxelClass::kAGN : SpaxelClass::kLINER;
}

SpaxelClass classify_bpt_sii(double x, double y, const ClassifyOptions& o) {
  if (!std::isfinite(x) || !std::isfinite(y)) return SpaxelClass::kUnclassified;
  if (below_hyperbola(x, y, o.ke06_sii_a, o.ke06_sii_x0, o.ke06_sii_c)) {
    return SpaxelClass::kStarForming;
  }
  return y > kewley06_sii_seyfert_liner_y(x, o) ? SpaxelClass::kAGN : SpaxelClass::kLINER;
}

SpaxelClass classify_whan(double x, double ew_ha, double ew_nii, const ClassifyOptions& o) {
  if (!std::isfinite(x) || !std::isfinite(ew_ha) || !std::isfinite(ew_nii)) {
    return SpaxelClass::kUnclassified;
  }
  if (ew_ha < o.whan_ew_passive_A && ew_nii < o.whan_ew_passive_A) return SpaxelClass::kPassive;
  if (ew_ha < o.whan_ew_retired_A) return SpaxelClass::kRetired;
  if (x < o.whan_n2) return SpaxelClass::kStarForming;
  return ew_ha > o.whan_ew_strong_agn_A ? SpaxelClass::kAGN : SpaxelClass::kLINER;
}

SpaxelClass classify_spaxel(double log_nii_ha, double log_oiii_hb, double ew_halpha_A,
                            double ew_nii_A, const ClassifyOptions& o) {
  if (std::isfinite(log_nii_ha) && std::isfinite(log_oiii_hb)) {
    return classify_bpt_nii(log_nii_ha, log_oiii_hb, o);
  }
  return classify_whan(log_nii_ha, ew_halpha_A, ew_nii_A, o);
}

}  // namespace slitstep
