// The invariant checker on every model kind (flux conservation, PA+180 symmetry, shift covariance).
#include <gtest/gtest.h>

#include <functional>

#include "sim/invariants.hpp"

using namespace slitstep;

namespace {

// A field that cuts the disk (so the out-of-field accounting is exercised), off-centre galaxy.
RenderOptions small_options() {
  RenderOptions o;
  o.pixel_arcsec = 0.02;
  o.fov_x_arcsec = 1.2;
  o.fov_y_arcsec = 1.4;
  o.channel_kms = 25.0;
  o.lines = {LineId::kHbeta, LineId::kOIII5007, LineId::kHalpha, LineId::kNII6584, LineId::kSII6717};
  return o;
}

GalaxyParams base() {
  GalaxyParams p;
  p.center_x_arcsec = 0.031;
  p.center_y_arcsec = -0.047;
  p.pa_deg = 37.0;
  return p;
}

struct Kind {
  const char* name;
  std::function<void(GalaxyParams&)> edit;
};

const Kind kKinds[] = {
    {"exponential_default", [](GalaxyParams&) {}},
    {"sersic_n0.5", [](GalaxyParams& p) { p.light_profile = "sersic"; p.sersic_n = 0.5; }},
    {"sersic_n1", [](GalaxyParams& p) { p.light_profile = "sersic"; p.sersic_n = 1.0; }},
    {"sersic_n4", [](GalaxyParams& p) { p.light_profile = "sersic"; p.sersic_n = 4.0; }},
    {"rotation_tanh", [](GalaxyParams& p) { p.rotation_curve = "tanh"; }},
    {"rotation_freeman", [](GalaxyParams& p) { p.rotation_curve = "freeman"; p.rt_arcsec = 0.15; }},
    {"sigma_radial", [](GalaxyParams& p) { p.sigma_slope_kms_per_kpc = 4.0; }},
    {"gradient_broken", [](GalaxyParams& p) { p.break_radius_kpc = 2.0; p.gradient_outer_dex_per_kpc = 0.01; p.gradient_dex_per_kpc = -0.07; }},
    {"clumps", [](GalaxyParams& p) {
       p.clumps.push_back({0.25, 0.1, 0.04, 3e-18, 0.1});
       p.clumps.push_back({-0.2, -0.3, 0.012, 1e-18, -0.2});  // smaller than a fine pixel
     }},
    {"agn", [](GalaxyParams& p) { p.agn.enabled = true; }},
    {"continuum_off", [](GalaxyParams& p) { p.ew_halpha_rest_A = 0.0; }},
    {"continuum_own_radius", [](GalaxyParams& p) { p.continuum_re_arcsec = 0.5; p.continuum_beta = -2.0; }},
    {"thick_disk", [](GalaxyParams& p) { p.inclination_deg = 80.0; p.thickness_q0 = 0.2; }},
    {"axis_ratio_input", [](GalaxyParams& p) { p.axis_ratio = 0.35; p.thickness_q0 = 0.1; }},
    {"calibration_O3N2", [](GalaxyParams& p) { p.calibration = "PP04_O3N2"; }},
    {"calibration_D16", [](GalaxyParams& p) { p.calibration = "D16_N2S2Ha"; }},
    {"dust_calzetti", [](GalaxyParams& p) { p.ebv_mag = 0.4; p.extinction_curve = "calzetti2000"; }},
    {"face_on_v0", [](GalaxyParams& p) { p.inclination_deg = 0.0; p.v0_kms = 60.0; }},
};

}  // namespace

class Invariants : public ::testing::TestWithParam<int> {};

TEST_P(Invariants, HoldForModelKind) {
  const Kind& k = kKinds[GetParam()];
  GalaxyParams p = base();
  k.edit(p);
  const InvariantReport rep = check_invariants(p, small_options(), SkyFrame{});
  EXPECT_TRUE(rep.all_pass()) << k.name << "\n" << rep.table();
  EXPECT_TRUE(rep.status.ok()) << rep.status.message;
  for (const auto& c : rep.checks) RecordProperty(std::string(k.name) + "." + c.name, std::to_string(c.value));
}

INSTANTIATE_TEST_SUITE_P(AllKinds, Invariants,
                         ::testing::Range(0, static_cast<int>(sizeof(kKinds) / sizeof(kKinds[0]))),
                         [](const ::testing::TestParamInfo<int>& info) {
                           std::string n = kKinds[info.param].name;
                           for (auto& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(InvariantChecker, DetectsABrokenExpectation) {
  // The analytic in-field fraction must differ from a wrong rectangle: sanity of the reference.
  const GalaxyModel m(base(), Cosmology());
  const double f = profile_fraction_in_rect(m, 0.35, -0.6, 0.6, -0.7, 0.7);
  const double g = profile_fraction_in_rect(m, 0.35, -0.6, 0.6, -0.6, 0.7);
  EXPECT_GT(f, g);
  EXPECT_NEAR(profile_fraction_in_rect(m, 0.35, -50, 50, -50, 50), 1.0, 1e-9);
}
