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

TEST(Psf, SeparableGaussianEqualsFftAndDirect_TruncationIsBounded) {
  // default-like case: 0.02" pixels, the default 0.075" FWHM at 1.4 um (sigma ~1.5 px at 1.3 um)
  const SpatialGrid sp = SpatialGrid::centred(61, 53, 0.02);
  const WavelengthGrid wl = WavelengthGrid::from_windows({{1.30, 0.0002, 70}, {1.62, 0.0003, 9}});
  const PsfConfig c;  // gaussian, radius 0.6", kernels to 4 FWHM
  const PsfConvolver conv(c, sp, wl);
  ASSERT_TRUE(conv.separable());
  Cube cube = Cube::zeros(sp, wl);
  Rng rng(5);
  // random sky with zero channels (first 10, last 5 of the first window), zero pixels, and one
  // pixel with a nonzero run in the middle only
  for (int j = 0; j < sp.ny; ++j)
    for (int i = 0; i < sp.nx; ++i)
      for (std::size_t k = 0; k < cube.nl(); ++k) {
        const bool zero_ch = k < 10 || (k >= 65 && k < 70);
        cube.sci[cube.index(i, j, k)] = (zero_ch || rng.uniform() < 0.2) ? 0.0 : rng.uniform();
      }
  std::vector<double> fft, direct, sep, sep2, scratch;
  conv.apply(cube.sci, fft);
  conv.apply_direct(cube.sci, direct);
  conv.apply_separable(cube.sci, sep, scratch, 1);
  conv.apply_separable(cube.sci, sep2, scratch, 2);
  EXPECT_EQ(sep, sep2);  // bit-identical for 1 and 2 threads
  auto diff = [](const std::vector<double>& a, const std::vector<double>& b) {
    double worst = 0, peak = 0;
    for (std::size_t q = 0; q < a.size(); ++q) {
      worst = std::max(worst, std::abs(a[q] - b[q]));
      peak = std::max(peak, std::abs(b[q]));
    }
    return worst / peak;
  };
  const double d_fft = diff(sep, fft), d_dir = diff(sep, direct);
  std::cout << "separable vs FFT: " << d_fft << " of the peak; vs direct 2-D: " << d_dir << "\n";
  EXPECT_LT(d_fft, 1e-12);
  EXPECT_LT(d_dir, 1e-12);
  for (std::size_t k = 0; k < 10; ++k) EXPECT_EQ(sep[cube.index(30, 30, k)], 0.0);
  // masks: the needed outputs are bit-identical, the others untouched
  {
    std::vector<char> cols(static_cast<std::size_t>(sp.nx), 0), rows(static_cast<std::size_t>(sp.ny), 0);
    for (int i = 20; i < 35; ++i) cols[static_cast<std::size_t>(i)] = 1;
    for (int j = 0; j < 8; ++j) rows[static_cast<std::size_t>(j)] = 1;
    for (int j = 30; j < 41; j += 2) rows[static_cast<std::size_t>(j)] = 1;
    std::vector<double> masked(sep.size(), -7.0);
    conv.apply_separable(cube.sci, masked, scratch, 2, 0.0, cols, rows);
    std::size_t bad = 0, untouched = 0;
    for (int j = 0; j < sp.ny; ++j)
      for (int i = 0; i < sp.nx; ++i)
        for (std::size_t k = 0; k < cube.nl(); ++k) {
          const std::size_t q = cube.index(i, j, k);
          if (cols[static_cast<std::size_t>(i)] && rows[static_cast<std::size_t>(j)]) bad += masked[q] != sep[q];
          else untouched += masked[q] == -7.0;
        }
    EXPECT_EQ(bad, 0u);
    EXPECT_EQ(untouched, sep.size() - 15u * 14u * cube.nl());
  }
  // truncated factors: the error is the Gaussian tail beyond the cut
  for (double ns : {4.0, 5.0, 6.0, 7.0}) {
    conv.apply_separable(cube.sci, sep, scratch, 0, ns);
    const double d = diff(sep, fft);
    std::cout << "truncated at " << ns << " sigma (" << conv.separable_factor(0, ns).size() << " of "
              << conv.separable_factor(0).size() << " taps): max |diff| / peak = " << d << "\n";
    // bound: twice the 1-D tail mass beyond the cut (one pass per axis)
    EXPECT_LT(d, 2.0 * std::erfc(ns / std::sqrt(2.0)));
  }
  // flux of a central point is conserved by the truncated kernels too
  Cube pt = Cube::zeros(sp, wl);
  for (std::size_t k = 0; k < pt.nl(); ++k) pt.sci[pt.index(30, 26, k)] = 1.0;
  conv.apply_separable(pt.sci, sep, scratch, 0, 4.0);
  for (std::size_t k = 0; k < pt.nl(); ++k) {
    double s = 0;
    for (int j = 0; j < sp.ny; ++j)
      for (int i = 0; i < sp.nx; ++i) s += sep[pt.index(i, j, k)];
    EXPECT_NEAR(s, 1.0, 1e-12) << k;
  }
  // not separable: refused
  PsfConfig a;
  a.model = "airy";
  a.radius_arcsec = 0.1;
  const PsfConvolver airy(a, sp, wl);
  EXPECT_FALSE(airy.separable());
  EXPECT_THROW(airy.apply_separable(cube.sci, sep, scratch), InvalidOptions);
  EXPECT_THROW(conv.apply_separable(std::vector<double>(5), sep, scratch), InvalidOptions);
  EXPECT_THROW(conv.apply_separable(cube.sci, sep, scratch, 0, -1.0), InvalidOptions);
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
