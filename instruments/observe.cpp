#include "instruments/observe.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

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

// Row responses of one (dither, chunk) transposed: for every detector row r the (row-profile
// index p, weight) pairs of the sky rows that reach it, in increasing p (= increasing sky row j).
struct RowsByDetectorRow {
  std::vector<std::uint32_t> start;  // nv + 1 offsets into p / y
  std::vector<std::uint32_t> p;
  std::vector<double> y;
};

RowsByDetectorRow transpose_rows(const std::vector<NirspecInstrument::RowProfile>& prof, const std::vector<double>& vals,
                                 int nv) {
  RowsByDetectorRow t;
  t.start.assign(static_cast<std::size_t>(nv) + 1, 0);
  for (const auto& rp : prof)
    for (int q = 0; q < rp.len; ++q) ++t.start[static_cast<std::size_t>(rp.r0 + q) + 1];
  for (int r = 0; r < nv; ++r) t.start[static_cast<std::size_t>(r) + 1] += t.start[static_cast<std::size_t>(r)];
  t.p.resize(t.start.back());
  t.y.resize(t.start.back());
  std::vector<std::uint32_t> fill(t.start.begin(), t.start.end() - 1);
  for (std::size_t pi = 0; pi < prof.size(); ++pi) {
    const auto& rp = prof[pi];
    for (int q = 0; q < rp.len; ++q) {
      const std::uint32_t at = fill[static_cast<std::size_t>(rp.r0 + q)]++;
      t.p[at] = static_cast<std::uint32_t>(pi);
      t.y[at] = vals[rp.offset + static_cast<std::size_t>(q)];
    }
  }
  return t;
}

// The row responses of one (dither, chunk) by PAIR of detector rows (r, r + 1): the union of
// the sky rows reaching either, in increasing row-profile index, with their two weights (0 for
// a row a sky row does not reach).
struct RowPairs {
  struct Entry {
    std::uint32_t p;  // row-profile index
    double y0, y1;
  };
  std::vector<std::uint32_t> start;  // (nv + 1) / 2 + 1 offsets into entries
  std::vector<Entry> entries;
};

RowPairs pair_rows(const RowsByDetectorRow& T, int nv) {
  RowPairs out;
  out.start.assign(static_cast<std::size_t>(nv + 1) / 2 + 1, 0);
  for (int r = 0; r < nv; r += 2) {
    std::uint32_t q0 = T.start[static_cast<std::size_t>(r)], e0 = T.start[static_cast<std::size_t>(r) + 1];
    std::uint32_t q1 = e0, e1 = r + 1 < nv ? T.start[static_cast<std::size_t>(r) + 2] : e0;
    while (q0 < e0 || q1 < e1) {
      RowPairs::Entry e{0, 0.0, 0.0};
      if (q1 >= e1 || (q0 < e0 && T.p[q0] < T.p[q1])) {
        e.p = T.p[q0];
        e.y0 = T.y[q0++];
      } else if (q0 >= e0 || T.p[q1] < T.p[q0]) {
        e.p = T.p[q1];
        e.y1 = T.y[q1++];
      } else {
        e.p = T.p[q0];
        e.y0 = T.y[q0++];
        e.y1 = T.y[q1++];
      }
      out.entries.push_back(e);
    }
    out.start[static_cast<std::size_t>(r / 2) + 1] = static_cast<std::uint32_t>(out.entries.size());
  }
  return out;
}

int num_dither_slots(const NirspecInstrument& ins) {
  int nd = 0;
  for (std::size_t p = 0; p < ins.pointings().size(); ++p) nd = std::max(nd, ins.dither_slot(static_cast<int>(p)) + 1);
  return nd;
}

// A term of the row collapse: the sky spectrum `off` doubles after the sky column's first pixel
// (B + i * nl; off = j * nx * nl for sky row j, the same for every sky column) and its weights
// on detector rows r and r + 1 (0 where it does not reach).
struct PairTerm {
  std::size_t off;
  double y0, y1;
};

// The paired row responses of one (dither slot, chunk) as collapse terms: per pair of detector
// rows, the terms in increasing row-profile index (= increasing sky row j).
struct PairList {
  std::vector<std::uint32_t> start;  // (nv + 1) / 2 + 1 offsets into terms
  std::vector<PairTerm> terms;
  std::vector<int> j;     // the sky row of every term
  std::vector<int> rows;  // the distinct sky rows of the terms, increasing
  std::vector<std::size_t> row_off;  // their offsets j * nx * nl
};

PairList make_pair_list(const RowPairs& PR, const std::vector<NirspecInstrument::RowProfile>& prof,
                        std::size_t row_stride) {
  PairList L;
  L.start = PR.start;
  L.terms.reserve(PR.entries.size());
  L.j.reserve(PR.entries.size());
  for (const RowPairs::Entry& e : PR.entries) {
    const int j = prof[e.p].j;
    L.terms.push_back({static_cast<std::size_t>(j) * row_stride, e.y0, e.y1});
    L.j.push_back(j);
  }
  L.rows = L.j;
  std::sort(L.rows.begin(), L.rows.end());
  L.rows.erase(std::unique(L.rows.begin(), L.rows.end()), L.rows.end());
  for (const int j : L.rows) L.row_off.push_back(static_cast<std::size_t>(j) * row_stride);
  return L;
}

// A term of the spectral spread: row block `off` = k * RS of the collapsed column (channel k)
// and its weight on one detector column.
struct SpecTerm {
  std::size_t off;
  double y;
};

// The spectral spread of one sky column over the channels [ka, kb): for every detector column
// m in [um0, um1] (within the selected range [u_lo, u_hi]) the (channel, weight) terms of the
// channels whose spectral profile reaches it, in increasing channel order.
struct ColumnSpectral {
  int um0 = 0, um1 = -1;
  std::vector<std::uint32_t> start;  // um1 - um0 + 2 offsets into terms
  std::vector<SpecTerm> terms;
};

void build_column_spectral(const std::vector<NirspecInstrument::SpectralProfile>& sprof, const std::vector<double>& svals,
                           std::size_t c, std::size_t nl, std::size_t ka, std::size_t kb, int u_lo, int u_hi,
                           std::size_t RS, ColumnSpectral& out) {
  int um0 = u_hi + 1, um1 = u_lo - 1;
  for (std::size_t k = ka; k < kb; ++k) {
    const auto& P = sprof[c * nl + k];
    if (P.len == 0) continue;
    um0 = std::min(um0, std::max(u_lo, P.m0));
    um1 = std::max(um1, std::min(u_hi, P.m0 + P.len - 1));
  }
  out.um0 = um0;
  out.um1 = um1;
  out.terms.clear();
  if (um1 < um0) {
    out.start.assign(1, 0);
    return;
  }
  const std::size_t nu_c = static_cast<std::size_t>(um1 - um0 + 1);
  out.start.assign(nu_c + 1, 0);
  for (std::size_t k = ka; k < kb; ++k) {
    const auto& P = sprof[c * nl + k];
    if (P.len == 0) continue;
    const int m_a = std::max(um0, P.m0), m_b = std::min(um1, P.m0 + P.len - 1);
    for (int m = m_a; m <= m_b; ++m) ++out.start[static_cast<std::size_t>(m - um0) + 1];
  }
  for (std::size_t m = 0; m < nu_c; ++m) out.start[m + 1] += out.start[m];
  out.terms.resize(out.start[nu_c]);
  std::vector<std::uint32_t> fill(out.start.begin(), out.start.end() - 1);
  for (std::size_t k = ka; k < kb; ++k) {
    const auto& P = sprof[c * nl + k];
    if (P.len == 0) continue;
    const int m_a = std::max(um0, P.m0), m_b = std::min(um1, P.m0 + P.len - 1);
    const double* w = svals.data() + P.offset;
    for (int m = m_a; m <= m_b; ++m) out.terms[fill[static_cast<std::size_t>(m - um0)]++] = {k * RS, w[m - P.m0]};
  }
}

// A selected pointing of one step slot: output index, pointing index, dither slot.
struct StepMember {
  int q, p, d;
};

// What one step slot needs besides the sky. Stacked layout of the step's pointings: member mi's
// detector row r is row mi * nvp + r of the stack (nvp = nv padded to a multiple of 4; padding
// rows are never copied out), RS = members * nvp rows.
struct StepPlan {
  int s = 0;
  std::vector<StepMember> members;  // in selection order
  std::size_t nvp = 0, RS = 0;
  std::vector<int> krange;                // [2 (c nch + ch)], [+ 1]: the chunk's channels [k0, k1) (compact:
                                          // trimmed to the channels whose profile reaches [u_lo, u_hi])
  std::vector<std::vector<int>> rows;     // per chunk: the sky rows any member's terms read, increasing
  std::vector<ColumnSpectral> spectral;   // per sky column over all channels (built plans only)
};

}  // namespace

// Everything observe derives from the instrument and the (pointings, columns, rows) selection.
struct ObservePlan::Impl {
  const NirspecInstrument* ins = nullptr;
  const RowResponses* rows = nullptr;
  std::vector<int> pointings, columns;  // as given (for the match check)
  std::vector<int> sel;                 // selected pointings
  ColumnSelection cs;
  std::vector<PairList> pairs;          // [dither * num_chunks + chunk]
  std::vector<StepPlan> steps;          // one per step slot with selected pointings (first-seen order)
  bool spectral = false;                // StepPlan::spectral filled
};

void check_row_responses(const NirspecInstrument& ins, const RowResponses& rr);

namespace {

// The plan of one call (spectral = false: the spectral spread lists are built per column during
// the call, over the channels the sky reaches) or of an ObservePlan (spectral = true: over all
// channels, once).
std::unique_ptr<ObservePlan::Impl> build_plan(const NirspecInstrument& ins, const ObserveOptions& o, bool spectral) {
  auto P = std::make_unique<ObservePlan::Impl>();
  P->ins = &ins;
  P->rows = o.rows;
  P->sel = selected(ins, o);
  P->cs = make_selection(ins, o);
  P->spectral = spectral;
  const SpatialGrid& g = ins.sky_spatial();
  const std::size_t nl = ins.sky_spectral().size();
  const std::size_t nch = ins.num_chunks();
  const int nv = ins.nv();
  const int nd = num_dither_slots(ins);
  P->pairs.resize(static_cast<std::size_t>(nd) * nch);
  for (int d = 0; d < nd; ++d)
    for (std::size_t ch = 0; ch < nch; ++ch) {
      const std::size_t at = static_cast<std::size_t>(d) * nch + ch;
      const auto& prof = o.rows ? o.rows->profiles[at] : ins.row_profiles(d, ch);
      const auto& vals = o.rows ? o.rows->values[at] : ins.row_values(d, ch);
      P->pairs[at] = make_pair_list(pair_rows(transpose_rows(prof, vals, nv), nv), prof, static_cast<std::size_t>(g.nx) * nl);
    }
  // the selected pointings grouped by step slot (each group in selection order)
  for (int q = 0; q < static_cast<int>(P->sel.size()); ++q) {
    const int s = ins.step_slot(P->sel[q]);
    auto it = std::find_if(P->steps.begin(), P->steps.end(), [s](const StepPlan& sp) { return sp.s == s; });
    if (it == P->steps.end()) {
      P->steps.emplace_back();
      it = P->steps.end() - 1;
      it->s = s;
    }
    it->members.push_back({q, P->sel[q], ins.dither_slot(P->sel[q])});
  }
  const int u_lo = P->cs.u_min, u_hi = P->cs.u_max;
  for (StepPlan& sp : P->steps) {
    sp.nvp = (static_cast<std::size_t>(nv) + 3) / 4 * 4;
    sp.RS = sp.members.size() * sp.nvp;
    const auto& cols = ins.columns(sp.s);
    const auto& sprof = ins.spectral_profiles(sp.s);
    sp.krange.resize(2 * cols.size() * nch);
    for (std::size_t c = 0; c < cols.size(); ++c)
      for (std::size_t ch = 0; ch < nch; ++ch) {
        std::size_t k0 = ins.chunk_first(ch), k1 = ins.chunk_end(ch);
        if (P->cs.compact) {  // only channels whose spectral profile reaches a selected column
          auto outside = [&](std::size_t k) {
            const auto& pr = sprof[c * nl + k];
            return pr.len == 0 || pr.m0 + pr.len - 1 < u_lo || pr.m0 > u_hi;
          };
          while (k0 < k1 && outside(k0)) ++k0;
          while (k1 > k0 && outside(k1 - 1)) --k1;
        }
        sp.krange[2 * (c * nch + ch)] = static_cast<int>(k0);
        sp.krange[2 * (c * nch + ch) + 1] = static_cast<int>(k1);
      }
    sp.rows.resize(nch);
    for (std::size_t ch = 0; ch < nch; ++ch) {
      std::vector<int>& r = sp.rows[ch];
      for (const StepMember& m : sp.members) {
        const auto& mr = P->pairs[static_cast<std::size_t>(m.d) * nch + ch].rows;
        r.insert(r.end(), mr.begin(), mr.end());
      }
      std::sort(r.begin(), r.end());
      r.erase(std::unique(r.begin(), r.end()), r.end());
    }
    if (spectral) {
      sp.spectral.resize(cols.size());
      for (std::size_t c = 0; c < cols.size(); ++c)
        build_column_spectral(sprof, ins.spectral_values(sp.s), c, nl, 0, nl, u_lo, u_hi, sp.RS, sp.spectral[c]);
    }
  }
  return P;
}

// 4 doubles (GCC vector extension; AVX2 registers in the AVX2 clone, SSE2 pairs otherwise). The
// helpers and render_step have internal linkage, so the -Wpsabi note about passing them
// without AVX is moot (the pragma spans them).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
using v4d = double __attribute__((vector_size(32)));
inline v4d load4(const double* p) {
  v4d v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(double* p, const v4d& v) { std::memcpy(p, &v, sizeof v); }  // by reference: no -Wpsabi note

using v8d = double __attribute__((vector_size(64)));
#if SLITSTEP_HAS_AVX512_KERNELS
// Channels l = 0..7 of two detector rows (a = row r, b = row r + 1) stored as (a[l], b[l]) at
// C + l * RS (the transposed stack), straight from the registers.
SLITSTEP_AVX512_KERNEL inline __attribute__((always_inline)) void store_pairs8(v8d a, v8d b, double* C,
                                                                               std::size_t RS) {
  using v8l = long long __attribute__((vector_size(64)));
  const v8d lo = __builtin_shuffle(a, b, v8l{0, 8, 2, 10, 4, 12, 6, 14});  // (a0 b0) (a2 b2) (a4 b4) (a6 b6)
  const v8d hi = __builtin_shuffle(a, b, v8l{1, 9, 3, 11, 5, 13, 7, 15});  // (a1 b1) (a3 b3) (a5 b5) (a7 b7)
  const char* L = reinterpret_cast<const char*>(&lo);
  const char* H = reinterpret_cast<const char*>(&hi);
  for (int t = 0; t < 4; ++t) {
    std::memcpy(C + static_cast<std::size_t>(2 * t) * RS, L + 16 * t, 16);
    std::memcpy(C + static_cast<std::size_t>(2 * t + 1) * RS, H + 16 * t, 16);
  }
}

// Two detector rows x 8 N channels (N = 1, 2, 4) of the row collapse with AVX-512 (2 N
// independent 8-wide sums), for CPUs that have it: the same products added in the same order as
// the narrower paths (no FMA: fp-contract off), so the same bits. Bk = the column's first pixel +
// kb0; the sums for channels kb0 .. kb0 + 8 N - 1 go to C0[l * RS] (row r) and C0[l * RS + 1]
// (row r + 1; for the last pair of an odd nv a padding row, never copied out).
template <int N>
SLITSTEP_AVX512_KERNEL void collapse_pair_avx512(const PairTerm* t0, const PairTerm* t1, const double* Bk, double* C0,
                                                 std::size_t RS) {
  v8d a[N], b[N];
#pragma GCC unroll 4
  for (int q = 0; q < N; ++q) a[q] = b[q] = v8d{0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  for (const PairTerm* t = t0; t < t1; ++t) {
    const double* src = Bk + t->off;
#pragma GCC unroll 4
    for (int q = 0; q < N; ++q) {
      v8d v;
      std::memcpy(&v, src + 8 * q, sizeof v);
      a[q] += t->y0 * v;
      b[q] += t->y1 * v;
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < N; ++q) store_pairs8(a[q], b[q], C0 + static_cast<std::size_t>(8 * q) * RS, RS);
}

// Rows [rr, rr + 8 N8 + 4 N4) of the spectral spread in one pass over the terms (N8 8-wide and
// N4 4-wide independent sums, terms in order).
template <int N8, int N4>
SLITSTEP_AVX512_KERNEL inline __attribute__((always_inline)) void spread_pass_avx512(const SpecTerm* t0,
                                                                                      const SpecTerm* t1,
                                                                                      const double* ct, double* o,
                                                                                      std::size_t rr) {
  v8d s[N8 > 0 ? N8 : 1];
  v4d q[N4 > 0 ? N4 : 1];
  for (int a = 0; a < N8; ++a) std::memcpy(&s[a], o + rr + 8 * a, sizeof(v8d));
  for (int a = 0; a < N4; ++a) std::memcpy(&q[a], o + rr + 8 * N8 + 4 * a, sizeof(v4d));
  for (const SpecTerm* t = t0; t < t1; ++t) {
    const double* src = ct + t->off + rr;
    for (int a = 0; a < N8; ++a) {
      v8d v;
      std::memcpy(&v, src + 8 * a, sizeof v);
      s[a] += v * t->y;
    }
    for (int a = 0; a < N4; ++a) {
      v4d v;
      std::memcpy(&v, src + 8 * N8 + 4 * a, sizeof v);
      q[a] += v * t->y;
    }
  }
  for (int a = 0; a < N8; ++a) std::memcpy(o + rr + 8 * a, &s[a], sizeof(v8d));
  for (int a = 0; a < N4; ++a) std::memcpy(o + rr + 8 * N8 + 4 * a, &q[a], sizeof(v4d));
}

// The spectral spread of one detector column with AVX-512: o[rr] += sum_t t.y * ct[t.off + rr]
// over all rows rr < RS (a multiple of 4): blocks of 64 rows in 8 independent 8-wide sums, then
// the rest in one more pass; terms in order, no FMA (the same bits as the narrower path).
SLITSTEP_AVX512_KERNEL std::size_t spread_rows64_avx512(const SpecTerm* t0, const SpecTerm* t1, const double* ct,
                                                        double* o, std::size_t RS) {
  std::size_t rr = 0;
  for (; rr + 64 <= RS; rr += 64) {
    v8d s[8];
    std::memcpy(s, o + rr, sizeof s);
    v8d s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5], s6 = s[6], s7 = s[7];
    for (const SpecTerm* t = t0; t < t1; ++t) {
      v8d v[8];
      std::memcpy(v, ct + t->off + rr, sizeof v);
      s0 += v[0] * t->y;
      s1 += v[1] * t->y;
      s2 += v[2] * t->y;
      s3 += v[3] * t->y;
      s4 += v[4] * t->y;
      s5 += v[5] * t->y;
      s6 += v[6] * t->y;
      s7 += v[7] * t->y;
    }
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3, s[4] = s4, s[5] = s5, s[6] = s6, s[7] = s7;
    std::memcpy(o + rr, s, sizeof s);
  }
  switch ((RS - rr) / 4) {  // 0 .. 15 blocks of 4 rows left
    case 1: spread_pass_avx512<0, 1>(t0, t1, ct, o, rr); break;
    case 2: spread_pass_avx512<1, 0>(t0, t1, ct, o, rr); break;
    case 3: spread_pass_avx512<1, 1>(t0, t1, ct, o, rr); break;
    case 4: spread_pass_avx512<2, 0>(t0, t1, ct, o, rr); break;
    case 5: spread_pass_avx512<2, 1>(t0, t1, ct, o, rr); break;
    case 6: spread_pass_avx512<3, 0>(t0, t1, ct, o, rr); break;
    case 7: spread_pass_avx512<3, 1>(t0, t1, ct, o, rr); break;
    case 8: spread_pass_avx512<4, 0>(t0, t1, ct, o, rr); break;
    case 9: spread_pass_avx512<4, 1>(t0, t1, ct, o, rr); break;
    case 10: spread_pass_avx512<5, 0>(t0, t1, ct, o, rr); break;
    case 11: spread_pass_avx512<5, 1>(t0, t1, ct, o, rr); break;
    case 12: spread_pass_avx512<6, 0>(t0, t1, ct, o, rr); break;
    case 13: spread_pass_avx512<6, 1>(t0, t1, ct, o, rr); break;
    case 14: spread_pass_avx512<7, 0>(t0, t1, ct, o, rr); break;
    case 15: spread_pass_avx512<7, 1>(t0, t1, ct, o, rr); break;
    default: break;
  }
  return RS;
}
#endif

bool cpu_has_avx512f() {
#if SLITSTEP_HAS_AVX512_KERNELS
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
#else
  return false;
#endif
}

// Per-thread scratch of render_step (one per thread and call).
struct StepScratch {
  std::vector<double> ct;     // ct[k * RS + stacked row]; all zero between steps
  std::vector<double> strip;
  std::vector<char> empty;    // per sky row: no nonzero channel in the chunk (this column)
  std::vector<std::vector<PairTerm>> m_terms;           // per member: the filtered lists
  std::vector<std::vector<std::uint32_t>> m_start;
  std::vector<const PairTerm*> l_terms;                 // per member: the lists used
  std::vector<const std::uint32_t*> l_start;
  ColumnSpectral colspec;     // the column's spectral lists (plans built per call)
};

// One step slot, fast path (see the header's pipeline). B: the (convolved) sky in Cube layout;
// nonzero: every sky spectrum's nonzero channel range [first, end). `ct` holds the collapsed sky
// column transposed (ct[k * RS + stacked row]) and the strip the output columns [u_lo, u_hi]
// transposed (strip[(u - u_lo) * RS + stacked row]) so that the spectral spread runs along
// contiguous rows. Compact: only the selected columns' range is accumulated and the selected
// columns copied out.
SLITSTEP_SIMD_CLONES
void render_step(const NirspecInstrument& ins, const ObservePlan::Impl& plan, const StepPlan& sp, const double* B,
                 const int* nonzero, std::vector<Exposure>& out, StepScratch& sc) {
  const ColumnSelection& cs = plan.cs;
  const bool compact = cs.compact;
  const SpatialGrid& g = ins.sky_spatial();
  const std::size_t nl = ins.sky_spectral().size();
  const int nv = ins.nv();
  const int nout = cs.n_out;
  const auto& cols = ins.columns(sp.s);
  const std::size_t nch = ins.num_chunks();
  const int u_lo = cs.u_min, u_hi = cs.u_max;
  const std::size_t width = static_cast<std::size_t>(u_hi - u_lo + 1);
  const std::vector<StepMember>& members = sp.members;
  const std::size_t M = members.size();
  const std::size_t nvp = sp.nvp, RS = sp.RS;
  const bool v512 = cpu_has_avx512f();
  if (sc.m_terms.size() < M) {
    sc.m_terms.resize(M);
    sc.m_start.resize(M);
  }
  sc.l_terms.resize(M);
  sc.l_start.resize(M);
  sc.empty.resize(static_cast<std::size_t>(g.ny));
  std::vector<double>& ct = sc.ct;
  // every column below re-zeroes what it wrote, so ct is all zero between steps
  if (ct.size() != RS * nl) ct.assign(RS * nl, 0.0);
  std::vector<double>& strip = sc.strip;
  strip.assign(width * RS, 0.0);  // strip[(u - u_lo) * RS + stacked row]
  // Sky column by sky column: every dither of the step collapses the column in turn (its spectra
  // stay in cache), then one spectral spread serves all of them (the spectral profiles depend on
  // the step only). Each exposure still sums its columns in order, channel by channel.
  for (std::size_t c = 0; c < cols.size(); ++c) {
    const int i = cols[c].i;
    const double* Bi = B + static_cast<std::size_t>(i) * nl;
    std::size_t kU0 = nl, kU1 = 0;  // union of the chunks' channel ranges
    // 1) collapse sky rows onto detector rows, C(r, k) = sum_j B(i, j, k) Y_j(r), chunk by chunk
    for (std::size_t ch = 0; ch < nch; ++ch) {
      const std::size_t k0 = static_cast<std::size_t>(sp.krange[2 * (c * nch + ch)]);
      const std::size_t k1 = static_cast<std::size_t>(sp.krange[2 * (c * nch + ch) + 1]);
      if (k0 >= k1) continue;
      // the union [cA, cB) of the nonzero ranges within [k0, k1) of the sky rows the members
      // read; a sky row with none is left out of every term list (the plan's lists are used as
      // they are when there is no such row)
      int cA = static_cast<int>(k1), cB = static_cast<int>(k0);
      bool any_empty = false;
      for (const int j : sp.rows[ch]) {
        const std::size_t pix = static_cast<std::size_t>(j) * g.nx + i;
        const std::size_t ra = std::max(k0, static_cast<std::size_t>(nonzero[2 * pix]));
        const std::size_t rb = std::min(k1, static_cast<std::size_t>(nonzero[2 * pix + 1]));
        const bool empty = rb <= ra;
        sc.empty[static_cast<std::size_t>(j)] = empty;
        if (empty) {
          any_empty = true;
          continue;
        }
        cA = std::min(cA, static_cast<int>(ra));
        cB = std::max(cB, static_cast<int>(rb));
      }
      if (cA >= cB) continue;
      for (std::size_t mi = 0; mi < M; ++mi) {
        const PairList& PL = plan.pairs[static_cast<std::size_t>(members[mi].d) * nch + ch];
        if (!any_empty) {
          sc.l_terms[mi] = PL.terms.data();
          sc.l_start[mi] = PL.start.data();
          continue;
        }
        std::vector<std::uint32_t>& ps = sc.m_start[mi];
        std::vector<PairTerm>& pt = sc.m_terms[mi];
        ps.assign(PL.start.size(), 0);
        pt.clear();
        for (std::size_t pr = 0; pr + 1 < PL.start.size(); ++pr) {
          for (std::uint32_t q = PL.start[pr]; q < PL.start[pr + 1]; ++q)
            if (!sc.empty[static_cast<std::size_t>(PL.j[q])]) pt.push_back(PL.terms[q]);
          ps[pr + 1] = static_cast<std::uint32_t>(pt.size());
        }
        sc.l_terms[mi] = pt.data();
        sc.l_start[mi] = ps.data();
      }
      kU0 = std::min(kU0, static_cast<std::size_t>(cA));
      kU1 = std::max(kU1, static_cast<std::size_t>(cB));
      // Channel blocks of W over [cA, cB) (W = 32, 16 or 8 with AVX-512, else 16; 4 or 1 for
      // short ranges; terms outside their own nonzero range add exact zeros): the block of every
      // sky row of the column stays in cache while every dither sums all its detector rows, two
      // rows x W channels at a time in independent register sums (each load serves both rows);
      // the next block is prefetched (the first member's sky rows). The last block is moved back
      // to end at cB when the range allows: the channels it repeats get the same terms in the same
      // order. Every channel's sums are the same whatever W is.
      const int npairs = (nv + 1) / 2;
      const int n = cB - cA;
      const int W = v512 ? (n >= 32 ? 32 : n >= 16 ? 16 : n >= 8 ? 8 : n >= 4 ? 4 : 1)
                         : (n >= 16 ? 16 : n >= 4 ? 4 : 1);
      const std::vector<std::size_t>& pf_rows = plan.pairs[static_cast<std::size_t>(members[0].d) * nch + ch].row_off;
      for (int kb0 = cA; kb0 < cB; kb0 += W) {
        if (kb0 + W > cB) kb0 = cB - W;
        const double* Bk = Bi + kb0;
        if (W >= 16 && kb0 + 2 * W <= cB)
          for (const std::size_t off : pf_rows)
            for (int l = 0; l < W; l += 8) __builtin_prefetch(Bk + off + W + l, 0, 3);
        for (std::size_t mi = 0; mi < M; ++mi) {
          const PairTerm* pterms = sc.l_terms[mi];
          const std::uint32_t* pair_start = sc.l_start[mi];
          for (int pr = 0; pr < npairs; ++pr) {
            const PairTerm* t0 = pterms + pair_start[pr];
            const PairTerm* t1 = pterms + pair_start[pr + 1];
            if (t0 == t1) continue;
            const int r = 2 * pr;
            // written straight into the stack, transposed: ct[k * RS + mi * nvp + r]
            double* C0 = ct.data() + static_cast<std::size_t>(kb0) * RS + mi * nvp + static_cast<std::size_t>(r);
            const bool two = r + 1 < nv;
#if SLITSTEP_HAS_AVX512_KERNELS
            if (W == 32) {
              collapse_pair_avx512<4>(t0, t1, Bk, C0, RS);
              continue;
            }
            if (W == 16 && v512) {
              collapse_pair_avx512<2>(t0, t1, Bk, C0, RS);
              continue;
            }
            if (W == 8) {
              collapse_pair_avx512<1>(t0, t1, Bk, C0, RS);
              continue;
            }
#endif
            if (W == 16) {
              v4d a0 = {0.0, 0.0, 0.0, 0.0}, a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
              for (const PairTerm* t = t0; t < t1; ++t) {
                const double* src = Bk + t->off;
                const v4d v0 = load4(src), v1 = load4(src + 4), v2 = load4(src + 8), v3 = load4(src + 12);
                a0 += t->y0 * v0;
                a1 += t->y0 * v1;
                a2 += t->y0 * v2;
                a3 += t->y0 * v3;
                b0 += t->y1 * v0;
                b1 += t->y1 * v1;
                b2 += t->y1 * v2;
                b3 += t->y1 * v3;
              }
              double ta[16], tb[16];
              store4(ta, a0);
              store4(ta + 4, a1);
              store4(ta + 8, a2);
              store4(ta + 12, a3);
              store4(tb, b0);
              store4(tb + 4, b1);
              store4(tb + 8, b2);
              store4(tb + 12, b3);
              for (int l = 0; l < 16; ++l) {
                C0[static_cast<std::size_t>(l) * RS] = ta[l];
                if (two) C0[static_cast<std::size_t>(l) * RS + 1] = tb[l];
              }
            } else if (W == 4) {
              v4d a0 = {0.0, 0.0, 0.0, 0.0}, b0 = a0;
              for (const PairTerm* t = t0; t < t1; ++t) {
                const v4d v0 = load4(Bk + t->off);
                a0 += t->y0 * v0;
                b0 += t->y1 * v0;
              }
              double ta[4], tb[4];
              store4(ta, a0);
              store4(tb, b0);
              for (int l = 0; l < 4; ++l) {
                C0[static_cast<std::size_t>(l) * RS] = ta[l];
                if (two) C0[static_cast<std::size_t>(l) * RS + 1] = tb[l];
              }
            } else {
              double a0 = 0.0, b0 = 0.0;
              for (const PairTerm* t = t0; t < t1; ++t) {
                a0 += t->y0 * Bk[t->off];
                b0 += t->y1 * Bk[t->off];
              }
              C0[0] = a0;
              if (two) C0[1] = b0;
            }
          }
        }
      }
    }
    if (kU1 <= kU0) continue;
    // 2) spread every channel onto detector columns with its spectral profile, all stacked rows at
    // once, output-stationary: every detector column u gathers the (channel, weight) terms of the
    // channels in [kU0, kU1) whose profile reaches it, in increasing channel order (the order of
    // the channel-by-channel sum), and adds them to its rows in registers (zeros add exact zeros)
    const ColumnSpectral* spec = &sc.colspec;
    if (plan.spectral) {
      spec = &sp.spectral[c];
    } else {
      build_column_spectral(ins.spectral_profiles(sp.s), ins.spectral_values(sp.s), c, nl, kU0, kU1, u_lo, u_hi, RS,
                            sc.colspec);
    }
    const std::size_t oA = kU0 * RS, oB = kU1 * RS;
    for (int um = spec->um0; um <= spec->um1; ++um) {
      const std::size_t m = static_cast<std::size_t>(um - spec->um0);
      const SpecTerm* t0 = spec->terms.data() + spec->start[m];
      const SpecTerm* t1 = spec->terms.data() + spec->start[m + 1];
      if (plan.spectral && t0 < t1 && (t0->off < oA || (t1 - 1)->off >= oB)) {
        // a plan's lists cover all channels: [kU0, kU1) only
        t0 = std::lower_bound(t0, t1, oA, [](const SpecTerm& t, std::size_t v) { return t.off < v; });
        t1 = std::lower_bound(t0, t1, oB, [](const SpecTerm& t, std::size_t v) { return t.off < v; });
      }
      if (t0 == t1) continue;
      double* o = strip.data() + static_cast<std::size_t>(um - u_lo) * RS;
      const double* ctd = ct.data();
#if SLITSTEP_HAS_AVX512_KERNELS
      std::size_t rr = v512 ? spread_rows64_avx512(t0, t1, ctd, o, RS) : 0;
#else
      std::size_t rr = 0;
#endif
      for (; rr + 16 <= RS; rr += 16) {
        v4d s0 = load4(o + rr), s1 = load4(o + rr + 4), s2 = load4(o + rr + 8), s3 = load4(o + rr + 12);
        for (const SpecTerm* t = t0; t < t1; ++t) {
          const double* src = ctd + t->off + rr;
          s0 += load4(src) * t->y;
          s1 += load4(src + 4) * t->y;
          s2 += load4(src + 8) * t->y;
          s3 += load4(src + 12) * t->y;
        }
        store4(o + rr, s0);
        store4(o + rr + 4, s1);
        store4(o + rr + 8, s2);
        store4(o + rr + 12, s3);
      }
      for (; rr < RS; rr += 4) {
        v4d s0 = load4(o + rr);
        for (const SpecTerm* t = t0; t < t1; ++t) s0 += load4(ctd + t->off + rr) * t->y;
        store4(o + rr, s0);
      }
    }
    for (std::size_t k = kU0; k < kU1; ++k) std::fill(ct.begin() + static_cast<std::ptrdiff_t>(k * RS),
                                                       ct.begin() + static_cast<std::ptrdiff_t>((k + 1) * RS), 0.0);
  }
  // 3) the strip into the exposures (rows x output columns)
  for (std::size_t mi = 0; mi < M; ++mi) {
    double* sci = out[static_cast<std::size_t>(members[mi].q)].sci.data();
    for (int u = u_lo; u <= u_hi; ++u) {
      const int o = compact ? cs.map[static_cast<std::size_t>(u)] : u;
      if (o < 0) continue;
      const double* src = strip.data() + static_cast<std::size_t>(u - u_lo) * RS + mi * nvp;
      for (int r = 0; r < nv; ++r) sci[static_cast<std::size_t>(r) * nout + o] = src[r];
    }
  }
}

#pragma GCC diagnostic pop

// Every selected pointing from the (convolved) sky B, with o.plan or a plan built for the call.
void observe_core(const NirspecInstrument& ins, const double* B, const ObserveOptions& o, std::vector<Exposure>& out) {
  std::unique_ptr<ObservePlan::Impl> own;
  if (!o.plan) own = build_plan(ins, o, /*spectral=*/false);
  const ObservePlan::Impl& plan = o.plan ? o.plan->impl() : *own;
  out.resize(plan.sel.size());
  const int n = static_cast<int>(plan.sel.size());
  const int nthreads = o.threads > 0 ? o.threads : omp_get_max_threads();
  // the nonzero channel range [first, end) of every sky spectrum observe reads (first == end: none)
  const SpatialGrid& g = ins.sky_spatial();
  const std::size_t nl = ins.sky_spectral().size();
  const long npix = static_cast<long>(g.size());
  std::vector<int> nonzero(2 * static_cast<std::size_t>(npix), 0);
  const int nsteps = static_cast<int>(plan.steps.size());
#pragma omp parallel num_threads(nthreads)
  {
#pragma omp for schedule(static)
    for (long q = 0; q < npix; ++q) {
      std::size_t a = 0, b = nl;
      if (o.sky_ranges) {  // given: [first, last] -> [first, last + 1), empty when first > last
        const int f = (*o.sky_ranges)[2 * static_cast<std::size_t>(q)];
        const int l = (*o.sky_ranges)[2 * static_cast<std::size_t>(q) + 1];
        a = static_cast<std::size_t>(std::clamp(f, 0, static_cast<int>(nl)));
        b = l < f ? a : static_cast<std::size_t>(std::clamp(l + 1, static_cast<int>(a), static_cast<int>(nl)));
      } else {
        const double* sp = B + static_cast<std::size_t>(q) * nl;
        while (a < b && sp[a] == 0.0) ++a;
        while (b > a && sp[b - 1] == 0.0) --b;
      }
      nonzero[2 * static_cast<std::size_t>(q)] = static_cast<int>(a);
      nonzero[2 * static_cast<std::size_t>(q) + 1] = static_cast<int>(b);
    }
#pragma omp for schedule(static)
    for (int q = 0; q < n; ++q) init_exposure(ins, plan.sel[static_cast<std::size_t>(q)], plan.cs, out[q]);
    StepScratch sc;
#pragma omp for schedule(dynamic, 1)
    for (int gi = 0; gi < nsteps; ++gi)
      render_step(ins, plan, plan.steps[static_cast<std::size_t>(gi)], B, nonzero.data(), out, sc);
  }
}

// o.plan, if given, must be the plan of this call's instrument and selection.
void check_plan(const NirspecInstrument& ins, const ObserveOptions& o) {
  if (!o.plan) return;
  const ObservePlan::Impl& P = o.plan->impl();
  if (P.ins != &ins) throw InvalidOptions("ObserveOptions.plan: built for another NirspecInstrument object");
  if (P.rows != o.rows)
    throw InvalidOptions("ObserveOptions.plan: built with other row responses than ObserveOptions.rows");
  if (P.columns != o.columns)
    throw InvalidOptions("ObserveOptions.plan: built for other columns than ObserveOptions.columns");
  if (P.pointings != o.pointings)
    throw InvalidOptions("ObserveOptions.plan: built for other pointings than ObserveOptions.pointings");
}

}  // namespace

ObservePlan::ObservePlan(const NirspecInstrument& instrument, const ObserveOptions& options) {
  options.validate(instrument.nu());
  if (options.rows) check_row_responses(instrument, *options.rows);
  impl_ = build_plan(instrument, options, /*spectral=*/true);
  impl_->pointings = options.pointings;
  impl_->columns = options.columns;
}
ObservePlan::~ObservePlan() = default;
ObservePlan::ObservePlan(ObservePlan&&) noexcept = default;
ObservePlan& ObservePlan::operator=(ObservePlan&&) noexcept = default;

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

void check_row_responses(const NirspecInstrument& ins, const RowResponses& rr) {
  const std::size_t n = static_cast<std::size_t>(num_dither_slots(ins)) * ins.num_chunks();
  if (rr.profiles.size() != n || rr.values.size() != n)
    throw InvalidOptions("ObserveOptions.rows: " + std::to_string(rr.profiles.size()) + " row-response sets, the instrument has " +
                         std::to_string(n) + " (dither slots x PSF chunks); build them with fold_psf_rows");
}

RowResponses fold_psf_rows(const NirspecInstrument& ins, const std::vector<std::vector<double>>& y_taps,
                           double drop_relative) {
  const std::size_t nch = ins.num_chunks();
  if (y_taps.size() != nch)
    throw InvalidOptions("fold_psf_rows: " + std::to_string(y_taps.size()) + " tap sets for " + std::to_string(nch) +
                         " PSF chunks");
  for (const auto& h : y_taps)
    if (h.empty() || h.size() % 2 == 0)
      throw InvalidOptions("fold_psf_rows: a tap set has " + std::to_string(h.size()) + " taps (must be odd)");
  if (!(drop_relative >= 0.0 && drop_relative <= 1e-4))
    throw InvalidOptions("fold_psf_rows: drop_relative = " + std::to_string(drop_relative) + ": must be in [0, 1e-4]");
  const int ny = ins.sky_spatial().ny, nv = ins.nv();
  const int nd = num_dither_slots(ins);
  RowResponses out;
  out.profiles.resize(static_cast<std::size_t>(nd) * nch);
  out.values.resize(out.profiles.size());
  std::vector<double> F;  // ny x nv: Y'(j', r)
  for (int d = 0; d < nd; ++d)
    for (std::size_t ch = 0; ch < nch; ++ch) {
      const auto& prof = ins.row_profiles(d, ch);
      const auto& vals = ins.row_values(d, ch);
      const auto& h = y_taps[ch];
      const int H = static_cast<int>(h.size() / 2);
      F.assign(static_cast<std::size_t>(ny) * nv, 0.0);
      // C(r) = sum_j Y(j, r) B(j), B(j) = sum_t h[t + H] A(j - t)  =>  Y'(j', r) = sum_t Y(j' + t, r) h[t + H]
      for (const auto& rp : prof)
        for (int t = -H; t <= H; ++t) {
          const int jp = rp.j - t;
          if (jp < 0 || jp >= ny) continue;
          const double w = h[static_cast<std::size_t>(t + H)];
          for (int q = 0; q < rp.len; ++q)
            F[static_cast<std::size_t>(jp) * nv + static_cast<std::size_t>(rp.r0 + q)] += w * vals[rp.offset + static_cast<std::size_t>(q)];
        }
      double peak = 0.0;
      for (double v : F) peak = std::max(peak, std::abs(v));
      const double cut = drop_relative * peak;
      auto& P = out.profiles[static_cast<std::size_t>(d) * nch + ch];
      auto& V = out.values[static_cast<std::size_t>(d) * nch + ch];
      for (int jp = 0; jp < ny; ++jp) {
        const double* row = F.data() + static_cast<std::size_t>(jp) * nv;
        int a = 0, b = nv - 1;
        while (a <= b && !(std::abs(row[a]) > cut)) ++a;
        while (b >= a && !(std::abs(row[b]) > cut)) --b;
        if (a > b) continue;
        NirspecInstrument::RowProfile rp;
        rp.j = jp;
        rp.r0 = a;
        rp.len = b - a + 1;
        rp.offset = V.size();
        V.insert(V.end(), row + a, row + b + 1);
        P.push_back(rp);
      }
    }
  return out;
}

void observe_into(const NirspecInstrument& ins, const Cube& sky, const ObserveOptions& o, std::vector<Exposure>& out) {
  check_grids(ins, sky);
  o.validate(ins.nu());
  if (o.sky_ranges) throw InvalidOptions("observe_into: ObserveOptions.sky_ranges is for observe_convolved_into");
  if (o.rows)
    throw InvalidOptions("observe_into: ObserveOptions.rows (PSF-folded row responses) needs a sky convolved along x "
                         "(observe_convolved_into)");
  check_plan(ins, o);
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
  if (o.rows) check_row_responses(ins, *o.rows);
  if (o.sky_ranges && o.sky_ranges->size() != 2 * ins.sky_spatial().size())
    throw InvalidOptions("ObserveOptions.sky_ranges: " + std::to_string(o.sky_ranges->size()) + " values, expected " +
                         std::to_string(2 * ins.sky_spatial().size()) + " (2 per sky pixel)");
  const std::size_t n = ins.sky_spatial().size() * ins.sky_spectral().size();
  if (convolved_sci.size() != n)
    throw InvalidOptions("observe_convolved_into: the convolved sky has " + std::to_string(convolved_sci.size()) +
                         " values, expected " + std::to_string(n) + " (the instrument's sky grids)");
  o.validate(ins.nu());
  check_plan(ins, o);
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
