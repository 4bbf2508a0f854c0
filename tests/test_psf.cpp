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

#include "core/fits.hpp"
#include "helpers/paths.hpp"

TEST(Psf, TabulatedFileMatchesTheAnalyticKernelItWasMadeFrom) {
  slitstep::test::TempDir dir("psf_file");
  const std::string path = dir.file("psf.fits");
  const int n = 101;
  const double pix = 0.004, fwhm = 0.075, sig = fwhm / 2.3548200450309493;
  std::vector<double> img(static_cast<std::size_t>(n) * n);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const double dx = (x - 50) * pix, dy = (y - 50) * pix;
      img[static_cast<std::size_t>(y) * n + x] = std::exp(-0.5 * (dx * dx + dy * dy) / (sig * sig));
    }
  {
    FitsFile f = FitsFile::create(path);
    f.create_image(FitsPixel::kFloat64, {n, n});
    f.write_image(img);
    f.commit();
  }
  PsfConfig c;
  c.model = "file";
  c.file = path;
  c.file_pixel_arcsec = pix;
  c.file_ref_wavelength_um = 1.4;
  c.radius_arcsec = 0.18;
  const PsfImage im = read_psf_image(path);
  const PsfKernel kf = make_psf_kernel(c, 1.4, 0.02, &im);
  PsfConfig g;
  g.radius_arcsec = 0.18;
  const PsfKernel kg = make_psf_kernel(g, 1.4, 0.02);
  ASSERT_EQ(kf.half, kg.half);
  double worst = 0;
  for (std::size_t q = 0; q < kf.values.size(); ++q) worst = std::max(worst, std::abs(kf.values[q] - kg.values[q]));
  std::cout << "file PSF vs Gaussian kernel: max |diff| = " << worst << " (peak " << kg.at(0, 0) << ")\n";
  EXPECT_LT(worst, 0.01 * kg.at(0, 0));
  // convolver with the file model reports the image's FWHM
  const PsfConvolver conv(c, SpatialGrid::centred(9, 9, 0.02), WavelengthGrid::linear(1.4, 0.001, 3));
  EXPECT_NEAR(conv.fwhm_arcsec(1.4), fwhm, 0.003);
  c.file = dir.file("missing.fits");
  EXPECT_THROW(read_psf_image(c.file), InputError);
}
