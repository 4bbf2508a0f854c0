// Unit tests of validation/campaign on a SMALL configuration (3 steps x 2 dithers, 0.04" render
// pixels, Halpha + [NII] windows): options validation; results bit-identical with 1 and 2 threads
// (realisation i uses Rng substream i); resume from the CSV (finished realisations are read back,
// not recomputed; a CSV of another campaign is refused); a failed realisation is recorded with its
// status, never fatal. The statistical acceptance runs in tests/test_campaign_slow.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/table_io.hpp"
#include "sim/simulate.hpp"
#include "validation/campaign.hpp"
#include "helpers/configs.hpp"

namespace slitstep {
namespace {

SimulationConfig small_config() {
  SimulationConfig c = test::small_slitstep_config();
  c.scene.render.continuum_windows = true;  // the per-spaxel path needs the continuum windows
  c.scene.galaxy.halpha_flux_cgs = 1e-16;
  return c;
}

CampaignOptions small_options() {
  CampaignOptions o;
  o.n_realisations = 2;
  o.seed = 7;
  o.free_parameters = {"vc_kms", "sigma0_kms"};
  o.per_spaxel = false;
  return o;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_same(const RealisationResult& a, const RealisationResult& b) {
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.evaluations, b.evaluations);
  EXPECT_TRUE(same_bits(a.chi2, b.chi2));
  ASSERT_EQ(a.value.size(), b.value.size());
  for (std::size_t k = 0; k < a.value.size(); ++k) {
    EXPECT_TRUE(same_bits(a.value[k], b.value[k])) << k;
    EXPECT_TRUE(same_bits(a.err[k], b.err[k])) << k;
    EXPECT_TRUE(same_bits(a.pull[k], b.pull[k])) << k;
    EXPECT_TRUE(same_bits(a.start[k], b.start[k])) << k;
  }
  EXPECT_TRUE(same_bits(a.sp_gradient, b.sp_gradient));
  EXPECT_TRUE(same_bits(a.sp_vc, b.sp_vc));
  EXPECT_TRUE(same_bits(a.sp_sigma0, b.sp_sigma0));
}

std::string temp_csv(const char* name) {
  const auto p = std::filesystem::temp_directory_path() / (std::string("slitstep_campaign_") + name + ".csv");
  std::filesystem::remove(p);
  return p.string();
}

TEST(Campaign, OptionsValidate) {
  CampaignOptions o;
  EXPECT_NO_THROW(o.validate());
  EXPECT_EQ(o.op.space, SlitstepOperatorOptions::Space::kExposure);
  o.n_realisations = 0;
  EXPECT_THROW(o.validate(), InvalidOptions);
  o = CampaignOptions();
  o.start_perturbation = 1.5;
  EXPECT_THROW(o.validate(), InvalidOptions);
  o = CampaignOptions();
  o.free_parameters = {"vc_kms", "not_a_parameter"};
  try {
    o.validate();
    ADD_FAILURE() << "no throw";
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("not_a_parameter"), std::string::npos) << e.what();
  }
  o.free_parameters = {"vc_kms", "vc_kms"};
  EXPECT_THROW(o.validate(), InvalidOptions);
  o = CampaignOptions();
  o.threads = -1;
  EXPECT_THROW(o.validate(), InvalidOptions);
}

TEST(Campaign, DeterministicForOneAndTwoThreads) {
  const SimulationConfig c = small_config();
  CampaignOptions o = small_options();
  o.per_spaxel = true;
  o.threads = 1;
  const CampaignResult a = run_injection_campaign(c, o);
  o.threads = 2;
  const CampaignResult b = run_injection_campaign(c, o);
  std::printf("%s", format_campaign_report(b).c_str());
  ASSERT_EQ(a.realisations.size(), 2u);
  ASSERT_EQ(b.realisations.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    expect_same(a.realisations[i], b.realisations[i]);
    EXPECT_TRUE(a.realisations[i].ok()) << a.realisations[i].reason;
    EXPECT_TRUE(a.realisations[i].spaxel_ran);
  }
  EXPECT_NE(a.realisations[0].seed, a.realisations[1].seed);
  EXPECT_FALSE(same_bits(a.realisations[0].value[0], a.realisations[1].value[0]));
  ASSERT_TRUE(a.fisher.status.ok()) << a.fisher.status.message;
  ASSERT_EQ(a.params.size(), 2u);
  EXPECT_EQ(a.params[0].n, 2);
  EXPECT_GT(a.params[0].crb, 0.0);
  EXPECT_TRUE(same_bits(a.params[0].crb, b.params[0].crb));
  // the start is perturbed by 20 % of the truth
  for (std::size_t k = 0; k < 2; ++k)
    EXPECT_NEAR(std::abs(a.realisations[0].start[k] / a.truth[k] - 1.0), 0.2, 1e-12);
  // pulls are (fit - truth) / err
  const auto& r = a.realisations[1];
  EXPECT_NEAR(r.pull[0], (r.value[0] - a.truth[0]) / r.err[0], 1e-12);
  ASSERT_EQ(a.spaxel.size(), 3u);
}

TEST(Campaign, ResumesFromCsv) {
  const SimulationConfig c = small_config();
  const std::string csv = temp_csv("resume");
  CampaignOptions o = small_options();
  o.threads = 2;
  o.csv_path = csv;
  const CampaignResult first = run_injection_campaign(c, o);
  ASSERT_TRUE(std::filesystem::exists(csv));
  EXPECT_EQ(read_csv(csv).num_rows(), 2u);
  EXPECT_EQ(first.n_resumed, 0);
  // restart with one more realisation: 0 and 1 are read back, 2 is computed
  o.n_realisations = 3;
  const CampaignResult second = run_injection_campaign(c, o);
  EXPECT_EQ(second.n_resumed, 2);
  ASSERT_EQ(second.realisations.size(), 3u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(second.realisations[i].resumed);
    expect_same(first.realisations[i], second.realisations[i]);
  }
  EXPECT_FALSE(second.realisations[2].resumed);
  EXPECT_TRUE(second.realisations[2].ok()) << second.realisations[2].reason;
  EXPECT_EQ(read_csv(csv).num_rows(), 3u);
  // the statistics of the resumed campaign equal those of a summary of the same rows
  CampaignResult copy = second;
  summarise_campaign(copy);
  EXPECT_TRUE(same_bits(copy.params[0].mean_pull, second.params[0].mean_pull));
  // a CSV of another campaign (other seed, other free parameters) is refused
  o.seed = 8;
  EXPECT_THROW(run_injection_campaign(c, o), InputError);
  o.seed = 7;
  o.free_parameters = {"vc_kms"};
  EXPECT_THROW(run_injection_campaign(c, o), InputError);
  std::filesystem::remove(csv);
}

TEST(Campaign, FailedRealisationIsRecordedNotFatal) {
  SimulationConfig c = small_config();
  c.scene.galaxy.halpha_flux_cgs = 0.0;  // nothing to fit: the fitter reports "no signal"
  c.scene.galaxy.ew_halpha_rest_A = 0.0;
  CampaignOptions o = small_options();
  o.threads = 2;
  o.csv_path = temp_csv("failed");
  CampaignResult r;
  ASSERT_NO_THROW(r = run_injection_campaign(c, o));
  ASSERT_EQ(r.realisations.size(), 2u);
  EXPECT_EQ(r.n_failed, 2);
  EXPECT_EQ(r.n_converged, 0);
  for (const auto& x : r.realisations) {
    EXPECT_FALSE(x.ok());
    EXPECT_FALSE(x.reason.empty());
    std::printf("[ info ] realisation %d: %s (%s)\n", x.index, fit_status_name(x.status), x.reason.c_str());
  }
  EXPECT_EQ(r.params[0].n, 0);
  EXPECT_TRUE(std::isnan(r.params[0].mean_pull));
  // the failures are in the CSV and are not re-run on restart
  const CampaignResult again = run_injection_campaign(c, o);
  EXPECT_EQ(again.n_resumed, 2);
  EXPECT_EQ(again.realisations[0].status, r.realisations[0].status);
  EXPECT_EQ(again.realisations[0].reason, r.realisations[0].reason);
  std::filesystem::remove(o.csv_path);
}

}  // namespace
}  // namespace slitstep
