// `slitstep analyze` on real cubes of ../shared/data (PROVENANCE.md): GMOS NGC 3081 (Seyfert 2:
// central spaxels must classify AGN), SAMI GAMA 485885 (continuum-subtracted Halpha + [NII]:
// a rotating velocity field; v_c, PA, sigma_0 reported), MUSE UDF sub-cube (rotated WCS, faint
// field: analysed without error, status says why no gradient). Measured figures are printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/cube_io.hpp"
#include "core/maps_io.hpp"
#include "core/table_io.hpp"
#include "helpers/json_text.hpp"
#include "helpers/paths.hpp"

using namespace slitstep;
using namespace slitstep::test;

namespace {



// FWHM (Angstrom) of the sky line nearest `centre_A` in the median variance spectrum of a cube:
// the sky lines are seen in the photon noise (ERR^2) even after sky subtraction, so their width is
// the instrumental LSF. Baseline = median of the +-(8..15) A side bands; half-maximum crossings by
// linear interpolation.
double sky_line_fwhm_A(const Cube& c, double centre_A) {
  const std::size_t nl = c.nl();
  std::vector<double> var(nl);
  for (std::size_t k = 0; k < nl; ++k) {
    std::vector<double> v;
    for (int j = 0; j < c.ny(); ++j)
      for (int i = 0; i < c.nx(); ++i) v.push_back(c.err[c.index(i, j, k)] * c.err[c.index(i, j, k)]);
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    var[k] = v[v.size() / 2];
  }
  auto wl = [&](std::size_t k) { return c.spectral.wavelength_um(k) * 1e4; };
  std::vector<double> side;
  std::size_t kpk = 0;
  double peak = -1;
  for (std::size_t k = 0; k < nl; ++k) {
    const double d = std::abs(wl(k) - centre_A);
    if (d >= 8 && d <= 15) side.push_back(var[k]);
    if (d < 3 && var[k] > peak) peak = var[k], kpk = k;
  }
  std::sort(side.begin(), side.end());
  const double base = side[side.size() / 2];
  const double half = base + 0.5 * (peak - base);
  std::size_t a = kpk, b = kpk;
  while (a > 0 && var[a - 1] > half) --a;
  while (b + 1 < nl && var[b + 1] > half) ++b;
  const double left = wl(a - 1) + (half - var[a - 1]) / (var[a] - var[a - 1]) * (wl(a) - wl(a - 1));
  const double right = wl(b) + (var[b] - half) / (var[b] - var[b + 1]) * (wl(b + 1) - wl(b));
  return right - left;
}

}  // namespace

TEST(RealData, GmosNgc3081CentralSpaxelsAreAgn) {
  const std::string path = shared_data("gmos_ngc3081/ngc3081_cube.fits");
  // The LSF, measured from the data: the [OI]6300 and [OI]6364 night-sky lines in the variance.
  const Cube cube = read_cube(path);
  const double f1 = sky_line_fwhm_A(cube, 6300.8), f2 = sky_line_fwhm_A(cube, 6364.3);
  std::printf("GMOS LSF from the sky lines in the variance: FWHM %.2f A at 6300, %.2f A at 6364\n", f1, f2);
  ASSERT_GT(f1, 1.5);
  ASSERT_LT(f1, 4.0);
  const double fwhm = 0.5 * (f1 + f2);

  TempDir dir("real-gmos");
  char lsf[64];
  std::snprintf(lsf, sizeof lsf, "%.3f", fwhm);
  // z comes from the file's REDSHIFT card (0.007976).
  const auto r = run_cli("analyze " + path + " -o " + dir.file("out") + " --lsf-fwhm-A " + lsf);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::printf("%s\n", r.output.c_str());
  const std::string js = read_text(dir.file("out/summary.json"));
  EXPECT_NEAR(json_number(js, "value", "redshift"), 0.007976, 1e-9);
  EXPECT_EQ(json_string(js, "classification"), "WHAN");  // no Hbeta in 5628-6848 A
  EXPECT_NE(run_command("fitsverify -q " + dir.file("out/maps.fits")).output.find("verification OK"),
            std::string::npos);

  // The central spaxels: the 3x3 around the Halpha peak, and the 5 brightest in Halpha.
  const CsvTable t = read_csv(dir.file("out/spaxels.csv"));
  std::vector<std::size_t> order(t.num_rows());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  auto flux = [&](std::size_t k) {
    const double f = t.number(k, "halpha_flux", true);
    return std::isfinite(f) ? f : -1e300;
  };
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return flux(a) > flux(b); });
  int n_agn = 0;
  std::printf("GMOS NGC 3081, brightest Halpha spaxels:\n");
  for (int q = 0; q < 5; ++q) {
    const std::size_t k = order[q];
    std::printf("  (%s, %s) S/N(Ha) %.1f EW(Ha) %.1f A N2 %+.3f -> %s (%s)\n", t.text(k, "i").c_str(),
                t.text(k, "j").c_str(), t.number(k, "halpha_snr", true), t.number(k, "halpha_ew", true),
                t.number(k, "n2", true), t.text(k, "class").c_str(), t.text(k, "diagram").c_str());
    n_agn += t.text(k, "class") == "AGN";
  }
  EXPECT_EQ(n_agn, 5);
  const int pi = std::stoi(t.text(order[0], "i")), pj = std::stoi(t.text(order[0], "j"));
  int n3 = 0, n3_agn = 0, n3_liner = 0;
  for (std::size_t k = 0; k < t.num_rows(); ++k) {
    const int i = std::stoi(t.text(k, "i")), j = std::stoi(t.text(k, "j"));
    if (std::abs(i - pi) > 1 || std::abs(j - pj) > 1) continue;
    ++n3;
    n3_agn += t.text(k, "class") == "AGN";
    n3_liner += t.text(k, "class") == "LINER";
  }
  std::printf("3x3 around the Halpha peak (%d, %d): %d AGN (strong) + %d LINER (weak AGN) of %d spaxels\n", pi, pj,
              n3_agn, n3_liner, n3);
  EXPECT_GE(n3_agn, 5);
  EXPECT_EQ(n3_agn + n3_liner, n3);  // none star-forming, retired or unclassified
}

namespace {

// The SAMI text cube as a FITS cube: Blobby3D layout data[i][j][k] with i along y (ni rows), j
// along x (nj columns), k along wavelength; metadata = ni nj nk x_min x_max y_min y_max w_min
// w_max (bin edges). Row i = 0 is the top of the image (largest y), as Blobby3D's ray grid.
void sami_to_fits(const std::string& out) {
  const std::string dir = shared_data("sami_gama485885/");
  std::ifstream md(dir + "metadata.txt");
  int ni, nj, nk;
  double x0, x1, y0, y1, w0, w1;
  md >> ni >> nj >> nk >> x0 >> x1 >> y0 >> y1 >> w0 >> w1;
  ASSERT_TRUE(md) << "metadata.txt";
  const double dx = (x1 - x0) / nj, dy = (y1 - y0) / ni;
  ASSERT_NEAR(dx, dy, 1e-9);
  SpatialGrid g;
  g.nx = nj;
  g.ny = ni;
  g.pixel_arcsec = dx;
  g.x0_arcsec = x0 + 0.5 * dx;
  g.y0_arcsec = y0 + 0.5 * dy;
  const double step_A = (w1 - w0) / nk;
  const WavelengthGrid wg = WavelengthGrid::linear((w0 + 0.5 * step_A) * 1e-4, step_A * 1e-4, nk);
  Cube c = Cube::zeros(g, wg, SkyFrame{}, true);
  std::ifstream fd(dir + "data.txt"), fv(dir + "var.txt");
  for (int i = 0; i < ni; ++i)
    for (int j = 0; j < nj; ++j)
      for (int k = 0; k < nk; ++k) {
        double d, v;
        fd >> d;
        fv >> v;
        const std::size_t n = c.index(j, ni - 1 - i, k);
        if (std::isfinite(d) && std::isfinite(v) && v > 0) {
          c.sci[n] = d;
          c.err[n] = std::sqrt(v);
        } else {
          c.dq[n] = kDqDoNotUse | kDqNoCoverage;
        }
      }
  ASSERT_TRUE(fd && fv) << "data.txt / var.txt shorter than the metadata says";
  ProductMeta meta;
  meta.product_type = "SAMI-CONVERTED";
  write_cube(c, out, meta);
}

}  // namespace

TEST(RealData, SamiGama485885Rotates) {
  TempDir dir("real-sami");
  const std::string cube = dir.file("sami.fits");
  sami_to_fits(cube);
  // Rest-frame wavelengths (de-redshifted): z = 0 for the fit; LSF FWHM 1.61 A (MODEL_OPTIONS).
  // The galaxy's redshift is not in the data set; only the kpc scale (sigma_0 beyond 3 kpc) needs
  // one, and z = 0.05 (a typical SAMI redshift) is ASSUMED for it. v_c, PA, R_t in arcsec do not
  // depend on it. Inclination: MODEL_OPTIONS INC = 0.5726 rad = 32.8 deg.
  const std::string cfg = dir.file("sami.toml");
  write_text(cfg, "[analysis]\nscale_redshift = 0.05\ninclination_deg = 32.807\n");
  const auto r = run_cli("analyze " + cube + " --config " + cfg + " --redshift 0 --lsf-fwhm-A 1.61 -o " +
                         dir.file("out") + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::printf("%s\n", r.output.c_str());
  const std::string js = read_text(dir.file("out/summary.json"));
  const double vc = json_number(js, "value", "vc_kms"), vce = json_number(js, "err", "vc_kms");
  const double pa = json_number(js, "pa_deg");
  const double s0 = json_number(js, "value", "sigma0_kms"), s0e = json_number(js, "err", "sigma0_kms");
  std::printf("SAMI GAMA 485885: v_c = %.1f +- %.1f km/s, PA = %.1f deg, sigma0 = %.1f +- %.1f km/s, R_t = %.2f\"\n",
              vc, vce, pa, s0, s0e, json_number(js, "rt_arcsec"));
  ASSERT_TRUE(std::isfinite(vc)) << js;
  EXPECT_GT(vc, 5.0 * vce);
  EXPECT_GT(vc, 30.0);
  EXPECT_TRUE(std::isfinite(s0) && s0 > 0.0 && s0 < 150.0);

  // PA against the kinematic major axis of the velocity map itself: the direction of the
  // best-fitting velocity plane v = a + b x + c y over the S/N > 10 spaxels. The receding axis
  // (-sin PA, cos PA) must point along (b, c).
  const CsvTable t = read_csv(dir.file("out/spaxels.csv"));
  double s[3][3] = {}, rhs[3] = {};
  int n = 0;
  for (std::size_t k = 0; k < t.num_rows(); ++k) {
    const double v = t.number(k, "velocity_kms", true), snr = t.number(k, "halpha_snr", true);
    if (!std::isfinite(v) || !(snr > 10)) continue;
    const double b[3] = {1.0, t.number(k, "x_arcsec"), t.number(k, "y_arcsec")};
    for (int p = 0; p < 3; ++p) {
      rhs[p] += b[p] * v;
      for (int q = 0; q < 3; ++q) s[p][q] += b[p] * b[q];
    }
    ++n;
  }
  ASSERT_GT(n, 30);
  // Cramer's rule for the 3x3 normal equations.
  auto det3 = [](double m[3][3]) {
    return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
           m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  };
  const double d = det3(s);
  double coef[3];
  for (int c = 0; c < 3; ++c) {
    double m[3][3];
    for (int p = 0; p < 3; ++p)
      for (int q = 0; q < 3; ++q) m[p][q] = (q == c) ? rhs[p] : s[p][q];
    coef[c] = det3(m) / d;
  }
  const double pa_plane = std::atan2(-coef[1], coef[2]) * 180.0 / M_PI;
  const double dpa = std::remainder(pa - pa_plane, 360.0);
  std::printf("velocity-plane PA %.1f deg (gradient %.1f km/s/arcsec over %d spaxels); fitted PA - plane PA = %.1f deg\n",
              pa_plane, std::hypot(coef[1], coef[2]), n, dpa);
  EXPECT_GT(std::hypot(coef[1], coef[2]), 5.0);  // a clear velocity gradient (km/s per arcsec)
  EXPECT_LT(std::abs(dpa), 20.0);
}

TEST(RealData, MuseUdfFaintFieldAnalysedWithoutError) {
  TempDir dir("real-muse");
  const std::string path = shared_data("muse_udf_subcube/subcub_mosaic.fits");
  // No redshift in the header: give one. MUSE's LSF FWHM is ~2.6 A near 5000 A (Bacon et al. 2017).
  const auto r = run_cli("analyze " + path + " --redshift 0 --lsf-fwhm-A 2.6 -o " + dir.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::printf("%s\n", r.output.c_str());
  const std::string js = read_text(dir.file("out/summary.json"));
  const std::string status = json_string(js, "status");
  EXPECT_NE(status, "ok");
  EXPECT_NE(status.find("Halpha"), std::string::npos) << status;
  EXPECT_TRUE(std::isnan(json_number(js, "value", "gradient_dex_per_kpc")));
  EXPECT_NE(run_command("fitsverify -q " + dir.file("out/maps.fits")).output.find("verification OK"),
            std::string::npos);
  // The rotated WCS is carried over: the maps' 2-D WCS equals the cube's celestial WCS.
  const MapProduct m = read_maps(dir.file("out/maps.fits"));
  EXPECT_EQ(m.spatial.nx, 30);
  EXPECT_GT(std::abs(m.sky.aperture_pa_deg), 1.0);
  const std::string py =
      "from astropy.io import fits; from astropy.wcs import WCS\n"
      "m=WCS(fits.open('" + dir.file("out/maps.fits") + "')['VEL'].header)\n"
      "c=WCS(fits.open('" + path + "')['DATA'].header).celestial\n"
      "print(max(m.pixel_to_world(*p).separation(c.pixel_to_world(*p)).arcsec for p in [(0,0),(29,0),(0,29),(12.3,17.8)]))\n";
  write_text(dir.file("w.py"), py);
  const auto pr = run_command(python() + " " + dir.file("w.py"));
  ASSERT_EQ(pr.exit_code, 0) << pr.output;
  EXPECT_LT(std::stod(pr.output), 1e-6) << pr.output;
}
