// slitstep/core: 2-D map products (see maps_io.hpp).
#include "core/maps_io.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <variant>

#include "core/cube_io.hpp"
#include "core/error.hpp"
#include "core/fits.hpp"
#include "core/units.hpp"
#include "core/version.hpp"

namespace slitstep {
namespace {

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

void write_wcs2d(FitsFile& f, const MapProduct& m) {
  const double p = m.spatial.pixel_arcsec;
  f.write_key("WCSAXES", 2L, "number of WCS axes");
  if (m.celestial) {
    write_celestial_wcs(f, m.spatial, m.sky);
  } else {
    // No sky position is known: linear offsets (arcsec) in the aperture frame.
    f.write_key("CTYPE1", "XOFFSET", "offset along x of the aperture frame");
    f.write_key("CTYPE2", "YOFFSET", "offset along y of the aperture frame");
    f.write_key("CUNIT1", "arcsec", "unit of CRVAL1 and CDELT1");
    f.write_key("CUNIT2", "arcsec", "unit of CRVAL2 and CDELT2");
    f.write_key("CRPIX1", 1.0, "reference pixel (1-based)");
    f.write_key("CRPIX2", 1.0, "reference pixel (1-based)");
    f.write_key("CRVAL1", m.spatial.x0_arcsec, "[arcsec] x of pixel 1");
    f.write_key("CRVAL2", m.spatial.y0_arcsec, "[arcsec] y of pixel 1");
    f.write_key("CDELT1", p, "[arcsec] pixel size");
    f.write_key("CDELT2", p, "[arcsec] pixel size");
  }
  f.write_key("SS_PIXEL", p, "[arcsec] slitstep SpatialGrid.pixel_arcsec");
  f.write_key("SS_X0", m.spatial.x0_arcsec, "[arcsec] slitstep SpatialGrid.x0_arcsec");
  f.write_key("SS_Y0", m.spatial.y0_arcsec, "[arcsec] slitstep SpatialGrid.y0_arcsec");
  f.write_key("SS_PA", m.sky.aperture_pa_deg, "[deg] slitstep SkyFrame.aperture_pa_deg");
  f.write_key("SS_CELES", m.celestial, "slitstep: celestial (RA/Dec) axes");
}

bool printable(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7E) return false;
  return true;
}

}  // namespace

int MapProduct::find(const std::string& extname) const {
  const std::string u = upper(extname);
  for (std::size_t k = 0; k < images.size(); ++k)
    if (upper(images[k].extname) == u) return static_cast<int>(k);
  return -1;
}

void MapProduct::validate() const {
  spatial.validate();
  if (celestial) sky.validate();
  const std::size_t n = spatial.size();
  for (std::size_t k = 0; k < images.size(); ++k) {
    const MapImage& im = images[k];
    const std::string what = "MapProduct.images[" + std::to_string(k) + "] ('" + im.extname + "')";
    if (im.extname.empty() || im.extname.size() > 68 || !printable(im.extname))
      throw InvalidOptions(what + ": EXTNAME must be 1-68 printable characters");
    if (!printable(im.bunit) || !printable(im.description))
      throw InvalidOptions(what + ": BUNIT and description must be printable ASCII");
    if (upper(im.extname) == "PRIMARY") throw InvalidOptions(what + ": EXTNAME 'PRIMARY' is reserved");
    if (find(im.extname) != static_cast<int>(k)) throw InvalidOptions(what + ": EXTNAME used twice");
    if (im.values.size() != n)
      throw InvalidOptions(what + ": " + std::to_string(im.values.size()) + " values, the grid has " +
                           std::to_string(n));
    if (im.integer)
      for (double v : im.values)
        if (!(std::isfinite(v) && v == std::floor(v) && std::abs(v) < 2147483647.0))
          throw InvalidOptions(what + ": integer map holds " + format_value(v));
  }
}

void write_maps(const MapProduct& m, const std::string& path, const ProductMeta& meta) {
  m.validate();
  const std::vector<long> dims = {m.spatial.nx, m.spatial.ny};
  FitsFile f = FitsFile::create(path);
  ProductMeta primary = meta;
  primary.extra_cards.push_back({"NMAPS", static_cast<long>(m.images.size()), "number of map extensions"});
  write_product_primary(f, primary);

  for (const MapImage& im : m.images) {
    if (im.integer) {
      f.create_image(FitsPixel::kInt32, dims);
    } else {
      f.create_image(FitsPixel::kFloat64, dims);
    }
    f.write_key("EXTNAME", im.extname, "extension name");
    f.write_key("BUNIT", im.bunit, im.bunit.empty() ? "no unit" : "physical unit");
    write_wcs2d(f, m);
    if (!im.description.empty()) f.write_comment(im.description);
    for (const auto& c : im.comments) f.write_comment(c);
    if (im.integer) {
      std::vector<std::int32_t> v(im.values.size());
      for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<std::int32_t>(im.values[k]);
      f.write_image(v);
    } else {
      f.write_image(im.values);
    }
  }
  f.commit();
}

MapProduct read_maps(const std::string& path) {
  FitsFile f = FitsFile::open_read(path);
  MapProduct m;
  bool have_grid = false;
  const int nh = f.num_hdus();
  for (int h = 1; h < nh; ++h) {
    f.move_to(h);
    if (f.hdu_type() != HduType::kImage) continue;
    const auto dims = f.image_dims();
    if (dims.size() != 2) continue;
    if (!have_grid) {
      m.spatial.nx = static_cast<int>(dims[0]);
      m.spatial.ny = static_cast<int>(dims[1]);
      m.spatial.pixel_arcsec = f.read_double("SS_PIXEL");
      m.spatial.x0_arcsec = f.read_double("SS_X0");
      m.spatial.y0_arcsec = f.read_double("SS_Y0");
      m.sky.aperture_pa_deg = f.read_double("SS_PA");
      m.celestial = f.read_bool_opt("SS_CELES").value_or(true);
      if (m.celestial) {
        m.sky.ra_deg = f.read_double("CRVAL1");
        m.sky.dec_deg = f.read_double("CRVAL2");
      }
      have_grid = true;
    } else if (dims[0] != m.spatial.nx || dims[1] != m.spatial.ny) {
      throw InputError(path + ": HDU " + std::to_string(h) + " (" + f.extname() + "): dims " +
                       std::to_string(dims[0]) + "x" + std::to_string(dims[1]) + ", expected " +
                       std::to_string(m.spatial.nx) + "x" + std::to_string(m.spatial.ny));
    }
    MapImage im;
    im.extname = f.extname();
    im.bunit = f.read_string_opt("BUNIT").value_or("");
    im.integer = f.image_bitpix() > 0;
    const auto comments = f.read_comments();
    if (!comments.empty()) im.description = comments.front();
    for (std::size_t c = 1; c < comments.size(); ++c) im.comments.push_back(comments[c]);
    im.values = f.read_image_double();
    m.images.push_back(std::move(im));
  }
  if (!have_grid) throw InputError(path + ": no 2-D image extension: not a maps product");
  return m;
}

}  // namespace slitstep
