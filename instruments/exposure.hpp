#pragma once
// slitstep/instruments: one exposure = the rectified 2-D spectrum of one slitlet at one pointing,
// in the layout of the JWST pipeline's s2d/phot products (SCI, ERR, DQ, WAVELENGTH, VAR_POISSON,
// VAR_RNOISE).
//
// Rectified detector frame (slit_stepping_model.md §1): column u = 0..nu-1 is the dispersion
// pixel, whose wavelength wavelength_um[u] is that of a source at the centre of the shutter; row
// v = 0..nv-1 runs along the slit, row centre at y = y0_arcsec + v * pixel_y_arcsec in the
// aperture frame of the slitlet (not of the sky). Arrays are row-major: index(v, u) = v*nu + u
// (same order as FITS NAXIS1 = u, NAXIS2 = v; FITS pixels are 1-based, u + 1, v + 1).
// Units: sci and err in surface brightness erg s^-1 cm^-2 um^-1 arcsec^-2 (calibrated as for a
// uniformly illuminated shutter, as the pipeline does for extended sources); var_* are the
// squares, in the same unit squared. dq uses core/cube.hpp's DqBit.
#include <cstdint>
#include <string>
#include <vector>

#include "instruments/geometry.hpp"

namespace slitstep {

struct Exposure {
  Pointing pointing;
  int nu = 0;                          // dispersion pixels
  int nv = 0;                          // rows along the slit
  double y0_arcsec = 0.0;              // aperture-frame y of the centre of row 0
  double pixel_y_arcsec = 0.1;         // row pitch along the slit
  std::vector<double> wavelength_um;   // nu values (centre-of-shutter wavelength of each column)
  std::vector<double> sci;             // nv*nu
  std::vector<double> err;             // nv*nu, 1 sigma
  std::vector<double> var_poisson;     // nv*nu
  std::vector<double> var_rnoise;      // nv*nu
  std::vector<std::uint32_t> dq;       // nv*nu
  std::uint64_t seed = 0;              // seed of the noise realisation (0 = noiseless)
  /// Optional per-pixel wavelengths (nv*nu, NaN off the slit) for frames whose rows do not
  /// share one wavelength solution (real, un-rectified JWST 'cal'/'phot' cut-outs). Empty (the
  /// default, and every simulated exposure) = every row uses wavelength_um.
  std::vector<double> wavelength2d_um;

  std::size_t index(int v, int u) const { return static_cast<std::size_t>(v) * nu + u; }
  std::size_t size() const { return static_cast<std::size_t>(nu) * nv; }
  /// Allocates all arrays zeroed for an nv x nu frame.
  void resize(int nv_rows, int nu_columns);
  void validate() const;  // sizes agree (wavelength2d_um empty or nv*nu), nu, nv >= 1
};

}  // namespace slitstep
