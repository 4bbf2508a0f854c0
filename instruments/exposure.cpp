#include "instruments/exposure.hpp"

#include "core/error.hpp"

namespace slitstep {

void Exposure::resize(int nv_rows, int nu_columns) {
  nv = nv_rows;
  nu = nu_columns;
  const std::size_t n = size();
  wavelength_um.assign(static_cast<std::size_t>(nu), 0.0);
  wavelength2d_um.clear();
  sci.assign(n, 0.0);
  err.assign(n, 0.0);
  var_poisson.assign(n, 0.0);
  var_rnoise.assign(n, 0.0);
  dq.assign(n, 0u);
}

void Exposure::validate() const {
  if (nu < 1 || nv < 1)
    throw InvalidOptions("Exposure: nu = " + std::to_string(nu) + ", nv = " + std::to_string(nv) + ": must be >= 1");
  const std::size_t n = size();
  if (wavelength_um.size() != static_cast<std::size_t>(nu) || sci.size() != n || err.size() != n ||
      var_poisson.size() != n || var_rnoise.size() != n || dq.size() != n ||
      (!wavelength2d_um.empty() && wavelength2d_um.size() != n))
    throw InvalidOptions("Exposure: array sizes do not match nv x nu = " + std::to_string(nv) + " x " +
                         std::to_string(nu));
}

}  // namespace slitstep
