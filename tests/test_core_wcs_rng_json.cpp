#include <gtest/gtest.h>

#include <cmath>

#include "core/json.hpp"
#include "core/rng.hpp"
#include "core/units.hpp"
#include "core/wcs.hpp"

using namespace slitstep;

TEST(Frames, MsaSkyRotationRoundTripsAndHasTheStatedOrientation) {
  // PA = 0: +y is north, +x is west.
  auto s = msa_to_sky({1.0, 0.0}, Angle::from_deg(0));
  EXPECT_NEAR(s.xi_arcsec, -1.0, 1e-15);
  EXPECT_NEAR(s.eta_arcsec, 0.0, 1e-15);
  // PA = 90: the slit points east.
  s = msa_to_sky({0.0, 1.0}, Angle::from_deg(90));
  EXPECT_NEAR(s.xi_arcsec, 1.0, 1e-15);
  EXPECT_NEAR(s.eta_arcsec, 0.0, 1e-15);
  for (double pa : {-170.0, -30.0, 0.0, 37.0, 123.0, 359.0}) {
    const MsaOffset m{0.37, -1.21};
    const auto back = sky_to_msa(msa_to_sky(m, Angle::from_deg(pa)), Angle::from_deg(pa));
    EXPECT_NEAR(back.x_arcsec, m.x_arcsec, 1e-14);
    EXPECT_NEAR(back.y_arcsec, m.y_arcsec, 1e-14);
  }
}

TEST(Wcs, TanProjectionRoundTrips) {
  for (double dec0 : {-80.0, 0.0, 52.93, 89.0}) {
    const SkyOffset o{12.5, -7.25};
    const auto rd = tan_deproject_deg(o, 215.05, dec0);
    const auto back = tan_project(rd[0], rd[1], 215.05, dec0);
    EXPECT_NEAR(back.xi_arcsec, o.xi_arcsec, 1e-9);
    EXPECT_NEAR(back.eta_arcsec, o.eta_arcsec, 1e-9);
  }
  // A small offset north is a small increase in Dec; east increases RA by xi/cos(dec).
  const auto rd = tan_deproject_deg({3.6, 0.0}, 10.0, 60.0);
  EXPECT_NEAR((rd[0] - 10.0) * 3600.0 * std::cos(60.0 / kDegPerRad), 3.6, 1e-6);
  EXPECT_NEAR(rd[1], 60.0, 1e-6);
}

TEST(Rng, SameSeedSameStreamAndSubstreamsIndependentOfOrder) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 5; ++i) {
    const double x = a.normal();
    EXPECT_EQ(x, b.normal());
    EXPECT_NE(x, c.normal());
  }
  Rng base(9);
  auto s3 = base.substream(3);
  base.uniform();  // advancing the parent does not change a substream
  auto s3b = base.substream(3);
  EXPECT_EQ(s3.uniform(), s3b.uniform());
  EXPECT_NE(base.substream(3).uniform(), base.substream(4).uniform());
}

TEST(Rng, PoissonAndNormalMomentsAreRight) {
  Rng r(1);
  const int n = 200000;
  double s = 0, s2 = 0, p = 0, p2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = r.normal(2.0, 3.0);
    s += x;
    s2 += x * x;
    const double k = r.poisson(7.5);
    p += k;
    p2 += k * k;
  }
  const double mean = s / n, var = s2 / n - mean * mean;
  EXPECT_NEAR(mean, 2.0, 5 * 3.0 / std::sqrt(n));
  EXPECT_NEAR(var, 9.0, 9.0 * 5 * std::sqrt(2.0 / n));
  const double pm = p / n, pv = p2 / n - pm * pm;
  EXPECT_NEAR(pm, 7.5, 5 * std::sqrt(7.5 / n));
  EXPECT_NEAR(pv, 7.5, 7.5 * 5 * std::sqrt(2.0 / n) * 1.2);
  EXPECT_EQ(r.poisson(0.0), 0.0);
  EXPECT_EQ(r.poisson(-1.0), 0.0);
}

TEST(Json, OrderedObjectsExactNumbersAndEscapes) {
  auto j = JsonValue::object();
  j.set("b", 0.1).set("a", 3).set("s", "q\"x\n").set("nan", std::nan("")).set("arr", JsonValue::array().push(1).push(true));
  const auto text = j.dump(0);
  EXPECT_EQ(text, "{\"b\":0.1,\"a\":3,\"s\":\"q\\\"x\\n\",\"nan\":null,\"arr\":[1,true]}\n");
  auto k = JsonValue::object();
  k.set("x", 2e-17);
  EXPECT_EQ(k.dump(0), "{\"x\":2e-17}\n");
}
