// Noise consistency of the full simulation chain (docs/reconstruction.md, "Noise"): for the
// default galaxy at the MSA-3D exposure, the noisy exposures minus the noiseless ones, divided by
// ERR, must be unit-variance and zero-mean in every pixel class (blank sky; faint, moderate and
// source-dominated pixels near Halpha and [NII]), uncorrelated between neighbouring pixels, and
// ERR must be the expected noise (identical in every noise draw and to the noiseless ERR).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/lines.hpp"
#include "core/rng.hpp"
#include "sim/simulate.hpp"

namespace slitstep {
namespace {

struct Acc {
  double n = 0, s = 0, s2 = 0, s4 = 0;
  void add(double z) { n += 1, s += z, s2 += z * z, s4 += z * z * z * z; }
  double kurt() const { return s4 / n / ((s2 / n) * (s2 / n)) - 3.0; }
  double mean() const { return s / n; }
  double sd() const { return std::sqrt(std::max(0.0, s2 / n - mean() * mean())); }
};

SimulationConfig default_campaign_config() {
  SimulationConfig c;
  const FieldOfView f = required_field_of_view(c.instrument, c.scene.render.pixel_arcsec);
  c.scene.render.fov_x_arcsec = f.x_arcsec;
  c.scene.render.fov_y_arcsec = f.y_arcsec;
  c.scene.galaxy.inclination_deg = 55.0;
  return c;
}

TEST(NoiseConsistency, DefaultGalaxyResidualsOverErrAreUnitNormalPerPixelClass) {
  const SimulationConfig c = default_campaign_config();
  SimulateOptions so;
  so.noiseless = true;
  const SimulationResult nl = simulate(c, so);
  ASSERT_TRUE(nl.status.ok()) << nl.status.message;
  double ha_um = 0, nii_um = 0;
  for (const auto& l : nl.lines) {
    if (l.line == LineId::kHalpha) ha_um = l.observed_um;
    if (l.line == LineId::kNII6584) nii_um = l.observed_um;
  }
  ASSERT_GT(ha_um, 0.0);
  // classes: 0 blank sky (noiseless SCI == 0), near Halpha / [NII]6584 (+-1000 km/s) by S/N of
  // the noiseless pixel: 1 (0, 1), 2 [1, 3), 3 >= 3; 4 other source pixels; 5 source-dominated
  // (source electrons > background + dark electrons; electrons from VAR_RNOISE = rn^2 to_sb^2).
  const char* names[] = {"blank sky", "line S/N<1", "line 1<=S/N<3", "line S/N>=3", "other source", "S > B"};
  constexpr int kClasses = 6;
  const double rn = c.instrument.detector.read_noise_e;
  auto source_dominated = [&](const Exposure& e, std::size_t p) {
    const double g = std::sqrt(e.var_rnoise[p]) / rn;
    const double S = e.sci[p] / g, SB = e.var_poisson[p] / (g * g);
    return S > SB - S;
  };
  auto cls = [&](const Exposure& e, std::size_t p, int u) {
    const double x = e.sci[p];
    if (x == 0.0) return 0;
    const double l = e.wavelength_um[static_cast<std::size_t>(u)];
    const bool near = std::abs(l / ha_um - 1.0) < 1000.0 / 299792.458 ||
                      (nii_um > 0 && std::abs(l / nii_um - 1.0) < 1000.0 / 299792.458);
    if (!near) return 4;
    const double snr = x / e.err[p];
    return snr < 1.0 ? 1 : snr < 3.0 ? 2 : 3;
  };
  Acc acc[kClasses];
  Acc corr_u, corr_v;  // products of neighbouring z (blank sky and source alike)
  Acc corr_q;  // products of z of the same detector pixel in consecutive exposures
  std::vector<double> chi2_line;  // per realisation: sum of z^2 over the pixels near the lines
  Acc corr_k;  // products of z of the same pixel in consecutive realisations
  std::vector<std::vector<double>> prev;
  double max_err_diff = 0.0;
  int K = 4;  // SLITSTEP_NOISE_K overrides (diagnostic runs)
  if (const char* e = std::getenv("SLITSTEP_NOISE_K")) K = std::max(2, std::atoi(e));
  for (int k = 0; k < K; ++k) {
    SimulateOptions sn;
    sn.seed = Rng(2024).substream(static_cast<std::uint64_t>(k)).seed();  // the campaign's seeds
    const SimulationResult r = simulate(c, sn);
    ASSERT_TRUE(r.status.ok()) << r.status.message;
    ASSERT_EQ(r.exposures.size(), nl.exposures.size());
    double c2 = 0.0;
    for (std::size_t q = 0; q < r.exposures.size(); ++q) {
      const Exposure& a = r.exposures[q];
      const Exposure& b = nl.exposures[q];
      ASSERT_EQ(a.pointing.index, b.pointing.index);
      std::vector<double> z(a.size(), std::nan(""));
      for (int v = 0; v < a.nv; ++v)
        for (int u = 0; u < a.nu; ++u) {
          const std::size_t p = a.index(v, u);
          if (!(b.err[p] > 0.0)) continue;
          max_err_diff = std::max(max_err_diff, std::abs(a.err[p] - b.err[p]) / b.err[p]);
          z[p] = (a.sci[p] - b.sci[p]) / b.err[p];
          const int k_cls = cls(b, p, u);
          acc[k_cls].add(z[p]);
          if (k_cls >= 1 && k_cls <= 3) c2 += z[p] * z[p];
          if (b.sci[p] > 0.0 && source_dominated(b, p)) acc[5].add(z[p]);
        }
      if (q > 0)
        for (std::size_t p = 0; p < z.size(); ++p)
          if (!std::isnan(z[p]) && prev.size() > q - 1 && prev[q - 1].size() == z.size() && !std::isnan(prev[q - 1][p]))
            corr_q.add(z[p] * prev[q - 1][p]);
      if (k > 0)
        for (std::size_t p = 0; p < z.size(); ++p)
          if (!std::isnan(z[p])) corr_k.add(z[p] * prev[q][p]);
      for (int v = 0; v < a.nv; ++v)
        for (int u = 0; u < a.nu; ++u) {
          const std::size_t p = a.index(v, u);
          if (std::isnan(z[p])) continue;
          if (u + 1 < a.nu && !std::isnan(z[p + 1])) corr_u.add(z[p] * z[p + 1]);
          if (v + 1 < a.nv && !std::isnan(z[a.index(v + 1, u)])) corr_v.add(z[p] * z[a.index(v + 1, u)]);
        }
      if (prev.size() <= q) prev.resize(q + 1);
      prev[q] = std::move(z);
    }
    chi2_line.push_back(c2);
  }
  for (int i = 0; i < kClasses; ++i)
    std::printf("[ info ] %-14s n = %9.0f  mean z = %+.4f  sd z = %.4f  excess kurtosis %+.3f\n", names[i], acc[i].n,
                acc[i].mean(), acc[i].sd(), acc[i].kurt());
  std::printf("[ info ] correlation: neighbours along u %+.4f, along v %+.4f; consecutive realisations %+.5f; "
              "max |ERR_noisy/ERR_noiseless - 1| = %.3g\n",
              corr_u.mean(), corr_v.mean(), corr_k.mean(), max_err_diff);
  {
    Acc a;
    for (double x : chi2_line) a.add(x);
    const double n_line = (acc[1].n + acc[2].n + acc[3].n) / K;
    std::printf("[ info ] consecutive exposures: correlation %+.5f; chi2 of the line pixels per realisation: mean / n = "
                "%.5f, sd = %.1f (Gaussian %.1f, %d realisations)\n",
                corr_q.mean(), a.mean() / n_line, a.sd() * std::sqrt(K / (K - 1.0)), std::sqrt(2.0 * n_line), K);
  }
  EXPECT_NEAR(corr_q.mean(), 0.0, 0.01);
  EXPECT_LE(max_err_diff, 1e-12);
  for (int i = 0; i < kClasses; ++i) {
    if (acc[i].n < 1000) continue;
    const double se = 1.0 / std::sqrt(acc[i].n);
    EXPECT_NEAR(acc[i].mean(), 0.0, std::max(5.0 * se, 0.005)) << names[i];
    EXPECT_NEAR(acc[i].sd(), 1.0, std::max(5.0 * se, 0.01)) << names[i];
  }
  EXPECT_NEAR(corr_u.mean(), 0.0, 0.01);
  EXPECT_NEAR(corr_v.mean(), 0.0, 0.01);
  EXPECT_NEAR(corr_k.mean(), 0.0, 0.01);
}

}  // namespace
}  // namespace slitstep
