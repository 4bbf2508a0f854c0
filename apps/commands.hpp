#pragma once
// The slitstep program's subcommands. Each returns the process exit code; InputError escapes to
// main(), which prints it as one line and returns 2.
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

int run_render(const RenderArgs& args);
int run_simulate(const SimulateArgs& args);
int run_info(const std::string& path);

}  // namespace slitstep::app
