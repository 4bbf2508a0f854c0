#include "instruments/observe.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/simd.hpp"
#include "instruments/detector.hpp"
#include "instruments/disperser.hpp"

namespace slitstep {
namespace {

void check_grids(const NirspecInstrument& ins, const Cube& sky) {
  if (!(sky.spatial == ins.sky_spatial()))
    throw InvalidOptions("observe: the sky cube's spatial grid differs from the one the instrument was built for");
  if (!(sky.spectral == ins.sky_spectral()))
    throw InvalidOptions("observe: the sky cube's wavelength grid differs from the one the instrument was built for");
  if (sky.sci.size() != sky.size())
    throw InvalidOptions("observe: sky.sci has " + std::to_string(sky.sci.size()) + " values, expected " +
                         std::to_string(sky.size()));
}

std::vector<int> selected(const NirspecInstrument& ins, const ObserveOptions& o) {
  std::vector<int> sel = o.pointings;
  const int np = static_cast<int>(ins.pointings().size());
  if (sel.empty())
    for (int p = 0; p < np; ++p) sel.push_back(p);
  for (int p : sel)
    if (p < 0 || p >= np)
      throw InvalidOptions("observe: pointing index " + std::to_string(p) + " out of range 0.." + std::to_string(np - 1));
  return sel;
}

// The column selection of one call: map[u] = output column or -1; full frame when empty.
struct ColumnSelection {
  bool compact = false;
  int n_out = 0;                 // output columns
  int u_min = 0, u_max = -1;     // selected range [u_min, u_max]
  std::vector<int> map;          // nu entries (compact only)
  std::vector<double> wavelength_um;
  std::vector<std::uint32_t> dq; // nv x n_out
};

ColumnSelection make_selection(const NirspecInstrument& ins, const ObserveOptions& o) {
  ColumnSelection cs;
  const int nu = ins.nu(), nv = ins.nv();
  if (o.columns.empty()) {
    cs.n_out = nu;
    cs.u_min = 0;
    cs.u_max = nu - 1;
    return cs;
  }
  cs.compact = true;
  cs.n_out = static_cast<int>(o.columns.size());
  cs.u_min = o.columns.front();
  cs.u_max = o.columns.back();
  cs.map.assign(static_cast<std::size_t>(nu), -1);
  const auto& lam = ins.column_wavelengths_um();
  const auto& dqt = ins.dq_template();
  cs.wavelength_um.resize(o.columns.size());
  cs.dq.resize(static_cast<std::size_t>(nv) * o.columns.size());
  for (std::size_t c = 0; c < o.columns.size(); ++c) {
    const int u = o.columns[c];
    cs.map[static_cast<std::size_t>(u)] = static_cast<int>(c);
    cs.wavelength_um[c] = lam[static_cast<std::size_t>(u)];
    for (int v = 0; v < nv; ++v)
      cs.dq[static_cast<std::size_t>(v) * o.columns.size() + c] = dqt[static_cast<std::size_t>(v) * nu + u];
  }
  return cs;
}

void init_exposure(const NirspecInstrument& ins, int p, const ColumnSelection& cs, Exposure& e) {
  const int nout = cs.n_out;
  if (e.nu != nout || e.nv != ins.nv() || e.sci.size() != static_cast<std::size_t>(nout) * ins.nv()) {
    e.resize(ins.nv(), nout);
  } else {
    std::fill(e.sci.begin(), e.sci.end(), 0.0);
    std::fill(e.err.begin(), e.err.end(), 0.0);
    std::fill(e.var_poisson.begin(), e.var_poisson.end(), 0.0);
    std::fill(e.var_rnoise.begin(), e.var_rnoise.end(), 0.0);
  }
  e.pointing = ins.pointings()[p];
  e.y0_arcsec = ins.row_y0_arcsec();
  e.pixel_y_arcsec = ins.pixel_y_arcsec();
  e.wavelength_um = cs.compact ? cs.wavelength_um : ins.column_wavelengths_um();
  e.dq = cs.compact ? cs.dq : ins.dq_template();
  e.wavelength2d_um.clear();
  e.seed = 0;
}

// One pointing, fast path. B: the (convolved) sky in Cube layout. Scratch per thread: `buf`
// (nv x nl, C(r, k) of one sky column), `ct` (its transpose, nl x nv) and `strip` (the output
// columns [u_lo, u_hi] transposed: strip[(u - u_lo) * nv + r], so that the spectral spreading runs
// along contiguous detector rows). Compact: only the selected columns' range is accumulated and the
// selected columns are copied out. The summation order of every output value is fixed (sky column
// by sky column, channel by channel), so results do not depend on the column selection, the thread
// count or the instruction set the kernel was compiled for (core/simd.hpp).
SLITSTEP_SIMD_CLONES
void render_pointing(const NirspecInstrument& ins, const double* B, int p, const ColumnSelection& cs, Exposure& e,
                     std::vector<double>& buf, std::vector<double>& ct, std::vector<double>& strip) {
  const bool compact = cs.compact;
  const SpatialGrid& g = ins.sky_spatial();
  const std::size_t nl = ins.sky_spectral().size();
  const int nv = ins.nv();
  const int nout = cs.n_out;
  const int s = ins.step_slot(p), d = ins.dither_slot(p);
  const auto& cols = ins.columns(s);
  const auto& sprof = ins.spectral_profiles(s);
  const auto& svals = ins.spectral_values(s);
  const std::size_t nch = ins.num_chunks();
  const int u_lo = cs.u_min, u_hi = cs.u_max;
  const std::size_t width = static_cast<std::size_t>(u_hi - u_lo + 1);
  buf.assign(static_cast<std::size_t>(nv) * nl, 0.0);
  ct.resize(static_cast<std::size_t>(nv) * nl);
  strip.assign(width * static_cast<std::size_t>(nv), 0.0);
  for (std::size_t c = 0; c < cols.size(); ++c) {
    const int i = cols[c].i;
    int r_min = nv, r_max = -1;
    std::size_t k_first = nl, k_end = 0;
    // 1) collapse sky rows onto detector rows: C(r, k) = sum_j B(i, j, k) Y_j(r)
    for (std::size_t ch = 0; ch < nch; ++ch) {
      std::size_t k0 = ins.chunk_first(ch), k1 = ins.chunk_end(ch);
      if (compact) {  // only channels whose spectral profile reaches a selected column
        while (k0 < k1 && (sprof[c * nl + k0].len == 0 || sprof[c * nl + k0].m0 + sprof[c * nl + k0].len - 1 < u_lo ||
                           sprof[c * nl + k0].m0 > u_hi))
          ++k0;
        while (k1 > k0 && (sprof[c * nl + k1 - 1].len == 0 ||
                           sprof[c * nl + k1 - 1].m0 + sprof[c * nl + k1 - 1].len - 1 < u_lo ||
                           sprof[c * nl + k1 - 1].m0 > u_hi))
          --k1;
        if (k0 >= k1) continue;
      }
      const auto& rprof = ins.row_profiles(d, ch);
      const auto& rvals = ins.row_values(d, ch);
      for (const auto& rp : rprof) {
        const double* base = B + (static_cast<std::size_t>(rp.j) * g.nx + i) * nl;
        // the spectrum's nonzero range within [k0, k1): adding zeros changes no sum
        std::size_t a = k0, b = k1;
        while (a < b && base[a] == 0.0) ++a;
        if (a == b) continue;
        while (base[b - 1] == 0.0) --b;
        k_first = std::min(k_first, a);
        k_end = std::max(k_end, b);
        r_min = std::min(r_min, rp.r0);
        r_max = std::max(r_max, rp.r0 + rp.len - 1);
        for (int q = 0; q < rp.len; ++q) {
          const double y = rvals[rp.offset + q];
          double* C = buf.data() + static_cast<std::size_t>(rp.r0 + q) * nl;
          for (std::size_t k = a; k < b; ++k) C[k] += y * base[k];
        }
      }
    }
    if (r_max < r_min) continue;
    // 2) spread every channel onto detector columns with its spectral profile, all rows at once
    const std::size_t R = static_cast<std::size_t>(r_max - r_min + 1);
    for (std::size_t k = k_first; k < k_end; ++k) {
      double* t = ct.data() + k * R;
      for (std::size_t rr = 0; rr < R; ++rr) t[rr] = buf[(static_cast<std::size_t>(r_min) + rr) * nl + k];
    }
    for (std::size_t k = k_first; k < k_end; ++k) {
      const auto& P = sprof[c * nl + k];
      if (P.len == 0) continue;
      const int q0 = std::max(0, u_lo - P.m0);
      const int q1 = std::min(P.len, u_hi - P.m0 + 1);
      if (q0 >= q1) continue;
      const double* ck = ct.data() + k * R;
      bool any = false;
      for (std::size_t rr = 0; rr < R; ++rr) any |= (ck[rr] != 0.0);
      if (!any) continue;
      const double* w = svals.data() + P.offset;
      for (int q = q0; q < q1; ++q) {
        const double wq = w[q];
        double* o = strip.data() + static_cast<std::size_t>(P.m0 + q - u_lo) * static_cast<std::size_t>(nv) +
                    static_cast<std::size_t>(r_min);
        for (std::size_t rr = 0; rr < R; ++rr) o[rr] += ck[rr] * wq;
      }
    }
    for (int r = r_min; r <= r_max; ++r)
      std::fill(buf.begin() + static_cast<std::ptrdiff_t>(r) * nl, buf.begin() + static_cast<std::ptrdiff_t>(r + 1) * nl, 0.0);
  }
  // 3) the strip into the exposure (rows x output columns)
  double* sci = e.sci.data();
  for (int u = u_lo; u <= u_hi; ++u) {
    const int o = compact ? cs.map[static_cast<std::size_t>(u)] : u;
    if (o < 0) continue;
    const double* src = strip.data() + static_cast<std::size_t>(u - u_lo) * static_cast<std::size_t>(nv);
    for (int r = 0; r < nv; ++r) sci[static_cast<std::size_t>(r) * nout + o] = src[r];
  }
}

// Every selected pointing from the (convolved) sky B.
void observe_core(const NirspecInstrument& ins, const double* B, const ObserveOptions& o, std::vector<Exposure>& out) {
  const std::vector<int> sel = selected(ins, o);
  const ColumnSelection cs = make_selection(ins, o);
  out.resize(sel.size());
  const int n = static_cast<int>(sel.size());
  const int nthreads = o.threads > 0 ? o.threads : omp_get_max_threads();
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<double> buf, ct, strip;
#pragma omp for schedule(dynamic, 1)
    for (int q = 0; q < n; ++q) {
      init_exposure(ins, sel[q], cs, out[q]);
      render_pointing(ins, B, sel[q], cs, out[q], buf, ct, strip);
    }
  }
}

}  // namespace

void ObserveOptions::validate(int nu) const {
  for (std::size_t c = 0; c < columns.size(); ++c) {
    const int u = columns[c];
    if (u < 0 || u >= nu)
      throw InvalidOptions("ObserveOptions.columns[" + std::to_string(c) + "] = " + std::to_string(u) +
                           ": must be in [0, " + std::to_string(nu - 1) + "] (detector columns)");
    if (c > 0 && u <= columns[c - 1])
      throw InvalidOptions("ObserveOptions.columns[" + std::to_string(c) + "] = " + std::to_string(u) +
                           ": columns must be strictly increasing");
  }
  if (threads < 0) throw InvalidOptions("ObserveOptions.threads = " + std::to_string(threads) + ": must be >= 0");
}

void observe_into(const NirspecInstrument& ins, const Cube& sky, const ObserveOptions& o, std::vector<Exposure>& out) {
  check_grids(ins, sky);
  o.validate(ins.nu());
  if (o.apply_psf && ins.psf().enabled()) {
    std::vector<double> B;
    ins.psf().apply(sky.sci, B, o.threads);
    observe_core(ins, B.data(), o, out);
  } else {
    observe_core(ins, sky.sci.data(), o, out);  // read in place, no copy
  }
}

void observe_convolved_into(const NirspecInstrument& ins, const std::vector<double>& convolved_sci,
                            const ObserveOptions& o, std::vector<Exposure>& out) {
  const std::size_t n = ins.sky_spatial().size() * ins.sky_spectral().size();
  if (convolved_sci.size() != n)
    throw InvalidOptions("observe_convolved_into: the convolved sky has " + std::to_string(convolved_sci.size()) +
                         " values, expected " + std::to_string(n) + " (the instrument's sky grids)");
  o.validate(ins.nu());
  observe_core(ins, convolved_sci.data(), o, out);
}

std::vector<Exposure> observe(const NirspecInstrument& ins, const Cube& sky, const ObserveOptions& o) {
  std::vector<Exposure> out;
  observe_into(ins, sky, o, out);
  return out;
}

std::vector<Exposure> observe_reference(const NirspecInstrument& ins, const Cube& sky, const ObserveOptions& o) {
  check_grids(ins, sky);
  const std::vector<int> sel = selected(ins, o);
  std::vector<double> B;
  if (o.apply_psf && ins.psf().enabled()) {
    ins.psf().apply_direct(sky.sci, B);
  } else {
    B = sky.sci;
  }
  const NirspecConfig& cfg = ins.config();
  const SlitletConfig& sl = cfg.slitlet;
  const SpatialGrid& g = ins.sky_spatial();
  const WavelengthGrid& wl = ins.sky_spectral();
  const Disperser& disp = ins.disperser();
  const std::size_t nl = wl.size();
  const int nu = ins.nu(), nv = ins.nv();
  const double sx = cfg.disperser.pixel_x_arcsec, sy = cfg.detector.pixel_y_arcsec;
  const double hx = 0.5 * sl.shutter.open_x_arcsec, hy = 0.5 * sl.shutter.open_y_arcsec;
  const auto& lam = ins.column_wavelengths_um();
  const ChipGap gap = ins.chip_gap();
  std::vector<double> calib(nu);
  std::vector<char> live(nu);
  for (int m = 0; m < nu; ++m) {
    calib[m] = slitstep::electrons_per_erg_cm2(cfg.detector, lam[m]) * disp.dlds_um_per_px(lam[m]) *
               sl.shutter.open_x_arcsec * sy;
    live[m] = !((gap.enabled && lam[m] >= gap.lo_um && lam[m] <= gap.hi_um) ||
                (cfg.detector.red_limit && lam[m] > ins.red_limit_um()));
  }
  std::vector<Exposure> out(sel.size());
  std::vector<double> fv(nv);
  for (std::size_t q = 0; q < sel.size(); ++q) {
    const Pointing& pt = ins.pointings()[sel[q]];
    Exposure& e = out[q];
    e.resize(nv, nu);
    e.pointing = pt;
    e.y0_arcsec = ins.row_y0_arcsec();
    e.pixel_y_arcsec = sy;
    e.wavelength_um = lam;
    e.dq = ins.dq_template();
    for (int j = 0; j < g.ny; ++j)
      for (int i = 0; i < g.nx; ++i) {
        // sky pixel in the MSA frame of this pointing: the slitlet at x sees the sky at x + offset
        const double x0 = g.x_arcsec(i) - 0.5 * g.pixel_arcsec - pt.offset_x_arcsec, x1 = x0 + g.pixel_arcsec;
        const double y0 = g.y_arcsec(j) - 0.5 * g.pixel_arcsec - pt.offset_y_arcsec, y1 = y0 + g.pixel_arcsec;
        for (int k = 0; k < sl.n_shutters; ++k) {
          const double yc = shutter_center_y_arcsec(sl, k);
          const double xa = std::max(x0, -hx), xb = std::min(x1, hx);
          const double ya = std::max(y0, yc - hy), yb = std::min(y1, yc + hy);
          if (!(xb > xa) || !(yb > ya)) continue;
          const double open_area = (xb - xa) * (yb - ya);  // arcsec^2 of this pixel inside shutter k
          for (std::size_t c = 0; c < nl; ++c) {
            const double sb = B[(static_cast<std::size_t>(j) * g.nx + i) * nl + c];
            if (sb == 0.0) continue;
            const double l = wl.wavelength_um(c);
            const double e_rate = sb * open_area * wl.width_um(c) * slitstep::electrons_per_erg_cm2(cfg.detector, l);
            const double u0 = ins.channel_u(c);
            const double su = ins.kernel_sigma_px_for_channel(c), sv = ins.cross_sigma_px_for_channel(c);
            const double ua = u0 + xa / sx, ub = u0 + xb / sx;
            const double va = (ya - ins.row_y0_arcsec()) / sy, vb = (yb - ins.row_y0_arcsec()) / sy;
            const int m_lo = std::max(0, static_cast<int>(std::floor(ua - 12.0 * su)));
            const int m_hi = std::min(nu - 1, static_cast<int>(std::ceil(ub + 12.0 * su)));
            for (int r = 0; r < nv; ++r) fv[r] = box_gauss_fraction(va, vb, sv, r - 0.5, r + 0.5);
            for (int m = m_lo; m <= m_hi; ++m) {
              if (!live[m]) continue;
              const double fu = box_gauss_fraction(ua, ub, su, m - 0.5, m + 0.5);
              for (int r = 0; r < nv; ++r) e.sci[e.index(r, m)] += e_rate * fu * fv[r] / calib[m];
            }
          }
        }
      }
  }
  return out;
}

double background_sb(const NirspecInstrument& ins, double l) {
  return mjy_sr_to_sb(ins.config().detector.background_mjy_sr, l);
}

ExposureElectrons expected_electrons(const NirspecInstrument& ins, const Exposure& x) {
  if (x.nu != ins.nu() || x.nv != ins.nv() || x.sci.size() != x.size())
    throw InvalidOptions("expected_electrons: exposure is " + std::to_string(x.nv) + " x " + std::to_string(x.nu) +
                         ", the instrument's frame is " + std::to_string(ins.nv()) + " x " + std::to_string(ins.nu()));
  const double t = x.pointing.exptime_s;
  ExposureElectrons r;
  r.read_noise_e = ins.config().detector.read_noise_e;
  r.e_per_sb.resize(x.nu);
  for (int u = 0; u < x.nu; ++u) r.e_per_sb[u] = ins.electrons_per_sb(u, t);
  r.source_e.resize(x.size());
  r.background_e.resize(x.size());
  r.to_sb.resize(x.size());
  r.dark_e.assign(x.size(), ins.config().detector.dark_e_per_s * t);
  const auto& rows = ins.uniform_row_profile();
  for (int v = 0; v < x.nv; ++v)
    for (int u = 0; u < x.nu; ++u) {
      const std::size_t idx = x.index(v, u);
      r.source_e[idx] = x.sci[idx] * r.e_per_sb[u];
      r.to_sb[idx] = ins.column_live(u) ? 1.0 / r.e_per_sb[u] : 0.0;
      r.background_e[idx] =
          ins.column_live(u) ? background_sb(ins, x.wavelength_um[u]) * r.e_per_sb[u] * rows[v] : 0.0;
    }
  return r;
}

}  // namespace slitstep
