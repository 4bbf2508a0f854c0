#include "analysis/metallicity.hpp"

#include <cmath>
#include <limits>

#include "core/error.hpp"

namespace slitstep {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLn10 = 2.302585092994046;

bool usable(double f, double e) { return std::isfinite(f) && std::isfinite(e) && f > 0.0 && e >= 0.0; }

double rel2(double f, double e) { return (e / f) * (e / f); }

// dZ/dindex by a central difference; the calibrations are polynomials of degree <= 5 so the
// truncation error is ~1e-9 relative at h = 1e-4 (far below any flux error).
double slope_of(Calibration c, double x) {
  constexpr double h = 1e-4;
  return (metallicity_from_index(c, x + h).value - metallicity_from_index(c, x - h).value) / (2 * h);
}

}  // namespace

void MetallicityOptions::validate() const {
  auto fail = [](const std::string& field, double v, const std::string& rule) {
    throw InvalidOptions("MetallicityOptions." + field + " = " + format_value(v) + ": " + rule);
  };
  if (!std::isfinite(calibration_scatter_dex) || calibration_scatter_dex < 0.0) {
    fail("calibration_scatter_dex", calibration_scatter_dex, "must be finite and >= 0");
  }
  if (!(max_error_dex > 0.0)) fail("max_error_dex", max_error_dex, "must be > 0 (use inf for no cut)");
  if (cut_on_total_error && !(max_error_dex > calibration_scatter_dex)) {
    fail("max_error_dex", max_error_dex,
         "must exceed calibration_scatter_dex = " + format_value(calibration_scatter_dex) +
             " when cut_on_total_error is true (no spaxel could pass)");
  }
}

LogRatio log_ratio(double a, double a_err, double b, double b_err) {
  if (!usable(a, a_err) || !usable(b, b_err)) return {kNaN, kNaN};
  return {std::log10(a / b), std::sqrt(rel2(a, a_err) + rel2(b, b_err)) / kLn10};
}

LineFluxSet line_fluxes_at(const LineMaps& m, std::size_t k) {
  auto get = [&](LineId id, double& f, double& e) {
    const LineMap& l = m.line(id);
    if (!l.measured || k >= l.flux_cgs.size() || k >= l.flux_err_cgs.size()) {
      f = e = kNaN;
      return;
    }
    f = l.flux_cgs[k];
    e = l.flux_err_cgs[k];
  };
  LineFluxSet s;
  get(LineId::kHalpha, s.halpha, s.halpha_err);
  get(LineId::kNII6584, s.nii6584, s.nii6584_err);
  get(LineId::kHbeta, s.hbeta, s.hbeta_err);
  get(LineId::kOIII5007, s.oiii5007, s.oiii5007_err);
  get(LineId::kSII6717, s.sii6717, s.sii6717_err);
  get(LineId::kSII6731, s.sii6731, s.sii6731_err);
  return s;
}

SpaxelMetallicity spaxel_metallicity(const LineFluxSet& f, const MetallicityOptions& o) {
  SpaxelMetallicity r;
  r.index = r.index_err = r.z_12logoh = r.z_err_stat = r.z_err = kNaN;
  const LogRatio n2 = log_ratio(f.nii6584, f.nii6584_err, f.halpha, f.halpha_err);
  if (!std::isfinite(n2.value)) {
    r.reason = "N2 not measurable (Halpha or [NII]6584 flux missing or <= 0)";
    return r;
  }
  const std::string_view index_name = calibration_index_name(o.calibration);
  if (index_name == "N2") {
    r.index = n2.value;
    r.index_err = n2.err;
  } else if (index_name == "O3N2") {
    const LogRatio o3 = log_ratio(f.oiii5007, f.oiii5007_err, f.hbeta, f.hbeta_err);
    if (!std::isfinite(o3.value)) {
      r.reason = "O3N2 not measurable (Hbeta or [OIII]5007 flux missing or <= 0)";
      return r;
    }
    r.index = o3.value - n2.value;
    r.index_err = std::hypot(o3.err, n2.err);
  } else {  // D16 y
    const double s = f.sii6717 + f.sii6731;
    const double se = std::hypot(f.sii6717_err, f.sii6731_err);
    if (!usable(f.sii6717, f.sii6717_err) || !usable(f.sii6731, f.sii6731_err)) {
      r.reason = "y (D16) not measurable ([SII]6717 or [SII]6731 flux missing or <= 0)";
      return r;
    }
    const double lnii = std::log10(f.nii6584 / s);
    r.index = d16_index(lnii, n2.value);
    r.index_err = std::sqrt(1.264 * 1.264 * rel2(f.nii6584, f.nii6584_err) + rel2(s, se) +
                            0.264 * 0.264 * rel2(f.halpha, f.halpha_err)) /
                  kLn10;
  }
  const CalibrationResult z = metallicity_from_index(o.calibration, r.index);
  r.z_12logoh = z.value;
  r.z_err_stat = std::abs(slope_of(o.calibration, r.index)) * r.index_err;
  r.z_err = std::hypot(r.z_err_stat, o.calibration_scatter_dex);
  if (z.status.code == StatusCode::kInvalidInput || !std::isfinite(r.z_12logoh)) {
    r.reason = "metallicity not finite";
    return r;
  }
  if (z.status.code == StatusCode::kOutOfRange && o.reject_out_of_range) {
    r.reason = std::string(index_name) + " = " + format_value(r.index) + " outside the validity range of " +
               std::string(calibration_name(o.calibration));
    return r;
  }
  const double e = o.cut_on_total_error ? r.z_err : r.z_err_stat;
  if (!(e <= o.max_error_dex)) {
    r.reason = std::string(o.cut_on_total_error ? "total" : "statistical") + " metallicity error " +
               format_value(e) + " dex > " + format_value(o.max_error_dex) + " dex";
    return r;
  }
  r.ok = true;
  return r;
}

}  // namespace slitstep
