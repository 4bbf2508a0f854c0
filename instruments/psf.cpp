#include "instruments/psf.hpp"

#include <fftw3.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/error.hpp"
#include "core/fftw_planner.hpp"
#include "core/conv1d.hpp"
#include "core/fits.hpp"
#include "core/simd.hpp"
#include "core/units.hpp"

namespace slitstep {
namespace {

constexpr double kFwhmPerSigma = 2.3548200450309493;
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr int kSub = 5;  // sub-samples per pixel axis for Airy / file kernels

std::mutex& planner_mutex() { return fftw_planner_mutex(); }

// Smallest n' >= n whose prime factors are 2, 3, 5, 7.
int smooth_size(int n) {
  for (int m = std::max(n, 1);; ++m) {
    int r = m;
    for (int p : {2, 3, 5, 7})
      while (r % p == 0) r /= p;
    if (r == 1) return m;
  }
}

double airy_intensity(double v, double eps) {
  auto term = [](double x) { return x < 1e-8 ? 1.0 : 2.0 * std::cyl_bessel_j(1.0, x) / x; };
  const double a = term(v) - eps * eps * term(eps * v);
  return a * a;
}

double bilinear(const PsfImage& im, double fx, double fy) {
  if (fx < 0.0 || fy < 0.0 || fx > im.nx - 1 || fy > im.ny - 1) return 0.0;
  const int ix = std::min(static_cast<int>(fx), im.nx - 2), iy = std::min(static_cast<int>(fy), im.ny - 2);
  const double tx = fx - ix, ty = fy - iy;
  auto v = [&](int x, int y) { return im.values[static_cast<std::size_t>(y) * im.nx + x]; };
  if (im.nx < 2 || im.ny < 2) return v(0, 0);
  return (1 - ty) * ((1 - tx) * v(ix, iy) + tx * v(ix + 1, iy)) + ty * ((1 - tx) * v(ix, iy + 1) + tx * v(ix + 1, iy + 1));
}


}  // namespace

void PsfConfig::validate() const {
  auto bad = [](const std::string& f, double v, const char* rule) {
    throw InvalidOptions("instrument.psf_" + f + " = " + format_value(v) + ": " + rule);
  };
  if (model != "gaussian" && model != "airy" && model != "file" && model != "none")
    throw InvalidOptions("instrument.psf_model = \"" + model + "\": must be gaussian, airy, file or none");
  if (!std::isfinite(fwhm_arcsec) || !(fwhm_arcsec > 0.0) || fwhm_arcsec > 2.0)
    bad("fwhm_arcsec", fwhm_arcsec, "must be in (0, 2]");
  if (!std::isfinite(ref_wavelength_um) || !(ref_wavelength_um > 0.0))
    bad("ref_wavelength_um", ref_wavelength_um, "must be finite and > 0");
  if (!std::isfinite(diameter_m) || !(diameter_m > 0.0)) bad("diameter_m", diameter_m, "must be finite and > 0");
  if (!std::isfinite(obscuration) || obscuration < 0.0 || obscuration >= 1.0)
    bad("obscuration", obscuration, "must be in [0, 1)");
  if (!std::isfinite(radius_arcsec) || !(radius_arcsec > 0.0) || radius_arcsec > 5.0)
    bad("radius_arcsec", radius_arcsec, "must be in (0, 5]");
  if (!std::isfinite(max_fwhm_rel_change) || !(max_fwhm_rel_change > 0.0) || max_fwhm_rel_change > 0.2)
    bad("max_fwhm_rel_change", max_fwhm_rel_change, "must be in (0, 0.2]");
  if (model == "file") {
    if (file.empty()) throw InvalidOptions("instrument.psf_file = \"\": required when psf_model = \"file\"");
    if (!std::isfinite(file_pixel_arcsec) || !(file_pixel_arcsec > 0.0))
      bad("file_pixel_arcsec", file_pixel_arcsec, "must be finite and > 0 when psf_model = \"file\"");
    if (!std::isfinite(file_ref_wavelength_um) || file_ref_wavelength_um < 0.0)
      bad("file_ref_wavelength_um", file_ref_wavelength_um, "must be finite and >= 0 (0 = no scaling)");
  }
}

PsfImage read_psf_image(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(path + ": PSF image not found");
  FitsFile f = FitsFile::open_read(path);
  const int n = f.num_hdus();
  for (int h = 0; h < n; ++h) {
    f.move_to(h);
    if (f.hdu_type() != HduType::kImage) continue;
    const auto dims = f.image_dims();
    if (dims.size() != 2) continue;
    PsfImage im;
    im.nx = static_cast<int>(dims[0]);
    im.ny = static_cast<int>(dims[1]);
    im.values = f.read_image_double(dims);
    double s = 0.0;
    for (double& v : im.values) {
      if (!std::isfinite(v)) v = 0.0;
      s += v;
    }
    if (!(s > 0.0)) throw InputError(path + ": PSF image sums to " + format_value(s) + ", must be > 0");
    for (double& v : im.values) v /= s;
    return im;
  }
  throw InputError(path + ": no 2-D image HDU found for the PSF");
}

double psf_fwhm_arcsec(const PsfConfig& c, double l) {
  if (c.model == "gaussian") return c.fwhm_arcsec * l / c.ref_wavelength_um;
  if (c.model == "airy") return 1.029 * l * 1e-6 / c.diameter_m * kArcsecPerRad;
  if (c.model == "file") {
    // nominal only (the image is not at hand here): file_pixel * 2 as a floor estimate
    return c.file_pixel_arcsec * 2.0 * (c.file_ref_wavelength_um > 0 ? l / c.file_ref_wavelength_um : 1.0);
  }
  return 0.0;
}

PsfKernel make_psf_kernel(const PsfConfig& c, double l, double p, const PsfImage* image) {
  PsfKernel k;
  k.pixel_arcsec = p;
  if (c.model == "none") {
    k.half = 0;
    k.values = {1.0};
    return k;
  }
  double radius = c.radius_arcsec;
  if (c.model == "gaussian") radius = std::min(radius, 4.0 * psf_fwhm_arcsec(c, l));
  k.half = std::max(1, static_cast<int>(std::ceil(radius / p)));
  const int n = 2 * k.half + 1;
  k.values.assign(static_cast<std::size_t>(n) * n, 0.0);
  if (c.model == "gaussian") {
    const double sig = psf_fwhm_arcsec(c, l) / kFwhmPerSigma;
    std::vector<double> g(n);
    for (int d = -k.half; d <= k.half; ++d)
      g[d + k.half] = 0.5 * (std::erfc(-(d + 0.5) * p / sig * kInvSqrt2) - std::erfc(-(d - 0.5) * p / sig * kInvSqrt2));
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) k.values[static_cast<std::size_t>(y) * n + x] = g[x] * g[y];
  } else if (c.model == "airy") {
    const double vscale = kPi * c.diameter_m / (l * 1e-6) / kArcsecPerRad;  // v per arcsec
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        double s = 0.0;
        for (int sy = 0; sy < kSub; ++sy)
          for (int sx = 0; sx < kSub; ++sx) {
            const double ox = (x - k.half + (sx + 0.5) / kSub - 0.5) * p;
            const double oy = (y - k.half + (sy + 0.5) / kSub - 0.5) * p;
            s += airy_intensity(vscale * std::hypot(ox, oy), c.obscuration);
          }
        k.values[static_cast<std::size_t>(y) * n + x] = s;
      }
  } else {  // file
    if (!image) throw InvalidOptions("make_psf_kernel: psf_model = \"file\" needs the PSF image");
    const double scale = c.file_ref_wavelength_um > 0.0 ? l / c.file_ref_wavelength_um : 1.0;
    const double cx = 0.5 * (image->nx - 1), cy = 0.5 * (image->ny - 1);
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        double s = 0.0;
        for (int sy = 0; sy < kSub; ++sy)
          for (int sx = 0; sx < kSub; ++sx) {
            const double ox = (x - k.half + (sx + 0.5) / kSub - 0.5) * p;
            const double oy = (y - k.half + (sy + 0.5) / kSub - 0.5) * p;
            s += bilinear(*image, cx + ox / (scale * c.file_pixel_arcsec), cy + oy / (scale * c.file_pixel_arcsec));
          }
        k.values[static_cast<std::size_t>(y) * n + x] = s;
      }
  }
  double sum = 0.0;
  for (double v : k.values) sum += v;
  if (!(sum > 0.0)) {  // e.g. a file PSF much smaller than a pixel: put it all in the centre
    std::fill(k.values.begin(), k.values.end(), 0.0);
    k.values[static_cast<std::size_t>(k.half) * n + k.half] = 1.0;
    return k;
  }
  for (double& v : k.values) v /= sum;
  return k;
}

struct PsfConvolver::Fft {
  int nxp = 0, nyp = 0;
  fftw_plan fwd = nullptr, bwd = nullptr;
  std::vector<fftw_complex*> khat;  // per chunk, nyp * (nxp/2+1)
  ~Fft() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    for (auto* p : khat) fftw_free(p);
    if (fwd) fftw_destroy_plan(fwd);
    if (bwd) fftw_destroy_plan(bwd);
  }
};

PsfConvolver::PsfConvolver(const PsfConfig& c, const SpatialGrid& spatial, const WavelengthGrid& spectral) {
  c.validate();
  spatial.validate();
  config_ = c;
  nx_ = spatial.nx;
  ny_ = spatial.ny;
  nl_ = spectral.size();
  PsfImage image;
  if (c.model == "file") {
    image = read_psf_image(c.file);
    file_fwhm_arcsec_ = psf_image_fwhm_pixels(image) * c.file_pixel_arcsec;
  }
  enabled_ = c.model != "none" && nl_ > 0;
  if (!enabled_) return;
  auto fwhm = [&](double l) { return fwhm_arcsec(l); };
  // chunks within windows
  chunk_of_.assign(nl_, 0);
  for (std::size_t w = 0; w < spectral.windows().size(); ++w) {
    const std::size_t first = spectral.window_offset(w);
    const std::size_t end = first + static_cast<std::size_t>(spectral.windows()[w].n);
    std::size_t k0 = first;
    while (k0 < end) {
      const double f0 = fwhm(spectral.wavelength_um(k0));
      std::size_t k1 = k0 + 1;
      while (k1 < end && fwhm(spectral.wavelength_um(k1)) <= f0 * (1.0 + 2.0 * c.max_fwhm_rel_change)) ++k1;
      const double lmid = 0.5 * (spectral.wavelength_um(k0) + spectral.wavelength_um(k1 - 1));
      const double fm = fwhm(lmid);
      for (std::size_t k : {k0, k1 - 1}) max_rel_err_ = std::max(max_rel_err_, std::abs(fwhm(spectral.wavelength_um(k)) / fm - 1.0));
      for (std::size_t k = k0; k < k1; ++k) chunk_of_[k] = chunk_first_.size();
      chunk_first_.push_back(k0);
      chunk_end_.push_back(k1);
      kernels_.push_back(make_psf_kernel(c, lmid, spatial.pixel_arcsec, c.model == "file" ? &image : nullptr));
      if (c.model == "gaussian") {
        // the 1-D factor of the same kernel: g(d) as in make_psf_kernel, normalised
        const PsfKernel& K = kernels_.back();
        const double sig = psf_fwhm_arcsec(c, lmid) / kFwhmPerSigma, p = spatial.pixel_arcsec;
        std::vector<double> g(static_cast<std::size_t>(2 * K.half + 1));
        double sum = 0.0;
        for (int d = -K.half; d <= K.half; ++d) {
          g[static_cast<std::size_t>(d + K.half)] =
              0.5 * (std::erfc(-(d + 0.5) * p / sig * kInvSqrt2) - std::erfc(-(d - 0.5) * p / sig * kInvSqrt2));
          sum += g[static_cast<std::size_t>(d + K.half)];
        }
        for (double& v : g) v /= sum;
        factors_.push_back(std::move(g));
        chunk_sigma_px_.push_back(sig / p);
      }
      k0 = k1;
    }
  }
  int hmax = 0;
  for (const auto& k : kernels_) hmax = std::max(hmax, k.half);
  fft_ = std::make_unique<Fft>();
  Fft& f = *fft_;
  f.nxp = smooth_size(nx_ + hmax);
  f.nyp = smooth_size(ny_ + hmax);
  const std::size_t nreal = static_cast<std::size_t>(f.nxp) * f.nyp;
  const std::size_t ncplx = static_cast<std::size_t>(f.nxp / 2 + 1) * f.nyp;
  double* rbuf = fftw_alloc_real(nreal);
  fftw_complex* cbuf = fftw_alloc_complex(ncplx);
  {
    std::lock_guard<std::mutex> lock(planner_mutex());
    f.fwd = fftw_plan_dft_r2c_2d(f.nyp, f.nxp, rbuf, cbuf, FFTW_ESTIMATE);
    f.bwd = fftw_plan_dft_c2r_2d(f.nyp, f.nxp, cbuf, rbuf, FFTW_ESTIMATE);
  }
  const double norm = 1.0 / static_cast<double>(nreal);
  for (const auto& k : kernels_) {
    std::fill(rbuf, rbuf + nreal, 0.0);
    for (int dy = -k.half; dy <= k.half; ++dy)
      for (int dx = -k.half; dx <= k.half; ++dx) {
        const int yy = (dy + f.nyp) % f.nyp, xx = (dx + f.nxp) % f.nxp;
        rbuf[static_cast<std::size_t>(yy) * f.nxp + xx] = k.at(dx, dy) * norm;
      }
    fftw_complex* kh = fftw_alloc_complex(ncplx);
    fftw_execute_dft_r2c(f.fwd, rbuf, kh);
    f.khat.push_back(kh);
  }
  fftw_free(rbuf);
  fftw_free(cbuf);
}

PsfConvolver::~PsfConvolver() = default;

double PsfConvolver::fwhm_arcsec(double l) const {
  if (config_.model == "file")
    return file_fwhm_arcsec_ * (config_.file_ref_wavelength_um > 0 ? l / config_.file_ref_wavelength_um : 1.0);
  return psf_fwhm_arcsec(config_, l);
}

bool PsfConvolver::pass_through(const char* who, const std::vector<double>& in, std::vector<double>& out) const {
  const std::size_t n = static_cast<std::size_t>(nx_) * ny_ * nl_;
  if (in.size() != n)
    throw InvalidOptions(std::string("PsfConvolver::") + who + ": input has " + std::to_string(in.size()) +
                         " values, expected " + std::to_string(n));
  if (enabled_) return false;
  out = in;
  return true;
}

void PsfConvolver::apply(const std::vector<double>& in, std::vector<double>& out, int threads) const {
  if (pass_through("apply", in, out)) return;
  const std::size_t n = in.size();
  out.assign(n, 0.0);
  const Fft& f = *fft_;
  const std::size_t nreal = static_cast<std::size_t>(f.nxp) * f.nyp;
  const std::size_t ncplx = static_cast<std::size_t>(f.nxp / 2 + 1) * f.nyp;
  const long nl = static_cast<long>(nl_);
  const int nthreads = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel num_threads(nthreads)
  {
    double* r = fftw_alloc_real(nreal);
    fftw_complex* cx = fftw_alloc_complex(ncplx);
#pragma omp for schedule(static)
    for (long kk = 0; kk < nl; ++kk) {
      const std::size_t k = static_cast<std::size_t>(kk);
      std::fill(r, r + nreal, 0.0);
      bool any = false;
      for (int j = 0; j < ny_; ++j)
        for (int i = 0; i < nx_; ++i) {
          const double v = in[(static_cast<std::size_t>(j) * nx_ + i) * nl_ + k];
          r[static_cast<std::size_t>(j) * f.nxp + i] = v;
          any |= (v != 0.0);
        }
      if (!any) continue;
      fftw_execute_dft_r2c(f.fwd, r, cx);
      const fftw_complex* kh = f.khat[chunk_of_[k]];
      for (std::size_t q = 0; q < ncplx; ++q) {
        const double re = cx[q][0] * kh[q][0] - cx[q][1] * kh[q][1];
        const double im = cx[q][0] * kh[q][1] + cx[q][1] * kh[q][0];
        cx[q][0] = re;
        cx[q][1] = im;
      }
      fftw_execute_dft_c2r(f.bwd, cx, r);
      for (int j = 0; j < ny_; ++j)
        for (int i = 0; i < nx_; ++i) out[(static_cast<std::size_t>(j) * nx_ + i) * nl_ + k] = r[static_cast<std::size_t>(j) * f.nxp + i];
    }
    fftw_free(r);
    fftw_free(cx);
  }
}

std::vector<double> PsfConvolver::separable_factor(std::size_t chunk, double truncate_sigma) const {
  if (!separable()) throw InvalidOptions("PsfConvolver::separable_factor: psf_model = \"" + config_.model + "\" is not separable");
  if (!(truncate_sigma >= 0.0) || !std::isfinite(truncate_sigma))
    throw InvalidOptions("PsfConvolver: truncate_sigma = " + format_value(truncate_sigma) + ": must be finite and >= 0");
  const std::vector<double>& f = factors_.at(chunk);
  const int half = static_cast<int>(f.size() / 2);
  if (truncate_sigma == 0.0) return f;
  const int h = std::min(half, std::max(1, static_cast<int>(std::ceil(truncate_sigma * chunk_sigma_px_[chunk]))));
  if (h == half) return f;
  std::vector<double> t(f.begin() + (half - h), f.begin() + (half + h + 1));
  double sum = 0.0;
  for (double v : t) sum += v;
  for (double& v : t) v /= sum;
  return t;
}

namespace {

// One direct 1-D pass along an axis with `stride` (in spectra) between neighbours:
// out(p) = sum_d h[d] in(p - d*stride) over the n positions of a line, channel ranges per chunk,
// every spectrum's nonzero range [first, last] (first > last: all zero) used to skip zeros.
// Writes the union range of its output spectra to ofirst/olast.
struct Line1D {
  const double* in;
  double* out;
  const int* first;
  const int* last;
  int* ofirst;
  int* olast;
  std::size_t nl;
};

using conv1d::conv_range;
using conv1d::Tap;

SLITSTEP_SIMD_CLONES
void pass_line(const Line1D& L, std::size_t base, std::size_t stride, int n, const std::vector<std::vector<double>>& h,
               const std::vector<std::size_t>& ch_first, const std::vector<std::size_t>& ch_end, const char* need) {
  const std::size_t nl = L.nl;
  int hmax = 0;
  for (const auto& v : h) hmax = std::max(hmax, static_cast<int>(v.size() / 2));
  std::vector<Tap> taps(static_cast<std::size_t>(2 * hmax + 1));
  for (int i = 0; i < n; ++i) {
    const std::size_t po = base + static_cast<std::size_t>(i) * stride;
    if (need && !need[i]) {
      L.ofirst[po] = static_cast<int>(nl);
      L.olast[po] = -1;
      continue;
    }
    // the source spectrum the next output's taps reach first: fetch it while this one is summed
    if (i + 1 + hmax < n) {
      const std::size_t pn = base + static_cast<std::size_t>(i + 1 + hmax) * stride;
      const double* sn = L.in + pn * nl;
      for (int k = L.first[pn]; k <= L.last[pn]; k += 8) __builtin_prefetch(sn + k, 0, 3);
    }
    if (i + 1 < n) {
      const double* on = L.out + (po + stride) * nl;
      for (std::size_t k = 0; k < nl; k += 8) __builtin_prefetch(on + k, 1, 3);
    }
    double* __restrict o = L.out + po * nl;
    int lo, hi;
    const bool any = conv1d::begin_output(L.first, L.last, base, stride, n, i, hmax, nl, o, lo, hi);
    L.ofirst[po] = lo;
    L.olast[po] = hi;
    if (!any) continue;
    for (std::size_t c = 0; c < h.size(); ++c) {
      const int ka = std::max(lo, static_cast<int>(ch_first[c])), kb = std::min(hi, static_cast<int>(ch_end[c]) - 1);
      if (kb < ka) continue;
      Tap* te = conv1d::chunk_taps(L.in, L.first, L.last, base, stride, n, i, nl, h[c], ka, kb, taps.data());
      if (te != taps.data()) conv_range(taps.data(), te, ka, kb, o);
    }
  }
}

}  // namespace

void PsfConvolver::apply_separable(const std::vector<double>& in, std::vector<double>& out,
                                   std::vector<double>& scratch, int threads, double truncate_sigma,
                                   const std::vector<char>& columns_needed, const std::vector<char>& rows_needed,
                                   bool y_pass, std::vector<int>* ranges) const {
  if (pass_through("apply_separable", in, out)) return;
  const std::size_t n = in.size();
  if (!separable())
    throw InvalidOptions("PsfConvolver::apply_separable: psf_model = \"" + config_.model +
                         "\" is not separable (use apply)");
  if ((!columns_needed.empty() && columns_needed.size() != static_cast<std::size_t>(nx_)) ||
      (!rows_needed.empty() && rows_needed.size() != static_cast<std::size_t>(ny_)))
    throw InvalidOptions("PsfConvolver::apply_separable: the masks need " + std::to_string(nx_) + " columns and " +
                         std::to_string(ny_) + " rows");
  std::vector<std::vector<double>> h(factors_.size());
  int hmax = 0;
  for (std::size_t c = 0; c < h.size(); ++c) {
    h[c] = separable_factor(c, truncate_sigma);
    hmax = std::max(hmax, static_cast<int>(h[c].size() / 2));
  }
  // rows the x pass must produce: the needed rows dilated by the y taps (without a y pass: the
  // needed rows)
  std::vector<char> xrows(static_cast<std::size_t>(ny_), 1);
  if (!rows_needed.empty() && !y_pass) {
    xrows = rows_needed;
  } else if (!rows_needed.empty()) {
    std::fill(xrows.begin(), xrows.end(), 0);
    for (int j = 0; j < ny_; ++j)
      if (rows_needed[static_cast<std::size_t>(j)])
        for (int d = std::max(0, j - hmax); d <= std::min(ny_ - 1, j + hmax); ++d) xrows[static_cast<std::size_t>(d)] = 1;
  }
  const char* cneed = columns_needed.empty() ? nullptr : columns_needed.data();
  const char* rneed = rows_needed.empty() ? nullptr : rows_needed.data();
  out.resize(n);
  if (y_pass) scratch.resize(n);
  const std::size_t npix = static_cast<std::size_t>(nx_) * ny_;
  // nonzero ranges [first, last] of the input, x-pass and y-pass spectra; outputs a pass skips
  // stay empty (first > last)
  std::vector<int> f0(npix), l0(npix), f1(npix, static_cast<int>(nl_)), l1(npix, -1), f2(npix, static_cast<int>(nl_)),
      l2(npix, -1);
  const int nthreads = threads > 0 ? threads : omp_get_max_threads();
  const long nl = static_cast<long>(nl_);
#pragma omp parallel num_threads(nthreads)
  {
    // nonzero range of every input spectrum
#pragma omp for schedule(static)
    for (long q = 0; q < static_cast<long>(npix); ++q) {
      const double* s = in.data() + static_cast<std::size_t>(q) * nl_;
      long a = 0, b = nl - 1;
      while (a < nl && s[a] == 0.0) ++a;
      while (b >= a && s[b] == 0.0) --b;
      f0[q] = static_cast<int>(a);
      l0[q] = static_cast<int>(b);
    }
    // x pass: one sky row j at a time (neighbours 1 spectrum apart)
    const Line1D lx{in.data(), y_pass ? scratch.data() : out.data(), f0.data(), l0.data(), f1.data(), l1.data(), nl_};
#pragma omp for schedule(static)
    for (int j = 0; j < ny_; ++j) {
      if (!xrows[static_cast<std::size_t>(j)]) continue;
      pass_line(lx, static_cast<std::size_t>(j) * nx_, 1, nx_, h, chunk_first_, chunk_end_, cneed);
    }
    // y pass: one sky column i at a time (neighbours nx spectra apart)
    if (y_pass) {
      const Line1D ly{scratch.data(), out.data(), f1.data(), l1.data(), f2.data(), l2.data(), nl_};
#pragma omp for schedule(static)
      for (int i = 0; i < nx_; ++i) {
        if (cneed && !cneed[i]) continue;
        pass_line(ly, static_cast<std::size_t>(i), static_cast<std::size_t>(nx_), ny_, h, chunk_first_, chunk_end_, rneed);
      }
    }
  }
  if (ranges) {
    const std::vector<int>& f = y_pass ? f2 : f1;
    const std::vector<int>& l = y_pass ? l2 : l1;
    ranges->resize(2 * npix);
    for (std::size_t q = 0; q < npix; ++q) {
      (*ranges)[2 * q] = f[q];
      (*ranges)[2 * q + 1] = l[q];
    }
  }
}

void PsfConvolver::apply_direct(const std::vector<double>& in, std::vector<double>& out) const {
  if (pass_through("apply_direct", in, out)) return;
  const std::size_t n = in.size();
  out.assign(n, 0.0);
  for (std::size_t k = 0; k < nl_; ++k) {
    const PsfKernel& K = kernels_[chunk_of_[k]];
    for (int j = 0; j < ny_; ++j)
      for (int i = 0; i < nx_; ++i) {
        double s = 0.0;
        for (int dy = -K.half; dy <= K.half; ++dy)
          for (int dx = -K.half; dx <= K.half; ++dx) {
            const int si = i - dx, sj = j - dy;
            if (si < 0 || sj < 0 || si >= nx_ || sj >= ny_) continue;
            s += in[(static_cast<std::size_t>(sj) * nx_ + si) * nl_ + k] * K.at(dx, dy);
          }
        out[(static_cast<std::size_t>(j) * nx_ + i) * nl_ + k] = s;
      }
  }
}

double psf_image_fwhm_pixels(const PsfImage& im) {
  double s = 0, sx = 0, sy = 0;
  for (int y = 0; y < im.ny; ++y)
    for (int x = 0; x < im.nx; ++x) {
      const double v = im.values[static_cast<std::size_t>(y) * im.nx + x];
      s += v, sx += v * x, sy += v * y;
    }
  const double mx = sx / s, my = sy / s;
  double r2 = 0;
  for (int y = 0; y < im.ny; ++y)
    for (int x = 0; x < im.nx; ++x) {
      const double v = im.values[static_cast<std::size_t>(y) * im.nx + x];
      r2 += v * ((x - mx) * (x - mx) + (y - my) * (y - my));
    }
  return kFwhmPerSigma * std::sqrt(0.5 * r2 / s);
}

}  // namespace slitstep
