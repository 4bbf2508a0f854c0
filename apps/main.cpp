// slitstep: the command-line program. Parses the command line and dispatches to subcommands;
// all work happens in the libraries. Exit codes: 0 success, 2 bad input (one-line message on
// stderr naming the file/key/value), 1 an unexpected internal error.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "core/error.hpp"
#include "core/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{"slitstep: JWST/NIRSpec MSA slit-stepping simulator and forward-model fitter"};
  app.set_version_flag("--version", slitstep::kVersion);
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return 0;
}
