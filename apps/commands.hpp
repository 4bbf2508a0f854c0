#pragma once
// The slitstep program's subcommands. Each returns the process exit code; InputError escapes to
// main(), which prints it as one line and returns 2.
#include <cstdint>
#include <limits>
#include <string>

namespace slitstep::app {

struct RenderArgs {
  std::string config_path;  // empty: the built-in default galaxy
  std::string out_dir;
  bool demo = false;        // print the demo's summary table
};

struct SimulateArgs {
  std::string config_path;  // empty: the built-in default galaxy and instrument
  std::string out_dir;
  bool noiseless = false;   // --noiseless
  long long seed = -1;      // --seed (>= 0 overrides the config's seed)
  int threads = 0;          // --threads (0 = OpenMP default)
  bool demo = false;        // print the model table, write sky.fits too
};

struct AnalyzeArgs {
  std::string cube_path;
  std::string config_path;  // empty: every [analysis] / [lines] default
  std::string out_dir;
  double redshift = std::numeric_limits<double>::quiet_NaN();             // --redshift
  double lsf_fwhm_A = std::numeric_limits<double>::quiet_NaN();           // --lsf-fwhm-A
  double lsf_resolving_power = std::numeric_limits<double>::quiet_NaN();  // --lsf-R
  double lsf_sigma_kms = std::numeric_limits<double>::quiet_NaN();        // --lsf-sigma-kms
  int threads = 0;
};

struct PopulationArgs {
  std::string csv_path;
  std::string out_dir;
  int n_bootstrap = 1000;
  std::uint64_t seed = 1;
  bool weighted = false;
  double pivot = 10.0;
};

struct FitArgs {
  std::string data_path;    // a cube, or a folder of exposures (simulate output)
  std::string model_path;   // --model MODEL.toml (empty: every default)
  std::string out_dir;
  std::string instrument;   // --instrument auto | slitstep | ifu (empty: the file's / auto)
  bool sample = false;      // --sample
  int walkers = 0, steps = 0, burn_in = -1;  // sampler overrides (0 / -1: the file's)
  long long seed = -1;      // --seed of the sampler (>= 0 overrides)
  int threads = -1;         // --threads (-1: the file's; 0 = OpenMP default)
  int max_iterations = 0;   // --max-iterations (0: the file's)
  double redshift = std::numeric_limits<double>::quiet_NaN();         // --redshift of the data
  double model_redshift = std::numeric_limits<double>::quiet_NaN();   // --model-redshift
  double psf_fwhm_arcsec = std::numeric_limits<double>::quiet_NaN();  // --psf-fwhm-arcsec (Gaussian)
  double lsf_fwhm_A = std::numeric_limits<double>::quiet_NaN();       // --lsf-fwhm-A
  double lsf_sigma_kms = std::numeric_limits<double>::quiet_NaN();    // --lsf-sigma-kms
};

int run_render(const RenderArgs& args);
int run_simulate(const SimulateArgs& args);
int run_info(const std::string& path);
int run_analyze(const AnalyzeArgs& args);
int run_population(const PopulationArgs& args);
int run_fit(const FitArgs& args);

}  // namespace slitstep::app
