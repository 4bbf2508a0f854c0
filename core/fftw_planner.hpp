#pragma once
// slitstep/core: the one lock around FFTW's planner. FFTW's plan creation and destruction are
// not thread-safe (only fftw_execute* is); every module that creates or destroys plans holds this
// mutex while doing so, so instruments built on different threads never race in the planner.
#include <mutex>

namespace slitstep {

inline std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace slitstep
