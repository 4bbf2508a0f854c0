// `slitstep fit` end to end through the CLI:
//  * a SMALL noiseless slit-stepping simulation (3 steps x 2 dithers, Halpha + [NII] window only,
//    0.04" render pixels) made with `slitstep simulate`, fitted with no model file and a short
//    chain (--sample): fit.json has every documented field, the truth is recovered, model.fits /
//    residual.fits / chain.fits pass fitsverify; the exposure folder is fitted in exposure space;
//  * generic-IFU cubes (`--instrument ifu` with PSF/LSF options): a bad start, a face-on disk and
//    data without signal end with exit code 0 and a status + reason in fit.json (never a silent
//    NaN); bad MODEL.toml values and a cube without instrument information exit 2 with one line.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/cube_io.hpp"
#include "core/rng.hpp"
#include "fit/ifu_operator.hpp"
#include "helpers/json_text.hpp"
#include "helpers/paths.hpp"

using namespace slitstep;
using namespace slitstep::test;

namespace {

const char* kSmallSim = R"([render]
pixel_arcsec = 0.04
channel_kms = 20.0
lines = "nii6548,halpha,nii6584"
continuum_windows = false
[pattern]
steps_x_arcsec = [-0.2, 0.0, 0.2]
dithers_y_arcsec = [-0.075, 0.075]
[galaxy]
inclination_deg = 55.0
ew_halpha_rest_A = 0.0
)";

bool fitsverify_ok(const std::string& path, std::string* out = nullptr) {
  const auto r = run_command("fitsverify -q " + path + " 2>&1");
  if (out) *out = r.output;
  return r.exit_code == 0 && r.output.find("verification OK") != std::string::npos;
}

// A generic-IFU mock cube (24 x 46 x 150 benchmark grid, PSF 0.12", LSF 50 km/s) of `g` with
// Gaussian noise (ERR = sigma = the noiseless cube's peak / peak_snr), written as a
// non-simulator product; flux_scale multiplies the signal AFTER sigma is set (0 = noise only).
void write_ifu_cube(const std::string& path, const GalaxyParams& g, double peak_snr, double flux_scale = 1.0) {
  const GenericIfuConfig cfg;
  const IfuOperator op(cfg);
  Cube c = op.model_cube(g);
  double peak = 0.0;
  for (double v : c.sci) peak = std::max(peak, v);
  const double sigma = peak / peak_snr;
  c.ensure_quality();
  Rng rng(99);
  for (std::size_t n = 0; n < c.sci.size(); ++n) {
    c.sci[n] = flux_scale * c.sci[n] + rng.normal(0.0, sigma);
    c.err[n] = sigma;
  }
  ProductMeta meta;
  meta.product_type = "IFUMOCK";
  write_cube(c, path, meta);
}

GalaxyParams ifu_galaxy() {
  GalaxyParams g;
  g.inclination_deg = 55.0;
  g.ew_halpha_rest_A = 0.0;
  return g;
}

constexpr double kIfuPeakSnr = 20.0;  // peak-voxel S/N
const std::string kIfuFlags = " --instrument ifu --redshift 1 --psf-fwhm-arcsec 0.12 --lsf-sigma-kms 50 --threads 2";

}  // namespace

TEST(CliFit, SmallSlitsteppingProductEndToEndWithSampler) {
  TempDir dir("cli-fit");
  write_text(dir.file("small.toml"), kSmallSim);
  const auto sim = run_cli("simulate " + dir.file("small.toml") + " -o " + dir.file("sim") + " --noiseless");
  ASSERT_EQ(sim.exit_code, 0) << sim.output;
  const auto r = run_cli("fit " + dir.file("sim/cube.fits") + " -o " + dir.file("fit") +
                         " --threads 2 --sample --walkers 24 --steps 30 --burn-in 10 --seed 7");
  std::printf("%s\n", r.output.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string js = read_text(dir.file("fit/fit.json"));
  EXPECT_EQ(json_string(js, "status"), "converged");
  EXPECT_EQ(json_string(js, "instrument"), "slitstep");
  EXPECT_EQ(json_string(js, "space"), "cube");
  EXPECT_NE(json_string(js, "reason"), "<absent>");
  for (const char* k : {"chi2", "ndof", "n_model_evaluations", "wall_s"}) EXPECT_TRUE(std::isfinite(json_number(js, k))) << k;
  for (const char* p : {"vc_kms", "rt_arcsec", "v0_kms", "sigma0_kms", "inclination_deg", "pa_deg", "center_x_arcsec",
                        "center_y_arcsec", "re_arcsec", "halpha_flux_cgs", "z0_12logoh", "gradient_dex_per_kpc"}) {
    for (const char* f : {"value", "err", "lower", "upper", "crb"})
      EXPECT_TRUE(std::isfinite(json_number(js, f, p))) << p << "." << f;
    EXPECT_NE(js.find(std::string("\"").append(p).append("\": {")), std::string::npos);
  }
  for (const char* d : {"v_over_sigma", "gradient_dex_per_re"}) {
    EXPECT_TRUE(std::isfinite(json_number(js, "value", d))) << d;
    EXPECT_TRUE(std::isfinite(json_number(js, "err", d))) << d;
  }
  EXPECT_NE(js.find("\"cramer_rao\""), std::string::npos);
  // Cube space of a slit-stepping product: the default likelihood inflates sigma by sqrt(kappa),
  // kappa measured through the reconstruction (fit/cube_noise).
  EXPECT_EQ(json_string(js, "likelihood"), "inflate");
  const double kappa = json_number(js, "kappa_median", "cube_noise");
  std::printf("[ info ] cube noise: kappa median %.3f, mean %.3f, var_ratio %.3f\n", kappa,
              json_number(js, "kappa_mean", "cube_noise"), json_number(js, "var_ratio", "cube_noise"));
  EXPECT_GT(kappa, 1.5);
  EXPECT_LT(kappa, 10.0);
  EXPECT_NEAR(json_number(js, "var_ratio", "cube_noise"), 1.0, 0.1);
  // Noiseless: the truth (default galaxy, i = 55) from the per-spaxel start.
  const double vc = json_number(js, "value", "vc_kms"), s0 = json_number(js, "value", "sigma0_kms");
  const double inc = json_number(js, "value", "inclination_deg"), pa = json_number(js, "value", "pa_deg");
  const double gr = json_number(js, "value", "gradient_dex_per_kpc");
  std::printf("[ info ] CLI fit of the noiseless small product: vc %.3f, sigma0 %.3f, i %.3f, PA %.3f, grad %.5f; "
              "CRB(vc) %.2f km/s\n",
              vc, s0, inc, pa, gr, json_number(js, "crb", "vc_kms"));
  EXPECT_NEAR(vc, 180.0, 1.8);
  EXPECT_NEAR(s0, 45.0, 0.45);
  EXPECT_NEAR(inc, 55.0, 1.0);
  EXPECT_NEAR(pa, 30.0, 1.0);
  EXPECT_NEAR(gr, -0.03, 0.002);
  // Sampler summaries.
  const double rhat = json_number(js, "max_rhat", "sampler"), ess = json_number(js, "min_ess", "sampler");
  std::printf("[ info ] short chain: max R-hat %.3f, min ESS %.1f\n", rhat, ess);
  EXPECT_TRUE(std::isfinite(rhat));
  EXPECT_TRUE(std::isfinite(ess));
  for (const char* f : {"median", "p16", "p84", "rhat", "ess"}) EXPECT_TRUE(std::isfinite(json_number(js, f, "sampler"))) << f;
  std::string v;
  EXPECT_TRUE(fitsverify_ok(dir.file("fit/model.fits"), &v)) << v;
  EXPECT_TRUE(fitsverify_ok(dir.file("fit/residual.fits"), &v)) << v;
  EXPECT_TRUE(fitsverify_ok(dir.file("fit/chain.fits"), &v)) << v;
  // The model cube reads back on the data's grid.
  const Cube m = read_cube(dir.file("fit/model.fits"));
  const Cube d = read_cube(dir.file("sim/cube.fits"));
  EXPECT_EQ(m.spatial, d.spatial);
  EXPECT_EQ(m.nl(), d.nl());

  // Exposure space: the simulate folder (exposures + cube.fits), a few iterations.
  const auto e = run_cli("fit " + dir.file("sim") + " -o " + dir.file("fitexp") + " --threads 2 --max-iterations 4");
  ASSERT_EQ(e.exit_code, 0) << e.output;
  const std::string je = read_text(dir.file("fitexp/fit.json"));
  EXPECT_EQ(json_string(je, "space"), "exposures");
  EXPECT_EQ(json_string(je, "likelihood"), "<absent>");  // no cube-space likelihood
  std::printf("[ info ] exposure space (4 iterations): status %s, vc %.2f\n", json_string(je, "status").c_str(),
              json_number(je, "value", "vc_kms"));
  EXPECT_TRUE(fitsverify_ok(dir.file("fitexp/model.fits"), &v)) << v;
  EXPECT_TRUE(fitsverify_ok(dir.file("fitexp/residual.fits"), &v)) << v;

  // Sampling through a coarse-sky surrogate ([fit] surrogate_pixel_arcsec), reweighted to the
  // exact model: fit.json's "surrogate" object and exact-model summaries.
  write_text(dir.file("sur.toml"), "[fit]\nsurrogate_pixel_arcsec = 0.08\n");
  const auto su = run_cli("fit " + dir.file("sim") + " --model " + dir.file("sur.toml") + " -o " + dir.file("fitsur") +
                          " --threads 2 --max-iterations 4 --sample --walkers 24 --steps 20 --burn-in 4 --seed 3");
  ASSERT_EQ(su.exit_code, 0) << su.output;
  const std::string jsu = read_text(dir.file("fitsur/fit.json"));
  EXPECT_EQ(json_string(jsu, "status", "surrogate"), "ok") << jsu.substr(0, 400);
  const double n_s = json_number(jsu, "samples", "surrogate"), ess_s = json_number(jsu, "ess", "surrogate");
  std::printf("[ info ] surrogate (0.08\" sky): %.0f samples reweighted, ESS %.1f, vc median %.3f (surrogate %.3f)\n",
              n_s, ess_s, json_number(jsu, "median", "surrogate"), json_number(jsu, "surrogate_median", "surrogate"));
  EXPECT_GT(n_s, 0.0);
  EXPECT_GE(ess_s, 1.0);
  EXPECT_LE(ess_s, n_s + 1e-9);
  EXPECT_EQ(json_number(jsu, "exact_evaluations", "surrogate"), n_s);
  // a bad value is one clear message
  write_text(dir.file("bad.toml"), "[fit]\nsurrogate_pixel_arcsec = 0.5\n");
  const auto bad = run_cli("fit " + dir.file("sim") + " --model " + dir.file("bad.toml") + " -o " + dir.file("fitbad"));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("surrogate_pixel_arcsec"), std::string::npos) << bad.output;
}

// A product that holds every line (the simulator's default): the fit renders all eight, so the
// metallicity profile is constrained jointly by [NII]/Halpha, [OIII]/Hbeta and [SII]/Halpha.
// Noiseless, exposure space, from the per-spaxel start: the truth is recovered.
TEST(CliFit, AllLinesOfTheProductAreFittedJointly) {
  TempDir dir("cli-fit-lines");
  std::string cfg = kSmallSim;
  cfg.replace(cfg.find("lines = "), std::string("lines = \"nii6548,halpha,nii6584\"\n").size(), "");
  write_text(dir.file("all.toml"), cfg);
  const auto sim = run_cli("simulate " + dir.file("all.toml") + " -o " + dir.file("sim") + " --noiseless");
  ASSERT_EQ(sim.exit_code, 0) << sim.output;
  const auto r = run_cli("fit " + dir.file("sim") + " -o " + dir.file("fit") + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string js = read_text(dir.file("fit/fit.json"));
  for (const char* l : {"hbeta", "oiii4959", "oiii5007", "nii6548", "halpha", "nii6584", "sii6717", "sii6731"})
    EXPECT_NE(js.find(std::string("\"") + l + "\""), std::string::npos) << l;
  EXPECT_EQ(json_string(js, "status"), "converged") << json_string(js, "reason");
  const double vc = json_number(js, "value", "vc_kms"), s0 = json_number(js, "value", "sigma0_kms");
  const double inc = json_number(js, "value", "inclination_deg"), pa = json_number(js, "value", "pa_deg");
  const double gr = json_number(js, "value", "gradient_dex_per_kpc"), z0 = json_number(js, "value", "z0_12logoh");
  std::printf("[ info ] all lines: vc %.3f, sigma0 %.3f, i %.3f, PA %.3f, z0 %.4f, grad %.5f (+- %.5f; CRB %.5f)\n", vc,
              s0, inc, pa, z0, gr, json_number(js, "err", "gradient_dex_per_kpc"),
              json_number(js, "crb", "gradient_dex_per_kpc"));
  EXPECT_NEAR(vc, 180.0, 1.8);
  EXPECT_NEAR(s0, 45.0, 0.45);
  EXPECT_NEAR(inc, 55.0, 1.0);
  EXPECT_NEAR(pa, 30.0, 1.0);
  EXPECT_NEAR(gr, -0.03, 0.002);
}

TEST(CliFit, GenericIfuStatusesNeverSilentNaN) {
  TempDir dir("cli-fit-ifu");
  const std::string cube = dir.file("ifu.fits");
  write_ifu_cube(cube, ifu_galaxy(), kIfuPeakSnr);

  // A good fit first.
  auto r = run_cli("fit " + cube + kIfuFlags + " -o " + dir.file("good"));
  std::printf("%s\n", r.output.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string js = read_text(dir.file("good/fit.json"));
  std::printf("[ info ] IFU fit: %s, vc %.1f +- %.1f, sigma0 %.2f +- %.2f, PA %.2f, i %.2f (%.2f s)\n",
              json_string(js, "status").c_str(), json_number(js, "value", "vc_kms"), json_number(js, "err", "vc_kms"),
              json_number(js, "value", "sigma0_kms"), json_number(js, "err", "sigma0_kms"),
              json_number(js, "value", "pa_deg"), json_number(js, "value", "inclination_deg"), json_number(js, "wall_s"));
  EXPECT_EQ(json_string(js, "status"), "converged");
  EXPECT_EQ(json_string(js, "likelihood"), "independent");  // a generic IFU's own reconstruction is unknown
  std::string v;
  EXPECT_TRUE(fitsverify_ok(dir.file("good/model.fits"), &v)) << v;

  // Bad start: far from the data, one iteration.
  write_text(dir.file("bad.toml"), "[fit]\nmax_iterations = 1\n[params.vc_kms]\nvalue = 900\n[params.sigma0_kms]\n"
                                   "value = 400\n[params.pa_deg]\nvalue = 200\n");
  r = run_cli("fit " + cube + kIfuFlags + " --model " + dir.file("bad.toml") + " -o " + dir.file("bad"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  js = read_text(dir.file("bad/fit.json"));
  std::printf("[ info ] bad start: %s (%s)\n", json_string(js, "status").c_str(), json_string(js, "reason").c_str());
  EXPECT_EQ(json_string(js, "status"), "not converged");
  EXPECT_FALSE(json_string(js, "reason").empty());

  // Face-on: inclination fixed at 0 -> vc and PA have no effect.
  write_text(dir.file("faceon.toml"), "[params.inclination_deg]\nvalue = 0\nfixed = true\n");
  r = run_cli("fit " + cube + kIfuFlags + " --model " + dir.file("faceon.toml") + " -o " + dir.file("faceon"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  js = read_text(dir.file("faceon/fit.json"));
  std::printf("[ info ] face-on: %s (%s)\n", json_string(js, "status").c_str(), json_string(js, "reason").c_str());
  EXPECT_EQ(json_string(js, "status"), "degenerate");
  EXPECT_NE(json_string(js, "reason").find("vc_kms"), std::string::npos);

  // No signal: pure noise.
  const std::string noise = dir.file("noise.fits");
  write_ifu_cube(noise, ifu_galaxy(), kIfuPeakSnr, 0.0);
  r = run_cli("fit " + noise + kIfuFlags + " -o " + dir.file("noise"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  js = read_text(dir.file("noise/fit.json"));
  std::printf("[ info ] no signal: %s (%s)\n", json_string(js, "status").c_str(), json_string(js, "reason").c_str());
  EXPECT_EQ(json_string(js, "status"), "failed");
  EXPECT_NE(json_string(js, "reason").find("signal"), std::string::npos);

  // Bad input: exit 2, one line naming the file, line and key.
  write_text(dir.file("badval.toml"), "[params.vc_kms]\nlower = 300\nupper = 100\n");
  r = run_cli("fit " + cube + kIfuFlags + " --model " + dir.file("badval.toml") + " -o " + dir.file("x"));
  std::printf("[ info ] %s", r.output.c_str());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("badval.toml:3: params.vc_kms.upper = 100"), std::string::npos) << r.output;
  write_text(dir.file("typo.toml"), "[fit]\nmax_iteration = 5\n");
  r = run_cli("fit " + cube + kIfuFlags + " --model " + dir.file("typo.toml") + " -o " + dir.file("x"));
  std::printf("[ info ] %s", r.output.c_str());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("max_iteration"), std::string::npos);
  write_text(dir.file("notfit.toml"), "[params.luminosity]\nvalue = 1\n");
  r = run_cli("fit " + cube + kIfuFlags + " --model " + dir.file("notfit.toml") + " -o " + dir.file("x"));
  std::printf("[ info ] %s", r.output.c_str());
  EXPECT_EQ(r.exit_code, 2);
  r = run_cli("fit " + cube + " -o " + dir.file("x"));
  std::printf("[ info ] %s", r.output.c_str());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--instrument ifu"), std::string::npos);
}
