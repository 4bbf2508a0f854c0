#pragma once
// slitstep/core: the cube FITS product (write_cube / read_cube). File layout: docs/formats.md.
//
// write_cube writes slitstep's own product: an empty primary HDU carrying ORIGIN, SOFTVER,
// PRODTYPE, SEED, DATE and the effective configuration; image extensions SCI, ERR (1 sigma), DQ
// (int32 DqBit flags), WMAP, each with BUNIT and a full 3-D WCS; plus a WCS-TABLE binary table
// when the wavelength grid has several windows (CTYPE3 = 'WAVE-TAB').
//
// read_cube reads slitstep's own cubes and generic IFU cubes (MUSE, GMOS, JWST s3d, ...) and
// returns a Cube in slitstep's internal conventions: surface brightness in
// erg s-1 cm-2 um-1 arcsec-2, 1-sigma ERR, vacuum wavelengths in um, the aperture-frame spatial
// grid of core/grid.hpp with the sky frame of core/wcs.hpp (x reversed when the file's axes are
// flipped), no NaN/inf in sci/err/wmap (such voxels are flagged kDqNonFinite | kDqDoNotUse).
// Every failure throws InputError with one line naming the file (and HDU / key / value).
//
// Indexing: Cube is 0-based and spectrum-contiguous; FITS pixel (p1, p2, p3) is 1-based with p1
// fastest. For a non-flipped file, cube (i, j, k) = FITS (i+1, j+1, k+1); for a file whose
// spatial axes are flipped (det of the CD matrix > 0), cube i = NAXIS1 - p1.
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/cube.hpp"

namespace slitstep {

/// One extra primary-header card of a product (key <= 8 characters, printable ASCII).
struct HeaderCard {
  std::string key;
  std::variant<std::string, double, long, bool> value;
  std::string comment;
};

/// Provenance written into every product's primary header.
struct ProductMeta {
  std::string product_type = "CUBE";  // PRODTYPE, e.g. "SKYCUBE", "CUBE"
  std::string software_version;       // SOFTVER; empty = slitstep::kVersion
  std::string config_text;            // the effective configuration (TOML), stored byte-exactly
  std::uint64_t seed = 0;             // SEED (written as a decimal string: FITS integers are signed)
  std::string date;                   // DATE; empty = current UTC time. Set it for byte-identical files.
  std::vector<HeaderCard> extra_cards;  // appended to the primary header in order
};

/// How to interpret the error extension of a generic cube.
enum class ErrKind {
  kAuto,      // variance when the EXTNAME says so (STAT, VAR, VARIANCE) or its BUNIT is the square of
              // SCI's; also when the values can only be a variance (see docs/formats.md); else 1 sigma
  kSigma,     // 1-sigma uncertainties
  kVariance,  // variances
};

/// What to assume for a wavelength axis whose CTYPE3 does not say air or vacuum (IRAF 'LAMBDA').
enum class AmbiguousWavelength {
  kAssumeVacuum,  // take the values as they are (default; recorded in CubeReadReport::notes)
  kAssumeAir,     // convert air -> vacuum (Morton 1991)
  kRefuse,        // InputError
};

struct ReadCubeOptions {
  // Extension names tried in order (case-insensitive); the first present wins. When no science
  // extension exists and the primary HDU holds a 3-D image, the primary HDU is the science data.
  std::vector<std::string> sci_extnames = {"SCI", "DATA", "FLUX"};
  std::vector<std::string> err_extnames = {"ERR", "STAT", "VAR", "VARIANCE"};  // optional
  std::vector<std::string> dq_extnames = {"DQ"};                               // optional
  std::vector<std::string> wmap_extnames = {"WMAP"};                           // optional
  ErrKind err_kind = ErrKind::kAuto;
  // BUNIT to use instead of the file's (for files without a usable BUNIT); "" = the file's.
  std::string bunit_override;
  // Unit of non-celestial spatial axes (CTYPE 'LINEAR' or absent) without CUNIT: arcsec, mas,
  // arcmin or deg. Default arcsec (GMOS/IRAF cubes).
  std::string linear_spatial_unit = "arcsec";
  // Spectral unit when CUNIT3 is absent; "" = the FITS rule ('m' for WAVE/AWAV) and Angstrom for
  // IRAF's 'LAMBDA'/'LINEAR'.
  std::string spectral_unit_override;
  AmbiguousWavelength ambiguous_wavelength = AmbiguousWavelength::kAssumeVacuum;
  // Pixels must be square and unskewed: |size1/size2 - 1| <= max_pixel_aspect_deviation (GMOS
  // cubes have 0.8 %; the mean size sqrt|det CD| is used) and the axes perpendicular within
  // max_skew_deg.
  double max_pixel_aspect_deviation = 0.01;
  double max_skew_deg = 0.05;
  // An air (AWAV) grid is linear in air, hence slightly non-linear in vacuum; accept it as one
  // linear vacuum window when the worst deviation is below this fraction of a channel
  // (MUSE's full 4750-9350 A range: 0.0024).
  double max_air_to_vacuum_nonlinearity = 0.01;
  void validate() const;  // throws InvalidOptions naming the field
};

/// What read_cube found and assumed (for `slitstep info` and logs).
struct CubeReadReport {
  std::string sci_hdu, err_hdu, dq_hdu, wmap_hdu;  // "" when absent
  bool slitstep_product = false;   // ORIGIN = 'slitstep'
  bool celestial_wcs = false;      // RA/Dec axes (else offsets only; sky set to RA = Dec = 0)
  bool x_reversed = false;         // the file's axes were flipped; cube x order reversed
  bool err_was_variance = false;
  std::string file_bunit;          // BUNIT as found in the file
  std::string spectral_ctype;      // CTYPE3 as found
  std::string spectral_unit;       // unit of the file's spectral values
  bool air_wavelengths = false;    // converted air -> vacuum
  double air_nonlinearity_channels = 0.0;  // worst deviation of the vacuum grid from linear
  std::size_t nonfinite_voxels = 0;  // SCI or ERR not finite (flagged, set to 0)
  std::vector<std::string> notes;  // one-line remarks on assumptions made
};

/// Writes `cube` to `path` (atomically; see core/fits.hpp). Throws InvalidOptions if the cube is
/// invalid, InputError on I/O failure.
void write_cube(const Cube& cube, const std::string& path, const ProductMeta& meta);

/// Reads a cube (see the header comment). `report`, if given, receives what was found.
Cube read_cube(const std::string& path, const ReadCubeOptions& options = {});
Cube read_cube(const std::string& path, const ReadCubeOptions& options, CubeReadReport* report);

/// The configuration text stored by write_cube, byte-identical. InputError if the file is not a
/// slitstep product or the stored text is damaged.
std::string read_product_config(const std::string& path);

/// PRODTYPE, SOFTVER, SEED, DATE and configuration of a slitstep product (extra_cards is left
/// empty). InputError if the file is not a slitstep product.
ProductMeta read_product_meta(const std::string& path);

/// Vacuum wavelength (Angstrom) of an air wavelength (Angstrom): the Morton (1991) refractive
/// index n(lambda_vac) = 1 + 2.735182e-4 + 131.4182/lambda^2 + 2.76249e8/lambda^4 (lambda in A)
/// used by SDSS, solved for lambda_vac = lambda_air * n(lambda_vac) by fixed-point iteration.
double air_to_vacuum_angstrom(double air_angstrom);

class FitsFile;
/// Writes the empty primary HDU every slitstep product starts with: ORIGIN, SOFTVER, PRODTYPE,
/// SEED, DATE, meta.extra_cards, and the configuration text as COMMENT cards (the encoding that
/// read_product_config decodes; docs/formats.md). Shared by the cube and the map products.
void write_product_primary(FitsFile& f, const ProductMeta& meta);
/// Writes the celestial part of a slitstep WCS (axes 1 and 2) into the current HDU: RA---TAN /
/// DEC--TAN about the aperture origin, CDELT1 = -pixel, CDELT2 = +pixel (deg), the PC rotation by
/// the aperture PA and RADESYS (docs/conventions.md, core/wcs.hpp). WCSAXES is the caller's.
/// Shared by the cube and the map products.
void write_celestial_wcs(FitsFile& f, const SpatialGrid& grid, const SkyFrame& sky);

}  // namespace slitstep
