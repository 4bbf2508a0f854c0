#include "sim/noise.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace slitstep {

void NoiseModel::validate() const {
  if (threads < 0) throw InvalidOptions("NoiseModel.threads = " + std::to_string(threads) + ": must be >= 0");
}

ExposureCounts counts_from_sb(const Exposure& e, double to_sb, double background_e, double read_noise_e) {
  ExposureCounts c;
  const std::size_t n = e.size();
  c.source_e.resize(n);
  c.background_e.assign(n, background_e);
  c.to_sb.assign(n, to_sb);
  c.read_noise_e = read_noise_e;
  for (std::size_t p = 0; p < n; ++p) c.source_e[p] = to_sb > 0.0 ? std::max(0.0, e.sci[p] / to_sb) : 0.0;
  return c;
}

NoiseSummary apply_noise(std::vector<Exposure>& exposures, const std::vector<ExposureCounts>& counts,
                         const NoiseModel& model, const Rng& rng) {
  model.validate();
  NoiseSummary sum;
  if (counts.size() != exposures.size()) {
    sum.status = Status::Error(StatusCode::kInvalidInput, "apply_noise: " + std::to_string(counts.size()) +
                                                              " count sets for " + std::to_string(exposures.size()) +
                                                              " exposures");
    return sum;
  }
  for (std::size_t q = 0; q < exposures.size(); ++q) {
    const std::size_t n = exposures[q].size();
    const ExposureCounts& c = counts[q];
    const std::string where = "apply_noise: exposure " + std::to_string(q) + " (pointing " +
                              std::to_string(exposures[q].pointing.index) + "): ";
    if (exposures[q].sci.size() != n || exposures[q].err.size() != n || exposures[q].var_poisson.size() != n ||
        exposures[q].var_rnoise.size() != n) {
      sum.status = Status::Error(StatusCode::kInvalidInput, where + "arrays do not match nv x nu");
      return sum;
    }
    if (c.source_e.size() != n || c.background_e.size() != n || c.to_sb.size() != n) {
      sum.status = Status::Error(StatusCode::kInvalidInput, where + "counts arrays do not have nv x nu values");
      return sum;
    }
    if (!(c.read_noise_e >= 0.0) || !std::isfinite(c.read_noise_e)) {
      sum.status = Status::Error(StatusCode::kInvalidInput, where + "read_noise_e = " + format_value(c.read_noise_e) +
                                                                "; must be finite and >= 0");
      return sum;
    }
    for (std::size_t p = 0; p < n; ++p) {
      if (!(c.source_e[p] >= 0.0) || !(c.background_e[p] >= 0.0) || !(c.to_sb[p] >= 0.0) ||
          !std::isfinite(c.source_e[p]) || !std::isfinite(c.background_e[p]) || !std::isfinite(c.to_sb[p])) {
        sum.status = Status::Error(StatusCode::kInvalidInput,
                                   where + "pixel " + std::to_string(p) +
                                       ": source_e, background_e and to_sb must be finite and >= 0");
        return sum;
      }
    }
  }
  const int nthreads = model.threads > 0 ? model.threads : omp_get_max_threads();
  const long nexp = static_cast<long>(exposures.size());
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (long ql = 0; ql < nexp; ++ql) {
    Exposure& e = exposures[static_cast<std::size_t>(ql)];
    const ExposureCounts& c = counts[static_cast<std::size_t>(ql)];
    Rng r = rng.substream(static_cast<std::uint64_t>(e.pointing.index));
    const double rn2 = model.read_noise ? c.read_noise_e * c.read_noise_e : 0.0;
    for (std::size_t p = 0; p < e.size(); ++p) {
      const double S = c.source_e[p], B = c.background_e[p], g = c.to_sb[p];
      if (g <= 0.0) {
        e.sci[p] = 0.0;
        e.var_poisson[p] = e.var_rnoise[p] = e.err[p] = 0.0;
        continue;
      }
      const double pmean = (model.source_poisson ? S : 0.0) + (model.background_poisson ? B : 0.0);
      const double vp = pmean * g * g, vr = rn2 * g * g;
      e.var_poisson[p] = vp;
      e.var_rnoise[p] = vr;
      e.err[p] = std::sqrt(vp + vr);
      if (model.noiseless) {
        e.sci[p] = S * g;
        continue;
      }
      const double fixed = (model.source_poisson ? 0.0 : S) + (model.background_poisson ? 0.0 : B);
      const double drawn = r.poisson(pmean) + fixed;
      const double read = model.read_noise && c.read_noise_e > 0.0 ? r.normal(0.0, c.read_noise_e) : 0.0;
      e.sci[p] = (drawn + read - B) * g;
    }
    e.seed = model.noiseless ? 0 : rng.seed();
  }
  std::size_t np = 0;
  for (const auto& e : exposures) np += e.size();
  sum.n_pixels = np;
  sum.status = Status::Ok();
  return sum;
}

double uniform_sigma_for_spaxel_snr(const Cube& c, double snr) {
  double best_flux = 0.0, best_w2 = 0.0;
  for (int j = 0; j < c.ny(); ++j)
    for (int i = 0; i < c.nx(); ++i) {
      const double* s = c.spectrum(i, j);
      double peak = 0.0;
      for (std::size_t k = 0; k < c.nl(); ++k) peak = std::max(peak, s[k]);
      double f = 0.0, w2 = 0.0;
      for (std::size_t k = 0; k < c.nl(); ++k)
        if (s[k] > 0.01 * peak) {
          f += s[k] * c.spectral.width_um(k);
          w2 += c.spectral.width_um(k) * c.spectral.width_um(k);
        }
      if (f > best_flux) best_flux = f, best_w2 = w2;
    }
  return best_w2 > 0.0 ? best_flux / snr / std::sqrt(best_w2) : 0.0;
}

}  // namespace slitstep
