// slitstep/analysis: paper-style text table (see report.hpp).
#include "analysis/report.hpp"

#include <cmath>
#include <cstdio>

namespace slitstep {
namespace {

std::string fmt(const char* f, double v) {
  if (!std::isfinite(v)) return "--";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string pm(const char* f, const ValueError& v) {
  if (!std::isfinite(v.value)) return "--";
  return fmt(f, v.value) + " +- " + fmt(f, v.err);
}

}  // namespace

std::string format_analysis_table(const AnalysisSummary& s, const std::string& name, double z) {
  char line[512];
  std::string out;
  std::snprintf(line, sizeof line, "%-22s %8s %6s %6s %22s %22s %8s %16s %14s %14s\n", "galaxy", "z", "diag",
                "N_SF", "grad (dex/kpc)", "grad (dex/Re)", "RMSE", "v_c (km/s)", "sigma0 (km/s)", "v_c/sigma0");
  out += line;
  std::string id = name.size() > 22 ? "..." + name.substr(name.size() - 19) : name;
  std::snprintf(line, sizeof line, "%-22s %8s %6s %6d %22s %22s %8s %16s %14s %14s\n", id.c_str(),
                fmt("%.4f", z).c_str(), s.classification.c_str(), s.n_spaxels_sf,
                pm("%.4f", s.gradient_dex_per_kpc).c_str(), pm("%.4f", s.gradient_dex_per_re).c_str(),
                fmt("%.3f", s.rmse_dex).c_str(), pm("%.1f", s.vc_kms).c_str(), pm("%.1f", s.sigma0_kms).c_str(),
                pm("%.2f", s.v_over_sigma).c_str());
  out += line;
  std::snprintf(line, sizeof line,
                "centre (%s\", %s\"), PA %s deg (%s), inclination %s deg (%s), R_t %s\", %s kpc/\", "
                "%d selected spaxels, %s, M_dyn(<R_e) %s Msun\n",
                fmt("%+.3f", s.center_arcsec[0]).c_str(), fmt("%+.3f", s.center_arcsec[1]).c_str(),
                fmt("%.1f", s.pa_deg).c_str(), s.pa_source.c_str(), fmt("%.1f", s.inclination_deg).c_str(),
                s.inclination_source.c_str(), fmt("%.3f", s.rt_arcsec.value).c_str(),
                fmt("%.3f", s.kpc_per_arcsec).c_str(), s.n_spaxels_selected,
                s.rotation_class.empty() ? "undetermined" : s.rotation_class.c_str(), fmt("%.3g", s.mdyn_msun).c_str());
  out += line;
  out += "status: " + (s.status.ok() ? std::string("ok") : s.status.message) + "\n";
  return out;
}

}  // namespace slitstep
