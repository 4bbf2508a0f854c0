#include "instruments/generic_ifu.hpp"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "core/error.hpp"
#include "core/fftw_planner.hpp"
#include "core/simd.hpp"
#include "core/units.hpp"

namespace slitstep {
namespace {

constexpr double kFwhmPerSigma = 2.3548200450309493;
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr std::size_t kBlock = 8;  // channels per batched FFT

std::mutex& planner_mutex() { return fftw_planner_mutex(); }

int smooth_size(int n) {
  for (int m = std::max(n, 1);; ++m) {
    int r = m;
    for (int p : {2, 3, 5, 7})
      while (r % p == 0) r /= p;
    if (r == 1) return m;
  }
}

std::string fmt_list(const std::vector<double>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + format_value(v[i]);
  return s + "]";
}

// Gauss-Legendre nodes/weights on [-1, 1], 6 points.
constexpr double kGl6x[6] = {-0.9324695142031521, -0.6612093864662645, -0.2386191860831969,
                             0.2386191860831969,  0.6612093864662645,  0.9324695142031521};
constexpr double kGl6w[6] = {0.1713244923791704, 0.3607615730481386, 0.4679139345726910,
                             0.4679139345726910, 0.3607615730481386, 0.1713244923791704};

double moffat_alpha(double fwhm, double beta) { return fwhm / (2.0 * std::sqrt(std::pow(2.0, 1.0 / beta) - 1.0)); }

// Radial profile of a multi-Gaussian (unnormalised peak = sum w / sigma^2).
double multi_gauss_profile(const GenericIfuConfig& c, double r) {
  double s = 0.0;
  for (std::size_t i = 0; i < c.psf_weights.size(); ++i) {
    const double sg = c.psf_fwhms_arcsec[i] / kFwhmPerSigma;
    s += c.psf_weights[i] / (sg * sg) * std::exp(-0.5 * r * r / (sg * sg));
  }
  return s;
}


// g(t) = Psi(|t|) - |t| with Psi(t) = t Phi(t) + phi(t): the smooth part of the antiderivative of
// Phi (Psi(t) = max(t, 0) + g(t) exactly).
double psi_smooth(double t) {
  const double a = std::fabs(t);
  if (a > 38.0) return 0.0;
  return kInvSqrt2Pi * std::exp(-0.5 * a * a) - a * 0.5 * std::erfc(a * kInvSqrt2);
}

// Overlap length of [a0, a1] and [b0, b1].
double overlap(double a0, double a1, double b0, double b1) {
  return std::max(0.0, std::min(a1, b1) - std::max(a0, b0));
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------

std::vector<IfuConfigIssue> check_generic_ifu_config(const GenericIfuConfig& c) {
  std::vector<IfuConfigIssue> v;
  auto bad = [&](const std::string& key, const std::string& value, const std::string& rule) {
    v.push_back({key, value, rule});
  };
  auto num = [&](const std::string& key, double x, bool ok, const std::string& rule) {
    if (!std::isfinite(x) || !ok) bad(key, format_value(x), rule);
  };
  num("nx", c.nx, c.nx >= 1 && c.nx <= 2000, "must be in [1, 2000]");
  num("ny", c.ny, c.ny >= 1 && c.ny <= 2000, "must be in [1, 2000]");
  num("spaxel_arcsec", c.spaxel_arcsec, c.spaxel_arcsec > 0.0 && c.spaxel_arcsec <= 10.0, "must be in (0, 10]");
  num("center_x_arcsec", c.center_x_arcsec, std::fabs(c.center_x_arcsec) <= 600.0, "must be in [-600, 600]");
  num("center_y_arcsec", c.center_y_arcsec, std::fabs(c.center_y_arcsec) <= 600.0, "must be in [-600, 600]");
  num("sky_ra_deg", c.sky.ra_deg, c.sky.ra_deg >= 0.0 && c.sky.ra_deg < 360.0, "must be in [0, 360)");
  num("sky_dec_deg", c.sky.dec_deg, c.sky.dec_deg >= -90.0 && c.sky.dec_deg <= 90.0, "must be in [-90, 90]");
  num("sky_pa_deg", c.sky.aperture_pa_deg, true, "must be finite");
  num("wave_start_um", c.wave_start_um, c.wave_start_um > 0.0 && c.wave_start_um < 100.0, "must be in (0, 100) (micrometres)");
  num("wave_step_um", c.wave_step_um, c.wave_step_um > 0.0 && c.wave_step_um < 0.1 * c.wave_start_um,
      "must be > 0 and < 0.1 * wave_start_um (micrometres)");
  num("n_wave", c.n_wave, c.n_wave >= 1 && c.n_wave <= 100000, "must be in [1, 100000]");
  const std::string& m = c.psf_model;
  if (m != "gaussian" && m != "multi_gaussian" && m != "moffat" && m != "file" && m != "none")
    bad("psf_model", "\"" + m + "\"", "must be gaussian, multi_gaussian, moffat, file or none");
  if (m == "gaussian" || m == "moffat")
    num("psf_fwhm_arcsec", c.psf_fwhm_arcsec, c.psf_fwhm_arcsec > 0.0 && c.psf_fwhm_arcsec <= 20.0, "must be in (0, 20]");
  if (m == "moffat")
    num("psf_moffat_beta", c.psf_moffat_beta, c.psf_moffat_beta > 1.0 && c.psf_moffat_beta <= 50.0, "must be in (1, 50]");
  if (m == "multi_gaussian") {
    if (c.psf_weights.empty() || c.psf_weights.size() > 10)
      bad("psf_weights", fmt_list(c.psf_weights), "must hold 1 to 10 weights for multi_gaussian");
    else if (c.psf_fwhms_arcsec.size() != c.psf_weights.size())
      bad("psf_fwhms_arcsec", fmt_list(c.psf_fwhms_arcsec), "must have as many entries as psf_weights");
    else {
      for (double w : c.psf_weights)
        if (!(std::isfinite(w) && w > 0.0)) { bad("psf_weights", fmt_list(c.psf_weights), "every weight must be > 0"); break; }
      for (double f : c.psf_fwhms_arcsec)
        if (!(std::isfinite(f) && f > 0.0 && f <= 20.0)) {
          bad("psf_fwhms_arcsec", fmt_list(c.psf_fwhms_arcsec), "every FWHM must be in (0, 20]");
          break;
        }
    }
  }
  if (m == "file") {
    if (c.psf_file.empty()) bad("psf_file", "\"\"", "required when psf_model = \"file\"");
    num("psf_file_pixel_arcsec", c.psf_file_pixel_arcsec, c.psf_file_pixel_arcsec > 0.0 && c.psf_file_pixel_arcsec <= 10.0,
        "must be in (0, 10] when psf_model = \"file\"");
  }
  num("psf_radius_arcsec", c.psf_radius_arcsec, c.psf_radius_arcsec >= 0.0 && c.psf_radius_arcsec <= 60.0,
      "must be in [0, 60] (0 = automatic)");
  if (c.lsf_kind != "sigma_kms" && c.lsf_kind != "fwhm_A")
    bad("lsf_kind", "\"" + c.lsf_kind + "\"", "must be sigma_kms or fwhm_A");
  const std::string lkey = c.lsf_kind == "fwhm_A" ? "lsf_fwhm_A" : "lsf_sigma_kms";
  const double lmax = 1e4;
  if (c.lsf_values.empty()) bad(lkey, "[]", "needs a value");
  else if (c.lsf_wavelength_um.empty() && c.lsf_values.size() != 1)
    bad(lkey, fmt_list(c.lsf_values), "must be one number without lsf_wavelength_um");
  else if (!c.lsf_wavelength_um.empty() && c.lsf_values.size() != c.lsf_wavelength_um.size())
    bad(lkey, fmt_list(c.lsf_values), "must have as many values as lsf_wavelength_um");
  else
    for (double x : c.lsf_values)
      if (!(std::isfinite(x) && x > 0.0 && x <= lmax)) {
        bad(lkey, c.lsf_values.size() == 1 ? format_value(x) : fmt_list(c.lsf_values), "every value must be in (0, 10000]");
        break;
      }
  if (!c.lsf_wavelength_um.empty()) {
    bool ok = c.lsf_wavelength_um.size() >= 2;
    for (std::size_t i = 0; i < c.lsf_wavelength_um.size(); ++i) {
      const double w = c.lsf_wavelength_um[i];
      if (!(std::isfinite(w) && w > 0.0) || (i > 0 && !(w > c.lsf_wavelength_um[i - 1]))) ok = false;
    }
    if (!ok) bad("lsf_wavelength_um", fmt_list(c.lsf_wavelength_um), "must hold >= 2 increasing wavelengths > 0 (um)");
  }
  num("oversample", c.oversample, c.oversample >= 1 && c.oversample <= 16, "must be in [1, 16]");
  if (v.empty()) {
    const double nfine = (c.nx + 2.0 * 64) * c.oversample * (c.ny + 2.0 * 64) * c.oversample;
    if (static_cast<double>(c.nx) * c.ny * c.n_wave > 5e8)
      bad("n_wave", format_value(c.n_wave), "nx * ny * n_wave exceeds 5e8 voxels");
    else if (nfine > 4e7)
      bad("oversample", format_value(c.oversample), "the oversampled field is too large (> 4e7 fine pixels)");
  }
  return v;
}

void GenericIfuConfig::validate() const {
  const auto v = check_generic_ifu_config(*this);
  if (!v.empty())
    throw InvalidOptions("GenericIfuConfig." + v.front().key + " = " + v.front().value + ": " + v.front().rule);
}

SpatialGrid GenericIfuConfig::spatial_grid() const {
  return SpatialGrid::centred(nx, ny, spaxel_arcsec, center_x_arcsec, center_y_arcsec);
}

WavelengthGrid GenericIfuConfig::wavelength_grid() const {
  return WavelengthGrid::linear(wave_start_um, wave_step_um, n_wave);
}

GenericIfuConfig read_generic_ifu_config(const Section& s) {
  GenericIfuConfig c;
  s.get("nx", c.nx);
  s.get("ny", c.ny);
  s.get("spaxel_arcsec", c.spaxel_arcsec);
  s.get("center_x_arcsec", c.center_x_arcsec);
  s.get("center_y_arcsec", c.center_y_arcsec);
  s.get("sky_ra_deg", c.sky.ra_deg);
  s.get("sky_dec_deg", c.sky.dec_deg);
  s.get("sky_pa_deg", c.sky.aperture_pa_deg);
  s.get("wave_start_um", c.wave_start_um);
  s.get("wave_step_um", c.wave_step_um);
  s.get("n_wave", c.n_wave);
  s.get("psf_model", c.psf_model);
  s.get("psf_fwhm_arcsec", c.psf_fwhm_arcsec);
  s.get("psf_weights", c.psf_weights);
  s.get("psf_fwhms_arcsec", c.psf_fwhms_arcsec);
  s.get("psf_moffat_beta", c.psf_moffat_beta);
  s.get("psf_file", c.psf_file);
  s.get("psf_file_pixel_arcsec", c.psf_file_pixel_arcsec);
  s.get("psf_radius_arcsec", c.psf_radius_arcsec);
  s.get("oversample", c.oversample);
  // LSF: exactly one of lsf_sigma_kms / lsf_fwhm_A, a number, or an array with lsf_wavelength_um.
  const bool has_sig = s.has("lsf_sigma_kms"), has_fwhm = s.has("lsf_fwhm_A");
  if (has_sig && has_fwhm) s.fail("lsf_fwhm_A", "give either lsf_sigma_kms or lsf_fwhm_A, not both");
  s.get("lsf_wavelength_um", c.lsf_wavelength_um);
  if (has_sig || has_fwhm) {
    const std::string key = has_sig ? "lsf_sigma_kms" : "lsf_fwhm_A";
    c.lsf_kind = has_sig ? "sigma_kms" : "fwhm_A";
    if (c.lsf_wavelength_um.empty()) {
      double x = 0.0;
      s.get(key, x);
      c.lsf_values = {x};
    } else {
      s.get(key, c.lsf_values);
    }
  } else if (!c.lsf_wavelength_um.empty()) {
    s.fail("lsf_wavelength_um", "needs lsf_sigma_kms or lsf_fwhm_A as an array of the same length");
  }
  for (const auto& issue : check_generic_ifu_config(c)) {
    // A key absent from the file (a default made invalid by another key, e.g. psf_weights for
    // psf_model = "multi_gaussian") is still named; Section::fail then gives the file only.
    if (s.has(issue.key)) s.fail(issue.key, issue.rule);
    s.fail(issue.key, "(default " + issue.value + ") " + issue.rule);
  }
  return c;
}

// ------------------------------------------------------------------------------------------
// PSF
// ------------------------------------------------------------------------------------------

double generic_ifu_psf_fwhm_arcsec(const GenericIfuConfig& c, const PsfImage* image) {
  if (c.psf_model == "gaussian" || c.psf_model == "moffat") return c.psf_fwhm_arcsec;
  if (c.psf_model == "multi_gaussian") {
    const double peak = multi_gauss_profile(c, 0.0);
    double lo = 0.0, hi = 0.0;
    for (double f : c.psf_fwhms_arcsec) hi = std::max(hi, f);
    for (int it = 0; it < 200; ++it) {
      const double mid = 0.5 * (lo + hi);
      (multi_gauss_profile(c, mid) > 0.5 * peak ? lo : hi) = mid;
    }
    return lo + hi;  // 2 * half-width
  }
  if (c.psf_model == "file" && image) return psf_image_fwhm_pixels(*image) * c.psf_file_pixel_arcsec;
  return 0.0;
}

double generic_ifu_psf_radius_arcsec(const GenericIfuConfig& c, const PsfImage* image) {
  if (c.psf_radius_arcsec > 0.0) return c.psf_radius_arcsec;
  if (c.psf_model == "gaussian") return 2.0 * c.psf_fwhm_arcsec;
  if (c.psf_model == "multi_gaussian") {
    double f = 0.0;
    for (double x : c.psf_fwhms_arcsec) f = std::max(f, x);
    return 2.0 * f;
  }
  if (c.psf_model == "moffat") {
    const double a = moffat_alpha(c.psf_fwhm_arcsec, c.psf_moffat_beta);
    // (1 + (R/a)^2)^(1 - beta) = 0.005
    const double r = a * std::sqrt(std::pow(0.005, 1.0 / (1.0 - c.psf_moffat_beta)) - 1.0);
    return std::min(r, 10.0 * c.psf_fwhm_arcsec);
  }
  if (c.psf_model == "file" && image) return 0.5 * std::min(image->nx, image->ny) * c.psf_file_pixel_arcsec;
  return 0.0;
}

namespace {
// Kernel and the fraction of the analytic PSF outside it (before renormalisation).
// `sep_x`, `sep_y` (optional): for Gaussian and multi-Gaussian kernels, the separable factors,
// kernel(dx, dy) = sum_c sep_x[c][dx + half] * sep_y[c][dy + half] (to rounding); left empty else.
PsfKernel build_kernel(const GenericIfuConfig& c, double p, const PsfImage* image, double* lost,
                       std::vector<std::vector<double>>* sep_x = nullptr,
                       std::vector<std::vector<double>>* sep_y = nullptr) {
  PsfKernel k;
  k.pixel_arcsec = p;
  *lost = 0.0;
  if (c.psf_model == "none") {
    k.values = {1.0};
    return k;
  }
  const double radius = generic_ifu_psf_radius_arcsec(c, image);
  k.half = std::max(1, static_cast<int>(std::ceil(radius / p - 1e-9)));
  const int n = 2 * k.half + 1;
  k.values.assign(static_cast<std::size_t>(n) * n, 0.0);
  if (c.psf_model == "gaussian" || c.psf_model == "multi_gaussian") {
    std::vector<double> w = {1.0}, f = {c.psf_fwhm_arcsec};
    if (c.psf_model == "multi_gaussian") {
      w = c.psf_weights;
      f = c.psf_fwhms_arcsec;
      double sw = 0.0;
      for (double x : w) sw += x;
      for (double& x : w) x /= sw;
    }
    std::vector<double> g(n);
    for (std::size_t comp = 0; comp < w.size(); ++comp) {
      const double sig = f[comp] / kFwhmPerSigma;
      for (int d = -k.half; d <= k.half; ++d)
        g[d + k.half] = 0.5 * (std::erfc(-(d + 0.5) * p / sig * kInvSqrt2) - std::erfc(-(d - 0.5) * p / sig * kInvSqrt2));
      for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) k.values[static_cast<std::size_t>(y) * n + x] += w[comp] * g[x] * g[y];
      if (sep_x && sep_y) {
        sep_x->emplace_back(g.size());
        for (int d = 0; d < n; ++d) sep_x->back()[d] = w[comp] * g[d];  // divided by the sum below
        sep_y->push_back(g);
      }
    }
  } else if (c.psf_model == "moffat") {
    const double beta = c.psf_moffat_beta, a = moffat_alpha(c.psf_fwhm_arcsec, beta);
    const double norm = (beta - 1.0) / (kPi * a * a), inv_a2 = 1.0 / (a * a);
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        double s = 0.0;
        for (int u = 0; u < 6; ++u)
          for (int v = 0; v < 6; ++v) {
            const double ox = (x - k.half + 0.5 * kGl6x[u]) * p, oy = (y - k.half + 0.5 * kGl6x[v]) * p;
            s += kGl6w[u] * kGl6w[v] * std::pow(1.0 + (ox * ox + oy * oy) * inv_a2, -beta);
          }
        k.values[static_cast<std::size_t>(y) * n + x] = norm * s * 0.25 * p * p;
      }
  } else {  // file: the committed NIRSpec kernel maker (bilinear, 5x5 sub-samples), no scaling
    PsfConfig pc;
    pc.model = "file";
    pc.file_pixel_arcsec = c.psf_file_pixel_arcsec;
    pc.file_ref_wavelength_um = 0.0;
    pc.radius_arcsec = k.half * p;
    PsfKernel fk = make_psf_kernel(pc, 1.0, p, image);
    return fk;
  }
  double sum = 0.0;
  for (double v : k.values) sum += v;
  *lost = std::max(0.0, 1.0 - sum);
  for (double& v : k.values) v /= sum;
  if (sep_x)
    for (auto& row : *sep_x)
      for (double& v : row) v /= sum;
  return k;
}
}  // namespace

PsfKernel make_generic_ifu_psf_kernel(const GenericIfuConfig& c, double pixel_arcsec, const PsfImage* image) {
  c.validate();
  if (!(pixel_arcsec > 0.0)) throw InvalidOptions("make_generic_ifu_psf_kernel: pixel_arcsec must be > 0");
  if (c.psf_model == "file" && !image) throw InvalidOptions("make_generic_ifu_psf_kernel: psf_model = \"file\" needs the image");
  double lost = 0.0;
  return build_kernel(c, pixel_arcsec, image, &lost);
}

// ------------------------------------------------------------------------------------------
// GenericIfu
// ------------------------------------------------------------------------------------------

struct GenericIfu::Fft {
  fftw_plan fwd_b = nullptr, bwd_b = nullptr, fwd_1 = nullptr, bwd_1 = nullptr;
  fftw_complex* khat = nullptr;  // nyf * (nxf/2+1), includes 1/(nxf*nyf)
  std::size_t ncplx = 0;
  ~Fft() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    if (khat) fftw_free(khat);
    for (fftw_plan p : {fwd_b, bwd_b, fwd_1, bwd_1})
      if (p) fftw_destroy_plan(p);
  }
};

GenericIfu::GenericIfu(const GenericIfuConfig& config) : config_(config) {
  config_.validate();
  spatial_ = config_.spatial_grid();
  spectral_ = config_.wavelength_grid();
  PsfImage image;
  if (config_.psf_model == "file") image = read_psf_image(config_.psf_file);
  const PsfImage* im = config_.psf_model == "file" ? &image : nullptr;
  psf_enabled_ = config_.psf_model != "none";
  psf_fwhm_ = generic_ifu_psf_fwhm_arcsec(config_, im);
  psf_radius_ = generic_ifu_psf_radius_arcsec(config_, im);
  const int s = config_.oversample;
  const double pf = config_.spaxel_arcsec / s;
  lsf_kms_ = config_.lsf_kind == "sigma_kms";
  kernel_ = build_kernel(config_, pf, im, &psf_lost_, &sep_x_, &sep_y_);
  // The separable path uses symmetric taps: the Gaussian factors are symmetric to rounding (the
  // erfc differences of the far side cancel: ~1e-16 of the peak); make them exactly so (mean of
  // the two sides), or fall back to the FFT if they are not.
  for (auto* f : {&sep_x_, &sep_y_})
    for (auto& v : *f) {
      const std::size_t n = v.size();
      const double vmax = *std::max_element(v.begin(), v.end());
      for (std::size_t d = 0; d < n / 2; ++d) {
        double& a = v[d];
        double& b = v[n - 1 - d];
        if (std::fabs(a - b) > 1e-12 * vmax) {
          sep_x_.clear();
          sep_y_.clear();
          goto separable_done;
        }
        a = b = 0.5 * (a + b);
      }
    }
separable_done:
  margin_ = psf_enabled_ ? (kernel_.half + s - 1) / s : 0;
  work_.nx = (spatial_.nx + 2 * margin_) * s;
  work_.ny = (spatial_.ny + 2 * margin_) * s;
  work_.pixel_arcsec = pf;
  work_.x0_arcsec = spatial_.x0_arcsec - margin_ * config_.spaxel_arcsec - 0.5 * (s - 1) * pf;
  work_.y0_arcsec = spatial_.y0_arcsec - margin_ * config_.spaxel_arcsec - 0.5 * (s - 1) * pf;
  // Zero-padded linear convolution: with a margin >= the kernel half-size the work grid itself
  // is large enough (the wrapped-around part only reaches the margin, which is not binned).
  nxf_ = smooth_size(work_.nx);
  nyf_ = smooth_size(work_.ny);

  // LSF table (tabulated LSF only): uniform over the output range +- 5 %.
  if (!config_.lsf_wavelength_um.empty()) {
    const double lo = spectral_.min_um() * 0.95, hi = spectral_.max_um() * 1.05;
    const int n = 4096;
    lsf_t0_ = lo;
    lsf_inv_dt_ = (n - 1) / (hi - lo);
    lsf_table_.resize(n);
    const auto& xs = config_.lsf_wavelength_um;
    const auto& ys = config_.lsf_values;
    for (int i = 0; i < n; ++i) {
      const double l = lo + i / lsf_inv_dt_;
      double v;
      if (l <= xs.front()) v = ys.front();
      else if (l >= xs.back()) v = ys.back();
      else {
        const std::size_t j = static_cast<std::size_t>(std::upper_bound(xs.begin(), xs.end(), l) - xs.begin());
        const double t = (l - xs[j - 1]) / (xs[j] - xs[j - 1]);
        v = ys[j - 1] + t * (ys[j] - ys[j - 1]);
      }
      lsf_table_[i] = config_.lsf_kind == "sigma_kms" ? l * v / kSpeedOfLight_kms : v / kFwhmPerSigma / kAngstromPerUm;
    }
  }

  if (!psf_enabled_) return;
  fft_ = std::make_unique<Fft>();
  Fft& f = *fft_;
  const std::size_t nlw = nl() + 1;
  const std::size_t nreal = static_cast<std::size_t>(nxf_) * nyf_;
  f.ncplx = static_cast<std::size_t>(nxf_ / 2 + 1) * nyf_;
  double* rbuf = fftw_alloc_real(nreal * nlw);
  fftw_complex* cbuf = fftw_alloc_complex(f.ncplx * nlw);
  const int dims[2] = {nyf_, nxf_};
  const int batch = static_cast<int>(std::min(kBlock, nlw));
  {
    std::lock_guard<std::mutex> lock(planner_mutex());
    const unsigned flags = FFTW_ESTIMATE | FFTW_UNALIGNED;
    const int st = static_cast<int>(nlw);
    f.fwd_b = fftw_plan_many_dft_r2c(2, dims, batch, rbuf, nullptr, st, 1, cbuf, nullptr, st, 1, flags);
    f.bwd_b = fftw_plan_many_dft_c2r(2, dims, batch, cbuf, nullptr, st, 1, rbuf, nullptr, st, 1, flags);
    f.fwd_1 = fftw_plan_many_dft_r2c(2, dims, 1, rbuf, nullptr, st, 1, cbuf, nullptr, st, 1, flags);
    f.bwd_1 = fftw_plan_many_dft_c2r(2, dims, 1, cbuf, nullptr, st, 1, rbuf, nullptr, st, 1, flags);
    if (!f.fwd_b || !f.bwd_b || !f.fwd_1 || !f.bwd_1) {
      fftw_free(rbuf);
      fftw_free(cbuf);
      throw InvalidOptions("GenericIfu: FFTW could not plan a " + std::to_string(nxf_) + " x " + std::to_string(nyf_) +
                           " transform");
    }
  }
  // Kernel transform (plain 2-D plan on contiguous arrays, made once).
  std::fill(rbuf, rbuf + nreal, 0.0);
  const double norm = 1.0 / static_cast<double>(nreal);
  for (int dy = -kernel_.half; dy <= kernel_.half; ++dy)
    for (int dx = -kernel_.half; dx <= kernel_.half; ++dx) {
      const int yy = (dy + nyf_) % nyf_, xx = (dx + nxf_) % nxf_;
      rbuf[static_cast<std::size_t>(yy) * nxf_ + xx] += kernel_.at(dx, dy) * norm;
    }
  f.khat = fftw_alloc_complex(f.ncplx);
  fftw_plan kp;
  {
    std::lock_guard<std::mutex> lock(planner_mutex());
    kp = fftw_plan_dft_r2c_2d(nyf_, nxf_, rbuf, f.khat, FFTW_ESTIMATE);
  }
  fftw_execute(kp);
  {
    std::lock_guard<std::mutex> lock(planner_mutex());
    fftw_destroy_plan(kp);
  }
  fftw_free(rbuf);
  fftw_free(cbuf);
}

GenericIfu::~GenericIfu() = default;

double GenericIfu::lsf_sigma_um(double l) const {
  if (lsf_table_.empty()) {
    const double v = config_.lsf_values.front();
    return lsf_kms_ ? l * v / kSpeedOfLight_kms : v / kFwhmPerSigma / kAngstromPerUm;
  }
  double u = (l - lsf_t0_) * lsf_inv_dt_;
  const int n = static_cast<int>(lsf_table_.size());
  if (u <= 0.0) u = 0.0;
  if (u >= n - 1) u = n - 1 - 1e-9;
  const int i = static_cast<int>(u);
  const double t = u - i;
  return lsf_table_[i] + t * (lsf_table_[i + 1] - lsf_table_[i]);
}

// ---- Workspace ----

GenericIfu::Workspace::Workspace(const GenericIfu& ifu) {
  nxf_ = static_cast<std::size_t>(ifu.nxf_);
  nyf_ = static_cast<std::size_t>(ifu.nyf_);
  nlw_ = ifu.nl() + 1;
  ncplx_ = (nxf_ / 2 + 1) * nyf_;
  block_ = kBlock;
  const std::size_t nreal = nxf_ * nyf_ * nlw_;
  real_ = fftw_alloc_real(nreal);
  std::fill(real_, real_ + nreal, 0.0);
  cplx_ = fftw_alloc_complex(ncplx_ * nlw_);
  active_.assign((nlw_ + block_ - 1) / block_, 0);
}

GenericIfu::Workspace::~Workspace() {
  if (real_) fftw_free(real_);
  if (cplx_) fftw_free(cplx_);
}

GenericIfu::Workspace::Workspace(Workspace&& o) noexcept { *this = std::move(o); }

GenericIfu::Workspace& GenericIfu::Workspace::operator=(Workspace&& o) noexcept {
  if (this == &o) return *this;
  if (real_) fftw_free(real_);
  if (cplx_) fftw_free(cplx_);
  nxf_ = o.nxf_, nyf_ = o.nyf_, nlw_ = o.nlw_, ncplx_ = o.ncplx_, block_ = o.block_;
  real_ = o.real_, cplx_ = o.cplx_;
  o.real_ = nullptr, o.cplx_ = nullptr;
  active_ = std::move(o.active_);
  dirty_lo_ = o.dirty_lo_, dirty_hi_ = o.dirty_hi_, transformed_ = o.transformed_;
  return *this;
}

void GenericIfu::Workspace::clear() {
  if (dirty_hi_ > dirty_lo_) {
    const std::size_t np = nxf_ * nyf_, len = dirty_hi_ - dirty_lo_;
    for (std::size_t q = 0; q < np; ++q) std::memset(real_ + q * nlw_ + dirty_lo_, 0, len * sizeof(double));
  }
  dirty_lo_ = dirty_hi_ = 0;
  std::fill(active_.begin(), active_.end(), 0);
}

void GenericIfu::Workspace::mark_active(std::size_t k0, std::size_t k1) {
  k1 = std::min(k1, nlw_);
  if (k1 <= k0) return;
  for (std::size_t b = k0 / block_; b <= (k1 - 1) / block_; ++b) active_[b] = 1;
  // Whole blocks are transformed, so whole blocks become dirty.
  const std::size_t lo = (k0 / block_) * block_, hi = std::min(nlw_, ((k1 - 1) / block_ + 1) * block_);
  if (dirty_hi_ <= dirty_lo_) dirty_lo_ = lo, dirty_hi_ = hi;
  else dirty_lo_ = std::min(dirty_lo_, lo), dirty_hi_ = std::max(dirty_hi_, hi);
}

// ---- convolution and binning ----

void GenericIfu::convolve_and_bin(Workspace& ws, std::vector<double>& out, const double* cont, bool direct) const {
  out.resize(spatial_.size() * nl());
  convolve_and_bin(ws, out.data(), cont, direct);
}

void GenericIfu::convolve_and_bin(Workspace& ws, double* out, const double* cont, bool direct) const {
  if (ws.nxf_ != static_cast<std::size_t>(nxf_) || ws.nyf_ != static_cast<std::size_t>(nyf_) || ws.nlw_ != nl() + 1)
    throw InvalidOptions("GenericIfu::convolve_and_bin: the workspace belongs to another instrument");
  const std::size_t nlw = ws.nlw_, nlo = nl(), B = ws.block_;
  const std::size_t nb = ws.active_.size();
  ws.transformed_ = 0;
  if (psf_enabled_ && !direct && psf_separable()) {
    convolve_separable(ws);
  } else if (psf_enabled_ && !direct) {
    const Fft& f = *fft_;
    fftw_complex* C = static_cast<fftw_complex*>(ws.cplx_);
    double* R = ws.real_;
    for (std::size_t b = 0; b < nb; ++b) {
      if (!ws.active_[b]) continue;
      const std::size_t k0 = b * B, k1 = std::min(nlw, k0 + B);
      if (k1 - k0 == B) fftw_execute_dft_r2c(f.fwd_b, R + k0, C + k0);
      else
        for (std::size_t k = k0; k < k1; ++k) fftw_execute_dft_r2c(f.fwd_1, R + k, C + k);
      ws.transformed_ += k1 - k0;
    }
    // Multiply by the kernel transform, frequency by frequency over the active blocks.
    for (std::size_t q = 0; q < f.ncplx; ++q) {
      const double kr = f.khat[q][0], ki = f.khat[q][1];
      fftw_complex* row = C + q * nlw;
      for (std::size_t b = 0; b < nb; ++b) {
        if (!ws.active_[b]) continue;
        const std::size_t k1 = std::min(nlw, b * B + B);
        for (std::size_t k = b * B; k < k1; ++k) {
          const double re = row[k][0], im = row[k][1];
          row[k][0] = re * kr - im * ki;
          row[k][1] = re * ki + im * kr;
        }
      }
    }
    for (std::size_t b = 0; b < nb; ++b) {
      if (!ws.active_[b]) continue;
      const std::size_t k0 = b * B, k1 = std::min(nlw, k0 + B);
      if (k1 - k0 == B) fftw_execute_dft_c2r(f.bwd_b, C + k0, R + k0);
      else
        for (std::size_t k = k0; k < k1; ++k) fftw_execute_dft_c2r(f.bwd_1, C + k, R + k);
    }
  } else if (psf_enabled_) {
    // Direct summation on the work grid (zero outside it), channel by channel.
    const int nxw = work_.nx, nyw = work_.ny, h = kernel_.half;
    std::vector<double> plane(static_cast<std::size_t>(nxw) * nyw), res(plane.size());
    for (std::size_t b = 0; b < nb; ++b) {
      if (!ws.active_[b]) continue;
      const std::size_t k1 = std::min(nlw, b * B + B);
      for (std::size_t k = b * B; k < k1; ++k) {
        for (int J = 0; J < nyw; ++J)
          for (int I = 0; I < nxw; ++I) plane[static_cast<std::size_t>(J) * nxw + I] = ws.real_[(J * ws.nxf_ + I) * nlw + k];
        for (int J = 0; J < nyw; ++J)
          for (int I = 0; I < nxw; ++I) {
            double s = 0.0;
            for (int dy = -h; dy <= h; ++dy) {
              const int y = J - dy;
              if (y < 0 || y >= nyw) continue;
              for (int dx = -h; dx <= h; ++dx) {
                const int x = I - dx;
                if (x < 0 || x >= nxw) continue;
                s += kernel_.at(dx, dy) * plane[static_cast<std::size_t>(y) * nxw + x];
              }
            }
            res[static_cast<std::size_t>(J) * nxw + I] = s;
          }
        for (int J = 0; J < nyw; ++J)
          for (int I = 0; I < nxw; ++I) ws.real_[(J * ws.nxf_ + I) * nlw + k] = res[static_cast<std::size_t>(J) * nxw + I];
        ++ws.transformed_;
      }
    }
  }
  // Binning: mean surface brightness of the s x s fine pixels of each spaxel (every output value
  // written once: channels never marked active are 0, plus the continuum).
  const int s = config_.oversample, nx = spatial_.nx, ny = spatial_.ny, m = margin_;
  const double inv = 1.0 / (s * s);
  const bool cont_active = cont && ws.active_[nlo / B];
  for (int j = 0; j < ny; ++j)
    for (int i = 0; i < nx; ++i) {
      double* o = out + (static_cast<std::size_t>(j) * nx + i) * nlo;
      auto fine = [&](int a, int b) {
        const std::size_t J = static_cast<std::size_t>((j + m) * s + b), I = static_cast<std::size_t>((i + m) * s + a);
        return ws.real_ + (J * ws.nxf_ + I) * nlw;
      };
      for (std::size_t blk = 0; blk < nb && blk * B < nlo;) {
        const bool act = ws.active_[blk] != 0;
        std::size_t e = blk;
        while (e < nb && e * B < nlo && (ws.active_[e] != 0) == act) ++e;
        const std::size_t k0 = blk * B, k1 = std::min(nlo, e * B);
        blk = e;
        if (!act) {
          std::fill(o + k0, o + k1, 0.0);
          continue;
        }
        const double* src = fine(0, 0);
        for (std::size_t k = k0; k < k1; ++k) o[k] = src[k];
        for (int b = 0; b < s; ++b)
          for (int a = 0; a < s; ++a) {
            if (a == 0 && b == 0) continue;
            src = fine(a, b);
            for (std::size_t k = k0; k < k1; ++k) o[k] += src[k];
          }
        if (s > 1)
          for (std::size_t k = k0; k < k1; ++k) o[k] *= inv;
      }
      if (cont_active) {
        double cimg = 0.0;
        for (int b = 0; b < s; ++b)
          for (int a = 0; a < s; ++a) cimg += fine(a, b)[nlo];
        cimg *= inv;
        for (std::size_t k = 0; k < nlo; ++k) o[k] += cimg * cont[k];
      }
    }
}

namespace {

// acc[k] = w[h] src0[k] + sum_{t=1..h} w[h+t] (src0[k + t*step] + src0[k - t*step]) for k < L: a
// symmetric 1-D convolution tap sum at one output pixel, vectorised over the channels.
SLITSTEP_SIMD_CLONES  // core/simd.hpp: baseline x86-64 and AVX2, same bits
void symmetric_taps(double* __restrict acc, const double* __restrict src0, std::ptrdiff_t step, const double* w,
                    std::size_t h, std::size_t L, bool accumulate) {
  const double wc = w[h];
  if (accumulate)
    for (std::size_t k = 0; k < L; ++k) acc[k] += wc * src0[k];
  else
    for (std::size_t k = 0; k < L; ++k) acc[k] = wc * src0[k];
  for (std::size_t t = 1; t <= h; ++t) {
    const double wt = w[h + t];
    const double* a = src0 + static_cast<std::ptrdiff_t>(t) * step;
    const double* b = src0 - static_cast<std::ptrdiff_t>(t) * step;
    for (std::size_t k = 0; k < L; ++k) acc[k] += wt * (a[k] + b[k]);
  }
}

}  // namespace

// Separable kernel: for every run of active channel blocks, (1) x-convolve the work rows the
// output region needs (output columns only) into ws.sep_, one plane per component, (2) y-convolve
// those into the output region of the work cube itself (what the binning reads). The margin
// (>= the kernel half-size) holds every input pixel, so this is the same zero-padded linear
// convolution as the FFT. Gaussian factors are symmetric (made exactly so at construction), so
// each tap pair is one multiply; vectorised over channels (spectrum-contiguous layout).
void GenericIfu::convolve_separable(Workspace& ws) const {
  const std::size_t nlw = ws.nlw_, B = ws.block_, nb = ws.active_.size(), rowp = ws.nxf_;
  const std::size_t s = static_cast<std::size_t>(config_.oversample), h = static_cast<std::size_t>(kernel_.half);
  const std::size_t nc = sep_x_.size();
  const std::size_t nxo = static_cast<std::size_t>(spatial_.nx) * s, nyo = static_cast<std::size_t>(spatial_.ny) * s;
  const std::size_t I0 = static_cast<std::size_t>(margin_) * s, J0 = I0;
  const std::size_t rows = nyo + 2 * h;  // work rows J0 - h .. J0 + nyo + h - 1
  if (ws.sep_.size() < nc * rows * nxo * nlw) ws.sep_.resize(nc * rows * nxo * nlw);
  double* W = ws.real_;
  for (std::size_t b = 0; b < nb;) {
    if (!ws.active_[b]) {
      ++b;
      continue;
    }
    std::size_t e = b;
    while (e < nb && ws.active_[e]) ++e;
    const std::size_t k0 = b * B, k1 = std::min(nlw, e * B), L = k1 - k0;
    b = e;
    ws.transformed_ += L;
    // x: tmp(J, I) = sum_d kx[d] in(J, I - d) over the rows J0 - h .. J0 + nyo + h - 1.
    for (std::size_t c = 0; c < nc; ++c)
      for (std::size_t jt = 0; jt < rows; ++jt) {
        const double* wrow = W + (J0 - h + jt) * rowp * nlw + k0;
        double* trow = ws.sep_.data() + (c * rows + jt) * nxo * L;
        for (std::size_t it = 0; it < nxo; ++it)
          symmetric_taps(trow + it * L, wrow + (I0 + it) * nlw, static_cast<std::ptrdiff_t>(nlw), sep_x_[c].data(), h, L,
                         false);
      }
    // y: out(J, I) = sum_c sum_d ky[d] tmp_c(J - d, I), into the work cube's output region.
    for (std::size_t jo = 0; jo < nyo; ++jo)
      for (std::size_t it = 0; it < nxo; ++it) {
        double* dst = W + ((J0 + jo) * rowp + I0 + it) * nlw + k0;
        for (std::size_t c = 0; c < nc; ++c)
          symmetric_taps(dst, ws.sep_.data() + ((c * rows + jo + h) * nxo + it) * L, static_cast<std::ptrdiff_t>(nxo * L),
                         sep_y_[c].data(), h, L, c > 0);
      }
  }
}

// ---- reference path ----

void GenericIfu::observe(const Cube& sky, Cube& out, bool direct) const {
  Workspace ws(*this);
  observe(sky, out, ws, direct);
}

void GenericIfu::observe(const Cube& sky, Cube& out, Workspace& ws, bool direct) const {
  sky.validate();
  const SkyFrame& a = sky.sky;
  const SkyFrame& b = config_.sky;
  if (std::fabs(a.aperture_pa_deg - b.aperture_pa_deg) > 1e-9 || std::fabs(a.ra_deg - b.ra_deg) > 1e-9 ||
      std::fabs(a.dec_deg - b.dec_deg) > 1e-9)
    throw InvalidOptions("GenericIfu::observe: the sky cube's frame (RA, Dec, PA) differs from the IFU's; render "
                         "the sky in the IFU frame (rotation and re-centring are not supported)");
  const std::size_t nls = sky.nl(), nlo = nl(), nlw = nlo + 1;
  // 1. Spectral matrix: sky channel k -> output channels [jlo[k], jlo[k] + w.size()).
  const double e0 = spectral_.min_um(), step = config_.wave_step_um;
  std::vector<std::size_t> jlo(nls), jn(nls), woff(nls + 1, 0);
  std::vector<double> wts;
  for (std::size_t k = 0; k < nls; ++k) {
    const double lam = sky.spectral.wavelength_um(k), wk = sky.spectral.width_um(k);
    const double a0 = lam - 0.5 * wk, a1 = lam + 0.5 * wk;
    // Sheppard: the channel's flux integral placed at its centre (+wk^2/12) and read as a box
    // (+wk^2/12 more) is broader than the continuous spectrum, so the box is convolved with the
    // LSF narrowed by wk^2/6 in variance: lines keep the continuous width to second order
    // (docs/generic_ifu.md; tests/test_generic_ifu.cpp)
    const double s_lsf = lsf_sigma_um(lam), var = s_lsf * s_lsf - wk * wk / 6.0;
    if (!(var > 0.0))
      throw InvalidOptions("GenericIfu::observe: sky channel " + std::to_string(k) + " (" + format_value(lam) +
                           " um) is " + format_value(wk) + " um wide, too wide for the LSF (sigma " +
                           format_value(s_lsf) + " um): sky channels must be narrower than sqrt(6) LSF sigma");
    const double sg = std::sqrt(var);
    const double lo = a0 - 9.0 * sg, hi = a1 + 9.0 * sg;
    long j0 = static_cast<long>(std::floor((lo - e0) / step)), j1 = static_cast<long>(std::floor((hi - e0) / step));
    j0 = std::max(j0, 0L);
    j1 = std::min(j1, static_cast<long>(nlo) - 1);
    jlo[k] = static_cast<std::size_t>(std::max(j0, 0L));
    jn[k] = j1 >= j0 ? static_cast<std::size_t>(j1 - j0 + 1) : 0;
    for (long j = j0; j <= j1; ++j) {
      const double c0 = e0 + j * step, c1 = c0 + step;
      const double smooth = psi_smooth((c1 - a0) / sg) - psi_smooth((c1 - a1) / sg) - psi_smooth((c0 - a0) / sg) +
                            psi_smooth((c0 - a1) / sg);
      // fraction of the channel's flux landing in output channel j, turned into a per-um density
      const double frac = (overlap(a0, a1, c0, c1) + sg * smooth) / wk;
      wts.push_back(frac * wk / step);
    }
    woff[k + 1] = wts.size();
  }
  // 2. Spatial overlap of sky pixels with work pixels (separable, lengths in arcsec).
  const SpatialGrid& sg = sky.spatial;
  const double ps = sg.pixel_arcsec, pw = work_.pixel_arcsec;
  auto overlaps = [&](int nw, double w0, int ns, double s0, std::vector<std::vector<std::pair<int, double>>>& ov) {
    ov.assign(nw, {});
    for (int I = 0; I < nw; ++I) {
      const double f0 = w0 + (I - 0.5) * pw, f1 = f0 + pw;
      const int i0 = std::max(0, static_cast<int>(std::floor((f0 - s0) / ps + 0.5)) - 1);
      const int i1 = std::min(ns - 1, static_cast<int>(std::floor((f1 - s0) / ps + 0.5)) + 1);
      for (int i = i0; i <= i1; ++i) {
        const double o = overlap(f0, f1, s0 + (i - 0.5) * ps, s0 + (i + 0.5) * ps);
        if (o > 1e-12 * pw) ov[I].push_back({i, o});
      }
    }
  };
  std::vector<std::vector<std::pair<int, double>>> ox, oy;
  overlaps(work_.nx, work_.x0_arcsec, sg.nx, sg.x0_arcsec, ox);
  overlaps(work_.ny, work_.y0_arcsec, sg.ny, sg.y0_arcsec, oy);
  // 3. LSF + rebin of every sky spectrum that reaches the work grid, then spatial resampling.
  std::vector<double> spec(static_cast<std::size_t>(sg.nx) * sg.ny * nlo, 0.0);
  std::vector<unsigned char> used(static_cast<std::size_t>(sg.nx) * sg.ny, 0);
  for (const auto& row : oy)
    for (const auto& [j, wy] : row)
      for (const auto& col : ox)
        for (const auto& [i, wx] : col) used[static_cast<std::size_t>(j) * sg.nx + i] = 1;
  std::vector<unsigned char> chan_active(nlo, 0);
  for (int j = 0; j < sg.ny; ++j)
    for (int i = 0; i < sg.nx; ++i) {
      if (!used[static_cast<std::size_t>(j) * sg.nx + i]) continue;
      const double* in = sky.spectrum(i, j);
      double* o = spec.data() + (static_cast<std::size_t>(j) * sg.nx + i) * nlo;
      for (std::size_t k = 0; k < nls; ++k) {
        const double v = in[k];
        if (v == 0.0) continue;
        const double* w = wts.data() + woff[k];
        for (std::size_t t = 0; t < jn[k]; ++t) {
          o[jlo[k] + t] += v * w[t];
          chan_active[jlo[k] + t] = 1;
        }
      }
    }
  ws.clear();
  for (std::size_t k = 0; k < nlo; ++k)
    if (chan_active[k]) ws.mark_active(k, k + 1);
  const double inv_area = 1.0 / (pw * pw);
  for (int J = 0; J < work_.ny; ++J)
    for (const auto& [j, wy] : oy[J])
      for (int I = 0; I < work_.nx; ++I) {
        double* dst = ws.real_ + (static_cast<std::size_t>(J) * ws.nxf_ + I) * nlw;
        for (const auto& [i, wx] : ox[I]) {
          const double f = wx * wy * inv_area;
          const double* src = spec.data() + (static_cast<std::size_t>(j) * sg.nx + i) * nlo;
          for (std::size_t k = 0; k < nlo; ++k) dst[k] += f * src[k];
        }
      }
  // 4. PSF and binning.
  out = Cube::zeros(spatial_, spectral_, config_.sky, /*quality_planes=*/false);
  out.bunit = sky.bunit;
  convolve_and_bin(ws, out.sci, nullptr, direct);
}

}  // namespace slitstep
