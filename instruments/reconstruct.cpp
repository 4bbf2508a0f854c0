#include "instruments/reconstruct.hpp"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

namespace slitstep {

namespace {

constexpr std::uint32_t kDqRejectMask =
    kDqDoNotUse | kDqNoCoverage | kDqChipGap | kDqBarShadow | kDqNonFinite;

// One exposure on the common wavelength grid: either views of the exposure's own arrays or
// resampled copies. var is the total variance (ERR^2).
struct Prepared {
  const Exposure* exp = nullptr;
  int nv = 0, nl = 0;
  const double* sci = nullptr;
  const double* err = nullptr;  // 1 sigma
  const std::uint32_t* dq = nullptr;
  std::vector<double> own_sci, own_err;
  std::vector<std::uint32_t> own_dq;
  double at_sci(int v, std::size_t k) const { return sci[static_cast<std::size_t>(v) * nl + k]; }
  double at_err(int v, std::size_t k) const { return err[static_cast<std::size_t>(v) * nl + k]; }
  std::uint32_t at_dq(int v, std::size_t k) const { return dq[static_cast<std::size_t>(v) * nl + k]; }
};

double overlap(double a0, double a1, double b0, double b1) {
  return std::max(0.0, std::min(a1, b1) - std::max(a0, b0));
}

std::vector<double> edges_from_centres(const std::vector<double>& c) {
  const std::size_t n = c.size();
  std::vector<double> e(n + 1);
  for (std::size_t k = 1; k < n; ++k) e[k] = 0.5 * (c[k - 1] + c[k]);
  e[0] = c[0] - 0.5 * (c[1] - c[0]);
  e[n] = c[n - 1] + 0.5 * (c[n - 1] - c[n - 2]);
  return e;
}

double median_of_diffs(const std::vector<double>& c) {
  std::vector<double> d;
  for (std::size_t k = 1; k < c.size(); ++k)
    if (std::isfinite(c[k]) && std::isfinite(c[k - 1])) d.push_back(c[k] - c[k - 1]);
  if (d.empty()) return 0.0;
  std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
  return d[d.size() / 2];
}

// Flux-conserving (surface-brightness average) rebin of one row onto output edges.
// Source pixels with non-finite wavelength are skipped. Returns false if the row's wavelengths
// are not increasing.
bool rebin_row(const double* wl, const double* sci, const double* err, const std::uint32_t* dq, int nu,
               const std::vector<double>& out_edges, double* osci, double* oerr, std::uint32_t* odq) {
  std::vector<int> idx;
  for (int u = 0; u < nu; ++u)
    if (std::isfinite(wl[u])) idx.push_back(u);
  const std::size_t nl = out_edges.size() - 1;
  for (std::size_t k = 0; k < nl; ++k) {
    osci[k] = 0.0;
    oerr[k] = 0.0;
    odq[k] = kDqNoCoverage | kDqDoNotUse;
  }
  if (idx.size() < 2) return true;
  std::vector<double> c(idx.size());
  for (std::size_t q = 0; q < idx.size(); ++q) c[q] = wl[idx[q]];
  for (std::size_t q = 1; q < c.size(); ++q)
    if (!(c[q] > c[q - 1])) return false;
  const std::vector<double> e = edges_from_centres(c);
  std::vector<double> sum(nl, 0.0), wsum(nl, 0.0), vsum(nl, 0.0), cover(nl, 0.0);
  std::vector<std::uint32_t> badflags(nl, 0u);
  std::size_t k0 = 0;
  for (std::size_t q = 0; q < c.size(); ++q) {
    const double lo = e[q], hi = e[q + 1];
    while (k0 < nl && out_edges[k0 + 1] <= lo) ++k0;
    const int u = idx[q];
    const double x = sci[u], s = err[u];
    const bool good = !(dq[u] & kDqRejectMask) && std::isfinite(x) && std::isfinite(s);
    for (std::size_t k = k0; k < nl && out_edges[k] < hi; ++k) {
      const double o = overlap(lo, hi, out_edges[k], out_edges[k + 1]);
      if (o <= 0.0) continue;
      cover[k] += o;
      if (good) {
        sum[k] += o * x;
        wsum[k] += o;
        vsum[k] += o * o * s * s;
      } else {
        badflags[k] |= dq[u] | ((std::isfinite(x) && std::isfinite(s)) ? 0u : kDqNonFinite);
      }
    }
  }
  for (std::size_t k = 0; k < nl; ++k) {
    const double width = out_edges[k + 1] - out_edges[k];
    if (wsum[k] >= 0.5 * width) {
      osci[k] = sum[k] / wsum[k];
      oerr[k] = std::sqrt(vsum[k]) / wsum[k];
      odq[k] = 0u;
    } else if (cover[k] > 0.0) {
      odq[k] = (badflags[k] & ~kDqOutlier) | kDqDoNotUse;
      if (!(odq[k] & (kDqChipGap | kDqBarShadow | kDqNonFinite))) odq[k] |= kDqNoCoverage;
    }
  }
  return true;
}

// Per-thread scratch and per-(step, fine pixel) results of one wavelength channel.
struct FineCell {
  double value = 0.0;
  double scale = 1.0;        // sqrt(c_n) for the median, 1 for the mean
  int n_used = 0;
  std::uint32_t why = 0;     // reasons for not being used, or kDqOutlier
};

// Usability code of detector row v of exposure q at channel k: 0 = usable, otherwise the reason
// the combine step records for it (exactly what its `usable` test ORs into `reason`).
inline std::uint32_t row_code(bool bar, std::uint32_t f, double x, double s) {
  if (bar) return kDqBarShadow;
  if (f & kDqRejectMask) {
    const std::uint32_t r = f & (kDqChipGap | kDqBarShadow | kDqNonFinite | kDqNoCoverage);
    return r ? r : kDqDoNotUse;
  }
  if (!std::isfinite(x) || !std::isfinite(s) || s < 0.0) return kDqNonFinite;
  return 0u;
}

// "median": everything of one channel's reconstruction except the data values is a function of
// the geometry and of the per-row usability codes (row_code) of that channel. A ChannelPlan
// records it while a channel is computed the general way; the next channels with the same codes
// replay it: the same operations in the same order on their own values, so the same bits.
struct ChannelPlan {
  bool valid = false;
  long last = -1;  // the channel the plan was last used for
  // fine cells (step-major): samples [cell_start[c], cell_start[c + 1])
  std::vector<int> cell_start;
  std::vector<const double*> pa, pb;  // SCI rows (channel 0) of the sample's detector rows
  std::vector<double> wa, wb;
  // step x spaxel-row columns
  std::vector<double> colA, colN;
  std::vector<std::uint32_t> colWhy;
  std::vector<int> y_start, y_cell;  // sy terms: [y_start[sj], y_start[sj + 1]) of (cell, o)
  std::vector<double> y_o;
  std::vector<int> v_start;          // variance terms: (ERR row, beta^2)
  std::vector<const double*> v_err;
  std::vector<double> v_bb;
  // spaxels (j * nx + i)
  std::vector<double> G, nw;
  std::vector<std::uint32_t> dq;
  std::vector<int> x_start, x_sj;    // terms (column, a, a^2)
  std::vector<double> x_a, x_aa;
  void clear() {
    valid = false;
    cell_start.assign(1, 0);
    pa.clear(); pb.clear(); wa.clear(); wb.clear();
    colA.clear(); colN.clear(); colWhy.clear();
    y_start.assign(1, 0); y_cell.clear(); y_o.clear();
    v_start.assign(1, 0); v_err.clear(); v_bb.clear();
    G.clear(); nw.clear(); dq.clear();
    x_start.assign(1, 0); x_sj.clear(); x_a.clear(); x_aa.clear();
  }
};

}  // namespace

double median_variance_factor(int n) {
  static constexpr double kTable[25] = {
      1.000000, 1.000000, 1.346013, 1.192798, 1.434168, 1.288456, 1.473128, 1.345447, 1.494912,
      1.383264, 1.508787, 1.410194, 1.518387, 1.430350, 1.525420, 1.446003, 1.530792, 1.458513,
      1.535029, 1.468741, 1.538455, 1.477258, 1.541283, 1.484463, 1.543656};
  if (n <= 1) return 1.0;
  if (n <= 25) return kTable[n - 1];
  const double half_pi = 0.5 * kPi;
  return (n % 2) ? half_pi - 0.678 / n : half_pi - 2.07 / n;
}

void ReconstructOptions::validate() const {
  if (combine != "median" && combine != "mean")
    throw InvalidOptions("ReconstructOptions.combine = '" + combine + "': must be 'median' or 'mean'");
  if (!(clip_sigma > 0.0) || !std::isfinite(clip_sigma))
    throw InvalidOptions("ReconstructOptions.clip_sigma = " + format_value(clip_sigma) + ": must be finite and > 0");
  if (clip_iterations < 0 || clip_iterations > 100)
    throw InvalidOptions("ReconstructOptions.clip_iterations = " + std::to_string(clip_iterations) +
                         ": must be in 0..100");
  if (fine_grid != "drop" && fine_grid != "interpolate" && fine_grid != "replicate")
    throw InvalidOptions("ReconstructOptions.fine_grid = '" + fine_grid +
                         "': must be 'drop', 'interpolate' or 'replicate'");
  if (!(drop_fraction > 0.0 && drop_fraction <= 1.0))
    throw InvalidOptions("ReconstructOptions.drop_fraction = " + format_value(drop_fraction) + ": must be in (0, 1]");
  if (spaxel_resample != "interpolate" && spaxel_resample != "overlap")
    throw InvalidOptions("ReconstructOptions.spaxel_resample = '" + spaxel_resample +
                         "': must be 'interpolate' or 'overlap'");
  if (fine_factor < 1 || fine_factor > 64)
    throw InvalidOptions("ReconstructOptions.fine_factor = " + std::to_string(fine_factor) + ": must be in 1..64");
  if (!(spaxel_arcsec > 0.0) || !std::isfinite(spaxel_arcsec) || spaxel_arcsec > 10.0)
    throw InvalidOptions("ReconstructOptions.spaxel_arcsec = " + format_value(spaxel_arcsec) +
                         ": must be in (0, 10] arcsec");
  if (min_dithers < 1)
    throw InvalidOptions("ReconstructOptions.min_dithers = " + std::to_string(min_dithers) + ": must be >= 1");
  if (low_coverage_dithers < 0)
    throw InvalidOptions("ReconstructOptions.low_coverage_dithers = " + std::to_string(low_coverage_dithers) +
                         ": must be >= 0");
  if (!(min_row_open_fraction >= 0.0 && min_row_open_fraction <= 1.0))
    throw InvalidOptions("ReconstructOptions.min_row_open_fraction = " + format_value(min_row_open_fraction) +
                         ": must be in [0, 1]");
  if (!(wavelength_tolerance_px > 0.0 && wavelength_tolerance_px <= 0.5))
    throw InvalidOptions("ReconstructOptions.wavelength_tolerance_px = " + format_value(wavelength_tolerance_px) +
                         ": must be in (0, 0.5]");
  if (threads < 0)
    throw InvalidOptions("ReconstructOptions.threads = " + std::to_string(threads) + ": must be >= 0");
  if (output_grid) output_grid->validate();
}

WavelengthGrid windowed_grid_from_centres(const std::vector<double>& c, double tolerance_px,
                                          double* max_error_um) {
  if (max_error_um) *max_error_um = 0.0;
  const std::size_t n = c.size();
  if (n == 0) throw InvalidOptions("windowed_grid_from_centres: no channels");
  if (n == 1) return WavelengthGrid::linear(c[0], 1e-4 * c[0], 1);
  for (std::size_t k = 1; k < n; ++k)
    if (!(c[k] > c[k - 1]))
      throw InvalidOptions("windowed_grid_from_centres: centres not increasing at channel " + std::to_string(k));
  const std::vector<double> e = edges_from_centres(c);
  std::vector<WavelengthWindow> windows;
  double worst = 0.0;
  std::size_t a = 0;
  auto window_error = [&](std::size_t a0, std::size_t b0, WavelengthWindow* w) {
    const int len = static_cast<int>(b0 - a0 + 1);
    const double step = (e[b0 + 1] - e[a0]) / len;
    const WavelengthWindow win{e[a0] + 0.5 * step, step, len};
    double err = 0.0;
    for (int q = 0; q < len; ++q) err = std::max(err, std::abs(win.start_um + q * step - c[a0 + q]));
    if (w) *w = win;
    return err / step;
  };
  while (a < n) {
    // Grow the window by doubling, then bisect the largest acceptable end.
    std::size_t good = a, tryb = a + 1, len = 1;
    while (tryb < n && window_error(a, tryb, nullptr) <= tolerance_px) {
      good = tryb;
      len *= 2;
      tryb = a + len;
    }
    std::size_t lo = good, hi = std::min(tryb, n);  // good is ok; hi is bad or n
    while (hi - lo > 1) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (window_error(a, mid, nullptr) <= tolerance_px) lo = mid; else hi = mid;
    }
    WavelengthWindow w;
    window_error(a, lo, &w);
    for (int q = 0; q < w.n; ++q) worst = std::max(worst, std::abs(w.start_um + q * w.step_um - c[a + q]));
    windows.push_back(w);
    a = lo + 1;
  }
  if (max_error_um) *max_error_um = worst;
  return WavelengthGrid::from_windows(std::move(windows));
}

ReconstructResult reconstruct(const std::vector<Exposure>& exposures, const SlitletConfig& slitlet,
                              const PatternConfig& pattern, const SkyFrame& sky,
                              const ReconstructOptions& options) {
  options.validate();
  slitlet.validate();
  pattern.validate();
  sky.validate();
  ReconstructResult res;
  auto fail = [&](const std::string& msg) {
    res.status = Status::Error(StatusCode::kInvalidInput, "reconstruct: " + msg);
    return res;
  };
  if (exposures.empty()) return fail("no exposures");
  for (std::size_t q = 0; q < exposures.size(); ++q) {
    try {
      exposures[q].validate();
    } catch (const InvalidOptions& ex) {
      return fail("exposure " + std::to_string(q) + ": " + ex.what());
    }
  }
  const bool use_median = options.combine == "median";
  const double py = exposures[0].pixel_y_arcsec;
  if (!(py > 0.0)) return fail("exposure 0: pixel_y_arcsec must be > 0");
  for (const auto& e : exposures) {
    if (std::abs(e.pixel_y_arcsec - py) > 1e-9 * py)
      return fail("exposures have different row pitches (" + format_value(e.pixel_y_arcsec) + " vs " +
                  format_value(py) + " arcsec)");
    const Pointing& p = e.pointing;
    if (p.step < 0 || p.step >= static_cast<int>(pattern.steps_x_arcsec.size()))
      return fail("pointing " + std::to_string(p.index) + ": step " + std::to_string(p.step) +
                  " is not a step of the pattern");
    if (std::abs(p.offset_x_arcsec - pattern.steps_x_arcsec[p.step]) > 1e-6)
      return fail("pointing " + std::to_string(p.index) + ": offset_x " + format_value(p.offset_x_arcsec) +
                  " differs from the pattern's step offset " + format_value(pattern.steps_x_arcsec[p.step]));
    if (!std::isfinite(p.offset_y_arcsec)) return fail("pointing " + std::to_string(p.index) + ": offset_y not finite");
  }

  // ---- 1. common wavelength grid ---------------------------------------------------------------
  const std::vector<double>& w0 = exposures[0].wavelength_um;
  bool same = true;
  for (const auto& e : exposures) {
    if (!e.wavelength2d_um.empty() || e.wavelength_um.size() != w0.size()) { same = false; break; }
    for (std::size_t k = 0; k < w0.size() && same; ++k)
      if (!(std::abs(e.wavelength_um[k] - w0[k]) <= 1e-9 * std::abs(w0[k]))) same = false;
    if (!same) break;
  }
  std::vector<double> centres;
  std::vector<Prepared> prep(exposures.size());
  if (same) {
    for (std::size_t k = 0; k < w0.size(); ++k)
      if (!std::isfinite(w0[k]) || (k > 0 && !(w0[k] > w0[k - 1])))
        return fail("exposure wavelengths must be finite and increasing (column " + std::to_string(k) + ")");
    centres = w0;
    for (std::size_t q = 0; q < exposures.size(); ++q) {
      Prepared& p = prep[q];
      p.exp = &exposures[q];
      p.nv = exposures[q].nv;
      p.nl = exposures[q].nu;
      p.sci = exposures[q].sci.data();
      p.err = exposures[q].err.data();
      p.dq = exposures[q].dq.data();
    }
  } else {
    res.wavelength_resampled = true;
    double step = std::numeric_limits<double>::infinity(), lo = step, hi = -step;
    for (const auto& e : exposures) {
      for (int v = 0; v < e.nv; ++v) {
        std::vector<double> row(e.nu);
        for (int u = 0; u < e.nu; ++u)
          row[u] = e.wavelength2d_um.empty() ? e.wavelength_um[u] : e.wavelength2d_um[e.index(v, u)];
        const double d = median_of_diffs(row);
        if (d > 0.0) step = std::min(step, d);
        for (double x : row)
          if (std::isfinite(x)) { lo = std::min(lo, x); hi = std::max(hi, x); }
        if (!e.wavelength2d_um.empty() && e.wavelength2d_um.size() != e.size())
          return fail("exposure " + std::to_string(e.pointing.index) + ": wavelength2d_um has the wrong size");
      }
    }
    if (!std::isfinite(step) || !(hi > lo)) return fail("no usable wavelengths in the exposures");
    const int nl = static_cast<int>(std::floor((hi - lo) / step + 1e-9)) + 1;
    centres.resize(nl);
    for (int k = 0; k < nl; ++k) centres[k] = lo + k * step;
    std::vector<double> out_edges(nl + 1);
    for (int k = 0; k <= nl; ++k) out_edges[k] = lo + (k - 0.5) * step;
    for (std::size_t q = 0; q < exposures.size(); ++q) {
      const Exposure& e = exposures[q];
      Prepared& p = prep[q];
      p.exp = &e;
      p.nv = e.nv;
      p.nl = nl;
      p.own_sci.assign(static_cast<std::size_t>(nl) * e.nv, 0.0);
      p.own_err.assign(p.own_sci.size(), 0.0);
      p.own_dq.assign(p.own_sci.size(), 0u);
      for (int v = 0; v < e.nv; ++v) {
        const double* wl = e.wavelength2d_um.empty() ? e.wavelength_um.data() : e.wavelength2d_um.data() + e.index(v, 0);
        const std::size_t o = static_cast<std::size_t>(v) * nl;
        if (!rebin_row(wl, e.sci.data() + e.index(v, 0), e.err.data() + e.index(v, 0), e.dq.data() + e.index(v, 0),
                       e.nu, out_edges, p.own_sci.data() + o, p.own_err.data() + o, p.own_dq.data() + o))
          return fail("exposure " + std::to_string(e.pointing.index) + " row " + std::to_string(v) +
                      ": wavelengths are not increasing");
      }
      p.sci = p.own_sci.data();
      p.err = p.own_err.data();
      p.dq = p.own_dq.data();
    }
  }
  const std::size_t nl = centres.size();
  WavelengthGrid spectral;
  try {
    spectral = windowed_grid_from_centres(centres, options.wavelength_tolerance_px, &res.max_wavelength_error_um);
  } catch (const InvalidOptions& ex) {
    return fail(ex.what());
  }

  // ---- 2. geometry: steps, fine grid, rows ----------------------------------------------------
  std::map<int, std::vector<int>> by_step;
  for (std::size_t q = 0; q < exposures.size(); ++q) by_step[exposures[q].pointing.step].push_back(static_cast<int>(q));
  std::vector<std::vector<int>> groups;
  std::vector<double> col_x;
  for (auto& [s, list] : by_step) {
    std::sort(list.begin(), list.end(), [&](int a, int b) {
      const auto &pa = exposures[a].pointing, &pb = exposures[b].pointing;
      return pa.dither != pb.dither ? pa.dither < pb.dither : pa.index < pb.index;
    });
    groups.push_back(list);
    col_x.push_back(pattern.steps_x_arcsec[s]);
  }
  const int nsteps = static_cast<int>(groups.size());
  const double wx = slitlet.shutter.open_x_arcsec;
  const double fine = py / options.fine_factor;
  const Exposure& e0 = exposures[0];
  const double ref_edge = e0.y0_arcsec - 0.5 * py + e0.pointing.offset_y_arcsec;
  double ymin = std::numeric_limits<double>::infinity(), ymax = -ymin;
  for (const auto& e : exposures) {
    ymin = std::min(ymin, e.y0_arcsec - 0.5 * py + e.pointing.offset_y_arcsec);
    ymax = std::max(ymax, e.y0_arcsec + (e.nv - 0.5) * py + e.pointing.offset_y_arcsec);
  }
  const long m0 = static_cast<long>(std::floor((ymin - ref_edge) / fine + 1e-6));
  const long m1 = static_cast<long>(std::ceil((ymax - ref_edge) / fine - 1e-6));
  const int nf = static_cast<int>(m1 - m0);
  const double fine_lo = ref_edge + m0 * fine;
  // row_of[q][m]: detector row of exposure q that holds the sky fine pixel m (-1: outside);
  // row_t[q][m]: interpolation weight of the row above it (row centres at integer coordinates;
  // 0 for "replicate"); upper_ok[q][m]: whether that row exists.
  // "drop": row_of = the first row whose drop (drop_fraction x row height, centred on the row
  // centre) overlaps the fine pixel, drop_o[q][2m + i] = the overlap of rows row_of + i (i = 0, 1)
  // as a fraction of the fine pixel (a fine pixel of width <= a row meets at most two drops).
  const bool interp_fine = options.fine_grid == "interpolate";
  const bool drop_fine = options.fine_grid == "drop";
  std::vector<std::vector<int>> row_of(exposures.size(), std::vector<int>(nf, -1));
  std::vector<std::vector<double>> row_t(exposures.size(), std::vector<double>(nf, 0.0));
  std::vector<std::vector<double>> drop_o(drop_fine ? exposures.size() : 0, std::vector<double>(2 * nf, 0.0));
  std::vector<std::vector<char>> row_bar(exposures.size());
  // The row geometry of an exposure depends only on (offset_y, y0, nv) (the dithers of a step
  // repeat across steps): exposures with bitwise-equal values copy the first one's.
  std::vector<std::size_t> geo_first;
  for (std::size_t q = 0; q < exposures.size(); ++q) {
    const Exposure& e = exposures[q];
    bool copied = false;
    for (std::size_t q2 : geo_first) {
      const Exposure& e2 = exposures[q2];
      if (e2.nv != e.nv || std::bit_cast<std::uint64_t>(e2.y0_arcsec) != std::bit_cast<std::uint64_t>(e.y0_arcsec) ||
          std::bit_cast<std::uint64_t>(e2.pointing.offset_y_arcsec) !=
              std::bit_cast<std::uint64_t>(e.pointing.offset_y_arcsec))
        continue;
      row_of[q] = row_of[q2];
      row_t[q] = row_t[q2];
      if (drop_fine) drop_o[q] = drop_o[q2];
      row_bar[q] = row_bar[q2];
      copied = true;
      break;
    }
    if (copied) continue;
    geo_first.push_back(q);
    row_bar[q].assign(e.nv, 0);
    for (int v = 0; v < e.nv; ++v) {
      const double yc = e.y0_arcsec + v * py;
      const double f = slitlet_open_fraction(slitlet, -0.5 * wx, 0.5 * wx, yc - 0.5 * py, yc + 0.5 * py);
      row_bar[q][v] = (f < options.min_row_open_fraction || f <= 0.0) ? 1 : 0;
    }
    if (drop_fine) {
      const double fr = fine / py, half = 0.5 * options.drop_fraction;
      for (int m = 0; m < nf; ++m) {
        // fine pixel m in row units of exposure q (row v spans [v, v + 1), its drop
        // [v + 0.5 - half, v + 0.5 + half])
        const double r0 = (fine_lo + m * fine - e.pointing.offset_y_arcsec - (e.y0_arcsec - 0.5 * py)) / py;
        const double r1 = r0 + fr;
        int n = 0;
        for (long v = static_cast<long>(std::floor(r0)) - 1; v <= static_cast<long>(std::floor(r1)) + 1; ++v) {
          if (v < 0 || v >= e.nv) continue;
          const double o = overlap(r0, r1, v + 0.5 - half, v + 0.5 + half) / fr;
          if (o <= 1e-9) continue;
          if (n == 0) row_of[q][m] = static_cast<int>(v);
          if (n < 2 && v == row_of[q][m] + n) drop_o[q][2 * static_cast<std::size_t>(m) + n] = o;
          ++n;
        }
      }
      continue;
    }
    for (int m = 0; m < nf; ++m) {
      const double ysky = fine_lo + (m + 0.5) * fine;
      const double yap = ysky - e.pointing.offset_y_arcsec;
      const double r = (yap - (e.y0_arcsec - 0.5 * py)) / py;  // row v spans [v, v + 1)
      const long v = static_cast<long>(std::floor(r));
      if (v < 0 || v >= e.nv) continue;
      row_of[q][m] = static_cast<int>(v);
      if (!interp_fine) continue;
      // linear between row centres (at v + 0.5): the lower node and the weight of the upper one
      const double c = r - 0.5;
      const long v0 = static_cast<long>(std::floor(c));
      const double t = c - v0;
      if (v0 < 0 || v0 + 1 >= e.nv) continue;  // beyond the outer row centres: the row itself
      row_of[q][m] = static_cast<int>(v0);
      row_t[q][m] = t;
    }
  }

  // ---- 3. output grid and overlaps -------------------------------------------------------------
  SpatialGrid grid;
  if (options.output_grid) {
    grid = *options.output_grid;
  } else {
    const double xlo = *std::min_element(col_x.begin(), col_x.end()) - 0.5 * wx;
    const double xhi = *std::max_element(col_x.begin(), col_x.end()) + 0.5 * wx;
    const double yhi = fine_lo + nf * fine;
    const double sp = options.spaxel_arcsec;
    const int nx = std::max(1, static_cast<int>(std::ceil((xhi - xlo) / sp - 1e-6)));
    const int ny = std::max(1, static_cast<int>(std::ceil((yhi - fine_lo) / sp - 1e-6)));
    grid = SpatialGrid::centred(nx, ny, sp, 0.5 * (xlo + xhi), 0.5 * (fine_lo + yhi));
  }
  const int nx = grid.nx, ny = grid.ny;
  const double sp = grid.pixel_arcsec;
  // ox[i * nsteps + s], oy[j] = list of (m, weight): overlap areas ("overlap") or linear
  // interpolation weights ("interpolate"); both are renormalised over the usable inputs.
  const bool interp_spaxel = options.spaxel_resample == "interpolate";
  std::vector<double> ox(static_cast<std::size_t>(nx) * nsteps, 0.0);
  std::vector<std::vector<std::pair<int, double>>> oy(ny);
  if (interp_spaxel) {
    std::vector<int> order(nsteps);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return col_x[a] < col_x[b]; });
    for (int i = 0; i < nx; ++i) {
      const double xc = grid.x_arcsec(i);
      double* w = ox.data() + static_cast<std::size_t>(i) * nsteps;
      bool done = false;
      // between the centres of two adjacent (touching) columns: linear
      for (int q = 0; q + 1 < nsteps && !done; ++q) {
        const int a = order[q], b = order[q + 1];
        const double xa = col_x[a], xb = col_x[b];
        if (xc < xa || xc > xb || xb - xa > wx * (1.0 + 1e-6) || !(xb > xa)) continue;
        const double t = (xc - xa) / (xb - xa);
        w[a] = 1.0 - t;
        w[b] = t;
        done = true;
      }
      // otherwise inside one column (its outer half): that column's value
      for (int q = 0; q < nsteps && !done; ++q)
        if (std::abs(xc - col_x[order[q]]) <= 0.5 * wx) {
          w[order[q]] = 1.0;
          done = true;
        }
    }
    for (int j = 0; j < ny; ++j) {
      const double u = (grid.y_arcsec(j) - fine_lo) / fine - 0.5;  // fine-pixel-centre coordinate
      const long m0 = static_cast<long>(std::floor(u));
      const double t = u - m0;
      if (m0 >= 0 && m0 < nf && 1.0 - t > 1e-12) oy[j].push_back({static_cast<int>(m0), 1.0 - t});
      if (m0 + 1 >= 0 && m0 + 1 < nf && t > 1e-12) oy[j].push_back({static_cast<int>(m0 + 1), t});
      // a spaxel centre within the outer half fine pixel keeps that fine pixel's value
      if (oy[j].size() == 1) oy[j][0].second = 1.0;
    }
  } else {
    for (int i = 0; i < nx; ++i)
      for (int s = 0; s < nsteps; ++s)
        ox[static_cast<std::size_t>(i) * nsteps + s] = overlap(grid.x_arcsec(i) - 0.5 * sp, grid.x_arcsec(i) + 0.5 * sp,
                                                               col_x[s] - 0.5 * wx, col_x[s] + 0.5 * wx);
  }
  for (int j = 0; j < ny && !interp_spaxel; ++j) {
    const double y0 = grid.y_arcsec(j) - 0.5 * sp, y1 = y0 + sp;
    const int ma = std::max(0, static_cast<int>(std::floor((y0 - fine_lo) / fine)) - 1);
    const int mb = std::min(nf - 1, static_cast<int>(std::ceil((y1 - fine_lo) / fine)) + 1);
    for (int m = ma; m <= mb; ++m) {
      const double o = overlap(y0, y1, fine_lo + m * fine, fine_lo + (m + 1) * fine);
      if (o > 1e-12 * sp) oy[j].push_back({m, o});
    }
  }
  int max_dithers = 0, max_nv = 0;
  for (const auto& g : groups) max_dithers = std::max(max_dithers, static_cast<int>(g.size()));
  for (const auto& e : exposures) max_nv = std::max(max_nv, e.nv);

  Cube cube = Cube::zeros(grid, spectral, sky);
  cube.bunit = kSurfaceBrightnessBunit;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double full_area = interp_spaxel ? 1.0 : sp * sp;  // total weight of a fully covered spaxel
  // "drop": a fine pixel nominally gets drop_fraction of the dithers (7 x 0.5 = 3.5 for MSA-3D)
  const double low_coverage = options.low_coverage_dithers * (drop_fine ? options.drop_fraction : 1.0);

  // ---- 4. per wavelength channel ----------------------------------------------------------------
  std::size_t n_outliers = 0;
  const int nthreads = options.threads > 0 ? options.threads : omp_get_max_threads();
  const long nl_long = static_cast<long>(nl);
  // changed[q * nl + k]: some row of exposure q has a different code at channel k than at k - 1
  std::vector<char> changed(use_median ? exposures.size() * nl : 0, 0);
#pragma omp parallel num_threads(nthreads) reduction(+ : n_outliers)
  {
    if (use_median) {
      std::vector<std::uint32_t> code(nl);  // one row's usability codes
#pragma omp for schedule(static)
      for (long ql = 0; ql < static_cast<long>(exposures.size()); ++ql) {
        const std::size_t q = static_cast<std::size_t>(ql);
        const Prepared& p = prep[q];
        for (int v = 0; v < p.nv; ++v) {
          std::uint32_t* c = code.data();
          const bool bar = row_bar[q][v] != 0;
          const std::size_t o = static_cast<std::size_t>(v) * p.nl;
          for (std::size_t k = 0; k < nl; ++k) c[k] = row_code(bar, p.dq[o + k], p.sci[o + k], p.err[o + k]);
          char* ch = changed.data() + q * nl;
          for (std::size_t k = 1; k < nl; ++k) ch[k] |= static_cast<char>(c[k] != c[k - 1]);
        }
      }
    }
    ChannelPlan plan;
    std::vector<double> cval(use_median ? static_cast<std::size_t>(nsteps) * nf : 0);
    std::vector<double> tmp(static_cast<std::size_t>(max_dithers));
    std::vector<FineCell> cells(static_cast<std::size_t>(nsteps) * nf);
    std::vector<double> coeff(static_cast<std::size_t>(nsteps) * nf * max_dithers, 0.0);
    // the detector rows (and their weights) behind each (step, fine pixel, dither) sample
    std::vector<int> rowA(coeff.size(), 0), rowB(coeff.size(), 0);
    std::vector<double> wA(coeff.size(), 0.0), wB(coeff.size(), 0.0);
    std::vector<double> vals, vars, covers, w;
    std::vector<int> didx;
    std::vector<char> keep;
    std::vector<std::pair<double, int>> sorted;
    std::vector<double> beta(static_cast<std::size_t>(max_dithers) * max_nv, 0.0);
    std::vector<int> touched;
    // per step and spaxel row
    std::vector<double> colY(static_cast<std::size_t>(nsteps) * ny), colV(colY.size()), colA(colY.size()),
        colN(colY.size());
    std::vector<std::uint32_t> colWhy(colY.size());
#pragma omp for schedule(static)
    for (long kl = 0; kl < nl_long; ++kl) {
      const std::size_t k = static_cast<std::size_t>(kl);
      bool replay = false;
      if (use_median && plan.valid && plan.last == kl - 1) {
        replay = true;
        for (std::size_t q = 0; q < exposures.size() && replay; ++q) replay = !changed[q * nl + k];
      }
      if (replay) {
        plan.last = kl;
        // 4a. medians: insertion sort of the few samples; stable on equal values, i.e. the
        // (value, sample index) order of the general path
        const std::size_t ncell = static_cast<std::size_t>(nsteps) * nf;
        for (std::size_t c = 0; c < ncell; ++c) {
          const int t0 = plan.cell_start[c], n = plan.cell_start[c + 1] - t0;
          if (n == 0) continue;
          for (int t = 0; t < n; ++t) {
            const std::size_t u = static_cast<std::size_t>(t0 + t);
            const double wb = plan.wb[u];
            const double x = plan.wa[u] * plan.pa[u][k] + (wb > 0.0 ? wb * plan.pb[u][k] : 0.0);
            int z = t;
            while (z > 0 && tmp[z - 1] > x) { tmp[z] = tmp[z - 1]; --z; }
            tmp[z] = x;
          }
          cval[c] = (n % 2) ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
        }
        // 4b. columns
        const std::size_t ncol = static_cast<std::size_t>(nsteps) * ny;
        for (std::size_t sj = 0; sj < ncol; ++sj) {
          const double A = plan.colA[sj];
          if (A <= 0.0) { colY[sj] = 0.0; colV[sj] = 0.0; continue; }
          double sy = 0.0;
          for (int u = plan.y_start[sj]; u < plan.y_start[sj + 1]; ++u) sy += plan.y_o[u] * cval[plan.y_cell[u]];
          colY[sj] = sy / A;
          double var = 0.0;
          for (int u = plan.v_start[sj]; u < plan.v_start[sj + 1]; ++u) {
            const double sg = plan.v_err[u][k];
            var += plan.v_bb[u] * sg * sg;
          }
          colV[sj] = var;
        }
        // 4c. spaxels
        for (int j = 0; j < ny; ++j) {
          for (int i = 0; i < nx; ++i) {
            const std::size_t ji = static_cast<std::size_t>(j) * nx + i;
            const std::size_t idx = cube.index(i, j, k);
            const double G = plan.G[ji];
            if (G <= 0.0) {
              cube.sci[idx] = nan;
              cube.err[idx] = nan;
              cube.wmap[idx] = 0.0;
              cube.dq[idx] = plan.dq[ji];
              continue;
            }
            double sv = 0.0, svar = 0.0;
            for (int u = plan.x_start[ji]; u < plan.x_start[ji + 1]; ++u) {
              const std::size_t sj = static_cast<std::size_t>(plan.x_sj[u]);
              sv += plan.x_a[u] * colY[sj];
              svar += plan.x_aa[u] * colV[sj];
            }
            cube.sci[idx] = sv / G;
            cube.err[idx] = std::sqrt(svar) / G;
            cube.wmap[idx] = plan.nw[ji];
            cube.dq[idx] = plan.dq[ji];
          }
        }
        continue;
      }
      const bool rec = use_median;  // record this channel's plan for the next ones
      if (rec) {
        plan.clear();
        plan.last = kl;
      }
      // 4a. combine per fine pixel
      for (int s = 0; s < nsteps; ++s) {
        const auto& g = groups[s];
        const int nd = static_cast<int>(g.size());
        for (int m = 0; m < nf; ++m) {
          FineCell& cell = cells[static_cast<std::size_t>(s) * nf + m];
          double* cf = coeff.data() + (static_cast<std::size_t>(s) * nf + m) * max_dithers;
          std::fill(cf, cf + max_dithers, 0.0);
          cell = FineCell{};
          vals.clear();
          vars.clear();
          covers.clear();
          didx.clear();
          bool covered = false;
          std::uint32_t why = 0;
          const std::size_t base = (static_cast<std::size_t>(s) * nf + m) * max_dithers;
          for (int d = 0; d < nd; ++d) {
            const int q = g[d];
            const int v = row_of[q][m];
            if (v < 0) continue;
            covered = true;
            const Prepared& p = prep[q];
            // Is row vv of exposure q usable at this channel? Reasons go to `reason`.
            auto usable = [&](int vv, std::uint32_t& reason) {
              if (row_bar[q][vv]) { reason |= kDqBarShadow; return false; }
              const std::uint32_t f = p.at_dq(vv, k);
              if (f & kDqRejectMask) {
                const std::uint32_t r = f & (kDqChipGap | kDqBarShadow | kDqNonFinite | kDqNoCoverage);
                reason |= r ? r : kDqDoNotUse;
                return false;
              }
              const double xv = p.at_sci(vv, k), sv = p.at_err(vv, k);
              if (!std::isfinite(xv) || !std::isfinite(sv) || sv < 0.0) { reason |= kDqNonFinite; return false; }
              return true;
            };
            const double t = row_t[q][m];
            std::uint32_t reason = 0;
            int va = v, vb = v;
            double wa = 1.0, wb = 0.0;
            double cover = 1.0;  // "drop": the fraction of the fine pixel under good drops
            if (drop_fine) {
              // drizzle: the surface-brightness average of the good rows whose drops overlap the
              // fine pixel, weighted by the overlaps; no good drop = no sample from this dither
              const double o0 = drop_o[q][2 * static_cast<std::size_t>(m)];
              const double o1 = drop_o[q][2 * static_cast<std::size_t>(m) + 1];
              const bool ga = o0 > 0.0 && usable(v, reason);
              const bool gb = o1 > 0.0 && usable(v + 1, reason);
              if (!ga && !gb) {
                why |= reason;
                continue;
              }
              if (ga && gb) {
                vb = v + 1;
                cover = o0 + o1;
                wa = o0 / cover;
                wb = o1 / cover;
              } else {
                va = vb = ga ? v : v + 1;
                cover = ga ? o0 : o1;
              }
            }
            if (!drop_fine) {
              const bool ga = usable(v, reason);
              if (t > 0.0) {
                const bool gb = usable(v + 1, reason);
                if (ga && gb) {
                  vb = v + 1;
                  wa = 1.0 - t;
                  wb = t;
                } else if (t >= 0.5 && gb) {
                  va = v + 1;  // the fine pixel's centre lies in row v + 1: its value alone
                } else if (!(t < 0.5 && ga)) {
                  why |= reason;
                  continue;
                }
              } else if (!ga) {
                why |= reason;
                continue;
              }
            }
            const double sa = p.at_err(va, k), sb = p.at_err(vb, k);
            vals.push_back(wa * p.at_sci(va, k) + (wb > 0.0 ? wb * p.at_sci(vb, k) : 0.0));
            vars.push_back(wa * wa * sa * sa + (wb > 0.0 ? wb * wb * sb * sb : 0.0));
            covers.push_back(cover);
            didx.push_back(d);
            rowA[base + d] = va;
            rowB[base + d] = vb;
            wA[base + d] = wa;
            wB[base + d] = wb;
          }
          const int n = static_cast<int>(vals.size());
          if (!covered) why |= kDqNoCoverage;
          if (n < options.min_dithers || n == 0) {
            cell.why = why ? why : kDqNoCoverage;
            continue;
          }
          sorted.clear();
          for (int t = 0; t < n; ++t) sorted.push_back({vals[t], t});
          std::sort(sorted.begin(), sorted.end());
          const double med = (n % 2) ? sorted[n / 2].first : 0.5 * (sorted[n / 2 - 1].first + sorted[n / 2].first);
          if (use_median) {
            cell.value = med;
            cell.n_used = n;
            cell.scale = std::sqrt(median_variance_factor(n));
            for (int t = 0; t < n; ++t) cf[didx[t]] = 1.0 / n;
            continue;
          }
          bool positive = true;
          for (double vv : vars) positive = positive && vv > 0.0;
          w.assign(n, 1.0);
          if (positive)
            for (int t = 0; t < n; ++t) w[t] = 1.0 / vars[t];
          // drizzle weights: the covered fraction of the fine pixel times the inverse variance
          for (int t = 0; t < n; ++t) w[t] *= covers[t];
          keep.assign(n, 1);
          double centre = med;
          if (positive && n >= 3) {
            for (int it = 0; it < options.clip_iterations; ++it) {
              std::vector<char> nk(n, 0);
              int nkeep = 0;
              for (int t = 0; t < n; ++t) {
                nk[t] = std::abs(vals[t] - centre) <= options.clip_sigma * std::sqrt(vars[t]) ? 1 : 0;
                nkeep += nk[t];
              }
              if (nkeep == 0) break;
              double sw = 0.0, sx = 0.0;
              for (int t = 0; t < n; ++t)
                if (nk[t]) { sw += w[t]; sx += w[t] * vals[t]; }
              centre = sx / sw;
              const bool changed = nk != keep;
              keep = nk;
              if (!changed && it > 0) break;
            }
          }
          double sw = 0.0, sx = 0.0;
          int used = 0;
          for (int t = 0; t < n; ++t)
            if (keep[t]) { sw += w[t]; sx += w[t] * vals[t]; ++used; }
          cell.value = sx / sw;
          cell.n_used = used;
          for (int t = 0; t < n; ++t)
            if (keep[t]) cf[didx[t]] = w[t] / sw;
          if (used < n) {
            cell.why = kDqOutlier;
            n_outliers += static_cast<std::size_t>(n - used);
          }
        }
      }
      if (rec) {
        for (int s = 0; s < nsteps; ++s) {
          const auto& g = groups[s];
          const int nd = static_cast<int>(g.size());
          for (int m = 0; m < nf; ++m) {
            const std::size_t c = static_cast<std::size_t>(s) * nf + m;
            const std::size_t base = c * max_dithers;
            if (cells[c].n_used > 0) {
              for (int d = 0; d < nd; ++d) {
                if (coeff[base + d] == 0.0) continue;
                const Prepared& p = prep[g[d]];
                plan.pa.push_back(p.sci + static_cast<std::size_t>(rowA[base + d]) * p.nl);
                plan.pb.push_back(p.sci + static_cast<std::size_t>(rowB[base + d]) * p.nl);
                plan.wa.push_back(wA[base + d]);
                plan.wb.push_back(wB[base + d]);
              }
            }
            plan.cell_start.push_back(static_cast<int>(plan.pa.size()));
          }
        }
      }
      // 4b. resample each column along y onto spaxel rows (exact variance through beta)
      for (int s = 0; s < nsteps; ++s) {
        const auto& g = groups[s];
        const int nd = static_cast<int>(g.size());
        for (int j = 0; j < ny; ++j) {
          const std::size_t sj = static_cast<std::size_t>(s) * ny + j;
          double A = 0.0, sy = 0.0, sn = 0.0;
          std::uint32_t why = 0;
          for (const auto& [m, o] : oy[j]) {
            const FineCell& cell = cells[static_cast<std::size_t>(s) * nf + m];
            why |= cell.why;
            if (cell.n_used == 0) continue;
            A += o;
            sy += o * cell.value;
            sn += o * cell.n_used;
            if (rec) {
              plan.y_cell.push_back(static_cast<int>(static_cast<std::size_t>(s) * nf + m));
              plan.y_o.push_back(o);
            }
          }
          colA[sj] = A;
          colWhy[sj] = why;
          if (A <= 0.0) colN[sj] = 0.0;
          if (rec) {
            plan.colA.push_back(A);
            plan.colN.push_back(A <= 0.0 ? 0.0 : sn / A);
            plan.colWhy.push_back(why);
            plan.y_start.push_back(static_cast<int>(plan.y_cell.size()));
          }
          if (A <= 0.0) {
            colY[sj] = 0.0;
            colV[sj] = 0.0;
            if (rec) plan.v_start.push_back(static_cast<int>(plan.v_err.size()));
            continue;
          }
          colY[sj] = sy / A;
          colN[sj] = sn / A;
          touched.clear();
          for (const auto& [m, o] : oy[j]) {
            const FineCell& cell = cells[static_cast<std::size_t>(s) * nf + m];
            if (cell.n_used == 0) continue;
            const std::size_t base = (static_cast<std::size_t>(s) * nf + m) * max_dithers;
            const double* cf = coeff.data() + base;
            for (int d = 0; d < nd; ++d) {
              if (cf[d] == 0.0) continue;
              const double c = (o / A) * cf[d] * cell.scale;
              const std::size_t b = static_cast<std::size_t>(d) * max_nv + rowA[base + d];
              if (beta[b] == 0.0) touched.push_back(static_cast<int>(b));
              beta[b] += c * wA[base + d];
              if (wB[base + d] > 0.0) {
                const std::size_t b2 = static_cast<std::size_t>(d) * max_nv + rowB[base + d];
                if (beta[b2] == 0.0) touched.push_back(static_cast<int>(b2));
                beta[b2] += c * wB[base + d];
              }
            }
          }
          std::sort(touched.begin(), touched.end());
          double var = 0.0;
          for (int b : touched) {
            const int d = b / max_nv, v = b % max_nv;
            const double sg = prep[g[d]].at_err(v, k);
            var += beta[b] * beta[b] * sg * sg;
            if (rec) {
              plan.v_err.push_back(prep[g[d]].err + static_cast<std::size_t>(v) * prep[g[d]].nl);
              plan.v_bb.push_back(beta[b] * beta[b]);
            }
            beta[b] = 0.0;
          }
          colV[sj] = var;
          if (rec) plan.v_start.push_back(static_cast<int>(plan.v_err.size()));
        }
      }
      // 4c. spaxels
      for (int j = 0; j < ny; ++j) {
        for (int i = 0; i < nx; ++i) {
          double G = 0.0, sv = 0.0, svar = 0.0, sn = 0.0;
          std::uint32_t why = 0;
          for (int s = 0; s < nsteps; ++s) {
            const double o = ox[static_cast<std::size_t>(i) * nsteps + s];
            if (o <= 0.0) continue;
            const std::size_t sj = static_cast<std::size_t>(s) * ny + j;
            why |= colWhy[sj];
            const double a = o * colA[sj];
            if (a <= 0.0) continue;
            G += a;
            sv += a * colY[sj];
            svar += a * a * colV[sj];
            sn += a * colN[sj];
            if (rec) {
              plan.x_sj.push_back(static_cast<int>(sj));
              plan.x_a.push_back(a);
              plan.x_aa.push_back(a * a);
            }
          }
          const std::size_t idx = cube.index(i, j, k);
          if (rec) {
            plan.x_start.push_back(static_cast<int>(plan.x_sj.size()));
            plan.G.push_back(G);
          }
          if (G <= 0.0) {
            why &= (kDqNoCoverage | kDqChipGap | kDqBarShadow | kDqNonFinite | kDqDoNotUse);
            // A reason other than "no coverage" explains the loss better when present.
            if (why & (kDqChipGap | kDqBarShadow | kDqNonFinite)) why &= ~kDqNoCoverage;
            cube.sci[idx] = nan;
            cube.err[idx] = nan;
            cube.wmap[idx] = 0.0;
            cube.dq[idx] = kDqDoNotUse | (why ? why : kDqNoCoverage);
            if (rec) {
              plan.nw.push_back(0.0);
              plan.dq.push_back(cube.dq[idx]);
            }
            continue;
          }
          cube.sci[idx] = sv / G;
          cube.err[idx] = std::sqrt(svar) / G;
          const double nw = sn / G;
          cube.wmap[idx] = nw;
          std::uint32_t flag = why & kDqOutlier;
          if (G < (1.0 - 1e-6) * full_area || nw < low_coverage - 1e-9) flag |= kDqLowCoverage;
          cube.dq[idx] = flag;
          if (rec) {
            plan.nw.push_back(nw);
            plan.dq.push_back(flag);
          }
        }
      }
      if (rec) plan.valid = true;
    }
  }
  res.n_outliers_rejected = n_outliers;
  std::size_t n_no_data = 0, n_low = 0;  // branch-free counts
  for (std::uint32_t f : cube.dq) {
    n_no_data += (f & kDqDoNotUse) ? 1u : 0u;
    n_low += (f & kDqLowCoverage) ? 1u : 0u;
  }
  res.n_voxels_no_data = n_no_data;
  res.n_voxels_low_coverage = n_low;
  res.cube = std::move(cube);
  res.n_exposures = static_cast<int>(exposures.size());
  res.n_steps = nsteps;
  res.fine_pixel_arcsec = fine;
  res.status = Status::Ok();
  return res;
}

}  // namespace slitstep
