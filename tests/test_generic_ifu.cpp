// Tests of the generic IFU (instruments/generic_ifu) and its fast model path (sim/ifu_model):
// config reading and errors, PSF kernels (multi-Gaussian SAMI, Moffat), point-source PSF and LSF
// recovery, flux conservation, linearity, separable / FFT == direct summation, fast path == reference path
// (render + observe), and a noisy mock through core/cube_io (fitsverify, read back).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/config.hpp"
#include "core/cosmology.hpp"
#include "core/cube_io.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/units.hpp"
#include "helpers/paths.hpp"
#include "instruments/generic_ifu.hpp"
#include "sim/galaxy.hpp"
#include "sim/ifu_model.hpp"
#include "sim/render.hpp"

using namespace slitstep;

namespace {

constexpr double kFwhmPerSigma = 2.3548200450309493;

// FWHM (in pixels) of the central row of a kernel by linear interpolation of the half-max crossings.
double row_fwhm_pixels(const PsfKernel& k) {
  const int n = 2 * k.half + 1;
  std::vector<double> row(n);
  for (int x = 0; x < n; ++x) row[x] = k.at(x - k.half, 0);
  const double half = 0.5 * row[k.half];
  int r = k.half;
  while (r + 1 < n && row[r + 1] > half) ++r;
  const double xr = r + (row[r] - half) / (row[r] - row[r + 1]);
  int l = k.half;
  while (l - 1 >= 0 && row[l - 1] > half) --l;
  const double xl = l - (row[l] - half) / (row[l] - row[l - 1]);
  return xr - xl;
}

double peak_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Sky rendering options matching an IFU's work grid (same pixels, centred field).
RenderOptions reference_render(const GenericIfu& ifu, double channel_kms) {
  RenderOptions ro;
  ro.pixel_arcsec = ifu.work_grid().pixel_arcsec;
  ro.fov_x_arcsec = ifu.work_grid().nx * ro.pixel_arcsec;
  ro.fov_y_arcsec = ifu.work_grid().ny * ro.pixel_arcsec;
  ro.channel_kms = channel_kms;
  ro.continuum_windows = false;
  ro.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  ro.window_half_width_kms = 4500.0;  // windows cover every output channel (continuum everywhere)
  ro.threads = 1;
  return ro;
}

}  // namespace

// ------------------------------------------------------------------------------------------
TEST(GenericIfuConfig, DefaultsAndToml) {
  GenericIfuConfig d;
  EXPECT_NO_THROW(d.validate());
  const Config conf = Config::from_string(
      "[ifu]\nnx = 27\nny = 31\nspaxel_arcsec = 0.5\nwave_start_um = 0.6535\nwave_step_um = 5.6e-5\n"
      "n_wave = 107\npsf_model = \"multi_gaussian\"\npsf_weights = [0.6460957385346204, 0.35390426146537957]\n"
      "psf_fwhms_arcsec = [2.300859878831419, 1.4309603303694296]\nlsf_fwhm_A = 1.61\noversample = 2\n",
      "sami.toml");
  const GenericIfuConfig c = read_generic_ifu_config(conf.root().table("ifu"));
  conf.check_all_used();
  EXPECT_EQ(c.nx, 27);
  EXPECT_EQ(c.psf_model, "multi_gaussian");
  EXPECT_EQ(c.lsf_kind, "fwhm_A");
  ASSERT_EQ(c.lsf_values.size(), 1u);
  EXPECT_DOUBLE_EQ(c.lsf_values[0], 1.61);
  const GenericIfu ifu(c);
  // FWHM 1.61 A -> sigma in um
  EXPECT_NEAR(ifu.lsf_sigma_um(0.656), 1.61 / kFwhmPerSigma * 1e-4, 1e-15);
  // Tabulated LSF in km/s.
  const Config t = Config::from_string("[ifu]\nlsf_wavelength_um = [1.2, 1.4]\nlsf_sigma_kms = [60, 40]\n", "t.toml");
  const GenericIfuConfig ct = read_generic_ifu_config(t.root().table("ifu"));
  const GenericIfu it(ct);
  EXPECT_NEAR(it.lsf_sigma_um(1.3) / 1.3 * kSpeedOfLight_kms, 50.0, 1e-3);
}

TEST(GenericIfuConfig, BadValuesNameFileLineKey) {
  struct Case { const char* text; const char* expect; };
  const Case cases[] = {
      {"[ifu]\nnx = 24\nny = 0\n", "bad.toml:3: ifu.ny = 0: must be in [1, 2000]"},
      {"[ifu]\npsf_model = \"airy\"\n", "bad.toml:2: ifu.psf_model"},
      {"[ifu]\nspaxel_arcsec = -0.1\n", "bad.toml:2: ifu.spaxel_arcsec = -0.1"},
      {"[ifu]\npsf_model = \"multi_gaussian\"\npsf_weights = [0.6, 0.4]\npsf_fwhms_arcsec = [2.3]\n",
       "bad.toml:4: ifu.psf_fwhms_arcsec"},
      {"[ifu]\nlsf_sigma_kms = 50\nlsf_fwhm_A = 1.6\n", "bad.toml:3: ifu.lsf_fwhm_A"},
      {"[ifu]\nlsf_sigma_kms = -3\n", "bad.toml:2: ifu.lsf_sigma_kms = -3"},
      {"[ifu]\nlsf_wavelength_um = [1.4, 1.2]\nlsf_sigma_kms = [50, 50]\n", "bad.toml:2: ifu.lsf_wavelength_um"},
      {"[ifu]\noversample = 40\n", "bad.toml:2: ifu.oversample = 40"},
      {"[ifu]\npsf_model = \"moffat\"\npsf_moffat_beta = 0.5\n", "bad.toml:3: ifu.psf_moffat_beta = 0.5"},
  };
  for (const auto& cs : cases) {
    const Config conf = Config::from_string(cs.text, "bad.toml");
    try {
      read_generic_ifu_config(conf.root().table("ifu"));
      ADD_FAILURE() << "no error for " << cs.text;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(cs.expect), std::string::npos) << e.what();
    }
  }
  // Unknown keys are refused by Config::check_all_used.
  const Config conf = Config::from_string("[ifu]\npsf_fhwm_arcsec = 0.1\n", "bad.toml");
  read_generic_ifu_config(conf.root().table("ifu"));
  EXPECT_THROW(conf.check_all_used(), InputError);
  GenericIfuConfig c;
  c.n_wave = 0;
  EXPECT_THROW(c.validate(), InvalidOptions);
}

// ------------------------------------------------------------------------------------------
TEST(GenericIfuPsf, MultiGaussianSamiAndMoffatNormalisedWithRightFwhm) {
  GenericIfuConfig sami;
  sami.psf_model = "multi_gaussian";
  sami.psf_weights = {0.6460957385346204, 0.35390426146537957};
  sami.psf_fwhms_arcsec = {2.300859878831419, 1.4309603303694296};
  const double f_sami = generic_ifu_psf_fwhm_arcsec(sami);
  EXPECT_GT(f_sami, 1.43);
  EXPECT_LT(f_sami, 2.30);
  const double p = 0.02;
  const PsfKernel ks = make_generic_ifu_psf_kernel(sami, p);
  double sum = 0.0;
  for (double v : ks.values) sum += v;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  const double meas = row_fwhm_pixels(ks) * p;
  EXPECT_NEAR(meas / f_sami, 1.0, 0.02) << "SAMI FWHM nominal " << f_sami << " measured " << meas;
  std::printf("[ SAMI 2-Gaussian PSF ] FWHM nominal %.4f\" measured on the kernel %.4f\" (%.2f%%)\n", f_sami, meas,
              100 * (meas / f_sami - 1));

  for (double beta : {2.5, 4.765}) {
    GenericIfuConfig m;
    m.psf_model = "moffat";
    m.psf_fwhm_arcsec = 0.8;
    m.psf_moffat_beta = beta;
    const PsfKernel km = make_generic_ifu_psf_kernel(m, 0.01);
    double s = 0.0;
    for (double v : km.values) s += v;
    EXPECT_NEAR(s, 1.0, 1e-12);
    const double fm = row_fwhm_pixels(km) * 0.01;
    EXPECT_NEAR(fm / 0.8, 1.0, 0.02) << "beta " << beta;
    const GenericIfu ifu([&] { GenericIfuConfig c = m; c.nx = c.ny = 5; c.spaxel_arcsec = 0.2; c.n_wave = 8; return c; }());
    // auto radius: 99.5 % of the light inside the circle, so <= 0.5 % outside the square kernel
    EXPECT_GT(ifu.psf_truncated_fraction(), 0.0);
    EXPECT_LE(ifu.psf_truncated_fraction(), 0.005) << "beta " << beta;
    std::printf("[ Moffat beta %.3f ] FWHM 0.8\" measured %.4f\"; light beyond r = %.3f\": %.4f\n", beta, fm,
                ifu.psf_radius_arcsec(), ifu.psf_truncated_fraction());
  }
}

// ------------------------------------------------------------------------------------------
// A point source with a line narrower than one sky channel: the output is the PSF (FWHM) and the
// LSF (sigma), up to the known pixel/channel box terms (Sheppard: + width^2/12 per box; the sky
// channel's LSF narrowed by width^2/6).
TEST(GenericIfuObserve, PointSourceGivesPsfAndLsf) {
  GenericIfuConfig c;
  c.nx = c.ny = 41;
  c.spaxel_arcsec = 0.02;
  c.psf_fwhm_arcsec = 0.12;
  c.lsf_values = {50.0};
  const GenericIfu ifu(c);
  const double l0 = 1.31292, dk = l0 * 5.0 / kSpeedOfLight_kms;  // 5 km/s sky channels
  Cube sky = Cube::zeros(SpatialGrid::centred(41, 41, 0.02), WavelengthGrid::linear(l0 - 200 * dk, dk, 401), c.sky, false);
  const double flux = 1e-17;
  sky.sci[sky.index(20, 20, 200)] = flux / (dk * 0.02 * 0.02);
  Cube out;
  ifu.observe(sky, out);
  EXPECT_NEAR(integrated_flux(out) / flux, 1.0, 1e-9);
  // Spatial: marginal second moment along x and y.
  double s = 0, sxx = 0, syy = 0;
  std::vector<double> img(41 * 41, 0.0);
  for (int j = 0; j < 41; ++j)
    for (int i = 0; i < 41; ++i) {
      double t = 0;
      for (std::size_t k = 0; k < out.nl(); ++k) t += out.sci[out.index(i, j, k)];
      img[j * 41 + i] = t;
      s += t, sxx += t * (i - 20) * (i - 20), syy += t * (j - 20) * (j - 20);
    }
  const double box = 2.0 * 0.02 * 0.02 / 12.0;  // sky pixel + output pixel
  const double fx = kFwhmPerSigma * std::sqrt(sxx / s * 0.0004 - box), fy = kFwhmPerSigma * std::sqrt(syy / s * 0.0004 - box);
  EXPECT_NEAR(fx / 0.12, 1.0, 0.02);
  EXPECT_NEAR(fy / 0.12, 1.0, 0.02);
  // Half-maximum width of the central row (includes the two 0.02" boxes).
  PsfKernel row;
  row.half = 20;
  row.values = img;
  const double fhm = row_fwhm_pixels(row) * 0.02;
  const double fexp = kFwhmPerSigma * std::sqrt(std::pow(0.12 / kFwhmPerSigma, 2) + box);
  EXPECT_NEAR(fhm / fexp, 1.0, 0.02);
  // Spectral: second moment of the total spectrum.
  std::vector<double> spec(out.nl(), 0.0);
  for (int j = 0; j < 41; ++j)
    for (int i = 0; i < 41; ++i)
      for (std::size_t k = 0; k < out.nl(); ++k) spec[k] += out.sci[out.index(i, j, k)];
  double m0 = 0, m1 = 0, m2 = 0;
  for (std::size_t k = 0; k < out.nl(); ++k) m0 += spec[k], m1 += spec[k] * out.spectral.wavelength_um(k);
  const double mu = m1 / m0;
  for (std::size_t k = 0; k < out.nl(); ++k) m2 += spec[k] * std::pow(out.spectral.wavelength_um(k) - mu, 2);
  // the delta in one sky channel is read as a box (+dk^2/12), the LSF is narrowed by dk^2/6
  // (Sheppard-corrected for smooth spectra), the output channels sample it (+step^2/12)
  const double var = m2 / m0 + dk * dk / 12.0 - c.wave_step_um * c.wave_step_um / 12.0;
  const double sig_kms = std::sqrt(var) / l0 * kSpeedOfLight_kms;
  EXPECT_NEAR(sig_kms / 50.0, 1.0, 1e-3);
  EXPECT_NEAR(mu, l0, 0.02 * c.wave_step_um);
  std::printf("[ point source ] PSF FWHM from 2nd moments x %.5f\" y %.5f\" (true 0.12\"), half-max %.5f\" "
              "(expected with boxes %.5f\"); LSF sigma %.3f km/s (true 50)\n",
              fx, fy, fhm, fexp, sig_kms);
}

// A sky channel wider than sqrt(6) LSF sigma cannot be Sheppard-corrected: refused with a reason.
TEST(GenericIfuObserve, RefusesSkyChannelsTooWideForTheLsf) {
  GenericIfuConfig c;
  c.lsf_values = {50.0};
  const GenericIfu ifu(c);
  const double l0 = 1.31292, dk = l0 * 150.0 / kSpeedOfLight_kms;  // 150 km/s > sqrt(6) x 50 km/s
  const Cube sky = Cube::zeros(SpatialGrid::centred(8, 8, 0.1), WavelengthGrid::linear(l0 - 5 * dk, dk, 11), c.sky, false);
  Cube out;
  try {
    ifu.observe(sky, out);
    ADD_FAILURE() << "accepted 150 km/s sky channels with a 50 km/s LSF";
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("too wide for the LSF"), std::string::npos) << e.what();
  }
}

// ------------------------------------------------------------------------------------------
TEST(GenericIfuObserve, FluxConservedLinearAndFftEqualsDirect) {
  GenericIfuConfig c;
  c.nx = c.ny = 40;
  c.spaxel_arcsec = 0.1;
  c.oversample = 2;
  c.psf_fwhm_arcsec = 0.3;
  const GenericIfu ifu(c);
  GalaxyParams gp;
  gp.ew_halpha_rest_A = 0.0;
  const GalaxyModel g(gp, Cosmology());
  RenderOptions ro;
  ro.pixel_arcsec = 0.025;
  ro.fov_x_arcsec = ro.fov_y_arcsec = 2.4;
  ro.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  ro.continuum_windows = false;
  ro.threads = 1;
  const RenderResult a = render(g, ro, c.sky);
  Cube out;
  ifu.observe(a.cube, out);
  const double fin = integrated_flux(a.cube), fout = integrated_flux(out);
  EXPECT_NEAR(fout / fin, 1.0, 1e-3);
  std::printf("[ flux ] in %.6e out %.6e rel diff %.2e\n", fin, fout, fout / fin - 1.0);

  // Linearity: O(2A + 3B) = 2 O(A) + 3 O(B), B = a shifted galaxy.
  gp.center_x_arcsec = 0.3;
  gp.pa_deg = -40.0;
  const RenderResult b = render(GalaxyModel(gp, Cosmology()), ro, c.sky);
  Cube ab = a.cube;
  for (std::size_t i = 0; i < ab.sci.size(); ++i) ab.sci[i] = 2.0 * a.cube.sci[i] + 3.0 * b.cube.sci[i];
  Cube ob, oab;
  ifu.observe(b.cube, ob);
  ifu.observe(ab, oab);
  std::vector<double> lin(out.sci.size());
  for (std::size_t i = 0; i < lin.size(); ++i) lin[i] = 2.0 * out.sci[i] + 3.0 * ob.sci[i];
  EXPECT_LT(max_abs_diff(lin, oab.sci), 1e-12 * peak_abs(oab.sci));

  // The separable convolution (Gaussian PSF) equals direct summation.
  ASSERT_TRUE(ifu.psf_separable());
  Cube od;
  ifu.observe(a.cube, od, /*direct=*/true);
  const double d = max_abs_diff(od.sci, out.sci) / peak_abs(out.sci);
  EXPECT_LT(d, 1e-12);
  std::printf("[ separable vs direct ] max |diff| / peak = %.2e\n", d);
  // So do the separable multi-Gaussian (two terms) and the FFT (Moffat, not separable).
  for (const char* model : {"multi_gaussian", "moffat"}) {
    GenericIfuConfig cm = c;
    cm.psf_model = model;
    cm.psf_weights = {0.7, 0.3};
    cm.psf_fwhms_arcsec = {0.25, 0.4};
    cm.psf_radius_arcsec = 0.6;  // keeps the direct summation quick
    const GenericIfu im(cm);
    EXPECT_EQ(im.psf_separable(), std::string(model) == "multi_gaussian");
    Cube of, odm;
    im.observe(a.cube, of);
    im.observe(a.cube, odm, /*direct=*/true);
    const double dm = max_abs_diff(odm.sci, of.sci) / peak_abs(of.sci);
    EXPECT_LT(dm, 1e-12) << model;
    std::printf("[ %s vs direct ] max |diff| / peak = %.2e\n", im.psf_separable() ? "separable" : "FFT", dm);
  }
}

// ------------------------------------------------------------------------------------------
// Fast path (IfuModel) == reference path (render on the work grid + observe).
TEST(GenericIfuFastPath, EqualsReferencePath) {
  const GalaxyModel g(GalaxyParams{}, Cosmology());  // default galaxy, continuum EW 50 A
  for (int s : {1, 2}) {
    GenericIfuConfig c;  // the benchmark case: 24 x 46 x 0.05", 150 x 54 km/s, PSF 0.12", LSF 50 km/s
    c.oversample = s;
    const GenericIfu ifu(c);
    const IfuModel im(ifu);
    IfuModelSummary sum;
    const Cube fast = im.model_cube(g, &sum);
    // The default galaxy's outer metallicities leave PP04_O3N2's range: reported, as by render.
    EXPECT_TRUE(sum.status.ok() || sum.status.code == StatusCode::kOutOfRange) << sum.status.message;
    const double ch = s == 1 ? 5.0 : 10.0;
    const RenderResult r = render(g, reference_render(ifu, ch), c.sky);
    Cube ref;
    ifu.observe(r.cube, ref);
    const double pk = peak_abs(ref.sci);
    const double d = max_abs_diff(fast.sci, ref.sci) / pk;
    // The reference's sky channels are Sheppard-corrected (GenericIfu::observe), so the two agree
    // to fourth order in the channel width (6e-5 / 7e-5 measured; without the correction the
    // line variance was ch^2/6 too large: 3.4e-4 at 5 km/s, 1.3e-3 at 10 km/s).
    EXPECT_LT(d, 2e-4) << "oversample " << s;
    double ff = 0, fr = 0;
    for (std::size_t i = 0; i < fast.sci.size(); ++i) ff += fast.sci[i], fr += ref.sci[i];
    EXPECT_NEAR(ff / fr, 1.0, 1e-4);
    std::printf("[ fast vs reference, oversample %d, sky channels %.0f km/s ] max |diff| / peak = %.2e, "
                "total ratio - 1 = %.2e, FFT channels %zu of %zu\n",
                s, ch, d, ff / fr - 1.0, sum.transformed_channels, ifu.nl() + 1);
  }
  // Oversampling convergence of the fast path itself (what s = 1 misses: velocity gradients and
  // the PSF inside a spaxel).
  GenericIfuConfig c1, c4;
  c4.oversample = 4;
  const GenericIfu i1(c1), i4(c4);
  const Cube f1 = IfuModel(i1).model_cube(g), f4 = IfuModel(i4).model_cube(g);
  std::printf("[ oversampling ] max |cube(s=1) - cube(s=4)| / peak = %.2e\n", max_abs_diff(f1.sci, f4.sci) / peak_abs(f4.sci));
}

// ------------------------------------------------------------------------------------------
TEST(GenericIfuFastPath, NoisyMockWritesFitsverifiesAndReadsBack) {
  GenericIfuConfig c;
  const GenericIfu ifu(c);
  const IfuModel im(ifu);
  const GalaxyModel g(GalaxyParams{}, Cosmology());
  Cube cube = im.model_cube(g);
  const double sigma = 0.05 * peak_abs(cube.sci);
  Rng rng(12345);
  cube.ensure_quality();
  for (std::size_t i = 0; i < cube.sci.size(); ++i) {
    cube.sci[i] += rng.normal(0.0, sigma);
    cube.err[i] = sigma;
  }
  slitstep::test::TempDir dir("generic-ifu-mock");
  const std::string path = dir.file("mock.fits");
  ProductMeta meta;
  meta.product_type = "CUBE";
  meta.seed = 12345;
  meta.config_text = "[ifu]\n";
  write_cube(cube, path, meta);
  const auto fv = slitstep::test::run_command("fitsverify -q " + path);
  EXPECT_EQ(fv.exit_code, 0) << fv.output;
  EXPECT_NE(fv.output.find("verification OK"), std::string::npos) << fv.output;
  const Cube back = read_cube(path);
  ASSERT_EQ(back.sci.size(), cube.sci.size());
  EXPECT_EQ(back.spatial.nx, cube.spatial.nx);
  EXPECT_EQ(back.nl(), cube.nl());
  EXPECT_LT(max_abs_diff(back.sci, cube.sci), 1e-6 * peak_abs(cube.sci));
  EXPECT_LT(max_abs_diff(back.err, cube.err), 1e-6 * sigma);
}
