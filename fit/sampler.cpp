#include "fit/sampler.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/rng.hpp"

namespace slitstep {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string fmt_short(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

double percentile_sorted(const std::vector<double>& s, double q) {
  if (s.empty()) return 0.0;
  const double pos = q * static_cast<double>(s.size() - 1);
  const std::size_t i = static_cast<std::size_t>(std::floor(pos));
  const double f = pos - static_cast<double>(i);
  if (i + 1 >= s.size()) return s.back();
  return s[i] + f * (s[i + 1] - s[i]);
}

}  // namespace

void SamplerOptions::validate(int dim) const {
  auto bad = [](const std::string& f, double v, const std::string& rule) {
    throw InvalidOptions("SamplerOptions." + f + " = " + format_value(v) + ": " + rule);
  };
  if (dim < 1) bad("dim", dim, "the problem needs at least one free parameter");
  if (walkers < 2 * dim || walkers % 2 != 0)
    bad("walkers", walkers, "must be even and >= 2 * dim = " + std::to_string(2 * dim));
  if (steps < 1) bad("steps", steps, "must be >= 1");
  if (burn_in < 0) bad("burn_in", burn_in, "must be >= 0");
  if (thin < 1 || thin > steps) bad("thin", thin, "must be in [1, steps]");
  if (!(a > 1.0) || !std::isfinite(a)) bad("a", a, "must be finite and > 1");
  if (threads < 0 || threads > 1024) bad("threads", threads, "must be in [0, 1024] (0 = OpenMP default)");
  if (start_step < 0) bad("start_step", static_cast<double>(start_step), "must be >= 0");
  if (!(rhat_limit > 1.0)) bad("rhat_limit", rhat_limit, "must be > 1");
  if (!(min_tau_multiple >= 0.0)) bad("min_tau_multiple", min_tau_multiple, "must be >= 0");
  if (!(sokal_c > 0.0)) bad("sokal_c", sokal_c, "must be > 0");
}

double split_rhat(const std::vector<double>& chain, int steps, int walkers, int dim, int d) {
  const int n = steps / 2;
  if (n < 2) return kInf;
  const int m = 2 * walkers;
  std::vector<double> means(static_cast<std::size_t>(m)), vars(static_cast<std::size_t>(m));
  for (int w = 0; w < walkers; ++w)
    for (int h = 0; h < 2; ++h) {
      const int first = h == 0 ? 0 : steps - n;
      double s = 0.0;
      for (int t = 0; t < n; ++t) s += chain[(static_cast<std::size_t>(first + t) * walkers + w) * dim + d];
      const double mu = s / n;
      double v = 0.0;
      for (int t = 0; t < n; ++t) {
        const double x = chain[(static_cast<std::size_t>(first + t) * walkers + w) * dim + d] - mu;
        v += x * x;
      }
      means[static_cast<std::size_t>(2 * w + h)] = mu;
      vars[static_cast<std::size_t>(2 * w + h)] = v / (n - 1);
    }
  double W = 0.0, mbar = 0.0;
  for (int c = 0; c < m; ++c) {
    W += vars[static_cast<std::size_t>(c)];
    mbar += means[static_cast<std::size_t>(c)];
  }
  W /= m;
  mbar /= m;
  double B = 0.0;
  for (int c = 0; c < m; ++c) B += (means[static_cast<std::size_t>(c)] - mbar) * (means[static_cast<std::size_t>(c)] - mbar);
  B *= static_cast<double>(n) / (m - 1);
  if (!(W > 0.0)) return B > 0.0 ? kInf : 1.0;
  const double var_plus = (n - 1.0) / n * W + B / n;
  return std::sqrt(var_plus / W);
}

double autocorrelation_time(const std::vector<double>& chain, int steps, int walkers, int dim, int d, double c) {
  if (steps < 2) return kInf;
  // per-walker mean and c(0)
  std::vector<double> mu(static_cast<std::size_t>(walkers)), c0(static_cast<std::size_t>(walkers));
  int live = 0;
  for (int w = 0; w < walkers; ++w) {
    double s = 0.0;
    for (int t = 0; t < steps; ++t) s += chain[(static_cast<std::size_t>(t) * walkers + w) * dim + d];
    mu[static_cast<std::size_t>(w)] = s / steps;
    double v = 0.0;
    for (int t = 0; t < steps; ++t) {
      const double x = chain[(static_cast<std::size_t>(t) * walkers + w) * dim + d] - mu[static_cast<std::size_t>(w)];
      v += x * x;
    }
    c0[static_cast<std::size_t>(w)] = v / steps;
    if (c0[static_cast<std::size_t>(w)] > 0.0) ++live;
  }
  if (live == 0) return kInf;
  double tau = 1.0;
  for (int lag = 1; lag < steps; ++lag) {
    double rho = 0.0;
    for (int w = 0; w < walkers; ++w) {
      if (!(c0[static_cast<std::size_t>(w)] > 0.0)) continue;
      double s = 0.0;
      const double m = mu[static_cast<std::size_t>(w)];
      for (int t = 0; t + lag < steps; ++t)
        s += (chain[(static_cast<std::size_t>(t) * walkers + w) * dim + d] - m) *
             (chain[(static_cast<std::size_t>(t + lag) * walkers + w) * dim + d] - m);
      rho += s / steps / c0[static_cast<std::size_t>(w)];
    }
    rho /= live;
    tau += 2.0 * rho;
    if (lag >= c * tau) return std::max(tau, 1e-12);
  }
  return std::max(tau, 1e-12);  // window never closed: chain too short (the caller's status says so)
}

SampleResult sample_ensemble(const LogDensity& log_prob, int dim, const std::vector<double>& initial,
                             const SamplerOptions& o, const std::vector<std::string>& names_in) {
  const auto t0 = std::chrono::steady_clock::now();
  o.validate(dim);
  const int W = o.walkers;
  if (initial.size() != static_cast<std::size_t>(W) * dim)
    throw InvalidOptions("sample_ensemble: initial has " + std::to_string(initial.size()) + " values, expected walkers * dim = " +
                         std::to_string(W * dim));
  SampleResult res;
  res.dim = dim;
  res.walkers = W;
  std::vector<std::string> names = names_in;
  for (int d = static_cast<int>(names.size()); d < dim; ++d) {
    std::string nm("p");
    nm += std::to_string(d);
    names.push_back(nm);
  }
  const int nthreads = o.threads > 0 ? o.threads : std::max(1, omp_get_max_threads());
  const Rng master(o.seed);

  std::vector<double> X = initial;
  std::vector<double> lp(static_cast<std::size_t>(W));
  long n_eval = 0;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(+ : n_eval)
  for (int k = 0; k < W; ++k) {
    const double v = log_prob(X.data() + static_cast<std::size_t>(k) * dim, omp_get_thread_num());
    lp[static_cast<std::size_t>(k)] = std::isnan(v) ? -kInf : v;
    ++n_eval;
  }
  int finite = 0;
  for (double v : lp) finite += std::isfinite(v) ? 1 : 0;
  auto finish = [&](SamplerStatus s, std::string why) {
    res.status = s;
    res.reason = std::move(why);
    res.n_evaluations = n_eval;
    res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
  };
  if (finite == 0) return finish(SamplerStatus::kFailed, "no walker has a finite log-probability at the start");
  if (finite < W)
    res.notes.push_back(std::to_string(W - finite) + " of " + std::to_string(W) +
                        " walkers started with log-probability -inf (outside the support)");

  const int total = o.burn_in + o.steps;
  const int kept = o.steps / o.thin;
  res.kept = kept;
  res.chain.assign(static_cast<std::size_t>(kept) * W * dim, 0.0);
  res.log_prob.assign(static_cast<std::size_t>(kept) * W, 0.0);
  std::vector<long> accepted(static_cast<std::size_t>(W), 0);
  const int half = W / 2;
  std::vector<double> y(static_cast<std::size_t>(nthreads) * dim);
  for (int t = 0; t < total; ++t) {
    const std::uint64_t g = static_cast<std::uint64_t>(o.start_step + t);
    for (int h = 0; h < 2; ++h) {
      const int first = h * half, other = (1 - h) * half;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(+ : n_eval)
      for (int q = 0; q < half; ++q) {
        const int k = first + q;
        const int slot = omp_get_thread_num();
        Rng rng = master.substream(g * static_cast<std::uint64_t>(W) + static_cast<std::uint64_t>(k));
        const int j = other + std::min(half - 1, static_cast<int>(rng.uniform() * half));
        const double u = rng.uniform();
        const double z = ((o.a - 1.0) * u + 1.0) * ((o.a - 1.0) * u + 1.0) / o.a;
        double* yp = y.data() + static_cast<std::size_t>(slot) * dim;
        const double* xk = X.data() + static_cast<std::size_t>(k) * dim;
        const double* xj = X.data() + static_cast<std::size_t>(j) * dim;
        for (int d = 0; d < dim; ++d) yp[d] = xj[d] + z * (xk[d] - xj[d]);
        double lpy = log_prob(yp, slot);
        ++n_eval;
        if (std::isnan(lpy)) lpy = -kInf;
        const double log_accept = (dim - 1) * std::log(z) + lpy - lp[static_cast<std::size_t>(k)];
        const double r = rng.uniform();
        if (std::isfinite(lpy) && (log_accept >= 0.0 || std::log(r) < log_accept)) {
          std::copy(yp, yp + dim, X.data() + static_cast<std::size_t>(k) * dim);
          lp[static_cast<std::size_t>(k)] = lpy;
          ++accepted[static_cast<std::size_t>(k)];
        }
      }
    }
    const int s = t - o.burn_in;
    if (s >= 0 && s % o.thin == 0 && s / o.thin < kept) {
      const std::size_t row = static_cast<std::size_t>(s / o.thin);
      std::copy(X.begin(), X.end(), res.chain.begin() + static_cast<std::ptrdiff_t>(row * W * dim));
      std::copy(lp.begin(), lp.end(), res.log_prob.begin() + static_cast<std::ptrdiff_t>(row * W));
    }
  }
  res.final_positions = X;
  res.final_log_prob = lp;
  res.next_step = o.start_step + total;
  res.acceptance.resize(static_cast<std::size_t>(W));
  for (int k = 0; k < W; ++k) {
    res.acceptance[static_cast<std::size_t>(k)] = static_cast<double>(accepted[static_cast<std::size_t>(k)]) / total;
    res.acceptance_fraction += res.acceptance[static_cast<std::size_t>(k)] / W;
  }

  // ---- summaries -----------------------------------------------------------------------------
  const std::size_t N = static_cast<std::size_t>(kept) * W;
  res.mean = Eigen::VectorXd::Zero(dim);
  res.covariance = Eigen::MatrixXd::Zero(dim, dim);
  for (std::size_t s = 0; s < N; ++s)
    for (int d = 0; d < dim; ++d) res.mean[d] += res.chain[s * dim + d];
  res.mean /= static_cast<double>(N);
  for (std::size_t s = 0; s < N; ++s)
    for (int a = 0; a < dim; ++a)
      for (int b = 0; b <= a; ++b)
        res.covariance(a, b) += (res.chain[s * dim + a] - res.mean[a]) * (res.chain[s * dim + b] - res.mean[b]);
  if (N > 1) res.covariance /= static_cast<double>(N - 1);
  for (int a = 0; a < dim; ++a)
    for (int b = 0; b < a; ++b) res.covariance(b, a) = res.covariance(a, b);
  res.min_ess = kInf;
  std::vector<double> v(N);
  for (int d = 0; d < dim; ++d) {
    ParameterSummary ps;
    ps.name = names[static_cast<std::size_t>(d)];
    ps.mean = res.mean[d];
    ps.std = std::sqrt(std::max(0.0, res.covariance(d, d)));
    for (std::size_t s = 0; s < N; ++s) v[s] = res.chain[s * dim + d];
    std::sort(v.begin(), v.end());
    ps.median = percentile_sorted(v, 0.5);
    ps.p16 = percentile_sorted(v, 0.15865525393145707);
    ps.p84 = percentile_sorted(v, 0.8413447460685429);
    ps.rhat = split_rhat(res.chain, kept, W, dim, d);
    const double tau_kept = autocorrelation_time(res.chain, kept, W, dim, d, o.sokal_c);
    ps.tau = tau_kept * o.thin;
    ps.ess = std::isfinite(tau_kept) ? static_cast<double>(N) / std::max(1.0, tau_kept) : 0.0;
    res.max_rhat = std::max(res.max_rhat, ps.rhat);
    res.max_tau = std::max(res.max_tau, ps.tau);
    res.min_ess = std::min(res.min_ess, ps.ess);
    res.params.push_back(ps);
  }
  if (res.acceptance_fraction < 0.1 || res.acceptance_fraction > 0.9)
    res.notes.push_back("acceptance fraction " + fmt_short(res.acceptance_fraction) + " outside [0.1, 0.9]");
  std::string why;
  if (!(res.max_rhat < o.rhat_limit))
    why = "split-R-hat " + fmt_short(res.max_rhat) + " >= " + fmt_short(o.rhat_limit);
  const double kept_steps = static_cast<double>(o.steps);
  if (!(kept_steps >= o.min_tau_multiple * res.max_tau))
    why += (why.empty() ? "" : "; ") + std::string("chain of ") + std::to_string(o.steps) + " steps is shorter than " +
           fmt_short(o.min_tau_multiple) + " tau (tau = " + fmt_short(res.max_tau) + " steps)";
  if (!why.empty()) return finish(SamplerStatus::kNotConverged, "not converged: " + why);
  return finish(SamplerStatus::kOk, "max split-R-hat " + fmt_short(res.max_rhat) + ", max tau " + fmt_short(res.max_tau) +
                                        " steps, min ESS " + fmt_short(res.min_ess));
}

SampleResult sample_posterior(const FitProblem& problem, const std::vector<double>& centre,
                              const std::vector<double>& init_sigma, const SamplerOptions& options) {
  problem.validate();
  const GalaxyParameterization& par = problem.param;
  const int dim = static_cast<int>(par.num_free());
  options.validate(dim);
  if (centre.size() != static_cast<std::size_t>(dim) || init_sigma.size() != static_cast<std::size_t>(dim))
    throw InvalidOptions("sample_posterior: centre and init_sigma need " + std::to_string(dim) + " values (free parameters)");
  const int nthreads = options.threads > 0 ? options.threads : std::max(1, omp_get_max_threads());
  ProblemEvaluator ev(problem, nthreads);
  // Initial ensemble.
  const Rng master(options.seed);
  std::vector<double> init(static_cast<std::size_t>(options.walkers) * dim);
  int stuck = 0;
  for (int k = 0; k < options.walkers; ++k) {
    Rng rng = master.substream((1ull << 62) + static_cast<std::uint64_t>(k));
    double* x = init.data() + static_cast<std::size_t>(k) * dim;
    bool ok = false;
    for (int tries = 0; tries < 1000 && !ok; ++tries) {
      for (int d = 0; d < dim; ++d) x[d] = centre[static_cast<std::size_t>(d)] + init_sigma[static_cast<std::size_t>(d)] * rng.normal();
      ok = std::isfinite(par.log_prior(x));
    }
    if (!ok) {
      std::copy(centre.begin(), centre.end(), x);
      ++stuck;
    }
  }
  const LogDensity f = [&](const double* x, int slot) {
    const double lpr = par.log_prior(x);
    if (!std::isfinite(lpr)) return -kInf;
    return lpr + ev.log_likelihood(x, slot, 1);
  };
  SampleResult res = sample_ensemble(f, dim, init, options, par.free_names());
  res.n_evaluations = ev.evaluations();
  if (stuck > 0)
    res.notes.push_back(std::to_string(stuck) + " walkers could not be drawn inside the bounds and start at the centre");
  return res;
}

}  // namespace slitstep
