#pragma once
// slitstep/core: Cube, the value type of every spectral cube slitstep handles (sky cubes,
// reconstructed cubes, generic IFU cubes).
//
// Memory layout: spectrum-contiguous, index(i, j, k) = (j*nx + i)*nl + k, with i along x
// (dispersion direction of the aperture frame), j along y (slit), k the wavelength channel; all
// 0-based. (FITS files store x fastest; core/cube_io transposes.)
// Units: `sci` and `err` in `bunit` (slitstep's own cubes: surface brightness,
// erg s^-1 cm^-2 um^-1 arcsec^-2, see core/units.hpp); `err` is 1 sigma; `dq` holds the bit
// flags below; `wmap` is a coverage / weight map (number of effective exposures, 1 for a sky cube).
// A noiseless model cube (a rendered sky cube) may leave err, dq and wmap EMPTY: that means
// err = 0, dq = 0 and wmap = 1 everywhere without spending memory on them (has_quality() false);
// core/cube_io writes such planes as tile-compressed constants.
// A Cube is a plain value: copy it, compare it, no hidden state.
#include <cstdint>
#include <string>
#include <vector>

#include "core/grid.hpp"
#include "core/wcs.hpp"

namespace slitstep {

/// Data-quality bits (DQ extension). Documented in docs/formats.md.
enum DqBit : std::uint32_t {
  kDqGood = 0,
  kDqDoNotUse = 1u << 0,     // do not use this voxel (set together with a reason below)
  kDqNoCoverage = 1u << 1,   // no exposure covered this voxel
  kDqChipGap = 1u << 2,      // wavelength fell in the NRS1/NRS2 gap
  kDqBarShadow = 1u << 3,    // only seen through the bars between shutters
  kDqNonFinite = 1u << 4,    // input value was NaN or inf
  kDqOutlier = 1u << 5,      // rejected as an outlier in the combination
  kDqLowCoverage = 1u << 6,  // fewer exposures than nominal contributed
};

struct Cube {
  SpatialGrid spatial;
  WavelengthGrid spectral;
  SkyFrame sky;
  std::string bunit = "erg s-1 cm-2 um-1 arcsec-2";
  std::vector<double> sci;          // size nx*ny*nl
  std::vector<double> err;          // size nx*ny*nl (1 sigma)
  std::vector<std::uint32_t> dq;    // size nx*ny*nl
  std::vector<double> wmap;         // size nx*ny*nl

  /// A zero-filled cube (err 0, dq 0, wmap 1) on the given grids. With quality_planes = false
  /// only sci is allocated (err/dq/wmap empty = 0/0/1).
  static Cube zeros(const SpatialGrid& spatial, const WavelengthGrid& spectral,
                    const SkyFrame& sky = {}, bool quality_planes = true);
  /// True when err, dq and wmap are stored (false for a noiseless model cube).
  bool has_quality() const { return !err.empty(); }
  /// Allocates err (0), dq (0) and wmap (1) if they are empty.
  void ensure_quality();

  int nx() const { return spatial.nx; }
  int ny() const { return spatial.ny; }
  std::size_t nl() const { return spectral.size(); }
  std::size_t size() const { return spatial.size() * spectral.size(); }
  std::size_t index(int i, int j, std::size_t k) const {
    return (static_cast<std::size_t>(j) * spatial.nx + i) * spectral.size() + k;
  }
  /// Pointer to the spectrum of spaxel (i, j): nl() contiguous values.
  double* spectrum(int i, int j) { return sci.data() + index(i, j, 0); }
  const double* spectrum(int i, int j) const { return sci.data() + index(i, j, 0); }
  /// Checks that sci has size() values and err/dq/wmap either size() or (all three) none, that
  /// grids are valid. Throws InvalidOptions.
  void validate() const;
  bool operator==(const Cube&) const = default;
};

/// Integral of sci over the cube: sum of sci * channel width (um) * pixel area (arcsec^2), i.e.
/// a flux in erg s^-1 cm^-2 for slitstep's surface-brightness unit. Optionally only over
/// channels whose centre lies in [lo_um, hi_um]. Non-finite voxels (no data) are skipped.
double integrated_flux(const Cube& cube, double lo_um = 0.0, double hi_um = 1e300);

}  // namespace slitstep
