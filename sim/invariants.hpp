#pragma once
// slitstep/sim: the invariant checker (GalSim style) run on every model kind.
//
// check_invariants() renders the model several times and measures, with a tolerance each:
//  * flux_halpha_fov: the cube integral of Halpha (rendered alone) against an INDEPENDENT
//    expectation: the disk's analytic fraction inside the field (a 1-D integral over the polar
//    angle of the Sérsic enclosed-light function, P(rho(phi)), in the disk's circular
//    coordinates, where rho is the distance to the field's edge) plus the clumps' and the AGN's
//    analytic (erf) fractions inside the field; tolerance 1e-4 (1e-3 if a clump or the AGN is
//    smaller than one fine pixel);
//  * flux_lines_fov: the integral of the all-line cube against the sum of the per-line fluxes
//    the renderer reports inside the field (checks the exact spectral normalisation), 1e-9;
//  * flux_continuum_fov (if the model has a continuum): the cube integral over the 5500 Å
//    continuum window against the model's continuum flux density times its analytic fraction
//    inside the field, 1e-4;
//  * pa180_flux / pa180_velocity: rotating pa_deg by 180 deg leaves every pixel's Halpha flux
//    unchanged (relative 1e-9) and negates v - v0 of its first moment (0.05 km/s: exact for one kinematic
//    component, O(v_a v_b / c) where a clump or the AGN overlaps the disk);
//  * shift_covariance: moving the centre by an integer number of fine pixels (+3, -2) shifts
//    the cube by exactly that many pixels (interior, max |difference| / peak < 1e-7).
// Library code: never prints; the report carries the numbers.
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/wcs.hpp"
#include "sim/galaxy.hpp"
#include "sim/render.hpp"

namespace slitstep {

struct InvariantCheck {
  std::string name;
  double value = 0.0;      // the measured discrepancy (relative unless stated)
  double tolerance = 0.0;
  bool pass = false;
  std::string detail;      // what was compared
};

struct InvariantReport {
  std::vector<InvariantCheck> checks;
  Status status;           // kOk if every check passes, else kFailed naming the failures
  bool all_pass() const {
    for (const auto& c : checks)
      if (!c.pass) return false;
    return !checks.empty();
  }
  /// A text table of the checks (for logs; library code does not print it).
  std::string table() const;
};

InvariantReport check_invariants(const GalaxyParams& params, const RenderOptions& options,
                                 const SkyFrame& sky, const CosmologyParams& cosmology = {});

/// Fraction of the disk profile (half-light radius re_arcsec) of `model` inside the aperture-frame
/// rectangle [x0, x1] x [y0, y1] (must contain the galaxy centre), by a polar 1-D integral of the
/// enclosed-light function. Independent of the renderer's pixel quadrature.
double profile_fraction_in_rect(const GalaxyModel& model, double re_arcsec, double x0, double x1,
                                double y0, double y1);

}  // namespace slitstep
