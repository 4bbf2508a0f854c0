#pragma once
// slitstep/instruments: the linear observe operator, sky cube -> one Exposure per pointing.
//
// observe() is NOISELESS and LINEAR in sky.sci. For every pointing of the instrument's pattern
// (instrument.pointings(), observing order) it returns the rectified 2-D spectrum of the slitlet
// (instruments/exposure.hpp) spanning the whole grating/filter band (G140H/F100LP: 0.97-1.89 um,
// ~3900 columns x nv rows of 0.1"), with
//  * sci: calibrated surface brightness (erg s^-1 cm^-2 um^-1 arcsec^-2) as for a uniformly
//    illuminated shutter: electrons / NirspecInstrument::electrons_per_sb(u, t)
//    (slit_stepping_model.md §3). A uniform source of surface brightness I reads I in fully open
//    rows (to the ~1e-4 set by the throughput's slope across the 2-px slit image); partially
//    shadowed rows read less (bar shadow is not corrected, as in MSA-3D);
//  * wavelength_um: the column wavelength of a source at the shutter centre;
//  * dq: NirspecInstrument::dq_template(): chip gap kDqChipGap|kDqDoNotUse, beyond the red limit
//    kDqNoCoverage|kDqDoNotUse, rows fully on a bar kDqBarShadow|kDqDoNotUse, rows partly on a
//    bar kDqBarShadow, rows beyond the slitlet kDqNoCoverage|kDqDoNotUse;
//  * err, var_poisson, var_rnoise: zero; seed 0 (noise is drawn elsewhere from
//    expected_electrons()).
// Only columns reached by the sky cube's channels (plus 10 sigma of the kernels) get signal;
// the others are zero. Pipeline: PSF convolution of the whole cube (FFT, once), then, per step
// slot of the pattern (OpenMP over steps; each step writes only its pointings' exposures;
// deterministic for any thread count), sky column by sky column: every dither of the step
// collapses the column's sky rows onto detector rows with its precomputed row responses
// (output-stationary, two detector rows x 8-32 channels summed in registers, over the union of
// the sky rows' nonzero channel ranges; a sky row with no nonzero channel in a PSF chunk is left
// out of that chunk's sums), and one spectral spread (the step's precomputed spectral responses)
// serves all the dithers at once. The bookkeeping that does not depend on the sky (row-response
// term lists, step groups, channel ranges per column, spectral term lists) is an ObservePlan:
// built for the call, or given once (ObserveOptions::plan) by callers that observe many skies.
// Every output value adds its terms in a fixed order (sky column, then channel, then sky row), so
// results do not depend on the thread count, the column selection, the plan or the
// instruction-set clone.
// Failure: a sky cube whose grids differ from the instrument's -> InvalidOptions.
#include <cstdint>
#include <memory>
#include <vector>

#include "core/cube.hpp"
#include "instruments/exposure.hpp"
#include "instruments/nirspec.hpp"

namespace slitstep {

/// Detector-row responses in the layout of NirspecInstrument::row_profiles / row_values, indexed
/// [dither_slot * num_chunks + chunk]; built by fold_psf_rows.
struct RowResponses {
  std::vector<std::vector<NirspecInstrument::RowProfile>> profiles;
  std::vector<std::vector<double>> values;
};

class ObservePlan;

struct ObserveOptions {
  bool apply_psf = true;        // convolve with the telescope PSF before the shutter cut
  int threads = 0;              // OpenMP threads (0 = OpenMP default); results do not depend on it
  std::vector<int> pointings;   // pointing indices to observe (empty = all, in order)
  // Detector columns u to produce (strictly increasing, each in [0, nu)); empty = the full frame
  // (the simulator's products). Non-empty: every exposure is COMPACT, nu = columns.size(),
  // wavelength_um and dq restricted to those columns, and sci holds bit for bit the values the
  // full frame has in them (the same sums in the same order; only the other columns are not
  // written). For fitters: no full-frame (3900-column) zero fill per evaluation.
  std::vector<int> columns;
  // Row responses to use instead of the instrument's (observe_convolved_into only): with
  // fold_psf_rows' responses the sky must be convolved along x only — the y factor of the
  // separable PSF is folded into the rows (not owned; must outlive the call).
  const RowResponses* rows = nullptr;
  // Nonzero channel ranges of the sky passed to observe_convolved_into (not owned): 2 values per
  // sky pixel q, [2q] = first and [2q+1] = last channel outside which the spectrum is exactly 0
  // (first > last: all zero), e.g. PsfConvolver::apply_separable's `ranges`. Null: observe scans
  // the spectra. A range that is not conservative gives wrong results (the caller's promise).
  const std::vector<int>* sky_ranges = nullptr;
  // Precomputed bookkeeping (not owned; see ObservePlan), for callers that observe many skies
  // with the same instrument and selection. Null: observe builds what it needs for the call.
  // Given: it must have been built from this very instrument object with equal pointings,
  // columns and the same `rows` pointer (else InvalidOptions); the results are bit for bit the
  // same as without it.
  const ObservePlan* plan = nullptr;
  void validate(int nu) const;  // throws InvalidOptions naming the field, value and rule
};

/// What observe derives from the instrument and a selection (ObserveOptions pointings, columns,
/// rows), built once: the row responses paired by detector row as (sky-row offset, weights)
/// terms, the pointings grouped by step slot, each step's channel ranges per sky column and PSF
/// chunk (trimmed to the selected columns), and, per step and sky column, the spectral spread's
/// (channel, weight) terms of every selected detector column over ALL channels. Per call only
/// what depends on the sky remains (its nonzero channel ranges). Read-only during observe: one
/// plan may serve concurrent calls on different threads. It references the instrument and
/// options.rows (both must outlive it). Memory: mostly the spectral terms, 16 bytes x the sum
/// over step slots, sky columns and channels of the spectral-profile length inside
/// [columns.front(), columns.back()] (the fitter's 51 columns: ~2.4 MB; a full-frame plan for a
/// long wavelength grid can reach hundreds of MB — meant for compact column selections).
/// Failure: options as ObserveOptions::validate, rows as observe_convolved_into, pointing
/// indices out of range -> InvalidOptions. A moved-from plan must not be used.
class ObservePlan {
 public:
  ObservePlan(const NirspecInstrument& instrument, const ObserveOptions& options);
  ~ObservePlan();
  ObservePlan(ObservePlan&&) noexcept;
  ObservePlan& operator=(ObservePlan&&) noexcept;
  struct Impl;  // internal (instruments/observe.cpp)
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

/// Noiseless exposures of `sky` (sky.sci only is used; its grids must equal the instrument's).
std::vector<Exposure> observe(const NirspecInstrument& instrument, const Cube& sky, const ObserveOptions& options = {});
/// Same, reusing the allocations of `out` (for fitters that call observe many times).
void observe_into(const NirspecInstrument& instrument, const Cube& sky, const ObserveOptions& options,
                  std::vector<Exposure>& out);
/// Same as observe_into with apply_psf = true, but on a sky that is ALREADY PSF-convolved
/// (`convolved_sci` in Cube layout on the instrument's grids, e.g. from
/// instrument.psf().apply or apply_separable); read in place, never copied. options.apply_psf is
/// ignored. Equals observe_into(apply_psf = true) bit for bit when convolved_sci is the output of
/// the PSF path observe_into uses (PsfConvolver::apply).
void observe_convolved_into(const NirspecInstrument& instrument, const std::vector<double>& convolved_sci,
                            const ObserveOptions& options, std::vector<Exposure>& out);
/// The instrument's detector-row responses with the y factor of a separable PSF folded in:
/// Y'(j', r) = sum_t Y(j' + t, r) h_chunk[t + H] over the sky rows of the grid (the zero padding of
/// PsfConvolver's direct passes), values below drop_relative x the largest of a (dither, chunk)
/// set dropped at the ends of each row's range. With them, observe_convolved_into on a sky
/// convolved along x only equals observe on the fully convolved sky to rounding (and the dropped
/// tails). y_taps: one odd-length tap set per PSF chunk (PsfConvolver::separable_factor).
/// Failure: wrong number of tap sets, even tap counts, drop_relative outside [0, 1e-4] ->
/// InvalidOptions.
RowResponses fold_psf_rows(const NirspecInstrument& instrument, const std::vector<std::vector<double>>& y_taps,
                           double drop_relative = 1e-12);
/// Slow, obviously correct reference: direct PSF convolution, then for every pointing, sky pixel,
/// shutter and channel the exact overlap rectangle and the full kernel sums. Same model, same
/// result as observe() to rounding (tests: 1e-10 relative).
std::vector<Exposure> observe_reference(const NirspecInstrument& instrument, const Cube& sky,
                                        const ObserveOptions& options = {});

/// What the noise model needs for one exposure, per pixel (index v*nu + u), in electrons.
struct ExposureElectrons {
  std::vector<double> source_e;      // expected source electrons = sci * electrons_per_sb
  std::vector<double> background_e;  // expected zodiacal electrons (uniform source through the
                                     // slitlet: uniform_row_profile), 0 in dead columns
  std::vector<double> dark_e;        // dark_e_per_s * exptime, every pixel
  double read_noise_e = 0.0;         // Gaussian read noise sigma per pixel (effective, per exposure)
  std::vector<double> e_per_sb;      // per column u: electrons per unit SB (SCI = electrons / this)
  std::vector<double> to_sb;         // per pixel: 1 / e_per_sb in columns that receive light, 0 in the
                                     // chip gap and beyond the red limit (sim/noise.hpp ExposureCounts)
};
/// Electron counts of a NOISELESS exposure (as returned by observe). Calibrating back:
/// sci = (electrons - background_e - dark_e) / e_per_sb[u].
ExposureElectrons expected_electrons(const NirspecInstrument& instrument, const Exposure& noiseless);
/// Zodiacal background surface brightness (erg s^-1 cm^-2 um^-1 arcsec^-2) at lambda.
double background_sb(const NirspecInstrument& instrument, double wavelength_um);

}  // namespace slitstep
