// Issue-5 acceptance: injection-recovery campaigns (validation/campaign) on the default galaxy
// (inclination 55 deg) at the MSA-3D exposure (9 x 7 = 63 pointings, 1166 s each), exposure-space
// forward fits of v_c, sigma_0, inclination, PA and the gradient from a +-20 % start (flux, centre
// and the rest fixed at the truth), with the fitter's default operator (0.02" sky as the
// simulator; PSF factors cut at 4 sigma and 6-sigma profiles, a chi2 distance of 4e-7 from the
// simulator's model, tests/test_slitstep_operator.cpp).
//  1. Default Halpha flux (2e-17 cgs), 52 realisations (>= 50 must converge): |mean pull| <= 0.3
//     and pull std in [0.8, 1.25] for each of the five; |gradient bias| < err / 3; gradient
//     scatter <= 1.3 x the Cramer-Rao bound. The per-spaxel path runs on the same cubes; at this
//     flux it measures v_c, sigma_0 and the gradient only in some realisations (reported).
//  2. The same galaxy 5x brighter (1e-16 cgs, where the per-spaxel path of the paper measures all
//     three in every realisation), 16 realisations: the forward fit stays unbiased (|mean pull| <
//     3 / sqrt(n)) while the per-spaxel path shows its instrumental bias of v_c (beam smearing
//     plus the in-shutter position-velocity coupling; > 5 % and > 3 standard errors), side by side.
// Measured (shared machine, seed 2024 / 77): campaign 1 — 52 of 52 converged; mean pull / std
// vc -0.08/0.82, sigma0 -0.20/0.95, i -0.02/1.02, PA -0.08/1.00, gradient +0.06/1.14; gradient
// bias/err +0.025, scatter/CRB 1.13; per-spaxel analysis ok in 0 of 52 (v_c measured in 15).
// Campaign 2 — forward v_c bias -0.2 +- 0.3 km/s vs per-spaxel +62.8 +- 1.6 km/s; gradient
// -0.0006 +- 0.0006 vs -0.0042 +- 0.0018 dex/kpc. ~4 min CPU in all.
// SLITSTEP_CAMPAIGN_N overrides the count of campaign 1 (timing runs; no assertions below 50) and
// SLITSTEP_CAMPAIGN_CSV gives it a resume file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "sim/simulate.hpp"
#include "validation/campaign.hpp"
#include "helpers/configs.hpp"

namespace slitstep {
namespace {

SimulationConfig campaign_config(double halpha_flux_cgs) {
  SimulationConfig c = test::msa3d_default_config();
  c.scene.galaxy.inclination_deg = 55.0;
  c.scene.galaxy.halpha_flux_cgs = halpha_flux_cgs;
  return c;
}

void print_timing(const CampaignResult& r) {
  std::printf("%s", format_campaign_report(r).c_str());
  double sim_s = 0, fit_s = 0, spx_s = 0, evals = 0;
  int spaxel_ok = 0;
  for (const auto& x : r.realisations) {
    sim_s += x.simulate_s, fit_s += x.fit_s, spx_s += x.spaxel_s, evals += static_cast<double>(x.evaluations);
    if (x.spaxel_status == "ok") ++spaxel_ok;
    if (!x.ok()) std::printf("[ info ] realisation %d: %s (%s)\n", x.index, fit_status_name(x.status), x.reason.c_str());
  }
  const double n = static_cast<double>(r.realisations.size());
  std::printf("[ info ] per realisation (1 thread each, 2 in parallel): simulate %.1f s, fit %.1f s (%.0f evaluations), "
              "per-spaxel %.1f s (analysis ok in %d of %zu); model values %zu, used %zu\n",
              sim_s / n, fit_s / n, evals / n, spx_s / n, spaxel_ok, r.realisations.size(), r.model_values,
              r.used_values);
}

const ParameterSummary& param(const CampaignResult& r, const std::string& name) {
  for (const auto& p : r.params)
    if (p.name == name) return p;
  throw std::runtime_error("no parameter " + name);
}

TEST(CampaignSlow, DefaultGalaxyMsa3dPullsAndCramerRao) {
  const SimulationConfig c = campaign_config(2e-17);
  CampaignOptions o;
  o.n_realisations = 52;
  if (const char* n = std::getenv("SLITSTEP_CAMPAIGN_N")) o.n_realisations = std::atoi(n);
  o.seed = 2024;
  o.threads = 2;
  if (const char* p = std::getenv("SLITSTEP_CAMPAIGN_CSV")) o.csv_path = p;
  const CampaignResult r = run_injection_campaign(c, o);
  print_timing(r);
  ASSERT_TRUE(r.fisher.status.ok()) << r.fisher.status.message;
  if (o.n_realisations < 50) GTEST_SKIP() << "SLITSTEP_CAMPAIGN_N < 50: timing run, no assertions";
  ASSERT_GE(r.n_converged, 50) << r.n_failed << " failed";
  for (const auto& p : r.params) {
    EXPECT_LE(std::abs(p.mean_pull), 0.3) << p.name;
    EXPECT_GE(p.pull_std, 0.8) << p.name;
    EXPECT_LE(p.pull_std, 1.25) << p.name;
  }
  const ParameterSummary& g = param(r, "gradient_dex_per_kpc");
  std::printf("[ info ] gradient: bias %+.5f, err %.5f (bias / err = %+.3f), scatter / CRB = %.3f\n", g.bias, g.mean_err,
              g.bias / g.mean_err, g.scatter_over_crb);
  EXPECT_LT(std::abs(g.bias), g.mean_err / 3.0);
  EXPECT_LE(g.scatter_over_crb, 1.3);
}

TEST(CampaignSlow, BrightGalaxyForwardFitVersusPerSpaxelBeamSmearing) {
  const SimulationConfig c = campaign_config(1e-16);
  CampaignOptions o;
  o.n_realisations = 16;
  o.seed = 77;
  o.threads = 2;
  const CampaignResult r = run_injection_campaign(c, o);
  print_timing(r);
  ASSERT_GE(r.n_converged, 15) << r.n_failed << " failed";
  const double lim = 3.0 / std::sqrt(static_cast<double>(r.n_converged));
  for (const auto& p : r.params) EXPECT_LE(std::abs(p.mean_pull), lim) << p.name;
  const SpaxelSummary* vc = nullptr;
  for (const auto& s : r.spaxel)
    if (s.name == "vc_kms") vc = &s;
  ASSERT_NE(vc, nullptr);
  ASSERT_GE(vc->n, 12);
  const ParameterSummary& fv = param(r, "vc_kms");
  std::printf("[ info ] v_c: forward bias %+.2f +- %.2f km/s, per-spaxel bias %+.2f +- %.2f km/s (truth %.0f)\n", fv.bias,
              fv.bias_err, vc->bias, vc->bias_err, vc->truth);
  EXPECT_GT(vc->bias, 0.05 * vc->truth);
  EXPECT_GT(vc->bias, 3.0 * vc->bias_err);
}

}  // namespace
}  // namespace slitstep
