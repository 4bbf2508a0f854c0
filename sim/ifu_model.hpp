#pragma once
// slitstep/sim: the fast generic-IFU model cube for forward fitting (docs/generic_ifu.md).
//
// IfuModel renders a GalaxyModel STRAIGHT onto a GenericIfu's work grid (the output spaxels
// oversampled by GenericIfuConfig::oversample, plus a margin of the PSF radius) and output
// wavelength channels, with the LSF folded into every line profile analytically:
//   sigma_tot^2 = sigma_lambda^2 + sigma_LSF(lambda_c)^2,  sigma_lambda = lambda_c sigma(R) / c,
// channel-integrated exactly (normal CDF at the channel edges, tabulated with cubic Hermite
// interpolation, error < 2e-11), over ±n_sigma sigma_tot and renormalised to that range (as
// sim/render does); light outside the output wavelength range is lost (as in the instrument).
// Then GenericIfu::convolve_and_bin() applies the PSF (batched r2c/c2r FFTs of the channels that
// hold light only) and bins to spaxels; the continuum is one extra image (its spectral shape is
// evaluated at channel centres) convolved once.
//
// ONE model: light, velocity, dispersion, line ratios, continuum and clumps/AGN come from
// GalaxyModel's own functions (disk_profile, continuum_profile, rotation_kms, sigma_kms,
// metallicity + ratios_for_metallicity, clump_derived, agn_ratios, continuum_flux_density),
// sampled per call on radial tables (linear interpolation; relative error < 1e-5 for the default
// galaxy) and evaluated directly near the centre. As in sim/render, the light (and light x line
// ratio) is integrated over every fine pixel (3x3 Gauss-Legendre, subdivided where the profile
// changes fast, geometric refinement around the cusp), kinematics at the fine-pixel centre.
// So IfuModel::model_cube == GenericIfu::observe(render(model)) up to the differences listed in
// docs/generic_ifu.md (tested in tests/test_generic_ifu.cpp).
//
// Threads: IfuModel is immutable; model_cube is const and thread-safe given one Workspace per
// thread. Nothing is allocated per call once the Workspace has been used once.
// Failure: IfuModelOptions::validate() -> InvalidOptions; numerical issues -> summary status.
#include <vector>

#include "core/cube.hpp"
#include "core/error.hpp"
#include "core/lines.hpp"
#include "instruments/generic_ifu.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {

struct IfuModelOptions {
  double n_sigma = 5.0;         // line profiles over ±n_sigma sigma_tot, [3, 8]
  std::vector<LineId> lines;    // lines to render; empty = all eight (those outside the cube cost ~0)
  bool continuum = true;        // render the stellar continuum (GalaxyParams::ew_halpha_rest_A)
  int radial_nodes = 1024;      // radial tables of light, rotation and dispersion, [64, 65536]
  int ratio_nodes = 128;        // radial table of line ratios, [16, 65536]
  void validate() const;
};

struct IfuModelSummary {
  Status status;
  LineRatios line_flux_work_cgs{};   // line flux put on the work grid (before PSF and wavelength cut)
  double disk_light_work_fraction = 0.0;  // fraction of the disk profile inside the work grid
  std::size_t transformed_channels = 0;   // channels (of nl+1) that went through the FFTs
};

class IfuModel {
 public:
  IfuModel(const GenericIfu& ifu, const IfuModelOptions& options = {});

  /// Per-thread scratch (the instrument's work cube plus the renderer's tables).
  struct Workspace {
    explicit Workspace(const GenericIfu& ifu) : ifu(ifu) {}
    GenericIfu::Workspace ifu;
    std::vector<double> light, rad_light, rad_cont, rad_rot, rad_sig, rad_ratio, cont_spec;
    std::vector<double> gx, gy;
  };
  Workspace make_workspace() const { return Workspace(ifu_); }

  /// out_sci (resized to nx*ny*nl, Cube layout, erg s^-1 cm^-2 um^-1 arcsec^-2) = the IFU's view
  /// of the model.
  IfuModelSummary model_cube(const GalaxyModel& model, std::vector<double>& out_sci, Workspace& ws) const;
  /// The same into out_sci[0 .. nx*ny*nl) (every value written; no copy for callers with their own
  /// buffer).
  IfuModelSummary model_cube(const GalaxyModel& model, double* out_sci, Workspace& ws) const;
  /// Convenience: a Cube on the IFU grids (noiseless, no quality planes).
  Cube model_cube(const GalaxyModel& model, IfuModelSummary* summary = nullptr) const;

  const GenericIfu& ifu() const { return ifu_; }
  const IfuModelOptions& options() const { return options_; }

 private:
  const GenericIfu& ifu_;
  IfuModelOptions options_;
  std::vector<LineId> lines_;
};

}  // namespace slitstep
