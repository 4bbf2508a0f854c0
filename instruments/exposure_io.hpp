#pragma once
// slitstep/instruments: one FITS file per exposure, in the layout of the JWST pipeline's
// s2d / cal slit products (file layout in docs/formats.md, "Exposure files").
//
// write_exposure writes: an empty primary HDU carrying the provenance (ORIGIN = 'slitstep',
// SOFTVER, DATE, SEED), the pointing (PNTINDEX, PATTSTEP, PATTDITH, MSAXOFF, MSAYOFF in arcsec,
// EFFEXPTM in s), the slitlet (QUADRANT, SHUTTRI, SHUTTRJ, NSHUTTER, shutter open size and
// pitch), the instrument (TELESCOP, INSTRUME, EXP_TYPE, GRATING, FILTER) and the row geometry
// (ROWY0, ROWPITCH in arcsec); then image extensions SCI and ERR (float32), DQ (int32, DqBit of
// core/cube.hpp), WAVELENGTH (float64, 2-D nv x nu as the pipeline writes it), VAR_POISSON and
// VAR_RNOISE (float64: variances in cgs surface-brightness units are ~1e-40 and would underflow
// float32), each with BUNIT. FITS axis 1 = dispersion column u, axis 2 = row v (1-based in
// FITS: p1 = u + 1, p2 = v + 1). Writing goes through core/fits (temporary name + rename).
//
// read_exposure reads such a file back exactly (SCI/ERR to float32 precision, the rest exactly)
// and also reads real JWST NIRSpec slit products (cal / phot / s2d cut-outs, e.g. msaexp's):
//  * SCI/ERR in MJy/sr (or MJy per pixel, using PIXAR_SR) are converted to slitstep's
//    erg s-1 cm-2 um-1 arcsec-2 with each pixel's own wavelength; VAR_* (no BUNIT in JWST files)
//    are taken in SCI's unit squared and converted with the square of the factor;
//  * NaN / inf in SCI, ERR, VAR_* or WAVELENGTH -> the value is set to 0 and the pixel flagged
//    kDqNonFinite | kDqDoNotUse; JWST's DO_NOT_USE bit maps to kDqDoNotUse, its other DQ bits
//    (different meanings from slitstep's) are dropped;
//  * WAVELENGTH varies along the rows of un-rectified frames: it is kept in
//    Exposure::wavelength2d_um and wavelength_um gets the per-column median (gaps interpolated);
//  * the row geometry (ROWY0 / ROWPITCH) is not read from the file's ASDF WCS: nominal 0.1"
//    rows centred on the cut-out are assumed and the pattern offsets are zero (notes say so).
// Every failure throws InputError with one line naming the file (and HDU / key).
#include <string>
#include <vector>

#include "instruments/exposure.hpp"
#include "instruments/geometry.hpp"

namespace slitstep {

struct ExposureFileMeta {
  SlitletConfig slitlet;            // quadrant, shutter indices, number and size of shutters
  std::string grating = "G140H";
  std::string filter = "F100LP";
  std::string software_version;     // SOFTVER; empty = slitstep::kVersion
  std::string date;                 // DATE; empty = now (set it for byte-identical files)
  // Filled by read_exposure only:
  bool slitstep_product = false;    // ORIGIN = 'slitstep'
  std::string sci_bunit_in;         // BUNIT of SCI as found in the file
  std::vector<std::string> notes;   // conversions and assumptions made while reading
};

struct ExposureFile {
  Exposure exposure;
  ExposureFileMeta meta;
};

/// Writes one exposure (validated first; InputError naming the file on failure).
void write_exposure(const std::string& path, const Exposure& exposure, const ExposureFileMeta& meta = {});
/// Reads a slitstep exposure file or a real JWST NIRSpec slit product.
ExposureFile read_exposure(const std::string& path);
/// Conventional file name of a pointing: "exp_p012_s03_d01.fits".
std::string exposure_file_name(const Pointing& p);

}  // namespace slitstep
