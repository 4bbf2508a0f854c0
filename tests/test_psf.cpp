// PSF: kernels, FFT convolution == direct convolution, chunking error bound, flux conservation.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "core/cube.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "instruments/psf.hpp"

using namespace slitstep;

namespace {
// FWHM along x through the centre of a kernel sampled on fine pixels (linear interpolation).
double kernel_fwhm_arcsec(const PsfKernel& k) {
  const double peak = k.at(0, 0);
  int d = 0;
  while (d < k.half && k.at(d + 1, 0) > 0.5 * peak) ++d;
  const double a = k.at(d, 0), b = k.at(d + 1, 0);
  return 2.0 * (d + (a - 0.5 * peak) / (a - b)) * k.pixel_arcsec;
}
}  // namespace

TEST(Psf, KernelsAreNormalisedWithTheRightWidth) {
  PsfConfig g;
  const PsfKernel kg = make_psf_kernel(g, 1.4, 0.005);
  double s = 0;
  for (double v : kg.values) s += v;
  EXPECT_NEAR(s, 1.0, 1e-12);
  EXPECT_NEAR(kernel_fwhm_arcsec(kg), 0.075, 0.002);
  EXPECT_NEAR(kernel_fwhm_arcsec(make_psf_kernel(g, 1.0, 0.005)), 0.075 / 1.4, 0.002);
  PsfConfig a;
  a.model = "airy";
  a.radius_arcsec = 0.3;
  const PsfKernel ka = make_psf_kernel(a, 1.4, 0.004);
  const double fw = kernel_fwhm_arcsec(ka), expect = 1.4e-6 / 6.5 * 206264.806;
  std::cout << "Airy (obscured 0.12) FWHM at 1.4 um: " << fw << "\" = " << fw / expect << " lambda/D\n";
  EXPECT_GT(fw / expect, 0.95);
  EXPECT_LT(fw / expect, 1.06);
  PsfConfig bad;
  bad.model = "moffat";
  EXPECT_THROW(bad.validate(), InvalidOptions);
  bad = PsfConfig{};
  bad.model = "file";
  EXPECT_THROW(bad.validate(), InvalidOptions);
}

TEST(Psf, FftConvolutionEqualsDirectAndConservesFlux) {
  const SpatialGrid sp = SpatialGrid::centred(37, 29, 0.02);
  const WavelengthGrid wl = WavelengthGrid::from_windows({{1.0, 0.0005, 40}, {1.6, 0.0005, 7}});
  for (const char* model : {"gaussian", "airy"}) {
    PsfConfig c;
    c.model = model;
    c.radius_arcsec = 0.2;
    const PsfConvolver conv(c, sp, wl);
    std::cout << model << ": " << conv.num_chunks() << " kernel chunks, max FWHM error " << conv.max_fwhm_rel_error()
              << "\n";
    EXPECT_LE(conv.max_fwhm_rel_error(), c.max_fwhm_rel_change + 1e-12);
    EXPECT_GE(conv.num_chunks(), 2u);
    Cube cube = Cube::zeros(sp, wl);
    Rng rng(3);
    for (double& v : cube.sci) v = rng.uniform();
    std::vector<double> fast, direct;
    conv.apply(cube.sci, fast);
    conv.apply_direct(cube.sci, direct);
    double worst = 0, scale = 0;
    for (std::size_t q = 0; q < fast.size(); ++q) {
      worst = std::max(worst, std::abs(fast[q] - direct[q]));
      scale = std::max(scale, std::abs(direct[q]));
    }
    EXPECT_LT(worst / scale, 1e-12) << model;
    // a point far from the edges keeps its flux
    Cube pt = Cube::zeros(sp, wl);
    for (std::size_t k = 0; k < pt.nl(); ++k) pt.sci[pt.index(18, 14, k)] = 1.0;
    conv.apply(pt.sci, fast);
    for (std::size_t k = 0; k < pt.nl(); ++k) {
      double s = 0;
      for (int j = 0; j < sp.ny; ++j)
        for (int i = 0; i < sp.nx; ++i) s += fast[pt.index(i, j, k)];
      EXPECT_NEAR(s, 1.0, 1e-12) << model << " " << k;
    }
  }
  PsfConfig none;
  none.model = "none";
  const PsfConvolver id(none, sp, wl);
  EXPECT_FALSE(id.enabled());
}
