#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <ostream>
#include <string>

#include "analysis/classify.hpp"
#include "core/error.hpp"

using namespace slitstep;

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kD = 1e-6;  // "just above / just below" a curve
using SC = SpaxelClass;
}  // namespace

namespace slitstep {
void PrintTo(SpaxelClass c, std::ostream* os) { *os << spaxel_class_name(c); }
}  // namespace slitstep

TEST(Classify, Names) {
  const std::pair<SC, const char*> all[] = {
      {SC::kStarForming, "SF"}, {SC::kComposite, "composite"}, {SC::kAGN, "AGN"},
      {SC::kLINER, "LINER"},    {SC::kRetired, "retired"},     {SC::kPassive, "passive"},
      {SC::kUnclassified, "unclassified"}};
  for (auto [c, n] : all) {
    EXPECT_EQ(spaxel_class_name(c), n);
    SC back = SC::kUnclassified;
    ASSERT_TRUE(spaxel_class_from_name(n, back));
    EXPECT_EQ(back, c);
  }
  SC out = SC::kAGN;
  EXPECT_FALSE(spaxel_class_from_name("sf", out));
  EXPECT_EQ(out, SC::kAGN);
}

TEST(Classify, CurvesMatchTheReference) {
  EXPECT_NEAR(kewley01_y(0.0), 0.61 / -0.47 + 1.19, 1e-15);
  EXPECT_NEAR(kauffmann03_y(-0.5), 0.61 / -0.55 + 1.30, 1e-15);
  EXPECT_NEAR(schawinski07_y(0.2), 1.05 * 0.2 + 0.45, 1e-15);
  EXPECT_NEAR(kewley06_sii_sf_y(-0.3), 0.72 / -0.62 + 1.30, 1e-15);
  EXPECT_NEAR(kewley06_sii_seyfert_liner_y(-0.2), 1.89 * -0.2 + 0.76, 1e-15);
  EXPECT_TRUE(std::isnan(kewley01_y(0.47)));
  EXPECT_TRUE(std::isnan(kauffmann03_y(0.05)));
  EXPECT_TRUE(std::isnan(kewley06_sii_sf_y(0.32)));
  // S07 meets the left branch of Ke01 at (-0.184, 0.257).
  EXPECT_NEAR(kewley01_y(-0.184), 0.257, 1e-3);
  EXPECT_NEAR(schawinski07_y(-0.184), 0.257, 1e-3);
}

TEST(Classify, BptJustAboveAndBelowKauffmann03) {
  for (double x : {-1.2, -0.8, -0.5, -0.2, 0.0, 0.04}) {
    const double y = kauffmann03_y(x);
    EXPECT_EQ(classify_bpt_nii(x, y - kD), SC::kStarForming) << x;
    EXPECT_EQ(classify_bpt_nii(x, y + kD), SC::kComposite) << x;
    EXPECT_EQ(classify_bpt_nii(x, y), SC::kComposite) << x;  // on the curve counts as above
  }
}

TEST(Classify, BptJustAboveAndBelowKewley01) {
  // Left of the S07 intersection the region above Ke01 is Seyfert (AGN).
  for (double x : {-1.0, -0.6, -0.3}) {
    const double y = kewley01_y(x);
    EXPECT_EQ(classify_bpt_nii(x, y - kD), SC::kComposite) << x;
    EXPECT_EQ(classify_bpt_nii(x, y + kD), SC::kAGN) << x;
  }
  // Right of it, above Ke01 but below S07 is LINER.
  for (double x : {-0.1, 0.1, 0.3, 0.46}) {
    const double y = kewley01_y(x);
    EXPECT_EQ(classify_bpt_nii(x, y - kD), SC::kComposite) << x;
    EXPECT_EQ(classify_bpt_nii(x, y + kD), SC::kLINER) << x;
  }
  // Without the Seyfert/LINER split everything above Ke01 is AGN.
  ClassifyOptions o;
  o.split_seyfert_liner = false;
  EXPECT_EQ(classify_bpt_nii(0.1, kewley01_y(0.1) + kD, o), SC::kAGN);
  EXPECT_EQ(classify_bpt_nii(0.6, -2.0, o), SC::kAGN);
}

TEST(Classify, BptBranchDomains) {
  // 0.05 <= x < 0.47: above Ka03 whatever y, so composite if below Ke01.
  EXPECT_EQ(classify_bpt_nii(0.05, -5.0), SC::kComposite);
  EXPECT_EQ(classify_bpt_nii(0.2, -3.0), SC::kComposite);
  EXPECT_EQ(classify_bpt_nii(0.049, -700.0), SC::kStarForming);  // Ka03(0.049) = -608.7
  EXPECT_EQ(classify_bpt_nii(0.049, -600.0), SC::kComposite);
  // x >= 0.47: above Ke01 whatever y (the right branch of the hyperbola is never used).
  EXPECT_EQ(classify_bpt_nii(0.47, -5.0), SC::kLINER);
  EXPECT_EQ(classify_bpt_nii(0.8, 0.5), SC::kLINER);   // below S07 (1.29)
  EXPECT_EQ(classify_bpt_nii(0.8, 1.5), SC::kAGN);     // above S07
  EXPECT_EQ(classify_bpt_nii(0.469, -700.0), SC::kComposite);  // Ke01(0.469) = -608.8
  EXPECT_EQ(classify_bpt_nii(0.469, -600.0), SC::kLINER);
  // Far left, Ka03 is above Ke01 (they cross at x = -1.2805): SF takes precedence there.
  const double x = -2.0;
  ASSERT_GT(kauffmann03_y(x), kewley01_y(x));
  EXPECT_EQ(classify_bpt_nii(x, 0.5 * (kauffmann03_y(x) + kewley01_y(x))), SC::kStarForming);
  EXPECT_EQ(classify_bpt_nii(x, kauffmann03_y(x) + kD), SC::kAGN);
}

TEST(Classify, SchawinskiLineAboveKewley01) {
  for (double x : {0.0, 0.2, 0.6, 1.0}) {
    const double y = schawinski07_y(x);
    ASSERT_TRUE(x >= 0.47 || y > kewley01_y(x));
    EXPECT_EQ(classify_bpt_nii(x, y + kD), SC::kAGN) << x;
    EXPECT_EQ(classify_bpt_nii(x, y - kD), SC::kLINER) << x;
    EXPECT_EQ(classify_bpt_nii(x, y), SC::kLINER) << x;  // on S07: not above it
  }
  // Around the Ke01/S07 intersection (-0.184, 0.257).
  const double xi = -0.184, yi = 0.257;
  EXPECT_EQ(classify_bpt_nii(xi, yi - 0.01), SC::kComposite);
  EXPECT_EQ(classify_bpt_nii(xi, yi + 0.01), SC::kAGN);
  // Left of it S07 lies below Ke01: everything above Ke01 is Seyfert.
  const double xl = -0.204;  // Ke01 = 0.2850, S07 = 0.2358
  ASSERT_LT(schawinski07_y(xl), kewley01_y(xl));
  EXPECT_EQ(classify_bpt_nii(xl, kewley01_y(xl) - kD), SC::kComposite);
  EXPECT_EQ(classify_bpt_nii(xl, kewley01_y(xl) + kD), SC::kAGN);
  // Right of it S07 lies above Ke01: between them LINER, above S07 Seyfert.
  const double xr = -0.164;  // Ke01 = 0.2279, S07 = 0.2778
  ASSERT_GT(schawinski07_y(xr), kewley01_y(xr));
  EXPECT_EQ(classify_bpt_nii(xr, kewley01_y(xr) - kD), SC::kComposite);
  EXPECT_EQ(classify_bpt_nii(xr, kewley01_y(xr) + kD), SC::kLINER);
  EXPECT_EQ(classify_bpt_nii(xr, schawinski07_y(xr) + kD), SC::kAGN);
  // The crossing itself, from the two formulas: 1.05 x^2 - 1.2335 x - 0.2622 = 0.
  const double xc = (1.2335 - std::sqrt(1.2335 * 1.2335 + 4 * 1.05 * 0.2622)) / 2.1;
  EXPECT_NEAR(xc, xi, 5e-4);
  EXPECT_NEAR(kewley01_y(xc), schawinski07_y(xc), 1e-12);
  EXPECT_NEAR(kewley01_y(xc), yi, 5e-4);
}

TEST(Classify, BptSiiKewley06) {
  for (double x : {-1.0, -0.5, -0.2, 0.1, 0.3}) {
    const double y = kewley06_sii_sf_y(x);
    EXPECT_EQ(classify_bpt_sii(x, y - kD), SC::kStarForming) << x;
    EXPECT_NE(classify_bpt_sii(x, y + kD), SC::kStarForming) << x;
  }
  EXPECT_EQ(classify_bpt_sii(0.32, -3.0), SC::kLINER);  // x >= 0.32: above the SF line
  for (double x : {-0.1, 0.1, 0.4}) {
    const double y = kewley06_sii_seyfert_liner_y(x);
    ASSERT_TRUE(x >= 0.32 || y > kewley06_sii_sf_y(x));
    EXPECT_EQ(classify_bpt_sii(x, y + kD), SC::kAGN) << x;
    EXPECT_EQ(classify_bpt_sii(x, y - kD), SC::kLINER) << x;
  }
}

TEST(Classify, WhanRegionsAndEdges) {
  // SF: N2 < -0.4 and W > 3.
  EXPECT_EQ(classify_whan(-0.6, 20.0, 5.0), SC::kStarForming);
  EXPECT_EQ(classify_whan(-0.4 - kD, 3.0 + kD, 1.0), SC::kStarForming);
  // Strong AGN: N2 > -0.4 and W > 6.
  EXPECT_EQ(classify_whan(-0.2, 20.0, 10.0), SC::kAGN);
  EXPECT_EQ(classify_whan(-0.4 + kD, 6.0 + kD, 3.0), SC::kAGN);
  // Weak AGN: N2 > -0.4 and 3 < W < 6.
  EXPECT_EQ(classify_whan(-0.2, 4.5, 3.0), SC::kLINER);
  EXPECT_EQ(classify_whan(-0.4 + kD, 6.0 - kD, 3.0), SC::kLINER);
  EXPECT_EQ(classify_whan(-0.4 + kD, 3.0 + kD, 3.0), SC::kLINER);
  // Retired: W < 3 whatever N2.
  EXPECT_EQ(classify_whan(-0.6, 3.0 - kD, 1.0), SC::kRetired);
  EXPECT_EQ(classify_whan(0.2, 1.0, 1.0), SC::kRetired);
  // Passive: W(Halpha) and W([NII]) both < 0.5.
  EXPECT_EQ(classify_whan(0.0, 0.4, 0.4), SC::kPassive);
  EXPECT_EQ(classify_whan(-1.0, 0.4, 0.1), SC::kPassive);
  EXPECT_EQ(classify_whan(0.0, 0.4, 0.6), SC::kRetired);
  EXPECT_EQ(classify_whan(0.0, -0.2, -0.1), SC::kPassive);  // absorption
  // Edges exactly on the thresholds.
  EXPECT_EQ(classify_whan(-0.6, 3.0, 1.0), SC::kStarForming);  // W = 3 is not retired
  EXPECT_EQ(classify_whan(-0.2, 3.0, 1.0), SC::kLINER);
  EXPECT_EQ(classify_whan(-0.2, 6.0, 1.0), SC::kLINER);        // W = 6 is weak AGN
  EXPECT_EQ(classify_whan(-0.4, 10.0, 1.0), SC::kAGN);         // N2 = -0.4 is on the AGN side
  EXPECT_EQ(classify_whan(-0.4, 4.0, 1.0), SC::kLINER);
  EXPECT_EQ(classify_whan(-0.4, 2.0, 1.0), SC::kRetired);
  EXPECT_EQ(classify_whan(0.0, 0.5, 0.1), SC::kRetired);       // W = 0.5 is not passive
  EXPECT_EQ(classify_whan(0.0, 0.1, 0.5), SC::kRetired);
}

TEST(Classify, NonFiniteIsUnclassified) {
  for (double bad : {kNaN, kInf, -kInf}) {
    EXPECT_EQ(classify_bpt_nii(bad, 0.0), SC::kUnclassified);
    EXPECT_EQ(classify_bpt_nii(-0.5, bad), SC::kUnclassified);
    EXPECT_EQ(classify_bpt_sii(bad, 0.0), SC::kUnclassified);
    EXPECT_EQ(classify_bpt_sii(-0.5, bad), SC::kUnclassified);
    EXPECT_EQ(classify_whan(bad, 10.0, 1.0), SC::kUnclassified);
    EXPECT_EQ(classify_whan(-0.5, bad, 1.0), SC::kUnclassified);
    EXPECT_EQ(classify_whan(-0.5, 10.0, bad), SC::kUnclassified);
  }
}

TEST(Classify, SpaxelUsesBptWhenPossibleElseWhan) {
  // BPT says composite; WHAN would say strong AGN.
  EXPECT_EQ(classify_spaxel(0.1, -1.0, 20.0, 10.0), SC::kComposite);
  // No [OIII]/Hbeta: WHAN.
  EXPECT_EQ(classify_spaxel(0.1, kNaN, 20.0, 10.0), SC::kAGN);
  EXPECT_EQ(classify_spaxel(-0.6, kNaN, 20.0, 3.0), SC::kStarForming);
  EXPECT_EQ(classify_spaxel(-0.6, kNaN, 1.0, 0.2), SC::kRetired);
  EXPECT_EQ(classify_spaxel(kNaN, kNaN, 20.0, 3.0), SC::kUnclassified);
}

TEST(Classify, OptionsDefaultsAndValidate) {
  ClassifyOptions o;
  EXPECT_NO_THROW(o.validate());
  EXPECT_EQ(o.ke01_a, 0.61);
  EXPECT_EQ(o.ke01_x0, 0.47);
  EXPECT_EQ(o.ke01_c, 1.19);
  EXPECT_EQ(o.ka03_x0, 0.05);
  EXPECT_EQ(o.ka03_c, 1.30);
  EXPECT_EQ(o.whan_n2, -0.4);
  EXPECT_EQ(o.whan_ew_retired_A, 3.0);
  EXPECT_EQ(o.whan_ew_strong_agn_A, 6.0);
  EXPECT_EQ(o.whan_ew_passive_A, 0.5);
  auto expect_throw = [](ClassifyOptions bad, const std::string& field, const std::string& value) {
    try {
      bad.validate();
      FAIL() << "no throw for " << field;
    } catch (const InvalidOptions& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(field), std::string::npos) << msg;
      EXPECT_NE(msg.find(value), std::string::npos) << msg;
      EXPECT_NE(msg.find("must"), std::string::npos) << msg;
    }
  };
  ClassifyOptions b = o;
  b.ke01_a = -0.61;
  expect_throw(b, "ke01_a", "-0.61");
  b = o;
  b.ka03_c = kNaN;
  expect_throw(b, "ka03_c", "nan");
  b = o;
  b.ka03_x0 = 0.6;
  expect_throw(b, "ka03_x0", "0.6");
  b = o;
  b.whan_ew_strong_agn_A = 2.0;
  expect_throw(b, "whan_ew_strong_agn_A", "2");
  b = o;
  b.whan_ew_passive_A = -1.0;
  expect_throw(b, "whan_ew_passive_A", "-1");
  b = o;
  b.whan_ew_passive_A = 4.0;
  expect_throw(b, "whan_ew_passive_A", "4");
}

TEST(Classify, CustomThresholdsAreUsed) {
  ClassifyOptions o;
  o.whan_n2 = -0.3;
  o.whan_ew_retired_A = 4.0;
  EXPECT_EQ(classify_whan(-0.35, 5.0, 1.0, o), SC::kStarForming);
  EXPECT_EQ(classify_whan(-0.35, 3.5, 1.0, o), SC::kRetired);
  EXPECT_EQ(classify_whan(-0.35, 5.0, 1.0), SC::kLINER);
}
