#pragma once
// slitstep/instruments: NIRSpec MSA geometry — shutters, slitlets and slit-stepping patterns.
//
// Frames (docs/conventions.md): the aperture (MSA) frame has x along the dispersion direction
// and y along the slitlet, in arcsec on the sky. The origin (0, 0) is the centre of the slitlet
// (the centre of its middle shutter for odd N; midway between the two middle shutters for even N)
// in the reference pointing (step and dither offsets zero).
// Numbers: shutter open area 0.20" x 0.46" on a 0.268" x 0.530" pitch (bars ~0.07"), 365 x 171
// shutters per quadrant (shared reference nirspec.md §1; confidence H, pitch per quadrant M).
// Pattern (nirspec.md §2, slit_stepping_model.md §2): pointing p = (s, d) moves the telescope so
// that sky position X is seen at MSA position X - offset: the slitlet at step s, dither d sees the
// sky at x + dx_s, y + dy_d (dx_s = (s - 4) 0.2", dy_d = (d - 3) 0.075" for MSA-3D).
// Failure: validate() throws InvalidOptions naming the field, the value and the rule.
#include <string>
#include <vector>

namespace slitstep {

struct ShutterGeometry {
  double open_x_arcsec = 0.20;   // open width along dispersion (H)
  double open_y_arcsec = 0.46;   // open height along the slit (H)
  double pitch_x_arcsec = 0.268; // centre-to-centre along dispersion (H, varies 0.266-0.270 by quadrant: M)
  double pitch_y_arcsec = 0.530; // centre-to-centre along the slit (H, varies 0.521-0.538: M)
  void validate() const;         // open > 0, open < pitch
};

struct SlitletConfig {
  int n_shutters = 3;            // open shutters stacked along y (1..9)
  int quadrant = 3;              // MSA quadrant 1..4 (sets the NRS1/NRS2 gap family)
  int shutter_i = 100;           // index along dispersion of the slitlet, 1..365 (sets the gap wavelength).
                                 // Default 100 (Q3): the NRS1/NRS2 gap lies near 1.24 um, clear of the
                                 // default galaxy's Halpha-[SII] complex at z = 1 (1.31-1.35 um); at the
                                 // MSA centre (i = 183) the gap (1.28-1.32 um) would swallow Halpha.
  int shutter_j = 86;            // index along the slit of the middle shutter, 1..171
  ShutterGeometry shutter;
  void validate() const;
};

/// Centre y (arcsec, aperture frame) of open shutter k = 0..n-1: (k - (n-1)/2) * pitch_y.
double shutter_center_y_arcsec(const SlitletConfig& s, int k);
/// Open-area transmission of the slitlet at aperture position (x, y): 1 inside an open shutter,
/// 0 on a bar or outside. Shutter x-centre is 0.
double slitlet_transmission(const SlitletConfig& s, double x_arcsec, double y_arcsec);
/// Fraction of the rectangle [x0,x1]x[y0,y1] that lies in open shutters (exact overlap area).
double slitlet_open_fraction(const SlitletConfig& s, double x0, double x1, double y0, double y1);

struct Pointing {
  int index = 0;               // 0-based position in the observing order
  int step = 0;                // 0-based step along dispersion
  int dither = 0;              // 0-based dither along the slit
  double offset_x_arcsec = 0;  // the slitlet sees sky x + offset_x
  double offset_y_arcsec = 0;  // the slitlet sees sky y + offset_y
  double exptime_s = 0;
};

/// A slit-stepping pattern as data. Defaults: MSA-3D (9 steps of 0.2" x 7 dithers of 0.075",
/// serpentine order, 1166 s per pointing; nirspec.md §2 and the MSA-3D paper).
struct PatternConfig {
  std::vector<double> steps_x_arcsec = {-0.8, -0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8};
  std::vector<double> dithers_y_arcsec = {-0.225, -0.15, -0.075, 0.0, 0.075, 0.15, 0.225};
  std::string order = "serpentine";  // "serpentine" (steps back and forth for each dither) or "raster"
  double exptime_s = 1166.0;         // per pointing
  void validate() const;             // >= 1 step and dither, finite, distinct, exptime > 0
};

/// All pointings in observing order.
std::vector<Pointing> make_pointings(const PatternConfig& p);

}  // namespace slitstep
