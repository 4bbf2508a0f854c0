#pragma once
// slitstep/core: the explicit, seeded random-number generator (Boost.Random mt19937_64).
//
// Every random draw in slitstep comes from an Rng passed in by the caller; there is no global
// or static generator. For parallel work, derive one independent stream per work item with
// `substream(index)` (a SplitMix64 hash of seed and index): the output then depends only on the
// seed and the item index, never on the thread count or scheduling.
#include <cmath>
#include <cstdint>

#include <boost/random/mersenne_twister.hpp>
#include <boost/random/normal_distribution.hpp>
#include <boost/random/poisson_distribution.hpp>
#include <boost/random/uniform_01.hpp>

namespace slitstep {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : seed_(seed), engine_(seed) {}
  std::uint64_t seed() const { return seed_; }
  /// Independent generator for work item `index`; deterministic in (seed, index).
  Rng substream(std::uint64_t index) const { return Rng(splitmix64(seed_ ^ splitmix64(index + 0x9E3779B97F4A7C15ull))); }
  /// Uniform in [0, 1).
  double uniform() { return boost::random::uniform_01<double>()(engine_); }
  /// Normal with the given mean and standard deviation.
  double normal(double mean = 0.0, double sigma = 1.0) {
    return boost::random::normal_distribution<double>(mean, sigma)(engine_);
  }
  /// Poisson deviate with the given mean (>= 0); returns 0 for mean <= 0.
  double poisson(double mean) {
    if (!(mean > 0.0)) return 0.0;
    if (mean > 1e7) return normal(mean, std::sqrt(mean));  // Boost's algorithm overflows there
    return static_cast<double>(boost::random::poisson_distribution<long long, double>(mean)(engine_));
  }
  static std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  }

 private:
  std::uint64_t seed_;
  boost::random::mt19937_64 engine_;
};

}  // namespace slitstep
