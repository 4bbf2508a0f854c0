#pragma once
// slitstep/fit: parameters of the forward-model fits (DESIGN.md §5.2; docs/fit.md "Forward-model
// fitting").
//
// A ParamSpec describes one scalar field of sim::GalaxyParams by its config name (unit in the
// name): start/fixed value, hard bounds, fixed or free, an optional Gaussian prior and a `scale`
// (the typical size of the parameter; the optimiser and the finite differences work on the
// internal coordinate x = value / scale, which is O(1) for every parameter).
// GalaxyParameterization maps the vector theta of the FREE parameters (physical units, in the
// order of specs()) to a full GalaxyParams (a base value with the specs' values written in) and
// back. Fittable names (fittable_parameter_names()): vc_kms, rt_arcsec, v0_kms, sigma0_kms,
// inclination_deg, pa_deg, center_x_arcsec, center_y_arcsec, re_arcsec, halpha_flux_cgs,
// z0_12logoh, gradient_dex_per_kpc, sigma_slope_kms_per_kpc, sersic_n, ebv_mag, redshift.
// Setting inclination_deg clears axis_ratio (the parameterization always fits the inclination).
// Derived quantities (v_over_sigma = vc/sigma0, gradient_dex_per_re = gradient * R_e[kpc]) come
// with 1-sigma errors by linear propagation of the covariance of the free parameters.
// Failure: validate() throws InvalidOptions "GalaxyParameterization.<name>.<field> = <value>:
// rule"; unknown names throw InvalidOptions naming them.
#include <limits>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "sim/galaxy.hpp"

namespace slitstep {

struct Prior {
  enum class Kind { kNone, kGaussian };
  Kind kind = Kind::kNone;
  double mean = 0.0;   // Gaussian: mean (physical unit of the parameter)
  double sigma = 0.0;  // Gaussian: standard deviation (> 0)
  static Prior none() { return {}; }
  static Prior gaussian(double mean, double sigma) { return {Kind::kGaussian, mean, sigma}; }
  bool operator==(const Prior&) const = default;
};

struct ParamSpec {
  std::string name;                                        // GalaxyParams field name
  double value = 0.0;                                      // start (free) or value (fixed)
  double lower = -std::numeric_limits<double>::infinity(); // hard bounds (value in [lower, upper])
  double upper = std::numeric_limits<double>::infinity();
  bool fixed = false;
  Prior prior;                                             // in addition to the bounds
  double scale = 1.0;                                      // typical size (> 0): x = value / scale
  bool operator==(const ParamSpec&) const = default;
};

/// The names GalaxyParameterization can fit (the first twelve are the default parameter list).
const std::vector<std::string>& fittable_parameter_names();
/// The default parameter list (the twelve standard names).
const std::vector<std::string>& default_parameter_names();
/// Default spec of a fittable parameter: value read from `params`, physically sensible bounds
/// (inclination_deg in [5, 85], ...), scale, free, no prior. Throws InvalidOptions for an unknown
/// name.
ParamSpec default_param_spec(const std::string& name, const GalaxyParams& params);
/// Reads / writes one fittable field of GalaxyParams (inclination: the resolved value; 55 deg
/// when neither inclination_deg nor axis_ratio is set). Throw InvalidOptions for unknown names.
double get_galaxy_param(const GalaxyParams& p, const std::string& name);
void set_galaxy_param(GalaxyParams& p, const std::string& name, double value);

class GalaxyParameterization {
 public:
  /// Default galaxy, the twelve default parameters, all free.
  GalaxyParameterization();
  /// `base` supplies every field; `names` (default: the twelve) get default specs with their
  /// values from `base`, all free.
  explicit GalaxyParameterization(const GalaxyParams& base,
                                  const std::vector<std::string>& names = default_parameter_names());

  const GalaxyParams& base() const { return base_; }
  const std::vector<ParamSpec>& specs() const { return specs_; }
  std::vector<ParamSpec>& specs() { return specs_; }
  bool has(const std::string& name) const;
  ParamSpec& spec(const std::string& name);              // throws InvalidOptions if absent
  const ParamSpec& spec(const std::string& name) const;
  /// Adds a fittable parameter with its default spec (value from base); no-op if present.
  ParamSpec& add(const std::string& name);
  void fix(const std::string& name);
  void fix(const std::string& name, double value);
  void free(const std::string& name);
  /// Exactly these parameters free (added if absent), every other spec fixed.
  void set_free(const std::vector<std::string>& names);
  void set_value(const std::string& name, double value) { spec(name).value = value; }

  std::size_t num_free() const;
  std::vector<int> free_indices() const;            // indices into specs()
  std::vector<std::string> free_names() const;
  /// The free parameters' values (physical), the start of a fit.
  std::vector<double> start() const;
  /// Full galaxy: base with every spec value written in, the free ones from theta (num_free()).
  GalaxyParams to_params(const double* theta) const;
  GalaxyParams to_params(const std::vector<double>& theta) const { return to_params(theta.data()); }
  /// The free parameters read from a GalaxyParams (e.g. a truth).
  std::vector<double> from_params(const GalaxyParams& p) const;
  /// Writes every spec value into `p` (the fixed ones too).
  void apply_values(GalaxyParams& p) const;
  /// Scales of the free parameters (internal x = theta / scale).
  std::vector<double> free_scales() const;
  std::vector<double> free_lower() const;
  std::vector<double> free_upper() const;
  /// True when every free value is finite and inside its bounds; else `why` names the first one.
  bool in_bounds(const double* theta, std::string* why = nullptr) const;
  /// log prior of the free parameters: -inf outside the bounds, else the sum of the Gaussian
  /// priors' log densities (up to a constant).
  double log_prior(const double* theta) const;
  /// Throws InvalidOptions naming the parameter, the field, the value and the rule.
  void validate() const;
  /// The same without the value checks (bounds, scales, priors, names only): what the fitter
  /// requires, since it reports a bad start value as a status instead of throwing.
  void validate_structure() const;

 private:
  GalaxyParams base_;
  std::vector<ParamSpec> specs_;
};

/// A quantity derived from the parameters, with its 1-sigma error by linear propagation.
struct DerivedQuantity {
  std::string name;
  double value = 0.0;
  double err = 0.0;    // 0 when every input is fixed; +inf when an input is undetermined
  std::string note;    // e.g. "inputs fixed: no error"
};

/// v_over_sigma (vc_kms / sigma0_kms) and gradient_dex_per_re (gradient_dex_per_kpc * re_arcsec
/// * kpc_per_arcsec). theta: free values; cov: covariance of the free parameters (num_free^2,
/// physical units; may be empty = no errors).
std::vector<DerivedQuantity> derived_quantities(const GalaxyParameterization& param, const std::vector<double>& theta,
                                                const Eigen::MatrixXd& cov, double kpc_per_arcsec);

}  // namespace slitstep
