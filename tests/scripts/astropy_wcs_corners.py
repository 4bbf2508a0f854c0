#!/usr/bin/env python3
"""Print the world coordinates of the 8 corner voxels of a FITS cube, computed by astropy.wcs.

Usage: astropy_wcs_corners.py FILE [EXTNAME]   (EXTNAME defaults to SCI)

One line per corner, 0-based pixel indices first (i along NAXIS1, j along NAXIS2, k along
NAXIS3), then RA and Dec in degrees and the wavelength in micrometres:
    i j k ra_deg dec_deg wavelength_um
The whole HDU list is passed to astropy (fobj=hdul) so that WAVE-TAB coordinate tables are used.
Used by tests/test_cube_io.cpp to check slitstep's WCS against an independent implementation.
"""
import sys
import warnings

import astropy.units as u
from astropy.io import fits
from astropy.wcs import WCS


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    path = argv[1]
    ext = argv[2] if len(argv) > 2 else "SCI"
    with fits.open(path) as hdul:
        header = hdul[ext].header
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. FITSFixedWarning on foreign files
            w = WCS(header, fobj=hdul)
        nx, ny, nl = header["NAXIS1"], header["NAXIS2"], header["NAXIS3"]
        spectral_unit = u.Unit(w.wcs.cunit[2]) if str(w.wcs.cunit[2]) else u.m
        for k in (0, nl - 1):
            for j in (0, ny - 1):
                for i in (0, nx - 1):
                    ra, dec, lam = w.wcs_pix2world([[i, j, k]], 0)[0]
                    lam_um = (lam * spectral_unit).to_value(u.um)
                    print(f"{i} {j} {k} {ra:.12f} {dec:.12f} {lam_um:.12f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
