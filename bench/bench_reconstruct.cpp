// Benchmark: reconstruct 63 MSA-3D exposures of the default size (~3900 columns x 17 rows) on
// one thread, median and mean combination.
#include <benchmark/benchmark.h>

#include <cmath>

#include "core/rng.hpp"
#include "instruments/reconstruct.hpp"

namespace {

std::vector<slitstep::Exposure> default_exposures() {
  using namespace slitstep;
  const PatternConfig pat;
  std::vector<Exposure> out;
  Rng rng(1);
  for (const Pointing& p : make_pointings(pat)) {
    Exposure e;
    e.pointing = p;
    e.resize(17, 3900);
    e.y0_arcsec = -0.8;
    e.pixel_y_arcsec = 0.1;
    for (int u = 0; u < e.nu; ++u) e.wavelength_um[u] = 0.97 + 2.40e-4 * u - 1.3e-9 * u * u;
    Rng r = rng.substream(p.index);
    for (std::size_t q = 0; q < e.size(); ++q) {
      e.sci[q] = 1e-19 * (1.0 + r.normal());
      e.err[q] = 1e-19;
    }
    for (int v = 0; v < e.nv; ++v)
      for (int u = 1800; u < 1960; ++u) e.dq[e.index(v, u)] = kDqChipGap | kDqDoNotUse;
    out.push_back(std::move(e));
  }
  return out;
}

void BM_Reconstruct63(benchmark::State& state, const char* combine) {
  static const auto exps = default_exposures();
  slitstep::ReconstructOptions o;
  o.combine = combine;
  o.threads = 1;
  for (auto _ : state) {
    auto r = slitstep::reconstruct(exps, slitstep::SlitletConfig{}, slitstep::PatternConfig{}, slitstep::SkyFrame{}, o);
    benchmark::DoNotOptimize(r.cube.sci.data());
  }
  state.SetLabel("63 x 17 x 3900, 1 thread");
}
BENCHMARK_CAPTURE(BM_Reconstruct63, median, "median")->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_Reconstruct63, mean, "mean")->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace
