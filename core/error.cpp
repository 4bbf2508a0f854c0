#include "core/error.hpp"

#include <cstdio>

namespace slitstep {

std::string format_value(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

}  // namespace slitstep
