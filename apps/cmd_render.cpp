#include <chrono>
#include <cstdio>
#include <filesystem>

#include "apps/commands.hpp"
#include "core/config.hpp"
#include "core/cosmology.hpp"
#include "core/cube_io.hpp"
#include "core/lines.hpp"
#include "core/text_io.hpp"
#include "core/version.hpp"
#include "sim/galaxy.hpp"
#include "sim/render.hpp"
#include "sim/scene_config.hpp"

namespace slitstep::app {

int run_render(const RenderArgs& args) {
  const auto t0 = std::chrono::steady_clock::now();
  const Config cfg = args.config_path.empty() ? Config::empty("<built-in default galaxy>")
                                              : Config::from_file(args.config_path);
  const SceneConfig scene = read_scene_config(cfg);
  cfg.check_all_used();

  const GalaxyModel model(scene.galaxy, Cosmology(scene.cosmology));
  const RenderResult result = render(model, scene.render, scene.sky);

  ensure_output_dir(args.out_dir);
  const std::filesystem::path dir(args.out_dir);
  ProductMeta meta;
  meta.product_type = "SKYCUBE";
  meta.software_version = kVersion;
  meta.config_text = cfg.text();
  meta.seed = scene.seed;
  const std::string sky_path = (dir / "sky.fits").string();
  const std::string truth_path = (dir / "truth.json").string();
  write_cube(result.cube, sky_path, meta);
  write_text_atomic(truth_path, truth_json(scene, model).dump());
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (args.demo) {
    std::printf("slitstep %s demo: the built-in default galaxy\n\n", kVersion);
    std::fputs(describe_model(model).c_str(), stdout);
    std::printf("\n");
  }
  const auto& c = result.cube;
  std::printf("sky cube: %d x %d spaxels of %.3f\" x %zu channels in %zu wavelength windows (%.4f-%.4f um)\n",
              c.nx(), c.ny(), c.spatial.pixel_arcsec, c.nl(), c.spectral.windows().size(),
              c.spectral.min_um(), c.spectral.max_um());
  if (!result.status.ok()) std::printf("note: %s\n", result.status.message.c_str());
  std::printf("wrote %s\nwrote %s\n(%.2f s)\n", sky_path.c_str(), truth_path.c_str(), wall_s);
  return 0;
}

}  // namespace slitstep::app
