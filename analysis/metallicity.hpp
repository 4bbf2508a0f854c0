#pragma once
// slitstep/analysis: per-spaxel gas-phase metallicity from measured line fluxes, with error
// propagation (pure functions, no I/O, never prints).
//
// The ratio index of the chosen calibration (core/calibrations.hpp) is computed from the fluxes
//   N2   = log10(F[NII]6584 / F(Ha))
//   O3N2 = log10(F[OIII]5007 / F(Hb)) - N2
//   y    = log10(F[NII]6584 / (F[SII]6717 + F[SII]6731)) + 0.264 N2     (D16)
// and its 1-sigma error by first-order propagation of the (independent) flux errors, e.g.
//   sigma_N2 = sqrt((sF_NII/F_NII)^2 + (sF_Ha/F_Ha)^2) / ln 10,
//   sigma_y^2 = [1.264^2 (sNII/NII)^2 + (sS1^2 + sS2^2)/(S1+S2)^2 + 0.264^2 (sHa/Ha)^2] / ln^2 10.
// The metallicity error is |dZ/dindex| * sigma_index ("statistical") and the total error adds the
// calibration scatter in quadrature: z_err = sqrt(z_err_stat^2 + scatter^2) (paper Sect. 3.1,
// 0.18 dex for PP04). The paper's Fig. A1 caption applies the 0.25 dex cut to the STATISTICAL
// uncertainty ("statistical uncertainty of < 0.25 dex"); that is the default here
// (`cut_on_total_error = false`); set it true to cut on the total error instead.
// Non-positive or non-finite fluxes/errors, and an index outside the calibration's validity
// range (when `reject_out_of_range`), give ok = false with a reason; nothing is extrapolated
// silently.
#include <string>

#include "core/calibrations.hpp"
#include "core/line_maps.hpp"

namespace slitstep {

struct MetallicityOptions {
  Calibration calibration = Calibration::kPP04N2Cubic;  // paper: PP04 N2 cubic (its Eq. 1)
  double calibration_scatter_dex = 0.18;  // paper: PP04 1-sigma systematic, added in quadrature
  double max_error_dex = 0.25;            // paper: spaxels with uncertainty > 0.25 dex dropped
  bool cut_on_total_error = false;        // paper (Fig. A1 caption): cut on the statistical error
  bool reject_out_of_range = true;        // drop indices outside the calibration's validity range
  /// Throws InvalidOptions naming the field, the value and the rule.
  void validate() const;
};

/// Fluxes (erg/s/cm^2) and 1-sigma errors of the lines a calibration may need. NaN = missing.
struct LineFluxSet {
  double halpha = 0, halpha_err = 0;
  double nii6584 = 0, nii6584_err = 0;
  double hbeta = 0, hbeta_err = 0;
  double oiii5007 = 0, oiii5007_err = 0;
  double sii6717 = 0, sii6717_err = 0;
  double sii6731 = 0, sii6731_err = 0;
};

/// Reads spaxel k of the maps (lines not `measured` are NaN).
LineFluxSet line_fluxes_at(const LineMaps& maps, std::size_t k);

struct SpaxelMetallicity {
  double index = 0.0;       // N2, O3N2 or y
  double index_err = 0.0;
  double z_12logoh = 0.0;   // 12 + log(O/H)
  double z_err_stat = 0.0;  // from the flux errors only
  double z_err = 0.0;       // statistical (+) calibration scatter in quadrature
  bool ok = false;          // usable: finite, in range (if required) and error below the cut
  std::string reason;       // why not ok (empty when ok)
};

/// Metallicity of one spaxel from its fluxes. Never throws (options validated by the caller).
SpaxelMetallicity spaxel_metallicity(const LineFluxSet& f, const MetallicityOptions& o);

/// log10(a/b) and its propagated error; NaN unless a, b > 0 and the errors are finite and >= 0.
struct LogRatio {
  double value;
  double err;
};
LogRatio log_ratio(double a, double a_err, double b, double b_err);

}  // namespace slitstep
