#include "fit/reweight.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

namespace slitstep {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Weighted quantile: the smallest value whose cumulative normalised weight reaches q.
double weighted_quantile(const std::vector<std::pair<double, double>>& sorted_vw, double q) {
  double c = 0.0;
  for (const auto& [v, w] : sorted_vw) {
    c += w;
    if (c >= q) return v;
  }
  return sorted_vw.empty() ? std::nan("") : sorted_vw.back().first;
}

}  // namespace

void ReweightOptions::validate() const {
  if (max_samples < 10)
    throw InvalidOptions("ReweightOptions.max_samples = " + std::to_string(max_samples) + ": must be >= 10");
  if (thin < 0) throw InvalidOptions("ReweightOptions.thin = " + std::to_string(thin) + ": must be >= 0 (0 = auto)");
  if (threads < 0) throw InvalidOptions("ReweightOptions.threads = " + std::to_string(threads) + ": must be >= 0");
  if (!(min_ess >= 0.0) || !std::isfinite(min_ess))
    throw InvalidOptions("ReweightOptions.min_ess = " + format_value(min_ess) + ": must be finite and >= 0");
  if (!(min_ess_fraction >= 0.0 && min_ess_fraction <= 1.0))
    throw InvalidOptions("ReweightOptions.min_ess_fraction = " + format_value(min_ess_fraction) + ": must be in [0, 1]");
}

ReweightResult reweight_posterior(const SampleResult& run, const FitProblem& exact, const ReweightOptions& o) {
  o.validate();
  exact.validate();
  const auto t0 = std::chrono::steady_clock::now();
  ReweightResult res;
  const GalaxyParameterization& par = exact.param;
  const std::vector<std::string> names = par.free_names();
  const int dim = static_cast<int>(names.size());
  res.dim = dim;
  if (run.dim != dim) {
    res.status = Status::Error(StatusCode::kInvalidInput, "reweight: the surrogate run has " + std::to_string(run.dim) +
                                                              " parameters, the exact problem " + std::to_string(dim));
    return res;
  }
  for (int d = 0; d < dim; ++d)
    if (static_cast<std::size_t>(d) < run.params.size() && run.params[static_cast<std::size_t>(d)].name != names[static_cast<std::size_t>(d)]) {
      res.status = Status::Error(StatusCode::kInvalidInput, "reweight: parameter " + std::to_string(d) + " is " +
                                                                run.params[static_cast<std::size_t>(d)].name +
                                                                " in the surrogate run and " + names[static_cast<std::size_t>(d)] +
                                                                " in the exact problem");
      return res;
    }
  const int W = run.walkers, K = run.kept;
  if (K <= 0 || W <= 0 || run.chain.size() != static_cast<std::size_t>(K) * W * dim ||
      run.log_prob.size() != static_cast<std::size_t>(K) * W) {
    res.status = Status::Error(StatusCode::kInvalidInput, "reweight: the surrogate run holds no kept chain");
    return res;
  }
  // Thinning: about independent samples (the chain's own autocorrelation time, in kept steps).
  int thin = o.thin;
  if (thin == 0) {
    double tau = 1.0;
    if (K >= 4)
      for (int d = 0; d < dim; ++d) {
        const double t = autocorrelation_time(run.chain, K, W, dim, d);
        if (std::isfinite(t)) tau = std::max(tau, t);
      }
    thin = std::max(1, static_cast<int>(std::ceil(tau)));
  }
  // at most max_samples: whole steps (all walkers) from the end backwards, at most max_steps of them
  const int max_steps = std::max(1, o.max_samples / W);
  thin = std::max(thin, max_steps == 1 ? K : (K - 1 + max_steps - 2) / (max_steps - 1));
  const int n_steps = (K - 1) / thin + 1;
  res.thin = thin;
  std::vector<int> steps;
  for (int s = K - 1, n = 0; s >= 0 && n < n_steps; s -= thin, ++n) steps.push_back(s);
  std::reverse(steps.begin(), steps.end());
  const int n = static_cast<int>(steps.size()) * W;
  res.n_samples = n;
  res.samples.resize(static_cast<std::size_t>(n) * dim);
  res.log_weight.assign(static_cast<std::size_t>(n), -kInf);
  std::vector<double> lq(static_cast<std::size_t>(n));
  for (std::size_t a = 0; a < steps.size(); ++a)
    for (int w = 0; w < W; ++w) {
      const std::size_t q = a * W + static_cast<std::size_t>(w);
      const std::size_t src = (static_cast<std::size_t>(steps[a]) * W + static_cast<std::size_t>(w));
      std::copy_n(run.chain.data() + src * dim, dim, res.samples.data() + q * dim);
      lq[q] = run.log_prob[src];
    }
  // Exact log posterior of every sample, in parallel (one workspace per thread).
  const int nthreads = std::max(1, std::min(o.threads > 0 ? o.threads : omp_get_max_threads(), n));
  ProblemEvaluator ev(exact, nthreads);
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (int q = 0; q < n; ++q) {
    const double* x = res.samples.data() + static_cast<std::size_t>(q) * dim;
    const double lpr = par.log_prior(x);
    double lp = -kInf;
    if (std::isfinite(lpr)) lp = lpr + ev.log_likelihood(x, omp_get_thread_num(), 1);
    if (std::isfinite(lp) && std::isfinite(lq[static_cast<std::size_t>(q)]))
      res.log_weight[static_cast<std::size_t>(q)] = lp - lq[static_cast<std::size_t>(q)];
  }
  res.n_evaluations = ev.evaluations();
  // Normalised weights and the effective sample size.
  double lmax = -kInf;
  for (double l : res.log_weight) lmax = std::max(lmax, l);
  if (!std::isfinite(lmax)) {
    res.status = Status::Error(StatusCode::kFailed,
                               "reweight: no sample has a finite exact posterior (the surrogate run does not cover it)");
    res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
  }
  res.weight.assign(static_cast<std::size_t>(n), 0.0);
  double sw = 0.0, sw2 = 0.0;
  for (int q = 0; q < n; ++q) {
    const double l = res.log_weight[static_cast<std::size_t>(q)];
    const double w = std::isfinite(l) ? std::exp(l - lmax) : 0.0;
    if (w == 0.0 && !std::isfinite(l)) ++res.n_zero_weight;
    res.weight[static_cast<std::size_t>(q)] = w;
    sw += w;
  }
  for (double& w : res.weight) {
    w /= sw;
    sw2 += w * w;
    res.max_weight = std::max(res.max_weight, w);
  }
  res.ess = 1.0 / sw2;
  res.reliable = res.ess >= o.min_ess && res.ess >= o.min_ess_fraction * n;
  if (!res.reliable)
    res.notes.push_back("effective sample size " + format_value(res.ess) + " of " + std::to_string(n) +
                        " samples: the surrogate differs too much from the exact model (or the run is short); "
                        "sample the exact model or run longer");
  if (res.n_zero_weight > 0)
    res.notes.push_back(std::to_string(res.n_zero_weight) + " samples have no finite exact posterior (weight 0)");
  // Weighted summaries.
  res.mean = Eigen::VectorXd::Zero(dim);
  res.covariance = Eigen::MatrixXd::Zero(dim, dim);
  for (int q = 0; q < n; ++q) {
    const Eigen::Map<const Eigen::VectorXd> x(res.samples.data() + static_cast<std::size_t>(q) * dim, dim);
    res.mean += res.weight[static_cast<std::size_t>(q)] * x;
  }
  for (int q = 0; q < n; ++q) {
    const Eigen::Map<const Eigen::VectorXd> x(res.samples.data() + static_cast<std::size_t>(q) * dim, dim);
    const Eigen::VectorXd dx = x - res.mean;
    res.covariance += res.weight[static_cast<std::size_t>(q)] * dx * dx.transpose();
  }
  const double corr = 1.0 - sw2;  // unbiased weighted covariance (reliability weights)
  if (corr > 0.0) res.covariance /= corr;
  std::vector<std::pair<double, double>> vw(static_cast<std::size_t>(n));
  for (int d = 0; d < dim; ++d) {
    for (int q = 0; q < n; ++q)
      vw[static_cast<std::size_t>(q)] = {res.samples[static_cast<std::size_t>(q) * dim + d], res.weight[static_cast<std::size_t>(q)]};
    std::sort(vw.begin(), vw.end());
    WeightedSummary s;
    s.name = names[static_cast<std::size_t>(d)];
    s.mean = res.mean(d);
    s.std = std::sqrt(std::max(0.0, res.covariance(d, d)));
    s.median = weighted_quantile(vw, 0.5);
    s.p16 = weighted_quantile(vw, 0.15865525393145707);
    s.p84 = weighted_quantile(vw, 0.8413447460685429);
    res.params.push_back(s);
  }
  res.status = Status::Ok();
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace slitstep
