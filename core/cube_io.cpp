// slitstep/core: the cube FITS product. See cube_io.hpp and docs/formats.md.
#include "core/cube_io.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <sstream>

#include "core/error.hpp"
#include "core/fits.hpp"
#include "core/units.hpp"
#include "core/version.hpp"

namespace slitstep {

void write_celestial_wcs(FitsFile& f, const SpatialGrid& grid, const SkyFrame& sky) {
  const double p = grid.pixel_arcsec;
  const Angle a = Angle::from_deg(sky.aperture_pa_deg);
  f.write_key("CTYPE1", "RA---TAN", "right ascension, gnomonic projection");
  f.write_key("CTYPE2", "DEC--TAN", "declination, gnomonic projection");
  f.write_key("CUNIT1", "deg", "unit of CRVAL1 and CDELT1");
  f.write_key("CUNIT2", "deg", "unit of CRVAL2 and CDELT2");
  f.write_key("CRPIX1", 1.0 - grid.x0_arcsec / p, "FITS pixel (1-based) of the aperture origin x = 0");
  f.write_key("CRPIX2", 1.0 - grid.y0_arcsec / p, "FITS pixel (1-based) of the aperture origin y = 0");
  f.write_key("CRVAL1", sky.ra_deg, "[deg] RA of the aperture origin");
  f.write_key("CRVAL2", sky.dec_deg, "[deg] Dec of the aperture origin");
  f.write_key("CDELT1", -p / 3600.0, "[deg] -pixel size (x = west at PA 0)");
  f.write_key("CDELT2", p / 3600.0, "[deg] pixel size");
  f.write_key("PC1_1", a.cos(), "cos(PA)");
  f.write_key("PC1_2", -a.sin(), "-sin(PA)");
  f.write_key("PC2_1", a.sin(), "sin(PA)");
  f.write_key("PC2_2", a.cos(), "cos(PA)");
  f.write_key("RADESYS", "ICRS", "celestial reference frame");
}

namespace {

constexpr const char* kOrigin = "slitstep";
constexpr const char* kWcsTableExt = "WCS-TABLE";
constexpr const char* kWcsTableColumn = "wavelength";
constexpr const char* kCfgMore = "cfg+ ";  // a configuration line continues on the next card
constexpr const char* kCfgEnd = "cfg> ";   // the last card of a configuration line
constexpr std::size_t kCfgChunk = 64;      // encoded characters per card (COMMENT holds 72)
constexpr double kSpeedOfLight_ums = 2.99792458e14;

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}
std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

// ================================ configuration encoding ====================================
// Each line of the text (split at '\n'; the piece after the last '\n' is a line too, possibly
// empty) is escaped to printable ASCII: '\' -> "\\", bytes outside 0x20..0x7E -> "\xHH"; a space
// that would end a card is written "\x20" (FITS readers drop trailing blanks). The escaped line is
// cut into chunks of <= 64 characters (never inside an escape); every chunk but the last goes on
// a "COMMENT cfg+ " card, the last on a "COMMENT cfg> " card. CFGCARDS and CFGBYTES record the
// card count and the byte length so that damage is detected.

std::vector<std::string> escape_line_tokens(const std::string& line) {
  std::vector<std::string> t;
  t.reserve(line.size());
  for (unsigned char c : line) {
    if (c == '\\') {
      t.emplace_back("\\\\");
    } else if (c >= 0x20 && c <= 0x7E) {
      t.emplace_back(1, static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      t.emplace_back(buf);
    }
  }
  return t;
}

std::vector<std::string> encode_config_cards(const std::string& text) {
  std::vector<std::string> cards;
  std::size_t start = 0;
  while (true) {
    const std::size_t nl = text.find('\n', start);
    const std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    const auto tokens = escape_line_tokens(line);
    std::size_t t = 0;
    do {
      std::string chunk;
      while (t < tokens.size() && chunk.size() + tokens[t].size() <= kCfgChunk) chunk += tokens[t++];
      if (!chunk.empty() && chunk.back() == ' ') {
        chunk.pop_back();
        chunk += "\\x20";
      }
      cards.push_back((t < tokens.size() ? kCfgMore : kCfgEnd) + chunk);
    } while (t < tokens.size());
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return cards;
}

bool unescape_into(const std::string& s, std::string& out) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (i + 1 < s.size() && s[i + 1] == '\\') {
      out += '\\';
      ++i;
    } else if (i + 3 < s.size() && s[i + 1] == 'x' && std::isxdigit(static_cast<unsigned char>(s[i + 2])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 3]))) {
      out += static_cast<char>(std::strtol(s.substr(i + 2, 2).c_str(), nullptr, 16));
      i += 3;
    } else {
      return false;
    }
  }
  return true;
}

// ==================================== unit parsing ==========================================
// A FITS unit string (WCS Paper I / OGIP style) parsed into a scale and exponents of
// energy (erg), time (s), length (cm), angle (arcsec) and pixel.
struct Dim {
  double scale = 1.0;
  int e = 0, t = 0, l = 0, a = 0, p = 0;
  Dim& mul(const Dim& o, int power) {
    scale *= std::pow(o.scale, power);
    e += o.e * power;
    t += o.t * power;
    l += o.l * power;
    a += o.a * power;
    p += o.p * power;
    return *this;
  }
  bool same_dims(const Dim& o, int k = 1) const {
    return e == k * o.e && t == k * o.t && l == k * o.l && a == k * o.a && p == k * o.p;
  }
};

std::optional<Dim> unit_atom(const std::string& name) {
  struct Entry {
    const char* name;
    Dim d;
  };
  static const Entry table[] = {
      {"erg", {1, 1, 0, 0, 0, 0}},        {"J", {1e7, 1, 0, 0, 0, 0}},
      {"W", {1e7, 1, -1, 0, 0, 0}},       {"mW", {1e4, 1, -1, 0, 0, 0}},
      {"s", {1, 0, 1, 0, 0, 0}},          {"Hz", {1, 0, -1, 0, 0, 0}},
      {"cm", {1, 0, 0, 1, 0, 0}},         {"m", {100, 0, 0, 1, 0, 0}},
      {"mm", {0.1, 0, 0, 1, 0, 0}},       {"um", {1e-4, 0, 0, 1, 0, 0}},
      {"micron", {1e-4, 0, 0, 1, 0, 0}},  {"nm", {1e-7, 0, 0, 1, 0, 0}},
      {"Angstrom", {1e-8, 0, 0, 1, 0, 0}}, {"angstrom", {1e-8, 0, 0, 1, 0, 0}},
      {"A", {1e-8, 0, 0, 1, 0, 0}},       {"AA", {1e-8, 0, 0, 1, 0, 0}},
      {"Jy", {1e-23, 1, 0, -2, 0, 0}},    {"mJy", {1e-26, 1, 0, -2, 0, 0}},
      {"uJy", {1e-29, 1, 0, -2, 0, 0}},   {"nJy", {1e-32, 1, 0, -2, 0, 0}},
      {"kJy", {1e-20, 1, 0, -2, 0, 0}},   {"MJy", {1e-17, 1, 0, -2, 0, 0}},
      {"arcsec", {1, 0, 0, 0, 1, 0}},     {"mas", {1e-3, 0, 0, 0, 1, 0}},
      {"arcmin", {60, 0, 0, 0, 1, 0}},    {"deg", {3600, 0, 0, 0, 1, 0}},
      {"rad", {kArcsecPerRad, 0, 0, 0, 1, 0}}, {"sr", {kArcsecPerRad * kArcsecPerRad, 0, 0, 0, 2, 0}},
      {"pix", {1, 0, 0, 0, 0, 1}},        {"pixel", {1, 0, 0, 0, 0, 1}},
      {"spaxel", {1, 0, 0, 0, 0, 1}},     {"voxel", {1, 0, 0, 0, 0, 1}},
  };
  for (const auto& en : table)
    if (name == en.name) return en.d;
  if (name.size() >= 3) {  // case-insensitive fallback for unambiguous long names
    const std::string n = lower(name);
    for (const auto& en : table)
      if (std::string(en.name).size() >= 3 && lower(en.name) == n) return en.d;
    if (n == "angstroms" || n == "microns" || n == "pixels" || n == "spaxels" || n == "ergs")
      return unit_atom(n.substr(0, n.size() - 1));
  }
  return std::nullopt;
}

class UnitParser {
 public:
  explicit UnitParser(std::string s) : s_(std::move(s)) {}
  std::optional<Dim> parse() {
    Dim d;
    if (!product(d) || pos_ != s_.size()) return std::nullopt;
    return d;
  }

 private:
  void skip_spaces() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }
  // Exponent after a factor: "2", "-2", "+2", "**-2", "^-2", "^(-2)", "(-2)".
  bool exponent(int& ex) {
    ex = 1;
    std::size_t p = pos_;
    if (s_.compare(p, 2, "**") == 0) p += 2;
    else if (p < s_.size() && s_[p] == '^') p += 1;
    bool paren = false;
    if (p < s_.size() && s_[p] == '(' && p + 1 < s_.size() &&
        (std::isdigit(static_cast<unsigned char>(s_[p + 1])) || s_[p + 1] == '-' || s_[p + 1] == '+')) {
      paren = true;
      ++p;
    }
    std::size_t q = p;
    if (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) ++q;
    const std::size_t digits = q;
    while (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) ++q;
    if (q == digits) return p == pos_;  // no exponent (ok unless "**" or "^" was consumed)
    ex = std::atoi(s_.substr(p, q - p).c_str());
    if (paren) {
      if (q >= s_.size() || s_[q] != ')') return false;
      ++q;
    }
    pos_ = q;
    return true;
  }
  bool factor(Dim& out) {
    skip_spaces();
    if (pos_ >= s_.size()) return false;
    const char c = s_[pos_];
    Dim f;
    if (c == '(') {
      ++pos_;
      if (!product(f)) return false;
      skip_spaces();
      if (pos_ >= s_.size() || s_[pos_] != ')') return false;
      ++pos_;
    } else if (std::isdigit(static_cast<unsigned char>(c)) || ((c == '-' || c == '+') && pos_ + 1 < s_.size())) {
      const char* begin = s_.c_str() + pos_;
      char* end = nullptr;
      const double v = std::strtod(begin, &end);
      if (end == begin || !std::isfinite(v) || v <= 0) return false;
      pos_ += static_cast<std::size_t>(end - begin);
      f.scale = v;
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      std::size_t q = pos_;
      while (q < s_.size() && std::isalpha(static_cast<unsigned char>(s_[q]))) ++q;
      auto a = unit_atom(s_.substr(pos_, q - pos_));
      if (!a) return false;
      f = *a;
      pos_ = q;
    } else {
      return false;
    }
    int ex = 1;
    if (!exponent(ex)) return false;
    out = Dim{}.mul(f, ex);
    return true;
  }
  bool product(Dim& d) {
    bool first = true;
    int sign = 1;
    while (true) {
      skip_spaces();
      if (pos_ >= s_.size() || s_[pos_] == ')') return !first;
      if (!first) {
        if (s_[pos_] == '/') {
          sign = -1;
          ++pos_;
        } else if (s_[pos_] == '.' || (s_[pos_] == '*' && s_.compare(pos_, 2, "**") != 0)) {
          ++pos_;
        }
      } else if (s_[pos_] == '/') {
        return false;
      }
      Dim f;
      if (!factor(f)) return false;
      d.mul(f, sign);
      sign = 1;
      first = false;
    }
  }
  std::string s_;
  std::size_t pos_ = 0;
};

std::optional<Dim> parse_unit(const std::string& s) {
  const std::string t = trim(s);
  if (t.empty()) return std::nullopt;
  return UnitParser(t).parse();
}

// Kinds of data unit read_cube accepts.
enum class FluxKind { kFlambdaSb, kFlambdaSpaxel, kFnuSb, kFnuSpaxel };
struct FluxUnit {
  FluxKind kind;
  Dim dim;
};

std::optional<FluxUnit> classify_flux_unit(const Dim& d) {
  // f_lambda: erg s-1 cm-2 (length)-1 -> E T^-1 L^-3; f_nu: erg s-1 cm-2 Hz-1 -> E L^-2.
  const bool flambda = d.e == 1 && d.t == -1 && d.l == -3;
  const bool fnu = d.e == 1 && d.t == 0 && d.l == -2;
  if (!flambda && !fnu) return std::nullopt;
  if (d.a == -2 && d.p == 0) return FluxUnit{flambda ? FluxKind::kFlambdaSb : FluxKind::kFnuSb, d};
  if (d.a == 0 && (d.p == 0 || d.p == -1)) return FluxUnit{flambda ? FluxKind::kFlambdaSpaxel : FluxKind::kFnuSpaxel, d};
  return std::nullopt;
}

// Factor turning a value in `u` at wavelength lambda_um into erg s-1 cm-2 um-1 arcsec-2.
double sb_factor(const FluxUnit& u, double lambda_um, double spaxel_area_arcsec2) {
  double f = u.dim.scale;  // -> erg s-1 cm-3 [arcsec-2] (f_lambda) or erg cm-2 [arcsec-2] (f_nu)
  if (u.kind == FluxKind::kFnuSb || u.kind == FluxKind::kFnuSpaxel) {
    // f_lambda = f_nu c / lambda^2; with c in um/s and lambda in um: erg s-1 cm-2 um-1.
    f *= kSpeedOfLight_ums / (lambda_um * lambda_um);
  } else {
    f *= 1e-4;  // per cm -> per um
  }
  if (u.kind == FluxKind::kFlambdaSpaxel || u.kind == FluxKind::kFnuSpaxel) f /= spaxel_area_arcsec2;
  return f;
}

double spatial_unit_arcsec(const std::string& unit) {
  const std::string u = trim(unit);
  if (u == "deg") return 3600.0;
  if (u == "arcsec") return 1.0;
  if (u == "arcmin") return 60.0;
  if (u == "mas") return 1e-3;
  if (u == "rad") return kArcsecPerRad;
  return 0.0;
}

double spectral_unit_um(const std::string& unit) {
  const std::string u = trim(unit);
  if (u == "um" || u == "micron" || lower(u) == "microns") return 1.0;
  if (u == "nm") return 1e-3;
  if (u == "Angstrom" || lower(u) == "angstrom" || lower(u) == "angstroms" || u == "A" || u == "AA") return 1e-4;
  if (u == "m") return 1e6;
  if (u == "cm") return 1e4;
  if (u == "mm") return 1e3;
  return 0.0;
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

// Transposes between FITS order (x fastest) and the cube's spectrum-contiguous order.
template <class T, class U>
std::vector<T> cube_to_fits(const std::vector<U>& v, int nx, int ny, std::size_t nl) {
  std::vector<T> out(v.size());
  for (int j = 0; j < ny; ++j)
    for (int i = 0; i < nx; ++i) {
      const std::size_t base = (static_cast<std::size_t>(j) * nx + i) * nl;
      for (std::size_t k = 0; k < nl; ++k)
        out[(k * ny + j) * nx + i] = static_cast<T>(v[base + k]);
    }
  return out;
}

// ====================================== writing =============================================

void write_wcs(FitsFile& f, const Cube& c) {
  const double p = c.spatial.pixel_arcsec;
  const double pa = c.sky.aperture_pa_deg;
  f.write_key("WCSAXES", 3L, "number of WCS axes");
  write_celestial_wcs(f, c.spatial, c.sky);
  f.write_key("CUNIT3", "um", "vacuum wavelength unit");
  f.write_key("SPECSYS", "BARYCENT", "spectral reference frame");
  if (c.spectral.is_linear()) {
    const auto& w = c.spectral.windows().front();
    f.write_key("CTYPE3", "WAVE", "vacuum wavelength, linear");
    f.write_key("CRPIX3", 1.0, "reference channel (1-based)");
    f.write_key("CRVAL3", w.start_um, "[um] wavelength of channel 1");
    f.write_key("CDELT3", w.step_um, "[um] channel width");
  } else {
    f.write_key("CTYPE3", "WAVE-TAB", "vacuum wavelength, tabulated (several windows)");
    f.write_key("CRPIX3", 1.0, "reference channel (1-based)");
    f.write_key("CRVAL3", 1.0, "index into the coordinate array at CRPIX3");
    f.write_key("CDELT3", 1.0, "index step per channel");
    f.write_key("PS3_0", kWcsTableExt, "EXTNAME of the coordinate table");
    f.write_key("PS3_1", kWcsTableColumn, "column holding the coordinate array");
    f.write_key("PV3_1", 1L, "EXTVER of the coordinate table");
    f.write_key("PV3_2", 1L, "EXTLEVEL of the coordinate table");
    f.write_key("PV3_3", 1L, "axis number in the coordinate array");
  }
  // Exact grid values, so that a round trip reproduces the Cube bit for bit.
  f.write_key("SS_PIXEL", p, "[arcsec] slitstep SpatialGrid.pixel_arcsec");
  f.write_key("SS_X0", c.spatial.x0_arcsec, "[arcsec] slitstep SpatialGrid.x0_arcsec");
  f.write_key("SS_Y0", c.spatial.y0_arcsec, "[arcsec] slitstep SpatialGrid.y0_arcsec");
  f.write_key("SS_PA", pa, "[deg] slitstep SkyFrame.aperture_pa_deg");
}

void write_extension(FitsFile& f, const char* extname, FitsPixel type, const std::vector<long>& dims,
                     const Cube& c, const std::string& bunit, const std::string& bunit_comment,
                     bool compressed = false) {
  if (compressed) f.create_compressed_image(type, dims);
  else f.create_image(type, dims);
  f.write_key("EXTNAME", extname, "extension name");
  f.write_key("BUNIT", bunit, bunit_comment);
  write_wcs(f, c);
}

}  // namespace

void ReadCubeOptions::validate() const {
  if (sci_extnames.empty()) throw InvalidOptions("ReadCubeOptions.sci_extnames is empty: give at least one name");
  if (spatial_unit_arcsec(linear_spatial_unit) <= 0)
    throw InvalidOptions("ReadCubeOptions.linear_spatial_unit = '" + linear_spatial_unit +
                         "': must be arcsec, mas, arcmin, deg or rad");
  if (!spectral_unit_override.empty() && spectral_unit_um(spectral_unit_override) <= 0)
    throw InvalidOptions("ReadCubeOptions.spectral_unit_override = '" + spectral_unit_override +
                         "': must be um, micron, nm, Angstrom, m, cm or mm");
  if (!bunit_override.empty()) {
    auto d = parse_unit(bunit_override);
    if (!d || !classify_flux_unit(*d))
      throw InvalidOptions("ReadCubeOptions.bunit_override = '" + bunit_override +
                           "': not a recognised surface-brightness or flux-density unit");
  }
  if (!(max_pixel_aspect_deviation >= 0 && max_pixel_aspect_deviation < 0.5))
    throw InvalidOptions("ReadCubeOptions.max_pixel_aspect_deviation = " + format_value(max_pixel_aspect_deviation) +
                         ": must be in [0, 0.5)");
  if (!(max_skew_deg >= 0 && max_skew_deg < 45))
    throw InvalidOptions("ReadCubeOptions.max_skew_deg = " + format_value(max_skew_deg) + ": must be in [0, 45)");
  if (!(max_air_to_vacuum_nonlinearity >= 0 && std::isfinite(max_air_to_vacuum_nonlinearity)))
    throw InvalidOptions("ReadCubeOptions.max_air_to_vacuum_nonlinearity = " +
                         format_value(max_air_to_vacuum_nonlinearity) + ": must be finite and >= 0");
}

double air_to_vacuum_angstrom(double air) {
  double vac = air;
  for (int it = 0; it < 8; ++it) {
    const double s2 = 1.0 / (vac * vac);
    const double n = 1.0 + 2.735182e-4 + 131.4182 * s2 + 2.76249e8 * s2 * s2;
    const double next = air * n;
    if (std::abs(next - vac) < 1e-12 * air) {
      vac = next;
      break;
    }
    vac = next;
  }
  return vac;
}

void write_product_primary(FitsFile& f, const ProductMeta& meta) {
  f.create_empty_primary();
  f.write_key("ORIGIN", kOrigin, "software that wrote this file");
  f.write_key("SOFTVER", meta.software_version.empty() ? std::string(kVersion) : meta.software_version,
              "slitstep version");
  f.write_key("PRODTYPE", meta.product_type, "slitstep product type");
  f.write_key("SEED", std::to_string(meta.seed), "random seed (decimal, unsigned 64-bit)");
  f.write_date(meta.date);
  for (const auto& card : meta.extra_cards)
    std::visit([&](const auto& v) { f.write_key(card.key, v, card.comment); }, card.value);
  const auto cfg = encode_config_cards(meta.config_text);
  f.write_key("CFGCARDS", static_cast<long>(cfg.size()), "COMMENT cards holding the configuration");
  f.write_key("CFGBYTES", static_cast<long>(meta.config_text.size()), "bytes of configuration text");
  f.write_comment("The effective configuration follows: one text line per 'cfg> ' card,");
  f.write_comment("A 'cfg+ ' card continues its line on the next one; escapes \\\\ and \\xHH.");
  f.write_comment("Decoding: docs/formats.md (slitstep::read_product_config).");
  for (const auto& card : cfg) f.write_comment(card);
}

void write_cube(const Cube& cube, const std::string& path, const ProductMeta& meta) {
  cube.validate();
  const int nx = cube.nx(), ny = cube.ny();
  const std::size_t nl = cube.nl();
  const std::vector<long> dims = {nx, ny, static_cast<long>(nl)};

  FitsFile f = FitsFile::create(path);
  // ---- primary HDU: provenance and configuration
  write_product_primary(f, meta);

  // ---- image extensions
  write_extension(f, "SCI", FitsPixel::kFloat32, dims, cube, cube.bunit, "surface brightness");
  f.write_image(cube_to_fits<float>(cube.sci, nx, ny, nl));
  // A noiseless model cube without quality planes: ERR = 0, DQ = 0, WMAP = 1, written as
  // lossless tile-compressed constants so that they cost no disk space.
  const bool constant = !cube.has_quality();
  write_extension(f, "ERR", FitsPixel::kFloat32, dims, cube, cube.bunit, "1-sigma uncertainty of SCI", constant);
  if (constant) f.write_image(std::vector<float>(cube.size(), 0.0f));
  else f.write_image(cube_to_fits<float>(cube.err, nx, ny, nl));
  write_extension(f, "DQ", FitsPixel::kInt32, dims, cube, "", "no unit: bit flags, see docs/formats.md", constant);
  if (constant) {
    f.write_image(std::vector<std::int32_t>(cube.size(), 0));
  } else {
    std::vector<std::int32_t> dq(cube.dq.size());
    for (std::size_t n = 0; n < dq.size(); ++n) dq[n] = static_cast<std::int32_t>(cube.dq[n]);
    f.write_image(cube_to_fits<std::int32_t>(dq, nx, ny, nl));
  }
  write_extension(f, "WMAP", FitsPixel::kFloat32, dims, cube, "", "dimensionless weight (effective exposures)", constant);
  if (constant) f.write_image(std::vector<float>(cube.size(), 1.0f));
  else f.write_image(cube_to_fits<float>(cube.wmap, nx, ny, nl));

  // ---- WCS-TAB coordinate table (FITS WCS Paper III) for windowed grids
  if (!cube.spectral.is_linear()) {
    const std::string tdim = "(1," + std::to_string(nl) + ")";
    f.create_binary_table(kWcsTableExt, {{kWcsTableColumn, std::to_string(nl) + "D", "um", tdim}}, 1);
    f.write_key("EXTVER", 1L, "extension version (PV3_1)");
    const auto& wins = cube.spectral.windows();
    f.write_key("NWIN", static_cast<long>(wins.size()), "slitstep: number of linear wavelength windows");
    for (std::size_t w = 0; w < wins.size(); ++w) {
      const std::string n = std::to_string(w + 1);
      f.write_key("WSTA" + n, wins[w].start_um, "[um] window " + n + ": centre of first channel");
      f.write_key("WSTP" + n, wins[w].step_um, "[um] window " + n + ": channel width");
      f.write_key("WN" + n, static_cast<long>(wins[w].n), "window " + n + ": number of channels");
    }
    f.write_column(kWcsTableColumn, cube.spectral.centres_um());
  }
  f.commit();
}

// ====================================== reading =============================================
namespace {

struct SpatialSolution {
  SpatialGrid grid;
  SkyFrame sky;
  bool celestial = false;
  bool flipped = false;
};

class CubeReader {
 public:
  CubeReader(const std::string& path, const ReadCubeOptions& o, CubeReadReport& r)
      : path_(path), opt_(o), rep_(r), f_(FitsFile::open_read(path)) {}

  Cube read();

 private:
  [[noreturn]] void fail(const std::string& hdu, const std::string& what) const {
    throw InputError(path_ + ": " + hdu + ": " + what);
  }
  std::string hdu_label() {
    const std::string e = f_.extname();
    return "HDU " + std::to_string(f_.current_hdu()) + (e.empty() ? "" : " (" + e + ")");
  }
  std::optional<int> find_ext(const std::vector<std::string>& names) {
    for (const auto& n : names)
      if (f_.try_move_to(n)) return f_.current_hdu();
    return std::nullopt;
  }
  double key_or(const std::string& k, double def) { return f_.read_double_opt(k).value_or(def); }
  SpatialSolution read_spatial(int nx, int ny);
  WavelengthGrid read_spectral(long nl, std::vector<double>& centres_um);

  std::string path_;
  const ReadCubeOptions& opt_;
  CubeReadReport& rep_;
  FitsFile f_;
  std::string sci_label_;
};

SpatialSolution CubeReader::read_spatial(int nx, int ny) {
  const std::string where = sci_label_;
  SpatialSolution s;
  const std::string ct1 = upper(trim(f_.read_string_opt("CTYPE1").value_or("")));
  const std::string ct2 = upper(trim(f_.read_string_opt("CTYPE2").value_or("")));
  const bool celestial = ct1.rfind("RA", 0) == 0 || ct2.rfind("DEC", 0) == 0 || ct1.rfind("DEC", 0) == 0;
  double unit1 = 0, unit2 = 0;
  if (celestial) {
    if (ct1 != "RA---TAN" || ct2 != "DEC--TAN")
      fail(where, "spatial axes CTYPE1 = '" + ct1 + "', CTYPE2 = '" + ct2 +
                      "' are not supported (need 'RA---TAN' and 'DEC--TAN' in this order)");
    const std::string cu1 = f_.read_string_opt("CUNIT1").value_or("deg");
    const std::string cu2 = f_.read_string_opt("CUNIT2").value_or("deg");
    unit1 = spatial_unit_arcsec(cu1);
    unit2 = spatial_unit_arcsec(cu2);
    if (unit1 <= 0 || unit2 <= 0)
      fail(where, "unknown spatial unit CUNIT1 = '" + cu1 + "' / CUNIT2 = '" + cu2 + "'");
    const double lonpole = key_or("LONPOLE", 180.0);
    if (std::abs(lonpole - 180.0) > 1e-9)
      fail(where, "LONPOLE = " + format_value(lonpole) + " is not supported (need 180, the TAN default)");
    const std::string radesys = upper(trim(f_.read_string_opt("RADESYS").value_or(
        f_.read_string_opt("RADECSYS").value_or("ICRS"))));
    if (radesys != "ICRS" && radesys != "FK5")
      fail(where, "RADESYS = '" + radesys + "' is not supported (need ICRS or FK5)");
  } else {
    for (const auto& ct : {ct1, ct2})
      if (!ct.empty() && ct != "LINEAR" && ct.rfind("OFFSET", 0) != 0)
        fail(where, "spatial axis CTYPE = '" + ct + "' is not supported (need RA---TAN/DEC--TAN or LINEAR)");
    const std::string cu1 = f_.read_string_opt("CUNIT1").value_or(opt_.linear_spatial_unit);
    const std::string cu2 = f_.read_string_opt("CUNIT2").value_or(opt_.linear_spatial_unit);
    unit1 = spatial_unit_arcsec(cu1);
    unit2 = spatial_unit_arcsec(cu2);
    if (unit1 <= 0 || unit2 <= 0)
      fail(where, "unknown spatial unit CUNIT1 = '" + cu1 + "' / CUNIT2 = '" + cu2 + "'");
  }
  // Linear part: CD matrix, else PC (default identity) times CDELT, else CROTA2 with CDELT.
  double m[2][2] = {{0, 0}, {0, 0}};
  bool has_cd = false;
  for (int i = 1; i <= 2; ++i)
    for (int j = 1; j <= 2; ++j)
      if (f_.has_key("CD" + std::to_string(i) + "_" + std::to_string(j))) has_cd = true;
  if (has_cd) {
    for (int i = 1; i <= 2; ++i)
      for (int j = 1; j <= 2; ++j) m[i - 1][j - 1] = key_or("CD" + std::to_string(i) + "_" + std::to_string(j), 0.0);
    for (const char* k : {"CD1_3", "CD2_3", "CD3_1", "CD3_2"})
      if (key_or(k, 0.0) != 0.0) fail(where, std::string(k) + " is not 0: spatial-spectral coupling is not supported");
  } else {
    const auto cd1 = f_.read_double_opt("CDELT1"), cd2 = f_.read_double_opt("CDELT2");
    if (!cd1 || !cd2) fail(where, "no pixel scale: neither CDi_j nor CDELT1/CDELT2 is present");
    double pc[2][2] = {{1, 0}, {0, 1}};
    bool has_pc = false;
    for (int i = 1; i <= 2; ++i)
      for (int j = 1; j <= 2; ++j) {
        const auto v = f_.read_double_opt("PC" + std::to_string(i) + "_" + std::to_string(j));
        if (v) {
          pc[i - 1][j - 1] = *v;
          has_pc = true;
        }
      }
    for (const char* k : {"PC1_3", "PC2_3", "PC3_1", "PC3_2"})
      if (key_or(k, 0.0) != 0.0) fail(where, std::string(k) + " is not 0: spatial-spectral coupling is not supported");
    if (!has_pc) {
      if (const auto rot = f_.read_double_opt("CROTA2")) {
        const double r = *rot / kDegPerRad;
        pc[0][0] = std::cos(r);
        pc[0][1] = -std::sin(r) * (*cd2 / *cd1);
        pc[1][0] = std::sin(r) * (*cd1 / *cd2);
        pc[1][1] = std::cos(r);
      }
    }
    for (int j = 0; j < 2; ++j) {
      m[0][j] = *cd1 * pc[0][j];
      m[1][j] = *cd2 * pc[1][j];
    }
  }
  for (int j = 0; j < 2; ++j) {  // -> arcsec per pixel
    m[0][j] *= unit1;
    m[1][j] *= unit2;
  }
  for (auto& row : m)
    for (double v : row)
      if (!std::isfinite(v)) fail(where, "the spatial CD/PC/CDELT matrix is not finite");
  double crpix1 = key_or("CRPIX1", 0.0), crpix2 = key_or("CRPIX2", 0.0);
  double det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
  if (!(std::abs(det) > 0)) fail(where, "the spatial CD/PC/CDELT matrix is singular");
  // slitstep's (x right = west at PA 0, y up) frame has det < 0 (east to the left); otherwise the
  // x axis is flipped and the data are reversed along x.
  if (det > 0) {
    m[0][0] = -m[0][0];
    m[1][0] = -m[1][0];
    crpix1 = nx + 1 - crpix1;
    det = -det;
    s.flipped = true;
  }
  const double len1 = std::hypot(m[0][0], m[1][0]), len2 = std::hypot(m[0][1], m[1][1]);
  const double aspect = std::abs(len1 / len2 - 1.0);
  if (aspect > opt_.max_pixel_aspect_deviation)
    fail(where, "pixels are not square: " + format_value(len1) + " x " + format_value(len2) +
                    " arcsec (aspect deviation " + format_value(aspect) + " > " +
                    format_value(opt_.max_pixel_aspect_deviation) + ")");
  const double skew_deg = std::asin(std::min(1.0, std::abs(m[0][0] * m[0][1] + m[1][0] * m[1][1]) / (len1 * len2))) * kDegPerRad;
  if (skew_deg > opt_.max_skew_deg)
    fail(where, "pixels are skewed: the spatial axes are " + format_value(90.0 - skew_deg) +
                    " deg apart (tolerance " + format_value(opt_.max_skew_deg) + " deg)");
  const double p = std::sqrt(-det);
  // m = p [[-cos PA, sin PA], [sin PA, cos PA]] for slitstep's convention (core/wcs.hpp).
  const double c = (m[1][1] - m[0][0]) / (2 * p), sn = (m[0][1] + m[1][0]) / (2 * p);
  double pa = std::atan2(sn, c) * kDegPerRad;
  s.grid.nx = nx;
  s.grid.ny = ny;
  s.grid.pixel_arcsec = p;
  s.grid.x0_arcsec = (1.0 - crpix1) * p;
  s.grid.y0_arcsec = (1.0 - crpix2) * p;
  s.celestial = celestial;
  if (celestial) {
    double ra = key_or("CRVAL1", 0.0), dec = key_or("CRVAL2", 0.0);
    ra = std::fmod(ra, 360.0);
    if (ra < 0) ra += 360.0;
    if (!(dec >= -90 && dec <= 90)) fail(where, "CRVAL2 = " + format_value(dec) + " is not a declination");
    s.sky.ra_deg = ra;
    s.sky.dec_deg = dec;
  } else {
    s.sky.ra_deg = 0.0;
    s.sky.dec_deg = 0.0;
  }
  // slitstep's own products carry the exact grid values (SS_*): use them when consistent.
  if (rep_.slitstep_product && !s.flipped) {
    const auto px = f_.read_double_opt("SS_PIXEL"), x0 = f_.read_double_opt("SS_X0"),
               y0 = f_.read_double_opt("SS_Y0"), spa = f_.read_double_opt("SS_PA");
    if (px && x0 && y0 && spa && std::abs(*px - p) <= 1e-9 * p && std::abs(*x0 - s.grid.x0_arcsec) <= 1e-9 * (1 + std::abs(*x0)) &&
        std::abs(*y0 - s.grid.y0_arcsec) <= 1e-9 * (1 + std::abs(*y0)) &&
        std::abs(std::remainder(*spa - pa, 360.0)) <= 1e-9) {
      s.grid.pixel_arcsec = *px;
      s.grid.x0_arcsec = *x0;
      s.grid.y0_arcsec = *y0;
      pa = *spa;
    }
  }
  s.sky.aperture_pa_deg = pa;
  try {
    s.grid.validate();
  } catch (const InvalidOptions& e) {
    fail(where, std::string("invalid spatial grid: ") + e.what());
  }
  return s;
}

WavelengthGrid CubeReader::read_spectral(long nl, std::vector<double>& centres_um) {
  const std::string where = sci_label_;
  const auto ctype_opt = f_.read_string_opt("CTYPE3");
  if (!ctype_opt || trim(*ctype_opt).empty())
    fail(where, "CTYPE3 is missing: the third axis is not described as a wavelength axis");
  const std::string ctype = upper(trim(*ctype_opt));
  rep_.spectral_ctype = ctype;
  const bool tab = ctype.size() > 4 && ctype.substr(4) == "-TAB";
  bool air = false;
  bool iraf = false;
  if (ctype == "WAVE" || ctype == "WAVE-TAB") {
    air = false;
  } else if (ctype == "AWAV" || ctype == "AWAV-TAB") {
    air = true;
  } else if (ctype == "LAMBDA" || ctype == "LINEAR" || ctype == "WAVELENGTH") {
    iraf = true;
    switch (opt_.ambiguous_wavelength) {
      case AmbiguousWavelength::kAssumeVacuum:
        rep_.notes.push_back("CTYPE3 = '" + ctype + "' does not say air or vacuum: taken as vacuum (ReadCubeOptions.ambiguous_wavelength)");
        break;
      case AmbiguousWavelength::kAssumeAir:
        air = true;
        rep_.notes.push_back("CTYPE3 = '" + ctype + "' taken as air wavelengths and converted to vacuum");
        break;
      case AmbiguousWavelength::kRefuse:
        fail(where, "CTYPE3 = '" + ctype + "' does not say whether wavelengths are in air or vacuum");
    }
  } else {
    fail(where, "CTYPE3 = '" + ctype + "' is not a supported wavelength axis (need WAVE, AWAV, WAVE-TAB, AWAV-TAB or LAMBDA)");
  }
  // Unit of the spectral values.
  std::string unit;
  if (const auto cu = f_.read_string_opt("CUNIT3"); cu && !trim(*cu).empty()) {
    unit = trim(*cu);
  } else if (!opt_.spectral_unit_override.empty()) {
    unit = opt_.spectral_unit_override;
  } else {
    unit = iraf ? "Angstrom" : "m";
    rep_.notes.push_back("CUNIT3 absent: spectral unit taken as '" + unit + "' (" +
                         (iraf ? "IRAF convention" : "FITS default") + ")");
  }
  const double to_um = spectral_unit_um(unit);
  if (to_um <= 0) fail(where, "CUNIT3 = '" + unit + "' is not a recognised wavelength unit (um, nm, Angstrom, m)");
  rep_.spectral_unit = unit;

  // Linear part of axis 3 (pixel -> intermediate coordinate).
  double step = 0;
  if (const auto cd33 = f_.read_double_opt("CD3_3")) {
    step = *cd33;
  } else {
    const auto cdelt3 = f_.read_double_opt("CDELT3");
    if (!cdelt3) fail(where, "no spectral step: neither CD3_3 nor CDELT3 is present");
    step = *cdelt3 * key_or("PC3_3", 1.0);
  }
  if (!std::isfinite(step) || step <= 0)
    fail(where, "spectral step CDELT3/CD3_3 = " + format_value(step) +
                    " must be > 0 (decreasing or degenerate wavelength axes are not supported)");
  const auto crval3 = f_.read_double_opt("CRVAL3");
  if (!crval3) fail(where, "CRVAL3 is missing");
  const double crpix3 = key_or("CRPIX3", 0.0);

  std::vector<double> raw(static_cast<std::size_t>(nl));
  std::optional<WavelengthGrid> exact;  // slitstep's own window definitions
  if (!tab) {
    for (long k = 0; k < nl; ++k) raw[static_cast<std::size_t>(k)] = *crval3 + step * ((k + 1) - crpix3);
  } else {
    const std::string table = f_.read_string_opt("PS3_0").value_or("WCS-TABLE");
    const auto column = f_.read_string_opt("PS3_1");
    if (!column) fail(where, "CTYPE3 = '" + ctype + "' but PS3_1 (coordinate column name) is missing");
    if (f_.has_key("PS3_2")) fail(where, "WAVE-TAB index vectors (PS3_2) are not supported");
    if (key_or("PV3_3", 1.0) != 1.0) fail(where, "PV3_3 must be 1 for a one-axis WAVE-TAB");
    const std::vector<double> psi_of = [&] {
      std::vector<double> v(static_cast<std::size_t>(nl));
      for (long k = 0; k < nl; ++k) v[static_cast<std::size_t>(k)] = *crval3 + step * ((k + 1) - crpix3);
      return v;
    }();
    const int sci_hdu = f_.current_hdu();
    if (!f_.try_move_to(table))
      fail(where, "CTYPE3 = '" + ctype + "' but the coordinate table extension PS3_0 = '" + table + "' is missing");
    if (f_.hdu_type() != HduType::kBinaryTable) fail(hdu_label(), "the WAVE-TAB coordinate table is not a binary table");
    if (f_.table_rows() != 1) fail(hdu_label(), "the WAVE-TAB coordinate table must have exactly one row");
    const std::vector<double> coords = f_.read_column(*column);
    if (coords.empty()) fail(hdu_label(), "the WAVE-TAB coordinate array '" + *column + "' is empty");
    const double kmax = static_cast<double>(coords.size());
    for (long k = 0; k < nl; ++k) {
      const double psi = psi_of[static_cast<std::size_t>(k)];  // 1-based index into coords
      if (!(psi >= 1.0 - 1e-9 && psi <= kmax + 1e-9))
        fail(hdu_label(), "channel " + std::to_string(k + 1) + " maps to index " + format_value(psi) +
                              " outside the coordinate array of " + std::to_string(coords.size()) + " values");
      const double q = std::clamp(psi, 1.0, kmax) - 1.0;
      const std::size_t lo = std::min(static_cast<std::size_t>(q), coords.size() - 1);
      const std::size_t hi = std::min(lo + 1, coords.size() - 1);
      const double fr = q - static_cast<double>(lo);
      raw[static_cast<std::size_t>(k)] = coords[lo] + fr * (coords[hi] - coords[lo]);
    }
    if (rep_.slitstep_product && !air && to_um == 1.0 && f_.has_key("NWIN")) {
      const long nwin = f_.read_long("NWIN");
      std::vector<WavelengthWindow> wins;
      for (long w = 1; w <= nwin; ++w) {
        const std::string n = std::to_string(w);
        wins.push_back({f_.read_double("WSTA" + n), f_.read_double("WSTP" + n), static_cast<int>(f_.read_long("WN" + n))});
      }
      try {
        exact = WavelengthGrid::from_windows(wins);
      } catch (const InvalidOptions& e) {
        fail(hdu_label(), std::string("invalid wavelength windows: ") + e.what());
      }
      if (static_cast<long>(exact->size()) != nl) fail(hdu_label(), "NWIN windows do not match NAXIS3");
      for (long k = 0; k < nl; ++k)
        if (std::abs(exact->wavelength_um(static_cast<std::size_t>(k)) - raw[static_cast<std::size_t>(k)]) >
            1e-9 * raw[static_cast<std::size_t>(k)])
          fail(hdu_label(), "the window keywords disagree with the tabulated wavelengths");
    }
    f_.move_to(sci_hdu);
  }
  // -> um, vacuum
  centres_um.resize(raw.size());
  for (std::size_t k = 0; k < raw.size(); ++k) {
    double l = raw[k];
    if (!std::isfinite(l) || l <= 0) fail(where, "wavelength of channel " + std::to_string(k + 1) + " is " + format_value(l));
    if (air) l = air_to_vacuum_angstrom(l * to_um * 1e4) * 1e-4;
    else l *= to_um;
    centres_um[k] = l;
  }
  rep_.air_wavelengths = air;
  if (!(centres_um.front() >= 0.01 && centres_um.back() <= 1000.0))
    fail(where, "wavelengths " + format_value(centres_um.front()) + "-" + format_value(centres_um.back()) +
                    " um (CUNIT3 = '" + unit + "') are implausible: check CUNIT3");
  if (exact) return *exact;

  if (!tab) {
    if (nl == 1) return WavelengthGrid::linear(centres_um[0], step * to_um, 1);
    const double start = air ? centres_um.front() : (*crval3 + step * (1 - crpix3)) * to_um;
    const double st = air ? (centres_um.back() - centres_um.front()) / static_cast<double>(nl - 1) : step * to_um;
    if (air) {
      double worst = 0;
      for (std::size_t k = 0; k < centres_um.size(); ++k)
        worst = std::max(worst, std::abs(centres_um[k] - (start + st * static_cast<double>(k))));
      rep_.air_nonlinearity_channels = worst / st;
      if (worst / st > opt_.max_air_to_vacuum_nonlinearity)
        fail(where, "after air->vacuum conversion the grid departs from linear by " + format_value(worst / st) +
                        " channel (tolerance " + format_value(opt_.max_air_to_vacuum_nonlinearity) + ")");
      rep_.notes.push_back("air wavelengths converted to vacuum (Morton 1991); the vacuum grid is taken as linear, worst deviation " +
                           format_value(worst / st) + " channel");
    }
    return WavelengthGrid::linear(start, st, static_cast<int>(nl));
  }
  // Tabulated: split into runs of constant step (relative tolerance 1e-6 of the step).
  std::vector<WavelengthWindow> wins;
  std::size_t k = 0;
  const std::size_t n = centres_um.size();
  while (k < n) {
    if (k + 1 >= n) {
      const double st = wins.empty() ? (n > 1 ? centres_um[k] - centres_um[k - 1] : step * to_um) : wins.back().step_um;
      wins.push_back({centres_um[k], st, 1});
      break;
    }
    const double st = centres_um[k + 1] - centres_um[k];
    if (!(st > 0)) fail(where, "tabulated wavelengths are not strictly increasing at channel " + std::to_string(k + 2));
    std::size_t m = k + 1;
    while (m + 1 < n && std::abs((centres_um[m + 1] - centres_um[m]) - st) <= 1e-6 * st) ++m;
    wins.push_back({centres_um[k], (centres_um[m] - centres_um[k]) / static_cast<double>(m - k), static_cast<int>(m - k + 1)});
    k = m + 1;
  }
  try {
    return WavelengthGrid::from_windows(wins);
  } catch (const InvalidOptions& e) {
    fail(where, std::string("tabulated wavelengths are not piecewise linear windows: ") + e.what());
  }
}

Cube CubeReader::read() {
  opt_.validate();
  // Provenance.
  f_.move_to(0);
  rep_.slitstep_product = upper(trim(f_.read_string_opt("ORIGIN").value_or(""))) == "SLITSTEP";
  // Science HDU.
  int sci_hdu = -1;
  if (auto h = find_ext(opt_.sci_extnames)) {
    sci_hdu = *h;
  } else {
    f_.move_to(0);
    if (f_.hdu_type() == HduType::kImage && f_.image_dims().size() == 3) sci_hdu = 0;
  }
  if (sci_hdu < 0) {
    std::vector<std::string> names;
    const int n = f_.num_hdus();
    for (int h = 0; h < n; ++h) {
      f_.move_to(h);
      const std::string e = f_.extname();
      names.push_back(e.empty() ? (h == 0 ? "PRIMARY" : "HDU" + std::to_string(h)) : e);
    }
    throw InputError(path_ + ": no science extension (tried EXTNAME " + join(opt_.sci_extnames, ", ") +
                     ") and the primary HDU holds no 3-D image; HDUs present: " + join(names, ", "));
  }
  f_.move_to(sci_hdu);
  sci_label_ = hdu_label();
  rep_.sci_hdu = sci_label_;
  if (f_.hdu_type() != HduType::kImage) fail(sci_label_, "the science HDU is not an image");
  const auto dims = f_.image_dims();
  if (dims.size() != 3)
    fail(sci_label_, "the science image has " + std::to_string(dims.size()) + " axes; a cube needs 3 (x, y, wavelength)");
  for (long d : dims)
    if (d < 1) fail(sci_label_, "an axis of the science cube has length 0");
  if (dims[0] > std::numeric_limits<int>::max() / 2 || dims[1] > std::numeric_limits<int>::max() / 2)
    fail(sci_label_, "the science cube is too large");
  const int nx = static_cast<int>(dims[0]), ny = static_cast<int>(dims[1]);
  const long nl = dims[2];

  // Units.
  const std::string bunit = f_.read_string_opt("BUNIT").value_or("");
  rep_.file_bunit = bunit;
  const std::string used_bunit = opt_.bunit_override.empty() ? bunit : opt_.bunit_override;
  if (trim(used_bunit).empty())
    fail(sci_label_, "BUNIT is missing or empty: the data unit is unknown (set ReadCubeOptions.bunit_override)");
  const auto dim = parse_unit(used_bunit);
  if (!dim) fail(sci_label_, "BUNIT = '" + used_bunit + "' is not a recognised unit");
  const auto flux = classify_flux_unit(*dim);
  if (!flux)
    fail(sci_label_, "BUNIT = '" + used_bunit +
                         "' is not a surface brightness (per arcsec2 / sr) or flux density per spaxel");

  SpatialSolution sp = read_spatial(nx, ny);
  rep_.celestial_wcs = sp.celestial;
  rep_.x_reversed = sp.flipped;
  if (!sp.celestial) rep_.notes.push_back("no celestial WCS: spatial offsets only, sky reference set to RA = Dec = 0");
  if (sp.flipped) rep_.notes.push_back("spatial axes flipped relative to slitstep's convention: x order reversed");
  std::vector<double> lambda_um;
  WavelengthGrid spectral = read_spectral(nl, lambda_um);

  std::vector<double> sci = f_.read_image_double(dims);

  // Error extension.
  std::vector<double> err;
  bool variance = false;
  std::optional<Dim> err_dim;
  if (auto h = find_ext(opt_.err_extnames)) {
    rep_.err_hdu = hdu_label();
    if (f_.hdu_type() != HduType::kImage) fail(rep_.err_hdu, "the error HDU is not an image");
    const auto edims = f_.image_dims();
    if (edims != dims) {
      auto text = [](const std::vector<long>& v) {
        std::string t;
        for (long d : v) {
          if (!t.empty()) t += 'x';
          t += std::to_string(d);
        }
        return t.empty() ? std::string("(none)") : t;
      };
      fail(rep_.err_hdu, "error array dims " + text(edims) + " differ from the science dims " + text(dims));
    }
    err = f_.read_image_double(dims);
    const std::string ename = upper(f_.extname());
    const std::string eunit = f_.read_string_opt("BUNIT").value_or("");
    if (!trim(eunit).empty()) err_dim = parse_unit(eunit);
    switch (opt_.err_kind) {
      case ErrKind::kSigma: variance = false; break;
      case ErrKind::kVariance: variance = true; break;
      case ErrKind::kAuto:
        if (err_dim && err_dim->same_dims(*dim, 2) && !err_dim->same_dims(*dim, 1)) variance = true;
        else if (ename == "STAT" || ename == "VAR" || ename == "VARIANCE") variance = true;
        if (err_dim && !err_dim->same_dims(*dim, 1) && !err_dim->same_dims(*dim, 2))
          fail(rep_.err_hdu, "BUNIT = '" + eunit + "' is neither the science unit nor its square");
        if (!variance && !rep_.slitstep_product) {
          // A "sigma" that would mean S/N > 1e6 while its square root gives a sensible S/N is a
          // variance mislabelled (GMOS/IRAF cubes): see docs/formats.md.
          std::vector<double> s_abs, e_pos;
          for (std::size_t n = 0; n < sci.size(); n += std::max<std::size_t>(1, sci.size() / 200000)) {
            if (std::isfinite(sci[n]) && sci[n] != 0) s_abs.push_back(std::abs(sci[n]));
            if (std::isfinite(err[n]) && err[n] > 0) e_pos.push_back(err[n]);
          }
          const double ms = median_of(s_abs), me = median_of(e_pos);
          if (ms > 0 && me > 0 && me < 1e-6 * ms && std::sqrt(me) >= 1e-3 * ms && std::sqrt(me) <= 1e3 * ms) {
            variance = true;
            rep_.notes.push_back("the error values (median " + format_value(me) + ") are ~ the square of the data (median |SCI| " +
                                 format_value(ms) + "): treated as a variance");
          }
        }
        break;
    }
    rep_.err_was_variance = variance;
    // Scale of the error unit relative to SCI's (when it has its own unit).
    double escale = 1.0;
    if (err_dim) {
      if (variance && err_dim->same_dims(*dim, 2)) escale = std::sqrt(err_dim->scale) / dim->scale;
      else if (!variance && err_dim->same_dims(*dim, 1)) escale = err_dim->scale / dim->scale;
    }
    for (double& e : err) {
      if (variance) e = (std::isfinite(e) && e >= 0) ? std::sqrt(e) : std::numeric_limits<double>::quiet_NaN();
      e *= escale;
    }
  } else {
    rep_.notes.push_back("no error extension: ERR set to 0");
  }
  // DQ and WMAP.
  std::vector<std::int32_t> dqin;
  if (find_ext(opt_.dq_extnames)) {
    rep_.dq_hdu = hdu_label();
    if (f_.hdu_type() != HduType::kImage) fail(rep_.dq_hdu, "the DQ HDU is not an image");
    dqin = f_.read_image_int32(dims);
    if (!rep_.slitstep_product) rep_.notes.push_back("foreign DQ: only bit 0 (DO_NOT_USE) is kept");
  }
  std::vector<double> wmapin;
  if (find_ext(opt_.wmap_extnames)) {
    rep_.wmap_hdu = hdu_label();
    if (f_.hdu_type() != HduType::kImage) fail(rep_.wmap_hdu, "the WMAP HDU is not an image");
    wmapin = f_.read_image_double(dims);
  }

  // Assemble in slitstep's layout and units.
  Cube cube;
  cube.spatial = sp.grid;
  cube.spectral = spectral;
  cube.sky = sp.sky;
  cube.bunit = kSurfaceBrightnessBunit;
  const std::size_t nls = static_cast<std::size_t>(nl);
  const std::size_t total = static_cast<std::size_t>(nx) * static_cast<std::size_t>(ny) * nls;
  cube.sci.assign(total, 0.0);
  cube.err.assign(total, 0.0);
  cube.dq.assign(total, kDqGood);
  cube.wmap.assign(total, 1.0);
  std::vector<double> factor(nls);
  for (std::size_t k = 0; k < nls; ++k) factor[k] = sb_factor(*flux, lambda_um[k], sp.grid.pixel_area_arcsec2());
  std::size_t finite = 0;
  for (std::size_t k = 0; k < nls; ++k)
    for (int j = 0; j < ny; ++j)
      for (int ifits = 0; ifits < nx; ++ifits) {
        const std::size_t src = (k * static_cast<std::size_t>(ny) + static_cast<std::size_t>(j)) * static_cast<std::size_t>(nx) +
                                static_cast<std::size_t>(ifits);
        const int i = sp.flipped ? nx - 1 - ifits : ifits;
        const std::size_t dst = cube.index(i, j, k);
        std::uint32_t q = kDqGood;
        if (!dqin.empty()) {
          const auto d = static_cast<std::uint32_t>(dqin[src]);
          q = rep_.slitstep_product ? d : (d & 1u ? static_cast<std::uint32_t>(kDqDoNotUse) : 0u);
        }
        const double s = sci[src];
        if (std::isfinite(s)) {
          cube.sci[dst] = s * factor[k];
          ++finite;
        } else {
          q |= kDqNonFinite | kDqDoNotUse;
        }
        if (!err.empty()) {
          const double e = err[src];
          if (std::isfinite(e)) cube.err[dst] = std::abs(e * factor[k]);
          else q |= kDqNonFinite | kDqDoNotUse;
        }
        if (!wmapin.empty()) {
          const double w = wmapin[src];
          if (std::isfinite(w)) cube.wmap[dst] = w;
          else {
            cube.wmap[dst] = 0.0;
            q |= kDqNonFinite | kDqDoNotUse;
          }
        }
        if (!std::isfinite(s) || (!err.empty() && !std::isfinite(err[src]))) ++rep_.nonfinite_voxels;
        cube.dq[dst] = q;
      }
  if (finite == 0) fail(sci_label_, "no finite value in the science cube (all NaN or inf)");
  for (std::size_t n = 0; n < total; ++n)  // a finite input can still overflow after scaling
    if (!std::isfinite(cube.sci[n]) || !std::isfinite(cube.err[n]))
      fail(sci_label_, "a value overflows after conversion to " + std::string(kSurfaceBrightnessBunit));
  try {
    cube.validate();
  } catch (const InvalidOptions& e) {
    fail(sci_label_, e.what());
  }
  return cube;
}

}  // namespace

Cube read_cube(const std::string& path, const ReadCubeOptions& options, CubeReadReport* report) {
  CubeReadReport local;
  CubeReadReport& r = report ? *report : local;
  r = CubeReadReport{};
  CubeReader reader(path, options, r);
  return reader.read();
}

Cube read_cube(const std::string& path, const ReadCubeOptions& options) { return read_cube(path, options, nullptr); }

std::string read_product_config(const std::string& path) {
  FitsFile f = FitsFile::open_read(path);
  const std::string origin = f.read_string_opt("ORIGIN").value_or("");
  if (upper(trim(origin)) != "SLITSTEP")
    throw InputError(path + ": HDU 0: not a slitstep product (ORIGIN = '" + origin + "'): no stored configuration");
  const auto ncards = f.read_long_opt("CFGCARDS");
  const auto nbytes = f.read_long_opt("CFGBYTES");
  if (!ncards || !nbytes) throw InputError(path + ": HDU 0: CFGCARDS/CFGBYTES missing: no stored configuration");
  std::string text;
  long cards = 0;
  bool line_open = false;
  for (const auto& c : f.read_comments()) {
    const bool more = c.rfind(trim(kCfgMore), 0) == 0;
    const bool end = c.rfind(trim(kCfgEnd), 0) == 0;
    if (!more && !end) continue;
    ++cards;
    if (!line_open && cards > 1) text += '\n';
    const std::string body = c.size() > 5 ? c.substr(5) : std::string();
    if (!unescape_into(body, text))
      throw InputError(path + ": HDU 0: configuration card " + std::to_string(cards) + " holds a broken escape");
    line_open = more;
  }
  if (cards != *ncards || static_cast<long>(text.size()) != *nbytes || line_open)
    throw InputError(path + ": HDU 0: stored configuration is damaged (" + std::to_string(cards) + " cards, " +
                     std::to_string(text.size()) + " bytes; header says " + std::to_string(*ncards) + " cards, " +
                     std::to_string(*nbytes) + " bytes)");
  return text;
}

ProductMeta read_product_meta(const std::string& path) {
  ProductMeta m;
  m.config_text = read_product_config(path);
  FitsFile f = FitsFile::open_read(path);
  m.product_type = f.read_string_opt("PRODTYPE").value_or("");
  m.software_version = f.read_string_opt("SOFTVER").value_or("");
  m.date = f.read_string_opt("DATE").value_or("");
  const std::string seed = trim(f.read_string_opt("SEED").value_or("0"));
  try {
    std::size_t used = 0;
    m.seed = std::stoull(seed, &used);
    if (used != seed.size()) throw std::invalid_argument("trailing characters");
  } catch (const std::exception&) {
    throw InputError(path + ": HDU 0: SEED = '" + seed + "' is not an unsigned integer");
  }
  return m;
}

}  // namespace slitstep
