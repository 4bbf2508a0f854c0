#pragma once
// slitstep/core: writing text products (JSON, CSV) safely.
// write_text_atomic writes to "PATH.tmp-<pid>" and renames onto PATH only when the whole text is
// on disk, so an interrupted run never leaves a half-written product. Throws InputError naming
// the path on failure (unwritable folder, disk full, PATH is a directory).
// ensure_output_dir creates DIR (and parents) if needed; throws InputError if DIR exists and is
// not a directory or cannot be created.
#include <string>

namespace slitstep {

void write_text_atomic(const std::string& path, const std::string& text);
void ensure_output_dir(const std::string& dir);

}  // namespace slitstep
