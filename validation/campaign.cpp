// slitstep/validation: injection-recovery campaigns (see campaign.hpp).
#include "validation/campaign.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "analysis/pipeline.hpp"
#include "core/cosmology.hpp"
#include "core/rng.hpp"
#include "core/table_io.hpp"
#include "fit/line_fit.hpp"
#include "fit/lsf.hpp"
#include "sim/galaxy.hpp"

namespace slitstep {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

[[noreturn]] void bad_option(const std::string& field, const std::string& value, const std::string& rule) {
  throw InvalidOptions("CampaignOptions." + field + " = " + value + ": " + rule);
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

FitStatus parse_fit_status(const std::string& s, const std::string& where) {
  for (FitStatus f : {FitStatus::kConverged, FitStatus::kDegenerate, FitStatus::kNotConverged, FitStatus::kFailed})
    if (s == fit_status_name(f)) return f;
  throw InputError(where + ": column 'status' = '" + s + "': not a fit status");
}

// Simulation config of the realisations: the truth rendered on the simulator's sky (the
// configuration's pixels and channels) with the operator's fixed line windows, with the config's
// continuum windows kept.
SimulationConfig realisation_config(const SimulationConfig& truth, const SlitstepOperator& op) {
  SimulationConfig sc = truth;
  const bool continuum = truth.scene.render.continuum_windows;
  sc.scene.render = op.data_render_options();
  sc.scene.render.continuum_windows = continuum;
  return sc;
}

std::vector<std::string> csv_header(const std::vector<std::string>& names) {
  std::vector<std::string> h = {"index", "seed", "status", "reason", "chi2", "ndof", "iterations", "evaluations",
                                "simulate_s", "fit_s", "spaxel_s"};
  for (const auto& n : names)
    for (const char* s : {"_start", "_value", "_err", "_pull"}) h.push_back(n + s);
  for (const char* s : {"spaxel_ran", "spaxel_status", "sp_gradient", "sp_gradient_err", "sp_vc", "sp_vc_err", "sp_sigma0",
                        "sp_sigma0_err"})
    h.push_back(s);
  return h;
}

std::vector<std::string> csv_row(const RealisationResult& r) {
  auto num = [](double v) { return format_csv_number(v); };
  std::vector<std::string> row = {std::to_string(r.index), std::to_string(r.seed), fit_status_name(r.status),
                                  one_line(r.reason), num(r.chi2), std::to_string(r.ndof), std::to_string(r.iterations),
                                  std::to_string(r.evaluations), num(r.simulate_s), num(r.fit_s), num(r.spaxel_s)};
  for (std::size_t k = 0; k < r.value.size(); ++k) {
    row.push_back(num(r.start[k]));
    row.push_back(num(r.value[k]));
    row.push_back(num(r.err[k]));
    row.push_back(num(r.pull[k]));
  }
  row.push_back(r.spaxel_ran ? "1" : "0");
  row.push_back(one_line(r.spaxel_status));
  for (double v : {r.sp_gradient, r.sp_gradient_err, r.sp_vc, r.sp_vc_err, r.sp_sigma0, r.sp_sigma0_err}) row.push_back(num(v));
  return row;
}

RealisationResult parse_row(const CsvTable& t, std::size_t row, const std::vector<std::string>& names) {
  RealisationResult r;
  const std::string where = t.path + ":" + std::to_string(t.line_numbers[row]);
  r.index = static_cast<int>(t.number(row, "index"));
  try {
    r.seed = std::stoull(t.text(row, "seed"));
  } catch (const std::exception&) {
    throw InputError(where + ": column 'seed' = '" + t.text(row, "seed") + "': not an unsigned integer");
  }
  r.status = parse_fit_status(t.text(row, "status"), where);
  r.reason = t.text(row, "reason");
  r.chi2 = t.number(row, "chi2", true);
  r.ndof = static_cast<long>(t.number(row, "ndof"));
  r.iterations = static_cast<int>(t.number(row, "iterations"));
  r.evaluations = static_cast<long>(t.number(row, "evaluations"));
  r.simulate_s = t.number(row, "simulate_s", true);
  r.fit_s = t.number(row, "fit_s", true);
  r.spaxel_s = t.number(row, "spaxel_s", true);
  for (const auto& n : names) {
    r.start.push_back(t.number(row, n + "_start", true));
    r.value.push_back(t.number(row, n + "_value", true));
    r.err.push_back(t.number(row, n + "_err", true));
    r.pull.push_back(t.number(row, n + "_pull", true));
  }
  r.spaxel_ran = t.text(row, "spaxel_ran") == "1";
  r.spaxel_status = t.text(row, "spaxel_status");
  r.sp_gradient = t.number(row, "sp_gradient", true);
  r.sp_gradient_err = t.number(row, "sp_gradient_err", true);
  r.sp_vc = t.number(row, "sp_vc", true);
  r.sp_vc_err = t.number(row, "sp_vc_err", true);
  r.sp_sigma0 = t.number(row, "sp_sigma0", true);
  r.sp_sigma0_err = t.number(row, "sp_sigma0_err", true);
  r.resumed = true;
  return r;
}

struct Shared {
  const SimulationConfig* truth_config = nullptr;
  const CampaignOptions* options = nullptr;
  const SlitstepOperator* op = nullptr;
  SimulationConfig sim_config;
  GalaxyParams truth;
  std::vector<double> truth_values;
  double inclination_deg = 0.0, re_kpc = 0.0;
  const LsfModel* lsf = nullptr;
};

std::uint64_t realisation_seed(std::uint64_t seed, int index) {
  return Rng(seed).substream(static_cast<std::uint64_t>(index)).seed();
}

void run_per_spaxel(const Shared& s, const Cube& cube, std::uint64_t seed, RealisationResult& r) {
  const auto t0 = std::chrono::steady_clock::now();
  r.spaxel_ran = true;
  EmissionLineFitOptions fo;
  fo.threads = 1;
  const LineMaps maps = fit_cube(cube, s.truth.redshift, *s.lsf, fo);
  AnalysisOptions ao;
  ao.cosmology = s.truth_config->scene.cosmology;
  ao.pa_deg = s.truth.pa_deg;                // catalogue geometry = the truth (as the paper)
  ao.inclination_deg = s.inclination_deg;
  ao.re_kpc = s.re_kpc;
  ao.kinematics.n_bootstrap = 200;
  ao.kinematics.seed = seed;
  ao.seed = seed;
  const AnalysisResult a = analyze_maps(maps, ao);
  const AnalysisSummary& m = a.summary;
  r.spaxel_status = m.status.ok() ? "ok" : m.status.message;
  r.sp_gradient = m.gradient_dex_per_kpc.value;
  r.sp_gradient_err = m.gradient_dex_per_kpc.err;
  r.sp_vc = m.vc_kms.value;
  r.sp_vc_err = m.vc_kms.err;
  r.sp_sigma0 = m.sigma0_kms.value;
  r.sp_sigma0_err = m.sigma0_kms.err;
  r.spaxel_s = seconds_since(t0);
}

RealisationResult run_one(const Shared& s, int index) {
  const CampaignOptions& o = *s.options;
  const std::size_t nf = o.free_parameters.size();
  RealisationResult r;
  r.index = index;
  r.seed = realisation_seed(o.seed, index);
  r.value.assign(nf, kNaN);
  r.err.assign(nf, kNaN);
  r.pull.assign(nf, kNaN);
  r.start.assign(nf, kNaN);
  for (double* v : {&r.sp_gradient, &r.sp_gradient_err, &r.sp_vc, &r.sp_vc_err, &r.sp_sigma0, &r.sp_sigma0_err}) *v = kNaN;
  Rng rng(r.seed);
  try {
    // 1. noisy simulation
    auto t0 = std::chrono::steady_clock::now();
    SimulateOptions so;
    so.threads = 1;
    so.seed = r.seed;
    const SimulationResult sim = simulate(s.sim_config, so);
    r.simulate_s = seconds_since(t0);
    if (!sim.status.ok()) {
      r.status = FitStatus::kFailed;
      r.reason = "simulation: " + sim.status.message;
      return r;
    }
    // 2. forward fit from a perturbed start
    GalaxyParameterization par(s.truth, o.free_parameters);
    for (std::size_t k = 0; k < nf; ++k) {
      ParamSpec& sp = par.spec(o.free_parameters[k]);
      const double t = s.truth_values[k];
      const double sign = rng.uniform() < 0.5 ? -1.0 : 1.0;
      double v = t != 0.0 ? t * (1.0 + sign * o.start_perturbation) : sign * o.start_perturbation * sp.scale;
      if (!(v > sp.lower && v < sp.upper)) v = t + 0.5 * ((v <= sp.lower ? sp.lower : sp.upper) - t);
      sp.value = v;
      r.start[k] = v;
    }
    const bool cube_space = o.op.space == SlitstepOperatorOptions::Space::kCube;
    const auto sel = cube_space ? s.op->select_cube(sim.reconstruct.cube) : s.op->select_exposures(sim.exposures);
    if (!sel.status.ok()) {
      r.status = FitStatus::kFailed;
      r.reason = "data selection: " + sel.status.message;
      return r;
    }
    const FitProblem p = s.op->make_problem(sel, par);
    FitOptions fo = o.fit;
    fo.threads = 1;
    t0 = std::chrono::steady_clock::now();
    const FitResult f = fit_maximum_likelihood(p, fo);
    r.fit_s = seconds_since(t0);
    r.status = f.status;
    r.reason = f.reason;
    r.chi2 = f.chi2;
    r.ndof = f.ndof;
    r.iterations = f.iterations;
    r.evaluations = f.n_model_evaluations;
    for (std::size_t k = 0; k < nf; ++k) {
      const FittedParameter* fp = f.find(o.free_parameters[k]);
      if (!fp) continue;
      r.value[k] = fp->value;
      r.err[k] = fp->err;
      r.pull[k] = fp->err > 0.0 && std::isfinite(fp->err) ? (fp->value - s.truth_values[k]) / fp->err : kNaN;
    }
    // 3. per-spaxel path on the same reconstructed cube
    if (o.per_spaxel) run_per_spaxel(s, sim.reconstruct.cube, r.seed, r);
  } catch (const std::exception& e) {
    r.status = FitStatus::kFailed;
    r.reason = std::string("exception: ") + one_line(e.what());
  }
  return r;
}

struct Moments {
  int n = 0;
  double mean = kNaN, sd = kNaN;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  double sum = 0.0;
  for (double x : v) sum += x;
  m.n = static_cast<int>(v.size());
  if (m.n == 0) return m;
  m.mean = sum / m.n;
  if (m.n < 2) return m;
  double ss = 0.0;
  for (double x : v) ss += (x - m.mean) * (x - m.mean);
  m.sd = std::sqrt(ss / (m.n - 1));
  return m;
}

}  // namespace

void CampaignOptions::validate() const {
  if (n_realisations < 1) bad_option("n_realisations", std::to_string(n_realisations), "must be >= 1");
  if (threads < 0) bad_option("threads", std::to_string(threads), "must be >= 0 (0 = hardware concurrency)");
  if (free_parameters.empty()) bad_option("free_parameters", "[]", "needs at least one parameter");
  const auto& fittable = fittable_parameter_names();
  for (std::size_t k = 0; k < free_parameters.size(); ++k) {
    const auto& n = free_parameters[k];
    if (std::find(fittable.begin(), fittable.end(), n) == fittable.end())
      bad_option("free_parameters", n, "not a fittable parameter name");
    if (std::find(free_parameters.begin(), free_parameters.begin() + static_cast<long>(k), n) != free_parameters.begin() + static_cast<long>(k))
      bad_option("free_parameters", n, "listed twice");
  }
  if (!(start_perturbation > 0.0 && start_perturbation < 1.0))
    bad_option("start_perturbation", format_value(start_perturbation), "must be in (0, 1)");
  op.validate();
  fit.validate();
}

void summarise_campaign(CampaignResult& res) {
  const std::size_t nf = res.names.size();
  res.params.assign(nf, {});
  res.n_converged = res.n_failed = res.n_resumed = 0;
  for (const auto& r : res.realisations) {
    (r.ok() ? res.n_converged : res.n_failed)++;
    if (r.resumed) ++res.n_resumed;
  }
  for (std::size_t k = 0; k < nf; ++k) {
    ParameterSummary& ps = res.params[k];
    ps.name = res.names[k];
    ps.truth = res.truth[k];
    std::vector<double> pulls, vals, errs;
    for (const auto& r : res.realisations) {
      if (!r.ok() || !std::isfinite(r.pull[k])) continue;
      pulls.push_back(r.pull[k]);
      vals.push_back(r.value[k]);
      errs.push_back(r.err[k]);
    }
    const Moments mp = moments(pulls), mv = moments(vals), me = moments(errs);
    ps.n = mp.n;
    ps.mean_pull = mp.mean;
    ps.pull_std = mp.sd;
    ps.bias = mv.mean - ps.truth;
    ps.scatter = mv.sd;
    ps.bias_err = mv.n > 0 ? mv.sd / std::sqrt(static_cast<double>(mv.n)) : kNaN;
    ps.mean_err = me.mean;
    ps.crb = k < res.fisher.crb.size() ? res.fisher.crb[k] : kNaN;
    ps.scatter_over_crb = ps.scatter / ps.crb;
  }
  res.spaxel.clear();
  bool any_spaxel = false;
  for (const auto& r : res.realisations) any_spaxel = any_spaxel || r.spaxel_ran;
  if (!any_spaxel) return;
  struct Q {
    const char* name;
    double RealisationResult::*v;
    double RealisationResult::*e;
  };
  for (const Q q : {Q{"gradient_dex_per_kpc", &RealisationResult::sp_gradient, &RealisationResult::sp_gradient_err},
                    Q{"vc_kms", &RealisationResult::sp_vc, &RealisationResult::sp_vc_err},
                    Q{"sigma0_kms", &RealisationResult::sp_sigma0, &RealisationResult::sp_sigma0_err}}) {
    SpaxelSummary s;
    s.name = q.name;
    s.truth = get_galaxy_param(res.galaxy, s.name);
    std::vector<double> vals, errs;
    for (const auto& r : res.realisations) {
      // measured: finite, with a finite error below the value's (or the truth's) magnitude; a
      // kinematic fit of a handful of spaxels can return v_c = 8000 +- 6e7 km/s, which is no
      // measurement and would swamp the statistics
      if (!r.spaxel_ran || !std::isfinite(r.*q.v) || !std::isfinite(r.*q.e)) continue;
      if (!(r.*q.e < std::max(std::abs(r.*q.v), std::abs(s.truth)))) continue;
      vals.push_back(r.*q.v);
      errs.push_back(r.*q.e);
    }
    const Moments mv = moments(vals), me = moments(errs);
    s.n = mv.n;
    s.bias = mv.mean - s.truth;
    s.scatter = mv.sd;
    s.bias_err = mv.n > 0 ? mv.sd / std::sqrt(static_cast<double>(mv.n)) : kNaN;
    s.mean_err = me.mean;
    res.spaxel.push_back(s);
  }
}

CampaignResult run_injection_campaign(const SimulationConfig& truth_config, const CampaignOptions& options) {
  options.validate();
  truth_config.validate();
  const auto t_start = std::chrono::steady_clock::now();
  const SlitstepOperator op(truth_config, options.op);
  Shared s;
  s.truth_config = &truth_config;
  s.options = &options;
  s.op = &op;
  s.sim_config = realisation_config(truth_config, op);
  s.truth = truth_config.scene.galaxy;
  for (const auto& n : options.free_parameters) s.truth_values.push_back(get_galaxy_param(s.truth, n));
  {
    const GalaxyModel model(s.truth, Cosmology(truth_config.scene.cosmology));
    s.inclination_deg = model.inclination_deg();
    s.re_kpc = model.re_kpc();
  }
  const LsfModel lsf = LsfModel::from_disperser(op.instrument().disperser());
  s.lsf = &lsf;

  CampaignResult res;
  res.names = options.free_parameters;
  res.truth = s.truth_values;
  res.galaxy = s.truth;
  res.realisations.resize(static_cast<std::size_t>(options.n_realisations));
  std::vector<char> done(res.realisations.size(), 0);

  // Resume: rows of this campaign already in the CSV.
  const std::vector<std::string> header = csv_header(res.names);
  if (!options.csv_path.empty() && std::filesystem::exists(options.csv_path)) {
    const CsvTable t = read_csv(options.csv_path);
    if (t.header != header)
      throw InputError(options.csv_path + ": columns differ from this campaign's (free parameters " +
                       std::to_string(res.names.size()) + "); not a resume file of this campaign");
    for (std::size_t row = 0; row < t.num_rows(); ++row) {
      RealisationResult r = parse_row(t, row, res.names);
      if (r.index < 0 || r.index >= options.n_realisations) continue;  // beyond this run's count
      if (r.seed != realisation_seed(options.seed, r.index))
        throw InputError(options.csv_path + ":" + std::to_string(t.line_numbers[row]) + ": realisation " +
                         std::to_string(r.index) + " has seed " + std::to_string(r.seed) +
                         ", not this campaign's (seed " + std::to_string(options.seed) + ")");
      done[static_cast<std::size_t>(r.index)] = 1;
      res.realisations[static_cast<std::size_t>(r.index)] = std::move(r);
    }
  }

  // Cramer-Rao bounds at the truth: noiseless simulation (ERR = expected noise), same operator.
  {
    SimulateOptions so;
    so.noiseless = true;
    so.threads = options.threads > 0 ? options.threads : 0;
    try {
      const SimulationResult sim = simulate(s.sim_config, so);
      const bool cube_space = options.op.space == SlitstepOperatorOptions::Space::kCube;
      const auto sel = cube_space ? op.select_cube(sim.reconstruct.cube) : op.select_exposures(sim.exposures);
      res.model_values = op.data_size();
      res.used_values = sel.n_used;
      if (!sel.status.ok()) {
        res.fisher.status = sel.status;
      } else {
        const FitProblem p = op.make_problem(sel, GalaxyParameterization(s.truth, options.free_parameters));
        FitOptions fo = options.fit;
        fo.threads = options.threads;
        res.fisher = fisher_matrix(p, s.truth, fo);
      }
    } catch (const std::exception& e) {
      res.fisher.status = Status::Error(StatusCode::kInvalidInput, std::string("Fisher matrix: ") + one_line(e.what()));
    }
  }

  std::vector<int> todo;
  for (int i = 0; i < options.n_realisations; ++i)
    if (!done[static_cast<std::size_t>(i)]) todo.push_back(i);
  int nthreads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  nthreads = std::max(1, std::min<int>(nthreads, static_cast<int>(todo.size())));
  std::atomic<std::size_t> next{0};
  std::mutex mu;
  auto worker = [&]() {
    for (;;) {
      const std::size_t k = next.fetch_add(1);
      if (k >= todo.size()) return;
      const int i = todo[k];
      RealisationResult r = run_one(s, i);
      std::lock_guard<std::mutex> lock(mu);
      res.realisations[static_cast<std::size_t>(i)] = std::move(r);
      done[static_cast<std::size_t>(i)] = 1;
      if (!options.csv_path.empty()) {
        std::vector<std::vector<std::string>> rows;
        for (std::size_t j = 0; j < done.size(); ++j)
          if (done[j]) rows.push_back(csv_row(res.realisations[j]));
        try {
          write_csv(options.csv_path, header, rows);
        } catch (const std::exception&) {
          // a resume file that cannot be written loses resumability, not the campaign
        }
      }
    }
  };
  if (!todo.empty()) {
    std::vector<std::thread> pool;
    for (int t = 1; t < nthreads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& th : pool) th.join();
  }
  summarise_campaign(res);
  res.wall_s = seconds_since(t_start);
  return res;
}

std::string format_campaign_report(const CampaignResult& res) {
  std::ostringstream os;
  char buf[512];
  std::snprintf(buf, sizeof buf, "injection campaign: %zu realisations, %d converged, %d failed (%d resumed), %.1f s\n",
                res.realisations.size(), res.n_converged, res.n_failed, res.n_resumed, res.wall_s);
  os << buf;
  if (!res.fisher.status.ok()) os << "Cramer-Rao bounds: " << res.fisher.status.message << "\n";
  std::snprintf(buf, sizeof buf, "%-22s %11s %5s %9s %8s %11s %11s %11s %11s %11s %8s\n", "parameter", "truth", "n",
                "mean pull", "pull std", "bias", "bias err", "scatter", "mean err", "CRB", "scat/CRB");
  os << buf;
  for (const auto& p : res.params) {
    std::snprintf(buf, sizeof buf, "%-22s %11.5g %5d %+9.3f %8.3f %+11.4g %11.4g %11.4g %11.4g %11.4g %8.3f\n",
                  p.name.c_str(), p.truth, p.n, p.mean_pull, p.pull_std, p.bias, p.bias_err, p.scatter, p.mean_err, p.crb,
                  p.scatter_over_crb);
    os << buf;
  }
  if (!res.spaxel.empty()) {
    os << "forward fit vs per-spaxel path (same cubes):\n";
    std::snprintf(buf, sizeof buf, "%-22s %11s | %11s %11s %11s | %4s %11s %11s %11s %11s\n", "quantity", "truth",
                  "fwd bias", "fwd scatter", "fwd err", "n", "spx bias", "spx bias err", "spx scatter", "spx err");
    os << buf;
    for (const auto& s : res.spaxel) {
      double fb = kNaN, fs = kNaN, fe = kNaN;
      for (const auto& p : res.params)
        if (p.name == s.name) fb = p.bias, fs = p.scatter, fe = p.mean_err;
      std::snprintf(buf, sizeof buf, "%-22s %11.5g | %+11.4g %11.4g %11.4g | %4d %+11.4g %11.4g %11.4g %11.4g\n",
                    s.name.c_str(), s.truth, fb, fs, fe, s.n, s.bias, s.bias_err, s.scatter, s.mean_err);
      os << buf;
    }
  }
  return os.str();
}

}  // namespace slitstep
