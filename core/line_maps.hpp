#pragma once
// slitstep/core: LineMaps, the per-spaxel emission-line measurements of a cube. Produced by
// fit/lines (per-spaxel Gaussian fits), consumed by analysis/ (selection, metallicity, BPT/WHAN,
// gradients, kinematics) and written by the `analyze` command as maps.fits / spaxels.csv.
//
// Layout: maps are nx*ny, index(i, j) = j*nx + i (0-based; i along x of the cube's aperture
// frame, j along y), on the cube's SpatialGrid / SkyFrame (so a map has the cube's 2-D WCS).
// Units: line fluxes in erg s^-1 cm^-2 per spaxel (NOT per arcsec^2); equivalent widths in
// Angstrom, REST frame, positive for emission; velocities in km/s relative to the systemic
// redshift (relativistic definition, core/units.hpp); sigma is the INTRINSIC line-of-sight
// dispersion (instrumental width removed in quadrature), km/s; continuum in the cube's surface-
// brightness unit at the line (erg s^-1 cm^-2 um^-1 arcsec^-2). Errors are 1 sigma. A value that
// could not be measured is NaN and its spaxel's `fit_ok` is false; consumers must check.
#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/grid.hpp"
#include "core/lines.hpp"
#include "core/wcs.hpp"

namespace slitstep {

struct LineMap {
  std::vector<double> flux_cgs;       // per spaxel
  std::vector<double> flux_err_cgs;
  std::vector<double> ew_rest_A;      // rest-frame equivalent width (emission > 0)
  std::vector<double> ew_err_rest_A;
  bool measured = false;              // false if the line is outside the cube or not fitted
};

struct LineMaps {
  SpatialGrid spatial;
  SkyFrame sky;
  double redshift = 0.0;
  std::array<LineMap, kNumLines> lines;  // indexed by static_cast<int>(LineId)
  std::vector<double> velocity_kms, velocity_err_kms;
  std::vector<double> sigma_kms, sigma_err_kms;   // intrinsic
  std::vector<double> sigma_inst_kms;             // instrumental sigma removed at Halpha
  std::vector<double> continuum_sb;               // continuum under Halpha
  std::vector<double> continuum_line_free_sb;     // continuum in a line-free window (centre finder)
  std::vector<double> chi2_per_dof;
  std::vector<std::uint8_t> fit_ok;               // 1 if the fit converged with finite results

  std::size_t size() const { return spatial.size(); }
  std::size_t index(int i, int j) const { return static_cast<std::size_t>(j) * spatial.nx + i; }
  LineMap& line(LineId id) { return lines[static_cast<int>(id)]; }
  const LineMap& line(LineId id) const { return lines[static_cast<int>(id)]; }
  /// Allocates every map with NaN (fit_ok 0) for the grid.
  void allocate(const SpatialGrid& grid, const SkyFrame& frame, double z);
};

inline void LineMaps::allocate(const SpatialGrid& grid, const SkyFrame& frame, double z) {
  spatial = grid;
  sky = frame;
  redshift = z;
  const std::size_t n = grid.size();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (auto& l : lines) {
    l.flux_cgs.assign(n, nan);
    l.flux_err_cgs.assign(n, nan);
    l.ew_rest_A.assign(n, nan);
    l.ew_err_rest_A.assign(n, nan);
    l.measured = false;
  }
  for (auto* v : {&velocity_kms, &velocity_err_kms, &sigma_kms, &sigma_err_kms, &sigma_inst_kms, &continuum_sb,
                  &continuum_line_free_sb, &chi2_per_dof})
    v->assign(n, nan);
  fit_ok.assign(n, 0);
}

}  // namespace slitstep
