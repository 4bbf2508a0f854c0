// Tests of fit/cube_noise: the Monte Carlo estimate of the reconstruction's noise correlation.
//  * the estimator reproduces known synthetic cases: independent voxels give kappa = 1, a moving
//    average over two spaxels along x gives rho(+-1, 0, 0) = 1/2 and kappa = 2 (within stated
//    tolerances), and channel gaps stop spectral neighbours;
//  * through the instrument (a SMALL 3-step x 2-dither configuration): the reconstruction's
//    variance ratio <z^2> is ~1 (ERR is right marginally) and kappa > 1 (the voxels are
//    correlated); the result is identical for 1 and 2 threads and a fixed seed;
//  * apply_cube_noise divides inv_sigma by sqrt(kappa) of the spaxel;
//  * WhitenedCubeOperator decorrelates an independent pure-noise cube (x-neighbour correlation
//    0.80 -> 0.14; whitened variance 0.38: the covariance is nearly singular).
// The statistical check (scatter / error of cube-space fits with both likelihoods) is in
// tests/test_cube_noise_slow.cpp. Numbers are printed as "[ info ]" lines.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/rng.hpp"
#include "fit/cube_noise.hpp"
#include "fit/slitstep_operator.hpp"
#include "sim/simulate.hpp"
#include "helpers/configs.hpp"

namespace slitstep {
namespace {

SimulationConfig small_config() { return test::small_slitstep_config(); }

Cube synthetic(int nx, int ny, std::size_t nl, const Rng& rng, bool moving_average_x) {
  SpatialGrid g;
  g.nx = nx;
  g.ny = ny;
  g.pixel_arcsec = 0.08;
  Cube c = Cube::zeros(g, WavelengthGrid::linear(1.0, 0.001, static_cast<int>(nl)));
  Rng r = rng;
  std::vector<double> e(static_cast<std::size_t>(nx + 1) * ny * nl);
  for (auto& x : e) x = r.normal();
  for (int j = 0; j < ny; ++j)
    for (int i = 0; i < nx; ++i)
      for (std::size_t k = 0; k < nl; ++k) {
        const auto at = [&](int ii) { return e[(static_cast<std::size_t>(j) * (nx + 1) + ii) * nl + k]; };
        const std::size_t p = c.index(i, j, k);
        c.sci[p] = moving_average_x ? (at(i) + at(i + 1)) * 3.0 : at(i) * 3.0;
        c.err[p] = moving_average_x ? 3.0 * std::sqrt(2.0) : 3.0;
      }
  return c;
}

TEST(CubeNoise, EstimatorIndependentVoxelsGiveKappaOne) {
  const int nx = 12, ny = 10;
  const std::size_t nl = 200;
  CubeNoiseEstimator est(nx, ny, nl, 2, 2);
  for (int k = 0; k < 4; ++k) ASSERT_TRUE(est.add(synthetic(nx, ny, nl, Rng(7).substream(k), false)).ok());
  const CubeNoiseResult r = est.finish();
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  std::printf("[ info ] independent: var_ratio %.4f, kappa stationary %.4f, all offsets %.4f, per spaxel mean %.4f "
              "median %.4f [%.3f, %.3f]\n",
              r.var_ratio, r.kappa_stationary, r.kappa_all_offsets, r.kappa_mean, r.kappa_median, r.kappa_min,
              r.kappa_max);
  // 96 000 samples: <z^2> to +-0.005 (1 sigma); kappa sums d = 0 and whatever passes the 5-sigma cut.
  EXPECT_NEAR(r.var_ratio, 1.0, 0.02);
  EXPECT_NEAR(r.kappa_stationary, 1.0, 0.03);
  EXPECT_NEAR(r.kappa_mean, 1.0, 0.03);
  EXPECT_NEAR(r.kappa_median, 1.0, 0.05);
  for (int dx = -2; dx <= 2; ++dx) EXPECT_NEAR(r.rho(dx, 0, 0), dx == 0 ? 1.0 : 0.0, 0.02) << dx;
}

TEST(CubeNoise, EstimatorMovingAverageGivesKappaTwo) {
  const int nx = 12, ny = 10;
  const std::size_t nl = 200;
  CubeNoiseEstimator est(nx, ny, nl, 2, 2);
  for (int k = 0; k < 4; ++k) ASSERT_TRUE(est.add(synthetic(nx, ny, nl, Rng(8).substream(k), true)).ok());
  const CubeNoiseResult r = est.finish();
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  std::printf("[ info ] moving average along x: rho(-1,0,0) %.4f rho(1,0,0) %.4f rho(2,0,0) %.4f rho(0,1,0) %.4f; "
              "kappa stationary %.4f, per spaxel median %.4f (edge spaxels: one neighbour, 1.5)\n",
              r.rho(-1, 0, 0), r.rho(1, 0, 0), r.rho(2, 0, 0), r.rho(0, 1, 0), r.kappa_stationary, r.kappa_median);
  EXPECT_NEAR(r.rho(1, 0, 0), 0.5, 0.02);
  EXPECT_NEAR(r.rho(-1, 0, 0), 0.5, 0.02);
  EXPECT_NEAR(r.rho(2, 0, 0), 0.0, 0.02);
  EXPECT_NEAR(r.rho(0, 1, 0), 0.0, 0.02);
  EXPECT_NEAR(r.rho(0, 0, 1), 0.0, 0.02);
  EXPECT_NEAR(r.kappa_stationary, 2.0, 0.05);
  EXPECT_NEAR(r.kappa_median, 2.0, 0.08);
  // Edge columns have one neighbour: kappa 1.5.
  EXPECT_NEAR(r.kappa[0], 1.5, 0.15);
  EXPECT_NEAR(r.kappa[static_cast<std::size_t>(nx / 2)], 2.0, 0.15);
}

TEST(CubeNoise, EstimatorRespectsChannelGaps) {
  // Perfectly correlated along the spectrum (every channel the same draw), with a gap between
  // channels 4 and 5: spectral neighbours across the gap are not counted.
  const int nx = 3, ny = 3;
  const std::size_t nl = 10;
  std::vector<char> adj(nl - 1, 1);
  adj[4] = 0;
  CubeNoiseEstimator est(nx, ny, nl, 0, 2, adj);
  Cube c = synthetic(nx, ny, nl, Rng(9), false);
  for (int j = 0; j < ny; ++j)
    for (int i = 0; i < nx; ++i)
      for (std::size_t k = 1; k < nl; ++k) c.sci[c.index(i, j, k)] = c.sci[c.index(i, j, 0)];
  ASSERT_TRUE(est.add(c).ok());
  const CubeNoiseResult r = est.finish(0.0);
  // Pairs at dl = 1: 9 spaxels x 8 adjacent pairs (9 pairs minus the gap).
  EXPECT_EQ(r.kernel_pairs[r.kernel_index(0, 0, 1)], 9u * 8u);
  EXPECT_EQ(r.kernel_pairs[r.kernel_index(0, 0, 2)], 9u * 6u);
  EXPECT_FALSE(est.add(synthetic(nx + 1, ny, nl, Rng(1), false)).ok());
}

TEST(CubeNoise, ReconstructionCorrelatesNeighbours) {
  const SimulationConfig c = small_config();
  const SlitstepOperator op(c);
  CubeNoiseOptions o;
  o.realisations = 6;
  o.threads = 1;
  const CubeNoiseResult r = measure_cube_noise(op, o);
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  std::printf("[ info ] small config (%d x %d spaxels, %zu columns, K = %d, %.2f s): var_ratio %.4f, kappa "
              "stationary %.3f (all offsets %.3f), per spaxel mean %.3f median %.3f [%.3f, %.3f]\n",
              r.nx, r.ny, op.n_columns(), r.realisations, r.wall_s, r.var_ratio, r.kappa_stationary,
              r.kappa_all_offsets, r.kappa_mean, r.kappa_median, r.kappa_min, r.kappa_max);
  for (int dl = -1; dl <= 1; ++dl) {
    std::printf("[ info ] kernel at dl = %+d (rows dy = -2..2, columns dx = -2..2):\n", dl);
    for (int dy = -2; dy <= 2; ++dy) {
      std::printf("[ info ]  ");
      for (int dx = -2; dx <= 2; ++dx)
        std::printf(" %7.4f%s", r.rho(dx, dy, dl), r.kernel_used[r.kernel_index(dx, dy, dl)] ? "*" : " ");
      std::printf("\n");
    }
  }
  EXPECT_NEAR(r.var_ratio, 1.0, 0.1);
  EXPECT_GT(r.kappa_stationary, 1.5);
  EXPECT_GT(r.kappa_median, 1.5);
  // Deterministic: 2 threads, same numbers.
  o.threads = 2;
  const CubeNoiseResult r2 = measure_cube_noise(op, o);
  ASSERT_TRUE(r2.status.ok());
  ASSERT_EQ(r.kernel.size(), r2.kernel.size());
  ASSERT_EQ(r.kappa.size(), r2.kappa.size());
  EXPECT_EQ(std::memcmp(r.kernel.data(), r2.kernel.data(), r.kernel.size() * sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(r.kappa.data(), r2.kappa.data(), r.kappa.size() * sizeof(double)), 0);

  // apply_cube_noise: inv_sigma / sqrt(kappa).
  SlitstepOperator::Selection sel;
  sel.inv_sigma.assign(op.data_size(), 2.0);
  ASSERT_TRUE(apply_cube_noise(r, op, sel).ok());
  const std::size_t nc = op.n_columns();
  for (std::size_t s = 0; s < r.kappa.size(); s += 7) {
    const double k = std::isfinite(r.kappa[s]) ? r.kappa[s] : r.kappa_median;
    EXPECT_DOUBLE_EQ(sel.inv_sigma[s * nc], 2.0 / std::sqrt(k));
  }
  SlitstepOperator::Selection wrong;
  wrong.inv_sigma.assign(3, 1.0);
  EXPECT_FALSE(apply_cube_noise(r, op, wrong).ok());
  CubeNoiseOptions bad;
  bad.realisations = 0;
  EXPECT_THROW(bad.validate(), InvalidOptions);
}

// Whitening: on an independent pure-noise cube (observe_sky of a blank sky, other seeds), the
// whitened values of neighbouring spaxels are nearly uncorrelated where the raw z = value / ERR
// are strongly correlated.
TEST(CubeNoise, WhiteningDecorrelatesNeighbours) {
  const SimulationConfig c = small_config();
  const SlitstepOperator op(c);
  CubeNoiseOptions o;
  o.realisations = 32;
  const CubeNoiseResult r = measure_cube_noise(op, o);
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  const Cube blank = Cube::zeros(op.instrument().sky_spatial(), op.instrument().sky_spectral(), c.scene.sky, false);
  const SpatialGrid& g = op.cube_spatial();
  const std::size_t nc = op.n_columns();
  double raw_c = 0.0, raw_v = 0.0, w_c = 0.0, w_v = 0.0;
  std::size_t n_c = 0, n_v = 0;
  double shrink = 1.0;
  for (int rep = 0; rep < 6; ++rep) {
    SimulateOptions so;
    so.seed = 777 + static_cast<std::uint64_t>(rep);
    so.threads = 2;
    const SimulationResult sim = observe_sky(blank, c, so);
    ASSERT_TRUE(sim.status.ok()) << sim.status.message;
    const auto sel = op.select_cube(sim.reconstruct.cube);
    ASSERT_TRUE(sel.status.ok()) << sel.status.message;
    const WhitenedCubeOperator w(op, r, sel);
    ASSERT_TRUE(w.status().ok()) << w.status().message;
    shrink = w.shrink();
    const auto& ws = w.selection();
    for (int j = 0; j < g.ny; ++j)
      for (int i = 0; i < g.nx; ++i)
        for (std::size_t k = 0; k < nc; ++k) {
          const std::size_t a = (static_cast<std::size_t>(j) * g.nx + i) * nc + k;
          if (!(sel.inv_sigma[a] > 0.0)) continue;
          ASSERT_EQ(ws.inv_sigma[a], 1.0);
          raw_v += std::pow(sel.data[a] * sel.inv_sigma[a], 2);
          w_v += ws.data[a] * ws.data[a];
          ++n_v;
          if (i + 1 >= g.nx) continue;
          const std::size_t b = a + nc;
          if (!(sel.inv_sigma[b] > 0.0)) continue;
          raw_c += sel.data[a] * sel.inv_sigma[a] * sel.data[b] * sel.inv_sigma[b];
          w_c += ws.data[a] * ws.data[b];
          ++n_c;
        }
  }
  const double dn_c = static_cast<double>(n_c), dn_v = static_cast<double>(n_v);
  std::printf("[ info ] whitening (shrink %.3f): <z^2> %.3f -> %.3f; x-neighbour correlation %.3f -> %.3f (%zu pairs)\n",
              shrink, raw_v / dn_v, w_v / dn_v, raw_c / dn_c, w_c / dn_c, n_c);
  EXPECT_NEAR(raw_v / dn_v, 1.0, 0.1);
  EXPECT_GT(raw_c / dn_c, 0.6);
  EXPECT_LT(std::abs(w_c / dn_c), 0.2);
  // The cube has more voxels than independent detector samples (8 spaxels across 3 steps): the
  // covariance is nearly singular, the estimate is shrunk to be positive definite, and the
  // whitened values have less than unit variance (docs/fit.md).
  EXPECT_GT(w_v / dn_v, 0.2);
  EXPECT_LT(w_v / dn_v, 0.7);
}

}  // namespace
}  // namespace slitstep
