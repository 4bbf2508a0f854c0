#pragma once
// slitstep/fit: the slit-stepping model operator — GalaxyParams -> the same render -> observe ->
// reconstruct chain as the simulator (sim/simulate.hpp), evaluated on the data's grid
// (DESIGN.md §1, §5.2; docs/fit.md "Forward-model fitting").
//
// Built once from a SimulationConfig (scene: galaxy = base parameters, render options, sky frame,
// cosmology; instrument; reconstruct options). At construction it
//  * fixes the render's wavelength windows (RenderOptions::window_half_width_kms = the render rule
//    for the base galaxy + window_extra_kms, unless given), so the sky grid, and hence the
//    NirspecInstrument and every precomputed response, stay the same while the parameters move;
//    an evaluation whose line profiles would be cut by the fixed windows returns kOutOfRange;
//  * renders only the chosen lines (default: the config's [render] lines, else [NII]6548, Halpha,
//    [NII]6584) and no continuum windows (line windows only), on the configuration's pixels and
//    on channels of max(render_channel_kms, the configuration's) km/s (default 30: equal to the
//    simulator's 15 km/s sky to fourth order in the channel width, both Sheppard-corrected);
//  * builds the NirspecInstrument once (geometry, spectral and row responses cached), and
//    observe's bookkeeping for the chosen columns and rows (ObservePlan, ~2.4 MB by default);
//  * chooses the detector COLUMNS of the model: live columns (not in the chip gap / beyond the red
//    limit) whose neighbours within edge_margin_columns lie inside a render window.
// One evaluation = GalaxyModel(params) -> render_into (pre-allocated sky cube) -> PSF into a
// pre-allocated cube (Gaussian: PsfConvolver::apply_separable's x pass on the sky pixels observe
// reads, its y factor folded into the detector-row responses at construction (fold_psf_rows);
// with the folded rows the x pass is fused into the render row by row (render_into with a
// RowFilter of the same factors, chunks and masks: the same bits and ranges, the unfiltered sky
// cube never written);
// the same kernel as the simulator's FFT, equal to < 1e-12 of the peak with psf_truncate_sigma =
// 0 and fold_drop_relative = 0; otherwise, or with separable_psf = false,
// NirspecInstrument::psf().apply, bit-identical to the simulator) -> observe_convolved_into with
// ObserveOptions::columns = the chosen columns (compact exposures, bit-identical to the full
// frame's columns), ::rows = the folded rows and ::sky_ranges = the PSF's nonzero channel ranges
// -> reconstruct (cube space) -> values. reconstruct works channel by channel, so reconstructing
// the chosen columns gives the very numbers a full-band reconstruction gives in those columns
// (tests/test_slitstep_operator).
// Layouts:
//   cube space:     index = (j * nx + i) * n_columns + c  (spaxel (i, j) of cube_spatial(), column c)
//   exposure space: index = (q * nv + v) * n_columns + c  (pointing q in the instrument's order)
// Values the chain cannot predict (no coverage, bar-shadowed rows, reconstructed NaN) are
// returned as 0 and flagged 0 in predictable(); select_cube/select_exposures give them
// inv_sigma = 0.
// Threads: Workspace::threads OpenMP threads per evaluation; bit-identical for any count (each
// stage is). Memory per workspace: the sky cube once with the folded rows (the x-filtered sky;
// plus one row buffer of nx * nl doubles per render thread), twice otherwise (sky,
// PSF-convolved; three times with fold_psf_rows = false) and the compact exposures. StageTimes::crop_s stays 0 (observe writes the columns directly).
// Failure: invalid config/options throw InvalidOptions at construction; evaluate() never throws.
#include <memory>
#include <optional>
#include <vector>

#include "core/cube.hpp"
#include "core/lines.hpp"
#include "fit/forward.hpp"
#include "instruments/exposure.hpp"
#include "instruments/nirspec.hpp"
#include "instruments/observe.hpp"
#include "sim/render.hpp"
#include "sim/simulate.hpp"

namespace slitstep {

struct SlitstepOperatorOptions {
  enum class Space { kCube, kExposure };
  Space space = Space::kCube;
  std::vector<LineId> lines;                    // empty: the config's render lines, else Halpha + [NII]
  bool continuum_windows = false;               // render the line-free continuum windows too
  std::optional<double> window_half_width_kms;  // fixed render half-width (default: rule + extra)
  double window_extra_kms = 200.0;              // added to the base galaxy's half-width rule
  int edge_margin_columns = 6;                  // columns dropped at each window edge (>= 0)
  // Gaussian PSF: 0 = the simulator's kernel exactly (separable path, = FFT to < 1e-12 of the
  // peak; the simulator cuts it at 4 FWHM = 9.4 sigma); > 0 (in [3, 12]) = 1-D factors cut at this
  // many sigma and renormalised (PsfConvolver::apply_separable). Default 4: values change by
  // < 3e-6 of the peak, a chi2 distance of 4e-7 from the simulator's model at the MSA-3D depth
  // (tests/test_slitstep_operator.cpp), and the PSF costs ~40% less.
  double psf_truncate_sigma = 4.0;
  // Gaussian PSF by two direct 1-D passes (PsfConvolver::apply_separable) instead of the
  // simulator's FFT: the same kernel, equal to < 1e-12 of the peak (not bit for bit). false =
  // the FFT path, bit-identical to the simulator's chain (tests/test_slitstep_operator.cpp).
  bool separable_psf = true;
  // With the separable Gaussian PSF: fold its y factor into the instrument's detector-row
  // responses (instruments/observe.hpp fold_psf_rows), so the PSF costs one x pass and observe
  // reads the x-convolved sky. The same model to rounding apart from the tails dropped below;
  // false = the two direct passes.
  bool fold_psf_rows = true;
  // Folded row weights below this fraction of the largest are dropped at the ends of each sky
  // row's detector-row range, [0, 1e-4]. Default 1e-4 (the Gaussian beyond ~4.3 sigma): values
  // move by 1.5e-5 of the peak on the small test configuration; on the default MSA-3D galaxy the
  // model is at a chi2 distance of 2.3e-6 from the simulator's and its noiseless fit within 0.001
  // CRB of the truth (tests/test_slitstep_operator.cpp); the row collapse costs ~15% less than
  // at 1e-7. 0 = keep every weight.
  double fold_drop_relative = 1e-4;
  // Gaussian support (sigma, each side) of the instrument's LSF and cross-dispersion profiles
  // (NirspecNumerics::support_sigma): 5 drops tails < 3e-7 of a profile (6: < 1e-9) and is ~2x
  // faster than the simulator's 10; the difference it makes is below the folded-row tails'
  // (tests/test_slitstep_operator.cpp bounds both together). [5, 12]
  double support_sigma = 5.0;
  // Render pixel (arcsec) of the model's sky cube. Unset: the configuration's [render] pixel (the
  // simulator's sky, 0.02" by default). Set (e.g. 0.04): an APPROXIMATION that renders the model
  // on a coarser sky grid (4x fewer voxels at 0.04"); the fitted parameters of the default galaxy
  // move by a bounded amount (docs/fit.md "Speed"; tests/test_slitstep_operator.cpp). (0, 0.1]
  std::optional<double> render_pixel_arcsec;
  // Channel width (km/s at each window's centre) of the model's sky cube: the model renders on
  // max(this, the configuration's [render] channel_kms) (0 = the configuration's channels, the
  // simulator's sky). Default 30: half the channels of the default 15 km/s sky, so render, PSF and
  // observe cost about half. The instrument's channel boxes remove Sheppard's excess
  // (NirspecNumerics::channel_reference_fraction = 0, as in the simulator), so the model's lines
  // have the LSF's width to second order on any channel grid and the 30 km/s model differs from
  // the simulator's 15 km/s one by a fourth-moment term only: on the default MSA-3D galaxy at the
  // MSA-3D depth a chi2 distance of ~1e-5 and a noiseless fit within 0.002 CRB of the truth;
  // bounded in tests/test_slitstep_operator.cpp. 0 or [1, 100] km/s
  double render_channel_kms = 30.0;
  // false: each channel keeps its own box (NirspecNumerics::channel_reference_fraction = 1), so
  // the model's lines are broader than the continuous spectrum's by du^2/6 (in velocity variance,
  // h^2/6 for channels of h km/s) — the model before this option existed; for comparisons only.
  bool match_channel_moments = true;
  void validate() const;                        // throws InvalidOptions naming field, value, rule
};

class SlitstepOperator final : public ModelOperator {
 public:
  SlitstepOperator(const SimulationConfig& config, const SlitstepOperatorOptions& options = {});
  ~SlitstepOperator() override;

  std::size_t data_size() const override { return size_; }
  std::unique_ptr<Workspace> make_workspace() const override;
  Status evaluate(const GalaxyParams& params, double* model_out, Workspace& ws) const override;
  CosmologyParams cosmology() const override { return config_.scene.cosmology; }
  /// halpha_flux_cgs scales every rendered line and the continuum, and PSF -> observe ->
  /// reconstruct (mean or median of the dithers) is positively homogeneous: proportional unless
  /// clumps or an AGN carry fluxes of their own.
  bool proportional_to(const std::string& name, const GalaxyParams& params) const override;

  const SimulationConfig& config() const { return config_; }
  const SlitstepOperatorOptions& options() const { return options_; }
  const RenderOptions& render_options() const { return render_; }  // as used (fixed windows, lines)
  /// The render options a simulation of data for this model should use: the configuration's (its
  /// pixels and channels, the simulator's sky) with the model's fixed line windows and lines.
  RenderOptions data_render_options() const;
  const NirspecInstrument& instrument() const { return *instrument_; }
  const std::vector<int>& columns() const { return columns_; }     // detector columns modelled
  const std::vector<double>& column_wavelengths_um() const { return column_um_; }
  std::size_t n_columns() const { return columns_.size(); }
  const SpatialGrid& cube_spatial() const { return cube_spatial_; }  // cube space output grid
  int n_pointings() const { return static_cast<int>(instrument_->pointings().size()); }
  const std::vector<char>& predictable() const { return predictable_; }

  /// Data and inverse sigma in the operator's layout. From ERR/DQ (values with kDqDoNotUse, not
  /// finite, err <= 0 or not predictable get 0), or with a uniform sigma where the data are
  /// finite, usable and predictable (noiseless injections).
  struct Selection {
    Status status;                       // not ok: grids do not match (message says how)
    std::vector<double> data, inv_sigma;
    std::size_t n_used = 0;
  };
  /// A cube on cube_spatial() whose channels include the modelled columns' wavelengths (within a
  /// quarter channel), e.g. the reconstructed cube of a simulation or real data.
  Selection select_cube(const Cube& cube, std::optional<double> uniform_sigma = std::nullopt) const;
  /// Full-frame exposures of the instrument's pointings (any order; matched by pointing index).
  Selection select_exposures(const std::vector<Exposure>& exposures,
                             std::optional<double> uniform_sigma = std::nullopt) const;
  /// FitProblem over a selection.
  FitProblem make_problem(const Selection& selection, const GalaxyParameterization& param) const;

  /// Time spent per stage by one workspace (accumulated over its evaluations), in seconds: CPU
  /// time of the calling thread when the workspace runs on one thread (Workspace::threads == 1),
  /// else wall time. With the folded PSF rows (the default separable Gaussian) the PSF's x pass is
  /// fused into the render: render_s covers render + x pass and psf_s stays 0.
  struct StageTimes {
    long evaluations = 0;
    double model_s = 0.0, render_s = 0.0, psf_s = 0.0, observe_s = 0.0, crop_s = 0.0, reconstruct_s = 0.0,
           copy_s = 0.0, total_s = 0.0;
  };
  static StageTimes stage_times(const Workspace& ws);
  static void reset_stage_times(Workspace& ws);

 private:
  struct Ws;
  Status run(const GalaxyParams& params, Ws& ws, double* out, Cube* cube_out) const;
  SimulationConfig config_;
  SlitstepOperatorOptions options_;
  RenderOptions render_;
  SpatialGrid sky_spatial_;
  WavelengthGrid sky_spectral_;
  std::unique_ptr<NirspecInstrument> instrument_;
  std::vector<int> columns_;
  std::vector<double> column_um_;
  std::unique_ptr<RowResponses> folded_rows_;  // the PSF's y factor folded into the rows (or null)
  std::unique_ptr<RowFilter> row_filter_;      // with folded_rows_: the PSF's x factor, fused into the render
  std::unique_ptr<ObservePlan> observe_plan_;  // observe's bookkeeping for columns_ / folded_rows_, built once
  std::vector<char> psf_columns_, psf_rows_;  // sky columns / rows observe reads
  std::vector<std::uint32_t> column_dq_;  // dq template restricted to the columns (nv x n_columns)
  SpatialGrid cube_spatial_;
  std::vector<char> predictable_;
  std::size_t size_ = 0;
};

}  // namespace slitstep
