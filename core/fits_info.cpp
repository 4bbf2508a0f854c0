// slitstep/core: describe_fits (see fits_info.hpp).
#include "core/fits_info.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <sstream>
#include <vector>

#include "core/cube_io.hpp"
#include "core/error.hpp"
#include "core/fits.hpp"

namespace slitstep {
namespace {

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string bitpix_name(int b) {
  switch (b) {
    case 8: return "uint8";
    case 16: return "int16";
    case 32: return "int32";
    case 64: return "int64";
    case -32: return "float32";
    case -64: return "float64";
    default: return "bitpix " + std::to_string(b);
  }
}

struct HduSummary {
  int index = 0;
  std::string name;
  HduType type = HduType::kImage;
  std::vector<long> dims;  // images
  long rows = 0;           // tables
  std::string line;
};

}  // namespace

std::string describe_fits(const std::string& path) {
  std::ostringstream out;
  std::vector<HduSummary> hdus;
  std::string prodtype, softver, seed, date, origin, reftype;
  {
    FitsFile f = FitsFile::open_read(path);
    const int n = f.num_hdus();
    for (int h = 0; h < n; ++h) {
      f.move_to(h);
      HduSummary s;
      s.index = h;
      s.name = f.extname();
      if (s.name.empty()) s.name = h == 0 ? "PRIMARY" : "(no EXTNAME)";
      s.type = f.hdu_type();
      std::ostringstream l;
      l << "  " << h << "  " << s.name;
      if (s.type == HduType::kImage) {
        s.dims = f.image_dims();
        if (s.dims.empty()) {
          l << "  image, no data";
        } else {
          l << "  image " << bitpix_name(f.image_bitpix()) << " ";
          for (std::size_t d = 0; d < s.dims.size(); ++d) l << (d ? "x" : "") << s.dims[d];
        }
        if (const auto b = f.read_string_opt("BUNIT")) l << "  BUNIT='" << *b << "'";
      } else {
        s.rows = f.table_rows();
        const auto cols = f.column_names();
        l << (s.type == HduType::kBinaryTable ? "  binary table " : "  ascii table ") << s.rows << " rows, "
          << cols.size() << " columns";
        if (!cols.empty()) {
          l << " (";
          for (std::size_t c = 0; c < cols.size() && c < 6; ++c) l << (c ? ", " : "") << cols[c];
          l << (cols.size() > 6 ? ", ...)" : ")");
        }
      }
      s.line = l.str();
      hdus.push_back(s);
    }
    f.move_to(0);
    origin = f.read_string_opt("ORIGIN").value_or("");
    prodtype = f.read_string_opt("PRODTYPE").value_or("");
    softver = f.read_string_opt("SOFTVER").value_or("");
    seed = f.read_string_opt("SEED").value_or("");
    date = f.read_string_opt("DATE").value_or("");
    reftype = f.read_string_opt("REFTYPE").value_or("");
  }
  out << path << ": " << hdus.size() << " HDU" << (hdus.size() == 1 ? "" : "s") << "\n";
  for (const auto& h : hdus) out << h.line << "\n";
  const bool ours = upper(origin) == "SLITSTEP";
  if (ours) out << "slitstep product: PRODTYPE=" << prodtype << "  SOFTVER=" << softver << "  SEED=" << seed
                << "  DATE=" << date << "\n";

  // What kind of file is this?
  auto find = [&](const std::string& name) -> const HduSummary* {
    for (const auto& h : hdus)
      if (upper(h.name) == name) return &h;
    return nullptr;
  };
  const HduSummary* sci = find("SCI");
  const bool exposure =
      (sci && sci->type == HduType::kImage && sci->dims.size() == 2 && (find("WAVELENGTH") || find("SPEC1D"))) ||
      upper(prodtype).rfind("EXPOSURE", 0) == 0;
  const bool any_image = std::any_of(hdus.begin(), hdus.end(),
                                     [](const HduSummary& h) { return h.type == HduType::kImage && !h.dims.empty(); });
  if (exposure) {
    out << "2-D spectrum / exposure";
    if (sci) out << ": SCI " << sci->dims[0] << " x " << sci->dims[1] << " pixels";
    out << " (not a cube)\n";
    return out.str();
  }
  if (!reftype.empty()) {
    out << "JWST reference file (REFTYPE = " << reftype << "): not a cube\n";
    return out.str();
  }
  if (find("SHUTTER_INFO")) {
    out << "NIRSpec MSA metadata (shutter configuration): not a cube\n";
    return out.str();
  }
  if (!any_image && !sci && !find("DATA") && !find("FLUX")) {
    out << "no image data: tables only (not a cube)\n";
    return out.str();
  }

  CubeReadReport rep;
  const Cube c = read_cube(path, {}, &rep);
  out << "cube: " << c.nx() << " x " << c.ny() << " spaxels x " << c.nl() << " channels (science data in " << rep.sci_hdu
      << (rep.err_hdu.empty() ? "" : ", errors in " + rep.err_hdu) << ")\n";
  out << "  units: file BUNIT '" << rep.file_bunit << "' -> " << c.bunit
      << (rep.err_hdu.empty() ? "" : (rep.err_was_variance ? "; ERR from variance (1 sigma)" : "; ERR 1 sigma")) << "\n";
  const auto& wins = c.spectral.windows();
  out << "  wavelength: " << fmt("%.6f", c.spectral.wavelength_um(0)) << " - "
      << fmt("%.6f", c.spectral.wavelength_um(c.nl() - 1)) << " um (vacuum, channel centres; file CTYPE3 '"
      << rep.spectral_ctype << "' in " << rep.spectral_unit << (rep.air_wavelengths ? ", air converted" : "") << "), "
      << wins.size() << " window" << (wins.size() == 1 ? "" : "s") << "\n";
  for (std::size_t w = 0; w < wins.size() && w < 8; ++w)
    out << "    window " << w + 1 << ": " << fmt("%.6f", wins[w].start_um) << " um + k * " << fmt("%.6g", wins[w].step_um)
        << " um, " << wins[w].n << " channels (R ~ " << fmt("%.0f", 0.5 * (wins[w].start_um + wins[w].end_um()) / wins[w].step_um)
        << " per channel)\n";
  if (wins.size() > 8) out << "    ... " << wins.size() - 8 << " more windows\n";
  out << "  spatial: " << fmt("%.6g", c.spatial.pixel_arcsec) << " arcsec spaxels, field "
      << fmt("%.4g", c.nx() * c.spatial.pixel_arcsec) << " x " << fmt("%.4g", c.ny() * c.spatial.pixel_arcsec)
      << " arcsec; MSA-frame centre of pixel (0,0) at (" << fmt("%.6g", c.spatial.x0_arcsec) << ", "
      << fmt("%.6g", c.spatial.y0_arcsec) << ") arcsec\n";
  if (rep.celestial_wcs)
    out << "  WCS: reference RA " << fmt("%.7f", c.sky.ra_deg) << " deg, Dec " << fmt("%+.7f", c.sky.dec_deg)
        << " deg at MSA (0,0); aperture PA (+y axis) " << fmt("%.4f", c.sky.aperture_pa_deg) << " deg E of N"
        << (rep.x_reversed ? "; x reversed from file order" : "") << "\n";
  else
    out << "  WCS: no celestial axes (offsets only); rotation " << fmt("%.4f", c.sky.aperture_pa_deg) << " deg"
        << (rep.x_reversed ? "; x reversed from file order" : "") << "\n";
  std::size_t flagged = 0;
  for (auto q : c.dq) flagged += q != 0;
  out << "  flagged voxels (DQ != 0): " << fmt("%.3f", 100.0 * static_cast<double>(flagged) / static_cast<double>(c.size()))
      << " %; non-finite input voxels: " << rep.nonfinite_voxels << "\n";
  for (const auto& n : rep.notes) out << "  note: " << n << "\n";
  return out.str();
}

}  // namespace slitstep
