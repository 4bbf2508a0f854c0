// Benchmarks of the generic IFU (instruments/generic_ifu, sim/ifu_model, fit/ifu_operator) on ONE
// core, except BM_GenericIfuFit.
// Target case (docs/generic_ifu.md): the default galaxy (Halpha at z = 1, re = 0.35") seen by a
// 24 x 46 spaxel IFU of 0.05" (1.2" x 2.3"), 150 channels of 54 km/s around Halpha (covering
// [NII]6548/6584), Gaussian PSF FWHM 0.12", LSF sigma 50 km/s. Target: < 2 ms per model cube.
// BM_GenericIfuFit: a full 12-parameter maximum-likelihood fit of that cube at S/N 20 on 2 threads
// (wall time; target < 1 s), with evaluations and iterations per fit as counters.
#include <benchmark/benchmark.h>

#include <cmath>

#include "core/cosmology.hpp"
#include "core/rng.hpp"
#include "fit/forward.hpp"
#include "fit/ifu_operator.hpp"
#include "instruments/generic_ifu.hpp"
#include "sim/galaxy.hpp"
#include "sim/ifu_model.hpp"
#include "sim/render.hpp"
#include "sim/noise.hpp"

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
  state.counters["psf_channels"] = static_cast<double>(s.transformed_channels);
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

// One evaluation through the fitter's operator (fit/ifu_operator: parameter checks, a new
// GalaxyModel, the model cube, the copy into the model vector), as a fit pays per evaluation.
static void BM_GenericIfuOperatorEvaluate(benchmark::State& state) {
  const IfuOperator op{GenericIfuConfig{}};
  auto ws = op.make_workspace();
  std::vector<double> out(op.data_size());
  GalaxyParams p;
  p.inclination_deg = 55.0;
  double v = 180.0;
  for (auto _ : state) {
    p.vc_kms = v;
    v = v == 180.0 ? 181.0 : 180.0;
    benchmark::DoNotOptimize(op.evaluate(p, out.data(), *ws));
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_GenericIfuOperatorEvaluate)->Unit(benchmark::kMillisecond);

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

// A full maximum-likelihood fit of the benchmark cube at S/N 20 (integrated Halpha S/N of the
// brightest spaxel), the twelve standard parameters free from a start 10 % off (v0 +10 km/s,
// centre +0.02"), on 2 threads: as tests/test_ifu_operator.cpp NoisyBenchmarkCubeFitTime. Each
// iteration fits a new noise realisation. Counters: model evaluations and Ceres iterations per
// fit, converged fraction.
static void BM_GenericIfuFit(benchmark::State& state) {
  const GenericIfuConfig cfg;
  const IfuOperator op(cfg);
  GalaxyParams truth;
  truth.inclination_deg = 55.0;
  truth.ew_halpha_rest_A = 0.0;
  truth.vc_kms = 180.0;
  truth.sigma0_kms = 45.0;
  truth.pa_deg = 30.0;
  truth.gradient_dex_per_kpc = -0.03;
  const Cube clean = op.model_cube(truth);
  const double sigma = uniform_sigma_for_spaxel_snr(clean, 20.0);  // integrated S/N 20, brightest spaxel
  GalaxyParameterization param(truth);
  for (auto& sp : param.specs()) {
    if (sp.name == "center_x_arcsec" || sp.name == "center_y_arcsec") sp.value += 0.02;
    else if (sp.name == "v0_kms") sp.value += 10.0;
    else sp.value *= 1.1;
  }
  FitOptions fo;
  fo.threads = 2;
  double evals = 0.0, iters = 0.0, conv = 0.0, fits = 0.0;
  std::uint64_t r = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Cube data = clean;
    Rng rng = Rng(20240607).substream(r++);
    for (auto& v : data.sci) v += rng.normal(0.0, sigma);
    const FitProblem prob = op.make_problem(op.select_cube(data, sigma), param);
    state.ResumeTiming();
    const FitResult f = fit_maximum_likelihood(prob, fo);
    evals += static_cast<double>(f.n_model_evaluations);
    iters += f.iterations;
    conv += f.status == FitStatus::kConverged ? 1.0 : 0.0;
    fits += 1.0;
  }
  state.counters["evaluations"] = evals / fits;
  state.counters["iterations"] = iters / fits;
  state.counters["converged"] = conv / fits;
}
BENCHMARK(BM_GenericIfuFit)->UseRealTime()->Unit(benchmark::kMillisecond);
