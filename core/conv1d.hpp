#pragma once
// slitstep/core: register-blocked 1-D convolution kernels shared by PsfConvolver's direct x/y
// passes (instruments/psf.cpp) and the render's row filter (sim/render.cpp), so that both give
// the same bits.
//
// Header-only, inline and always_inline: they are compiled into each caller's instruction-set
// clone (core/simd.hpp SLITSTEP_SIMD_CLONES). Units: none (any spectra of doubles). The caller
// guarantees that every tap's [a, b] lies inside its source spectrum and that `o` holds the
// output channels; nothing is checked here (hot loops). Never throws.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

namespace slitstep::conv1d {

// A tap of one output spectrum in one chunk: weight, source spectrum and the channels [a, b] it
// adds to (its source's nonzero range cut to the chunk; the source is never read outside it).
struct Tap {
  const double* src;
  double w;
  int a, b;
};

// Register-blocked (output-stationary) sums over W consecutive channels k0 .. k0 + W - 1, written
// to o[k0 ..] once: the W partial sums stay in registers (W / L vectors of L doubles; two SSE2
// registers each in the baseline clone) while the taps are added in increasing d order.
// Bit-identical to adding w * src[k] into a zeroed o tap by tap over each tap's [a, b]: a tap that
// covers the block adds w * src[k] to every sum; one that covers part of it adds w * (src[k]
// inside [a, b], +0.0 outside, the source never read outside [a, b]), and those +-0.0 terms change
// no sum (w is finite; every sum starts at +0.0 and round-to-nearest never makes it -0.0, so
// s + (+-0.0) == s).
// Separate multiplies and adds (no FMA), so every value is rounded as before. Recomputing a
// channel (overlapping blocks) gives the same value.
template <int W, int L = 4>
inline __attribute__((always_inline)) void conv_block(const Tap* t, const Tap* te, int k0, double* __restrict o) {
  static_assert(L == 4 || L == 8);
  static_assert(W % L == 0);
  typedef double V __attribute__((vector_size(8 * L)));
  constexpr int NV = W / L;
  const int k1 = k0 + W - 1;
  V acc[NV];
#pragma GCC unroll 4
  for (int q = 0; q < NV; ++q) acc[q] = V{};  // +0.0 in every lane
  for (; t != te; ++t) {
    const double w = t->w;
    const double* __restrict s = t->src + k0;
    if (t->a <= k0 && k1 <= t->b) {
#pragma GCC unroll 4
      for (int q = 0; q < NV; ++q) {
        V x;
        std::memcpy(&x, s + L * q, sizeof x);
        acc[q] += w * x;
      }
    } else if (t->a <= k1 && k0 <= t->b) {
      const int a = t->a - k0, b = t->b - k0;
      double v[W];
      for (int j = 0; j < W; ++j) v[j] = (j >= a && j <= b) ? s[j] : 0.0;
#pragma GCC unroll 4
      for (int q = 0; q < NV; ++q) {
        V x;
        std::memcpy(&x, v + L * q, sizeof x);
        acc[q] += w * x;
      }
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < NV; ++q) std::memcpy(o + k0 + L * q, &acc[q], sizeof acc[q]);
}

// One channel k: the taps whose [a, b] holds k, in order.
inline __attribute__((always_inline)) void conv_one(const Tap* t, const Tap* te, int k, double* __restrict o) {
  double acc = 0.0;
  for (; t != te; ++t)
    if (t->a <= k && k <= t->b) acc += t->w * t->src[k];
  o[k] = acc;
}

// Channels ka .. kb: blocks of 16 (the last one moved back to end at kb), shorter ranges in
// blocks of 8 or 4 the same way, fewer than 4 channels one by one. L = doubles per vector of the
// 16- and 8-channel blocks: 4 (AVX2 / SSE2 pairs), or 8 inside an AVX-512 caller (core/simd.hpp
// SLITSTEP_AVX512_KERNEL); the same terms in the same order, so the same bits.
template <int L = 4>
inline __attribute__((always_inline)) void conv_range(const Tap* t, const Tap* te, int ka, int kb, double* __restrict o) {
  const int len = kb - ka + 1;
  if (len >= 16) {
    int k0 = ka;
    for (; k0 + 15 <= kb; k0 += 16) conv_block<16, L>(t, te, k0, o);
    if (k0 <= kb) conv_block<16, L>(t, te, kb - 15, o);
  } else if (len >= 8) {
    conv_block<8, L>(t, te, ka, o);
    if (len > 8) conv_block<8, L>(t, te, kb - 7, o);
  } else if (len >= 4) {
    conv_block<4>(t, te, ka, o);
    if (len > 4) conv_block<4>(t, te, kb - 3, o);
  } else {
    for (int k = ka; k <= kb; ++k) conv_one(t, te, k, o);
  }
}

// The per-output steps of a direct 1-D pass along a line of n spectra (nl channels each) whose
// spectrum s sits at in + (base + s * stride) * nl with nonzero range [first, last] at index
// base + s * stride. Instruction-set independent (they add nothing up), so every ISA variant of
// a pass calls the same code.
//
// begin_output: output i's range [lo, hi] = the union of the ranges of its sources within hmax
// (the largest half-width of all chunks), o zero-filled over all nl channels; false when empty.
inline __attribute__((always_inline)) bool begin_output(const int* first, const int* last, std::size_t base,
                                                        std::size_t stride, int n, int i, int hmax, std::size_t nl,
                                                        double* o, int& lo, int& hi) {
  lo = static_cast<int>(nl);
  hi = -1;
  for (int d = -hmax; d <= hmax; ++d) {
    const int s = i - d;
    if (s < 0 || s >= n) continue;
    const std::size_t ps = base + static_cast<std::size_t>(s) * stride;
    lo = std::min(lo, first[ps]);
    hi = std::max(hi, last[ps]);
  }
  std::fill(o, o + nl, 0.0);
  return hi >= lo;
}

// chunk_taps: output i's taps h (odd length, one chunk) over channels [ka, kb], in increasing d
// (the order every sum adds its terms in): sources inside the line whose range meets [ka, kb].
// Writes them from `taps` on (room for h.size()) and returns the end of the list.
inline __attribute__((always_inline)) Tap* chunk_taps(const double* in, const int* first, const int* last,
                                                      std::size_t base, std::size_t stride, int n, int i,
                                                      std::size_t nl, const std::vector<double>& h, int ka, int kb,
                                                      Tap* taps) {
  const int half = static_cast<int>(h.size() / 2);
  Tap* te = taps;
  for (int d = -half; d <= half; ++d) {
    const int s = i - d;
    if (s < 0 || s >= n) continue;
    const std::size_t ps = base + static_cast<std::size_t>(s) * stride;
    const int a = std::max(ka, first[ps]), b = std::min(kb, last[ps]);
    if (b < a) continue;
    *te++ = Tap{in + ps * nl, h[static_cast<std::size_t>(d + half)], a, b};
  }
  return te;
}

}  // namespace slitstep::conv1d
