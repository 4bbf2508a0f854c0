// `slitstep simulate CONFIG.toml -o DIR` and `slitstep demo`: the whole chain (render -> observe
// -> noise -> reconstruct) through sim/simulate; this file only reads the config, prints and
// writes.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "apps/commands.hpp"
#include "core/config.hpp"
#include "core/cosmology.hpp"
#include "core/cube_io.hpp"
#include "core/error.hpp"
#include "core/lines.hpp"
#include "core/version.hpp"
#include "sim/galaxy.hpp"
#include "sim/simulate.hpp"

namespace slitstep::app {

int run_simulate(const SimulateArgs& args) {
  const auto t0 = std::chrono::steady_clock::now();
  // The demo: every default (galaxy, instrument, MSA-3D pattern).
  const Config cfg = args.config_path.empty() ? Config::empty("<built-in default galaxy and instrument>")
                                              : Config::from_file(args.config_path);
  const SimulationConfig sc = read_simulation_config(cfg);
  cfg.check_all_used();
  if (args.threads < 0) throw InputError("--threads = " + std::to_string(args.threads) + ": must be >= 0");
  if (args.threads > 0) omp_set_num_threads(args.threads);

  SimulateOptions opt;
  opt.noiseless = args.noiseless;
  opt.threads = args.threads;
  if (args.seed >= 0) opt.seed = static_cast<std::uint64_t>(args.seed);
  opt.keep_sky = args.demo;

  if (args.demo) {
    std::printf("slitstep %s demo: the built-in default galaxy through NIRSpec MSA slit-stepping\n", kVersion);
    std::printf("(every default: the galaxy below, G140H/F100LP, a 3-shutter slitlet, 9 x 7 MSA-3D pointings)\n\n");
    const GalaxyModel model(sc.scene.galaxy, Cosmology(sc.scene.cosmology));
    std::fputs(describe_model(model).c_str(), stdout);
    std::printf("\n");
  }
  const auto& pat = sc.instrument.pattern;
  std::printf("simulating %zu x %zu pointings (%s), %.0f s each, %s/%s, slitlet Q%d i=%d j=%d (%d shutters)%s\n",
              pat.steps_x_arcsec.size(), pat.dithers_y_arcsec.size(), pat.order.c_str(), pat.exptime_s,
              sc.instrument.disperser.grating.c_str(), sc.instrument.disperser.filter.c_str(),
              sc.instrument.slitlet.quadrant, sc.instrument.slitlet.shutter_i, sc.instrument.slitlet.shutter_j,
              sc.instrument.slitlet.n_shutters, (args.noiseless || sc.noise.noiseless) ? ", noiseless" : "");
  std::fflush(stdout);

  const SimulationResult r = simulate(sc, opt);
  for (const auto& n : r.notes) std::printf("note: %s\n", n.c_str());
  if (!r.status.ok()) throw InputError("simulate failed: " + r.status.message);

  ProductMeta meta;
  meta.software_version = kVersion;
  meta.config_text = cfg.text();
  SimulationWriteOptions w;
  w.sky_cube = args.demo;
  const auto tw = std::chrono::steady_clock::now();
  write_simulation_products(r, args.out_dir, meta, w);
  const double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - tw).count();

  const Cube& c = r.reconstruct.cube;
  const auto& t = r.timings;
  std::printf("sky cube: %.2f\" x %.2f\" field (%s), Halpha in field %.3g of %.3g erg/s/cm2\n",
              r.config.scene.render.fov_x_arcsec, r.config.scene.render.fov_y_arcsec,
              r.config.fov_derived ? "derived from the pattern, slitlet and PSF" : "as configured",
              r.render.line_flux_fov_cgs[static_cast<int>(LineId::kHalpha)],
              r.render.line_flux_total_cgs[static_cast<int>(LineId::kHalpha)]);
  std::printf("observation: %zu pointings x %.0f s = %.2f h; %d x %d exposure pixels each\n", r.exposures.size(),
              pat.exptime_s, pat.exptime_s * static_cast<double>(r.exposures.size()) / 3600.0,
              r.exposures.empty() ? 0 : r.exposures.front().nv, r.exposures.empty() ? 0 : r.exposures.front().nu);
  std::printf("cube: %d x %d spaxels of %.3f\" x %zu channels (%.4f-%.4f um), %zu voxels without data\n", c.nx(),
              c.ny(), c.spatial.pixel_arcsec, c.nl(), c.spectral.min_um(), c.spectral.max_um(),
              r.reconstruct.n_voxels_no_data);
  const BrightestSpaxel b = brightest_halpha_spaxel(r);
  if (b.i >= 0)
    std::printf("Halpha in the brightest spaxel (%+.2f\", %+.2f\"): %.3g +- %.2g erg/s/cm2, S/N = %.1f%s\n",
                c.spatial.x_arcsec(b.i), c.spatial.y_arcsec(b.j), b.flux.flux_cgs, b.flux.err_cgs,
                b.flux.flux_cgs / b.flux.err_cgs, r.noiseless ? " (expected; no noise drawn)" : "");
  std::printf("time: render %.2f s, instrument %.2f s, observe %.2f s, noise %.2f s, reconstruct %.2f s, write %.2f s\n",
              t.render_s, t.instrument_s, t.observe_s, t.noise_s, t.reconstruct_s, write_s);
  const std::filesystem::path d(args.out_dir);
  std::printf("wrote %s/ (%zu files), %s, %s%s%s\n", (d / "exposures").string().c_str(), r.exposures.size(),
              (d / "cube.fits").string().c_str(), (d / "truth.json").string().c_str(), args.demo ? ", " : "",
              args.demo ? (d / "sky.fits").string().c_str() : "");
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wall time %.1f s\n", wall_s);
  return 0;
}

}  // namespace slitstep::app
