// slitstep/core: the CFITSIO wrapper (see fits.hpp). The only file that includes fitsio.h.
#include "core/fits.hpp"

#include <fitsio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <set>
#include <system_error>

#include "core/error.hpp"

namespace slitstep {
namespace {

namespace fs = std::filesystem;

fitsfile* F(void* p) { return static_cast<fitsfile*>(p); }

std::string status_text(int status) {
  char buf[FLEN_STATUS] = {0};
  fits_get_errstatus(status, buf);
  return std::string(buf) + " (CFITSIO status " + std::to_string(status) + ")";
}

std::string rtrim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool printable_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 32 && c <= 126; });
}

std::string dims_text(const std::vector<long>& d) {
  std::string s;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(d[i]);
  }
  return d.empty() ? std::string("(none)") : s;
}

// Canonical paths of files currently open for reading by a FitsFile of this process.
std::mutex g_inputs_mutex;
std::multiset<std::string>& open_inputs() {
  static std::multiset<std::string> s;
  return s;
}

std::string canonical_or_empty(const std::string& path) {
  std::error_code ec;
  auto c = fs::weakly_canonical(fs::path(path), ec);
  return ec ? std::string() : c.string();
}

}  // namespace

// ---- construction / destruction ------------------------------------------------------------

FitsFile FitsFile::open_read(const std::string& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw InputError(path + ": cannot open: no such file");
  if (fs::is_directory(st)) throw InputError(path + ": cannot open: is a directory, not a FITS file");
  if (!fs::is_regular_file(st)) throw InputError(path + ": cannot open: not a regular file");
  const auto size = fs::file_size(path, ec);
  if (!ec && size == 0) throw InputError(path + ": cannot open: empty file (0 bytes), not a FITS file");
  FitsFile f;
  f.path_ = path;
  int status = 0;
  fitsfile* p = nullptr;
  if (fits_open_diskfile(&p, path.c_str(), READONLY, &status)) {
    fits_clear_errmsg();
    if (p) {
      int s2 = 0;
      fits_close_file(p, &s2);
    }
    std::string extra;
    if (!ec && size % 2880 != 0)
      extra = " (size " + std::to_string(size) + " bytes is not a multiple of 2880: truncated or not FITS)";
    throw InputError(path + ": cannot open as FITS: " + status_text(status) + extra);
  }
  f.fptr_ = p;
  f.registered_ = canonical_or_empty(path);
  if (!f.registered_.empty()) {
    std::lock_guard<std::mutex> lock(g_inputs_mutex);
    open_inputs().insert(f.registered_);
  }
  return f;
}

FitsFile FitsFile::create(const std::string& path) {
  if (path.empty()) throw InputError("(empty path): cannot create a FITS file with an empty name");
  {
    const std::string canon = canonical_or_empty(path);
    std::lock_guard<std::mutex> lock(g_inputs_mutex);
    if (!canon.empty() && open_inputs().count(canon))
      throw InputError(path + ": refusing to write: this file is open as an input of the same run");
  }
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path + ": cannot write: is a directory");
  FitsFile f;
  f.path_ = path;
  f.tmp_path_ = path + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
  f.writable_ = true;
  fs::remove(f.tmp_path_, ec);  // a stale temporary of a previous run with the same pid
  int status = 0;
  fitsfile* p = nullptr;
  if (fits_create_diskfile(&p, f.tmp_path_.c_str(), &status)) {
    fits_clear_errmsg();
    f.writable_ = false;
    throw InputError(path + ": cannot create temporary file " + f.tmp_path_ + ": " + status_text(status));
  }
  f.fptr_ = p;
  return f;
}

FitsFile::FitsFile(FitsFile&& o) noexcept
    : fptr_(o.fptr_), path_(std::move(o.path_)), tmp_path_(std::move(o.tmp_path_)),
      registered_(std::move(o.registered_)), writable_(o.writable_) {
  o.fptr_ = nullptr;
  o.tmp_path_.clear();
  o.registered_.clear();
  o.writable_ = false;
}

FitsFile& FitsFile::operator=(FitsFile&& o) noexcept {
  if (this != &o) {
    close_noexcept();
    fptr_ = o.fptr_;
    path_ = std::move(o.path_);
    tmp_path_ = std::move(o.tmp_path_);
    registered_ = std::move(o.registered_);
    writable_ = o.writable_;
    o.fptr_ = nullptr;
    o.tmp_path_.clear();
    o.registered_.clear();
    o.writable_ = false;
  }
  return *this;
}

FitsFile::~FitsFile() { close_noexcept(); }

void FitsFile::close_noexcept() {
  if (fptr_) {
    int status = 0;
    fits_close_file(F(fptr_), &status);
    fits_clear_errmsg();
    fptr_ = nullptr;
  }
  if (!tmp_path_.empty()) {  // created but not committed: remove the temporary
    std::error_code ec;
    fs::remove(tmp_path_, ec);
    tmp_path_.clear();
  }
  if (!registered_.empty()) {
    std::lock_guard<std::mutex> lock(g_inputs_mutex);
    auto& s = open_inputs();
    auto it = s.find(registered_);
    if (it != s.end()) s.erase(it);
    registered_.clear();
  }
}

void FitsFile::commit() {
  require_writable("commit");
  int status = 0;
  fits_close_file(F(fptr_), &status);
  fptr_ = nullptr;
  if (status) {
    fits_clear_errmsg();
    const std::string msg = path_ + ": writing failed while closing " + tmp_path_ + ": " + status_text(status);
    close_noexcept();
    throw InputError(msg);
  }
  std::error_code ec;
  fs::rename(tmp_path_, path_, ec);
  if (ec) {
    const std::string msg = path_ + ": cannot rename " + tmp_path_ + " onto it: " + ec.message();
    close_noexcept();
    throw InputError(msg);
  }
  tmp_path_.clear();
  writable_ = false;
}

// ---- errors ---------------------------------------------------------------------------------

std::string FitsFile::location() {
  if (!fptr_) return path_;
  int n = 0;
  fits_get_hdu_num(F(fptr_), &n);
  std::string s = path_ + ": HDU " + std::to_string(n - 1);
  char value[FLEN_VALUE] = {0};
  int status = 0;
  if (fits_read_key(F(fptr_), TSTRING, "EXTNAME", value, nullptr, &status) == 0) {
    const std::string e = rtrim(value);
    if (!e.empty()) s += " (" + e + ")";
  } else if (n == 1) {
    s += " (primary)";
  }
  fits_clear_errmsg();
  return s;
}

void FitsFile::fail(const std::string& what, int status) {
  fits_clear_errmsg();
  throw InputError(location() + ": " + what + ": " + status_text(status));
}

void FitsFile::fail(const std::string& what) { throw InputError(location() + ": " + what); }

void FitsFile::check(int status, const std::string& what) {
  if (status) fail(what, status);
}

void FitsFile::require_writable(const char* op) {
  if (!fptr_) throw InputError(path_ + ": " + op + ": the file is closed");
  if (!writable_) fail(std::string(op) + ": the file is open read-only");
}

// ---- HDUs -----------------------------------------------------------------------------------

int FitsFile::num_hdus() {
  int n = 0, status = 0;
  fits_get_num_hdus(F(fptr_), &n, &status);
  check(status, "cannot count HDUs");
  return n;
}

int FitsFile::current_hdu() {
  int n = 0;
  fits_get_hdu_num(F(fptr_), &n);
  return n - 1;  // CFITSIO is 1-based
}

void FitsFile::move_to(int hdu_index) {
  int status = 0, type = 0;
  if (hdu_index < 0) fail("no HDU with index " + std::to_string(hdu_index));
  fits_movabs_hdu(F(fptr_), hdu_index + 1, &type, &status);  // 0-based -> 1-based
  if (status) {
    fits_clear_errmsg();
    throw InputError(path_ + ": cannot move to HDU " + std::to_string(hdu_index) + ": " +
                     status_text(status));
  }
}

bool FitsFile::try_move_to(const std::string& extname) {
  const int here = current_hdu();
  const std::string want = upper(rtrim(extname));
  int n = 0;
  try {
    n = num_hdus();
  } catch (const InputError&) {
    return false;
  }
  for (int h = 0; h < n; ++h) {
    int status = 0, type = 0;
    if (fits_movabs_hdu(F(fptr_), h + 1, &type, &status)) {
      fits_clear_errmsg();
      break;  // a damaged HDU: stop searching
    }
    char value[FLEN_VALUE] = {0};
    if (fits_read_key(F(fptr_), TSTRING, "EXTNAME", value, nullptr, &status) == 0 &&
        upper(rtrim(value)) == want)
      return true;
    fits_clear_errmsg();
  }
  int status = 0, type = 0;
  fits_movabs_hdu(F(fptr_), here + 1, &type, &status);
  fits_clear_errmsg();
  return false;
}

void FitsFile::move_to(const std::string& extname) {
  if (!try_move_to(extname))
    throw InputError(path_ + ": no extension with EXTNAME = '" + extname + "' (" +
                     std::to_string(num_hdus()) + " HDUs in the file)");
}

bool FitsFile::has_extension(const std::string& extname) {
  const int here = current_hdu();
  const bool found = try_move_to(extname);
  move_to(here);
  return found;
}

HduType FitsFile::hdu_type() {
  int type = 0, status = 0;
  fits_get_hdu_type(F(fptr_), &type, &status);
  check(status, "cannot read the HDU type");
  if (type == ASCII_TBL) return HduType::kAsciiTable;
  if (type == BINARY_TBL) return HduType::kBinaryTable;
  return HduType::kImage;
}

std::string FitsFile::extname() { return read_string_opt("EXTNAME").value_or(""); }

// ---- header keys ----------------------------------------------------------------------------

bool FitsFile::has_key(const std::string& key) {
  char card[FLEN_CARD] = {0};
  int status = 0;
  fits_read_card(F(fptr_), key.c_str(), card, &status);
  fits_clear_errmsg();
  return status == 0;
}

std::optional<std::string> FitsFile::read_string_opt(const std::string& key) {
  if (!has_key(key)) return std::nullopt;
  int status = 0;
  char* longstr = nullptr;
  fits_read_key_longstr(F(fptr_), key.c_str(), &longstr, nullptr, &status);
  if (status) {
    if (longstr) fits_free_memory(longstr, &status);
    fail("cannot read key " + key + " as a string", status);
  }
  std::string v = longstr ? rtrim(longstr) : std::string();
  int s2 = 0;
  if (longstr) fits_free_memory(longstr, &s2);
  return v;
}

std::optional<double> FitsFile::read_double_opt(const std::string& key) {
  if (!has_key(key)) return std::nullopt;
  double v = 0;
  int status = 0;
  fits_read_key(F(fptr_), TDOUBLE, key.c_str(), &v, nullptr, &status);
  check(status, "cannot read key " + key + " as a number");
  return v;
}

std::optional<long> FitsFile::read_long_opt(const std::string& key) {
  if (!has_key(key)) return std::nullopt;
  long v = 0;
  int status = 0;
  fits_read_key(F(fptr_), TLONG, key.c_str(), &v, nullptr, &status);
  check(status, "cannot read key " + key + " as an integer");
  return v;
}

std::optional<bool> FitsFile::read_bool_opt(const std::string& key) {
  if (!has_key(key)) return std::nullopt;
  int v = 0, status = 0;
  fits_read_key(F(fptr_), TLOGICAL, key.c_str(), &v, nullptr, &status);
  check(status, "cannot read key " + key + " as a logical");
  return v != 0;
}

std::string FitsFile::read_string(const std::string& key) {
  auto v = read_string_opt(key);
  if (!v) fail("missing header key " + key);
  return *v;
}
double FitsFile::read_double(const std::string& key) {
  auto v = read_double_opt(key);
  if (!v) fail("missing header key " + key);
  return *v;
}
long FitsFile::read_long(const std::string& key) {
  auto v = read_long_opt(key);
  if (!v) fail("missing header key " + key);
  return *v;
}
bool FitsFile::read_bool(const std::string& key) {
  auto v = read_bool_opt(key);
  if (!v) fail("missing header key " + key);
  return *v;
}

std::vector<std::string> FitsFile::read_all_cards() {
  int nkeys = 0, more = 0, status = 0;
  fits_get_hdrspace(F(fptr_), &nkeys, &more, &status);
  check(status, "cannot read the header");
  std::vector<std::string> cards;
  cards.reserve(static_cast<std::size_t>(nkeys));
  for (int i = 1; i <= nkeys; ++i) {  // CFITSIO card numbers are 1-based
    char card[FLEN_CARD] = {0};
    fits_read_record(F(fptr_), i, card, &status);
    check(status, "cannot read header card " + std::to_string(i));
    cards.emplace_back(card);
  }
  return cards;
}

namespace {
std::vector<std::string> cards_with_keyword(const std::vector<std::string>& cards, const char* kw) {
  std::vector<std::string> out;
  const std::string k = kw;
  for (const auto& c : cards) {
    if (c.size() >= 8 && c.compare(0, k.size(), k) == 0 &&
        c.find_first_not_of(' ', k.size()) >= 8) {
      out.push_back(c.size() > 8 ? rtrim(c.substr(8)) : std::string());
    }
  }
  return out;
}
}  // namespace

std::vector<std::string> FitsFile::read_comments() { return cards_with_keyword(read_all_cards(), "COMMENT"); }
std::vector<std::string> FitsFile::read_history() { return cards_with_keyword(read_all_cards(), "HISTORY"); }

void FitsFile::write_key(const std::string& key, const std::string& value, const std::string& comment) {
  require_writable("write key");
  if (!printable_ascii(value) || !printable_ascii(comment))
    fail("key " + key + ": value or comment holds characters that are not printable ASCII");
  int status = 0;
  if (value.size() <= 68) {
    fits_update_key_str(F(fptr_), key.c_str(), value.c_str(), comment.empty() ? nullptr : comment.c_str(),
                        &status);
  } else {
    fits_update_key_longstr(F(fptr_), key.c_str(), value.c_str(),
                            comment.empty() ? nullptr : comment.c_str(), &status);
  }
  check(status, "cannot write key " + key);
}

void FitsFile::write_key(const std::string& key, const char* value, const std::string& comment) {
  write_key(key, std::string(value), comment);
}

void FitsFile::write_key(const std::string& key, double value, const std::string& comment) {
  require_writable("write key");
  if (!std::isfinite(value)) fail("key " + key + ": cannot write the non-finite value " + format_value(value));
  int status = 0;
  // decimals = -17: "%.17G", 17 significant digits, enough for an exact binary round trip.
  fits_update_key_dbl(F(fptr_), key.c_str(), value, -17, comment.empty() ? nullptr : comment.c_str(),
                      &status);
  check(status, "cannot write key " + key);
}

void FitsFile::write_key(const std::string& key, long value, const std::string& comment) {
  require_writable("write key");
  int status = 0;
  fits_update_key_lng(F(fptr_), key.c_str(), static_cast<LONGLONG>(value),
                      comment.empty() ? nullptr : comment.c_str(), &status);
  check(status, "cannot write key " + key);
}

void FitsFile::write_key(const std::string& key, int value, const std::string& comment) {
  write_key(key, static_cast<long>(value), comment);
}

void FitsFile::write_key(const std::string& key, bool value, const std::string& comment) {
  require_writable("write key");
  int status = 0;
  fits_update_key_log(F(fptr_), key.c_str(), value ? 1 : 0, comment.empty() ? nullptr : comment.c_str(),
                      &status);
  check(status, "cannot write key " + key);
}

void FitsFile::write_comment(const std::string& text) {
  require_writable("write COMMENT");
  if (!printable_ascii(text)) fail("COMMENT text holds characters that are not printable ASCII");
  int status = 0;
  fits_write_comment(F(fptr_), text.c_str(), &status);
  check(status, "cannot write a COMMENT card");
}

void FitsFile::write_history(const std::string& text) {
  require_writable("write HISTORY");
  if (!printable_ascii(text)) fail("HISTORY text holds characters that are not printable ASCII");
  int status = 0;
  fits_write_history(F(fptr_), text.c_str(), &status);
  check(status, "cannot write a HISTORY card");
}

void FitsFile::write_date(const std::string& date) {
  require_writable("write DATE");
  if (date.empty()) {
    int status = 0;
    fits_write_date(F(fptr_), &status);
    check(status, "cannot write DATE");
  } else {
    write_key("DATE", date, "file creation date (YYYY-MM-DDThh:mm:ss UT)");
  }
}

// ---- images ---------------------------------------------------------------------------------

void FitsFile::create_empty_primary() {
  require_writable("create primary HDU");
  int status = 0;
  long naxes[1] = {0};
  fits_create_img(F(fptr_), BYTE_IMG, 0, naxes, &status);
  check(status, "cannot create the primary HDU");
}

void FitsFile::create_image(FitsPixel type, const std::vector<long>& dims) {
  require_writable("create image");
  for (long d : dims)
    if (d < 1) fail("cannot create an image with dims " + dims_text(dims));
  std::vector<LONGLONG> naxes(dims.begin(), dims.end());
  int status = 0;
  fits_create_imgll(F(fptr_), static_cast<int>(type), static_cast<int>(naxes.size()), naxes.data(), &status);
  check(status, "cannot create an image HDU with dims " + dims_text(dims));
}

void FitsFile::create_compressed_image(FitsPixel type, const std::vector<long>& dims) {
  require_writable("create a compressed image");
  int status = 0;
  fits_set_compression_type(F(fptr_), GZIP_1, &status);
  check(status, "cannot select GZIP tile compression");
  fits_set_quantize_level(F(fptr_), 0.0f, &status);  // no quantisation: lossless floats
  check(status, "cannot switch off float quantisation");
  try {
    create_image(type, dims);
  } catch (...) {
    int s2 = 0;
    fits_set_compression_type(F(fptr_), 0, &s2);
    throw;
  }
  // Writing pixels happens after this call; compression stays selected for this HDU only until
  // the next create_*; switch it off for the HDUs that follow.
  fits_set_compression_type(F(fptr_), 0, &status);
  check(status, "cannot reset the compression type");
}

int FitsFile::image_bitpix() {
  if (hdu_type() != HduType::kImage) fail("not an image HDU");
  int bitpix = 0, status = 0;
  fits_get_img_type(F(fptr_), &bitpix, &status);
  check(status, "cannot read BITPIX");
  return bitpix;
}

std::vector<long> FitsFile::image_dims() {
  if (hdu_type() != HduType::kImage) fail("not an image HDU");
  int naxis = 0, status = 0;
  fits_get_img_dim(F(fptr_), &naxis, &status);
  check(status, "cannot read NAXIS");
  if (naxis < 0 || naxis > 999) fail("invalid NAXIS = " + std::to_string(naxis));
  std::vector<LONGLONG> n(static_cast<std::size_t>(naxis), 0);
  if (naxis > 0) {
    fits_get_img_sizell(F(fptr_), naxis, n.data(), &status);
    check(status, "cannot read NAXISn");
  }
  return std::vector<long>(n.begin(), n.end());
}

namespace {
template <class T>
std::vector<T> read_pixels(void* fptr, int datatype, const std::vector<long>& dims, int* status) {
  std::size_t n = 1;
  for (long d : dims) n *= static_cast<std::size_t>(d);
  std::vector<T> out(n);
  std::vector<LONGLONG> first(dims.size(), 1);  // FITS pixel (1, 1, ...), 1-based
  int anynul = 0;
  fits_read_pixll(static_cast<fitsfile*>(fptr), datatype, first.data(), static_cast<LONGLONG>(n), nullptr,
                  out.data(), &anynul, status);
  return out;
}
}  // namespace

#define SLITSTEP_READ_IMAGE(TYPE, CFITSIO_TYPE, NAME)                                         \
  std::vector<TYPE> FitsFile::NAME(const std::vector<long>& expected_dims) {                   \
    const auto dims = image_dims();                                                            \
    if (dims.empty()) fail("the HDU holds no image data (NAXIS = 0)");                         \
    if (!expected_dims.empty() && dims != expected_dims)                                       \
      fail("image dims " + dims_text(dims) + " differ from the expected " + dims_text(expected_dims)); \
    int status = 0;                                                                            \
    auto out = read_pixels<TYPE>(fptr_, CFITSIO_TYPE, dims, &status);                          \
    check(status, "cannot read " + dims_text(dims) + " image pixels");                         \
    return out;                                                                                \
  }

SLITSTEP_READ_IMAGE(double, TDOUBLE, read_image_double)
SLITSTEP_READ_IMAGE(float, TFLOAT, read_image_float)
SLITSTEP_READ_IMAGE(std::int32_t, TINT, read_image_int32)
#undef SLITSTEP_READ_IMAGE

namespace {
template <class T>
int write_pixels(void* fptr, int datatype, const std::vector<T>& px, std::size_t ndim) {
  std::vector<LONGLONG> first(ndim, 1);  // FITS pixel (1, 1, ...), 1-based
  int status = 0;
  fits_write_pixll(static_cast<fitsfile*>(fptr), datatype, first.data(), static_cast<LONGLONG>(px.size()),
                   const_cast<T*>(px.data()), &status);
  return status;
}
}  // namespace

#define SLITSTEP_WRITE_IMAGE(TYPE, CFITSIO_TYPE)                                               \
  void FitsFile::write_image(const std::vector<TYPE>& pixels) {                                \
    require_writable("write image");                                                           \
    const auto dims = image_dims();                                                            \
    std::size_t n = dims.empty() ? 0 : 1;                                                      \
    for (long d : dims) n *= static_cast<std::size_t>(d);                                      \
    if (pixels.size() != n)                                                                    \
      fail("cannot write " + std::to_string(pixels.size()) + " pixels into an image of dims " + \
           dims_text(dims));                                                                   \
    if (n == 0) return;                                                                        \
    check(write_pixels(fptr_, CFITSIO_TYPE, pixels, dims.size()), "cannot write image pixels"); \
  }

SLITSTEP_WRITE_IMAGE(double, TDOUBLE)
SLITSTEP_WRITE_IMAGE(float, TFLOAT)
SLITSTEP_WRITE_IMAGE(std::int32_t, TINT)
#undef SLITSTEP_WRITE_IMAGE

// ---- binary tables --------------------------------------------------------------------------

long FitsFile::table_rows() {
  if (hdu_type() == HduType::kImage) fail("not a table HDU");
  LONGLONG n = 0;
  int status = 0;
  fits_get_num_rowsll(F(fptr_), &n, &status);
  check(status, "cannot read the number of rows");
  return static_cast<long>(n);
}

std::vector<std::string> FitsFile::column_names() {
  if (hdu_type() == HduType::kImage) fail("not a table HDU");
  int ncols = 0, status = 0;
  fits_get_num_cols(F(fptr_), &ncols, &status);
  check(status, "cannot read the number of columns");
  std::vector<std::string> names;
  for (int c = 1; c <= ncols; ++c)  // TTYPEn is 1-based
    names.push_back(read_string_opt("TTYPE" + std::to_string(c)).value_or(""));
  return names;
}

bool FitsFile::has_column(const std::string& name) {
  const auto names = column_names();
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return upper(n) == upper(name); });
}

namespace {
int column_index_1based(const std::vector<std::string>& names, const std::string& name) {
  for (std::size_t c = 0; c < names.size(); ++c)
    if (upper(rtrim(names[c])) == upper(rtrim(name))) return static_cast<int>(c) + 1;
  return 0;
}
}  // namespace

std::vector<double> FitsFile::read_column(const std::string& name) {
  const int col = column_index_1based(column_names(), name);
  if (col == 0) fail("no column named '" + name + "'");
  int typecode = 0, status = 0;
  LONGLONG repeat = 0, width = 0;
  fits_get_coltypell(F(fptr_), col, &typecode, &repeat, &width, &status);
  check(status, "cannot read the type of column '" + name + "'");
  if (typecode == TSTRING || typecode == TLOGICAL || typecode == TBIT || typecode < 0)
    fail("column '" + name + "' is not a fixed-size numeric column");
  const long rows = table_rows();
  std::vector<double> out(static_cast<std::size_t>(rows) * static_cast<std::size_t>(repeat));
  if (out.empty()) return out;
  int anynul = 0;
  // First row 1, first element 1 (CFITSIO is 1-based); reading continues across rows.
  fits_read_col(F(fptr_), TDOUBLE, col, 1, 1, static_cast<LONGLONG>(out.size()), nullptr, out.data(), &anynul,
                &status);
  check(status, "cannot read column '" + name + "'");
  return out;
}

void FitsFile::create_binary_table(const std::string& extname, const std::vector<FitsColumnSpec>& columns,
                                   long nrows) {
  require_writable("create binary table");
  std::vector<char*> ttype, tform, tunit;
  std::vector<std::string> storage;
  storage.reserve(columns.size() * 3);
  for (const auto& c : columns) {
    storage.push_back(c.name);
    ttype.push_back(storage.back().data());
    storage.push_back(c.form);
    tform.push_back(storage.back().data());
    storage.push_back(c.unit);
    tunit.push_back(storage.back().data());
  }
  int status = 0;
  fits_create_tbl(F(fptr_), BINARY_TBL, static_cast<LONGLONG>(nrows), static_cast<int>(columns.size()),
                  ttype.data(), tform.data(), tunit.data(), extname.c_str(), &status);
  check(status, "cannot create binary table " + extname);
  for (std::size_t c = 0; c < columns.size(); ++c)
    if (!columns[c].tdim.empty()) write_key("TDIM" + std::to_string(c + 1), columns[c].tdim);
}

void FitsFile::write_column(const std::string& name, const std::vector<double>& values) {
  require_writable("write column");
  const int col = column_index_1based(column_names(), name);
  if (col == 0) fail("no column named '" + name + "'");
  if (values.empty()) return;
  int status = 0;
  fits_write_col(F(fptr_), TDOUBLE, col, 1, 1, static_cast<LONGLONG>(values.size()),
                 const_cast<double*>(values.data()), &status);
  check(status, "cannot write column '" + name + "'");
}

// ---- free functions -------------------------------------------------------------------------

void ensure_output_is_not_an_input(const std::string& output, const std::vector<std::string>& inputs) {
  std::error_code ec;
  if (!fs::exists(output, ec)) return;
  for (const auto& in : inputs) {
    std::error_code e2;
    if (fs::equivalent(output, in, e2) && !e2)
      throw InputError(output + ": refusing to write the output onto the input file " + in);
  }
}

}  // namespace slitstep
