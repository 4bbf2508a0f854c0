// Slow acceptance tests of sim/simulate with noise: blank sky (SCI/ERR unit variance in the
// exposures and the cube) and the MSA-3D S/N calibration (nirspec.md §2 "S/N anchor").
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "core/config.hpp"
#include "core/lines.hpp"
#include "fit/line_fit.hpp"
#include "fit/lsf.hpp"
#include "instruments/detector.hpp"
#include "sim/simulate.hpp"

namespace slitstep {
namespace {

double mean_of(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }
double std_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0.0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}

SimulationConfig default_config() {
  const Config cfg = Config::empty();
  return read_simulation_config(cfg);
}

// A sky cube on the footprint-covering grid (pixel 0.04": the scenes are spatially uniform).
Cube uniform_grid_cube(const SimulationConfig& sc, const WavelengthGrid& wg) {
  const double pix = 0.04;
  const FieldOfView f = required_field_of_view(sc.instrument, pix);
  const SpatialGrid sg = SpatialGrid::centred(static_cast<int>(std::lround(f.x_arcsec / pix)),
                                              static_cast<int>(std::lround(f.y_arcsec / pix)), pix);
  return Cube::zeros(sg, wg);
}

TEST(SimulateSlow, BlankSkySciOverErrIsUnitInExposuresAndCube) {
  SimulationConfig sc = default_config();
  const Cube sky = uniform_grid_cube(sc, WavelengthGrid::linear(1.40, 2.0e-4, 50));
  for (const char* comb : {"median", "mean"}) {
    sc.reconstruct.combine = comb;
    SimulateOptions o;
    o.seed = 31;
    const SimulationResult r = observe_sky(sky, sc, o);
    ASSERT_TRUE(r.status.ok()) << r.status.message;
    if (std::string(comb) == "median") {
      std::vector<double> ratio;
      for (const auto& e : r.exposures)
        for (std::size_t p = 0; p < e.size(); ++p)
          if ((e.dq[p] & kDqDoNotUse) == 0 && e.err[p] > 0.0) ratio.push_back(e.sci[p] / e.err[p]);
      const double sd = std_of(ratio);
      std::printf("[ info ] blank sky, full chain: exposures std(SCI/ERR) = %.4f over %zu pixels (mean %.4f)\n", sd,
                  ratio.size(), mean_of(ratio));
      EXPECT_NEAR(sd, 1.0, 0.05);
    }
    std::vector<double> ratio;
    const Cube& c = r.reconstruct.cube;
    for (std::size_t p = 0; p < c.size(); ++p)
      if (c.dq[p] == 0 && c.err[p] > 0.0) ratio.push_back(c.sci[p] / c.err[p]);
    ASSERT_GT(ratio.size(), 100000u);
    const double sd = std_of(ratio);
    std::printf("[ info ] blank sky, full chain: cube (%s) std(SCI/ERR) = %.4f over %zu voxels (mean %.4f)\n", comb,
                sd, ratio.size(), mean_of(ratio));
    EXPECT_NEAR(sd, 1.0, 0.05) << comb;
  }
}

// The paper's central spaxel of ID8365: Halpha 1.34e-18 erg/s/cm^2 in one 0.08" spaxel at
// z = 1.68, rest EW 44 A, sigma ~50 km/s, S/N ~59 (nirspec.md §2). A spatially uniform source
// of that surface brightness, MSA-3D pattern, noise on, default reconstruction (median of dithers).
struct PaperSnr {
  std::size_t n = 0;
  double box_flux = 0, box_snr = 0, box_scatter_over_err = 0;  // +-3 sigma box sum, ERR propagated
  double fit_snr_err = 0, fit_scatter_over_err = 0;            // Gaussian fit, ERR weights (honest)
  double fit_snr_paper = 0;   // Gaussian fit, unit weights, errors from the residuals (the paper)
  double paper_scatter_over_err = 0;  // true scatter of that fit's flux / its residual-based error
  double fit_flux = 0;
};

PaperSnr paper_snr(const SimulationConfig& sc, int nseeds) {
  constexpr double kC = 299792.458;
  const double z = 1.68, flux_spaxel = 1.34e-18, ew_rest_A = 44.0, sigma_kms = 50.0;
  const double l0 = observed_wavelength_um(LineId::kHalpha, z);
  const double sig_um = l0 * sigma_kms / kC;
  const double sb_line = flux_spaxel / (0.08 * 0.08);              // erg/s/cm^2/arcsec^2
  const double sb_cont = sb_line / (ew_rest_A * (1.0 + z) * 1e-4);  // per um
  const WavelengthGrid wg = WavelengthGrid::linear(l0 - 0.014, 5.0e-5, 561);
  Cube sky = uniform_grid_cube(sc, wg);
  std::vector<double> spec(wg.size());
  for (std::size_t k = 0; k < wg.size(); ++k) {
    const double c = wg.wavelength_um(k), w = wg.width_um(k);
    const double a = (c - 0.5 * w - l0) / (std::sqrt(2.0) * sig_um), b = (c + 0.5 * w - l0) / (std::sqrt(2.0) * sig_um);
    spec[k] = sb_cont + sb_line * 0.5 * (std::erf(b) - std::erf(a)) / w;
  }
  for (int j = 0; j < sky.ny(); ++j)
    for (int i = 0; i < sky.nx(); ++i) std::copy(spec.begin(), spec.end(), sky.spectrum(i, j));

  // Box: +-3 sigma of the observed line (intrinsic (+) the nominal slit-filling width).
  const double R = 3450.0;  // JDox G140H near 1.76 um
  const double sig_obs = std::sqrt(sig_um * sig_um + std::pow(l0 / (2.3548 * R), 2));
  const double lo = l0 - 3 * sig_obs, hi = l0 + 3 * sig_obs;
  const double clo = l0 + 8 * sig_obs, chi = l0 + 30 * sig_obs;
  // Fit: the paper's model (straight-line continuum + Gaussian, fit/line_fit) in a rest window
  // inside the simulated range (6540-6600 A = 1.7527-1.7688 um).
  EmissionLineFitOptions fo;
  fo.lines = {LineId::kHalpha};
  fo.ha_window_lo_A = 6540.0;
  fo.ha_window_hi_A = 6600.0;
  fo.hb_window_lo_A = 4900.0;  // outside the data: unused
  fo.hb_window_hi_A = 4950.0;
  fo.warm_start = false;
  const LsfModel lsf = LsfModel::constant_resolving_power(R);
  std::vector<double> bf, be, ff, fe, paper_snr, uf, ue;
  for (int seed = 1; seed <= nseeds; ++seed) {
    SimulateOptions o;
    o.seed = static_cast<std::uint64_t>(seed);
    const SimulationResult r = observe_sky(sky, sc, o);
    EXPECT_TRUE(r.status.ok()) << r.status.message;
    const Cube& c = r.reconstruct.cube;
    const double area = c.spatial.pixel_area_arcsec2();
    std::vector<double> wl(c.nl()), wd(c.nl());
    for (std::size_t k = 0; k < c.nl(); ++k) {
      wl[k] = c.spectral.wavelength_um(k);
      wd[k] = c.spectral.width_um(k);
    }
    for (int j = 0; j < c.ny(); ++j)
      for (int i = 0; i < c.nx(); ++i) {
        if (std::abs(c.spatial.x_arcsec(i)) > 0.61 || std::abs(c.spatial.y_arcsec(j)) > 0.61) continue;
        bool clean = true;
        for (std::size_t k = 0; k < c.nl(); ++k)
          if (wl[k] >= 1.7527 && wl[k] <= chi && c.dq[c.index(i, j, k)] != 0) clean = false;
        if (!clean) continue;
        const SpaxelLineFlux f = spaxel_line_flux(c, i, j, lo, hi, clo, chi);
        EXPECT_TRUE(f.ok);
        bf.push_back(f.flux_cgs);
        be.push_back(f.err_cgs);
        const std::size_t k0 = c.index(i, j, 0);
        const SpectrumFit w = fit_spectrum(wl.data(), c.sci.data() + k0, c.err.data() + k0, c.dq.data() + k0, c.nl(),
                                           z, lsf, fo, nullptr, wd.data());
        const SpectrumFit u = fit_spectrum(wl.data(), c.sci.data() + k0, nullptr, c.dq.data() + k0, c.nl(), z, lsf, fo,
                                           nullptr, wd.data());
        const auto& lw = w.lines[static_cast<int>(LineId::kHalpha)];
        const auto& lu = u.lines[static_cast<int>(LineId::kHalpha)];
        EXPECT_TRUE(lw.measured && lu.measured);
        ff.push_back(lw.flux_sb * area);
        fe.push_back(lw.flux_err_sb * area);
        paper_snr.push_back(lu.flux_sb / lu.flux_err_sb);
        uf.push_back(lu.flux_sb * area);
        ue.push_back(lu.flux_err_sb * area);
      }
  }
  PaperSnr out;
  out.n = bf.size();
  if (out.n < 2) return out;
  auto rms = [](const std::vector<double>& v) {
    double s = 0.0;
    for (double x : v) s += x * x;
    return std::sqrt(s / v.size());
  };
  out.box_flux = mean_of(bf);
  out.box_snr = out.box_flux / rms(be);
  out.box_scatter_over_err = std_of(bf) / rms(be);
  out.fit_flux = mean_of(ff);
  out.fit_snr_err = out.fit_flux / rms(fe);
  out.fit_scatter_over_err = std_of(ff) / rms(fe);
  out.paper_scatter_over_err = std_of(uf) / rms(ue);
  std::sort(paper_snr.begin(), paper_snr.end());
  out.fit_snr_paper = paper_snr[paper_snr.size() / 2];
  return out;
}

void print_snr(const char* label, const PaperSnr& p) {
  std::printf("[ info ] paper calibration, %s: %zu spaxels; box S/N %.1f (scatter/ERR %.3f, flux %.4g); Gaussian fit "
              "with ERR S/N %.1f (scatter/ERR %.3f, flux %.4g); paper-style fit (residual errors) median S/N %.1f "
              "(its true scatter / its error %.3f)\n",
              label, p.n, p.box_snr, p.box_scatter_over_err, p.box_flux, p.fit_snr_err, p.fit_scatter_over_err,
              p.fit_flux, p.fit_snr_paper, p.paper_scatter_over_err);
}

// The honest noise budget of the box sum for one 0.2" x 0.1" detector row and one exposure,
// from the detector model itself (docs/instruments.md §9): S/N_1.
double row_exposure_snr(const SimulationConfig& sc) {
  constexpr double kC = 299792.458;
  const double z = 1.68, flux_spaxel = 1.34e-18, ew_rest_A = 44.0, sigma_kms = 50.0, R = 3450.0;
  const double l0 = observed_wavelength_um(LineId::kHalpha, z);
  const double sig_um = l0 * sigma_kms / kC;
  const double sig_obs = std::sqrt(sig_um * sig_um + std::pow(l0 / (2.3548 * R), 2));
  const DetectorConfig& d = sc.instrument.detector;
  const double t = sc.instrument.pattern.exptime_s, dlds = 2.29e-4;  // G140H at 1.76 um
  const double area = sc.instrument.slitlet.shutter.open_x_arcsec * d.pixel_y_arcsec;
  const double e = electrons_per_erg_cm2(d, l0) * t;                 // e- per (erg/cm^2/s)
  const double sb_line = flux_spaxel / (0.08 * 0.08);
  const double sb_cont = sb_line / (ew_rest_A * (1.0 + z) * 1e-4);
  const double n_box = 6.0 * sig_obs / dlds;
  const double signal = sb_line * area * std::erf(3.0 / std::sqrt(2.0)) * e;
  const double per_px = d.read_noise_e * d.read_noise_e + d.dark_e_per_s * t +
                        (sb_cont + mjy_sr_to_sb(d.background_mjy_sr, l0)) * area * dlds * e;
  return signal / std::sqrt(n_box * per_px + signal);
}

TEST(SimulateSlow, PaperCalibrationHalphaSnrPerSpaxel) {
  const SimulationConfig sc = default_config();
  const PaperSnr p = paper_snr(sc, 4);
  print_snr("defaults (drop + median + overlap)", p);
  ASSERT_GT(p.n, 400u);
  const double expected_box = 1.34e-18 * std::erf(3.0 / std::sqrt(2.0));
  EXPECT_NEAR(p.box_flux / expected_box, 1.0, 0.05);
  EXPECT_NEAR(p.fit_flux / 1.34e-18, 1.0, 0.05);

  // 1. Honest ERR: the scatter of the measured fluxes over the spaxels equals the propagated
  // ERR (box sum and ERR-weighted Gaussian fit) within 15 %, and the S/N follows the noise
  // budget: one row and one exposure give S/N_1; a 0.08" spaxel of the default reconstruction
  // (drop + median + overlap) combines the medians of ~3.5 dithers on ~3 fine pixels of 2-3
  // rows: ~sqrt(7 / c_7) S/N_1 (printed ratio).
  const double snr1 = row_exposure_snr(sc);
  const double predicted = snr1 * std::sqrt(7.0 / 1.473);
  std::printf("[ info ] noise budget: S/N per row and exposure %.2f; x sqrt(7/1.473) = %.1f; measured box S/N %.1f "
              "(ratio %.2f)\n", snr1, predicted, p.box_snr, p.box_snr / predicted);
  EXPECT_NEAR(p.box_scatter_over_err, 1.0, 0.15);
  EXPECT_NEAR(p.fit_scatter_over_err, 1.0, 0.15);
  EXPECT_GT(p.box_snr, 0.75 * predicted);
  EXPECT_LT(p.box_snr, 1.5 * predicted);

  // 2. The paper's way: the MSA-3D code builds no ERR cube (build_7_exposures.py interpolates
  // and medians the SCI extension only); the paper's errors come "from the residuals between the
  // best-fit linear and Gaussian models and the observed spectra" (Sect. 2.2): a unit-weight fit
  // whose covariance is scaled by the reduced chi^2. That is optimistic where the line channels
  // are noisier than the continuum (source shot noise): its true scatter exceeds its error.
  std::printf("[ info ] paper S/N 59 vs paper-style %.1f (x%.2f) and honest %.1f (x%.2f); acceptance band 39.3-88.5: "
              "%s\n", p.fit_snr_paper, 59.0 / p.fit_snr_paper, p.fit_snr_err, 59.0 / p.fit_snr_err,
              (p.fit_snr_paper > 59.0 / 1.5 && p.fit_snr_paper < 59.0 * 1.5) ? "met" : "NOT met");
  EXPECT_GT(p.paper_scatter_over_err, 1.05);
  EXPECT_GT(p.fit_snr_paper, p.fit_snr_err);
  // Acceptance (c): the paper-style S/N within a factor 1.5 of 59. The absolute efficiency
  // (instrument.throughput, peak 0.60 of the S(lambda) * lambda shape, 0.353 at 1.76 um) is
  // calibrated on this anchor (docs/instruments.md §9): this checks the calibration holds.
  EXPECT_GT(p.fit_snr_paper, 59.0 / 1.5);
  EXPECT_LT(p.fit_snr_paper, 59.0 * 1.5);
}

}  // namespace
}  // namespace slitstep
