// Tests of NirspecNumerics::channel_reference_fraction (instruments/nirspec.hpp): the channel box
// term of the spectral responses, its validation, and the physics it stands for — a sky on
// channels twice as wide, with the box term matched (f = 1/2), gives a detector line of the same
// second moment as the reference 15 km/s sky (Sheppard's correction), while the unmatched box is
// broader by (du_30^2 - du_15^2) / 6 columns^2.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/lines.hpp"
#include "instruments/nirspec.hpp"
#include "instruments/observe.hpp"
#include "sim/galaxy.hpp"
#include "sim/render.hpp"
#include "helpers/configs.hpp"

namespace slitstep {
namespace {

struct Sky {
  SimulationConfig c = test::small_slitstep_config();
  RenderOptions ro;
  explicit Sky(double channel_kms) {
    ro = c.scene.render;
    ro.channel_kms = channel_kms;
    ro.window_half_width_kms = 1200.0;
  }
  SpatialGrid spatial() const { return render_spatial_grid(ro); }
  WavelengthGrid spectral() const {
    const GalaxyModel m(c.scene.galaxy, Cosmology(c.scene.cosmology));
    return render_wavelength_grid(m, ro);
  }
};

TEST(NirspecNumerics, ChannelReferenceFractionValidation) {
  NirspecNumerics n;
  EXPECT_NO_THROW(n.validate());
  for (double bad : {0.0, -0.5, 2.5, std::nan("")}) {
    n.channel_reference_fraction = bad;
    try {
      n.validate();
      ADD_FAILURE() << "accepted " << bad;
    } catch (const InvalidOptions& e) {
      EXPECT_NE(std::string(e.what()).find("channel_reference_fraction"), std::string::npos) << e.what();
    }
  }
  // a fraction that would make a channel's matched variance negative: 1000 km/s channels are ~18
  // columns wide, far wider than the ~0.8-column LSF
  Sky s(1000.0);
  n.channel_reference_fraction = 0.05;
  try {
    const NirspecInstrument ins(s.c.instrument, s.spatial(), s.spectral(), n);
    ADD_FAILURE() << "accepted a negative matched variance";
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("channel_reference_fraction"), std::string::npos) << e.what();
  }
}

TEST(NirspecNumerics, BoxTermFollowsTheFraction) {
  Sky s(30.0);
  NirspecNumerics half;
  half.channel_reference_fraction = 0.5;
  const NirspecInstrument a(s.c.instrument, s.spatial(), s.spectral());
  const NirspecInstrument b(s.c.instrument, s.spatial(), s.spectral(), half);
  const WavelengthGrid& w = a.sky_spectral();
  for (std::size_t k = 0; k < w.size(); k += 7) {
    const double l = w.wavelength_um(k);
    const double du = w.width_um(k) / a.disperser().dlds_um_per_px(l);
    const double sk = a.disperser().kernel_sigma_px(l);
    EXPECT_NEAR(a.kernel_sigma_px_for_channel(k) * a.kernel_sigma_px_for_channel(k), sk * sk + du * du / 12.0, 1e-12);
    EXPECT_NEAR(b.kernel_sigma_px_for_channel(k) * b.kernel_sigma_px_for_channel(k), sk * sk - du * du / 24.0, 1e-12);
  }
}

// Detector spectrum (summed over rows and pointings) of one sky pixel holding a Gaussian line
// (sigma_kms) at the Halpha wavelength, integrated over each channel; its second moment in
// columns^2 about its centroid.
double line_variance_columns2(double channel_kms, double fraction, double sigma_kms) {
  Sky s(channel_kms);
  NirspecNumerics num;
  num.channel_reference_fraction = fraction;
  const NirspecInstrument ins(s.c.instrument, s.spatial(), s.spectral(), num);
  Cube sky = Cube::zeros(ins.sky_spatial(), ins.sky_spectral(), s.c.scene.sky, false);
  const SpatialGrid& g = ins.sky_spatial();
  const int i = g.nx / 2, j = g.ny / 2;
  const double lc = line(LineId::kHalpha).rest_A / 1e4 * (1.0 + s.c.scene.galaxy.redshift);
  const double sl = lc * sigma_kms / 299792.458;
  const WavelengthGrid& w = ins.sky_spectral();
  for (std::size_t k = 0; k < w.size(); ++k) {
    const double a = (w.wavelength_um(k) - 0.5 * w.width_um(k) - lc) / (sl * std::sqrt(2.0));
    const double b = (w.wavelength_um(k) + 0.5 * w.width_um(k) - lc) / (sl * std::sqrt(2.0));
    sky.sci[sky.index(i, j, k)] = 0.5 * (std::erf(b) - std::erf(a)) / w.width_um(k);  // channel mean
  }
  ObserveOptions oo;
  oo.apply_psf = false;
  oo.threads = 1;
  const std::vector<Exposure> ex = observe(ins, sky, oo);
  std::vector<double> spec(static_cast<std::size_t>(ins.nu()), 0.0);
  for (const Exposure& e : ex)
    for (int r = 0; r < e.nv; ++r)
      for (int u = 0; u < e.nu; ++u) spec[static_cast<std::size_t>(u)] += e.sci[e.index(r, u)];
  double s0 = 0.0, s1 = 0.0, s2 = 0.0;
  for (int u = 0; u < ins.nu(); ++u) {
    const double f = spec[static_cast<std::size_t>(u)];
    s0 += f;
    s1 += f * u;
  }
  const double mu = s1 / s0;
  for (int u = 0; u < ins.nu(); ++u) s2 += spec[static_cast<std::size_t>(u)] * (u - mu) * (u - mu);
  return s2 / s0;
}

TEST(NirspecNumerics, MatchedWideChannelsKeepTheLineWidth) {
  const double sigma_kms = 45.0;  // the default galaxy's sigma0
  const double v15 = line_variance_columns2(15.0, 1.0, sigma_kms);
  const double v30m = line_variance_columns2(30.0, 0.5, sigma_kms);
  const double v30u = line_variance_columns2(30.0, 1.0, sigma_kms);
  // the two channel widths in columns at Halpha (15 km/s channels: du15; 30 km/s: 2 du15)
  Sky s(15.0);
  const NirspecInstrument ins(s.c.instrument, s.spatial(), s.spectral());
  const double lc = line(LineId::kHalpha).rest_A / 1e4 * (1.0 + s.c.scene.galaxy.redshift);
  const double du15 = lc * 15.0 / 299792.458 / ins.disperser().dlds_um_per_px(lc);
  const double expect_unmatched = (4.0 - 1.0) * du15 * du15 / 6.0;
  std::printf("[ info ] line variance (columns^2): 15 km/s %.6f, 30 km/s matched %.6f (diff %+.2e), unmatched %.6f "
              "(diff %+.2e, Sheppard + box predict %+.2e)\n",
              v15, v30m, v30m - v15, v30u, v30u - v15, expect_unmatched);
  EXPECT_LT(std::abs(v30m - v15), 1e-3 * expect_unmatched);  // 9e-8 columns^2 measured
  EXPECT_NEAR(v30u - v15, expect_unmatched, 0.05 * expect_unmatched);
}

}  // namespace
}  // namespace slitstep
