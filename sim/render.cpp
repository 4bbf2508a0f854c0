#include "sim/render.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "core/conv1d.hpp"
#include "core/normal_cdf.hpp"
#include "core/simd.hpp"
#include "core/units.hpp"

namespace slitstep {

namespace {

std::size_t li(LineId id) { return static_cast<std::size_t>(id); }

// ------------------------------------------------------------------------------------------
// Pixel integration of the (elliptical Sérsic) light profile.
// ------------------------------------------------------------------------------------------
constexpr double kGl3x[3] = {-0.7745966692414834, 0.0, 0.7745966692414834};
constexpr double kGl3w[3] = {5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0};

// Line ratios of the disk tabulated against de-projected radius (linear interpolation on a fine
// uniform grid; error ~ (dR)^2 ratio''/8, < 1e-9 relative for the default field).
struct RatioTable {
  double inv_dr = 0.0;
  int n = 0;
  int nlines = 0;
  std::vector<double> vals;      // n x nlines
  std::vector<unsigned> masks;   // clamp mask per node
  RatioTable(const GalaxyModel& m, const std::vector<LineId>& lines, double r_max) {
    n = 4097;
    nlines = static_cast<int>(lines.size());
    const double dr = r_max / (n - 1);
    inv_dr = 1.0 / dr;
    vals.resize(static_cast<std::size_t>(n) * nlines);
    masks.resize(n);
    for (int k = 0; k < n; ++k) {
      const ChemistryRatios cr = m.ratios_for_metallicity(m.metallicity(k * dr));
      masks[k] = cr.clamped_mask;
      for (int l = 0; l < nlines; ++l)
        vals[static_cast<std::size_t>(k) * nlines + l] = cr.ratio[static_cast<std::size_t>(lines[l])];
    }
  }
  // Adds w * ratio_l(r) to acc[l] for every line.
  void add(double r, double w, double* acc) const {
    double u = r * inv_dr;
    int k = static_cast<int>(u);
    if (k >= n - 1) { k = n - 2; u = n - 1; }
    const double f = u - k;
    const double* a = vals.data() + static_cast<std::size_t>(k) * nlines;
    const double* b = a + nlines;
    for (int l = 0; l < nlines; ++l) acc[l] += w * (a[l] + f * (b[l] - a[l]));
  }
  unsigned mask_at(double r) const {
    const int k = std::min(static_cast<int>(r * inv_dr + 0.5), n - 1);
    return masks[k];
  }
};

// Pixel integration of the (elliptical Sérsic) light profile, optionally weighted by the disk's
// line ratios: acc[0] += \int I, acc[1 + l] += \int I ratio_l(R).
class ProfileIntegrator {
 public:
  ProfileIntegrator(const GalaxyModel& m, double re, bool continuum, const RatioTable* table)
      : m_(m), re_(re), continuum_(continuum), n_(m.sersic_n()), bn_(m.sersic_bn()),
        q_(m.axis_ratio()), table_(table) {}

  /// Integral over [x0,x1]x[y0,y1] (galaxy-centred offsets, arcsec), added to acc.
  void pixel(double x0, double x1, double y0, double y1, double* acc) const {
    double xs[3] = {x0, x1, x1}, ys[3] = {y0, y1, y1};
    int nxs = 1, nys = 1;
    if (x0 < 0.0 && x1 > 0.0) { xs[1] = 0.0; xs[2] = x1; nxs = 2; }
    if (y0 < 0.0 && y1 > 0.0) { ys[1] = 0.0; ys[2] = y1; nys = 2; }
    for (int a = 0; a < nxs; ++a)
      for (int b = 0; b < nys; ++b) {
        const double ax = xs[a], bx = (nxs == 2) ? xs[a + 1] : x1;
        const double ay = ys[b], by = (nys == 2) ? ys[b + 1] : y1;
        const bool origin_corner = (ax == 0.0 || bx == 0.0) && (ay == 0.0 || by == 0.0);
        if (origin_corner) corner(ax, bx, ay, by, 0, acc);
        else cell(ax, bx, ay, by, acc);
      }
  }

 private:
  // Local e-folding length of the profile at elliptical radius r.
  double scale(double r) const {
    if (n_ == 1.0) return re_ / bn_;
    if (!(r > 0.0)) return n_ < 1.0 ? 1e300 : 0.0;
    return n_ * re_ * std::pow(r / re_, 1.0 - 1.0 / n_) / bn_;
  }
  void gl3(double x0, double x1, double y0, double y1, double* acc) const {
    const double hx = 0.5 * (x1 - x0), mx = 0.5 * (x1 + x0);
    const double hy = 0.5 * (y1 - y0), my = 0.5 * (y1 + y0);
    const double area = hx * hy;
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) {
        const double r = m_.disk_coords_offset(mx + hx * kGl3x[a], my + hy * kGl3x[b]).r;
        const double w = kGl3w[a] * kGl3w[b] * area * (continuum_ ? m_.continuum_profile(r) : m_.disk_profile(r));
        acc[0] += w;
        if (table_) table_->add(r, w, acc + 1);
      }
  }
  // A rectangle not containing the origin in its interior: s x s Gauss-Legendre 3x3 cells, with
  // s chosen so that each cell is smaller than the local e-folding length along the minor axis.
  void cell(double x0, double x1, double y0, double y1, double* acc) const {
    const double dxn = std::max({x0, -x1, 0.0}), dyn = std::max({y0, -y1, 0.0});
    const double dxf = std::max(std::fabs(x0), std::fabs(x1)), dyf = std::max(std::fabs(y0), std::fabs(y1));
    const double d_near = std::sqrt(dxn * dxn + dyn * dyn);       // elliptical r >= d
    const double r_far = std::sqrt(dxf * dxf + dyf * dyf) / q_;   // elliptical r <= d / q
    const double ell = n_ >= 1.0 ? scale(d_near) : scale(r_far);
    const double size = std::max(x1 - x0, y1 - y0);
    int s = 1;
    const double need = size / (q_ * ell);
    if (need > 1.0) s = need > 32.0 ? 32 : static_cast<int>(std::ceil(need));
    if (s == 1) return gl3(x0, x1, y0, y1, acc);
    const double hx = (x1 - x0) / s, hy = (y1 - y0) / s;
    for (int a = 0; a < s; ++a)
      for (int b = 0; b < s; ++b) gl3(x0 + a * hx, x0 + (a + 1) * hx, y0 + b * hy, y0 + (b + 1) * hy, acc);
  }
  // A rectangle with the origin (the cusp) at one corner: geometric refinement toward it.
  void corner(double x0, double x1, double y0, double y1, int depth, double* acc) const {
    const double size = std::max(x1 - x0, y1 - y0);
    if (depth > 40 || size < 1e-7 * re_) return gl3(x0, x1, y0, y1, acc);
    const double xm = 0.5 * (x0 + x1), ym = 0.5 * (y0 + y1);
    const double xa[2][2] = {{x0, xm}, {xm, x1}}, ya[2][2] = {{y0, ym}, {ym, y1}};
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const double ax = xa[a][0], bx = xa[a][1], ay = ya[b][0], by = ya[b][1];
        const bool touches = (ax == 0.0 || bx == 0.0) && (ay == 0.0 || by == 0.0);
        if (touches) corner(ax, bx, ay, by, depth + 1, acc);
        else cell(ax, bx, ay, by, acc);
      }
  }

  const GalaxyModel& m_;
  double re_;
  bool continuum_;
  double n_, bn_, q_;
  const RatioTable* table_;
};

// Fraction of a unit Gaussian (centre c, sigma s) in [a, b].
double gauss_interval(double a, double b, double c, double s) {
  const double k = 1.0 / (std::sqrt(2.0) * s);
  return 0.5 * (std::erf((b - c) * k) - std::erf((a - c) * k));
}

struct RenderLine {
  LineId id;
  int window;
  double lambda_sys_um;  // observed wavelength at v = 0
};

struct WindowInfo {
  double lower_edge_um;
  double step_um;
  double inv_step;  // 1 / step_um
  int n;
  std::size_t offset;
};

// ------------------------------------------------------------------------------------------
// The normal CDF at the channel edges of a line profile, bit-identical to NormalCdfTable.
// ------------------------------------------------------------------------------------------
// The core table (core/normal_cdf.hpp) is evaluated one point at a time; here the same nodes
// are stored as rows {cdf_k, pdf_k, cdf_k+1, pdf_k+1} so that four points are interpolated
// at once with AVX2 (when the CPU has it), with exactly the same floating-point operations in
// the same order (no FMA), hence the same values. The rows are rebuilt from the core formulas
// and checked against the core table at every node and every mid-interval point at
// construction; if anything differs the scalar core table is used instead.
// One line profile of add_line from t0 on: channel c = 0 .. nch - 1 (out[c]) lies between the
// edges t0 + c dt and t0 + (c + 1) dt (units of sigma); amp / step is the flux density scale.
struct Profile {
  double t0, dt, amp, step;
  long nch;
  double* out;
};

#if defined(__x86_64__) || defined(__i386__)
// p[m] = Phi(t0 + m dt) for m = 0 .. count - 1 rounded up to a multiple of 4 (p 32-byte
// aligned), four at a time with AVX2 only (no FMA: every product and sum is rounded as in
// NormalCdfTable::operator(), so the values are the same bit for bit).
__attribute__((target("avx2"))) void cdf_edges_avx2(const double* rows, double t0, double dt, long count,
                                                     double* p) {
  using T = NormalCdfTable;
  const __m256d vt0 = _mm256_set1_pd(t0), vdt = _mm256_set1_pd(dt);
  const __m256d kt = _mm256_set1_pd(T::kT), nkt = _mm256_set1_pd(-T::kT), per = _mm256_set1_pd(T::kPerUnit);
  const __m256d one = _mm256_set1_pd(1.0), two = _mm256_set1_pd(2.0), three = _mm256_set1_pd(3.0);
  const __m256d four = _mm256_set1_pd(4.0);
  const __m128i kmax = _mm_set1_epi32(T::kN - 2), kmin = _mm_setzero_si128();
  __m256d vm = _mm256_set_pd(3.0, 2.0, 1.0, 0.0);
  // t is monotonic in m: if the first and the last computed edge are strictly inside
  // (-kT, kT), so are all (the usual case: the profile spans ±n_sigma <= 8).
  const long last = (count + 3) / 4 * 4 - 1;
  const bool inside = t0 > -T::kT && t0 < T::kT && t0 + last * dt > -T::kT && t0 + last * dt < T::kT;
  for (long m = 0; m < count; m += 4, vm = _mm256_add_pd(vm, four)) {
    const __m256d t = _mm256_add_pd(vt0, _mm256_mul_pd(vm, vdt));  // t0 + m * dt
    const __m256d u = _mm256_mul_pd(_mm256_add_pd(t, kt), per);
    // static_cast<int> truncates; clamp to the last interval (and, for lanes replaced by 0
    // below, to the first, so that every load is inside the table).
    const __m128i k = _mm_max_epi32(_mm_min_epi32(_mm256_cvttpd_epi32(u), kmax), kmin);
    const __m256d f = _mm256_sub_pd(u, _mm256_cvtepi32_pd(k));
    const __m256d f2 = _mm256_mul_pd(f, f), f3 = _mm256_mul_pd(f2, f);
    const __m256d two_f3 = _mm256_mul_pd(two, f3), three_f2 = _mm256_mul_pd(three, f2);
    const __m256d h00 = _mm256_add_pd(_mm256_sub_pd(two_f3, three_f2), one);
    const __m256d h10 = _mm256_add_pd(_mm256_sub_pd(f3, _mm256_mul_pd(two, f2)), f);
    const __m256d h01 = _mm256_sub_pd(three_f2, two_f3);  // -2 f3 + 3 f2, exactly (negation is exact)
    const __m256d h11 = _mm256_sub_pd(f3, f2);
    alignas(16) int ki[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(ki), k);
    const __m256d r0 = _mm256_loadu_pd(rows + 4 * static_cast<std::size_t>(ki[0]));
    const __m256d r1 = _mm256_loadu_pd(rows + 4 * static_cast<std::size_t>(ki[1]));
    const __m256d r2 = _mm256_loadu_pd(rows + 4 * static_cast<std::size_t>(ki[2]));
    const __m256d r3 = _mm256_loadu_pd(rows + 4 * static_cast<std::size_t>(ki[3]));
    const __m256d a01 = _mm256_unpacklo_pd(r0, r1), b01 = _mm256_unpackhi_pd(r0, r1);  // c0 c0 c1 c1 | d0 d0 d1 d1
    const __m256d a23 = _mm256_unpacklo_pd(r2, r3), b23 = _mm256_unpackhi_pd(r2, r3);
    const __m256d c0 = _mm256_permute2f128_pd(a01, a23, 0x20), c1 = _mm256_permute2f128_pd(a01, a23, 0x31);
    const __m256d d0 = _mm256_permute2f128_pd(b01, b23, 0x20), d1 = _mm256_permute2f128_pd(b01, b23, 0x31);
    __m256d v = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(h00, c0), _mm256_mul_pd(h10, d0)),
                                            _mm256_mul_pd(h01, c1)),
                              _mm256_mul_pd(h11, d1));
    if (!inside) {  // Phi = 0 at t <= -kT, 1 at t >= kT, as in NormalCdfTable
      v = _mm256_blendv_pd(v, one, _mm256_cmp_pd(t, kt, _CMP_GE_OQ));
      v = _mm256_blendv_pd(v, _mm256_setzero_pd(), _mm256_cmp_pd(t, nkt, _CMP_LE_OQ));
    }
    _mm256_store_pd(p + m, v);
  }
}

// GCC 12's avx512fintrin.h initialises "undefined" vectors from themselves (GCC bug 105593):
// silence its false -Wuninitialized for these two kernels.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// The normal CDF at the edges t0 + m dt (m = 8 lanes starting at vm) with AVX-512: the
// operations of cdf_edges_avx2 (hence of NormalCdfTable::operator()), eight edges at a time.
// (Vector arguments by reference: no vector-ABI dependence on the translation unit's ISA.)
__attribute__((target("avx512f"), optimize("fp-contract=off"), always_inline)) inline void cdf8_avx512(const double* pairs, const __m512d& vm,
                                                                        const __m512d& vt0, const __m512d& vdt,
                                                                        bool inside, __m512d& result) {
  using T = NormalCdfTable;
  const __m512d kt = _mm512_set1_pd(T::kT), nkt = _mm512_set1_pd(-T::kT), per = _mm512_set1_pd(T::kPerUnit);
  const __m512d one = _mm512_set1_pd(1.0), two = _mm512_set1_pd(2.0), three = _mm512_set1_pd(3.0);
  const __m512d t = _mm512_add_pd(vt0, _mm512_mul_pd(vm, vdt));  // t0 + m * dt
  const __m512d u = _mm512_mul_pd(_mm512_add_pd(t, kt), per);
  const __m256i k = _mm256_max_epi32(_mm256_min_epi32(_mm512_cvttpd_epi32(u), _mm256_set1_epi32(T::kN - 2)),
                                     _mm256_setzero_si256());
  const __m512d f = _mm512_sub_pd(u, _mm512_cvtepi32_pd(k));
  const __m512d f2 = _mm512_mul_pd(f, f), f3 = _mm512_mul_pd(f2, f);
  const __m512d two_f3 = _mm512_mul_pd(two, f3), three_f2 = _mm512_mul_pd(three, f2);
  const __m512d h00 = _mm512_add_pd(_mm512_sub_pd(two_f3, three_f2), one);
  const __m512d h10 = _mm512_add_pd(_mm512_sub_pd(f3, _mm512_mul_pd(two, f2)), f);
  const __m512d h01 = _mm512_sub_pd(three_f2, two_f3);
  const __m512d h11 = _mm512_sub_pd(f3, f2);
  alignas(32) int ki[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(ki), k);
  __asm__("" : "+m"(ki));  // the indices are read back from memory (no vector extractions)
  const __m512d z04 = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(pairs + 2 * static_cast<std::size_t>(ki[0]))),
                                         _mm256_loadu_pd(pairs + 2 * static_cast<std::size_t>(ki[4])), 1);
  const __m512d z15 = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(pairs + 2 * static_cast<std::size_t>(ki[1]))),
                                         _mm256_loadu_pd(pairs + 2 * static_cast<std::size_t>(ki[5])), 1);
  const __m512d z26 = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(pairs + 2 * static_cast<std::size_t>(ki[2]))),
                                         _mm256_loadu_pd(pairs + 2 * static_cast<std::size_t>(ki[6])), 1);
  const __m512d z37 = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(pairs + 2 * static_cast<std::size_t>(ki[3]))),
                                         _mm256_loadu_pd(pairs + 2 * static_cast<std::size_t>(ki[7])), 1);
  // lo01 = {c0 c1 c0' c1' c4 c5 c4' c5'} (c = cdf_k, c' = cdf_k+1 of the edge's row), hi: pdf.
  const __m512d lo01 = _mm512_unpacklo_pd(z04, z15), hi01 = _mm512_unpackhi_pd(z04, z15);
  const __m512d lo23 = _mm512_unpacklo_pd(z26, z37), hi23 = _mm512_unpackhi_pd(z26, z37);
  const __m512i i0 = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0), i1 = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  const __m512d c0 = _mm512_permutex2var_pd(lo01, i0, lo23), c1 = _mm512_permutex2var_pd(lo01, i1, lo23);
  const __m512d d0 = _mm512_permutex2var_pd(hi01, i0, hi23), d1 = _mm512_permutex2var_pd(hi01, i1, hi23);
  __m512d v = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(_mm512_mul_pd(h00, c0), _mm512_mul_pd(h10, d0)),
                                          _mm512_mul_pd(h01, c1)),
                            _mm512_mul_pd(h11, d1));
  if (!inside) {
    v = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(t, kt, _CMP_GE_OQ), v, one);
    v = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(t, nkt, _CMP_LE_OQ), v, _mm512_setzero_pd());
  }
  result = v;
}

// out[c] += (Phi(t0 + (c + 1) dt) - Phi(t0 + c dt)) * scale for c = 0 .. nch - 1, the CDF values
// as in cdf8_avx512 and the difference and sum as in add_differences_avx2, in one pass (no
// buffer of edge values).
__attribute__((target("avx512f"), optimize("fp-contract=off"))) void add_cdf_differences_avx512(const double* pairs, double t0, double dt,
                                                                   long nch, double scale, double* out) {
  using T = NormalCdfTable;
  const __m512d vt0 = _mm512_set1_pd(t0), vdt = _mm512_set1_pd(dt), vscale = _mm512_set1_pd(scale);
  const __m512d eight = _mm512_set1_pd(8.0);
  const long last = (nch + 7) / 8 * 8 + 7;  // the last edge computed
  const bool inside = t0 > -T::kT && t0 < T::kT && t0 + last * dt > -T::kT && t0 + last * dt < T::kT;
  __m512d vm = _mm512_set_pd(7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0);
  __m512d a, n;
  cdf8_avx512(pairs, vm, vt0, vdt, inside, a);
  const __m512i next1 = _mm512_set_epi64(8, 7, 6, 5, 4, 3, 2, 1);
  for (long c = 0; c < nch; c += 8) {
    vm = _mm512_add_pd(vm, eight);
    cdf8_avx512(pairs, vm, vt0, vdt, inside, n);
    const __m512d b = _mm512_permutex2var_pd(a, next1, n);  // edges c + 1 .. c + 8
    const __m512d d = _mm512_mul_pd(_mm512_sub_pd(b, a), vscale);
    if (c + 8 <= nch) {
      _mm512_storeu_pd(out + c, _mm512_add_pd(_mm512_loadu_pd(out + c), d));
    } else {
      const __mmask8 mk = static_cast<__mmask8>((1u << (nch - c)) - 1u);
      _mm512_mask_storeu_pd(out + c, mk, _mm512_add_pd(_mm512_maskz_loadu_pd(mk, out + c), d));
    }
    a = n;
  }
}

constexpr long kProfileBuf = 256;  // edges of a profile buffer (a multiple of 8)

// Pass 1 (AVX-512): the CDF at the nch + 1 <= kProfileBuf edges into p (64-byte aligned), eight
// edges per vector (independent iterations). Returns the number of vectors.
__attribute__((target("avx512f"), optimize("fp-contract=off"), always_inline)) inline long profile_cdf_avx512(
    const double* pairs, const Profile& pr, double* p) {
  using T = NormalCdfTable;
  const long nvec = (pr.nch + 1 + 7) / 8;  // vectors of edges 0 .. nch
  const double t0 = pr.t0, dt = pr.dt;
  const __m512d vt0 = _mm512_set1_pd(t0), vdt = _mm512_set1_pd(dt), eight = _mm512_set1_pd(8.0);
  const long last = nvec * 8 - 1;
  const bool inside = t0 > -T::kT && t0 < T::kT && t0 + last * dt > -T::kT && t0 + last * dt < T::kT;
  __m512d vm = _mm512_set_pd(7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0);
  for (long v = 0; v < nvec; ++v, vm = _mm512_add_pd(vm, eight)) {
    __m512d r;
    cdf8_avx512(pairs, vm, vt0, vdt, inside, r);
    _mm512_store_pd(p + 8 * v, r);
  }
  return nvec;
}

// Pass 2: out[c] += (p[c + 1] - p[c]) * (amp / ((p[nch] - p[0]) * step)), the operations of the
// scalar path. Returns false (nothing added) if the range holds no probability (norm <= 0).
__attribute__((target("avx512f"), optimize("fp-contract=off"), always_inline)) inline bool profile_add_avx512(
    const Profile& pr, const double* p, long nvec) {
  const long nch = pr.nch;
  double* const out = pr.out;
  const double norm = p[nch] - p[0];
  if (!(norm > 0.0)) return false;
  const __m512d vscale = _mm512_set1_pd(pr.amp / (norm * pr.step));
  const __m512i next1 = _mm512_set_epi64(8, 7, 6, 5, 4, 3, 2, 1);
  for (long c = 0; c < nch; c += 8) {
    const __m512d a = _mm512_load_pd(p + c);
    const __m512d n = c + 8 < nvec * 8 ? _mm512_load_pd(p + c + 8) : _mm512_setzero_pd();
    const __m512d d = _mm512_mul_pd(_mm512_sub_pd(_mm512_permutex2var_pd(a, next1, n), a), vscale);
    if (c + 8 <= nch) {
      _mm512_storeu_pd(out + c, _mm512_add_pd(_mm512_loadu_pd(out + c), d));
    } else {
      const __mmask8 mk = static_cast<__mmask8>((1u << (nch - c)) - 1u);
      _mm512_mask_storeu_pd(out + c, mk, _mm512_add_pd(_mm512_maskz_loadu_pd(mk, out + c), d));
    }
  }
  return true;
}

// Adds n <= kNumLines profiles (each nch + 1 <= kProfileBuf) in their order: first every CDF
// pass, then the additions (the same values and sums as one profile after the other; the passes
// of different profiles overlap in the CPU). added[i] = false if profile i added nothing.
__attribute__((target("avx512f"), optimize("fp-contract=off"))) void add_profiles_avx512(
    const double* pairs, const Profile* prs, int n, bool* added) {
  alignas(64) double p[kNumLines][kProfileBuf];
  long nvec[kNumLines];
  for (int i = 0; i < n; ++i) nvec[i] = profile_cdf_avx512(pairs, prs[i], p[i]);
  for (int i = 0; i < n; ++i) added[i] = profile_add_avx512(prs[i], p[i], nvec[i]);
}
#pragma GCC diagnostic pop
#endif

class CdfRows {
 public:
  using T = NormalCdfTable;
  static constexpr int kRows = T::kN - 1;
  CdfRows() : rows_(static_cast<std::size_t>(kRows) * 4) {
    std::vector<double> c(T::kN), d(T::kN);
    for (int k = 0; k < T::kN; ++k) {  // the formulas of NormalCdfTable's constructor
      const double t = -T::kT + k / T::kPerUnit;
      c[k] = 0.5 * std::erfc(-t / std::sqrt(2.0));
      d[k] = std::exp(-0.5 * t * t) / std::sqrt(2.0 * kPi) / T::kPerUnit;
    }
    pairs_.resize(2 * static_cast<std::size_t>(T::kN));
    for (int k = 0; k < T::kN; ++k) {
      pairs_[2 * static_cast<std::size_t>(k)] = c[k];
      pairs_[2 * static_cast<std::size_t>(k) + 1] = d[k];
    }
    for (int k = 0; k < kRows; ++k) {
      double* r = rows_.data() + static_cast<std::size_t>(k) * 4;
      r[0] = c[k]; r[1] = d[k]; r[2] = c[k + 1]; r[3] = d[k + 1];
    }
    const NormalCdfTable& ref = normal_cdf_table();
    ok_ = true;
    for (int k = 0; k < 2 * T::kN && ok_; ++k) {
      const double t = -T::kT + 0.5 * k / T::kPerUnit;
      ok_ = std::bit_cast<std::uint64_t>(scalar(t)) == std::bit_cast<std::uint64_t>(ref(t));
    }
#if defined(__x86_64__) || defined(__i386__)
    // The vector kernel must give the same values too (it would not if the build let the
    // compiler fuse multiply-adds differently): checked on the nodes, the mid-points, an
    // off-grid sweep across both ends and one strictly inside (the branch without the end
    // tests).
    if (ok_ && __builtin_cpu_supports("avx2")) {
      avx2_ = true;
      const struct { double t0, dt; long n; } sweeps[] = {
          {-T::kT, 0.5 / T::kPerUnit, 2 * T::kN}, {-8.7, 0.0137, 1300}, {-8.4, 0.0131, 1280}};
      for (const auto& sw : sweeps) {
        std::vector<double> buf(static_cast<std::size_t>(sw.n) + 8);
        double* p = buf.data() + (4 - (reinterpret_cast<std::uintptr_t>(buf.data()) / 8) % 4) % 4;
        cdf_edges_avx2(rows_.data(), sw.t0, sw.dt, sw.n, p);
        for (long m = 0; m < sw.n && avx2_; ++m)
          avx2_ = std::bit_cast<std::uint64_t>(p[m]) == std::bit_cast<std::uint64_t>(ref(sw.t0 + m * sw.dt));
      }
    }
    // The fused AVX-512 kernel (CDF and differences in one pass) likewise, on the same sweeps
    // (several lengths for the masked tails), against the scalar formula of add_line.
    if (avx2_ && __builtin_cpu_supports("avx512f")) {
      avx512_ = true;
      const struct { double t0, dt; long n; } sweeps[] = {{-T::kT, 0.5 / T::kPerUnit, 2 * T::kN - 1},
                                                          {-8.7, 0.0137, 1299}, {-8.4, 0.0131, 1277},
                                                          {-6.1, 0.29, 37}, {-6.05, 0.31, 40}, {-0.3, 0.2, 3}};
      for (const auto& sw : sweeps) {
        const double scale = 0.7310585786300049;
        std::vector<double> out(static_cast<std::size_t>(sw.n) + 8), want(out.size());
        for (std::size_t c = 0; c < out.size(); ++c) out[c] = want[c] = 1e-3 * static_cast<double>(c % 17) - 0.005;
        add_cdf_differences_avx512(pairs_.data(), sw.t0, sw.dt, sw.n, scale, out.data());
        for (long c = 0; c < sw.n; ++c)
          want[c] += (ref(sw.t0 + (c + 1) * sw.dt) - ref(sw.t0 + c * sw.dt)) * scale;
        for (std::size_t c = 0; c < out.size() && avx512_; ++c)
          avx512_ = std::bit_cast<std::uint64_t>(out[c]) == std::bit_cast<std::uint64_t>(want[c]);
      }
      // The buffered kernel (profiles up to kProfileBuf edges), including its scale.
      const struct { double t0, dt; long n; } profiles[] = {
          {-6.1, 0.29, 37}, {-6.05, 0.31, 40}, {-0.3, 0.2, 3}, {-8.7, 0.07, 249}, {6.0, 0.1, 40}, {-6.0, 0.3, 0}};
      for (const auto& pr : profiles) {
        const double amp = 3.3e-17, step = 2.1e-4;
        std::vector<double> out(static_cast<std::size_t>(pr.n) + 8), want(out.size());
        for (std::size_t c = 0; c < out.size(); ++c) out[c] = want[c] = 1e-16 * static_cast<double>(c % 13);
        const Profile prof{pr.t0, pr.dt, amp, step, pr.n, out.data()};
        bool added = false;
        add_profiles_avx512(pairs_.data(), &prof, 1, &added);
        const double norm = ref(pr.t0 + static_cast<double>(pr.n) * pr.dt) - ref(pr.t0 + 0.0 * pr.dt);
        if (added != (norm > 0.0)) avx512_ = false;
        if (norm > 0.0) {
          const double scale = amp / (norm * step);
          for (long c = 0; c < pr.n; ++c)
            want[c] += (ref(pr.t0 + (c + 1) * pr.dt) - ref(pr.t0 + c * pr.dt)) * scale;
        }
        for (std::size_t c = 0; c < out.size() && avx512_; ++c)
          avx512_ = std::bit_cast<std::uint64_t>(out[c]) == std::bit_cast<std::uint64_t>(want[c]);
      }
    }
#endif
  }
  bool ok() const { return ok_; }
  bool avx2() const { return avx2_; }
  bool avx512() const { return avx512_; }
  const double* rows() const { return rows_.data(); }
  const double* pairs() const { return pairs_.data(); }
  // The operations of NormalCdfTable::operator(), on the rows.
  double scalar(double t) const {
    if (t <= -T::kT) return 0.0;
    if (t >= T::kT) return 1.0;
    const double u = (t + T::kT) * T::kPerUnit;
    int k = static_cast<int>(u);
    if (k >= T::kN - 1) k = T::kN - 2;
    const double f = u - k;
    const double f2 = f * f, f3 = f2 * f;
    const double h00 = 2 * f3 - 3 * f2 + 1, h10 = f3 - 2 * f2 + f, h01 = -2 * f3 + 3 * f2, h11 = f3 - f2;
    const double* r = rows_.data() + static_cast<std::size_t>(k) * 4;
    return h00 * r[0] + h10 * r[1] + h01 * r[2] + h11 * r[3];
  }

 private:
  std::vector<double> rows_;
  std::vector<double> pairs_;  // {cdf_k, pdf_k} for k = 0 .. kN - 1: row k = pairs_ + 2 k, half the size
  bool ok_ = false, avx2_ = false, avx512_ = false;
};

const CdfRows& cdf_rows() {
  static const CdfRows rows;
  return rows;
}

#if defined(__x86_64__) || defined(__i386__)
// out[c] += (p[c + 1] - p[c]) * scale for c = 0 .. nch - 1 (p 32-byte aligned, readable up to
// index nch rounded up to a multiple of 4); aligned loads only (no load straddles two of the
// stores that just wrote p).
__attribute__((target("avx2"))) void add_differences_avx2(const double* p, long nch, double scale, double* out) {
  const __m256d vscale = _mm256_set1_pd(scale);
  long c = 0;
  if (nch >= 4) {
    __m256d a = _mm256_load_pd(p);
    for (; c + 4 <= nch; c += 4) {
      const __m256d next = _mm256_load_pd(p + c + 4);
      const __m256d b = _mm256_permute4x64_pd(_mm256_blend_pd(a, next, 0x1), 0x39);  // p[c+1 .. c+4]
      _mm256_storeu_pd(out + c, _mm256_add_pd(_mm256_loadu_pd(out + c), _mm256_mul_pd(_mm256_sub_pd(b, a), vscale)));
      a = next;
    }
  }
  for (; c < nch; ++c) out[c] += (p[c + 1] - p[c]) * scale;
}
#endif

// dst[0 .. n) = src[0 .. n) (src 16-byte aligned) with non-temporal stores when dst is 16-byte
// aligned (a plain copy otherwise); stream_fence() orders them before the stores of other threads
// are read (called by every thread at the end of its share of the cube).
inline void stream_spectrum(const double* src, std::size_t n, double* dst) {
#if defined(__x86_64__)
  if (reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) {
    std::size_t k = 0;
    for (; k + 2 <= n; k += 2) _mm_stream_pd(dst + k, _mm_load_pd(src + k));
    if (k < n) dst[k] = src[k];
    return;
  }
#endif
  std::copy(src, src + n, dst);
}
#if defined(__x86_64__)
// dst[k] = w * src[k] for k < n (the scalar products, eight at a time).
__attribute__((target("avx512f"))) void scale_avx512(const double* src, double w, std::size_t n, double* dst) {
  const __m512d vw = _mm512_set1_pd(w);
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) _mm512_storeu_pd(dst + k, _mm512_mul_pd(vw, _mm512_loadu_pd(src + k)));
  if (k < n) {
    const __mmask8 mk = static_cast<__mmask8>((1u << (n - k)) - 1u);
    _mm512_mask_storeu_pd(dst + k, mk, _mm512_mul_pd(vw, _mm512_maskz_loadu_pd(mk, src + k)));
  }
}
// stream_spectrum with 64-byte non-temporal stores (dst 8-byte aligned; the ends one double at
// a time, also non-temporal).
__attribute__((target("avx512f"))) void stream_avx512(const double* src, std::size_t n, double* dst) {
  std::size_t k = 0;
  auto one = [&](std::size_t kk) {
    long long bits;
    std::memcpy(&bits, src + kk, sizeof bits);
    _mm_stream_si64(reinterpret_cast<long long*>(dst + kk), bits);
  };
  for (; k < n && reinterpret_cast<std::uintptr_t>(dst + k) % 64 != 0; ++k) one(k);
  for (; k + 8 <= n; k += 8) _mm512_stream_pd(dst + k, _mm512_loadu_pd(src + k));
  for (; k < n; ++k) one(k);
}
#endif
inline void stream_fence() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

// static_cast<long>(std::floor(x)) without the libm call (x is far inside the range of long).
inline long floor_long(double x) {
  const long k = static_cast<long>(x);  // truncates toward zero
  return static_cast<double>(k) > x ? k - 1 : k;
}

// The channel range and the edge grid of a line component (flux surface density `amp`, centre
// lam_c, sigma sig) in window w. Returns false if the range is empty (nothing to add); ok is
// false if the ±n_sigma range was cut by the window edge.
inline bool prepare_line(double* spec, const WindowInfo& w, double lam_c, double sig, double amp, double nsig,
                         Profile& pr, bool& ok) {
  const double lo = lam_c - nsig * sig, hi = lam_c + nsig * sig;
  long k0 = floor_long((lo - w.lower_edge_um) * w.inv_step);
  long k1 = floor_long((hi - w.lower_edge_um) * w.inv_step);
  ok = true;
  if (k0 < 0) { k0 = 0; ok = false; }
  if (k1 > w.n - 1) { k1 = w.n - 1; ok = false; }
  if (k1 < k0) return false;
  const double inv_sig = 1.0 / sig;
  // Channel k0 + c lies between the edges c and c + 1 (c = 0 .. nch - 1), edge m at t0 + m dt.
  pr.t0 = (w.lower_edge_um + k0 * w.step_um - lam_c) * inv_sig;
  pr.dt = w.step_um * inv_sig;
  pr.amp = amp;
  pr.step = w.step_um;
  pr.nch = k1 - k0 + 1;
  pr.out = spec + w.offset + k0;
  return true;
}

// Adds a prepared profile, renormalised to its range. Returns false if nothing was added (no
// probability in the range).
inline bool add_prepared(const Profile& pr) {
  const double t0 = pr.t0, dt = pr.dt, amp = pr.amp, step = pr.step;
  const long nch = pr.nch;
  double* const out = pr.out;
  const CdfRows& tab = cdf_rows();
#if defined(__x86_64__) || defined(__i386__)
  if (tab.avx512()) {
    if (nch + 1 <= kProfileBuf) {
      bool added = false;
      add_profiles_avx512(tab.pairs(), &pr, 1, &added);
      return added;
    }
    // long profiles: one pass, the first and last edges as in the kernel (scalar() = the same values)
    const double norm = tab.scalar(t0 + static_cast<double>(nch) * dt) - tab.scalar(t0 + 0.0 * dt);
    if (!(norm > 0.0)) return false;
    add_cdf_differences_avx512(tab.pairs(), t0, dt, nch, amp / (norm * step), out);
    return true;
  }
  if (tab.avx2()) {
    constexpr long kStack = 512;
    alignas(32) double stack[kStack];
    std::vector<double> heap;
    const long n_alloc = (nch + 1 + 3) / 4 * 4 + 4;
    double* p = stack;
    if (n_alloc > kStack) {  // very wide profiles (fine channels): a 32-byte aligned heap buffer
      heap.resize(static_cast<std::size_t>(n_alloc) + 4);
      p = heap.data() + (4 - (reinterpret_cast<std::uintptr_t>(heap.data()) / 8) % 4) % 4;
    }
    cdf_edges_avx2(tab.rows(), t0, dt, nch + 1, p);
    const double norm = p[nch] - p[0];
    if (!(norm > 0.0)) return false;
    add_differences_avx2(p, nch, amp / (norm * step), out);
    return true;
  }
#endif
  // The same values one edge at a time (the rows if they reproduce the core table, else the
  // core table itself).
  const NormalCdfTable& core = normal_cdf_table();
  auto phi = [&](double t) { return tab.ok() ? tab.scalar(t) : core(t); };
  const double p_first = phi(t0);
  const double norm = phi(t0 + nch * dt) - p_first;
  if (!(norm > 0.0)) return false;
  const double scale = amp / (norm * step);
  double prev = p_first;
  for (long m = 1; m <= nch; ++m) {
    const double pv = phi(t0 + m * dt);
    out[m - 1] += (pv - prev) * scale;
    prev = pv;
  }
  return true;
}

// A line component: flux surface density `amp` (erg/s/cm^2/arcsec^2) spread as a Gaussian in
// wavelength (centre lam_c, sigma sig) over the channels of window w, renormalised to the
// computed range. Returns false if the ±n_sigma range was cut by the window edge.
inline bool add_line(double* spec, const WindowInfo& w, double lam_c, double sig, double amp, double nsig) {
  Profile pr;
  bool ok = true;
  if (!prepare_line(spec, w, lam_c, sig, amp, nsig, pr, ok)) return false;
  return add_prepared(pr) && ok;
}

double window_half_width(const GalaxyModel& m, const RenderOptions& o) {
  if (o.window_half_width_kms) return *o.window_half_width_kms;
  const auto& p = m.params();
  // sigma(R) is monotonic in R and R is a norm, so its extremes over the field are at the
  // centre or at a corner of the field.
  const double hx = 0.5 * o.fov_x_arcsec, hy = 0.5 * o.fov_y_arcsec;
  double smax = m.sigma_kms(0.0);
  for (double sx : {-hx, hx})
    for (double sy : {-hy, hy}) smax = std::max(smax, m.sigma_kms(m.disk_coords(sx, sy).r));
  for (const auto& c : m.clump_derived()) smax = std::max(smax, c.sigma_kms);
  if (p.agn.enabled) smax = std::max(smax, p.agn.sigma_kms);
  double vmax = std::fabs(p.v0_kms) + m.max_rotation_kms() * m.sin_i();
  for (const auto& c : m.clump_derived()) vmax = std::max(vmax, std::fabs(c.vlos_kms));
  return vmax + o.n_sigma * smax + o.window_padding_kms;
}

std::vector<LineId> selected_lines(const RenderOptions& o) {
  if (!o.lines.empty()) {
    std::vector<LineId> v = o.lines;
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }
  std::vector<LineId> v;
  for (const auto& l : emission_lines()) v.push_back(l.id);
  return v;
}


// ------------------------------------------------------------------------------------------
// The row filter (RowFilter): the kernels of PsfConvolver::apply_separable's x pass
// (instruments/psf.cpp pass_line; the shared kernels of core/conv1d.hpp), on one rendered row
// held in a per-thread buffer. The same taps, block sizes, tap order and operations, hence the
// same bits.
// ------------------------------------------------------------------------------------------

using conv1d::Tap;

// Filters output pixel i of one rendered row: in = the row's n spectra of nl channels (nonzero
// ranges [first, last]) -> o (nl channels) and its range [ofirst, olast]. taps: room for
// 2 hmax + 1 (hmax = the largest half-width). L = doubles per vector of the blocks
// (conv1d::conv_range): 4 in the SIMD clones, 8 in the AVX-512 variant; the same bits.
template <int L>
inline __attribute__((always_inline)) void filter_pixel_body(const double* in, const int* first, const int* last,
                                                             int n, int i, std::size_t nl, const RowFilter& f, int hmax,
                                                             double* __restrict o, int& ofirst, int& olast, Tap* taps) {
  const auto& h = f.taps;
  int lo, hi;
  const bool any = conv1d::begin_output(first, last, 0, 1, n, i, hmax, nl, o, lo, hi);
  ofirst = lo;
  olast = hi;
  if (!any) return;
  for (std::size_t c = 0; c < h.size(); ++c) {
    const int ka = std::max(lo, static_cast<int>(f.chunk_first[c])), kb = std::min(hi, static_cast<int>(f.chunk_end[c]) - 1);
    if (kb < ka) continue;
    Tap* te = conv1d::chunk_taps(in, first, last, 0, 1, n, i, nl, h[c], ka, kb, taps);
    if (te != taps) conv1d::conv_range<L>(taps, te, ka, kb, o);
  }
}

SLITSTEP_SIMD_CLONES
void filter_pixel(const double* in, const int* first, const int* last, int n, int i, std::size_t nl,
                  const RowFilter& f, int hmax, double* __restrict o, int& ofirst, int& olast, Tap* taps) {
  filter_pixel_body<4>(in, first, last, n, i, nl, f, hmax, o, ofirst, olast, taps);
}

#if SLITSTEP_HAS_AVX512_KERNELS
// filter_pixel with eight channels per vector (AVX-512F, no contraction; call only where the CPU
// has AVX-512F).
SLITSTEP_AVX512_KERNEL void filter_pixel_avx512(const double* in, const int* first, const int* last, int n, int i,
                                                std::size_t nl, const RowFilter& f, int hmax, double* __restrict o,
                                                int& ofirst, int& olast, Tap* taps) {
  filter_pixel_body<8>(in, first, last, n, i, nl, f, hmax, o, ofirst, olast, taps);
}
#endif

}  // namespace

// ------------------------------------------------------------------------------------------

void RenderOptions::validate() const {
  auto bad = [](const std::string& field, double v, const std::string& rule) {
    throw InvalidOptions("RenderOptions." + field + " = " + format_value(v) + ": " + rule);
  };
  if (!(pixel_arcsec > 0.0 && pixel_arcsec <= 1.0)) bad("pixel_arcsec", pixel_arcsec, "must be in (0, 1]");
  if (!(fov_x_arcsec >= pixel_arcsec && fov_x_arcsec <= 60.0))
    bad("fov_x_arcsec", fov_x_arcsec, "must be in [pixel_arcsec, 60]");
  if (!(fov_y_arcsec >= pixel_arcsec && fov_y_arcsec <= 60.0))
    bad("fov_y_arcsec", fov_y_arcsec, "must be in [pixel_arcsec, 60]");
  if (std::lround(fov_x_arcsec / pixel_arcsec) * std::lround(fov_y_arcsec / pixel_arcsec) > 4000000L)
    bad("fov_x_arcsec", fov_x_arcsec, "the field holds more than 4e6 fine pixels; use a larger pixel_arcsec");
  if (!(channel_kms >= 0.1 && channel_kms <= 1000.0)) bad("channel_kms", channel_kms, "must be in [0.1, 1000]");
  if (!(n_sigma >= 4.0 && n_sigma <= 8.0)) bad("n_sigma", n_sigma, "must be in [4, 8]");
  if (!(window_padding_kms >= 0.0 && window_padding_kms <= 20000.0))
    bad("window_padding_kms", window_padding_kms, "must be in [0, 20000]");
  if (window_half_width_kms && !(*window_half_width_kms > 0.0 && *window_half_width_kms <= 30000.0))
    bad("window_half_width_kms", *window_half_width_kms, "must be in (0, 30000]");
  if (!(continuum_window_half_A > 0.0 && continuum_window_half_A <= 500.0))
    bad("continuum_window_half_A", continuum_window_half_A, "must be in (0, 500]");
  if (threads < 0 || threads > 1024) bad("threads", threads, "must be in [0, 1024] (0 = OpenMP default)");
}

void RowFilter::validate(int nx, int ny, std::size_t nl) const {
  const std::size_t nc = taps.size();
  if (nc == 0) throw InvalidOptions("RowFilter.taps: no chunks; at least one is required");
  if (chunk_first.size() != nc || chunk_end.size() != nc)
    throw InvalidOptions("RowFilter.chunk_first / chunk_end: " + std::to_string(chunk_first.size()) + " / " +
                         std::to_string(chunk_end.size()) + " entries for " + std::to_string(nc) +
                         " chunks of taps: must be one per chunk");
  for (std::size_t c = 0; c < nc; ++c) {
    const std::size_t m = taps[c].size();
    if (m % 2 != 1)
      throw InvalidOptions("RowFilter.taps[" + std::to_string(c) + "]: " + std::to_string(m) +
                           " taps: must be an odd number (centre tap at the middle)");
    if (m > 2 * static_cast<std::size_t>(std::max(nx, 1)) + 1)
      throw InvalidOptions("RowFilter.taps[" + std::to_string(c) + "]: " + std::to_string(m) +
                           " taps: at most 2 nx + 1 = " + std::to_string(2 * nx + 1));
    for (std::size_t d = 0; d < m; ++d)
      if (!std::isfinite(taps[c][d]))
        throw InvalidOptions("RowFilter.taps[" + std::to_string(c) + "][" + std::to_string(d) +
                             "] = " + format_value(taps[c][d]) + ": must be finite");
    const std::size_t want_first = c == 0 ? 0 : chunk_end[c - 1];
    if (chunk_first[c] != want_first)
      throw InvalidOptions("RowFilter.chunk_first[" + std::to_string(c) + "] = " + std::to_string(chunk_first[c]) +
                           ": must be " + std::to_string(want_first) +
                           " (the chunks must cover the channels in order, without gaps)");
    if (!(chunk_end[c] > chunk_first[c]))
      throw InvalidOptions("RowFilter.chunk_end[" + std::to_string(c) + "] = " + std::to_string(chunk_end[c]) +
                           ": must be > chunk_first = " + std::to_string(chunk_first[c]));
  }
  if (chunk_end.back() != nl)
    throw InvalidOptions("RowFilter.chunk_end[" + std::to_string(nc - 1) + "] = " + std::to_string(chunk_end.back()) +
                         ": the chunks must end at the cube's " + std::to_string(nl) + " channels");
  if (!columns_needed.empty() && columns_needed.size() != static_cast<std::size_t>(nx))
    throw InvalidOptions("RowFilter.columns_needed: " + std::to_string(columns_needed.size()) + " flags, the grid has " +
                         std::to_string(nx) + " columns (empty = all)");
  if (!rows_needed.empty() && rows_needed.size() != static_cast<std::size_t>(ny))
    throw InvalidOptions("RowFilter.rows_needed: " + std::to_string(rows_needed.size()) + " flags, the grid has " +
                         std::to_string(ny) + " rows (empty = all)");
}

SpatialGrid render_spatial_grid(const RenderOptions& o) {
  o.validate();
  const int nx = std::max(1, static_cast<int>(std::lround(o.fov_x_arcsec / o.pixel_arcsec)));
  const int ny = std::max(1, static_cast<int>(std::lround(o.fov_y_arcsec / o.pixel_arcsec)));
  return SpatialGrid::centred(nx, ny, o.pixel_arcsec);
}

WavelengthGrid render_wavelength_grid(const GalaxyModel& m, const RenderOptions& o) {
  o.validate();
  const double hw = window_half_width(m, o);
  const double z1 = 1.0 + m.params().redshift;
  struct Interval { double lo, hi; };
  std::vector<Interval> iv;
  for (LineId id : selected_lines(o)) {
    const double lc = line(id).rest_A * z1 / kAngstromPerUm;
    iv.push_back({lc * doppler_factor(-hw), lc * doppler_factor(hw)});
  }
  if (o.continuum_windows)
    for (double rest : {5500.0, 6500.0})
      iv.push_back({(rest - o.continuum_window_half_A) * z1 / kAngstromPerUm,
                    (rest + o.continuum_window_half_A) * z1 / kAngstromPerUm});
  std::sort(iv.begin(), iv.end(), [](const Interval& a, const Interval& b) { return a.lo < b.lo; });
  // Turn intervals into whole-channel windows; merge any that overlap after rounding.
  auto make = [&](const Interval& v) {
    const double mid = 0.5 * (v.lo + v.hi);
    const double step = mid * o.channel_kms / kSpeedOfLight_kms;
    const int n = std::max(1, static_cast<int>(std::ceil((v.hi - v.lo) / step - 1e-9)));
    return WavelengthWindow{mid - 0.5 * (n - 1) * step, step, n};
  };
  std::vector<Interval> merged;
  for (const auto& v : iv) {
    if (!merged.empty()) {
      const WavelengthWindow prev = make(merged.back());
      const WavelengthWindow cur = make(v);
      if (cur.lower_edge_um() <= prev.upper_edge_um() + 0.5 * prev.step_um) {
        merged.back().hi = std::max(merged.back().hi, v.hi);
        continue;
      }
    }
    merged.push_back(v);
  }
  // A merge can make a window grow into the next one: repeat until stable.
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t w = 1; w < merged.size(); ++w) {
      const WavelengthWindow a = make(merged[w - 1]), b = make(merged[w]);
      if (b.lower_edge_um() <= a.upper_edge_um() + 0.5 * a.step_um) {
        merged[w - 1].hi = std::max(merged[w - 1].hi, merged[w].hi);
        merged.erase(merged.begin() + static_cast<long>(w));
        changed = true;
        break;
      }
    }
  }
  std::vector<WavelengthWindow> windows;
  for (const auto& v : merged) windows.push_back(make(v));
  return WavelengthGrid::from_windows(std::move(windows));
}

// ------------------------------------------------------------------------------------------
// RenderWorkspace
// ------------------------------------------------------------------------------------------

namespace {
// A cache key: the bit patterns of the values a cached quantity is computed from.
class Key {
 public:
  Key& add(double v) { v_.push_back(std::bit_cast<std::uint64_t>(v)); return *this; }
  Key& add(long long v) { v_.push_back(static_cast<std::uint64_t>(v)); return *this; }
  Key& add(const std::optional<double>& v) { add(static_cast<long long>(v.has_value())); return add(v.value_or(0.0)); }
  bool operator==(const Key&) const = default;
  void clear() { v_.clear(); }

 private:
  std::vector<std::uint64_t> v_;
};
}  // namespace

struct RenderWorkspace::Impl {
  // Line-ratio table (valid while table_key matches) and its generation.
  std::optional<RatioTable> table;
  Key table_key;
  long long table_generation = 0;
  // Light maps (valid while light_key matches; the key includes the table generation).
  Key light_key;
  bool light_valid = false;
  std::vector<double> disk_acc, cont_light, disk_light;
  // Per-pixel disk geometry at the pixel centres (valid while kin_key matches): de-projected
  // radius, a / r (for r > 0), sigma(r) / c and the ratio table's clamp mask.
  Key kin_key;
  bool kin_valid = false;
  std::vector<double> kin_r, kin_ar, kin_sig;
  std::vector<unsigned> kin_mask;
  // Per-thread row buffers of the fused row filter (kept between calls: no allocation).
  std::vector<std::vector<double>> row_bufs;
  Stats stats;
  void clear() {
    table.reset();
    table_key.clear();
    light_key.clear();
    light_valid = false;
    kin_key.clear();
    kin_valid = false;
  }
};

RenderWorkspace::RenderWorkspace() : impl_(std::make_unique<Impl>()) {}
RenderWorkspace::~RenderWorkspace() = default;
RenderWorkspace::RenderWorkspace(RenderWorkspace&&) noexcept = default;
RenderWorkspace& RenderWorkspace::operator=(RenderWorkspace&&) noexcept = default;
RenderWorkspace::Stats RenderWorkspace::stats() const { return impl_ ? impl_->stats : Stats{}; }
void RenderWorkspace::clear() {
  if (impl_) impl_->clear();
}

RenderResult render(const GalaxyModel& model, const RenderOptions& options, const SkyFrame& sky) {
  RenderResult r;
  r.cube = Cube::zeros(render_spatial_grid(options), render_wavelength_grid(model, options), sky,
                       /*quality_planes=*/false);
  r.cube.bunit = kSurfaceBrightnessBunit;
  static_cast<RenderSummary&>(r) = render_into(model, options, r.cube);
  return r;
}

RenderSummary render_into(const GalaxyModel& model, const RenderOptions& options, Cube& cube) {
  RenderWorkspace ws;  // nothing cached: the same code path, every map computed
  return render_into(model, options, cube, ws);
}

struct RenderAccess {
  static RenderWorkspace::Impl& impl(RenderWorkspace& w) {
    if (!w.impl_) w.impl_ = std::make_unique<RenderWorkspace::Impl>();
    return *w.impl_;
  }
};

namespace {
RenderSummary render_core(const GalaxyModel& model, const RenderOptions& options, Cube& cube,
                          RenderWorkspace::Impl& ws, const RowFilter* filter, std::vector<int>* ranges);
}  // namespace

RenderSummary render_into(const GalaxyModel& model, const RenderOptions& options, Cube& cube,
                          RenderWorkspace& workspace) {
  return render_core(model, options, cube, RenderAccess::impl(workspace), nullptr, nullptr);
}

RenderSummary render_into(const GalaxyModel& model, const RenderOptions& options, Cube& out,
                          RenderWorkspace& workspace, const RowFilter& filter, std::vector<int>* ranges) {
  return render_core(model, options, out, RenderAccess::impl(workspace), &filter, ranges);
}

namespace {
RenderSummary render_core(const GalaxyModel& model, const RenderOptions& options, Cube& cube,
                          RenderWorkspace::Impl& ws, const RowFilter* filter, std::vector<int>* ranges) {
  ++ws.stats.calls;
  options.validate();
  const SpatialGrid sg = render_spatial_grid(options);
  const double hw = window_half_width(model, options);
  if (!(cube.spatial == sg) || cube.sci.size() != cube.size())
    throw InvalidOptions("render_into: the cube's spatial grid or size does not match the options");
  // The spectral grid must be the one render_wavelength_grid() makes (checked cheaply).
  {
    const WavelengthGrid wg = render_wavelength_grid(model, options);
    if (!(cube.spectral == wg))
      throw InvalidOptions("render_into: the cube's wavelength grid does not match the options");
  }
  const auto& p = model.params();
  const int nx = sg.nx, ny = sg.ny;
  const double pix = sg.pixel_arcsec, area = sg.pixel_area_arcsec2(), inv_area = 1.0 / area;
  const std::size_t nl = cube.nl();
  if (filter) filter->validate(nx, ny, nl);

  RenderSummary s;
  s.window_half_width_kms = hw;
  s.line_flux_total_cgs = model.line_flux_total_cgs();
  s.line_window.fill(-1);

  // Windows and lines.
  std::vector<WindowInfo> windows;
  for (std::size_t w = 0; w < cube.spectral.windows().size(); ++w) {
    const auto& win = cube.spectral.windows()[w];
    windows.push_back({win.lower_edge_um(), win.step_um, 1.0 / win.step_um, win.n, cube.spectral.window_offset(w)});
  }
  std::vector<RenderLine> lines;
  for (LineId id : selected_lines(options)) {
    const double lc = line(id).rest_A * (1.0 + p.redshift) / kAngstromPerUm;
    int found = -1;
    for (std::size_t w = 0; w < windows.size(); ++w)
      if (lc > windows[w].lower_edge_um && lc < windows[w].lower_edge_um + windows[w].n * windows[w].step_um)
        found = static_cast<int>(w);
    lines.push_back({id, found, lc});
    s.rendered[li(id)] = true;
    s.line_window[li(id)] = found;
  }

  // Light maps (fraction of each profile per pixel, and of light x line ratio for the disk
  // lines), integrated over galaxy-centred pixel edges.
  std::vector<LineId> ids;
  for (const auto& ln : lines) ids.push_back(ln.id);
  const int nlines = static_cast<int>(ids.size());
  const std::size_t stride = static_cast<std::size_t>(nlines) + 1;
  double r_max = 0.0;
  for (double sx : {sg.x_arcsec(-0.5), sg.x_arcsec(nx - 0.5)})
    for (double sy : {sg.y_arcsec(-0.5), sg.y_arcsec(ny - 0.5)})
      r_max = std::max(r_max, model.disk_coords(sx, sy).r);
  // The table's radius is r_max rounded up on a ladder of 2^(1/16) (4.4 %) steps, so that a
  // small change of the geometry (inclination, PA, centre: a fitter's step) keeps the table.
  const double r_table = std::exp2(std::ceil(16.0 * std::log2(1.001 * r_max + 1e-9)) / 16.0);
  // The ratio table depends on the chemistry (GalaxyModel::metallicity and
  // ratios_for_metallicity), kpc_per_arcsec, its radius and the lines.
  Key table_key;
  table_key.add(static_cast<long long>(model.calibration())).add(p.sii_ratio_6717_6731).add(p.ebv_mag);
  table_key.add(static_cast<long long>(model.extinction_curve())).add(p.z0_12logoh).add(p.gradient_dex_per_kpc);
  table_key.add(p.break_radius_kpc).add(p.gradient_outer_dex_per_kpc).add(model.kpc_per_arcsec()).add(r_table);
  for (LineId id : ids) table_key.add(static_cast<long long>(id));
  if (ws.table && ws.table_key == table_key) {
    ++ws.stats.ratio_table_reused;
  } else {
    ws.clear();
    ws.table.emplace(model, ids, r_table);
    ws.table_key = std::move(table_key);
    ++ws.table_generation;
  }
  const RatioTable& table = *ws.table;
  const double ex0 = sg.x0_arcsec - p.center_x_arcsec, ey0 = sg.y0_arcsec - p.center_y_arcsec;
  const int nthreads = options.threads > 0 ? options.threads : omp_get_max_threads();
  const bool has_cont = model.has_continuum();
  const bool separate_cont = has_cont && model.continuum_re_arcsec() != p.re_arcsec;
  // The light maps depend on the profile (shape, radii, normalisation: n, b_n, q, re), the
  // geometry (PA, centre), the grid and the ratio table.
  Key light_key;
  light_key.add(static_cast<long long>(model.light_profile())).add(model.sersic_n()).add(model.sersic_bn());
  light_key.add(model.axis_ratio()).add(p.pa_deg).add(p.center_x_arcsec).add(p.center_y_arcsec);
  light_key.add(p.re_arcsec).add(model.continuum_re_arcsec()).add(static_cast<long long>(separate_cont));
  light_key.add(static_cast<long long>(nx)).add(static_cast<long long>(ny)).add(pix).add(sg.x0_arcsec).add(sg.y0_arcsec);
  light_key.add(ws.table_generation);
  std::vector<double>& disk_acc = ws.disk_acc;
  std::vector<double>& cont_light = ws.cont_light;
  std::vector<double>& disk_light = ws.disk_light;
  if (ws.light_valid && ws.light_key == light_key) {
    ++ws.stats.light_maps_reused;
  } else {
    ws.light_valid = false;
    disk_acc.assign(sg.size() * stride, 0.0);
    if (separate_cont) cont_light.assign(sg.size(), 0.0);
    else cont_light.clear();
    const ProfileIntegrator disk(model, p.re_arcsec, false, &table);
    const ProfileIntegrator cont(model, model.continuum_re_arcsec(), true, nullptr);
#pragma omp parallel for schedule(dynamic, 2) num_threads(nthreads)
    for (int j = 0; j < ny; ++j) {
      const double y0 = ey0 + (j - 0.5) * pix, y1 = ey0 + (j + 0.5) * pix;
      for (int i = 0; i < nx; ++i) {
        const double x0 = ex0 + (i - 0.5) * pix, x1 = ex0 + (i + 0.5) * pix;
        const std::size_t q = static_cast<std::size_t>(j) * nx + i;
        disk.pixel(x0, x1, y0, y1, disk_acc.data() + q * stride);
        if (separate_cont) cont.pixel(x0, x1, y0, y1, cont_light.data() + q);
      }
    }
    disk_light.resize(sg.size());
    for (std::size_t q = 0; q < sg.size(); ++q) disk_light[q] = disk_acc[q * stride];
    ws.light_key = std::move(light_key);
    ws.light_valid = true;
  }
  const std::vector<double>& cont_map = separate_cont ? cont_light : disk_light;

  // Disk geometry per pixel centre: disk_coords (centre, PA, axis ratio, grid), sigma(r)
  // (sigma0, slope, kpc_per_arcsec) and the clamp mask (ratio table).
  Key kin_key;
  kin_key.add(p.center_x_arcsec).add(p.center_y_arcsec).add(p.pa_deg).add(model.axis_ratio());
  kin_key.add(static_cast<long long>(nx)).add(static_cast<long long>(ny)).add(pix).add(sg.x0_arcsec).add(sg.y0_arcsec);
  kin_key.add(p.sigma0_kms).add(p.sigma_slope_kms_per_kpc).add(model.kpc_per_arcsec()).add(ws.table_generation);
  if (!(ws.kin_valid && ws.kin_key == kin_key)) {
    ws.kin_valid = false;
    ws.kin_r.resize(sg.size());
    ws.kin_ar.resize(sg.size());
    ws.kin_sig.resize(sg.size());
    ws.kin_mask.resize(sg.size());
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int j = 0; j < ny; ++j)
      for (int i = 0; i < nx; ++i) {
        const std::size_t q = static_cast<std::size_t>(j) * nx + i;
        const auto dc = model.disk_coords(sg.x_arcsec(i), sg.y_arcsec(j));
        ws.kin_r[q] = dc.r;
        ws.kin_ar[q] = dc.r > 0.0 ? dc.a / dc.r : 0.0;
        ws.kin_sig[q] = model.sigma_kms(dc.r) / kSpeedOfLight_kms;
        ws.kin_mask[q] = table.mask_at(dc.r);
      }
    ws.kin_key = std::move(kin_key);
    ws.kin_valid = true;
  }
  const double* const kin_r = ws.kin_r.data();
  const double* const kin_ar = ws.kin_ar.data();
  const double* const kin_sig = ws.kin_sig.data();
  const unsigned* const kin_mask = ws.kin_mask.data();

  // Gaussian components (clumps, AGN): separable erf products, stored per axis.
  struct GaussComp {
    std::vector<double> fx, fy;  // fraction per column / row
    double flux, vlos, sigma;
    const LineRatios* ratios;
  };
  std::vector<GaussComp> gcomps;
  auto add_gauss = [&](double xc, double yc, double sig_arcsec, double flux, double v, double sk,
                       const LineRatios* ratios) {
    GaussComp g;
    g.fx.resize(nx);
    g.fy.resize(ny);
    for (int i = 0; i < nx; ++i)
      g.fx[i] = gauss_interval(sg.x_arcsec(i - 0.5), sg.x_arcsec(i + 0.5), xc, sig_arcsec);
    for (int j = 0; j < ny; ++j)
      g.fy[j] = gauss_interval(sg.y_arcsec(j - 0.5), sg.y_arcsec(j + 0.5), yc, sig_arcsec);
    g.flux = flux;
    g.vlos = v;
    g.sigma = sk;
    g.ratios = ratios;
    gcomps.push_back(std::move(g));
  };
  for (std::size_t c = 0; c < p.clumps.size(); ++c) {
    const auto& k = p.clumps[c];
    const auto& d = model.clump_derived()[c];
    add_gauss(p.center_x_arcsec + k.x_arcsec, p.center_y_arcsec + k.y_arcsec, k.sigma_arcsec,
              k.halpha_flux_cgs, d.vlos_kms, d.sigma_kms, &d.ratios.ratio);
  }
  if (p.agn.enabled)
    add_gauss(p.center_x_arcsec, p.center_y_arcsec, p.agn.sigma_arcsec, p.agn.halpha_flux_cgs,
              p.v0_kms, p.agn.sigma_kms, &model.agn_ratios());

  // Continuum spectral shape (flux density per um of the whole galaxy) per channel.
  std::vector<double> cont_shape;
  if (has_cont) {
    cont_shape.resize(nl);
    for (std::size_t k = 0; k < nl; ++k)
      cont_shape[k] = model.continuum_flux_density(cube.spectral.wavelength_um(k));
  }

  // Per-row accumulators (reduced in row order afterwards: thread-count independent).
  std::vector<double> row_flux(static_cast<std::size_t>(ny) * kNumLines, 0.0);
  std::vector<long long> row_clamp(static_cast<std::size_t>(ny) * 6, 0);
  std::vector<long long> row_trunc(ny, 0);
  const double nsig = options.n_sigma;
  const double f_disk = p.halpha_flux_cgs;

  // Each pixel's spectrum is built in a per-thread buffer (in L1) and then written to the cube
  // once, with non-temporal stores (stream_spectrum): the cube (tens of MB) is not read back.
  // With a row filter, the whole row is built in a per-thread row buffer (in L2), filtered there
  // and only the filter's outputs are written.
#if defined(__x86_64__) || defined(__i386__)
  const bool v512 = cdf_rows().avx512();
  const double* const cdf_pairs = cdf_rows().pairs();
#endif
  const std::size_t row_len = static_cast<std::size_t>(nx) * nl;
#if SLITSTEP_HAS_AVX512_KERNELS
  const bool z512 = __builtin_cpu_supports("avx512f");
#endif
  int fhmax = 0;
  const char* fcols = nullptr;
  const char* frows = nullptr;
  if (filter) {
    for (const auto& v : filter->taps) fhmax = std::max(fhmax, static_cast<int>(v.size() / 2));
    if (!filter->columns_needed.empty()) fcols = filter->columns_needed.data();
    if (!filter->rows_needed.empty()) frows = filter->rows_needed.data();
    if (ws.row_bufs.size() < static_cast<std::size_t>(nthreads)) ws.row_bufs.resize(static_cast<std::size_t>(nthreads));
    if (ranges) ranges->resize(2 * sg.size());
  }
#pragma omp parallel num_threads(nthreads)
  {
  std::vector<double> spec_buf(nl + 8);
  double* const spec = spec_buf.data() + (8 - (reinterpret_cast<std::uintptr_t>(spec_buf.data()) / 8) % 8) % 8;
  // the row buffer (64-byte aligned), the row's nonzero ranges, the filter's output ranges, taps
  double* row = nullptr;
  std::vector<int> rfirst, rlast, ofirst, olast;
  std::vector<Tap> ftaps;
  if (filter) {
    std::vector<double>& rb = ws.row_bufs[static_cast<std::size_t>(omp_get_thread_num())];
    if (rb.size() < row_len + 8) rb.resize(row_len + 8);
    row = rb.data() + (8 - (reinterpret_cast<std::uintptr_t>(rb.data()) / 8) % 8) % 8;
    rfirst.resize(nx);
    rlast.resize(nx);
    ofirst.resize(nx);
    olast.resize(nx);
    ftaps.resize(static_cast<std::size_t>(2 * fhmax + 1));
  }
  // The row's disk kinematics and line profiles, prepared for every pixel before any spectrum is
  // built (independent pixels: their divisions, roots and atan overlap in the CPU). Per pixel:
  // n_amp[i] lines with their amplitudes (line index, amp) in line order, of which n_prof[i]
  // prepared profiles (the others are counted as truncated).
  const std::size_t nlu = static_cast<std::size_t>(nlines);
  std::vector<int> n_amp(nx), n_prof(nx), amp_line(nx * nlu);
  std::vector<double> amp_val(nx * nlu);
  std::vector<Profile> prof(nx * nlu);
  std::vector<char> prof_ok(nx * nlu), fits(nx);
#pragma omp for schedule(dynamic, 2)
  for (int j = 0; j < ny; ++j) {
    double* rf = row_flux.data() + static_cast<std::size_t>(j) * kNumLines;
    long long* rc = row_clamp.data() + static_cast<std::size_t>(j) * 6;
    long long trunc = 0;
    for (int i = 0; i < nx; ++i) {
      const std::size_t q = static_cast<std::size_t>(j) * nx + i;
      n_amp[i] = n_prof[i] = 0;
      fits[i] = 1;
      // Disk: pixel-integrated light x ratio per line; kinematics at the pixel centre.
      const double* dacc = disk_acc.data() + q * stride;
      if (!(dacc[0] > 0.0)) continue;
      const double r = kin_r[q];
      const double v = r > 0.0 ? p.v0_kms + model.rotation_kms(r) * model.sin_i() * kin_ar[q] : p.v0_kms;
      const double sig_rel = kin_sig[q];
      const double dop = doppler_factor(v);
      const unsigned mask = kin_mask[q];
      for (unsigned c = 0; c < 6; ++c)
        if (mask & (1u << c)) ++rc[c];
      const std::size_t base = static_cast<std::size_t>(i) * nlu;
      for (int l = 0; l < nlines; ++l) {
        const auto& ln = lines[l];
        if (ln.window < 0) continue;
        const double amp = f_disk * dacc[1 + l] * inv_area;
        if (!(amp > 0.0)) continue;
        amp_line[base + n_amp[i]] = l;
        amp_val[base + n_amp[i]] = amp;
        ++n_amp[i];
        const double lc = ln.lambda_sys_um * dop;
        Profile& pr = prof[base + n_prof[i]];
        bool ok = true;
        double* const sp = row ? row + static_cast<std::size_t>(i) * nl : spec;
        if (prepare_line(sp, windows[ln.window], lc, lc * sig_rel, amp, nsig, pr, ok)) {
          prof_ok[base + n_prof[i]] = ok;
          if (!(pr.nch + 1 <= kProfileBuf)) fits[i] = 0;
          ++n_prof[i];
        } else {
          ++trunc;
        }
      }
    }
    for (int i = 0; i < nx; ++i) {
      const std::size_t q = static_cast<std::size_t>(j) * nx + i;
      double* const sp = row ? row + static_cast<std::size_t>(i) * nl : spec;
      if (has_cont) {
        const double w = cont_map[q] * inv_area;
#if defined(__x86_64__)
        if (v512) scale_avx512(cont_shape.data(), w, nl, sp);
        else
#endif
          for (std::size_t k = 0; k < nl; ++k) sp[k] = w * cont_shape[k];
      } else {
        std::fill(sp, sp + nl, 0.0);
      }
      // Disk lines: the flux sums in line order, then the profiles in line order (with AVX-512
      // all CDF passes before the additions, so that they overlap): the same sums as add_line.
      const std::size_t base = static_cast<std::size_t>(i) * nlu;
      for (int k = 0; k < n_amp[i]; ++k) rf[li(lines[amp_line[base + k]].id)] += amp_val[base + k] * area;
      const int np = n_prof[i];
      bool added[kNumLines];
#if defined(__x86_64__) || defined(__i386__)
      if (v512 && fits[i]) {
        add_profiles_avx512(cdf_pairs, prof.data() + base, np, added);
      } else
#endif
      {
        for (int k = 0; k < np; ++k) added[k] = add_prepared(prof[base + k]);
      }
      for (int k = 0; k < np; ++k)
        if (!added[k] || !prof_ok[base + k]) ++trunc;
      // Clumps and AGN.
      for (const auto& g : gcomps) {
        const double frac = g.fx[i] * g.fy[j];
        if (!(frac > 0.0) || g.flux == 0.0) continue;
        const double sbg = g.flux * frac * inv_area;
        const double dop = doppler_factor(g.vlos);
        const double sig_rel = g.sigma / kSpeedOfLight_kms;
        for (const auto& ln : lines) {
          if (ln.window < 0) continue;
          const double amp = sbg * (*g.ratios)[li(ln.id)];
          const double lc = ln.lambda_sys_um * dop;
          if (!add_line(sp, windows[ln.window], lc, lc * sig_rel, amp, nsig)) ++trunc;
          rf[li(ln.id)] += amp * area;
        }
      }
      if (row) continue;  // filtered below
#if defined(__x86_64__)
      if (v512 && reinterpret_cast<std::uintptr_t>(cube.sci.data()) % 8 == 0) stream_avx512(spec, nl, cube.sci.data() + q * nl);
      else
#endif
        stream_spectrum(spec, nl, cube.sci.data() + q * nl);
    }
    row_trunc[j] = trunc;
    if (row) {
      const std::size_t q0 = static_cast<std::size_t>(j) * nx;
      if (frows && !frows[j]) {
        std::fill(ofirst.begin(), ofirst.end(), static_cast<int>(nl));
        std::fill(olast.begin(), olast.end(), -1);
      } else {
        // every source spectrum's nonzero range (as apply_separable scans its input), then the
        // filter straight into the output row
        const long nll = static_cast<long>(nl);
        for (int i = 0; i < nx; ++i) {
          const double* sv = row + static_cast<std::size_t>(i) * nl;
          long a = 0, b = nll - 1;
          while (a < nll && sv[a] == 0.0) ++a;
          while (b >= a && sv[b] == 0.0) --b;
          rfirst[i] = static_cast<int>(a);
          rlast[i] = static_cast<int>(b);
        }
        // each needed output built in the L1 buffer `spec`, then written once (non-temporal: the
        // output cube is not read back through the caches); the others are left unchanged
        for (int i = 0; i < nx; ++i) {
          if (fcols && !fcols[i]) {
            ofirst[i] = static_cast<int>(nl);
            olast[i] = -1;
            continue;
          }
#if SLITSTEP_HAS_AVX512_KERNELS
          if (z512)
            filter_pixel_avx512(row, rfirst.data(), rlast.data(), nx, i, nl, *filter, fhmax, spec, ofirst[i], olast[i],
                                ftaps.data());
          else
#endif
            filter_pixel(row, rfirst.data(), rlast.data(), nx, i, nl, *filter, fhmax, spec, ofirst[i], olast[i],
                         ftaps.data());
          double* const dst = cube.sci.data() + (q0 + i) * nl;
#if defined(__x86_64__)
          if (v512 && reinterpret_cast<std::uintptr_t>(cube.sci.data()) % 8 == 0) stream_avx512(spec, nl, dst);
          else
#endif
            stream_spectrum(spec, nl, dst);
        }
      }
      if (ranges)
        for (int i = 0; i < nx; ++i) {
          (*ranges)[2 * (q0 + i)] = ofirst[i];
          (*ranges)[2 * (q0 + i) + 1] = olast[i];
        }
    }
  }
  stream_fence();
  }

  for (int j = 0; j < ny; ++j) {
    for (std::size_t l = 0; l < kNumLines; ++l) s.line_flux_fov_cgs[l] += row_flux[static_cast<std::size_t>(j) * kNumLines + l];
    for (std::size_t c = 0; c < 6; ++c) s.clamped_pixels[c] += row_clamp[static_cast<std::size_t>(j) * 6 + c];
    s.truncated_profiles += row_trunc[j];
  }
  for (double v : disk_light) s.disk_light_fov_fraction += v;
  if (has_cont)
    for (double v : cont_map) s.continuum_light_fov_fraction += v;

  // Status: clamps and truncations are reported, not hidden.
  std::string msg;
  for (std::size_t c = 0; c < 6; ++c)
    if (s.clamped_pixels[c] > 0) {
      if (!msg.empty()) msg += "; ";
      msg += std::to_string(s.clamped_pixels[c]) + " of " + std::to_string(sg.size()) +
             " fine pixels have a metallicity outside the validity of " +
             std::string(calibration_name(static_cast<Calibration>(c))) +
             " (index clamped at the range edge)";
    }
  if (s.truncated_profiles > 0) {
    if (!msg.empty()) msg += "; ";
    msg += std::to_string(s.truncated_profiles) +
           " line profiles were cut by a window edge (renormalised; widen the windows)";
  }
  for (const auto& ln : lines)
    if (ln.window < 0) {
      if (!msg.empty()) msg += "; ";
      msg += std::string(line(ln.id).name) + " has no window";
    }
  if (!msg.empty()) s.status = Status::Error(StatusCode::kOutOfRange, msg);
  return s;
}
}  // namespace

}  // namespace slitstep
