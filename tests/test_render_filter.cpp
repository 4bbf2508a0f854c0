// Tests of sim/render's fused row filter (render_into with a RowFilter): bit for bit the render
// followed by PsfConvolver::apply_separable's x pass (y_pass = false), ranges included.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cosmology.hpp"
#include "core/cube.hpp"
#include "core/error.hpp"
#include "instruments/psf.hpp"
#include "sim/galaxy.hpp"
#include "sim/render.hpp"

using namespace slitstep;

namespace {

// The fitter's render options (lines [NII]+Halpha, fixed windows, no continuum windows) on a
// small field of the simulator's 0.02" pixels.
RenderOptions small_options(bool continuum) {
  RenderOptions o;
  o.pixel_arcsec = 0.02;
  o.fov_x_arcsec = 1.0;
  o.fov_y_arcsec = 0.8;
  o.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  o.continuum_windows = continuum;
  o.window_half_width_kms = 900.0;
  return o;
}

// The operator's filter: the PSF's separable factors cut at 4 sigma per chunk, chunks of the PSF,
// masks with holes (as the shutters leave).
RowFilter make_filter(const PsfConvolver& psf, const SpatialGrid& sg) {
  RowFilter f;
  for (std::size_t c = 0; c < psf.num_chunks(); ++c) {
    f.taps.push_back(psf.separable_factor(c, 4.0));
    f.chunk_first.push_back(psf.chunk_first(c));
    f.chunk_end.push_back(psf.chunk_end(c));
  }
  f.columns_needed.assign(static_cast<std::size_t>(sg.nx), 1);
  f.rows_needed.assign(static_cast<std::size_t>(sg.ny), 1);
  for (int i = 0; i < sg.nx; ++i)
    if (i % 7 == 3 || i < 2) f.columns_needed[static_cast<std::size_t>(i)] = 0;
  for (int j = 0; j < sg.ny; ++j)
    if (j % 5 == 1 || j >= sg.ny - 3) f.rows_needed[static_cast<std::size_t>(j)] = 0;
  return f;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k)
    if (std::bit_cast<std::uint64_t>(a[k]) != std::bit_cast<std::uint64_t>(b[k])) return false;
  return true;
}

void expect_same_summary(const RenderSummary& a, const RenderSummary& b) {
  EXPECT_EQ(a.status.code, b.status.code);
  EXPECT_EQ(a.status.message, b.status.message);
  for (std::size_t l = 0; l < kNumLines; ++l) {
    EXPECT_EQ(std::bit_cast<std::uint64_t>(a.line_flux_fov_cgs[l]), std::bit_cast<std::uint64_t>(b.line_flux_fov_cgs[l]));
    EXPECT_EQ(std::bit_cast<std::uint64_t>(a.line_flux_total_cgs[l]), std::bit_cast<std::uint64_t>(b.line_flux_total_cgs[l]));
  }
  EXPECT_EQ(a.rendered, b.rendered);
  EXPECT_EQ(a.line_window, b.line_window);
  EXPECT_EQ(std::bit_cast<std::uint64_t>(a.disk_light_fov_fraction), std::bit_cast<std::uint64_t>(b.disk_light_fov_fraction));
  EXPECT_EQ(std::bit_cast<std::uint64_t>(a.continuum_light_fov_fraction),
            std::bit_cast<std::uint64_t>(b.continuum_light_fov_fraction));
  EXPECT_EQ(a.clamped_pixels, b.clamped_pixels);
  EXPECT_EQ(a.truncated_profiles, b.truncated_profiles);
  EXPECT_EQ(a.window_half_width_kms, b.window_half_width_kms);
}

void expect_throws_naming(const std::string& field, const std::function<void()>& f) {
  try {
    f();
    ADD_FAILURE() << "no InvalidOptions for " << field;
  } catch (const InvalidOptions& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(RenderFilter, FusedEqualsRenderThenSeparableXPassBitForBit) {
  for (bool continuum : {false, true}) {
    GalaxyParams p;  // the default galaxy, plus a clump (the Gaussian components' path)
    if (continuum) p.clumps.push_back({0.12, -0.08, 0.03, 2e-18, 0.05});
    const GalaxyModel m(p, Cosmology());
    RenderOptions o = small_options(continuum);
    const SpatialGrid sg = render_spatial_grid(o);
    const WavelengthGrid wg = render_wavelength_grid(m, o);
    PsfConfig pc;  // the default Gaussian; finer chunks so that the filter has several
    pc.max_fwhm_rel_change = 0.0005;
    const PsfConvolver psf(pc, sg, wg);
    ASSERT_TRUE(psf.separable());
    ASSERT_GE(psf.num_chunks(), 2u);
    const RowFilter f = make_filter(psf, sg);
    ASSERT_NE(f.taps[0].size(), 1u);

    for (int threads : {1, 2}) {
      SCOPED_TRACE("continuum " + std::to_string(continuum) + ", threads " + std::to_string(threads));
      o.threads = threads;
      // reference: the render, then the x pass into a cube pre-filled with a marker
      Cube sky = Cube::zeros(sg, wg, SkyFrame{}, false);
      const RenderSummary s_ref = render_into(m, o, sky);
      std::vector<double> ref(sky.sci.size(), 7.25), scratch;
      std::vector<int> ref_ranges;
      psf.apply_separable(sky.sci, ref, scratch, threads, 4.0, f.columns_needed, f.rows_needed, /*y_pass=*/false,
                          &ref_ranges);
      // fused, into a cube with the same marker (twice on one workspace: the cached maps)
      RenderWorkspace ws;
      for (int call = 0; call < 2; ++call) {
        Cube out = Cube::zeros(sg, wg, SkyFrame{}, false);
        std::fill(out.sci.begin(), out.sci.end(), 7.25);
        std::vector<int> ranges{1, 2, 3};
        const RenderSummary s = render_into(m, o, out, ws, f, &ranges);
        expect_same_summary(s, s_ref);
        EXPECT_TRUE(same_bits(out.sci, ref));
        EXPECT_EQ(ranges, ref_ranges);
      }
      // the needed outputs are nonzero somewhere (the comparison is not vacuous)
      double peak = 0.0;
      for (double v : ref) peak = std::max(peak, v == 7.25 ? 0.0 : v);
      EXPECT_GT(peak, 0.0);
    }
    // no masks: every output
    RowFilter all = f;
    all.columns_needed.clear();
    all.rows_needed.clear();
    o.threads = 2;
    Cube sky = Cube::zeros(sg, wg, SkyFrame{}, false);
    render_into(m, o, sky);
    std::vector<double> ref, scratch;
    std::vector<int> ref_ranges, ranges;
    psf.apply_separable(sky.sci, ref, scratch, 2, 4.0, {}, {}, false, &ref_ranges);
    RenderWorkspace ws;
    Cube out = Cube::zeros(sg, wg, SkyFrame{}, false);
    render_into(m, o, out, ws, all, &ranges);
    EXPECT_TRUE(same_bits(out.sci, ref));
    EXPECT_EQ(ranges, ref_ranges);
  }
}

TEST(RenderFilter, BadFiltersThrowNamingTheField) {
  const GalaxyModel m(GalaxyParams{}, Cosmology());
  RenderOptions o = small_options(false);
  o.fov_x_arcsec = 0.2;
  o.fov_y_arcsec = 0.2;
  const SpatialGrid sg = render_spatial_grid(o);
  const WavelengthGrid wg = render_wavelength_grid(m, o);
  const std::size_t nl = wg.size();
  RowFilter good;
  good.taps = {{0.25, 0.5, 0.25}, {0.1, 0.2, 0.4, 0.2, 0.1}};
  good.chunk_first = {0, nl / 2};
  good.chunk_end = {nl / 2, nl};
  RenderWorkspace ws;
  Cube out = Cube::zeros(sg, wg, SkyFrame{}, false);
  EXPECT_NO_THROW(render_into(m, o, out, ws, good, nullptr));
  auto run = [&](const RowFilter& f) { return [&, f] { render_into(m, o, out, ws, f, nullptr); }; };
  RowFilter f = good;
  f.taps[1].pop_back();
  expect_throws_naming("RowFilter.taps[1]", run(f));
  f = good;
  f.taps.clear();
  expect_throws_naming("RowFilter.taps", run(f));
  f = good;
  f.chunk_end[1] = nl - 1;
  expect_throws_naming("RowFilter.chunk_end[1]", run(f));
  f = good;
  f.chunk_first[1] = nl / 2 + 1;
  expect_throws_naming("RowFilter.chunk_first[1]", run(f));
  f = good;
  f.chunk_first.pop_back();
  expect_throws_naming("RowFilter.chunk_first", run(f));
  f = good;
  f.columns_needed.assign(static_cast<std::size_t>(sg.nx) + 1, 1);
  expect_throws_naming("RowFilter.columns_needed", run(f));
  f = good;
  f.rows_needed.assign(static_cast<std::size_t>(sg.ny) - 1, 1);
  expect_throws_naming("RowFilter.rows_needed", run(f));
  f = good;
  f.taps[0][1] = std::nan("");
  expect_throws_naming("RowFilter.taps[0][1]", run(f));
}
