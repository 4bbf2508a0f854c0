// Benchmarks of the generic IFU (instruments/generic_ifu, sim/ifu_model) on ONE core.
// Target case (docs/generic_ifu.md): the default galaxy (Halpha at z = 1, re = 0.35") seen by a
// 24 x 46 spaxel IFU of 0.05" (1.2" x 2.3"), 150 channels of 54 km/s around Halpha (covering
// [NII]6548/6584), Gaussian PSF FWHM 0.12", LSF sigma 50 km/s. Target: < 2 ms per model cube.
#include <benchmark/benchmark.h>

#include "core/cosmology.hpp"
#include "instruments/generic_ifu.hpp"
#include "sim/galaxy.hpp"
#include "sim/ifu_model.hpp"
#include "sim/render.hpp"

using namespace slitstep;

namespace {
GenericIfuConfig bench_config(int oversample) {
  GenericIfuConfig c;  // defaults are the target case
  c.oversample = oversample;
  return c;
}
}  // namespace

// One model cube through the fast path (workspace reused, as in a fit). Arg = oversampling.
static void BM_GenericIfuModelCube(benchmark::State& state) {
  const GenericIfu ifu(bench_config(static_cast<int>(state.range(0))));
  const IfuModel im(ifu);
  const GalaxyModel model(GalaxyParams{}, Cosmology());
  auto ws = im.make_workspace();
  std::vector<double> out;
  IfuModelSummary s;
  for (auto _ : state) {
    s = im.model_cube(model, out, ws);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["fft_channels"] = static_cast<double>(s.transformed_channels);
  state.counters["work_px"] = static_cast<double>(ifu.work_grid().size());
}
BENCHMARK(BM_GenericIfuModelCube)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

// Same, but a new GalaxyModel each iteration (what a fitter pays per parameter vector).
static void BM_GenericIfuModelCubeWithModelBuild(benchmark::State& state) {
  const GenericIfu ifu(bench_config(1));
  const IfuModel im(ifu);
  auto ws = im.make_workspace();
  std::vector<double> out;
  GalaxyParams p;
  const Cosmology cosmo;
  double v = 180.0;
  for (auto _ : state) {
    p.vc_kms = v;
    v = v == 180.0 ? 181.0 : 180.0;
    const GalaxyModel model(p, cosmo);
    im.model_cube(model, out, ws);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_GenericIfuModelCubeWithModelBuild)->Unit(benchmark::kMillisecond);

// Reference path: render at the work-grid pixels, then observe (for comparison only).
static void BM_GenericIfuReferencePath(benchmark::State& state) {
  const GenericIfu ifu(bench_config(1));
  const GalaxyModel model(GalaxyParams{}, Cosmology());
  RenderOptions ro;
  ro.pixel_arcsec = ifu.work_grid().pixel_arcsec;
  ro.fov_x_arcsec = ifu.work_grid().nx * ro.pixel_arcsec;
  ro.fov_y_arcsec = ifu.work_grid().ny * ro.pixel_arcsec;
  ro.channel_kms = 10.0;
  ro.continuum_windows = false;
  ro.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  ro.threads = 1;
  auto ws = ifu.make_workspace();
  Cube out;
  for (auto _ : state) {
    const RenderResult r = render(model, ro, SkyFrame{});
    ifu.observe(r.cube, out, ws);
    benchmark::DoNotOptimize(out.sci.data());
  }
}
BENCHMARK(BM_GenericIfuReferencePath)->Unit(benchmark::kMillisecond);
