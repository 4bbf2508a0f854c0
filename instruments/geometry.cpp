#include "instruments/geometry.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.hpp"

namespace slitstep {

void ShutterGeometry::validate() const {
  auto pos = [](double v, const char* name) {
    if (!(v > 0.0) || !std::isfinite(v))
      throw InvalidOptions(std::string(name) + " = " + format_value(v) + ": must be finite and > 0");
  };
  pos(open_x_arcsec, "shutter.open_x_arcsec");
  pos(open_y_arcsec, "shutter.open_y_arcsec");
  pos(pitch_x_arcsec, "shutter.pitch_x_arcsec");
  pos(pitch_y_arcsec, "shutter.pitch_y_arcsec");
  if (open_x_arcsec >= pitch_x_arcsec)
    throw InvalidOptions("shutter.open_x_arcsec = " + format_value(open_x_arcsec) +
                         ": must be smaller than pitch_x_arcsec = " + format_value(pitch_x_arcsec));
  if (open_y_arcsec >= pitch_y_arcsec)
    throw InvalidOptions("shutter.open_y_arcsec = " + format_value(open_y_arcsec) +
                         ": must be smaller than pitch_y_arcsec = " + format_value(pitch_y_arcsec));
}

void SlitletConfig::validate() const {
  if (n_shutters < 1 || n_shutters > 9)
    throw InvalidOptions("slitlet.n_shutters = " + std::to_string(n_shutters) + ": must be in 1..9");
  if (quadrant < 1 || quadrant > 4)
    throw InvalidOptions("slitlet.quadrant = " + std::to_string(quadrant) + ": must be in 1..4");
  if (shutter_i < 1 || shutter_i > 365)
    throw InvalidOptions("slitlet.shutter_i = " + std::to_string(shutter_i) + ": must be in 1..365");
  const int half = n_shutters / 2;
  if (shutter_j - half < 1 || shutter_j + (n_shutters - 1 - half) > 171)
    throw InvalidOptions("slitlet.shutter_j = " + std::to_string(shutter_j) +
                         ": the slitlet's shutters must lie in 1..171");
  shutter.validate();
}

double shutter_center_y_arcsec(const SlitletConfig& s, int k) {
  return (k - 0.5 * (s.n_shutters - 1)) * s.shutter.pitch_y_arcsec;
}

double slitlet_transmission(const SlitletConfig& s, double x, double y) {
  if (std::abs(x) >= 0.5 * s.shutter.open_x_arcsec) return 0.0;
  for (int k = 0; k < s.n_shutters; ++k)
    if (std::abs(y - shutter_center_y_arcsec(s, k)) < 0.5 * s.shutter.open_y_arcsec) return 1.0;
  return 0.0;
}

double slitlet_open_fraction(const SlitletConfig& s, double x0, double x1, double y0, double y1) {
  const double area = (x1 - x0) * (y1 - y0);
  if (!(area > 0.0)) return 0.0;
  const double hx = 0.5 * s.shutter.open_x_arcsec, hy = 0.5 * s.shutter.open_y_arcsec;
  const double ox = std::max(0.0, std::min(x1, hx) - std::max(x0, -hx));
  double oy = 0.0;
  for (int k = 0; k < s.n_shutters; ++k) {
    const double c = shutter_center_y_arcsec(s, k);
    oy += std::max(0.0, std::min(y1, c + hy) - std::max(y0, c - hy));
  }
  return ox * oy / area;
}

void PatternConfig::validate() const {
  auto check = [](const std::vector<double>& v, const char* name) {
    if (v.empty()) throw InvalidOptions(std::string(name) + ": needs at least one offset");
    std::set<double> seen;
    for (double x : v) {
      if (!std::isfinite(x) || std::abs(x) > 10.0)
        throw InvalidOptions(std::string(name) + " contains " + format_value(x) +
                             ": offsets must be finite and within +-10 arcsec");
      if (!seen.insert(x).second)
        throw InvalidOptions(std::string(name) + " repeats " + format_value(x) + ": offsets must be distinct");
    }
  };
  check(steps_x_arcsec, "pattern.steps_x_arcsec");
  check(dithers_y_arcsec, "pattern.dithers_y_arcsec");
  if (order != "serpentine" && order != "raster")
    throw InvalidOptions("pattern.order = \"" + order + "\": must be \"serpentine\" or \"raster\"");
  if (!(exptime_s > 0.0) || !std::isfinite(exptime_s))
    throw InvalidOptions("pattern.exptime_s = " + format_value(exptime_s) + ": must be finite and > 0");
}

std::vector<Pointing> make_pointings(const PatternConfig& p) {
  p.validate();
  std::vector<Pointing> out;
  const int ns = static_cast<int>(p.steps_x_arcsec.size());
  const int nd = static_cast<int>(p.dithers_y_arcsec.size());
  for (int d = 0; d < nd; ++d) {
    for (int q = 0; q < ns; ++q) {
      const int s = (p.order == "serpentine" && (d % 2 == 1)) ? ns - 1 - q : q;
      Pointing pt;
      pt.index = static_cast<int>(out.size());
      pt.step = s;
      pt.dither = d;
      pt.offset_x_arcsec = p.steps_x_arcsec[s];
      pt.offset_y_arcsec = p.dithers_y_arcsec[d];
      pt.exptime_s = p.exptime_s;
      out.push_back(pt);
    }
  }
  return out;
}

}  // namespace slitstep
