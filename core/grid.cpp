#include "core/grid.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace slitstep {

SpatialGrid SpatialGrid::centred(int nx, int ny, double pixel_arcsec, double cx_arcsec,
                                 double cy_arcsec) {
  SpatialGrid g;
  g.nx = nx;
  g.ny = ny;
  g.pixel_arcsec = pixel_arcsec;
  g.x0_arcsec = cx_arcsec - 0.5 * (nx - 1) * pixel_arcsec;
  g.y0_arcsec = cy_arcsec - 0.5 * (ny - 1) * pixel_arcsec;
  g.validate();
  return g;
}

void SpatialGrid::validate() const {
  if (nx < 1) throw InvalidOptions("SpatialGrid.nx = " + std::to_string(nx) + ": must be >= 1");
  if (ny < 1) throw InvalidOptions("SpatialGrid.ny = " + std::to_string(ny) + ": must be >= 1");
  if (!(pixel_arcsec > 0.0) || !std::isfinite(pixel_arcsec))
    throw InvalidOptions("SpatialGrid.pixel_arcsec = " + format_value(pixel_arcsec) +
                         ": must be finite and > 0");
  if (!std::isfinite(x0_arcsec) || !std::isfinite(y0_arcsec))
    throw InvalidOptions("SpatialGrid origin is not finite");
}

WavelengthGrid WavelengthGrid::linear(double start_um, double step_um, int n) {
  return from_windows({WavelengthWindow{start_um, step_um, n}});
}

WavelengthGrid WavelengthGrid::from_windows(std::vector<WavelengthWindow> windows) {
  if (windows.empty()) throw InvalidOptions("WavelengthGrid: no windows given");
  for (const auto& w : windows) {
    if (w.n < 1) throw InvalidOptions("WavelengthWindow.n = " + std::to_string(w.n) + ": must be >= 1");
    if (!(w.step_um > 0.0) || !std::isfinite(w.step_um))
      throw InvalidOptions("WavelengthWindow.step_um = " + format_value(w.step_um) +
                           ": must be finite and > 0");
    if (!(w.start_um > 0.0) || !std::isfinite(w.start_um))
      throw InvalidOptions("WavelengthWindow.start_um = " + format_value(w.start_um) +
                           ": must be finite and > 0");
  }
  std::sort(windows.begin(), windows.end(),
            [](const auto& a, const auto& b) { return a.start_um < b.start_um; });
  for (std::size_t w = 1; w < windows.size(); ++w) {
    const double prev_hi = windows[w - 1].upper_edge_um();
    const double lo = windows[w].lower_edge_um();
    if (lo < prev_hi - 1e-12 * prev_hi)
      throw InvalidOptions("WavelengthGrid: window starting at " + format_value(lo) +
                           " um overlaps the previous one ending at " + format_value(prev_hi) + " um");
  }
  WavelengthGrid g;
  g.windows_ = std::move(windows);
  for (const auto& w : g.windows_) {
    g.offsets_.push_back(g.centres_um_.size());
    for (int k = 0; k < w.n; ++k) {
      g.centres_um_.push_back(w.start_um + k * w.step_um);
      g.widths_um_.push_back(w.step_um);
    }
  }
  return g;
}

}  // namespace slitstep
