#include "core/line_maps.hpp"
#include <gtest/gtest.h>
TEST(LineMaps, AllocateFillsNaN) {
  slitstep::LineMaps m;
  m.allocate(slitstep::SpatialGrid::centred(3, 2, 0.08), {}, 1.0);
  EXPECT_EQ(m.size(), 6u);
  EXPECT_TRUE(std::isnan(m.line(slitstep::LineId::kHalpha).flux_cgs[5]));
  EXPECT_EQ(m.index(2, 1), 5u);
  EXPECT_EQ(m.fit_ok[0], 0);
}
