#pragma once
// slitstep/sim: rendering a GalaxyModel into a sky cube (DESIGN.md §3; docs/sim.md).
//
// The sky cube is a core Cube on
//  * a SpatialGrid of fine pixels (default 0.02" = 4x finer than the 0.08" output spaxels)
//    centred on the aperture origin, in the aperture frame (x along dispersion, y along slit);
//  * a windowed WavelengthGrid: one window per line (±half-width around the line at the systemic
//    redshift), overlapping windows merged, plus line-free continuum windows around rest 5500 and
//    6500 Å (±25 Å). Each window is linear in wavelength with a step of channel_kms at its centre.
// Units: sci in erg s^-1 cm^-2 um^-1 arcsec^-2 (kSurfaceBrightnessBunit); err = 0, dq = 0,
// wmap = 1. integrated_flux(cube) (sum of sci * channel width * pixel area) is a flux in
// erg s^-1 cm^-2.
//
// Accuracy (docs/sim.md): the light of every component is integrated over each fine pixel
// (erf products for the Gaussian clumps/AGN; adaptive Gauss-Legendre with cusp refinement for the
// exponential/Sérsic disk), and each line profile is integrated over channels (a Gaussian in
// wavelength, channel integrals from a tabulated normal CDF, renormalised to the ±n_sigma range
// so that every pixel's line flux lands in the cube exactly). The cube therefore holds exactly the
// flux of the part of the model inside the field of view; what falls outside is reported
// (line_flux_total_cgs - line_flux_fov_cgs), never silently lost.
// Speed: the normal CDF at the channel edges is evaluated eight edges at a time with AVX-512F, or
// four at a time with AVX2, when the CPU has it (runtime dispatch), with the same operations as
// the scalar table (no FMA), so the cube does not depend on the CPU; each vector kernel is
// checked bit for bit against the scalar table once per process and not used if anything
// differs. Each pixel's spectrum is built in a small per-thread buffer and written to the cube
// once (with AVX-512: non-temporal stores, so the cube is not read back through the caches); the
// disk lines of a pixel are prepared for the whole row first. RenderWorkspace (below) caches maps
// between calls of a fit.
// Threads: OpenMP across rows; every output value is computed by one thread from the same inputs
// and the flux sums are reduced row by row in a fixed order, so results do not depend on the
// thread count.
// Failure: RenderOptions::validate() throws InvalidOptions; numerical issues (calibration clamps,
// truncated profiles) are counted and reported in `status` (kOutOfRange), never printed.
#include <array>
#include <memory>
#include <optional>
#include <vector>

#include "core/cube.hpp"
#include "core/error.hpp"
#include "core/grid.hpp"
#include "core/lines.hpp"
#include "core/wcs.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {

struct RenderOptions {
  double pixel_arcsec = 0.02;       // fine pixel size (4x oversampling of 0.08")
  double fov_x_arcsec = 2.6;        // field of view along x (dispersion), centred on the origin
  double fov_y_arcsec = 3.2;        // field of view along y (slit); both rounded to whole pixels
  double channel_kms = 15.0;        // channel width (velocity units at each window's centre)
  double n_sigma = 6.0;             // line profiles are computed over ±n_sigma sigma (>= 4)
  double window_padding_kms = 250.0;  // extra half-width for the LSF and in-shutter shifts
  // Window half-width rule (km/s): |v0| + vc sin i + n_sigma * sigma_max + window_padding_kms,
  // with sigma_max the largest dispersion of any component in the field. Set this to override.
  std::optional<double> window_half_width_kms;
  std::vector<LineId> lines;        // lines to render; empty = all eight
  bool continuum_windows = true;    // add the line-free windows at rest 5500 and 6500 Å
  double continuum_window_half_A = 25.0;  // their rest-frame half-width
  int threads = 0;                  // OpenMP threads; 0 = the OpenMP default
  /// Throws InvalidOptions "RenderOptions.<field> = <value>: rule".
  void validate() const;
  bool operator==(const RenderOptions&) const = default;
};

/// Everything render() reports besides the cube.
struct RenderSummary {
  Status status;                          // kOk, or kOutOfRange with counts of clamps/truncations
  LineRatios line_flux_total_cgs{};       // model total per line (GalaxyModel), erg/s/cm^2
  LineRatios line_flux_fov_cgs{};         // rendered inside the field (= cube integral of the line)
  std::array<bool, kNumLines> rendered{}; // which lines are in the cube
  std::array<int, kNumLines> line_window{};  // window index of each rendered line (-1 if not)
  double disk_light_fov_fraction = 0.0;   // fraction of the disk profile inside the field
  double continuum_light_fov_fraction = 0.0;
  std::array<long long, 6> clamped_pixels{};  // per Calibration: fine pixels whose index clamped
  long long truncated_profiles = 0;       // line profiles cut by a window edge (should be 0)
  double window_half_width_kms = 0.0;     // the half-width used
};

struct RenderResult : RenderSummary {
  Cube cube;
};

/// The fine spatial grid of the options (centred on the aperture origin).
SpatialGrid render_spatial_grid(const RenderOptions& options);
/// The windowed wavelength grid for a model and options.
WavelengthGrid render_wavelength_grid(const GalaxyModel& model, const RenderOptions& options);

/// Renders the model into a new sky cube.
RenderResult render(const GalaxyModel& model, const RenderOptions& options, const SkyFrame& sky);
/// Same into an existing cube whose grids equal render_spatial_grid / render_wavelength_grid
/// (no allocation of the cube; for repeated rendering in fits). Overwrites cube.sci only.
RenderSummary render_into(const GalaxyModel& model, const RenderOptions& options, Cube& cube);

/// Reusable state for repeated render_into() calls (a fit's model evaluations; docs/sim.md
/// "Speed"). It keeps the buffers of the per-pixel maps and caches the two expensive ones:
///  * the disk's line-ratio table against de-projected radius (4097 nodes): valid while the
///    chemistry (z0, gradients, break, calibration, [SII] ratio, dust), kpc_per_arcsec, the
///    field's largest de-projected radius (centre, PA, axis ratio, grid) and the lines are
///    unchanged;
///  * the pixel-integrated light maps of the disk (light and light x ratio per line) and of the
///    continuum: valid while the table and the light geometry (profile, Sérsic n, re, continuum
///    re, axis ratio, PA, centre, grid) are unchanged;
///  * the disk geometry at every pixel centre (de-projected radius R in arcsec, a / R, sigma(R) / c
///    and the table's calibration-clamp mask): valid while the centre, PA, axis ratio, grid,
///    sigma0_kms, sigma_slope_kms_per_kpc, kpc_per_arcsec and the table are unchanged (the
///    rotation curve, v0 and the Doppler factor are evaluated on every call).
/// So a finite-difference step in vc_kms, rt_arcsec, v0_kms, halpha_flux_cgs or ew_halpha_rest_A
/// reuses all three (sigma0_kms: the table and the maps); a step in z0 or the gradient recomputes
/// everything.
/// The cache keys are the exact (bitwise) values of everything the cached numbers are computed
/// from, so the cube and the summary are bit-identical to the stateless render_into() for any
/// sequence of calls (tests/test_render.cpp). One workspace per thread of the caller (it is
/// mutated); it may be used with different options/grids (a mismatch just recomputes).
/// Memory: (6.5 + number of lines) doubles per fine pixel (0.6 MB at 0.04", 2.5 MB at 0.02" for
/// three lines); with a RowFilter also one row buffer of nx * nl doubles per render thread
/// (236 KB for 132 x 224). Failure modes are those of render_into(); after an exception the workspace is
/// left empty (the next call recomputes everything).
class RenderWorkspace {
 public:
  RenderWorkspace();
  ~RenderWorkspace();
  RenderWorkspace(RenderWorkspace&&) noexcept;
  RenderWorkspace& operator=(RenderWorkspace&&) noexcept;
  RenderWorkspace(const RenderWorkspace&) = delete;
  RenderWorkspace& operator=(const RenderWorkspace&) = delete;

  /// How often the caches were used (for benchmarks and tests).
  struct Stats {
    long long calls = 0;
    long long ratio_table_reused = 0;  // calls that reused the line-ratio table
    long long light_maps_reused = 0;   // calls that reused the light maps
  };
  Stats stats() const;
  /// Forgets the cached maps (keeps the allocations).
  void clear();

  struct Impl;  // defined in render.cpp

 private:
  std::unique_ptr<Impl> impl_;
  friend struct RenderAccess;
};

/// render_into() with a workspace: the same cube and summary bit for bit, faster when
/// consecutive models share their light geometry and chemistry (see RenderWorkspace).
RenderSummary render_into(const GalaxyModel& model, const RenderOptions& options, Cube& cube,
                          RenderWorkspace& workspace);

/// A 1-D filter along x (the dispersion axis) applied to every rendered sky row before anything
/// is written (render_into below; e.g. the x factor of a separable Gaussian PSF, for a fitter that
/// folds the y factor elsewhere). For output pixel (i, j) and channel k:
///   out(i, j, k) = sum over d = -H .. H, 0 <= i - d < nx, of taps[c][d + H] * in(i - d, j, k),
/// c = the chunk with chunk_first[c] <= k < chunk_end[c], H = taps[c].size() / 2, `in` the
/// rendered sky (render_into without a filter). The terms are added in increasing d starting
/// from +0.0, as separate products and sums (no fused multiply-add), skipping the all-zero ends
/// of every source spectrum: the same bits as PsfConvolver::apply_separable(..., y_pass = false)
/// with the same taps, chunks and masks (instruments/psf.hpp), on every instruction set.
struct RowFilter {
  std::vector<std::vector<double>> taps;  // per chunk: an odd number of finite weights (dimensionless)
  std::vector<std::size_t> chunk_first;   // per chunk: first channel; chunk 0 starts at 0
  std::vector<std::size_t> chunk_end;     // per chunk: one past its last channel; = the next
                                          // chunk's first, the last one = the number of channels
  std::vector<char> columns_needed;       // nx flags: outputs computed only in these columns; empty = all
  std::vector<char> rows_needed;          // ny flags: ... and these rows; empty = all
  /// Throws InvalidOptions "RowFilter.<field>...: rule" for `nx` x `ny` pixels and `nl` channels.
  void validate(int nx, int ny, std::size_t nl) const;
};

/// render_into() fused with a RowFilter: each sky row is rendered into a per-thread row buffer
/// (nx * nl doubles, 236 KB for the fitter's 132 x 224; it stays in L2), filtered there, and only
/// the filtered outputs at (needed column, needed row) are written to `out` (cube grids as for
/// render_into; other values of out.sci are LEFT UNCHANGED). The unfiltered cube is never
/// written. The summary is the one render_into returns, bit for bit; the outputs are bit for bit
/// render_into followed by PsfConvolver::apply_separable(sky, out, scratch, threads,
/// truncate_sigma, columns_needed, rows_needed, /*y_pass=*/false, ranges) whose factors and
/// chunks equal the filter's (tests/test_render.cpp), for any thread count.
/// `ranges` (optional): resized to 2 nx ny; for every output pixel q = j nx + i, [2q] = first
/// and [2q+1] = last channel of a conservative nonzero range (every channel outside it is exactly
/// 0 in `out`): the union of the nonzero ranges of the row's sources within the largest
/// half-width of all chunks; first > last: all zero, or not computed (masked out) — the
/// convention of apply_separable's `ranges`.
/// Failure: as render_into, plus RowFilter::validate.
RenderSummary render_into(const GalaxyModel& model, const RenderOptions& options, Cube& out,
                          RenderWorkspace& workspace, const RowFilter& filter, std::vector<int>* ranges);

}  // namespace slitstep
