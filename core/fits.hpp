#pragma once
// slitstep/core: FitsFile, the one CFITSIO choke point of slitstep.
//
// No other file of the project includes fitsio.h; every FITS read or write goes through this
// RAII class. Its rules:
//  * Errors throw slitstep::InputError (core/error.hpp) with ONE line:
//      "<file>: HDU <n> (<EXTNAME>): <what failed>: <CFITSIO status text>"
//    The class never prints and never exits. CFITSIO's error-message stack is cleared after
//    every failure so that nothing leaks to stderr.
//  * Indexing: C++ indices are 0-based everywhere in this API: HDU 0 is the primary HDU, table
//    row 0 is the first row. FITS and CFITSIO are 1-based (HDU 1 is the primary, row 1, pixel 1);
//    the conversion (+1) happens inside fits.cpp only, at the CFITSIO calls (fits_movabs_hdu,
//    fits_read_pix's first pixel, fits_read_col's first row). Error messages print the 0-based
//    HDU index as "HDU n", as astropy's fitsinfo does.
//  * Image dimensions are given in FITS order (NAXIS1 first = the fastest-varying axis).
//    Pixel data are passed as flat vectors in FITS memory order (axis 1 fastest).
//  * Writing is atomic: FitsFile::create(PATH) writes to "PATH.tmp-<pid>" and renames it onto
//    PATH only in commit(). A FitsFile destroyed without commit() (an exception, an interrupted
//    run) deletes its temporary file, so a half-written product never appears and an existing
//    PATH is left untouched. create() refuses a PATH that another live FitsFile of this process
//    has open for reading (an input would otherwise be overwritten by its own product).
//  * Files are opened with CFITSIO's "disk file" entry points: names are taken literally, with
//    no extended-filename syntax (brackets, '!' prefixes, compression suffixes are not parsed).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace slitstep {

enum class HduType { kImage, kAsciiTable, kBinaryTable };

/// Pixel type of an image HDU written by FitsFile (BITPIX): 32 = int32, -32 = float32,
/// -64 = float64, 8 = uint8, 16 = int16.
enum class FitsPixel { kUInt8 = 8, kInt16 = 16, kInt32 = 32, kFloat32 = -32, kFloat64 = -64 };

/// One column of a binary table to create. `form` is a TFORM code such as "1D", "512D", "1J",
/// "20A". `tdim` (optional) is a TDIMn string such as "(1,512)".
struct FitsColumnSpec {
  std::string name;
  std::string form;
  std::string unit;  // TUNITn; empty = none
  std::string tdim;  // TDIMn; empty = none
};

class FitsFile {
 public:
  /// Opens an existing FITS file read-only, positioned on the primary HDU (index 0).
  /// Missing file, directory, empty file, not FITS: InputError naming the file.
  static FitsFile open_read(const std::string& path);
  /// Creates a new file that becomes `path` on commit() (see the header comment). The file is
  /// empty: the first create_image()/create_empty_primary() call makes the primary HDU.
  static FitsFile create(const std::string& path);

  FitsFile(FitsFile&& other) noexcept;
  FitsFile& operator=(FitsFile&& other) noexcept;
  FitsFile(const FitsFile&) = delete;
  FitsFile& operator=(const FitsFile&) = delete;
  /// Closes the file. Without commit(), a file being created is deleted (PATH untouched).
  ~FitsFile();

  /// The path given by the user (not the temporary name).
  const std::string& path() const { return path_; }
  bool writable() const { return writable_; }

  /// Flushes and closes a file being created and renames it onto path(). After commit() the
  /// object is closed. Throws InputError when the write or the rename fails (the temporary file
  /// is then removed).
  void commit();

  // ---- HDU navigation (0-based) --------------------------------------------------------------
  int num_hdus();
  /// 0-based index of the current HDU.
  int current_hdu();
  void move_to(int hdu_index);
  /// Moves to the first HDU whose EXTNAME equals `extname` (case-insensitive, trailing blanks
  /// ignored; the primary HDU is searched too). Missing: InputError naming file and EXTNAME.
  void move_to(const std::string& extname);
  /// Like move_to(extname) but returns false (position unchanged) when missing.
  bool try_move_to(const std::string& extname);
  bool has_extension(const std::string& extname);
  HduType hdu_type();
  /// EXTNAME of the current HDU, "" when absent (trailing blanks removed).
  std::string extname();

  // ---- header keys -------------------------------------------------------------------------
  bool has_key(const std::string& key);
  /// Readers: the *_opt forms return nullopt when the key is absent and throw InputError when it
  /// exists but cannot be converted; the plain forms also throw when it is absent.
  std::optional<std::string> read_string_opt(const std::string& key);
  std::optional<double> read_double_opt(const std::string& key);
  std::optional<long> read_long_opt(const std::string& key);
  std::optional<bool> read_bool_opt(const std::string& key);
  std::string read_string(const std::string& key);
  double read_double(const std::string& key);
  long read_long(const std::string& key);
  bool read_bool(const std::string& key);
  /// Text of every COMMENT / HISTORY card of the current HDU, in order (cols 9-80, right-trimmed).
  std::vector<std::string> read_comments();
  std::vector<std::string> read_history();
  /// All 80-character header cards of the current HDU (for summaries and debugging).
  std::vector<std::string> read_all_cards();

  /// Writers update the key when it exists, else append it. Doubles are written with 17
  /// significant digits (exact round trip); non-finite doubles are refused (InputError).
  void write_key(const std::string& key, const std::string& value, const std::string& comment = "");
  void write_key(const std::string& key, const char* value, const std::string& comment = "");
  void write_key(const std::string& key, double value, const std::string& comment = "");
  void write_key(const std::string& key, long value, const std::string& comment = "");
  void write_key(const std::string& key, int value, const std::string& comment = "");
  void write_key(const std::string& key, bool value, const std::string& comment = "");
  /// Writes one COMMENT / HISTORY card per call; text longer than 72 characters is split by
  /// CFITSIO over several cards. Only printable ASCII is allowed (others: InputError).
  void write_comment(const std::string& text);
  void write_history(const std::string& text);
  /// DATE = current UTC time (CFITSIO fits_write_date) unless `date` is given.
  void write_date(const std::string& date = "");

  // ---- images ------------------------------------------------------------------------------
  /// Appends an empty primary HDU (NAXIS = 0). Only valid as the first HDU of a new file.
  void create_empty_primary();
  /// Appends an image HDU with the given dims (FITS order) and makes it current. The first HDU
  /// created becomes the primary HDU.
  void create_image(FitsPixel type, const std::vector<long>& dims_fits_order);
  /// Like create_image, but the HDU is a lossless GZIP tile-compressed image (FITS tiled image
  /// convention; CFITSIO, astropy and fitsverify read it as an ordinary image). Used for planes
  /// that are constant (e.g. ERR = 0 of a noiseless model cube) so they cost no disk space.
  void create_compressed_image(FitsPixel type, const std::vector<long>& dims_fits_order);
  /// BITPIX of the current image HDU (InputError if it is not an image).
  int image_bitpix();
  /// NAXISn of the current image HDU in FITS order; empty for NAXIS = 0.
  std::vector<long> image_dims();
  /// Reads the whole image, converted by CFITSIO (BSCALE/BZERO applied). If `expected_dims` is
  /// not empty, the image dims must equal it (else InputError "dims A, expected B").
  /// NaN / inf pixels of floating-point images are returned as they are.
  std::vector<double> read_image_double(const std::vector<long>& expected_dims = {});
  std::vector<float> read_image_float(const std::vector<long>& expected_dims = {});
  std::vector<std::int32_t> read_image_int32(const std::vector<long>& expected_dims = {});
  /// Writes the whole current image; the vector size must equal the product of the dims.
  void write_image(const std::vector<double>& pixels);
  void write_image(const std::vector<float>& pixels);
  void write_image(const std::vector<std::int32_t>& pixels);

  // ---- binary tables -----------------------------------------------------------------------
  long table_rows();
  std::vector<std::string> column_names();
  bool has_column(const std::string& name);
  /// Every element of a numeric column, converted to double: row 0 first, and for vector
  /// columns (repeat > 1) the elements of each row in order. Column names match
  /// case-insensitively. Missing column: InputError naming file, HDU and column.
  std::vector<double> read_column(const std::string& name);
  /// Appends a binary-table HDU with `nrows` rows and makes it current.
  void create_binary_table(const std::string& extname, const std::vector<FitsColumnSpec>& columns,
                           long nrows);
  /// Writes `values` into a numeric column starting at row 0 (vector columns: row-major).
  void write_column(const std::string& name, const std::vector<double>& values);

 private:
  FitsFile() = default;
  void close_noexcept();
  [[noreturn]] void fail(const std::string& what, int status);
  [[noreturn]] void fail(const std::string& what);
  void check(int status, const std::string& what);
  void require_writable(const char* op);
  std::string location();

  void* fptr_ = nullptr;          // fitsfile* (kept opaque so fitsio.h stays in fits.cpp)
  std::string path_;              // user-visible path
  std::string tmp_path_;          // temporary file being written ("" for read-only)
  std::string registered_;        // canonical path registered as an open input ("" if none)
  bool writable_ = false;
};

/// Throws InputError when `output` names the same existing file as one of `inputs` (compared by
/// device/inode with std::filesystem::equivalent, so different spellings of one file are
/// caught). Apps call this before a long computation; FitsFile::create also checks files that
/// are currently open for reading.
void ensure_output_is_not_an_input(const std::string& output, const std::vector<std::string>& inputs);


}  // namespace slitstep
