// Tests of fit/fit_config (MODEL.toml): every table read, defaults, bad values named with file,
// line and key, and build_parameterization's data-dependent bounds and overrides.
#include <gtest/gtest.h>

#include <string>

#include "core/config.hpp"
#include "core/error.hpp"
#include "fit/fit_config.hpp"

namespace slitstep {
namespace {

std::string error_of(const std::string& text) {
  try {
    const Config c = Config::from_string(text, "m.toml");
    (void)read_fit_model_config(c);
    c.check_all_used();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(FitConfig, ReadsEveryTable) {
  const Config c = Config::from_string(R"([fit]
space = "cube"
instrument = "ifu"
max_iterations = 50
threads = 2
sample = true
walkers = 40
steps = 300
burn_in = 100
seed = 9
data_redshift = 0.0
[model]
redshift = 0.05
rotation_curve = "tanh"
ew_halpha_rest_A = 0.0
lines = ["nii6548", "halpha", "nii6584"]
[params.vc_kms]
value = 150
lower = 10
upper = 400
prior_mean = 160
prior_sigma = 30
[params.sersic_n]
value = 1.5
[params.gradient_dex_per_kpc]
value = 0.0
fixed = true
[ifu]
psf_model = "multi_gaussian"
psf_weights = [0.646, 0.354]
psf_fwhms_arcsec = [2.30, 1.43]
lsf_fwhm_A = 1.61
)",
                                       "m.toml");
  const FitModelConfig m = read_fit_model_config(c);
  c.check_all_used();
  EXPECT_EQ(*m.run.space, FitSpace::kCube);
  EXPECT_EQ(m.run.instrument, FitInstrument::kIfu);
  EXPECT_EQ(m.run.fit.max_iterations, 50);
  EXPECT_TRUE(m.run.sample);
  EXPECT_EQ(m.run.sampler.walkers, 40);
  EXPECT_EQ(m.run.sampler.seed, 9u);
  EXPECT_EQ(*m.run.data_redshift, 0.0);
  EXPECT_EQ(*m.model.rotation_curve, "tanh");
  EXPECT_EQ(m.model.lines.size(), 3u);
  ASSERT_TRUE(m.ifu);
  EXPECT_EQ(m.ifu->psf_model, "multi_gaussian");
  ASSERT_EQ(m.params.size(), 3u);

  GalaxyParams start;
  apply_model_overrides(m.model, start);
  EXPECT_EQ(start.rotation_curve, "tanh");
  FitDataContext ctx{-7.5, 8.0, -6.5, 7.0};
  std::vector<std::string> notes;
  const GalaxyParameterization p = build_parameterization(start, m, ctx, &notes);
  EXPECT_EQ(p.spec("vc_kms").value, 150.0);
  EXPECT_EQ(p.spec("vc_kms").prior, Prior::gaussian(160.0, 30.0));
  EXPECT_TRUE(p.spec("gradient_dex_per_kpc").fixed);
  EXPECT_FALSE(p.spec("sersic_n").fixed);
  EXPECT_EQ(p.spec("center_x_arcsec").lower, -7.5);
  EXPECT_EQ(p.spec("center_y_arcsec").upper, 7.0);
  EXPECT_GE(p.spec("re_arcsec").upper, 10.0);
  EXPECT_EQ(p.num_free(), 12u);  // 12 standard - gradient + sersic_n
}

TEST(FitConfig, DefaultsWithoutAFile) {
  const Config c = Config::empty();
  const FitModelConfig m = read_fit_model_config(c);
  EXPECT_FALSE(m.run.space);
  EXPECT_EQ(m.run.instrument, FitInstrument::kAuto);
  EXPECT_FALSE(m.run.sample);
  EXPECT_FALSE(m.ifu);
  EXPECT_EQ(m.run.cube_noise, CubeNoiseMode::kInflate);  // the honest cube-space likelihood by default
  EXPECT_EQ(m.run.cube_noise_realisations, 32);
  GalaxyParams start;
  start.halpha_flux_cgs = 5.0;  // data in other units: the flux bound follows the start
  // The default galaxy has a continuum (EW 50 A): the twelve standard parameters plus the
  // continuum nuisance are free.
  const GalaxyParameterization p = build_parameterization(start, m, {}, nullptr);
  EXPECT_EQ(p.num_free(), 13u);
  EXPECT_FALSE(p.spec("ew_halpha_rest_A").fixed);
  EXPECT_GE(p.spec("halpha_flux_cgs").upper, 5000.0);
  // Without a continuum only the twelve.
  start.ew_halpha_rest_A = 0.0;
  EXPECT_EQ(build_parameterization(start, m, {}, nullptr).num_free(), 12u);
}

TEST(FitConfig, CubeNoiseOptions) {
  for (const auto& [text, mode] : {std::pair<std::string, CubeNoiseMode>{"whiten", CubeNoiseMode::kWhiten},
                                   {"inflate", CubeNoiseMode::kInflate},
                                   {"independent", CubeNoiseMode::kIndependent}}) {
    const Config c = Config::from_string("[fit]\ncube_noise = \"" + text + "\"\ncube_noise_realisations = 8\n"
                                         "cube_noise_seed = 5\n", "m.toml");
    const FitModelConfig m = read_fit_model_config(c);
    c.check_all_used();
    EXPECT_EQ(m.run.cube_noise, mode);
    EXPECT_EQ(cube_noise_mode_name(m.run.cube_noise), text);
    EXPECT_EQ(m.run.cube_noise_realisations, 8);
    EXPECT_EQ(m.run.cube_noise_seed, 5u);
  }
}

TEST(FitConfig, BadValuesNameFileLineAndKey) {
  EXPECT_NE(error_of("[fit]\nspace = \"pixels\"\n").find("m.toml:2: fit.space"), std::string::npos);
  EXPECT_NE(error_of("[fit]\nwalkers = 7\n").find("m.toml:2: fit.walkers = 7"), std::string::npos);
  EXPECT_NE(error_of("[fit]\nmax_iterations = 0\n").find("fit.max_iterations"), std::string::npos);
  EXPECT_NE(error_of("[model]\nrotation_curve = \"flat\"\n").find("m.toml:2: model.rotation_curve"),
            std::string::npos);
  EXPECT_NE(error_of("[model]\nredshift = -1\n").find("m.toml:2: model.redshift"), std::string::npos);
  EXPECT_NE(error_of("[model]\nlines = [\"halpha\", \"lya\"]\n").find("unknown line 'lya'"), std::string::npos);
  EXPECT_NE(error_of("[params.vc_kms]\nvalue = 50\nlower = 100\n").find("m.toml:2: params.vc_kms.value"),
            std::string::npos);
  EXPECT_NE(error_of("[params.inclination_deg]\nvalue = 95\n").find("params.inclination_deg.value = 95"),
            std::string::npos);
  EXPECT_NE(error_of("[params.sigma0_kms]\nprior_mean = 50\n").find("prior_sigma"), std::string::npos);
  EXPECT_NE(error_of("[params.sigma0_kms]\nprior_mean = 50\nprior_sigma = -1\n").find("params.sigma0_kms.prior_sigma"),
            std::string::npos);
  EXPECT_NE(error_of("[params.mass]\nvalue = 1\n").find("not a fittable parameter"), std::string::npos);
  EXPECT_NE(error_of("[params.vc_kms]\nvalu = 1\n").find("did you mean"), std::string::npos);
  EXPECT_NE(error_of("[ifu]\nnx = 10\n").find("m.toml:2: ifu.nx"), std::string::npos);
  EXPECT_NE(error_of("[ifu]\npsf_fwhm_arcsec = -1\n").find("ifu.psf_fwhm_arcsec"), std::string::npos);
  EXPECT_NE(error_of("[fit]\ncube_noise = \"correlated\"\n").find("m.toml:2: fit.cube_noise"),
            std::string::npos);
  EXPECT_NE(error_of("[fit]\ncube_noise_realisations = 1\n").find("m.toml:2: fit.cube_noise_realisations = 1"),
            std::string::npos);
  EXPECT_NE(error_of("[fit]\ncube_noise_seed = -3\n").find("fit.cube_noise_seed"), std::string::npos);
  EXPECT_NE(error_of("[fit]\ncube_nois = \"whiten\"\n").find("did you mean"), std::string::npos);
  // A fixed parameter may sit outside the default bounds (face-on disks).
  EXPECT_EQ(error_of("[params.inclination_deg]\nvalue = 0\nfixed = true\n"), "");
  EXPECT_NE(error_of("[params.inclination_deg]\nvalue = 0\nfixed = true\nlower = 0\n").find("fixed"),
            std::string::npos);
}

}  // namespace
}  // namespace slitstep
