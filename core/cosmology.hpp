#pragma once
// slitstep/core: flat Lambda-CDM cosmology (no radiation term, as astropy FlatLambdaCDM with
// Tcmb0 = 0). Default parameters are the MSA-3D paper's: H0 = 69.32 km/s/Mpc, Omega_m = 0.2865.
// Distances in Mpc; angular scale in kpc per arcsec. Integration: composite Simpson on
// E(z)^-1 with enough panels for 1e-8 relative accuracy.
// Failure: Cosmology construction throws InvalidOptions for H0 <= 0 or Omega_m outside (0, 1];
// distance functions return NaN for z < 0 or non-finite z (callers validate redshift first).
namespace slitstep {

struct CosmologyParams {
  double h0_kms_mpc = 69.32;  // Hubble constant
  double omega_m = 0.2865;    // matter density today; Omega_Lambda = 1 - Omega_m (flat)
  void validate() const;
};

class Cosmology {
 public:
  explicit Cosmology(const CosmologyParams& p = {});
  const CosmologyParams& params() const { return p_; }
  double hubble_distance_mpc() const;                 // c / H0
  double comoving_distance_mpc(double z) const;       // line-of-sight comoving distance D_C
  double angular_diameter_distance_mpc(double z) const;  // D_A = D_C / (1+z)
  double luminosity_distance_mpc(double z) const;        // D_L = D_C (1+z)
  double kpc_per_arcsec(double z) const;                  // proper transverse scale

 private:
  CosmologyParams p_;
};

}  // namespace slitstep
