#include "core/wcs.hpp"

#include <cmath>

#include "core/error.hpp"

namespace slitstep {

void SkyFrame::validate() const {
  if (!(ra_deg >= 0.0 && ra_deg < 360.0))
    throw InvalidOptions("ra_deg = " + format_value(ra_deg) + ": must be in [0, 360)");
  if (!(dec_deg >= -90.0 && dec_deg <= 90.0))
    throw InvalidOptions("dec_deg = " + format_value(dec_deg) + ": must be in [-90, 90]");
  if (!std::isfinite(aperture_pa_deg))
    throw InvalidOptions("aperture_pa_deg = " + format_value(aperture_pa_deg) + ": must be finite");
}

std::array<double, 2> tan_deproject_deg(SkyOffset o, double ra0_deg, double dec0_deg) {
  const double xi = o.xi_arcsec / kArcsecPerRad;
  const double eta = o.eta_arcsec / kArcsecPerRad;
  const double d0 = dec0_deg / kDegPerRad;
  const double denom = std::cos(d0) - eta * std::sin(d0);
  double ra = ra0_deg + std::atan2(xi, denom) * kDegPerRad;
  const double dec = std::atan2(std::sin(d0) + eta * std::cos(d0), std::hypot(xi, denom)) * kDegPerRad;
  ra = std::fmod(ra, 360.0);
  if (ra < 0) ra += 360.0;
  return {ra, dec};
}

SkyOffset tan_project(double ra_deg, double dec_deg, double ra0_deg, double dec0_deg) {
  const double a = (ra_deg - ra0_deg) / kDegPerRad;
  const double d = dec_deg / kDegPerRad, d0 = dec0_deg / kDegPerRad;
  const double cosc = std::sin(d0) * std::sin(d) + std::cos(d0) * std::cos(d) * std::cos(a);
  const double xi = std::cos(d) * std::sin(a) / cosc;
  const double eta = (std::cos(d0) * std::sin(d) - std::sin(d0) * std::cos(d) * std::cos(a)) / cosc;
  return {xi * kArcsecPerRad, eta * kArcsecPerRad};
}

WorldCoord pixel_to_world(const SpatialGrid& grid, const SkyFrame& frame,
                          const WavelengthGrid& spectral, double i, double j, std::size_t k) {
  const MsaOffset m{grid.x_arcsec(i), grid.y_arcsec(j)};
  const SkyOffset s = msa_to_sky(m, Angle::from_deg(frame.aperture_pa_deg));
  const auto rd = tan_deproject_deg(s, frame.ra_deg, frame.dec_deg);
  return {rd[0], rd[1], spectral.wavelength_um(k)};
}

}  // namespace slitstep
