#include "instruments/disperser.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.hpp"
#include "core/fits.hpp"

namespace slitstep {
namespace {

constexpr double kFwhmPerSigma = 2.3548200450309493;
constexpr double kMinKernelSigmaPx = 0.05;
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

struct Row {
  double w, d, r;
};

// Sampled every 25 rows of the msaexp copy of the JDox file jwst_nirspec_g140h_disp.fits
// (WAVELENGTH um, DLDS um/px, R). The file has FWHM = lambda/(R DLDS) = 2.20 px everywhere.
constexpr Row kG140H[] = {
    {0.9200, 2.402449e-04, 1740.65}, {0.9550, 2.400077e-04, 1808.65}, {0.9900, 2.397522e-04, 1876.94},
    {1.0250, 2.394793e-04, 1945.51}, {1.0600, 2.391898e-04, 2014.38}, {1.0950, 2.388842e-04, 2083.55},
    {1.1300, 2.385629e-04, 2153.04}, {1.1650, 2.382261e-04, 2222.87}, {1.2000, 2.378738e-04, 2293.04},
    {1.2350, 2.375057e-04, 2363.58}, {1.2700, 2.371215e-04, 2434.50}, {1.3050, 2.367206e-04, 2505.83},
    {1.3400, 2.363021e-04, 2577.59}, {1.3750, 2.358653e-04, 2649.82}, {1.4100, 2.354087e-04, 2722.54},
    {1.4450, 2.349310e-04, 2795.79}, {1.4800, 2.344305e-04, 2869.62}, {1.5150, 2.339054e-04, 2944.08},
    {1.5500, 2.333533e-04, 3019.22}, {1.5850, 2.327720e-04, 3095.11}, {1.6200, 2.321585e-04, 3171.81},
    {1.6550, 2.315099e-04, 3249.42}, {1.6900, 2.308225e-04, 3328.02}, {1.7250, 2.300927e-04, 3407.72},
    {1.7600, 2.293162e-04, 3488.63}, {1.7950, 2.284884e-04, 3570.90}, {1.8300, 2.276041e-04, 3654.67},
    {1.8650, 2.266577e-04, 3740.12}, {1.9000, 2.256430e-04, 3827.45},
};
// Same for jwst_nirspec_g140m_disp.fits.
constexpr Row kG140M[] = {
    {0.9125, 6.381499e-04, 649.96},  {0.9500, 6.380749e-04, 676.75},  {0.9875, 6.379921e-04, 703.56},
    {1.0250, 6.379019e-04, 730.38},  {1.0625, 6.378044e-04, 757.21},  {1.1000, 6.376996e-04, 784.07},
    {1.1375, 6.375879e-04, 810.94},  {1.1750, 6.374691e-04, 837.83},  {1.2125, 6.373435e-04, 864.74},
    {1.2500, 6.372111e-04, 891.67},  {1.2875, 6.370721e-04, 918.62},  {1.3250, 6.369264e-04, 945.59},
    {1.3625, 6.367741e-04, 972.59},  {1.4000, 6.366153e-04, 999.60},  {1.4375, 6.364500e-04, 1026.65},
    {1.4750, 6.362782e-04, 1053.71}, {1.5125, 6.360999e-04, 1080.81}, {1.5500, 6.359151e-04, 1107.92},
    {1.5875, 6.357237e-04, 1135.07}, {1.6250, 6.355257e-04, 1162.24}, {1.6625, 6.353211e-04, 1189.45},
    {1.7000, 6.351097e-04, 1216.68}, {1.7375, 6.348916e-04, 1243.95}, {1.7750, 6.346666e-04, 1271.25},
    {1.8125, 6.344346e-04, 1298.58}, {1.8500, 6.341955e-04, 1325.95}, {1.8875, 6.339491e-04, 1353.35},
    {1.9250, 6.336953e-04, 1380.79},
};

// Linear interpolation in a sorted table, clamped at the ends.
double interp(const std::vector<double>& x, const std::vector<double>& y, double v) {
  if (v <= x.front()) return y.front();
  if (v >= x.back()) return y.back();
  const auto it = std::upper_bound(x.begin(), x.end(), v);
  const std::size_t i = static_cast<std::size_t>(it - x.begin()) - 1;
  const double t = (v - x[i]) / (x[i + 1] - x[i]);
  return y[i] + t * (y[i + 1] - y[i]);
}

// Psi(t) - max(t, 0) evaluated on -|t| (accurate tail): Psi(t) = t Phi(t/s) + s phi(t/s), and
// Psi(t) = t + Psi(-t), so Psi(t) = max(t,0) + Psi(-|t|).
inline double psi_tail(double t, double s) {
  const double z = -std::abs(t) / s;
  return -std::abs(t) * 0.5 * std::erfc(-z * kInvSqrt2) + s * kInvSqrt2Pi * std::exp(-0.5 * z * z);
}
inline double pos(double t) { return t > 0.0 ? t : 0.0; }

}  // namespace

double box_gauss_fraction(double a, double b, double sigma, double p, double q) {
  const double w = b - a;
  if (w < 1e-7 * sigma) {
    const double c = 0.5 * (a + b);
    return 0.5 * (std::erfc(-(q - c) / sigma * kInvSqrt2) - std::erfc(-(p - c) / sigma * kInvSqrt2));
  }
  const double lin = pos(q - a) - pos(p - a) - pos(q - b) + pos(p - b);
  const double tail = psi_tail(q - a, sigma) - psi_tail(p - a, sigma) - psi_tail(q - b, sigma) +
                      psi_tail(p - b, sigma);
  return (lin + tail) / w;
}

void DispersionTable::validate() const {
  const std::size_t n = wavelength_um.size();
  if (n < 2 || dlds_um_per_px.size() != n || resolving_power.size() != n)
    throw InputError(source + ": dispersion table needs >= 2 rows and equal-length WAVELENGTH, DLDS, R columns");
  for (std::size_t i = 0; i < n; ++i) {
    const std::string row = " at row " + std::to_string(i);
    if (!std::isfinite(wavelength_um[i]) || !(wavelength_um[i] > 0.0))
      throw InputError(source + ": WAVELENGTH = " + format_value(wavelength_um[i]) + row + ": must be finite and > 0");
    if (i > 0 && !(wavelength_um[i] > wavelength_um[i - 1]))
      throw InputError(source + ": WAVELENGTH = " + format_value(wavelength_um[i]) + row +
                       ": must be strictly increasing");
    if (!std::isfinite(dlds_um_per_px[i]) || !(dlds_um_per_px[i] > 0.0))
      throw InputError(source + ": DLDS = " + format_value(dlds_um_per_px[i]) + row + ": must be finite and > 0");
    if (!std::isfinite(resolving_power[i]) || !(resolving_power[i] > 0.0))
      throw InputError(source + ": R = " + format_value(resolving_power[i]) + row + ": must be finite and > 0");
  }
}

DispersionTable builtin_dispersion_table(const std::string& grating) {
  DispersionTable t;
  auto fill = [&](const Row* rows, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      t.wavelength_um.push_back(rows[i].w);
      t.dlds_um_per_px.push_back(rows[i].d);
      t.resolving_power.push_back(rows[i].r);
    }
  };
  if (grating == "G140H") {
    fill(kG140H, std::size(kG140H));
  } else if (grating == "G140M") {
    fill(kG140M, std::size(kG140M));
  } else {
    throw InvalidOptions("instrument.grating = \"" + grating + "\": must be \"G140H\" or \"G140M\"");
  }
  t.source = "built-in " + grating + " table (JDox jwst_nirspec_" + (grating == "G140H" ? "g140h" : "g140m") +
             "_disp.fits, sampled)";
  t.validate();
  return t;
}

DispersionTable read_dispersion_table(const std::string& fits_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(fits_path, ec))
    throw InputError(fits_path + ": dispersion table not found (not a regular file)");
  FitsFile f = FitsFile::open_read(fits_path);
  const int n = f.num_hdus();
  int found = -1;
  for (int h = 0; h < n; ++h) {
    f.move_to(h);
    if (f.hdu_type() == HduType::kBinaryTable && f.has_column("WAVELENGTH") && f.has_column("DLDS") &&
        f.has_column("R")) {
      found = h;
      break;
    }
  }
  if (found < 0) throw InputError(fits_path + ": no binary table with columns WAVELENGTH, DLDS, R");
  DispersionTable t;
  t.wavelength_um = f.read_column("WAVELENGTH");
  t.dlds_um_per_px = f.read_column("DLDS");
  t.resolving_power = f.read_column("R");
  t.source = fits_path;
  t.validate();
  return t;
}

Band grating_filter_band(const std::string& grating, const std::string& filter) {
  if (grating != "G140H" && grating != "G140M")
    throw InvalidOptions("instrument.grating = \"" + grating + "\": must be \"G140H\" or \"G140M\"");
  if (filter != "F100LP")
    throw InvalidOptions("instrument.filter = \"" + filter + "\": only \"F100LP\" is tabulated for " + grating);
  return {0.97, 1.89};
}

void DisperserOptions::validate() const {
  (void)grating_filter_band(grating, filter);
  auto finite_pos = [](double v, const char* name) {
    if (!std::isfinite(v) || !(v > 0.0))
      throw InvalidOptions(std::string(name) + " = " + format_value(v) + ": must be finite and > 0");
  };
  finite_pos(pixel_x_arcsec, "instrument.pixel_x_arcsec");
  finite_pos(slit_width_arcsec, "instrument.slit_width_arcsec");
  if (!std::isfinite(optical_kernel_fwhm_px) || optical_kernel_fwhm_px < 0.0 ||
      (optical_kernel_fwhm_px > 0.0 && optical_kernel_fwhm_px < kMinKernelSigmaPx * kFwhmPerSigma) ||
      optical_kernel_fwhm_px > 20.0)
    throw InvalidOptions("instrument.optical_kernel_fwhm_px = " + format_value(optical_kernel_fwhm_px) +
                         ": must be 0 (derive from R) or in [0.118, 20] px");
}

Disperser::Disperser(const DisperserOptions& options)
    : Disperser(options.dispersion_table.empty() ? builtin_dispersion_table(options.grating)
                                                 : read_dispersion_table(options.dispersion_table),
                options) {}

Disperser::Disperser(DispersionTable table, const DisperserOptions& options)
    : options_(options), table_(std::move(table)) {
  options_.validate();
  table_.validate();
  band_ = grating_filter_band(options_.grating, options_.filter);
  if (table_.wavelength_um.front() > band_.lo_um || table_.wavelength_um.back() < band_.hi_um)
    throw InputError(table_.source + ": dispersion table covers " + format_value(table_.wavelength_um.front()) +
                     "-" + format_value(table_.wavelength_um.back()) + " um, must cover the band " +
                     format_value(band_.lo_um) + "-" + format_value(band_.hi_um) + " um");
  build();
}

double Disperser::dlds_um_per_px(double l) const { return interp(table_.wavelength_um, table_.dlds_um_per_px, l); }
double Disperser::resolving_power(double l) const { return interp(table_.wavelength_um, table_.resolving_power, l); }
double Disperser::nominal_fwhm_px(double l) const { return l / (resolving_power(l) * dlds_um_per_px(l)); }

double Disperser::profile_fwhm_px(double width_px, double sigma_px) {
  const double hw = 0.5 * width_px;
  auto prof = [&](double t) { return box_gauss_fraction(-hw, hw, sigma_px, t - 0.5, t + 0.5); };
  const double half = 0.5 * prof(0.0);
  double lo = 0.0, hi = hw + 1.0 + 12.0 * sigma_px;
  for (int it = 0; it < 80; ++it) {
    const double m = 0.5 * (lo + hi);
    (prof(m) > half ? lo : hi) = m;
  }
  return lo + hi;  // 2 * midpoint
}

void Disperser::build() {
  // Fine tabulation of u(lambda) by trapezoidal integration of 1/DLDS.
  const double margin = 0.02;
  fine_lo_um_ = std::max(table_.wavelength_um.front(), band_.lo_um - margin);
  const double fine_hi = std::min(table_.wavelength_um.back(), band_.hi_um + margin);
  const int nf = 40001;
  fine_step_um_ = (fine_hi - fine_lo_um_) / (nf - 1);
  fine_u_.assign(nf, 0.0);
  for (int i = 1; i < nf; ++i) {
    const double l0 = fine_lo_um_ + (i - 1) * fine_step_um_, l1 = l0 + fine_step_um_;
    fine_u_[i] = fine_u_[i - 1] + 0.5 * fine_step_um_ * (1.0 / dlds_um_per_px(l0) + 1.0 / dlds_um_per_px(l1));
  }
  // shift so that u(band_lo) = 0
  double u_lo;
  {
    const double f = (band_.lo_um - fine_lo_um_) / fine_step_um_;
    const int i = std::min(static_cast<int>(f), nf - 2);
    u_lo = fine_u_[i] + (f - i) * (fine_u_[i + 1] - fine_u_[i]);
  }
  for (double& u : fine_u_) u -= u_lo;
  const int ncol = static_cast<int>(std::floor(u_of_lambda(band_.hi_um) + 1e-9)) + 1;
  column_wavelength_um_.resize(ncol);
  for (int u = 0; u < ncol; ++u) column_wavelength_um_[u] = lambda_of_u(u);

  // Optical kernel sigma sampled every 0.01 um over the band (+ margin).
  ksig_lo_um_ = fine_lo_um_;
  ksig_step_um_ = 0.01;
  const int nk = static_cast<int>(std::ceil((fine_hi - fine_lo_um_) / ksig_step_um_)) + 1;
  ksig_px_.assign(nk, 0.0);
  const double width_px = options_.slit_width_arcsec / options_.pixel_x_arcsec;
  double last_target = -1.0, last_sigma = 0.0;
  for (int i = 0; i < nk; ++i) {
    if (options_.optical_kernel_fwhm_px > 0.0) {
      ksig_px_[i] = options_.optical_kernel_fwhm_px / kFwhmPerSigma;
      continue;
    }
    const double l = ksig_lo_um_ + i * ksig_step_um_;
    const double target = nominal_fwhm_px(l);
    if (std::abs(target - last_target) < 1e-12) {
      ksig_px_[i] = last_sigma;
      continue;
    }
    double s;
    if (profile_fwhm_px(width_px, kMinKernelSigmaPx) >= target) {
      s = kMinKernelSigmaPx;
      kernel_clamped_ = true;
    } else {
      double lo = kMinKernelSigmaPx, hi = 20.0;
      for (int it = 0; it < 60; ++it) {
        const double m = 0.5 * (lo + hi);
        (profile_fwhm_px(width_px, m) < target ? lo : hi) = m;
      }
      s = 0.5 * (lo + hi);
    }
    ksig_px_[i] = s;
    last_target = target;
    last_sigma = s;
  }
}

double Disperser::kernel_sigma_px(double l) const {
  const double f = (l - ksig_lo_um_) / ksig_step_um_;
  const int n = static_cast<int>(ksig_px_.size());
  if (f <= 0.0) return ksig_px_.front();
  if (f >= n - 1) return ksig_px_.back();
  const int i = static_cast<int>(f);
  return ksig_px_[i] + (f - i) * (ksig_px_[i + 1] - ksig_px_[i]);
}

double Disperser::u_of_lambda(double l) const {
  const int nf = static_cast<int>(fine_u_.size());
  double f = (l - fine_lo_um_) / fine_step_um_;
  if (f <= 0.0) return fine_u_.front() + f * (fine_u_[1] - fine_u_[0]);
  if (f >= nf - 1) return fine_u_.back() + (f - (nf - 1)) * (fine_u_[nf - 1] - fine_u_[nf - 2]);
  const int i = static_cast<int>(f);
  return fine_u_[i] + (f - i) * (fine_u_[i + 1] - fine_u_[i]);
}

double Disperser::lambda_of_u(double u) const {
  const int nf = static_cast<int>(fine_u_.size());
  if (u <= fine_u_.front())
    return fine_lo_um_ + (u - fine_u_.front()) * fine_step_um_ / (fine_u_[1] - fine_u_[0]);
  if (u >= fine_u_.back())
    return fine_lo_um_ + (nf - 1) * fine_step_um_ +
           (u - fine_u_.back()) * fine_step_um_ / (fine_u_[nf - 1] - fine_u_[nf - 2]);
  const auto it = std::upper_bound(fine_u_.begin(), fine_u_.end(), u);
  const int i = static_cast<int>(it - fine_u_.begin()) - 1;
  const double t = (u - fine_u_[i]) / (fine_u_[i + 1] - fine_u_[i]);
  return fine_lo_um_ + (i + t) * fine_step_um_;
}

}  // namespace slitstep
