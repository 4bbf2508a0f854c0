// Benchmarks of fit/line_fit: one Halpha-window spectrum (cold and warm start), both windows, and
// fit_cube on a 32 x 32 rotating-disk cube on ONE thread (spaxels per second per core).
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include "core/cube.hpp"
#include "core/rng.hpp"
#include "core/units.hpp"
#include "fit/line_fit.hpp"
#include "fit/lsf.hpp"
#include "instruments/disperser.hpp"

using namespace slitstep;

namespace {

constexpr double kZ = 1.0;
constexpr double kStep = 2.35e-4;  // G140H-like channels near 1.3 um

const LsfModel& lsf() {
  static const LsfModel m = LsfModel::from_disperser(Disperser(DisperserOptions{}));
  return m;
}

// Pixel-integrated Gaussian lines (Halpha, [NII], [SII]; Hbeta, [OIII] when covered) + flat continuum.
std::vector<double> spectrum(const std::vector<double>& wl, double v, double sig, double fha, double cont) {
  std::vector<double> f(wl.size(), cont);
  const std::pair<LineId, double> lines[] = {{LineId::kHalpha, 1.0},  {LineId::kNII6584, 0.25}, {LineId::kNII6548, 0.25 / 3},
                                             {LineId::kSII6717, 0.1}, {LineId::kSII6731, 0.08}, {LineId::kHbeta, 0.3},
                                             {LineId::kOIII5007, 0.5}, {LineId::kOIII4959, 0.5 / 2.98}};
  for (auto [id, rel] : lines) {
    const double mu = line(id).rest_A * (1 + kZ) / 1e4 * doppler_factor(v);
    const double si = lsf().sigma_kms(mu);
    const double sl = mu * std::sqrt(sig * sig + si * si) / kSpeedOfLight_kms;
    for (std::size_t k = 0; k < wl.size(); ++k) {
      const double a = (wl[k] - 0.5 * kStep - mu) / (sl * std::sqrt(2.0)), b = (wl[k] + 0.5 * kStep - mu) / (sl * std::sqrt(2.0));
      f[k] += rel * fha * 0.5 * (std::erf(b) - std::erf(a)) / kStep;
    }
  }
  return f;
}

struct Spec {
  std::vector<double> wl, f, err;
};
Spec noisy(double lo_um, double hi_um, std::uint64_t seed) {
  Spec s;
  for (int k = 0; lo_um + k * kStep <= hi_um; ++k) s.wl.push_back(lo_um + k * kStep);
  s.f = spectrum(s.wl, 80.0, 50.0, 1e-17, 2e-15);
  s.err.assign(s.wl.size(), 2e-15);
  Rng g(seed);
  for (double& x : s.f) x += g.normal(0.0, 2e-15);
  return s;
}

}  // namespace

static void BM_LineFitHalphaWindowCold(benchmark::State& state) {
  const Spec s = noisy(1.300, 1.365, 1);
  const EmissionLineFitOptions o;
  for (auto _ : state) {
    SpectrumFit f = fit_spectrum(s.wl.data(), s.f.data(), s.err.data(), nullptr, s.wl.size(), kZ, lsf(), o);
    benchmark::DoNotOptimize(f.velocity_kms);
  }
  state.counters["spectra/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LineFitHalphaWindowCold)->Unit(benchmark::kMicrosecond);

static void BM_LineFitHalphaWindowWarm(benchmark::State& state) {
  const Spec s = noisy(1.300, 1.365, 1);
  const EmissionLineFitOptions o;
  SpectrumFit start;
  start.velocity_kms = 60.0;
  start.sigma2_kms2 = 45.0 * 45.0;
  int iterations = 0;
  for (auto _ : state) {
    SpectrumFit f = fit_spectrum(s.wl.data(), s.f.data(), s.err.data(), nullptr, s.wl.size(), kZ, lsf(), o, &start);
    benchmark::DoNotOptimize(f.velocity_kms);
    iterations = f.iterations;
  }
  state.counters["solver_iterations"] = iterations;
  state.counters["spectra/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LineFitHalphaWindowWarm)->Unit(benchmark::kMicrosecond);

static void BM_LineFitBothWindowsWarm(benchmark::State& state) {
  const Spec s = noisy(0.960, 1.365, 2);
  const EmissionLineFitOptions o;
  SpectrumFit start;
  start.velocity_kms = 60.0;
  start.sigma2_kms2 = 45.0 * 45.0;
  for (auto _ : state) {
    SpectrumFit f = fit_spectrum(s.wl.data(), s.f.data(), s.err.data(), nullptr, s.wl.size(), kZ, lsf(), o, &start);
    benchmark::DoNotOptimize(f.velocity_kms);
  }
  state.counters["spectra/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LineFitBothWindowsWarm)->Unit(benchmark::kMicrosecond);

// fit_cube on 32 x 32 spaxels of the Halpha window (277 channels), one thread, warm starts.
static void BM_LineFitCubeHalpha32x32OneThread(benchmark::State& state) {
  const int n = 32;
  std::vector<double> wl;
  for (int k = 0; 1.300 + k * kStep <= 1.365; ++k) wl.push_back(1.300 + k * kStep);
  Cube c = Cube::zeros(SpatialGrid::centred(n, n, 0.08), WavelengthGrid::linear(wl.front(), kStep, static_cast<int>(wl.size())));
  Rng rng(5);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i) {
      const double x = (i - n / 2) * 0.08, y = (j - n / 2 + 0.4) * 0.08, r = std::hypot(x, y);
      const double v = 200.0 * (2.0 / kPi) * std::atan(r / 0.2) * (r > 0 ? x / r : 0.0);
      const auto f = spectrum(wl, v, 50.0, 4e-17 * std::exp(-r / 0.5), 1e-15);
      Rng g = rng.substream(static_cast<std::uint64_t>(j * n + i));
      for (std::size_t k = 0; k < wl.size(); ++k) {
        c.sci[c.index(i, j, k)] = f[k] + g.normal(0.0, 1e-15);
        c.err[c.index(i, j, k)] = 1e-15;
      }
    }
  EmissionLineFitOptions o;
  o.threads = 1;
  LineFitSummary sum;
  for (auto _ : state) {
    LineMaps m = fit_cube(c, kZ, lsf(), o, &sum);
    benchmark::DoNotOptimize(m.velocity_kms.data());
  }
  state.counters["spaxels/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * n * n, benchmark::Counter::kIsRate);
  state.counters["converged"] = static_cast<double>(sum.count(LineFitStatus::kConverged));
}
BENCHMARK(BM_LineFitCubeHalpha32x32OneThread)->Unit(benchmark::kMillisecond);
