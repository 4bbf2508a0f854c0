// slitstep/sim: summaries of a simulation for reports (sim/simulate.hpp): the brightest Halpha
// spaxel and its box S/N, printed by `slitstep simulate` / `slitstep demo`.
#include <cmath>

#include "core/lines.hpp"
#include "sim/simulate.hpp"

namespace slitstep {
namespace {

constexpr double kCKms = 299792.458;

}  // namespace

BrightestSpaxel brightest_halpha_spaxel(const SimulationResult& r) {
  BrightestSpaxel best;
  const Cube& c = r.reconstruct.cube;
  const auto& g = r.config.scene.galaxy;
  const double lha = observed_wavelength_um(LineId::kHalpha, g.redshift) * (1.0 + g.v0_kms / kCKms);
  const double sig_inst = kCKms / (2.3548 * 2700.0);
  const double sig = std::sqrt(g.sigma0_kms * g.sigma0_kms + sig_inst * sig_inst);
  const double half = 3.0 * sig + 0.5 * g.vc_kms;  // a little rotation inside one spaxel
  const double lo = lha * (1.0 - half / kCKms), hi = lha * (1.0 + half / kCKms);
  const double l84 = observed_wavelength_um(LineId::kNII6584, g.redshift);
  const double clo = l84 * (1.0 + (half + 250.0) / kCKms), chi = clo * (1.0 + 300.0 / kCKms);
  double best_flux = -1e300;
  for (int j = 0; j < c.ny(); ++j)
    for (int i = 0; i < c.nx(); ++i) {
      const SpaxelLineFlux f = spaxel_line_flux(c, i, j, lo, hi, clo, chi);
      if (f.ok && f.flux_cgs > best_flux && f.err_cgs > 0.0) {
        best_flux = f.flux_cgs;
        best = {i, j, f};
      }
    }
  return best;
}

}  // namespace slitstep
