#include "instruments/exposure_io.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/cube.hpp"
#include "core/error.hpp"
#include "core/fits.hpp"
#include "core/units.hpp"
#include "core/version.hpp"

namespace slitstep {

namespace {

constexpr const char* kVarBunit = "erg2 s-2 cm-4 um-2 arcsec-4";
constexpr double kSpeedOfLight_um_s = 2.99792458e14;

std::string trim_upper(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t a = 0;
  while (a < s.size() && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  s = s.substr(a);
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string compact_unit(const std::string& s) {
  std::string o;
  for (char c : trim_upper(s))
    if (c != ' ') o += c;
  return o;
}

void write_ext(FitsFile& f, const char* extname, FitsPixel type, long nu, long nv, const std::string& bunit,
               const std::string& what) {
  f.create_image(type, {nu, nv});
  f.write_key("EXTNAME", extname, what);
  f.write_key("BUNIT", bunit, "physical unit of the array values");
}

}  // namespace

std::string exposure_file_name(const Pointing& p) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "exp_p%03d_s%02d_d%02d.fits", p.index, p.step, p.dither);
  return buf;
}

void write_exposure(const std::string& path, const Exposure& e, const ExposureFileMeta& meta) {
  try {
    e.validate();
    meta.slitlet.validate();
  } catch (const InvalidOptions& ex) {
    throw InputError(path + ": cannot write exposure: " + ex.what());
  }
  const long nu = e.nu, nv = e.nv;
  const std::size_t n = e.size();
  FitsFile f = FitsFile::create(path);
  f.create_empty_primary();
  f.write_key("ORIGIN", "slitstep", "software that wrote this file");
  f.write_key("SOFTVER", meta.software_version.empty() ? std::string(kVersion) : meta.software_version,
              "slitstep version");
  f.write_date(meta.date);
  f.write_key("PRODTYPE", "EXPOSURE", "one slitlet 2-D spectrum at one pointing");
  f.write_key("SEED", std::to_string(e.seed), "noise seed (decimal, unsigned 64-bit; 0 = noiseless)");
  f.write_key("TELESCOP", "JWST", "telescope (simulated)");
  f.write_key("INSTRUME", "NIRSPEC", "instrument (simulated)");
  f.write_key("EXP_TYPE", "NRS_MSASPEC", "MSA spectroscopy");
  f.write_key("GRATING", meta.grating, "grating");
  f.write_key("FILTER", meta.filter, "filter");
  f.write_key("PNTINDEX", static_cast<long>(e.pointing.index), "pointing index in observing order (0-based)");
  f.write_key("PATTSTEP", static_cast<long>(e.pointing.step), "step along dispersion (0-based)");
  f.write_key("PATTDITH", static_cast<long>(e.pointing.dither), "dither along the slit (0-based)");
  f.write_key("MSAXOFF", e.pointing.offset_x_arcsec, "[arcsec] slitlet sees sky x + MSAXOFF (aperture frame)");
  f.write_key("MSAYOFF", e.pointing.offset_y_arcsec, "[arcsec] slitlet sees sky y + MSAYOFF (aperture frame)");
  f.write_key("EFFEXPTM", e.pointing.exptime_s, "[s] effective exposure time");
  f.write_key("QUADRANT", static_cast<long>(meta.slitlet.quadrant), "MSA quadrant 1..4");
  f.write_key("SHUTTRI", static_cast<long>(meta.slitlet.shutter_i), "shutter index along dispersion 1..365");
  f.write_key("SHUTTRJ", static_cast<long>(meta.slitlet.shutter_j), "middle shutter index along slit 1..171");
  f.write_key("NSHUTTER", static_cast<long>(meta.slitlet.n_shutters), "open shutters in the slitlet");
  f.write_key("SHOPENX", meta.slitlet.shutter.open_x_arcsec, "[arcsec] shutter open width (dispersion)");
  f.write_key("SHOPENY", meta.slitlet.shutter.open_y_arcsec, "[arcsec] shutter open height (slit)");
  f.write_key("SHPITCHX", meta.slitlet.shutter.pitch_x_arcsec, "[arcsec] shutter pitch (dispersion)");
  f.write_key("SHPITCHY", meta.slitlet.shutter.pitch_y_arcsec, "[arcsec] shutter pitch (slit)");
  f.write_key("ROWY0", e.y0_arcsec, "[arcsec] aperture-frame y of the centre of row 1");
  f.write_key("ROWPITCH", e.pixel_y_arcsec, "[arcsec] row pitch along the slit");
  f.write_comment("Axis 1 = dispersion column u, axis 2 = row v along the slit (FITS 1-based).");
  f.write_comment("SCI/ERR are surface brightness calibrated for a uniformly illuminated shutter.");

  std::vector<float> buf(n);
  auto to_float = [&](const std::vector<double>& v) {
    for (std::size_t p = 0; p < n; ++p) buf[p] = static_cast<float>(v[p]);
    return buf;
  };
  write_ext(f, "SCI", FitsPixel::kFloat32, nu, nv, kSurfaceBrightnessBunit, "surface brightness");
  f.write_image(to_float(e.sci));
  write_ext(f, "ERR", FitsPixel::kFloat32, nu, nv, kSurfaceBrightnessBunit, "1-sigma uncertainty of SCI");
  f.write_image(to_float(e.err));
  f.create_image(FitsPixel::kInt32, {nu, nv});
  f.write_key("EXTNAME", "DQ", "data-quality flags (slitstep DqBit)");
  f.write_key("BUNIT", "", "dimensionless bit flags");
  std::vector<std::int32_t> dq(n);
  for (std::size_t p = 0; p < n; ++p) dq[p] = static_cast<std::int32_t>(e.dq[p] & 0x7fffffffu);
  f.write_image(dq);
  write_ext(f, "WAVELENGTH", FitsPixel::kFloat64, nu, nv, "um", "vacuum wavelength of each pixel");
  std::vector<double> wl(n);
  for (long v = 0; v < nv; ++v)
    for (long u = 0; u < nu; ++u)
      wl[e.index(v, u)] = e.wavelength2d_um.empty() ? e.wavelength_um[u] : e.wavelength2d_um[e.index(v, u)];
  f.write_image(wl);
  write_ext(f, "VAR_POISSON", FitsPixel::kFloat64, nu, nv, kVarBunit, "Poisson variance");
  f.write_image(e.var_poisson);
  write_ext(f, "VAR_RNOISE", FitsPixel::kFloat64, nu, nv, kVarBunit, "read-noise variance");
  f.write_image(e.var_rnoise);
  f.commit();
}

ExposureFile read_exposure(const std::string& path) {
  FitsFile f = FitsFile::open_read(path);
  ExposureFile out;
  Exposure& e = out.exposure;
  ExposureFileMeta& meta = out.meta;
  auto bad = [&](const std::string& msg) -> InputError { return InputError(path + ": " + msg); };

  f.move_to(0);
  meta.slitstep_product = trim_upper(f.read_string_opt("ORIGIN").value_or("")) == "SLITSTEP";
  meta.grating = trim_upper(f.read_string_opt("GRATING").value_or(""));
  meta.filter = trim_upper(f.read_string_opt("FILTER").value_or(""));
  const bool ours = meta.slitstep_product;
  if (ours) {
    const std::string seed = f.read_string("SEED");
    std::uint64_t s = 0;
    for (char c : seed) {
      if (c == ' ') continue;
      if (c < '0' || c > '9') throw bad("HDU 0: SEED = '" + seed + "' is not an unsigned integer");
      s = s * 10 + static_cast<std::uint64_t>(c - '0');
    }
    e.seed = s;
    meta.software_version = f.read_string_opt("SOFTVER").value_or("");
    meta.date = f.read_string_opt("DATE").value_or("");
    e.pointing.index = static_cast<int>(f.read_long("PNTINDEX"));
    e.pointing.step = static_cast<int>(f.read_long("PATTSTEP"));
    e.pointing.dither = static_cast<int>(f.read_long("PATTDITH"));
    e.pointing.offset_x_arcsec = f.read_double("MSAXOFF");
    e.pointing.offset_y_arcsec = f.read_double("MSAYOFF");
    e.pointing.exptime_s = f.read_double("EFFEXPTM");
    meta.slitlet.quadrant = static_cast<int>(f.read_long("QUADRANT"));
    meta.slitlet.shutter_i = static_cast<int>(f.read_long("SHUTTRI"));
    meta.slitlet.shutter_j = static_cast<int>(f.read_long("SHUTTRJ"));
    meta.slitlet.n_shutters = static_cast<int>(f.read_long("NSHUTTER"));
    meta.slitlet.shutter.open_x_arcsec = f.read_double("SHOPENX");
    meta.slitlet.shutter.open_y_arcsec = f.read_double("SHOPENY");
    meta.slitlet.shutter.pitch_x_arcsec = f.read_double("SHPITCHX");
    meta.slitlet.shutter.pitch_y_arcsec = f.read_double("SHPITCHY");
    e.y0_arcsec = f.read_double("ROWY0");
    e.pixel_y_arcsec = f.read_double("ROWPITCH");
    try {
      meta.slitlet.validate();
    } catch (const InvalidOptions& ex) {
      throw bad(std::string("HDU 0: ") + ex.what());
    }
  } else {
    if (auto x = f.read_long_opt("EXPOSURE")) e.pointing.index = static_cast<int>(*x) - 1;
    if (auto x = f.read_long_opt("PATT_NUM")) e.pointing.dither = static_cast<int>(*x) - 1;
    if (auto x = f.read_double_opt("EFFEXPTM")) e.pointing.exptime_s = *x;
    meta.notes.push_back("foreign file: pattern offsets set to 0, slitlet geometry = defaults");
  }

  // ---- SCI ---------------------------------------------------------------------------------
  f.move_to(std::string("SCI"));
  const std::vector<long> dims = f.image_dims();
  if (dims.size() != 2 || dims[0] < 1 || dims[1] < 1)
    throw bad("HDU " + std::to_string(f.current_hdu()) + " (SCI): expected a 2-D image, NAXIS = " +
              std::to_string(dims.size()));
  const int nu = static_cast<int>(dims[0]), nv = static_cast<int>(dims[1]);
  const std::size_t n = static_cast<std::size_t>(nu) * nv;
  meta.sci_bunit_in = f.read_string_opt("BUNIT").value_or("");
  const double pixar_sr = f.read_double_opt("PIXAR_SR").value_or(0.0);
  std::vector<double> sci = f.read_image_double(dims);
  if (!ours) {
    e.pixel_y_arcsec = 0.1;
    e.y0_arcsec = -0.5 * (nv - 1) * e.pixel_y_arcsec;
    meta.notes.push_back("row geometry not read from the ASDF WCS: nominal 0.1\" rows centred on the cut-out");
  }
  auto read_same = [&](const char* name, bool required) -> std::vector<double> {
    if (!f.try_move_to(name)) {
      if (required) throw bad(std::string("no ") + name + " extension");
      return {};
    }
    return f.read_image_double(dims);
  };
  std::vector<double> err = read_same("ERR", true);
  const std::string err_bunit = f.read_string_opt("BUNIT").value_or(meta.sci_bunit_in);
  if (compact_unit(err_bunit) != compact_unit(meta.sci_bunit_in))
    throw bad("HDU " + std::to_string(f.current_hdu()) + " (ERR): BUNIT = '" + err_bunit + "' differs from SCI's '" +
              meta.sci_bunit_in + "'");
  std::vector<double> dqd = read_same("DQ", true);
  std::vector<double> wl = read_same("WAVELENGTH", true);
  std::vector<double> vp = read_same("VAR_POISSON", ours);
  std::vector<double> vr = read_same("VAR_RNOISE", ours);

  // ---- unit conversion factor per pixel (SCI unit -> slitstep SB) ----------------------------
  const std::string unit = compact_unit(meta.sci_bunit_in);
  enum class U { kNative, kMJySr, kMJy } kind;
  if (unit == compact_unit(kSurfaceBrightnessBunit)) {
    kind = U::kNative;
  } else if (unit == "MJY/SR" || unit == "MJYSR-1" || unit == "MJY.SR-1") {
    kind = U::kMJySr;
  } else if (unit == "MJY") {
    kind = U::kMJy;
    if (!(pixar_sr > 0.0)) throw bad("SCI: BUNIT = 'MJy' needs PIXAR_SR (pixel area in sr) to make a surface brightness");
  } else {
    throw bad("SCI: BUNIT = '" + meta.sci_bunit_in + "' is not supported (expected '" + kSurfaceBrightnessBunit +
              "', 'MJy/sr' or 'MJy')");
  }
  if (kind != U::kNative) meta.notes.push_back("converted " + meta.sci_bunit_in + " to " + kSurfaceBrightnessBunit);

  e.resize(nv, nu);
  e.wavelength2d_um.clear();
  std::size_t n_nonfinite = 0;
  for (std::size_t p = 0; p < n; ++p) {
    const double d = dqd[p];
    if (!(d >= 0.0 && d <= 4294967295.0 && d == std::floor(d)))
      throw bad("DQ: pixel " + std::to_string(p) + " holds " + format_value(d) + ", not a 32-bit unsigned flag");
    const auto raw = static_cast<std::uint32_t>(d);
    e.dq[p] = ours ? raw : ((raw & 1u) ? static_cast<std::uint32_t>(kDqDoNotUse) : 0u);
    double factor = 1.0;
    const double lam = wl[p];
    if (kind != U::kNative && std::isfinite(lam) && lam > 0.0) {
      factor = 1e-17 * kSpeedOfLight_um_s / (lam * lam) / (kArcsecPerRad * kArcsecPerRad);
      if (kind == U::kMJy) factor /= pixar_sr;
    }
    const double vpp = vp.empty() ? err[p] * err[p] : vp[p];
    const double vrr = vr.empty() ? 0.0 : vr[p];
    const bool finite = std::isfinite(sci[p]) && std::isfinite(err[p]) && std::isfinite(vpp) && std::isfinite(vrr) &&
                        std::isfinite(lam) && (kind == U::kNative || lam > 0.0);
    if (!finite) {
      ++n_nonfinite;
      e.dq[p] |= kDqNonFinite | kDqDoNotUse;
      e.sci[p] = e.err[p] = e.var_poisson[p] = e.var_rnoise[p] = 0.0;
      continue;
    }
    e.sci[p] = sci[p] * factor;
    e.err[p] = err[p] * factor;
    e.var_poisson[p] = vpp * factor * factor;
    e.var_rnoise[p] = vrr * factor * factor;
  }
  if (vp.empty()) meta.notes.push_back("no VAR_POISSON: ERR^2 used");
  if (n_nonfinite) meta.notes.push_back(std::to_string(n_nonfinite) + " non-finite pixels flagged NON_FINITE|DO_NOT_USE");

  // ---- wavelengths: 1-D when every row agrees, else keep the 2-D map ---------------------------
  bool rows_agree = true;
  for (int v = 1; v < nv && rows_agree; ++v)
    for (int u = 0; u < nu; ++u) {
      const double a = wl[static_cast<std::size_t>(v) * nu + u], b = wl[u];
      if (!(a == b)) { rows_agree = false; break; }
    }
  if (rows_agree) {
    for (int u = 0; u < nu; ++u) e.wavelength_um[u] = wl[u];
  } else {
    e.wavelength2d_um.assign(n, std::numeric_limits<double>::quiet_NaN());
    std::vector<double> col;
    for (int u = 0; u < nu; ++u) {
      col.clear();
      for (int v = 0; v < nv; ++v) {
        const double x = wl[static_cast<std::size_t>(v) * nu + u];
        if (std::isfinite(x)) col.push_back(x);
        e.wavelength2d_um[static_cast<std::size_t>(v) * nu + u] = x;
      }
      if (col.empty()) {
        e.wavelength_um[u] = std::numeric_limits<double>::quiet_NaN();
      } else {
        std::sort(col.begin(), col.end());
        const std::size_t h = col.size() / 2;
        e.wavelength_um[u] = (col.size() % 2) ? col[h] : 0.5 * (col[h - 1] + col[h]);
      }
    }
    // Columns without any wavelength: linear inter/extrapolation from the finite ones.
    std::vector<int> good;
    for (int u = 0; u < nu; ++u)
      if (std::isfinite(e.wavelength_um[u])) good.push_back(u);
    if (good.size() < 2) throw bad("WAVELENGTH: fewer than two columns have a finite wavelength");
    for (int u = 0; u < nu; ++u) {
      if (std::isfinite(e.wavelength_um[u])) continue;
      auto it = std::lower_bound(good.begin(), good.end(), u);
      int a, b;
      if (it == good.begin()) { a = good[0]; b = good[1]; }
      else if (it == good.end()) { a = good[good.size() - 2]; b = good.back(); }
      else { a = *(it - 1); b = *it; }
      e.wavelength_um[u] = e.wavelength_um[a] + (u - a) * (e.wavelength_um[b] - e.wavelength_um[a]) / (b - a);
    }
    meta.notes.push_back("WAVELENGTH varies along the rows: kept per pixel in wavelength2d_um");
  }
  try {
    e.validate();
  } catch (const InvalidOptions& ex) {
    throw bad(ex.what());
  }
  return out;
}

}  // namespace slitstep
