#include <cstdio>

#include "apps/commands.hpp"
#include "core/fits_info.hpp"

namespace slitstep::app {

int run_info(const std::string& path) {
  const std::string text = describe_fits(path);
  std::fputs(text.c_str(), stdout);
  if (!text.empty() && text.back() != '\n') std::fputc('\n', stdout);
  return 0;
}

}  // namespace slitstep::app
