// `slitstep population RESULTS.csv -o DIR`: the gradient - stellar-mass relation of a sample
// (paper Sect. 4.1, Eq. 2) through analysis/population: OLS slope and intercept at log M* = 10
// with 1000 bootstrap resamples, Pearson r and p, RMS of the gradients -> DIR/population.json.
// docs/cli.md "population".
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "analysis/population.hpp"
#include "apps/commands.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/table_io.hpp"
#include "core/text_io.hpp"
#include "core/version.hpp"

namespace slitstep::app {

int run_population(const PopulationArgs& args) {
  const CsvTable t = read_csv(args.csv_path);
  for (const char* c : {"id", "log_mstar", "gradient_dex_per_kpc", "gradient_err"}) (void)t.column(c);
  std::vector<GalaxyGradientRow> rows;
  for (std::size_t r = 0; r < t.num_rows(); ++r) {
    GalaxyGradientRow g;
    g.id = t.text(r, "id");
    if (g.id.empty())
      throw InputError(args.csv_path + ":" + std::to_string(t.line_numbers[r]) + ": column 'id' is empty");
    g.log_mstar = t.number(r, "log_mstar");
    if (!(g.log_mstar > 0.0 && g.log_mstar < 20.0))
      throw InputError(args.csv_path + ":" + std::to_string(t.line_numbers[r]) + ": column 'log_mstar' = " +
                       t.text(r, "log_mstar") + ": must be log10(M*/Msun) in (0, 20)");
    g.gradient = t.number(r, "gradient_dex_per_kpc");
    g.gradient_err = t.number(r, "gradient_err");
    if (!(g.gradient_err >= 0.0))
      throw InputError(args.csv_path + ":" + std::to_string(t.line_numbers[r]) + ": column 'gradient_err' = " +
                       t.text(r, "gradient_err") + ": must be >= 0");
    if (args.weighted && !(g.gradient_err > 0.0))
      throw InputError(args.csv_path + ":" + std::to_string(t.line_numbers[r]) +
                       ": column 'gradient_err' = 0: --weighted needs positive errors");
    rows.push_back(g);
  }
  constexpr std::size_t kMinRows = 4;
  if (rows.size() < kMinRows)
    throw InputError(args.csv_path + ":" + std::to_string(t.line_numbers.empty() ? 1 : t.line_numbers.back()) +
                     ": " + std::to_string(rows.size()) + " galaxies: at least " + std::to_string(kMinRows) +
                     " are needed for a relation with bootstrap errors and a Pearson p");
  PopulationOptions o;
  o.n_bootstrap = args.n_bootstrap;
  o.seed = args.seed;
  o.weighted = args.weighted;
  o.pivot_log_mstar = args.pivot;
  try {
    o.validate();
  } catch (const InvalidOptions& e) {
    throw InputError(std::string("population options: ") + e.what());
  }
  const PopulationResult p = gradient_mass_relation(rows, o);

  ensure_output_dir(args.out_dir);
  const std::string out = (std::filesystem::path(args.out_dir) / "population.json").string();
  auto ve = [](const ValueError& v) { return JsonValue::object().set("value", v.value).set("err", v.err); };
  JsonValue j = JsonValue::object();
  j.set("software", std::string("slitstep ") + kVersion);
  j.set("input", args.csv_path);
  j.set("status", p.status.ok() ? std::string("ok") : p.status.message);
  j.set("n_galaxies", p.n_galaxies);
  j.set("pivot_log_mstar", o.pivot_log_mstar);
  j.set("fit", std::string(o.weighted ? "weighted least squares (1/gradient_err^2)" : "ordinary least squares"));
  j.set("slope", ve(p.slope));
  j.set("intercept", ve(p.intercept));
  j.set("slope_bootstrap_median", p.slope_bootstrap_median);
  j.set("intercept_bootstrap_median", p.intercept_bootstrap_median);
  j.set("n_bootstrap", o.n_bootstrap);
  j.set("n_bootstrap_used", p.n_bootstrap_used);
  j.set("seed", static_cast<unsigned long long>(o.seed));
  j.set("pearson_r", p.pearson.r);
  j.set("pearson_p", p.pearson.p_two_sided);
  j.set("rms_dex_per_kpc", p.rms_gradient);
  j.set("std_dex_per_kpc", p.std_gradient);
  j.set("rmse_about_relation_dex_per_kpc", p.rmse_about_relation);
  write_text_atomic(out, j.dump() + "\n");

  std::printf("slitstep %s population %s: %d galaxies\n", kVersion, args.csv_path.c_str(), p.n_galaxies);
  std::printf("gradient = slope (log M* - %.1f) + intercept   (%s, %d bootstrap resamples)\n", o.pivot_log_mstar,
              o.weighted ? "weighted" : "OLS", p.n_bootstrap_used);
  std::printf("  slope      %+.4f +- %.4f dex/kpc per dex\n", p.slope.value, p.slope.err);
  std::printf("  intercept  %+.4f +- %.4f dex/kpc at log M* = %.1f\n", p.intercept.value, p.intercept.err,
              o.pivot_log_mstar);
  std::printf("  Pearson r = %.3f, p = %.3g (n = %d)\n", p.pearson.r, p.pearson.p_two_sided, p.pearson.n);
  std::printf("  RMS of the gradients %.4f dex/kpc; RMSE about the relation %.4f dex/kpc\n", p.rms_gradient,
              p.rmse_about_relation);
  if (!p.status.ok()) std::printf("status: %s\n", p.status.message.c_str());
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace slitstep::app
