// Tests of NirspecNumerics::channel_reference_fraction (instruments/nirspec.hpp): the channel box
// term of the spectral responses, its validation, and the physics it stands for. A sky spectrum
// binned into channels and placed at the channel centres is broader than the continuous one by
// du^2/12 (Sheppard), and each channel's own box adds du^2/12 more; with the default fraction 0
// the box term is -du^2/12 and a line observed through the instrument has the continuous
// spectrum's second moment (LSF + line + pixel boxes) on 15 and 30 km/s channels alike.
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
  for (double bad : {-0.5, 2.5, std::nan("")}) {
    n.channel_reference_fraction = bad;
    try {
      n.validate();
      ADD_FAILURE() << "accepted " << bad;
    } catch (const InvalidOptions& e) {
      EXPECT_NE(std::string(e.what()).find("channel_reference_fraction"), std::string::npos) << e.what();
    }
  }
  // a fraction that would make a channel's variance negative: 300 km/s channels are ~5.5 columns
  // wide, far wider than the ~0.85-column LSF
  Sky s(300.0);
  n.channel_reference_fraction = 0.0;
  try {
    const NirspecInstrument ins(s.c.instrument, s.spatial(), s.spectral(), n);
    ADD_FAILURE() << "accepted a negative channel variance";
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find("channel_reference_fraction"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[render] channel_kms"), std::string::npos) << e.what();
  }
}

TEST(NirspecNumerics, BoxTermFollowsTheFraction) {
  Sky s(30.0);
  NirspecNumerics half, own;
  half.channel_reference_fraction = 0.5;
  own.channel_reference_fraction = 1.0;
  const NirspecInstrument a(s.c.instrument, s.spatial(), s.spectral());  // default: 0
  const NirspecInstrument b(s.c.instrument, s.spatial(), s.spectral(), half);
  const NirspecInstrument c(s.c.instrument, s.spatial(), s.spectral(), own);
  const WavelengthGrid& w = a.sky_spectral();
  for (std::size_t k = 0; k < w.size(); k += 7) {
    const double l = w.wavelength_um(k);
    const double du = w.width_um(k) / a.disperser().dlds_um_per_px(l);
    const double sk = a.disperser().kernel_sigma_px(l);
    auto var = [k](const NirspecInstrument& x) { return x.kernel_sigma_px_for_channel(k) * x.kernel_sigma_px_for_channel(k); };
    EXPECT_NEAR(var(a), sk * sk - du * du / 12.0, 1e-12);
    EXPECT_NEAR(var(b), sk * sk - du * du / 24.0, 1e-12);
    EXPECT_NEAR(var(c), sk * sk + du * du / 12.0, 1e-12);
  }
}

// Detector spectrum (summed over rows) of one sky pixel holding a Gaussian line (sigma_kms) at
// the Halpha wavelength, integrated over each channel, seen by one pointing: its second moment in
// columns^2 about its centroid, and what the continuous spectrum predicts: the line and the LSF
// in columns at the line, the pixel's x box inside the shutter ((u_hi - u_lo)^2 / 12) and the
// detector columns' sampling (1/12).
struct LineMoments {
  double variance = 0.0, predicted = 0.0, du = 0.0;  // columns^2, columns^2, channel width (columns)
};

LineMoments line_moments(double channel_kms, double fraction, double sigma_kms) {
  Sky s(channel_kms);
  NirspecNumerics num;
  num.channel_reference_fraction = fraction;
  const NirspecInstrument ins(s.c.instrument, s.spatial(), s.spectral(), num);
  Cube sky = Cube::zeros(ins.sky_spatial(), ins.sky_spectral(), s.c.scene.sky, false);
  const SpatialGrid& g = ins.sky_spatial();
  // a pointing whose shutter holds a sky column fully in x (the first such), and that column
  int best = -1, i = -1;
  double box = 0.0;
  for (int p = 0; p < static_cast<int>(ins.pointings().size()) && best < 0; ++p)
    for (const auto& co : ins.columns(ins.step_slot(p)))
      if (best < 0 && co.frac_x == 1.0) {
        best = p;
        i = co.i;
        box = co.u_hi - co.u_lo;
      }
  EXPECT_GE(best, 0);
  if (best < 0) return {};
  const int j = g.ny / 2;
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
  oo.pointings = {ins.pointings()[static_cast<std::size_t>(best)].index};
  const std::vector<Exposure> ex = observe(ins, sky, oo);
  std::vector<double> spec(static_cast<std::size_t>(ins.nu()), 0.0);
  for (const Exposure& e : ex)
    for (int r = 0; r < e.nv; ++r)
      for (int u = 0; u < e.nu; ++u) spec[static_cast<std::size_t>(u)] += e.sci[e.index(r, u)];
  double s0 = 0.0, s1 = 0.0, s2 = 0.0;
  for (int u = 0; u < ins.nu(); ++u) {
    s0 += spec[static_cast<std::size_t>(u)];
    s1 += spec[static_cast<std::size_t>(u)] * u;
  }
  const double mu = s1 / s0;
  for (int u = 0; u < ins.nu(); ++u) s2 += spec[static_cast<std::size_t>(u)] * (u - mu) * (u - mu);
  LineMoments m;
  m.variance = s2 / s0;
  const double dlds = ins.disperser().dlds_um_per_px(lc), sk = ins.disperser().kernel_sigma_px(lc);
  m.predicted = (sl / dlds) * (sl / dlds) + sk * sk + box * box / 12.0 + 1.0 / 12.0;
  m.du = lc * channel_kms / 299792.458 / dlds;
  return m;
}

TEST(NirspecNumerics, LinesKeepTheContinuousWidthOnAnyChannelGrid) {
  const double sigma_kms = 45.0;  // the default galaxy's sigma0
  const LineMoments m15 = line_moments(15.0, 0.0, sigma_kms), m30 = line_moments(30.0, 0.0, sigma_kms);
  const LineMoments o15 = line_moments(15.0, 1.0, sigma_kms), o30 = line_moments(30.0, 1.0, sigma_kms);
  std::printf("[ info ] line variance (columns^2), continuous prediction %.6f: 15 km/s %.6f (%+.1e), 30 km/s %.6f "
              "(%+.1e); channels' own boxes: 15 km/s %+.3e (du^2/6 = %.3e), 30 km/s %+.3e (du^2/6 = %.3e)\n",
              m15.predicted, m15.variance, m15.variance - m15.predicted, m30.variance, m30.variance - m30.predicted,
              o15.variance - o15.predicted, o15.du * o15.du / 6.0, o30.variance - o30.predicted, o30.du * o30.du / 6.0);
  // the default: the continuous spectrum's variance on either grid (fourth-order residuals)
  EXPECT_NEAR(m15.variance, m15.predicted, 2e-3 * o15.du * o15.du);
  EXPECT_NEAR(m30.variance, m30.predicted, 2e-3 * o30.du * o30.du);
  EXPECT_NEAR(m30.variance, m15.variance, 1e-3 * o30.du * o30.du);
  // each channel's own box: broader by du^2/6 (Sheppard + box)
  EXPECT_NEAR(o15.variance - o15.predicted, o15.du * o15.du / 6.0, 0.05 * o15.du * o15.du / 6.0);
  EXPECT_NEAR(o30.variance - o30.predicted, o30.du * o30.du / 6.0, 0.05 * o30.du * o30.du / 6.0);
}

}  // namespace
}  // namespace slitstep
