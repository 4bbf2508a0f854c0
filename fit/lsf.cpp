#include "fit/lsf.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/units.hpp"
#include "instruments/disperser.hpp"

namespace slitstep {

namespace {
void require_positive(const char* what, double v) {
  if (!std::isfinite(v) || !(v > 0.0))
    throw InvalidOptions(std::string("LsfModel: ") + what + " = " + format_value(v) + ": must be finite and > 0");
}
}  // namespace

LsfModel LsfModel::from_disperser(const Disperser& disperser, double step_um) {
  require_positive("step_um", step_um);
  const Band band = disperser.band();
  const auto& tab = disperser.table();
  const double lo = std::max(band.lo_um, tab.wavelength_um.front());
  const double hi = std::min(band.hi_um, tab.wavelength_um.back());
  if (!(hi > lo)) throw InvalidOptions("LsfModel::from_disperser: empty band");
  const int n = std::max(2, static_cast<int>(std::ceil((hi - lo) / step_um)) + 1);
  std::vector<double> wl(static_cast<std::size_t>(n)), sig(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const double l = (i == n - 1) ? hi : lo + i * (hi - lo) / (n - 1);
    wl[static_cast<std::size_t>(i)] = l;
    sig[static_cast<std::size_t>(i)] = kSpeedOfLight_kms / (disperser.resolving_power(l) * kFwhmPerSigma);
  }
  LsfModel m = tabulated(std::move(wl), std::move(sig), tab.source);
  m.description_ = "NIRSpec " + disperser.options().grating + " nominal R (slit-filling), " + tab.source;
  return m;
}

LsfModel LsfModel::constant_resolving_power(double r) {
  require_positive("resolving_power", r);
  LsfModel m;
  m.kind_ = Kind::kConstantResolvingPower;
  m.value_ = r;
  m.description_ = "constant R " + format_value(r);
  return m;
}

LsfModel LsfModel::constant_fwhm_A(double fwhm_A) {
  require_positive("fwhm_A", fwhm_A);
  LsfModel m;
  m.kind_ = Kind::kConstantFwhmA;
  m.value_ = fwhm_A;
  m.description_ = "constant FWHM " + format_value(fwhm_A) + " A";
  return m;
}

LsfModel LsfModel::constant_sigma_kms(double s) {
  require_positive("sigma_kms", s);
  LsfModel m;
  m.kind_ = Kind::kConstantSigma;
  m.value_ = s;
  m.description_ = "constant sigma " + format_value(s) + " km/s";
  return m;
}

LsfModel LsfModel::tabulated(std::vector<double> wl, std::vector<double> sig, std::string source) {
  if (wl.size() < 2 || wl.size() != sig.size())
    throw InvalidOptions("LsfModel::tabulated(" + source + "): need >= 2 rows and equal column sizes, got " +
                         std::to_string(wl.size()) + " and " + std::to_string(sig.size()));
  for (std::size_t i = 0; i < wl.size(); ++i) {
    const std::string row = " at row " + std::to_string(i);
    if (!std::isfinite(wl[i]) || !(wl[i] > 0.0) || (i > 0 && !(wl[i] > wl[i - 1])))
      throw InvalidOptions("LsfModel::tabulated(" + source + "): wavelength_um = " + format_value(wl[i]) + row +
                           ": must be finite, > 0 and strictly increasing");
    if (!std::isfinite(sig[i]) || !(sig[i] > 0.0))
      throw InvalidOptions("LsfModel::tabulated(" + source + "): sigma_kms = " + format_value(sig[i]) + row +
                           ": must be finite and > 0");
  }
  LsfModel m;
  m.kind_ = Kind::kTabulated;
  m.wl_um_ = std::move(wl);
  m.sigma_kms_ = std::move(sig);
  m.description_ = "tabulated sigma(lambda), " + source;
  return m;
}

double LsfModel::sigma_kms(double l) const {
  switch (kind_) {
    case Kind::kConstantSigma: return value_;
    case Kind::kConstantResolvingPower: return kSpeedOfLight_kms / (value_ * kFwhmPerSigma);
    case Kind::kConstantFwhmA: return kSpeedOfLight_kms * value_ / (kFwhmPerSigma * l * kAngstromPerUm);
    case Kind::kTabulated: break;
  }
  if (!(l > wl_um_.front())) return sigma_kms_.front();
  if (!(l < wl_um_.back())) return sigma_kms_.back();
  const auto it = std::upper_bound(wl_um_.begin(), wl_um_.end(), l);
  const std::size_t i = static_cast<std::size_t>(it - wl_um_.begin()) - 1;
  const double f = (l - wl_um_[i]) / (wl_um_[i + 1] - wl_um_[i]);
  return sigma_kms_[i] + f * (sigma_kms_[i + 1] - sigma_kms_[i]);
}

double LsfModel::dsigma_kms_dum(double l) const {
  switch (kind_) {
    case Kind::kConstantSigma:
    case Kind::kConstantResolvingPower: return 0.0;
    case Kind::kConstantFwhmA: return -kSpeedOfLight_kms * value_ / (kFwhmPerSigma * l * l * kAngstromPerUm);
    case Kind::kTabulated: break;
  }
  if (!(l > wl_um_.front()) || !(l < wl_um_.back())) return 0.0;
  const auto it = std::upper_bound(wl_um_.begin(), wl_um_.end(), l);
  const std::size_t i = static_cast<std::size_t>(it - wl_um_.begin()) - 1;
  return (sigma_kms_[i + 1] - sigma_kms_[i]) / (wl_um_[i + 1] - wl_um_[i]);
}

bool LsfModel::covers(double l) const {
  if (!std::isfinite(l) || !(l > 0.0)) return false;
  if (kind_ != Kind::kTabulated) return true;
  return l >= wl_um_.front() && l <= wl_um_.back();
}

}  // namespace slitstep
