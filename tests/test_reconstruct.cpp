// Tests of instruments/reconstruct: identities of slit_stepping_model.md §5 on synthetic
// exposures built analytically (each row = the sky integrated over the row's open area,
// divided by the row's full area, i.e. the uniform-shutter calibration of §3).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>

#include "core/rng.hpp"
#include "instruments/reconstruct.hpp"
#include "sim/noise.hpp"
#if __has_include("instruments/observe.hpp")
#include "instruments/observe.hpp"
#define SLITSTEP_HAVE_OBSERVE 1
#endif

namespace slitstep {
namespace {

// Integral of the scene over an aperture-free sky rectangle [x0,x1]x[y0,y1] (arcsec).
using SceneIntegral = std::function<double(double, double, double, double)>;

SceneIntegral uniform_scene(double sb) {
  return [sb](double x0, double x1, double y0, double y1) { return sb * (x1 - x0) * (y1 - y0); };
}
// Circular Gaussian of total flux `flux` (SB unit x arcsec^2) at (xc, yc).
SceneIntegral gaussian_scene(double flux, double xc, double yc, double sigma) {
  return [=](double x0, double x1, double y0, double y1) {
    const double r = 1.0 / (std::sqrt(2.0) * sigma);
    const double fx = 0.5 * (std::erf((x1 - xc) * r) - std::erf((x0 - xc) * r));
    const double fy = 0.5 * (std::erf((y1 - yc) * r) - std::erf((y0 - yc) * r));
    return flux * fx * fy;
  };
}

struct SynthSpec {
  int nu = 60;
  int nv = 17;
  double y0 = -0.8;
  std::vector<int> gap_columns;     // columns flagged kDqChipGap
  bool nonlinear_wavelength = true; // G140H-like slowly varying dispersion
  double wl_shift_px = 0.0;         // shift of the wavelength solution (resampling path)
};

std::vector<double> g140h_like_wavelengths(int nu, bool nonlinear, double shift_px) {
  std::vector<double> w(nu);
  for (int u = 0; u < nu; ++u) {
    const double x = u + shift_px;
    w[u] = 1.2 + 2.38e-4 * x - (nonlinear ? 1.0e-8 * x * x : 0.0);
  }
  return w;
}

// Noiseless exposures of a wavelength-independent scene.
std::vector<Exposure> make_exposures(const SceneIntegral& scene, const SlitletConfig& sl, const PatternConfig& pat,
                                     const SynthSpec& spec) {
  std::vector<Exposure> out;
  const double wx = sl.shutter.open_x_arcsec, hy = 0.5 * sl.shutter.open_y_arcsec, py = 0.1;
  for (const Pointing& p : make_pointings(pat)) {
    Exposure e;
    e.pointing = p;
    e.resize(spec.nv, spec.nu);
    e.y0_arcsec = spec.y0;
    e.pixel_y_arcsec = py;
    e.wavelength_um = g140h_like_wavelengths(spec.nu, spec.nonlinear_wavelength, spec.wl_shift_px);
    for (int v = 0; v < spec.nv; ++v) {
      const double r0 = spec.y0 + (v - 0.5) * py, r1 = r0 + py;
      double acc = 0.0;
      for (int k = 0; k < sl.n_shutters; ++k) {
        const double c = shutter_center_y_arcsec(sl, k);
        const double a = std::max(r0, c - hy), b = std::min(r1, c + hy);
        if (b > a)
          acc += scene(-0.5 * wx + p.offset_x_arcsec, 0.5 * wx + p.offset_x_arcsec, a + p.offset_y_arcsec,
                       b + p.offset_y_arcsec);
      }
      const double sb = acc / (wx * py);
      for (int u = 0; u < spec.nu; ++u) e.sci[e.index(v, u)] = sb;
    }
    for (int u : spec.gap_columns)
      for (int v = 0; v < spec.nv; ++v) e.dq[e.index(v, u)] |= kDqChipGap | kDqDoNotUse;
    out.push_back(std::move(e));
  }
  return out;
}

bool bit_identical(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

double std_of(const std::vector<double>& v) {
  const double m = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  double s = 0.0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}

TEST(Reconstruct, MedianVarianceFactorMatchesSimulation) {
  // Var(median of n N(0,1)) * n, by simulation (deterministic seed), vs the tabulated factor.
  Rng rng(12345);
  const int trials = 100000;
  for (int n : {2, 3, 4, 5, 6, 7, 9, 30}) {
    std::vector<double> x(n);
    double s2 = 0.0;
    for (int t = 0; t < trials; ++t) {
      for (auto& v : x) v = rng.normal();
      std::sort(x.begin(), x.end());
      const double med = (n % 2) ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
      s2 += med * med;
    }
    const double measured = n * s2 / trials;
    const double sigma_rel = std::sqrt(2.0 / trials);  // relative error of a variance estimate
    EXPECT_NEAR(measured / median_variance_factor(n), 1.0, 4.0 * sigma_rel) << "n = " << n;
    RecordProperty("median_factor_n" + std::to_string(n), std::to_string(measured));
  }
  EXPECT_DOUBLE_EQ(median_variance_factor(1), 1.0);
  EXPECT_NEAR(median_variance_factor(1000), kPi / 2, 3e-3);
}

TEST(Reconstruct, WindowedGridReproducesNonlinearCentres) {
  const auto c = g140h_like_wavelengths(3900, true, 0.0);
  double err = 0.0;
  const WavelengthGrid g = windowed_grid_from_centres(c, 0.01, &err);
  ASSERT_EQ(g.size(), c.size());
  double worst = 0.0;
  for (std::size_t k = 0; k < c.size(); ++k) worst = std::max(worst, std::abs(g.wavelength_um(k) - c[k]));
  EXPECT_LE(worst, 0.0101 * 2.38e-4);
  EXPECT_DOUBLE_EQ(worst, err);
  std::printf("[ info ] nonlinear 3900-px grid: %zu windows, max centre error %.3g um (%.4f px)\n",
              g.windows().size(), worst, worst / 2.3e-4);
  // An exactly linear grid stays one window.
  const auto lin = g140h_like_wavelengths(3900, false, 0.0);
  EXPECT_TRUE(windowed_grid_from_centres(lin, 0.01).is_linear());
}

TEST(Reconstruct, OptionsValidateNamesTheField) {
  ReconstructOptions o;
  o.combine = "average";
  try {
    o.validate();
    FAIL() << "no throw";
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("combine"), std::string::npos);
  }
  o = {};
  o.spaxel_arcsec = -1;
  EXPECT_THROW(o.validate(), InvalidOptions);
  o = {};
  EXPECT_EQ(o.fine_grid, "drop");         // drizzle drop of the row on the fine grid (MSA-3D: "interpolate")
  EXPECT_DOUBLE_EQ(o.drop_fraction, 0.5);
  EXPECT_EQ(o.spaxel_resample, "overlap");  // flux conserving (MSA-3D paper: "interpolated onto a new grid")
  o.fine_grid = "nearest";
  try {
    o.validate();
    FAIL() << "no throw";
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("fine_grid = 'nearest'"), std::string::npos) << e.what();
  }
  o = {};
  o.spaxel_resample = "drizzle";
  EXPECT_THROW(o.validate(), InvalidOptions);
  o = {};
  o.drop_fraction = 0.0;
  EXPECT_THROW(o.validate(), InvalidOptions);
  o.drop_fraction = 1.2;
  EXPECT_THROW(o.validate(), InvalidOptions);
  EXPECT_FALSE(reconstruct({}, SlitletConfig{}, PatternConfig{}, SkyFrame{}).status.ok());
}

class UniformTest : public ::testing::TestWithParam<std::string> {};

TEST_P(UniformTest, NoiselessUniformIsRecovered) {
  const SlitletConfig sl;
  const PatternConfig pat;
  SynthSpec spec;
  spec.gap_columns = {30, 31, 32, 33, 34};
  const double sb = 3.7e-18;
  const auto exps = make_exposures(uniform_scene(sb), sl, pat, spec);
  ReconstructOptions opt;
  opt.combine = GetParam();
  const auto r = reconstruct(exps, sl, pat, SkyFrame{}, opt);
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  const Cube& c = r.cube;
  EXPECT_EQ(c.nx(), 23);
  EXPECT_LE(r.max_wavelength_error_um, 0.01 * 2.4e-4);
  double maxdev = 0.0;
  std::size_t full = 0;
  for (int j = 0; j < c.ny(); ++j)
    for (int i = 0; i < c.nx(); ++i)
      for (std::size_t k = 0; k < c.nl(); ++k) {
        const std::size_t idx = c.index(i, j, k);
        const bool gap = k >= 30 && k <= 34;
        if (gap && c.dq[c.index(i, j, 0)] == 0) {  // covered spaxel, gap channel
          EXPECT_TRUE(c.dq[idx] & kDqChipGap) << i << " " << j << " " << k;
          EXPECT_TRUE(c.dq[idx] & kDqDoNotUse);
          continue;
        }
        if (gap || c.dq[idx] != 0) continue;
        ++full;
        maxdev = std::max(maxdev, std::abs(c.sci[idx] / sb - 1.0));
        EXPECT_GE(c.wmap[idx], 4.0 * opt.drop_fraction - 1e-9);  // "drop": ~drop_fraction of the 7 dithers
      }
  // Fully covered spaxels: the whole slitlet length (1.52") minus the ends, 9 columns.
  EXPECT_GT(full, static_cast<std::size_t>(23 * 14 * 55));
  EXPECT_LT(maxdev, 0.02);
  std::printf("[ info ] %s: uniform SB max relative deviation %.3g over %zu fully covered voxels\n",
              GetParam().c_str(), maxdev, full);
  RecordProperty("max_deviation", std::to_string(maxdev));
}

TEST_P(UniformTest, ResampledWavelengthGridStillUniform) {
  const SlitletConfig sl;
  const PatternConfig pat;
  SynthSpec spec;
  auto exps = make_exposures(uniform_scene(1.0), sl, pat, spec);
  // Shift the wavelength solution of the odd dithers by 0.3 px: forces the resampling path.
  for (auto& e : exps)
    if (e.pointing.dither % 2) e.wavelength_um = g140h_like_wavelengths(spec.nu, true, 0.3);
  ReconstructOptions opt;
  opt.combine = GetParam();
  const auto r = reconstruct(exps, sl, pat, SkyFrame{}, opt);
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  EXPECT_TRUE(r.wavelength_resampled);
  EXPECT_TRUE(r.cube.spectral.is_linear());
  double maxdev = 0.0;
  for (std::size_t p = 0; p < r.cube.size(); ++p)
    if (r.cube.dq[p] == 0) maxdev = std::max(maxdev, std::abs(r.cube.sci[p] - 1.0));
  EXPECT_LT(maxdev, 1e-9);
}

INSTANTIATE_TEST_SUITE_P(Combine, UniformTest, ::testing::Values("median", "mean"));

TEST(Reconstruct, BarOnlySpaxelsAreFlagged) {
  // One dither only: the sky behind the bars between shutters is seen by no open row.
  const SlitletConfig sl;
  PatternConfig pat;
  pat.dithers_y_arcsec = {0.0};
  SynthSpec spec;
  spec.nu = 8;
  const auto exps = make_exposures(uniform_scene(1.0), sl, pat, spec);
  const auto r = reconstruct(exps, sl, pat, SkyFrame{}, {});
  ASSERT_TRUE(r.status.ok());
  const Cube& c = r.cube;
  int flagged = 0;
  for (int j = 0; j < c.ny(); ++j) {
    const double y = c.spatial.y_arcsec(j);
    const bool in_bar = std::abs(std::abs(y) - 0.265) < 0.03;  // spaxel within the bar-only band
    for (int i = 0; i < c.nx(); ++i) {
      const auto f = c.dq[c.index(i, j, 0)];
      if (in_bar) {
        EXPECT_TRUE(f & kDqBarShadow) << "y = " << y;
        EXPECT_TRUE(f & kDqDoNotUse);
        EXPECT_FALSE(f & kDqNoCoverage);
        EXPECT_TRUE(std::isnan(c.sci[c.index(i, j, 0)]));
        ++flagged;
      }
      if (std::abs(y) < 0.1) {  // shutter centre: seen (by one dither: low coverage)
        EXPECT_FALSE(f & kDqDoNotUse) << "y = " << y;
        EXPECT_TRUE(f & kDqLowCoverage);
      }
    }
  }
  EXPECT_GT(flagged, 0);
  // With the full MSA-3D pattern the same band is filled by the other dithers.
  const PatternConfig full;
  const auto r2 = reconstruct(make_exposures(uniform_scene(1.0), sl, full, spec), sl, full, SkyFrame{}, {});
  for (int j = 0; j < r2.cube.ny(); ++j)
    if (std::abs(std::abs(r2.cube.spatial.y_arcsec(j)) - 0.265) < 0.03) {
      EXPECT_EQ(r2.cube.dq[r2.cube.index(11, j, 0)], 0u);
    }
}

struct NoiseRun {
  std::vector<Exposure> exps;
  double exp_ratio_std = 0.0;
};

NoiseRun blank_sky(std::uint64_t seed, int threads, int nu) {
  const SlitletConfig sl;
  const PatternConfig pat;
  SynthSpec spec;
  spec.nu = nu;
  spec.gap_columns = {10, 11};
  NoiseRun run;
  run.exps = make_exposures(uniform_scene(0.0), sl, pat, spec);
  std::vector<ExposureCounts> counts;
  for (const auto& e : run.exps) counts.push_back(counts_from_sb(e, 2.5e-20, 7.0, 5.0));
  NoiseModel nm;
  nm.threads = threads;
  const auto s = apply_noise(run.exps, counts, nm, Rng(seed));
  EXPECT_TRUE(s.status.ok()) << s.status.message;
  std::vector<double> ratio;
  for (const auto& e : run.exps)
    for (std::size_t p = 0; p < e.size(); ++p)
      if (!(e.dq[p] & kDqDoNotUse)) ratio.push_back(e.sci[p] / e.err[p]);
  run.exp_ratio_std = std_of(ratio);
  return run;
}

TEST(Reconstruct, BlankSkyNoiseIsUnitInExposuresAndCube) {
  const auto run = blank_sky(2136, 0, 160);
  EXPECT_NEAR(run.exp_ratio_std, 1.0, 0.05);
  std::printf("[ info ] exposures: std(SCI/ERR) = %.4f\n", run.exp_ratio_std);
  // Every fine-grid / spaxel method: interpolation correlates neighbouring fine pixels (they share
  // detector rows) and spaxels; ERR propagates those covariances exactly (mean) or with the
  // median's efficiency factor.
  const char* const fine_grids[] = {"drop", "interpolate", "replicate"};
  const char* const resamples[] = {"interpolate", "overlap"};
  for (const char* comb : {"median", "mean"})
    for (const char* fg : fine_grids)
      for (const char* sr : resamples) {
        ReconstructOptions opt;
        opt.combine = comb;
        opt.fine_grid = fg;
        opt.spaxel_resample = sr;
        const auto r = reconstruct(run.exps, SlitletConfig{}, PatternConfig{}, SkyFrame{}, opt);
        ASSERT_TRUE(r.status.ok());
        std::vector<double> ratio;
        for (std::size_t p = 0; p < r.cube.size(); ++p)
          if (r.cube.dq[p] == 0) ratio.push_back(r.cube.sci[p] / r.cube.err[p]);
        ASSERT_GT(ratio.size(), 10000u);
        const double sd = std_of(ratio);
        EXPECT_NEAR(sd, 1.0, 0.05) << comb << " " << fg << " " << sr;
        std::printf("[ info ] cube (%s, fine %s, spaxels %s): std(SCI/ERR) = %.4f over %zu voxels, %zu outliers "
                    "rejected\n", comb, fg, sr, sd, ratio.size(), r.n_outliers_rejected);
      }
}

TEST(Reconstruct, SameSeedBitIdenticalForOneAndTwoThreads) {
  const auto a = blank_sky(99, 1, 40);
  const auto b = blank_sky(99, 2, 40);
  ASSERT_EQ(a.exps.size(), b.exps.size());
  for (std::size_t q = 0; q < a.exps.size(); ++q) {
    EXPECT_TRUE(bit_identical(a.exps[q].sci, b.exps[q].sci));
    EXPECT_TRUE(bit_identical(a.exps[q].err, b.exps[q].err));
    EXPECT_EQ(a.exps[q].seed, 99u);
  }
  for (const std::string comb : {"median", "mean"}) {
    ReconstructOptions o1, o2;
    o1.combine = o2.combine = comb;
    o1.threads = 1;
    o2.threads = 2;
    omp_set_num_threads(1);
    const auto r1 = reconstruct(a.exps, SlitletConfig{}, PatternConfig{}, SkyFrame{}, o1);
    omp_set_num_threads(2);
    const auto r2 = reconstruct(a.exps, SlitletConfig{}, PatternConfig{}, SkyFrame{}, o2);
    EXPECT_TRUE(bit_identical(r1.cube.sci, r2.cube.sci));
    EXPECT_TRUE(bit_identical(r1.cube.err, r2.cube.err));
    EXPECT_TRUE(bit_identical(r1.cube.wmap, r2.cube.wmap));
    EXPECT_EQ(r1.cube.dq, r2.cube.dq);
  }
  const auto c = blank_sky(100, 2, 40);
  EXPECT_FALSE(bit_identical(a.exps[0].sci, c.exps[0].sci));
}

// Compact source (a point source seen through a Gaussian PSF of sigma 0.03", FWHM 0.07").
struct Profile {
  double flux = 0.0, fwhm_x = 0.0, fwhm_y = 0.0;
};

double fwhm_of(const std::vector<double>& prof, double pix) {
  const auto it = std::max_element(prof.begin(), prof.end());
  const double half = 0.5 * *it;
  const int p = static_cast<int>(it - prof.begin());
  int a = p, b = p;
  while (a > 0 && prof[a - 1] > half) --a;
  while (b + 1 < static_cast<int>(prof.size()) && prof[b + 1] > half) ++b;
  const double left = (a > 0) ? (a - 1) + (half - prof[a - 1]) / (prof[a] - prof[a - 1]) : a;
  const double right = (b + 1 < static_cast<int>(prof.size())) ? b + (prof[b] - half) / (prof[b] - prof[b + 1]) : b;
  return (right - left) * pix;
}

Profile compact_source(const std::string& comb, double xc, double yc, const std::string& fine_grid = "",
                       const std::string& spaxel_resample = "") {
  const SlitletConfig sl;
  const PatternConfig pat;
  SynthSpec spec;
  spec.nu = 4;
  const double flux = 1.0e-17;
  const auto exps = make_exposures(gaussian_scene(flux, xc, yc, 0.03), sl, pat, spec);
  ReconstructOptions opt;
  opt.combine = comb;
  if (!fine_grid.empty()) opt.fine_grid = fine_grid;
  if (!spaxel_resample.empty()) opt.spaxel_resample = spaxel_resample;
  const auto r = reconstruct(exps, sl, pat, SkyFrame{}, opt);
  EXPECT_TRUE(r.status.ok());
  const Cube& c = r.cube;
  Profile out;
  std::vector<double> px(c.nx(), 0.0), py(c.ny(), 0.0);
  for (int j = 0; j < c.ny(); ++j)
    for (int i = 0; i < c.nx(); ++i) {
      const double v = c.sci[c.index(i, j, 1)];
      if (!std::isfinite(v)) continue;
      out.flux += v * c.spatial.pixel_area_arcsec2();
      px[i] += v;
      py[j] += v;
    }
  out.flux /= flux;
  out.fwhm_x = fwhm_of(px, c.spatial.pixel_arcsec);
  out.fwhm_y = fwhm_of(py, c.spatial.pixel_arcsec);
  return out;
}

// The along-slit resolution of the four fine-grid / spaxel methods (synthetic rows: PSF-only
// source integrated over the row area, no spectrograph kernel), averaged over 8 sub-spaxel phases.
// What each method does to the exposures' sampled profile (box of the 0.1" row, already in the
// data): "replicate" convolves it once more with the 0.1" row (phase-averaged variance 1/12 px^2),
// "interpolate" with a triangle of half-width one row (1/6 px^2, wider); "overlap" spaxels add the
// 0.08" box, "interpolate" spaxels only the 0.025" fine pitch.
TEST(Reconstruct, FineGridAndSpaxelMethodsResolutionAndFlux) {
  struct Row { std::string fg, sr; double fx = 0, fy = 0, cx = 0, flux = 0, flux_min = 9, flux_max = 0; };
  std::vector<Row> rows;
  for (const std::string fg : {"interpolate", "replicate", "drop"})
    for (const std::string sr : {"interpolate", "overlap"}) {
      Row r{fg, sr};
      const int nphase = 8;
      for (int q = 0; q < nphase; ++q) {
        const Profile p = compact_source("median", 0.1 * q / nphase, 0.08 * q / nphase, fg, sr);
        r.fx += p.fwhm_x / nphase;
        r.fy += p.fwhm_y / nphase;
        r.flux += p.flux / nphase;
        r.flux_min = std::min(r.flux_min, p.flux);
        r.flux_max = std::max(r.flux_max, p.flux);
      }
      r.cx = compact_source("median", 0.0, 0.0, fg, sr).fwhm_x;
      std::printf("[ info ] median, fine %s, spaxels %s: FWHM x %.3f\" (column-centred %.3f), y %.3f\" "
                  "(phase-averaged); flux %.3f (%.3f-%.3f)\n", fg.c_str(), sr.c_str(), r.fx, r.cx, r.fy, r.flux,
                  r.flux_min, r.flux_max);
      EXPECT_NEAR(r.cx, 0.2, 0.03) << fg << " " << sr;
      // interpolation is not flux conserving for a compact source (phase dependent), overlap is
      // to the median's bias; on average both are
      EXPECT_NEAR(r.flux, 1.0, 0.05) << fg << " " << sr;
      EXPECT_NEAR(r.flux_min, 1.0, 0.08) << fg << " " << sr;
      EXPECT_NEAR(r.flux_max, 1.0, 0.08) << fg << " " << sr;
      rows.push_back(r);
    }
  // rows: 0 interp/interp (MSA-3D), 1 interp/overlap, 2 replicate/interp, 3 replicate/overlap,
  // 4 drop/interp, 5 drop/overlap (default): the default conserves flux at every phase
  EXPECT_NEAR(rows[5].flux_min, 1.0, 0.05);
  EXPECT_NEAR(rows[5].flux_max, 1.0, 0.05);
  EXPECT_LT(rows[5].fy, rows[1].fy);  // the drop blurs less than linear interpolation
  EXPECT_LT(rows[2].fy, rows[0].fy);  // replication blurs less than linear interpolation
  EXPECT_LT(rows[3].fy, rows[1].fy);
  EXPECT_LT(rows[0].fy, rows[1].fy);  // point-sampled spaxels blur less than area-averaged ones
  EXPECT_LT(rows[2].fy, rows[3].fy);
  EXPECT_LT(rows[0].fx, rows[1].fx + 1e-9);
}

TEST(Reconstruct, CompactSourceFluxAndResolution) {
  // Flux at a few positions (centred, off-centre, near a bar); resolution element = the
  // half-maximum width of the collapsed profiles, averaged over sub-spaxel phases of the
  // source (a single phase is biased by the 0.08" pixelisation).
  for (const std::string comb : {"median", "mean"}) {
    for (auto [xc, yc] : {std::pair{0.0, 0.0}, std::pair{0.05, 0.12}, std::pair{-0.23, -0.31}}) {
      const Profile p = compact_source(comb, xc, yc);
      std::printf("[ info ] %s, source at (%.2f, %.2f): flux ratio %.4f\n", comb.c_str(), xc, yc, p.flux);
      EXPECT_NEAR(p.flux, 1.0, 0.05) << comb << " " << xc << " " << yc;  // defaults: drop + overlap
    }
    double fx = 0.0, fy = 0.0, fx_max = 0.0, fy_max = 0.0;
    const int nphase = 8;
    for (int q = 0; q < nphase; ++q) {
      const double phase = 0.08 * q / nphase;
      const Profile p = compact_source(comb, 0.1 * q / nphase, phase);  // x phases within a 0.2" column
      fx += p.fwhm_x / nphase;
      fy += p.fwhm_y / nphase;
      fx_max = std::max(fx_max, p.fwhm_x);
      fy_max = std::max(fy_max, p.fwhm_y);
    }
    std::printf("[ info ] %s: resolution element FWHM x %.3f\" (max %.3f), y %.3f\" (max %.3f), PSF FWHM 0.071\"\n",
                comb.c_str(), fx, fx_max, fy, fy_max);
    // A source centred in a column gives the column width; straddling two columns, up to twice
    // that: the phase average is the honest number.
    const Profile centred = compact_source(comb, 0.0, 0.0);
    std::printf("[ info ] %s: column-centred source FWHM x %.3f\", y %.3f\"\n", comb.c_str(), centred.fwhm_x,
                centred.fwhm_y);
    EXPECT_NEAR(centred.fwhm_x, 0.2, 0.03) << comb;
    EXPECT_LT(fx, 0.26) << comb;
    // PSF-only synthetic source (no spectrograph kernel); the real profile is wider (observe
    // test below, and Simulate.PointSourceResolutionElement).
    EXPECT_LT(fy, 0.16) << comb;
  }
}

TEST(Reconstruct, ShiftByOneStepShiftsTheCubeByOneColumnRange) {
  // Identity 5.4 on the mean (linear) path: a source moved by +0.2" in x moves by 2.5 spaxels,
  // so compare flux-weighted centroids.
  auto centroid_x = [](double xc) {
    const SlitletConfig sl;
    const PatternConfig pat;
    SynthSpec spec;
    spec.nu = 3;
    ReconstructOptions o;
    o.combine = "mean";
    const auto r = reconstruct(make_exposures(gaussian_scene(1.0, xc, 0.0, 0.03), sl, pat, spec), sl, pat,
                               SkyFrame{}, o);
    double s = 0.0, sx = 0.0;
    for (int j = 0; j < r.cube.ny(); ++j)
      for (int i = 0; i < r.cube.nx(); ++i) {
        const double v = r.cube.sci[r.cube.index(i, j, 0)];
        if (std::isfinite(v)) { s += v; sx += v * r.cube.spatial.x_arcsec(i); }
      }
    return sx / s;
  };
  EXPECT_NEAR(centroid_x(0.2) - centroid_x(0.0), 0.2, 1e-6);
}


#ifdef SLITSTEP_HAVE_OBSERVE
// Through the real observe operator (PSF, slit-width/LSF coupling, bars, gap): a compact source
// with a flat continuum in a short wavelength window.
TEST(Reconstruct, ObservedPointSourceFluxAndResolution) {
  const NirspecConfig cfg;
  const SpatialGrid sg = SpatialGrid::centred(100, 120, 0.02);
  const WavelengthGrid wg = WavelengthGrid::linear(1.40, 2.0e-4, 40);
  const NirspecInstrument inst(cfg, sg, wg);
  Cube sky = Cube::zeros(sg, wg);
  const double sigma = 0.01, sb_peak = 1e-16;  // Gaussian source, nearly a point
  for (int j = 0; j < sg.ny; ++j)
    for (int i = 0; i < sg.nx; ++i) {
      const double x = sg.x_arcsec(i), y = sg.y_arcsec(j);
      const double v = sb_peak * std::exp(-0.5 * (x * x + y * y) / (sigma * sigma));
      for (std::size_t k = 0; k < wg.size(); ++k) sky.sci[sky.index(i, j, k)] = v;
    }
  const double f_in = integrated_flux(sky);
  const auto exps = observe(inst, sky);
  for (const std::string comb : {"median", "mean"}) {
    ReconstructOptions o;
    o.combine = comb;
    const auto r = reconstruct(exps, cfg.slitlet, cfg.pattern, SkyFrame{}, o);
    ASSERT_TRUE(r.status.ok()) << r.status.message;
    const Cube& c = r.cube;
    double f_out = 0.0;
    std::vector<double> px(c.nx(), 0.0), py(c.ny(), 0.0);
    for (int j = 0; j < c.ny(); ++j)
      for (int i = 0; i < c.nx(); ++i)
        for (std::size_t k = 0; k < c.nl(); ++k) {
          const double l = c.spectral.wavelength_um(k);
          if (l < 1.395 || l > 1.413) continue;
          const double v = c.sci[c.index(i, j, k)];
          if (!std::isfinite(v)) continue;
          f_out += v * c.spectral.width_um(k) * c.spatial.pixel_area_arcsec2();
          px[i] += v;
          py[j] += v;
        }
    const double fx = fwhm_of(px, c.spatial.pixel_arcsec), fy = fwhm_of(py, c.spatial.pixel_arcsec);
    std::printf("[ info ] observe + %s: flux ratio %.4f, FWHM x %.3f\", y %.3f\"\n", comb.c_str(), f_out / f_in, fx, fy);
    // defaults (drop + overlap): flux conserving
    EXPECT_NEAR(f_out / f_in, 1.0, 0.05) << comb;
    EXPECT_NEAR(fx, 0.2, 0.03) << comb;
    // Along the slit each exposure already carries the measured 1.28 px (0.128") profile of a
    // point source (PSF (x) kernel (x) row); the drop adds ~the 0.025" pitch, the overlap spaxels
    // the 0.08" box. One phase (source on a spaxel edge: the half-max width of the 0.08"
    // sampling is biased high); the acceptance measure is Simulate.PointSourceResolutionElement.
    EXPECT_LT(fy, 0.19) << comb;
  }
}
#endif

}  // namespace
}  // namespace slitstep
