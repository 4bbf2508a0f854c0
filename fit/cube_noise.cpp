#include "fit/cube_noise.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include <Eigen/SparseCholesky>
#include <Eigen/Dense>
#include <Eigen/SparseCore>

#include "core/rng.hpp"
#include "instruments/observe.hpp"
#include "instruments/reconstruct.hpp"
#include "sim/noise.hpp"
#include "sim/simulate.hpp"

namespace slitstep {
namespace {

int thread_count(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

// The columns `cols` of a full-frame exposure (as observe with ObserveOptions::columns gives).
Exposure crop_exposure(const Exposure& f, const std::vector<int>& cols) {
  Exposure e;
  e.pointing = f.pointing;
  e.y0_arcsec = f.y0_arcsec;
  e.pixel_y_arcsec = f.pixel_y_arcsec;
  e.seed = f.seed;
  const int nc = static_cast<int>(cols.size());
  e.resize(f.nv, nc);
  for (int c = 0; c < nc; ++c) e.wavelength_um[static_cast<std::size_t>(c)] = f.wavelength_um[static_cast<std::size_t>(cols[c])];
  for (int v = 0; v < f.nv; ++v)
    for (int c = 0; c < nc; ++c) {
      const std::size_t a = e.index(v, c), b = f.index(v, cols[static_cast<std::size_t>(c)]);
      e.sci[a] = f.sci[b];
      e.err[a] = f.err[b];
      e.var_poisson[a] = f.var_poisson[b];
      e.var_rnoise[a] = f.var_rnoise[b];
      e.dq[a] = f.dq[b];
    }
  return e;
}

ExposureCounts crop_counts(const ExposureCounts& f, int nv, int nu, const std::vector<int>& cols) {
  ExposureCounts c;
  c.read_noise_e = f.read_noise_e;
  const std::size_t nc = cols.size();
  c.source_e.resize(static_cast<std::size_t>(nv) * nc);
  c.background_e.resize(c.source_e.size());
  c.to_sb.resize(c.source_e.size());
  for (int v = 0; v < nv; ++v)
    for (std::size_t k = 0; k < nc; ++k) {
      const std::size_t a = static_cast<std::size_t>(v) * nc + k;
      const std::size_t b = static_cast<std::size_t>(v) * static_cast<std::size_t>(nu) + static_cast<std::size_t>(cols[k]);
      c.source_e[a] = f.source_e[b];
      c.background_e[a] = f.background_e[b];
      c.to_sb[a] = f.to_sb[b];
    }
  return c;
}

CubeNoiseResult failed(StatusCode code, const std::string& message) {
  CubeNoiseResult r;
  r.status = Status::Error(code, "cube noise: " + message);
  return r;
}

}  // namespace

void CubeNoiseOptions::validate() const {
  if (!(realisations >= 1 && realisations <= 10000))
    throw InvalidOptions("CubeNoiseOptions.realisations = " + std::to_string(realisations) + ": must be in [1, 10000]");
  if (!(radius_spatial >= 0 && radius_spatial <= 6))
    throw InvalidOptions("CubeNoiseOptions.radius_spatial = " + std::to_string(radius_spatial) + ": must be in [0, 6]");
  if (!(radius_spectral >= 0 && radius_spectral <= 6))
    throw InvalidOptions("CubeNoiseOptions.radius_spectral = " + std::to_string(radius_spectral) +
                         ": must be in [0, 6]");
  if (!(min_rho >= 0.0 && min_rho < 1.0))
    throw InvalidOptions("CubeNoiseOptions.min_rho = " + format_value(min_rho) + ": must be in [0, 1)");
  if (!(kappa_floor > 0.0 && kappa_floor <= 1.0))
    throw InvalidOptions("CubeNoiseOptions.kappa_floor = " + format_value(kappa_floor) + ": must be in (0, 1]");
  if (threads < 0) throw InvalidOptions("CubeNoiseOptions.threads = " + std::to_string(threads) + ": must be >= 0");
}

// ---------------------------------------------------------------------------------------------

CubeNoiseEstimator::CubeNoiseEstimator(int nx, int ny, std::size_t nl, int radius_spatial, int radius_spectral,
                                       std::vector<char> column_adjacent)
    : nx_(nx), ny_(ny), nl_(nl), rs_(radius_spatial), rl_(radius_spectral) {
  if (nx < 1 || ny < 1 || nl < 1)
    throw InvalidOptions("CubeNoiseEstimator: cube " + std::to_string(nx) + " x " + std::to_string(ny) + " x " +
                         std::to_string(nl) + ": every size must be >= 1");
  if (rs_ < 0 || rl_ < 0) throw InvalidOptions("CubeNoiseEstimator: radii must be >= 0");
  if (!column_adjacent.empty() && column_adjacent.size() + 1 != nl)
    throw InvalidOptions("CubeNoiseEstimator: column_adjacent has " + std::to_string(column_adjacent.size()) +
                         " entries for " + std::to_string(nl) + " channels (needs nl - 1)");
  // adj_run_[k] = how many channels after k are reachable through adjacent pairs.
  adj_run_.assign(nl, 0);
  for (std::size_t k = nl - 1; k-- > 0;) {
    const bool a = column_adjacent.empty() || column_adjacent[k] != 0;
    adj_run_[k] = a ? adj_run_[k + 1] + 1 : 0;
  }
  n_off_ = static_cast<std::size_t>(2 * rs_ + 1) * static_cast<std::size_t>(2 * rs_ + 1) *
           static_cast<std::size_t>(2 * rl_ + 1);
  const std::size_t ns = static_cast<std::size_t>(nx) * static_cast<std::size_t>(ny);
  sum_.assign(ns * n_off_, 0.0);
  count_.assign(ns * n_off_, 0);
}

Status CubeNoiseEstimator::add(const Cube& cube, int threads) {
  if (cube.nx() != nx_ || cube.ny() != ny_ || cube.nl() != nl_)
    return Status::Error(StatusCode::kInvalidInput,
                         "cube noise estimator: cube " + std::to_string(cube.nx()) + " x " + std::to_string(cube.ny()) +
                             " x " + std::to_string(cube.nl()) + ", expected " + std::to_string(nx_) + " x " +
                             std::to_string(ny_) + " x " + std::to_string(nl_));
  if (!cube.has_quality() || cube.sci.size() != cube.size())
    return Status::Error(StatusCode::kInvalidInput, "cube noise estimator: the cube has no ERR/DQ planes");
  const std::size_t n = cube.size();
  std::vector<double> z(n, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t p = 0; p < n; ++p) {
    const double s = cube.sci[p], e = cube.err[p];
    if (std::isfinite(s) && std::isfinite(e) && e > 0.0 && !(cube.dq[p] & kDqDoNotUse)) z[p] = s / e;
  }
  const int sx = 2 * rs_ + 1;
  const long ns = static_cast<long>(nx_) * ny_;
  // Each spaxel's sums are its own: parallel over spaxels, the same additions in the same order
  // for any thread count.
#pragma omp parallel for num_threads(thread_count(threads)) schedule(dynamic, 4)
  for (long s = 0; s < ns; ++s) {
    const int i = static_cast<int>(s % nx_), j = static_cast<int>(s / nx_);
    double* sum = sum_.data() + static_cast<std::size_t>(s) * n_off_;
    std::size_t* cnt = count_.data() + static_cast<std::size_t>(s) * n_off_;
    for (std::size_t k = 0; k < nl_; ++k) {
      const double z0 = z[(static_cast<std::size_t>(s)) * nl_ + k];
      if (!std::isfinite(z0)) continue;
      for (int dl = -rl_; dl <= rl_; ++dl) {
        const long kk = static_cast<long>(k) + dl;
        if (kk < 0 || kk >= static_cast<long>(nl_)) continue;
        if (dl > 0 && adj_run_[k] < dl) continue;
        if (dl < 0 && adj_run_[static_cast<std::size_t>(kk)] < -dl) continue;
        for (int dy = -rs_; dy <= rs_; ++dy) {
          const int jj = j + dy;
          if (jj < 0 || jj >= ny_) continue;
          for (int dx = -rs_; dx <= rs_; ++dx) {
            const int ii = i + dx;
            if (ii < 0 || ii >= nx_) continue;
            const double z1 = z[(static_cast<std::size_t>(jj) * nx_ + ii) * nl_ + static_cast<std::size_t>(kk)];
            if (!std::isfinite(z1)) continue;
            const std::size_t o = (static_cast<std::size_t>(dl + rl_) * sx + static_cast<std::size_t>(dy + rs_)) * sx +
                                  static_cast<std::size_t>(dx + rs_);
            sum[o] += z0 * z1;
            ++cnt[o];
          }
        }
      }
    }
  }
  ++n_added_;
  return Status::Ok();
}

CubeNoiseResult CubeNoiseEstimator::finish(double min_rho, double kappa_floor) const {
  CubeNoiseResult r;
  r.nx = nx_;
  r.ny = ny_;
  r.radius_spatial = rs_;
  r.radius_spectral = rl_;
  r.realisations = n_added_;
  const std::size_t ns = static_cast<std::size_t>(nx_) * static_cast<std::size_t>(ny_);
  std::vector<double> tot(n_off_, 0.0);
  r.kernel_pairs.assign(n_off_, 0);
  for (std::size_t s = 0; s < ns; ++s)
    for (std::size_t o = 0; o < n_off_; ++o) {
      tot[o] += sum_[s * n_off_ + o];
      r.kernel_pairs[o] += count_[s * n_off_ + o];
    }
  r.kernel.assign(n_off_, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t o = 0; o < n_off_; ++o)
    if (r.kernel_pairs[o] > 0) r.kernel[o] = tot[o] / static_cast<double>(r.kernel_pairs[o]);
  const std::size_t o0 = r.kernel_index(0, 0, 0);
  r.n_samples = r.kernel_pairs[o0];
  if (r.n_samples == 0) {
    r.status = Status::Error(StatusCode::kInvalidInput, "cube noise: no usable voxel (finite SCI, ERR > 0, not DQ do-not-use)");
    return r;
  }
  r.var_ratio = r.kernel[o0];
  // Offsets that enter kappa: d = 0 and the symmetric pairs with a measurable correlation.
  r.kernel_used.assign(n_off_, 0);
  r.kappa_stationary = 0.0;
  r.kappa_all_offsets = 0.0;
  for (int dl = -rl_; dl <= rl_; ++dl)
    for (int dy = -rs_; dy <= rs_; ++dy)
      for (int dx = -rs_; dx <= rs_; ++dx) {
        const std::size_t o = r.kernel_index(dx, dy, dl), m = r.kernel_index(-dx, -dy, -dl);
        const std::size_t np = r.kernel_pairs[o] + r.kernel_pairs[m];
        if (np == 0) continue;
        r.kappa_all_offsets += r.kernel[o];
        const double rho = (tot[o] + tot[m]) / static_cast<double>(np);
        const double thr = std::max(min_rho, 5.0 / std::sqrt(0.5 * static_cast<double>(np)));
        if (o == o0 || std::abs(rho) > thr) {
          r.kernel_used[o] = 1;
          r.kappa_stationary += r.kernel[o];
        }
      }
  r.pair_cov.assign(ns * n_off_, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t q = 0; q < ns * n_off_; ++q)
    if (count_[q] > 0) r.pair_cov[q] = sum_[q] / static_cast<double>(count_[q]);
  // Per spaxel: the row sum of <z z> over the used offsets.
  r.kappa.assign(ns, std::numeric_limits<double>::quiet_NaN());
  std::vector<double> have;
  for (std::size_t s = 0; s < ns; ++s) {
    if (count_[s * n_off_ + o0] == 0) continue;
    double k = 0.0;
    for (std::size_t o = 0; o < n_off_; ++o)
      if (r.kernel_used[o] && count_[s * n_off_ + o] > 0)
        k += sum_[s * n_off_ + o] / static_cast<double>(count_[s * n_off_ + o]);
    k = std::max(k, kappa_floor);
    r.kappa[s] = k;
    have.push_back(k);
  }
  r.n_spaxels = have.size();
  double acc = 0.0;
  for (double k : have) acc += k;
  r.kappa_mean = acc / static_cast<double>(have.size());
  std::sort(have.begin(), have.end());
  const std::size_t h = have.size();
  r.kappa_median = h % 2 ? have[h / 2] : 0.5 * (have[h / 2 - 1] + have[h / 2]);
  r.kappa_min = have.front();
  r.kappa_max = have.back();
  r.status = Status::Ok();
  return r;
}

// ---------------------------------------------------------------------------------------------

CubeNoiseResult measure_cube_noise(const SlitstepOperator& op, const CubeNoiseOptions& options) {
  options.validate();
  const auto t0 = std::chrono::steady_clock::now();
  if (op.options().space != SlitstepOperatorOptions::Space::kCube)
    return failed(StatusCode::kInvalidInput, "the operator works in exposure space (the correction is for cube space)");
  const NirspecInstrument& ins = op.instrument();
  const SimulationConfig& cfg = op.config();
  const std::vector<int>& cols = op.columns();
  const std::size_t nc = cols.size();
  if (nc == 0) return failed(StatusCode::kInvalidInput, "the operator models no detector column");

  // 1. Blank-sky exposures and their expected electrons, one full frame at a time, cropped.
  const Cube sky = Cube::zeros(ins.sky_spatial(), ins.sky_spectral(), cfg.scene.sky, false);
  std::vector<Exposure> base;
  std::vector<ExposureCounts> counts;
  base.reserve(ins.pointings().size());
  counts.reserve(ins.pointings().size());
  for (const Pointing& p : ins.pointings()) {
    ObserveOptions oo;
    oo.apply_psf = false;  // a blank sky: nothing to convolve
    oo.threads = options.threads;
    oo.pointings = {p.index};
    std::vector<Exposure> full = observe(ins, sky, oo);
    if (full.size() != 1) return failed(StatusCode::kFailed, "observe returned no exposure for pointing " + std::to_string(p.index));
    const ExposureCounts fc = to_counts(expected_electrons(ins, full[0]));
    counts.push_back(crop_counts(fc, full[0].nv, full[0].nu, cols));
    base.push_back(crop_exposure(full[0], cols));
  }
  std::vector<char> adjacent(nc - 1);
  for (std::size_t c = 0; c + 1 < nc; ++c) adjacent[c] = cols[c + 1] == cols[c] + 1 ? 1 : 0;
  const SpatialGrid& grid = op.cube_spatial();
  CubeNoiseEstimator est(grid.nx, grid.ny, nc, options.radius_spatial, options.radius_spectral, adjacent);

  // 2.-3. Noise draws, reconstruction, accumulation.
  NoiseModel nm = cfg.noise;
  nm.noiseless = false;
  nm.threads = options.threads;
  ReconstructOptions rec = cfg.reconstruct;
  rec.threads = options.threads;
  const Rng master(options.seed);
  for (int k = 0; k < options.realisations; ++k) {
    std::vector<Exposure> exps = base;
    const NoiseSummary ns = apply_noise(exps, counts, nm, master.substream(static_cast<std::uint64_t>(k)));
    if (!ns.status.ok()) return failed(ns.status.code, "noise: " + ns.status.message);
    const ReconstructResult rr = reconstruct(exps, cfg.instrument.slitlet, cfg.instrument.pattern, cfg.scene.sky, rec);
    if (!rr.status.ok()) return failed(rr.status.code, "reconstruct: " + rr.status.message);
    if (!(rr.cube.spatial == grid) || rr.cube.nl() != nc)
      return failed(StatusCode::kFailed, "the noise cube is " + std::to_string(rr.cube.nx()) + " x " +
                                             std::to_string(rr.cube.ny()) + " x " + std::to_string(rr.cube.nl()) +
                                             ", the operator's " + std::to_string(grid.nx) + " x " +
                                             std::to_string(grid.ny) + " x " + std::to_string(nc));
    const Status st = est.add(rr.cube, options.threads);
    if (!st.ok()) return failed(st.code, st.message);
  }
  CubeNoiseResult r = est.finish(options.min_rho, options.kappa_floor);
  r.seed = options.seed;
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

Status apply_cube_noise(const CubeNoiseResult& noise, const SlitstepOperator& op, SlitstepOperator::Selection& sel) {
  if (!noise.status.ok()) return Status::Error(StatusCode::kInvalidInput, "apply_cube_noise: " + noise.status.message);
  const SpatialGrid& g = op.cube_spatial();
  const std::size_t nc = op.n_columns(), ns = g.size();
  if (op.options().space != SlitstepOperatorOptions::Space::kCube || noise.nx != g.nx || noise.ny != g.ny ||
      noise.kappa.size() != ns || sel.inv_sigma.size() != ns * nc)
    return Status::Error(StatusCode::kInvalidInput,
                         "apply_cube_noise: the measurement (" + std::to_string(noise.nx) + " x " +
                             std::to_string(noise.ny) + " spaxels) or the selection (" +
                             std::to_string(sel.inv_sigma.size()) + " values) does not match the operator's cube space (" +
                             std::to_string(g.nx) + " x " + std::to_string(g.ny) + " x " + std::to_string(nc) + ")");
  for (std::size_t s = 0; s < ns; ++s) {
    const double k = std::isfinite(noise.kappa[s]) ? noise.kappa[s] : noise.kappa_median;
    const double f = 1.0 / std::sqrt(k);
    for (std::size_t c = 0; c < nc; ++c) sel.inv_sigma[s * nc + c] *= f;
  }
  return Status::Ok();
}

JsonValue cube_noise_json(const CubeNoiseResult& r) {
  JsonValue o = JsonValue::object();
  o.set("realisations", r.realisations);
  o.set("seed", static_cast<unsigned long long>(r.seed));
  o.set("n_spaxels", static_cast<unsigned long long>(r.n_spaxels));
  o.set("n_samples", static_cast<unsigned long long>(r.n_samples));
  o.set("var_ratio", r.var_ratio);
  o.set("kappa_mean", r.kappa_mean);
  o.set("kappa_median", r.kappa_median);
  o.set("kappa_min", r.kappa_min);
  o.set("kappa_max", r.kappa_max);
  o.set("kappa_stationary", r.kappa_stationary);
  o.set("kappa_all_offsets", r.kappa_all_offsets);
  if (!r.kernel.empty()) {
    JsonValue rows = JsonValue::array();
    for (int dy = -r.radius_spatial; dy <= r.radius_spatial; ++dy) {
      JsonValue row = JsonValue::array();
      for (int dx = -r.radius_spatial; dx <= r.radius_spatial; ++dx) row.push(r.rho(dx, dy, 0));
      rows.push(std::move(row));
    }
    o.set("kernel_dl0", std::move(rows));
    JsonValue sp = JsonValue::array();
    for (int dl = -r.radius_spectral; dl <= r.radius_spectral; ++dl) sp.push(r.rho(0, 0, dl));
    o.set("kernel_spectral", std::move(sp));
  }
  o.set("wall_s", r.wall_s);
  return o;
}

// ---------------------------------------------------------------------------------------------

struct WhitenedCubeOperator::Factor {
  std::vector<int> spaxels;  // U_c in increasing order
  Eigen::SimplicialLLT<Eigen::SparseMatrix<double>> llt;
};

struct WhitenedCubeOperator::Ws : ModelOperator::Workspace {
  std::unique_ptr<ModelOperator::Workspace> inner;
  std::vector<double> model;
};

WhitenedCubeOperator::~WhitenedCubeOperator() = default;

WhitenedCubeOperator::WhitenedCubeOperator(const SlitstepOperator& op, const CubeNoiseResult& noise,
                                           const SlitstepOperator::Selection& sel)
    : op_(&op) {
  const SpatialGrid& g = op.cube_spatial();
  const std::size_t nc = op.n_columns(), ns = g.size();
  if (!noise.status.ok()) {
    status_ = Status::Error(StatusCode::kInvalidInput, "whitening: " + noise.status.message);
    return;
  }
  if (op.options().space != SlitstepOperatorOptions::Space::kCube || noise.nx != g.nx || noise.ny != g.ny ||
      noise.pair_cov.size() != ns * noise.n_offsets() || sel.inv_sigma.size() != ns * nc ||
      sel.data.size() != ns * nc) {
    status_ = Status::Error(StatusCode::kInvalidInput,
                            "whitening: the measurement or the selection does not match the operator's cube space");
    return;
  }
  inv_sigma_ = sel.inv_sigma;
  const int rs = noise.radius_spatial;
  // Symmetrised covariance of spaxels s and s + (dx, dy) (same channel).
  auto cov = [&](int i, int j, int dx, int dy) {
    const std::size_t s = static_cast<std::size_t>(j) * g.nx + i;
    const std::size_t t = static_cast<std::size_t>(j + dy) * g.nx + (i + dx);
    const double a = noise.pair_cov[s * noise.n_offsets() + noise.kernel_index(dx, dy, 0)];
    const double b = noise.pair_cov[t * noise.n_offsets() + noise.kernel_index(-dx, -dy, 0)];
    if (std::isfinite(a) && std::isfinite(b)) return 0.5 * (a + b);
    return std::isfinite(a) ? a : b;
  };
  // Distinct used sets -> one factorisation each.
  std::map<std::vector<char>, int> seen;
  std::vector<std::vector<char>> masks;
  channel_factor_.assign(nc, -1);
  for (std::size_t c = 0; c < nc; ++c) {
    std::vector<char> m(ns, 0);
    bool any = false;
    for (std::size_t s = 0; s < ns; ++s)
      if (sel.inv_sigma[s * nc + c] > 0.0) m[s] = 1, any = true;
    if (!any) continue;
    auto it = seen.find(m);
    if (it == seen.end()) {
      it = seen.emplace(m, static_cast<int>(masks.size())).first;
      masks.push_back(m);
    }
    channel_factor_[c] = it->second;
  }
  // Factorise; shrink the off-diagonal part (the same factor for every set) until all succeed.
  for (int attempt = 0; attempt < 40; ++attempt) {
    factors_.clear();
    bool ok = true;
    for (const auto& m : masks) {
      auto f = std::make_unique<Factor>();
      std::vector<int> pos(ns, -1);
      for (std::size_t s = 0; s < ns; ++s)
        if (m[s]) pos[s] = static_cast<int>(f->spaxels.size()), f->spaxels.push_back(static_cast<int>(s));
      std::vector<Eigen::Triplet<double>> tr;
      for (int s : f->spaxels) {
        const int i = s % g.nx, j = s / g.nx;
        for (int dy = -rs; dy <= rs; ++dy)
          for (int dx = -rs; dx <= rs; ++dx) {
            const int ii = i + dx, jj = j + dy;
            if (ii < 0 || jj < 0 || ii >= g.nx || jj >= g.ny) continue;
            const bool centre = dx == 0 && dy == 0;
            if (!centre && !noise.kernel_used[noise.kernel_index(dx, dy, 0)]) continue;
            const int t = jj * g.nx + ii;
            if (pos[static_cast<std::size_t>(t)] < 0) continue;
            double v = cov(i, j, dx, dy);
            if (!std::isfinite(v)) {
              if (centre) v = 1.0;
              else continue;
            }
            if (centre) v = std::max(v, 1e-3);
            else v *= shrink_;
            tr.emplace_back(pos[static_cast<std::size_t>(s)], pos[static_cast<std::size_t>(t)], v);
          }
      }
      const int n = static_cast<int>(f->spaxels.size());
      Eigen::SparseMatrix<double> a(n, n);
      a.setFromTriplets(tr.begin(), tr.end());
      f->llt.compute(a);
      if (f->llt.info() != Eigen::Success) {
        ok = false;
        break;
      }
      factors_.push_back(std::move(f));
    }
    if (ok) break;
    factors_.clear();
    shrink_ *= 0.9;
  }
  if (factors_.size() != masks.size()) {
    status_ = Status::Error(StatusCode::kFailed, "whitening: the measured covariance is not positive definite even "
                                                 "with its off-diagonal part shrunk to " + format_value(shrink_));
    return;
  }
  n_factors_ = factors_.size();
  whitened_.status = Status::Ok();
  whitened_.n_used = sel.n_used;
  whitened_.data.assign(ns * nc, 0.0);
  whitened_.inv_sigma.assign(ns * nc, 0.0);
  whiten(sel.data.data(), whitened_.data.data());
  for (std::size_t k = 0; k < ns * nc; ++k) whitened_.inv_sigma[k] = sel.inv_sigma[k] > 0.0 ? 1.0 : 0.0;
  status_ = Status::Ok();
}

void WhitenedCubeOperator::whiten(const double* in, double* out) const {
  const std::size_t nc = channel_factor_.size(), n = inv_sigma_.size();
  std::fill(out, out + n, 0.0);
  Eigen::VectorXd x;
  for (std::size_t c = 0; c < nc; ++c) {
    if (channel_factor_[c] < 0) continue;
    const Factor& f = *factors_[static_cast<std::size_t>(channel_factor_[c])];
    const Eigen::Index m = static_cast<Eigen::Index>(f.spaxels.size());
    x.resize(m);
    for (Eigen::Index a = 0; a < m; ++a) {
      const std::size_t k = static_cast<std::size_t>(f.spaxels[static_cast<std::size_t>(a)]) * nc + c;
      x[a] = in[k] * inv_sigma_[k];
    }
    const Eigen::VectorXd y = f.llt.matrixL().solve(f.llt.permutationP() * x);
    for (Eigen::Index a = 0; a < m; ++a)
      out[static_cast<std::size_t>(f.spaxels[static_cast<std::size_t>(a)]) * nc + c] = y[a];
  }
}

std::unique_ptr<ModelOperator::Workspace> WhitenedCubeOperator::make_workspace() const {
  auto w = std::make_unique<Ws>();
  w->inner = op_->make_workspace();
  w->model.assign(op_->data_size(), 0.0);
  return w;
}

Status WhitenedCubeOperator::evaluate(const GalaxyParams& params, double* model_out, Workspace& ws) const {
  if (!status_.ok()) return status_;
  Ws& w = static_cast<Ws&>(ws);
  w.inner->threads = w.threads;
  const Status st = op_->evaluate(params, w.model.data(), *w.inner);
  if (!st.ok()) return st;
  whiten(w.model.data(), model_out);
  return Status::Ok();
}

FitProblem WhitenedCubeOperator::make_problem(const GalaxyParameterization& param) const {
  FitProblem p;
  p.op = this;
  p.data = whitened_.data;
  p.inv_sigma = whitened_.inv_sigma;
  p.param = param;
  return p;
}

// ---------------------------------------------------------------------------------------------

SandwichErrors sandwich_errors(const FitProblem& problem, const SlitstepOperator& op, const CubeNoiseResult& noise,
                               const std::vector<double>& theta, const FitOptions& options) {
  SandwichErrors out;
  const SpatialGrid& g = op.cube_spatial();
  const std::size_t nc = op.n_columns(), ns = g.size(), n = ns * nc;
  if (!noise.status.ok()) {
    out.status = Status::Error(StatusCode::kInvalidInput, "sandwich errors: " + noise.status.message);
    return out;
  }
  if (problem.op != &op || problem.inv_sigma.size() != n || problem.data.size() != n || noise.nx != g.nx ||
      noise.ny != g.ny || noise.pair_cov.size() != ns * noise.n_offsets()) {
    out.status = Status::Error(StatusCode::kInvalidInput,
                               "sandwich errors: the problem or the measurement does not match the operator's cube space");
    return out;
  }
  out.names = problem.param.free_names();
  const std::size_t nf = out.names.size();
  if (theta.size() != nf || nf == 0) {
    out.status = Status::Error(StatusCode::kInvalidInput, "sandwich errors: theta has " + std::to_string(theta.size()) +
                                                              " values for " + std::to_string(nf) + " free parameters");
    return out;
  }
  // Residual rows: the used values in increasing index (ProblemEvaluator's order), then priors.
  std::vector<long> row(n, -1);
  std::size_t nu = 0;
  for (std::size_t k = 0; k < n; ++k)
    if (problem.inv_sigma[k] > 0.0 && std::isfinite(problem.data[k])) row[k] = static_cast<long>(nu++);
  ProblemEvaluator ev(problem, options.threads);
  const std::size_t nr = ev.num_residuals();
  if (nr < nu) {
    out.status = Status::Error(StatusCode::kFailed, "sandwich errors: fewer residuals than used values");
    return out;
  }
  std::vector<double> jac(nr * nf);
  const Status st = ev.jacobian(theta.data(), options.fd_step, jac.data());
  if (!st.ok()) {
    out.status = Status::Error(st.code, "sandwich errors: Jacobian: " + st.message);
    return out;
  }
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> J(
      jac.data(), static_cast<Eigen::Index>(nr), static_cast<Eigen::Index>(nf));
  // RJ = R * J (rows of used values through the measured covariance; prior rows unchanged).
  Eigen::MatrixXd RJ = J;
  const int rs = noise.radius_spatial, rl = noise.radius_spectral;
  const std::size_t no = noise.n_offsets();
  const std::vector<int>& cols = op.columns();
  for (std::size_t s = 0; s < ns; ++s) {
    const int i = static_cast<int>(s % static_cast<std::size_t>(g.nx)), j = static_cast<int>(s / static_cast<std::size_t>(g.nx));
    for (std::size_t c = 0; c < nc; ++c) {
      const long ra = row[s * nc + c];
      if (ra < 0) continue;
      Eigen::RowVectorXd acc = Eigen::RowVectorXd::Zero(static_cast<Eigen::Index>(nf));
      for (int dl = -rl; dl <= rl; ++dl) {
        const long cc = static_cast<long>(c) + dl;
        if (cc < 0 || cc >= static_cast<long>(nc)) continue;
        if (cols[static_cast<std::size_t>(cc)] - cols[c] != dl) continue;  // spectral neighbours: adjacent columns
        for (int dy = -rs; dy <= rs; ++dy)
          for (int dx = -rs; dx <= rs; ++dx) {
            const std::size_t o = noise.kernel_index(dx, dy, dl);
            if (!noise.kernel_used[o]) continue;
            const int ii = i + dx, jj = j + dy;
            if (ii < 0 || jj < 0 || ii >= g.nx || jj >= g.ny) continue;
            const std::size_t t = static_cast<std::size_t>(jj) * g.nx + ii;
            const long rb = row[t * nc + static_cast<std::size_t>(cc)];
            if (rb < 0) continue;
            const double a = noise.pair_cov[s * no + o], b = noise.pair_cov[t * no + noise.kernel_index(-dx, -dy, -dl)];
            double v = std::isfinite(a) && std::isfinite(b) ? 0.5 * (a + b) : std::isfinite(a) ? a : b;
            if (!std::isfinite(v)) v = (o == noise.kernel_index(0, 0, 0)) ? 1.0 : 0.0;
            acc += v * J.row(rb);
          }
      }
      RJ.row(ra) = acc;
    }
  }
  const Eigen::MatrixXd H = J.transpose() * J;
  const Eigen::MatrixXd M = J.transpose() * RJ;
  Eigen::FullPivLU<Eigen::MatrixXd> lu(H);
  if (!lu.isInvertible()) {
    out.status = Status::Error(StatusCode::kFailed, "sandwich errors: the curvature J^T J is singular");
    return out;
  }
  const Eigen::MatrixXd Hi = lu.inverse();
  Eigen::MatrixXd cov = Hi * M * Hi;
  const std::vector<double> scale = problem.param.free_scales();
  out.covariance.resize(static_cast<Eigen::Index>(nf), static_cast<Eigen::Index>(nf));
  out.err.resize(nf);
  out.err_independent.resize(nf);
  for (std::size_t a = 0; a < nf; ++a) {
    for (std::size_t b = 0; b < nf; ++b)
      out.covariance(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b)) =
          cov(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b)) * scale[a] * scale[b];
    const Eigen::Index ia = static_cast<Eigen::Index>(a);
    out.err[a] = cov(ia, ia) > 0.0 ? std::sqrt(cov(ia, ia)) * scale[a] : std::nan("");
    out.err_independent[a] = Hi(ia, ia) > 0.0 ? std::sqrt(Hi(ia, ia)) * scale[a] : std::nan("");
  }
  out.status = Status::Ok();
  return out;
}

}  // namespace slitstep
