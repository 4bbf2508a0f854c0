#pragma once
// slitstep/core: multi-extension 2-D map products (maps.fits), in the spirit of the MaNGA DAP
// MAPS file: an empty primary HDU with provenance (ORIGIN, SOFTVER, PRODTYPE, SEED, DATE, extra
// cards and the effective configuration, stored exactly as core/cube_io stores it, so
// read_product_config() reads it back), then one 2-D image extension per map, each with
// EXTNAME, BUNIT and the 2-D spatial WCS of the cube the maps were measured on.
// Layout: docs/formats.md "maps.fits".
//
// Indexing: a map is nx*ny values, index(i, j) = j*nx + i (0-based, as core/line_maps.hpp);
// FITS pixel (p1, p2) = (i+1, j+1). WCS (celestial = true): the same TAN mapping core/cube_io
// writes for cubes (CRPIX = FITS pixel of the aperture origin, CRVAL = (ra, dec), CDELT1 =
// -pixel/3600, CDELT2 = +pixel/3600, PC = rotation by aperture_pa_deg); celestial = false (a
// cube whose file had only offset axes, e.g. IRAF 'LINEAR'): CTYPE 'OFFSET' axes in arcsec, no
// sky position is invented. SS_PIXEL/SS_X0/SS_Y0/SS_PA store the grid exactly for read_maps.
// Images are float64 (NaN = not measured) or int32 (integer = true: classes, masks).
// Writing is atomic (core/fits.hpp). Failures throw InputError naming the file (and HDU/key);
// an invalid product (wrong map size, bad EXTNAME) throws InvalidOptions.
#include <string>
#include <vector>

#include "core/cube_io.hpp"
#include "core/grid.hpp"
#include "core/wcs.hpp"

namespace slitstep {

struct MapImage {
  std::string extname;           // <= 68 printable characters, unique in the product (case-insensitive)
  std::string bunit;             // FITS BUNIT ("" = dimensionless / no unit)
  std::string description;       // the first COMMENT card of the extension
  std::vector<double> values;    // nx*ny, index j*nx + i
  bool integer = false;          // write as int32 (values must be integral and in range)
  std::vector<std::string> comments;  // extra COMMENT cards (e.g. the meaning of class codes)
};

struct MapProduct {
  SpatialGrid spatial;
  SkyFrame sky;
  bool celestial = true;         // write RA/Dec TAN axes (else arcsec offsets)
  std::vector<MapImage> images;
  /// Index of an image by EXTNAME (case-insensitive); -1 if absent.
  int find(const std::string& extname) const;
  /// Checks sizes, names and integer values; throws InvalidOptions.
  void validate() const;
};

/// Writes the product to `path` (atomically). meta.product_type is used as PRODTYPE
/// (e.g. "MAPS").
void write_maps(const MapProduct& maps, const std::string& path, const ProductMeta& meta);

/// Reads a product written by write_maps (every 2-D image extension, in file order).
MapProduct read_maps(const std::string& path);

}  // namespace slitstep
