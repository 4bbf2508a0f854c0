#pragma once
// slitstep/analysis: galaxy centre, position angle, axis ratio and de-projected radii (pure
// functions on in-memory maps; no I/O, never prints).
//
// Frame and PA convention (docs/conventions.md, identical to sim/galaxy.hpp): positions are
// (x, y) arcsec in the aperture frame of the maps (x along the dispersion direction, y along the
// slit). `pa_deg` is the position angle of the RECEDING half of the major axis measured from the
// +y (slit) axis toward -x (the sense of a sky PA; the sky PA is aperture_pa_deg + pa_deg). The
// receding major axis is the unit vector (-sin pa, cos pa). A point at (dx, dy) from the centre
// has major / minor coordinates
//   a = -dx sin pa + dy cos pa,   b = dx cos pa + dy sin pa,
// de-projected (thin disk) radius R = sqrt(a^2 + (b / cos i)^2) and disk azimuth cos theta = a/R
// (theta = 0 on the receding major axis). cos i = b/a of the galaxy (thin disk, paper Sect.
// 4.2.1), or with an intrinsic thickness q0: cos^2 i = (q^2 - q0^2) / (1 - q0^2).
// Physical radius: R_kpc = R_arcsec * Cosmology::kpc_per_arcsec(z).
//
// Centre (paper Sect. 3.2): the peak of the line-free continuum map. The map is smoothed with a
// NaN-aware Gaussian (sigma `smoothing_sigma_pix`), the brightest smoothed spaxel is found and a
// 2-D quadratic is fitted by least squares to ln(smoothed) on its 3x3 neighbourhood; the
// stationary point of that quadratic is the sub-spaxel centre (exact for any 2-D Gaussian peak;
// limited to +-1 spaxel from the peak spaxel). If the line-free continuum map is empty the
// continuum under Halpha is used, then the Halpha flux map (the status message says which).
//
// Axis ratio and PA from light moments: flux-weighted second moments of the positive spaxels of
// a map above `threshold_frac` x its peak, about the given centre; b/a = sqrt(lambda_min /
// lambda_max) and the PA of the major eigenvector (defined modulo 180 deg: which half recedes is
// unknown from light, so the returned PA lies in (-90, 90]). The PSF and the 0.2" x 0.08"
// resolution element round the moments (b/a biased high for small galaxies): a fallback for when
// no catalogue value is given, not a replacement for it.
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/line_maps.hpp"

namespace slitstep {

struct CenterOptions {
  double smoothing_sigma_pix = 1.0;  // light Gaussian smoothing of the continuum map (0 = none)
  void validate() const;
};

struct CenterResult {
  double x_arcsec = 0.0;
  double y_arcsec = 0.0;
  std::string source;  // "continuum_line_free_sb", "continuum_sb" or "halpha_flux"
  Status status;
};

/// Centre from the peak of a map (values per spaxel on `grid`; NaN = no data).
CenterResult find_peak_center(const SpatialGrid& grid, const std::vector<double>& map,
                              const CenterOptions& o);
/// Centre of a galaxy: line-free continuum, else continuum under Halpha, else Halpha flux.
CenterResult find_continuum_center(const LineMaps& maps, const CenterOptions& o);

struct MomentsOptions {
  double threshold_frac = 0.2;  // use spaxels brighter than this fraction of the peak
  void validate() const;
};
struct MomentsResult {
  double pa_deg = 0.0;       // (-90, 90], convention above
  double axis_ratio = 1.0;   // b/a in (0, 1]
  int n_spaxels = 0;
  Status status;
};
MomentsResult light_moments(const SpatialGrid& grid, const std::vector<double>& map, double cx_arcsec,
                            double cy_arcsec, const MomentsOptions& o);

/// cos i from an observed axis ratio q with intrinsic thickness q0 (0 = thin disk); returns
/// the inclination in degrees (q <= q0 gives 90).
double inclination_from_axis_ratio_deg(double axis_ratio, double q0 = 0.0);

struct DiskGeometry {
  double center_x_arcsec = 0.0;
  double center_y_arcsec = 0.0;
  double pa_deg = 0.0;           // receding major axis, from +y toward -x
  double inclination_deg = 0.0;  // [0, 90)
  double kpc_per_arcsec = 1.0;
};

struct DiskCoords {
  double a_arcsec;   // along the receding major axis
  double b_arcsec;   // along the minor axis (projected)
  double r_arcsec;   // de-projected radius
  double r_kpc;
  double cos_theta;  // a / R (1 on the receding major axis; 0 at the centre)
};

DiskCoords disk_coords(const DiskGeometry& g, double x_arcsec, double y_arcsec);

}  // namespace slitstep
