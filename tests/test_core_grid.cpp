#include <gtest/gtest.h>

#include "core/cube.hpp"
#include "core/error.hpp"
#include "core/grid.hpp"

using namespace slitstep;

TEST(SpatialGrid, CentredGridIsSymmetricAboutItsCentre) {
  const auto g = SpatialGrid::centred(4, 3, 0.1, 0.5, -0.2);
  EXPECT_NEAR(0.5 * (g.x_arcsec(0) + g.x_arcsec(3)), 0.5, 1e-12);
  EXPECT_NEAR(0.5 * (g.y_arcsec(0) + g.y_arcsec(2)), -0.2, 1e-12);
  EXPECT_NEAR(g.i_of(g.x_arcsec(2.25)), 2.25, 1e-12);
}

TEST(SpatialGrid, RejectsBadSizes) {
  EXPECT_THROW(SpatialGrid::centred(0, 3, 0.1), InvalidOptions);
  EXPECT_THROW(SpatialGrid::centred(3, 3, -0.1), InvalidOptions);
}

TEST(WavelengthGrid, WindowsAreSortedAndContiguousInIndex) {
  auto g = WavelengthGrid::from_windows({{1.3, 0.001, 5}, {1.0, 0.002, 3}});
  ASSERT_EQ(g.size(), 8u);
  EXPECT_FALSE(g.is_linear());
  EXPECT_DOUBLE_EQ(g.wavelength_um(0), 1.0);
  EXPECT_DOUBLE_EQ(g.wavelength_um(3), 1.3);
  EXPECT_DOUBLE_EQ(g.width_um(1), 0.002);
  EXPECT_EQ(g.window_offset(1), 3u);
}

TEST(WavelengthGrid, RejectsOverlapAndNonsense) {
  EXPECT_THROW(WavelengthGrid::from_windows({{1.0, 0.01, 10}, {1.05, 0.01, 10}}), InvalidOptions);
  EXPECT_THROW(WavelengthGrid::linear(1.0, 0.0, 10), InvalidOptions);
  EXPECT_THROW(WavelengthGrid::linear(1.0, 0.01, 0), InvalidOptions);
}

TEST(Cube, IntegratedFluxOfAUniformCube) {
  auto c = Cube::zeros(SpatialGrid::centred(5, 4, 0.1), WavelengthGrid::linear(1.0, 0.001, 10));
  for (auto& v : c.sci) v = 2.0;
  // 2 * (10 channels * 0.001 um) * (20 px * 0.01 arcsec^2)
  EXPECT_NEAR(integrated_flux(c), 2.0 * 0.01 * 0.2, 1e-15);
  EXPECT_NO_THROW(c.validate());
  c.err.pop_back();
  EXPECT_THROW(c.validate(), InvalidOptions);
}
