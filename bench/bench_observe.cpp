// Benchmark of the observe operator: 63 MSA-3D pointings of a default-sized synthetic sky cube
// (0.02" pixels, 2.6" x 3.2", ~650 channels in 6 windows) on one thread; and a fitter-like call
// (compact columns, pre-convolved sky with its nonzero ranges) with and without an ObservePlan.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/cube.hpp"
#include "instruments/observe.hpp"

namespace {

using namespace slitstep;

struct Setup {
  Cube sky;
  std::unique_ptr<NirspecInstrument> ins;
};

Setup& setup() {
  static Setup s = [] {
    Setup x;
    const SpatialGrid g = SpatialGrid::centred(130, 160, 0.02);
    // six line windows (Hbeta, [OIII] 4959/5007, Halpha+[NII], [SII] at z = 1.0), ~108 channels each
    std::vector<WavelengthWindow> w;
    for (double c : {0.9800, 0.9930, 1.0030, 1.3150, 1.3455, 1.5000}) w.push_back({c - 0.0027, 0.00005, 108});
    const WavelengthGrid wl = WavelengthGrid::from_windows(w);
    x.sky = Cube::zeros(g, wl);
    for (int j = 0; j < g.ny; ++j)
      for (int i = 0; i < g.nx; ++i) {
        const double r = std::hypot(g.x_arcsec(i), g.y_arcsec(j));
        const double v = 200.0 * g.y_arcsec(j);  // a rotation-like velocity gradient, km/s
        double* s = x.sky.spectrum(i, j);
        for (std::size_t k = 0; k < wl.size(); ++k) {
          const double l = wl.wavelength_um(k);
          const std::size_t win = std::upper_bound(w.begin(), w.end(), l, [](double a, const WavelengthWindow& b) {
                                    return a < b.start_um;
                                  }) - w.begin() - 1;
          const double lc = w[win].start_um + 0.5 * (w[win].n - 1) * w[win].step_um;
          const double lv = lc * (1.0 + v / 299792.458);
          const double sig = lc * 60.0 / 299792.458;
          s[k] = std::exp(-r / 0.3) * std::exp(-0.5 * (l - lv) * (l - lv) / (sig * sig));
        }
      }
    x.ins = std::make_unique<NirspecInstrument>(NirspecConfig{}, g, wl);
    return x;
  }();
  return s;
}

void BM_Observe63Pointings(benchmark::State& state) {
  Setup& s = setup();
  ObserveOptions o;
  o.threads = static_cast<int>(state.range(0));
  std::vector<Exposure> out;
  for (auto _ : state) {
    observe_into(*s.ins, s.sky, o, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["pointings"] = static_cast<double>(out.size());
  state.counters["channels"] = static_cast<double>(s.sky.nl());
}
BENCHMARK(BM_Observe63Pointings)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Observe63Pointings_NoPsf(benchmark::State& state) {
  Setup& s = setup();
  ObserveOptions o;
  o.threads = 1;
  o.apply_psf = false;
  std::vector<Exposure> out;
  for (auto _ : state) {
    observe_into(*s.ins, s.sky, o, out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Observe63Pointings_NoPsf)->Unit(benchmark::kMillisecond)->UseRealTime();

// A fitter's call: compact columns (80 around the [OIII] 5007 window), the PSF already applied
// (observe_convolved_into on the raw cube, whose exact nonzero ranges are given); Arg(1): with an
// ObservePlan built once (its construction outside the timing), Arg(0): without.
void BM_ObserveCompactColumns(benchmark::State& state) {
  Setup& s = setup();
  const NirspecInstrument& ins = *s.ins;
  ObserveOptions o;
  o.threads = 1;
  const int u0 = static_cast<int>(std::lround(ins.disperser().u_of_lambda(1.0030)));
  for (int u = u0 - 40; u < u0 + 40; ++u) o.columns.push_back(u);
  const std::size_t nl = s.sky.nl(), npix = s.sky.spatial.size();
  static std::vector<int> ranges;
  ranges.assign(2 * npix, 0);
  for (std::size_t q = 0; q < npix; ++q) {
    int f = static_cast<int>(nl), l = -1;
    for (std::size_t k = 0; k < nl; ++k)
      if (s.sky.sci[q * nl + k] != 0.0) {
        f = std::min(f, static_cast<int>(k));
        l = static_cast<int>(k);
      }
    ranges[2 * q] = f;
    ranges[2 * q + 1] = l;
  }
  o.sky_ranges = &ranges;
  std::unique_ptr<ObservePlan> plan;
  if (state.range(0)) {
    plan = std::make_unique<ObservePlan>(ins, o);
    o.plan = plan.get();
  }
  std::vector<Exposure> out;
  for (auto _ : state) {
    observe_convolved_into(ins, s.sky.sci, o, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["columns"] = static_cast<double>(o.columns.size());
}
BENCHMARK(BM_ObserveCompactColumns)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_BuildNirspecInstrument(benchmark::State& state) {
  Setup& s = setup();
  for (auto _ : state) {
    NirspecInstrument ins(NirspecConfig{}, s.sky.spatial, s.sky.spectral);
    benchmark::DoNotOptimize(&ins);
  }
}
BENCHMARK(BM_BuildNirspecInstrument)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
