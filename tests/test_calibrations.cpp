#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <iostream>
#include <string>

#include "core/calibrations.hpp"

using namespace slitstep;

namespace {

constexpr Calibration kAll[] = {Calibration::kPP04N2Linear, Calibration::kPP04N2Cubic,
                                Calibration::kPP04O3N2,     Calibration::kM13N2,
                                Calibration::kM13O3N2,      Calibration::kD16N2S2Ha};

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

double ok_value(Calibration c, double x) {
  const auto r = metallicity_from_index(c, x);
  EXPECT_TRUE(r.status.ok()) << r.status.message;
  return r.value;
}

}  // namespace

TEST(Calibrations, NamesRoundTrip) {
  const char* names[] = {"PP04_N2_linear", "PP04_N2_cubic", "PP04_O3N2",
                         "M13_N2",         "M13_O3N2",      "D16_N2S2Ha"};
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(calibration_name(kAll[i]), names[i]);
    Calibration c = Calibration::kM13N2;
    ASSERT_TRUE(calibration_from_name(names[i], c));
    EXPECT_EQ(c, kAll[i]);
  }
  Calibration c = Calibration::kM13N2;
  EXPECT_FALSE(calibration_from_name("pp04_n2_cubic", c));
  EXPECT_FALSE(calibration_from_name("", c));
  EXPECT_EQ(c, Calibration::kM13N2);
  EXPECT_EQ(calibration_index_name(Calibration::kPP04O3N2), "O3N2");
  EXPECT_EQ(calibration_index_name(Calibration::kD16N2S2Ha), "y");
}

TEST(Calibrations, ValidityRanges) {
  auto r = calibration_range(Calibration::kPP04N2Cubic);
  EXPECT_EQ(r.index_min, -2.5);
  EXPECT_EQ(r.index_max, -0.3);
  r = calibration_range(Calibration::kPP04O3N2);
  EXPECT_EQ(r.index_min, -1.0);
  EXPECT_EQ(r.index_max, 1.9);
  r = calibration_range(Calibration::kM13N2);
  EXPECT_EQ(r.index_min, -1.6);
  EXPECT_EQ(r.index_max, -0.2);
  r = calibration_range(Calibration::kM13O3N2);
  EXPECT_EQ(r.index_min, -1.1);
  EXPECT_EQ(r.index_max, 1.7);
  r = calibration_range(Calibration::kD16N2S2Ha);
  EXPECT_EQ(r.index_min, -1.1);
  EXPECT_EQ(r.index_max, 0.5);
  const auto m = calibration_metallicity_range(Calibration::kPP04O3N2);  // decreasing
  EXPECT_NEAR(m.z_min, 8.73 - 0.32 * 1.9, 1e-12);
  EXPECT_NEAR(m.z_max, 8.73 + 0.32, 1e-12);
  const auto mc = calibration_metallicity_range(Calibration::kPP04N2Cubic);
  EXPECT_NEAR(mc.z_min, 7.17, 1e-12);
  EXPECT_NEAR(mc.z_max, 8.86576, 1e-12);
  const auto md = calibration_metallicity_range(Calibration::kD16N2S2Ha);
  EXPECT_NEAR(md.z_min, 7.522544, 1e-12);
  EXPECT_NEAR(md.z_max, 9.417456, 1e-12);
}

TEST(Calibrations, WorkedValues) {
  // calibrations.md §3.1, to the precision given there.
  EXPECT_NEAR(ok_value(Calibration::kPP04N2Linear, -0.5), 8.615, 5e-4);
  EXPECT_NEAR(ok_value(Calibration::kPP04N2Cubic, -0.5), 8.630, 5e-4);
  EXPECT_NEAR(ok_value(Calibration::kM13N2, -0.5), 8.512, 5e-4);
  EXPECT_NEAR(ok_value(Calibration::kPP04O3N2, 0.5), 8.570, 5e-4);
  EXPECT_NEAR(ok_value(Calibration::kM13O3N2, 0.5), 8.426, 5e-4);
  EXPECT_NEAR(ok_value(Calibration::kD16N2S2Ha, 0.0), 8.7711, 5e-5);
  EXPECT_NEAR(ok_value(Calibration::kD16N2S2Ha, -0.3), 8.470, 1e-14);  // fifth-order term is 0
  // Exact arithmetic for the linear ones and the cubic.
  EXPECT_NEAR(ok_value(Calibration::kPP04N2Cubic, -0.5), 9.37 - 1.015 + 0.315 - 0.04, 1e-13);
  EXPECT_NEAR(ok_value(Calibration::kD16N2S2Ha, 0.0), 8.77 + 0.45 * std::pow(0.3, 5), 1e-14);
  EXPECT_NEAR(d16_index(0.1, -0.5), 0.1 - 0.132, 1e-15);
}

TEST(Calibrations, NonLinearOnesAreMonotonicOverTheirRanges) {
  // PP04 cubic: derivative 2.03 + 2.52 x + 0.96 x^2 has no real root (min 0.37625 at -1.3125);
  // D16: derivative 1 + 2.25 (y + 0.3)^4 >= 1. Check numerically on a dense grid, and a bit
  // beyond the range (the inverse also works when extrapolating).
  for (Calibration c : {Calibration::kPP04N2Cubic, Calibration::kD16N2S2Ha}) {
    const auto r = calibration_range(c);
    double prev = -std::numeric_limits<double>::infinity();
    for (int i = 0; i <= 20000; ++i) {
      const double x = r.index_min - 2.0 + (r.index_max - r.index_min + 4.0) * i / 20000.0;
      const double v = metallicity_from_index(c, x).value;
      EXPECT_GT(v, prev) << calibration_name(c) << " at " << x;
      prev = v;
    }
  }
}

TEST(Calibrations, RoundTripsToMachinePrecision) {
  for (Calibration c : kAll) {
    SCOPED_TRACE(std::string(calibration_name(c)));
    const auto r = calibration_range(c);
    const auto m = calibration_metallicity_range(c);
    double worst_x = 0.0, worst_z = 0.0;
    const int n = 20000;
    for (int i = 1; i < n; ++i) {
      // inverse(forward(x)) over the open validity range.
      const double x = r.index_min + (r.index_max - r.index_min) * i / n;
      const auto fwd = metallicity_from_index(c, x);
      ASSERT_TRUE(fwd.status.ok()) << fwd.status.message;
      const auto inv = index_from_metallicity(c, fwd.value);
      ASSERT_TRUE(inv.status.ok()) << inv.status.message;
      worst_x = std::max(worst_x, std::abs(inv.value - x));
      // forward(inverse(z)) over the open image of the range.
      const double z = m.z_min + (m.z_max - m.z_min) * i / n;
      const auto inv2 = index_from_metallicity(c, z);
      ASSERT_TRUE(inv2.status.ok()) << inv2.status.message;
      const auto fwd2 = metallicity_from_index(c, inv2.value);
      ASSERT_TRUE(fwd2.status.ok()) << fwd2.status.message;
      worst_z = std::max(worst_z, std::abs(fwd2.value - z));
    }
    EXPECT_LT(worst_x, 1e-9);
    EXPECT_LT(worst_z, 1e-9);
    // Machine precision, measured: a few ulp.
    EXPECT_LT(worst_x, 1e-13);
    EXPECT_LT(worst_z, 1e-13);
    RecordProperty(std::string(calibration_name(c)) + "_worst_index",
                   std::to_string(worst_x));
    RecordProperty(std::string(calibration_name(c)) + "_worst_metallicity",
                   std::to_string(worst_z));
    std::cout << calibration_name(c) << ": worst |inv(fwd(x)) - x| = " << worst_x
              << ", worst |fwd(inv(z)) - z| = " << worst_z << "\n";
  }
}

TEST(Calibrations, OutOfRangeIsFlaggedButComputed) {
  for (Calibration c : kAll) {
    SCOPED_TRACE(std::string(calibration_name(c)));
    const auto r = calibration_range(c);
    for (double x : {r.index_min - 0.7, r.index_min, r.index_max, r.index_max + 0.25}) {
      const auto res = metallicity_from_index(c, x);
      EXPECT_EQ(res.status.code, StatusCode::kOutOfRange);
      EXPECT_TRUE(std::isfinite(res.value));
      const std::string& msg = res.status.message;
      EXPECT_TRUE(contains(msg, std::string(calibration_name(c)))) << msg;
      EXPECT_TRUE(contains(msg, format_value(x))) << msg;
      EXPECT_TRUE(contains(msg, format_value(r.index_min) + " < " +
                                    std::string(calibration_index_name(c)) + " < " +
                                    format_value(r.index_max)))
          << msg;
      // The inverse of an out-of-range metallicity is flagged and still the exact inverse.
      const auto inv = index_from_metallicity(c, res.value);
      EXPECT_EQ(inv.status.code, StatusCode::kOutOfRange) << inv.status.message;
      EXPECT_NEAR(inv.value, x, 1e-12);
      EXPECT_TRUE(contains(inv.status.message, std::string(calibration_name(c))));
      EXPECT_TRUE(contains(inv.status.message, format_value(res.value))) << inv.status.message;
    }
  }
  // A concrete message.
  const auto res = metallicity_from_index(Calibration::kPP04N2Cubic, -0.2);
  EXPECT_EQ(res.status.message,
            "PP04_N2_cubic: N2 = -0.2 outside the validity range -2.5 < N2 < -0.3 "
            "(value extrapolated)");
  const auto inv = index_from_metallicity(Calibration::kPP04N2Cubic, 9.5);
  EXPECT_EQ(inv.status.code, StatusCode::kOutOfRange);
  EXPECT_TRUE(contains(inv.status.message, "9.5")) << inv.status.message;
  EXPECT_TRUE(contains(inv.status.message, "-2.5 < N2 < -0.3")) << inv.status.message;
  EXPECT_NEAR(metallicity_from_index(Calibration::kPP04N2Cubic, inv.value).value, 9.5, 1e-13);
}

TEST(Calibrations, FarOutOfRangeInverseStillSolves) {
  for (Calibration c : {Calibration::kPP04N2Cubic, Calibration::kD16N2S2Ha}) {
    for (double z : {-50.0, 0.0, 3.0, 12.0, 40.0, 1e6}) {
      const auto inv = index_from_metallicity(c, z);
      EXPECT_EQ(inv.status.code, StatusCode::kOutOfRange) << inv.status.message;
      const double back = metallicity_from_index(c, inv.value).value;
      EXPECT_NEAR(back, z, 1e-13 * std::max(1.0, std::abs(z))) << calibration_name(c) << " " << z;
    }
  }
}

TEST(Calibrations, NonFiniteInputIsInvalid) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (Calibration c : kAll) {
    for (double v : {nan, inf, -inf}) {
      const auto f = metallicity_from_index(c, v);
      EXPECT_EQ(f.status.code, StatusCode::kInvalidInput);
      EXPECT_TRUE(std::isnan(f.value));
      EXPECT_TRUE(contains(f.status.message, std::string(calibration_name(c)))) << f.status.message;
      const auto i = index_from_metallicity(c, v);
      EXPECT_EQ(i.status.code, StatusCode::kInvalidInput);
      EXPECT_TRUE(std::isnan(i.value));
      EXPECT_FALSE(i.status.message.empty());
    }
  }
}
