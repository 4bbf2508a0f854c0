// slitstep: the command-line program. Parses the command line and dispatches to subcommands;
// all work happens in the libraries. Exit codes: 0 success, 2 bad input (one-line message on
// stderr naming the file/key/value), 1 an unexpected internal error.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "apps/commands.hpp"
#include "core/error.hpp"
#include "core/version.hpp"

namespace {

std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace slitstep;
  CLI::App app{"slitstep: JWST/NIRSpec MSA slit-stepping simulator and forward-model fitter"};
  app.set_version_flag("--version", std::string(kVersion));
  app.require_subcommand(1);

  app::SimulateArgs demo_args;
  demo_args.demo = true;
  demo_args.out_dir = "slitstep-demo";
  auto* demo = app.add_subcommand(
      "demo", "The whole chain on the built-in default galaxy: render, observe 63 pointings, noise, reconstruct");
  demo->add_option("-o,--output", demo_args.out_dir, "Output folder")->capture_default_str();
  demo->add_option("--threads", demo_args.threads, "OpenMP threads (0 = default)")->check(CLI::NonNegativeNumber);

  app::SimulateArgs sim_args;
  auto* simulate = app.add_subcommand(
      "simulate", "Galaxy + instrument (TOML) -> DIR/exposures/*.fits, DIR/cube.fits, DIR/truth.json");
  simulate->add_option("config", sim_args.config_path, "Configuration (TOML): galaxy, instrument, reconstruct, noise")
      ->required();
  simulate->add_option("-o,--output", sim_args.out_dir, "Output folder")->required();
  simulate->add_flag("--noiseless", sim_args.noiseless, "Draw no noise (ERR still holds the expected noise)");
  simulate->add_option("--seed", sim_args.seed, "Seed of the noise (overrides the config's seed)")
      ->check(CLI::NonNegativeNumber);
  simulate->add_option("--threads", sim_args.threads, "OpenMP threads (0 = default; results do not depend on it)")
      ->check(CLI::NonNegativeNumber);

  app::RenderArgs render_args;
  auto* render = app.add_subcommand("render", "Render a galaxy model (TOML) into DIR/sky.fits and DIR/truth.json");
  render->add_option("config", render_args.config_path, "Galaxy configuration (TOML)")->required();
  render->add_option("-o,--output", render_args.out_dir, "Output folder")->required();

  std::string info_path;
  auto* info = app.add_subcommand("info", "Summarise a FITS product (HDUs, dimensions, units, WCS)");
  info->add_option("file", info_path, "FITS file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  try {
    if (*demo) return app::run_simulate(demo_args);
    if (*simulate) return app::run_simulate(sim_args);
    if (*render) return app::run_render(render_args);
    if (*info) return app::run_info(info_path);
  } catch (const InputError& e) {
    std::fprintf(stderr, "slitstep: error: %s\n", one_line(e.what()).c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "slitstep: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "slitstep: internal error: %s\n", one_line(e.what()).c_str());
    return 1;
  }
  return 0;
}
