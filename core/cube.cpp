#include "core/cube.hpp"

#include <cmath>

#include "core/error.hpp"

namespace slitstep {

Cube Cube::zeros(const SpatialGrid& spatial, const WavelengthGrid& spectral, const SkyFrame& sky,
                 bool quality_planes) {
  spatial.validate();
  sky.validate();
  if (spectral.empty()) throw InvalidOptions("Cube: the wavelength grid is empty");
  Cube c;
  c.spatial = spatial;
  c.spectral = spectral;
  c.sky = sky;
  const std::size_t n = c.size();
  c.sci.assign(n, 0.0);
  if (quality_planes) c.ensure_quality();
  return c;
}

void Cube::ensure_quality() {
  const std::size_t n = size();
  if (err.empty()) err.assign(n, 0.0);
  if (dq.empty()) dq.assign(n, kDqGood);
  if (wmap.empty()) wmap.assign(n, 1.0);
}

void Cube::validate() const {
  spatial.validate();
  sky.validate();
  if (spectral.empty()) throw InvalidOptions("Cube: the wavelength grid is empty");
  const std::size_t n = size();
  auto check = [&](std::size_t got, const char* name) {
    if (got != n)
      throw InvalidOptions(std::string("Cube.") + name + " has " + std::to_string(got) +
                           " values; the grids need " + std::to_string(n));
  };
  check(sci.size(), "sci");
  if (err.empty() && dq.empty() && wmap.empty()) return;  // noiseless model cube
  check(err.size(), "err");
  check(dq.size(), "dq");
  check(wmap.size(), "wmap");
}

double integrated_flux(const Cube& cube, double lo_um, double hi_um) {
  const std::size_t nl = cube.nl();
  std::vector<double> w(nl, 0.0);
  for (std::size_t k = 0; k < nl; ++k) {
    const double l = cube.spectral.wavelength_um(k);
    if (l >= lo_um && l <= hi_um) w[k] = cube.spectral.width_um(k);
  }
  double total = 0.0;
  for (std::size_t p = 0; p < cube.spatial.size(); ++p) {
    const double* s = cube.sci.data() + p * nl;
    double acc = 0.0;
    for (std::size_t k = 0; k < nl; ++k)
      if (std::isfinite(s[k])) acc += s[k] * w[k];
    total += acc;
  }
  return total * cube.spatial.pixel_area_arcsec2();
}

}  // namespace slitstep
