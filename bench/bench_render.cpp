// Benchmarks of sim/render on the default galaxy at 0.02" (one thread, as the target says).
#include <benchmark/benchmark.h>

#include "core/cosmology.hpp"
#include "sim/galaxy.hpp"
#include "sim/render.hpp"
#include "sim/simulate.hpp"

using namespace slitstep;

namespace {
RenderOptions bench_options(bool continuum_windows) {
  RenderOptions o;  // 0.02" pixels, 2.6" x 3.2" field, 15 km/s channels, all eight lines
  o.threads = 1;
  o.continuum_windows = continuum_windows;
  return o;
}
}  // namespace

// The default galaxy's line windows (no line-free continuum windows), allocation included.
static void BM_RenderDefaultLineWindows(benchmark::State& state) {
  const GalaxyModel model(GalaxyParams{}, Cosmology());
  const RenderOptions o = bench_options(false);
  for (auto _ : state) {
    RenderResult r = render(model, o, SkyFrame{});
    benchmark::DoNotOptimize(r.cube.sci.data());
  }
  const auto sg = render_spatial_grid(o);
  state.counters["voxels"] = static_cast<double>(sg.size() * render_wavelength_grid(model, o).size());
}
BENCHMARK(BM_RenderDefaultLineWindows)->Unit(benchmark::kMillisecond);

// The same into a pre-allocated cube (what a fitter does each iteration).
static void BM_RenderIntoDefaultLineWindows(benchmark::State& state) {
  const GalaxyModel model(GalaxyParams{}, Cosmology());
  const RenderOptions o = bench_options(false);
  Cube cube = Cube::zeros(render_spatial_grid(o), render_wavelength_grid(model, o));
  for (auto _ : state) {
    RenderSummary s = render_into(model, o, cube);
    benchmark::DoNotOptimize(s.line_flux_fov_cgs.data());
  }
}
BENCHMARK(BM_RenderIntoDefaultLineWindows)->Unit(benchmark::kMillisecond);

// Full default render: line windows plus the continuum windows at rest 5500 and 6500 A.
static void BM_RenderDefaultWithContinuumWindows(benchmark::State& state) {
  const GalaxyModel model(GalaxyParams{}, Cosmology());
  const RenderOptions o = bench_options(true);
  for (auto _ : state) {
    RenderResult r = render(model, o, SkyFrame{});
    benchmark::DoNotOptimize(r.cube.sci.data());
  }
}
BENCHMARK(BM_RenderDefaultWithContinuumWindows)->Unit(benchmark::kMillisecond);

// Model construction (precomputation), e.g. once per likelihood evaluation in a fit.
static void BM_GalaxyModelConstruction(benchmark::State& state) {
  const Cosmology cosmo;
  for (auto _ : state) {
    GalaxyModel m(GalaxyParams{}, cosmo);
    benchmark::DoNotOptimize(&m);
  }
}
BENCHMARK(BM_GalaxyModelConstruction)->Unit(benchmark::kMicrosecond);

// ------------------------------------------------------------------------------------------
// The forward fitter's case (fit/slitstep_operator.cpp): render_into a pre-allocated cube, one
// thread, the default galaxy (continuum on: it fills the line window), lines [NII]6548, Halpha,
// [NII]6584 only, no continuum windows, a fixed window half-width (the default galaxy's rule +
// 200 km/s, as the operator uses), over the field the default MSA-3D footprint needs
// (required_field_of_view). Arg(0) = pixel in units of 0.01" (2 or 4). Each iteration changes
// vc_kms (a new model each time, as in a fit); the model construction is outside the timing.
namespace {
RenderOptions fitter_options(double pixel_arcsec) {
  RenderOptions o;
  o.threads = 1;
  o.pixel_arcsec = pixel_arcsec;
  const FieldOfView f = required_field_of_view(NirspecConfig{}, pixel_arcsec);
  o.fov_x_arcsec = f.x_arcsec;
  o.fov_y_arcsec = f.y_arcsec;
  o.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  o.continuum_windows = false;
  const GalaxyModel base(GalaxyParams{}, Cosmology());
  o.window_half_width_kms = render(base, o, SkyFrame{}).window_half_width_kms + 200.0;
  return o;
}
}  // namespace

static void BM_RenderIntoFitter(benchmark::State& state) {
  const RenderOptions o = fitter_options(0.01 * static_cast<double>(state.range(0)));
  const bool use_workspace = state.range(1) != 0;
  const Cosmology cosmo;
  GalaxyParams g;
  const GalaxyModel m180(g, cosmo);
  g.vc_kms = 181.0;
  const GalaxyModel m181(g, cosmo);
  Cube cube = Cube::zeros(render_spatial_grid(o), render_wavelength_grid(m180, o));
  RenderWorkspace ws;
  bool flip = false;
  for (auto _ : state) {
    flip = !flip;
    const GalaxyModel& m = flip ? m181 : m180;
    RenderSummary s = use_workspace ? render_into(m, o, cube, ws) : render_into(m, o, cube);
    benchmark::DoNotOptimize(s.line_flux_fov_cgs.data());
  }
  state.counters["pixels"] = static_cast<double>(cube.spatial.size());
  state.counters["channels"] = static_cast<double>(cube.nl());
}
// Args: pixel (0.01"), workspace (0 = stateless render_into, 1 = with a RenderWorkspace).
BENCHMARK(BM_RenderIntoFitter)->ArgsProduct({{2, 4}, {0, 1}})->Unit(benchmark::kMillisecond);

// The workspace when every call changes the light geometry (re_arcsec alternates): nothing is
// reused (the line search of a fit moves all parameters at once).
static void BM_RenderIntoFitterLightChanges(benchmark::State& state) {
  const RenderOptions o = fitter_options(0.01 * static_cast<double>(state.range(0)));
  const Cosmology cosmo;
  GalaxyParams g;
  const GalaxyModel ma(g, cosmo);
  g.re_arcsec = 0.36;
  const GalaxyModel mb(g, cosmo);
  Cube cube = Cube::zeros(render_spatial_grid(o), render_wavelength_grid(ma, o));
  RenderWorkspace ws;
  bool flip = false;
  for (auto _ : state) {
    flip = !flip;
    RenderSummary s = render_into(flip ? mb : ma, o, cube, ws);
    benchmark::DoNotOptimize(s.line_flux_fov_cgs.data());
  }
}
BENCHMARK(BM_RenderIntoFitterLightChanges)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond);
