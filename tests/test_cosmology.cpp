#include <gtest/gtest.h>

#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <limits>

#include "core/cosmology.hpp"
#include "core/error.hpp"

using namespace slitstep;

namespace {

void expect_rel(double got, double want, double rel) {
  EXPECT_LE(std::abs(got - want), rel * std::abs(want)) << "got " << got << " want " << want;
}

struct Row {
  double z, dc, da, dl, kpc;  // dc, dl = 0 where the table has no entry
};

// calibrations.md §3.5 (H0 = 69.32, Om = 0.2865, flat, no radiation).
constexpr Row kTable[] = {
    {0.50, 1916.16, 1277.44, 2874.24, 6.1932},  {0.75, 2692.45, 1538.54, 4711.78, 7.4591},
    {1.00, 3363.39, 1681.70, 6726.79, 8.1531},  {1.104, 0.0, 1718.30, 0.0, 8.3306},
    {1.25, 3945.05, 1753.35, 8876.36, 8.5005},  {1.50, 4452.36, 1780.94, 11130.90, 8.6343},
    {1.70, 4813.33, 1782.71, 12995.98, 8.6428},
};

}  // namespace

TEST(Cosmology, DefaultsAreThePapers) {
  Cosmology c;
  EXPECT_DOUBLE_EQ(c.params().h0_kms_mpc, 69.32);
  EXPECT_DOUBLE_EQ(c.params().omega_m, 0.2865);
  EXPECT_NEAR(c.hubble_distance_mpc(), 299792.458 / 69.32, 1e-9);
}

TEST(Cosmology, ReproducesTheReferenceTable) {
  Cosmology c;
  double worst = 0.0;
  auto check = [&](double got, double want) {
    if (want == 0.0) return;
    const double rel = std::abs(got - want) / want;
    worst = std::max(worst, rel);
    expect_rel(got, want, 1e-4);
  };
  for (const auto& r : kTable) {
    SCOPED_TRACE(r.z);
    check(c.comoving_distance_mpc(r.z), r.dc);
    check(c.angular_diameter_distance_mpc(r.z), r.da);
    check(c.luminosity_distance_mpc(r.z), r.dl);
    check(c.kpc_per_arcsec(r.z), r.kpc);
  }
  // The table is rounded to 6 significant figures; the worst mismatch is rounding only.
  EXPECT_LT(worst, 2e-5);
  std::ostringstream os;
  os << std::setprecision(3) << worst;
  RecordProperty("worst_relative_error", os.str());
  std::cout << "worst relative error against the table: " << os.str() << "\n";
}

TEST(Cosmology, StandardCalculatorSanityCheck) {
  Cosmology c({70.0, 0.3});
  EXPECT_NEAR(c.angular_diameter_distance_mpc(1.0), 1651.9, 0.05);
  EXPECT_NEAR(c.kpc_per_arcsec(1.0), 8.0087, 0.00005);
}

TEST(Cosmology, PhysicalScalesAtRedshiftOne) {
  Cosmology c;
  const double s = c.kpc_per_arcsec(1.0);
  EXPECT_NEAR(0.1 * s, 0.815, 0.0005);    // NIRSpec-like 0.1" pixel
  EXPECT_NEAR(0.025 * s, 0.204, 0.0005);  // 0.025" cube grid
  EXPECT_NEAR(0.20 * s, 1.63, 0.005);     // shutter width
  EXPECT_NEAR(0.075 * s, 0.61, 0.005);    // along-slit dither
}

TEST(Cosmology, DistanceIdentities) {
  Cosmology c;
  for (double z : {0.01, 0.3, 1.0, 3.0, 10.0}) {
    const double dc = c.comoving_distance_mpc(z);
    EXPECT_NEAR(c.angular_diameter_distance_mpc(z), dc / (1 + z), 1e-9 * dc);
    EXPECT_NEAR(c.luminosity_distance_mpc(z), dc * (1 + z), 1e-9 * dc * (1 + z));
  }
  EXPECT_EQ(c.comoving_distance_mpc(0.0), 0.0);
  EXPECT_EQ(c.kpc_per_arcsec(0.0), 0.0);
  // Low-z Hubble law: D_C -> c z / H0.
  EXPECT_NEAR(c.comoving_distance_mpc(1e-6) / (1e-6 * c.hubble_distance_mpc()), 1.0, 1e-6);
}

TEST(Cosmology, EinsteinDeSitterClosedFormTo1e10) {
  // Om = 1: D_C = 2 D_H (1 - 1/sqrt(1+z)), exact.
  Cosmology c({70.0, 1.0});
  for (double z : {0.1, 1.0, 5.0, 1000.0}) {
    const double want = 2.0 * c.hubble_distance_mpc() * (1.0 - 1.0 / std::sqrt(1.0 + z));
    expect_rel(c.comoving_distance_mpc(z), want, 1e-10);
  }
}

TEST(Cosmology, ConvergedTo1e8) {
  // Against a closed form that holds for any flat LCDM: the low-Om limit is not analytic, so
  // compare with an independent high-order evaluation (Gauss-Legendre in z on many panels).
  Cosmology c({67.0, 0.05});
  const double om = 0.05, ol = 0.95;
  for (double z : {0.5, 2.0, 8.0}) {
    const int panels = 4000;
    const double h = z / panels;
    const double g = std::sqrt(3.0 / 5.0);
    double sum = 0.0;
    for (int i = 0; i < panels; ++i) {
      const double mid = (i + 0.5) * h;
      for (auto [t, w] : {std::pair{-g, 5.0 / 9}, std::pair{0.0, 8.0 / 9}, std::pair{g, 5.0 / 9}}) {
        const double zz = mid + 0.5 * h * t;
        sum += 0.5 * h * w / std::sqrt(om * std::pow(1 + zz, 3) + ol);
      }
    }
    expect_rel(c.comoving_distance_mpc(z), c.hubble_distance_mpc() * sum, 1e-8);
  }
}

TEST(Cosmology, InvalidRedshiftGivesNaN) {
  Cosmology c;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double z : {nan, -0.1, -1e-12, inf, -inf}) {
    EXPECT_TRUE(std::isnan(c.comoving_distance_mpc(z))) << z;
    EXPECT_TRUE(std::isnan(c.angular_diameter_distance_mpc(z))) << z;
    EXPECT_TRUE(std::isnan(c.luminosity_distance_mpc(z))) << z;
    EXPECT_TRUE(std::isnan(c.kpc_per_arcsec(z))) << z;
  }
}

TEST(Cosmology, ValidateNamesFieldValueAndRule) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (auto p : {CosmologyParams{0.0, 0.3}, CosmologyParams{-70.0, 0.3}, CosmologyParams{nan, 0.3}}) {
    try {
      Cosmology c(p);
      FAIL() << "no throw";
    } catch (const InvalidOptions& e) {
      EXPECT_NE(std::string(e.what()).find("h0_kms_mpc"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("> 0"), std::string::npos) << e.what();
    }
  }
  for (double om : {0.0, -0.1, 1.0000001, nan}) {
    try {
      CosmologyParams{70.0, om}.validate();
      FAIL() << "no throw for " << om;
    } catch (const InvalidOptions& e) {
      EXPECT_NE(std::string(e.what()).find("omega_m"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("(0, 1]"), std::string::npos) << e.what();
    }
  }
  try {
    CosmologyParams{70.0, 1.5}.validate();
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("1.5"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(CosmologyParams({70.0, 1.0}).validate());
}
