#include "fit/params.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/units.hpp"

namespace slitstep {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// One fittable field: accessor into GalaxyParams plus its default bounds and scale.
struct FieldInfo {
  const char* name;
  double GalaxyParams::*member;  // nullptr: special (inclination)
  double lower, upper;           // default bounds
  double scale;                  // default scale (0: |value|, or `fallback` when value is 0)
  double fallback;
};

const std::vector<FieldInfo>& fields() {
  static const std::vector<FieldInfo> f = {
      {"vc_kms", &GalaxyParams::vc_kms, 0.0, 1000.0, 100.0, 0.0},
      {"rt_arcsec", &GalaxyParams::rt_arcsec, 0.005, 3.0, 0.1, 0.0},
      {"v0_kms", &GalaxyParams::v0_kms, -1000.0, 1000.0, 50.0, 0.0},
      {"sigma0_kms", &GalaxyParams::sigma0_kms, 1.0, 500.0, 50.0, 0.0},
      {"inclination_deg", nullptr, 5.0, 85.0, 10.0, 0.0},
      {"pa_deg", &GalaxyParams::pa_deg, -360.0, 360.0, 10.0, 0.0},
      {"center_x_arcsec", &GalaxyParams::center_x_arcsec, -2.0, 2.0, 0.1, 0.0},
      {"center_y_arcsec", &GalaxyParams::center_y_arcsec, -2.0, 2.0, 0.1, 0.0},
      {"re_arcsec", &GalaxyParams::re_arcsec, 0.01, 5.0, 0.1, 0.0},
      {"halpha_flux_cgs", &GalaxyParams::halpha_flux_cgs, 0.0, 1e-12, 0.0, 1e-17},
      {"z0_12logoh", &GalaxyParams::z0_12logoh, 7.0, 9.5, 0.1, 0.0},
      {"gradient_dex_per_kpc", &GalaxyParams::gradient_dex_per_kpc, -0.5, 0.5, 0.01, 0.0},
      // beyond the default list
      {"sigma_slope_kms_per_kpc", &GalaxyParams::sigma_slope_kms_per_kpc, -100.0, 100.0, 5.0, 0.0},
      {"sersic_n", &GalaxyParams::sersic_n, 0.3, 8.0, 0.5, 0.0},
      {"ebv_mag", &GalaxyParams::ebv_mag, 0.0, 3.0, 0.1, 0.0},
      {"redshift", &GalaxyParams::redshift, 1e-4, 19.9, 0.001, 0.0},
      // the nuisance continuum: its level relative to Halpha (rest-frame EW)
      {"ew_halpha_rest_A", &GalaxyParams::ew_halpha_rest_A, 0.0, 5000.0, 0.0, 10.0},
  };
  return f;
}

const FieldInfo* find_field(const std::string& name) {
  for (const auto& f : fields())
    if (name == f.name) return &f;
  return nullptr;
}

const FieldInfo& field_or_throw(const std::string& name) {
  const FieldInfo* f = find_field(name);
  if (!f) {
    std::string list;
    for (const auto& g : fields()) list += (list.empty() ? "" : ", ") + std::string(g.name);
    throw InvalidOptions("GalaxyParameterization: unknown parameter '" + name + "' (fittable: " + list + ")");
  }
  return *f;
}

std::string fmt(double v) { return format_value(v); }

}  // namespace

const std::vector<std::string>& fittable_parameter_names() {
  static const std::vector<std::string> n = [] {
    std::vector<std::string> v;
    for (const auto& f : fields()) v.emplace_back(f.name);
    return v;
  }();
  return n;
}

const std::vector<std::string>& default_parameter_names() {
  static const std::vector<std::string> n(fittable_parameter_names().begin(), fittable_parameter_names().begin() + 12);
  return n;
}

double get_galaxy_param(const GalaxyParams& p, const std::string& name) {
  const FieldInfo& f = field_or_throw(name);
  if (f.member) return p.*(f.member);
  // inclination: resolved as GalaxyModel does
  if (p.inclination_deg) return *p.inclination_deg;
  if (p.axis_ratio) {
    const double q = *p.axis_ratio, q0 = p.thickness_q0;
    const double c2 = std::clamp((q * q - q0 * q0) / (1.0 - q0 * q0), 0.0, 1.0);
    return std::acos(std::sqrt(c2)) * kDegPerRad;
  }
  return 55.0;
}

void set_galaxy_param(GalaxyParams& p, const std::string& name, double value) {
  const FieldInfo& f = field_or_throw(name);
  if (f.member) {
    p.*(f.member) = value;
    return;
  }
  p.inclination_deg = value;
  p.axis_ratio.reset();
}

ParamSpec default_param_spec(const std::string& name, const GalaxyParams& params) {
  const FieldInfo& f = field_or_throw(name);
  ParamSpec s;
  s.name = name;
  s.value = get_galaxy_param(params, name);
  s.lower = f.lower;
  s.upper = f.upper;
  if (f.scale > 0.0) {
    s.scale = f.scale;
  } else {
    s.scale = std::abs(s.value) > 0.0 && std::isfinite(s.value) ? std::abs(s.value) : f.fallback;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------

GalaxyParameterization::GalaxyParameterization() : GalaxyParameterization(GalaxyParams{}) {}

GalaxyParameterization::GalaxyParameterization(const GalaxyParams& base, const std::vector<std::string>& names)
    : base_(base) {
  for (const auto& n : names) add(n);
}

bool GalaxyParameterization::has(const std::string& name) const {
  return std::any_of(specs_.begin(), specs_.end(), [&](const ParamSpec& s) { return s.name == name; });
}

ParamSpec& GalaxyParameterization::spec(const std::string& name) {
  for (auto& s : specs_)
    if (s.name == name) return s;
  throw InvalidOptions("GalaxyParameterization: no parameter '" + name + "' (add() it first)");
}

const ParamSpec& GalaxyParameterization::spec(const std::string& name) const {
  return const_cast<GalaxyParameterization*>(this)->spec(name);
}

ParamSpec& GalaxyParameterization::add(const std::string& name) {
  for (auto& s : specs_)
    if (s.name == name) return s;
  specs_.push_back(default_param_spec(name, base_));
  return specs_.back();
}

void GalaxyParameterization::fix(const std::string& name) { spec(name).fixed = true; }
void GalaxyParameterization::fix(const std::string& name, double value) {
  ParamSpec& s = spec(name);
  s.fixed = true;
  s.value = value;
}
void GalaxyParameterization::free(const std::string& name) { spec(name).fixed = false; }

void GalaxyParameterization::set_free(const std::vector<std::string>& names) {
  for (const auto& n : names) add(n);
  for (auto& s : specs_) s.fixed = std::find(names.begin(), names.end(), s.name) == names.end();
}

std::size_t GalaxyParameterization::num_free() const {
  return static_cast<std::size_t>(std::count_if(specs_.begin(), specs_.end(), [](const ParamSpec& s) { return !s.fixed; }));
}

std::vector<int> GalaxyParameterization::free_indices() const {
  std::vector<int> v;
  for (std::size_t i = 0; i < specs_.size(); ++i)
    if (!specs_[i].fixed) v.push_back(static_cast<int>(i));
  return v;
}

std::vector<std::string> GalaxyParameterization::free_names() const {
  std::vector<std::string> v;
  for (const auto& s : specs_)
    if (!s.fixed) v.push_back(s.name);
  return v;
}

std::vector<double> GalaxyParameterization::start() const {
  std::vector<double> v;
  for (const auto& s : specs_)
    if (!s.fixed) v.push_back(s.value);
  return v;
}

std::vector<double> GalaxyParameterization::free_scales() const {
  std::vector<double> v;
  for (const auto& s : specs_)
    if (!s.fixed) v.push_back(s.scale);
  return v;
}
std::vector<double> GalaxyParameterization::free_lower() const {
  std::vector<double> v;
  for (const auto& s : specs_)
    if (!s.fixed) v.push_back(s.lower);
  return v;
}
std::vector<double> GalaxyParameterization::free_upper() const {
  std::vector<double> v;
  for (const auto& s : specs_)
    if (!s.fixed) v.push_back(s.upper);
  return v;
}

void GalaxyParameterization::apply_values(GalaxyParams& p) const {
  for (const auto& s : specs_) set_galaxy_param(p, s.name, s.value);
}

GalaxyParams GalaxyParameterization::to_params(const double* theta) const {
  GalaxyParams p = base_;
  std::size_t k = 0;
  for (const auto& s : specs_) set_galaxy_param(p, s.name, s.fixed ? s.value : theta[k++]);
  return p;
}

std::vector<double> GalaxyParameterization::from_params(const GalaxyParams& p) const {
  std::vector<double> v;
  for (const auto& s : specs_)
    if (!s.fixed) v.push_back(get_galaxy_param(p, s.name));
  return v;
}

bool GalaxyParameterization::in_bounds(const double* theta, std::string* why) const {
  std::size_t k = 0;
  for (const auto& s : specs_) {
    if (s.fixed) continue;
    const double v = theta[k++];
    if (!std::isfinite(v)) {
      if (why) *why = s.name + " = " + fmt(v) + " is not finite";
      return false;
    }
    if (v < s.lower || v > s.upper) {
      if (why) *why = s.name + " = " + fmt(v) + " is outside its bounds [" + fmt(s.lower) + ", " + fmt(s.upper) + "]";
      return false;
    }
  }
  return true;
}

double GalaxyParameterization::log_prior(const double* theta) const {
  double lp = 0.0;
  std::size_t k = 0;
  for (const auto& s : specs_) {
    if (s.fixed) continue;
    const double v = theta[k++];
    if (!std::isfinite(v) || v < s.lower || v > s.upper) return -kInf;
    if (s.prior.kind == Prior::Kind::kGaussian) {
      const double t = (v - s.prior.mean) / s.prior.sigma;
      lp -= 0.5 * t * t;
    }
  }
  return lp;
}

void GalaxyParameterization::validate() const {
  validate_structure();
  for (const ParamSpec& s : specs_) {
    if (!std::isfinite(s.value))
      throw InvalidOptions("GalaxyParameterization." + s.name + ".value = " + fmt(s.value) + ": must be finite");
    if (s.value < s.lower || s.value > s.upper)
      throw InvalidOptions("GalaxyParameterization." + s.name + ".value = " + fmt(s.value) +
                           ": must be inside [lower, upper] = [" + fmt(s.lower) + ", " + fmt(s.upper) + "]");
  }
}

void GalaxyParameterization::validate_structure() const {
  auto bad = [](const ParamSpec& s, const char* field, double v, const std::string& rule) {
    throw InvalidOptions("GalaxyParameterization." + s.name + "." + field + " = " + fmt(v) + ": " + rule);
  };
  for (std::size_t a = 0; a < specs_.size(); ++a) {
    const ParamSpec& s = specs_[a];
    field_or_throw(s.name);
    for (std::size_t b = 0; b < a; ++b)
      if (specs_[b].name == s.name) throw InvalidOptions("GalaxyParameterization: parameter '" + s.name + "' listed twice");
    if (std::isnan(s.lower)) bad(s, "lower", s.lower, "must not be NaN");
    if (std::isnan(s.upper)) bad(s, "upper", s.upper, "must not be NaN");
    if (!(s.lower < s.upper)) bad(s, "upper", s.upper, "must be > lower = " + fmt(s.lower));
    if (!(s.scale > 0.0) || !std::isfinite(s.scale)) bad(s, "scale", s.scale, "must be finite and > 0");
    if (s.prior.kind == Prior::Kind::kGaussian) {
      if (!std::isfinite(s.prior.mean)) bad(s, "prior.mean", s.prior.mean, "must be finite");
      if (!(s.prior.sigma > 0.0) || !std::isfinite(s.prior.sigma))
        bad(s, "prior.sigma", s.prior.sigma, "must be finite and > 0");
    }
    if (s.name == "inclination_deg" && (s.lower < 0.0 || s.upper > 90.0))
      bad(s, s.lower < 0.0 ? "lower" : "upper", s.lower < 0.0 ? s.lower : s.upper,
          "inclination bounds must lie within [0, 90] deg");
    if ((s.name == "rt_arcsec" || s.name == "re_arcsec" || s.name == "sigma0_kms") && !(s.lower > 0.0))
      bad(s, "lower", s.lower, "must be > 0 (the model needs a positive " + s.name + ")");
    if ((s.name == "vc_kms" || s.name == "halpha_flux_cgs" || s.name == "ebv_mag") && s.lower < 0.0)
      bad(s, "lower", s.lower, "must be >= 0");
  }
}

// ---------------------------------------------------------------------------------------------

std::vector<DerivedQuantity> derived_quantities(const GalaxyParameterization& param, const std::vector<double>& theta,
                                                const Eigen::MatrixXd& cov, double kpc_per_arcsec) {
  const GalaxyParams p = param.to_params(theta.data());
  const std::vector<std::string> names = param.free_names();
  const int n = static_cast<int>(names.size());
  const bool have_cov = cov.rows() == n && cov.cols() == n && n > 0;
  auto index_of = [&](const std::string& nm) {
    for (int k = 0; k < n; ++k)
      if (names[k] == nm) return k;
    return -1;
  };
  // value + gradient over the named inputs -> DerivedQuantity
  auto make = [&](const std::string& name, double value, const std::vector<std::pair<std::string, double>>& grad) {
    DerivedQuantity d;
    d.name = name;
    d.value = value;
    Eigen::VectorXd g = Eigen::VectorXd::Zero(n);
    bool any_free = false;
    for (const auto& [nm, dv] : grad) {
      const int k = index_of(nm);
      if (k >= 0) {
        g[k] = dv;
        any_free = true;
      }
    }
    if (!any_free) {
      d.err = 0.0;
      d.note = "every input fixed: no error";
    } else if (!have_cov) {
      d.err = kInf;
      d.note = "no covariance: error unknown";
    } else {
      bool undetermined = false;
      for (int k = 0; k < n; ++k)
        if (g[k] != 0.0 && !std::isfinite(cov(k, k))) undetermined = true;
      if (undetermined) {
        d.err = kInf;
        d.note = "an input is undetermined: infinite error";
      } else {
        const double var = g.dot(cov * g);
        d.err = std::sqrt(std::max(0.0, var));
      }
    }
    return d;
  };
  std::vector<DerivedQuantity> out;
  const double vc = p.vc_kms, s0 = p.sigma0_kms;
  out.push_back(make("v_over_sigma", vc / s0, {{"vc_kms", 1.0 / s0}, {"sigma0_kms", -vc / (s0 * s0)}}));
  const double re_kpc = p.re_arcsec * kpc_per_arcsec;
  const double gr = p.gradient_dex_per_kpc;
  out.push_back(make("gradient_dex_per_re", gr * re_kpc,
                     {{"gradient_dex_per_kpc", re_kpc}, {"re_arcsec", gr * kpc_per_arcsec}}));
  return out;
}

}  // namespace slitstep
