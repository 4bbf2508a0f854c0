// Benchmarks of sim/render on the default galaxy at 0.02" (one thread, as the target says).
#include <benchmark/benchmark.h>

#include "core/cosmology.hpp"
#include "sim/galaxy.hpp"
#include "sim/render.hpp"

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
