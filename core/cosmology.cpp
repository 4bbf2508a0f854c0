#include "core/cosmology.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "core/error.hpp"
#include "core/units.hpp"

namespace slitstep {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The comoving-distance integral D_C / D_H = int_0^z dz' / E(z'), E(z) = sqrt(Om (1+z)^3 + OL),
// is evaluated after the substitution s = (1+z)^(-1/2) (so dz = -2 s^-3 ds):
//   int_0^z dz'/E(z') = int_{s_z}^{1} 2 ds / sqrt(Om + OL s^6),   s_z = (1+z)^(-1/2).
// The new integrand is bounded and analytic on [0, 1] for any Om > 0, so composite Simpson
// converges like h^4 for every redshift, including z -> infinity (s_z -> 0). This is the same
// integral of 1/E(z); only the integration variable differs.
double integrand(double s, double om, double ol) {
  const double s2 = s * s;
  return 2.0 / std::sqrt(om + ol * s2 * s2 * s2);
}

double simpson(double a, double b, int panels, double om, double ol) {
  const double h = (b - a) / panels;
  double odd = 0.0, even = 0.0;
  for (int i = 1; i < panels; ++i) {
    const double f = integrand(a + i * h, om, ol);
    if (i % 2 == 1) {
      odd += f;
    } else {
      even += f;
    }
  }
  return h / 3.0 * (integrand(a, om, ol) + integrand(b, om, ol) + 4.0 * odd + 2.0 * even);
}

// Doubles the number of panels until the Richardson error estimate |S_2n - S_n| / 15 is below
// 1e-12 relative (far inside the 1e-8 target). For the defaults 128 panels already suffice.
double dimensionless_comoving(double z, double om) {
  const double ol = 1.0 - om;
  const double a = 1.0 / std::sqrt(1.0 + z);
  if (a >= 1.0) return 0.0;
  int n = 64;
  double prev = simpson(a, 1.0, n, om, ol);
  for (int iter = 0; iter < 14; ++iter) {
    n *= 2;
    const double cur = simpson(a, 1.0, n, om, ol);
    if (std::abs(cur - prev) <= 15.0 * 1e-12 * std::abs(cur)) return cur + (cur - prev) / 15.0;
    prev = cur;
  }
  return prev;  // 2^20 panels: unreachable for Om in (0, 1], kept as a bound on the work
}

}  // namespace

void CosmologyParams::validate() const {
  if (!std::isfinite(h0_kms_mpc) || h0_kms_mpc <= 0.0) {
    throw InvalidOptions("CosmologyParams.h0_kms_mpc = " + format_value(h0_kms_mpc) +
                         ": must be finite and > 0 (km/s/Mpc)");
  }
  if (!std::isfinite(omega_m) || omega_m <= 0.0 || omega_m > 1.0) {
    throw InvalidOptions("CosmologyParams.omega_m = " + format_value(omega_m) +
                         ": must lie in (0, 1] (flat LCDM, Omega_Lambda = 1 - Omega_m >= 0)");
  }
}

Cosmology::Cosmology(const CosmologyParams& p) : p_(p) { p_.validate(); }

double Cosmology::hubble_distance_mpc() const { return kSpeedOfLight_kms / p_.h0_kms_mpc; }

double Cosmology::comoving_distance_mpc(double z) const {
  if (!std::isfinite(z) || z < 0.0) return kNaN;
  return hubble_distance_mpc() * dimensionless_comoving(z, p_.omega_m);
}

double Cosmology::angular_diameter_distance_mpc(double z) const {
  return comoving_distance_mpc(z) / (1.0 + z);
}

double Cosmology::luminosity_distance_mpc(double z) const {
  return comoving_distance_mpc(z) * (1.0 + z);
}

double Cosmology::kpc_per_arcsec(double z) const {
  return angular_diameter_distance_mpc(z) * 1.0e3 / kArcsecPerRad;
}

}  // namespace slitstep
