// Tests of sim/noise: Poisson + read noise in electrons, background subtraction, model
// variances, switches, noiseless mode, determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include "sim/noise.hpp"

namespace slitstep {
namespace {

std::vector<Exposure> frames(int n, double sb) {
  std::vector<Exposure> out;
  for (int q = 0; q < n; ++q) {
    Exposure e;
    e.pointing.index = q;
    e.resize(20, 500);
    for (int u = 0; u < e.nu; ++u) e.wavelength_um[u] = 1.2 + 2.4e-4 * u;
    std::fill(e.sci.begin(), e.sci.end(), sb);
    out.push_back(std::move(e));
  }
  return out;
}

struct Stats {
  double mean = 0, var = 0, ratio_std = 0;
};
Stats stats(const std::vector<Exposure>& ex) {
  std::vector<double> x, r;
  for (const auto& e : ex)
    for (std::size_t p = 0; p < e.size(); ++p) {
      x.push_back(e.sci[p]);
      r.push_back(e.sci[p] / e.err[p]);
    }
  Stats s;
  s.mean = std::accumulate(x.begin(), x.end(), 0.0) / x.size();
  for (double v : x) s.var += (v - s.mean) * (v - s.mean);
  s.var /= x.size() - 1;
  double mr = std::accumulate(r.begin(), r.end(), 0.0) / r.size(), vr = 0;
  for (double v : r) vr += (v - mr) * (v - mr);
  s.ratio_std = std::sqrt(vr / (r.size() - 1));
  return s;
}

TEST(Noise, SourcePlusBackgroundMatchesModel) {
  const double g = 1e-20, S = 40.0, B = 9.0, rn = 6.0;
  auto ex = frames(4, S * g);
  std::vector<ExposureCounts> c;
  for (const auto& e : ex) c.push_back(counts_from_sb(e, g, B, rn));
  ASSERT_TRUE(apply_noise(ex, c, NoiseModel{}, Rng(7)).status.ok());
  const Stats s = stats(ex);
  // 40000 pixels: the mean is S*g within 4 sigma, the variance (S + B + rn^2) g^2 within 2%.
  const double model_var = (S + B + rn * rn) * g * g;
  EXPECT_NEAR(s.mean / (S * g), 1.0, 4.0 * std::sqrt(model_var / 40000.0) / (S * g));
  EXPECT_NEAR(s.var / model_var, 1.0, 0.03);
  EXPECT_DOUBLE_EQ(ex[0].var_poisson[0], (S + B) * g * g);
  EXPECT_DOUBLE_EQ(ex[0].var_rnoise[0], rn * rn * g * g);
  EXPECT_DOUBLE_EQ(ex[0].err[0], std::sqrt(model_var));
  EXPECT_EQ(ex[0].seed, 7u);
  std::printf("[ info ] source+background: mean/expected %.4f, var/model %.4f, std(SCI/ERR) %.4f\n",
              s.mean / (S * g), s.var / model_var, s.ratio_std);
}

TEST(Noise, BlankSkyUnitRatio) {
  auto ex = frames(6, 0.0);
  std::vector<ExposureCounts> c;
  for (const auto& e : ex) c.push_back(counts_from_sb(e, 3e-20, 6.5, 5.0));
  ASSERT_TRUE(apply_noise(ex, c, NoiseModel{}, Rng(11)).status.ok());
  const Stats s = stats(ex);
  EXPECT_NEAR(s.ratio_std, 1.0, 0.05);
  EXPECT_NEAR(s.mean, 0.0, 4.0 * std::sqrt((6.5 + 25.0) / 60000.0) * 3e-20);  // background subtracted
}

TEST(Noise, SwitchesAndNoiselessMode) {
  const double g = 2.0, S = 10.0, B = 5.0, rn = 3.0;
  {
    auto ex = frames(1, S * g);
    std::vector<ExposureCounts> c{counts_from_sb(ex[0], g, B, rn)};
    NoiseModel m;
    m.source_poisson = m.background_poisson = false;
    ASSERT_TRUE(apply_noise(ex, c, m, Rng(1)).status.ok());
    EXPECT_EQ(ex[0].var_poisson[3], 0.0);
    const Stats s = stats(ex);
    EXPECT_NEAR(s.var / (rn * rn * g * g), 1.0, 0.05);
  }
  {
    auto ex = frames(1, S * g);
    std::vector<ExposureCounts> c{counts_from_sb(ex[0], g, B, rn)};
    NoiseModel m;
    m.read_noise = false;
    ASSERT_TRUE(apply_noise(ex, c, m, Rng(1)).status.ok());
    EXPECT_EQ(ex[0].var_rnoise[3], 0.0);
    // Pure Poisson in electrons: SCI/g + B is an integer.
    const double n = ex[0].sci[5] / g + B;
    EXPECT_NEAR(n, std::round(n), 1e-9);
  }
  {
    auto ex = frames(1, S * g);
    std::vector<ExposureCounts> c{counts_from_sb(ex[0], g, B, rn)};
    NoiseModel m;
    m.noiseless = true;
    ASSERT_TRUE(apply_noise(ex, c, m, Rng(1)).status.ok());
    EXPECT_DOUBLE_EQ(ex[0].sci[7], S * g);
    EXPECT_DOUBLE_EQ(ex[0].err[7], std::sqrt(S + B + rn * rn) * g);
    EXPECT_EQ(ex[0].seed, 0u);
  }
}

TEST(Noise, DeterministicPerPointingWhateverTheThreads) {
  auto a = frames(5, 1.0), b = frames(5, 1.0);
  std::vector<ExposureCounts> c;
  for (const auto& e : a) c.push_back(counts_from_sb(e, 0.1, 3.0, 2.0));
  NoiseModel m1, m2;
  m1.threads = 1;
  m2.threads = 2;
  ASSERT_TRUE(apply_noise(a, c, m1, Rng(42)).status.ok());
  ASSERT_TRUE(apply_noise(b, c, m2, Rng(42)).status.ok());
  for (int q = 0; q < 5; ++q)
    EXPECT_EQ(0, std::memcmp(a[q].sci.data(), b[q].sci.data(), a[q].size() * sizeof(double)));
  // A subset of the exposures gets the same noise: the stream depends on the pointing index only.
  std::vector<Exposure> one{frames(5, 1.0)[3]};
  std::vector<ExposureCounts> c1{c[3]};
  ASSERT_TRUE(apply_noise(one, c1, m1, Rng(42)).status.ok());
  EXPECT_EQ(0, std::memcmp(one[0].sci.data(), a[3].sci.data(), one[0].size() * sizeof(double)));
}

TEST(Noise, BadInputIsAStatus) {
  auto ex = frames(2, 1.0);
  std::vector<ExposureCounts> c{counts_from_sb(ex[0], 1.0, 1.0, 1.0)};
  EXPECT_FALSE(apply_noise(ex, c, NoiseModel{}, Rng(1)).status.ok());
  c.push_back(counts_from_sb(ex[1], 1.0, 1.0, 1.0));
  c[1].background_e[4] = -1.0;
  const auto s = apply_noise(ex, c, NoiseModel{}, Rng(1));
  EXPECT_FALSE(s.status.ok());
  EXPECT_NE(s.status.message.find("pixel 4"), std::string::npos);
  NoiseModel bad;
  bad.threads = -1;
  EXPECT_THROW(bad.validate(), InvalidOptions);
}

}  // namespace
}  // namespace slitstep
