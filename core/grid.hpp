#pragma once
// slitstep/core: spatial and wavelength grids.
//
// SpatialGrid: a regular grid of square pixels in the aperture (MSA) frame, x along the
//   dispersion direction, y along the slit, both in arcsec. Indices are 0-based in C++;
//   pixel (i, j) has its centre at (x0_arcsec + i*pixel_arcsec, y0_arcsec + j*pixel_arcsec).
//   FITS pixel coordinates are 1-based: FITS p1 = i + 1, p2 = j + 1.
// WavelengthGrid: observed-frame vacuum wavelengths in um as a sorted list of non-overlapping
//   windows, each a linear run of channels (centre_k = start_um + k*step_um, width step_um).
//   A grid with one window is linear (written to FITS as CTYPE3 = 'WAVE'); a grid with several
//   windows (only the parts of the spectrum that hold lines) is written as 'WAVE-TAB'.
// Failure: factory functions and validate() throw InvalidOptions naming the field and value.
#include <cstddef>
#include <string>
#include <vector>

namespace slitstep {

struct SpatialGrid {
  int nx = 0;                 // pixels along x (dispersion direction)
  int ny = 0;                 // pixels along y (slit direction)
  double pixel_arcsec = 0.0;  // square pixel size
  double x0_arcsec = 0.0;     // x of the centre of pixel i = 0
  double y0_arcsec = 0.0;     // y of the centre of pixel j = 0

  /// A grid of nx*ny pixels whose geometric centre is (cx, cy) arcsec.
  static SpatialGrid centred(int nx, int ny, double pixel_arcsec, double cx_arcsec = 0.0,
                             double cy_arcsec = 0.0);
  double x_arcsec(double i) const { return x0_arcsec + i * pixel_arcsec; }
  double y_arcsec(double j) const { return y0_arcsec + j * pixel_arcsec; }
  /// Fractional 0-based pixel coordinate of a position.
  double i_of(double x_arcsec) const { return (x_arcsec - x0_arcsec) / pixel_arcsec; }
  double j_of(double y_arcsec) const { return (y_arcsec - y0_arcsec) / pixel_arcsec; }
  std::size_t size() const { return static_cast<std::size_t>(nx) * static_cast<std::size_t>(ny); }
  double pixel_area_arcsec2() const { return pixel_arcsec * pixel_arcsec; }
  void validate() const;  // nx, ny >= 1; pixel_arcsec > 0 and finite
  bool operator==(const SpatialGrid&) const = default;
};

struct WavelengthWindow {
  double start_um = 0.0;  // centre of the first channel
  double step_um = 0.0;   // channel width (> 0)
  int n = 0;              // number of channels (>= 1)
  double end_um() const { return start_um + (n - 1) * step_um; }  // centre of last channel
  double lower_edge_um() const { return start_um - 0.5 * step_um; }
  double upper_edge_um() const { return end_um() + 0.5 * step_um; }
  bool operator==(const WavelengthWindow&) const = default;
};

class WavelengthGrid {
 public:
  WavelengthGrid() = default;
  /// One linear window.
  static WavelengthGrid linear(double start_um, double step_um, int n);
  /// Several windows; they are sorted by wavelength and must not overlap (edges may touch).
  static WavelengthGrid from_windows(std::vector<WavelengthWindow> windows);

  std::size_t size() const { return centres_um_.size(); }
  bool empty() const { return centres_um_.empty(); }
  bool is_linear() const { return windows_.size() == 1; }
  double wavelength_um(std::size_t k) const { return centres_um_[k]; }
  double width_um(std::size_t k) const { return widths_um_[k]; }
  const std::vector<double>& centres_um() const { return centres_um_; }
  const std::vector<double>& widths_um() const { return widths_um_; }
  const std::vector<WavelengthWindow>& windows() const { return windows_; }
  /// Index of the first channel of window w.
  std::size_t window_offset(std::size_t w) const { return offsets_[w]; }
  double min_um() const { return windows_.front().lower_edge_um(); }
  double max_um() const { return windows_.back().upper_edge_um(); }
  bool operator==(const WavelengthGrid& o) const { return windows_ == o.windows_; }

 private:
  std::vector<WavelengthWindow> windows_;
  std::vector<std::size_t> offsets_;
  std::vector<double> centres_um_;
  std::vector<double> widths_um_;
};

}  // namespace slitstep
