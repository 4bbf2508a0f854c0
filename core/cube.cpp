#include "core/cube.hpp"

#include "core/error.hpp"

namespace slitstep {

Cube Cube::zeros(const SpatialGrid& spatial, const WavelengthGrid& spectral, const SkyFrame& sky) {
  spatial.validate();
  sky.validate();
  if (spectral.empty()) throw InvalidOptions("Cube: the wavelength grid is empty");
  Cube c;
  c.spatial = spatial;
  c.spectral = spectral;
  c.sky = sky;
  const std::size_t n = c.size();
  c.sci.assign(n, 0.0);
  c.err.assign(n, 0.0);
  c.dq.assign(n, kDqGood);
  c.wmap.assign(n, 1.0);
  return c;
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
    for (std::size_t k = 0; k < nl; ++k) acc += s[k] * w[k];
    total += acc;
  }
  return total * cube.spatial.pixel_area_arcsec2();
}

}  // namespace slitstep
