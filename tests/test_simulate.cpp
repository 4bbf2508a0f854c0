// Tests of sim/simulate: the whole chain (render -> observe -> noise -> reconstruct) and the
// configuration it reads. Acceptance numbers are printed as "[ info ]" lines (docs/instruments.md §9).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/lines.hpp"
#include "instruments/observe.hpp"
#include "instruments/reconstruct.hpp"
#include "sim/simulate.hpp"

namespace slitstep {
namespace {

SimulationConfig config_from(const std::string& text) {
  const Config cfg = Config::from_string(text, "test.toml");
  SimulationConfig sc = read_simulation_config(cfg);
  cfg.check_all_used();
  return sc;
}

// A clump-only galaxy: one Gaussian clump, no disk light, no continuum, Halpha only.
std::string clump_config(double x, double y, double sigma, const std::string& extra = "") {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "seed = 7\n[galaxy]\nredshift = 1.0\nhalpha_flux_cgs = 0.0\new_halpha_rest_A = 0\n"
                "[[galaxy.clumps]]\nx_arcsec = %.6f\ny_arcsec = %.6f\nsigma_arcsec = %.6f\nhalpha_flux_cgs = 1e-17\n"
                "[render]\nlines = \"halpha\"\ncontinuum_windows = false\n[slitlet]\nshutter_i = 100\n",
                x, y, sigma);
  return buf + extra;
}

bool bit_identical(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

// Halpha flux in the cube (all finite voxels within the rendered window).
double cube_halpha_flux(const Cube& c, double lo_um, double hi_um) {
  double f = 0.0;
  for (int j = 0; j < c.ny(); ++j)
    for (int i = 0; i < c.nx(); ++i)
      for (std::size_t k = 0; k < c.nl(); ++k) {
        const double l = c.spectral.wavelength_um(k);
        if (l < lo_um || l > hi_um) continue;
        const double v = c.sci[c.index(i, j, k)];
        if (std::isfinite(v)) f += v * c.spectral.width_um(k) * c.spatial.pixel_area_arcsec2();
      }
  return f;
}

// ---- configuration ------------------------------------------------------------------------

TEST(SimulateConfig, DefaultsDeriveTheFieldOfViewFromPatternSlitletAndPsf) {
  const SimulationConfig sc = config_from("");
  EXPECT_TRUE(sc.fov_derived);
  // x: 0.8 + 0.1 + 4 FWHM(1.89 um) = 0.9 + 4 * 0.075 * 1.89/1.4 = 1.305 -> 2 * 66 px * 0.02
  EXPECT_NEAR(sc.scene.render.fov_x_arcsec, 2.64, 1e-9);
  // y: 0.225 + 0.53 + 0.23 + 0.405 = 1.39 -> 2 * 70 px
  EXPECT_NEAR(sc.scene.render.fov_y_arcsec, 2.80, 1e-9);
  EXPECT_EQ(sc.reconstruct.combine, "median");
  EXPECT_TRUE(sc.instrument.disperser.dispersion_table.empty());  // built-in table by default
  const SimulationConfig user = config_from("[render]\nfov_x_arcsec = 3.0\n");
  EXPECT_FALSE(user.fov_derived);
  EXPECT_DOUBLE_EQ(user.scene.render.fov_x_arcsec, 3.0);
  const SimulationConfig none = config_from("[instrument]\npsf_model = \"none\"\n");
  EXPECT_NEAR(none.scene.render.fov_x_arcsec, 1.8, 1e-9);
}

TEST(SimulateConfig, ReadsReconstructAndNoiseTablesAndRefusesBadValues) {
  const SimulationConfig sc = config_from(
      "[reconstruct]\ncombine = \"mean\"\nclip_sigma = 4\nfine_factor = 2\nspaxel_arcsec = 0.1\n"
      "min_row_open_fraction = 0\nfine_grid = \"interpolate\"\ndrop_fraction = 0.7\nspaxel_resample = \"interpolate\"\n"
      "[noise]\nread_noise = false\nnoiseless = true\n");
  EXPECT_EQ(sc.reconstruct.combine, "mean");
  EXPECT_DOUBLE_EQ(sc.reconstruct.clip_sigma, 4.0);
  EXPECT_EQ(sc.reconstruct.fine_factor, 2);
  EXPECT_DOUBLE_EQ(sc.reconstruct.spaxel_arcsec, 0.1);
  EXPECT_EQ(sc.reconstruct.fine_grid, "interpolate");
  EXPECT_DOUBLE_EQ(sc.reconstruct.drop_fraction, 0.7);
  EXPECT_EQ(sc.reconstruct.spaxel_resample, "interpolate");
  EXPECT_EQ(config_from("").reconstruct.fine_grid, "drop");
  EXPECT_EQ(config_from("").reconstruct.spaxel_resample, "overlap");
  EXPECT_THROW(config_from("[reconstruct]\nfine_grid = \"nearest\"\n"), InputError);
  EXPECT_THROW(config_from("[reconstruct]\ndrop_fraction = 0\n"), InputError);
  EXPECT_FALSE(sc.noise.read_noise);
  EXPECT_TRUE(sc.noise.noiseless);
  try {
    config_from("[reconstruct]\n\ncombine = \"mode\"\n");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("test.toml:3: reconstruct.combine = "), std::string::npos) << e.what();
  }
  EXPECT_THROW(config_from("[noise]\nshot_noise = true\n"), InputError);  // unknown key
  EXPECT_THROW(config_from("[reconstruct]\nfine_factor = 0\n"), InputError);
}

TEST(SimulateConfig, RefusesAModelWhoseHalphaAndNiiAreOutsideTheBand) {
  try {
    config_from("[galaxy]\nredshift = 2.5\n");
    FAIL();
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("test.toml:2: galaxy.redshift = 2.5"), std::string::npos) << m;
    EXPECT_NE(m.find("0.97-1.89 um"), std::string::npos) << m;
    EXPECT_NE(m.find("2.298"), std::string::npos) << m;  // Halpha at 2.298 um
  }
  // z = 1.88: Halpha (1.8905 um) just outside, [NII]6548 (1.8864) inside: accepted
  EXPECT_NO_THROW(config_from("[galaxy]\nredshift = 1.875\n"));
}

TEST(Simulate, ReportsLinesPartlyOrWhollyOutsideTheBand) {
  // z = 0.996: Hbeta at 0.9706 um sits on the blue edge of the band (its window is partly out).
  SimulationConfig sc = config_from("[galaxy]\nredshift = 0.996\nhalpha_flux_cgs = 1e-17\n[render]\nlines = \"hbeta,halpha\"\n"
                                    "continuum_windows = false\n[pattern]\nsteps_x_arcsec = [0.0]\n"
                                    "dithers_y_arcsec = [0.0]\n");
  SimulateOptions o;
  o.noiseless = true;
  const SimulationResult r = simulate(sc, o);
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  bool hbeta_noted = false;
  for (const auto& n : r.notes) hbeta_noted |= n.find("hbeta") != std::string::npos && n.find("band") != std::string::npos;
  EXPECT_TRUE(hbeta_noted);
  for (const auto& c : r.lines) {
    if (c.line == LineId::kHbeta) {
      EXPECT_LT(c.fraction_in_band, 1.0);
      EXPECT_GT(c.fraction_in_band, 0.0);
    }
    if (c.line == LineId::kHalpha) {
      EXPECT_DOUBLE_EQ(c.fraction_in_band, 1.0);
    }
  }
  for (const auto& n : r.notes) std::printf("[ info ] note: %s\n", n.c_str());
}

// ---- acceptance: flux, uniform surface brightness, resolution, determinism ----------------

TEST(Simulate, CompactSourceFluxIsRecovered) {
  // Identity slit_stepping_model.md §5.2, acceptance (a): the default reconstruction (drop +
  // median/mean + overlap spaxels) conserves a compact source's flux within 5 %. MSA-3D's literal
  // method (fine grid and spaxels interpolated) point-samples the peaked profile at 0.08" centres
  // incommensurate with the 0.2" columns: its flux depends on the phase (+-7 %); it is an option,
  // its documented behaviour is bounded here, not the acceptance point.
  struct Case { const char* comb; const char* fine; const char* resample; double tol; };
  for (auto [x, y] : {std::pair{0.0, 0.0}, std::pair{0.05, 0.12}, std::pair{-0.27, -0.31}}) {
    for (const Case c : {Case{"median", "drop", "overlap", 0.05}, Case{"mean", "drop", "overlap", 0.05},
                         Case{"median", "interpolate", "interpolate", 0.08}}) {
      SimulationConfig sc = config_from(clump_config(x, y, 0.02, std::string("[reconstruct]\ncombine = \"") + c.comb + "\"\n"));
      EXPECT_EQ(sc.reconstruct.fine_grid, "drop");  // the default
      sc.reconstruct.fine_grid = c.fine;
      sc.reconstruct.spaxel_resample = c.resample;
      SimulateOptions o;
      o.noiseless = true;
      const SimulationResult r = simulate(sc, o);
      ASSERT_TRUE(r.status.ok()) << r.status.message;
      const double lha = observed_wavelength_um(LineId::kHalpha, 1.0);
      const double f = cube_halpha_flux(r.reconstruct.cube, lha - 0.01, lha + 0.01);
      const double truth = r.render.line_flux_total_cgs[static_cast<int>(LineId::kHalpha)];
      std::printf("[ info ] compact source (sigma 0.02\") at (%+.2f, %+.2f), %s, fine %s, spaxels %s: cube flux / "
                  "true flux = %.4f (sky cube holds %.5f)\n", x, y, c.comb, c.fine, c.resample, f / truth,
                  r.render.line_flux_fov_cgs[static_cast<int>(LineId::kHalpha)] / truth);
      EXPECT_NEAR(f / truth, 1.0, c.tol) << x << " " << y << " " << c.comb << " " << c.resample;
    }
  }
}

TEST(Simulate, UniformSurfaceBrightnessIsRecoveredWithin2Percent) {
  SimulationConfig sc = config_from("");
  const FieldOfView fov = required_field_of_view(sc.instrument, 0.02);
  const SpatialGrid sg = SpatialGrid::centred(static_cast<int>(std::lround(fov.x_arcsec / 0.02)),
                                              static_cast<int>(std::lround(fov.y_arcsec / 0.02)), 0.02);
  const WavelengthGrid wg = WavelengthGrid::linear(1.40, 2.0e-4, 100);
  Cube sky = Cube::zeros(sg, wg);
  const double sb = 3e-16;
  std::fill(sky.sci.begin(), sky.sci.end(), sb);
  for (const char* comb : {"median", "mean"}) {
    sc.reconstruct.combine = comb;
    SimulateOptions o;
    o.noiseless = true;
    const SimulationResult r = observe_sky(sky, sc, o);
    ASSERT_TRUE(r.status.ok()) << r.status.message;
    const Cube& c = r.reconstruct.cube;
    double worst = 0.0;
    std::size_t n = 0;
    for (std::size_t p = 0; p < c.size(); ++p) {
      const double l = c.spectral.wavelength_um(p % c.nl());
      if (l < 1.403 || l > 1.417 || c.dq[p] != 0) continue;
      worst = std::max(worst, std::abs(c.sci[p] / sb - 1.0));
      ++n;
    }
    std::printf("[ info ] uniform SB through the full chain (%s): max |cube/input - 1| = %.2e over %zu fully covered "
                "voxels (%d x %d spaxels)\n", comb, worst, n, c.nx(), c.ny());
    // Rows next to a bar lose ~2-3 % of a uniform source to the cross-dispersion kernel (light
    // spilled onto the bar); observe flags them kDqBarShadow (instrument.bar_edge_tolerance, 1 %),
    // so they are not combined and ~80 % of the 23 x 30 x 36 voxels stay fully covered.
    EXPECT_GT(n, 18000u);
    EXPECT_LT(worst, 0.02) << comb;
  }
}

// Collapsed Halpha profiles (x, y) of a point source (clump sigma 0.003") in the cube, with the
// profile normalised to unit sum and positions relative to the source.
struct Profiles {
  std::vector<std::pair<double, double>> x, y;
};

Profiles collapsed(const Cube& c, double xs, double ys) {
  const double lha = observed_wavelength_um(LineId::kHalpha, 1.0);
  std::vector<double> px(c.nx(), 0.0), py(c.ny(), 0.0);
  for (int j = 0; j < c.ny(); ++j)
    for (int i = 0; i < c.nx(); ++i)
      for (std::size_t k = 0; k < c.nl(); ++k) {
        const double l = c.spectral.wavelength_um(k);
        const double v = c.sci[c.index(i, j, k)];
        if (l < lha - 0.004 || l > lha + 0.004 || !std::isfinite(v)) continue;
        px[i] += v;
        py[j] += v;
      }
  Profiles p;
  double sx = 0.0, sy = 0.0;
  for (double v : px) sx += v;
  for (double v : py) sy += v;
  for (int i = 0; i < c.nx(); ++i) p.x.push_back({c.spatial.x_arcsec(i) - xs, px[i] / sx});
  for (int j = 0; j < c.ny(); ++j) p.y.push_back({c.spatial.y_arcsec(j) - ys, py[j] / sy});
  return p;
}

// Half-maximum width of a profile given as (position, value) points, sorted by position;
// linear between neighbouring points.
double fwhm_points(std::vector<std::pair<double, double>> pts) {
  std::sort(pts.begin(), pts.end());
  std::vector<double> pos, val;
  for (const auto& [x, v] : pts) {
    pos.push_back(x);
    val.push_back(v);
  }
  const int p = static_cast<int>(std::max_element(val.begin(), val.end()) - val.begin());
  const double half = 0.5 * val[p];
  int a = p, b = p;
  while (a > 0 && val[a - 1] > half) --a;
  while (b + 1 < static_cast<int>(val.size()) && val[b + 1] > half) ++b;
  const double left = a > 0 ? pos[a - 1] + (half - val[a - 1]) / (val[a] - val[a - 1]) * (pos[a] - pos[a - 1]) : pos[a];
  const double right =
      b + 1 < static_cast<int>(val.size()) ? pos[b] + (val[b] - half) / (val[b] - val[b + 1]) * (pos[b + 1] - pos[b]) : pos[b];
  return right - left;
}

struct Resolution {
  double fx = 0.0, fy = 0.0;
};

Resolution fwhm(const Profiles& p) { return {fwhm_points(p.x), fwhm_points(p.y)}; }

// A point source through the full chain (noiseless) at (x, y); the cubes of several
// reconstruction methods (fine_grid, spaxel_resample) from the same exposures.
std::vector<Profiles> point_source_profiles(double x, double y, const std::vector<std::pair<std::string, std::string>>& methods,
                                            const std::string& extra = "") {
  SimulationConfig sc = config_from(clump_config(x, y, 0.003, extra));
  SimulateOptions o;
  o.noiseless = true;
  const SimulationResult r = simulate(sc, o);
  EXPECT_TRUE(r.status.ok()) << r.status.message;
  std::vector<Profiles> out;
  for (const auto& [fg, sr] : methods) {
    ReconstructOptions ro = sc.reconstruct;
    if (!fg.empty()) ro.fine_grid = fg;
    if (!sr.empty()) ro.spaxel_resample = sr;
    const ReconstructResult rr = reconstruct(r.exposures, sc.instrument.slitlet, sc.instrument.pattern, SkyFrame{}, ro);
    EXPECT_TRUE(rr.status.ok()) << rr.status.message;
    out.push_back(collapsed(rr.cube, x, y));
  }
  return out;
}

TEST(Simulate, PointSourceResolutionElement) {
  // Each exposure carries the measured 1.28 px (0.128") point profile (PSF (x) spectrograph
  // kernel (x) the 0.1" row; msaexp fwhm_data, M). The default reconstruction (fine_grid "drop",
  // drop_fraction 0.5, median, "overlap" spaxels) puts each row only on the 0.05" of fine pixels
  // around its centre: the 7 dithers (0.075" = 3 fine pixels apart) sample every 0.025" phase,
  // so the fine grid carries the 0.128" profile (+ the 0.025" pitch) instead of the profile
  // convolved with the 0.1" row a second time (replicate) or with a triangle of half-width one
  // row (MSA-3D's linear interpolation); the overlap spaxels add the 0.08" box.
  // Three measures: (1) centred: source at a column centre and a spaxel centre (x = 0,
  // y = 0.04"); (2) the cube's effective PSF: the profiles of nph sub-spaxel phases (x within a
  // 0.2" column, y within a spaxel) stacked relative to the true source position (sampled every
  // 0.08"/nph), its FWHM; (3) the mean of the single-phase half-max widths (biased high by the
  // 0.08" sampling: a source on a spaxel edge spreads over two equal spaxels).
  const std::vector<std::pair<std::string, std::string>> methods = {
      {"", ""}, {"interpolate", "interpolate"}, {"replicate", "overlap"}};
  const char* const names[] = {"default (drop 0.5 + median + overlap)", "MSA-3D literal (interpolate/interpolate)",
                               "replicate/overlap"};
  const int nph = 4;
  std::vector<Resolution> centred(methods.size()), naive(methods.size()), epsf(methods.size());
  std::vector<Profiles> stacked(methods.size());
  const std::vector<Profiles> c0 = point_source_profiles(0.0, 0.04, methods);
  for (std::size_t m = 0; m < methods.size(); ++m) centred[m] = fwhm(c0[m]);
  for (int q = 0; q < nph; ++q) {
    const std::vector<Profiles> p = point_source_profiles(0.1 * q / nph, 0.08 * q / nph, methods);
    for (std::size_t m = 0; m < methods.size(); ++m) {
      const Resolution r = fwhm(p[m]);
      naive[m].fx += r.fx / nph;
      naive[m].fy += r.fy / nph;
      stacked[m].x.insert(stacked[m].x.end(), p[m].x.begin(), p[m].x.end());
      stacked[m].y.insert(stacked[m].y.end(), p[m].y.begin(), p[m].y.end());
    }
  }
  for (std::size_t m = 0; m < methods.size(); ++m) {
    epsf[m] = fwhm(stacked[m]);
    std::printf("[ info ] point source, full chain, %s: FWHM along dispersion %.3f\" (centred) / %.3f\" (effective "
                "PSF, %d phases) / %.3f\" (mean single-phase); along the slit %.3f\" / %.3f\" / %.3f\"\n",
                names[m], centred[m].fx, epsf[m].fx, nph, naive[m].fx, centred[m].fy, epsf[m].fy, naive[m].fy);
  }
  // Acceptance (b) for the default: ~0.2" along the dispersion (one 0.2" column per step),
  // < 0.15" along the slit (the 0.128" exposure profile (x) the 0.08" spaxel box ~ 0.147").
  // Along x the column is the response: the stacked effective PSF adds the source's spread of
  // positions within the column (0-0.075" here, 0.238"), so x uses the centred and the mean
  // single-phase widths; along y the effective PSF is the phase-independent measure (the mean
  // single-phase width, 0.160", carries the 0.08" sampling bias; printed, not asserted).
  EXPECT_NEAR(centred[0].fx, 0.2, 0.03);
  EXPECT_NEAR(naive[0].fx, 0.2, 0.03);
  EXPECT_LT(centred[0].fy, 0.15);
  EXPECT_LT(epsf[0].fy, 0.15);
  // MSA-3D's literal interpolation blurs more (triangle of half-width one row on the profile).
  EXPECT_GT(epsf[1].fy, epsf[0].fy + 0.01);
  EXPECT_GT(epsf[1].fy, 0.15);
  // Replication's extra row box is largely removed by the median, which picks the dithers whose
  // row centres lie nearest the fine pixel: close to the drop.
  EXPECT_GE(epsf[2].fy, epsf[0].fy - 0.002);
}

TEST(Simulate, SameSeedGivesBitIdenticalProductsForOneAndTwoThreads) {
  const SimulationConfig sc = config_from(clump_config(0.05, 0.1, 0.05));
  auto run = [&](int threads, std::uint64_t seed) {
    omp_set_num_threads(threads);
    SimulateOptions o;
    o.threads = threads;
    o.seed = seed;
    return simulate(sc, o);
  };
  const SimulationResult a = run(1, 2136), b = run(2, 2136);
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  ASSERT_EQ(a.exposures.size(), 63u);
  ASSERT_EQ(a.exposures.size(), b.exposures.size());
  for (std::size_t q = 0; q < a.exposures.size(); ++q) {
    EXPECT_TRUE(bit_identical(a.exposures[q].sci, b.exposures[q].sci)) << q;
    EXPECT_TRUE(bit_identical(a.exposures[q].err, b.exposures[q].err)) << q;
    EXPECT_EQ(a.exposures[q].dq, b.exposures[q].dq);
    EXPECT_EQ(a.exposures[q].seed, 2136u);
  }
  EXPECT_TRUE(bit_identical(a.reconstruct.cube.sci, b.reconstruct.cube.sci));
  EXPECT_TRUE(bit_identical(a.reconstruct.cube.err, b.reconstruct.cube.err));
  EXPECT_TRUE(bit_identical(a.reconstruct.cube.wmap, b.reconstruct.cube.wmap));
  EXPECT_EQ(a.reconstruct.cube.dq, b.reconstruct.cube.dq);
  const SimulationResult c = run(2, 2137);
  EXPECT_FALSE(bit_identical(a.exposures[0].sci, c.exposures[0].sci));
  omp_set_num_threads(2);
}

TEST(Simulate, NoiselessKeepsTheModelInSciAndTheExpectedNoiseInErr) {
  const SimulationConfig sc = config_from(clump_config(0.0, 0.0, 0.05));
  SimulateOptions o;
  o.noiseless = true;
  o.keep_sky = true;
  const SimulationResult r = simulate(sc, o);
  ASSERT_TRUE(r.status.ok());
  ASSERT_TRUE(r.sky.has_value());
  const NirspecInstrument ins(sc.instrument, r.sky->spatial, r.sky->spectral);
  const auto model = observe(ins, *r.sky);
  ASSERT_EQ(model.size(), r.exposures.size());
  std::size_t positive = 0, live = 0;
  double scale = 0.0;  // FFT round-off leaves +-1e-30 where there is no light: compare to the peak
  for (const auto& m : model)
    for (double v : m.sci) scale = std::max(scale, std::abs(v));
  for (std::size_t q = 0; q < model.size(); ++q) {
    EXPECT_EQ(r.exposures[q].seed, 0u);
    const auto& e = r.exposures[q];
    double diff = 0.0;
    for (std::size_t p = 0; p < e.size(); ++p) {
      if ((e.dq[p] & kDqDoNotUse) == 0) diff = std::max(diff, std::abs(model[q].sci[p] - e.sci[p]));
    }
    EXPECT_LE(diff, 1e-12 * scale) << q;  // SCI = (SCI e_per_sb) / e_per_sb: equal to rounding
    for (std::size_t p = 0; p < e.size(); ++p)
      if ((e.dq[p] & kDqDoNotUse) == 0) {
        ++live;
        positive += e.err[p] > 0.0;
      }
  }
  EXPECT_EQ(positive, live);
  const Cube& c = r.reconstruct.cube;
  std::size_t good = 0, err_pos = 0;
  for (std::size_t p = 0; p < c.size(); ++p)
    if (c.dq[p] == 0) {
      ++good;
      err_pos += c.err[p] > 0.0;
    }
  EXPECT_GT(good, 0u);
  EXPECT_EQ(err_pos, good);
}

}  // namespace
}  // namespace slitstep
