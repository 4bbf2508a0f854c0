#pragma once
// slitstep/core: the world coordinate system of a cube.
//
// A cube's spatial pixels live on a SpatialGrid in the aperture (MSA) frame; the frame's origin
// (x, y) = (0, 0) arcsec sits at the sky reference position (ra_deg, dec_deg), and its +y axis
// points at position angle `aperture_pa_deg` east of north (see core/units.hpp, msa_to_sky).
// The projection is gnomonic (FITS 'TAN', Calabretta & Greisen 2002), the spectral axis is
// vacuum wavelength in um ('WAVE', or 'WAVE-TAB' for windowed grids; Greisen et al. 2006).
//
// FITS mapping written by core/cube_io (1-based pixels p1 = i+1, p2 = j+1):
//   CRPIX1/2 = the FITS pixel of the MSA origin, CRVAL1/2 = (ra_deg, dec_deg),
//   CDELT1 = -pixel/3600, CDELT2 = +pixel/3600 (deg), PC = [[cos PA, -sin PA], [sin PA, cos PA]].
#include <array>

#include "core/grid.hpp"
#include "core/units.hpp"

namespace slitstep {

struct SkyFrame {
  double ra_deg = 215.05;         // reference position (default: a point in the EGS field)
  double dec_deg = 52.93;
  double aperture_pa_deg = 0.0;   // PA of the slit (+y) axis, degrees east of north
  void validate() const;          // RA in [0, 360), Dec in [-90, 90], PA finite
  bool operator==(const SkyFrame&) const = default;
};

struct WorldCoord {
  double ra_deg = 0.0;
  double dec_deg = 0.0;
  double wavelength_um = 0.0;
};

/// Gnomonic (TAN) deprojection of a tangent-plane offset about (ra0, dec0). Returns RA in
/// [0, 360) and Dec, in degrees.
std::array<double, 2> tan_deproject_deg(SkyOffset offset, double ra0_deg, double dec0_deg);
/// Inverse: tangent-plane offset (arcsec) of a sky position about (ra0, dec0).
SkyOffset tan_project(double ra_deg, double dec_deg, double ra0_deg, double dec0_deg);

/// World coordinates of the 0-based pixel (i, j, k) of a cube on (grid, frame, spectral).
/// Fractional i, j are allowed; k must be an integer channel index.
WorldCoord pixel_to_world(const SpatialGrid& grid, const SkyFrame& frame,
                          const WavelengthGrid& spectral, double i, double j, std::size_t k);

}  // namespace slitstep
