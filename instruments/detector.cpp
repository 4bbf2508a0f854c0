#include "instruments/detector.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"

namespace slitstep {
namespace {

struct Node {
  double x, y;
};

double interp_extrap(const Node* n, int count, double x) {
  int i = 0;
  while (i < count - 2 && x > n[i + 1].x) ++i;
  const double t = (x - n[i].x) / (n[i + 1].x - n[i].x);
  return n[i].y + t * (n[i + 1].y - n[i].y);
}

// nirspec.md §4 (msaexp empirical G140H/F100LP gap figure, read by eye, L, +-0.02 um): mid-points
// of the quoted ranges.
constexpr Node kGapQ34[] = {{1, 1.195}, {90, 1.245}, {180, 1.30}, {365, 1.425}};
constexpr Node kGapQ12[] = {{180, 1.015}, {270, 1.08}, {365, 1.135}};
constexpr Node kRedQ34[] = {{1, 1.78}, {90, 1.80}, {180, 1.81}, {365, 1.81}};
constexpr Node kRedQ12[] = {{1, 1.52}, {90, 1.55}, {180, 1.60}, {270, 1.66}, {365, 1.73}};

// nirspec.md §9 relative sensitivity (msaexp), with the quoted peak 1.0 at 1.15 um: per unit
// f_nu (msaexp applies it to f_nu spectra).
constexpr Node kShape[] = {{0.97, 0.61}, {1.0, 0.77}, {1.1, 0.93}, {1.15, 1.0}, {1.2, 0.98}, {1.3, 0.86},
                           {1.4, 0.72},  {1.5, 0.59}, {1.6, 0.50}, {1.7, 0.43},  {1.8, 0.37}, {1.89, 0.32}};

constexpr double kHcErgUm = 1.98644586e-12;         // h c in erg um
constexpr double kArcsec2PerSr = 4.254517029615221e10;
constexpr double kCUmPerS = 2.99792458e14;

void check(bool ok, const char* name, double v, const char* rule) {
  if (!ok) throw InvalidOptions(std::string(name) + " = " + format_value(v) + ": " + rule);
}

}  // namespace

void DetectorConfig::validate() const {
  auto fp = [](double v) { return std::isfinite(v) && v > 0.0; };
  auto fnn = [](double v) { return std::isfinite(v) && v >= 0.0; };
  check(fp(pixel_y_arcsec) && pixel_y_arcsec < 1.0, "instrument.pixel_y_arcsec", pixel_y_arcsec, "must be in (0, 1)");
  check(fp(cross_dispersion_fwhm_px) && cross_dispersion_fwhm_px < 20.0, "instrument.cross_dispersion_fwhm_px",
        cross_dispersion_fwhm_px, "must be in (0, 20)");
  check(fp(min_kernel_fwhm_px) && min_kernel_fwhm_px < 20.0, "instrument.min_kernel_fwhm_px", min_kernel_fwhm_px,
        "must be in (0, 20)");
  check(fnn(bar_edge_tolerance) && bar_edge_tolerance <= 1.0, "instrument.bar_edge_tolerance", bar_edge_tolerance,
        "must be in [0, 1]");
  check(fp(gap_width_um) && gap_width_um < 0.5, "instrument.gap_width_um", gap_width_um, "must be in (0, 0.5)");
  check(fnn(gap_center_um), "instrument.gap_center_um", gap_center_um, "must be finite and >= 0 (0 = from the table)");
  check(std::isfinite(gap_shift_um) && std::abs(gap_shift_um) < 0.5, "instrument.gap_shift_um", gap_shift_um,
        "must be finite and within +-0.5");
  check(fp(throughput_peak) && throughput_peak <= 1.0, "instrument.throughput", throughput_peak, "must be in (0, 1]");
  check(fp(telescope_area_m2), "instrument.telescope_area_m2", telescope_area_m2, "must be finite and > 0");
  check(fnn(dark_e_per_s), "instrument.dark_e_per_s", dark_e_per_s, "must be finite and >= 0");
  check(fnn(read_noise_e), "instrument.read_noise_e", read_noise_e, "must be finite and >= 0");
  check(fnn(background_mjy_sr), "instrument.background_mjy_sr", background_mjy_sr, "must be finite and >= 0");
}

double chip_gap_center_um(int quadrant, int shutter_i) {
  const double x = shutter_i;
  if (quadrant == 3 || quadrant == 4) return interp_extrap(kGapQ34, 4, x);
  return interp_extrap(kGapQ12, 3, x);
}

double red_limit_um(int quadrant, int shutter_i) {
  const double x = shutter_i;
  if (quadrant == 3 || quadrant == 4) return interp_extrap(kRedQ34, 4, x);
  return interp_extrap(kRedQ12, 5, x);
}

ChipGap chip_gap(const DetectorConfig& c, int quadrant, int shutter_i) {
  ChipGap g;
  g.enabled = c.chip_gap;
  const double centre = (c.gap_center_um > 0.0 ? c.gap_center_um : chip_gap_center_um(quadrant, shutter_i)) +
                        c.gap_shift_um;
  g.lo_um = centre - 0.5 * c.gap_width_um;
  g.hi_um = centre + 0.5 * c.gap_width_um;
  return g;
}

double sensitivity_fnu_shape(double l) {
  constexpr int n = static_cast<int>(std::size(kShape));
  if (l <= kShape[0].x) return kShape[0].y;
  if (l >= kShape[n - 1].x) return kShape[n - 1].y;
  return interp_extrap(kShape, n, l);
}

double throughput_shape(double l) {
  // photons per unit f_nu scale as 1/lambda: electrons/photon ~ S(lambda) * lambda; S is linear
  // between nodes, so S * lambda peaks at a node (1.2 um: 0.98 x 1.2)
  static const double peak = [] {
    double m = 0.0;
    for (const Node& nd : kShape) m = std::max(m, nd.x * nd.y);
    return m;
  }();
  const double lc = std::clamp(l, kShape[0].x, kShape[std::size(kShape) - 1].x);
  return sensitivity_fnu_shape(l) * lc / peak;
}

double throughput(const DetectorConfig& c, double l) { return c.throughput_peak * throughput_shape(l); }

double electrons_per_erg_cm2(const DetectorConfig& c, double l) {
  return c.telescope_area_m2 * 1e4 * throughput(c, l) * l / kHcErgUm;
}

double mjy_sr_to_sb(double mjy_sr, double l) {
  // F_nu [erg s-1 cm-2 Hz-1 arcsec-2] * c / lambda^2 -> per um
  return mjy_sr * 1e6 * 1e-23 / kArcsec2PerSr * kCUmPerS / (l * l);
}

double cross_dispersion_kernel_fwhm_px(const DetectorConfig& c, double psf_fwhm_px) {
  const double pix2 = 2.3548200450309493 * 2.3548200450309493 / 12.0;
  const double k2 = c.cross_dispersion_fwhm_px * c.cross_dispersion_fwhm_px - psf_fwhm_px * psf_fwhm_px - pix2;
  const double m = c.min_kernel_fwhm_px;
  return k2 > m * m ? std::sqrt(k2) : m;
}

}  // namespace slitstep
