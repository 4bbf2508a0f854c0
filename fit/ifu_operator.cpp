#include "fit/ifu_operator.hpp"

#include <cmath>
#include <exception>
#include <limits>
#include <string>

#include "core/error.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {

void IfuOperatorOptions::validate() const {
  model.validate();
  if (!(std::isfinite(value_scale) && value_scale > 0.0))
    throw InvalidOptions("IfuOperatorOptions.value_scale = " + format_value(value_scale) + ": must be finite and > 0");
}

GenericIfuConfig ifu_config_for_cube(const Cube& cube, const GenericIfuConfig& instrument, double wavelength_stretch) {
  if (!(std::isfinite(wavelength_stretch) && wavelength_stretch > 0.0))
    throw InvalidOptions("ifu_config_for_cube: wavelength_stretch = " + format_value(wavelength_stretch) +
                         ": must be finite and > 0");
  cube.spatial.validate();
  if (cube.spectral.empty() || !cube.spectral.is_linear())
    throw InvalidOptions("ifu_config_for_cube: the cube's wavelength grid has " +
                         std::to_string(cube.spectral.windows().size()) +
                         " windows: the generic IFU needs one linear wavelength grid");
  GenericIfuConfig c = instrument;
  const SpatialGrid& g = cube.spatial;
  c.nx = g.nx;
  c.ny = g.ny;
  c.spaxel_arcsec = g.pixel_arcsec;
  c.center_x_arcsec = g.x0_arcsec + 0.5 * (g.nx - 1) * g.pixel_arcsec;
  c.center_y_arcsec = g.y0_arcsec + 0.5 * (g.ny - 1) * g.pixel_arcsec;
  c.sky = cube.sky;
  const WavelengthWindow& w = cube.spectral.windows().front();
  c.wave_start_um = w.start_um * wavelength_stretch;
  c.wave_step_um = w.step_um * wavelength_stretch;
  c.n_wave = w.n;
  if (c.lsf_kind == "fwhm_A")
    for (double& v : c.lsf_values) v *= wavelength_stretch;
  for (double& v : c.lsf_wavelength_um) v *= wavelength_stretch;
  c.validate();
  return c;
}

struct IfuOperator::Ws final : ModelOperator::Workspace {
  explicit Ws(const IfuModel& m) : model(m.make_workspace()) {}
  IfuModel::Workspace model;
};

IfuOperator::IfuOperator(const GenericIfuConfig& config, const IfuOperatorOptions& options) : options_(options) {
  options_.validate();
  ifu_ = std::make_unique<GenericIfu>(config);
  model_ = std::make_unique<IfuModel>(*ifu_, options_.model);
  size_ = ifu_->spatial().size() * ifu_->nl();
}

IfuOperator::~IfuOperator() = default;

std::unique_ptr<ModelOperator::Workspace> IfuOperator::make_workspace() const { return std::make_unique<Ws>(*model_); }

Status IfuOperator::evaluate(const GalaxyParams& params, double* model_out, Workspace& base) const {
  Ws& ws = static_cast<Ws&>(base);
  try {
    const auto issues = check_params(params);
    if (!issues.empty()) {
      const ParamIssue& i = issues.front();
      std::string msg = "GalaxyParams.";
      if (!i.group.empty()) {
        msg += i.group;
        if (i.index >= 0) msg.append("[").append(std::to_string(i.index)).append("]");
        msg += '.';
      }
      msg.append(i.key).append(" = ").append(i.value).append(": ").append(i.rule);
      return Status::Error(StatusCode::kInvalidInput, std::move(msg));
    }
    const GalaxyModel m(params, Cosmology(options_.cosmology));
    // IfuModel's only non-ok summary is a calibration clamp far out in the work grid: the model is
    // still the simulator's (clamped line ratios), so it is used as it is.
    (void)model_->model_cube(m, model_out, ws.model);  // straight into the caller's vector
  } catch (const std::exception& e) {
    return Status::Error(StatusCode::kInvalidInput, e.what());
  }
  const double s = options_.value_scale;
  bool bad = false;  // one vectorisable pass: scale (if not 1) and look for a non-finite value
  if (s != 1.0)
    for (std::size_t n = 0; n < size_; ++n) model_out[n] *= s;
  for (std::size_t n = 0; n < size_; ++n) bad |= !(std::fabs(model_out[n]) <= std::numeric_limits<double>::max());
  if (bad)
    for (std::size_t n = 0; n < size_; ++n)
      if (!std::isfinite(model_out[n]))
        return Status::Error(StatusCode::kFailed, "IfuOperator: the model cube has a non-finite value at index " +
                                                      std::to_string(n));
  return Status::Ok();
}

bool IfuOperator::proportional_to(const std::string& name, const GalaxyParams& params) const {
  if (name != "halpha_flux_cgs") return false;
  for (const auto& c : params.clumps)
    if (c.halpha_flux_cgs != 0.0) return false;
  return !(params.agn.enabled && params.agn.halpha_flux_cgs != 0.0);
}

IfuOperator::Selection IfuOperator::select_cube(const Cube& cube, std::optional<double> uniform_sigma) const {
  Selection sel;
  const SpatialGrid& a = cube.spatial;
  const SpatialGrid& b = ifu_->spatial();
  const double tol = 1e-6 * b.pixel_arcsec;
  if (a.nx != b.nx || a.ny != b.ny || std::abs(a.pixel_arcsec - b.pixel_arcsec) > tol ||
      std::abs(a.x0_arcsec - b.x0_arcsec) > tol || std::abs(a.y0_arcsec - b.y0_arcsec) > tol) {
    sel.status = Status::Error(StatusCode::kInvalidInput,
                               "the cube's spatial grid (" + std::to_string(a.nx) + " x " + std::to_string(a.ny) +
                                   " spaxels of " + format_value(a.pixel_arcsec) +
                                   "\") is not the IFU operator's (" + std::to_string(b.nx) + " x " +
                                   std::to_string(b.ny) + " of " + format_value(b.pixel_arcsec) + "\")");
    return sel;
  }
  if (cube.nl() != ifu_->nl()) {
    sel.status = Status::Error(StatusCode::kInvalidInput, "the cube has " + std::to_string(cube.nl()) +
                                                              " channels, the IFU operator " +
                                                              std::to_string(ifu_->nl()));
    return sel;
  }
  // Channels: the same up to one common stretch factor (rest-frame cubes).
  const double s = ifu_->spectral().wavelength_um(0) / cube.spectral.wavelength_um(0);
  for (std::size_t k = 0; k < cube.nl(); ++k) {
    const double d = std::abs(cube.spectral.wavelength_um(k) * s - ifu_->spectral().wavelength_um(k));
    if (d > 1e-6 * ifu_->spectral().width_um(k)) {
      sel.status = Status::Error(StatusCode::kInvalidInput, "the cube's wavelength grid is not the IFU operator's "
                                                            "(channel " + std::to_string(k) + ")");
      return sel;
    }
  }
  sel.data = cube.sci;
  if (uniform_sigma) {
    if (!(std::isfinite(*uniform_sigma) && *uniform_sigma > 0.0)) {
      sel.status = Status::Error(StatusCode::kInvalidInput, "uniform sigma = " + format_value(*uniform_sigma) +
                                                                ": must be finite and > 0");
      return sel;
    }
    sel.inv_sigma.assign(size_, 1.0 / *uniform_sigma);
    for (std::size_t n = 0; n < size_; ++n)
      if (!std::isfinite(sel.data[n]) || (cube.has_quality() && (cube.dq[n] & kDqDoNotUse))) sel.inv_sigma[n] = 0.0;
  } else {
    if (!cube.has_quality()) {
      sel.status = Status::Error(StatusCode::kInvalidInput, "the cube has no ERR plane: give a uniform sigma");
      return sel;
    }
    sel.inv_sigma = inverse_sigma(cube.sci, cube.err, cube.dq);
  }
  for (std::size_t n = 0; n < size_; ++n) {
    if (sel.inv_sigma[n] > 0.0) ++sel.n_used;
    else sel.data[n] = 0.0;
  }
  return sel;
}

FitProblem IfuOperator::make_problem(const Selection& selection, const GalaxyParameterization& param) const {
  FitProblem p;
  p.op = this;
  p.data = selection.data;
  p.inv_sigma = selection.inv_sigma;
  p.param = param;
  return p;
}

Cube IfuOperator::model_cube(const GalaxyParams& params, Status* status) const {
  Cube c = Cube::zeros(ifu_->spatial(), ifu_->spectral(), ifu_->config().sky, false);
  auto ws = make_workspace();
  const Status st = evaluate(params, c.sci.data(), *ws);
  if (!st.ok()) std::fill(c.sci.begin(), c.sci.end(), 0.0);
  if (status) *status = st;
  return c;
}

}  // namespace slitstep
