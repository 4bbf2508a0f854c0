#pragma once
// slitstep/fit: the generic-IFU model operator — GalaxyParams -> the same galaxy model the
// simulator uses (sim/galaxy GalaxyModel) seen through a GenericIfu (instruments/generic_ifu:
// PSF + Gaussian LSF on a regular cube) with sim/ifu_model's IfuModel (the fast path whose
// equality with GenericIfu::observe(render(model)) tests/test_generic_ifu.cpp checks)
// (DESIGN.md §4.4, §5.2; docs/fit.md "The `slitstep fit` command").
//
// Layout: the cube's own, index = (j * nx + i) * nl + k (core/cube.hpp), every voxel of the
// GenericIfu's spatial() x spectral() grid. select_cube() takes a data cube on the same grids (a
// real IFU cube read by core/cube_io, or a simulated one) and gives data + inverse sigma.
//
// Rest-frame (de-redshifted) cubes: GalaxyParams::redshift must be > 0, so a cube whose
// wavelengths are at redshift z_data (0 for a de-redshifted cube such as the SAMI example) is
// fitted with a model at redshift z_model by stretching the instrument's wavelength grid by
// s = (1 + z_model) / (1 + z_data) (ifu_config_for_cube: grid and an Angstrom LSF scaled by s; an
// LSF in km/s is unchanged) and multiplying the model by value_scale = s, so that the fitted
// halpha_flux_cgs is the flux in the data's own units (integral of the data over its wavelength).
//
// Threads: immutable after construction; evaluate() is const and thread-safe with one Workspace
// per thread; each evaluation is single-threaded (Workspace::threads is ignored), so the output
// does not depend on the thread count. Failure: bad options -> InvalidOptions at construction;
// evaluate() never throws (a GalaxyParams the model refuses comes back as a Status).
#include <memory>
#include <optional>
#include <vector>

#include "core/cosmology.hpp"
#include "core/cube.hpp"
#include "fit/forward.hpp"
#include "instruments/generic_ifu.hpp"
#include "sim/ifu_model.hpp"

namespace slitstep {

struct IfuOperatorOptions {
  IfuModelOptions model;        // lines (empty = all eight; those outside the cube cost ~0), n_sigma, ...
  CosmologyParams cosmology;    // kpc per arcsec of the model (gradient per kpc)
  double value_scale = 1.0;     // model values are multiplied by this (> 0; see the header comment)
  void validate() const;        // throws InvalidOptions naming field, value and rule
};

/// A GenericIfuConfig whose spaxel and wavelength grids are those of `cube` (which must have one
/// linear wavelength window and a valid spatial grid), with the PSF / LSF / oversampling of
/// `instrument`. The wavelength grid (and an LSF given in Angstrom, and its wavelength nodes) are
/// multiplied by `wavelength_stretch` (= (1 + z_model) / (1 + z_data); 1 for an observed-frame
/// cube). Throws InvalidOptions naming the problem.
GenericIfuConfig ifu_config_for_cube(const Cube& cube, const GenericIfuConfig& instrument,
                                     double wavelength_stretch = 1.0);

class IfuOperator final : public ModelOperator {
 public:
  explicit IfuOperator(const GenericIfuConfig& config, const IfuOperatorOptions& options = {});
  ~IfuOperator() override;

  std::size_t data_size() const override { return size_; }
  std::unique_ptr<Workspace> make_workspace() const override;
  Status evaluate(const GalaxyParams& params, double* model_out, Workspace& ws) const override;
  CosmologyParams cosmology() const override { return options_.cosmology; }
  /// halpha_flux_cgs when the galaxy has no clumps or AGN with light of their own: every line of
  /// the disk and the continuum (EW-scaled) are proportional to it, and the instrument is linear.
  bool proportional_to(const std::string& name, const GalaxyParams& params) const override;

  const GenericIfu& ifu() const { return *ifu_; }
  const IfuModel& model() const { return *model_; }
  const IfuOperatorOptions& options() const { return options_; }

  struct Selection {
    Status status;  // not ok: the cube's grids do not match (message says how), or no ERR
    std::vector<double> data, inv_sigma;
    std::size_t n_used = 0;
  };
  /// Data and inverse sigma from a cube on the operator's grids (spatial within 1e-6 spaxel,
  /// channels within 1e-6 channel; the wavelength grid may be the stretched one: channel k of the
  /// cube is channel k of the model). From ERR/DQ (inverse_sigma), or with a uniform sigma where
  /// the data are finite and DQ has no kDqDoNotUse (noiseless injections). A cube without ERR and
  /// no uniform sigma -> status not ok.
  Selection select_cube(const Cube& cube, std::optional<double> uniform_sigma = std::nullopt) const;
  FitProblem make_problem(const Selection& selection, const GalaxyParameterization& param) const;
  /// The model of `params` as a Cube on the operator's grids (noiseless, no quality planes);
  /// status in `status` (the cube is zero when it fails).
  Cube model_cube(const GalaxyParams& params, Status* status = nullptr) const;

 private:
  struct Ws;
  IfuOperatorOptions options_;
  std::unique_ptr<GenericIfu> ifu_;
  std::unique_ptr<IfuModel> model_;
  std::size_t size_ = 0;
};

}  // namespace slitstep
