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

  app::AnalyzeArgs an_args;
  auto* analyze = app.add_subcommand(
      "analyze", "Per-spaxel line fits and the MSA-3D analysis of a cube -> DIR/maps.fits, spaxels.csv, summary.json");
  analyze->add_option("cube", an_args.cube_path, "Cube (slitstep product, JWST s3d or generic IFU FITS cube)")
      ->required();
  analyze->add_option("-o,--output", an_args.out_dir, "Output folder")->required();
  analyze->add_option("--config", an_args.config_path, "Configuration (TOML): [analysis] and [lines] tables");
  analyze->add_option("--redshift", an_args.redshift,
                      "Systemic redshift (required when the cube carries none; slitstep cubes do)");
  analyze->add_option("--lsf-fwhm-A", an_args.lsf_fwhm_A, "Instrumental FWHM in observed-frame Angstrom");
  analyze->add_option("--lsf-R", an_args.lsf_resolving_power, "Instrumental resolving power (constant)");
  analyze->add_option("--lsf-sigma-kms", an_args.lsf_sigma_kms, "Instrumental sigma in km/s (constant)");
  analyze->add_option("--threads", an_args.threads, "OpenMP threads (0 = default; results do not depend on it)")
      ->check(CLI::NonNegativeNumber);

  app::PopulationArgs pop_args;
  auto* population = app.add_subcommand(
      "population", "Gradient - stellar mass relation of a sample (CSV: id, log_mstar, gradient_dex_per_kpc, "
                    "gradient_err) -> DIR/population.json");
  population->add_option("csv", pop_args.csv_path, "Results table (CSV)")->required();
  population->add_option("-o,--output", pop_args.out_dir, "Output folder")->required();
  population->add_option("--bootstrap", pop_args.n_bootstrap, "Bootstrap resamples")
      ->capture_default_str()
      ->check(CLI::Range(10, 1000000));
  population->add_option("--seed", pop_args.seed, "Seed of the bootstrap")->capture_default_str();
  population->add_flag("--weighted", pop_args.weighted, "Weight by 1/gradient_err^2 (default: OLS, as the paper)");

  app::FitArgs fit_args;
  auto* fit = app.add_subcommand(
      "fit", "Forward-model fit of a galaxy model through the instrument -> DIR/fit.json, model.fits, residual.fits "
             "(--sample: chain.fits)");
  fit->add_option("data", fit_args.data_path, "A cube (slitstep product or IFU cube) or a simulate output folder "
                                              "(exposure space)")
      ->required();
  fit->add_option("-o,--output", fit_args.out_dir, "Output folder")->required();
  fit->add_option("--model", fit_args.model_path, "MODEL.toml: [fit], [model], [params.NAME], [ifu]");
  fit->add_option("--instrument", fit_args.instrument, "auto (default), slitstep or ifu");
  fit->add_flag("--sample", fit_args.sample, "Posterior sampling after the maximum-likelihood fit (chain.fits)");
  fit->add_option("--walkers", fit_args.walkers, "Sampler walkers (even)")->check(CLI::PositiveNumber);
  fit->add_option("--steps", fit_args.steps, "Sampler steps after the burn-in")->check(CLI::PositiveNumber);
  fit->add_option("--burn-in", fit_args.burn_in, "Sampler burn-in steps")->check(CLI::NonNegativeNumber);
  fit->add_option("--seed", fit_args.seed, "Sampler seed")->check(CLI::NonNegativeNumber);
  fit->add_option("--threads", fit_args.threads, "Threads (0 = OpenMP default; results do not depend on it)")
      ->check(CLI::NonNegativeNumber);
  fit->add_option("--max-iterations", fit_args.max_iterations, "Trust-region iterations")->check(CLI::PositiveNumber);
  fit->add_option("--redshift", fit_args.redshift, "Redshift of the data's wavelengths (IFU cubes; 0 = de-redshifted)");
  fit->add_option("--model-redshift", fit_args.model_redshift,
                  "Redshift of the model (angular scale; required for a de-redshifted cube)");
  fit->add_option("--psf-fwhm-arcsec", fit_args.psf_fwhm_arcsec, "Gaussian PSF FWHM of an IFU cube (arcsec)");
  fit->add_option("--lsf-fwhm-A", fit_args.lsf_fwhm_A, "LSF FWHM of an IFU cube (Angstrom, data frame)");
  fit->add_option("--lsf-sigma-kms", fit_args.lsf_sigma_kms, "LSF sigma of an IFU cube (km/s)");

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
    if (*analyze) return app::run_analyze(an_args);
    if (*population) return app::run_population(pop_args);
    if (*fit) return app::run_fit(fit_args);
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
