// Disperser: dispersion tables, rectified wavelength grid, optical kernel K.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "core/error.hpp"
#include "helpers/paths.hpp"
#include "instruments/disperser.hpp"

using namespace slitstep;

namespace {
std::string g140h_file() { return slitstep::test::shared_data("nirspec_msaexp/jwst_nirspec_g140h_disp.fits"); }
std::string g140m_file() { return slitstep::test::shared_data("nirspec_msaexp/jwst_nirspec_g140m_disp.fits"); }
}  // namespace

TEST(Disperser, RealTableIsReadAndBuiltInCopyAgreesWithIt) {
  const DispersionTable file = read_dispersion_table(g140h_file());
  EXPECT_EQ(file.wavelength_um.size(), 1001u);
  DisperserOptions o;
  o.dispersion_table = g140h_file();
  const Disperser from_file(o);
  const Disperser builtin(DisperserOptions{});
  for (double l : {0.97, 1.0, 1.3, 1.4, 1.6, 1.8, 1.89}) {
    EXPECT_NEAR(builtin.dlds_um_per_px(l) / from_file.dlds_um_per_px(l), 1.0, 5e-5) << l;  // coarse copy
    EXPECT_NEAR(builtin.resolving_power(l) / from_file.resolving_power(l), 1.0, 2e-4) << l;
    EXPECT_NEAR(from_file.nominal_fwhm_px(l), 2.20, 0.005) << l;  // JDox: FWHM = 2.2 px everywhere
  }
  EXPECT_NEAR(from_file.resolving_power(1.4), 2702, 5);  // nirspec.md §3
  EXPECT_NEAR(from_file.dlds_um_per_px(1.0) * 1e4, 2.40, 0.01);
  EXPECT_NEAR(from_file.dlds_um_per_px(1.8) * 1e4, 2.28, 0.01);
  // the grid built from either differs by < 0.03 px (measured 0.014 px at 1.5 um)
  EXPECT_EQ(builtin.num_columns(), from_file.num_columns());
  EXPECT_NEAR(builtin.u_of_lambda(1.5), from_file.u_of_lambda(1.5), 0.03);
}

TEST(Disperser, G140MIsData) {
  DisperserOptions o;
  o.grating = "G140M";
  o.dispersion_table = g140m_file();
  const Disperser m(o);
  DisperserOptions b;
  b.grating = "G140M";
  const Disperser mb(b);
  EXPECT_NEAR(m.resolving_power(1.4), 1000, 2);
  EXPECT_NEAR(mb.dlds_um_per_px(1.4) / m.dlds_um_per_px(1.4), 1.0, 1e-5);
  EXPECT_LT(m.num_columns(), 1500);  // ~6.4 A/px over 0.92 um
}

TEST(Disperser, RectifiedGridIntegratesDlds) {
  const Disperser d(DisperserOptions{});
  EXPECT_NEAR(d.column_wavelengths_um().front(), 0.97, 1e-9);
  EXPECT_NEAR(d.u_of_lambda(0.97), 0.0, 1e-9);
  std::cout << "G140H/F100LP: " << d.num_columns() << " columns, 0.97-" << d.column_wavelengths_um().back() << " um\n";
  EXPECT_GT(d.num_columns(), 3800);
  EXPECT_LT(d.num_columns(), 4000);
  for (double l : {1.0, 1.25, 1.5, 1.75}) {
    const double h = 1e-4;
    const double dudl = (d.u_of_lambda(l + h) - d.u_of_lambda(l - h)) / (2 * h);
    EXPECT_NEAR(dudl * d.dlds_um_per_px(l), 1.0, 1e-4) << l;
    EXPECT_NEAR(d.lambda_of_u(d.u_of_lambda(l)), l, 1e-10);
  }
  for (int u = 1; u < d.num_columns(); ++u)
    ASSERT_GT(d.column_wavelengths_um()[u], d.column_wavelengths_um()[u - 1]);
}

TEST(Disperser, OpticalKernelReproducesNominalFwhmForTheSlitImage) {
  const Disperser d(DisperserOptions{});
  for (double l : {1.0, 1.3, 1.6, 1.8}) {
    const double s = d.kernel_sigma_px(l);
    EXPECT_NEAR(Disperser::profile_fwhm_px(2.0, s), d.nominal_fwhm_px(l), 1e-6) << l;
    std::cout << "lambda " << l << ": K FWHM " << d.kernel_fwhm_px(l) << " px; point source (K + pixel) "
              << Disperser::profile_fwhm_px(0.0, s) << " px; slit-filling " << d.nominal_fwhm_px(l) << " px\n";
    EXPECT_GT(d.kernel_fwhm_px(l), 1.2);
    EXPECT_LT(d.kernel_fwhm_px(l), 1.5);
  }
  EXPECT_FALSE(d.kernel_clamped());
  DisperserOptions o;
  o.optical_kernel_fwhm_px = 1.3;
  EXPECT_NEAR(Disperser(o).kernel_fwhm_px(1.4), 1.3, 1e-12);
}

TEST(Disperser, BoxGaussFractionIsAProbability) {
  for (double w : {0.0, 1e-9, 0.2, 2.0}) {
    double s = 0;
    for (int m = -30; m <= 30; ++m) s += box_gauss_fraction(0.3, 0.3 + w, 0.6, m - 0.5, m + 0.5);
    EXPECT_NEAR(s, 1.0, 1e-13) << w;
  }
  // symmetric and continuous at zero width
  EXPECT_NEAR(box_gauss_fraction(-1, 1, 0.5, -0.5, 0.5), box_gauss_fraction(-1, 1, 0.5, -0.5, 0.5), 0);
  EXPECT_NEAR(box_gauss_fraction(0.1, 0.1 + 1e-6, 0.5, 0.0, 1.0), box_gauss_fraction(0.1, 0.1, 0.5, 0.0, 1.0), 1e-6);
  // narrow Gaussian: the fraction of a box inside a sub-interval is its length ratio
  EXPECT_NEAR(box_gauss_fraction(0.0, 2.0, 1e-4, 0.5, 1.0), 0.25, 1e-9);
}

TEST(Disperser, BadInputsAreRefused) {
  EXPECT_THROW(builtin_dispersion_table("G395H"), InvalidOptions);
  EXPECT_THROW(read_dispersion_table("/no/such/table.fits"), InputError);
  EXPECT_THROW(read_dispersion_table(slitstep::test::shared_data("nirspec_msaexp/../PROVENANCE.md")), InputError);
  DisperserOptions o;
  o.filter = "F070LP";
  EXPECT_THROW(Disperser{o}, InvalidOptions);
  DispersionTable t = builtin_dispersion_table("G140H");
  t.dlds_um_per_px[3] = -1;
  EXPECT_THROW(t.validate(), InputError);
}
