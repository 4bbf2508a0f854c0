// Benchmark of the whole default simulate (render -> observe 63 MSA-3D pointings -> noise ->
// reconstruct) on one thread: the default galaxy and instrument (slitlet at shutter_i = 100, as
// the demo, so that Halpha is not in the chip gap). Product writing is not included.
#include <benchmark/benchmark.h>
#include <omp.h>

#include "core/config.hpp"
#include "sim/simulate.hpp"

namespace {

using namespace slitstep;

void BM_SimulateDefault(benchmark::State& state) {
  omp_set_num_threads(1);
  const Config cfg = Config::from_string("[slitlet]\nshutter_i = 100\n", "bench");
  const SimulationConfig sc = read_simulation_config(cfg);
  SimulateOptions o;
  o.threads = 1;
  SimulationTimings t;
  for (auto _ : state) {
    const SimulationResult r = simulate(sc, o);
    benchmark::DoNotOptimize(r.reconstruct.cube.sci.data());
    t = r.timings;
  }
  state.counters["render_s"] = t.render_s;
  state.counters["instrument_s"] = t.instrument_s;
  state.counters["observe_s"] = t.observe_s;
  state.counters["noise_s"] = t.noise_s;
  state.counters["reconstruct_s"] = t.reconstruct_s;
}
BENCHMARK(BM_SimulateDefault)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
