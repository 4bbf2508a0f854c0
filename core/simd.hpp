#pragma once
// slitstep/core: instruction-set clones for hot numerical kernels.
//
// SLITSTEP_SIMD_CLONES in front of a function definition makes GCC compile it twice, for the
// baseline x86-64 (SSE2) and for AVX2, and pick the version for the running CPU when the program
// loads (GNU ifunc). The build stays portable (no -march), and a machine with AVX2 runs the hot
// loops 4 doubles wide. Results are bit-identical between the clones: the AVX2 target does not
// enable FMA, so no multiply-add is fused, and every kernel marked with this keeps a fixed
// summation order per output value (vectorisation only runs across independent outputs).
// Elsewhere (other compilers / architectures) the macro is empty.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SLITSTEP_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SLITSTEP_SIMD_CLONES
#endif
