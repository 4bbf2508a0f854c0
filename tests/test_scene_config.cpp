// Tests of sim/scene_config: TOML -> SceneConfig, errors naming file/line/key, truth.json.
#include <gtest/gtest.h>

#include "core/config.hpp"
#include "core/cosmology.hpp"
#include "core/error.hpp"
#include "sim/scene_config.hpp"

using namespace slitstep;

namespace {

const char* kFull = R"(seed = 42
[galaxy]
redshift = 1.3
log_mstar = 10.4
center_x_arcsec = 0.05
center_y_arcsec = -0.1
pa_deg = 120.0
axis_ratio = 0.5
thickness_q0 = 0.15
light_profile = "sersic"
sersic_n = 1.5
re_arcsec = 0.42
halpha_flux_cgs = 3.0e-17
rotation_curve = "tanh"
vc_kms = 210.0
rt_arcsec = 0.2
v0_kms = 12.0
sigma0_kms = 50.0
sigma_slope_kms_per_kpc = -1.0
z0_12logoh = 8.7
gradient_dex_per_kpc = -0.05
break_radius_kpc = 3.5
gradient_outer_dex_per_kpc = 0.0
calibration = "D16_N2S2Ha"
sii_ratio_6717_6731 = 1.2
ebv_mag = 0.2
extinction_curve = "calzetti2000"
ew_halpha_rest_A = 80.0
continuum_re_arcsec = 0.5
continuum_beta = -1.5
typo_key = 3
[[galaxy.clumps]]
x_arcsec = 0.2
y_arcsec = 0.1
sigma_arcsec = 0.05
halpha_flux_cgs = 2e-18
dz_dex = 0.1
[[galaxy.clumps]]
x_arcsec = -0.3
y_arcsec = 0.0
sigma_arcsec = 0.03
halpha_flux_cgs = 1e-18
dz_dex = -0.2
[galaxy.agn]
enabled = true
sigma_arcsec = 0.02
halpha_flux_cgs = 4e-18
sigma_kms = 170.0
log_nii_halpha = 0.2
log_oiii_hbeta = 0.8
log_sii_halpha = -0.1
[render]
pixel_arcsec = 0.025
fov_x_arcsec = 2.0
fov_y_arcsec = 3.0
channel_kms = 20.0
n_sigma = 5.0
window_padding_kms = 200.0
window_half_width_kms = 900.0
lines = "halpha, nii6584"
continuum_windows = false
continuum_window_half_A = 20.0
threads = 1
[sky]
ra_deg = 150.1
dec_deg = 2.2
aperture_pa_deg = 45.0
[cosmology]
h0_kms_mpc = 70.0
omega_m = 0.3
)";

// Message of the InputError thrown for a [galaxy]-style snippet.
std::string error_of(const std::string& text) {
  try {
    read_scene_config(Config::from_string(text, "scene.toml"));
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SceneConfig, EveryKeyParses) {
  const Config cfg = Config::from_string(kFull, "full.toml");
  const SceneConfig s = read_scene_config(cfg);
  const auto& g = s.galaxy;
  EXPECT_EQ(s.seed, 42u);
  EXPECT_DOUBLE_EQ(g.redshift, 1.3);
  EXPECT_DOUBLE_EQ(g.log_mstar, 10.4);
  EXPECT_DOUBLE_EQ(g.center_x_arcsec, 0.05);
  EXPECT_DOUBLE_EQ(g.center_y_arcsec, -0.1);
  EXPECT_DOUBLE_EQ(g.pa_deg, 120.0);
  EXPECT_FALSE(g.inclination_deg.has_value());
  EXPECT_DOUBLE_EQ(*g.axis_ratio, 0.5);
  EXPECT_DOUBLE_EQ(g.thickness_q0, 0.15);
  EXPECT_EQ(g.light_profile, "sersic");
  EXPECT_DOUBLE_EQ(g.sersic_n, 1.5);
  EXPECT_DOUBLE_EQ(g.re_arcsec, 0.42);
  EXPECT_DOUBLE_EQ(g.halpha_flux_cgs, 3e-17);
  EXPECT_EQ(g.rotation_curve, "tanh");
  EXPECT_DOUBLE_EQ(g.vc_kms, 210.0);
  EXPECT_DOUBLE_EQ(g.rt_arcsec, 0.2);
  EXPECT_DOUBLE_EQ(g.v0_kms, 12.0);
  EXPECT_DOUBLE_EQ(g.sigma0_kms, 50.0);
  EXPECT_DOUBLE_EQ(g.sigma_slope_kms_per_kpc, -1.0);
  EXPECT_DOUBLE_EQ(g.z0_12logoh, 8.7);
  EXPECT_DOUBLE_EQ(g.gradient_dex_per_kpc, -0.05);
  EXPECT_DOUBLE_EQ(*g.break_radius_kpc, 3.5);
  EXPECT_DOUBLE_EQ(*g.gradient_outer_dex_per_kpc, 0.0);
  EXPECT_EQ(g.calibration, "D16_N2S2Ha");
  EXPECT_DOUBLE_EQ(g.sii_ratio_6717_6731, 1.2);
  EXPECT_DOUBLE_EQ(g.ebv_mag, 0.2);
  EXPECT_EQ(g.extinction_curve, "calzetti2000");
  EXPECT_DOUBLE_EQ(g.ew_halpha_rest_A, 80.0);
  EXPECT_DOUBLE_EQ(*g.continuum_re_arcsec, 0.5);
  EXPECT_DOUBLE_EQ(g.continuum_beta, -1.5);
  ASSERT_EQ(g.clumps.size(), 2u);
  EXPECT_EQ(g.clumps[1], (ClumpParams{-0.3, 0.0, 0.03, 1e-18, -0.2}));
  EXPECT_EQ(g.agn, (AgnParams{true, 0.02, 4e-18, 170.0, 0.2, 0.8, -0.1}));
  const auto& r = s.render;
  EXPECT_DOUBLE_EQ(r.pixel_arcsec, 0.025);
  EXPECT_DOUBLE_EQ(r.fov_x_arcsec, 2.0);
  EXPECT_DOUBLE_EQ(r.fov_y_arcsec, 3.0);
  EXPECT_DOUBLE_EQ(r.channel_kms, 20.0);
  EXPECT_DOUBLE_EQ(r.n_sigma, 5.0);
  EXPECT_DOUBLE_EQ(r.window_padding_kms, 200.0);
  EXPECT_DOUBLE_EQ(*r.window_half_width_kms, 900.0);
  EXPECT_EQ(r.lines, (std::vector<LineId>{LineId::kHalpha, LineId::kNII6584}));
  EXPECT_FALSE(r.continuum_windows);
  EXPECT_DOUBLE_EQ(r.continuum_window_half_A, 20.0);
  EXPECT_EQ(r.threads, 1);
  EXPECT_EQ(s.sky, (SkyFrame{150.1, 2.2, 45.0}));
  EXPECT_DOUBLE_EQ(s.cosmology.h0_kms_mpc, 70.0);
  EXPECT_DOUBLE_EQ(s.cosmology.omega_m, 0.3);
  // The typo is left for the application's check_all_used().
  try {
    cfg.check_all_used();
    FAIL() << "typo_key should be refused by check_all_used";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("typo_key"), std::string::npos) << e.what();
  }
}

TEST(SceneConfig, EmptyConfigGivesTheDefaults) {
  const SceneConfig s = read_scene_config(Config::empty());
  EXPECT_EQ(s.galaxy, GalaxyParams{});
  EXPECT_EQ(s.render, RenderOptions{});
  EXPECT_EQ(s.sky, SkyFrame{});
  EXPECT_EQ(s.seed, 1u);
}

TEST(SceneConfig, BadValuesNameFileLineAndKey) {
  struct Case { std::string text; std::string line; std::string key; };
  const Case cases[] = {
      {"[galaxy]\ninclination_deg = 95\n", ":2", "galaxy.inclination_deg"},
      {"[galaxy]\naxis_ratio = 1.2\n", ":2", "galaxy.axis_ratio"},
      {"[galaxy]\nredshift = 0.0\n", ":2", "galaxy.redshift"},
      {"[galaxy]\nredshift = -1.0\n", ":2", "galaxy.redshift"},
      {"[galaxy]\nre_arcsec = -0.2\n", ":2", "galaxy.re_arcsec"},
      {"[galaxy]\nhalpha_flux_cgs = -1e-17\n", ":2", "galaxy.halpha_flux_cgs"},
      {"[galaxy]\nsigma0_kms = -5\n", ":2", "galaxy.sigma0_kms"},
      {"[galaxy]\nlight_profile = \"king\"\n", ":2", "galaxy.light_profile"},
      {"[galaxy]\nrotation_curve = \"flat\"\n", ":2", "galaxy.rotation_curve"},
      {"[galaxy]\ncalibration = \"KK04\"\n", ":2", "galaxy.calibration"},
      {"[galaxy]\ninclination_deg = 50\naxis_ratio = 0.6\n", ":3", "galaxy.axis_ratio"},
      {"[galaxy]\nthickness_q0 = 0.5\naxis_ratio = 0.3\n", ":3", "galaxy.axis_ratio"},
      {"[galaxy]\n\n[[galaxy.clumps]]\nx_arcsec = 0.1\nsigma_arcsec = -0.1\n", ":5", "galaxy.clumps[0].sigma_arcsec"},
      {"[galaxy.agn]\nenabled = true\nsigma_kms = 0\n", ":3", "galaxy.agn.sigma_kms"},
      {"[render]\npixel_arcsec = 0\n", ":2", "render.pixel_arcsec"},
      {"[render]\nchannel_kms = -3\n", ":2", "render.channel_kms"},
      {"[render]\nlines = \"halpha, oii3727\"\n", ":2", "render.lines"},
      {"[sky]\ndec_deg = 95\n", ":2", "sky.dec_deg"},
      {"[cosmology]\nomega_m = 1.5\n", ":2", "cosmology.omega_m"},
  };
  for (const auto& c : cases) {
    const std::string m = error_of(c.text);
    EXPECT_NE(m.find("scene.toml" + c.line), std::string::npos) << c.text << " -> " << m;
    EXPECT_NE(m.find(c.key), std::string::npos) << c.text << " -> " << m;
  }
}

TEST(SceneConfig, TruthJsonHasTheConfigKeysAndDerivedValues) {
  const SceneConfig s = read_scene_config(Config::from_string(kFull, "full.toml"));
  const GalaxyModel m(s.galaxy, Cosmology(s.cosmology));
  const std::string j = truth_json(s, m).dump();
  for (const char* key : {"\"redshift\"", "\"re_arcsec\"", "\"inclination_deg\"", "\"pa_deg\"", "\"vc_kms\"",
                          "\"rt_arcsec\"", "\"v0_kms\"", "\"sigma0_kms\"", "\"z0_12logoh\"",
                          "\"gradient_dex_per_kpc\"", "\"halpha_flux_cgs\"", "\"log_mstar\"",
                          "\"ew_halpha_rest_A\"", "\"seed\": 42", "\"sky\"", "\"cosmology\"", "\"clumps\"",
                          "\"agn\"", "\"kpc_per_arcsec\"", "\"re_kpc\"", "\"gradient_dex_per_re\"",
                          "\"line_flux_total_cgs\"", "\"nii6584\""})
    EXPECT_NE(j.find(key), std::string::npos) << key;
  const std::string d = describe_model(m);
  EXPECT_NE(d.find("inclination"), std::string::npos);
  EXPECT_NE(d.find("D16_N2S2Ha"), std::string::npos);
  EXPECT_EQ(d.find("\n\n"), std::string::npos);
}
