// Slow tests of the generic-IFU forward fit (fit/ifu_operator):
//  * SAMI GAMA 485885 (../shared/data/sami_gama485885: continuum-subtracted, de-redshifted
//    Halpha + [NII]; PSF two Gaussians 0.646/0.354 of FWHM 2.30"/1.43", LSF FWHM 1.61 A): the
//    twelve-parameter fit converges; v_c, PA, inclination and sigma0 are printed beside the
//    per-spaxel path (`slitstep analyze`: fit_cube + analyze_maps on the same cube) and checked for
//    consistency;
//  * bias over 20 noise realisations of the 24 x 46 x 150 benchmark cube at S/N 20 (sigma0,
//    inclination, PA unbiased), with the time per fit.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/cube_io.hpp"
#include "core/rng.hpp"
#include "fit/fit_config.hpp"
#include "fit/forward.hpp"
#include "fit/ifu_operator.hpp"
#include "fit/line_fit.hpp"
#include "fit/lsf.hpp"
#include "fit/start_guess.hpp"
#include "helpers/json_text.hpp"
#include "helpers/paths.hpp"
#include "sim/noise.hpp"

using namespace slitstep;
using namespace slitstep::test;

namespace {

// The Blobby3D text cube: metadata "ni nj nk x_min x_max y_min y_max w_min w_max" (bin edges,
// arcsec and Angstrom); data/var in row-major order [i][j][k], i along y with i = 0 the top row
// (largest y), j along x. Zero variance or non-finite values are flagged DoNotUse.
Cube read_sami() {
  const std::string dir = shared_data("sami_gama485885/");
  std::ifstream md(dir + "metadata.txt");
  int ni = 0, nj = 0, nk = 0;
  double x0, x1, y0, y1, w0, w1;
  md >> ni >> nj >> nk >> x0 >> x1 >> y0 >> y1 >> w0 >> w1;
  EXPECT_TRUE(md.good() || md.eof());
  SpatialGrid g;
  g.nx = nj;
  g.ny = ni;
  g.pixel_arcsec = (x1 - x0) / nj;
  g.x0_arcsec = x0 + 0.5 * g.pixel_arcsec;
  g.y0_arcsec = y0 + 0.5 * (y1 - y0) / ni;
  const double step_A = (w1 - w0) / nk;
  Cube c = Cube::zeros(g, WavelengthGrid::linear((w0 + 0.5 * step_A) * 1e-4, step_A * 1e-4, nk), SkyFrame{}, true);
  std::ifstream fd(dir + "data.txt"), fv(dir + "var.txt");
  for (int i = 0; i < ni; ++i)
    for (int j = 0; j < nj; ++j)
      for (int k = 0; k < nk; ++k) {
        double d = 0, v = 0;
        fd >> d;
        fv >> v;
        const std::size_t n = c.index(j, ni - 1 - i, k);
        if (std::isfinite(d) && std::isfinite(v) && v > 0.0) {
          c.sci[n] = d;
          c.err[n] = std::sqrt(v);
        } else {
          c.dq[n] = kDqDoNotUse | kDqNoCoverage;
        }
      }
  EXPECT_TRUE(fd && fv) << "data.txt / var.txt shorter than the metadata says";
  return c;
}


GenericIfuConfig sami_instrument() {
  GenericIfuConfig c;
  c.psf_model = "multi_gaussian";
  c.psf_weights = {0.6460957385346204, 0.35390426146537957};
  c.psf_fwhms_arcsec = {2.300859878831419, 1.4309603303694296};
  c.lsf_kind = "fwhm_A";
  c.lsf_values = {1.61};
  c.oversample = 2;
  return c;
}

}  // namespace

TEST(FitSami, Gama485885ForwardFitAgreesWithPerSpaxelMaps) {
  const Cube cube = read_sami();
  // Per-spaxel path through the CLI (fit_cube + analyze_maps + the continuum-subtracted branch),
  // as tests/test_real_data.cpp: inclination given (MODEL_OPTIONS INC = 0.5726 rad = 32.8 deg),
  // kpc scale from an assumed z = 0.05.
  TempDir dir("fit-sami");
  {
    ProductMeta meta;
    meta.product_type = "SAMI-CONVERTED";
    write_cube(cube, dir.file("sami.fits"), meta);
  }
  write_text(dir.file("sami.toml"), "[analysis]\nscale_redshift = 0.05\ninclination_deg = 32.807\n");
  const auto an = run_cli("analyze " + dir.file("sami.fits") + " --config " + dir.file("sami.toml") +
                          " --redshift 0 --lsf-fwhm-A 1.61 -o " + dir.file("an") + " --threads 2");
  ASSERT_EQ(an.exit_code, 0) << an.output;
  const std::string js = read_text(dir.file("an/summary.json"));
  const double ps_vc = json_number(js, "value", "vc_kms"), ps_vce = json_number(js, "err", "vc_kms");
  const double ps_s0 = json_number(js, "value", "sigma0_kms"), ps_s0e = json_number(js, "err", "sigma0_kms");
  const double ps_pa = json_number(js, "pa_deg");

  // Forward fit: the same galaxy model through the SAMI PSF and LSF, at z_model = 0.05 on the
  // stretched grid (the data are de-redshifted).
  const double z_model = 0.05, stretch = 1.0 + z_model;
  const GenericIfuConfig icfg = ifu_config_for_cube(cube, sami_instrument(), stretch);
  IfuOperatorOptions oo;
  oo.value_scale = stretch;
  oo.model.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  oo.model.continuum = false;
  const IfuOperator op(icfg, oo);

  EmissionLineFitOptions lo;
  lo.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  lo.threads = 2;
  const LineMaps maps = fit_cube(cube, 0.0, LsfModel::constant_fwhm_A(1.61), lo);
  GalaxyParams base;
  base.redshift = z_model;
  base.ew_halpha_rest_A = 0.0;
  StartGuessOptions so;
  so.psf_sigma_arcsec = generic_ifu_psf_fwhm_arcsec(icfg) / 2.3548200450309493;
  so.flux_scale = 1.0;  // the model is scaled to the data's units (value_scale)
  const StartGuess sg = start_guess(maps, base, {}, so);
  for (const auto& s : sg.sources) std::printf("[ info ] start: %s\n", s.c_str());
  for (const auto& s : sg.notes) std::printf("[ info ] start note: %s\n", s.c_str());
  FitModelConfig mc;
  mc.source = "test";
  FitDataContext ctx;
  const SpatialGrid& g = cube.spatial;
  ctx.x_lo_arcsec = g.x_arcsec(-0.5), ctx.x_hi_arcsec = g.x_arcsec(g.nx - 0.5);
  ctx.y_lo_arcsec = g.y_arcsec(-0.5), ctx.y_hi_arcsec = g.y_arcsec(g.ny - 0.5);
  std::vector<std::string> notes;
  const GalaxyParameterization param = build_parameterization(sg.params, mc, ctx, &notes);
  for (const auto& s : notes) std::printf("[ info ] param note: %s\n", s.c_str());
  const auto sel = op.select_cube(cube);
  ASSERT_TRUE(sel.status.ok()) << sel.status.message;
  const FitProblem prob = op.make_problem(sel, param);
  FitOptions fo;
  fo.threads = 2;
  fo.max_iterations = 200;
  const FitResult f = fit_maximum_likelihood(prob, fo);
  std::printf("[ info ] SAMI forward fit: %s (%s), chi2/ndof = %.1f / %ld = %.3f, %d iterations, %ld evaluations, "
              "%.2f s\n",
              fit_status_name(f.status), f.reason.c_str(), f.chi2, f.ndof, f.chi2 / f.ndof, f.iterations,
              f.n_model_evaluations, f.wall_s);
  for (const auto& n : f.notes) std::printf("[ info ] note: %s\n", n.c_str());
  for (const auto& p : f.params)
    std::printf("[ info ]   %-22s %12.6g +- %.3g (start %.6g)\n", p.name.c_str(), p.value, p.err, p.start);
  ASSERT_EQ(f.status, FitStatus::kConverged) << f.reason;
  // Errors scaled by sqrt(chi2/ndof) for the comparison (SAMI's variance cube is correlated
  // between spaxels and not exactly the scatter).
  const double sc = std::sqrt(std::max(1.0, f.chi2 / static_cast<double>(f.ndof)));
  const double vc = f.value("vc_kms"), vce = f.err("vc_kms") * sc;
  const double s0 = f.value("sigma0_kms"), s0e = f.err("sigma0_kms") * sc;
  const double pa = f.value("pa_deg"), pae = f.err("pa_deg") * sc;
  const double inc = f.value("inclination_deg"), ince = f.err("inclination_deg") * sc;
  std::printf("[ info ] quantity          forward fit            per-spaxel (analyze)\n");
  std::printf("[ info ] v_c [km/s]        %7.1f +- %5.1f       %7.1f +- %5.1f\n", vc, vce, ps_vc, ps_vce);
  std::printf("[ info ] PA [deg]          %7.1f +- %5.1f       %7.1f\n", pa, pae, ps_pa);
  std::printf("[ info ] inclination [deg] %7.1f +- %5.1f       %7.1f (given: Blobby3D INC)\n", inc, ince, 32.807);
  std::printf("[ info ] sigma0 [km/s]     %7.1f +- %5.1f       %7.1f +- %5.1f\n", s0, s0e, ps_s0, ps_s0e);
  const double dpa = std::remainder(pa - ps_pa, 360.0);
  EXPECT_LT(std::abs(dpa), 10.0);  // the per-spaxel PA carries no error: 10 deg
  // v_c: the per-spaxel inclination is fixed at 32.8 deg; compare v_c sin i (what both measure
  // directly) within 3 combined sigma.
  const double d2r = M_PI / 180.0;
  const double vsin_fit = vc * std::sin(inc * d2r), vsin_ps = ps_vc * std::sin(32.807 * d2r);
  const double vsin_fit_e = std::hypot(vce * std::sin(inc * d2r), vc * std::cos(inc * d2r) * ince * d2r);
  const double vsin_ps_e = ps_vce * std::sin(32.807 * d2r);
  std::printf("[ info ] v_c sin i [km/s]  %7.1f +- %5.1f       %7.1f +- %5.1f\n", vsin_fit, vsin_fit_e, vsin_ps,
              vsin_ps_e);
  EXPECT_LT(std::abs(vsin_fit - vsin_ps), 3.0 * std::hypot(vsin_fit_e, vsin_ps_e) + 5.0);
  EXPECT_LT(std::abs(inc - 32.807), std::max(3.0 * ince, 10.0));
  // sigma0: the per-spaxel value is beam-smeared by the 2.3" PSF (rotation gradients inside the
  // PSF broaden every spaxel's line), so the forward fit is expected LOWER; it must not be higher
  // beyond 3 combined sigma.
  EXPECT_LT(s0 - ps_s0, 3.0 * std::hypot(s0e, ps_s0e));
  EXPECT_GT(s0, 1.0);

  // The same fit through the CLI (docs/cli.md "fit" example): [ifu] table, de-redshifted cube.
  write_text(dir.file("model.toml"), "[ifu]\npsf_model = \"multi_gaussian\"\npsf_weights = [0.6460957385346204, "
                                     "0.35390426146537957]\npsf_fwhms_arcsec = [2.300859878831419, 1.4309603303694296]\n"
                                     "lsf_fwhm_A = 1.61\noversample = 2\n[model]\nlines = [\"nii6548\", \"halpha\", "
                                     "\"nii6584\"]\n[fit]\nmax_iterations = 200\n");
  const auto cl = run_cli("fit " + dir.file("sami.fits") + " --instrument ifu --redshift 0 --model-redshift 0.05 --model " +
                          dir.file("model.toml") + " -o " + dir.file("fit") + " --threads 2");
  std::printf("%s\n", cl.output.c_str());
  ASSERT_EQ(cl.exit_code, 0) << cl.output;
  const std::string fj = read_text(dir.file("fit/fit.json"));
  EXPECT_NE(fj.find("\"status\": \"converged\""), std::string::npos);
  auto cli_value = [&](const std::string& name) {
    const auto p = fj.find("\"" + name + "\": {");
    return p == std::string::npos ? NAN : json_number(fj.substr(p), "value", name);
  };
  std::printf("[ info ] CLI: vc %.1f, PA %.1f, i %.1f, sigma0 %.1f\n", cli_value("vc_kms"), cli_value("pa_deg"),
              cli_value("inclination_deg"), cli_value("sigma0_kms"));
  EXPECT_NEAR(cli_value("vc_kms"), vc, 3.0 * vce);
  EXPECT_NEAR(cli_value("pa_deg"), pa, 1.0);
  EXPECT_NEAR(cli_value("sigma0_kms"), s0, 3.0 * s0e);
}

TEST(FitSami, BenchmarkCubeBiasOverNoiseRealisations) {
  const GenericIfuConfig cfg;  // 24 x 46 x 150, PSF 0.12", LSF 50 km/s
  IfuOperatorOptions oo;
  oo.model.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  const IfuOperator op(cfg, oo);
  GalaxyParams truth;
  truth.inclination_deg = 55.0;
  truth.ew_halpha_rest_A = 0.0;
  const Cube clean = op.model_cube(truth);
  // Uniform sigma: integrated Halpha S/N 20 in the brightest spaxel (sim/noise).
  const double sigma = uniform_sigma_for_spaxel_snr(clean, 20.0);
  const int n_real = 20;
  const std::vector<std::string> names = {"vc_kms", "sigma0_kms", "inclination_deg", "pa_deg", "gradient_dex_per_kpc"};
  std::vector<std::vector<double>> val(names.size()), err(names.size());
  std::vector<double> times;
  int converged = 0;
  for (int r = 0; r < n_real; ++r) {
    Cube data = clean;
    Rng rng = Rng(777).substream(static_cast<std::uint64_t>(r));
    for (auto& v : data.sci) v += rng.normal(0.0, sigma);
    GalaxyParameterization param(truth);
    // Start 10 % off (PA and inclination by 3 and 5.5 deg).
    for (auto& sp : param.specs())
      if (sp.name != "center_x_arcsec" && sp.name != "center_y_arcsec" && sp.name != "v0_kms") sp.value *= 1.1;
    const auto sel = op.select_cube(data, sigma);
    ASSERT_TRUE(sel.status.ok());
    FitOptions fo;
    fo.threads = 2;
    const FitResult f = fit_maximum_likelihood(op.make_problem(sel, param), fo);
    times.push_back(f.wall_s);
    if (f.status != FitStatus::kConverged) {
      std::printf("[ info ] realisation %d: %s (%s)\n", r, fit_status_name(f.status), f.reason.c_str());
      continue;
    }
    ++converged;
    for (std::size_t q = 0; q < names.size(); ++q) val[q].push_back(f.value(names[q])), err[q].push_back(f.err(names[q]));
  }
  std::sort(times.begin(), times.end());
  std::printf("[ info ] %d / %d converged; wall time per 12-parameter fit: median %.3f s, min %.3f s, max %.3f s "
              "(2 threads, shared machine)\n",
              converged, n_real, times[times.size() / 2], times.front(), times.back());
  ASSERT_GE(converged, n_real - 1);
  for (std::size_t q = 0; q < names.size(); ++q) {
    const double t = get_galaxy_param(truth, names[q]);
    double m = 0.0, e = 0.0;
    for (std::size_t k = 0; k < val[q].size(); ++k) m += val[q][k], e += err[q][k];
    m /= val[q].size(), e /= val[q].size();
    double sd = 0.0;
    for (double v : val[q]) sd += (v - m) * (v - m);
    sd = std::sqrt(sd / (val[q].size() - 1));
    const double sem = sd / std::sqrt(static_cast<double>(val[q].size()));
    std::printf("[ info ]   %-22s truth %9.4f  mean %9.4f  bias %+8.4f (%+5.2f sem)  scatter %.4f  mean err %.4f\n",
                names[q].c_str(), t, m, m - t, (m - t) / sem, sd, e);
    if (names[q] == "sigma0_kms" || names[q] == "inclination_deg" || names[q] == "pa_deg") {
      EXPECT_LT(std::abs(m - t), 3.5 * sem) << names[q];
    }
  }
}
