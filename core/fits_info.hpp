#pragma once
// slitstep/core: a human-readable summary of a FITS file (what `slitstep info FILE` prints).
//
// Lists every HDU (index, EXTNAME, type, dims in FITS order, BUNIT) and then:
//  * for a slitstep product: PRODTYPE, SOFTVER, SEED, DATE;
//  * for a cube (a file with a SCI/DATA/FLUX extension, a 3-D primary image, or any image data
//    that is not recognised as something else): the result of read_cube (dimensions, units,
//    wavelength range and windows, spaxel size, WCS reference and rotation, fraction of flagged
//    voxels, the assumptions read_cube made). The cube is read through read_cube, so a broken
//    cube throws the same one-line InputError;
//  * for a 2-D spectrum / exposure (SCI with 2 axes and a WAVELENGTH or SPEC1D extension, or
//    PRODTYPE starting with "EXPOSURE"), a JWST reference file (primary REFTYPE), NIRSpec MSA
//    metadata (SHUTTER_INFO) or a file with tables only: the HDU list and what the file is
//    (exposure and map summaries are added with their formats, docs/formats.md).
// Never prints; the returned text ends with a newline.
#include <string>

namespace slitstep {

std::string describe_fits(const std::string& path);

}  // namespace slitstep
